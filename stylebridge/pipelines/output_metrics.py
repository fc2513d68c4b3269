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

from stylebridge.core.checkpoint import RANDOM_NOTICE
from stylebridge.core.interfaces import Metric
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.eval_report import column_header
from stylebridge.pipelines.evaluate import (
    MetricRequest,
    build_metrics,
    claim_columns,
    metric_values,
    parse_metric_spec,
)
from stylebridge.registry import Registry, get_registry

#: what ``metrics.json`` says the numbers were computed on (``scored_on``): the pictures as
#: rendered, in float, before the PNGs' 8-bit rounding, so ``eval`` on the written files
#: differs in the last digits (PSNR 6.76502 vs 6.76508 dB on one tiny-preset photo)
SCORED_ON = ("the rendered pictures in float [0, 1], before the PNGs' 8-bit rounding "
             "(`stylebridge eval` on the written files differs in the last digits)")

#: what ``adapt`` computes when no metric is named (cheap: no network, no face detector)
DEFAULT_METRICS = ("mse", "psnr")

OutputMetrics = dict[str, list[Metric]]


def check_output_metrics(specs: Sequence[str], registry: Registry | None = None
                         ) -> list[MetricRequest]:
    """The requests of ``specs`` (a repeated spec counts once), each checked on its class
    before any network is built or any weights are asked for: one-line errors for an unknown
    metric, two variants of one metric (one column would overwrite the other) and a metric
    that does not compare an image with its input (``fid``: sets)."""
    requests = [parse_metric_spec(text) for text in dict.fromkeys(specs)]  # `-m mse -m mse`: one
    registry = registry or get_registry()
    seen: dict[str, str] = {}
    for req in requests:
        other = seen.setdefault(req.name, req.text)
        if other != req.text:
            # one column per metric name: the second would overwrite the first's numbers
            raise StylebridgeError(f"--metric {other} and --metric {req.text} are both "
                                   f"{req.name!r}, whose column one would overwrite; keep one "
                                   "(`stylebridge eval` scores several variants of a metric "
                                   "on the written files)")
        cls = registry.get("metric", req.name).obj
        if cls.takes_reference or not cls.needs_target:
            what = ("compares sets of images" if cls.takes_reference else
                    "scores images alone")
            raise StylebridgeError(f"--metric {req.text}: it {what}, not a picture with its "
                                   "photo; use `stylebridge eval` on the written files")
    return requests


def build_output_metrics(specs: Sequence[str], outputs: Sequence[str],
                         device: torch.device | None = None, *,
                         registry: Registry | None = None) -> OutputMetrics:
    """One fresh instance of every metric per output name, on ``device`` (default the CPU,
    where the rendered images are kept); one-line errors for a bad spec or a metric that does
    not compare an image with its input.  The first output's instances are built from their
    specs; the others are their :meth:`~stylebridge.core.interfaces.Metric.fresh` twins
    (sharing a network built once), or built from the spec too when a metric offers none.
    ``registry``: where the metrics come from (default: the installed plugins)."""
    device = device or torch.device("cpu")
    registry = registry or get_registry()
    requests = check_output_metrics(specs, registry)
    if not outputs:
        return {}
    first = build_metrics(requests, device, registry=registry)
    out: OutputMetrics = {outputs[0]: first}
    for name in outputs[1:]:
        out[name] = [twin if (twin := metric.fresh()) is not None
                     else build_metrics([req], device, registry=registry)[0]
                     for req, metric in zip(requests, first, strict=True)]
    return out


def update_output_metrics(metrics: OutputMetrics, rendered: Mapping[str, Tensor],
                          targets: Tensor) -> None:
    """Feed one batch: ``rendered[name]`` against ``targets`` (all in ``[0, 1]``)."""
    for name, group in metrics.items():
        columns: dict[str, str] = {}
        for metric in group:
            metric.update(rendered[name], targets)
            claim_columns(columns, metric.last, metric.name)


def last_output_values(metrics: OutputMetrics, index: int) -> dict[str, dict[str, float | None]]:
    """Image ``index`` of the latest batch: ``{output: {key: value}}`` from each metric's
    per-image values (:attr:`~stylebridge.core.interfaces.Metric.last`; a metric without them
    gives none); a value that is not finite (NaN where a metric has none, e.g. no face
    found) is ``None``, as in the means."""
    out: dict[str, dict[str, float | None]] = {}
    for name, group in metrics.items():
        values: dict[str, float | None] = {}
        for metric in group:
            for key, per_image in metric.last.items():
                value = float(per_image[index])
                values[key] = value if math.isfinite(value) else None
        out[name] = values
    return out


def compute_output_metrics(metrics: OutputMetrics, *, registry: Registry | None = None
                           ) -> dict[str, dict[str, float | None]]:
    """``{output: {key: mean}}``; a non-finite mean (no image had a value) is ``None``.
    ``registry``: the one the metrics were built from (it names a plugin's package)."""
    out: dict[str, dict[str, float | None]] = {}
    for name, group in metrics.items():
        values: dict[str, float | None] = {}
        owners: dict[str, str] = {}
        for metric in group:
            computed = metric_values(metric, metric.name, registry=registry)
            claim_columns(owners, computed, metric.name)
            values.update({k: v if math.isfinite(v) else None for k, v in computed.items()})
        out[name] = values
    return out


def output_column_header(key: str, *, registry: Registry | None = None) -> str:
    """The table header of the column ``key`` of :func:`compute_output_metrics`: the key with
    the unit and direction its metric declares (``psnr (dB) ↑``,
    :func:`~stylebridge.pipelines.eval_report.column_header`); the metric is the registered
    one of that name (``id[dlib]`` is ``id``'s) in ``registry`` (default: the installed
    plugins); the bare key when there is none."""
    registry = registry or get_registry()
    name = key.partition("[")[0]
    if name not in registry.names("metric"):
        return key
    cls = registry.get("metric", name).obj
    return column_header(key, cls.direction, cls.unit)


def output_metric_notes(metrics: OutputMetrics) -> list[str]:
    """What the metrics have to say (which ID backend, no face found, random weights), each
    line once, naming its metric (``id: no face was detected ...``; a line that starts with
    the name already, ``id uses dlib's ...``, or a ``RANDOM WEIGHTS`` label, as it is) and the
    outputs it is about when not
    all of them (:func:`grouped_notes`)."""
    def named(metric: Metric, line: str) -> str:
        name = metric.name  # a RANDOM WEIGHTS label stays first: it names its network itself
        return line if not name or line.startswith(
            (f"{name} ", f"{name}:", f"{name}[", RANDOM_NOTICE)) else f"{name}: {line}"

    return grouped_notes({name: [named(metric, line) for metric in group
                                 for line in metric.notes()]
                          for name, group in metrics.items()})


def grouped_notes(notes_by_row: Mapping[str, Sequence[str]], every: str = "each output"
                  ) -> list[str]:
    """Each distinct note once, in first-seen order, ending with the rows it came from when
    there are several: ``"... face box (inversion, pixar)"``, or ``(each output)`` (a count
    in the note is per output).  A note
    may hold a count of its own row (``no face was detected in 1 image(s)``), so it is never
    left without saying which rows it holds for."""
    rows_of: dict[str, list[str]] = {}
    for row, notes in notes_by_row.items():
        for note in dict.fromkeys(notes):
            rows_of.setdefault(note, []).append(row)
    if len(notes_by_row) < 2:
        return list(rows_of)
    return [f"{note} ({every})" if len(rows) == len(notes_by_row)
            else f"{note} ({', '.join(rows)})" for note, rows in rows_of.items()]


__all__ = ["DEFAULT_METRICS", "OutputMetrics", "build_output_metrics", "check_output_metrics",
           "compute_output_metrics", "grouped_notes", "last_output_values", "output_column_header", "output_metric_notes",
           "update_output_metrics"]
