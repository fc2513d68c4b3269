"""The compiled extension checked for real, without a GPU (run by ``tests/test_ops.py``'s
``test_build_cuda_extension_with_nvcc`` in a fresh process, ``STYLEBRIDGE_TEST_BUILD=1``).

The extension runs its kernels' element code (and, for the tiled upfirdn2d, an emulation of
the grid: block by block, load, barrier, compute) on CPU tensors too, so this script builds it
with nvcc and checks every op's CPU path against the native ops in every dtype, their
autograd (gradcheck, gradgradcheck), ``torch.library.opcheck`` and ``torch.compile``.
Argument: the upfirdn2d cases as JSON.  Last line of output: a JSON report.

A flat script, as it ran before from a string: the lambdas are called at once inside the
loop that defines them (B023), and zips pair lists built side by side (B905).
"""
# ruff: noqa: B023, B905, E731

from __future__ import annotations

import itertools
import json
import math
import sys
import time

import torch

from stylebridge.core.ops import _cuda, backend
from stylebridge.core.ops.epilogue import modulated_bias_act_native
from stylebridge.core.ops.fused_act import fused_leaky_relu_native
from stylebridge.core.ops.upfirdn2d import upfirdn2d_native

start = time.perf_counter()
ext = _cuda.build()
build_seconds = time.perf_counter() - start

# The extension runs its element code on CPU tensors too: check it here.
gen = torch.Generator().manual_seed(0)
for clamp in (None, 0.7):
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-6),
                       (torch.float16, 1e-2), (torch.bfloat16, 6e-2)):
        x = torch.randn(3, 5, 4, 6, generator=gen, dtype=torch.float64)
        b = torch.randn(5, generator=gen, dtype=torch.float64)
        ref = fused_leaky_relu_native(x, b, 0.2, math.sqrt(2), clamp)
        got = _cuda.fused_leaky_relu(x.to(dtype), b.to(dtype), 0.2, math.sqrt(2), clamp)
        assert got.dtype == dtype
        torch.testing.assert_close(got.double(), ref, atol=tol, rtol=tol)
    x = torch.randn(2, 3, 4, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, generator=gen, dtype=torch.float64, requires_grad=True)
    fn = lambda x, b: _cuda.fused_leaky_relu(x, b, 0.2, math.sqrt(2), clamp)
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))
    y = fn(x, b)
    g = torch.randn_like(y)
    got = torch.autograd.grad(y, (x, b), g)
    want = torch.autograd.grad(fused_leaky_relu_native(x, b, 0.2, math.sqrt(2), clamp),
                               (x, b), g)
    for a_, w_ in zip(got, want):
        torch.testing.assert_close(a_, w_)
x = torch.randn(2, 3, generator=gen)
torch.testing.assert_close(_cuda.fused_leaky_relu(x, None, 0.1, 2.0, None),
                           fused_leaky_relu_native(x, None, 0.1, 2.0, None))
# channels-last activations keep their layout (the bias is indexed by the fastest
# dimension there), forward and backward, and give the contiguous numbers
cl = torch.channels_last
for clamp in (None, 0.7):
    x = torch.randn(2, 5, 3, 4, generator=gen, dtype=torch.float64).to(memory_format=cl)
    b = torch.randn(5, generator=gen, dtype=torch.float64)
    got = _cuda.fused_leaky_relu(x, b, 0.2, math.sqrt(2), clamp)
    assert got.is_contiguous(memory_format=cl) and not got.is_contiguous()
    torch.testing.assert_close(got, fused_leaky_relu_native(x.contiguous(), b, 0.2,
                                                            math.sqrt(2), clamp),
                               atol=1e-12, rtol=1e-12)
    xg, bg = x.detach().requires_grad_(True), b.detach().requires_grad_(True)
    fn = lambda x, b: _cuda.fused_leaky_relu(x, b, 0.2, math.sqrt(2), clamp)
    y = fn(xg, bg)
    for g in (torch.randn_like(y), torch.randn_like(y).contiguous()):  # either layout
        got = torch.autograd.grad(y, (xg, bg), g, retain_graph=True)
        want = torch.autograd.grad(
            fused_leaky_relu_native(xg, bg, 0.2, math.sqrt(2), clamp), (xg, bg), g)
        assert got[0].is_contiguous(memory_format=cl)
        for a_, w_ in zip(got, want):
            torch.testing.assert_close(a_, w_, atol=1e-12, rtol=1e-12)
    assert torch.autograd.gradcheck(fn, (xg, bg))
    assert torch.autograd.gradgradcheck(fn, (xg, bg))
    torch.library.opcheck(torch.ops.stylebridge.fused_bias_act.default,
                          (xg, bg, 0.2, 1.4, clamp))
    torch.library.opcheck(torch.ops.stylebridge.fused_bias_act_grad.default,
                          (torch.randn_like(y).contiguous().requires_grad_(), y.detach(),
                           0.2, 1.4, clamp))

cases = json.loads(sys.argv[1])
for up, down, pad, khw in cases:
    up, down, pad = tuple(up), tuple(down), tuple(pad)
    x = torch.randn(2, 3, 7, 9, generator=gen, dtype=torch.float64)
    k = torch.randn(*khw, generator=gen, dtype=torch.float64)
    ref = upfirdn2d_native(x, k, up, down, pad)
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5),
                       (torch.float16, 3e-2), (torch.bfloat16, 2e-1)):
        got = _cuda.upfirdn2d(x.to(dtype), k, up, down, pad)
        assert got.dtype == dtype and got.shape == ref.shape, (got.shape, ref.shape)
        torch.testing.assert_close(got.double(), ref, atol=tol, rtol=tol)
    xs = torch.randn(1, 2, 4, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    fn = lambda t: _cuda.upfirdn2d(t, k, up, down, pad)
    assert torch.autograd.gradcheck(fn, (xs,))
    assert torch.autograd.gradgradcheck(fn, (xs,))

# the torch.library registrations: schema, fake and autograd (opcheck), and
# torch.compile through the ops without a graph break (fullgraph=True), grads included
x = torch.randn(2, 3, 5, 6, generator=gen, dtype=torch.float64, requires_grad=True)
b = torch.randn(3, generator=gen, dtype=torch.float64, requires_grad=True)
k = torch.randn(4, 4, generator=gen, dtype=torch.float64)
ops = torch.ops.stylebridge
for args in ((x, b, 0.2, 1.4, None), (x, None, 0.0, 2.0, 0.5)):
    torch.library.opcheck(ops.fused_bias_act.default, args)
y = ops.fused_bias_act(x, b, 0.2, 1.4, 0.5).detach()
torch.library.opcheck(ops.fused_bias_act_grad.default,
                      (torch.randn_like(y).requires_grad_(), y, 0.2, 1.4, 0.5))
for pad in ((2, 1, 2, 1), (1, 1, 1, 1)):
    torch.library.opcheck(ops.upfirdn2d.default, (x, k, 2, 2, 1, 1, *pad))
    torch.library.opcheck(ops.upfirdn2d.default, (x, k, 1, 1, 2, 2, *pad))

def both(x, b):
    h = _cuda.fused_leaky_relu(x, b, 0.2, math.sqrt(2), None)
    return _cuda.upfirdn2d(h, k, (2, 2), (1, 1), (2, 1, 2, 1))

compiled = torch.compile(both, fullgraph=True, backend="aot_eager")
got, want = compiled(x, b), both(x, b)
torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)
g = torch.randn_like(got)
for a_, w_ in zip(torch.autograd.grad(got, (x, b), g), torch.autograd.grad(want, (x, b), g)):
    torch.testing.assert_close(a_, w_, atol=1e-12, rtol=1e-12)

# the fused styled-conv epilogue (stylebridge::modulated_bias_act): its CPU path against
# the native three-op sequence (contiguous and channels-last, batched and shared noise,
# each optional input left out in turn), gradients, opcheck, compile


def epilogue_inputs(noise_batch, dtype=torch.float64, grad=False):
    t = dict(x=torch.randn(3, 5, 4, 6, generator=gen, dtype=dtype),
             demod=torch.rand(3, 5, generator=gen, dtype=dtype) + 0.5,
             noise=torch.randn(noise_batch, 1, 4, 6, generator=gen, dtype=dtype),
             strength=torch.randn(1, generator=gen, dtype=dtype),
             bias=torch.randn(5, generator=gen, dtype=dtype))
    return {k: v.requires_grad_(grad) for k, v in t.items()}

leave_out = ((), ("demod",), ("noise", "strength"), ("bias",),
             ("demod", "noise", "strength", "bias"))
for channels_last in (False, True):
    for noise_batch in (3, 1):
        for missing in leave_out:
            for clamp in (None, 0.7):
                ref_in = epilogue_inputs(noise_batch)
                for name in missing:
                    ref_in[name] = None
                ref = modulated_bias_act_native(**ref_in, negative_slope=0.2,
                                                scale=math.sqrt(2), clamp=clamp)
                for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-6),
                                   (torch.float16, 1e-2), (torch.bfloat16, 6e-2)):
                    args = {k: None if v is None else v.to(dtype) for k, v in ref_in.items()}
                    if channels_last:
                        args["x"] = args["x"].to(memory_format=torch.channels_last)
                    got = _cuda.modulated_bias_act(**args, negative_slope=0.2,
                                                   scale=math.sqrt(2), clamp=clamp)
                    assert got.dtype == dtype and got.shape == ref.shape
                    layout = torch.channels_last if channels_last else torch.contiguous_format
                    assert got.is_contiguous(memory_format=layout)
                    torch.testing.assert_close(got.double(), ref, atol=tol, rtol=tol)
for noise_batch in (2, 1):
    for clamp in (None, 0.9):
        t = epilogue_inputs(noise_batch, grad=True)
        t["x"] = torch.randn(2, 3, 4, 5, generator=gen, dtype=torch.float64,
                             requires_grad=True)
        t["demod"] = (torch.rand(2, 3, generator=gen, dtype=torch.float64) + 0.5
                      ).requires_grad_(True)
        t["noise"] = torch.randn(noise_batch, 1, 4, 5, generator=gen, dtype=torch.float64,
                                 requires_grad=True)
        t["bias"] = torch.randn(3, generator=gen, dtype=torch.float64, requires_grad=True)
        names = ("x", "demod", "noise", "strength", "bias")
        inputs = tuple(t[k] for k in names)
        fn = lambda *a: _cuda.modulated_bias_act(*a, 0.2, math.sqrt(2), clamp)
        assert torch.autograd.gradcheck(fn, inputs)
        assert torch.autograd.gradgradcheck(fn, inputs)
        y = fn(*inputs)
        g = torch.randn_like(y)
        want = torch.autograd.grad(
            modulated_bias_act_native(*inputs, 0.2, math.sqrt(2), clamp), inputs, g)
        for a_, w_ in zip(torch.autograd.grad(y, inputs, g), want):
            torch.testing.assert_close(a_, w_)
t = epilogue_inputs(3, grad=True)
for args in ((t["x"], t["demod"], t["noise"], t["strength"], t["bias"], 0.2, 1.4, None),
             (t["x"].detach().to(memory_format=torch.channels_last).requires_grad_(),
              None, t["noise"][:1], t["strength"], None, 0.0, 2.0, 0.5),
             (t["x"], t["demod"], None, None, t["bias"], 0.2, 1.4, 0.5)):
    torch.library.opcheck(ops.modulated_bias_act.default, args)

def epilogue(x, d, n, s, b):
    h = _cuda.modulated_bias_act(x, d, n, s, b, 0.2, math.sqrt(2), 0.8)
    return _cuda.upfirdn2d(h, k, (2, 2), (1, 1), (2, 1, 2, 1))

inputs = (t["x"], t["demod"], t["noise"], t["strength"], t["bias"])
compiled = torch.compile(epilogue, fullgraph=True, backend="aot_eager")
got, want = compiled(*inputs), epilogue(*inputs)
torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)
g = torch.randn_like(got)
for a_, w_ in zip(torch.autograd.grad(got, inputs, g), torch.autograd.grad(want, inputs, g)):
    torch.testing.assert_close(a_, w_, atol=1e-12, rtol=1e-12)

# the tiled upfirdn2d kernel (stylebridge::upfirdn2d_tiled): its CPU path emulates the
# CUDA grid (every block: the load phase for every thread, then the compute phase), with a
# NaN-filled shared buffer and bounds checks, so these run the GPU's tiling and edges

for kh, kw, ux, uy, dx, dy in itertools.product((1, 4, 8, 9), (1, 5, 9), (1, 2, 3),
                                                (1, 2), (1, 2, 3), (1, 2)):
    assert ext.upfirdn2d_tiled_supported(kh, kw, ux, uy, dx, dy) == _cuda.tiled_supported(
        (ux, uy), (dx, dy), (kh, kw)), (kh, kw, ux, uy, dx, dy)
assert ext.upfirdn2d_tiled_supported(4, 4, 2, 2, 1, 1)
assert ext.upfirdn2d_tiled_supported(8, 8, 1, 1, 2, 2)
tiled_cases = [c for c in cases if _cuda.tiled_supported(tuple(c[0]), tuple(c[1]),
                                                         tuple(c[3]))]
assert len(tiled_cases) == 6, tiled_cases
tiled_cases += [
    ((1, 1), (1, 1), (-2, 1, 3, -1), (4, 4)),   # blur with crops
    ((2, 2), (1, 1), (-3, 2, 1, -2), (3, 5)),   # up 2, crops, odd kernel
    ((1, 1), (2, 2), (4, -1, -1, 3), (8, 8)),   # down 2, the 8x8 path
    ((2, 2), (2, 2), (0, 3, 2, 0), (7, 6)),     # up and down, the 8x8 path
    ((2, 2), (1, 1), (5, 5, 0, 6), (1, 8)),     # pads wider than the kernel
    ((1, 1), (1, 1), (3, 3, 3, 3), (6, 2)),
]
# small tiles (outputs w x h, threads): several tiles per plane, partial edge tiles,
# fewer and more threads than outputs, a single thread
tiles = ((5, 3, 7), (4, 4, 16), (1, 1, 1), (16, 2, 5), (3, 7, 64), (2, 9, 3))
infinite_outputs = 0
for up, down, pad, khw in tiled_cases:
    up, down, pad = tuple(up), tuple(down), tuple(pad)
    k = torch.randn(*khw, generator=gen, dtype=torch.float64)
    for shape in ((2, 3, 7, 9), (1, 2, 13, 6)):
        x = torch.randn(*shape, generator=gen, dtype=torch.float64)
        ref = upfirdn2d_native(x, k, up, down, pad)
        for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5),
                           (torch.float16, 3e-2), (torch.bfloat16, 2e-1)):
            for tw, th, threads in tiles:
                got = ext.upfirdn2d_tiled_with_tile(x.to(dtype), k, up[0], up[1], down[0],
                                                    down[1], *pad, tw, th, threads)
                assert got.dtype == dtype and got.shape == ref.shape
                torch.testing.assert_close(got.double(), ref, atol=tol, rtol=tol)
            got = torch.ops.stylebridge.upfirdn2d_tiled(x.to(dtype), k, *up, *down, *pad)
            torch.testing.assert_close(got.double(), ref, atol=tol, rtol=tol)
        # infinities: the tiled kernel multiplies only the samples under each output's
        # real taps (as the generic kernel does), so no 0 * inf turns into NaN elsewhere
        xi = x.clone()
        xi[0, 0, 3, 4], xi[0, -1, 0, 0] = math.inf, -math.inf
        kp = k.abs() + 0.1
        want = ext.upfirdn2d(xi, kp, *up, *down, *pad)
        infinite_outputs += int(torch.isinf(want).sum())
        for tw, th, threads in tiles[:3]:
            got = ext.upfirdn2d_tiled_with_tile(xi, kp, *up, *down, *pad, tw, th, threads)
            torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12, equal_nan=True)
    # the default tiles (64x32, 64x64 or 32x32 outputs): several per plane, in both axes
    x = torch.randn(1, 2, 41, 70, generator=gen, dtype=torch.float64)
    ref = upfirdn2d_native(x, k, up, down, pad)
    for dtype, tol in ((torch.float64, 1e-12), (torch.bfloat16, 2e-1)):
        got = torch.ops.stylebridge.upfirdn2d_tiled(x.to(dtype), k, *up, *down, *pad)
        torch.testing.assert_close(got.double(), ref, atol=tol, rtol=tol)
    generic = ext.upfirdn2d(x.float(), k, *up, *down, *pad)
    torch.testing.assert_close(
        torch.ops.stylebridge.upfirdn2d_tiled(x.float(), k, *up, *down, *pad), generic,
        atol=1e-6, rtol=1e-6)
    # gradients to second order: the backward is the tiled op again (flipped kernel,
    # swapped factors, derived pads)
    xs = torch.randn(1, 2, 6, 7, generator=gen, dtype=torch.float64, requires_grad=True)
    fn = lambda t: torch.ops.stylebridge.upfirdn2d_tiled(t, k, *up, *down, *pad)
    assert torch.autograd.gradcheck(fn, (xs,))
    assert torch.autograd.gradgradcheck(fn, (xs,))
assert infinite_outputs > 100, infinite_outputs
# arguments it does not cover: an error with a chosen tile, the generic kernel in the op
x = torch.randn(2, 3, 7, 9, generator=gen, dtype=torch.float64)
for up, down, pad, khw in cases:
    k = torch.randn(*khw, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(
        torch.ops.stylebridge.upfirdn2d_tiled(x, k, *up, *down, *pad),
        upfirdn2d_native(x, k, tuple(up), tuple(down), tuple(pad)), atol=1e-12, rtol=1e-12)
k9 = torch.randn(9, 9, generator=gen, dtype=torch.float64)
for bad in ((k, 3, 3, 1, 1), (k, 2, 1, 1, 1), (k9, 1, 1, 1, 1)):
    try:
        ext.upfirdn2d_tiled_with_tile(x, *bad, 4, 4, 4, 4, 4, 4, 16)
    except RuntimeError as exc:
        assert "not covered" in str(exc), exc
    else:
        raise AssertionError(f"upfirdn2d_tiled_with_tile accepted {bad[1:]}")
torch.testing.assert_close(
    torch.ops.stylebridge.upfirdn2d_tiled(x, k9, 1, 1, 1, 1, 4, 4, 4, 4),
    upfirdn2d_native(x, k9, 1, 1, (4, 4, 4, 4)), atol=1e-12, rtol=1e-12)
x = torch.randn(2, 3, 5, 6, generator=gen, dtype=torch.float64, requires_grad=True)
k = torch.randn(4, 4, generator=gen, dtype=torch.float64)
for args in ((x, k, 2, 2, 1, 1, 2, 1, 2, 1), (x, k, 1, 1, 2, 2, 1, 1, 1, 1),
             (x, k, 1, 1, 1, 1, 2, 1, 2, 1), (x, k, 2, 2, 2, 2, -1, 2, 0, -1),
             (x, k, 3, 1, 1, 2, 1, 0, 2, 1)):
    torch.library.opcheck(ops.upfirdn2d_tiled.default, args)

# the dispatch with the tiled kernel chosen, compiled whole (the setting is a constant)
backend.set_upfirdn2d_tiled("tiled")
try:
    def chain(x):
        h = _cuda.upfirdn2d(x, k, (2, 2), (1, 1), (2, 1, 2, 1))
        return _cuda.upfirdn2d(h, k, (1, 1), (2, 2), (1, 1, 1, 1))

    compiled = torch.compile(chain, fullgraph=True, backend="aot_eager")
    got, want = compiled(x), chain(x)
    ref = upfirdn2d_native(upfirdn2d_native(x, k, 2, 1, (2, 1)), k, 1, 2, (1, 1))
    torch.testing.assert_close(got, ref, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)
    g = torch.randn_like(got)
    (gx,) = torch.autograd.grad(got, (x,), g)
    torch.testing.assert_close(gx, torch.autograd.grad(ref, (x,), g)[0], atol=1e-12,
                               rtol=1e-12)
finally:
    backend.set_upfirdn2d_tiled(None)
print(json.dumps({"build_seconds": build_seconds, "module": ext.__file__}))
