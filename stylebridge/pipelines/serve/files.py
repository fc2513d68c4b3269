"""The files ``stylebridge serve`` hands to the page, and what it removes (gradio is imported
only where a copy is made).

Every result file the page shows or offers (the grid, the images zip, the latents, a trained
domain) is a copy of the work dir's file in a folder of its own, with a random name, in the
server's upload folder (:func:`served_copy`): nothing of the work dir itself is served.  Gradio
purges only the files it put in its cache itself, so :data:`COPIES` deletes these copies
on the same age (an hour: they show the uploaded face) and remembers where each came from,
for a fresh copy when a page asks again after that (:meth:`ServedCopies.made`).  The same
result shown again (a reload, a page loaded anew) gets the copy already made while it is
younger than half that age, not one more copy.  The same purge deletes the bodies of uploads
broken off in the upload folder (:func:`.uploads.purge_strays`).

:class:`Cleanup` removes the upload folder and the temporary work dir when the server stops.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from stylebridge.pipelines.serve.uploads import purge_strays

LOG = logging.getLogger("stylebridge.serve")


class ServedCopies:
    """The copies made for the page: ``{copy: (made at, source)}``; :meth:`purge` deletes
    those older than an age (the source in the work dir stays)."""

    def __init__(self) -> None:
        self._copies: dict[str, tuple[float, Path]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: the purge age once started; a copy younger than half of it is handed out again
        self.age: float | None = None

    def copy(self, path: Path | str, fresh: bool = False) -> str:
        """A copy of ``path`` in Gradio's upload folder (a folder of its own, random name);
        the latest copy of ``path`` again while it is younger than half the purge age and
        still there, unless ``fresh``."""
        from gradio.utils import get_upload_folder

        path = Path(path)
        if not fresh and (reused := self._reusable(path)) is not None:
            return reused
        folder = Path(get_upload_folder()) / secrets.token_hex(16)
        folder.mkdir(parents=True)
        # Gradio refuses a name with a leading dot (.face_inversion.safetensors) under the cwd
        copy = str(shutil.copyfile(path, folder / (path.name.lstrip(".") or "file")))
        with self._lock:
            self._copies[copy] = (time.monotonic(), path)
        return copy

    def _reusable(self, source: Path) -> str | None:
        now = time.monotonic()
        with self._lock:
            for copy, (made, src) in reversed(self._copies.items()):
                if src == source and (self.age is None or now - made <= self.age / 2) \
                        and os.path.isfile(copy):
                    return copy
        return None

    def made(self, source: Path | str) -> float:
        """When the latest copy of ``source`` was made (``time.monotonic``; -inf: none)."""
        with self._lock:
            return max((made for made, src in self._copies.values() if src == Path(source)),
                       default=float("-inf"))

    def purge(self, age: float) -> list[str]:
        """Delete every copy made more than ``age`` seconds ago; the deleted ones."""
        now = time.monotonic()
        with self._lock:
            old = [c for c, (made, _) in self._copies.items() if now - made > age]
            for copy in old:
                del self._copies[copy]
        for copy in old:
            shutil.rmtree(Path(copy).parent, ignore_errors=True)
        return old

    def start(self, frequency: float, age: float, folder: Path | None = None) -> None:
        """Purge every ``frequency`` seconds (Gradio's ``delete_cache``), until :meth:`stop`;
        ``folder``: the server's own upload folder, whose stray upload bodies go too."""
        self.age = age
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(frequency):
                try:  # one failure does not end the purge (Gradio's did, on a folder)
                    self.purge(age)
                    purge_strays(folder, age)
                except Exception:
                    LOG.exception("stylebridge serve: the purge of old files failed")

        self._thread = threading.Thread(target=loop, name="stylebridge-purge", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()


#: the copies of this process (one server)
COPIES = ServedCopies()


def served_copy(path: Path, fresh: bool = False) -> str:
    """A copy of the result file ``path`` for the page to show and download (:data:`COPIES`),
    deleted on the page's purge age: nothing of the work dir itself is served (no
    ``allowed_paths``), whether or not it lies in the temporary folder.  Shown again, the
    same copy (``fresh``: a new one)."""
    return COPIES.copy(path, fresh=fresh)


def upload_folder_parent() -> Path:
    """Where the page's own upload folder goes: the temporary folder, unless it lies in the
    current folder (``stylebridge serve`` started in /tmp): Gradio refuses an upload named
    with a leading dot (``.face.png``) under the current folder, before the page sees it."""
    cwd = Path.cwd().resolve()
    candidates = [Path(tempfile.gettempdir())]
    # no home folder (HOME unset, a uid without a passwd entry): the temporary folder only
    with contextlib.suppress(RuntimeError):
        candidates.append(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                          / "stylebridge")
    for candidate in candidates:
        if not candidate.resolve().is_relative_to(cwd):
            return candidate
    return candidates[0]


class Cleanup:
    """What the server leaves behind, removed once when it stops: its own upload folder
    (Gradio's cache: uploaded photos and domain files, the pictures shown) and the back end's
    temporary work dir (``ServeBackend.close``).  A ``GRADIO_TEMP_DIR`` or ``--work-dir``
    given by the user is kept (this page's files in the first are still purged by age)."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.lock = threading.Lock()
        self.done = False
        self.folder: Path | None = None
        self.previous = os.environ.get("GRADIO_TEMP_DIR")
        if self.previous is None:
            parent = upload_folder_parent()
            parent.mkdir(parents=True, exist_ok=True)
            self.folder = Path(tempfile.mkdtemp(prefix="stylebridge-serve-uploads-",
                                                dir=parent))
            os.environ["GRADIO_TEMP_DIR"] = str(self.folder)  # read by Gradio per request
        atexit.register(self)

    def __call__(self) -> None:
        with self.lock:
            if self.done:
                return
            self.done = True
        COPIES.stop()
        try:
            self.backend.close()
        finally:
            if self.folder is not None:
                shutil.rmtree(self.folder, ignore_errors=True)
                if os.environ.get("GRADIO_TEMP_DIR") == str(self.folder):
                    del os.environ["GRADIO_TEMP_DIR"]
            atexit.unregister(self)


def prune_run(work_dir: Path, result: Any) -> None:
    """Delete the run folder of ``result`` (a run no page can show again: out of the run
    history), when it is a ``run-NNN`` folder of ``work_dir``."""
    grid = getattr(result, "grid_path", None)
    if grid is None:
        return
    folder = Path(grid).parent
    if folder.name.startswith("run-") and folder.parent.resolve() == Path(work_dir).resolve():
        shutil.rmtree(folder, ignore_errors=True)


__all__ = ["COPIES", "Cleanup", "ServedCopies", "prune_run", "served_copy",
           "upload_folder_parent"]
