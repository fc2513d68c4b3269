"""Weighted loss terms from ``--loss NAME:WEIGHT[:k=v]`` specs: one rule set for every trainer.

A spec names a registered :class:`~stylebridge.core.interfaces.Loss`, its weight and its
keyword options (``lpips:0.8:backbone=PATH``).  The rules, shared by ``train domain`` and
``train featureshift``:

* the option ``after=N`` is reserved: the term is active from (0-based) step ``N`` on;
* a loss may be named more than once (with other options or weights): the first term is
  keyed ``NAME``, the next ``NAME#2``, ``NAME#3`` ... (log records, checkpoint headers);
* equal specs (same name and options) share one module when the caller passes a
  ``cache`` (FeatureShift's loss sets share their LPIPS and ArcFace networks).

:func:`check_requirements` refuses, when a trainer is built, a loss that requires a
:class:`~stylebridge.core.interfaces.LossBatch` field the trainer does not provide.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from stylebridge.core.interfaces import LOSS_BATCH_FIELDS, Loss, LossBatch
from stylebridge.errors import SpecError, StylebridgeError


@dataclass
class LossTerm:
    """One weighted loss; ``key`` names it in logs (``NAME`` or ``NAME#k``); ``after``:
    active from that step on."""

    key: str
    name: str
    weight: float
    module: Loss
    after: int = 0
    options: dict[str, Any] = field(default_factory=dict)

    def active(self, step: int) -> bool:
        return step >= self.after

    def describe(self) -> dict[str, Any]:
        return {"key": self.key, "name": self.name, "weight": self.weight,
                "after": self.after, "options": self.options}

    @classmethod
    def of(cls, item: LossTerm | tuple[str, float, Loss]) -> LossTerm:
        """A term from a term or a ``(name, weight, Loss)`` tuple (the older Python API)."""
        if isinstance(item, LossTerm):
            return item
        name, weight, module = item
        return cls(key=name, name=name, weight=float(weight), module=module)


def idle_term_notes(terms: Sequence[LossTerm], steps: int, option: str = "--loss") -> list[str]:
    """One note per term that never acts in a run of ``steps`` steps: it starts
    (``after=N``) at or after the last step, or its ramp (DiFa's window) keeps it at weight 0."""
    notes = []
    for term in terms:
        if term.weight == 0:  # given, but it never adds anything: said, not silently dropped
            notes.append(f"{option} {term.key} has weight 0: it never trains anything")
        elif term.after >= steps:
            notes.append(f"{option} {term.key} never starts: after={term.after} is not before "
                         f"the run's end (--steps {steps})")
        elif term.module.ramp(steps, steps) == 0.0:
            window = term.module.window if term.module.window is not None else "?"
            notes.append(f"loss {term.key!r} stays at weight 0 for --steps {steps} (its ramp "
                         f"starts after its window of {window} steps)")
    return notes


def random_loss_names(terms: Sequence[LossTerm]) -> list[str]:
    """``["loss lpips", ...]``: the terms whose networks run on random weights (a loss built
    with ``allow_random=true``), to be named on screen and in the trained checkpoint."""
    return list(dict.fromkeys(f"loss {t.name}" for t in terms
                              if t.module.random_weights is True))


def canonical_loss_spec(text: str) -> Any:
    """``[name, weight, options]`` of a loss spec, for a resume to compare what specs mean:
    ``mse:1`` and ``mse:1.0`` (``corr:1e3`` and ``corr:1000``) are the same term.  Options
    that are file paths are left out (a moved backbone or discriminator file may be resumed
    with); a spec that does not parse stays as typed."""
    from stylebridge.registry import get_registry
    from stylebridge.registry.spec import parse_loss_spec
    from stylebridge.registry.typed_options import spec_options

    try:  # typed as the loss is built (`s=007` and `s=7` differ for a text option)
        spec = parse_loss_spec(text)
        options = spec_options("loss", spec, get_registry())
    except StylebridgeError:
        return text
    return [spec.name, spec.weight, sorted((k, v) for k, v in options.items()
                                           if not (isinstance(v, str) and ("/" in v or "\\" in v)))]


def build_loss_terms(specs: Sequence[str], *, registry: Any = None, option: str = "--loss",
                     cache: dict[tuple[str, str], Loss] | None = None,
                     device: torch.device | str | None = None) -> list[LossTerm]:
    """``["mse:1.0", "lpips:0.8:backbone=P", "difa_w:6:after=50"]`` → terms (see the module
    doc for the rules).  ``option`` names the command-line option in errors.  With
    ``device`` the modules are moved there, frozen and put in eval mode."""
    from stylebridge.errors import RegistryError
    from stylebridge.registry import get_registry
    from stylebridge.registry.spec import parse_loss_spec
    from stylebridge.registry.typed_options import OptionTypeError, spec_options

    registry = registry or get_registry()
    terms: list[LossTerm] = []
    seen: dict[str, int] = {}
    for text in specs:
        spec = parse_loss_spec(text)
        try:  # typed by the loss's constructor hints
            options = spec_options("loss", spec, registry)
        except OptionTypeError as exc:  # it names the loss and the option
            raise SpecError(f"{option} {text!r}: {exc.message}") from None
        except StylebridgeError as exc:  # `w=nan`: say whose option it is
            raise StylebridgeError(f"{option} {text!r}{registry.where('loss', spec.name)}: "
                                   f"{exc.message}") from None
        after = options.pop("after", 0)
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise StylebridgeError(f"{option} {text!r}: after={after!r} must be a step >= 0")
        cache_key = (spec.name, json.dumps(options, sort_keys=True, default=str))
        module = cache.get(cache_key) if cache is not None else None
        if module is None:
            try:
                module = registry.create("loss", spec.name, **options)
            except (TypeError, ValueError, RegistryError) as exc:  # an unknown name too
                raise StylebridgeError(f"{option} {text!r}: {' '.join(str(exc).split())}") from None
            if device is not None:
                module = module.to(device).eval().requires_grad_(False)
            if cache is not None:
                cache[cache_key] = module
        n = seen.get(spec.name, 0)
        seen[spec.name] = n + 1
        key = spec.name if n == 0 else f"{spec.name}#{n + 1}"
        terms.append(LossTerm(key, spec.name, float(spec.weight), module, after, options))
    return terms


def check_requirements(terms: Iterable[LossTerm], provides: Iterable[str], trainer: str, *,
                       listed: Iterable[str] | None = None) -> None:
    """Refuse a term whose loss requires a LossBatch field that ``trainer`` does not provide
    (one line, naming the loss and the field).  ``listed``: the fields the message says
    the trainer provides (default ``provides``; a trainer that fills some fields only when
    a loss reads them lists those too)."""
    provided = frozenset(provides)
    shown = frozenset(listed) if listed is not None else provided
    for term in terms:
        needed = term.module.required_fields()
        unknown = sorted(needed - LOSS_BATCH_FIELDS)
        if unknown:
            raise StylebridgeError(f"{loss_label(term)} requires {unknown[0]!r}, which is not "
                                   "a LossBatch field")
        missing = sorted(needed - provided)
        if missing:
            raise StylebridgeError(
                f"{loss_label(term)} needs the batch field {missing[0]!r}, which {trainer} "
                f"does not provide (it provides: {', '.join(sorted(shown))})")


def check_trainable(terms: Iterable[LossTerm], trained: frozenset[str], trainer: str) -> None:
    """Tell each loss which fields ``trainer`` changes (:meth:`Loss.bind_trained_fields`),
    then refuse, before any step, a loss that reads fields and none of those: it would
    give no gradient (one line naming the loss)."""
    for term in terms:
        term.module.bind_trained_fields(trained)
        needed = term.module.required_fields()
        if needed and not needed & trained:
            raise StylebridgeError(
                f"{loss_label(term)} reads {', '.join(sorted(needed))}, none of which "
                f"{trainer} changes ({', '.join(sorted(trained))}): it cannot train it")


def required_fields(terms: Iterable[LossTerm]) -> frozenset[str]:
    """Every field the terms' losses read."""
    out: set[str] = set()
    for term in terms:
        out |= term.module.required_fields()
    return frozenset(out)


def evaluate(terms: Sequence[LossTerm], batch: LossBatch, step: int, *,
             skip_zero_weight: bool = False) -> list[tuple[LossTerm, Tensor]]:
    """``(term, unweighted value)`` of every term active at ``step`` (``after``); with
    ``skip_zero_weight`` terms of weight 0 are not evaluated.  A value that is no
    one-element floating-point tensor is refused in one line naming the loss
    (:func:`check_loss_value`)."""
    out = []
    for term in terms:
        if not term.active(step) or (skip_zero_weight and term.weight == 0):
            continue
        out.append((term, check_loss_value(term, term.module(batch))))
    return out


def check_loss_value(term: LossTerm, value: object) -> Tensor:
    """``value`` when it is what ``Loss.forward`` must return (a tensor of one element, of a
    floating-point dtype), else a one-line :class:`StylebridgeError` naming the loss and its
    package.  Metadata checks only: no device synchronisation."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            got = f"a tensor of shape {list(value.shape)}, not a scalar"
        elif not value.is_floating_point():
            got = f"a tensor of dtype {value.dtype}, not a floating-point scalar"
        else:
            return value
    else:
        got = f"a {type(value).__name__}, not a scalar tensor"
    raise StylebridgeError(f"{loss_label(term)}: forward() returned {got}")


def loss_label(term: LossTerm) -> str:
    """``loss 'NAME'``, with `` (from PKG)`` when a third-party package provides it: the
    registry's entry when it holds this module's class, else the installed package the
    class's module belongs to."""
    from stylebridge.registry import get_registry
    from stylebridge.registry.registry import BUILTIN_PROVIDER

    provider: str | None = None
    try:
        registry = get_registry()
        entry = registry.entries["loss"].get(term.name)
        if entry is not None and isinstance(entry.obj, type) and isinstance(term.module,
                                                                             entry.obj):
            provider = entry.provider
        else:
            provider = registry.package_of(type(term.module).__module__)
    except StylebridgeError:  # no registry to ask (a stale install): the name alone
        pass
    where = "" if provider in (None, BUILTIN_PROVIDER) else f" (from {provider})"
    return f"loss {term.name!r}{where}"
