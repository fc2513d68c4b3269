"""``stylebridge analyze latents``: α per layer, the thesis' layer patterns, Eq. 5 and the plots,
on hand-made vectors and on a tiny generator with a test encoder whose styles are a known
per-layer multiple of the mapping network's (registered from this module for the CLI tests)."""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import tiny_generator
from PIL import Image
from torch import Tensor
from torch.nn import functional as F

from stylebridge.core.checkpoint import save_checkpoint
from stylebridge.core.interfaces import Encoder, Inversion, Preprocessing
from stylebridge.core.stylegan2.checkpoint import save_stylegan2
from stylebridge.pipelines.analyze import (
    LayerRef,
    SimilarityAccumulator,
    build_report,
    collect_mapping_stats,
    plot_distributions,
    render_markdown,
)
from stylebridge.plugins.calibrators.alpha import mapping_style_means, mapping_wplus_batches
from stylebridge.plugins.domains.stylespace import StyleSpace
from stylebridge.registry import hookimpl

SIZE, SD = 32, 32
N_IMAGES = 6  # readable photos in the CLI tests = --samples, so both sides see the same z


class BankEncoder(Encoder):
    """Ignores the pixels: the k-th image encoded gets ``row_scale · mapping(z_k)`` as w+.

    ``z_k`` are the first ``samples`` draws of ``torch.randn(samples, style_dim)`` from seed
    ``seed`` — what ``analyze latents --samples N --seed S`` samples for the mapping network —
    and row ``r`` of w+ is multiplied by ``base + step * r``.  With zero affine biases, style
    layer ``i`` (reading row ``r_i``) then has ``s_enc = (base + step * r_i) · s_orig`` exactly.
    """

    name = "test-analyze-bank"

    def __init__(self, samples: int = N_IMAGES, style_dim: int = SD, seed: int = 0,
                 base: float = 1.0, step: float = 0.0) -> None:
        super().__init__()
        self._config = {"samples": samples, "style_dim": style_dim, "seed": seed, "base": base,
                        "step": step}
        self.preprocessing = Preprocessing(size=16)
        self.register_buffer("bank", torch.randn(samples, style_dim,
                                                 generator=torch.Generator().manual_seed(seed)))
        self.base, self.step = float(base), float(step)
        self.used = 0
        self._generator: list[Any] = []

    def config(self) -> dict[str, Any]:
        return dict(self._config)

    def bind_generator(self, generator: Any) -> BankEncoder:
        self._generator = [generator]
        return self

    def encode(self, images: Tensor) -> Inversion:
        gen = self._generator[0]
        z = self.bank[self.used:self.used + images.shape[0]]
        assert z.shape[0] == images.shape[0], "more images than z in the bank"
        self.used += int(images.shape[0])
        w_plus = gen.make_wplus(z)
        scale = self.base + self.step * torch.arange(gen.n_latent, dtype=w_plus.dtype)
        return Inversion(w_plus=w_plus * scale.view(1, -1, 1))


@hookimpl
def register_encoders(register: Any) -> None:
    register(BankEncoder)


def _desc(gen: Any) -> dict[str, Any]:
    return {"size": gen.size, "style_dim": gen.style_dim,
            "channels": {str(r): c for r, c in gen.cfg.channels.items()}}


@pytest.fixture(scope="module")
def gen() -> Any:
    """Tiny generator with zero affine biases: every style vector is linear in its w row."""
    g = tiny_generator(seed=0, size=SIZE, style_dim=SD)
    with torch.no_grad():
        for layer in g.style_layers():
            g.get_submodule(layer.name).modulation.bias.zero_()
    return g


def _cos(a: Tensor, b: Tensor) -> Tensor:
    return F.cosine_similarity(a.double(), b.double(), dim=1)


# ---------------------------------------------------------------------------------------------
# Python API


def test_mapping_side_draws_the_same_z_as_the_calibrator(gen: Any) -> None:
    means, sims = collect_mapping_stats(gen, samples=700, seed=3)
    expected = mapping_style_means(gen, 700, seed=3)  # crosses its 500-sample batch boundary
    assert sims == {} and len(means) == gen.n_style_layers
    for a, b in zip(means, expected, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


def test_mapping_z_are_drawn_in_batches_of_500_from_a_cpu_generator(gen: Any) -> None:
    """The shared sampler draws the z the calibrator always drew: 500 then 200 from one
    seeded CPU generator; ``analyze`` reports progress per batch."""
    batches = list(mapping_wplus_batches(gen, 700, seed=3))
    assert [int(w.shape[0]) for w in batches] == [500, 200]
    rng = torch.Generator().manual_seed(3)
    z = torch.cat([torch.randn(n, SD, generator=rng) for n in (500, 200)])
    with torch.no_grad():
        torch.testing.assert_close(torch.cat(batches), gen.make_wplus(z))
    assert not batches[0].requires_grad
    seen: list[int] = []
    collect_mapping_stats(gen, samples=700, seed=3, advance=seen.append)
    assert seen == [500, 200]
    for sample in (mapping_style_means, collect_mapping_stats):
        with pytest.raises(ValueError, match="samples must be >= 1, got 0"):
            sample(gen, samples=0)


def test_alpha_and_patterns_recovered_from_synthetic_means() -> None:
    g = torch.Generator().manual_seed(0)
    alphas = [1.0, 1.03, 1.6, 0.55]
    src, enc, refs = [], [], []
    for i, a in enumerate(alphas):
        x = 2 * torch.randn(64, generator=g) + 1
        src.append(x)
        enc.append(a * x + 0.02 * torch.randn(64, generator=g))
        refs.append(LayerRef(i, f"layer{i}", 64, False, i))
    src.append(torch.randn(64, generator=g))  # layer 4: encoder means unrelated to the mapping's
    enc.append(torch.randn(64, generator=g))
    refs.append(LayerRef(4, "layer4", 64, False, 4))
    report = build_report(src, enc, refs)
    got = [r["alpha"] for r in report["layers"]]
    for a, b in zip(got[:4], alphas, strict=True):
        assert a == pytest.approx(b, abs=0.01)
    assert all(r["r2"] > 0.99 for r in report["layers"][:4])
    assert report["layers"][4]["corr_r2"] < 0.2
    assert [r["pattern"] for r in report["layers"]] == [
        "calibrated", "calibrated", "scaled", "scaled", "independent"]
    assert report["patterns"] == {"independent": [4], "calibrated": [0, 1], "scaled": [2, 3]}
    # thresholds are options: a tighter tolerance makes layer 1 "scaled"
    tight = build_report(src, enc, refs, alpha_tol=0.01)
    assert tight["layers"][1]["pattern"] == "scaled"

    # the figure: exactly one panel per layer and the density colour bar, random weights in
    # the title
    report["meta"] = {"random_weights": True, "random_inputs": {"encoder": True}}
    fig = plot_distributions(src, enc, report)
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(panels) == len(refs) and len(fig.axes) == len(refs) + 1
    assert fig.axes[-1].get_ylabel() == "point density (per panel, relative)"
    assert "RANDOM WEIGHTS" in fig._suptitle.get_text()
    assert [ax.get_title().split(":")[0] for ax in panels] == ["0", "1", "2", "3", "4"]
    # each panel holds the y = x line and both fitted lines (origin, then with intercept)
    slopes = [np.diff(line.get_ydata())[0] / np.diff(line.get_xdata())[0]
              for line in fig.axes[2].get_lines()]
    with_b = report["layers"][2]["fits"]["intercept"]["alpha"]
    assert slopes == pytest.approx([1.0, got[2], with_b], rel=1e-6)


def test_eq5_on_hand_computed_vectors() -> None:
    # layer 0 (2 channels): Δ = (0, 2); layer 1 (3 channels): no change
    orig = [torch.tensor([[2.0, 0.0], [0.0, 3.0]]), torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])]
    enc = [torch.tensor([[1.0, 1.0]]), torch.tensor([[0.0, 0.0, -1.0]])]
    delta = [torch.tensor([0.0, 2.0]), torch.zeros(3)]
    src_sims, enc_sims = SimilarityAccumulator(), SimilarityAccumulator()
    src_sims.add(orig, [s + d for s, d in zip(orig, delta, strict=True)])
    enc_sims.add(enc, [s + d for s, d in zip(enc, delta, strict=True)])
    refs = [LayerRef(0, "conv1.conv", 2, False, 0), LayerRef(1, "to_rgb1.conv", 3, True, None)]
    report = build_report([s.mean(0) for s in orig], [s.mean(0) for s in enc], refs,
                          source_sims={"d": src_sims}, encoder_sims={"d": enc_sims})
    row0, row1 = report["domains"]["d"]["layers"]
    # by hand: cos((2,0),(2,2)) = 1/√2, cos((0,3),(0,5)) = 1, cos((1,1),(1,3)) = 4/√20
    orig_cos = (1 / math.sqrt(2) + 1.0) / 2
    enc_cos = 4 / math.sqrt(20)
    assert row0["orig_cos"] == pytest.approx(orig_cos, abs=1e-12)
    assert row0["enc_cos"] == pytest.approx(enc_cos, abs=1e-12)
    assert row0["adaptability"] == pytest.approx(enc_cos - orig_cos, abs=1e-12)  # 0.040874
    # dot-product reading: ⟨(2,0),(2,2)⟩ = 4, ⟨(0,3),(0,5)⟩ = 15 → 9.5; ⟨(1,1),(1,3)⟩ = 4
    assert (row0["orig_dot"], row0["enc_dot"], row0["adaptability_dot"]) == pytest.approx(
        (9.5, 4.0, -5.5))
    assert (row1["orig_cos"], row1["enc_cos"], row1["adaptability"]) == pytest.approx((1, 1, 0))
    assert (row1["orig_dot"], row1["enc_dot"]) == pytest.approx((2.5, 1.0))
    md = render_markdown(report)
    assert "| 0 | conv1.conv | 0.8536 | 0.8944 | +0.0409 | 9.5 | 4 | -5.5 |" in md
    assert "| 1 | to_rgb1.conv | 1.0000 | 1.0000 | +0.0000 | 2.5 | 1 | -1.5 |" in md


# ---------------------------------------------------------------------------------------------
# CLI


@pytest.fixture
def files(tmp_path: Path, gen: Any) -> dict[str, Path]:
    domain = StyleSpace(**_desc(gen))
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in domain.offsets.values():
            p.copy_(0.5 * torch.randn(p.shape, generator=g))
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for k in range(N_IMAGES):
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(photos / f"{k}.png")
    (photos / "broken.png").write_bytes(b"not an image")
    enc = BankEncoder()
    return {"gen": save_stylegan2(tmp_path / "gen.safetensors", gen),
            "pixar": domain.save(tmp_path / "pixar.safetensors"),
            "enc": save_checkpoint(tmp_path / "bank.safetensors", enc.state_dict(), kind="encoder",
                                   plugin=enc.name, config=enc.config()),
            "photos": photos, "offsets": {int(k): v.detach() for k, v in domain.offsets.items()}}


@pytest.mark.slow  # the analyze CLI end to end (~2 s)
def test_cli_recovers_a_known_per_layer_alpha_and_eq5(files: dict[str, Path], gen: Any,
                                                       tmp_path: Path, registered: None,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from stylebridge.cli.main import main

    base, step = 1.5, 0.25
    out = tmp_path / "out"
    rc = main(["analyze", "latents", "--encoder", f"test-analyze-bank:base={base},step={step}",
               "--generator", str(files["gen"]), "--images", str(files["photos"]),
               "--samples", str(N_IMAGES), "--domain", str(files["pixar"]), "--per-layer",
               "--no-align", "--batch", "4", "--device", "cpu", "--out", str(out)])
    assert rc == 3  # broken.png skipped, the rest analysed
    assert "6 done, 1 skipped" in capsys.readouterr().out
    data = json.loads((out / "latents.json").read_text())
    assert [s["file"] for s in data["skipped"]] == [str(files["photos"] / "broken.png")]
    assert data["meta"]["n_images"] == N_IMAGES and data["meta"]["samples"] == N_IMAGES
    layers = gen.style_layers()
    assert [r["index"] for r in data["layers"]] == list(range(gen.n_style_layers))
    for row, layer in zip(data["layers"], layers, strict=True):
        assert row["name"] == layer.name
        assert row["alpha"] == pytest.approx(base + step * layer.latent_index, rel=1e-4)
        assert row["r2"] == pytest.approx(1.0, abs=1e-4)
        expected = "calibrated" if abs(row["alpha"] - 1) <= 0.1 else "scaled"
        assert row["pattern"] == expected
    # random weights (the encoder has no checkpoint) are labelled
    assert data["meta"]["random_weights"] is True
    assert data["meta"]["random_inputs"] == {"encoder": True, "generator": False, "domains": False}
    md = (out / "latents.md").read_text()
    assert "RANDOM WEIGHTS" in md
    for layer in layers:
        assert f"| {layer.index} | {layer.name} |" in md

    # Eq. 5 by hand: s_orig from the same z, s_enc = α_i · s_orig, s' = s + Δ
    with torch.no_grad():
        z = torch.randn(N_IMAGES, SD, generator=torch.Generator().manual_seed(0))
        s_orig = gen.styles(gen.make_wplus(z))
    dom = data["domains"]["pixar"]
    assert dom["method"] == "stylespace" and dom["weight_offsets_excluded"] is False
    assert [r["index"] for r in dom["layers"]] == list(range(gen.n_style_layers))
    for row, layer in zip(dom["layers"], layers, strict=True):
        if layer.is_rgb:  # StyleSpace has no ToRGB offsets: s' = s
            assert (row["orig_cos"], row["enc_cos"], row["adaptability"]) == pytest.approx(
                (1, 1, 0), abs=1e-9)
            continue
        s, d = s_orig[layer.index], files["offsets"][layer.index]
        a = base + step * layer.latent_index
        o, e = _cos(s, s + d).mean().item(), _cos(a * s, a * s + d).mean().item()
        assert row["orig_cos"] == pytest.approx(o, abs=1e-5)
        assert row["enc_cos"] == pytest.approx(e, abs=1e-5)
        assert row["adaptability"] == pytest.approx(e - o, abs=1e-5)
        assert row["adaptability_dot"] == pytest.approx(
            ((a * s) * (a * s + d)).sum(1).mean().item() - (s * (s + d)).sum(1).mean().item(),
            rel=1e-4)
    # one panel per layer: 11 layers → 6 × 2 grid of 300 × 300 px panels (+ title band);
    # a plot of random weights keeps its notice in the file, as a picture does (`info`)
    notice = "RANDOM WEIGHTS: computed with untrained (random) weights, not real statistics"
    with Image.open(out / "latents.png") as im:
        assert im.size == (6 * 300, 2 * 300 + 80)
        assert im.text["stylebridge-notice"] == notice
    with Image.open(out / "layers" / "layer_00.png") as im:
        assert im.text["stylebridge-notice"] == notice
    # how it was made besides the options: the generator's content, the versions, the folder
    meta = data["meta"]
    assert meta["generator_sha256"] == hashlib.sha256(files["gen"].read_bytes()).hexdigest()
    assert meta["aligned"] is False and meta["align_size"] is None
    assert set(meta["software"]) == {"stylebridge", "torch", "python"}
    assert meta["cwd"] == os.getcwd()
    assert sorted(p.name for p in (out / "layers").iterdir()) == [
        f"layer_{i:02d}.png" for i in range(gen.n_style_layers)]


def test_cli_matching_encoder_is_calibrated_on_conv_layers(files: dict[str, Path], gen: Any,
                                                           tmp_path: Path,
                                                           registered: None) -> None:
    from stylebridge.cli.main import main

    photos = files["photos"]
    (photos / "broken.png").unlink()
    out = tmp_path / "out"
    rc = main(["analyze", "latents", "-e", f"test-analyze-bank:{files['enc']}",
               "-g", str(files["gen"]), "--images", str(photos), "--samples", str(N_IMAGES),
               "-d", f"stylespace:{files['pixar']}", "--layers", "conv", "--no-align",
               "--device", "cpu", "--out", str(out)])
    assert rc == 0
    data = json.loads((out / "latents.json").read_text())
    convs = gen.conv_style_indices()
    assert [r["index"] for r in data["layers"]] == convs
    assert [r["conv_index"] for r in data["layers"]] == list(range(len(convs)))
    for row in data["layers"]:  # same z, same styles: α = 1, the "well-calibrated" pattern
        assert row["alpha"] == pytest.approx(1.0, abs=1e-5)
        assert row["pattern"] == "calibrated"
    assert data["patterns"]["calibrated"] == convs
    for row in data["domains"]["pixar"]["layers"]:  # identical latents: Eq. 5 is 0
        assert row["adaptability"] == pytest.approx(0.0, abs=1e-6)
        assert row["orig_cos"] < 1.0  # the domain does change these layers
    assert data["meta"]["random_weights"] is False
    assert "RANDOM WEIGHTS" not in (out / "latents.md").read_text()
    assert (out / "latents.png").is_file() and not (out / "layers").exists()


@pytest.mark.slow  # the analyze CLI twice, end to end (~3 s)
def test_cli_two_encoders_side_by_side(files: dict[str, Path], gen: Any, tmp_path: Path,
                                       registered: None) -> None:
    """Repeated --encoder: per-encoder reports in subfolders and one comparison (Fig. 4.10)."""
    from stylebridge.cli.main import main

    (files["photos"] / "broken.png").unlink()
    out = tmp_path / "out"
    rc = main(["analyze", "latents", "-e", "test-analyze-bank:base=1.5,step=0.25",
               "-e", f"test-analyze-bank:{files['enc']}", "-g", str(files["gen"]),
               "--images", str(files["photos"]), "--samples", str(N_IMAGES),
               "-d", str(files["pixar"]), "--no-align", "--device", "cpu", "--out", str(out)])
    assert rc == 0
    a, b = "test-analyze-bank", "test-analyze-bank-2"
    comparison = json.loads((out / "latents.json").read_text())
    assert comparison["encoders"] == [a, b]
    assert comparison["meta"]["random_parts"] == [f"encoder {a}"]   # b has a checkpoint
    single = {e: json.loads((out / e / "latents.json").read_text()) for e in (a, b)}
    assert single[a]["meta"]["random_weights"] and not single[b]["meta"]["random_weights"]
    # which encoder files were compared, by content (the specs alone named them)
    enc_sha = hashlib.sha256(files["enc"].read_bytes()).hexdigest()
    assert comparison["meta"]["encoder_files"][a] is None  # random weights: no file
    assert comparison["meta"]["encoder_files"][b]["sha256"] == enc_sha
    assert single[b]["meta"]["encoder_file"]["sha256"] == enc_sha
    layers = gen.style_layers()
    for row, layer in zip(comparison["layers"], layers, strict=True):
        assert row["encoders"][a]["alpha"] == pytest.approx(1.5 + 0.25 * layer.latent_index,
                                                            rel=1e-4)
        assert row["encoders"][b]["alpha"] == pytest.approx(1.0, abs=1e-5)
        assert row["encoders"][b]["pattern"] == "calibrated"
    for k, row in enumerate(comparison["domains"]["pixar"]["layers"]):
        for e in (a, b):  # the same numbers as the encoder's own report
            own = single[e]["domains"]["pixar"]["layers"][k]
            assert row["orig_cos"] == own["orig_cos"]
            assert row["encoders"][e]["adaptability"] == own["adaptability"]
        assert row["encoders"][b]["adaptability"] == pytest.approx(0.0, abs=1e-6)
    md = (out / "latents.md").read_text()
    assert "RANDOM WEIGHTS" in md and f"| stoch_sim | {a}_sim | {b}_sim |" in md
    # Eq. 5 has one name, the JSON's (Fig. 4.10's <encoder>_diff only in the legend), and
    # its ideal value 0, as α's is 1 (Fig. 4.9's y = x)
    assert f"| adaptability →0 {a} | adaptability →0 {b} |" in md and "_diff |" not in md
    assert f"| α →1 {a} | pattern {a} |" in md
    assert comparison["quantities"]["adaptability"]["better"] == "0"
    assert single[a]["quantities"]["alpha"]["better"] == "1"
    assert single[a]["quantities"]["corr_r2"]["range"] == [0.0, 1.0]
    with Image.open(out / "latents.png") as im:
        assert im.size == (6 * 300, 2 * 300 + 80)


@pytest.mark.slow  # three analyze runs (~8 s)
def test_cli_latents_resume_keeps_the_finished_encoders(files: dict[str, Path], gen: Any,
                                                        tmp_path: Path, registered: None,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    """Killed while the second encoder reads the photos: --resume keeps the first encoder's
    statistics and writes what an uninterrupted run writes."""
    from stylebridge.cli.main import main

    def argv(out: Path, *extra: str) -> list[str]:
        return ["analyze", "latents", "-e", "test-analyze-bank:base=1.5,step=0.25",
                "-e", f"test-analyze-bank:{files['enc']}", "-g", str(files["gen"]),
                "--images", str(files["photos"]), "--samples", str(N_IMAGES), "--batch", "2",
                "-d", str(files["pixar"]), "--no-align", "--device", "cpu", "--out", str(out),
                *extra]

    ref, out = tmp_path / "ref", tmp_path / "out"
    assert main(argv(ref)) == 3  # broken.png
    real, calls = BankEncoder.encode, [0]

    def encode(self: Any, images: Tensor) -> Inversion:
        calls[0] += 1
        if calls[0] == 5:  # 3 batches of the first encoder, then the second one's second
            raise KeyboardInterrupt
        return real(self, images)

    with monkeypatch.context() as m:
        m.setattr(BankEncoder, "encode", encode)
        assert main(argv(out)) == 130
    assert "continue with `stylebridge analyze latents ... --resume`" in " ".join(
        capsys.readouterr().err.split())
    calls[0] = 0
    with monkeypatch.context() as m:
        m.setattr(BankEncoder, "encode", lambda self, images: (calls.__setitem__(
            0, calls[0] + 1), real(self, images))[1])
        assert main(argv(out, "--resume")) == 3
    assert calls[0] == 3  # the second encoder only
    said = " ".join(capsys.readouterr().err.split())  # a note: on stderr
    assert "encoder test-analyze-bank: kept from the interrupted run" in said
    for name in ("latents.json", "latents.md", "test-analyze-bank/latents.json",
                 "test-analyze-bank-2/latents.json"):
        assert (out / name).read_text() == (ref / name).read_text(), name
