"""Per-layer speed of the two up-sampling convolution orders, side by side (issue 20).

Every up-sampling layer of a config-f generator of ``--size`` (its channels and input
resolution), at ``--batch``: the modulated conv as it runs in the generator (per-layer choice
on the CPU, shared weight for batches on CUDA) in upstream's order, "transposed conv (stride 2),
then the 4x4 blur", and in the polyphase order, "one stride-1 convolution to 4x the channels
(the blur folded into the weight), then a pixel shuffle" (:mod:`stylebridge.core.stylegan2.
polyphase`).  Interleaved medians; ``ratio`` = transpose seconds / polyphase seconds (> 1: the
polyphase order is faster); ``max_abs_diff`` between the two outputs.  ``--dtype bf16`` runs
under autocast.  Writes JSON with the machine.

    python benchmarks/bench_upconv.py --size 256 --batch 1 --out benchmarks/results/upconv_cpu.json
"""

from __future__ import annotations

import argparse
import platform
import statistics
from pathlib import Path
from typing import Any

import torch
from _timing import interleaved, report

from stylebridge.core.stylegan2 import Generator
from stylebridge.core.stylegan2.layers import ModulatedConv2d


def layers(size: int) -> list[tuple[int, int, int]]:
    """(in channels, out channels, input resolution) of every up-sampling conv."""
    gen = Generator(size=size) if size >= 64 else Generator(size=size, style_dim=32, n_mlp=1)
    res = 4
    out = []
    for module in gen.convs:
        conv = module.conv
        if conv.upsample:
            out.append((conv.in_channel, conv.out_channel, res))
            res *= 2
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--device", default=None)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.set_num_threads(args.threads)
    rows: list[dict[str, Any]] = []
    for cin, cout, res in layers(args.size):
        torch.manual_seed(0)
        conv = ModulatedConv2d(cin, cout, 3, 512, upsample=True).to(device).eval()
        x = torch.randn(args.batch, cin, res, res, device=device)
        s = torch.randn(args.batch, cin, device=device)

        def run(order: str, conv: ModulatedConv2d = conv, x: torch.Tensor = x,
                s: torch.Tensor = s) -> torch.Tensor:
            conv.upconv = order
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16,
                                                 enabled=args.dtype == "bf16"):
                return conv(x, s)
        diff = float((run("transpose").float() - run("polyphase").float()).abs().max())
        times = interleaved({o: (lambda o=o: run(o)) for o in ("transpose", "polyphase")},
                            device, repeats=args.repeats, warmup=1)
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append({"in": cin, "out": cout, "input_res": res, "seconds_median": med,
                     "ratio_transpose_over_polyphase": med["transpose"] / med["polyphase"],
                     "max_abs_diff": diff})
        print(f"{cin:4d}->{cout:4d} @ {res:4d}: transpose {med['transpose'] * 1e3:8.2f} ms, "
              f"polyphase {med['polyphase'] * 1e3:8.2f} ms, "
              f"ratio {med['transpose'] / med['polyphase']:.2f}", flush=True)
    total = {o: sum(r["seconds_median"][o] for r in rows) for o in ("transpose", "polyphase")}
    machine = {"torch": torch.__version__, "platform": platform.platform(),
               "cpu": platform.processor() or platform.machine(),
               "threads": torch.get_num_threads()}
    if device.type == "cuda":
        machine["gpu"] = torch.cuda.get_device_name(device)
    report({"device": device.type, "size": args.size, "batch": args.batch, "dtype": args.dtype,
            "machine": machine, "layers": rows, "total_seconds": total,
            "ratio_total": total["transpose"] / total["polyphase"]}, args.out)


if __name__ == "__main__":
    main()
