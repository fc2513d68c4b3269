"""What ``stylebridge serve`` says of a run beside its pictures (no web framework here).

The settings a run used in one line (:func:`settings_line`: shown with the result, drawn
under the grid, kept in ``run.json``), the metrics table's headers with their unit and
direction as the command line prints them (:func:`metric_header`) and one fixed precision
per column (:func:`display_table`), whether an encoder can feed FeatureShift
(:func:`featureshift_problem`, from the encoder's declared ``feature_layer``), the hint for
a small photo in which no face was found (:func:`small_photo_error`), the images zip
(:func:`write_images_zip`, ``run.json`` included) and the last runs kept for a reloaded page
(:class:`RunHistory`).
"""

from __future__ import annotations

import secrets
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from stylebridge.core.checkpoint import RANDOM_NOTICE
from stylebridge.core.interfaces import Encoder, Note
from stylebridge.core.io import atomic_path
from stylebridge.errors import ImageError, StylebridgeError
from stylebridge.pipelines.adapt import INVERSION
from stylebridge.pipelines.output_metrics import grouped_notes, output_column_header

#: the metrics of a run, against the aligned photo
METRIC_COLUMNS = ("mse", "psnr", "ssim", "id")
#: the column of each domain's change from the inversion (the MSE between the two)
CHANGE_COLUMN = "change (mse vs inversion)"
#: its header in the page: neither better nor worse, how far the domain moved the picture
CHANGE_HEADER = "change from inversion (mse)"
#: decimals shown per metric (by the column's name before any ``[backend]``)
DECIMALS = {"mse": 4, "psnr": 2, "ssim": 3, "id": 3, CHANGE_COLUMN: 4}
#: a photo whose shorter side is below this many pixels gets the small-photo hint when no
#: face is found in it (dlib's detector misses faces under ~80 px across)
SMALL_PHOTO = 320
#: how many runs a reloaded page can still show (their files stay in the work dir anyway)
KEPT_RUNS = 16
#: what a request answers once the server is stopping (it was not run)
STOPPING = "the server is stopping (shut down on the machine)"
#: the line under the table saying what the marks and the change column mean
METRIC_LEGEND = ("↑ higher is better, ↓ lower is better; change from inversion: how far each "
                 "domain moved the picture from the inversion (0 = unchanged)")


class ServerStopping(StylebridgeError):
    """A request refused, or a training stopped, because the server is stopping."""


def random_banner(preset: bool, label: str, size: int) -> str:
    """The RANDOM WEIGHTS line of the page: the demo's preset (``preset``), else the
    random-weight generator named ``label`` that was loaded."""
    what = ("the demo's 64 px random-weight preset (generator, e4e, FSE)" if preset else
            f"the generator {label} ({size} px), whose weights are random (untrained)")
    why = "no official weights are installed, so " if preset else ""
    return (f"{RANDOM_NOTICE}: {why}this page runs {what} - it shows that every stage runs, "
            "not what trained models produce. Install weights with `stylebridge weights`.")


def settings_line(photo: str, encoder: str, domains: Sequence[str], strength: float,
                  skip_layers: Sequence[int], alpha: str | None, featureshift: bool) -> str:
    """``photo X · encoder e4e · domains A, B · strength 1 · skip layers none · alpha
    calibration off · FeatureShift off``: every setting of a run, in one line.  ``alpha``:
    how the calibrator was made (``alpha fitted on 16 generator samples``), ``None``: off."""
    skip = ", ".join(str(i) for i in skip_layers) or "none"
    return " · ".join([
        f"photo {photo}", f"encoder {encoder}", f"domains {', '.join(domains) or 'none'}",
        f"strength {strength:g}", f"skip layers {skip}",
        f"alpha calibration on ({alpha})" if alpha else "alpha calibration off",
        f"FeatureShift {'on' if featureshift else 'off'}"])


def metric_header(column: str) -> str:
    """The page's header of a metrics column: ``psnr (dB) ↑``, as the command line's tables
    (:func:`~stylebridge.pipelines.output_metrics.output_column_header`)."""
    return CHANGE_HEADER if column == CHANGE_COLUMN else output_column_header(column)


def format_value(column: str, value: float | None) -> str:
    """``value`` with its column's fixed number of decimals; ``—`` where not computed."""
    if value is None:
        return "—"
    return f"{value:.{DECIMALS.get(column.partition('[')[0], 4)}f}"


def display_table(columns: Sequence[str], rows: Sequence[tuple[str, Mapping[str, float]]]
                  ) -> tuple[list[str], list[list[str]]]:
    """The metrics as the page shows them: headers, then per output its name and its values
    at their column's precision (``0.1270``, not ``0.127``)."""
    headers = ["output", *(metric_header(c) for c in columns)]
    return headers, [[name, *(format_value(c, values.get(c)) for c in columns)]
                     for name, values in rows]


def featureshift_problem(encoder: Encoder | None, spec: str) -> str | None:
    """Why FeatureShift cannot run on the encoder ``spec`` (``None``: it can, or the encoder
    could not be built to tell): it shifts the generator feature map an encoder declares it
    returns (:attr:`~stylebridge.core.interfaces.Encoder.feature_layer`)."""
    if encoder is None or encoder.feature_layer is not None:
        return None
    return (f"FeatureShift needs an encoder that returns a generator feature map (fse); "
            f"{spec.strip()!r} returns latents only")


def small_photo_error(exc: ImageError, image: Tensor) -> ImageError:
    """``exc`` (no face found) with the photo's size and why when the photo is small."""
    h, w = (int(s) for s in image.shape[-2:])
    if min(h, w) >= SMALL_PHOTO or "too small" in str(exc):
        return exc
    return ImageError(f"{exc} (the photo is {w}×{h} px; faces smaller than ~80 px across are "
                      "often missed: try a larger photo)")


def write_images_zip(path: Path, files: Mapping[str, Path]) -> Path:
    """The images download: ``files`` (name in the zip → file), written atomically."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as zf:
        for name, file in files.items():
            zf.write(file, name)
    return path


def metric_rows(metrics: Mapping[str, Any], outputs: dict[str, Tensor], target: Tensor
            ) -> tuple[list[str], list[tuple[str, dict[str, float]]], list[str]]:
    """Per output: the registry's MSE, PSNR, SSIM and ID against the aligned photo; per
    domain also the change (MSE) against the inversion.  Then the metrics' notes (no face
    found in an output, which ID backend), each naming the outputs it is about."""
    # the id metric names its backend in its key (id[dlib] / id[arcface]): never compared
    # with the other backend's numbers by accident
    labels = {c: (metrics[c].key if c == "id" else c)
              for c in METRIC_COLUMNS if c in metrics}
    columns = list(labels.values())
    rows: list[tuple[str, dict[str, float]]] = []
    notes: dict[str, list[str]] = {}
    for name, image in outputs.items():
        values: dict[str, float] = {}
        notes[name] = []
        for metric_name, column in labels.items():
            metric = metrics[metric_name]
            metric.reset()
            metric.update(image[None], target[None])
            values[column] = float(metric.compute()[column])
            # a note naming command-line options has the page's wording too (Note.web)
            notes[name] += [f"{column}: {note.web if isinstance(note, Note) else note}"
                            for note in metric.notes()]
        if name != INVERSION:
            metric = metrics["mse"]
            metric.reset()
            metric.update(image[None], outputs[INVERSION][None])
            values[CHANGE_COLUMN] = float(metric.compute()["mse"])
        rows.append((name, values))
    if len(outputs) > 1:
        columns.append(CHANGE_COLUMN)
    return columns, rows, grouped_notes(notes)


class RunHistory:
    """The last :data:`KEPT_RUNS` results by a random id: a reloaded page keeps the id of its
    last run (in the browser) and shows that result again; an id is not guessable.
    ``evicted(result)``: called for a result dropped (its files can go)."""

    def __init__(self, keep: int = KEPT_RUNS,
                 evicted: Callable[[Any], None] | None = None) -> None:
        self.keep = keep
        self.evicted = evicted
        self._runs: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, result: Any) -> str:
        run_id = secrets.token_urlsafe(12)
        with self._lock:
            self._runs[run_id] = result
            dropped = [self._runs.popitem(last=False)[1]
                       for _ in range(len(self._runs) - self.keep)]
        for old in dropped:
            if self.evicted is not None:
                self.evicted(old)
        return run_id

    def get(self, run_id: Any) -> Any:
        if not isinstance(run_id, str):
            return None
        with self._lock:
            return self._runs.get(run_id)


__all__ = ["CHANGE_COLUMN", "CHANGE_HEADER", "METRIC_LEGEND", "STOPPING", "RunHistory",
           "ServerStopping", "display_table", "featureshift_problem", "format_value",
           "metric_header", "metric_rows", "random_banner", "settings_line",
           "small_photo_error", "write_images_zip"]
