"""GPU correctness check of the whole generator: CUDA ops vs native ops vs CPU.

    python benchmarks/gpu_check.py --out benchmarks/results/gpu_check.json

Builds a config-f generator (random weights, seed 0) at ``--size``, renders the same
w+ on the CPU (native ops), on the GPU with native ops and on the GPU with the CUDA
extension (TF32 off), compares images and w+ gradients, and the fp16 result.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from stylebridge.core.io import write_json
from stylebridge.core.ops import set_backend
from stylebridge.core.stylegan2 import Generator


def render(gen: Generator, w: torch.Tensor, backend: str) -> tuple[torch.Tensor, torch.Tensor]:
    set_backend(backend)  # type: ignore[arg-type]
    try:
        w = w.detach().clone().requires_grad_(True)
        image = gen([w], input_is_latent=True, randomize_noise=False)
        (image.float() * torch.linspace(-1, 1, image.numel(), device=image.device)
         .view_as(image)).sum().backward()
        return image.detach().float().cpu(), w.grad.detach().float().cpu()
    finally:
        set_backend(None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu_check.json"))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_check needs a CUDA device")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    cpu = Generator(size=args.size).eval()
    with torch.no_grad():
        w = cpu.mapping(torch.randn(args.batch, cpu.style_dim))
    w = w.unsqueeze(1).repeat(1, cpu.n_latent, 1)
    ref_img, ref_grad = render(cpu, w, "native")
    gpu = Generator(size=args.size).cuda().eval()
    gpu.load_state_dict(cpu.state_dict())
    results: dict[str, object] = {"device": torch.cuda.get_device_name(), "size": args.size,
                                  "torch": torch.__version__}
    for backend in ("native", "cuda"):
        img, grad = render(gpu, w.cuda(), backend)
        results[f"gpu_{backend}_vs_cpu"] = {
            "image_max_abs": float((img - ref_img).abs().max()),
            "grad_rel": float((grad - ref_grad).norm() / ref_grad.norm())}
    half = Generator(size=args.size).cuda().eval()
    half.load_state_dict(cpu.state_dict())
    half = half.half()
    img16, _ = render(half, w.cuda().half(), "cuda")
    results["gpu_cuda_fp16_vs_cpu_fp32"] = {"image_max_abs": float((img16 - ref_img).abs().max()),
                                            "image_mean_abs": float((img16 - ref_img).abs().mean())}
    print(json.dumps(results, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, results)


if __name__ == "__main__":
    main()
