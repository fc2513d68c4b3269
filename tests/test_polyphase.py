"""The polyphase up-sampling convolution (issue 20): the blur folded into the weight.

``ModulatedConv2d.upconv = "polyphase"`` must give upstream's "transposed conv, then blur"
image in every evaluation order (grouped, shared, the CPU's per-layer choice), with ConvEdit
deltas and gains, gradients, and after in-place weight changes (its folded weight is cached).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from stylebridge.core.ops.upfirdn2d import upfirdn2d_native
from stylebridge.core.stylegan2 import Generator
from stylebridge.core.stylegan2.layers import ConvEdit, ModulatedConv2d, make_kernel
from stylebridge.core.stylegan2.polyphase import phase_taps, polyphase_weight

TOL = {"atol": 3e-6, "rtol": 1e-5}


def transpose_then_blur(x: torch.Tensor, weight: torch.Tensor, blur: torch.Tensor,
                        pad: tuple[int, int]) -> torch.Tensor:
    """Upstream's order with a shared ``[out, in, k, k]`` weight: stride-2 transposed conv,
    then the FIR filter through the reference upfirdn2d."""
    y = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)
    return upfirdn2d_native(y, blur, pad=pad)


def polyphase(x: torch.Tensor, weight: torch.Tensor, blur: torch.Tensor, pad0: int
              ) -> torch.Tensor:
    _, lo, hi = phase_taps(weight.shape[-1], blur.shape[0], pad0)
    out = F.conv2d(F.pad(x, [lo, hi, lo, hi]), polyphase_weight(weight, blur, pad0))
    return F.pixel_shuffle(out, 2)


def test_an_impulse_gives_the_weight_convolved_with_the_blur() -> None:
    """One input pixel: the output is the full 2-D convolution of the 3x3 weight with the
    4x4 blur (numpy's, by separable rows here because the blur is an outer product), placed
    at 2i - (taps - 1 - pad0)."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 3))
    taps = np.array([1.0, 3.0, 3.0, 1.0])
    f1 = taps / taps.sum() * 2  # per axis; the 2-D kernel is the outer product (gain 4)
    full = np.stack([np.convolve(row, f1) for row in w])             # rows: 3 x 6
    full = np.stack([np.convolve(col, f1) for col in full.T]).T      # 6 x 6
    x = torch.zeros(1, 1, 5, 5, dtype=torch.float64)
    x[0, 0, 2, 3] = 1.0
    blur = make_kernel((1, 3, 3, 1)).double() * 4
    out = polyphase(x, torch.from_numpy(w).view(1, 1, 3, 3), blur, pad0=1)[0, 0].numpy()
    assert out.shape == (10, 10)
    c = 4 - 1 - 1  # taps - 1 - pad0
    want = np.zeros((10, 10))
    want[4 - c:4 - c + 6, 6 - c:6 - c + 6] = full
    np.testing.assert_allclose(out, want, atol=1e-12)


@pytest.mark.parametrize(("taps", "k"), [((1, 3, 3, 1), 3), ((1, 1), 3), ((1, 2, 1), 3), ((1, 3, 3, 1), 1)])
def test_fold_equals_transpose_then_blur(taps: tuple[int, ...], k: int) -> None:
    torch.manual_seed(0)
    conv = ModulatedConv2d(5, 4, k, 8, upsample=True, blur_kernel=taps)
    assert conv._polyphase is not None
    weight = torch.randn(4, 5, k, k, dtype=torch.float64)
    x = torch.randn(2, 5, 6, 7, dtype=torch.float64)
    blur = conv.blur.kernel.double()
    want = transpose_then_blur(x, weight, blur, conv.blur.pad)
    got = polyphase(x, weight, blur, conv.blur.pad[0])
    assert got.shape == want.shape == (2, 4, 12, 14)
    assert_close(got, want, atol=1e-12, rtol=1e-12)


def test_a_padding_without_a_polyphase_form_is_refused() -> None:
    assert phase_taps(3, 4, pad0=9) is None  # the filter's output starts past the input
    with pytest.raises(ValueError, match="no polyphase form"):
        polyphase_weight(torch.randn(2, 2, 3, 3), torch.ones(4, 4), pad0=9)


def _conv(cin: int, cout: int, seed: int) -> ModulatedConv2d:
    torch.manual_seed(seed)
    return ModulatedConv2d(cin, cout, 3, 8, upsample=True)


@pytest.mark.parametrize("fused", [None, True, False])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize(("cin", "res"), [(4, 12), (40, 2)])  # both sides of the CPU choice
def test_every_order_matches_transpose(fused: bool | None, batch: int, cin: int,
                                       res: int) -> None:
    conv = _conv(cin, 5, seed=batch + cin)
    conv.fused = fused
    x, s = torch.randn(batch, cin, res, res), torch.randn(batch, cin)
    edit = ConvEdit(weight_delta=0.1 * torch.randn(1, 5, cin, 3, 3),
                    input_gain=1 + 0.3 * torch.randn(cin))
    with torch.no_grad():
        conv.upconv = "transpose"
        want = [conv(x, s), conv(x, s, edit), conv(x.contiguous(
            memory_format=torch.channels_last), s)]
        conv.upconv = "polyphase"
        got = [conv(x, s), conv(x, s, edit), conv(x.contiguous(
            memory_format=torch.channels_last), s)]
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape == (batch, 5, 2 * res, 2 * res)
        assert_close(g, w, **TOL)


@pytest.mark.parametrize("fused", [None, True, False])
def test_gradients_match_transpose(fused: bool | None) -> None:
    conv = _conv(6, 4, seed=3)
    conv.fused = fused
    x, s0 = torch.randn(2, 6, 5, 5), torch.randn(2, 6)
    grads = {}
    for order in ("transpose", "polyphase"):
        conv.upconv = order
        conv.zero_grad()
        s = s0.clone().requires_grad_(True)
        xin = x.clone().requires_grad_(True)
        out = conv(xin, s)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads[order] = (out.detach(), s.grad, xin.grad, conv.weight.grad.clone())
    for g, w in zip(grads["polyphase"], grads["transpose"], strict=True):
        assert_close(g, w, atol=2e-5, rtol=1e-4)


def test_cached_fold_follows_in_place_weight_changes() -> None:
    conv = _conv(6, 4, seed=4)
    conv.upconv = "polyphase"
    x, s = torch.randn(1, 6, 8, 8), torch.randn(1, 6)
    with torch.no_grad():
        first = conv(x, s)
        conv.weight[:, :, 0] = 0.0  # as an optimizer step would change it, in place
        second = conv(x, s)
        conv.upconv = "transpose"
        want = conv(x, s)
    assert not torch.allclose(first, second, atol=1e-3)
    assert_close(second, want, **TOL)


def test_generator_set_upconv_keeps_the_image() -> None:
    torch.manual_seed(5)
    gen = Generator(size=32, style_dim=32, n_mlp=2, channels={4: 64, 8: 64, 16: 32, 32: 32}).eval()
    w = gen.mapping(torch.randn(2, 32))
    noise = [torch.randn(1, 1, *n.shape[2:]) for n in gen.noises.buffers()]
    with torch.no_grad():
        want = gen.synthesis(gen.styles(w), noise=noise)
        gen.set_upconv("polyphase")
        ups = [m for m in gen.modules() if isinstance(m, ModulatedConv2d) and m.upsample]
        assert ups and all(m.upconv == "polyphase" for m in ups)
        got = gen.synthesis(gen.styles(w), noise=noise)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = gen.synthesis(gen.styles(w), noise=noise).float()
    assert_close(got, want, atol=2e-5, rtol=1e-4)
    assert (low - want).abs().max() < 0.1  # bf16: the stated tolerance of the other paths
    gen.set_upconv(None)
    assert all(m.upconv is None for m in ups)
    with pytest.raises(ValueError, match="upconv must be one of"):
        gen.set_upconv("winograd")


def test_polyphase_synthesis_traces_as_one_graph() -> None:
    """Under torch.compile the weight cache is off and the fold runs inside the graph: it must
    trace without a graph break (fullgraph=True) and give the eager image."""
    torch.manual_seed(6)
    gen = Generator(size=16, style_dim=16, n_mlp=1, channels={4: 32, 8: 32, 16: 16}).eval()
    gen.set_upconv("polyphase")
    styles = gen.styles(gen.mapping(torch.randn(2, 16)))
    noise = [torch.randn(1, 1, *n.shape[2:]) for n in gen.noises.buffers()]
    torch._dynamo.reset()
    with torch.no_grad():
        want = gen.synthesis(styles, noise=noise)
        compiled = torch.compile(gen.synthesis, fullgraph=True, backend="eager", dynamic=False)
        got = compiled(styles, noise=noise)
    torch._dynamo.reset()
    assert_close(got, want, atol=1e-6, rtol=1e-5)
