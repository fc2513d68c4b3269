"""``reproduce thesis-tables --resume``: an interrupted run keeps the rows it finished.

A row (a way to get latents, × every domain × every CLIP model) is the unit of work: when
one is done, its values and the notes it added are written to ``OUT/.stylebridge-run/rows.json``
(atomically), with the run's settings.  ``--resume`` takes the finished rows from there and
computes the others; the tables then come out as an uninterrupted run writes them (every row
is computed from its own seeds and the photos, not from the rows before it).  The journal is
removed when the run completes.

The settings are the options that change a number (every option but ``--out``,
``--device`` and ``--batch``) and the *content* of every input file (sha256: photos,
domains, targets, generator, encoders, FeatureShift models, CLIP weights and configs), so
that the tiny preset, rebuilt by every run from its seed, is recognised, and a photo or a
checkpoint written again since is not.  Another run is refused in one line naming the option
or the file that differs.  The journal itself is
:class:`~stylebridge.pipelines.resume.RowJournal` (``analyze latents`` keeps its encoders
with it too); this module builds the settings it compares.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from stylebridge.core.batch import expand_inputs
from stylebridge.pipelines.resume import ROWS_FILE, RowJournal

#: options that do not change a number (``--resume`` may change them)
HOW_FIELDS = ("out", "device", "batch", "resume")
_CHUNK = 1 << 20


def content_identity(path: Path) -> dict[str, Any]:
    """``{"path", "sha256"}`` of a file (what it holds, whenever it was written).  A
    safetensors header is hashed with its keys sorted: the library writes several metadata
    entries in a different order each time (the tiny preset's CLIP files)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        if path.suffix == ".safetensors":
            digest.update(_sorted_header(fh))
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return {"path": str(path), "sha256": digest.hexdigest()}


def _sorted_header(fh: Any) -> bytes:
    """The safetensors header of ``fh`` with sorted keys, the file left after it (or, when
    it is no safetensors header, nothing read)."""
    head = fh.read(8)
    if len(head) == 8:
        size = int.from_bytes(head, "little")
        if 0 < size <= 100_000_000:
            try:
                header = json.loads(fh.read(size))
                return json.dumps(header, sort_keys=True).encode()
            except ValueError:
                pass
    fh.seek(0)
    return b""


def _files(items: Iterable[Any]) -> list[dict[str, Any]]:
    """The identities of the files among ``items`` (strings, paths, ``NAME=PATH``, spec
    ``NAME:PATH``), folders expanded to their files; other values are compared as text."""
    out: list[dict[str, Any]] = []
    for item in items:
        text = str(item)
        candidates = [text, text.partition("=")[2], text.partition(":")[2]]
        path = next((Path(c) for c in candidates if c and Path(c).exists()), None)
        if path is None:
            out.append({"spec": text})
        elif path.is_dir():
            out += [content_identity(p) for p in sorted(path.rglob("*")) if p.is_file()]
        else:
            out.append(content_identity(path))
    return out


def run_settings(config: Any) -> dict[str, Any]:
    """What a resumed run must share with the interrupted one: every field of ``config`` (a
    :class:`~stylebridge.pipelines.reproduce.tables.ThesisTablesConfig`, after the preset is
    applied) but :data:`HOW_FIELDS`, input files by content."""
    files = ("images", "domains", "targets", "generator", "e4e", "fse", "featureshift_e4e",
             "featureshift_fse", "clip_weights", "clip_config")
    options: dict[str, Any] = {}
    inputs: dict[str, Any] = {}  # after the options: a changed --seed is named as such
    for f in dataclasses.fields(config):
        value, option = getattr(config, f.name), f"--{f.name.replace('_', '-')}"
        if f.name in HOW_FIELDS:
            continue
        if f.name == "images":
            inputs[option] = [content_identity(p) for p in expand_inputs(value or [])
                              if p.is_file()]
        elif f.name in files:
            items = value if isinstance(value, list | tuple) else [] if value is None else [value]
            inputs[option] = _files(items)
        else:
            options[option] = list(value) if isinstance(value, tuple) else value
    return {**options, **inputs}


__all__ = ["HOW_FIELDS", "ROWS_FILE", "RowJournal", "content_identity", "run_settings"]
