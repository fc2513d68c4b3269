"""Atomic file output: a file is either the old version or the complete new one."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@functools.cache
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temporary_beside(dst: Path) -> Path:
    """A new empty hidden ``.NAME.*.tmp`` file in ``dst``'s folder (created if needed)."""
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    except OSError as exc:  # the folder cannot be made or written: name the output
        raise OSError(exc.errno, exc.strerror or str(exc), str(dst)) from None
    os.close(fd)
    return Path(tmp_name)


@contextlib.contextmanager
def atomic_path(dst: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``dst``; on success it is renamed over ``dst``.

    The temporary file lives in the same directory so that the final
    :func:`os.replace` is atomic.  If the body raises (or the process dies), the
    destination is untouched and the temporary file is removed (or, after a
    hard kill, left as a hidden ``.*.tmp`` file that nobody reads).
    """
    dst = Path(dst)
    tmp = _temporary_beside(dst)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        # mkstemp creates 0600 files; give the result the permissions a plain open() would
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, dst)
    except OSError as exc:  # disk full, permissions: name the output, not the temporary file
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise OSError(exc.errno, exc.strerror or str(exc), str(dst)) from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_json(dst: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(dst) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def check_writable(dst: str | Path) -> None:
    """Fail early, naming ``dst``, when its folder cannot be created or written (run this
    before expensive work whose result goes to ``dst``)."""
    _temporary_beside(Path(dst)).unlink()
