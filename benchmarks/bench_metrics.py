"""Metric throughput: images per second for each ``stylebridge eval`` metric.

Feeds synthetic image batches (smooth random fields, generated per batch and
dropped after use) through every metric's ``update`` and reports pairs/s
(prediction + target per pair; FID embeds both), the median over repeats.  ``--fid-stream N`` streams N
images through the FID metric to show that its memory does not grow with N
(statistics only; run it on a GPU for N = 10k).  Writes JSON.

    python benchmarks/bench_metrics.py                           # all metrics, CPU, 32 images
    python benchmarks/bench_metrics.py --metrics psnr ssim lpips --size 1024
    python benchmarks/bench_metrics.py --device cuda --metrics fid --fid-stream 10000

Networks without local weights run on **random weights** (``allow_random``): the
timings are representative, the values are not, and the output says so.  Give
real weights with ``--fid-weights``, ``--clip-weights`` and ``--lpips-backbone``.
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from _timing import sync, timed

from stylebridge.core.io import write_json
from stylebridge.plugins.metrics.base import BaseMetric
from stylebridge.plugins.metrics.clip import ClipDiversityMetric, ClipQualityMetric
from stylebridge.plugins.metrics.fid import FIDMetric
from stylebridge.plugins.metrics.id import IDMetric
from stylebridge.plugins.metrics.image import MSEMetric, PSNRMetric, SSIMMetric
from stylebridge.plugins.metrics.lpips import LPIPSMetric

ALL = ("mse", "psnr", "ssim", "lpips", "id", "fid", "clip_quality", "clip_diversity")


def synthetic_batch(batch: int, size: int, seed: int) -> torch.Tensor:
    """Smooth random images ``[B, 3, size, size]`` in ``[0, 1]``."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(batch, 3, 8, 8, generator=g)
    return F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False).clamp_(0, 1)


def build(name: str, args: argparse.Namespace) -> BaseMetric:
    device = str(args.device)
    if name == "lpips":
        return LPIPSMetric(backbone=args.lpips_backbone, allow_random=True, device=device)
    if name == "fid":
        return FIDMetric(weights=args.fid_weights, allow_random=True, device=device)
    if name == "clip_quality":
        return ClipQualityMetric(model=args.clip_model, weights=args.clip_weights,
                                   text="a portrait", allow_random=True, device=device)
    if name == "clip_diversity":
        return ClipDiversityMetric(model=args.clip_model, weights=args.clip_weights,
                                     allow_random=True, device=device)
    return {"mse": MSEMetric, "psnr": PSNRMetric, "ssim": SSIMMetric,
            "id": IDMetric}[name](device=device)


def time_metric(metric: BaseMetric, args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    n_batches = max(1, args.images // args.batch)
    batches = [(synthetic_batch(args.batch, args.size, 2 * i),
                synthetic_batch(args.batch, args.size, 2 * i + 1)) for i in range(n_batches)]
    metric.update(*batches[0])  # warm-up (lazy init, cudnn autotune)
    rates = []
    for _ in range(args.repeats):
        metric.reset()
        seconds = timed(lambda: [metric.update(p, t) for p, t in batches], device)
        rates.append(n_batches * args.batch / seconds)
    start = time.perf_counter()
    values = metric.compute()  # once per evaluation (FID: two 2048² eigenproblems)
    compute_s = time.perf_counter() - start
    return {"pairs_per_s": statistics.median(rates), "runs": rates, "compute_s": compute_s,
            "random_weights": metric.random_weights,
            "values": values if not metric.random_weights else "random weights: not reported"}


def fid_stream(args: argparse.Namespace) -> dict[str, Any]:
    """Stream ``--fid-stream`` images through FID; memory must stay flat."""
    device = torch.device(args.device)
    metric = FIDMetric(weights=args.fid_weights, allow_random=True, device=str(device))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss = []
    start = time.perf_counter()
    done = 0
    seed = 0
    while done < args.fid_stream:
        b = min(args.batch, args.fid_stream - done)
        metric.update(synthetic_batch(b, args.size, seed), synthetic_batch(b, args.size, seed + 1))
        seed += 2
        done += b
        if done % (args.batch * 50) < args.batch:
            rss.append((done, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
    fid = metric.compute()["fid"]
    sync(device)
    seconds = time.perf_counter() - start
    out: dict[str, Any] = {"images": done, "seconds": seconds, "pairs_per_s": done / seconds,
                           "peak_rss_mib_by_images": rss, "random_weights": metric.random_weights,
                           "fid": None if metric.random_weights else fid}
    if device.type == "cuda":
        out["cuda_peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--metrics", nargs="+", default=list(ALL), choices=ALL)
    parser.add_argument("--images", type=int, default=32, help="images per timed run")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument("--fid-weights", help="pt_inception-2015-12-05-6726825d.pth or conversion")
    parser.add_argument("--clip-weights", help="CLIP state dict (.safetensors)")
    parser.add_argument("--clip-model", default="ViT-B-32")
    parser.add_argument("--lpips-backbone", help="torchvision alexnet-owt-7be5be79.pth")
    parser.add_argument("--fid-stream", type=int, default=0, metavar="N",
                        help="also stream N image pairs through FID and report memory")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/metrics.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    meta: dict[str, Any] = {
        "python": sys.version.split()[0], "torch": torch.__version__,
        "platform": platform.platform(), "device": args.device,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "threads": torch.get_num_threads(), "size": args.size, "batch": args.batch,
        "images": args.images, "results": {},
    }
    print(f"{'metric':<16}{'pairs/s':>12}{'compute s':>11}  note")
    for name in args.metrics:
        with torch.no_grad():
            result = time_metric(build(name, args), args)
        meta["results"][name] = result
        note = "RANDOM WEIGHTS (timing only)" if result["random_weights"] else ""
        print(f"{name:<16}{result['pairs_per_s']:>12.1f}{result['compute_s']:>11.2f}  {note}",
              flush=True)
    if args.fid_stream:
        with torch.no_grad():
            meta["fid_stream"] = fid_stream(args)
        s = meta["fid_stream"]
        print(f"fid stream: {s['images']} pairs in {s['seconds']:.1f} s, peak RSS "
              f"{[round(m) for _, m in s['peak_rss_mib_by_images']]} MiB"
              + (f", CUDA peak {s['cuda_peak_mib']:.0f} MiB" if "cuda_peak_mib" in s else ""))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, meta)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
