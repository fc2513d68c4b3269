"""Output names that mean the same file on every file system: short enough for its name limit
(255 bytes on the common ones, :func:`~stylebridge.core.io.name_limit`) and unique when
case-folded (``pixar`` and ``Pixar`` are one file on macOS and Windows disks; a run made on
Linux names its outputs as it would there)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable

from stylebridge.core.io import name_bytes

#: the longest label (in bytes) a name built from free text gets, as the web app's file stems
MAX_LABEL = 80


def capped_name(name: str, source: str | None = None, limit: int = MAX_LABEL) -> str:
    """``name`` when it has at most ``limit`` bytes, else its start, ``-`` and 10 hex digits
    of a digest of ``source`` (default ``name``: what it was made from, a whole prompt), so
    two long names that differ only after the cut stay apart."""
    if name_bytes(name) <= limit:
        return name
    digest = hashlib.sha256(os.fsencode(name if source is None else source)).hexdigest()[:10]
    cut = name
    while cut and name_bytes(cut) > limit - len(digest) - 1:
        cut = cut[:-1]
    return f"{cut}-{digest}"


def unique_name(name: str, taken: Iterable[str], reserved: Iterable[str] = ()) -> str:
    """``name``, or ``name-2``, ``name-3``... : the first that no name of ``taken`` or
    ``reserved`` equals case-folded."""
    used = {t.casefold() for t in (*taken, *reserved)}
    unique, k = name, 2
    while unique.casefold() in used:
        unique, k = f"{name}-{k}", k + 1
    return unique


__all__ = ["MAX_LABEL", "capped_name", "unique_name"]
