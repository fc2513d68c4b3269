"""File output: a file is either the old version or the complete new one; streams and
devices are written in place (see :func:`atomic_path`)."""

from __future__ import annotations

import contextlib
import errno
import functools
import glob
import hashlib
import json
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from stylebridge.core.read_inputs import check_not_an_input


@functools.cache
def _umask() -> int:
    """The process's umask, read without setting it where the system says it (Linux's
    ``/proc/self/status``): ``os.umask`` can only read it by setting it, and a thread of the
    web app creating a file in that moment would make it world-writable."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0)  # elsewhere: set and restored at once (cached: once per process)
    os.umask(mask)
    return mask


#: the file-name limit in bytes where the file system does not say (Linux, macOS, Windows)
NAME_MAX = 255
#: what :func:`_temporary_beside` adds to an output's name: ``.`` + ``.XXXXXXXX.tmp``
_TEMPORARY_EXTRA = 14


def name_limit(folder: str | Path) -> int:
    """The longest file name, in bytes, the file system of ``folder`` (or, while it does not
    exist, of the nearest folder above it) takes: ``PC_NAME_MAX``, else :data:`NAME_MAX`."""
    here = Path(folder)
    while not here.is_dir() and here != here.parent:
        here = here.parent
    try:
        limit = os.pathconf(here, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):  # Windows; a file system that does not say
        return NAME_MAX
    return limit if isinstance(limit, int) and 0 < limit <= 4096 else NAME_MAX


def name_bytes(name: str) -> int:
    """How many bytes the file name ``name`` has on disk (:func:`os.fsencode`)."""
    return len(os.fsencode(name))


def temporary_stem(name: str, limit: int = NAME_MAX) -> str:
    """The ``NAME`` part of the temporary files of the output ``name``
    (``.NAME.XXXXXXXX.tmp``, 14 bytes more): ``name`` itself when that fits in ``limit``
    bytes, else its start, ``~`` and a digest of the whole name (two long names that differ
    only at the end keep apart)."""
    room = limit - _TEMPORARY_EXTRA
    if name_bytes(name) <= room:
        return name
    digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:8]
    cut = name
    while cut and name_bytes(cut) > room - len(digest) - 1:
        cut = cut[:-1]
    return f"{cut}~{digest}"


def _temporary_beside(dst: Path, name: Path | None = None) -> Path:
    """A new empty hidden ``.NAME.*.tmp`` file in ``dst``'s folder (created if needed), a
    long ``NAME`` shortened (:func:`temporary_stem`) to stay within the file system's limit;
    errors name ``name`` (what the user gave, e.g. a symlink to ``dst``) or ``dst``."""
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        stem = temporary_stem(dst.name, name_limit(dst.parent))
        fd, tmp_name = tempfile.mkstemp(prefix=f".{stem}.", suffix=".tmp", dir=dst.parent)
    except OSError as exc:  # the folder cannot be made or written: name the output
        raise _named_error(exc, name or dst) from None
    os.close(fd)
    return Path(tmp_name)


#: the names :func:`_temporary_beside` gives (``.NAME.`` + mkstemp's 8 characters + ``.tmp``)
_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


def remove_stale_temporaries(folder: str | Path, name: str | Iterable[str] | None = None
                             ) -> int:
    """Delete the hidden ``.NAME.*.tmp`` files an atomic write leaves when its process is
    killed (``kill -9``, out of memory) under ``folder``, a run's own output folder; with
    ``name``, only those of that one output (or of those outputs, a collection of file names,
    found in one scan) in ``folder`` itself: a run writing into a folder shared with other
    runs (shards of one photo set into one ``--out``) removes only what it would overwrite
    anyway.  Returns how many.  Call it where a run takes over its outputs (its journal says
    so, or it is about to write them), not while another process writes the same outputs."""
    removed = 0
    root = Path(folder)
    if not root.is_dir():
        return 0
    if isinstance(name, str):
        stem = temporary_stem(name, name_limit(root))
        found: Iterable[Path] = root.glob(f".{glob.escape(stem)}.*.tmp")
    elif name is not None:
        limit = name_limit(root)
        own = {temporary_stem(n, limit) for n in name}
        found = (p for p in root.glob(".*.tmp")
                 if _TEMPORARY.match(p.name) and p.name[1:-13] in own)
    else:
        found = root.rglob(".*.tmp")
    for path in found:
        if _TEMPORARY.match(path.name) and path.is_file() and not path.is_symlink():
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
    return removed


def remove_folder(folder: str | Path) -> None:
    """Delete ``folder`` (a run's journal) as one step: it is renamed to a hidden
    ``.NAME.XXXXXXXX.tmp`` beside it first, then deleted, so a kill in between leaves no
    half-deleted folder under its own name (a later ``--resume`` would read it as a damaged
    journal); :func:`remove_stale_folders` deletes what such a kill left."""
    folder = Path(folder)
    if not folder.is_dir() or folder.is_symlink():
        return
    stem = temporary_stem(folder.name, name_limit(folder.parent))
    trash = folder.with_name(f".{stem}.{os.urandom(4).hex()}.tmp")
    try:
        os.rename(folder, trash)
    except OSError:  # another filesystem's rules: delete it where it is
        trash = folder
    shutil.rmtree(trash, ignore_errors=True)


def remove_stale_folders(parent: str | Path, name: str) -> int:
    """Delete the hidden folders :func:`remove_folder` renamed ``parent/name`` to and was
    killed before deleting; returns how many."""
    removed = 0
    stem = temporary_stem(name, name_limit(parent))
    for path in Path(parent).glob(f".{glob.escape(stem)}.*.tmp"):
        if _TEMPORARY.match(path.name) and path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


#: output names that mean "print it": the bytes go to the process's own stream
STREAMS = {"-": 1, "/dev/stdout": 1, "/dev/stderr": 2}
#: errno values reported as a full disk (or a file-size limit, ``ulimit -f``)
DISK_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


def disk_full_message(path: str | Path) -> str:
    return f"disk full (or file size limit) writing {path}"


def _named_error(exc: OSError, dst: Path) -> OSError:
    """``exc`` naming the output ``dst`` (not a temporary file); a full disk says so."""
    if exc.errno in DISK_FULL:
        return OSError(exc.errno, "disk full (or file size limit)", str(dst))
    return OSError(exc.errno, exc.strerror or str(exc), str(dst))


def output_target(dst: str | Path) -> tuple[str, Path]:
    """How an output path is written: ``("stream", path)`` for ``-``, ``/dev/stdout`` and
    ``/dev/stderr``; ``("in-place", target)`` for a character device, FIFO or socket (or a
    symlink to one); otherwise ``("atomic", target)``, where ``target`` is the regular file
    (or new path) a symlink chain ends at: the link itself stays a link."""
    text = str(dst)
    if text in STREAMS:
        return "stream", Path(text)
    path = Path(dst)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        mode = target.stat().st_mode
    except OSError:  # a new file (or a dangling link: its target is created)
        return "atomic", target
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", text)
    if stat.S_ISREG(mode):
        return "atomic", target
    return "in-place", target


def _refuse_broken_link(dst: Path, target: Path) -> None:
    """No folder is made through a symlink whose target's folder does not exist (``eval
    --json r.json`` linked to ``/x/new/r.json`` made ``/x/new``): one line naming it."""
    if dst.is_symlink() and not target.parent.is_dir():
        from stylebridge.errors import StylebridgeError

        raise StylebridgeError(f"is a broken symlink to {os.readlink(dst)} (the folder "
                               f"{target.parent} does not exist); remove the link or write "
                               "elsewhere", path=dst)


def _copy_into(src: Path, dst: Path, fd: int | None = None) -> None:
    """Write ``src``'s bytes to the open descriptor ``fd`` or into ``dst`` (opened for
    writing, not replaced); a short or failed write is an error naming ``dst``."""
    own = fd is None
    if own:
        fd = os.open(dst, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
    assert fd is not None
    try:
        with open(src, "rb") as fh:
            while chunk := fh.read(1 << 20):
                view = memoryview(chunk)
                while view:
                    n = os.write(fd, view)
                    if n <= 0:
                        raise OSError(errno.EIO, "short write", str(dst))
                    view = view[n:]
    finally:
        if own:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(dst: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; when the body succeeds it becomes ``dst``.

    * a regular file or a new path: the temporary file lives in the same folder and is
      renamed over the file (:func:`os.replace`, atomic): ``dst`` is either the old
      version or the complete new one;
    * a symlink is followed: the file it points to is replaced the same way (in that
      file's folder) and the link stays a link;
    * ``-``, ``/dev/stdout`` and ``/dev/stderr`` print the bytes; a character device, FIFO
      or socket (``/dev/null``, a pipe) is written in place, never replaced by a file.

    If the body raises (or the process dies), the destination is untouched and the
    temporary file is removed (or, after a hard kill, left as a hidden ``.*.tmp`` file that
    nobody reads).  A failed or short write is an ``OSError`` naming ``dst``; a full disk
    (or file-size limit) says so.
    """
    dst = Path(dst)
    how, target = output_target(dst)
    if how == "atomic":
        check_not_an_input(dst, target)   # a link (or other name) to a photo this run read
        _refuse_broken_link(dst, target)
        tmp = _temporary_beside(target, name=dst)
    else:
        fd, name = tempfile.mkstemp(prefix="stylebridge-out.", suffix=".tmp")
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if how == "stream":
            stream = sys.stdout if STREAMS[str(dst)] == 1 else sys.stderr
            if stream is None:  # closed when Python started (`>&-`): said, not an AttributeError
                from stylebridge.errors import StylebridgeError

                raise StylebridgeError(f"{dst}: standard "
                                       f"{'output' if STREAMS[str(dst)] == 1 else 'error'} "
                                       "is closed")
            stream.flush()
            _copy_into(tmp, dst, fd=STREAMS[str(dst)])
        elif how == "in-place":
            _copy_into(tmp, dst if dst.is_symlink() else target)
        else:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            # mkstemp creates 0600 files: the result keeps the permissions of the file it
            # replaces (a read-only report stays read-only), a new one gets what open() gives
            try:
                mode = stat.S_IMODE(os.stat(target).st_mode)
            except OSError:
                mode = 0o666 & ~_umask()
            os.chmod(tmp, mode)
            os.replace(tmp, target)
    except OSError as exc:  # disk full, permissions: name the output, not the temporary file
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise _named_error(exc, dst) from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    else:
        if how != "atomic":
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def file_identity(path: Path | str | None) -> dict[str, Any] | None:
    """How a resumed run recognises a file (a checkpoint, a metric's weights): its path, size
    and modification time (``None`` for no file)."""
    if path is None:
        return None
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        return {"path": str(path), "size": None, "mtime_ns": None}
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def write_json(dst: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(dst) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def same_file_key(path: str | Path) -> str:
    """What two paths that name one file share on every platform: the absolute path with
    links resolved, case-folded (``R.json`` and ``r.json`` are one file on macOS and Windows
    disks; a run made on Linux must behave the same there).  A symlink loop (or a path the
    system cannot look up) is its absolute path: reading or writing it fails later, naming
    it, not here with a ``RuntimeError``."""
    try:
        return str(Path(path).resolve()).casefold()
    except (OSError, RuntimeError, ValueError):
        return os.path.abspath(path).casefold()


def check_outputs_apart(outputs: Mapping[str, str | Path | None],
                        inputs: Iterable[str | Path]) -> None:
    """One-line error, before any work, when an output would replace one of the files the
    run reads (``eval --json pred/img0.png``, ``calibrate --out`` the encoder it fits) or two
    outputs are one file (``--json r.json --csv r.json``: one report lost; ``--csv R.json``
    too, as on a case-insensitive disk: :func:`same_file_key`).  ``outputs``: option → path
    (``None``: not written); ``inputs``: the files read, folders for the files they hold
    (only those an output is in are listed)."""
    from stylebridge.errors import StylebridgeError

    seen: dict[str, str] = {}
    resolved: dict[str, Path] = {}
    for option, path in outputs.items():
        if path is None or output_target(path)[0] != "atomic":  # streams, devices
            continue
        where = same_file_key(path)
        if where in seen:
            same = "the same file" if Path(path).resolve() == resolved[where] else (
                "one file on case-insensitive disks (macOS, Windows)")
            raise StylebridgeError(f"{option} and {seen[where]} name {same}: one would "
                                   "replace the other", path=path)
        seen[where], resolved[where] = option, Path(path).resolve()
    if not seen:
        return
    for item in inputs:
        item = Path(item)
        files = [item] if not item.is_dir() else [p for p in item.iterdir()
                                                  if same_file_key(p) in seen]
        for file in files:
            option = seen.get(same_file_key(file))
            if option is not None:
                raise StylebridgeError(f"{option} names a file this run reads: writing it "
                                       "would replace that input", path=file)


def check_writable(dst: str | Path) -> None:
    """Fail early, naming ``dst``, when its folder cannot be created or written (run this
    before expensive work whose result goes to ``dst``).  Streams and devices are not
    checked: they are written in place."""
    how, target = output_target(dst)
    if how == "atomic":
        _refuse_broken_link(Path(dst), target)
        _temporary_beside(target, name=Path(dst)).unlink()


def is_utf8_name(path: str | Path) -> bool:
    """Whether ``path`` is valid UTF-8 (a POSIX name in another encoding, ``café`` in Latin-1,
    is held by Python as surrogate escapes): safetensors takes such paths only."""
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@contextlib.contextmanager
def utf8_path(path: str | Path) -> Iterator[str]:
    """``path`` as a string that safetensors opens for reading: the path itself when it is
    UTF-8 (:func:`is_utf8_name`), else the ``/dev/fd/N`` name of a descriptor opened here,
    valid inside the ``with`` block.  (Its writer cannot use that: it writes a temporary file
    beside the path; :func:`stylebridge.core.tensorfile.save_tensors` writes any name.)"""
    text = os.fspath(path)
    if is_utf8_name(text):
        yield text
        return
    fd = os.open(text, os.O_RDONLY)
    try:
        yield f"/dev/fd/{fd}"
    finally:
        os.close(fd)


@contextlib.contextmanager
def open_safetensors(path: str | Path, device: str = "cpu") -> Iterator[Any]:
    """``safetensors.safe_open(path, framework="pt", device=device)`` for any file name
    (:func:`utf8_path`)."""
    from safetensors import safe_open

    with utf8_path(path) as name, safe_open(name, framework="pt", device=device) as fh:
        yield fh
