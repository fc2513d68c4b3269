"""The ``stylebridge align`` pipeline: photos (files or folders) → FFHQ-aligned crops, with a
batch report (:func:`align`); the face alignment itself is :mod:`stylebridge.pipelines.align`
(whose names ``AlignConfig``, ``AlignResult`` and ``align`` import from here)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from stylebridge.core.batch import BatchReport, iter_images, require_inputs
from stylebridge.core.images import PNG_COMPRESS_LEVEL, open_image, reduce_factor
from stylebridge.core.io import atomic_path, remove_stale_temporaries, write_json
from stylebridge.errors import ImageError, StylebridgeError
from stylebridge.pipelines.align import DEFAULT_SIZE, align_face, align_faces
from stylebridge.pipelines.photos import check_out_folder, check_positive, output_names
from stylebridge.pipelines.training.progress import PHOTO_PROGRESS_SHAPE, check_progress
from stylebridge.pipelines.typed import coerce_path_fields


@dataclass
@coerce_path_fields
class AlignConfig:
    """What :func:`align` does: photos (files or folders) → ``out/<stem>.png``, the largest
    face; with ``all_faces``, ``out/<stem>_00.png``, ``_01``... for every face, largest first,
    whose box is at least ``min_face`` pixels on its shorter side."""

    images: Sequence[str | Path]
    out: Path
    size: int = DEFAULT_SIZE
    transform_size: int | None = None
    padding: bool = True
    #: also write landmarks.json (68 points, quad, box [l, t, r, b]; upright input pixels)
    landmarks: bool = False
    all_faces: bool = False
    min_face: int = 0
    #: photos whose ``out/<stem>.png`` exists are kept, not aligned again: a killed run over
    #: a large folder continues (each PNG is written whole, atomically)
    skip_existing: bool = False
    #: ``skip_existing``'s option as the user typed it (``--resume`` is the same), for errors
    skip_existing_option: str = "--skip-existing"


@dataclass
class AlignResult:
    """The batch report and, per aligned face, its output, landmarks, quad and box (keyed by
    the photo's path; ``PATH#00``, ``PATH#01``... with ``all_faces``)."""

    report: BatchReport
    faces: dict[str, Any] = field(default_factory=dict)
    #: photos left as an earlier run aligned them (``skip_existing``); also in ``report.done``
    kept: list[Path] = field(default_factory=list)
    #: photos whose picture ``skip_existing`` found made from another file of the photo's name
    #: (the photo was replaced since): aligned again; also in ``report.done``
    realigned: list[Path] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return self.report.exit_code


#: the PNG text key of an aligned picture's record of what it was made from (JSON: the photo's
#: sha256, the --size, --transform-size and padding), read by ``--skip-existing``
SOURCE_KEY = "stylebridge:aligned-from"


def source_record(photo: Path, config: AlignConfig) -> dict[str, Any] | None:
    """What an aligned picture of ``photo`` records of its making (:data:`SOURCE_KEY`);
    ``None`` when the photo cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(photo, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return {"photo_sha256": digest.hexdigest(), "size": config.size,
            "transform_size": config.transform_size or 4 * config.size,
            "padding": bool(config.padding)}


def _with(key: str, value: Any) -> str:
    """How an alignment setting of :func:`source_record` reads in a refusal."""
    if key == "padding":
        return "with padding" if value else "with --no-padding"
    return f"with --transform-size {value}"


def _saved_record(picture: Image.Image) -> dict[str, Any] | None:
    """The :data:`SOURCE_KEY` record of an aligned picture (``None``: none, e.g. one an
    earlier stylebridge wrote, or not a readable one)."""
    text = getattr(picture, "text", {}).get(SOURCE_KEY)
    try:
        record = json.loads(text) if text else None
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def align(config: AlignConfig,
          progress: Callable[[int, int | None, str], None] | None = None) -> AlignResult:
    """FFHQ-align every photo of ``config`` (unreadable photos and photos without a face are
    skipped and reported); ``progress(completed, total, description)`` after each photo."""
    check_progress(progress, "align", n_args=3, shape=PHOTO_PROGRESS_SHAPE)  # before any photo
    check_positive(config.size, "--size")
    if config.transform_size is not None:
        check_positive(config.transform_size, "--transform-size")
        if config.transform_size < config.size:  # FFHQ's code then writes the smaller crop
            raise StylebridgeError(f"--transform-size {config.transform_size} is below --size "
                                   f"{config.size}: the crop would be upscaled; give at least "
                                   f"{config.size} (default: 4 x --size)")
    if config.min_face < 0:
        raise StylebridgeError(f"--min-face {config.min_face}: must be >= 0")
    if config.min_face and not config.all_faces:
        raise StylebridgeError("--min-face applies with --all-faces")
    flag = config.skip_existing_option
    if config.skip_existing and (config.all_faces or config.landmarks):
        # a killed run may have written some of a photo's faces, and writes landmarks.json
        # only at its end: neither tells what an earlier run finished
        given = " and ".join(o for o, on in (("--all-faces", config.all_faces),
                                             ("--landmarks", config.landmarks)) if on)
        raise StylebridgeError(f"{flag} works without --all-faces and --landmarks, whose "
                               f"outputs an interrupted run leaves incomplete: leave out {flag} "
                               f"or {given}")
    paths = require_inputs(config.images)
    names, clashes = output_names(paths, "" if config.all_faces else ".png",
                                  ends=["_00.png"] if config.all_faces else None,
                                  folder=config.out)
    report = BatchReport()
    for p, reason in clashes.items():
        report.skip(p, reason)
    # an input folder (the next run would read the faces as photos), a broken link, a
    # read-only folder: one line, before dlib loads
    check_out_folder(config.out, config.images)
    made = _make_folder(config.out)  # removed again below when nothing was written into it
    try:
        return _align_into(config, paths, names, clashes, report, progress)
    finally:
        if made is not None:
            _remove_empty(config.out, made)


def _align_into(config: AlignConfig, paths: list[Path], names: dict[Path, str],
                clashes: dict[Path, str], report: BatchReport,
                progress: Callable[[int, int | None, str], None] | None) -> AlignResult:
    """:func:`align`'s work, once its options are checked and ``config.out`` exists."""
    flag = config.skip_existing_option
    # what a killed run left half-written of this run's files, and only those (shards of a
    # photo set may align into one --out at the same time)
    own = list(names.values()) if not config.all_faces else _faces_of(config.out, names)
    remove_stale_temporaries(config.out, [*own, *(["landmarks.json"] * config.landmarks)])
    records: dict[str, Any] = {}
    todo = [p for p in paths if p in names]
    # a missing photo shares a real one's name (photos.output_names): it is read and reported
    kept = [p for p in todo if (config.out / names[p]).is_file() and Path(p).is_file()
            ] if config.skip_existing else []
    realigned: list[Path] = []
    for p in kept:  # an earlier run's crop at another --size is not this run's
        try:
            with Image.open(config.out / names[p]) as earlier:
                found, record = earlier.size, _saved_record(earlier)
        except (OSError, ValueError):  # unreadable: the earlier --size is unknown
            found, record = None, None
        if found != (config.size, config.size):
            what = "unreadable" if found is None else f"{found[0]}x{found[1]}"
            raise StylebridgeError(
                f"{flag}: {config.out / names[p]} is {what}, this run makes "
                f"{config.size}x{config.size}; give the earlier --size or another --out")
        if record is None:  # an earlier version's picture, or another program's: kept
            continue
        mine = source_record(p, config)
        if mine is None:  # unreadable now: aligned again, i.e. read and reported
            realigned.append(p)
            continue
        for key in ("transform_size", "padding"):
            if key in record and record[key] != mine[key]:
                raise StylebridgeError(
                    f"{flag}: {config.out / names[p]} was aligned {_with(key, record[key])}, "
                    f"this run aligns {_with(key, mine[key])}; give the earlier options or "
                    "another --out")
        if record.get("photo_sha256") != mine["photo_sha256"]:
            realigned.append(p)  # the photo was replaced since its picture was made
    again = set(realigned)
    kept = [p for p in kept if p not in again]
    for p in kept:
        report.ok(p)
    kept_set = set(kept)
    todo = [p for p in todo if p not in kept_set] if kept else todo
    if progress is not None:
        progress(0, len(todo), "aligning")
    for path, image in iter_images(todo, report):
        try:
            if config.all_faces:
                faces = align_faces(image, config.size, transform_size=config.transform_size,
                                    enable_padding=config.padding, min_size=config.min_face,
                                    path=path)
                written = {f"{path}#{i:02d}": (config.out / f"{names[path]}_{i:02d}.png", face)
                           for i, face in enumerate(faces)}
            else:
                written = {str(path): (config.out / names[path], align_face(
                    image, config.size, transform_size=config.transform_size,
                    enable_padding=config.padding, path=path))}
            if any(dst.resolve() == path.resolve() for dst, _ in written.values()):
                raise ImageError("output would overwrite the input", path=path)
        except ImageError as exc:
            report.skip(path, str(exc).removeprefix(f"{path}: "))
        else:
            info, made_from = PngInfo(), source_record(path, config)
            if made_from is not None:  # what it was made from: --skip-existing tells a
                info.add_text(SOURCE_KEY, json.dumps(made_from))  # replaced photo
            scale = _read_scale(path) if config.landmarks else 1
            for key, (dst, face) in written.items():
                with atomic_path(dst) as tmp:
                    face.image.save(tmp, format="PNG", compress_level=PNG_COMPRESS_LEVEL,
                                    pnginfo=info)
                records[key] = {"output": str(dst), **_in_input_pixels(face, scale)}
            report.ok(path)
        if progress is not None:
            progress(len(report.done) + len(report.skipped) - len(clashes) - len(kept),
                     len(todo), "aligning")
    if config.landmarks and records:
        write_json(config.out / "landmarks.json", {"size": config.size, "faces": records})
    done = set(report.done)  # a replaced photo skipped now (no face) was not aligned again
    return AlignResult(report=report, faces=records, kept=kept,
                       realigned=[p for p in realigned if p in done])


def _read_scale(path: Path) -> int:
    """How many times smaller than the file a photo was read (a shorter side of 8192 px or
    more: :func:`~stylebridge.core.images.reduce_factor`); 1 when it cannot be told."""
    try:
        with open_image(path) as opened:
            return reduce_factor(*opened.size)
    except (OSError, ValueError, StylebridgeError):
        return 1


def _in_input_pixels(face: Any, scale: int) -> dict[str, Any]:
    """A face's landmarks, quad and box in the (upright) input photo's pixels: those of a
    photo read ``scale`` times smaller mapped back, pixel centres onto pixel centres."""
    import numpy as np

    box = list(face.box) if face.box else None
    if scale == 1:
        return {"landmarks": face.landmarks.tolist(), "quad": face.quad.tolist(), "box": box}

    def back(points: Any) -> list:
        return ((np.asarray(points, dtype=np.float64) + 0.5) * scale - 0.5).tolist()

    return {"landmarks": back(face.landmarks), "quad": back(face.quad),
            "box": None if box is None else back(box)}


def _make_folder(out: Path) -> Path | None:
    """Create ``out`` (and its missing parents); the topmost folder this made, if any."""
    missing = [p for p in (out, *out.parents) if not p.exists()]
    out.mkdir(parents=True, exist_ok=True)
    return missing[-1] if missing else None


def _remove_empty(out: Path, top: Path) -> None:
    """Remove ``out`` and its parents up to ``top`` (the folders :func:`_make_folder` made)
    while they are empty: a run that wrote nothing leaves nothing behind."""
    for folder in (out, *out.parents):
        try:
            folder.rmdir()  # only an empty folder
        except OSError:
            return
        if folder == top:
            return


#: a temporary file an atomic write of ``<stem>_NN.png`` leaves when it is killed
_FACE_TEMPORARY = re.compile(r"^\.(?P<stem>.+)_\d{2,}\.png\.[a-z0-9_]{8}\.tmp$")


def _faces_of(out: Path, names: dict[Path, str]) -> list[str]:
    """The ``<stem>_NN.png`` (``--all-faces``) of this run's photos that a killed run left
    temporaries of in ``out``: how many faces a photo has is known only once it is read."""
    stems = set(names.values())
    found = (_FACE_TEMPORARY.match(p.name) for p in out.glob(".*.tmp"))
    return [m[0][1:-13] for m in found if m is not None and m["stem"] in stems]


__all__ = ["SOURCE_KEY", "AlignConfig", "AlignResult", "align", "source_record"]
