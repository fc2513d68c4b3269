"""The resume journal of ``stylebridge eval`` (:mod:`stylebridge.pipelines.evaluate`).

An evaluation that writes ``--json``/``--csv`` keeps a journal beside the first of them
(``.stylebridge-run-F/``, :mod:`stylebridge.pipelines.resume`): the pairs scored or skipped
so far, their rows and every metric's state.  Its inputs (``inputs.json``, written once) are
the pairs with their files' absolute path, size and modification time, so that a
``--resume`` after a file changed names that file, and one given the same files spelled
otherwise (an absolute path, ``../``, from another folder) continues the run
(:func:`pair_key`; :mod:`stylebridge.pipelines.resume_paths`).  A ``--resume`` of another run is refused in one line that says what
differs and how to go on (the same options, or a run without ``--resume``; eval has no
``--out``).

A metric on random weights (``allow_random=true``) resumes when the resumed run holds the same
weights, checked by a digest of its tensors (:mod:`stylebridge.pipelines.metric_weights`, as
``adapt``/``invert`` do); one whose weights differ is refused naming it, and one that holds no
tensor is refused as before.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from stylebridge.core.batch import BatchReport
from stylebridge.core.interfaces import Metric
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.metric_weights import (
    METRIC_SETTINGS,
    RANDOM_SETTING,
    check_metric_settings,
    metric_setting,
    weights_digest,
)
from stylebridge.pipelines.resume import (
    INPUTS_FILE,
    JOURNAL_DIR,
    STATE_FILE,
    Journal,
    differs,
    file_identity,
)
from stylebridge.pipelines.resume_paths import file_key, shown

if TYPE_CHECKING:
    from stylebridge.pipelines.evaluate import EvalConfig

Pair = tuple[str, Path, Path | None]

#: the setting that stands for the pairs' files (their digest)
FILES_SETTING = "--pred/--target files"
#: how a refused resume ends: eval names its report with --json/--csv, not --out
HOW_TO_GO_ON = ("run without --resume to start over (another --json/--csv keeps the "
                "interrupted run's journal)")


def _report_file(config: EvalConfig) -> Path | None:
    """The first of ``json``/``csv`` that is a file (standard output keeps nothing)."""
    from stylebridge.core.io import STREAMS

    return next((p for p in (config.json, config.csv) if p is not None
                 and str(p) not in STREAMS), None)


def journal_folder(config: EvalConfig) -> Path | None:
    """Where an evaluation that writes ``json``/``csv`` to a file keeps its resume journal."""
    dst = _report_file(config)
    return None if dst is None else dst.parent / f"{JOURNAL_DIR}-{dst.name}"


def _inputs(pairs: Sequence[Pair]) -> list[str]:
    """The journal's inputs: one JSON line per pair, ``[stem, pred, its identity, target, its
    identity]`` (:func:`~stylebridge.pipelines.resume.file_identity`: path, size, mtime)."""
    return [json.dumps([stem, str(p), file_identity(p), None if t is None else str(t),
                        file_identity(t)]) for stem, p, t in pairs]


def _file_of(spelled: Any, identity: Any) -> str:
    """The absolute path of one file of a pair (its identity's, else as read from here)."""
    if isinstance(identity, dict) and identity.get("path"):
        return file_key(identity["path"])
    return "" if spelled is None else file_key(spelled)


def pair_key(line: str) -> str:
    """What names a pair of the journal (:func:`_inputs`) however its paths are spelled: its
    name and its files' absolute paths."""
    stem, pred, pred_id, target, target_id = json.loads(line)
    return json.dumps([stem, _file_of(pred, pred_id),
                       None if target is None else _file_of(target, target_id)])


def pair_paths(line: str) -> list[str | None]:
    """A pair's paths as given: its prediction's and its target's."""
    row = json.loads(line)
    return [row[1], row[3]]


def open_journal(config: EvalConfig, pairs: Sequence[Pair], metrics: list[Metric],
                 device: torch.device, report: BatchReport) -> Journal | None:
    """The resume journal of an evaluation that writes ``json``/``csv`` (beside the first of
    them): the pairs scored so far, their rows and every metric's state.  ``None`` without
    an output file (``resume`` then refused)."""
    dst = _report_file(config)
    if dst is None:
        if config.resume:
            raise StylebridgeError("--resume continues the evaluation that writes --json or "
                                   "--csv to a file: give the same one (standard output keeps "
                                   "nothing to continue from)")
        return None
    if config.resume:
        stateless = [m.name for m in metrics if m.state() is None]
        if stateless:
            raise StylebridgeError(f"--resume: metric {stateless[0]} keeps no state to continue "
                                   "from (it needs every image at once); run without --resume")
    identities = json.dumps([[stem, file_identity(p), file_identity(t)]
                             for stem, p, t in pairs])
    settings: dict[str, Any] = {
        "--metric": list(config.metrics), "--size": config.size,
        "--domain-text": config.domain_text, "--suffix": config.suffix,
        FILES_SETTING: hashlib.sha256(identities.encode()).hexdigest()}
    # a random metric resumes when it holds the same weights (its digest), one that read
    # files when they are the same; a random one without a tensor to compare cannot be
    # checked: its resume is refused (`drawn`)
    random_setting, drawn = metric_setting(config.metrics, [metrics])
    settings.update(random_setting)
    folder = journal_folder(config)
    assert folder is not None
    inputs = _inputs(pairs)
    if config.resume:
        _check_same_run(folder, settings, inputs)
    journal = Journal.open(
        dst.parent, "eval", name=dst.name, unit="pair", inputs=inputs,
        metrics={"eval": metrics}, resume=config.resume,
        how={"--batch": config.batch, "--device": str(device)}, settings=settings,
        drawn=drawn, key_of=pair_key, paths_of=pair_paths)
    journal.adopt(report)  # the interrupted run's outcomes first, this run's pairing after
    return journal


def _check_same_run(folder: Path, settings: dict[str, Any], inputs: list[str]) -> None:
    """Refuse, in eval's words, the resume of another evaluation: another option (the
    first that differs) or other files (the first new, gone or changed file, named).  A
    journal that cannot be read, or of another command, is left to :meth:`Journal.open`."""
    try:
        state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        then = dict(state["settings"]) if state.get("command") == "eval" else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return
    if then is None:
        return
    own = (FILES_SETTING, *METRIC_SETTINGS)
    options = {k: v for k, v in settings.items() if k not in own}
    why = differs({k: v for k, v in then.items() if k not in own}, options)
    if why is not None:
        raise StylebridgeError(f"--resume: {why}; give the options of the interrupted "
                               f"evaluation (its journal: {folder}), or {HOW_TO_GO_ON}")
    check_metric_settings(then, settings, run="evaluation", go_on=HOW_TO_GO_ON)
    try:
        then_inputs = json.loads((folder / INPUTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if then_inputs != inputs:
        then_rows = _pair_rows(then_inputs)
        if then_rows is None:   # no files to give: this version cannot continue it
            raise StylebridgeError("--resume: the interrupted evaluation's journal lists its "
                                   "pairs in another form (an earlier stylebridge wrote it), "
                                   f"which this version cannot continue; {HOW_TO_GO_ON}")
        change = _changed_file(then_rows, inputs)
        if change is not None:  # None: the same files, spelled otherwise
            raise StylebridgeError(f"--resume: {change}; give the files of the interrupted "
                                   f"evaluation, or {HOW_TO_GO_ON}")


def _pair_rows(then_inputs: Any) -> dict[str, list[Any]] | None:
    """The interrupted run's pairs (:func:`_inputs`) by the prediction's absolute path;
    ``None`` when its journal lists them in another form (an earlier stylebridge's: the
    paths alone)."""
    try:
        rows = [json.loads(line) for line in then_inputs]
        if not all(isinstance(r, list) and len(r) == 5 for r in rows):
            return None
        return {_file_of(row[1], row[2]): row for row in rows}
    except (TypeError, ValueError, IndexError, KeyError, AttributeError):
        return None


def _changed_file(then_rows: dict[str, list[Any]], inputs: list[str]) -> str | None:
    """What differs between the interrupted run's pairs (:func:`_pair_rows`) and this run's
    (:func:`_inputs`), compared by the files they name, naming the first file concerned as
    given then and now where that differs (``None``: the same pairs in the same order)."""
    now = {_file_of(row[1], row[2]): row for row in map(json.loads, inputs)}
    added = [(row[1], key) for key, row in now.items() if key not in then_rows]
    gone = [(row[1], key) for key, row in then_rows.items() if key not in now]
    for word, paths in (("a new prediction", added), ("a prediction gone", gone)):
        if paths:
            more = f" (and {len(paths) - 1} more)" if len(paths) > 1 else ""
            return (f"the interrupted evaluation had other --pred files: {word}, "
                    f"{shown(*paths[0])}{more}")
    for key, row in now.items():
        old = then_rows[key]
        if old[2] != row[2]:
            return f"--pred {shown(row[1], key)} has changed since the interrupted evaluation"
        then_target, now_target = (None if r[3] is None else _file_of(r[3], r[4])
                                   for r in (old, row))
        if then_target != now_target:
            return (f"the prediction {row[1]} was paired with --target "
                    f"{shown(old[3], then_target or '')}, now with "
                    f"{shown(row[3], now_target or '')}")
        if old[4] != row[4]:
            return (f"--target {shown(row[3], now_target or '')} has changed since the "
                    "interrupted evaluation")
    if list(now) != list(then_rows):
        return "the --pred/--target pairs are in another order than the interrupted evaluation's"
    return None


__all__ = ["FILES_SETTING", "RANDOM_SETTING", "journal_folder", "open_journal", "pair_key",
           "pair_paths", "weights_digest"]
