"""How a resumed run's settings are compared with the interrupted run's
(:mod:`stylebridge.pipelines.resume`): a model option by its spec and file, the first
difference said in a few words, the options that only change how a run computes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from stylebridge.core.io import file_identity


def file_setting(path: str | Path | None) -> dict[str, Any] | None:
    """A checkpoint file as the journal compares it: :func:`file_identity` and the content's
    ``sha256`` (:func:`~stylebridge.registry.file_hashes.content_sha256`; a file copied
    over it with its time set back is another file); ``None`` for none."""
    from stylebridge.registry.file_hashes import content_sha256, loaded_sha256

    identity = file_identity(path)
    if identity is None:
        return None
    # what was loaded from it (a file copied over it since is not what the run used)
    digest = loaded_sha256(path) or content_sha256(path)
    return {**identity, **({"sha256": digest} if digest is not None else {})}


def model_setting(spec: str, path: Path | None) -> dict[str, Any]:
    """A model option as the journal compares it: the spec as given and the checkpoint file
    it was loaded from (:func:`file_setting`; none for random weights)."""
    return {"spec": spec, **(file_setting(path) or {})}


def spec_key(setting: Mapping[str, Any]) -> Any:
    """A model setting's spec as it is compared: its name, options and checkpoint, the path
    written in the spec standing for the file the setting records (``path``: absolute), so
    that ``e4e:w/e4e.safetensors`` given from ``/x`` and ``e4e:/x/w/e4e.safetensors`` are one
    spec; as written when it does not parse or names no file."""
    from stylebridge.errors import SpecError
    from stylebridge.registry.spec import parse_plugin_spec

    spec = setting.get("spec")
    if not isinstance(spec, str) or not setting.get("path"):
        return spec
    try:
        parsed = parse_plugin_spec(spec)
    except SpecError:
        return spec
    if parsed.path is None:
        return spec
    return (parsed.name, str(setting["path"]), sorted(parsed.options.items()))


def _same(a: Any, b: Any) -> bool:
    """Whether two settings are the same: equal, or the same spec (:func:`spec_key`: its
    checkpoint by the file, however its path is spelled) and path whose content is the same
    (both record a ``sha256``: a touch, or the same bytes written again, changes nothing)
    or, one side from a journal written before files had a ``sha256``, equal without it."""
    if a == b:
        return True
    if not (isinstance(a, Mapping) and isinstance(b, Mapping)):
        if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            return all(_same(x, y) for x, y in zip(a, b, strict=True))
        return False
    if a.get("sha256") and b.get("sha256"):
        return (spec_key(a), a.get("path"), a["sha256"]) == \
            (spec_key(b), b.get("path"), b["sha256"])
    return {k: spec_key(a) if k == "spec" else v for k, v in a.items() if k != "sha256"} == \
        {k: spec_key(b) if k == "spec" else v for k, v in b.items() if k != "sha256"}


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
        "--featureshift": file_setting(config.featureshift)}


def _shown(value: Any) -> str:
    """A setting as the refusal shows it: a model by its spec (and the file it was loaded
    from where the spec names it otherwise: a relative path), a file by its path, a list
    joined."""
    if isinstance(value, Mapping):
        spec, path = value.get("spec"), value.get("path")
        if spec and path and isinstance(spec_key(value), tuple) and str(path) not in str(spec):
            return f"{spec} ({path})"
        return str(spec or path)
    if isinstance(value, list):
        return ", ".join(_shown(v) for v in value) or "none"
    return "none" if value is None else str(value)


def differs(then: Mapping[str, Any], now: Mapping[str, Any]) -> str | None:
    """The first option whose value differs, said in a few words (``None``: all the same)."""
    for key in dict.fromkeys([*then, *now]):
        a, b = then.get(key), now.get(key)
        if _same(a, b):
            continue
        if (isinstance(a, Mapping) and isinstance(b, Mapping) and a.get("path")
                and a.get("path") == b.get("path")):
            if spec_key(a) != spec_key(b):  # the same file, other options
                return f"{key} differs ({_shown(a)} then, {_shown(b)} now)"
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


def rounding(settings: Mapping[str, Any]) -> str:
    """How far a part computed another way (:func:`how_changes`) may be from an uninterrupted
    run's values: floating-point rounding; under ``--precision bf16`` bf16's (compiled and
    eager bf16 pictures measured up to 15 8-bit levels apart)."""
    if settings.get("--precision") == "bf16":
        return "bf16 rounding (a few 8-bit levels, up to about 15 on some pixels)"
    return "floating-point rounding"


__all__ = ["differs", "domain_settings", "how_changes", "model_setting", "rounding", "spec_key"]
