"""Exact resume: optimiser and RNG state as tensors + JSON, file digests, JSON helpers.

A training state file is a stylebridge checkpoint (written atomically by
:func:`stylebridge.core.checkpoint.save_checkpoint`): tensors for everything that is a
tensor, JSON in the header for the rest.  These helpers turn the pieces of a run into
that form and back, so that a resumed run continues bit for bit on the same machine,
stylebridge version, ``--device``, torch build and CPU thread count (:func:`cpu_threads`: a
run resumed with another count is said to continue within floating-point rounding,
:func:`thread_notice`; one resumed by other stylebridge or torch versions than the state
records, or of a state that records none, not necessarily bit for bit,
:func:`resume_notice`).  They also
build what a domain checkpoint records of its run (:func:`train_config_record`).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import random
import re
import string
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy
import torch
from torch import Tensor

from stylebridge.core.checkpoint import check_state_dict
from stylebridge.errors import CheckpointError


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def json_roundtrip(data: Any) -> Any:
    """``data`` as it reads back from JSON (sorted keys, tuples → lists)."""
    return json.loads(json.dumps(data, sort_keys=True))


def json_safe(obj: Any) -> Any:
    """Tensors → numbers/lists, keys → strings, anything else unknown → ``str``."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, Tensor):
        return obj.item() if obj.numel() == 1 else obj.tolist()
    if isinstance(obj, float | int | str | bool) or obj is None:
        return obj
    return str(obj)


# -- what a domain checkpoint records of its run (``train_config``) --------------------------

#: config fields that say how a run was started, not what it trains: left out of a domain
#: checkpoint's ``train_config``, as ``train featureshift`` leaves out ``resume`` and ``device``
#: (``TrainConfig.INVOCATION``); a resumed run may use another device
INVOCATION_FIELDS = frozenset({"out", "resume", "force", "device", "tensorboard"})
#: the config fields of the domain trainers that name files (paths or specs): recorded with
#: their paths absolute; the others (a prompt) as given
FILE_FIELDS = frozenset({"generator", "method", "encoder", "image", "reference", "prompts",
                         "clip_weights", "losses", "lpips_backbone"})


def absolute_spec(value: Any) -> Any:
    """``value`` with the path of an existing file or folder in it made absolute: a path, a
    ``MODEL=PATH`` item, a spec ``NAME:PATH[:k=v,...]`` or an option's path in a spec
    (``lpips:0.8:backbone=alex.pth``); lists item by item; anything else (a plugin name, a
    prompt, a number) as given."""
    if isinstance(value, list | tuple):
        return [absolute_spec(v) for v in value]
    if isinstance(value, Path):
        return os.path.abspath(value)
    if not isinstance(value, str) or not value:
        return value
    if Path(value).exists():
        return os.path.abspath(value)

    def item(text: str) -> str:  # PATH, or KEY=PATH
        key, eq, rest = text.rpartition("=") if "=" in text else ("", "", text)
        return f"{key}{eq}{os.path.abspath(rest)}" if rest and Path(rest).exists() else text

    return ":".join(",".join(item(i) for i in part.split(",")) for part in value.split(":"))


def train_config_record(config: Any, settings: Any, **resolved: Any) -> dict[str, Any]:
    """A domain run's ``train_config``, what its checkpoint header records so that the run
    can be repeated from the checkpoint alone (``stylebridge info DOMAIN`` shows it): every
    field of the pipeline's ``config`` dataclass but :data:`INVOCATION_FIELDS`; over them
    every field of ``settings`` (the trainer's ``TrainSettings``: the defaults an unset option
    left open as applied, the frozen layers as style-layer indices, betas, warm-up, sample
    settings); then ``resolved`` (the sha256s of the generator and CLIP files, what a default
    resolved to).  The file paths of :data:`FILE_FIELDS` absolute (:func:`absolute_spec`);
    JSON-safe."""
    data = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
            if f.name not in INVOCATION_FIELDS}
    data.update(dataclasses.asdict(settings))
    data.update(resolved)
    return json_safe({k: absolute_spec(v) if k in FILE_FIELDS else v for k, v in data.items()})


# -- CPU threads -----------------------------------------------------------------------------


def cpu_threads(device: torch.device | str) -> int | None:
    """torch's intra-op thread count on a CPU run (``None`` on another device).  A CPU run's
    numbers depend on it (a sum split over another number of threads rounds otherwise):
    the training states record it, and a resume with another count says so."""
    return torch.get_num_threads() if torch.device(device).type == "cpu" else None


def threads_said(n: int) -> str:
    """``1 CPU thread`` / ``2 CPU threads``."""
    return f"{n} CPU thread" + ("" if n == 1 else "s")


def thread_notice(saved: Any, device: torch.device | str) -> tuple[str, str] | None:
    """The ``notice`` event (text, detail) of a CPU run resumed with another thread count
    than its state recorded (``saved``); ``None`` when the same, not recorded (a state of an
    earlier stylebridge, or of a run on a GPU), or this run is not on the CPU."""
    now = cpu_threads(device)
    if not isinstance(saved, int) or isinstance(saved, bool) or now is None or saved == now:
        return None
    return (f"resuming with {threads_said(now)} (the run had {saved})",
            ": it continues within floating-point rounding of an uninterrupted run, "
            "not bit for bit")


# -- the versions a state was written with --------------------------------------------------


def software_versions() -> dict[str, str]:
    """``{"stylebridge": ..., "torch": ...}``: what every training state records (``software``)
    of the versions that wrote it; a resume by others says so (:func:`resume_notice`)."""
    from stylebridge import __version__

    return {"stylebridge": __version__, "torch": str(torch.__version__)}


#: what a resume of a state written by other versions says after its first words
VERSION_DETAIL = (": it continues, but not necessarily bit for bit as an uninterrupted run "
                  "(a run repeats bit for bit only with the same stylebridge, torch build, "
                  "--device and CPU thread count)")


def version_words(saved: Any) -> str | None:
    """How :func:`resume_notice` names the versions of a state whose ``software`` is
    ``saved``; ``None`` when they are this run's."""
    now = software_versions()
    if not isinstance(saved, Mapping) or not saved.get("stylebridge"):
        return "of an earlier stylebridge (it records no version)"
    if saved.get("stylebridge") != now["stylebridge"]:
        return (f"written by stylebridge {saved['stylebridge']} (this is stylebridge "
                f"{now['stylebridge']})")
    if saved.get("torch") != now["torch"]:
        return f"written with torch {saved.get('torch')} (this run has torch {now['torch']})"
    return None


def resume_notice(extra: Mapping[str, Any], device: torch.device | str
                  ) -> tuple[str, str] | None:
    """The one ``notice`` event (text, detail) of a resumed run whose state (header ``extra``)
    was written by other versions (``software``; none recorded: an earlier stylebridge) or,
    on the CPU, with another thread count (:func:`thread_notice`); ``None``: neither."""
    threads = thread_notice(extra.get("cpu_threads"), device)
    words = version_words(extra.get("software"))
    if words is None:
        return threads
    if threads is not None:
        words += f", {threads[0].removeprefix('resuming ')}"
    return f"resuming a state {words}", VERSION_DETAIL


# -- what a resumed run compares -------------------------------------------------------------

#: a differing value longer than this (as JSON) is narrowed to the member that differs
SHOWN_CHARS = 100
_ABSENT = object()


def _short_digests(value: Any) -> Any:
    """``value`` with each sha256 (64 hex digits) cut to its first 12 and an ellipsis."""
    if isinstance(value, str) and len(value) == 64 and all(c in string.hexdigits for c in value):
        return value[:12] + "…"
    if isinstance(value, dict):
        return {k: _short_digests(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_short_digests(v) for v in value]
    return value


def _shown(value: Any) -> str:
    if value is _ABSENT:
        return "(none)"
    text = json.dumps(_short_digests(value), sort_keys=True, default=str, ensure_ascii=False)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 1] + "…"


def _long(value: Any) -> bool:
    return isinstance(value, dict | list) and len(json.dumps(value, default=str)) > SHOWN_CHARS


def then_and_now(option: str, was: str, now: str) -> str:
    """How every trainer's ``--resume`` refusal shows the setting that differs: ``--lr 0.001
    then, 0.002 now`` (``option``: the command-line option, or the setting's name where none
    gives it; the values as shown)."""
    return f"{option} {was} then, {now} now"


def first_difference(then: Mapping[str, Any], now: Mapping[str, Any], *,
                     last: Iterable[str] = (),
                     canonical: Callable[[str, Any], Any] | None = None,
                     narrowed: Collection[str] = (),
                     ) -> tuple[str, str, str] | None:
    """The first setting whose values differ, as ``(name, old, new)`` shown in short JSON
    (``None``: all the same).  Keys come in ``now``'s order, then ``then``'s, with ``last``
    (settings derived from the others, e.g. a method's config) at the end.  A value too long
    to read whole, or one ``narrowed`` names (by its path: ``target``, ``method.config``), is
    narrowed to its first differing member: ``method.config.width``, ``prompts[2]``.
    ``canonical(key, value)`` (per top-level key) is what is compared: equal readings
    (``mse:1`` and ``mse:1.0``) are the same; a list keeps its length."""
    last = [k for k in last if k in then or k in now]
    keys = [k for k in dict.fromkeys([*now, *then]) if k not in last] + last
    for key in keys:
        a, b = then.get(key, _ABSENT), now.get(key, _ABSENT)
        ca, cb = (a, b) if canonical is None else (canonical(key, a), canonical(key, b))
        if ca == cb:
            continue
        name = key
        while _long(a) or _long(b) or name in narrowed:
            if isinstance(a, dict) and isinstance(b, dict):
                sub = next(k for k in dict.fromkeys([*b, *a])
                           if ca.get(k, _ABSENT) != cb.get(k, _ABSENT))
                name += f".{sub}"
                a, b, ca, cb = (a.get(sub, _ABSENT), b.get(sub, _ABSENT),
                                ca.get(sub, _ABSENT), cb.get(sub, _ABSENT))
            elif isinstance(a, list) and isinstance(b, list):
                i = next((i for i, (x, y) in enumerate(zip(ca, cb, strict=False))
                          if x != y),
                         min(len(a), len(b)))
                name += f"[{i}]"
                a, b = (a[i] if i < len(a) else _ABSENT), (b[i] if i < len(b) else _ABSENT)
                ca, cb = (ca[i] if i < len(ca) else _ABSENT), (cb[i] if i < len(cb) else _ABSENT)
            else:
                break
        return name, _shown(a), _shown(b)
    return None


# -- a state read back: checked before it is used -------------------------------------------

#: how every trainer's refusal of a state it cannot have written begins (after the file)
DAMAGED = "damaged training state"


def damaged(what: str, path: str | Path | None) -> CheckpointError:
    """``PATH: damaged training state: WHAT``, the one line (exit 2) of every trainer's
    ``--resume`` of a state whose header or tensors are not what a trainer writes: a value
    of another type, a tensor renamed, missing or left over.  Nothing is written before."""
    return CheckpointError(f"{DAMAGED}: {what}", path=path)


def said(exc: BaseException) -> str:
    """What an exception says, in one line (a ``KeyError``: ``no 'key'``)."""
    if isinstance(exc, KeyError) and len(exc.args) == 1:
        return f"no {exc.args[0]!r}"
    return " ".join(str(exc).split())


def header_value(extra: Mapping[str, Any], key: str, path: str | Path | None, like: Any, *,
                 required: bool = True) -> Any:
    """The value at ``key`` (dotted: ``cursor.epoch``) of a state's header ``extra``, refused
    (:func:`damaged`) unless of the form of ``like`` (:func:`check_like`: ``0`` a non-negative
    integer, ``{}`` an object); missing or ``null``: refused, or ``None`` if not ``required``."""
    value: Any = extra
    for part in key.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if value is None and required:
        raise damaged(f"its header has no {key!r}", path)
    check_like(value, like, repr(key), path)
    return value


def check_provenance(extra: Mapping[str, Any], path: str | Path | None) -> None:
    """The header values every state records of what wrote it (:func:`resume_notice` reads
    them): ``cpu_threads`` and ``software`` absent (an earlier stylebridge; a GPU run records
    no threads) or of the form written, else refused (:func:`damaged`)."""
    header_value(extra, "cpu_threads", path, 1, required=False)
    header_value(extra, "software", path, {"stylebridge": "", "torch": ""}, required=False)


def check_like(saved: Any, current: Any, name: str, path: str | Path | None) -> None:
    """Refuse (:func:`damaged`) a header value ``saved`` (``name``: where it is) that has
    another form than ``current``, what this run's object gives for it (an optimiser's
    ``param_groups``, a scheduler's state): dicts compared on the keys both have (torch
    versions add some), lists item by item and of one length, an integer for an integer, a
    finite number for a float (not negative where ``current`` is not), a bool for a bool, a
    string for a string; ``None`` on either side passes."""
    if saved is None or current is None:
        return
    if isinstance(current, Mapping):
        if isinstance(saved, Mapping):
            for key in current:
                if key in saved:
                    check_like(saved[key], current[key], f"{name}.{key}", path)
            return
        want = "an object"
    elif isinstance(current, list | tuple):
        if isinstance(saved, list) and len(saved) == len(current):
            for i, (a, b) in enumerate(zip(saved, current, strict=True)):
                check_like(a, b, f"{name}[{i}]", path)
            return
        want = f"a list of {len(current)}"
    elif isinstance(current, bool):
        if isinstance(saved, bool):
            return
        want = "true or false"
    elif isinstance(current, int | float):
        kinds = int if isinstance(current, int) else int | float
        if isinstance(saved, kinds) and not isinstance(saved, bool) and math.isfinite(saved) \
                and (saved >= 0 or current < 0):
            return
        want = ("a non-negative " if current >= 0 else "an ") + \
            ("integer" if isinstance(current, int) else "number")
    elif isinstance(current, str):
        if isinstance(saved, str):
            return
        want = "a string"
    else:
        return
    raise damaged(f"{name} in its header is {_shown(saved)}, not {want}", path)


def _few(names: list[str]) -> str:  # as check_state_dict names them
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def mismatch(missing: Iterable[str], unexpected: Iterable[str]) -> str | None:
    """``is missing 1 tensor(s): a and has 1 unexpected tensor(s): b`` (``None``: neither)."""
    missing, unexpected = sorted(missing), sorted(unexpected)
    words = ([f"is missing {len(missing)} tensor(s): {_few(missing)}"] if missing else []) + \
        ([f"has {len(unexpected)} unexpected tensor(s): {_few(unexpected)}"]
         if unexpected else [])
    return " and ".join(words) or None


def check_tensors(path: str | Path | None, what: str, expected: Mapping[str, Tensor],
                  saved: Mapping[str, Tensor], prefix: str = "") -> None:
    """Refuse the tensors ``saved`` under ``prefix`` of a state (names without it) that are
    not those of ``expected`` (a module's ``state_dict()``): the missing and the unexpected
    ones named as in the file, then shapes and kinds of dtype (``check_state_dict``)."""
    why = mismatch((prefix + k for k in set(expected) - set(saved)),
                   (prefix + k for k in set(saved) - set(expected)))
    if why is not None:
        raise CheckpointError(f"{what} {why}", path=path)
    check_state_dict(path, expected, saved, what=what, check_finite=False)


def check_claimed(tensors: Mapping[str, Tensor], prefixes: Iterable[str],
                  path: str | Path | None) -> None:
    """Refuse a state holding a tensor that no part of the run reads (its name neither is
    nor begins with one of ``prefixes``): a renamed one would be left out without a word."""
    prefixes = tuple(prefixes)
    left = [k for k in tensors if k not in prefixes and not k.startswith(prefixes)]
    if left:
        raise damaged(f"it {mismatch((), left)}", path)


# -- optimiser -------------------------------------------------------------------------------


def optimizer_tensors(optimizer: torch.optim.Optimizer, *, scalars_as_tensors: bool
                      ) -> tuple[dict[str, Tensor], dict[str, dict[str, Any]]]:
    """Per-parameter state as ``optim.<index>.<name>`` tensors; non-tensor values become
    tensors (``scalars_as_tensors``) or go to the returned ``{index: {name: value}}``."""
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            if isinstance(value, Tensor):
                tensors[f"optim.{idx}.{key}"] = value
            elif scalars_as_tensors:
                tensors[f"optim.{idx}.{key}"] = torch.tensor(value)
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, scalars


def load_optimizer_tensors(optimizer: torch.optim.Optimizer, tensors: Mapping[str, Tensor],
                           scalars: Mapping[str, Mapping[str, Any]] | None = None,
                           param_groups: list[dict[str, Any]] | None = None, *,
                           path: str | Path | None = None) -> None:
    """Inverse of :func:`optimizer_tensors`; ``param_groups`` (JSON) replace the current
    ones when given (betas back to tuples).  A state that does not fit the optimiser (groups
    of another form, an entry of a parameter it lacks, a moment renamed or of another shape:
    :func:`optimizer_problem`) is refused naming ``path`` (:func:`damaged`)."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = [*key.split(".", 2), "", ""][:3]
            if not idx.isdigit() or not name:
                raise damaged(f"it has a tensor {key} that names no optimiser entry", path)
            state.setdefault(int(idx), {})[name] = value
    for idx, items in (scalars or {}).items():
        if not str(idx).isdigit() or not isinstance(items, Mapping):
            raise damaged(f"'optim_scalars' in its header is {_shown(scalars)}, not an object "
                          "of optimiser entries", path)
        state.setdefault(int(idx), {}).update(items)
    if param_groups is None:
        groups = optimizer.state_dict()["param_groups"]
    else:
        check_like(param_groups, optimizer.state_dict()["param_groups"], "param_groups", path)
        groups = copy.deepcopy(param_groups)
        for group in groups:
            if "betas" in group:
                group["betas"] = tuple(group["betas"])
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise damaged(f"its optimiser state does not fit ({said(exc)})", path) from None
    why = optimizer_problem(optimizer)
    if why is not None:
        raise damaged(f"its optimiser state {why}", path)


def optimizer_problem(optimizer: torch.optim.Optimizer, prefix: str = "") -> str | None:
    """What does not fit in the state ``optimizer`` was given (``None``: nothing seen), its
    tensors named ``PREFIX optim.INDEX.NAME``: an entry of a parameter it does not have; for
    Adam and AdamW an entry whose moments are missing, renamed or of another shape."""
    params = [p for g in optimizer.param_groups for p in g["params"]]
    index = {id(p): i for i, p in enumerate(params)}
    for key, entry in optimizer.state.items():
        i = index.get(id(key)) if isinstance(key, Tensor) else None
        if i is None:
            return mismatch((), (f"{prefix}optim.{key}.{n}" for n in entry)) + \
                f" (of a parameter {key}; the optimiser has {len(params)})"
        if not isinstance(optimizer, torch.optim.Adam):  # AdamW too
            continue
        amsgrad = any(g.get("amsgrad") for g in optimizer.param_groups
                      if any(p is key for p in g["params"]))
        want = {"step", "exp_avg", "exp_avg_sq"} | ({"max_exp_avg_sq"} if amsgrad else set())
        why = mismatch((f"{prefix}optim.{i}.{n}" for n in want - set(entry)),
                       (f"{prefix}optim.{i}.{n}" for n in set(entry) - want))
        if why is not None:
            return why
        for name in sorted(want - {"step"}):
            shape = getattr(entry[name], "shape", None)
            if shape != key.shape:
                return (f"has {prefix}optim.{i}.{name} of shape {_shown(shape)}, its "
                        f"parameter's is {list(key.shape)}")
        step = entry["step"]
        if isinstance(step, Tensor) and step.numel() == 1:
            step = float(step)
        if isinstance(step, bool) or not isinstance(step, int | float) \
                or not math.isfinite(step) or step < 0:
            return f"has {prefix}optim.{i}.step that is no step count"
    return None


def trained_optimizer_tensors(tensors: Mapping[str, Tensor], params: list[Tensor],
                              every: list[Tensor]) -> Mapping[str, Tensor]:
    """``tensors`` (a domain state's) for an optimiser of ``params``, the trainable parameters
    ``every`` less the frozen layers': a state written before frozen layers were left out of
    the optimiser (efd7591: their change was held at zero, so they kept their first values
    as they do now) holds an entry for each of ``every``; those of ``params`` are taken,
    renumbered.  Any other state (one entry at most per parameter of ``params``): unchanged."""
    saved = {int(k.split(".")[1]) for k in tensors
             if k.startswith("optim.") and k.split(".")[1].isdigit()}
    if len(params) == len(every) or saved != set(range(len(every))):
        return tensors
    index = {id(p): i for i, p in enumerate(every)}
    out = {k: v for k, v in tensors.items() if not k.startswith("optim.")}
    for j, p in enumerate(params):
        prefix = f"optim.{index[id(p)]}."
        out.update({f"optim.{j}.{k[len(prefix):]}": v for k, v in tensors.items()
                    if k.startswith(prefix)})
    return out


# -- global RNGs (torch, CUDA, numpy, Python) ------------------------------------------------


def seed_everything(seed: int, device: torch.device | None = None) -> None:
    """Seed torch's, Python's and numpy's global generators (all saved with a run).

    With a ``device``, CUDA's generators are seeded only when it is a CUDA device: a CPU run
    leaves a CUDA seed queued for a later first use of CUDA (as :func:`torch.manual_seed`
    does while CUDA is not initialised) to nobody; the CPU stream is the same either way."""
    if device is None or device.type == "cuda":
        torch.manual_seed(seed)
    else:
        torch.random.default_generator.manual_seed(seed)
    random.seed(seed)
    numpy.random.seed(seed)


def global_rng_state(device: torch.device) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The global RNG states: tensors (``rng.torch``, ``rng.cuda.<i>``, ``rng.numpy``) and
    JSON (``rng_python``, ``rng_numpy``)."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and device.type == "cuda":
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    np_state = numpy.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(numpy.asarray(np_state[1], dtype=numpy.int64))
    py_state = random.getstate()
    extra = {"rng_python": [py_state[0], list(py_state[1]), py_state[2]],
             "rng_numpy": [np_state[0], int(np_state[2]), int(np_state[3]),
                           float(np_state[4])]}
    return tensors, extra


def set_global_rng_state(tensors: Mapping[str, Tensor], extra: Mapping[str, Any],
                         device: torch.device, *, path: str | Path | None = None) -> None:
    """Inverse of :func:`global_rng_state`; parts missing or of another form are refused
    naming ``path`` (:func:`damaged`)."""
    left = [k for k in ("rng.torch", "rng.numpy") if k not in tensors]
    if left:
        raise damaged(f"it {mismatch(left, ())}", path)
    # the forms global_rng_state writes (a number that may be negative: -1.0)
    if header_value(extra, "rng_numpy", path, ["", 0, 0, -1.0])[1] > 624:  # MT19937's 624
        raise damaged(f"'rng_numpy' in its header is {_shown(extra['rng_numpy'])}", path)
    header_value(extra, "rng_python", path, [0, [0] * 625, None])
    try:
        torch.set_rng_state(tensors["rng.torch"])
        cuda_states = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
        if cuda_states and device.type == "cuda":
            torch.cuda.set_rng_state_all(cuda_states)
        name, pos, has_gauss, cached = extra["rng_numpy"]
        numpy.random.set_state((name, tensors["rng.numpy"].numpy().astype(numpy.uint32), pos,
                                has_gauss, cached))
        version, internal, gauss = extra["rng_python"]
        random.setstate((version, tuple(internal), gauss))
    except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
        raise damaged(f"its random-number state cannot be restored ({said(exc)})",
                      path) from None


# -- loss state (Loss.training_state) --------------------------------------------------------


def loss_state_tensors(modules: Iterable[tuple[str, Any]]) -> dict[str, Tensor]:
    """``{PREFIX + key: tensor}`` of every loss's :meth:`~Loss.training_state`."""
    out: dict[str, Tensor] = {}
    for prefix, module in modules:
        out.update({f"{prefix}{k}": v for k, v in module.training_state().items()})
    return out


def load_loss_states(modules: Iterable[tuple[str, Any]], tensors: Mapping[str, Tensor],
                     device: torch.device | str, *, path: str | Path | None = None) -> None:
    """Give every loss the tensors saved under its prefix.  Tensors that do not fit are
    refused naming ``path`` and them (:func:`damaged`): the loss refuses them (a renamed
    discriminator weight), lacks one it gives before or after loading, gives other names
    back, or its optimiser's state does not fit (:func:`optimizer_problem`)."""
    for prefix, module in modules:
        saved = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        what = f"the state of loss {getattr(module, 'name', '?')!r} ({prefix}*)"
        fresh = set(module.training_state()) if saved else set()  # none may be missing
        try:
            module.load_training_state(saved, device)
        except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
            told = re.findall(r'"([^"]*)"', str(exc))  # the names load_state_dict lists
            why = mismatch((prefix + k for k in fresh - set(saved)),
                           (prefix + k for k in set(saved) - fresh
                            if any(k.endswith(n) for n in told)))
            raise damaged(f"{what} {why or 'does not fit: ' + said(exc)}", path) from None
        kept = set(module.training_state()) | fresh if saved else set()
        why = mismatch((prefix + k for k in kept - set(saved)),
                       (prefix + k for k in set(saved) - kept))
        for optimizer in [o for o in vars(module).values()
                          if isinstance(o, torch.optim.Optimizer)]:
            why = why or optimizer_problem(optimizer, prefix)
        if why is not None:
            raise damaged(f"{what} {why}", path)
