"""FSE encoder throughput at the official size, for its three modes.  Writes JSON.

    python benchmarks/bench_encoder_fse.py                    # CPU, batch 1 and 8, 256 px generator
    python benchmarks/bench_encoder_fse.py --batches 1 --repeats 2 --gen-size 1024
    python benchmarks/bench_encoder_fse.py --device cuda --batches 1 8 32

**Random weights**: no official FSE or StyleGAN2 weights are downloaded, so both
networks are randomly initialised at their official sizes.  The timings are
meaningful (same architecture and input sizes); the images are not.

Measured, side by side in one process and interleaving the variants on every
repeat (these machines are noisy), as medians:

* ``encode``: 1024×1024 images in ``[0, 1]`` → :class:`Inversion` with the official
  FSE (iresnet50 backbone, 18 style heads, 256×256 encoder input, F 512×16×16),
  for ``latents`` (no content branch), ``features`` and ``shift`` (same network
  as ``features``; the modes differ in synthesis);
* ``encode+synthesis``: the same followed by
  :func:`stylebridge.core.synthesis.synthesize` through a ``--gen-size`` generator
  (default 256 px, so an FSE with that generator's number of latent rows, the
  official backbone and F at activation 5) with a StyleSpace-like offset on the
  conv1 style, so ``shift`` pays its two extra partial syntheses ``G^5(s')``, ``G^5(s)``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
from collections.abc import Callable
from pathlib import Path

import torch
from _timing import interleaved

from stylebridge.core.interfaces import DomainMethod
from stylebridge.core.io import write_json
from stylebridge.core.stylegan2 import Generator
from stylebridge.core.synthesis import synthesize
from stylebridge.plugins.encoders.fse import MODES, FSEEncoder


class Conv1Offset(DomainMethod):
    """A fixed offset on style layer 0 (conv1): a stand-in for a StyleSpace domain."""

    name = "bench-conv1-offset"

    def __init__(self, offset: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("offset", offset)

    def styles(self, generator, w_plus, offset_scale=None):
        styles = generator.styles(w_plus)
        styles[0] = styles[0] + self.offset
        return styles


def build(gen_size: int, device: torch.device) -> tuple[dict[str, FSEEncoder], dict[str, FSEEncoder],
                                                         Generator, DomainMethod]:
    """Official-size FSEs (random weights) per mode, and ones matching the generator's rows.

    All of them share one set of weights (``load_state_dict(assign=True)`` on modules
    built on the meta device), so the modes differ only in what they compute.
    """
    torch.manual_seed(0)
    gen = Generator(size=gen_size).to(device).eval().requires_grad_(False)
    with torch.no_grad():
        gen.latent_avg.copy_(gen.mean_latent(256))
    state = FSEEncoder().to(device).state_dict()
    sub = {k: v for k, v in state.items()
           if not k.startswith("styles.") or int(k.split(".")[1]) < gen.n_latent}
    sub["latent_avg"] = gen.latent_avg.expand(gen.n_latent, -1).clone()
    encode_only, with_gen = {}, {}
    for mode in MODES:
        with torch.device("meta"):
            enc, matched = FSEEncoder(mode=mode), FSEEncoder(mode=mode, n_latent=gen.n_latent)
        enc.load_state_dict(state, assign=True)
        matched.load_state_dict(sub, assign=True)
        matched.check_generator(gen)
        encode_only[mode], with_gen[mode] = enc.eval(), matched.eval()
    offset = 0.5 * torch.randn(gen.conv1.conv.in_channel, generator=torch.Generator().manual_seed(1))
    method = Conv1Offset(offset).to(device)
    return encode_only, with_gen, gen, method


def bench(batch: int, built: tuple, args: argparse.Namespace, device: torch.device) -> dict:
    encode_only, with_gen, gen, method = built
    images = torch.rand(batch, 3, 1024, 1024, generator=torch.Generator().manual_seed(2)).to(device)
    variants: dict[str, Callable[[], object]] = {}
    for mode in MODES:
        variants[f"encode/{mode}"] = lambda e=encode_only[mode]: e.encode(images)
        variants[f"encode+synthesis/{mode}"] = (
            lambda e=with_gen[mode]: synthesize(gen, e.encode(images), method=method))
    with torch.inference_mode():
        times = interleaved(variants, device, repeats=args.repeats, warmup=args.warmup)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"batch": batch, "seconds_median": med, "seconds_all": times,
            "images_per_s": {k: batch / v for k, v in med.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--gen-size", type=int, default=256,
                        help="generator resolution for encode+synthesis (needs >= 32 px)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/encoder_fse.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print("note: RANDOM weights (official architecture and sizes); timings only, images are "
          "not meaningful", flush=True)
    built = build(args.gen_size, device)
    results = []
    for batch in args.batches:
        r = bench(batch, built, args, device)
        results.append(r)
        cells = ", ".join(f"{k} {v:.3f}" for k, v in r["images_per_s"].items())
        print(f"batch {batch}: images/s: {cells}", flush=True)
    device_name = (torch.cuda.get_device_name(device) if device.type == "cuda"
                   else platform.processor() or platform.machine())
    meta = {
        "benchmark": "fse encoder", "weights": "random (official architecture; timings only)",
        "encoder": FSEEncoder().config(), "input": [3, 1024, 1024],
        "generator_size": args.gen_size, "domain_method": "offset on conv1 style (layer 0)",
        "device": device_name, "threads": torch.get_num_threads(), "torch": torch.__version__,
        "repeats": args.repeats, "warmup": args.warmup, "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, meta)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
