"""The sha256 of model files, for run records and resumes, hashed once per file version.

A run record named the encoder, domains, calibrator and renderer files by path, size and
modification time only, and a resume compared those: a same-size file copied over the
checkpoint with its time set back was taken for the one the interrupted run used, and two
records of different files read the same.  :func:`content_sha256` gives the content's
sha256 without hashing a 1-GB checkpoint on every run: it is kept, in the process and in
``$STYLEBRIDGE_HOME/cache/sha256.json``, under the file's device, inode, size, modification
time *and* status-change time (``st_ctime``, which every write or copy over the file moves
and ``touch`` cannot set back), so a file is hashed again after any change and only then.
The cache is an optimisation: when it cannot be read or written, files are hashed each run.
On Windows, where ``st_ctime`` is the creation time (an overwrite in place keeps it), neither
cache is used: every file is hashed when asked.

:func:`remember_loaded` keeps the sha256 of what a checkpoint held when it was *loaded*
(:func:`~stylebridge.registry.resolve.record_provenance` calls it), and
:func:`loaded_sha256` gives it back: a run record written at the end of a long run names the
weights the run used, not a file copied over them since.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from stylebridge.core.io import atomic_path
from stylebridge.registry.weights_files import sha256_file

#: the on-disk cache, under the weights cache (``stylebridge weights``)
CACHE_FILE = Path("cache") / "sha256.json"
#: entries kept on disk (the most recent): a few hundred bytes each
MAX_ENTRIES = 2000

#: whether the caches may be trusted: ``st_ctime`` moves on every write (not on Windows)
CACHED = os.name != "nt"

_LOCK = threading.Lock()
_KNOWN: dict[str, str] = {}
#: absolute path → the sha256 of what was last loaded from it in this process
_LOADED: dict[str, str] = {}


def file_sha256(path: str | Path) -> str:
    """The file's sha256, read now."""
    return sha256_file(Path(path))


def _key(st: os.stat_result) -> str:
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


#: the cache file elsewhere (a path), or ``off``: no cache on disk (the test suite sets it
#: so that it never writes into the user's cache)
CACHE_ENV = "STYLEBRIDGE_HASH_CACHE"


def _cache_path() -> Path | None:
    from stylebridge.errors import StylebridgeError
    from stylebridge.registry.weights_entries import default_home

    chosen = os.environ.get(CACHE_ENV, "").strip()
    if chosen:
        return None if chosen.lower() == "off" else Path(chosen).expanduser()
    try:
        return default_home() / CACHE_FILE
    except (StylebridgeError, OSError):
        return None


def _read(path: Path) -> dict[str, str] | None:
    """The cache's entries: ``{}`` when there is no cache file yet, ``None`` when the file
    there is no cache (another file named by ``STYLEBRIDGE_HASH_CACHE``, a damaged one):
    it is then never written over."""
    try:
        if not path.is_file() or path.is_symlink():
            return {} if not path.exists() and not path.is_symlink() else None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or not all(
            isinstance(v, str) and len(v) == 64 for v in data.values()):
        return None
    return {str(k): v for k, v in data.items()}


def _write(path: Path, key: str, digest: str) -> None:
    try:
        entries = _read(path)
        if entries is None:
            return  # not ours to replace: hashed again next time
        entries.pop(key, None)
        entries[key] = digest  # the newest last: the oldest go first
        kept = dict(list(entries.items())[-MAX_ENTRIES:])
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(kept), encoding="utf-8")
    except OSError:
        pass  # a read-only or full cache: the next run hashes again


def content_sha256(path: str | Path | None) -> str | None:
    """The hex sha256 of the file at ``path`` (``None`` for none, or for what is not a regular
    file), from the cache while the file is unchanged (module docstring)."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not Path(path).is_file():
        return None
    if not CACHED:
        return file_sha256(path)
    key = _key(st)
    with _LOCK:
        if key in _KNOWN:
            return _KNOWN[key]
    cache = _cache_path()
    digest = (_read(cache) or {}).get(key) if cache is not None else None
    if digest is None:
        digest = file_sha256(path)
        if cache is not None:
            with _LOCK:
                _write(cache, key, digest)
    with _LOCK:
        _KNOWN[key] = digest
    return digest


def _absolute(path: str | Path) -> str:
    try:
        return str(Path(path).resolve())
    except (OSError, RuntimeError):
        return str(path)


def remember_loaded(path: str | Path) -> str | None:
    """Hash ``path`` as it is now, when a checkpoint was just loaded from it, and keep the
    digest for :func:`loaded_sha256`; returns it (``None``: not a file)."""
    digest = content_sha256(path)
    if digest is not None:
        with _LOCK:
            _LOADED[_absolute(path)] = digest
    return digest


def loaded_sha256(path: str | Path | None) -> str | None:
    """The sha256 of what was last loaded from ``path`` in this process
    (:func:`remember_loaded`), ``None`` when nothing was."""
    if path is None:
        return None
    with _LOCK:
        return _LOADED.get(_absolute(path))


__all__ = ["CACHED", "CACHE_ENV", "CACHE_FILE", "MAX_ENTRIES", "content_sha256", "file_sha256",
           "loaded_sha256", "remember_loaded"]
