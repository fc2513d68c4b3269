"""How a resumed batch run (:mod:`stylebridge.pipelines.resume`) tells its inputs from the
interrupted run's by *which files* they are, not by how their paths are spelled.

A journal lists its inputs as the interrupted run was given them (``photos/a.png``, relative
to the folder it ran in) and, for files, each one's :func:`~stylebridge.core.io.file_identity`
(its absolute path, links resolved).  A resume given the same files otherwise
(``/home/me/photos/a.png``, ``../me/photos``, from another folder) compares those absolute
paths (:func:`file_key`): the same files in the same order continue the run, and a
:class:`Respelling` translates the journal's paths into this run's spelling as they are read
(the reports then name the photos as this run was given them, as an uninterrupted run of it
would) and back as they are written (the journal keeps one spelling, whatever the number of
resumes).  Other files are refused naming the first new and the first gone one
(:func:`input_change`), with both spellings where they differ.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

#: record keys whose strings are never paths of inputs: output names, metric values, what
#: the journal keeps of the files written (:mod:`.kept_outputs`)
_NOT_PATHS = frozenset({"files", "values", "written"})


def file_key(path: str | Path) -> str:
    """What names one file however its path is spelled: the absolute path, links resolved
    (a path that cannot be resolved, as :func:`os.path.abspath` gives it)."""
    try:
        return str(Path(path).resolve())
    except (OSError, RuntimeError, ValueError):  # a link loop, a NUL byte
        return os.path.abspath(path)


def _keys(spelled: Sequence[str], identities: Sequence[Any] | None) -> list[str]:
    """Each input's key: the absolute path of a file (its recorded
    :func:`~stylebridge.core.io.file_identity`'s, else as read from here), the input as it
    is for anything else (a seed, a file that was not there)."""
    if identities is None:
        return [file_key(s) if os.path.isfile(s) else s for s in spelled]
    return [str(i["path"]) if isinstance(i, Mapping) and i.get("path")
            and i.get("size") is not None else s
            for s, i in zip(spelled, identities, strict=True)]


def shown(spelled: str, key: str) -> str:
    """A path as a refusal shows it: as given, and the file it names when that reads
    otherwise (``photos/a.png (/home/me/photos/a.png)``)."""
    return spelled if not key or key == spelled else f"{spelled} ({key})"


def input_keys(then: Sequence[str], now: Sequence[str],
               key_of: Callable[[str], str] | None = None,
               then_identities: Sequence[Any] | None = None,
               now_identities: Sequence[Any] | None = None) -> tuple[list[str], list[str]]:
    """What names each input of the interrupted run (``then``) and of this one (``now``)
    whatever its spelling: ``key_of`` of each (``eval``'s pairs), else, for files (this
    run's ``now_identities`` given), their absolute paths: where the interrupted run found
    them (``then_identities``, its ``identities.json``), or for a journal without them (an
    earlier stylebridge's) each path as read from here; inputs that are no files (seeds) as
    they are."""
    if key_of is not None:
        return [key_of(x) for x in then], [key_of(x) for x in now]
    if now_identities is None:
        return list(then), list(now)
    recorded = isinstance(then_identities, list) and len(then_identities) == len(then)
    return (_keys(then, then_identities if recorded else None),
            _keys(now, now_identities))


def input_change(then: Sequence[str], then_keys: Sequence[str], now: Sequence[str],
                 now_keys: Sequence[str],
                 paths_of: Callable[[str], Sequence[str | None]] | None = None) -> str:
    """What differs between the interrupted run's inputs and this run's, compared by key
    (:func:`input_keys`): ``; new: A; gone: B``, each the first of its kind and shown with
    the file it names where that reads otherwise (:func:`shown`; an input that is no path
    by its first path, ``paths_of``), or ``; in another order``; empty when they are the
    same in the same order.  Linear: each list is hashed once, each key looked up once."""
    if len(then_keys) == len(now_keys) and list(then_keys) == list(now_keys):
        return ""
    then_set, now_set = set(then_keys), set(now_keys)
    parts = []
    for word, spelled, keys, other in (("new", now, now_keys, then_set),
                                       ("gone", then, then_keys, now_set)):
        found = [i for i, k in enumerate(keys) if k not in other]
        if found:
            first = found[0]
            text = (shown(spelled[first], keys[first]) if paths_of is None
                    else str(paths_of(spelled[first])[0]))
            parts.append(f"{word}: {text}" + (", ..." if len(found) > 1 else ""))
    return "".join(f"; {p}" for p in parts) if parts else "; in another order"


class Respelling:
    """This run's spelling of the interrupted run's paths (:meth:`now`) and back
    (:meth:`then`): pairs of spellings of one file, grouped per input (an ``eval`` pair: its
    prediction and its target), and each folder's spelling for files that are no input
    (``eval``'s unpaired targets), read off the inputs' paths."""

    def __init__(self, groups: Iterable[Sequence[tuple[str, str]]]) -> None:
        self._to_now: dict[str, list[tuple[str, str]]] = {}
        self._to_then: dict[str, list[tuple[str, str]]] = {}
        folders: dict[str, set[str]] = {}
        for group in groups:
            pairs = [(a, b) for a, b in group if a is not None and b is not None]
            for a, b in pairs:
                self._to_now.setdefault(a, pairs)
                self._to_then.setdefault(b, [(y, x) for x, y in pairs])
                pa, pb = Path(a), Path(b)
                if pa.name == pb.name:
                    folders.setdefault(str(pa.parent), set()).add(str(pb.parent))
        self._folders = {a: next(iter(b)) for a, b in folders.items() if len(b) == 1}
        self._folders_back = {b: a for a, b in self._folders.items()}

    @classmethod
    def of(cls, then: Sequence[str], now: Sequence[str],
           paths_of: Callable[[str], Sequence[str | None]] | None = None) -> Respelling | None:
        """The respelling of the same inputs, ``then`` as the journal lists them, ``now`` as
        this run does (``paths_of``: the paths of an input that is no path); ``None`` when
        every path is spelled alike."""
        split = paths_of or (lambda line: [line])
        spelling = cls(list(zip(split(a), split(b), strict=True))  # every input: one
                       for a, b in zip(then, now, strict=True))       # spelled alike stays
        return spelling if spelling.changed else None

    @property
    def changed(self) -> bool:
        """Whether any path is spelled otherwise."""
        return any(a != b for group in self._to_now.values() for a, b in group)

    def now(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """A journal log line (``{"done": PATH, "record": ...}`` or ``{"skipped": PATH,
        "reason": ...}``) in this run's spelling."""
        return self._event(event, self._to_now, self._folders)

    def then(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """A log line of this run in the journal's spelling."""
        return self._event(event, self._to_then, self._folders_back)

    @staticmethod
    def _path(path: str, pairs: Mapping[str, list[tuple[str, str]]],
              folders: Mapping[str, str]) -> tuple[str, list[tuple[str, str]]]:
        group = pairs.get(path)
        if group is not None:
            return dict(group)[path], group
        folder = folders.get(str(Path(path).parent))
        if folder is None:
            return path, []
        other = str(Path(folder) / Path(path).name)
        return other, [(path, other)]

    def _event(self, event: Mapping[str, Any], pairs: Mapping[str, list[tuple[str, str]]],
               folders: Mapping[str, str]) -> dict[str, Any]:
        key = "done" if "done" in event else "skipped"
        path, group = self._path(str(event[key]), pairs, folders)
        group = [(a, b) for a, b in group if a != b]
        if not group:
            return dict(event)
        return {k: path if k == key else _respelled(v, group) for k, v in event.items()}


def _respelled(value: Any, group: Sequence[tuple[str, str]]) -> Any:
    """``value`` (a reason, a record) with each path of ``group`` spelled the other way: a
    string that is one exactly, or names one in a sentence (delimited by spaces, brackets or
    punctuation); output names and metric values (:data:`_NOT_PATHS`) are left alone."""
    if isinstance(value, str):
        for a, b in group:
            if value == a:
                return b
        for a, b in group:
            if a in value:
                value = re.sub(rf"(?<![^\s(\[])({re.escape(a)})(?=$|[\s,;:)\]])",
                               lambda _m, b=b: b, value)
        return value
    if isinstance(value, Mapping):
        return {k: v if k in _NOT_PATHS else _respelled(v, group) for k, v in value.items()}
    if isinstance(value, list):
        return [_respelled(v, group) for v in value]
    return value


__all__ = ["Respelling", "file_key", "input_change", "input_keys", "shown"]
