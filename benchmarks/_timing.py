"""Timing helpers shared by the benchmark scripts (run them as ``python benchmarks/X.py``).

Every benchmark compares variants *side by side in one run*: the machines are noisy, so
variants are interleaved on every repeat and reported as medians and ratios.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch


def sync(device: torch.device) -> None:
    """Wait for queued GPU work (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Wall time of one call of ``fn`` in seconds, GPU work included."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def interleaved(runners: Mapping[str, Callable[[], object]], device: torch.device, *,
                repeats: int, warmup: int = 1, calls: int = 1) -> dict[str, list[float]]:
    """Seconds per call of every runner: ``warmup`` untimed rounds, then ``repeats`` rounds
    in which each runner is called ``calls`` times in turn (so drift hits all alike)."""
    for _ in range(warmup):
        for fn in runners.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):
        for name, fn in runners.items():
            def block(fn: Callable[[], object] = fn) -> None:
                for _ in range(calls):
                    fn()
            times[name].append(timed(block, device) / calls)
    return times


def report(result: Mapping[str, Any], out: Path | None) -> None:
    """Print ``result`` as JSON and, with ``out``, write it there too."""
    from stylebridge.core.io import write_json

    print(json.dumps(result, indent=2))
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_json(out, result)  # atomic: a killed run leaves the previous file whole
