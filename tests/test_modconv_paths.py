"""The CPU evaluation orders of the modulated convolution (issue 20's speed work).

``fused=None`` (the default) chooses per layer on the CPU: one pass over the weight with the
demodulation from a cached ``sum (scale W)^2`` when a single sample's activations outweigh the
weight, else input modulation around the cached shared weight; 1x1 layers on channels-last
input run as a matmul.  Every choice must give the by-hand modulated convolution, follow
in-place changes of the weight (the cache), honour ConvEdit deltas and gains, and never
overwrite a caller's tensor.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from stylebridge.core.ops import FusedLeakyReLU
from stylebridge.core.stylegan2.layers import ConvEdit, ModulatedConv2d, StyledConv

TOL = {"atol": 2e-6, "rtol": 1e-5}


def by_hand(conv: ModulatedConv2d, x: torch.Tensor, s: torch.Tensor,
            delta: torch.Tensor | None = None, gain: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample weight, demodulated, gained, then a plain convolution (no upsampling)."""
    raw = conv.weight[0] if delta is None else conv.weight[0] + delta[0]
    outs = []
    for i in range(x.shape[0]):
        w = conv.scale * raw * s[i].view(1, -1, 1, 1)
        if conv.demodulate:
            w = w * torch.rsqrt(w.pow(2).sum([1, 2, 3]) + 1e-8).view(-1, 1, 1, 1)
        if gain is not None:
            w = w * gain.view(1, -1, 1, 1)
        outs.append(F.conv2d(x[i:i + 1], w, padding=conv.kernel_size // 2))
    return torch.cat(outs)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("shape", [
    (6, 5, 3, 16),   # activations outweigh the weight: one pass over the weight
    (48, 40, 3, 2),  # the weight outweighs the activations: modulate the input
    (12, 3, 1, 8),   # ToRGB-like 1x1 without demodulation: a matmul on channels-last input
])
def test_default_order_matches_the_formula(shape, channels_last: bool, batch: int) -> None:
    cin, cout, k, res = shape
    torch.manual_seed(0)
    conv = ModulatedConv2d(cin, cout, k, 8, demodulate=k > 1)
    x, s = torch.randn(batch, cin, res, res), torch.randn(batch, cin)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    gain, delta = 1 + 0.3 * torch.randn(cin), 0.1 * torch.randn(1, cout, cin, k, k)
    with torch.no_grad():
        assert_close(conv(x, s), by_hand(conv, x, s), **TOL)
        assert_close(conv(x, s, ConvEdit(weight_delta=delta, input_gain=gain)),
                     by_hand(conv, x, s, delta, gain), **TOL)
        assert_close(conv(x, s, delta), by_hand(conv, x, s, delta), **TOL)
    # the same with gradients (no cache): the values and a gradient to s
    s_grad = s.clone().requires_grad_(True)
    out = conv(x, s_grad)
    assert_close(out, by_hand(conv, x, s).detach(), **TOL)
    out.square().sum().backward()
    assert s_grad.grad is not None and s_grad.grad.abs().sum() > 0


@pytest.mark.parametrize("batch", [1, 3])
def test_up_sampling_default_order_matches_upstreams_grouped_order(batch: int) -> None:
    torch.manual_seed(1)
    for cin, res in ((4, 16), (40, 2)):  # both sides of the per-layer choice
        conv = ModulatedConv2d(cin, 5, 3, 8, upsample=True)
        x = torch.randn(batch, cin, res, res).contiguous(memory_format=torch.channels_last)
        s, gain = torch.randn(batch, cin), 1 + 0.5 * torch.randn(cin)
        with torch.no_grad():
            got = conv(x, s, ConvEdit(input_gain=gain))
            conv.fused = True
            want = conv(x.contiguous(), s, ConvEdit(input_gain=gain))
        assert_close(got, want, **TOL)


def test_cached_demodulation_follows_in_place_weight_changes() -> None:
    torch.manual_seed(2)
    conv = ModulatedConv2d(6, 5, 3, 8)
    x, s = torch.randn(1, 6, 16, 16), torch.randn(1, 6)
    with torch.no_grad():
        first = conv(x, s)
        conv.weight.mul_(torch.linspace(0.5, 2.0, 5).view(1, 5, 1, 1, 1))  # as an optimizer step
        conv.weight[:, 0] = 0.0
        second = conv(x, s)
    assert_close(second, by_hand(conv, x, s), **TOL)
    assert not torch.allclose(first, second, atol=1e-3)
    fresh = ModulatedConv2d(6, 5, 3, 8)
    with torch.no_grad():
        conv.load_state_dict(fresh.state_dict())  # copy_ into the same storage
        assert_close(conv(x, s), by_hand(fresh, x, s), **TOL)


def test_in_place_activation_never_touches_a_callers_tensor() -> None:
    torch.manual_seed(3)
    act = FusedLeakyReLU(4)
    with torch.no_grad():
        act.bias.copy_(torch.randn(4))
    x = torch.randn(2, 4, 3, 3)
    keep = x.clone()
    expected = F.leaky_relu(x + act.bias.view(1, 4, 1, 1), 0.2) * 2 ** 0.5
    with torch.no_grad():
        assert_close(act(x), expected)
        assert torch.equal(x, keep)  # the default is out of place
        y = act(x, inplace=True)
        assert y.data_ptr() == x.data_ptr()
    assert_close(y, expected)
    # with a gradient to compute the activation is never done in place
    x = keep.clone().requires_grad_(True)
    y = act(x, inplace=True)
    y.sum().backward()
    assert torch.equal(x.detach(), keep) and x.grad is not None
    # StyledConv's own conv output is the only tensor it activates in place: its input stays
    layer = StyledConv(4, 4, 3, 8)
    inp = torch.randn(1, 4, 8, 8)
    before = inp.clone()
    with torch.no_grad():
        layer(inp, torch.randn(1, 4), torch.randn(1, 1, 8, 8))
    assert torch.equal(inp, before)


@pytest.mark.parametrize("upconv", ["transpose", "polyphase"])
@pytest.mark.parametrize("upsample", [False, True])
@pytest.mark.parametrize("fused", [True, False])
def test_styled_conv_through_the_fused_epilogue_matches(monkeypatch: pytest.MonkeyPatch,
                                                        fused: bool, upsample: bool,
                                                        upconv: str) -> None:
    """Where the fused epilogue is chosen (CUDA only; forced here, its op then runs its
    native path on the CPU), a StyledConv defers the shared order's demodulation to it and
    gives the separate ops' image, ConvEdit bias/noise deltas and gradients included."""
    from stylebridge.core.stylegan2 import layers

    torch.manual_seed(7)
    layer = StyledConv(6, 5, 3, 8, upsample=upsample)
    layer.conv.fused, layer.conv.upconv = fused, upconv
    with torch.no_grad():
        layer.noise.weight.fill_(0.3)
        layer.activate.bias.copy_(torch.randn(5))
    x, s = torch.randn(2, 6, 5, 5), torch.randn(2, 6)
    res = 10 if upsample else 5
    noise = torch.randn(2, 1, res, res)
    edit = ConvEdit(input_gain=1 + 0.2 * torch.randn(6), bias_delta=0.1 * torch.randn(5),
                    noise_delta=torch.tensor([0.05]))
    results = {}
    real = layers.modulated_bias_act
    calls: list[bool] = []

    def spy(*args: object, **kwargs: object) -> torch.Tensor:
        calls.append(args[1] is not None)  # a demodulation handed over
        return real(*args, **kwargs)

    monkeypatch.setattr(layers, "modulated_bias_act", spy)
    for on in (False, True):
        monkeypatch.setattr(layers, "use_fused_epilogue", lambda is_cuda, on=on: on)
        calls.clear()
        with torch.no_grad():
            plain, edited = layer(x, s, noise), layer(x, s, noise, edit)
        s_grad = s.clone().requires_grad_(True)
        layer(x, s_grad, noise, edit).square().sum().backward()
        results[on] = (plain, edited, s_grad.grad)
        # the shared order hands its demodulation to the epilogue; the grouped one has it
        # in the weight already
        assert calls == ([not fused] * 3 if on else [])
    for got, want in zip(results[True], results[False], strict=True):
        assert_close(got, want, atol=1e-5, rtol=1e-4)  # deferred demod: after the blur
