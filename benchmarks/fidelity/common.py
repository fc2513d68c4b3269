"""Shared helpers of the fidelity checks (``benchmarks/fidelity/check_*.py``).

Each check module runs in its own Python process (``run.py`` starts one per module): the
upstream repositories reuse top-level package names (``models``, ``core``, ``op``), so they
cannot share an interpreter.  A module builds the upstream network with the upstream's own
code, gives it random weights from fixed seeds, saves it in the upstream's file format,
converts that file with the ``stylebridge convert`` command line, loads the result with
``stylebridge.create`` and compares outputs on the same inputs.

Run patches (applied in memory, never written into the upstream trees) are made only through
:func:`stub` (a training-only import the compared code path never calls), :func:`block` (an
import made to fail so the upstream's own ``except ImportError`` fallback runs) and
``native_ops.install`` (the rosinality CUDA ops); each check module says which it uses and why.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
REL_TOL = 1e-4  # default tolerance: REL_TOL * max(1, max |reference|), float32 on the CPU


# ---------------------------------------------------------------------------- upstream trees

def repo_dir(upstream: Path, repo: str) -> Path:
    """``DEST/OWNER+NAME`` as prepare.sh lays it out; fails early when it is missing."""
    path = Path(upstream) / repo.replace("/", "+")
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is missing: run benchmarks/fidelity/prepare.sh first")
    return path


def commit_of(upstream: Path, repo: str) -> str:
    """The commit prepare.sh extracted (its ``FIDELITY_COMMIT`` file), else ``unknown``."""
    marker = repo_dir(upstream, repo) / "FIDELITY_COMMIT"
    return marker.read_text().strip() if marker.is_file() else "unknown"


def use_upstream(root: Path, chdir: bool = True) -> None:
    """Put an upstream tree first on ``sys.path`` (and make it the working directory: some
    upstream code opens files relative to its root, e.g. FSE's ``configs/001.yaml``)."""
    sys.path.insert(0, str(root))
    if chdir:
        os.chdir(root)


def stub(name: str, **attrs: Any) -> types.ModuleType:
    """Register an empty module (with ``attrs``) for an import the compared path never uses."""
    parts = name.split(".")
    for i in range(1, len(parts)):
        sys.modules.setdefault(".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
    mod = types.ModuleType(name)
    for key, value in attrs.items():
        setattr(mod, key, value)
    sys.modules[name] = mod
    return mod


def block(name: str) -> None:
    """Make ``import name`` raise ImportError (``sys.modules[name] = None``)."""
    sys.modules[name] = None  # type: ignore[assignment]


# ---------------------------------------------------------------------------- random weights

def perturb(module: torch.nn.Module, seed: int, scale: float = 0.05) -> None:
    """Add seeded Gaussian noise (``scale`` x each tensor's std) to every float parameter;
    BatchNorm statistics get fresh values; other buffers (blur kernels, noises) stay as the
    upstream code built them."""
    gen = torch.Generator().manual_seed(seed)
    buffers = dict(module.named_buffers())
    with torch.no_grad():
        for name, tensor in list(module.named_parameters()) + list(buffers.items()):
            if not tensor.is_floating_point():
                continue
            if "running_var" in name:
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            elif "running_mean" in name:
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.1)
            elif name in buffers:
                continue
            else:
                std = tensor.std().item() if tensor.numel() > 1 else 0.0
                noise = torch.randn(tensor.shape, generator=gen)
                tensor.add_(noise * (scale * (std if std > 0 else 1.0)))


def tame_bn(module: torch.nn.Module, seed: int) -> None:
    """Moderate BatchNorm affine values and statistics so deep random nets stay finite."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                if m.weight is not None:
                    m.weight.copy_(torch.rand(m.weight.shape, generator=gen) * 0.4 + 0.3)
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)


def shrink_convs(module: torch.nn.Module, factor: float = 0.5) -> None:
    """Scale every Conv2d weight (keeps 50-layer random ResNets from overflowing)."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.mul_(factor)


# ---------------------------------------------------------------------------- stylebridge side

def convert(kind: str, src: Path, dst: Path, *options: str) -> None:
    """``stylebridge convert --force KIND SRC DST [-o KEY=VALUE ...]`` in a child process."""
    cmd = [sys.executable, "-m", "stylebridge", "convert", "--force", kind, str(src), str(dst)]
    for opt in options:
        cmd += ["-o", opt]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n"
                           f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")


# ---------------------------------------------------------------------------- results

class Recorder:
    """Collects one record per comparison.  ``seconds`` of a record is the wall time since the
    previous record of the same module (the first one includes building, saving and
    converting the models)."""

    def __init__(self, module: str) -> None:
        self.module = module
        self.records: list[dict[str, Any]] = []
        self._last = time.perf_counter()

    def compare(self, name: str, repo: str, commit: str, compares: str, ours: torch.Tensor,
                reference: torch.Tensor, size: str, tolerance: float | None = None,
                informational: bool = False) -> float:
        """Record max |ours - reference|.  ``informational``: a documented approximation with
        no agreed tolerance; recorded with ``tolerance`` and ``passed`` null, not counted."""
        ours = ours.detach().float().cpu()
        reference = reference.detach().float().cpu()
        if ours.shape != reference.shape:
            raise ValueError(f"{name}: shapes differ, {tuple(ours.shape)} vs "
                             f"{tuple(reference.shape)}")
        diff = (ours - reference).abs().max().item()
        ref_max = reference.abs().max().item()
        tol = tolerance if tolerance is not None else REL_TOL * max(1.0, ref_max)
        now = time.perf_counter()
        passed: bool | None = bool(diff <= tol) and bool(torch.isfinite(reference).all())
        if informational:
            tol, passed = None, None
        self.records.append({
            "name": name, "module": self.module, "repo": repo, "commit": commit,
            "compares": compares, "size": size, "shape": list(reference.shape),
            "max_abs_diff": diff, "reference_max_abs": ref_max, "tolerance": tol,
            "passed": passed, "seconds": round(now - self._last, 2)})
        self._last = now
        mark = "info" if passed is None else "ok  " if passed else "FAIL"
        print(f"{mark} {name}: max|diff| {diff:.3e} (ref max {ref_max:.3e}, tol "
              f"{'none' if tol is None else f'{tol:.1e}'})", flush=True)
        return diff


def main(module: str, check: Callable[[Path, Path, Recorder], None]) -> None:
    """Command line of a check module: ``--upstream DEST --work DIR --out PART.json``."""
    parser = argparse.ArgumentParser(description=f"fidelity check {module}")
    parser.add_argument("--upstream", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    upstream, work, out = args.upstream.resolve(), args.work.resolve(), args.out.resolve()
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    rec = Recorder(module)
    error = None
    try:
        check(upstream, work, rec)
    except Exception:  # reported in the JSON; run.py fails the suite
        error = traceback.format_exc()
        print(error, file=sys.stderr)
    out.write_text(json.dumps({"module": module, "records": rec.records, "error": error},
                              indent=1))
    sys.exit(1 if error or any(r["passed"] is False for r in rec.records) else 0)
