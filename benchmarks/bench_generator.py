"""Generator throughput: our fast paths vs the same network on plain ops (vs rosinality).

Measured side by side in one process, interleaving the variants on every
repeat (these machines are noisy), reporting medians and ratios, and checking
that the variants produce the same images.  Writes JSON.

    python benchmarks/bench_generator.py                       # 256 and 1024 px, batch 1 and 8
    python benchmarks/bench_generator.py --reference /tmp/stylegan2-pytorch --sizes 256
    python benchmarks/bench_generator.py --device cuda --dtype fp16

Variants:
* ``ours``: the stylebridge generator as shipped (shared-weight modulation for
  batches, in-place fused activation at inference, CUDA ops on GPU).
* ``plain``: the same network and weights in NCHW layout, grouped per-sample
  convolutions and unfused ``leaky_relu(x + b) * sqrt(2)`` (what the reference
  code does on CPU); it shares our depthwise upfirdn2d.
* ``rosinality`` (with ``--reference PATH``): rosinality/stylegan2-pytorch's own
  ``model.Generator`` from a checkout kept *outside* this repository, with our
  weights loaded.  Its CUDA op build is disabled so that it uses its CPU paths.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import platform
import statistics
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from _timing import interleaved

from stylebridge.core.io import write_json
from stylebridge.core.ops import fused_act, get_backend
from stylebridge.core.stylegan2 import Generator
from stylebridge.core.stylegan2 import layers as sg2_layers


def _unfused_act(x, bias=None, negative_slope=0.2, scale=fused_act.DEFAULT_GAIN, clamp=None,
                 inplace=False):
    if bias is not None:
        x = x + bias.view(1, -1, *([1] * (x.ndim - 2)))
    return F.leaky_relu(x, negative_slope) * scale


@contextlib.contextmanager
def plain_ops(gen: Generator) -> Iterator[None]:
    """Run ``gen`` on the plain path: NCHW, grouped modulation, unfused activation."""
    convs = [m for m in gen.modules() if isinstance(m, sg2_layers.ModulatedConv2d)]
    saved = (fused_act.fused_leaky_relu, sg2_layers.fused_leaky_relu)
    try:
        gen.channels_last = False
        for m in convs:
            m.fused = True
        fused_act.fused_leaky_relu = _unfused_act
        sg2_layers.fused_leaky_relu = _unfused_act
        yield
    finally:
        gen.channels_last = None
        for m in convs:
            m.fused = None
        fused_act.fused_leaky_relu, sg2_layers.fused_leaky_relu = saved


def load_reference(path: Path, gen: Generator) -> torch.nn.Module:
    """rosinality's Generator from a checkout outside the repo, with ``gen``'s weights."""
    import torch.utils.cpp_extension as cpp_ext

    original_load = cpp_ext.load
    cpp_ext.load = lambda *a, **k: None  # its op/ modules build CUDA code at import; skip that
    sys.path.insert(0, str(path))  # the checkout is a script folder, not an installed package
    try:
        model = importlib.import_module("model")
    finally:
        sys.path.remove(str(path))
        cpp_ext.load = original_load
    cfg = gen.cfg
    ref = model.Generator(cfg.size, cfg.style_dim, cfg.n_mlp, channel_multiplier=cfg.channel_multiplier)
    state = {k: v for k, v in gen.state_dict().items() if k != "latent_avg"}
    ref.load_state_dict(state, strict=True)
    return ref.eval()


def bench(size: int, batch: int, args: argparse.Namespace, device: torch.device,
          dtype: torch.dtype) -> dict:
    torch.manual_seed(0)
    gen = Generator(size=size).to(device).eval()
    gen.latent_avg.copy_(gen.mean_latent(256))
    ref = load_reference(args.reference, gen).to(device) if args.reference else None
    if dtype != torch.float32:
        gen = gen.to(dtype)
        ref = ref.to(dtype) if ref is not None else None
    with torch.no_grad():
        w = gen.mapping(torch.randn(batch, gen.style_dim, device=device, dtype=dtype))
    noise = [getattr(gen.noises, f"noise_{i}") for i in range(gen.num_layers)]

    def ours() -> torch.Tensor:
        return gen([w], input_is_latent=True, noise=noise)

    def plain() -> torch.Tensor:
        with plain_ops(gen):
            return gen([w], input_is_latent=True, noise=noise)

    variants: dict[str, Callable[[], torch.Tensor]] = {"ours": ours, "plain": plain}
    if ref is not None:
        variants["rosinality"] = lambda: ref([w], input_is_latent=True, noise=noise)[0]
    with torch.no_grad():
        outputs = {k: fn() for k, fn in variants.items()}  # warm-up + agreement check
        times = interleaved(variants, device, repeats=args.repeats, warmup=args.warmup - 1)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "size": size, "batch": batch, "dtype": str(dtype).removeprefix("torch."),
        "seconds_median": med, "seconds_all": times,
        "images_per_s": {k: batch / v for k, v in med.items()},
        "speedup_vs_plain": med["plain"] / med["ours"],
        "max_abs_diff_vs_ours": {k: float((o.float() - outputs["ours"].float()).abs().max())
                                 for k, o in outputs.items() if k != "ours"},
    }
    if "rosinality" in med:
        result["speedup_vs_rosinality"] = med["rosinality"] / med["ours"]
        # the machine is shared: per-repeat ratios (each repeat runs the variants back to back)
        # and the ratio of the fastest calls are less sensitive to other load than medians
        ratios = [r / o for r, o in zip(times["rosinality"], times["ours"], strict=True)]
        result["speedup_vs_rosinality_per_repeat"] = ratios
        result["speedup_vs_rosinality_of_minima"] = min(times["rosinality"]) / min(times["ours"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=("fp32", "fp16"), default="fp32")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--reference", type=Path, default=None,
                        help="checkout of rosinality/stylegan2-pytorch (outside this repo)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/generator.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = torch.float16 if args.dtype == "fp16" else torch.float32
    results = []
    for size in args.sizes:
        for batch in args.batches:
            r = bench(size, batch, args, device, dtype)
            results.append(r)
            line = (f"{size:5d}px batch {batch}: ours {r['images_per_s']['ours']:.3f} img/s, "
                    f"plain {r['images_per_s']['plain']:.3f} img/s, "
                    f"ours/plain speed {r['speedup_vs_plain']:.2f}x")
            if "speedup_vs_rosinality" in r:
                line += (f", rosinality {r['images_per_s']['rosinality']:.3f} img/s, "
                         f"ours/rosinality speed {r['speedup_vs_rosinality']:.2f}x")
            diffs = ", ".join(f"{k} {v:.1e}" for k, v in r["max_abs_diff_vs_ours"].items())
            print(f"{line}  (max |diff|: {diffs})", flush=True)
    device_name = (torch.cuda.get_device_name(device) if device.type == "cuda"
                   else platform.processor() or platform.machine())
    meta = {"device": device_name, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "ops_backend": get_backend(), "repeats": args.repeats, "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, meta)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
