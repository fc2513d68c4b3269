"""The resume journal of ``stylebridge eval`` (:mod:`stylebridge.pipelines.evaluate`).

An evaluation that writes ``--json``/``--csv`` keeps a journal beside the first of them
(``.stylebridge-run-F/``, :mod:`stylebridge.pipelines.resume`): the pairs scored or skipped
so far, their rows and every metric's state.  Its inputs (``inputs.json``, written once) are
the pairs with their files' size and modification time, so that a ``--resume`` after a file
changed names that file.  A ``--resume`` of another run is refused in one line that says what
differs and how to go on (the same options, or a run without ``--resume``; eval has no
``--out``).

A metric on random weights (``allow_random=true``) resumes when the resumed run holds the same
weights: every metric is built under a torch seed of its spec (``lpips``, ``clip_*`` and ``fid``
seed their networks themselves), so the same spec draws the same network and the resumed
numbers are an uninterrupted run's.  That is checked, not assumed: the journal keeps a digest of
the tensors each random metric holds (:func:`weights_digest`), and a resume whose metric holds
others (a plugin that draws from NumPy's or Python's random numbers, another torch) is refused
naming the metric.  A random metric that holds no tensor cannot be checked: its resume is
refused as before.
"""

from __future__ import annotations

import hashlib
import json
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from stylebridge.core.batch import BatchReport
from stylebridge.core.interfaces import Metric
from stylebridge.errors import StylebridgeError
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
#: the setting that holds the digest of each random metric's tensors, by its spec
RANDOM_SETTING = "--metric random weights"
#: how far into a metric's attributes :func:`weights_digest` looks for tensors (the CLIP
#: metrics hold theirs in ``metric.clip.model``)
DIGEST_DEPTH = 3
#: what :func:`weights_digest` never looks into: plain values, and modules, classes and
#: functions (a metric's reference to a library is not its weights)
_NOT_HOLDERS = (str, bytes, int, float, bool, Path, torch.device, types.ModuleType, type,
                types.FunctionType, types.MethodType, types.BuiltinFunctionType)
#: how a refused resume ends: eval names its report with --json/--csv, not --out
HOW_TO_GO_ON = ("run without --resume to start over (another --json/--csv keeps the "
                "interrupted run's journal)")


def journal_folder(config: EvalConfig) -> Path | None:
    """Where an evaluation that writes ``json``/``csv`` keeps its resume journal."""
    dst = config.json or config.csv
    return None if dst is None else dst.parent / f"{JOURNAL_DIR}-{dst.name}"


def _inputs(pairs: Sequence[Pair]) -> list[str]:
    """The journal's inputs: one JSON line per pair, ``[stem, pred, its identity, target, its
    identity]`` (:func:`~stylebridge.pipelines.resume.file_identity`: path, size, mtime)."""
    return [json.dumps([stem, str(p), file_identity(p), None if t is None else str(t),
                        file_identity(t)]) for stem, p, t in pairs]


def weights_digest(metric: Metric) -> str | None:
    """sha256 of the tensors ``metric`` holds, on the CPU: the parameters and buffers of its
    modules and its tensors and numeric arrays, found among its attributes (and theirs, down
    to :data:`DIGEST_DEPTH` levels, through lists, tuples and dicts), each with the attribute
    path that reaches it.  ``None`` when it holds none.  Called on a fresh metric (reset, before
    any state is loaded), so that it covers what the metric was built with."""
    digest = hashlib.sha256()
    seen: dict[int, Any] = {}  # id -> object, held so that no id is reused during the walk
    found = 0

    def add(where: str, data: Any, dtype: str, shape: tuple[int, ...]) -> None:
        nonlocal found
        digest.update(json.dumps([where, dtype, list(shape)]).encode())
        digest.update(data)
        found += 1

    def add_tensor(where: str, tensor: Tensor) -> None:
        try:
            flat = tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8)
        except (RuntimeError, TypeError, NotImplementedError):  # sparse, quantised, meta
            add(where, repr(tensor).encode(), str(tensor.dtype), tuple(tensor.shape))
        else:
            add(where, flat.numpy(), str(tensor.dtype), tuple(tensor.shape))

    def visit(obj: Any, where: str, depth: int) -> None:
        if isinstance(obj, Tensor):
            add_tensor(where, obj)
            return
        if isinstance(obj, _NOT_HOLDERS) or obj is None or id(obj) in seen:
            return
        seen[id(obj)] = obj
        if isinstance(obj, torch.nn.Module):
            for key, tensor in obj.state_dict(keep_vars=True).items():
                add_tensor(f"{where}.{key}", tensor)
        elif isinstance(obj, np.ndarray):
            if obj.dtype.kind in "biufc":
                add(where, np.ascontiguousarray(obj).view(np.uint8), str(obj.dtype), obj.shape)
        elif depth > 0:
            items: Any = (obj.items() if isinstance(obj, Mapping)
                          else enumerate(obj) if isinstance(obj, list | tuple)
                          else vars(obj).items() if hasattr(obj, "__dict__") else ())
            for key, value in items:
                visit(value, f"{where}.{key}", depth - 1)

    visit(metric, type(metric).__name__, DIGEST_DEPTH)
    return digest.hexdigest() if found else None


def open_journal(config: EvalConfig, pairs: Sequence[Pair], metrics: list[Metric],
                 device: torch.device, report: BatchReport) -> Journal | None:
    """The resume journal of an evaluation that writes ``json``/``csv`` (beside the first of
    them): the pairs scored so far, their rows and every metric's state.  ``None`` without
    an output file (``resume`` then refused)."""
    dst = config.json or config.csv
    if dst is None:
        if config.resume:
            raise StylebridgeError("--resume continues the evaluation that writes --json or "
                                   "--csv: give the same one")
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
    # a random metric resumes when it holds the same weights (its digest); one without a
    # tensor to compare cannot be checked: its resume is refused (`drawn`)
    digests = {spec: weights_digest(m) for spec, m in zip(config.metrics, metrics, strict=True)
               if m.random_weights}
    if digests:
        settings[RANDOM_SETTING] = {k: v for k, v in digests.items() if v is not None}
    folder = journal_folder(config)
    assert folder is not None
    inputs = _inputs(pairs)
    if config.resume:
        _check_same_run(folder, settings, inputs)
    journal = Journal.open(
        dst.parent, "eval", name=dst.name, unit="pair", inputs=inputs,
        metrics={"eval": metrics}, resume=config.resume,
        how={"--batch": config.batch, "--device": str(device)}, settings=settings,
        drawn=[f"--metric {spec}" for spec, d in digests.items() if d is None])
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
    own = (FILES_SETTING, RANDOM_SETTING)
    options = {k: v for k, v in settings.items() if k not in own}
    why = differs({k: v for k, v in then.items() if k not in own}, options)
    if why is not None:
        raise StylebridgeError(f"--resume: {why}; give the options of the interrupted "
                               f"evaluation (its journal: {folder}), or {HOW_TO_GO_ON}")
    then_digests = then.get(RANDOM_SETTING)
    for spec, digest in dict(settings.get(RANDOM_SETTING) or {}).items():
        if not isinstance(then_digests, dict):
            raise StylebridgeError(
                f"--resume: --metric {spec} runs on random weights, and the interrupted "
                "evaluation's journal (an earlier stylebridge) cannot say whether they were the "
                f"same; {HOW_TO_GO_ON}")
        if then_digests.get(spec) != digest:
            raise StylebridgeError(
                f"--resume: --metric {spec} runs on random weights that differ from the "
                "interrupted evaluation's (not drawn from its spec's seed alone: NumPy's or "
                "Python's random numbers, another device, another torch or package), so the "
                f"kept values are of another network; {HOW_TO_GO_ON}")
    try:
        then_inputs = json.loads((folder / INPUTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if then_inputs != inputs:
        raise StylebridgeError(f"--resume: {_changed_file(then_inputs, inputs)}; give the "
                               f"files of the interrupted evaluation, or {HOW_TO_GO_ON}")


def _changed_file(then_inputs: Any, inputs: list[str]) -> str:
    """What differs between the interrupted run's pairs and this run's (:func:`_inputs`),
    naming the first file concerned."""
    try:
        then_rows = {str(row[1]): row for row in map(json.loads, then_inputs)}
    except (TypeError, ValueError, IndexError, KeyError):
        return ("the interrupted evaluation's journal lists its pairs in another form (an "
                "earlier stylebridge)")
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
