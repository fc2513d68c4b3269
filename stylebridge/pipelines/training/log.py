"""The append-only JSON-lines training log (``log.jsonl``).

A fresh run (not ``--resume``) starts a new log: :meth:`JsonlLog.set_aside` renames the log
an earlier run left in the folder (a diverged run, one killed before its first checkpoint)
to ``log.N.jsonl``, the first free ``N``, so that no record is lost and none is mixed into
the new run's log.  A resumed run keeps its log, trimmed to its checkpoint (:meth:`JsonlLog.trim`).
A log a kill or a full disk cut short mid-record is trimmed of that line; one that is not
(bytes that are not UTF-8, a line that is no record: another file written over it) is
refused by :meth:`JsonlLog.trim` in one line naming it, before anything is written.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from stylebridge.core.io import atomic_path
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.training.state import json_safe


def cut_short(line: str) -> bool:
    """Whether ``line`` is the start of a JSON object whose end is missing (a kill or a full
    disk mid-append; :meth:`JsonlLog.append` ends such a line before the next record): it
    opens with ``{`` and its brackets do not close; a file system's zero padding aside."""
    line = line.rstrip("\x00")
    depth, in_string, escaped = 0, False, False
    for ch in line:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth <= 0:  # closed (or never opened): a whole line, not a cut one
                return False
    return not line or line.startswith("{")


class JsonlLog:
    """One JSON record per line; a line cut short (full disk, kill) is ended before the
    next record so that it stays readable, and :meth:`trim` drops records of steps a
    resumed run is about to repeat."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def set_aside(self) -> Path | None:
        """Rename a non-empty log left by an earlier run to ``log.N.jsonl`` (the first free
        ``N`` from 1; a rename, so nothing is copied or lost) and return that path; ``None``
        when there is none (or it is no regular file, e.g. a link to a device)."""
        if not self.path.is_file() or not self.path.stat().st_size:
            return None
        stem, suffix = self.path.stem, self.path.suffix
        n = 1
        while True:
            aside = self.path.with_name(f"{stem}.{n}{suffix}")
            if not aside.exists() and not aside.is_symlink():
                break
            n += 1
        os.rename(self.path, aside)
        return aside

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Write ``{"time": ..., **record}`` (JSON-safe) and return it."""
        record = {"time": round(time.time(), 3), **json_safe(record)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        torn = False
        if self.path.is_file() and self.path.stat().st_size:
            with open(self.path, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                torn = fh.read(1) != b"\n"
        try:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(("\n" if torn else "") + json.dumps(record) + "\n")
        except OSError as exc:  # a full disk: name the log (a failed write has no file name)
            if exc.filename is not None:
                raise
            raise OSError(exc.errno, exc.strerror or str(exc), str(self.path)) from exc
        return record

    def records(self) -> list[dict[str, Any]]:
        """The log's records (lines a kill cut short left out); none without a log."""
        if not self.path.is_file():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                out.append(record)
        return out

    def trim(self, step: int) -> None:
        """Drop records of steps after ``step`` (and lines a kill cut short, :func:`cut_short`),
        atomically.  A log that is not one (a line that is not UTF-8, not a JSON record or
        whose ``step`` is no integer) is refused in one line naming it, left as it is."""
        if not self.path.is_file():
            return
        keep = []
        for n, raw in enumerate(self.path.read_bytes().split(b"\n"), 1):
            try:
                line = raw.decode("utf-8")
                record = json.loads(line) if line.strip() else None
            except UnicodeDecodeError:
                raise self._damaged(n, "is not UTF-8 text", step) from None
            except json.JSONDecodeError:
                if cut_short(line):
                    continue  # a line cut short by the kill
                raise self._damaged(n, "is not a JSON record", step) from None
            if record is None:
                continue
            at = record.get("step", 0) if isinstance(record, dict) else None
            if isinstance(at, bool) or not isinstance(at, int):
                raise self._damaged(n, "is not a record of a step", step)
            if at <= step:
                keep.append(line)
        with atomic_path(self.path) as tmp:
            tmp.write_text("".join(line + "\n" for line in keep), encoding="utf-8")

    def _damaged(self, n: int, what: str, step: int) -> StylebridgeError:
        return StylebridgeError(f"damaged training log: line {n} {what}; move the file aside "
                                f"and resume again (a new log then records the steps after "
                                f"step {step})", path=self.path)
