"""What a notebook caller of the Python API gets for wrong input: one-line StylebridgeErrors
(metrics on 8-bit / 0..255 / [-1, 1] images, half-precision photos, inversions of another
generator, a bare w+ tensor, a method's style of the wrong width, wrong argument types, NaN
pictures, a CLIP block the model lacks), and random-weights labels that survive a copy."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import torch

import stylebridge
from stylebridge.core.interfaces import DomainMethod
from stylebridge.core.inversion import Inversion
from stylebridge.core.synthesis import synthesize
from stylebridge.errors import StylebridgeError
from stylebridge.plugins.metrics.base import MetricInputError
from tests.conftest import tiny_generator


@pytest.fixture(scope="module")
def preset(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from stylebridge.pipelines.presets import build_tiny_preset

    return build_tiny_preset(tmp_path_factory.mktemp("preset"), n_images=2)


def _pair() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 3, 16, 16, generator=g)


# -- 1. metrics: images in [0, 1] only; compute() before update() -------------------------

@pytest.mark.parametrize("name", ["mse", "psnr", "ssim"])
@pytest.mark.parametrize("convert, said", [
    (lambda x: (x * 255).to(torch.uint8), "must be a float tensor in [0, 1], got torch.uint8"),
    (lambda x: x * 255, "values span [0.1203, 254.9], expected [0, 1]"),
    (lambda x: x * 2 - 1, "values span [-0.9"),
    (lambda x: x.masked_fill(x > 0.5, math.nan), "contains NaN or Inf"),
])
def test_metrics_refuse_images_outside_0_1_naming_metric_and_range(name: str, convert: Any,
                                                                 said: str) -> None:
    """Before: mse of uint8 images 10892, psnr of 0..255 floats -40 dB, [-1, 1] accepted."""
    a, b = _pair()
    metric = stylebridge.create("metric", name)
    with pytest.raises(MetricInputError) as info:
        metric.update(convert(a), convert(b))
    text = str(info.value)
    assert text.startswith(f"{name}: pred ") and said in text and "\n" not in text
    assert isinstance(info.value, StylebridgeError) and isinstance(info.value, ValueError)
    metric.update(a, a)  # the refused batch left nothing behind
    assert metric.compute() == {"mse": 0.0} if name == "mse" else len(metric.compute()) == 1


def test_metric_range_error_reports_the_range_found() -> None:
    a, b = _pair()
    a[0, 0, 0, 0], a[1, 2, 3, 4] = -0.5, 3.0
    with pytest.raises(MetricInputError, match=r"mse: pred values span \[-0\.5, 3\], expected "
                                                r"\[0, 1\]"):
        stylebridge.create("metric", "mse").update(a, b)
    with pytest.raises(MetricInputError, match=r"psnr: target values span \[-0\.5, 3\]"):
        stylebridge.create("metric", "psnr").update(b, a)


def test_metrics_keep_their_numbers_within_the_adapters_tolerance() -> None:
    pred = torch.full((1, 3, 8, 8), 0.25)
    target = torch.full((1, 3, 8, 8), 0.75)
    mse, psnr = stylebridge.create("metric", "mse"), stylebridge.create("metric", "psnr")
    for m in (mse, psnr):
        m.update(pred, target)
    assert mse.compute() == {"mse": 0.25}
    assert psnr.compute()["psnr"] == pytest.approx(10 * math.log10(4.0), abs=1e-12)
    over = torch.full((1, 3, 8, 8), 1.015)   # resampling overshoot, as the Adapter allows
    under = torch.full((1, 3, 8, 8), -0.015)
    edge = stylebridge.create("metric", "mse")
    edge.update(over, under)
    assert edge.compute()["mse"] == pytest.approx(1.03 ** 2, abs=1e-6)
    wide = stylebridge.create("metric", "mse")  # float64 stays float64
    wide.update(pred.double(), target.double() + 1e-9)
    assert wide.compute()["mse"] == pytest.approx((0.5 + 1e-9) ** 2, abs=1e-15)


@pytest.mark.parametrize("name", ["mse", "psnr", "ssim"])
def test_compute_before_any_update_is_a_one_line_error(name: str) -> None:
    """Before: ``{}``, which a notebook read as 'no difference'."""
    metric = stylebridge.create("metric", name)
    with pytest.raises(StylebridgeError, match=rf"^{name}: compute\(\) before any update\(\)"):
        metric.compute()
    a, _ = _pair()
    metric.update(a, a)
    state = metric.state()
    metric.reset()
    with pytest.raises(StylebridgeError, match="no images were scored"):
        metric.compute()
    metric.load_state(state)  # a resumed metric computes what it held
    assert len(metric.compute()) == 1


def test_metric_shape_errors_are_stylebridge_errors_eval_still_skips() -> None:
    from stylebridge.pipelines.eval_score import Refused, Scorer

    a, b = _pair()
    mse = stylebridge.create("metric", "mse")
    with pytest.raises(StylebridgeError, match=r"mse: pred \[2, 3, 16, 16\] and target "
                                               r"\[2, 3, 8, 16\] differ in shape"):
        mse.update(a, b[:, :, :8])
    with pytest.raises(StylebridgeError, match="mse: pred must be images"):
        mse.update(a[0], b[0])
    scorer = Scorer([mse], ["mse"], [""])
    out = scorer.score(a, b[:, :, :8])
    assert all(isinstance(o, Refused) and "differ in shape" in o.reason for o in out)
    assert scorer.score(a, a) == [{"mse": 0.0}, {"mse": 0.0}]


# -- 2. raw errors → StylebridgeError ---------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_adapter_and_encoders_take_half_precision_photos(preset: Any, dtype: torch.dtype) -> None:
    """Before: ``RuntimeError: expected scalar type Half but found Float``."""
    gen = stylebridge.create("generator", str(preset.generator))
    fse = stylebridge.create("encoder", f"fse:{preset.fse}")
    e4e = stylebridge.create("encoder", f"e4e:{preset.e4e}")
    pixar = stylebridge.create("domain_method", str(preset.domains / "tiny-pixar.safetensors"))
    photo = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)).to(dtype)
    exact = photo.float()  # every half value is a float32 one: the same numbers
    adapter = stylebridge.Adapter(fse, gen, {"pixar": pixar})
    got, want = adapter.run(photo), adapter.run(exact)
    assert list(got) == ["inversion", "pixar"]
    assert all(torch.equal(got[k], want[k]) for k in want)
    for encoder in (fse, e4e):
        assert torch.equal(encoder.encode(photo).w_plus, encoder.encode(exact).w_plus)


def test_synthesize_refuses_inversions_that_do_not_fit_in_one_line() -> None:
    gen32, gen64 = tiny_generator(size=32), tiny_generator(size=64)
    wide = tiny_generator(size=32, style_dim=64)
    inv = Inversion(w_plus=gen32.make_wplus([torch.randn(2, 32)]))
    with pytest.raises(StylebridgeError, match=r"synthesize: the inversion's w\+ is \[2, 8, 32\], "
                                               r"but the 64px generator needs \[B, 10, 32\]"):
        synthesize(gen64, inv)
    with pytest.raises(StylebridgeError, match=r"needs \[B, 8, 64\]"):  # was: mat1 and mat2
        synthesize(wide, inv)
    with pytest.raises(StylebridgeError, match=r"expected an Inversion, got Tensor: wrap it as "
                                               r"Inversion\(w_plus=\.\.\.\)"):
        synthesize(gen32, inv.w_plus)
    with pytest.raises(StylebridgeError, match="w_plus must be"):
        Inversion(w_plus=torch.zeros(2, 32))
    want = gen32.synthesis(gen32.styles(inv.w_plus), randomize_noise=False)
    assert torch.equal(synthesize(gen32, inv), want)  # valid input: the same numbers


class _NarrowShift(DomainMethod):
    name = "narrow-shift-test"

    def config(self) -> dict[str, Any]:
        return {}

    def styles(self, generator: Any, w_plus: torch.Tensor, offset_scale: Any = None) -> list:
        styles = generator.styles(w_plus)
        styles[2] = styles[2][:, :-1]  # one channel short
        return styles


def test_a_methods_style_of_the_wrong_width_names_the_method() -> None:
    gen = tiny_generator(size=32)
    inv = Inversion(w_plus=gen.make_wplus([torch.randn(1, 32)]))
    layer = gen.style_layers()[2]
    with pytest.raises(StylebridgeError, match=(
            rf"domain method 'narrow-shift-test': styles\(\) returned a style vector of shape "
            rf"\[1, {layer.channels - 1}\] for style layer 2 \({layer.name}\); the generator "
            rf"needs \[B, {layer.channels}\]")):
        synthesize(gen, inv, method=_NarrowShift())


def test_evaluate_checks_its_argument_types_first(tmp_path: Path) -> None:
    """Before: ``AttributeError: 'function' object has no attribute 'ok'``."""
    from stylebridge.pipelines.evaluate import EvalConfig, EvalProgress, evaluate

    cfg = EvalConfig(metrics=["mse"], pred=[tmp_path / "none"], target=[tmp_path / "none"])
    with pytest.raises(StylebridgeError, match="evaluate: report must be a BatchReport or None, "
                                               "got function"):
        evaluate(cfg, lambda *a: None)  # type: ignore[arg-type]
    with pytest.raises(StylebridgeError, match="evaluate: progress must be an EvalProgress"):
        evaluate(cfg, progress=lambda *a: None)  # type: ignore[arg-type]
    with pytest.raises(StylebridgeError, match=r"evaluate: expected an EvalConfig .*got dict"):
        evaluate({"metrics": ["mse"]})  # type: ignore[arg-type]
    with pytest.raises(StylebridgeError, match="no such file or directory"):  # checks passed
        evaluate(cfg, None, EvalProgress())


# -- 3. the random-weights label survives a copy; train_domain says what was random -----------

def test_random_label_survives_deepcopy_and_to(preset: Any) -> None:
    from stylebridge.pipelines.photos import is_random, weights_path

    gen = stylebridge.create("generator", str(preset.generator))
    fse = stylebridge.create("encoder", f"fse:{preset.fse}")
    pixar = stylebridge.create("domain_method", str(preset.domains / "tiny-pixar.safetensors"))
    copied = copy.deepcopy(gen).to("cpu")
    assert is_random(copied) and weights_path(copied) == Path(preset.generator)
    assert stylebridge.provenance_of(copied) == stylebridge.provenance_of(gen)
    assert "_stylebridge_provenance" not in copied.state_dict()
    parts = stylebridge.Adapter(copy.deepcopy(fse), copied, [copy.deepcopy(pixar)]).random_parts
    assert parts == ["encoder", "generator", "domain tiny-pixar"]


def test_train_domain_checks_clip_layer_first_and_reports_random_parts(
        preset: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import stylebridge.pipelines.train_domain as td
    from stylebridge.core.checkpoint import read_header

    kw: dict[str, Any] = dict(
        generator=str(preset.generator), clip=["tiny-vit-p16"],
        clip_weights=[f"tiny-vit-p16={preset.clip_weights['tiny-vit-p16']}"], steps=1, batch=1,
        source_samples=2, sample_every=100, checkpoint_every=100, device="cpu", seed=0)
    image = dict(kw, image=preset.images / "photo0.png", encoder=f"e4e:{preset.e4e}",
                 out=tmp_path / "img.safetensors")

    def not_yet(*a: Any, **k: Any) -> Any:
        raise AssertionError("loaded before the CLIP layer was checked")

    with monkeypatch.context() as m:
        m.setattr(td, "build_clip_models", not_yet)
        m.setattr(td, "load_plugin", not_yet)  # the encoder
        with pytest.raises(StylebridgeError) as info:
            td.train_domain(td.DomainTrainConfig(**image))
    assert str(info.value) == (
        "loss 'difa_local' reads CLIP layer 3, but tiny-vit-p16 has 1 transformer block(s) "
        "(layers 0..0): give the losses as clip_direction:1.0 difa_w:6.0 "
        "difa_local:1.0:layer=0 (one --loss each, or losses=[...] from Python)")
    with pytest.raises(StylebridgeError, match="expected a DomainTrainConfig, got dict"):
        td.train_domain(image)  # type: ignore[arg-type]
    outcome = td.train_domain(td.DomainTrainConfig(
        **kw, text="a pixar character", out=tmp_path / "text.safetensors"))
    header = read_header(outcome.out).extra
    assert outcome.random_parts == header["random_parts"] == ["generator", "CLIP"]
    assert outcome.random_clip


# -- 4. save_image ------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_save_image_refuses_nan_and_inf(tmp_path: Path, value: float) -> None:
    """Before: an all-NaN picture was written (black), without a word."""
    picture = torch.rand(3, 8, 8)
    picture[1, 2, :3] = value
    with pytest.raises(StylebridgeError, match=r"x\.png: the picture has 3 NaN or Inf value"):
        stylebridge.save_image(picture, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
    picture[1, 2, :3] = 0.5
    assert stylebridge.save_image(picture, tmp_path / "x.png").is_file()
