"""Keep two processes from writing one output at once.

Two ``stylebridge adapt --out same/`` started together shared one resume journal: each
removed the other's, one of them crashed (``log.jsonl: No such file or directory``) and the
reports held one run's photos only; a trainer ``--resume``\\ d while the first run still
trained ran beside it.  :func:`hold` takes an advisory lock (``fcntl.flock``) named after the
output's absolute path, without waiting: a second process gets :class:`LockHeld` naming the
holder (command and pid) at once, before it reads or changes anything.

The lock files live in a folder of the temporary directory (one per user), never in the
output folder, so an output folder holds what the run wrote and nothing else, a folder that
does not exist yet is locked as well, and a read-only output is no problem.  Where no
temporary directory is writable (a read-only container: ``/tmp`` read-only, ``TMPDIR`` unset
or wrong) Python's last resort, the current folder, is not used (it would leave a
``stylebridge-locks-<uid>/`` folder among the user's files, and the output's own folder or
its parent are the user's files too): the per-user runtime folder (``$XDG_RUNTIME_DIR``) or
``/dev/shm`` is, and where neither is writable nothing is locked (one notice line naming
``TMPDIR``) and the run goes on.  The kernel
releases a lock when its holder dies (``kill -9`` too), so a killed run blocks nothing; a
released lock's file is removed.  Locks are per machine (two machines writing one network
folder are not kept apart) and per user.  Within one process the thread that holds an
output may hold it again (nested holds of one run, a notebook cell run again); another thread
gets :class:`LockHeld` as another process does (two threads' runs into one folder removed each
other's journal).  Where
``fcntl`` does not exist (Windows) nothing is locked.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
import threading
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

#: lock file path -> [descriptor, how many holds of this process, the holding thread]
_HELD: dict[str, list[int]] = {}
_GUARD = threading.Lock()


class LockHeld(Exception):
    """Another process holds the lock of ``output``; ``holder`` is what it recorded
    (``adapt, pid 1234``; empty when it had not written it yet)."""

    def __init__(self, output: Path, holder: str) -> None:
        super().__init__(f"{output} is held by {holder or 'another process'}")
        self.output, self.holder = output, holder


_NOTICE = ("note: no writable temporary folder (set TMPDIR to one): outputs are not locked "
           "against a second stylebridge run writing them at once")
_noticed = False


def _writable_folder(path: str) -> bool:
    return bool(path) and os.path.isabs(path) and os.path.isdir(path) and \
        os.access(path, os.W_OK | os.X_OK)


def _is_cwd_fallback(folder: str) -> bool:
    """Whether :func:`tempfile.gettempdir` gave the current folder as its last resort (none
    of ``$TMPDIR``, ``$TEMP``, ``$TMP``, ``/tmp``, ``/var/tmp``, ``/usr/tmp`` was usable)."""
    def norm(path: str) -> str:
        return os.path.normcase(os.path.abspath(path))

    try:
        cwd = os.getcwd()
    except OSError:
        return False
    if norm(folder) != norm(cwd):
        return False
    named = [os.environ.get(v, "") for v in ("TMPDIR", "TEMP", "TMP")]
    return norm(folder) not in {norm(p) for p in [*named, "/tmp", "/var/tmp", "/usr/tmp"] if p}


def _base_folder() -> Path | None:
    try:
        folder: str | None = tempfile.gettempdir()
    except OSError:  # FileNotFoundError: "No usable temporary directory found in [...]"
        folder = None
    if folder is not None and not _is_cwd_fallback(folder):
        return Path(folder)
    for candidate in _fallback_folders():
        if _writable_folder(candidate):
            return Path(candidate)
    return None


def _fallback_folders() -> list[str]:
    """Where the lock folder goes when no temporary directory is usable (see the module)."""
    return [os.environ.get("XDG_RUNTIME_DIR", ""), "/dev/shm"]


def lock_folder() -> Path | None:
    """Where the lock files are: ``<temporary directory>/stylebridge-locks-<uid>`` (or in
    ``$XDG_RUNTIME_DIR`` or ``/dev/shm`` where no temporary directory is usable); ``None``:
    nowhere (nothing is locked)."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    base = _base_folder()
    return None if base is None else base / f"stylebridge-locks-{uid}"


def _no_lock() -> None:
    """Say once per process that outputs are not locked (no writable temporary folder)."""
    global _noticed
    if not _noticed:
        _noticed = True
        print(_NOTICE, file=sys.stderr, flush=True)


def lock_path(output: str | Path, name: str = "") -> Path:
    """The lock file of ``output`` (and of ``name`` within it: ``eval``'s reports share a
    folder), from its absolute path with symbolic links resolved, case-folded: ``Out/`` and
    ``out/`` are one folder on macOS and Windows disks, so they are held as one everywhere."""
    folder = lock_folder()
    if folder is None:
        raise FileNotFoundError("no writable temporary folder for the lock files (set TMPDIR)")
    key = os.path.realpath(os.path.abspath(os.fspath(output)))
    digest = hashlib.sha256(f"{key}\0{name}".casefold().encode("utf-8", "surrogateescape")
                            ).hexdigest()
    return folder / f"{digest[:32]}.lock"


class OutputLock:
    """A hold of an output's lock (:func:`hold`); :meth:`release` it when the run is over
    (a hold that is garbage-collected is released too)."""

    def __init__(self, path: str) -> None:
        self._path: str | None = path

    def release(self) -> None:
        with _GUARD:
            path, self._path = self._path, None
            entry = _HELD.get(path) if path is not None else None
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] == 0:
                del _HELD[path]
                with contextlib.suppress(OSError):
                    os.unlink(path)  # still held: nobody can lock it in between
                os.close(entry[0])

    def __enter__(self) -> OutputLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter exit the module may be gone
            self.release()


def _holder(fd: int) -> str:
    with contextlib.suppress(OSError):
        return os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    return ""


def hold(output: str | Path, owner: str, name: str = "") -> OutputLock | None:
    """Lock ``output`` (a folder or file a run writes) for this process, without waiting;
    ``owner`` (the command) is recorded for whoever finds it held.  :class:`LockHeld` when
    another process holds it; ``None`` where nothing can be locked (no ``fcntl``, or no
    writable temporary directory: one notice line on stderr, once per process)."""
    if fcntl is None:
        return None
    try:
        path = str(lock_path(output, name))
    except FileNotFoundError:
        _no_lock()
        return None
    with _GUARD:
        if path in _HELD:
            fd, _, thread = _HELD[path]
            if thread != threading.get_ident():  # another thread of this process: its run
                raise LockHeld(Path(output), f"{_holder(fd)}, another thread")
            _HELD[path][1] += 1
            return OutputLock(path)
        try:
            Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError:
            _no_lock()
            return None
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:
                _no_lock()
                return None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(fd)
                os.close(fd)
                raise LockHeld(Path(output), holder) from None
            except BaseException:
                os.close(fd)
                raise
            # the holder before us removes the file when it is done: a lock on that removed
            # file excludes nobody, so take the one that is there now
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{owner}, pid {os.getpid()}".encode(), 0)
        _HELD[path] = [fd, 1, threading.get_ident()]
        return OutputLock(path)


__all__ = ["LockHeld", "OutputLock", "hold", "lock_folder", "lock_path"]
