"""Which weights and files a run's metrics hold, so that ``--resume`` can check them.

A metric on random weights (``allow_random=true``) is built under a torch seed of its spec
(:func:`~stylebridge.pipelines.evaluate.build_metrics`; ``lpips``, ``clip_*`` and ``fid`` seed
their networks themselves), so the same spec draws the same network and a resumed run's
numbers are an uninterrupted run's.  That is checked, not assumed: a journal
(:mod:`stylebridge.pipelines.resume`, ``eval``'s :mod:`stylebridge.pipelines.eval_journal`)
keeps a digest of the tensors each random metric holds (:func:`weights_digest`) under
:data:`RANDOM_SETTING`, and a resume whose metric holds others (a plugin that draws from
NumPy's or Python's random numbers, another torch) is refused naming the metric
(:func:`check_random_weights`).  A random metric that holds no tensor cannot be checked: it is
listed as drawn anew (:func:`metric_setting`), and its resume is refused.

A metric that read files when it was built (:meth:`~stylebridge.core.interfaces.Metric.files`:
``lpips``'s backbone, a CLIP checkpoint, ``clip_quality``'s reference image, FID's Inception
weights and cached statistics, ArcFace's weights) has them recorded as checkpoints are (path,
size, modification time) under :data:`METRIC_FILES_SETTING`; a resume that finds one
replaced is refused naming the metric and the file (:func:`check_metric_settings`).
"""

from __future__ import annotations

import hashlib
import json
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from stylebridge.core.interfaces import Metric
from stylebridge.core.io import file_identity
from stylebridge.errors import StylebridgeError

#: the setting that holds the digest of each random metric's tensors, by its spec
RANDOM_SETTING = "--metric random weights"
#: the setting that holds the identity of the files each metric read, by its spec
METRIC_FILES_SETTING = "--metric files"
#: the settings a journal compares with :func:`check_metric_settings`, not as options
METRIC_SETTINGS = (RANDOM_SETTING, METRIC_FILES_SETTING)
#: how far into a metric's attributes :func:`weights_digest` looks for tensors (the CLIP
#: metrics hold theirs in ``metric.clip.model``)
DIGEST_DEPTH = 3
#: what :func:`weights_digest` never looks into: plain values, and modules, classes and
#: functions (a metric's reference to a library is not its weights)
_NOT_HOLDERS = (str, bytes, int, float, bool, Path, torch.device, types.ModuleType, type,
                types.FunctionType, types.MethodType, types.BuiltinFunctionType)


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


def metric_setting(specs: Sequence[str], groups: Sequence[Sequence[Metric]]
                   ) -> tuple[dict[str, Any], list[str]]:
    """What a journal's settings add about the metrics of ``specs``, built once per group
    (``eval``: one group; ``adapt``/``invert``: one per output, as in
    :data:`~stylebridge.pipelines.resume.OutputMetrics`): ``(setting, drawn)``.

    ``setting`` holds ``{RANDOM_SETTING: {spec: digest}}`` for the metrics on random weights
    (the digest is :func:`weights_digest`, of every group's instance when they differ) and
    ``{METRIC_FILES_SETTING: {spec: {what: identity}}}`` for those that read files
    (:meth:`~stylebridge.core.interfaces.Metric.files`, each as
    :func:`~stylebridge.core.io.file_identity`); either is left out when empty.  ``drawn``
    names, as ``--metric SPEC``, the random metrics that hold no tensor to compare: their
    resume is refused."""
    digests: dict[str, str] = {}
    files: dict[str, dict[str, Any]] = {}
    drawn: list[str] = []
    for i, spec in enumerate(specs):
        metrics = [group[i] for group in groups if i < len(group)]
        if not metrics:
            continue
        read = {what: file_identity(path) for what, path in sorted(metrics[0].files().items())}
        if read:
            files[spec] = read
        if not metrics[0].random_weights:
            continue
        found = [weights_digest(m) for m in metrics]
        if any(d is None for d in found):
            drawn.append(f"--metric {spec}")
        elif len(set(found)) == 1:
            digests[spec] = str(found[0])
        else:
            digests[spec] = hashlib.sha256("\n".join(map(str, found)).encode()).hexdigest()
    setting: dict[str, Any] = {RANDOM_SETTING: digests} if digests or drawn else {}
    if files:
        setting[METRIC_FILES_SETTING] = files
    return setting, drawn


def check_metric_settings(then: Mapping[str, Any], now: Mapping[str, Any], *, run: str,
                          go_on: str) -> None:
    """Refuse, in one line, the resume of a run whose metrics read other files
    (:data:`METRIC_FILES_SETTING`: one replaced, moved or given anew) or held other random
    weights (:func:`check_random_weights`) than this run's.  A journal of an earlier stylebridge
    that recorded no files is not refused for them (it cannot say which were read)."""
    then_files = then.get(METRIC_FILES_SETTING)
    now_files = dict(now.get(METRIC_FILES_SETTING) or {})
    if isinstance(then_files, Mapping):
        for spec in dict.fromkeys([*then_files, *now_files]):
            a, b = then_files.get(spec) or {}, now_files.get(spec) or {}
            for what in dict.fromkeys([*a, *b]):
                if a.get(what) == b.get(what):
                    continue
                old, new = (x.get(what) or {} for x in (a, b))
                if old.get("path") and old.get("path") == new.get("path"):
                    why = f"its {what} file {new['path']} has changed since the interrupted {run}"
                else:
                    why = (f"its {what} file differs ({old.get('path') or 'none'} then, "
                           f"{new.get('path') or 'none'} now)")
                raise StylebridgeError(f"--resume: --metric {spec}: {why}, so the kept values "
                                       f"were measured with another file; {go_on}")
    check_random_weights(then, now, run=run, go_on=go_on)


def check_random_weights(then: Mapping[str, Any], now: Mapping[str, Any], *, run: str,
                         go_on: str) -> None:
    """Refuse, in one line naming the ``--metric``, the resume of a run whose random metrics
    held other weights than this run's: ``then``/``now`` are the two runs' settings (their
    :data:`RANDOM_SETTING`); ``run`` names the interrupted run (``"run"``, ``"evaluation"``),
    ``go_on`` ends the line (how to go on)."""
    then_digests = then.get(RANDOM_SETTING)
    now_digests = dict(now.get(RANDOM_SETTING) or {})
    for spec, digest in now_digests.items():
        if not isinstance(then_digests, Mapping):
            raise StylebridgeError(
                f"--resume: --metric {spec} runs on random weights, and the interrupted {run}'s "
                f"journal (an earlier stylebridge) cannot say whether they were the same; {go_on}")
        if then_digests.get(spec) != digest:
            raise StylebridgeError(
                f"--resume: --metric {spec} runs on random weights that differ from the "
                f"interrupted {run}'s (not drawn from its spec's seed alone: NumPy's or "
                "Python's random numbers, another device, another torch or package), so the "
                f"kept values are of another network; {go_on}")
    for spec in dict(then_digests) if isinstance(then_digests, Mapping) else {}:
        if spec not in now_digests:
            raise StylebridgeError(
                f"--resume: --metric {spec} ran on random weights in the interrupted {run}, "
                f"not now, so the kept values are of another network; {go_on}")


__all__ = ["DIGEST_DEPTH", "METRIC_FILES_SETTING", "METRIC_SETTINGS", "RANDOM_SETTING",
           "check_metric_settings", "check_random_weights", "metric_setting", "weights_digest"]
