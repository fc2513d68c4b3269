"""What ``stylebridge serve`` accepts as an upload, and how its upload folder stays clean.

A request may name, as the file of an upload field, any path of the server's upload folder,
a folder included (the folder Gradio made for an earlier upload).  Gradio registered that
path for its hourly purge, whose ``os.remove`` then failed on the folder
(``IsADirectoryError``) and ended the purge task for good, silently: no upload was deleted
again until the server stopped.  Here:

* :func:`check_upload`: a handler refuses anything that is not a regular file, in one line,
  before it is read;
* :class:`RegularFiles` (:func:`guard_temp_files` puts one in place of each of the page's
  sets of files to purge): a folder or any other non-file is never registered, and the purge
  never sees one, whatever a path has become since;
* :func:`purge_strays`: the files a client left in the upload folder by breaking off an
  upload (Gradio writes the body to ``tmpXXXX`` there first) are deleted by age as well.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from stylebridge.errors import StylebridgeError


def _is_regular_or_gone(path: Any) -> bool:
    """Whether ``path`` is a regular file or does not exist (Gradio's purge skips those)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return True
    except (OSError, TypeError, ValueError):  # no such kind of path: not a file to purge
        return False


def check_upload(path: str | Path) -> Path:
    """``path`` as an upload a handler may read: a regular file, else a one-line error (a
    folder, a device, a link; a file deleted by the hourly purge)."""
    path = Path(path)
    name = path.name or "the upload"
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        raise StylebridgeError(f"{name}: the upload is gone (uploads are deleted after an "
                               "hour): drop the file again") from None
    if not stat.S_ISREG(mode):
        raise StylebridgeError(f"{name}: not a file (only a file can be uploaded)")
    return path


class RegularFiles(set[str]):
    """A set of files for Gradio's purge that holds regular files only: a path that is
    something else is not added, and one that became something else is not handed out."""

    def add(self, item: str) -> None:
        if _is_regular_or_gone(item):
            super().add(item)

    def update(self, *others: Iterable[str]) -> None:
        for other in others:
            for item in list(other):
                self.add(item)

    def __ior__(self, other: Any) -> RegularFiles:  # type: ignore[override,misc]
        self.update(other)
        return self

    def __iter__(self) -> Iterator[str]:
        items = list(set.__iter__(self))
        return (item for item in items if _is_regular_or_gone(item))


def guard_temp_files(app: Any) -> None:
    """Put a :class:`RegularFiles` in place of every set of files the Gradio ``app`` purges
    (each component's, and the uploads')."""
    swapped: dict[int, RegularFiles] = {}

    def safe(files: Any) -> Any:
        if not isinstance(files, set) or isinstance(files, RegularFiles):
            return files
        if id(files) not in swapped:
            swapped[id(files)] = new = RegularFiles()
            new.update(files)
        return swapped[id(files)]

    for block in getattr(app, "blocks", {}).values():
        if isinstance(getattr(block, "temp_files", None), set):
            block.temp_files = safe(block.temp_files)
    if hasattr(app, "upload_file_set"):
        app.upload_file_set = safe(app.upload_file_set)
    if hasattr(app, "temp_file_sets"):
        app.temp_file_sets = [safe(files) for files in app.temp_file_sets]


def purge_strays(folder: Path | str | None, age: float) -> list[Path]:
    """Delete the files at the top of the upload ``folder`` unchanged for more than ``age``
    seconds: the bodies of uploads broken off (a finished upload is moved into a folder of
    its own); folders, links and files that vanish meanwhile are left alone.  The deleted."""
    if folder is None:
        return []
    deleted: list[Path] = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:  # the folder is gone (the server stops)
        return []
    for entry in entries:
        with contextlib.suppress(OSError):
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(info.st_mode) and now - info.st_mtime > age:
                os.unlink(entry.path)
                deleted.append(Path(entry.path))
    return deleted


__all__ = ["RegularFiles", "check_upload", "guard_temp_files", "purge_strays"]
