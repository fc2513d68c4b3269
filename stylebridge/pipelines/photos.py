"""What the photo pipelines (``invert``, ``adapt``, ``calibrate``) share: the photo-input
options and where their models' weights came from.

:class:`PhotoOptions` holds the options every photo pipeline takes (photos, FFHQ alignment,
batch size, device); :class:`~stylebridge.pipelines.adapt.AdaptConfig`,
:class:`~stylebridge.pipelines.invert.InvertConfig` and
:class:`~stylebridge.pipelines.calibrate.CalibrateConfig` extend it, so their fields keep
their names (``config.images``, ``config.align_size``, ...).  Its fields are keyword-only.

Whether a model runs on random (untrained) weights is read from the object itself
(:func:`is_random`): :func:`~stylebridge.registry.resolve.create` and
:func:`~stylebridge.registry.resolve.load_generator` record a
:class:`~stylebridge.registry.resolve.Provenance` beside every object they build.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stylebridge.core.images import os_error_reason
from stylebridge.core.interfaces import Encoder, Plugin
from stylebridge.core.io import NAME_MAX, name_bytes, name_limit
from stylebridge.core.limits import MAX_BATCH, MAX_IMAGE_SIZE, check_range
from stylebridge.errors import (
    RandomWeightsWarning,
    SkippedInputsWarning,
    StylebridgeError,
    warn_user,
)
from stylebridge.pipelines.typed import coerce_path_fields
from stylebridge.registry.resolve import load_encoder, load_generator, provenance_of

if TYPE_CHECKING:
    import torch

    from stylebridge.core.stylegan2.generator import Generator

DEFAULT_ALIGN_SIZE = 1024
DEFAULT_BATCH = 4


def check_photo_options(batch: int, align_size: int) -> None:
    """One-line errors for a batch size or an alignment size below 1."""
    check_range("--batch", batch, 1, MAX_BATCH)
    check_range("--align-size", align_size, 1, MAX_IMAGE_SIZE)


@dataclass(kw_only=True)
@coerce_path_fields
class PhotoOptions:
    """The photo inputs of a pipeline: ``images`` (files or folders), FFHQ-``align`` them
    first (at ``align_size`` pixels, before the encoder's own resize), ``batch`` photos per
    forward pass, on ``device`` (``auto``: CUDA when available)."""

    images: Sequence[str | Path]
    align: bool = True
    align_size: int = DEFAULT_ALIGN_SIZE
    batch: int = DEFAULT_BATCH
    device: str = "auto"

    def check_photos(self) -> None:
        """One-line errors for ``batch`` / ``align_size`` out of range."""
        check_photo_options(self.batch, self.align_size)

    def check_out(self, out: Path) -> None:
        """One-line error when the output folder is one of the image folders: the next run
        (a rerun, a ``--resume``) would read this run's pictures as photos."""
        check_out_folder(out, self.images)

    @property
    def batching(self) -> dict[str, Any]:
        """``batch``, ``align`` and ``align_size``, as the photo-batch readers take them."""
        return {"batch": self.batch, "align": self.align, "align_size": self.align_size}


def check_out_folder(out: str | Path, images: Sequence[str | Path]) -> None:
    """One-line error when the output folder ``out`` is one of the image folders: the next
    run (a rerun, a ``--resume``) would read this run's pictures as photos."""
    check_writable(out)   # first: a symlink loop as --out is said, not a RuntimeError
    target = Path(out).resolve()
    for item in images:
        if Path(item).is_dir() and Path(item).resolve() == target:
            raise StylebridgeError(f"--out {out} is also an input folder: the next run "
                                   "would read these outputs as photos; choose another --out")


def check_writable(out: str | Path) -> None:
    """One-line error, before any model loads, when the folder ``out`` (or, while it does not
    exist, the folder it would be made in) cannot be written: a read-only mount was found only
    after the first batch had been computed.  An existing folder is probed with a temporary
    file (removed at once), which also catches read-only mounts for root."""
    import errno
    import os
    import tempfile

    broken = broken_link(out)
    if broken is not None:  # mkdir said "File exists"
        raise StylebridgeError(f"--out {out}: is {broken}; remove it or choose another --out")
    folder = Path(out)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if folder.exists() and not folder.is_dir():  # from Python this was a FileExistsError
        raise StylebridgeError("is a file, not a folder" + (
            f" ({out} was to be written in it)" if folder != Path(out) else ""), path=folder)
    try:
        if folder == Path(out):
            with tempfile.TemporaryFile(dir=folder, prefix=".stylebridge-probe-"):
                pass
        elif not os.access(folder, os.W_OK | os.X_OK):
            read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
            code = errno.EROFS if read_only else errno.EACCES
            raise OSError(code, os.strerror(code))
    except OSError as exc:
        raise StylebridgeError(f"--out {out}: cannot write in {folder} "
                               f"({os_error_reason(exc)})") from None


def broken_link(path: str | Path) -> str | None:
    """What is wrong with ``path`` when it is a symlink that leads nowhere: ``"a symlink
    loop"`` or ``"a broken symlink to TARGET"``; ``None`` otherwise."""
    import errno
    import os

    link = Path(path)
    if not link.is_symlink():
        return None
    try:
        os.stat(link)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symlink loop"
        return f"a broken symlink to {os.readlink(link)}"
    return None


def is_random(obj: Any) -> bool:
    """Whether ``obj`` runs on random (untrained) weights: the provenance recorded when it
    was built (:func:`~stylebridge.registry.resolve.provenance_of`, which a copy keeps); an object built
    elsewhere counts as what it declares (:attr:`~stylebridge.core.interfaces.Plugin.random_weights`)."""
    prov = provenance_of(obj)
    if prov is not None:
        return prov.random
    return isinstance(obj, Plugin) and bool(obj.random_weights)


def random_parts(random_inputs: Mapping[str, Any]) -> list[str]:
    """``{"encoder": True, "domains": {"joker": True}, ...}`` → ``["encoder", "domain joker"]``."""
    parts: list[str] = []
    for key, value in random_inputs.items():
        if isinstance(value, Mapping):
            parts += [f"{key.removesuffix('s')} {name}" for name, rnd in value.items() if rnd]
        elif value:
            parts.append(key)
    return parts


def drawn_anew(models: Mapping[str, Any]) -> list[str]:
    """The names (options) of ``models`` that run on random weights built without a
    checkpoint file: another run draws other weights (``None`` values are left out)."""
    return [name for name, obj in models.items()
            if obj is not None and is_random(obj) and weights_path(obj) is None]


def weights_path(obj: Any) -> Path | None:
    """The checkpoint file ``obj`` was loaded from, as recorded when it was built."""
    prov = provenance_of(obj)
    return None if prov is None else prov.path


def generator_file(generator: Generator) -> Path:
    """The checkpoint file ``generator`` was loaded from (:func:`open_generator` records it)."""
    path = weights_path(generator)
    if path is None:
        raise StylebridgeError("the generator's checkpoint file is unknown (it was not loaded "
                               "by open_generator / load_generator)")
    return path


def open_generator(spec: str, device: torch.device) -> Generator:
    """``[stylegan2:]CKPT`` (or installed weights) → the generator; its provenance (file,
    random weights) is recorded beside it (:func:`is_random`, :func:`weights_path`)."""
    generator, _ = load_generator(spec, device)
    return generator


def open_encoder(spec: str, device: torch.device, registry: Any = None) -> Encoder:
    """An encoder from a ``--encoder`` spec (from ``registry``, default the process-wide
    one); its provenance is recorded beside it."""
    encoder, _ = load_encoder(spec, device, registry=registry)
    return encoder




def random_file_notice(parts: Sequence[str], domain: str | None = None) -> str | None:
    """What an output picture of a run on random weights keeps in its file
    (:data:`~stylebridge.core.images.NOTICE_KEY`); ``None`` when nothing it came from was
    random.  ``domain``: the domain it was rendered through (``None``: the inversion or the
    sample): other domains' parts are left out, and the calibrator's, which changes only
    domain outputs."""
    from stylebridge.core.checkpoint import RANDOM_NOTICE

    mine = [part for part in parts
            if not (part.startswith("domain ") and part != f"domain {domain}")
            and not (domain is None and part == "calibrator")]
    if not mine:
        return None
    return f"{RANDOM_NOTICE}: made with untrained (random) weights ({', '.join(mine)})"


def small_crop_notice(options: PhotoOptions, encoder: Encoder, generator_size: int) -> list[str]:
    """``[notice]`` when ``--align-size`` is below half the encoder's input size (each aligned
    face is then enlarged from a few pixels: ``--align-size 1`` encoded a 1-pixel crop without
    a word), else ``[]``."""
    enc_size = int(encoder.preprocessing.size or generator_size)
    if not options.align or options.align_size >= enc_size // 2:
        return []
    return [f"--align-size {options.align_size} is below the encoder's {enc_size}x{enc_size} "
            "input: every aligned face is enlarged from that crop (default 1024)"]


def output_names(paths: Sequence[Path], suffix: str, keys: Sequence[str] = ("",), *,
                 ends: Sequence[str] | None = None, folder: str | Path | None = None,
                 ) -> tuple[dict[Path, str], dict[Path, str]]:
    """``{path: '<stem><suffix>'}`` for unique names, and ``{path: reason}`` for collisions;
    ``keys``: what each photo's files add to its name (adapt: ``_inversion``, ``_pixar``):
    a photo clashes when any of its files is an earlier photo's (``a`` + ``_dA_inversion``
    and ``a_dA`` + ``_inversion``).  Names are compared case-folded on every platform:
    ``Photo.png`` and ``photo.jpg`` write one file on macOS and Windows disks, and a run made
    on Linux behaves the same there.  ``ends``: the files the pipeline writes per photo, as
    what it appends to the name (:func:`run_files`'s; default: the name + each of ``keys``):
    a photo whose longest file name is longer than the file system takes
    (:func:`~stylebridge.core.io.name_limit` of ``folder``, else 255 bytes) clashes too.
    A path that is no file (missing) claims names only among the missing ones: it blocks no
    real photo, and one whose name a real photo has keeps it (to be read and reported
    unreadable), whatever the order.  With ``folder``, a photo clashes too when one of its
    files there is a symlink to another photo's file (one would be lost) or to a photo of the
    run (it would be replaced); names are compared Unicode-composed as well (NFC)."""
    limit = NAME_MAX if folder is None else name_limit(folder)
    real = [_is_file(p) for p in paths]
    is_real = dict(zip(paths, real, strict=True))
    strong: dict[str, tuple[Path, str]] = {}  # case-folded file name -> (photo, name)
    weak: dict[str, tuple[Path, str]] = {}  # the same, of the missing paths
    found: dict[Path, str] = {}
    clashes: dict[Path, str] = {}
    targets: dict[str, tuple[Path, str]] = {}  # the file an output ends at -> (photo, name)
    photos = {} if folder is None else {  # the file each photo is -> the photo
        ends_at(Path(p).parent, Path(p).name): p for p, r in zip(paths, real, strict=True) if r}
    order = [p for p, r in zip(paths, real, strict=True) if r] + [
        p for p, r in zip(paths, real, strict=True) if not r]  # real photos claim first
    for p in order:
        name = f"{p.stem}{suffix}"
        files = [name + k for k in keys]
        missing = not is_real[p]
        if missing and any(fold_name(f) in strong for f in files):
            found[p] = name  # read (and reported missing) later, a real photo's name kept
            continue
        seen = weak if missing else strong
        longest = max([name + e for e in ends] if ends else files, key=name_bytes)
        if name_bytes(longest) > limit:
            shown = longest if len(longest) <= 80 else f"{name[:40]}…{longest[len(name):]}"
            clashes[p] = (f"output name {shown} is too long ({name_bytes(longest)} bytes; the "
                          f"file system takes {limit}): give the photo a shorter name")
            continue
        taken = next((f for f in files if fold_name(f) in seen), None)
        written = [name + e for e in ends] if ends else files  # the files themselves
        linked = None if folder is None or taken is not None else next(
            ((f, targets[t]) for f in written if (t := ends_at(folder, f)) in targets), None)
        onto = None if folder is None or taken is not None or linked is not None else next(
            ((f, photos[t]) for f in written if (t := ends_at(folder, f)) in photos), None)
        if taken is not None:
            owner, other = seen[fold_name(taken)]
            clashes[p] = f"output name {taken} is already used by {owner}" + (
                "" if other == taken else
                f" (as {other}: one file on case-insensitive disks, macOS and Windows)")
        elif linked is not None:  # a symlink in the folder leads to another photo's output
            (f, (owner, other)) = linked
            clashes[p] = (f"output {Path(folder) / f} is a link to {Path(folder) / other}, "
                          f"the output of {owner}: one of them would be lost")
        elif onto is not None:  # ... or to a photo of the run: it would be replaced
            (f, photo) = onto
            clashes[p] = (f"output {Path(folder) / f} is a link to the photo {photo}: "
                          "writing it would replace that photo (remove the link)")
        else:
            seen.update((fold_name(f), (p, f)) for f in files)
            if folder is not None and not missing:
                targets.update((ends_at(folder, f), (p, f)) for f in written)
            found[p] = name
    names = {p: found[p] for p in paths if p in found}  # in the order given
    clashes = {p: clashes[p] for p in paths if p in clashes}
    return names, clashes


def fold_name(name: str) -> str:
    """How output names are compared: case-folded and Unicode-composed (``café`` typed
    composed or decomposed is one file name on macOS)."""
    return unicodedata.normalize("NFC", name).casefold()


def ends_at(folder: str | Path, name: str) -> str:
    """The file ``folder/name`` ends at (a symlink followed)."""
    try:
        return os.path.realpath(Path(folder) / name)
    except (OSError, ValueError):
        return str(Path(folder) / name)


def _is_file(path: Path) -> bool:
    try:
        return Path(path).is_file()
    except (OSError, ValueError):  # a path the system cannot look up is not read either
        return False


def run_files(names: Mapping[Any, str], ends: Sequence[str], reports: Sequence[str]
              ) -> list[str]:
    """The names of every file a photo run writes into its output folder: each photo's
    name (:func:`output_names`) + each of ``ends`` (``_inversion.png``), then ``reports``
    (``metrics.json``, ``grid.png``): the killed runs' temporaries of exactly these are
    removed when the run starts (:func:`~stylebridge.core.io.remove_stale_temporaries`),
    another run's into the same folder are left alone."""
    return [f"{stem}{end}" for stem in names.values() for end in ends] + list(reports)


#: how many skipped inputs a :class:`~stylebridge.errors.SkippedInputsWarning` names
SKIPPED_NAMED = 3


def warn_random(what: str, parts: Sequence[str]) -> None:
    """One :class:`~stylebridge.errors.RandomWeightsWarning` for a pipeline called from
    Python (``what``: ``adapt``, ...) that runs on untrained weights (``parts``: ``encoder``,
    ``domain pixar``, ...); nothing when ``parts`` is empty (:func:`~stylebridge.errors.
    warn_user`: the command line prints its own RANDOM WEIGHTS lines)."""
    from stylebridge.core.checkpoint import RANDOM_NOTICE

    if parts:
        warn_user(f"{RANDOM_NOTICE}: {what} runs on untrained (random) weights "
                  f"({', '.join(parts)}): its pictures and numbers show no trained model",
                  RandomWeightsWarning)


def warn_skipped(what: str, report: Any, unit: str = "input") -> None:
    """One :class:`~stylebridge.errors.SkippedInputsWarning` naming the first
    :data:`SKIPPED_NAMED` inputs ``report`` (a :class:`~stylebridge.core.batch.BatchReport`)
    skipped and why, then how many more; nothing when none was skipped."""
    skipped = list(report.skipped)
    if not skipped:
        return
    total = len(report.done) + len(skipped)
    shown = "; ".join(f"{path}: {reason}" for path, reason in skipped[:SKIPPED_NAMED])
    more = len(skipped) - SKIPPED_NAMED
    listed = f"; and {more} more (result.report.skipped lists them)" if more > 0 else ""
    head = (f"{what}: nothing done, every {unit} was skipped ({len(skipped)})"
            if not report.done else f"{what} skipped {len(skipped)} of {total} {unit}s")
    warn_user(f"{head}: {shown}{listed}", SkippedInputsWarning)


def warn_run_end(what: str, report: Any, notes: Sequence[str] = (), *,
                 unit: str = "input") -> None:
    """What a batch pipeline called from Python says when it ends, as the command line
    prints it: the skipped inputs (:func:`warn_skipped`), then each of its metrics' ``notes``
    (an ID metric's fall-back, photos without a face), as a
    :class:`~stylebridge.errors.StylebridgeWarning` each."""
    warn_skipped(what, report, unit)
    for note in dict.fromkeys(notes):
        warn_user(f"{what} metrics: {note}")


def check_positive(value: int, flag: str) -> int:
    if value < 1:
        raise StylebridgeError(f"{flag} {value}: must be >= 1")
    return value


__all__ = [
    "PhotoOptions",
    "broken_link",
    "check_out_folder",
    "check_photo_options",
    "check_positive",
    "check_writable",
    "drawn_anew",
    "ends_at",
    "fold_name",
    "generator_file",
    "is_random",
    "open_encoder",
    "open_generator",
    "output_names",
    "random_file_notice",
    "random_parts",
    "run_files",
    "small_crop_notice",
    "warn_random",
    "warn_run_end",
    "warn_skipped",
    "weights_path",
]
