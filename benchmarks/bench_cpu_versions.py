"""CPU speed of two versions of stylebridge side by side (issue 20: "no CPU regression anywhere").

Each version is exported from git (``git archive``) into a temporary folder and imported
from there, one fresh process per (version, workload, round).  The versions alternate on
every round and the order flips each round, so drift on a shared machine hits both alike;
the report gives medians, per-round ratios and the ratio of the medians.

    python benchmarks/bench_cpu_versions.py                          # ead2fe3 vs HEAD
    python benchmarks/bench_cpu_versions.py --baseline v0.1 --candidate HEAD --rounds 5 \\
        --workloads synthesis,featureshift --out benchmarks/results/cpu_versions.json

Workloads (``--workloads``):
* ``synthesis``: this file's own worker, the same code in both versions: a config-f
  generator (one set of weights, saved by the first process and loaded by every other) at
  256 px batch 1 and 8 and 1024 px batch 1 at inference, and 256 px batch 2 forward +
  backward to w+ (what optimisation-based inversion and domain training pay).  Both
  versions' images and w+ gradients are compared (``max_abs_diff``);
* ``featureshift``, ``domain_methods``, ``fse_encoder``: each version's own
  ``benchmarks/bench_featureshift.py`` (inversion and joint steps, 256 px generator),
  ``bench_domain_methods.py`` (every domain method's training step, tiny 128 px generator) and
  ``bench_encoder_fse.py`` (the official-size FSE, batch 1), read from their JSON.

Everything runs on random weights: the numbers are the cost of the code paths.  A ratio
``baseline / candidate`` above 1 means the candidate is faster.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BASELINE = "ead2fe3"  # main just before issue 20's speed work was merged (0a2c9ca)
WORKLOADS = ("synthesis", "featureshift", "domain_methods", "fse_encoder")
SCRIPTS: dict[str, tuple[str, list[str]]] = {
    "featureshift": ("bench_featureshift.py", [
        "--size", "256", "--channels", "256", "--style-dim", "256", "--image-size", "256",
        "--batch", "2", "--images", "8", "--steps", "2", "--repeats", "3", "--warmup", "1",
        "--variants", "inversion,joint-stored"]),
    "domain_methods": ("bench_domain_methods.py", ["--size", "128", "--steps", "2",
                                                   "--repeats", "2"]),
    "fse_encoder": ("bench_encoder_fse.py", ["--batches", "1", "--repeats", "2"]),
}


# ----------------------------------------------------------------------------- the worker
def _synthesis(out: Path, weights: Path, calls: int) -> dict[str, float]:
    """Milliseconds per call of each synthesis case; images and gradients saved to ``out``."""
    import torch

    from stylebridge.core.stylegan2 import Generator

    def build(size: int) -> Generator:
        path = weights.with_name(f"{weights.stem}_{size}.pt")
        torch.manual_seed(0)
        gen = Generator(size=size).eval()
        if path.exists():
            gen.load_state_dict(torch.load(path, weights_only=True), strict=True)
        else:
            torch.save(gen.state_dict(), path)
        for p in gen.parameters():
            p.requires_grad_(False)
        return gen

    def median_ms(fn: Callable[[], Any]) -> float:
        fn()  # warm-up (weight caches, allocator)
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return 1000 * statistics.median(times)

    ms: dict[str, float] = {}
    saved: dict[str, Any] = {}
    for size, batches in ((256, (1, 8)), (1024, (1,))):
        gen = build(size)
        noise = [getattr(gen.noises, f"noise_{i}") for i in range(gen.num_layers)]
        for batch in batches:
            g = torch.Generator().manual_seed(batch)
            with torch.no_grad():
                w = gen.mapping(torch.randn(batch, gen.style_dim, generator=g))
                label = f"synthesis {size} px b{batch}"
                ms[label] = median_ms(lambda w=w, gen=gen, noise=noise: gen(
                    [w], input_is_latent=True, noise=noise))
                saved[label] = gen([w], input_is_latent=True, noise=noise)
        if size == 256:
            with torch.no_grad():
                w_plus = gen.make_wplus([gen.mapping(torch.randn(
                    2, gen.style_dim, generator=torch.Generator().manual_seed(2)))],
                    input_is_latent=True).clone()

            def step(gen: Generator = gen, noise: list = noise, w_plus: Any = w_plus) -> Any:
                x = w_plus.clone().requires_grad_(True)
                image = gen.synthesis(gen.styles(x), noise=noise)
                image.square().mean().backward()
                return x.grad

            label = "synthesis 256 px b2 forward+backward"
            ms[label] = median_ms(step)
            saved[label] = step()
    torch.save(saved, out)
    return ms


def _worker(args: argparse.Namespace) -> None:
    tree = Path(args.tree).resolve()
    sys.path[:0] = [str(tree / "benchmarks"), str(tree)]
    import torch

    import stylebridge

    where = Path(stylebridge.__file__).resolve()
    if tree not in where.parents:
        raise SystemExit(f"imported stylebridge from {where}, not from {tree}")
    torch.set_num_threads(args.threads)
    if args.worker == "synthesis":
        ms = _synthesis(Path(args.out), Path(args.weights), args.calls)
    else:
        import runpy

        script, extra = SCRIPTS[args.worker]
        sys.argv = [script, *extra, "--threads", str(args.threads), "--out", str(args.out)]
        runpy.run_path(str(tree / "benchmarks" / script), run_name="__main__")
        ms = _read_script_result(args.worker, json.loads(Path(args.out).read_text()))
    print("RESULT " + json.dumps(ms))


def _read_script_result(workload: str, data: dict[str, Any]) -> dict[str, float]:
    if workload == "featureshift":
        return {f"featureshift step {k}": 1000 / v for k, v in data["steps_per_s_median"].items()}
    if workload == "domain_methods":
        return {f"train-domain step {k}": v for k, v in data["ms_per_step_median"].items()}
    return {f"fse {k} b{r['batch']}": 1000 / v
            for r in data["results"] for k, v in r["images_per_s"].items()}


# ----------------------------------------------------------------------------- the driver
def _export(ref: str, root: Path) -> tuple[Path, str]:
    """``git archive`` of ``ref`` unpacked under ``root``; returns (folder, full commit)."""
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", f"{ref}^{{commit}}"],
                            check=True, capture_output=True, text=True).stdout.strip()
    folder = root / commit[:12]
    archive = root / f"{commit[:12]}.tar"
    subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", "-o", str(archive), commit],
                   check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    return folder, commit


def _run(tree: Path, workload: str, out: Path, weights: Path, args: argparse.Namespace
         ) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("STYLEBRIDGE_") and k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", workload,
           "--tree", str(tree), "--out", str(out), "--weights", str(weights),
           "--threads", str(args.threads), "--calls", str(args.calls)]
    proc = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise SystemExit(f"{workload} in {tree.name} failed: {tail[0]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def _agreement(a: Path, b: Path) -> dict[str, float]:
    import torch

    ta, tb = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    return {k: float((ta[k] - tb[k]).abs().max()) for k in ta}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=BASELINE, help=f"git ref (default {BASELINE})")
    parser.add_argument("--candidate", default="HEAD", help="git ref (default HEAD)")
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        help=f"comma-separated subset of {', '.join(WORKLOADS)}")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=3, help="timed calls per synthesis case")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--worker", choices=WORKLOADS, help=argparse.SUPPRESS)
    parser.add_argument("--tree", help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return
    workloads = [w for w in args.workloads.split(",") if w]
    unknown = sorted(set(workloads) - set(WORKLOADS))
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _timing import report

    with tempfile.TemporaryDirectory(prefix="sb-versions-") as tmp:
        root = Path(tmp)
        trees = {"baseline": _export(args.baseline, root), "candidate": _export(args.candidate, root)}
        ms: dict[str, dict[str, list[float]]] = {"baseline": {}, "candidate": {}}
        agreement: dict[str, float] = {}
        for r in range(args.rounds):
            order = ["baseline", "candidate"] if r % 2 == 0 else ["candidate", "baseline"]
            for workload in workloads:
                for version in order:
                    out = root / f"{version}_{workload}_{r}.out"
                    result = _run(trees[version][0], workload, out, root / "weights.pt", args)
                    for label, value in result.items():
                        ms[version].setdefault(label, []).append(value)
                    print(f"round {r + 1}/{args.rounds} {workload} {version}: "
                          + ", ".join(f"{k} {v:.1f} ms" for k, v in result.items()), flush=True)
                if workload == "synthesis" and r == 0:
                    agreement = _agreement(root / f"baseline_{workload}_0.out",
                                           root / f"candidate_{workload}_0.out")
    labels = [k for k in ms["baseline"] if k in ms["candidate"]]
    med = {v: {k: statistics.median(ms[v][k]) for k in labels} for v in ms}
    result = {
        "benchmark": "cpu versions", "machine": platform.platform(),
        "processor": platform.processor() or platform.machine(), "threads": args.threads,
        "python": platform.python_version(),
        "baseline": {"ref": args.baseline, "commit": trees["baseline"][1]},
        "candidate": {"ref": args.candidate, "commit": trees["candidate"][1]},
        "rounds": args.rounds, "calls_per_synthesis_case": args.calls,
        "ms_median": med, "ms_all": ms,
        "speedup_baseline_over_candidate": {k: round(med["baseline"][k] / med["candidate"][k], 3)
                                            for k in labels},
        "speedup_per_round": {k: [round(b / c, 3) for b, c in
                                  zip(ms["baseline"][k], ms["candidate"][k], strict=True)]
                              for k in labels},
        "synthesis_max_abs_diff": agreement,
        "note": "random weights; each (version, workload, round) a fresh process; "
                "ratios above 1: the candidate is faster",
    }
    import torch

    result["torch"] = torch.__version__
    report(result, args.out)


if __name__ == "__main__":
    main()
