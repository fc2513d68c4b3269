"""The non-commercial licences of the checkpoints a run loads, said once, on one line each.

A checkpoint's header says its licence: ``extra.weights`` (entry, licence, ``noncommercial``)
when the weights manager installed it, ``extra.licence`` as its converter wrote it.
:meth:`~stylebridge.registry.registry.Registry.load` notes every loaded plugin checkpoint whose
licence forbids commercial use (FSE, StyleRes, e4e/pSp with their NVIDIA decoder, StyleDomain's
domains); the command line prints them with the random-weight notices
(``stylebridge.cli.options.print_random_notices``), together with the generator's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: words that mark a licence text as non-commercial (NVIDIA's "License-NC", FSE's evaluation
#: licence)
_NONCOMMERCIAL = re.compile(r"non-?commercial|license-nc\b|evaluation", re.IGNORECASE)

_LOADED: dict[str, str] = {}  # resolved path → its notice, in load order


def noncommercial_notice(path: str | Path, extra: Mapping[str, Any]) -> str | None:
    """``licence of NAME (FILE): LICENCE`` when the header ``extra`` of ``path`` says its
    weights are for non-commercial use only, else None."""
    weights = extra.get("weights")
    weights = weights if isinstance(weights, Mapping) else {}
    licence = weights.get("licence") or extra.get("licence")
    if not isinstance(licence, str) or not licence.strip():
        return None
    flagged = weights.get("noncommercial") is True or bool(_NONCOMMERCIAL.search(licence))
    if not flagged:
        return None
    text = " ".join(licence.split()).removeprefix("licence: ")
    text = text.removesuffix("; the converted file keeps it")  # converters' notes
    if not _NONCOMMERCIAL.search(text):
        text += " (non-commercial use only)"
    name = weights.get("name")
    what = f"{name} ({Path(path).name})" if isinstance(name, str) and name else Path(path).name
    return f"licence of {what}: {text}"


def note_loaded(path: str | Path, extra: Mapping[str, Any]) -> None:
    """Remember the notice of a checkpoint just loaded (once per file)."""
    notice = noncommercial_notice(path, extra)
    if notice is not None:
        _LOADED.setdefault(str(Path(path).resolve()), notice)


def take_loaded() -> list[str]:
    """The notices noted since the last call, each once; the record starts afresh."""
    notices = list(dict.fromkeys(_LOADED.values()))
    _LOADED.clear()
    return notices
