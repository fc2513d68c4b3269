"""Numeric details that a mutation-testing pass found unguarded.

* ``ToRGB``'s ``conv_clamp`` (NVlabs' fp16 layers clamp at 256): the RGB output is clamped
  to ``[-conv_clamp, conv_clamp]``, exactly.
* ``ModulatedConv2d`` with a 1x1 kernel and demodulation on a channels-last CPU input (the
  matmul path): the StyleGAN2 formula, the same as the contiguous input.
* The alpha calibrator's per-layer R² (``fit_alpha``, the calibrator's ``r2`` buffer and
  ``analyze latents``' rows): ``1 - Σ resid² / Σ (y - ȳ)²`` for both fits.
* ``MIN_ALPHA`` and the strict ``α > min_alpha``: an α equal to ``min_alpha`` gets no offset
  and is reported as unreliable; the next float above it is usable.

Every expected value is computed here from the formula (or by hand, in the comments).
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from stylebridge.core.stylegan2.layers import ModulatedConv2d, ToRGB
from stylebridge.pipelines.analyze import LayerRef, build_report
from stylebridge.plugins.calibrators.alpha import (
    MIN_ALPHA,
    AlphaCalibrator,
    alpha_usable,
    fit_alpha,
)

TOL = {"atol": 1e-5, "rtol": 1e-5}


# -- ToRGB conv_clamp ------------------------------------------------------------------------


def test_torgb_output_is_clamped_to_conv_clamp() -> None:
    clamp = 0.5  # exact in float32
    torch.manual_seed(0)
    rgb = ToRGB(8, 4, upsample=False, conv_clamp=clamp)
    with torch.no_grad():
        rgb.bias.copy_(torch.tensor([0.25, -0.25, 0.0]).view(1, 3, 1, 1))
    x, s = 2 * torch.randn(2, 8, 5, 5), torch.randn(2, 8)
    # unclamped reference: 1x1 modulated conv without demodulation, plus the bias
    w = rgb.conv.scale * rgb.conv.weight[0]  # [3, 8, 1, 1]
    with torch.no_grad():
        ref = torch.cat([F.conv2d(x[i:i + 1], w * s[i].view(1, -1, 1, 1)) for i in range(2)])
        ref = ref + rgb.bias
        out = rgb(x, s)
    # the inputs exceed the clamp on both sides, and leave some pixels inside it
    assert ref.max() > clamp and ref.min() < -clamp
    assert (ref.abs() < clamp).any()
    assert out.abs().max().item() == clamp
    assert out.max().item() == clamp and out.min().item() == -clamp
    assert_close(out, ref.clamp(-clamp, clamp), **TOL)
    # no clamp: the reference itself
    rgb.conv_clamp = None
    with torch.no_grad():
        assert_close(rgb(x, s), ref, **TOL)


# -- 1x1 demodulated ModulatedConv2d on channels-last input ---------------------------------


def modulated_conv_formula(conv: ModulatedConv2d, x: torch.Tensor, s: torch.Tensor
                           ) -> torch.Tensor:
    """StyleGAN2: w' = w·s, demod = rsqrt(Σ w'² + 1e-8), y = conv(x, w'·demod), per sample."""
    outs = []
    for i in range(x.shape[0]):
        w = conv.scale * conv.weight[0] * s[i].view(1, -1, 1, 1)  # [out, in, 1, 1]
        demod = torch.rsqrt(w.pow(2).sum(dim=(1, 2, 3)) + 1e-8)
        outs.append(F.conv2d(x[i:i + 1].contiguous(), w * demod.view(-1, 1, 1, 1)))
    return torch.cat(outs)


@pytest.mark.parametrize(("batch", "cin", "cout", "res"), [
    (3, 6, 5, 4),    # a batch: the per-sample [B, out, in] weight, a matmul per sample
    (1, 32, 16, 2),  # one sample whose weight outweighs its activations: the same path
    (1, 4, 3, 8),    # one sample whose activations outweigh the weight: the one-pass order
])
def test_demodulated_1x1_channels_last_matches_the_formula(batch: int, cin: int, cout: int,
                                                           res: int) -> None:
    torch.manual_seed(1)
    conv = ModulatedConv2d(cin, cout, 1, 8, demodulate=True)
    x = torch.randn(batch, cin, res, res)
    # |s| in [4, 5]: the demodulation is far from 1, so w·demod and w/demod differ
    s = (4 + torch.rand(batch, cin)) * torch.randn(batch, cin).sign()
    with torch.no_grad():
        w = conv.scale * conv.weight[0, :, :, 0, 0] * s.view(batch, 1, cin)
        demod = torch.rsqrt(w.pow(2).sum(-1) + 1e-8)
        assert (demod < 0.8).all()
        want = modulated_conv_formula(conv, x, s)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        assert x_cl.is_contiguous(memory_format=torch.channels_last)
        got_cl = conv(x_cl, s)
        got = conv(x.contiguous(), s)
    assert_close(got_cl, want, **TOL)
    assert_close(got, want, **TOL)
    assert_close(got_cl, got, **TOL)
    # with gradients (no weight cache): the same numbers
    assert_close(conv(x_cl, s).detach(), want, **TOL)


# -- alpha fit R² ----------------------------------------------------------------------------


def r2_by_hand(x: list[float], y: list[float], fit: str) -> float:
    """R² = 1 - Σ (y - a·x - b)² / Σ (y - ȳ)²: the origin fit a = Σxy / Σx², b = 0; the
    intercept fit a = Σ(x - x̄)(y - ȳ) / Σ(x - x̄)², b = ȳ - a·x̄ (exact rationals)."""
    xs, ys = [Fraction(v) for v in x], [Fraction(v) for v in y]
    n = len(xs)
    if fit == "origin":
        a = sum(p * q for p, q in zip(xs, ys, strict=True)) / sum(p * p for p in xs)
        b = Fraction(0)
    else:
        mx, my = sum(xs) / n, sum(ys) / n
        a = (sum((p - mx) * (q - my) for p, q in zip(xs, ys, strict=True))
             / sum((p - mx) ** 2 for p in xs))
        b = my - a * mx
    my = sum(ys) / n
    ss_res = sum((q - a * p - b) ** 2 for p, q in zip(xs, ys, strict=True))
    ss_tot = sum((q - my) ** 2 for q in ys)
    return float(1 - ss_res / ss_tot)


def test_alpha_fit_r2_is_one_minus_residual_over_total_sum_of_squares() -> None:
    # layer 0: y = 2x exactly; layer 1: y = x + 1; layer 2: scattered (neither fit is exact)
    xs = [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0]]
    ys = [[2.0, 4.0, 6.0], [2.0, 3.0, 4.0], [2.0, 1.0, 4.0, 3.0]]
    # by hand, layer 1 origin: a = 20/14, residuals (4, 1, -2)/7, Σ resid² = 3/7, ȳ = 3,
    # Σ (y - ȳ)² = 2: R² = 1 - 3/14 = 11/14.  Layer 2 origin: a = 28/30, Σ resid² =
    # Σy² - (Σxy)²/Σx² = 30 - 784/30 = 58/15, Σ (y - ȳ)² = 5: R² = 1 - 58/75 = 17/75;
    # with intercept: slope 3/5, b = 1, R² = 3² / (5·5) = 9/25 (squared correlation)
    hand = {"origin": [1.0, 11 / 14, 17 / 75], "intercept": [1.0, 1.0, 9 / 25]}
    for fit, values in hand.items():
        assert [r2_by_hand(x, y, fit) for x, y in zip(xs, ys, strict=True)] == pytest.approx(
            values, rel=1e-12)
    src = [torch.tensor(x) for x in xs]
    enc = [torch.tensor(y) for y in ys]
    refs = [LayerRef(i, f"l{i}", len(xs[i]), False, i) for i in range(3)]
    rows = build_report(src, enc, refs)["layers"]
    for fit, values in hand.items():
        assert fit_alpha(src, enc, fit).r2.tolist() == pytest.approx(values, rel=1e-6)
        calib = AlphaCalibrator.from_style_means(src, enc, fit=fit)
        assert calib.r2.tolist() == pytest.approx(values, rel=1e-6)
        assert [r["fits"][fit]["r2"] for r in rows] == pytest.approx(values, rel=1e-6)
    assert [r["r2"] for r in rows] == pytest.approx(hand["origin"], rel=1e-6)  # the default
    assert [r["corr_r2"] for r in rows] == pytest.approx(hand["intercept"], rel=1e-6)


# -- MIN_ALPHA and the strict comparison ------------------------------------------------------


def test_min_alpha_default_and_strict_comparison() -> None:
    assert MIN_ALPHA == 1e-3
    assert not alpha_usable(1e-3)
    assert alpha_usable(math.nextafter(1e-3, 1.0))
    assert not alpha_usable(0.0) and not alpha_usable(float("nan")) and not alpha_usable(None)


def test_alpha_equal_to_min_alpha_gets_no_offset_and_is_reported() -> None:
    # α is stored in float32: a min_alpha that float32 represents exactly (float32's 1e-3)
    at = torch.tensor(1e-3, dtype=torch.float32)
    above = torch.nextafter(at, torch.tensor(1.0))
    min_alpha = float(at)
    assert float(above) > min_alpha
    alphas = [float(at), float(above), 0.5]
    # single-channel layers with x = 1: the origin fit gives α = y exactly
    src = [torch.ones(1) for _ in alphas]
    enc = [torch.tensor([a]) for a in alphas]
    calib = AlphaCalibrator.from_style_means(src, enc, min_alpha=min_alpha)
    assert calib.alpha.tolist() == alphas
    assert calib.unreliable_layers() == [0]
    scale = calib.offset_scale(3)
    assert scale[0].item() == 0.0
    assert scale[1:].tolist() == pytest.approx([1 / alphas[1], 2.0], rel=1e-6)
    assert alpha_usable(alphas[0], min_alpha) is False
    assert alpha_usable(alphas[1], min_alpha) is True
    # the same with power = 1 (the other reading of the thesis): still 0 at min_alpha
    calib = AlphaCalibrator.from_style_means(src, enc, min_alpha=min_alpha, power=1.0)
    assert calib.offset_scale(3).tolist() == pytest.approx([0.0, alphas[1], 0.5], rel=1e-6)
