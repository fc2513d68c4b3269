"""PNG writing: zlib compression levels side by side (time per image and file size).

``core.images.save_png`` writes every output image of ``generate``, ``invert``, ``adapt`` and
``serve``.  PNG is lossless at every level; the level trades time for size.  The image is
scikit-image's astronaut resized to ``--size`` (a natural photo; generator outputs compress
alike).  Levels interleaved on every repeat, minimum and median times.  Writes JSON.

    python benchmarks/bench_png.py --out benchmarks/results/png_levels.json
"""

from __future__ import annotations

import argparse
import io
import platform
import statistics
import sys
import time
from pathlib import Path

import PIL
from PIL import Image
from skimage import data

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 3, 6, 9])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    img = Image.fromarray(data.astronaut()).resize((args.size, args.size), Image.LANCZOS)
    times: dict[int, list[float]] = {lvl: [] for lvl in args.levels}
    sizes: dict[int, int] = {}
    for _ in range(args.repeats):
        for lvl in args.levels:
            buf = io.BytesIO()
            start = time.perf_counter()
            img.save(buf, format="PNG", compress_level=lvl)
            times[lvl].append(time.perf_counter() - start)
            sizes[lvl] = len(buf.getvalue())
    base = 6  # PIL's default
    result = {
        "benchmark": "png compression levels", "machine": platform.platform(),
        "pillow": PIL.__version__, "size": args.size, "repeats": args.repeats,
        "ms_median": {lvl: round(1000 * statistics.median(t), 1) for lvl, t in times.items()},
        "ms_min": {lvl: round(1000 * min(t), 1) for lvl, t in times.items()},
        "bytes": sizes,
        "vs_default_6": {lvl: {"time": round(statistics.median(times[lvl])
                                             / statistics.median(times[base]), 3),
                               "size": round(sizes[lvl] / sizes[base], 3)}
                         for lvl in args.levels if base in times},
    }
    report(result, args.out)


if __name__ == "__main__":
    main()
