"""What ``stylebridge eval`` reports (:mod:`stylebridge.pipelines.evaluate`): the result
object, its JSON and CSV, the column headers with each metric's unit and direction, and the
notices that the input pictures keep in their files.

JSON conventions: every value of a field has one type.  A number that is not finite (the NaN
of an image a metric has no value for, e.g. ``id`` without a face; a mean without any value)
is written as ``null``, and the document's ``notes`` say which columns hold such nulls and
why.  The CSV keeps Python's spelling of those values (``nan``, ``inf``), which spreadsheet
and pandas readers take as numbers.

A picture written by a run on untrained weights keeps a notice in its file
(:data:`~stylebridge.core.images.NOTICE_KEY`, ``RANDOM WEIGHTS: ...``; EXIF
ImageDescription in JPEG, WebP and TIFF): :func:`read_notice` reads it, and every score of
such a picture is labelled as a score of random-weight outputs.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stylebridge.core.batch import BatchReport
from stylebridge.core.checkpoint import RANDOM_NOTICE
from stylebridge.core.images import NOTICE_KEY, open_image
from stylebridge.core.interfaces import Metric
from stylebridge.core.io import atomic_path, write_json
from stylebridge.errors import (
    RandomWeightsWarning,
    StylebridgeError,
    StylebridgeWarning,
    warn_user,
)
from stylebridge.pipelines.photos import warn_skipped
from stylebridge.pipelines.run_record import software

if TYPE_CHECKING:
    from stylebridge.pipelines.evaluate import EvalConfig

#: how ``eval`` resizes a prediction to its target's size (or every image to ``--size``)
RESIZE_FILTER = "torch bilinear (antialias=True, align_corners=False, clamped to [0, 1])"
#: the resized predictions the notes name one by one (the rows say it of each)
NAMED_RESIZES = 10

#: the arrow after a column's name, by the metric's declared direction
ARROWS = {"higher": "↑", "lower": "↓"}


def json_number(value: float) -> float | None:
    """A float for JSON; ``None`` (JSON ``null``) when it is not finite: JSON has no inf or
    NaN, and a string there would give the field two types (see the module docstring)."""
    return value if math.isfinite(value) else None


def column_header(column: str, direction: str | None = None, unit: str = "") -> str:
    """``psnr (dB) ↑``: a column with its metric's declared
    :attr:`~stylebridge.core.interfaces.Metric.unit` and an arrow for its
    :attr:`~stylebridge.core.interfaces.Metric.direction` (none when undeclared)."""
    arrow = ARROWS.get(str(direction), "")
    return column + (f" ({unit})" if unit else "") + (f" {arrow}" if arrow else "")


def read_notice(path: Path) -> str | None:
    """The notice a picture stylebridge wrote keeps in its file (PNG text
    :data:`~stylebridge.core.images.NOTICE_KEY`; EXIF ImageDescription when it starts with
    ``RANDOM WEIGHTS``, as :func:`stylebridge.save_image` writes it), or ``None``."""
    try:
        with open_image(path) as image:
            text = image.info.get(NOTICE_KEY)
            if isinstance(text, str) and text.strip():
                return " ".join(text.split())
            described = image.getexif().get(0x010E)
    except Exception:  # Pillow's EXIF parsing raises many kinds; the pixels were read already
        return None
    if isinstance(described, str) and described.startswith(RANDOM_NOTICE):
        return " ".join(described.split())
    return None


@dataclass
class MetricResult:
    """One requested metric: its spec, means (by column), config, random flag, notes and
    what its numbers are (:attr:`~stylebridge.core.interfaces.Metric.direction`, ``unit``,
    ``scale``)."""

    text: str
    values: dict[str, float]
    config: dict[str, Any]
    random_weights: bool
    notes: list[str]
    direction: str | None = None
    unit: str = ""
    scale: str = ""


@dataclass
class EvalResult:
    """What :func:`~stylebridge.pipelines.evaluate.evaluate` computed.

    ``rows``: one dict per image (``name``, ``pred``, ``target``, ``pred_notice``,
    ``target_notice`` and one value per per-image column); ``means``: column → mean;
    ``columns`` the column order; ``per_image_columns`` the columns with per-image values;
    ``random_columns`` those computed with random weights.  A column is the metric's key, or
    ``key[spec]`` when the same metric is requested twice.
    """

    config: EvalConfig
    metrics: list[MetricResult]
    rows: list[dict[str, Any]]
    means: dict[str, float]
    per_image_columns: list[str]
    random_columns: set[str]
    report: BatchReport
    written: list[Path] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return list(self.means)

    @property
    def exit_code(self) -> int:
        return self.report.exit_code

    def metric_of(self, column: str) -> MetricResult | None:
        """The metric that reports ``column``."""
        return next((m for m in self.metrics if column in m.values), None)

    def header(self, column: str) -> str:
        """``column`` with its unit and direction (:func:`column_header`)."""
        metric = self.metric_of(column)
        return column if metric is None else column_header(column, metric.direction,
                                                            metric.unit)

    @property
    def input_notices(self) -> dict[str, Any]:
        """How many predictions and targets keep a notice in their file (made on random
        weights), and the first of them: ``{"pred": n, "target": n, "first": {"file",
        "notice"} or None}``."""
        counts = {"pred": 0, "target": 0}
        first: dict[str, str] | None = None
        for row in self.rows:
            for side in ("pred", "target"):
                notice = row.get(f"{side}_notice")
                if notice:
                    counts[side] += 1
                    first = first or {"file": str(row[side]), "notice": str(notice)}
        return {**counts, "first": first}

    def input_notice(self) -> str | None:
        """The line said over the scores when scored pictures keep a notice in their file
        (made on random weights): how many, and what the first one says."""
        notices = self.input_notices
        if not (notices["pred"] or notices["target"]):
            return None
        n = len(self.rows)
        counts = " and ".join(f"{notices[side]} of {n} {side} file(s)"
                              for side in ("pred", "target") if notices[side])
        first = notices["first"]
        said = str(first["notice"]).removeprefix(f"{RANDOM_NOTICE}:").strip()
        return (f"{RANDOM_NOTICE}: {counts} were made on untrained weights, as the files say "
                f"({first['file']}: {said}); these scores are of random networks' pictures, "
                "not of a trained model's")

    @property
    def random_inputs(self) -> bool:
        """Some scored picture was made with untrained weights (its file says so)."""
        notices = self.input_notices
        return bool(notices["pred"] or notices["target"])

    def notes(self) -> list[str]:
        """What a reader of the JSON must know: the images that were resized before they
        were scored (``--size``; predictions of another size than their target, each row's
        ``resized``), which values are ``null`` and why."""
        out = []
        if self.config.size:
            out.append(f"every image was resized to {self.config.size}×{self.config.size} "
                       f"before scoring, with {RESIZE_FILTER}")
        resized = [row for row in self.rows if row.get("resized")]
        if resized:
            named = ", ".join(f"{row['name']} ({row['resized']})"
                              for row in resized[:NAMED_RESIZES])
            more = len(resized) - NAMED_RESIZES
            out.append(f"{len(resized)} of {len(self.rows)} prediction(s) differ in size from "
                       f"their target and were resized to it before scoring, with "
                       f"{RESIZE_FILTER}: {named}"
                       + (f" and {more} more (each row's 'resized')" if more > 0 else ""))
        for column in self.columns:
            values = [row[column] for row in self.rows if column in row]
            undefined = _undefined(values)
            if undefined:
                out.append(f"{column}: {undefined} of {len(values)} per-image value(s) are "
                           "null (no value for that image: see the metric's notes)")
            if not math.isfinite(self.means[column]):
                out.append(f"{column}: the mean is null ({_kind(self.means[column])})")
        return out

    def as_json(self) -> dict[str, Any]:
        """The JSON document of ``eval --json`` (see the module docstring)."""
        cfg = self.config
        random_metrics = any(m.random_weights for m in self.metrics)
        return {
            "pred": [str(p) for p in cfg.pred],
            "target": [str(t) for t in cfg.target] if cfg.target else None,
            # the options that change a number, to run it again (`eval --suffix ...`)
            "settings": {"metrics": list(cfg.metrics), "suffix": cfg.suffix, "size": cfg.size,
                         "domain_text": cfg.domain_text, "batch": cfg.batch,
                         "device": cfg.device},
            "software": software(),
            "n_images": len(self.rows),
            # any number of this report on untrained weights: a metric's or the pictures'
            "random_weights": random_metrics or self.random_inputs,
            "input_notices": self.input_notices,
            "metrics": {m.text: {"values": {k: json_number(v) for k, v in m.values.items()},
                                 "direction": m.direction, "unit": m.unit, "scale": m.scale,
                                 "config": m.config, "random_weights": m.random_weights,
                                 "notes": m.notes} for m in self.metrics},
            "mean": {k: json_number(v) for k, v in self.means.items()},
            "per_image": [{k: (json_number(v) if isinstance(v, float) else v)
                           for k, v in r.items()} for r in self.rows],
            "notes": self.notes(),
            "report": self.report.as_dict(),
        }

    def write_json(self, path: Path) -> Path:
        write_json(path, self.as_json())
        return path

    def write_csv(self, path: Path) -> Path:
        """Per-image values, a ``mean`` row and, if any, a ``random_weights`` row; a
        ``notice`` column when some picture keeps a notice (made on random weights), a
        ``resized`` column (``W×H → W×H``, :data:`RESIZE_FILTER`) when some prediction was
        resized to its target's size.

        UTF-8; a file name that is not valid UTF-8 (``b"\\xff.png"``, held by Python as
        surrogates) is written as the bytes the file system holds (``surrogateescape``: read
        it back with ``errors="surrogateescape"`` to get the same name)."""
        columns, per_image = self.columns, set(self.per_image_columns)
        noticed = self.random_inputs
        resized = any(row.get("resized") for row in self.rows)  # W×H → W×H, as in the notes
        with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8",
                                            errors="surrogateescape") as fh:
            writer = csv.writer(fh)
            writer.writerow(["name", "pred", "target", *columns, *(["notice"] if noticed else []),
                             *(["resized"] if resized else [])])
            for row in self.rows:
                notice = "; ".join(f"{side}: {row[f'{side}_notice']}" for side in ("pred", "target")
                                   if row.get(f"{side}_notice"))
                writer.writerow([row["name"], row["pred"], row["target"] or "",
                                 *(repr(row[c]) if c in per_image and c in row else ""
                                   for c in columns), *([notice] if noticed else []),
                                 *([row.get("resized") or ""] if resized else [])])
            writer.writerow(["mean", "", "", *(repr(self.means[c]) for c in columns)])
            if self.random_columns:
                writer.writerow(["random_weights", "", "",
                                 *("yes" if c in self.random_columns else "" for c in columns)])
        return path


def _kind(value: float) -> str:
    return "no value" if math.isnan(value) else f"{value}"


def _undefined(values: Iterable[Any]) -> int:
    return sum(1 for v in values if isinstance(v, float) and not math.isfinite(v))


def metric_result(text: str, values: Mapping[str, float], metric: Metric) -> MetricResult:
    """The :class:`MetricResult` of ``metric`` (requested as ``text``) with its ``values``."""
    return MetricResult(text=text, values=dict(values), config=metric.config(),
                        random_weights=bool(metric.random_weights), notes=metric.notes(),
                        direction=metric.direction, unit=metric.unit, scale=metric.scale)

#: the keys every ``eval --json`` report has (one written by an older version too)
REPORT_KEYS = frozenset({"pred", "metrics", "mean", "per_image"})
#: the first columns of every ``eval --csv`` report
CSV_HEAD = "name,pred,target"
#: a larger ``--json`` file is checked by its first key (``"pred"``), not parsed
MAX_READ = 64 << 20


def check_replaceable(option: str, path: Path) -> None:
    """Refuse, in one line before any work, to replace a file at ``path`` that is not an
    ``eval`` report of its kind (a user's notes given to ``--json`` by mistake were
    overwritten without a word); an earlier report, an empty file or a stream is replaced."""
    from stylebridge.core.io import STREAMS

    if str(path) in STREAMS or not path.is_file() or path.stat().st_size == 0:
        return
    try:  # utf-8-sig: a report saved again by a spreadsheet starts with a BOM
        with open(path, encoding="utf-8-sig", errors="surrogateescape") as fh:
            if option == "--json" and path.stat().st_size <= MAX_READ:
                import json

                doc = json.load(fh)
                ours = isinstance(doc, dict) and doc.keys() >= REPORT_KEYS
            elif option == "--json":  # too large to parse for a check: its first key
                ours = fh.read(4096).lstrip().removeprefix("{").lstrip().startswith('"pred"')
            else:
                ours = fh.readline().rstrip("\r\n").startswith(CSV_HEAD)
    except (OSError, ValueError):
        ours = False
    if not ours:
        kind = "JSON" if option == "--json" else "CSV"
        raise StylebridgeError(f"{option} {path}: the file exists and is not an eval {kind} "
                               "report, which would replace it: give another path (or remove "
                               "it first)")


def warn_eval_end(result: EvalResult) -> None:
    """What :func:`~stylebridge.pipelines.evaluate.evaluate` called from Python says when it
    ends, as ``eval`` prints it: pictures made on random weights and each metric's notes (a
    metric on random weights: :class:`~stylebridge.errors.RandomWeightsWarning`), then the
    skipped files (``SkippedInputsWarning``)."""
    random_metrics = [m.text for m in result.metrics if m.random_weights]
    lines = [] if (line := result.input_notice()) is None else [line]
    if random_metrics:
        lines.append(f"{RANDOM_NOTICE}: evaluate scored with untrained (random) weights "
                     f"(metric {', '.join(random_metrics)}): its numbers are not the real "
                     "metric's")
    if lines:  # one warning per call: the pictures', then the metrics' random weights
        warn_user("; ".join([lines[0], *(x.removeprefix(f"{RANDOM_NOTICE}: ")
                                         for x in lines[1:])]), RandomWeightsWarning)
    for metric in result.metrics:
        for note in metric.notes:
            if not note.startswith(RANDOM_NOTICE):  # said by the warning above
                warn_user(f"evaluate metrics: {metric.text}: {note}", StylebridgeWarning)
    warn_skipped("evaluate", result.report, unit="file")


__all__ = ["ARROWS", "CSV_HEAD", "REPORT_KEYS", "RESIZE_FILTER", "EvalResult", "MetricResult",
           "check_replaceable", "column_header", "json_number", "metric_result", "read_notice",
           "warn_eval_end"]
