"""The resume journal of ``stylebridge eval`` (:mod:`stylebridge.pipelines.evaluate`).

An evaluation that writes ``--json``/``--csv`` keeps a journal beside the first of them
(``.stylebridge-run-F/``, :mod:`stylebridge.pipelines.resume`): the pairs scored or skipped
so far, their rows and every metric's state.  Its inputs (``inputs.json``, written once) are
the pairs with their files' size and modification time, so that a ``--resume`` after a file
changed names that file.  A ``--resume`` of another run is refused in one line that says what
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
        drawn=drawn)
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
        raise StylebridgeError(f"--resume: {_changed_file(then_rows, inputs)}; give the "
                               f"files of the interrupted evaluation, or {HOW_TO_GO_ON}")


def _pair_rows(then_inputs: Any) -> dict[str, list[Any]] | None:
    """The interrupted run's pairs (:func:`_inputs`) by prediction path; ``None`` when its
    journal lists them in another form (an earlier stylebridge's: the paths alone)."""
    try:
        rows = {str(row[1]): row for row in map(json.loads, then_inputs)}
    except (TypeError, ValueError, IndexError, KeyError):
        return None
    return rows if all(isinstance(r, list) and len(r) == 5 for r in rows.values()) else None


def _changed_file(then_rows: dict[str, list[Any]], inputs: list[str]) -> str:
    """What differs between the interrupted run's pairs (:func:`_pair_rows`) and this run's
    (:func:`_inputs`), naming the first file concerned."""
    now = [json.loads(line) for line in inputs]
    now_preds = {row[1] for row in now}
    added = [row[1] for row in now if row[1] not in then_rows]
    gone = [p for p in then_rows if p not in now_preds]
    for word, paths in (("a new prediction", added), ("a prediction gone", gone)):
        if paths:
            more = f" (and {len(paths) - 1} more)" if len(paths) > 1 else ""
            return f"the interrupted evaluation had other --pred files: {word}, {paths[0]}{more}"
    for row in now:
        old = then_rows[row[1]]
        if old[2] != row[2]:
            return f"--pred {row[1]} has changed since the interrupted evaluation"
        if old[3] != row[3]:
            return (f"the prediction {row[1]} was paired with --target {old[3]}, now with "
                    f"{row[3]}")
        if old[4] != row[4]:
            return f"--target {row[3]} has changed since the interrupted evaluation"
    return "the --pred/--target pairs are in another order than the interrupted evaluation's"


__all__ = ["FILES_SETTING", "RANDOM_SETTING", "journal_folder", "open_journal",
           "weights_digest"]
