"""Tests for the tiled upfirdn2d kernel's switch, dispatch and registration (no build needed).

* ``STYLEBRIDGE_UPFIRDN2D`` / :func:`set_upfirdn2d_tiled` and the "measured faster" constant;
* which implementation each call reaches (native depthwise convolution, the generic kernel,
  the tiled kernel) for each setting, with the backend's choice faked;
* the ``stylebridge::upfirdn2d_tiled`` custom op's fake implementation and its autograd
  (traced with fake tensors: the backward is the tiled op again);
* ``gpu``: the CUDA tiled kernel against the native op (skipped without a CUDA device).

The compiled kernel itself (its CPU path, which emulates the CUDA grid block by block, load
phase then compute phase) is checked in ``tests/test_ops.py``'s build test.
"""

from __future__ import annotations

import importlib

import pytest
import torch
from torch import Tensor

from stylebridge.core.ops import (
    _cuda,
    backend,
    set_upfirdn2d_tiled,
    upfirdn2d_tiled,
)
from stylebridge.core.ops.upfirdn2d import upfirdn2d_native
from stylebridge.errors import StylebridgeError

upfirdn2d_module = importlib.import_module("stylebridge.core.ops.upfirdn2d")


pytestmark = pytest.mark.usefixtures("clean_ops_state")


def blur(size: int = 4) -> Tensor:
    k = torch.arange(1.0, size + 1)
    k = torch.outer(k, k)
    return k / k.sum()


# --------------------------------------------------------------------------- #
# The setting
# --------------------------------------------------------------------------- #


def test_setting_from_env_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    assert upfirdn2d_tiled() == "auto"
    for raw, value in (("tiled", "tiled"), (" GENERIC ", "generic"), ("", "auto"),
                       ("Auto", "auto")):
        monkeypatch.setenv("STYLEBRIDGE_UPFIRDN2D", raw)
        assert upfirdn2d_tiled() == value
    monkeypatch.setenv("STYLEBRIDGE_UPFIRDN2D", "fast")
    with pytest.raises(StylebridgeError,
                       match="STYLEBRIDGE_UPFIRDN2D='fast' is not one of auto, tiled, generic"
                       ) as exc:
        upfirdn2d_tiled()
    assert "\n" not in str(exc.value)
    set_upfirdn2d_tiled("generic")  # the override wins over a bad env value
    assert upfirdn2d_tiled() == "generic"
    set_upfirdn2d_tiled(None)
    with pytest.raises(StylebridgeError):
        upfirdn2d_tiled()
    with pytest.raises(ValueError, match="not one of"):
        set_upfirdn2d_tiled("on")  # type: ignore[arg-type]


def test_unmeasured_means_off_by_default() -> None:
    assert backend.TILED_UPFIRDN2D_MEASURED_FASTER is False
    assert backend.use_tiled_upfirdn2d() is False


@pytest.mark.parametrize(("setting", "measured", "ops", "expected"), [
    ("auto", False, "auto", False),   # default: unmeasured, nothing changes
    ("auto", True, "auto", True),     # a GPU run measured it faster
    ("auto", False, "cuda", False),   # forcing the kernels does not pick which kernel
    ("tiled", False, "auto", True),
    ("tiled", False, "native", True),  # the setting alone; the backend decides on kernels
    ("generic", True, "auto", False),
])
def test_tiled_choice(monkeypatch: pytest.MonkeyPatch, setting: str, measured: bool, ops: str,
                      expected: bool) -> None:
    monkeypatch.setattr(backend, "TILED_UPFIRDN2D_MEASURED_FASTER", measured)
    monkeypatch.setenv("STYLEBRIDGE_OPS", ops)
    monkeypatch.setenv("STYLEBRIDGE_UPFIRDN2D", setting)
    assert backend.use_tiled_upfirdn2d() is expected


@pytest.mark.parametrize(("up", "down", "kernel_hw", "supported"), [
    ((1, 1), (1, 1), (4, 4), True),
    ((2, 2), (1, 1), (4, 4), True),
    ((1, 1), (2, 2), (8, 8), True),
    ((2, 2), (2, 2), (1, 7), True),
    ((2, 1), (1, 1), (4, 4), False),   # factors differ between the axes
    ((1, 1), (1, 2), (4, 4), False),
    ((3, 3), (1, 1), (4, 4), False),   # only 1 and 2
    ((1, 1), (4, 4), (4, 4), False),
    ((1, 1), (1, 1), (9, 4), False),   # kernels up to 8x8
    ((2, 2), (1, 1), (4, 9), False),
])
def test_tiled_supported(up: tuple[int, int], down: tuple[int, int],
                         kernel_hw: tuple[int, int], supported: bool) -> None:
    assert _cuda.tiled_supported(up, down, kernel_hw) is supported


# --------------------------------------------------------------------------- #
# The dispatch: native, generic kernel or tiled kernel
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(("setting", "measured", "ops", "up", "down", "kernel_size", "expected"), [
    # auto and unmeasured (the default): today's behaviour
    ("auto", False, "auto", 2, 1, 4, "generic"),
    ("auto", False, "auto", 1, 2, 4, "generic"),
    ("auto", False, "auto", 1, 1, 4, "native"),    # the blur: depthwise convolution
    ("auto", False, "cuda", 1, 1, 4, "generic"),   # STYLEBRIDGE_OPS=cuda: every call a kernel
    ("generic", True, "auto", 2, 1, 4, "generic"),
    ("generic", True, "auto", 1, 1, 4, "native"),
    # tiled: wherever it covers the arguments, the blur included
    ("tiled", False, "auto", 2, 1, 4, "tiled"),
    ("tiled", False, "auto", 1, 2, 4, "tiled"),
    ("tiled", False, "auto", 2, 2, 8, "tiled"),
    ("tiled", False, "auto", 1, 1, 4, "tiled"),
    ("tiled", False, "auto", 1, 1, 9, "native"),   # a blur it does not cover: as before
    ("tiled", False, "auto", 3, 1, 4, "generic"),  # resampling it does not cover
    ("tiled", False, "auto", (2, 1), 1, 4, "generic"),
    ("tiled", False, "cuda", 1, 1, 9, "generic"),
    ("tiled", False, "native", 2, 1, 4, "native"),  # native always means native
    # auto after a GPU run measured it faster
    ("auto", True, "auto", 2, 1, 4, "tiled"),
    ("auto", True, "auto", 1, 1, 4, "tiled"),
])
def test_dispatch_matrix(monkeypatch: pytest.MonkeyPatch, setting: str, measured: bool,
                         ops: str, up: int | tuple[int, int], down: int, kernel_size: int,
                         expected: str) -> None:
    calls: list[str] = []

    def recorder(name: str):  # type: ignore[no-untyped-def]
        def op(x: Tensor, *args: object) -> Tensor:
            calls.append(name)
            return x
        return op

    monkeypatch.setattr(backend, "TILED_UPFIRDN2D_MEASURED_FASTER", measured)
    monkeypatch.setenv("STYLEBRIDGE_OPS", ops)
    monkeypatch.setenv("STYLEBRIDGE_UPFIRDN2D", setting)
    # as if the tensor were on a GPU and the extension built (native stays native)
    monkeypatch.setattr(upfirdn2d_module, "use_cuda", lambda is_cuda: ops != "native")
    monkeypatch.setattr(_cuda, "_upfirdn2d_op", recorder("generic"))
    monkeypatch.setattr(_cuda, "_upfirdn2d_tiled_op", recorder("tiled"))
    monkeypatch.setattr(upfirdn2d_module, "upfirdn2d_native", recorder("native"))
    x = torch.randn(1, 2, 12, 12)
    upfirdn2d_module.upfirdn2d(x, blur(kernel_size), up=up, down=down, pad=(1, 1))
    assert calls == [expected]


def test_cpu_tensors_never_reach_a_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_cuda, "available", lambda required=False: pytest.fail("built"))
    set_upfirdn2d_tiled("tiled")
    x, k = torch.randn(1, 2, 8, 8), blur()
    for up, down in ((1, 1), (2, 1), (1, 2)):
        got = upfirdn2d_module.upfirdn2d(x, k, up=up, down=down, pad=(2, 1))
        assert torch.equal(got, upfirdn2d_native(x, k, up, down, (2, 1)))


# --------------------------------------------------------------------------- #
# The custom op without the extension: fake tensors, autograd, dynamo
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(("up", "down", "pad", "kernel_hw"), [
    ((1, 1), (1, 1), (2, 1, 2, 1), (4, 4)),
    ((2, 2), (1, 1), (2, 1, 2, 1), (4, 4)),
    ((1, 1), (2, 2), (1, 1, 1, 1), (4, 4)),
    ((2, 2), (2, 2), (-2, -1, 1, -1), (4, 4)),
    ((3, 2), (2, 1), (-1, 2, 0, -2), (5, 3)),   # not covered: the same shape rule
])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fake_shapes_match_the_native_op(up: tuple[int, int], down: tuple[int, int],
                                         pad: tuple[int, int, int, int],
                                         kernel_hw: tuple[int, int], dtype: torch.dtype) -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    want = upfirdn2d_native(torch.zeros(2, 3, 9, 11), torch.ones(kernel_hw), up, down, pad)
    with FakeTensorMode():
        y = torch.ops.stylebridge.upfirdn2d_tiled(torch.empty(2, 3, 9, 11, dtype=dtype),
                                                  torch.empty(kernel_hw), *up, *down, *pad)
    assert y.shape == want.shape and y.dtype == dtype


def test_backward_is_the_tiled_op_with_flipped_kernel_and_swapped_factors() -> None:
    """make_fx with fake tensors runs forward, backward and double backward through the fake
    implementation: every node is the tiled op; the backward's factors are swapped and its
    kernel is the flipped one."""
    from torch.fx.experimental.proxy_tensor import make_fx

    def fn(x: Tensor, k: Tensor) -> tuple[Tensor, ...]:
        y = torch.ops.stylebridge.upfirdn2d_tiled(x, k, 2, 2, 1, 1, 2, 1, 2, 1)
        (gx,) = torch.autograd.grad(y.square().sum(), (x,), create_graph=True)
        (ggx,) = torch.autograd.grad(gx.sum(), (x,))
        return y, gx, ggx

    graph = make_fx(fn, tracing_mode="fake")(torch.randn(1, 2, 5, 6, requires_grad=True),
                                             torch.randn(4, 4))
    nodes = [n for n in graph.graph.nodes if n.op == "call_function"
             and str(n.target).startswith("stylebridge.")]
    assert {str(n.target) for n in nodes} == {"stylebridge.upfirdn2d_tiled.default"}
    assert len(nodes) >= 3
    factors = sorted({tuple(n.args[2:6]) for n in nodes})
    assert factors == [(1, 1, 2, 2), (2, 2, 1, 1)]  # forward (up 2) and backward (down 2)
    backward = next(n for n in nodes if tuple(n.args[2:6]) == (1, 1, 2, 2))
    assert str(backward.args[1].target) == "aten.flip.default"
    assert tuple(backward.args[6:]) == (1, 1, 1, 1)  # upfirdn2d_backward_pad
    shapes = [tuple(v.meta["val"].shape) for n in graph.graph.nodes if n.op == "output"
              for v in n.args[0]]
    assert shapes == [(1, 2, 10, 12), (1, 2, 5, 6), (1, 2, 5, 6)]


def test_dispatch_traces_without_graph_breaks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The setting is evaluated once while tracing (fullgraph=True fails on a break)."""
    monkeypatch.setenv("STYLEBRIDGE_UPFIRDN2D", "tiled")
    x, k = torch.randn(1, 2, 8, 8), blur()

    def fn(t: Tensor) -> Tensor:
        assert backend.use_tiled_upfirdn2d()
        return upfirdn2d_module.upfirdn2d(t, k, up=2, pad=(2, 1)) * 2

    torch._dynamo.reset()
    got = torch.compile(fn, fullgraph=True, backend="eager")(x)
    assert torch.equal(got, fn(x))


# --------------------------------------------------------------------------- #
# CUDA vs native (needs a GPU)
# --------------------------------------------------------------------------- #

GPU_CASES = [
    ((1, 1), (1, 1), (2, 1, 2, 1), (4, 4)),
    ((2, 2), (1, 1), (2, 1, 2, 1), (4, 4)),
    ((1, 1), (2, 2), (1, 1, 1, 1), (4, 4)),
    ((2, 2), (2, 2), (-2, -1, 1, -1), (4, 4)),
    ((1, 1), (2, 2), (4, -1, -1, 3), (8, 8)),
    ((2, 2), (1, 1), (-3, 2, 1, -2), (3, 5)),
]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize(("up", "down", "pad", "kernel_hw"), GPU_CASES)
@pytest.mark.parametrize("shape", [(2, 3, 9, 11), (2, 4, 70, 133)])
def test_cuda_tiled_matches_native(dtype: torch.dtype, up: tuple[int, int],
                                   down: tuple[int, int], pad: tuple[int, int, int, int],
                                   kernel_hw: tuple[int, int],
                                   shape: tuple[int, int, int, int]) -> None:
    assert _cuda.available(required=True)
    gen = torch.Generator(device="cuda").manual_seed(5)
    x64 = torch.randn(shape, device="cuda", generator=gen, dtype=torch.float64)
    kernel = torch.rand(kernel_hw, device="cuda", generator=gen, dtype=torch.float64)
    kernel = (kernel / kernel.sum()).float()
    x_ref = x64.float().requires_grad_(True)
    x_cu = x64.to(dtype).requires_grad_(True)
    y_ref = upfirdn2d_native(x_ref, kernel, up, down, pad)
    y_cu = torch.ops.stylebridge.upfirdn2d_tiled(x_cu, kernel, *up, *down, *pad)
    assert y_cu.dtype == dtype and y_cu.shape == y_ref.shape
    tol = {torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 6e-2}[dtype]
    torch.testing.assert_close(y_cu.float(), y_ref.detach(), atol=tol, rtol=tol)
    grad = torch.randn_like(y_ref)
    y_ref.backward(grad)
    y_cu.backward(grad.to(dtype))
    torch.testing.assert_close(x_cu.grad.float(), x_ref.grad, atol=tol, rtol=tol)
    set_upfirdn2d_tiled("tiled")  # the public entry point reaches the same kernel
    from stylebridge.core.ops import upfirdn2d

    torch.testing.assert_close(upfirdn2d(x_cu.detach(), kernel, up, down, pad), y_cu.detach())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tiled_more_planes_than_the_grid_has() -> None:
    """Over 65,535 planes: the blocks loop over the grid's y dimension (with a barrier before
    each reload of the tile)."""
    assert _cuda.available(required=True)
    x = torch.randn(2, 40000, 5, 7, device="cuda")
    k = blur().cuda()
    for up, down in ((1, 1), (2, 1), (1, 2)):
        torch.testing.assert_close(
            torch.ops.stylebridge.upfirdn2d_tiled(x, k, up, up, down, down, 2, 1, 2, 1),
            upfirdn2d_native(x, k, up, down, (2, 1)), atol=1e-5, rtol=1e-5)
