"""Batch commands over many files: skip and report bad inputs instead of dying.

A command collects per-file failures in a :class:`BatchReport`; at the end the CLI
prints the table of skipped files (``stylebridge.cli.options.print_batch_report``) and exits with :data:`EXIT_PARTIAL` when some
(but not all) inputs failed, :data:`EXIT_FAILED` when all failed.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor

from stylebridge.core.images import IMAGE_SUFFIXES, is_grid_file, load_image
from stylebridge.errors import StylebridgeError

EXIT_OK = 0
EXIT_FAILED = 2
EXIT_PARTIAL = 3  # some inputs were skipped; the rest were written


@dataclass
class BatchReport:
    """Which inputs succeeded and which were skipped (with a one-line reason)."""

    done: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    #: inputs used, with a caveat (``--no-align`` squeezing a wide photo); said, not skipped
    notes: list[tuple[Path, str]] = field(default_factory=list)

    def ok(self, path: Path) -> None:
        self.done.append(path)

    def note(self, path: Path, text: str) -> None:
        self.notes.append((path, " ".join(text.split())))

    def skip(self, path: Path, reason: str) -> None:
        self.skipped.append((path, " ".join(reason.split())))

    @property
    def exit_code(self) -> int:
        if not self.skipped:
            return EXIT_OK
        return EXIT_PARTIAL if self.done else EXIT_FAILED

    def as_dict(self) -> dict[str, object]:
        return {"done": [str(p) for p in self.done],
                "skipped": [{"file": str(p), "reason": r} for p, r in self.skipped]}



def _folder_entries(folder: Path) -> list[Path]:
    """The entries of ``folder`` a batch reads or reports: image files (by suffix, also
    through symlinks) and every entry that is no regular file or folder (a FIFO, device,
    socket or a symlink loop), so that those are reported as skipped, not silently dropped.
    A grid stylebridge wrote (``grid.png`` of an earlier run, marked in the PNG:
    :func:`~stylebridge.core.images.is_grid_file`) is no photo and is left out, as are
    hidden files (``.x.png``; macOS' ``._x.png`` resource forks, which are no images); named
    as a file, either is read."""
    out = []
    for p in folder.iterdir():
        if p.name.startswith("."):
            continue
        try:
            mode = p.stat().st_mode
        except OSError:  # a dangling link or a symlink loop
            if p.suffix.lower() in IMAGE_SUFFIXES or _loops(p):
                out.append(p)
            continue
        if stat.S_ISDIR(mode):
            continue
        if not stat.S_ISREG(mode) or (p.suffix.lower() in IMAGE_SUFFIXES
                                      and not is_grid_file(p)):
            out.append(p)
    return sorted(out)


def _subfolders(folder: Path) -> list[Path]:
    """``folder``'s own subfolders (not hidden), sorted: a batch does not search them."""
    try:
        return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.is_dir())
    except OSError:
        return []


def _loops(path: Path) -> bool:
    try:
        path.stat()
    except OSError as exc:
        return exc.errno == errno.ELOOP
    return False


def expand_inputs(items: Iterable[str | Path]) -> list[Path]:
    """Files as given, and the image files (sorted) of any directory among them (not of its
    subfolders), plus a folder's non-regular entries (reported as skipped when read).

    A file given twice (twice by name, or by name and through its folder) is kept once,
    where it first appears.  A symbolic link is an input of its own name: a folder of links
    (a subset of a dataset) gives every link, also two links to one file, which were kept
    once without a word (and the file's own name lost its output to the link's).
    """
    out: list[Path] = []
    seen: set[str] = set()
    for item in items:
        path = Path(item)
        found = _folder_entries(path) if path.is_dir() else [path]
        for p in found:
            key = os.path.abspath(p)  # the name, not what a link points at
            if key not in seen:
                seen.add(key)
                out.append(p)
    return out


def require_inputs(items: Iterable[str | Path]) -> list[Path]:
    """:func:`expand_inputs`, refusing in one line an empty result or inputs none of which
    exists (batch commands; a missing file among others is skipped and reported)."""
    from stylebridge.errors import StylebridgeError

    items = list(items)
    absent = [str(item) for item in items if not os.path.lexists(item)]
    if absent and len(absent) == len(items):  # a typo: said before models load, not skipped
        if len(absent) == 1:
            raise StylebridgeError("no such file or directory", path=absent[0])
        shown = ", ".join(absent[:3]) + (", ..." if len(absent) > 3 else "")
        raise StylebridgeError(f"no such files or directories: {shown}")
    paths = expand_inputs(items)
    if not paths:
        given = ", ".join(str(item) for item in items[:3]) + (", ..." if len(items) > 3 else "")
        subfolders = [p for item in items if Path(item).is_dir()
                      for p in _subfolders(Path(item))]
        where = (f"; their {len(subfolders)} subfolder(s) are not searched: give them too, e.g. "
                 f"{subfolders[0]}" if subfolders else "")
        raise StylebridgeError(f"no input images in {given or 'the arguments'} (folders are "
                               f"searched for image files{where})")
    return paths


def iter_images(paths: Iterable[Path], report: BatchReport) -> Iterator[tuple[Path, Tensor]]:
    """Yield ``(path, image [3, H, W] in [0, 1])``; unreadable files go to ``report``, and
    so do a photo's notes (a colour profile that was not applied)."""
    for path in paths:
        notes: list[str] = []
        try:
            image = load_image(path, notes=notes)
        except StylebridgeError as exc:
            report.skip(path, str(exc).removeprefix(f"{path}: "))
            continue
        for text in notes:
            report.note(path, text)
        yield path, image
