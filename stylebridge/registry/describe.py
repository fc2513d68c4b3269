"""What one registered plugin is and takes: ``stylebridge plugins NAME``.

For a plugin author or a user composing a spec (``NAME[:CKPT][:k=v]``) this answers, from
the class alone (nothing is built, no weights are read):

* its options, with the default from the signature and the allowed values from
  ``config_schema``;
* whether it needs weights, the checkpoint kind it loads, and the official weights entries
  for it (installed or not, with their licences);
* the optional capabilities of its interface it implements (:data:`CAPABILITIES`): each is
  declared on the interface in :mod:`stylebridge.core.interfaces`, and a plugin has it when it
  sets the class attribute or overrides the method.  Capabilities an instance decides from its
  options (FSE's ``feature_layer`` follows ``mode``) are listed as "depends on the options".
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from stylebridge.core import interfaces as itf
from stylebridge.registry.registry import KINDS, Entry, accepted_options
from stylebridge.registry.spec import spec_usage
from stylebridge.registry.typed_options import option_types


@dataclass(frozen=True)
class Capability:
    """One optional capability of an interface: ``attr`` on ``base``, and what it means."""

    attr: str
    meaning: str
    #: "override": the method differs from the interface's; "flag": a truthy class value;
    #: "unflag": a false class value; "value": a class value other than the interface's
    #: default (``None``, ``()``)
    test: str = "override"


#: interface -> its optional capabilities, in the order the interface declares them
CAPABILITIES: dict[type, tuple[Capability, ...]] = {
    itf.Encoder: (
        Capability("feature_layer", "returns a generator feature map or modifier at "
                   "activation K besides w+ (FeatureShift, StyleRes)", "value"),
        Capability("check_generator", "checks the generator it is rendered with, before "
                   "any photo is encoded"),
        Capability("bind_generator", "needs the generator to encode (bound once by invert, "
                   "adapt, analyze, reproduce and the web app)"),
        Capability("restore", "rebuilds the parts of a saved inversion a file cannot hold "
                   "(render, --save-latents files)"),
        Capability("variants", "offers these specs as choices of their own (the web page)",
                   "value"),
    ),
    itf.DomainMethod: (
        Capability("text_conditioned", "text-conditioned: renders the domain of its "
                   "text=PROMPT option", "flag"),
        Capability("label", "names itself in messages and outputs as", "value"),
        Capability("weight_deltas", "changes conv weights as well as styles (one generator "
                   "pass per domain)"),
        Capability("has_weight_offsets", "says when its weight_deltas change anything (train "
                   "featureshift renders a batch of domains in one pass, without weight deltas, "
                   "when none has them)"),
        Capability("check_generator", "checks the generator it is applied to"),
        Capability("for_generator", "builds itself for a generator (train domain)"),
        Capability("init_from", "starts training from the generator's own weights"),
        Capability("layer_parameters", "names the parameters of each style layer "
                   "(--freeze-layers leaves them out of the optimiser)"),
    ),
    itf.Loss: (
        Capability("requires", "reads LossBatch fields", "value"),
        Capability("required_fields", "its fields depend on its options"),
        Capability("clip_layers", "reads CLIP transformer tokens", "value"),
        Capability("training_state", "keeps state across steps (resumed exactly)"),
        Capability("ramp", "ramps its own weight over training"),
        Capability("bind_trained_fields", "picks its subject from what the trainer trains"),
    ),
    itf.Metric: (
        Capability("direction", "which way is better (eval's column arrow)", "value"),
        Capability("unit", "unit of its values, beside the column name", "value"),
        Capability("needs_target", "needs no target: scores a set of predictions alone",
                   "unflag"),
        Capability("takes_reference", "compares with a reference set (eval --target)",
                   "flag"),
        Capability("takes_device", "is built on the run's device (eval passes device=)",
                   "flag"),
        Capability("state", "resumable: keeps what it accumulated (adapt/invert/eval "
                   "--resume)"),
        Capability("notes", "adds notes under the metrics table"),
        Capability("files", "names the files it read (a resume refuses one replaced since)"),
        Capability("fresh", "shares its network with the instances of other outputs "
                   "(adapt/invert build it once)"),
        Capability("with_domain_text", "scores against the domain's text prompt "
                   "(eval --domain-text)"),
    ),
    itf.Calibrator: (
        Capability("calibrate", "changes the inversion before the domain method"),
        Capability("offset_scale", "scales each style layer's domain offset"),
        Capability("unreliable_layers", "reports layers it switches off"),
        Capability("fittable", "fitted by `stylebridge calibrate` (from_style_means)",
                   "flag"),
        Capability("fit_options", "takes these `stylebridge calibrate` options", "value"),
        Capability("fit_report", "prints its own table after `stylebridge calibrate`"),
        Capability("save", "writes its checkpoint its own way"),
    ),
    itf.Renderer: (
        Capability("needs_guide", "needs a guiding encoder's w+ of the same photos", "flag"),
        Capability("check_generator", "checks the generator and encoder before encoding"),
    ),
    itf.Converter: (
        Capability("source", "reads an upstream file", "value"),
        Capability("output_options", "writes other files too, named by these options", "value"),
    ),
}

#: kinds whose plugins load checkpoints (converters write them; commands are argparse objects)
WEIGHTED_KINDS = ("encoder", "domain_method", "loss", "metric", "calibrator", "renderer")

_PLUGIN_CAPABILITIES = (
    Capability("random_weights", "runs on untrained weights: its numbers and images are "
               "labelled as such", "flag"),
    Capability("check_header", "refuses checkpoints by their header before reading tensors"),
    Capability("unavailable_weights", "names the official weights it would read, so a run "
               "lists every missing download at once"),
    Capability("read_extra", "keeps what its checkpoint records beyond weights and config"),
)


def _has(cls: type, base: type, cap: Capability) -> bool | None:
    """True / False, or None when an instance decides (a property)."""
    own = inspect.getattr_static(cls, cap.attr, None)
    default = inspect.getattr_static(base, cap.attr, None)
    if isinstance(own, property):
        return None
    if cap.test == "override":
        return own is not default
    value = getattr(cls, cap.attr, None)
    if cap.test == "flag":
        return bool(value)
    if cap.test == "unflag":
        return not value
    return value not in (None, (), frozenset(), "") and value != default


def _value_text(cls: type, cap: Capability) -> str:
    value = getattr(cls, cap.attr, None)
    if cap.test != "value" or value is None or isinstance(value, property):
        return ""
    if isinstance(value, (frozenset, set, tuple, list)):
        return ": " + ", ".join(str(v) for v in sorted(value, key=str))
    return f": {value}"


def capabilities(entry: Entry) -> list[dict[str, Any]]:
    """The optional capabilities ``entry``'s class implements: ``{"name", "meaning",
    "when"}`` with ``when`` ``"always"`` or ``"depends on the options"``."""
    base = KINDS[entry.kind][1]
    cls = entry.obj if isinstance(entry.obj, type) else type(entry.obj)
    out: list[dict[str, Any]] = []
    caps = CAPABILITIES.get(base, ())
    if entry.kind in WEIGHTED_KINDS and issubclass(cls, itf.Plugin):
        caps = caps + _PLUGIN_CAPABILITIES
    for cap in caps:
        owner = base if cap in CAPABILITIES.get(base, ()) else itf.Plugin
        has = _has(cls, owner, cap)
        if has is False:
            continue
        out.append({"name": cap.attr, "meaning": cap.meaning + _value_text(cls, cap),
                    "when": "always" if has else "depends on the options"})
    return out


def options(entry: Entry) -> list[dict[str, Any]] | None:
    """The spec options ``NAME:k=v`` of a class-registered plugin: name, default (``None``
    when required), and what the schema allows, else what the constructor's type hint takes
    (``an integer``, ``text or none``, ``one of a, b``: how a spec's text is typed,
    :mod:`~stylebridge.registry.typed_options`); ``None`` when it takes ``**kwargs``."""
    if entry.kind == "converter":  # options of `stylebridge convert ... --option k=v`
        return [{"name": key, "required": False, "default": None, "allowed": ""}
                for key in sorted(entry.obj.accepted_options)]
    cls = entry.obj if isinstance(entry.obj, type) else None
    if cls is None:
        return []
    names = accepted_options(cls)
    if names is None:
        return None
    schema: Mapping[str, Any] = cls.config_schema if issubclass(cls, itf.Plugin) else {}
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return None
    hinted = option_types(cls)
    rows = []
    for key in names:
        param = params[key]
        required = param.default is inspect.Parameter.empty
        field = schema.get(key)
        default = None if required else _jsonable(param.default)
        hint = hinted.get(key)
        allowed = (field.describe() if field is not None
                   else hint.describe() if hint is not None else "")
        if field is not None and field.type == "ints" and field.text_ok:
            # a list option is typed with + between the items (commas separate options)
            if isinstance(default, list) and default:
                default = "+".join(map(str, default))
            allowed += f", typed as {default if isinstance(default, str) else '1+2'}"
        rows.append({"name": key, "required": required, "default": default,
                     "allowed": allowed})
    return rows


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)


def weights(entry: Entry, candidates: Callable[[str, str], list[Any]],
            installed: Callable[[str], bool]) -> dict[str, Any]:
    """How the plugin gets weights: ``requires_weights``, its checkpoint kind, the hint,
    and the official entries for it (``candidates(kind, plugin)`` of the weights manager)."""
    cls = entry.obj if isinstance(entry.obj, type) else type(entry.obj)
    if entry.kind not in WEIGHTED_KINDS or not issubclass(cls, itf.Plugin):
        return {}
    kind = cls.checkpoint_kind or entry.kind
    official = [{"name": w.name, "installed": installed(w.name), "licence": w.licence,
                 "noncommercial": bool(w.noncommercial)}
                for w in candidates(kind, entry.name)]
    declared = cls.random_weights  # a property: the instance decides
    return {"requires_weights": bool(cls.requires_weights), "checkpoint_kind": kind,
            "hint": cls.weights_hint, "official": official,
            "random_weights": declared if isinstance(declared, bool) else None}


def contract_warnings(entry: Entry) -> list[str]:
    """What in ``entry``'s class breaks a contract of its interface that nothing checks at
    run time, one line each.  None at present: the one it named (a domain method overriding
    ``weight_deltas`` but not ``has_weight_offsets``, whose deltas train featureshift left
    out) is declared by the interface itself now (``DomainMethod.__init_subclass__``)."""
    return []


def describe(entry: Entry, candidates: Callable[[str, str], list[Any]],
             installed: Callable[[str], bool]) -> dict[str, Any]:
    """Everything ``stylebridge plugins NAME`` shows about ``entry``, as JSON values;
    ``spec``: how a spec of it with options is written (:func:`~stylebridge.registry.spec.spec_usage`)."""
    obj = entry.obj
    cls = obj if isinstance(obj, type) else type(obj)
    doc = inspect.getdoc(cls) or ""
    opts = options(entry)
    takes_weights = opts is None or any(row["name"] == "weights" for row in opts)
    return {"kind": entry.kind, "name": entry.name, "provider": entry.provider,
            "class": f"{cls.__module__}:{cls.__qualname__}", "description": entry.description,
            "doc": doc.split("\n\n")[0] if doc else "",
            "spec": (None if entry.kind == "command"
                     else spec_usage(entry.kind, entry.name, takes_weights=takes_weights)),
            "options": opts, "weights": weights(entry, candidates, installed),
            "capabilities": capabilities(entry) if entry.kind in KINDS else [],
            "warnings": contract_warnings(entry)}


__all__ = ["CAPABILITIES", "WEIGHTED_KINDS", "Capability", "capabilities", "contract_warnings",
           "describe", "options", "weights"]
