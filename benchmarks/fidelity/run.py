"""Run the fidelity suite: stylebridge's converters and renderers against the upstream
repositories' own Python code, on random weights with fixed seeds.

    benchmarks/fidelity/prepare.sh /tmp/upstream            # once: pinned upstream sources
    python benchmarks/fidelity/run.py --upstream /tmp/upstream --out results.json
    python benchmarks/fidelity/run.py --upstream /tmp/upstream --out r.json --only e4e fse

Each check module (``check_NAME.py``) runs in a child process of its own (the upstream
repositories reuse package names such as ``models``), one after the other.  The JSON holds one
record per comparison (name, upstream repository and commit, what is compared, sizes,
max |diff|, max |reference|, tolerance, passed, seconds), each module's wall time and error if
any, and the machine's and libraries' versions.  Exit status 1 when any comparison fails or
any module errors.  ``summarize.py`` turns the JSON into the Markdown table of
docs/fidelity.md.  Not part of CI: it needs the upstream code.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# check name -> the upstream repositories its module reads (in the order run.py runs them)
CHECKS: dict[str, tuple[str, ...]] = {
    "e4e": ("omertov/encoder4editing",),
    "psp": ("eladrich/pixel2style2pixel",),
    "fse": ("InterDigitalInc/FeatureStyleEncoder",),
    "styledomain": ("AIRI-Institute/StyleDomain",),
    "fse_shift": ("InterDigitalInc/FeatureStyleEncoder", "AIRI-Institute/StyleDomain"),
    "styleres": ("hamzapehlivan/StyleRes",),
    "rosinality": ("rosinality/stylegan2-pytorch",),
    "nvlabs": ("NVlabs/stylegan2-ada-pytorch",),
    "mindthegap": ("ZPdesu/MindTheGap",),
    "hyperdomainnet": ("MACderRu/HyperDomainNet",),
    "clip": ("openai/CLIP",),
}


def module_path(name: str) -> Path:
    return HERE / f"check_{name}.py"


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    import torch
    return {
        "platform": platform.platform(), "machine": platform.machine(),
        "processor": platform.processor() or None, "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
        "torch": torch.__version__, "torchvision": _version("torchvision"),
        "numpy": _version("numpy"), "stylebridge": _version("stylebridge"),
        "device": "cpu", "dtype": "float32",
    }


def pinned(upstream: Path) -> dict[str, str]:
    """``repo -> commit`` from DEST/PINNED (written by prepare.sh)."""
    path = upstream / "PINNED"
    if not path.is_file():
        return {}
    return dict(line.split() for line in path.read_text().splitlines() if line.strip())


def run_module(name: str, upstream: Path, work: Path) -> tuple[dict[str, Any], list[dict]]:
    part = work / f"{name}.json"
    part.unlink(missing_ok=True)
    cmd = [sys.executable, str(module_path(name)), "--upstream", str(upstream),
           "--work", str(work / name), "--out", str(part)]
    print(f"== {name}", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          cwd=HERE)
    seconds = round(time.perf_counter() - start, 1)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(("ok  ", "FAIL", "info"))]
    print("\n".join(lines), flush=True)
    records: list[dict] = []
    error = None
    if part.is_file():
        data = json.loads(part.read_text())
        records, error = data["records"], data["error"]
    else:
        error = f"no result file (exit status {proc.returncode}):\n{proc.stdout[-3000:]}"
    if error:
        print(error, flush=True)
    print(f"   {seconds} s", flush=True)
    return {"name": name, "seconds": seconds, "returncode": proc.returncode,
            "error": error}, records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="compare stylebridge with the upstream repositories' own code "
                    "(random weights, fixed seeds); see docs/fidelity.md")
    parser.add_argument("--upstream", type=Path, required=True,
                        help="the DEST folder benchmarks/fidelity/prepare.sh filled")
    parser.add_argument("--out", type=Path, required=True, help="results JSON to write")
    parser.add_argument("--only", nargs="+", choices=list(CHECKS), metavar="NAME",
                        help=f"run only these checks ({', '.join(CHECKS)})")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for the generated files (default: a temporary folder)")
    args = parser.parse_args(argv)
    upstream = args.upstream.resolve()
    names = args.only or list(CHECKS)
    with tempfile.TemporaryDirectory(prefix="sb-fidelity-") as tmp:
        work = (args.work or Path(tmp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        modules, checks = [], []
        for name in names:
            info, records = run_module(name, upstream, work)
            modules.append(info)
            checks.extend(records)
    passed = bool(checks) and not any(r["passed"] is False for r in checks) and not any(
        m["error"] for m in modules)
    result = {
        "suite": "stylebridge fidelity (benchmarks/fidelity)",
        "created": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "tolerance_rule": "passed: max |diff| <= 1e-4 * max(1, max |reference|) unless the "
                          "record gives another tolerance; tolerance and passed null: "
                          "informational (a documented approximation, not counted); "
                          "float32 on the CPU",
        "machine": machine(), "upstream": pinned(upstream),
        "total_seconds": round(time.perf_counter() - start, 1),
        "passed": passed, "modules": modules, "checks": checks,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    n_failed = sum(r["passed"] is False for r in checks)
    n_err = sum(bool(m["error"]) for m in modules)
    print(f"{len(checks)} comparisons, {n_failed} failed, {n_err} module errors, "
          f"{result['total_seconds']} s -> {args.out}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
