"""Metrics of ``adapt``'s outputs against its input photo, streamed batch by batch.

Every requested metric (an ``eval`` spec: ``mse``, ``ssim``, ``id``, ``lpips:net=vgg``...)
compares each output, the inversion and every domain, with the aligned input: for the
inversion it is the reconstruction quality, for a domain how far the new picture moved from the
photo (``id``: how much identity survived).  Metrics that compare sets (``fid``, the CLIP
ones) need more than one picture per output and belong to ``stylebridge eval``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from stylebridge.core.interfaces import Metric
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.evaluate import build_metrics, parse_metric_spec
from stylebridge.registry import get_registry

#: what ``adapt`` computes when no metric is named (cheap: no network, no face detector)
DEFAULT_METRICS = ("mse", "psnr")

OutputMetrics = dict[str, list[Metric]]


def build_output_metrics(specs: Sequence[str], outputs: Sequence[str],
                         device: torch.device | None = None) -> OutputMetrics:
    """One fresh instance of every metric per output name, on ``device`` (default the CPU,
    where the rendered images are kept); one-line errors for a bad spec or a metric that does
    not compare an image with its input."""
    device = device or torch.device("cpu")
    requests = [parse_metric_spec(text) for text in specs]
    registry = get_registry()
    for req in requests:  # before any network is loaded
        cls = registry.get("metric", req.name).obj
        if not cls.needs_target or cls.takes_reference:
            raise StylebridgeError(f"--metric {req.text}: it compares sets of images, not a "
                                   "picture with its photo; use `stylebridge eval` on the "
                                   "written files")
    return {name: build_metrics(requests, device) for name in outputs}


def update_output_metrics(metrics: OutputMetrics, rendered: Mapping[str, Tensor],
                          targets: Tensor) -> None:
    """Feed one batch: ``rendered[name]`` against ``targets`` (all in ``[0, 1]``)."""
    for name, group in metrics.items():
        for metric in group:
            metric.update(rendered[name], targets)


def compute_output_metrics(metrics: OutputMetrics) -> dict[str, dict[str, float | None]]:
    """``{output: {key: mean}}``; a non-finite mean (PSNR of identical images) is ``None``."""
    out: dict[str, dict[str, float | None]] = {}
    for name, group in metrics.items():
        values: dict[str, float | None] = {}
        for metric in group:
            values.update({k: float(v) if math.isfinite(float(v)) else None
                           for k, v in metric.compute().items()})
        out[name] = values
    return out


def output_metric_notes(metrics: OutputMetrics) -> list[str]:
    """What the metrics have to say (which ID backend, random weights), each line once."""
    notes: dict[str, None] = {}
    for group in metrics.values():
        for metric in group:
            notes.update(dict.fromkeys(metric.notes()))
    return list(notes)


__all__ = ["DEFAULT_METRICS", "OutputMetrics", "build_output_metrics", "compute_output_metrics",
           "output_metric_notes", "update_output_metrics"]
