"""Scoring batches of pairs with every metric of ``stylebridge eval``
(:mod:`stylebridge.pipelines.evaluate`), pair by pair when a metric refuses a batch.

A metric may refuse images: SSIM's 7×7 window does not fit a 2×2 picture, LPIPS' AlexNet
needs about 32 px.  Such a refusal is about the input, not a bug: a
:class:`~stylebridge.errors.StylebridgeError`, or a ``RuntimeError``/``ValueError`` that
speaks of sizes or shapes (torch's "Output size is too small").  Then every metric is put
back as it was before the batch (:meth:`~stylebridge.core.interfaces.Metric.state` /
``load_state``; metrics without a state are updated last, and an update that raises leaves
its metric unchanged), the batch's pairs are scored one by one, and the pairs that are still
refused are returned with the reason, for the batch report: the rest of the run goes on.
Any other exception is a bug and stops the run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from stylebridge.core.interfaces import Metric
from stylebridge.errors import StylebridgeError
from stylebridge.registry import Registry, get_registry

#: what a torch or plugin error says when it is about the images' size or shape
SIZE_WORDS = re.compile(r"\b(?:sizes?|shapes?|dimensions?)\b|too small", re.IGNORECASE)
#: the longest part of a library's message kept in a skip reason
MAX_REASON = 240


def metric_label(metric: Metric, label: str, registry: Registry | None = None) -> str:
    """``metric 'LABEL'`` (``LABEL``: its ``--metric`` spec), with `` (from PKG)`` when a
    third-party package provides it (as ``registry``, default the installed plugins, says),
    as a loss is named (:func:`stylebridge.pipelines.training.losses.loss_label`): what the
    one-line errors about a metric's return values start with."""
    provider = None
    try:
        registry = registry or get_registry()
        for name in dict.fromkeys((label.partition(":")[0], type(metric).name)):
            provider = registry.provider_of("metric", name, metric)
            if provider is not None:
                break
    except StylebridgeError:  # no registry to ask (a stale install): the label alone
        pass
    return f"metric {label!r}" + (f" (from {provider})" if provider else "")


def claim_columns(owners: dict[str, str], keys: Iterable[str], label: str) -> None:
    """Refuse two metrics that report the same key: one would overwrite the other's numbers
    in the table, metrics.json and the CSV.  ``owners`` maps each key to its metric."""
    for key in keys:
        other = owners.setdefault(key, label)
        if other != label:
            raise StylebridgeError(f"metrics {other!r} and {label!r} both report {key!r}: one "
                                   "would overwrite the other's numbers; drop one of them")


def input_reason(exc: BaseException, images: Tensor) -> str | None:
    """The one-line reason when ``exc`` (raised by a metric's ``update`` on ``images``) is
    about the input; ``None`` for anything else (a bug: raised as it is)."""
    if isinstance(exc, StylebridgeError):
        return str(exc)
    if isinstance(exc, (RuntimeError, ValueError)) and SIZE_WORDS.search(str(exc)):
        text = " ".join(str(exc).split())
        text = text if len(text) <= MAX_REASON else text[:MAX_REASON - 3] + "..."
        return f"cannot score images of {images.shape[-1]}×{images.shape[-2]} px ({text})"
    return None


class Refused(Exception):
    """A metric refused the images of a batch (``reason``, naming the metric); every metric
    is as it was before the batch, unless ``lost`` names one that keeps no state and had
    taken the batch already."""

    def __init__(self, reason: str, lost: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.lost = reason, lost


@dataclass
class Scorer:
    """Every metric of a run, with its label (the ``--metric`` spec) and column prefix
    (``""``, or the spec when a metric is requested twice)."""

    metrics: Sequence[Metric]
    labels: Sequence[str]
    prefixes: Sequence[str]
    #: per-image column -> the metric that writes it (:func:`claim_columns`)
    columns: dict[str, str] = field(default_factory=dict)
    #: the registry the metrics were built from (``None``: the installed plugins)
    registry: Registry | None = None

    def update(self, pred: Tensor, target: Tensor | None) -> dict[str, list[float]]:
        """Feed one batch to every metric; its per-image values by column.  Raises
        :class:`Refused` when a metric refuses the images (see the module docstring)."""
        saved = [metric.state() for metric in self.metrics]
        # metrics that keep no state cannot be put back: they take the batch last
        order = sorted(range(len(self.metrics)), key=lambda i: saved[i] is None)
        taken: list[int] = []
        for i in order:
            try:
                self.metrics[i].update(pred, target)
            except Exception as exc:
                reason = input_reason(exc, pred)
                if reason is None:
                    raise
                label = self.labels[i]
                reason = reason if reason.startswith(f"{label}:") else f"{label}: {reason}"
                raise Refused(reason, self._restore([*taken, i], saved)) from None
            taken.append(i)
        values: dict[str, list[float]] = {}
        for prefix, label, metric in zip(self.prefixes, self.labels, self.metrics, strict=True):
            claim_columns(self.columns, [f"{k}[{prefix}]" if prefix else k for k in metric.last],
                          label)
            for key, per_image in metric.last.items():
                if len(per_image) != pred.shape[0]:
                    raise StylebridgeError(f"{metric_label(metric, label, self.registry)}: "
                                           f"last[{key!r}] holds "
                                           f"{len(per_image)} value(s) for a batch of "
                                           f"{pred.shape[0]} image(s); it must hold one per image")
                values[f"{key}[{prefix}]" if prefix else key] = list(per_image)
        return values

    def _restore(self, indices: list[int], saved: list[Any]) -> str | None:
        """Put the metrics ``indices`` back to ``saved``; the label of one that took the
        batch and cannot be put back (no state), if any (the last index is the metric that
        refused: its update left it unchanged)."""
        lost = None
        for j in indices:
            if saved[j] is not None:
                self.metrics[j].load_state(saved[j])
            elif j != indices[-1]:
                lost = self.labels[j]
        return lost

    def score(self, pred: Tensor, target: Tensor | None) -> list[dict[str, float] | Refused]:
        """Per image of the batch: its values by column, or why it was refused.  A refused
        batch of several images is scored again image by image."""
        n = pred.shape[0]
        try:
            values = self.update(pred, target)
            return [{col: v[i] for col, v in values.items()} for i in range(n)]
        except Refused as refused:
            if n == 1 or refused.lost:
                return [refused] * n
        out: list[dict[str, float] | Refused] = []
        for i in range(n):
            try:
                values = self.update(pred[i:i + 1], None if target is None else target[i:i + 1])
                out.append({col: v[0] for col, v in values.items()})
            except Refused as refused:
                out.append(refused)
        return out


__all__ = ["Refused", "Scorer", "claim_columns", "input_reason", "metric_label"]
