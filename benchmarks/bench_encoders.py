"""Encoder throughput (psp, e4e, styleres, fse) at each encoder's official input size.

Images per second of ``encode``, batch 1 and 8, CPU by default: 256×256 inputs for the
IR-SE50 family, 1024×1024 for FSE (which downsamples to 256 itself, as upstream).  The
encoders are built at the official FFHQ configuration with RANDOM (untrained) weights:
the numbers are timings only, no output is meaningful.  Writes JSON.

    python benchmarks/bench_encoders.py                      # every encoder; batch 1, 8
    python benchmarks/bench_encoders.py --encoders e4e fse:features --batches 1 --repeats 5
    python benchmarks/bench_encoders.py --device cuda

FSE's modes differ only in whether the feature branch runs (``fse:latents`` skips it);
the generator-shift work happens at synthesis, timed by ``bench_encoder_fse.py``.

``styleres`` is timed as everything StyleRes adds to the generator call: the e4e
encoder plus its feature modules (alignment, extraction, gates) at 64×64, with a random
tensor standing in for the generator activation G^8 (the 1024 px generator itself is
not timed; see ``bench_generator.py``).  Variants are interleaved on every repeat and
medians reported, since these machines are noisy.
"""

from __future__ import annotations

import argparse
import platform
import statistics
from collections.abc import Callable
from pathlib import Path

import torch
from _timing import interleaved

from stylebridge.core.io import write_json
from stylebridge.plugins.encoders.fse import FSEEncoder
from stylebridge.plugins.encoders.psp import E4EEncoder, PSPEncoder
from stylebridge.plugins.encoders.styleres import StyleResEncoder

RANDOM_WEIGHTS = "random (untrained) weights: timings only, outputs are meaningless"


ENCODERS = ("psp", "e4e", "styleres", "fse:latents", "fse:features")


def input_size(name: str) -> int:
    return 1024 if name.startswith("fse") else 256


def _runner(name: str, batch: int, device: torch.device) -> Callable[[], torch.Tensor]:
    torch.manual_seed(0)
    size = input_size(name)
    images = torch.rand(batch, 3, size, size, device=device)
    if name.startswith("fse"):
        fse = FSEEncoder(mode=name.split(":")[1]).to(device).eval()
        return lambda: fse.encode(images).w_plus
    if name == "psp":
        enc = PSPEncoder().to(device).eval()
        return lambda: enc.encode(images).w_plus
    if name == "e4e":
        enc = E4EEncoder().to(device).eval()
        return lambda: enc.encode(images).w_plus
    sres = StyleResEncoder().to(device).eval()
    g_feat = torch.randn(batch, sres.feature_channels, 64, 64, device=device)  # stands in for G^8

    def styleres() -> torch.Tensor:
        w_plus, c1 = sres.codes(images)
        aligned = sres.modify_feature_extraction(sres.modify_feature_alignment(c1, g_feat))
        out, _ = sres.modify(g_feat, aligned)
        return out.mean() + w_plus.mean()

    return styleres


def bench(names: list[str], batch: int, args: argparse.Namespace, device: torch.device) -> dict:
    runners = {n: _runner(n, batch, device) for n in names}
    with torch.inference_mode():
        for _ in range(args.warmup):
            for n, fn in runners.items():
                if not bool(torch.isfinite(fn()).all()):
                    raise RuntimeError(f"{n}: non-finite output")
        times = interleaved(runners, device, repeats=args.repeats, warmup=0)
    del runners
    return {
        "batch": batch,
        "input_size": {n: input_size(n) for n in names},
        "median_s": {n: statistics.median(t) for n, t in times.items()},
        "images_per_s": {n: batch / statistics.median(t) for n, t in times.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoders", nargs="+", choices=ENCODERS, default=list(ENCODERS))
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/encoders.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"note: {RANDOM_WEIGHTS}", flush=True)
    results = []
    for batch in args.batches:
        r = bench(args.encoders, batch, args, device)
        results.append(r)
        line = ", ".join(f"{n} {v:.3f} img/s" for n, v in r["images_per_s"].items())
        print(f"batch {batch}: {line}", flush=True)
    device_name = (torch.cuda.get_device_name(device) if device.type == "cuda"
                   else platform.processor() or platform.machine())
    meta = {"device": device_name, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "weights": RANDOM_WEIGHTS, "repeats": args.repeats,
            "styleres_timed": "e4e encoder + feature modules; generator excluded",
            "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, meta)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
