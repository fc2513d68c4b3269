"""Checkpoint load time on the CPU: the way every loader worked before and the way it works now,
side by side in one run.

Builds RANDOM-weight checkpoints of the real sizes (config-f generator at 256 and 1024 px, e4e
and FSE at their official configurations; timings only) in a temporary folder, then measures,
interleaved on every repeat, medians and ratios:

* ``finite_check``: the NaN/Inf check of every floating-point tensor of a file,
  ``isfinite(t).all()`` (before; the generator's tensors were checked twice) against
  ``all_finite`` (a sum, the element-wise test only where it is not finite);
* ``build``: building the network and putting the file's tensors in, ``cls(**config)`` on the
  CPU (random initialisation) + ``load_state_dict`` copy (before) against a build on ``meta`` +
  assignment (``core/loading.load_weights``);
* ``full_load``: a whole load in a fresh process each, with its peak memory: the old algorithm
  written out here (safetensors' memory-mapped tensors, element-wise checks, the meta shape
  pre-check doing arithmetic on meta tensors, which imports ``torch._dynamo``, a CPU build and
  a copy) against today's ``load_stylegan2(keep_rng=True)`` / ``Registry.load``;
* ``meta_precheck``: the shape pre-check of a 256 px generator alone in a fresh process: a
  plain build on ``meta`` with the old blur-kernel arithmetic there (its meta kernels import
  ``torch._dynamo`` and sympy) against today's ``build_on_meta``.

    python benchmarks/load_speed.py                 # ~3 min on 2 cores
    python benchmarks/load_speed.py --models g256 e4e --process-repeats 5

Peak memory is ``VmHWM`` of the child process (Linux), also given as the rise over its peak
before the load (``load_peak_mb``: the interpreter, torch and the registry come first).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _timing import interleaved

from stylebridge.core.checkpoint import all_finite, load_checkpoint, save_checkpoint
from stylebridge.core.io import write_json
from stylebridge.core.loading import build_on_meta, load_weights

RANDOM_WEIGHTS = "random (untrained) weights: timings only"
MODELS = ("g256", "g1024", "e4e", "fse")
OUT = Path(__file__).resolve().parent / "results" / "load_speed_cpu.json"


def _network(name: str) -> tuple[type, dict[str, Any], str, str]:
    """``(class, config, kind, plugin)`` of a benchmark model at its real size."""
    if name.startswith("g"):
        from stylebridge.core.stylegan2 import Generator

        return Generator, {"size": int(name[1:])}, "generator", "stylegan2"
    if name == "e4e":
        from stylebridge.plugins.encoders.psp import E4EEncoder

        return E4EEncoder, {}, "encoder", "e4e"
    from stylebridge.plugins.encoders.fse import FSEEncoder

    return FSEEncoder, {}, "encoder", "fse"


def build_files(folder: Path, names: list[str]) -> dict[str, Path]:
    from stylebridge.core.stylegan2.checkpoint import save_stylegan2

    files = {}
    for name in names:
        cls, config, kind, plugin = _network(name)
        torch.manual_seed(0)
        net = cls(**config)
        path = folder / f"{name}.safetensors"
        if kind == "generator":
            save_stylegan2(path, net, extra={"random_weights": True})
        else:
            save_checkpoint(path, net.state_dict(), kind=kind, plugin=plugin,
                            config=net.config(), extra={"random_weights": True})
        files[name] = path
        del net
    return files


def _state(name: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if name.startswith("g"):
        return {k[6:]: v for k, v in tensors.items() if k.startswith("g_ema.")}
    return tensors


def _median_entry(times: dict[str, list[float]]) -> dict[str, Any]:
    old, new = statistics.median(times["old"]), statistics.median(times["new"])
    return {"old_s": [round(t, 4) for t in times["old"]],
            "new_s": [round(t, 4) for t in times["new"]], "old_median_s": round(old, 4),
            "new_median_s": round(new, 4), "speedup": round(old / new, 1) if new else None}


def bench_in_process(name: str, path: Path, repeats: int) -> dict[str, Any]:
    _, tensors = load_checkpoint(path)
    floats = [t for t in tensors.values() if t.is_floating_point()]
    checks = 2 if name.startswith("g") else 1  # the generator's were checked twice

    def old_check() -> None:
        for _ in range(checks):
            for t in floats:
                bool(torch.isfinite(t).all())

    def new_check() -> None:
        for t in floats:
            all_finite(t)

    finite = interleaved({"old": old_check, "new": new_check}, torch.device("cpu"),
                         repeats=repeats, warmup=0)
    cls, config, _, _ = _network(name)
    state = _state(name, tensors)

    def old_build() -> None:
        cls(**config).load_state_dict(state, strict=True)

    def new_build() -> None:
        load_weights(build_on_meta(lambda: cls(**config)), state, lambda: cls(**config))

    build = interleaved({"old": old_build, "new": new_build}, torch.device("cpu"),
                        repeats=repeats, warmup=0)
    return {"finite_check": {**_median_entry(finite), "checks_before": checks},
            "build": _median_entry(build)}


# ---------------------------------------------------------------------------------------------
# Whole loads in fresh processes


CHILD = r'''
import json, sys, time
import torch
torch.set_num_threads(int(sys.argv[4]))
way, name, path = sys.argv[1], sys.argv[2], sys.argv[3]
from stylebridge.registry import get_registry
registry = get_registry()
registry.names("encoder")  # the plugins are found before the clock starts


def old_make_kernel(taps, gain=1):  # before: computed on the default device (meta too)
    k = torch.tensor(list(taps), dtype=torch.float32)
    if k.ndim == 1:
        k = k[None, :] * k[:, None]
    k = k / k.sum()
    return k * gain if gain != 1 else k


def old_load():
    from safetensors import safe_open
    from stylebridge.core.checkpoint import read_header
    from stylebridge.core.device import keep_rng_state
    import stylebridge.core.stylegan2.layers as layers
    layers.make_kernel = old_make_kernel
    header = read_header(path)
    with safe_open(path, framework="pt") as fh:  # memory-mapped, not 64-byte aligned
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    for t in tensors.values():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError("NaN")
    if name.startswith("g"):
        from stylebridge.core.stylegan2 import Generator
        cls, config, prefix = Generator, header.config["generator"], "g_ema."
    else:
        cls, config, prefix = registry.get("encoder", header.plugin).obj, header.config, ""
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    with keep_rng_state():
        with torch.device("meta"):
            implied = cls(**config).state_dict()
        assert all(implied[k].shape == state[k].shape for k in implied)
        module = cls(**config)
    if name.startswith("g"):  # check_state_dict checked the values again
        for t in state.values():
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise ValueError("NaN")
    module.load_state_dict(state, strict=True)
    return module.eval().requires_grad_(False)


def new_load():
    if name.startswith("g"):
        from stylebridge.core.stylegan2.checkpoint import load_stylegan2
        return load_stylegan2(path, keep_rng=True).generator
    return registry.load("encoder", path).eval().requires_grad_(False)


def peak_mb():  # VmHWM: this process's peak resident memory since exec (ru_maxrss is not)
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM")) / 1024


before = peak_mb()
start = time.perf_counter()
module = (old_load if way == "old" else new_load)()
seconds = time.perf_counter() - start
peak = peak_mb()
print(json.dumps({"s": seconds, "peak_rss_mb": peak, "rss_before_mb": before,
                  "dynamo": "torch._dynamo" in sys.modules, "sympy": "sympy" in sys.modules,
                  "params": sum(p.numel() for p in module.parameters())}))
'''

PRECHECK = r'''
import sys, time
import torch
from stylebridge.core.loading import build_on_meta
from stylebridge.core.stylegan2 import Generator
import stylebridge.core.stylegan2.layers as layers
start = time.perf_counter()
if sys.argv[1] == "old":  # the blur kernels computed on meta; torch's meta kernels for randn
    def make_kernel(taps, gain=1):
        k = torch.tensor(list(taps), dtype=torch.float32)
        k = k[None, :] * k[:, None]
        k = k / k.sum()
        return k * gain if gain != 1 else k
    layers.make_kernel = make_kernel
    with torch.device("meta"):
        Generator(size=256).state_dict()
else:
    build_on_meta(lambda: Generator(size=256)).state_dict()
print(time.perf_counter() - start, "torch._dynamo" in sys.modules, "sympy" in sys.modules)
'''


def _child(code: str, *args: str) -> str:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parent)
    return out.stdout.strip().splitlines()[-1]


def bench_processes(name: str, path: Path, repeats: int, threads: int) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
    for _ in range(repeats):
        for way in runs:
            runs[way].append(json.loads(_child(CHILD, way, name, str(path), str(threads))))
    entry: dict[str, Any] = {}
    for way, results in runs.items():
        entry[way] = {"s": [round(r["s"], 3) for r in results],
                      "median_s": round(statistics.median(r["s"] for r in results), 3),
                      "min_s": round(min(r["s"] for r in results), 3),
                      "peak_rss_mb": round(statistics.median(r["peak_rss_mb"] for r in results)),
                      "rss_before_mb": round(statistics.median(r["rss_before_mb"]
                                                               for r in results)),
                      "load_peak_mb": round(statistics.median(r["peak_rss_mb"] - r["rss_before_mb"]
                                                              for r in results)),
                      "dynamo_imported": any(r["dynamo"] for r in results),
                      "sympy_imported": any(r["sympy"] for r in results)}
    entry["speedup"] = round(entry["old"]["median_s"] / entry["new"]["median_s"], 1)
    return entry


def bench_precheck(repeats: int) -> dict[str, Any]:
    runs: dict[str, list[tuple[float, bool, bool]]] = {"old": [], "new": []}
    for _ in range(repeats):
        for way in runs:
            seconds, dynamo, sympy = _child(PRECHECK, way).split()
            runs[way].append((float(seconds), dynamo == "True", sympy == "True"))
    return {way: {"s": [round(s, 3) for s, _, _ in r],
                  "median_s": round(statistics.median(s for s, _, _ in r), 3),
                  "dynamo_imported": any(d for _, d, _ in r),
                  "sympy_imported": any(y for _, _, y in r)} for way, r in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--repeats", type=int, default=3, help="in-process repeats")
    parser.add_argument("--process-repeats", type=int, default=3,
                        help="fresh processes per way for the whole loads and the pre-check")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--no-processes", action="store_true",
                        help="skip the whole loads and the pre-check in fresh processes")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    result: dict[str, Any] = {
        "benchmark": "load_speed", "weights": RANDOM_WEIGHTS, "device": "cpu",
        "torch": torch.__version__, "threads": args.threads, "repeats": args.repeats,
        "process_repeats": args.process_repeats,
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpus": torch.get_num_threads()},
        "models": {}}
    with tempfile.TemporaryDirectory(prefix="load_speed_") as tmp:
        files = build_files(Path(tmp), args.models)
        result["build_files_s"] = round(time.perf_counter() - start, 1)
        for name, path in files.items():
            _, tensors = load_checkpoint(path)
            info: dict[str, Any] = {
                "file_mb": round(path.stat().st_size / 2**20, 1), "tensors": len(tensors),
                "elements": sum(t.numel() for t in tensors.values())}
            del tensors
            info.update(bench_in_process(name, path, args.repeats))
            if not args.no_processes:
                info["full_load"] = bench_processes(name, path, args.process_repeats,
                                                    args.threads)
            result["models"][name] = info
            print(f"{name}: {json.dumps(_summary(info))}", flush=True)
        if not args.no_processes:
            result["meta_precheck_g256"] = bench_precheck(args.process_repeats)
            print(f"meta pre-check: {json.dumps(result['meta_precheck_g256'])}", flush=True)
    result["wall_s"] = round(time.perf_counter() - start, 1)
    result["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, result)
    print(f"wrote {args.out} ({result['wall_s']} s)")


def _summary(info: dict[str, Any]) -> dict[str, Any]:
    out = {part: f"{info[part]['old_median_s']} -> {info[part]['new_median_s']} s "
                 f"({info[part]['speedup']}x)" for part in ("finite_check", "build")}
    if "full_load" in info:
        full = info["full_load"]
        out["full_load"] = (f"{full['old']['median_s']} -> {full['new']['median_s']} s "
                            f"({full['speedup']}x), load peak {full['old']['load_peak_mb']} -> "
                            f"{full['new']['load_peak_mb']} MB")
    return out


if __name__ == "__main__":
    main()

