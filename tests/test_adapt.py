"""The Adapter pipeline and the ``adapt`` / ``calibrate`` commands, on a tiny generator and a
tiny test encoder (registered from this module for the CLI tests)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import random_stylespace, tiny_generator
from PIL import Image
from torch import Tensor, nn
from torch.testing import assert_close

from stylebridge.core.checkpoint import load_checkpoint, save_checkpoint
from stylebridge.core.images import from_generator_range, load_image
from stylebridge.core.interfaces import Encoder, Inversion, Preprocessing
from stylebridge.core.stylegan2.checkpoint import save_stylegan2
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.adapt import Adapter
from stylebridge.plugins.calibrators.alpha import AlphaCalibrator
from stylebridge.plugins.domains.affine import AffinePlus
from stylebridge.plugins.domains.base import DomainMismatchError
from stylebridge.plugins.domains.stylespace import StyleSpace
from stylebridge.registry import hookimpl

SIZE, SD, N_LATENT = 32, 32, 8


class TinyEncoder(Encoder):
    """Pools the image to 2×2 and maps it linearly to w+ (counts the images it encodes)."""

    name = "test-adapt-tiny"
    images_seen = 0

    def __init__(self, n_latent: int = N_LATENT, style_dim: int = SD, seed: int = 0) -> None:
        super().__init__()
        self._config = {"n_latent": n_latent, "style_dim": style_dim, "seed": seed}
        self.preprocessing = Preprocessing(size=16)
        self.head = nn.Linear(12, n_latent * style_dim)
        with torch.no_grad():
            g = torch.Generator().manual_seed(seed)
            self.head.weight.copy_(torch.randn(self.head.weight.shape, generator=g))
            self.head.bias.copy_(torch.randn(self.head.bias.shape, generator=g))
        self.n_latent, self.style_dim = n_latent, style_dim

    def config(self) -> dict[str, Any]:
        return dict(self._config)

    def encode(self, images: Tensor) -> Inversion:
        TinyEncoder.images_seen += int(images.shape[0])
        x = nn.functional.adaptive_avg_pool2d(self.preprocessing(images), 2).flatten(1)
        return Inversion(w_plus=self.head(x).view(-1, self.n_latent, self.style_dim))


@hookimpl
def register_encoders(register: Any) -> None:
    register(TinyEncoder)


def _desc(gen: Any) -> dict[str, Any]:
    return {"size": gen.size, "style_dim": gen.style_dim,
            "channels": {str(r): c for r, c in gen.cfg.channels.items()}}


def _domain(gen: Any, seed: int, scale: float = 1.0) -> StyleSpace:
    return random_stylespace(gen, seed, scale)


@pytest.fixture(scope="module")
def gen() -> Any:
    return tiny_generator(seed=0, size=SIZE, style_dim=SD)


@pytest.fixture(scope="module")
def images() -> Tensor:
    return torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(5))


def _render_by_hand(gen: Any, w_plus: Tensor, offsets: dict[int, Tensor]) -> Tensor:
    styles = gen.styles(w_plus)
    for i, off in offsets.items():
        styles[i] = styles[i] + off
    return from_generator_range(gen.synthesis(styles, randomize_noise=False))


# ---------------------------------------------------------------------------------------------
# Adapter


def test_all_zero_domain_reproduces_the_inversion_and_encodes_once(gen: Any,
                                                                   images: Tensor) -> None:
    zero = StyleSpace(**_desc(gen))
    adapter = Adapter(TinyEncoder(), gen, {"zero": zero, "a": _domain(gen, 1),
                                           "b": _domain(gen, 2)})
    TinyEncoder.images_seen = 0
    out = adapter.run(images)
    assert TinyEncoder.images_seen == 2 and adapter.encoded_images == 2  # once, not per domain
    assert set(out) == {"inversion", "zero", "a", "b"}
    assert torch.equal(out["zero"], out["inversion"])
    assert (out["a"] - out["inversion"]).abs().max() > 1e-3
    assert out["a"].shape == (2, 3, SIZE, SIZE) and 0 <= float(out["a"].min()) <= float(out["a"].max()) <= 1


def test_alpha_rescaling_and_skip_layers_by_hand(gen: Any, images: Tensor) -> None:
    domain = _domain(gen, 3, scale=0.5)
    i = 5  # convs.2 conv
    n = gen.n_style_layers
    means = [torch.linspace(0.5, 1.5, layer.channels) for layer in gen.style_layers()]
    alphas = [2.0 if k == i else 1.0 for k in range(n)]
    calib = AlphaCalibrator.from_style_means(means, [a * m for a, m in zip(alphas, means,
                                                                         strict=True)])
    adapter = Adapter(TinyEncoder(), gen, [domain], calibrator=calib)
    expected_scale = torch.ones(n)
    expected_scale[i] = 0.5
    assert_close(adapter.offset_scale, expected_scale, atol=1e-6, rtol=0)
    with torch.no_grad():
        inv = adapter.encode(images)
        got = adapter.render(inv)["stylespace"]
        styles = domain.styles(gen, inv.w_plus, adapter.offset_scale)
        src = gen.styles(inv.w_plus)
        offsets = {int(k): v.detach() for k, v in domain.offsets.items()}
        # α = 2 on layer i: s_i = source + offset / 2; other layers: source + offset
        assert_close(styles[i], src[i] + offsets[i] / 2, atol=1e-6, rtol=0)
        assert_close(styles[8], src[8] + offsets[8], atol=1e-6, rtol=0)
        by_hand = {k: (v / 2 if k == i else v) for k, v in offsets.items()}
        assert_close(got, _render_by_hand(gen, inv.w_plus, by_hand), atol=1e-5, rtol=0)

        # skip layers (no calibrator): offsets of layers 0 and i are switched off
        skipped = Adapter(TinyEncoder(), gen, [domain], skip_layers="0,5")
        assert skipped.offset_scale is not None
        assert skipped.offset_scale[[0, 5]].tolist() == [0.0, 0.0]
        got = skipped.render(inv)["stylespace"]
        by_hand = {k: v for k, v in offsets.items() if k not in (0, 5)}
        assert_close(got, _render_by_hand(gen, inv.w_plus, by_hand), atol=1e-5, rtol=0)
        # skip layers on top of the calibrator
        both = Adapter(TinyEncoder(), gen, [domain], calibrator=calib, skip_layers=[0])
        assert both.offset_scale is not None
        assert both.offset_scale[[0, 5, 8]].tolist() == [0.0, 0.5, 1.0]


def test_strength_scales_each_domain_change_by_hand(gen: Any, images: Tensor) -> None:
    """StyleSpace at strength k is s + k·Δs (times alpha and skip scales); 0 is the
    inversion to the bit, 1 is the default output to the bit; names say the strength."""
    domain = _domain(gen, 4, scale=0.5)
    plain = Adapter(TinyEncoder(), gen, {"pixar": domain})
    swept = Adapter(TinyEncoder(), gen, {"pixar": domain}, strength=(0.0, 0.5, 1.0, -1.5))
    assert list(swept.outputs) == ["pixar@0", "pixar@0.5", "pixar", "pixar@-1.5"]
    assert swept.outputs["pixar@0.5"] == ("pixar", 0.5)
    with torch.no_grad():
        inv = plain.encode(images)
        base = plain.render(inv)
        out = swept.render(inv)
        offsets = {int(k): v.detach() for k, v in domain.offsets.items()}
        for key, k in (("pixar@0.5", 0.5), ("pixar@-1.5", -1.5)):
            by_hand = {i: k * v for i, v in offsets.items()}
            assert_close(out[key], _render_by_hand(gen, inv.w_plus, by_hand), atol=1e-5, rtol=0)
    assert torch.equal(out["pixar@0"], base["inversion"])
    assert torch.equal(out["pixar"], base["pixar"])
    # on top of skip layers: a skipped layer stays off at any strength
    skipped = Adapter(TinyEncoder(), gen, {"pixar": domain}, skip_layers="0", strength=2.0)
    assert list(skipped.outputs) == ["pixar@2"]
    scale = skipped.scale_at(2.0)
    assert scale is not None and scale[0] == 0 and bool((scale[1:] == 2).all())
    # a domain whose name looks like another's strength gets an output of its own
    clash = Adapter(TinyEncoder(), gen, {"pixar": domain, "pixar@0.5": domain},
                    strength=(0.5, 1.0))
    assert list(clash.outputs) == ["pixar@0.5", "pixar", "pixar@0.5@0.5", "pixar@0.5-2"]
    assert clash.outputs["pixar@0.5-2"] == ("pixar@0.5", 1.0)
    for bad, message in ((float("nan"), "finite"), (11.0, "finite number in"),
                         ((1.0, 1.0), "given twice"), ((), "at least one")):
        with pytest.raises(StylebridgeError, match=message):
            Adapter(TinyEncoder(), gen, {"pixar": domain}, strength=bad)


def test_skip_layers_also_switch_off_affine_plus_and_its_weight_offsets(gen: Any,
                                                                        images: Tensor) -> None:
    i = 6
    method = AffinePlus(**_desc(gen), weight_offset_layers=[i]).init_from(gen)
    with torch.no_grad():
        method.affine_weight[str(i)].mul_(3.0)
        method.weight_offsets[str(i)].normal_(generator=torch.Generator().manual_seed(1))
        plain = Adapter(TinyEncoder(), gen, [method])
        skipped = Adapter(TinyEncoder(), gen, [method], skip_layers=[i])
        inv = plain.encode(images)
        changed = plain.render(inv)
        restored = skipped.render(inv)
    assert (changed["affine_plus"] - changed["inversion"]).abs().max() > 1e-3
    assert torch.equal(restored["affine_plus"], restored["inversion"])


def test_domain_for_another_generator_is_refused(gen: Any) -> None:
    other = tiny_generator(seed=1, size=64, style_dim=SD)
    domain = _domain(other, 4)
    domain.label = "pixar.safetensors"
    with pytest.raises(DomainMismatchError) as exc:
        Adapter(TinyEncoder(), gen, [domain])
    assert str(exc.value) == ("domain pixar.safetensors was trained for a 64px generator "
                              "(14 style layers), this generator is 32px (11)")


# ---------------------------------------------------------------------------------------------
# CLI


@pytest.fixture
def files(tmp_path: Path, gen: Any) -> dict[str, Path]:
    enc = TinyEncoder()
    out = {
        "gen": save_stylegan2(tmp_path / "gen.safetensors", gen),
        "enc": save_checkpoint(tmp_path / "enc.safetensors", enc.state_dict(), kind="encoder",
                               plugin=enc.name, config=enc.config()),
        "pixar": _domain(gen, 7).save(tmp_path / "pixar.safetensors"),
        "zero": StyleSpace(**_desc(gen)).save(tmp_path / "zero.safetensors"),
        "big": _domain(tiny_generator(seed=2, size=64, style_dim=SD), 1).save(
            tmp_path / "big.safetensors"),
    }
    photos = tmp_path / "photos"
    photos.mkdir()
    g = np.random.default_rng(0)
    for name in ("a", "b", "c"):
        Image.fromarray(g.integers(0, 256, (24, 20, 3), dtype=np.uint8)).save(photos / f"{name}.png")
    (photos / "broken.png").write_bytes(b"not an image")
    out["photos"] = photos
    return out


def test_cli_adapt_writes_images_grid_and_report(files: dict[str, Path], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 registered: None) -> None:
    from stylebridge.cli.main import main

    out = tmp_path / "out"
    TinyEncoder.images_seen = 0
    rc = main(["adapt", "--encoder", f"test-adapt-tiny:{files['enc']}", "--generator",
               str(files["gen"]), "--method", str(files["pixar"]), "--method",
               f"stylespace:{files['zero']}", "--no-align", "--batch", "2", "--device", "cpu",
               str(files["photos"]), "--out", str(out)])
    assert rc == 3  # broken.png skipped, the rest written
    assert TinyEncoder.images_seen == 3  # each photo encoded once for both domains
    for stem in ("a", "b", "c"):
        for key in ("inversion", "pixar", "zero"):
            assert (out / f"{stem}_{key}.png").is_file()
        assert torch.equal(load_image(out / f"{stem}_zero.png"),
                           load_image(out / f"{stem}_inversion.png"))
        assert not torch.equal(load_image(out / f"{stem}_pixar.png"),
                               load_image(out / f"{stem}_inversion.png"))
    grid = load_image(out / "grid.png")
    # input | inversion | pixar | zero, after a column naming each row's photo; small tiles
    # are enlarged to 128 px so the labels are readable
    assert 8 <= grid.shape[-1] - (4 * 128 + 5 * 2) <= 170
    report = json.loads((out / "adapt.json").read_text())
    assert [s["file"] for s in report["skipped"]] == [str(files["photos"] / "broken.png")]
    assert report["offset_scale"] is None and list(report["domains"]) == ["pixar", "zero"]
    assert "3 done, 1 skipped" in capsys.readouterr().out
    # mse/psnr are built-in metrics: metrics.json (input vs inversion) is always written
    written = json.loads((out / "metrics.json").read_text())
    metrics = written["input_vs_inversion"]
    assert metrics["mse"] > 0 and metrics["psnr"] == pytest.approx(
        -10 * np.log10(metrics["mse"]), rel=0.2)
    # each domain against the input too: "zero" renders the inversion exactly, pixar does not
    domains = written["input_vs_domain"]
    assert domains["zero"] == metrics and domains["pixar"]["mse"] != metrics["mse"]
    assert written["metrics"] == ["mse", "psnr"]
    # per photo (the skipped one has none); the means are the means of these values
    per_photo = written["per_photo"]
    assert list(per_photo) == [str(files["photos"] / f"{s}.png") for s in ("a", "b", "c")]
    for output, mean in (("inversion", metrics), *domains.items()):
        for key in ("mse", "psnr"):
            values = [photo[output][key] for photo in per_photo.values()]
            assert float(np.mean(values)) == pytest.approx(mean[key], rel=1e-9)
    assert all(photo["zero"] == photo["inversion"] for photo in per_photo.values())
    assert len({photo["inversion"]["mse"] for photo in per_photo.values()}) == 3


def test_cli_adapt_metrics_are_chosen_like_evals(files: dict[str, Path], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 registered: None) -> None:
    from stylebridge.cli.main import main

    base = ["adapt", "-e", f"test-adapt-tiny:{files['enc']}", "-g", str(files["gen"]),
            "-m", str(files["pixar"]), "-m", f"stylespace:{files['zero']}", "--no-align",
            "--device", "cpu", str(files["photos"])]
    out = tmp_path / "out"
    assert main([*base, "--metric", "ssim", "--metric", "id:backend=dlib", "--out",
                 str(out)]) == 3
    text = " ".join(capsys.readouterr().out.split())
    assert "input vs inversion and each domain" in text and "id[dlib]" in text
    written = json.loads((out / "metrics.json").read_text())
    assert set(written["input_vs_inversion"]) == {"ssim", "id[dlib]"}
    assert written["input_vs_domain"]["zero"] == written["input_vs_inversion"]
    assert written["input_vs_domain"]["pixar"]["ssim"] != written["input_vs_inversion"]["ssim"]
    # random 24x20 pictures hold no face: said once, not once per output, for which, and
    # by which metric
    assert written["notes"] == [
        "id: no face was detected in 6 image(s); the whole image was taken as the face box, "
        "id:detect=hog leaves them out (each output)"]
    assert main([*base, "--metric", "fid", "--out", str(tmp_path / "fid")]) == 2
    assert capsys.readouterr().err.startswith("error: --metric fid: it compares sets of images")
    assert not (tmp_path / "fid").exists()


def test_cli_adapt_strength_sweep(files: dict[str, Path], tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str], registered: None) -> None:
    from stylebridge.cli.main import main

    base = ["adapt", "-e", f"test-adapt-tiny:{files['enc']}", "-g", str(files["gen"]),
            "-m", str(files["pixar"]), "--no-align", "--device", "cpu", str(files["photos"])]
    out = tmp_path / "out"
    assert main([*base, "--strength", "0,1,1.5", "--out", str(out)]) == 3  # broken.png skipped
    text = " ".join(capsys.readouterr().out.split())
    assert "pixar@1.5" in text and "pixar@0 " in text
    stem = sorted(files["photos"].glob("*.png"))[0].stem
    for key in ("inversion", "pixar@0", "pixar", "pixar@1.5"):
        assert (out / f"{stem}_{key}.png").is_file()
    assert torch.equal(load_image(out / f"{stem}_pixar@0.png"),
                       load_image(out / f"{stem}_inversion.png"))
    summary = json.loads((out / "adapt.json").read_text())
    assert summary["strength"] == [0.0, 1.0, 1.5] and list(summary["domains"]) == ["pixar"]
    per_domain = json.loads((out / "metrics.json").read_text())["input_vs_domain"]
    assert list(per_domain) == ["pixar@0", "pixar", "pixar@1.5"]
    assert per_domain["pixar@0"] == json.loads((out / "metrics.json").read_text())[
        "input_vs_inversion"]
    grid = load_image(out / "grid.png")
    assert 8 <= grid.shape[-1] - (5 * 128 + 6 * 2) <= 170  # names | input | inversion | 3
    for bad, message in (("1,1", "given twice"), ("20", "finite number in")):
        assert main([*base, "--strength", bad, "--out", str(tmp_path / "bad")]) == 2
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: a usage error, one line
        main([*base, "--strength", "0.5,a", "--out", str(tmp_path / "bad")])
    assert capsys.readouterr().err == ("error: --strength: expected a number, got 'a' (see "
                                       "stylebridge adapt --help)\n")
    assert not (tmp_path / "bad").exists()


def test_cli_adapt_save_latents_render_later_without_the_encoder(
        files: dict[str, Path], tmp_path: Path, registered: None) -> None:
    """`--save-latents` writes the encoder's inversion; loaded back, the Adapter renders the
    same domain picture from it (to the PNG's 8 bits) without encoding anything."""
    from stylebridge.cli.main import main
    from stylebridge.pipelines.inversion_file import load_inversion

    out = tmp_path / "out"
    assert main(["adapt", "-e", f"test-adapt-tiny:{files['enc']}", "-g", str(files["gen"]),
                 "-m", str(files["pixar"]), "--no-align", "--device", "cpu", "--save-latents",
                 str(files["photos"]), "--out", str(out)]) == 3  # broken.png skipped
    stem = sorted(files["photos"].glob("*.png"))[0].stem
    inversion, header = load_inversion(out / f"{stem}_inversion.safetensors")
    assert header.plugin == "test-adapt-tiny" and inversion.w_plus.shape == (1, N_LATENT, SD)
    assert header.extra["source"] == str(files["photos"] / f"{stem}.png")
    summary = json.loads((out / "adapt.json").read_text())
    assert summary["outputs"][header.extra["source"]]["latents"] == f"{stem}_inversion.safetensors"
    from stylebridge.registry.resolve import load_domain, load_generator

    gen, _ = load_generator(str(files["gen"]), "cpu")
    TinyEncoder.images_seen = 0
    adapter = Adapter(TinyEncoder(), gen, {"pixar": load_domain(files["pixar"])})
    with torch.no_grad():
        images = adapter.render(inversion)
    assert TinyEncoder.images_seen == 0
    for key in ("inversion", "pixar"):
        written = load_image(out / f"{stem}_{key}.png")
        assert_close(written, torch.round(images[key][0] * 255) / 255, atol=1 / 255 + 1e-6,
                     rtol=0)


def test_cli_adapt_refuses_a_domain_of_another_generator(files: dict[str, Path], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str],
                                                         registered: None) -> None:
    from stylebridge.cli.main import main

    rc = main(["adapt", "-e", f"test-adapt-tiny:{files['enc']}", "-g", str(files["gen"]),
               "-m", str(files["big"]), "--no-align", "--device", "cpu", str(files["photos"]),
               "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err == ("error: domain big.safetensors was trained for a 64px generator "
                   "(14 style layers), this generator is 32px (11)")


def test_cli_calibrate_then_adapt_with_alpha(files: dict[str, Path], tmp_path: Path,
                                            gen: Any, registered: None) -> None:
    from stylebridge.cli.main import main

    stats = tmp_path / "alpha.safetensors"
    rc = main(["calibrate", "alpha", "-e", f"test-adapt-tiny:{files['enc']}", "-g",
               str(files["gen"]), "--images", str(files["photos"]), "--samples", "64",
               "--no-align", "--device", "cpu", "--out", str(stats)])
    assert rc == 3  # broken.png
    header, tensors = load_checkpoint(stats, kind="calibrator", plugin="alpha")
    assert header.extra["n_images"] == 3 and header.extra["samples"] == 64
    alpha = tensors["alpha"]
    assert alpha.shape == (gen.n_style_layers,)
    # by hand: through-origin least squares of the encoder's mean styles on the mapping's
    enc = TinyEncoder()
    photos = torch.stack([nn.functional.interpolate(load_image(files["photos"] / f"{s}.png")[None],
                                                    size=(16, 16), mode="bilinear",
                                                    align_corners=False, antialias=True)[0]
                          for s in ("a", "b", "c")])
    with torch.no_grad():
        enc_means = [s.mean(0) for s in gen.styles(enc.encode(photos).w_plus)]
    for i in (0, 5, 10):
        x, y = tensors[f"source_mean_{i}"], enc_means[i]
        assert_close(tensors[f"encoder_mean_{i}"], y, atol=1e-5, rtol=1e-5)
        assert_close(alpha[i], (x * y).sum() / (x * x).sum(), atol=1e-5, rtol=1e-4)

    out = tmp_path / "out"
    rc = main(["adapt", "-e", f"test-adapt-tiny:{files['enc']}", "-g", str(files["gen"]),
               "-m", str(files["pixar"]), "--calibrate", f"alpha:{stats}", "--skip-layers", "0",
               "--no-align", "--device", "cpu", str(files["photos"] / "a.png"), "--out", str(out)])
    assert rc == 0
    scale = json.loads((out / "adapt.json").read_text())["offset_scale"]
    ok = (alpha > 1e-3) & torch.isfinite(alpha)
    expected = torch.where(ok, 1 / alpha.clamp(min=1e-3), torch.zeros_like(alpha))
    expected[0] = 0.0
    assert_close(torch.tensor(scale), expected, atol=1e-5, rtol=1e-5)


def test_adapter_renders_domains_through_featureshift(tmp_path) -> None:
    """--featureshift: domains go through FeatureShift(F, Δ) with Δ from the guide's latents."""
    from test_featureshift import LAYER, ToyFSE, ToyGuide, ToyOffsets, _widths

    from stylebridge.core.images import from_generator_range
    from stylebridge.pipelines.adapt import Adapter
    from stylebridge.plugins.renderers import featureshift as fsr

    gen = tiny_generator(seed=0)
    method = ToyOffsets(_widths(gen), seed=3, strength=0.5)
    torch.manual_seed(0)
    model = fsr.FeatureShift(feature_channels=32, hidden=48, layer=LAYER).eval()
    encoder, guide = ToyFSE().eval(), ToyGuide().eval()
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    adapter = Adapter(encoder, gen, {"toy": method}, renderer=model, guide=guide)
    out = adapter.run(images)
    with torch.no_grad():
        expected = fsr.apply_featureshift(gen, model, encoder.encode(images),
                                         guide.encode(images).w_plus, method)
        plain = Adapter(encoder, gen, {"toy": method}).run(images)
    torch.testing.assert_close(out["toy"], from_generator_range(expected), atol=1e-6, rtol=0)
    torch.testing.assert_close(out["inversion"], plain["inversion"], atol=0, rtol=0)
    assert (out["toy"] - plain["toy"]).abs().max() > 1e-3
    # without a guide, the encoder's own latents guide (FeatureShift on FSE)
    own = Adapter(encoder, gen, {"toy": method}, renderer=model).run(images)
    with torch.no_grad():
        inv = encoder.encode(images)
        expected_own = fsr.apply_featureshift(gen, model, inv, inv.w_plus, method)
    torch.testing.assert_close(own["toy"], from_generator_range(expected_own), atol=1e-6, rtol=0)


# ---------------------------------------------------------------------------------------------
# Renderers


def test_featureshift_renderer_is_apply_featureshift() -> None:
    from test_featureshift import LAYER, ToyFSE, ToyGuide, ToyOffsets, _widths

    from stylebridge.core.interfaces import Renderer
    from stylebridge.core.synthesis import synthesize
    from stylebridge.errors import StylebridgeError
    from stylebridge.plugins.renderers import featureshift as fsr

    gen = tiny_generator(seed=0)
    method = ToyOffsets(_widths(gen), seed=3, strength=0.5)
    torch.manual_seed(0)
    model = fsr.FeatureShift(feature_channels=32, hidden=48, layer=LAYER).eval()
    assert isinstance(model, Renderer) and model.needs_guide
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    scale = torch.ones(gen.n_style_layers)
    scale[0] = 0.0
    with torch.no_grad():
        inv, guide = ToyFSE().eval().encode(images), ToyGuide().eval().encode(images).w_plus
        for offset_scale in (None, scale):
            got = model.render(gen, inv, method, offset_scale=offset_scale, guide=guide)
            want = fsr.apply_featureshift(gen, model, inv, guide, method,
                                          offset_scale=offset_scale)
            assert torch.equal(got, want)
        assert torch.equal(model.render(gen, inv, guide=guide), synthesize(gen, inv))
        with pytest.raises(StylebridgeError, match="guide"):
            model.render(gen, inv, method)
    # the renderer checks the generator when an Adapter is built
    wrong = fsr.FeatureShift(feature_channels=16, hidden=8, layer=LAYER)
    with pytest.raises(StylebridgeError, match="16-channel"):
        Adapter(ToyFSE(), gen, [method], renderer=wrong)


def test_adapter_renders_through_any_renderer(gen: Any, images: Tensor) -> None:
    """Adapter(renderer=...): the inversion and every domain go through the renderer, which
    gets the offset scales and (if it needs one) the guide's latents."""
    from stylebridge.core.interfaces import Renderer
    from stylebridge.core.synthesis import synthesize
    from stylebridge.errors import StylebridgeError

    calls: list[tuple[bool, Any, Any]] = []

    class Halved(Renderer):
        name = "test-halved"
        needs_guide = True

        def render(self, generator, inversion, method=None, *, offset_scale=None, guide=None):
            calls.append((method is not None, offset_scale, guide))
            return 0.5 * synthesize(generator, inversion, method=method,
                                    offset_scale=offset_scale)

    domain = _domain(gen, 1)
    adapter = Adapter(TinyEncoder(), gen, {"a": domain}, skip_layers=[0], renderer=Halved())
    out = adapter.run(images)
    with torch.no_grad():
        inv = adapter.encode(images)
        domain_image = synthesize(gen, inv, method=domain, offset_scale=adapter.offset_scale)
    assert_close(out["inversion"], from_generator_range(0.5 * synthesize(gen, inv)), atol=1e-6,
                 rtol=0)
    assert_close(out["a"], from_generator_range(0.5 * domain_image), atol=1e-6, rtol=0)
    assert [c[0] for c in calls[:2]] == [False, True]
    assert calls[1][1] is adapter.offset_scale and calls[1][1][0] == 0
    assert_close(calls[0][2], inv.w_plus, atol=0, rtol=0)  # no guide encoder: own latents
    # with a guide encoder, render() needs the guide's latents
    guided = Adapter(TinyEncoder(), gen, {"a": domain}, renderer=Halved(), guide=TinyEncoder())
    with pytest.raises(StylebridgeError, match="guide"):
        guided.render(inv)
    got = guided.render(inv, guide=guided.guide_latents(images, inv))
    assert_close(got["a"], guided.run(images)["a"], atol=1e-6, rtol=0)


def test_layers_the_calibrator_zeroes_are_reported_not_silent(gen: Any, images: Tensor) -> None:
    from stylebridge.plugins.calibrators.alpha import AlphaCalibrator

    widths = [layer.channels for layer in gen.style_layers()]
    src = [torch.ones(c) for c in widths]
    enc = [torch.full((c,), 2.0) for c in widths]
    enc[3] = torch.zeros(widths[3])            # α = 0 on style layer 3
    calib = AlphaCalibrator.from_style_means(src, enc)
    adapter = Adapter(TinyEncoder(), gen, [], calibrator=calib)
    assert adapter.calibrator_zeroed_layers == [3]
    assert adapter.offset_scale is not None and float(adapter.offset_scale[3]) == 0.0
    assert float(adapter.offset_scale[0]) == pytest.approx(0.5)
    assert Adapter(TinyEncoder(), gen, []).calibrator_zeroed_layers == []


def test_grouped_notes_name_the_rows_each_note_holds_for() -> None:
    from stylebridge.pipelines.output_metrics import grouped_notes

    notes = {"inversion": ["backend B", "no face in 1"],
             "pixar": ["backend B", "no face in 2", "no face in 2"],
             "sketch": ["backend B", "no face in 1"]}
    assert grouped_notes(notes) == ["backend B (each output)", "no face in 1 (inversion, sketch)",
                                    "no face in 2 (pixar)"]
    assert grouped_notes({"inversion": ["a", "b", "a"]}) == ["a", "b"]  # one row: no suffix
    assert grouped_notes({"inversion": [], "pixar": []}) == []


def test_adapter_takes_the_guide_its_featureshift_was_trained_with(tmp_path) -> None:
    """From Python, a FeatureShift trained with an e4e guide was run on the FSE latents unless
    the caller passed guide= (``adapt`` read the guide from the file): the Adapter now reads
    it too; guide=None still asks for the encoder's own latents."""
    import stylebridge
    from stylebridge.errors import StylebridgeError
    from stylebridge.pipelines.adapt import Adapter
    from stylebridge.pipelines.presets import build_tiny_preset
    from stylebridge.plugins.renderers.featureshift import load_featureshift, save_featureshift

    preset = build_tiny_preset(tmp_path / "preset", n_images=2)
    model, _ = load_featureshift(preset.featureshift_e4e)
    assert model.trained_guide == str(preset.e4e.resolve())  # recorded as build-dataset does

    def shifted(guide_spec: str) -> Path:
        path = tmp_path / f"fs_{len(list(tmp_path.glob('fs_*')))}.safetensors"
        return save_featureshift(path, model, extra={"sources": {"guide": guide_spec}})

    e4e_spec = f"e4e:{preset.e4e}"
    gen = stylebridge.create("generator", preset.generator)
    fse = stylebridge.create("encoder", f"fse:{preset.fse}")
    renderer = stylebridge.create("renderer", shifted(e4e_spec))
    assert renderer.trained_guide == e4e_spec
    assert load_featureshift(shifted(e4e_spec))[0].trained_guide == e4e_spec

    images = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    adapter = Adapter(fse, gen, {}, renderer=renderer)
    assert adapter.guide is not None and adapter.guide.name == "e4e"
    inversion = adapter.encode(images)
    e4e = stylebridge.create("encoder", e4e_spec)
    with torch.no_grad():
        expected = e4e.encode(torch.nn.functional.interpolate(images, size=32, mode="area"))
    got = adapter.guide_latents(torch.nn.functional.interpolate(images, size=32, mode="area"),
                                inversion)
    torch.testing.assert_close(got, expected.w_plus, atol=1e-6, rtol=0)
    # guide=None: the encoder's own latents, as asked
    own = Adapter(fse, gen, {}, renderer=renderer, guide=None)
    assert own.guide is None and torch.equal(own.guide_latents(images, inversion),
                                             inversion.w_plus)
    # the encoder is the recorded guide: it is not built twice
    fse_spec = f"fse:{preset.fse}"
    same = Adapter(stylebridge.create("encoder", fse_spec), gen, {},
                   renderer=stylebridge.create("renderer", shifted(fse_spec)))
    assert same.guide is None
    # a recorded guide that cannot be built here: one line naming it and both ways out
    gone = stylebridge.create("renderer", shifted("e4e:/nowhere/e4e.safetensors"))
    with pytest.raises(StylebridgeError, match=r"guide encoder 'e4e:/nowhere/e4e\.safetensors'"
                                               r".*guide=None"):
        Adapter(fse, gen, {}, renderer=gone)


def test_adapt_names_the_recorded_guide_it_cannot_load(tmp_path, capsys) -> None:
    """A FeatureShift recorded its guide as a path relative to where it was built: run from
    elsewhere, `adapt` said only "no such file"; it now says the spec came from the model and
    how to give it (--guide), in one line."""
    from stylebridge.cli.main import main
    from stylebridge.pipelines.presets import build_tiny_preset
    from stylebridge.plugins.renderers.featureshift import load_featureshift, save_featureshift

    preset = build_tiny_preset(tmp_path / "preset", n_images=2)
    model, _ = load_featureshift(preset.featureshift_fse)
    fs_file = save_featureshift(tmp_path / "fs.safetensors", model,
                                extra={"sources": {"guide": "e4e:../elsewhere/e4e.safetensors"}})
    photo = sorted(preset.images.iterdir())[0]
    argv = ["adapt", "-e", f"fse:{preset.fse}", "-g", str(preset.generator), "-m",
            str(sorted(preset.domains.iterdir())[0]), "--featureshift", str(fs_file),
            "--no-align", "--device", "cpu", str(photo), "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "'e4e:../elsewhere/e4e.safetensors' (recorded in the model)" in err
    assert "--guide NAME:CKPT" in err and f"--guide fse:{preset.fse}" in err
    # given on the command line, it is used (and the model's record is not read)
    assert main([*argv[:-1], str(tmp_path / "out2"), "--guide", f"e4e:{preset.e4e}"]) == 0


def test_a_torgb_skip_layer_is_refused_with_this_generators_counts(tmp_path, capsys) -> None:
    """`--skip-layers 1` on a 32 px generator quoted the 1024 px counts (26 style layers for
    18 W+ rows): the check before loading is syntax only, the refusal comes with the
    generator's own numbers (11 style layers for 8 W+ rows at 32 px)."""
    from stylebridge.cli.main import main
    from stylebridge.pipelines.presets import build_tiny_preset

    preset = build_tiny_preset(tmp_path / "preset", n_images=2)
    photo = sorted(preset.images.iterdir())[0]
    base = ["-e", f"e4e:{preset.e4e}", "-g", str(preset.generator), "--device", "cpu"]
    for argv in (["adapt", *base, "-m", str(sorted(preset.domains.iterdir())[0]), "--no-align",
                  "--skip-layers", "1", str(photo), "--out", str(tmp_path / "out")],
                 ["calibrate", "alpha", *base, "--images", str(preset.images),
                  "--skip-layers", "1", "--out", str(tmp_path / "a.safetensors")]):
        assert main(argv) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert "style layer 1 is to_rgb1 (ToRGB)" in err, err
        assert "(11 style layers for 8 W+ rows" in err and "1024" not in err, err


def test_adapter_arguments_of_the_wrong_kind_are_one_line(tmp_path) -> None:
    """A spec string for the renderer or generator, one domain not in a list, skip layers
    2.5, a guide the plain renderer would ignore: AttributeErrors, a silent int(2.5) or a
    silently unused argument before; one line each now (one domain is taken as a list)."""
    import stylebridge
    from stylebridge.errors import StylebridgeError
    from stylebridge.pipelines.adapt import Adapter
    from stylebridge.pipelines.presets import build_tiny_preset

    preset = build_tiny_preset(tmp_path / "preset", n_images=2)
    gen = stylebridge.create("generator", preset.generator)
    fse = stylebridge.create("encoder", f"fse:{preset.fse}")
    e4e = stylebridge.create("encoder", f"e4e:{preset.e4e}")
    pixar = stylebridge.create("domain_method", preset.domains / "tiny-pixar.safetensors")
    cases = [
        (dict(methods=[pixar], renderer="featureshift"),
         "Adapter renderer: expected a Renderer, got a str"),
        (dict(methods=[pixar], generator="gen.safetensors"),
         "Adapter generator: expected a Generator, got a str"),
        (dict(methods="pixar"), "Adapter methods: expected a dict or list of DomainMethod"),
        (dict(methods=[pixar], skip_layers=[2.5]), "style-layer indices are integers (2.5"),
        (dict(methods=[pixar], guide=e4e), "the plain renderer reads no guide latents"),
    ]
    for kwargs, message in cases:
        args = {"generator": gen, **kwargs}
        with pytest.raises(StylebridgeError) as info:
            Adapter(fse, args.pop("generator"), args.pop("methods"), **args)
        assert message in str(info.value), str(info.value)
    one = Adapter(fse, gen, pixar)                     # one domain: a list of one
    assert list(one.methods.values()) == [pixar]


def test_listed_domains_are_named_by_their_files_as_adapt_names_them(tmp_path) -> None:
    """A list of domains built with stylebridge.create was named `stylespace`, `stylespace-2`
    (the plugin name), while `adapt` names the same files `tiny-pixar`, `tiny-sketch`."""
    import stylebridge
    from stylebridge.pipelines.presets import build_tiny_preset
    from stylebridge.registry.resolve import load_domain

    preset = build_tiny_preset(tmp_path / "preset", n_images=2)
    gen = stylebridge.create("generator", preset.generator)
    fse = stylebridge.create("encoder", f"fse:{preset.fse}")
    pixar = stylebridge.create("domain_method", preset.domains / "tiny-pixar.safetensors")
    sketch = stylebridge.create("domain_method", preset.domains / "tiny-sketch.safetensors")
    again = load_domain(str(preset.domains / "tiny-pixar.safetensors"))
    assert list(stylebridge.Adapter(fse, gen, [pixar, sketch, again]).methods) == [
        "tiny-pixar", "tiny-sketch", "tiny-pixar-2"]
