"""How :meth:`~stylebridge.registry.weights.WeightsManager.fetch` gets an entry's upstream file:
its sources tried in order, a partial download resumed by the source that wrote it.

A download goes to ``downloads/<file>.part`` (or ``<archive>.part`` for a source that ships
the file inside an archive) with ``<part>.source`` naming the source that wrote it. A
source whose partial file is there is tried first and resumes it. Another source sets that
partial aside (``<part>.held``) rather than deleting it, and puts it back unless it actually
started writing the file: a source that cannot reach its server, refuses (quota, HTTP error)
or answers with a page leaves the partial for the next run. The file is checked (size,
sha256, what it is: :func:`~stylebridge.registry.weights_checks.check_file`) before it is
renamed into place; a bad one is discarded, so the next fetch downloads it again.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stylebridge.registry import sources
from stylebridge.registry.weights_checks import WeightsError

if TYPE_CHECKING:
    from stylebridge.registry.weights import WeightsEntry, WeightsManager

Progress = Callable[[int, int | None], None]
#: the files that belong to a partial download: the bytes, the source that wrote them, and
#: (Google Drive) the confirmed URL it resumes from
COMPANIONS = ("", ".source", ".confirm")
HELD = ".held"


def part_of(source: Mapping[str, Any], raw: Path) -> Path | None:
    """Where ``source`` writes its partial download (None: an archive member, extracted)."""
    if source.get("type") == "archive":
        return None
    target = raw.parent / str(source["archive"]) if source.get("member") else raw
    return target.with_name(target.name + ".part")


def _group(part: Path, tag: str = "") -> list[Path]:
    return [part.with_name(part.name + tag + suffix) for suffix in COMPANIONS]


def _move_group(part: Path, src_tag: str, dst_tag: str) -> None:
    for src, dst in zip(_group(part, src_tag), _group(part, dst_tag), strict=True):
        if src.exists():
            os.replace(src, dst)
        else:
            dst.unlink(missing_ok=True)


def _drop_group(part: Path, tag: str = "") -> None:
    for path in _group(part, tag):
        path.unlink(missing_ok=True)


def _owner(part: Path, tag: str = "") -> str | None:
    marker = part.with_name(part.name + tag + ".source")
    try:
        return marker.read_text()
    except OSError:
        return None


def _recover(part: Path) -> None:
    """A partial set aside by a process that died before it decided: back in place, unless
    a newer partial is there."""
    held = part.with_name(part.name + HELD)
    if not held.is_file():
        return
    if part.is_file() and part.stat().st_size > 0:
        _drop_group(part, HELD)
    else:
        _move_group(part, HELD, "")


def resumable(source: Mapping[str, Any], raw: Path) -> int:
    """Bytes of a partial download that ``source`` wrote and can resume (0: none)."""
    part = part_of(source, raw)
    if part is None:
        return 0
    _recover(part)
    if part.is_file() and _owner(part) == sources.describe(source):
        return part.stat().st_size
    return 0


def download(manager: WeightsManager, entry: WeightsEntry, raw: Path, *,
             progress: Progress | None, timeout: float, accept_licence: bool,
             recorded: str | None, replace_hint: str = "") -> str:
    """Try each source (one with a partial download of its own first); returns the source
    that delivered the file, as :func:`~stylebridge.registry.sources.served_by` names it."""
    failures: list[str] = []
    unreachable: list[str] = []
    listed = entry.all_sources
    ordered = sorted(listed, key=lambda src: 0 if resumable(src, raw) else 1)
    for source in ordered:
        try:
            _from_source(manager, entry, source, raw, progress=progress, timeout=timeout,
                         accept_licence=accept_licence, recorded=recorded,
                         replace_hint=replace_hint)
            return sources.served_by(source)
        except (sources.SourceError, WeightsError) as exc:
            if isinstance(exc, sources.UnreachableError):
                unreachable.append(exc.host)
            failures.append(f"{sources.describe(source)}: {exc}" if len(listed) > 1
                            else str(exc))
    if unreachable and len(unreachable) == len(failures):  # offline: one short line
        raise WeightsError(f"download of {entry.name} failed: no server could be reached "
                           f"({', '.join(dict.fromkeys(unreachable))}); check the network "
                           "connection, or install a copy you have with `stylebridge "
                           f"weights register {entry.name} --from FILE`")
    if len(failures) == 1 and failures[0].startswith("download of "):
        raise WeightsError(failures[0])  # the archive it lives in failed: say that once
    raise WeightsError(f"download of {entry.name} failed: {'; '.join(failures)}")


def _from_source(manager: WeightsManager, entry: WeightsEntry, source: Mapping[str, Any],
                 raw: Path, *, progress: Progress | None, timeout: float, accept_licence: bool,
                 recorded: str | None, replace_hint: str) -> None:
    raw.parent.mkdir(parents=True, exist_ok=True)
    kind = source.get("type")
    if kind == "archive":  # a member of another entry's archive
        parent = manager.entry(str(source["entry"]))
        archive = manager.raw_file(parent.name)
        if archive is None:
            archive = manager.fetch(parent.name, progress=progress, timeout=timeout,
                                    accept_licence=accept_licence)
        part = raw.with_name(raw.name + ".part")
        sources.extract_member(archive, part, member=source.get("member"),
                               styledomain=source.get("select"))
    else:
        member = source.get("member")
        part = part_of(source, raw)
        assert part is not None
        _fill(entry, source, part, progress=progress, timeout=timeout,
              expected=None if member else entry.size)
        if member:
            target = part.with_name(part.name.removesuffix(".part"))
            os.replace(part, target)
            part = raw.with_name(raw.name + ".part")
            try:
                sources.extract_member(target, part, member=str(member))
            finally:
                target.unlink(missing_ok=True)
    manager.check(entry, part, discard=True, recorded=recorded, replace_hint=replace_hint)
    os.replace(part, raw)


def _fill(entry: WeightsEntry, source: Mapping[str, Any], part: Path, *,
          progress: Progress | None, timeout: float, expected: int | None) -> None:
    """Download (or resume) ``source`` into ``part``. Another source's partial file is set
    aside and put back unless this source wrote at least one byte."""
    here = sources.describe(source)
    _recover(part)
    held = part.is_file() and _owner(part) != here
    if held:
        _move_group(part, "", HELD)
    marker = part.with_name(part.name + ".source")
    marker.write_text(here)
    kind = source.get("type")
    try:
        if kind == "url":
            sources.http_download(str(source["url"]), part, progress=progress,
                                  timeout=timeout, expected=expected)
        elif kind == "gdrive":
            sources.gdrive_download(str(source["id"]), part, progress=progress, timeout=timeout)
        elif kind == "hf":
            sources.hf_download(source, part, timeout=timeout)
        else:
            raise WeightsError(f"{entry.name}: unknown source type {kind!r} in the manifest")
    finally:
        started = part.is_file() and part.stat().st_size > 0
        if not started:  # nothing of this source's to resume: the other partial goes back
            _drop_group(part)
            if held:
                _move_group(part, HELD, "")
        elif held:  # this source's bytes replace the other partial
            _drop_group(part, HELD)
    marker.unlink(missing_ok=True)
