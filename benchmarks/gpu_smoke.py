"""First launch of one new CUDA kernel, alone in its process, before the GPU run relies on it.

The fused styled-conv epilogue (``stylebridge::modulated_bias_act``) and the tiled upfirdn2d
(``stylebridge::upfirdn2d_tiled``) are compiled with nvcc and their arithmetic and indexing are
checked through the extension's CPU path, but until a GPU session they have never been
launched.  A launch error (a bad grid, too much shared memory) or an illegal address leaves the
CUDA context unusable for the rest of its process, so one bad kernel inside
``bench_gpu_speed.py`` would lose every measurement after it.  ``gpu_speed.sh`` runs this script
once per kernel (``CUDA_LAUNCH_BLOCKING=1``) and leaves a kernel that fails here out of the
benchmarks; the GPU op tests still run it, to show why.

The check, on a config-f generator at 32 px (512 channels) with batch 2: synthesis with the
kernel chosen against the fp32 network on the native ops (fp32 within 1e-4, also with
channels-last activations; bf16 autocast finite), the gradient of a loss with respect to the styles (fp32, within 1e-4 of the largest
gradient), and that the kernel's op really ran (a dispatch mode counts its calls).  On the CPU nothing is
launched: the paths fall back to the native ops, which checks only this script
(``DRY_RUN=1 gpu_speed.sh``).

    python benchmarks/gpu_smoke.py --path epilogue --out smoke_epilogue.json

Exit status 0 when the kernel passed (or, on the CPU, when the script ran), else 1, with the
reason in the JSON.  ``STYLEBRIDGE_SMOKE_FAIL=epilogue,tiled`` reports those paths as failed
without running them, to check the exclusion plumbing of ``gpu_speed.sh`` on the CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from stylebridge.core.io import write_json
from stylebridge.core.ops import get_backend, set_backend, set_fused_epilogue, set_upfirdn2d_tiled
from stylebridge.core.stylegan2 import Generator

PATHS = {"epilogue": "stylebridge::modulated_bias_act", "tiled": "stylebridge::upfirdn2d_tiled"}
BOUND = 1e-4


class OpCounter(TorchDispatchMode):
    """Counts the calls of every op dispatched inside it (custom ops included)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, int] = {}

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        name = str(func.overloadpacket).replace(".", "::", 1)
        self.calls[name] = self.calls.get(name, 0) + 1
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def chosen(path: str | None, backend: str | None = None) -> Iterator[None]:
    """Inside: ``path``'s kernel chosen (``None``: neither) and the ops ``backend``."""
    old = get_backend()
    set_backend(backend)  # type: ignore[arg-type]
    set_fused_epilogue("on" if path == "epilogue" else None)
    set_upfirdn2d_tiled("tiled" if path == "tiled" else None)
    try:
        yield
    finally:
        set_fused_epilogue(None)
        set_upfirdn2d_tiled(None)
        set_backend(old)


def generator(device: torch.device) -> Generator:
    torch.manual_seed(0)
    gen = Generator(size=32, style_dim=32, n_mlp=2)  # config-f widths (512) up to 32 px
    with torch.no_grad():  # non-trivial biases and noise strengths, as the benchmarks use
        for name, p in gen.named_parameters():
            if name.endswith("bias") or "noise" in name:
                p.add_(0.1 * torch.randn_like(p))
    return gen.to(device).eval().requires_grad_(False)


def check(path: str, device: torch.device) -> dict[str, Any]:
    gen = generator(device)
    noise = [getattr(gen.noises, f"noise_{i}") for i in range(gen.num_layers)]
    g = torch.Generator(device="cpu").manual_seed(1)
    w = gen.mapping(torch.randn(2, gen.style_dim, generator=g).to(device))
    styles = [s.detach() for s in gen.styles(w)]

    def image_and_grad(dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        leaves = [s.clone().requires_grad_(True) for s in styles]
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            image = gen.synthesis(leaves, noise=noise)
        (image.float() * torch.linspace(-1, 1, image.shape[-1], device=device)).sum().backward()
        return image.detach().float(), torch.cat([s.grad.flatten() for s in leaves])

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    with chosen(None, "native"):
        ref_image, ref_grad = image_and_grad()
    with chosen(path), OpCounter() as counter:
        image, grad = image_and_grad()
        bf16_image, _ = image_and_grad(torch.bfloat16)
        gen.channels_last = True  # the benchmarks' NHWC variants (NCHW is CUDA's default)
        with torch.no_grad():
            nhwc_image = gen.synthesis(styles, noise=noise).float()
        gen.channels_last = None
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    launches = counter.calls.get(PATHS[path], 0)
    image_diff = float((image - ref_image).abs().max())
    grad_diff = float((grad - ref_grad).abs().max() / ref_grad.abs().max().clamp_min(1e-12))
    nhwc_diff = float((nhwc_image - ref_image).abs().max())
    result = {"fp32_image_max_abs_diff": image_diff, "fp32_grad_max_rel_diff": grad_diff,
              "fp32_channels_last_max_abs_diff": nhwc_diff,
              "bf16_finite": bool(torch.isfinite(bf16_image).all()),
              "bf16_image_max_abs_diff": float((bf16_image - ref_image).abs().max()),
              "op_calls": launches, "bound": BOUND}
    problems = []
    if image_diff > BOUND:
        problems.append(f"fp32 image differs by {image_diff:.2e} (bound {BOUND:g})")
    if nhwc_diff > BOUND:
        problems.append(f"fp32 channels-last image differs by {nhwc_diff:.2e}")
    if grad_diff > BOUND:
        problems.append(f"fp32 gradient differs by {grad_diff:.2e} of its largest value")
    if not result["bf16_finite"]:
        problems.append("bf16 image has non-finite values")
    if device.type == "cuda" and launches == 0:
        problems.append(f"{PATHS[path]} never ran")
    result["ok"] = not problems
    result["problems"] = problems
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", choices=tuple(PATHS), required=True)
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    result: dict[str, Any] = {"path": args.path, "op": PATHS[args.path], "device": str(device),
                              "torch": torch.__version__,
                              "launch_blocking": os.environ.get("CUDA_LAUNCH_BLOCKING", "")}
    forced = os.environ.get("STYLEBRIDGE_SMOKE_FAIL", "").split(",")
    if args.path in forced:
        result.update(ok=False, error="reported failed by STYLEBRIDGE_SMOKE_FAIL")
    else:
        try:
            if device.type == "cuda":
                from stylebridge.core.ops import _cuda

                if not _cuda.available():
                    raise RuntimeError(f"the CUDA extension is not built: {_cuda.build_error()}")
                result["gpu"] = torch.cuda.get_device_name(device)
            result.update(check(args.path, device))
        except Exception as exc:  # the reason goes to the JSON; the traceback to the log
            traceback.print_exc()
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            result.update(ok=False, error=f"{type(exc).__name__}: {first}"[:300])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, result)
    print(json.dumps(result))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
