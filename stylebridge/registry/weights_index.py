"""The weights index (``index.json``) read without trusting hand edits, and the checks of
``stylebridge weights verify`` on what each entry records.

An entry is ``{"raw": PATH, "converted": PATH | null, "sha256": HEX, ...}`` (written by
:meth:`~stylebridge.registry.weights.WeightsManager._install`). One that is not (a number, a
``raw`` that is not a path, no ``raw`` at all) is reported on its own, naming ``index.json``
and the entry; the other entries stay usable.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stylebridge.registry.weights_files import converted_problem, sha256_file

if TYPE_CHECKING:
    from stylebridge.registry.weights import WeightsManager

#: entry fields that must be a non-empty string when present (``raw`` must be present)
_PATHS = ("raw", "converted")
_TEXT = ("sha256", "source", "kind", "plugin", "licence")


def _shown(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def record_problem(record: Any) -> str | None:
    """Why an ``index.json`` entry cannot be used, or None."""
    if not isinstance(record, dict):
        return f"is {_shown(record)}, not an object"
    if "raw" not in record:
        return "has no 'raw' path (the installed upstream file)"
    for key in _PATHS:
        value = record.get(key)
        if key in record and value is not None and not (isinstance(value, str) and value):
            return f"has {key!r} {_shown(value)}, expected a file path"
    if not record["raw"]:
        return "has no 'raw' path (the installed upstream file)"
    for key in _TEXT:
        value = record.get(key)
        if value is not None and not isinstance(value, str):
            return f"has {key!r} {_shown(value)}, expected a string"
    domains = record.get("domains")
    if domains is not None and not isinstance(domains, list):
        return f"has 'domains' {_shown(domains)}, expected a list of names"
    return None


def entry_message(index_path: Path, name: str, problem: str) -> str:
    """The one line that names ``index.json``, the entry and the way out."""
    return (f"{index_path}: entry {name!r} {problem}; fix or delete that entry, then install "
            f"it again (`stylebridge weights fetch {name}` or `weights register {name} "
            "--from FILE`)")


def check_record(name: str, record: dict[str, Any], *, entry: Any, how: str,
                 downloads: Path, rehash: bool = True) -> str:
    """``ok``, or every problem of an installed entry with its fix, on one line: the upstream
    file there and (``rehash``) matching the published or recorded sha256; the converted file
    (what is loaded) there, complete and with a readable stylebridge header."""
    if entry is None:
        return ("not in the catalogue of this stylebridge (nothing loads it); delete it from "
                "index.json")
    problems: list[str] = []
    raw = Path(record["raw"])
    raw_ok = raw.is_file()
    if not raw_ok:
        problems.append(f"missing file {raw} (the upstream file); {how}")
    elif rehash:
        digest = sha256_file(raw)
        expected = (entry.sha256 or record.get("sha256") or "").lower()
        if not expected:
            problems.append(f"no sha256 recorded for {raw}; register it again")
        elif digest != expected:
            fix = (f"delete it and run `stylebridge weights fetch {name}`"
                   if entry.all_sources and raw.parent == downloads else how)
            problems.append(f"sha256 mismatch ({digest[:16]}… in {raw}, expected "
                            f"{expected[:16]}…); {fix}")
            raw_ok = False
    converted = record.get("converted")
    if converted:
        problem = converted_problem(Path(converted))
        if problem is not None:
            link = "" if raw.parent == downloads else " --link"
            fix = (f"convert it again with `stylebridge weights register {name} --from {raw}"
                   f"{link}`" if raw_ok else "the same fixes it")
            problems.append(f"converted file {converted} {problem}; {fix}")
    return "; ".join(problems) or "ok"


def verify(manager: WeightsManager, names: Sequence[str] | None = None, *,
           rehash: bool = True) -> dict[str, str]:
    """``{name: "ok" | every problem with its fix}`` for the installed entries (default:
    all of ``index.json``): the upstream file re-hashed (``rehash``), the converted file
    there and loadable (header and size); an unusable index entry is its problem."""
    out: dict[str, str] = {}
    index, problems = manager.index(), manager.index_problems()
    for name in names or ():
        if name not in index and name not in problems:
            manager.entry(name)  # an unknown name: did you mean ...?
    if not names:  # downloads that no entry records: a fetch failed after the download
        for entry in manager.entries.values():
            left = manager.home / "downloads" / entry.filename
            if entry.name not in index and entry.name not in problems and left.is_file():
                out[entry.name] = (f"{left} is downloaded but not installed; run "
                                   f"`stylebridge weights fetch {entry.name}` (it checks "
                                   "the file again) or delete it")
    for name in names or sorted({*index, *problems}):
        record = index.get(name)
        if name in problems:
            out[name] = problems[name]
        elif record is None:
            out[name] = f"not installed; {manager.how_to_install(manager.entry(name))}"
        else:
            entry = manager.entries.get(name)
            how = manager.how_to_install(entry) if entry is not None else ""
            out[name] = check_record(name, record, entry=entry, how=how,
                                     downloads=manager.home / "downloads", rehash=rehash)
    return out
