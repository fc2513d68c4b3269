"""A run of a few long units (``reproduce thesis-tables``' rows, ``analyze latents``'
encoders) resumed unit by unit: :class:`RowJournal`, in ``OUT/.stylebridge-run/rows.json``
(the batch commands' journal, in the same folder, is
:class:`stylebridge.pipelines.resume.Journal`, which re-exports this one)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stylebridge.core.io import (
    remove_folder,
    remove_stale_folders,
    remove_stale_temporaries,
    write_json,
)
from stylebridge.core.locks import OutputLock
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.output_holds import hold_out
from stylebridge.pipelines.run_settings import differs, how_changes

#: the journal's folder inside the output folder (hidden; removed when the run completes)
JOURNAL_DIR = ".stylebridge-run"
ROWS_FILE = "rows.json"
ROWS_FORMAT = 1


@dataclass
class RowJournal:
    """A run of a few long units (``reproduce thesis-tables``' rows, ``analyze latents``'
    encoders) resumed unit by unit, in ``OUT/.stylebridge-run/rows.json``.

    The finished rows of this run (``kept``: from an interrupted one, by row key, with the
    notes each added); :meth:`record` adds one, :meth:`finish` removes the journal."""

    path: Path
    settings: dict[str, Any]
    how: dict[str, Any] = field(default_factory=dict)
    kept: dict[str, tuple[dict[str, Any], list[str]]] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    _rows: list[dict[str, Any]] = field(default_factory=list)
    _hows: list[dict[str, Any]] = field(default_factory=list)  # of every part of the run
    _lock: OutputLock | None = field(default=None, repr=False, compare=False)

    @classmethod
    def open(cls, out: Path, settings: Mapping[str, Any], *, resume: bool,
             how: Mapping[str, Any] | None = None, unit: str = "row") -> RowJournal:
        """The journal in ``out``: with ``resume``, the interrupted run's rows (refused in
        one line when it was another run); without, a fresh one that replaces an old one at
        the first row.  ``how`` (``--batch``, ``--device``) may differ: said in a notice."""
        journal = cls(path=Path(out) / JOURNAL_DIR / ROWS_FILE, settings=dict(settings),
                      how=dict(how or {}),
                      _lock=hold_out(out, str(settings.get("command", "reproduce"))))
        remove_stale_folders(out, JOURNAL_DIR)
        if not journal.path.is_file():
            if resume:
                journal.notices.append(f"--resume: {out} holds no interrupted run; computing "
                                       f"every {unit}")
            return journal
        remove_stale_temporaries(out)  # a killed run's half-written files
        if not resume:
            journal.notices.append(f"{out} holds an interrupted run; starting over (--resume "
                                   "continues it)")
            return journal
        try:
            state = json.loads(journal.path.read_text(encoding="utf-8"))
            if state.get("format") != ROWS_FORMAT:
                raise ValueError(f"format {state.get('format')!r}")
            then, rows, how = state["settings"], list(state["rows"]), dict(state["how"])
            hows = [dict(h) for h in state.get("hows") or [how]]  # every part's
            kept = {r["row"]["key"]: (r["row"], list(r["notes"])) for r in rows}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StylebridgeError(f"--resume: the journal in {out} cannot be read ({exc}); run "
                                   "without --resume to start over") from None
        why = differs(then, journal.settings)
        if why is not None:
            raise StylebridgeError(f"--resume: {why}; give the options of the interrupted run "
                                   f"in {out}, or another --out to start a new run")
        journal.kept, journal._rows = kept, rows
        journal._hows = hows + ([journal.how] if journal.how not in hows else [])
        changed = how_changes(hows, journal.how)
        if changed and kept:
            journal.notices.append(f"--resume: {changed}: the remaining {unit}s agree with an "
                                   "uninterrupted run's within floating-point rounding, not "
                                   "bit for bit")
        return journal

    def record(self, row: Mapping[str, Any], notes: list[str]) -> None:
        """A finished row and the notes it added, saved at once (atomic)."""
        self._rows.append({"row": dict(row), "notes": list(notes)})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.path, {"format": ROWS_FORMAT, "settings": self.settings, "how": self.how,
                               "hows": self._hows or [self.how], "rows": self._rows})

    def finish(self) -> None:
        """The run is complete: remove the journal."""
        remove_folder(self.path.parent)
        if self._lock is not None:
            self._lock.release()


__all__ = ["JOURNAL_DIR", "ROWS_FILE", "ROWS_FORMAT", "RowJournal"]
