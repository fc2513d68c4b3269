"""Tests for the fused styled-conv epilogue (:mod:`stylebridge.core.ops.epilogue`).

* the native path is bit for bit today's layer sequence (``ModulatedConv2d``'s demodulation,
  ``NoiseInjection``, ``FusedLeakyReLU``), with and without each optional input, in place or
  not, with and without gradients, under CPU bf16 autocast;
* it agrees with the formula written out element-wise, and its gradients (any order) with
  autograd of that formula;
* the dispatch: ``STYLEBRIDGE_EPILOGUE`` / :func:`set_fused_epilogue` and the backend;
* ``gpu``: the CUDA kernel against the native path (skipped without a CUDA device).

The compiled extension's CPU path of the op is checked in ``tests/test_ops.py``'s build test.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import Tensor

from stylebridge.core.ops import (
    _cuda,
    autocast_like,
    backend,
    fused_epilogue,
    fused_leaky_relu,
    modulated_bias_act,
    set_fused_epilogue,
)
from stylebridge.core.ops import epilogue as epilogue_module
from stylebridge.core.ops.epilogue import modulated_bias_act_native
from stylebridge.core.stylegan2.layers import FusedLeakyReLU, NoiseInjection
from stylebridge.errors import StylebridgeError

SQRT2 = math.sqrt(2.0)
B, C, H, W = 3, 4, 5, 6


pytestmark = pytest.mark.usefixtures("clean_ops_state")


def _inputs(noise_batch: int = B, dtype: torch.dtype = torch.float32,
            seed: int = 0) -> dict[str, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "x": torch.randn(B, C, H, W, generator=gen).to(dtype),
        "demod": (torch.rand(B, C, generator=gen) + 0.5).to(dtype),
        "noise": torch.randn(noise_batch, 1, H, W, generator=gen).to(dtype),
        "strength": torch.randn(1, generator=gen).to(dtype),
        "bias": torch.randn(C, generator=gen).to(dtype),
    }


def _layers(x: Tensor, demod: Tensor | None, noise: Tensor | None, strength: Tensor | None,
            bias: Tensor | None, clamp: float | None) -> Tensor:
    """Today's sequence, through the real layers: ``ModulatedConv2d._forward_auto``'s
    demodulation (its two lines), then ``StyledConv``'s ``NoiseInjection`` and
    ``FusedLeakyReLU(inplace=True)`` holding ``strength`` and ``bias`` as their parameters;
    ``x`` is consumed as the fresh conv output."""
    out = x
    if demod is not None:
        d = autocast_like(demod, out).view(out.shape[0], -1, 1, 1)
        needs = torch.is_grad_enabled() and (out.requires_grad or d.requires_grad)
        out = out.mul_(d) if not needs else out * d
    if noise is not None:
        layer = NoiseInjection()
        del layer.weight
        layer.weight = strength  # the given tensor itself, so gradients reach it
        out = layer(out, noise)
    act = FusedLeakyReLU(C, clamp=clamp)
    if bias is None:  # FusedLeakyReLU always has a bias: the call it makes, without one
        return fused_leaky_relu(out, None, act.negative_slope, act.scale, act.clamp,
                                inplace=True)
    del act.bias
    act.bias = bias
    return act(out, inplace=True)


def _formula(x: Tensor, demod: Tensor | None, noise: Tensor | None, strength: Tensor | None,
             bias: Tensor | None, slope: float, scale: float, clamp: float | None) -> Tensor:
    """The op written out, independently of both implementations."""
    z = x
    if demod is not None:
        z = z * demod[:, :, None, None]
    if noise is not None:
        z = z + strength * noise
    if bias is not None:
        z = z + bias[None, :, None, None]
    y = torch.where(z > 0, z, z * slope) * scale
    if clamp is not None:
        y = torch.minimum(torch.maximum(y, torch.full_like(y, -clamp)), torch.full_like(y, clamp))
    return y


OPTIONAL = ("demod", "noise", "bias")
SUBSETS = [subset for r in range(4) for subset in itertools.combinations(OPTIONAL, r)]
SUBSET_IDS = ["+".join(s) or "none" for s in SUBSETS]


def _drop(t: dict[str, Tensor], present: tuple[str, ...]) -> dict[str, Tensor | None]:
    out: dict[str, Tensor | None] = dict(t)
    for name in OPTIONAL:
        if name not in present:
            out[name] = None
    if out["noise"] is None:
        out["strength"] = None
    return out


@pytest.mark.parametrize("present", SUBSETS, ids=SUBSET_IDS)
@pytest.mark.parametrize("noise_batch", [B, 1])
@pytest.mark.parametrize("clamp", [None, 0.5])
@pytest.mark.parametrize("inplace", [False, True])
def test_native_is_bitwise_the_layer_sequence(present: tuple[str, ...], noise_batch: int,
                                              clamp: float | None, inplace: bool) -> None:
    t = _drop(_inputs(noise_batch), present)
    expected = _layers(t["x"].clone(), t["demod"], t["noise"], t["strength"], t["bias"], clamp)
    x = t["x"].clone()
    got = modulated_bias_act(x, t["demod"], t["noise"], t["strength"], t["bias"], 0.2, SQRT2,
                             clamp, inplace=inplace)
    assert got.dtype == torch.float32
    assert torch.equal(got, expected)
    if inplace:
        assert got.data_ptr() == x.data_ptr()  # no new buffer: the layers' in-place sequence
    else:
        assert torch.equal(x, t["x"])  # the input is left alone
    formula = _formula(t["x"], t["demod"], t["noise"], t["strength"], t["bias"], 0.2, SQRT2,
                       clamp)
    torch.testing.assert_close(got, formula, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("present", [("demod", "noise", "bias"), ("noise",), ("demod",)],
                         ids=["all", "noise", "demod"])
@pytest.mark.parametrize("clamp", [None, 0.5])
@pytest.mark.parametrize("trained", ["x", "params", "all"])
def test_native_with_gradients_is_bitwise_the_layer_sequence(present: tuple[str, ...],
                                                             clamp: float | None,
                                                             trained: str) -> None:
    """Forward and gradients equal to the layers' own sequence with the same tensors
    trained (with only the parameters trained the layers still work in place where they
    can)."""
    t = _drop(_inputs(1), present)
    names = {"x": ["x"], "params": ["strength", "bias"],
             "all": ["x", "demod", "noise", "strength", "bias"]}[trained]
    names = [n for n in names if t[n] is not None] or ["x"]

    def leaves() -> dict[str, Tensor | None]:
        return {k: None if v is None else v.clone().requires_grad_(k in names)
                for k, v in t.items()}

    ref, mine = leaves(), leaves()
    expected = _layers(ref["x"], ref["demod"], ref["noise"], ref["strength"], ref["bias"], clamp)
    got = modulated_bias_act(**mine, clamp=clamp, inplace=True)
    assert torch.equal(got, expected)
    grad = torch.randn(got.shape, generator=torch.Generator().manual_seed(5))
    for a_, w_ in zip(torch.autograd.grad(got, [mine[n] for n in names], grad),
                      torch.autograd.grad(expected, [ref[n] for n in names], grad),
                      strict=True):
        assert torch.equal(a_, w_)


def test_native_under_cpu_bf16_autocast_is_the_layer_sequence() -> None:
    t = _inputs(1)
    x16 = t["x"].to(torch.bfloat16)  # a conv output under autocast; the rest stays float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = _layers(x16.clone(), t["demod"], t["noise"], t["strength"], t["bias"], 0.5)
        got = modulated_bias_act(x16.clone(), t["demod"], t["noise"], t["strength"], t["bias"],
                                 clamp=0.5, inplace=True)
        # training: the layers' out-of-place sequence (rounds strength * noise to bf16 before
        # adding it, where addcmul_ does not: a different last bit, in the layers as here)
        expected_grad = _layers(x16.clone().requires_grad_(True), t["demod"], t["noise"],
                                t["strength"], t["bias"], 0.5)
        got_grad = modulated_bias_act(x16.clone().requires_grad_(True), t["demod"], t["noise"],
                                      t["strength"], t["bias"], clamp=0.5)
    assert got.dtype == torch.bfloat16 and got_grad.dtype == torch.bfloat16
    assert torch.equal(got, expected)
    assert torch.equal(got_grad, expected_grad)
    formula = _formula(x16.double(), t["demod"].double(), t["noise"].double(),
                       t["strength"].double(), t["bias"].double(), 0.2, SQRT2, 0.5)
    torch.testing.assert_close(got.double(), formula, atol=6e-2, rtol=6e-2)


@pytest.mark.parametrize("noise_batch", [2, 1])
@pytest.mark.parametrize("clamp", [None, 0.9])
def test_native_gradients_match_the_formula_to_second_order(noise_batch: int,
                                                            clamp: float | None) -> None:
    gen = torch.Generator().manual_seed(2)
    inputs = (
        torch.randn(2, 3, 4, 5, generator=gen, dtype=torch.float64),
        torch.rand(2, 3, generator=gen, dtype=torch.float64) + 0.5,
        torch.randn(noise_batch, 1, 4, 5, generator=gen, dtype=torch.float64),
        torch.randn(1, generator=gen, dtype=torch.float64),
        torch.randn(3, generator=gen, dtype=torch.float64),
    )
    inputs = tuple(t.requires_grad_(True) for t in inputs)

    def native(*a: Tensor) -> Tensor:
        return modulated_bias_act(*a, 0.2, SQRT2, clamp)

    assert torch.autograd.gradcheck(native, inputs)
    assert torch.autograd.gradgradcheck(native, inputs)
    y, y_ref = native(*inputs), _formula(*inputs, 0.2, SQRT2, clamp)
    torch.testing.assert_close(y, y_ref)
    g = torch.randn(y.shape, generator=gen, dtype=torch.float64)
    got = torch.autograd.grad(y, inputs, g, create_graph=True)
    want = torch.autograd.grad(y_ref, inputs, g, create_graph=True)
    for a_, w_ in zip(got, want, strict=True):
        assert a_.shape == w_.shape
        torch.testing.assert_close(a_, w_)
    # second order: d/d(inputs) of <grad_demod, v>
    v = torch.randn(got[1].shape, generator=gen, dtype=torch.float64)
    for a_, w_ in zip(torch.autograd.grad((got[1] * v).sum(), inputs, allow_unused=True),
                      torch.autograd.grad((want[1] * v).sum(), inputs, allow_unused=True),
                      strict=True):
        if a_ is None or w_ is None:
            assert (a_ is None or not a_.any()) and (w_ is None or not w_.any())
        else:
            torch.testing.assert_close(a_, w_)


def test_bad_inputs_are_rejected() -> None:
    t = _inputs()
    with pytest.raises(ValueError, match="noise needs a strength"):
        modulated_bias_act(t["x"], noise=t["noise"])
    with pytest.raises(ValueError, match="noise must be"):
        modulated_bias_act(t["x"], noise=t["noise"][:, :, :2], strength=t["strength"])
    with pytest.raises(ValueError, match="bias must be"):
        modulated_bias_act(t["x"], bias=torch.zeros(C + 1))
    with pytest.raises(ValueError, match="demod must be"):
        modulated_bias_act(t["x"], demod=torch.ones(B, C + 1))
    with pytest.raises(ValueError, match=r"x must be \[B, C, H, W\]"):
        modulated_bias_act(t["x"][0])


# --------------------------------------------------------------------------- #
# The switch and the dispatch
# --------------------------------------------------------------------------- #


def test_setting_from_env_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    assert fused_epilogue() == "auto"
    for raw, value in (("on", "on"), (" OFF ", "off"), ("", "auto"), ("Auto", "auto")):
        monkeypatch.setenv("STYLEBRIDGE_EPILOGUE", raw)
        assert fused_epilogue() == value
    monkeypatch.setenv("STYLEBRIDGE_EPILOGUE", "fast")
    with pytest.raises(StylebridgeError, match="STYLEBRIDGE_EPILOGUE='fast' is not one of") as exc:
        fused_epilogue()
    assert "\n" not in str(exc.value)
    set_fused_epilogue("off")  # the override wins over a bad env value
    assert fused_epilogue() == "off"
    set_fused_epilogue(None)
    with pytest.raises(StylebridgeError):
        fused_epilogue()
    with pytest.raises(ValueError, match="not one of"):
        set_fused_epilogue("yes")  # type: ignore[arg-type]


@pytest.mark.parametrize(("ops", "setting", "measured", "expected"), [
    ("auto", "auto", False, False),   # default: unmeasured, nothing changes
    ("auto", "auto", True, True),     # a GPU run measured it faster
    ("auto", "on", False, True),
    ("auto", "off", True, False),
    ("cuda", "auto", False, True),    # STYLEBRIDGE_OPS=cuda forces every kernel
    ("cuda", "off", False, False),
    ("native", "on", True, False),    # native always means native
    ("native", "auto", True, False),
])
def test_dispatch_choice(monkeypatch: pytest.MonkeyPatch, ops: str, setting: str,
                         measured: bool, expected: bool) -> None:
    monkeypatch.setattr(_cuda, "available", lambda required=False: True)  # as if it built
    monkeypatch.setattr(backend, "EPILOGUE_MEASURED_FASTER", measured)
    monkeypatch.setenv("STYLEBRIDGE_OPS", ops)
    monkeypatch.setenv("STYLEBRIDGE_EPILOGUE", setting)
    assert backend.use_fused_epilogue(True) is expected
    assert backend.use_fused_epilogue(False) is False  # CPU tensors: always native


@pytest.mark.parametrize("chosen", [True, False])
def test_wrapper_routes_to_the_kernel_when_chosen(monkeypatch: pytest.MonkeyPatch,
                                                  chosen: bool) -> None:
    calls: list[tuple] = []

    def fake_kernel(*args: object) -> Tensor:
        calls.append(args)
        return torch.zeros(1)

    monkeypatch.setattr(epilogue_module, "use_fused_epilogue", lambda is_cuda: chosen)
    monkeypatch.setattr(_cuda, "modulated_bias_act", fake_kernel)
    t = _inputs(1)
    x16 = t["x"].to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = modulated_bias_act(x16, t["demod"], t["noise"], t["strength"], t["bias"],
                                 0.1, 2.0, 0.5)
    if not chosen:
        assert not calls and out.shape == x16.shape
        return
    (args,) = calls
    assert args[0] is x16 and args[5:] == (0.1, 2.0, 0.5)
    # under autocast the parameters follow the activation's dtype, as in the layers
    assert all(a.dtype == torch.bfloat16 for a in args[1:5])


# --------------------------------------------------------------------------- #
# CUDA vs native (needs a GPU)
# --------------------------------------------------------------------------- #


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("noise_batch", [B, 1])
@pytest.mark.parametrize("clamp", [None, 0.5])
@pytest.mark.parametrize("channels_last", [False, True])
def test_cuda_matches_native(dtype: torch.dtype, noise_batch: int, clamp: float | None,
                             channels_last: bool) -> None:
    assert _cuda.available(required=True)
    # both from the same dtype-rounded inputs: the reference computes in float32
    t = {k: v.cuda().to(dtype) for k, v in _inputs(noise_batch, seed=3).items()}
    ref = {k: v.float().requires_grad_(True) for k, v in t.items()}
    cu = {k: v.clone().requires_grad_(True) for k, v in t.items()}
    x_cu = cu["x"].to(memory_format=torch.channels_last) if channels_last else cu["x"]
    y_ref = modulated_bias_act_native(**ref, clamp=clamp)
    y_cu = _cuda.modulated_bias_act(x_cu, cu["demod"], cu["noise"], cu["strength"], cu["bias"],
                                    0.2, SQRT2, clamp)
    assert y_cu.dtype == dtype and y_cu.shape == y_ref.shape
    tol = 1e-5 if dtype == torch.float32 else 6e-2
    torch.testing.assert_close(y_cu.float(), y_ref.detach(), atol=tol, rtol=tol)
    grad = torch.randn_like(y_ref)
    y_ref.backward(grad)
    y_cu.backward(grad.to(dtype))
    keep = torch.ones_like(y_ref, dtype=torch.bool)
    if clamp is not None and dtype != torch.float32:
        # rounding may decide "clamped or not" differently right at the bound
        keep = (y_ref.detach().abs() - clamp).abs() > 1e-2
    torch.testing.assert_close(torch.where(keep, cu["x"].grad.float(), ref["x"].grad),
                               ref["x"].grad, atol=tol, rtol=tol)
    if keep.all():
        for name, scale in (("demod", 50), ("noise", 20), ("strength", 400), ("bias", 50)):
            torch.testing.assert_close(cu[name].grad.float(), ref[name].grad,
                                       atol=tol * scale, rtol=tol * 2)
    set_fused_epilogue("on")
    torch.testing.assert_close(modulated_bias_act(**{k: v.detach() for k, v in cu.items()},
                                                  clamp=clamp), y_cu.detach())


# --------------------------------------------------------------------------- #
# The torch.library registration, without the extension (fake tensors, dynamo)
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("channels_last", [False, True])
def test_fake_keeps_shape_dtype_and_layout(channels_last: bool) -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        x = torch.empty(2, 5, 3, 4, dtype=torch.bfloat16)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = torch.ops.stylebridge.modulated_bias_act(
            x, torch.empty(2, 5, dtype=torch.bfloat16), torch.empty(1, 1, 3, 4,
                                                                    dtype=torch.bfloat16),
            torch.empty(1, dtype=torch.bfloat16), None, 0.2, 1.4, None)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    assert y.shape == (2, 5, 3, 4) and y.dtype == torch.bfloat16
    assert y.is_contiguous(memory_format=layout)  # the kernel keeps a channels-last input's layout


def test_registered_autograd_traces_to_second_order_with_our_ops() -> None:
    """make_fx with fake tensors runs the op's forward, backward and double backward through
    the fake implementations: one fused node forward, the activation's mask by
    ``fused_bias_act_grad`` (backward and double backward), the rest plain reductions."""
    from torch.fx.experimental.proxy_tensor import make_fx

    def fn(x: Tensor, d: Tensor, n: Tensor, s: Tensor, b: Tensor) -> tuple[Tensor, ...]:
        y = torch.ops.stylebridge.modulated_bias_act(x, d, n, s, b, 0.2, 2.0, 0.5)
        gx, gd = torch.autograd.grad(y.square().sum(), (x, d), create_graph=True)
        (ggx,) = torch.autograd.grad(gd.sum(), x)
        return y, gx, gd, ggx

    inputs = [torch.randn(2, 3, 4, 4, requires_grad=True), torch.rand(2, 3, requires_grad=True),
              torch.randn(1, 1, 4, 4, requires_grad=True), torch.randn(1, requires_grad=True),
              torch.randn(3, requires_grad=True)]
    graph = make_fx(fn, tracing_mode="fake")(*inputs)
    targets = [str(n.target) for n in graph.graph.nodes if n.op == "call_function"]
    assert targets.count("stylebridge.modulated_bias_act.default") == 1
    assert targets.count("stylebridge.fused_bias_act_grad.default") >= 2
    shapes = [tuple(v.meta["val"].shape) for n in graph.graph.nodes if n.op == "output"
              for v in n.args[0]]
    assert shapes == [(2, 3, 4, 4), (2, 3, 4, 4), (2, 3), (2, 3, 4, 4)]


def test_dispatch_traces_without_graph_breaks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both choices (the setting and the backend's one-time build) are evaluated once while
    tracing: dynamo takes the dispatching function whole (fullgraph=True fails on a break)."""
    monkeypatch.setattr(_cuda, "_precheck", lambda: "no CUDA in this test")
    monkeypatch.setenv("STYLEBRIDGE_EPILOGUE", "on")
    _cuda.reset()
    t = _inputs(1)

    def fn(x: Tensor, d: Tensor, n: Tensor, s: Tensor, b: Tensor) -> Tensor:
        assert not backend.use_fused_epilogue(True)  # what a CUDA tensor would ask
        return modulated_bias_act(x, d, n, s, b, clamp=0.5) * 2

    args = (t["x"], t["demod"], t["noise"], t["strength"], t["bias"])
    torch._dynamo.reset()
    with pytest.warns(_cuda.CudaOpsUnavailableWarning):
        got = torch.compile(fn, fullgraph=True, backend="eager")(*args)
    assert torch.equal(got, fn(*args))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(("shape", "channels_last"), [((2, 40000, 1, 2), False),
                                                      ((1, 4, 300, 300), True)])
def test_cuda_more_rows_than_the_grid_has(shape: tuple[int, int, int, int],
                                          channels_last: bool) -> None:
    """Over 65,535 memory rows (planes, or pixels for channels-last): the kernel loops over
    the grid's y dimension."""
    assert _cuda.available(required=True)
    gen = torch.Generator(device="cuda").manual_seed(4)
    batch, channels, height, width = shape
    x = torch.randn(shape, device="cuda", generator=gen)
    demod = torch.rand(batch, channels, device="cuda", generator=gen) + 0.5
    noise = torch.randn(batch, 1, height, width, device="cuda", generator=gen)
    strength = torch.full((1,), 0.3, device="cuda")
    bias = torch.randn(channels, device="cuda", generator=gen)
    want = _formula(x, demod, noise, strength, bias, 0.2, SQRT2, None)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    got = _cuda.modulated_bias_act(x, demod, noise, strength, bias, 0.2, SQRT2, None)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
