"""``reproduce thesis-tables --resume``: an interrupted run keeps the rows it finished.

A row (a way to get latents, × every domain × every CLIP model) is the unit of work: when
one is done, its values and the notes it added are written to ``OUT/.stylebridge-run/rows.json``
(atomically), with the run's settings.  ``--resume`` takes the finished rows from there and
computes the others; the tables then come out as an uninterrupted run writes them (every row
is computed from its own seeds and the photos, not from the rows before it).  The journal is
removed when the run completes.

The settings are the options that change a row's numbers (every option but ``--out``,
``--device`` and ``--batch``, and those read only when the tables are made from the rows:
``--quality-target``, ``--group-gap``, ``--group-gap-row``, ``--group-thresholds``,
:data:`TABLE_FIELDS`) and the *content* of every input file (sha256: photos,
domains, targets, generator, encoders, FeatureShift models, CLIP weights and configs), so
that the tiny preset, rebuilt by every run from its seed, is recognised, and a photo or a
checkpoint written again since is not.  Another run is refused in one line naming the option
or the file that differs, and so is a folder that holds another command's interrupted run
(``analyze latents`` and ``reproduce thesis-tables`` share the journal's name).

``--methods`` on the tiny preset: the recipes train the run's domains again in every run
(seconds), from the preset and ``--seed``, so a resumed run trains them again too; its
finished rows are kept when the domains it trained are the interrupted run's, file by file
(sha256, :data:`TRAINED`; bit for bit on the same machine, ``--device``, torch build and CPU
thread count).  Domains that come out otherwise are refused in one line naming the first one
that differs, and the CPU thread count when it differs too: a CPU run records it in the
journal's ``how`` (:data:`CPU_THREADS`, :func:`thread_how`), which may change on resume like
``--batch`` (the rows computed after it agree within floating-point rounding, said in a
notice).

The journal itself is :class:`~stylebridge.pipelines.resume.RowJournal` (``analyze latents``
keeps its encoders with it too, through :func:`open_rows`); this module builds the settings
it compares.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from stylebridge.core.batch import expand_inputs
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.resume import JOURNAL_DIR, ROWS_FILE, RowJournal, differs
from stylebridge.pipelines.training.state import cpu_threads, threads_said

#: options that do not change a number (``--resume`` may change them)
HOW_FIELDS = ("out", "device", "batch", "resume")
#: options read only when the tables are made from the finished rows: a resumed run may
#: change them (not compared on ``--resume``; ``--group-gap`` is also absent from the
#: journals written before it)
TABLE_FIELDS = ("group_gap", "group_gap_row", "group_thresholds", "quality_target")
#: the command a journal belongs to (a setting of its own)
COMMAND_KEY = "command"
#: the setting that holds the domains the ``--methods`` recipes trained (by content)
TRAINED = "domains trained by the --methods recipes"
#: the ``how`` entry of a CPU run's torch thread count: training and scoring on the CPU
#: round otherwise with another count (:func:`thread_how`)
CPU_THREADS = "CPU threads"
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
        if f.name in HOW_FIELDS or f.name in TABLE_FIELDS:
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


def thread_how(device: torch.device | str) -> dict[str, int]:
    """The ``how`` entry of a run on the CPU: ``{CPU_THREADS: torch's thread count}`` (empty
    on another device).  It may change on resume (the journal then says that the remaining
    rows agree within rounding); :func:`check_resume` names it when the ``--methods`` recipes
    trained other domains than the interrupted run."""
    n = cpu_threads(device)
    return {} if n is None else {CPU_THREADS: n}


def trained_identity(domains: Iterable[Any]) -> list[dict[str, Any]]:
    """:data:`TRAINED`: each domain a recipe trained (``name``, ``path``), by content."""
    return [{"name": d.name, **content_identity(Path(d.path))} for d in domains]


def _journal(out: Path) -> dict[str, Any]:
    """The journal of the interrupted run in ``out`` (empty: none, or unreadable:
    :meth:`RowJournal.open` says so)."""
    try:
        state = json.loads((Path(out) / JOURNAL_DIR / ROWS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _recorded(out: Path) -> dict[str, Any] | None:
    """The settings of the interrupted run in ``out`` (``None``: none, or unreadable)."""
    settings = _journal(out).get("settings")
    return settings if isinstance(settings, dict) else None


def _recorded_threads(out: Path) -> list[Any]:
    """The CPU thread count of each part of the interrupted run in ``out``, first part first
    (``None`` for a part on another device, or of an earlier stylebridge)."""
    state = _journal(out)
    hows = state.get("hows") or [state.get("how")]
    return [h.get(CPU_THREADS) if isinstance(h, dict) else None for h in hows]


def check_resume(out: Path, command: str, settings: dict[str, Any], *, resume: bool,
                 threads: int | None = None) -> None:
    """Before the long work: refuse, in one line, a ``--resume`` of a folder whose interrupted
    run is another command's, or had other options or input files (everything but
    :data:`TRAINED`, which :func:`open_rows` compares once the recipes have trained; when
    they trained other domains, the refusal names the CPU thread count the interrupted run
    trained with if it is not ``threads``, this run's)."""
    if not resume:
        return
    then = _recorded(out)
    if then is None:
        return
    other = then.get(COMMAND_KEY)
    if other != command:
        what = f"an interrupted {other} run" if isinstance(other, str) else \
            "an interrupted run of an earlier stylebridge or of another command"
        raise StylebridgeError(f"--resume: {out} holds {what}, not this command's "
                               f"({command}); run without --resume to start over, or give "
                               "another --out")
    now = {COMMAND_KEY: command, **settings}
    why = differs({k: v for k, v in then.items() if k != TRAINED},
                  {k: v for k, v in now.items() if k != TRAINED})
    if why is not None:
        raise StylebridgeError(f"--resume: {why}; give the options of the interrupted run in "
                               f"{out}, or another --out to start a new run")
    if TRAINED in settings and then.get(TRAINED) != settings[TRAINED]:
        old = {d.get("name"): d.get("sha256") for d in then.get(TRAINED) or []}
        new = {d["name"]: d["sha256"] for d in settings[TRAINED]}
        name = next((n for n in dict.fromkeys([*new, *old]) if old.get(n) != new.get(n)), "?")
        counts = _recorded_threads(out)
        if threads is not None and isinstance(counts[0], int) and threads not in counts:
            raise StylebridgeError(
                f"--resume: the --methods recipes trained other domains than the interrupted "
                f"run in {out} ({name} differs; they were trained with "
                f"{threads_said(counts[0])}, this run has {threads}): set "
                f"OMP_NUM_THREADS={counts[0]} to resume, or run without --resume")
        raise StylebridgeError(
            f"--resume: the --methods recipes trained other domains than the interrupted run "
            f"in {out} ({name} differs; training repeats bit for bit only on the same machine, "
            "--device, torch build and CPU thread count); run without --resume to compute "
            "every row")


def _unrecorded_threads(out: Path) -> bool:
    """Whether a part of the interrupted run in ``out`` ran on the CPU without recording its
    thread count (an earlier stylebridge's journal: its count is unknown, not "none")."""
    state = _journal(out)
    hows = state.get("hows") or [state.get("how")]
    return any(isinstance(h, dict) and CPU_THREADS not in h
               and str(h.get("--device", "")).startswith("cpu") for h in hows)


def open_rows(out: Path, command: str, settings: dict[str, Any], *, resume: bool,
              how: dict[str, Any], unit: str) -> RowJournal:
    """The row journal of ``command`` in ``out`` (:func:`check_resume`, then
    :meth:`RowJournal.open`); its settings record the command.  ``how`` may hold this run's
    CPU thread count (:func:`thread_how`).  A CPU part of the interrupted run that did not
    record its count (an earlier stylebridge) is not compared as "none": when rows are kept,
    a notice says the count was not recorded and the remaining rows are not necessarily bit
    for bit an uninterrupted run's."""
    threads = (how or {}).get(CPU_THREADS)
    check_resume(out, command, settings, resume=resume, threads=threads)
    unknown = resume and threads is not None and _unrecorded_threads(out)
    journal = RowJournal.open(out, {COMMAND_KEY: command, **settings}, resume=resume,
                              how={k: v for k, v in (how or {}).items()
                                   if not (unknown and k == CPU_THREADS)}, unit=unit)
    if unknown:
        journal.how[CPU_THREADS] = threads   # recorded from this part on
        if journal.kept and not journal.notices:   # other changes: said already, not bit for bit
            journal.notices.append(
                f"--resume: {CPU_THREADS} {threads} (not recorded by the earlier stylebridge "
                f"that began the run): the remaining {unit}s agree with an uninterrupted "
                "run's within floating-point rounding, not necessarily bit for bit")
    return journal


__all__ = ["COMMAND_KEY", "CPU_THREADS", "HOW_FIELDS", "ROWS_FILE", "TRAINED", "RowJournal",
           "check_resume", "content_identity", "open_rows", "run_settings", "thread_how",
           "trained_identity"]
