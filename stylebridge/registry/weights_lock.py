"""Cross-process exclusion for the weights cache, and the check that it can be written.

Two ``stylebridge weights fetch`` of the same entry at once would write the same ``.part``
file: the second resumed it with ``Range`` and appended to a file the first had already
renamed into place. :func:`exclusive` holds an advisory lock (``fcntl.flock``) on a lock file
beside the file being written (``downloads/<file>.lock``) for the whole download, check,
conversion and record; a second process waits for it, then finds the file installed. The
kernel releases the lock when its holder dies, so a killed process leaves no stale lock
behind. Where ``fcntl`` does not exist (Windows) the lock file is created with ``O_EXCL``
and a second process refuses in one line naming it.

``index.json`` is read, changed and rewritten under its own short lock (two fetches of
different entries each add theirs).
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from stylebridge.registry.weights_checks import WeightsError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

#: the errors that mean "this folder cannot be written" (permissions, a read-only mount)
NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


def not_writable(folder: Path) -> WeightsError:
    return WeightsError(f"cache folder {folder} is not writable; set STYLEBRIDGE_HOME to a "
                        "folder you can write to")


def require_writable(*folders: Path) -> None:
    """Create ``folders`` and write a probe file in each (removed at once): a read-only or
    foreign cache is one line naming the folder, before anything is downloaded or staged."""
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            if exc.errno in NOT_WRITABLE:
                raise not_writable(folder) from None
            raise


@contextmanager
def exclusive(path: Path, *, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold the lock file ``path`` (created, and removed when released); ``on_wait`` is called
    once when another process holds it and this one waits."""
    if fcntl is None:
        with _exclusive_file(path):
            yield
        return
    waited = False
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            if exc.errno in NOT_WRITABLE:
                raise not_writable(path.parent) from None
            raise
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not waited and on_wait is not None:
                    on_wait()
                waited = True
                fcntl.flock(fd, fcntl.LOCK_EX)
            # the holder before us removes the file when it is done: a lock on that removed
            # file excludes nobody, so take the one that is there now
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
        except BaseException:
            os.close(fd)
            raise
        try:
            yield
        finally:
            with suppress(OSError):
                os.unlink(path)  # still held: nobody can lock it in between
            os.close(fd)
        return


@contextmanager
def _exclusive_file(path: Path) -> Iterator[None]:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        raise WeightsError("another stylebridge process is installing this file; wait for it "
                           "to finish (if none is running, delete the lock file)",
                           path=path) from None
    except OSError as exc:
        if exc.errno in NOT_WRITABLE:
            raise not_writable(path.parent) from None
        raise
    try:
        yield
    finally:
        os.close(fd)
        Path(path).unlink(missing_ok=True)
