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
or the file that differs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stylebridge.core.batch import expand_inputs
from stylebridge.core.io import write_json
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.resume import JOURNAL_DIR, differs

ROWS_FILE = "rows.json"
FORMAT = 1
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


@dataclass
class RowJournal:
    """The finished rows of this run (``kept``: from an interrupted one, by row key, with the
    notes each added); :meth:`record` adds one, :meth:`finish` removes the journal."""

    path: Path
    settings: dict[str, Any]
    how: dict[str, Any] = field(default_factory=dict)
    kept: dict[str, tuple[dict[str, Any], list[str]]] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    _rows: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def open(cls, out: Path, settings: Mapping[str, Any], *, resume: bool,
             how: Mapping[str, Any] | None = None) -> RowJournal:
        """The journal in ``out``: with ``resume``, the interrupted run's rows (refused in
        one line when it was another run); without, a fresh one that replaces an old one at
        the first row.  ``how`` (``--batch``, ``--device``) may differ: said in a notice."""
        journal = cls(path=Path(out) / JOURNAL_DIR / ROWS_FILE, settings=dict(settings),
                      how=dict(how or {}))
        if not journal.path.is_file():
            if resume:
                journal.notices.append(f"--resume: {out} holds no interrupted run; computing "
                                       "every row")
            return journal
        if not resume:
            journal.notices.append(f"{out} holds an interrupted run; starting over (--resume "
                                   "continues it)")
            return journal
        try:
            state = json.loads(journal.path.read_text(encoding="utf-8"))
            if state.get("format") != FORMAT:
                raise ValueError(f"format {state.get('format')!r}")
            then, rows, how = state["settings"], list(state["rows"]), dict(state["how"])
            kept = {r["row"]["key"]: (r["row"], list(r["notes"])) for r in rows}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StylebridgeError(f"--resume: the journal in {out} cannot be read ({exc}); run "
                                   "without --resume to start over") from None
        why = differs(then, journal.settings)
        if why is not None:
            raise StylebridgeError(f"--resume: {why}; give the options of the interrupted run "
                                   f"in {out}, or another --out to start a new run")
        journal.kept, journal._rows = kept, rows
        changed = [k for k in journal.how if how.get(k) != journal.how[k]]
        if changed and kept:
            journal.notices.append(
                "--resume: " + ", ".join(f"{k} {journal.how[k]} (was {how.get(k)})"
                                         for k in changed)
                + ": the remaining rows agree with an uninterrupted run's within floating-point "
                "rounding, not bit for bit")
        return journal

    def record(self, row: Mapping[str, Any], notes: list[str]) -> None:
        """A finished row and the notes it added, saved at once (atomic)."""
        self._rows.append({"row": dict(row), "notes": list(notes)})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.path, {"format": FORMAT, "settings": self.settings, "how": self.how,
                               "rows": self._rows})

    def finish(self) -> None:
        """The run is complete: remove the journal."""
        shutil.rmtree(self.path.parent, ignore_errors=True)


__all__ = ["HOW_FIELDS", "ROWS_FILE", "RowJournal", "content_identity", "run_settings"]
