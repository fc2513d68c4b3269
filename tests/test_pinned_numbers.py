"""Numbers a mutation-testing pass found unpinned: each test fails when the constant, default
or call it names is changed, and passes as the code is.

Expected values come from hand computation, the thesis (``docs/thesis.txt``),
``docs/thesis-map.md`` or ``torch.nn.functional`` called directly, never from running the
code under test and copying what it printed.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_generator
from PIL import Image

# ---------------------------------------------------------------------------------------------
# 1. fit_alpha(fit="intercept"): the residual includes the intercept (R² of an exact line = 1)

# x = [1, 2, 3], y = [12, 14, 16] = 2·x + 10 exactly.  By hand:
#   intercept fit: slope Σ(x−x̄)(y−ȳ)/Σ(x−x̄)² = (2+0+2)/(1+0+1) = 2, b = 14 − 2·2 = 10, R² = 1
#   (a residual without b, y − 2x = [10, 10, 10], would give R² = 1 − 300/8 = −36.5)
#   origin fit: α = Σxy/Σxx = (12 + 28 + 48)/14 = 88/14, b = 0
LINE_X = [1.0, 2.0, 3.0]
LINE_Y = [12.0, 14.0, 16.0]


def test_fit_alpha_intercept_of_an_exact_line() -> None:
    from stylebridge.plugins.calibrators.alpha import fit_alpha

    fit = fit_alpha([torch.tensor(LINE_X)], [torch.tensor(LINE_Y)], fit="intercept")
    assert float(fit.alpha[0]) == pytest.approx(2.0, abs=1e-6)
    assert float(fit.intercept[0]) == pytest.approx(10.0, abs=1e-5)
    assert float(fit.r2[0]) == pytest.approx(1.0, abs=1e-6)


def test_analyze_report_classifies_an_exact_line_as_scaled() -> None:
    """``corr_r2`` is the intercept fit's R²: 1 for an exact line, so the layer is correlated;
    its α (88/14 through the origin, 2 with intercept) is far from 1: ``scaled``."""
    from stylebridge.pipelines.analyze.report import LayerRef, build_report

    layers = [LayerRef(index=0, name="conv1", channels=3, is_rgb=False, conv_index=0)]
    for fit, alpha, intercept in (("origin", 88.0 / 14.0, 0.0), ("intercept", 2.0, 10.0)):
        report = build_report([torch.tensor(LINE_X)], [torch.tensor(LINE_Y)], layers, fit=fit)
        row = report["layers"][0]
        assert row["corr_r2"] == pytest.approx(1.0, abs=1e-6)
        assert row["pattern"] == "scaled"
        assert row["alpha"] == pytest.approx(alpha, rel=1e-6)
        assert row["intercept"] == pytest.approx(intercept, abs=1e-5)
        assert row["fits"]["intercept"]["r2"] == pytest.approx(1.0, abs=1e-6)
        assert report["patterns"] == {"independent": [], "calibrated": [], "scaled": [0]}


# ---------------------------------------------------------------------------------------------
# 2, 4, 5. command-line and config defaults


def _parse(argv: list[str]):
    from stylebridge.cli.main import build_parser

    parser, _ = build_parser()
    return parser.parse_args(argv)


def _default(cls: type, name: str):
    (f,) = [f for f in dataclasses.fields(cls) if f.name == name]
    return f.default


def test_train_domain_source_sample_defaults() -> None:
    """v_source: 256 source samples drawn at truncation 0.8, as DiFa; docs/thesis-map.md
    (Eq. 2 row): "drawn at truncation 0.8 (StyleDomain's `emb.online_truncation`; ...)",
    "`--source-samples` the count (256)"."""
    from stylebridge.pipelines.train_domain import DomainTrainConfig

    args = _parse(["train", "domain", "--text", "x", "--generator", "g", "--out", "o"])
    assert args.source_truncation == 0.8
    assert args.source_samples == 256
    assert _default(DomainTrainConfig, "source_truncation") == 0.8
    assert _default(DomainTrainConfig, "source_samples") == 256


# The thesis (Sec. 4, Fig. 4.9): "the original Mapping Network distribution that has been
# averaged over 3000 sampled $z \sim \mathcal{N}(0, I)$".
THESIS_MAPPING_SAMPLES = 3000


def test_style_means_samples_default_is_the_thesis_3000() -> None:
    from stylebridge.pipelines.calibrate import CalibrateConfig

    latents = _parse(["analyze", "latents", "--images", "x", "--encoder", "e4e", "--out", "o"])
    calibrate = _parse(["calibrate", "alpha", "--images", "x", "--encoder", "e4e", "--out", "o"])
    assert latents.samples == THESIS_MAPPING_SAMPLES
    assert calibrate.samples == THESIS_MAPPING_SAMPLES
    assert _default(CalibrateConfig, "samples") == THESIS_MAPPING_SAMPLES


def test_analyze_latents_fit_default_is_origin() -> None:
    """``--fit origin``: least squares of y = α·x, the thesis' hypothesis w_enc = α·w_orig."""
    from stylebridge.pipelines.calibrate import CalibrateConfig

    args = _parse(["analyze", "latents", "--images", "x", "--encoder", "e4e", "--out", "o"])
    assert args.fit == "origin"
    assert _default(CalibrateConfig, "fit") == "origin"


# ---------------------------------------------------------------------------------------------
# 3, 6. anti-aliased down-sampling (eval's resize to the target, lpips:size=N)


def _columns(size: int) -> torch.Tensor:
    """``[3, size, size]``: columns 1, 1, 0, 0, 1, 1, ... (a bilinear 2× reduction without
    anti-aliasing averages each pair of equal columns: 1, 0, 1, 0, ...)."""
    col = torch.tensor([1.0 if (i // 2) % 2 == 0 else 0.0 for i in range(size)])
    return col.expand(3, size, size).clone()


def _bilinear(img: torch.Tensor, size: int, antialias: bool) -> torch.Tensor:
    return F.interpolate(img, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=antialias)


def _save(img: torch.Tensor, path: Path) -> None:
    array = (img.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    Image.fromarray(np.ascontiguousarray(array)).save(path)


def test_eval_resizes_predictions_with_antialiasing(tmp_path: Path) -> None:
    """A 32 px prediction against a 16 px target is reduced with an anti-aliased bilinear
    filter: the MSE is the one of F.interpolate(antialias=True), not antialias=False's."""
    from stylebridge.pipelines.evaluate import EvalConfig, evaluate

    (tmp_path / "pred").mkdir()
    (tmp_path / "target").mkdir()
    pred = _columns(32)
    target = torch.full((3, 16, 16), 128 / 255)
    _save(pred, tmp_path / "pred" / "a.png")
    _save(target, tmp_path / "target" / "a.png")

    def mse(antialias: bool) -> float:
        resized = _bilinear(pred[None], 16, antialias)[0].clamp(0, 1)
        return float(((resized - target) ** 2).mean())

    aa, plain = mse(True), mse(False)
    # antialias=False: columns 1, 0, 1, 0, ... → every pixel is 127/255 or 128/255 off
    assert plain == pytest.approx(((127 / 255) ** 2 + (128 / 255) ** 2) / 2, rel=1e-6)
    assert plain - aa > 0.05  # the two filters are told apart by far more than rounding
    result = evaluate(EvalConfig(metrics=["mse"], pred=[tmp_path / "pred"],
                                 target=[tmp_path / "target"], device="cpu"))
    assert [row["name"] for row in result.rows] == ["a"]
    assert result.rows[0]["mse"] == pytest.approx(aa, rel=1e-5)


def test_lpips_size_resizes_with_antialiasing() -> None:
    """``lpips:size=N`` reduces both images with an anti-aliased bilinear filter before the
    network.  N = 32 on a 64 px pair: AlexNet's trunk needs at least 31 px (its second max
    pool has nothing left to pool below that), so the brief's 16 px cannot run on ``alex``."""
    pytest.importorskip("lpips")
    from stylebridge.plugins.metrics.lpips import LPIPSMetric

    metric = LPIPSMetric(net="alex", size=32, allow_random=True)
    pred = _columns(64)[None]
    target = _columns(64).transpose(1, 2)[None].contiguous()  # rows 1, 1, 0, 0, ...
    with torch.no_grad():
        def direct(antialias: bool) -> float:
            a, b = (_bilinear(t, 32, antialias) for t in (pred, target))
            return float(metric.model(a, b, normalize=True).reshape(-1)[0])

        aa, plain = direct(True), direct(False)
    assert abs(aa - plain) > 1e-3 * max(abs(aa), abs(plain), 1e-6)
    metric.reset()
    metric.update(pred, target)
    assert metric.compute()["lpips"] == pytest.approx(aa, rel=1e-5, abs=1e-7)
    assert metric.compute()["lpips"] != pytest.approx(plain, rel=1e-4, abs=1e-7)


# ---------------------------------------------------------------------------------------------
# 7. clamps


def test_fused_leaky_relu_inplace_clamps() -> None:
    """1000·√2 ≈ 1414 and −1000·0.2·√2 ≈ −283 both lie outside ±256: clamped to ±256."""
    from stylebridge.core.ops.fused_act import fused_leaky_relu

    x = torch.tensor([1000.0, -1000.0, 10.0]).view(1, 3, 1, 1)
    out = fused_leaky_relu(x.clone(), torch.zeros(3), clamp=256.0, inplace=True)
    assert out.flatten().tolist() == pytest.approx([256.0, -256.0, 10.0 * math.sqrt(2)])
    # the same numbers on the path that keeps its input
    out = fused_leaky_relu(x.clone(), torch.zeros(3), clamp=256.0)
    assert out.flatten().tolist() == pytest.approx([256.0, -256.0, 10.0 * math.sqrt(2)])


def test_torgb_conv_clamp() -> None:
    from stylebridge.core.stylegan2.layers import ToRGB

    torch.manual_seed(0)
    rgb = ToRGB(8, style_dim=8, upsample=False, conv_clamp=0.5)
    x = 100.0 * torch.randn(1, 8, 4, 4)
    s = torch.ones(1, 8)
    with torch.no_grad():
        out = rgb(x, s)
        rgb.conv_clamp = None
        unclamped = rgb(x, s)
    assert unclamped.max() > 0.5 and unclamped.min() < -0.5   # the clamp has work to do
    assert float(out.abs().max()) == 0.5
    assert torch.equal(out, unclamped.clamp(-0.5, 0.5))


# ---------------------------------------------------------------------------------------------
# 8. randomize_noise draws N(0, 1)


def test_randomized_noise_is_standard_normal() -> None:
    from stylebridge.core.stylegan2.layers import NoiseInjection

    gen = tiny_generator(seed=0, size=32)
    seen: list[torch.Tensor] = []
    hooks = [m.register_forward_pre_hook(lambda _m, args: seen.append(args[1].detach().clone()))
             for m in gen.modules() if isinstance(m, NoiseInjection)]
    try:
        torch.manual_seed(1234)
        with torch.no_grad():
            styles = gen.styles(gen.make_wplus(torch.randn(2, gen.style_dim)))
            gen.synthesis(styles, randomize_noise=True)
    finally:
        for h in hooks:
            h.remove()
    values = torch.cat([n.flatten() for n in seen])
    assert values.numel() >= 4096
    assert abs(float(values.mean())) < 0.05
    assert float(values.std()) == pytest.approx(1.0, abs=0.05)
