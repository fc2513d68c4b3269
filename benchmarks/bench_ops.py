"""Time the native vs CUDA custom ops on the shapes of the 1024px StyleGAN2 generator.

Usage::

    python benchmarks/bench_ops.py [--out benchmarks/results/ops.json] [--iters 20]
    python benchmarks/bench_ops.py --ops epilogue --dtypes float32,bfloat16   # one op

For each op, dtype and mode (forward under ``no_grad``; forward + backward) it
prints the native and CUDA times side by side with their ratio (native / CUDA,
> 1 means the extension is faster) and writes everything to ``--out`` as JSON.
The ``epilogue`` rows compare the fused styled-conv epilogue kernel
(``modulated_bias_act``) with today's three-op sequence (demodulation, noise,
bias + activation through the ``fused_bias_act`` kernel): their ratio is what
decides ``EPILOGUE_MEASURED_FASTER`` in ``stylebridge/core/ops/backend.py``.
The ``upfirdn2d`` and ``blur`` rows time three implementations: native (PyTorch's
convolutions), the generic CUDA kernel (``cuda``: one thread per output) and the tiled
shared-memory kernel (``tiled``); ``native/tiled`` and ``cuda/tiled`` decide
``TILED_UPFIRDN2D_MEASURED_FASTER`` (the tiled kernel must win against the generic one on
the resampling cases and against native on the blur, forward and forward + backward).
The ``blur ... gen`` cases are the 4x4 blur after every up-sampling convolution of the
1024 px config-f generator (input ``2r + 1`` square from the stride-2 transposed
convolution, pad (1, 1), output ``2r``).
The CUDA extension is compiled on first use (minutes the first time).

Without a CUDA device the script says so, times the native ops on the CPU
(batch 1, float32, few iterations) and exits 0.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from stylebridge.core.io import write_json
from stylebridge.core.ops import _cuda
from stylebridge.core.ops.fused_act import fused_leaky_relu_native
from stylebridge.core.ops.upfirdn2d import upfirdn2d_native

REPO = Path(__file__).resolve().parents[1]

DEFAULT_OUT = REPO / "benchmarks" / "results" / "ops.json"
BLUR_1D = (1.0, 3.0, 3.0, 1.0)


@dataclass(frozen=True)
class Case:
    """One benchmarked op configuration."""

    name: str
    shape: tuple[int, int, int, int]  # input [N, C, H, W]; N is replaced by --batch
    kind: str  # "bias_act", "epilogue" or "upfirdn2d"
    up: int = 1
    down: int = 1
    pad: tuple[int, int] = (0, 0)


CASES: tuple[Case, ...] = (
    Case("bias_act 512ch 64x64", (8, 512, 64, 64), "bias_act"),
    Case("epilogue 512ch 64x64", (8, 512, 64, 64), "epilogue"),
    Case("epilogue 64ch 512x512", (8, 64, 512, 512), "epilogue"),
    Case("upfirdn2d up2 4x4 512ch 128x128", (8, 512, 128, 128), "upfirdn2d", up=2, pad=(2, 1)),
    Case("upfirdn2d down2 4x4 512ch 128x128", (8, 512, 128, 128), "upfirdn2d", down=2,
         pad=(1, 1)),
    Case("blur 4x4 32ch 1024x1024", (8, 32, 1024, 1024), "upfirdn2d", pad=(2, 1)),
    Case("blur 4x4 512ch 65x65 gen", (8, 512, 65, 65), "upfirdn2d", pad=(1, 1)),
    Case("blur 4x4 256ch 129x129 gen", (8, 256, 129, 129), "upfirdn2d", pad=(1, 1)),
    Case("blur 4x4 128ch 257x257 gen", (8, 128, 257, 257), "upfirdn2d", pad=(1, 1)),
    Case("blur 4x4 64ch 513x513 gen", (8, 64, 513, 513), "upfirdn2d", pad=(1, 1)),
    Case("blur 4x4 32ch 1025x1025 gen", (8, 32, 1025, 1025), "upfirdn2d", pad=(1, 1)),
)

OpFn = Callable[[Tensor], Tensor]


def blur_kernel(device: torch.device) -> Tensor:
    """The StyleGAN2 [1, 3, 3, 1] FIR filter, normalised."""
    k = torch.tensor(BLUR_1D, device=device)
    k = torch.outer(k, k)
    return k / k.sum()


def make_ops(case: Case, channels: int, dtype: torch.dtype,
             device: torch.device) -> dict[str, OpFn]:
    """``{"native": fn, "cuda": fn}`` (and ``"tiled"`` for upfirdn2d) applying the case's op
    to an input tensor."""
    if case.kind == "bias_act":
        bias = torch.randn(channels, device=device, dtype=dtype)
        slope, gain = 0.2, math.sqrt(2.0)
        return {
            "native": lambda x: fused_leaky_relu_native(x, bias, slope, gain, None),
            "cuda": lambda x: _cuda.fused_leaky_relu(x, bias, slope, gain, None),
        }
    if case.kind == "epilogue":
        return epilogue_ops(channels, dtype, device)
    kernel = blur_kernel(device) * (case.up * case.up)
    pad4 = (case.pad[0], case.pad[1], case.pad[0], case.pad[1])
    up, down = (case.up, case.up), (case.down, case.down)
    ops = torch.ops.stylebridge
    return {
        "native": lambda x: upfirdn2d_native(x, kernel, up, down, pad4),
        "cuda": lambda x: ops.upfirdn2d(x, kernel, *up, *down, *pad4),
        "tiled": lambda x: ops.upfirdn2d_tiled(x, kernel, *up, *down, *pad4),
    }


def epilogue_ops(channels: int, dtype: torch.dtype, device: torch.device) -> dict[str, OpFn]:
    """The styled-conv epilogue: ``"native"`` is today's three-op sequence as the layers run
    it (demodulation multiply, noise ``addcmul``, then bias + activation through the
    ``fused_bias_act`` kernel when the extension is loaded, else natively); ``"cuda"`` the
    fused ``modulated_bias_act`` kernel.  Demodulation, strength and bias require grad, as
    in training; the noise map is shared by the batch (one per resolution, as ``generate``
    passes it)."""
    gen = torch.Generator(device=device).manual_seed(0)
    slope, gain = 0.2, math.sqrt(2.0)
    params: dict[str, Tensor] = {}

    def inputs(x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        if not params:  # made on first use: the batch and size come with x
            params["demod"] = torch.rand(x.shape[0], channels, device=device, generator=gen,
                                         dtype=dtype).add_(0.5).requires_grad_(True)
            params["noise"] = torch.randn(1, 1, x.shape[2], x.shape[3], device=device,
                                          generator=gen, dtype=dtype)
            params["strength"] = torch.full((1,), 0.1, device=device, dtype=dtype,
                                            requires_grad=True)
            params["bias"] = torch.randn(channels, device=device, generator=gen, dtype=dtype,
                                         ).requires_grad_(True)
        return params["demod"], params["noise"], params["strength"], params["bias"]

    def native(x: Tensor) -> Tensor:
        from stylebridge.core.ops.epilogue import modulated_bias_act_native

        return modulated_bias_act_native(x, *inputs(x), slope, gain, None)

    return {
        "native": native,
        "cuda": lambda x: _cuda.modulated_bias_act(x, *inputs(x), slope, gain, None),
    }


def time_ms(fn: Callable[[], object], iters: int, warmup: int, device: torch.device) -> float:
    """Mean wall time of ``fn`` in milliseconds (CUDA events on a GPU)."""
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end) / iters
    begin = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - begin) * 1000.0 / iters


def bench_one(op: OpFn, x: Tensor, mode: str, iters: int, warmup: int) -> float:
    """Time ``op`` on ``x``: ``"fwd"`` under no_grad, or ``"fwd+bwd"``."""
    if mode == "fwd":
        def run() -> None:
            with torch.no_grad():
                op(x)
    else:
        leaf = x.detach().requires_grad_(True)
        grad = torch.ones_like(op(x.detach()))

        def run() -> None:
            leaf.grad = None
            op(leaf).backward(grad)
    return time_ms(run, iters, warmup, x.device)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results path")
    parser.add_argument("--iters", type=int, default=None,
                        help="timed iterations per measurement (default 20 GPU, 1 CPU)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed iterations first (default 5 GPU, 1 CPU)")
    parser.add_argument("--batch", type=int, default=None,
                        help="batch size (default 8 on a GPU, 1 on the CPU)")
    parser.add_argument("--dtypes", default=None,
                        help="comma list of float32,float16,bfloat16 (default float32,float16 "
                             "on a GPU, float32 on the CPU)")
    parser.add_argument("--ops", default=None,
                        help="comma list of words; only the cases whose name contains one "
                             "(e.g. 'epilogue' for the fused epilogue vs the three-op sequence)")
    parser.add_argument("--modes", default=None,
                        help="comma list of fwd,fwd+bwd (default both on a GPU, fwd on the CPU)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    has_cuda = torch.cuda.is_available()
    device = torch.device("cuda" if has_cuda else "cpu")
    iters = args.iters if args.iters is not None else (20 if has_cuda else 1)
    warmup = args.warmup if args.warmup is not None else (5 if has_cuda else 1)
    batch = args.batch if args.batch is not None else (8 if has_cuda else 1)
    dtypes = [getattr(torch, name.strip()) for name in
              (args.dtypes or ("float32,float16" if has_cuda else "float32")).split(",")]
    modes = [m.strip() for m in (args.modes or ("fwd,fwd+bwd" if has_cuda else "fwd")).split(",")
             if m.strip()]
    if unknown := sorted(set(modes) - {"fwd", "fwd+bwd"}):
        raise SystemExit(f"bench_ops: unknown mode(s) {', '.join(unknown)}")

    cuda_ok, cuda_error = False, None
    if not has_cuda:
        print("bench_ops: no CUDA device (torch.cuda.is_available() is False); timing the "
              f"native ops on the CPU only (batch {batch}, {iters} iteration(s), "
              f"modes {','.join(modes)}); the CUDA ops need a GPU.")
    else:
        print("bench_ops: building/loading the CUDA extension ...", flush=True)
        start = time.perf_counter()
        try:
            cuda_ok = _cuda.available(required=True)
        except Exception as exc:
            cuda_error = str(exc)
            print(f"bench_ops: {cuda_error}; timing the native ops only.")
        else:
            print(f"bench_ops: extension ready in {time.perf_counter() - start:.1f} s")

    backends = ["native", "cuda"] if cuda_ok else ["native"]
    results: list[dict[str, object]] = []
    header = f"{'op':36s} {'dtype':9s} {'mode':8s} {'native ms':>10s}"
    if cuda_ok:
        header += (f" {'cuda ms':>10s} {'native/cuda':>11s} {'tiled ms':>10s} "
                   f"{'native/tiled':>12s} {'cuda/tiled':>10s}")
    print(header)
    print("-" * len(header))
    words = [w.strip() for w in (args.ops or "").split(",") if w.strip()]
    cases = [c for c in CASES if not words or any(w in c.name for w in words)]
    if not cases:
        raise SystemExit(f"bench_ops: no case matches --ops {args.ops!r}")
    for case in cases:
        shape = (batch, *case.shape[1:])
        for dtype in dtypes:
            x = torch.randn(shape, device=device, dtype=dtype)
            ops = make_ops(case, shape[1], dtype, device)
            for mode in modes:
                times = {b: bench_one(ops[b], x, mode, iters, warmup) for b in backends}
                if cuda_ok and "tiled" in ops:
                    times["tiled"] = bench_one(ops["tiled"], x, mode, iters, warmup)
                tiled = times.get("tiled")
                row: dict[str, object] = {
                    "op": case.name, "shape": list(shape), "dtype": str(dtype).removeprefix(
                        "torch."), "mode": mode, "native_ms": times["native"],
                    "cuda_ms": times.get("cuda"),
                    "speedup": times["native"] / times["cuda"] if "cuda" in times else None,
                    "tiled_ms": tiled,
                    "native_over_tiled": times["native"] / tiled if tiled else None,
                    "cuda_over_tiled": times["cuda"] / tiled if tiled else None,
                }
                results.append(row)
                line = f"{case.name:36s} {row['dtype']!s:9s} {mode:8s} {times['native']:10.3f}"
                if cuda_ok:
                    line += f" {times['cuda']:10.3f} {row['speedup']:10.2f}x"
                    if tiled:
                        line += (f" {tiled:10.3f} {row['native_over_tiled']:11.2f}x "
                                 f"{row['cuda_over_tiled']:9.2f}x")
                print(line, flush=True)
            del x, ops
            if has_cuda:
                torch.cuda.empty_cache()

    report = {
        "device": torch.cuda.get_device_name(device) if has_cuda else platform.processor()
        or platform.machine(),
        "torch": torch.__version__,
        "cuda_runtime": torch.version.cuda,
        "cuda_available": has_cuda,
        "cuda_ops": cuda_ok,
        "cuda_error": cuda_error,
        "batch": batch,
        "iters": iters,
        "warmup": warmup,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, report)
    print(f"bench_ops: wrote {args.out}")
    return 1 if (has_cuda and not cuda_ok) else 0


if __name__ == "__main__":
    sys.exit(main())
