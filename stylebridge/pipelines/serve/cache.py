"""The model cache of ``stylebridge serve``: what the back end built once, by kind and key.

Every encoder typed in the page (``NAME:CHECKPOINT[:OPTIONS]``) and the alpha fit made for it
is kept under :func:`spec_key`: the plugin name, the checkpoint file resolved (``/p/./e4e``
and ``/p/././e4e`` are one file; a symlink is its target), its device, inode, size,
modification time and status-change time, and the options, so that the same file typed
another way is not loaded again, and a file replaced since is (a same-size file copied over
it with its modification time kept: ``cp -p``, ``touch -r``, a restore).  ``st_ctime``
moves on every write, rename or copy over the file, and nothing sets it back; on Windows it
is the creation time, which an overwrite in place keeps (there such a copy made in place,
same size and time, is still taken for the cached file: restart the server).  These two
kinds are bounded (:data:`LIMITS`: the most recently used are kept; an older one is dropped
and its memory freed); the other kinds hold one entry per server option (the
``--calibrate`` file, the FeatureShift model, the CLIP models, the metrics) and are not.
"""

from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch

from stylebridge.errors import StylebridgeError
from stylebridge.registry.spec import parse_plugin_spec

#: the most recently used entries kept of a kind (a kind not named here is not bounded)
LIMITS = {"encoder": 2, "alpha-fit": 2}


def spec_key(spec: str, what: str = "encoder") -> str:
    """The cache key of a plugin spec: the same file and options, however the path is
    written, give one key; a changed or replaced file (device, inode, size, modification
    or status-change time) another.  A spec that does not
    parse keys as itself (building it raises the one-line error)."""
    try:
        parsed = parse_plugin_spec(spec, what=what)
    except StylebridgeError:
        return spec.strip()
    path, stamp = parsed.path, None
    if path is not None:
        try:
            path = path.resolve()
            info = path.stat()
            stamp = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns,
                     info.st_ctime_ns)
        except (OSError, RuntimeError):  # not there (yet): the loader names the problem
            pass
    return repr((parsed.name, None if path is None else str(path), stamp,
                 sorted(parsed.options.items())))


class ModelCache(OrderedDict[tuple[str, str], Any]):
    """``{(kind, key): model}`` in the order of use; :meth:`get_or_build` builds a missing
    one and drops the least recently used of its kind beyond :data:`LIMITS`."""

    def __init__(self, limits: dict[str, int] | None = None) -> None:
        super().__init__()
        self.limits = dict(LIMITS if limits is None else limits)
        self.lock = threading.RLock()

    def get_or_build(self, kind: str, key: str, build: Callable[[], Any]) -> Any:
        with self.lock:
            if (kind, key) in self:
                self.move_to_end((kind, key))
                return self[(kind, key)]
            value = build()
            self[(kind, key)] = value
            self._trim(kind)
            return value

    def _trim(self, kind: str) -> None:
        limit = self.limits.get(kind)
        if limit is None:
            return
        keys = [key for key in self if key[0] == kind]
        dropped = [self.pop(key) for key in keys[:max(0, len(keys) - limit)]]
        if dropped:  # freed now, not at the next collection (an encoder: up to 4 GiB)
            del dropped
            gc.collect()
            if torch.cuda.is_available() and torch.cuda.is_initialized():
                torch.cuda.empty_cache()


__all__ = ["LIMITS", "ModelCache", "spec_key"]
