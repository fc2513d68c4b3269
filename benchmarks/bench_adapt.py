"""``stylebridge adapt`` end to end at the official sizes: fp32 against ``--precision bf16``.

What user 1 runs, through the same pipeline functions as the command (``prepare_adapt``, then
``run_adapt``): a 1024 px config-f generator, the official-size FSE (iresnet50, 256 px input,
``features`` mode) and ``--domains`` StyleSpace domains, all on **random weights** (saved with
the random-weights header, so the run labels them); one photo, scikit-image's astronaut,
aligned with dlib's 68 landmarks unless ``--no-align``.  The precisions alternate on every
repeat (the order flips each time) and the report gives medians and the ratio, plus how far
the bf16 grid is from the fp32 one in 8-bit levels.  ``--profile`` adds where one fp32 run's
time goes (cProfile's cumulative time of the pipeline's stages).  Writes JSON.

    python benchmarks/bench_adapt.py --out benchmarks/results/adapt_cpu.json
    python benchmarks/bench_adapt.py --no-align --domains 1 --repeats 2 --profile
"""

from __future__ import annotations

import argparse
import cProfile
import platform
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import report

from stylebridge.core.checkpoint import save_checkpoint
from stylebridge.core.stylegan2 import Generator
from stylebridge.core.stylegan2.checkpoint import save_stylegan2
from stylebridge.pipelines.adapt import AdaptConfig, prepare_adapt, run_adapt
from stylebridge.pipelines.presets import random_fse
from stylebridge.plugins.domains.stylespace import StyleSpace

RANDOM = {"random_weights": True}
#: the pipeline's stages, as cProfile names them (file fragment, function)
STAGES = {"align": ("align.py", "align_face"), "encode": ("adapt.py", "_invert"),
          "render": ("adapt.py", "render"),
          "write images": ("images.py", "save_png")}


def build(root: Path, size: int, domains: int) -> dict[str, Any]:
    """Random-weight checkpoints at the official sizes, and the photo."""
    torch.manual_seed(0)
    gen = Generator(size=size)
    with torch.no_grad():
        gen.latent_avg.copy_(gen.mean_latent(1024))
    files: dict[str, Any] = {"generator": save_stylegan2(root / "g.safetensors", gen,
                                                         extra=RANDOM)}
    fse = random_fse(gen, "features", seed=1)
    files["encoder"] = save_checkpoint(root / "fse.safetensors", fse.state_dict(),
                                       kind="encoder", plugin=fse.name, config=fse.config(),
                                       extra=RANDOM)
    files["domains"] = []
    desc = {"size": gen.size, "style_dim": gen.style_dim,
            "channels": {str(r): c for r, c in gen.cfg.channels.items()}}
    for i in range(domains):
        method = StyleSpace(**desc)
        g = torch.Generator().manual_seed(10 + i)
        with torch.no_grad():
            for p in method.offsets.values():
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
        files["domains"].append(method.save(root / f"domain{i}.safetensors", extra=RANDOM))
    from skimage import data

    files["photo"] = root / "photos" / "astronaut.png"
    files["photo"].parent.mkdir()
    Image.fromarray(data.astronaut()).save(files["photo"])
    return files


def run_once(files: dict[str, Any], out: Path, precision: str, align: bool) -> dict[str, float]:
    config = AdaptConfig(images=[files["photo"].parent], encoder=f"fse:{files['encoder']}",
                         generator=str(files["generator"]),
                         methods=[str(p) for p in files["domains"]], out=out, device="cpu",
                         compile="off", precision=precision, align=align, batch=1)
    start = time.perf_counter()
    job = prepare_adapt(config)
    loaded = time.perf_counter()
    result = run_adapt(job)
    done = time.perf_counter()
    if result.exit_code != 0:
        raise SystemExit(f"adapt failed ({precision}): {result.report.as_dict()}")
    return {"prepare_s": loaded - start, "run_s": done - loaded}


def stage_times(files: dict[str, Any], out: Path, align: bool) -> dict[str, float]:
    profiler = cProfile.Profile()
    profiler.enable()
    run_once(files, out, "fp32", align)
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    found: dict[str, float] = {}
    for stage, (file_part, func) in STAGES.items():
        found[stage] = round(sum(v[3] for (path, _, name), v in stats.items()
                                 if name == func and path.endswith(file_part)), 3)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="generator resolution")
    parser.add_argument("--domains", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-align", dest="align", action="store_false")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("note: RANDOM weights at the official sizes: timings only, the images mean nothing",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-adapt-") as tmp:
        root = Path(tmp)
        files = build(root, args.size, args.domains)
        run_once(files, root / "warm", "fp32", args.align)  # first-call costs, dlib's model
        times: dict[str, list[dict[str, float]]] = {"fp32": [], "bf16": []}
        for r in range(args.repeats):
            for precision in (("fp32", "bf16") if r % 2 == 0 else ("bf16", "fp32")):
                times[precision].append(run_once(files, root / f"{precision}{r}", precision,
                                                  args.align))
                print(f"repeat {r + 1}: {precision} {times[precision][-1]}", flush=True)
        grids = {p: np.asarray(Image.open(root / f"{p}0" / "grid.png").convert("RGB"), dtype=float)
                 for p in times}
        stages = stage_times(files, root / "profiled", args.align) if args.profile else None
    med = {p: {k: statistics.median(t[k] for t in runs) for k in runs[0]}
           for p, runs in times.items()}
    diff = np.abs(grids["fp32"] - grids["bf16"])
    result = {
        "benchmark": "adapt end to end", "machine": platform.platform(),
        "processor": platform.processor() or platform.machine(), "threads": args.threads,
        "torch": torch.__version__, "generator_size": args.size, "encoder": "fse (features)",
        "domains": args.domains, "photos": 1, "aligned": args.align, "repeats": args.repeats,
        "seconds_median": med, "seconds_all": times,
        "run_speedup_bf16": round(med["fp32"]["run_s"] / med["bf16"]["run_s"], 3),
        "grid_abs_diff_8bit": {"mean": round(float(diff.mean()), 3),
                               "max": float(diff.max()),
                               "share_over_4_levels": round(float((diff > 4).mean()), 4)},
        **({"fp32_stage_seconds": stages} if stages is not None else {}),
        "note": "random weights at the official sizes; run_s = alignment, encoding, rendering, "
                "metrics and writing; prepare_s = loading the checkpoints",
    }
    report(result, args.out)


if __name__ == "__main__":
    main()
