"""A plugin built with options must rebuild from its ``config()``.

Registered classes are rebuilt from their config: a checkpoint's header holds
``obj.config()`` and :meth:`~stylebridge.registry.registry.Registry.load` builds
``type(obj)(**config)`` before reading the tensors.  A ``config()`` that leaves out an option
it was built with (``n=5``, the default 3) saves checkpoints that do not load (``tensor
lin.weight has shape [256, 5], expected [256, 3]``), found long after the training that wrote
them.  :func:`check_round_trip` compares, when an encoder, domain method, calibrator or
renderer is built from options, each option with what ``type(obj)(**obj.config())`` would
get, and refuses the difference in one line.

What a rebuild gets for an option ``config()`` leaves out is the constructor's default.  The
check is lenient where a plugin may rightly normalise: an option given as its default (or as
an equal value: ``yes`` for ``True``, ``2`` for ``2.0``, a tuple for a list), an option left
out whose default is ``None`` (``None`` often stands for "the class's own choice", e.g. an
encoder's resize filter), a string ``config()`` gives in another spelling, and ``device``
(where to run, not what to build).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from stylebridge.core.interfaces import Plugin
from stylebridge.core.options import as_bool
from stylebridge.errors import RegistryError

__all__ = ["CHECKPOINTED_KINDS", "RUNTIME_OPTIONS", "check_round_trip"]

#: the kinds whose objects stylebridge saves as checkpoints (trained, fitted or converted),
#: with ``config()`` as the header's config.  Losses and metrics are rebuilt from their specs
#: (a trainer's resume file, eval's options), never from ``config()``: not checked, so that a
#: loss or metric without ``config()`` keeps working (eval's JSON then records less)
CHECKPOINTED_KINDS = ("encoder", "domain_method", "calibrator", "renderer")
#: options that say where a plugin runs, not what it is (``config()`` may leave them out)
RUNTIME_OPTIONS = frozenset({"device"})


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _same(given: Any, kept: Any) -> bool:
    """Whether ``given`` (an option as passed) and ``kept`` (what ``config()`` returns, or the
    default a rebuild gets) build the same thing, up to spelling."""
    try:
        if given is kept or bool(given == kept):
            return True
    except Exception:  # an array-like == is no bool
        pass
    if isinstance(kept, bool) or isinstance(given, bool):
        try:
            return as_bool(given, "") == as_bool(kept, "")
        except ValueError:
            return False
    if _number(given) or _number(kept):
        try:
            return float(given) == float(kept)
        except (TypeError, ValueError):
            return False
    if isinstance(given, (str, Path)) and isinstance(kept, (str, Path)):
        return str(given) == str(kept)
    if isinstance(given, Mapping) and isinstance(kept, Mapping):
        return ({str(k) for k in given} == {str(k) for k in kept}
                and all(_same(v, {str(k): w for k, w in kept.items()}[str(k)])
                        for k, v in given.items()))
    if isinstance(given, Sequence) and isinstance(kept, Sequence) \
            and not isinstance(given, str) and not isinstance(kept, str):
        return len(given) == len(kept) and all(_same(a, b) for a, b in
                                               zip(given, kept, strict=True))
    return False


def _comparable(given: Any, kept: Any) -> bool:
    """Whether a difference between two present values is a real one: numbers, booleans and
    lists of them (sizes, counts, flags); strings may be spelt anew (``ALEX`` → ``alex``)."""
    def plain(value: Any) -> bool:
        if isinstance(value, (bool, int, float)):
            return True
        return (isinstance(value, Sequence) and not isinstance(value, str)
                and all(isinstance(v, (bool, int, float)) for v in value))
    return plain(given) and plain(kept)


def check_round_trip(kind: str, label: str, obj: Any, given: Mapping[str, Any]) -> None:
    """Refuse, in one line naming ``label`` (``encoder 'x' (from PKG)``) and the option, a
    ``kind`` plugin ``obj`` built with the options ``given`` whose ``config()`` would rebuild
    it with another value of one of them (see the module docstring); only for the kinds
    whose objects are saved as checkpoints (:data:`CHECKPOINTED_KINDS`)."""
    if kind not in CHECKPOINTED_KINDS or not isinstance(obj, Plugin) or not given:
        return
    kept = obj.config()
    if not isinstance(kept, Mapping):
        raise RegistryError(f"{label}: config() returned a {type(kept).__name__}; it must "
                            "return a dict of the options that rebuild it")
    try:
        params = inspect.signature(type(obj)).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    fix = ("return every option it was built with from config(): type(obj)(**obj.config()) "
           "must rebuild it, else its checkpoints do not load")
    for key, value in given.items():
        if key in RUNTIME_OPTIONS:
            continue
        if key in kept:
            if _same(value, kept[key]) or not _comparable(value, kept[key]):
                continue
            raise RegistryError(f"{label}: built with {key}={value!r}, but config() gives "
                                f"{key}={kept[key]!r}; {fix}")
        param = params.get(key)
        if param is None or param.default is inspect.Parameter.empty:
            if value is None:  # a None a **kwargs plugin drops: rebuilt the same
                continue
            raise RegistryError(f"{label}: config() leaves out option {key}={value!r} it was "
                                f"built with; {fix}")
        if param.default is None or _same(value, param.default):
            continue
        raise RegistryError(f"{label}: config() leaves out option {key}={value!r}, so a "
                            f"rebuild gets the default {key}={param.default!r}; {fix}")
