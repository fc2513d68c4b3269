"""``analyze``: the FSE feature-norm / generator-shift ratio and Fig. 4.9 with two encoders
(issue 16, missing pieces)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from conftest import one_torch_thread, tiny_generator

from stylebridge.core.interfaces import Inversion
from stylebridge.pipelines.analyze import build_report, layer_refs, plot_comparison
from stylebridge.pipelines.analyze.shift import shift_norms
from stylebridge.plugins.domains.stylespace import StyleSpace


def _desc(gen) -> dict:
    return {"size": gen.size, "style_dim": gen.style_dim,
            "channels": {str(r): c for r, c in gen.cfg.channels.items()}}


@pytest.fixture(scope="module")
def gen():
    return tiny_generator(seed=0, size=32, style_dim=32)


def _activation(gen, styles, k: int) -> torch.Tensor:
    """Activation k recorded on the way through the full synthesis (a pass-through modifier),
    not through ``features_upto`` which the code under test uses."""
    seen = []

    def record(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.clone())
        return x

    with torch.no_grad():
        gen.synthesis(styles, randomize_noise=False, modifiers={k: record})
    return seen[0]


def test_norm_ratio_equals_the_hand_computed_one(gen) -> None:
    k = 3
    domain = StyleSpace(**_desc(gen))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in domain.offsets.values():
            p.copy_(0.05 * torch.randn(p.shape, generator=g))
    w_plus = torch.randn(3, gen.n_latent, gen.style_dim, generator=g)
    feature = torch.randn(3, *gen.feature_shapes()[k], generator=g)
    inversion = Inversion(w_plus=w_plus, features={k: feature})

    result = shift_norms(gen, [inversion], {"pixar": domain})["pixar"]

    with torch.no_grad():
        source = gen.styles(w_plus)
        adapted = [s.clone() for s in source]
        for key, delta in domain.offsets.items():  # StyleSpace: s + Δ, by hand
            adapted[int(key)] = adapted[int(key)] + delta.view(1, -1)
    shift = (_activation(gen, adapted, k) - _activation(gen, source, k)).flatten(1)
    f_norms = feature.flatten(1).double().norm(dim=1)
    s_norms = shift.double().norm(dim=1)
    assert result["n"] == 3
    assert result["feature_norm"] == pytest.approx(float(f_norms.mean()), rel=1e-9)
    assert result["shift_norm"] == pytest.approx(float(s_norms.mean()), rel=1e-5)
    assert result["ratio"] == pytest.approx(float(f_norms.mean() / s_norms.mean()), rel=1e-5)
    assert result["ratio_median"] == pytest.approx(float((f_norms / s_norms).median()), rel=1e-5)
    # offsets on layers after K leave activation K alone: no shift, no ratio
    late = StyleSpace(**_desc(gen))
    with torch.no_grad():
        for key, p in late.offsets.items():
            p.fill_(0.0 if int(key) <= k else 1.0)
    none = shift_norms(gen, [inversion], {"late": late})["late"]
    assert none["shift_norm"] == 0.0 and none["ratio"] is None


@pytest.mark.slow  # the tiny preset and the CLI (~3 s)
def test_cli_shift_norms_on_the_tiny_preset(tmp_path: Path, capsys) -> None:
    from stylebridge.cli.main import main
    from stylebridge.pipelines.presets import build_tiny_preset

    with one_torch_thread():
        preset = build_tiny_preset(tmp_path / "preset")
        domains = sorted(preset.domains.glob("*.safetensors"))
        out = tmp_path / "out"
        code = main(["analyze", "shift-norms", "-e", f"fse:{preset.fse}", "-g",
                     str(preset.generator), "--images", str(preset.images), "-d", str(domains[0]),
                     "-d", str(domains[1]), "--no-align", "--device", "cpu", "--out", str(out)])
    text, notices = capsys.readouterr()
    assert code == 0, text
    assert "RANDOM WEIGHTS" in notices and "ratio" in text  # the notice on stderr
    data = json.loads((out / "shift_norms.json").read_text())
    assert data["random_weights"] and data["layer"] == 3 and data["n_images"] == 3
    assert set(data["domains"]) == {d.stem for d in domains}
    early, late = data["domains"]["tiny-pixar"], data["domains"]["tiny-sketch"]
    # tiny-pixar offsets the first 3 style layers (before K), tiny-sketch the last 3 (after)
    assert early["feature_norm"] > 0 and early["shift_norm"] > 0
    assert early["ratio"] == pytest.approx(early["feature_norm"] / early["shift_norm"])
    assert late["shift_norm"] == 0.0 and late["ratio"] is None
    # what else its numbers depend on: aligned or not (1.30 vs 1.73 on one photo), the files
    # by content, the versions
    assert data["aligned"] is False and data["align_size"] is None
    assert data["generator_sha256"] == hashlib.sha256(preset.generator.read_bytes()).hexdigest()
    assert data["encoder_file"]["sha256"] == hashlib.sha256(preset.fse.read_bytes()).hexdigest()
    assert set(data["domain_files"]) == {d.stem for d in domains}
    assert set(data["software"]) == {"stylebridge", "torch", "python"}
    assert "| domain |" in (out / "shift_norms.md").read_text()
    # an encoder without F (e4e, FSE in latents mode) is said naming --encoder, before a photo
    # is read
    for spec in (f"e4e:{preset.e4e}", f"fse:{preset.fse}:mode=latents"):
        code = main(["analyze", "shift-norms", "-e", spec, "-g", str(preset.generator),
                     "--images", str(preset.images), "-d", str(domains[0]), "--no-align",
                     "--device", "cpu", "--out", str(tmp_path / "no-f")])
        err = " ".join(capsys.readouterr().err.split())
        assert code == 2 and err.endswith(f"error: --encoder {spec}: predicts no feature map F "
                                          "(use FSE with mode=features or mode=shift)")
        assert not (tmp_path / "no-f" / "shift_norms.json").exists()


def test_two_encoders_appear_in_one_fig_4_9_plot(gen) -> None:
    """Fig. 4.9 side by side: every panel holds one scatter per encoder, at exactly that
    encoder's (mapping mean, encoder mean) points, and the legend names both."""
    pytest.importorskip("matplotlib")
    refs = layer_refs(gen)
    g = torch.Generator().manual_seed(0)
    source = [torch.randn(layer.channels, generator=g) for layer in refs]
    e4e = [2.0 * s for s in source]
    fse = [0.5 * s + 0.1 for s in source]
    results = {"e4e": build_report(source, e4e, refs), "fse": build_report(source, fse, refs)}
    fig = plot_comparison(source, {"e4e": e4e, "fse": fse}, results, {"random_weights": False})
    panels = [ax for ax in fig.axes if ax.collections]
    assert len(panels) == len(refs)
    for ax, ref in zip(panels, refs, strict=True):
        scatters = {c.get_label(): c.get_offsets() for c in ax.collections}
        assert set(scatters) == {"e4e", "fse"}
        i = ref.index
        for name, means in (("e4e", e4e), ("fse", fse)):
            pts = torch.as_tensor(scatters[name].data if hasattr(scatters[name], "data")
                                  else scatters[name], dtype=torch.float64)
            want = torch.stack([source[i].double(), means[i].double()], dim=1)
            torch.testing.assert_close(pts, want)
    legend = panels[0].get_legend()
    assert legend is not None and {t.get_text() for t in legend.get_texts()} >= {"e4e", "fse"}
    assert "e4e, fse" in fig.get_suptitle()


@pytest.mark.parametrize("value", ["2", "-0.5"])
def test_r2_min_outside_0_1_is_refused(value: str, tmp_path: Path, capsys) -> None:
    # r² is in [0, 1]: --r2-min 2 classified every layer "independent" without a word
    from stylebridge.cli.main import main

    code = main(["analyze", "latents", "-e", "e4e:e4e.safetensors", "-g", "g.safetensors",
                 "--images", str(tmp_path), "--r2-min", value, "--out", str(tmp_path / "o")])
    assert code == 2
    assert capsys.readouterr().err == (f"error: --r2-min {float(value)}: must be in [0, 1] (a "
                                       "squared correlation)\n")
