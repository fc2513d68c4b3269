"""How a resumed run's settings are compared with the interrupted run's
(:mod:`stylebridge.pipelines.resume`): a model option by its spec and file, the first
difference said in a few words, the options that only change how a run computes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from stylebridge.core.io import file_identity


def model_setting(spec: str, path: Path | None) -> dict[str, Any]:
    """A model option as the journal compares it: the spec as given and the identity of the
    checkpoint file it was loaded from (:func:`file_identity`; none for random weights)."""
    return {"spec": spec, **(file_identity(path) or {})}


def domain_settings(config: Any, adapter: Any) -> dict[str, Any]:
    """The resume settings of the domains a run renders through, shared by ``adapt`` and
    ``render``: each ``--method`` and the ``--calibrate`` by spec and file, the skip layers,
    the FeatureShift file (``config``: the run's config; ``adapter``: its
    :class:`~stylebridge.pipelines.adapter.Adapter`)."""
    from stylebridge.pipelines.photos import weights_path

    return {
        "--method": [model_setting(str(spec), weights_path(method)) for spec, method
                     in zip(config.methods, adapter.methods.values(), strict=True)],
        "--calibrate": None if adapter.calibrator is None else model_setting(
            str(config.calibrate), weights_path(adapter.calibrator)),
        "--skip-layers": list(adapter.skip_layers),
        "--featureshift": file_identity(config.featureshift)}


def _shown(value: Any) -> str:
    """A setting as the refusal shows it: a model by its spec, a file by its path, a list
    joined."""
    if isinstance(value, Mapping):
        return str(value.get("spec") or value.get("path"))
    if isinstance(value, list):
        return ", ".join(_shown(v) for v in value) or "none"
    return "none" if value is None else str(value)


def differs(then: Mapping[str, Any], now: Mapping[str, Any]) -> str | None:
    """The first option whose value differs, said in a few words (``None``: all the same)."""
    for key in dict.fromkeys([*then, *now]):
        a, b = then.get(key), now.get(key)
        if a == b:
            continue
        if (isinstance(a, Mapping) and isinstance(b, Mapping) and a.get("path")
                and a.get("path") == b.get("path")):
            if a.get("spec") != b.get("spec"):  # the same file, other options
                return f"{key} differs ({a.get('spec')} then, {b.get('spec')} now)"
            return f"{key} {b['path']} has changed since the interrupted run"
        if (isinstance(a, list) and isinstance(b, list) and len(a) == len(b)
                and [_shown(x) for x in a] == [_shown(x) for x in b]):
            return f"{key}: a file of {_shown(b)} has changed since the interrupted run"
        return f"{key} differs ({_shown(a)} then, {_shown(b)} now)"
    return None


def how_changes(hows: Sequence[Mapping[str, Any]], now: Mapping[str, Any]) -> str:
    """``--batch 2 (was 4, 3)``: each option of ``now`` whose value differs from that of any
    earlier part of the run (``hows``: not only the last part's); empty when none does."""
    changed = {k: [t for t in dict.fromkeys(_shown(h.get(k)) for h in hows) if t != _shown(v)]
               for k, v in now.items()}
    return ", ".join(f"{k} {_shown(now[k])} (was {', '.join(then)})"
                     for k, then in changed.items() if then)


__all__ = ["differs", "domain_settings", "how_changes", "model_setting"]
