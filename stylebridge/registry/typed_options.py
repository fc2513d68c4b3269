"""A spec's option strings typed by the plugin's constructor: ``mine:k=2`` → ``k=2`` (an int).

Every place that turns the ``key=value`` strings of a spec (``--metric mine:k=2``,
``--loss mine:0.5:k=2``, ``--encoder NAME:CKPT:k=v``, ``create("metric", "mine:k=2")``) into
constructor keywords goes through :func:`typed_options` (or :func:`spec_options`, which
first finds the class a spec builds).  Each option is typed by, in order:

1. the class's ``config_schema`` field for that key: the text is guessed
   (:func:`~stylebridge.core.options.coerce_option`) and the schema then checks it, with its
   ranges, when the plugin is built (as before);
2. the constructor's resolved type hint for that key (:func:`typing.get_type_hints` on
   ``__init__``; a hint that cannot be resolved counts as none) when it is a simple scalar
   (:func:`option_type`): ``int`` (``2.5`` and ``abc`` refused), ``float`` (finite; an integer
   stays an int, as a ``float`` schema field takes it), ``bool`` (:func:`~stylebridge.core.
   options.as_bool`'s spellings), ``str`` (the text exactly as given: ``007``, ``1e3``),
   ``X | None`` (``none`` / ``null`` → ``None``, but for a text option, whose text it
   is) and ``Literal[...]`` of strings or ints;
3. otherwise the guess from the text alone, as before.

A value that does not fit is refused before the plugin is built, in one line naming the
plugin, the option, the value and the expected type (:class:`OptionTypeError`:
``metric 'mine' option k=2.5: expected an integer``).  A NaN or infinite number given to a
numeric option keeps :func:`~stylebridge.core.options.coerce_option`'s own refusal, which the
callers prefix with the plugin as they did.  ``stylebridge plugins NAME`` shows the same type
(:meth:`OptionType.describe`) for an option without a schema field.
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, Union

from stylebridge.core.checkpoint import read_header
from stylebridge.core.options import FALSE_WORDS, NONE_WORDS, TRUE_WORDS, coerce_option
from stylebridge.errors import SpecError, StylebridgeError
from stylebridge.registry import weights as weights_mod

__all__ = ["OptionType", "OptionTypeError", "option_type", "option_types", "spec_class",
           "spec_options", "typed_options"]

#: the scalar types a hint may name for its option to be typed by it
_SCALARS: tuple[type, ...] = (bool, int, float, str)
_WHAT = {int: "an integer", float: "a finite number", bool: "true or false", str: "text"}
_PARAMETER_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


class OptionTypeError(SpecError):
    """A spec option whose text does not fit its constructor's type hint; the message names
    the plugin, the option, the value and the type (one line)."""


@dataclass(frozen=True)
class OptionType:
    """What a simple hint allows: ``base`` (int, float, bool or str) or ``choices`` (the
    members of a ``Literal``), and whether ``None`` is allowed too (``nullable``)."""

    base: type | None = None
    choices: tuple[str | int, ...] = ()
    nullable: bool = False

    def describe(self) -> str:
        """``an integer``, ``true or false``, ``text``, ``an integer or none``, ``one of a, b``:
        what ``stylebridge plugins NAME`` shows and a refusal says was expected."""
        if self.base is None:
            shown = ", ".join(str(c) for c in self.choices)
            return f"one of {shown} or none" if self.nullable else f"one of {shown}"
        if self.base is bool and self.nullable:
            return "true, false or none"
        if self.base is str:
            return "text"  # "none" is a text too: an unset text option is left out
        what = _WHAT[self.base]
        return f"{what} or none" if self.nullable else what

    def convert(self, text: str, key: str) -> Any:
        """``text`` as a value of this type; ``ValueError`` when it does not fit.  A NaN or
        infinite number given to a numeric type raises
        :func:`~stylebridge.core.options.coerce_option`'s :class:`SpecError` (as before)."""
        if self.nullable and self.base is not str and text.strip().lower() in NONE_WORDS:
            return None  # a text option keeps its text: a prompt may be "none"
        if self.base is None:
            return self._choice(text)
        if self.base is str:
            return text
        if self.base is bool:
            low = text.strip().lower()
            if low in TRUE_WORDS or low in FALSE_WORDS:
                return low in TRUE_WORDS
            _refuse_non_finite(text, key)
            raise ValueError(text)
        try:
            return int(text)  # int() as coerce_option reads it: "3", " 3", "+3", "3_000"
        except ValueError:
            _refuse_non_finite(text, key)
            if self.base is int:
                raise
        return float(text)  # finite (refused above otherwise); ValueError: "abc"

    def _choice(self, text: str) -> str | int:
        for choice in self.choices:
            if isinstance(choice, str) and text == choice:
                return choice
        for choice in self.choices:
            if isinstance(choice, int):
                try:
                    if int(text) == choice:
                        return choice
                except ValueError:
                    break
        raise ValueError(text)


def _refuse_non_finite(text: str, key: str) -> None:
    """``nan``, ``inf``: :func:`coerce_option`'s one-line refusal (callers name the plugin)."""
    try:
        number = float(text)
    except ValueError:
        return
    if not math.isfinite(number):
        coerce_option(text, key)


def option_type(hint: Any) -> OptionType | None:
    """The :class:`OptionType` of a resolved type hint, or ``None`` when the hint is not a
    simple scalar (no hint, ``Any``, a list, ``int | str``, a class): that option is guessed
    from its text.  ``Annotated[X, ...]`` is ``X``."""
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        return option_type(typing.get_args(hint)[0])
    if origin is Union or origin is types.UnionType:
        args = typing.get_args(hint)
        rest = [a for a in args if a is not type(None)]
        inner = option_type(rest[0]) if len(rest) == 1 else None
        if inner is None:
            return None
        return replace(inner, nullable=True) if len(rest) < len(args) else inner
    if origin is Literal:
        args = typing.get_args(hint)
        choices = tuple(a for a in args if a is not None)
        if not choices or not all(isinstance(c, str) or (isinstance(c, int)
                                                         and not isinstance(c, bool))
                                  for c in choices):
            return None
        return OptionType(choices=choices, nullable=len(choices) < len(args))
    if isinstance(hint, type) and hint in _SCALARS:
        return OptionType(base=hint)
    return None


def _hints(function: Any) -> dict[str, Any]:
    """The resolved hints of ``function``; when they cannot all be resolved (a name imported
    under ``TYPE_CHECKING``), each one alone, leaving out those that fail."""
    try:
        return typing.get_type_hints(function)
    except Exception:  # any failure to resolve: each hint alone
        pass
    annotations = getattr(function, "__annotations__", None)
    if not isinstance(annotations, Mapping):
        return {}
    globalns = getattr(function, "__globals__", {})
    out: dict[str, Any] = {}
    for name, annotation in annotations.items():
        def probe() -> None:  # one annotation alone, resolved as get_type_hints would
            pass
        probe.__annotations__ = {name: annotation}
        try:
            out[name] = typing.get_type_hints(probe, globalns=globalns)[name]
        except Exception:  # this one cannot be resolved: its option is guessed
            continue
    return out


def option_types(cls: Any) -> dict[str, OptionType]:
    """The keyword options of ``cls``'s constructor whose hints are simple scalars, with their
    :class:`OptionType`; ``{}`` for anything but a class, or one whose signature or hints
    cannot be read."""
    if not isinstance(cls, type):
        return {}
    init = getattr(cls, "__init__", None)
    if init is None or init is object.__init__:
        return {}
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return {}
    hints = _hints(init)
    out: dict[str, OptionType] = {}
    for name, param in params.items():
        if param.kind in _PARAMETER_KINDS and name in hints:
            found = option_type(hints[name])
            if found is not None:
                out[name] = found
    return out


def _shown(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


def typed_options(kind: str, name: str | None, cls: Any, raw: Mapping[str, str], *,
                  where: str = "", guess: Callable[[str, str], Any] = coerce_option
                  ) -> dict[str, Any]:
    """``raw`` (a spec's ``key -> text``) typed for ``cls`` (the class ``name`` registers as a
    ``kind`` plugin; ``None`` or an instance: every option is guessed), keys as given (a key's
    hint is looked up with ``-`` read as ``_``).  An option with a ``config_schema`` field or
    without a simple hint gets ``guess(text, key)`` (default:
    :func:`~stylebridge.core.options.coerce_option`).  Raises :class:`OptionTypeError`
    (``metric 'mine' option k=2.5: expected an integer``; ``where``: `` (from PKG)`` after the
    name) and, for NaN/Inf, ``coerce_option``'s :class:`SpecError`."""
    hinted = option_types(cls)
    schema = getattr(cls, "config_schema", None) if isinstance(cls, type) else None
    if not isinstance(schema, Mapping):
        schema = {}
    out: dict[str, Any] = {}
    for key, text in raw.items():
        attr = key.replace("-", "_")
        wanted = None if (key in schema or attr in schema) else hinted.get(attr)
        if wanted is None:
            out[key] = guess(text, key)
            continue
        try:
            out[key] = wanted.convert(text, key)
        except ValueError:
            label = f"{kind.replace('_', ' ')} {name or getattr(cls, 'name', '')!r}{where}"
            raise OptionTypeError(f"{label} option {key}={_shown(text)}: expected "
                                  f"{wanted.describe()}") from None
    return out


def spec_class(kind: str, spec: Any, registry: Any) -> tuple[str | None, Any]:
    """The plugin name a parsed spec (``PluginSpec``/``LossSpec``) builds and its registered
    object (a class, an instance, or ``None`` when it cannot be told: the build says why):
    the spec's ``NAME``; for the name of a published weights entry (``--method pixar``) the
    plugin the manifest gives it; for a checkpoint alone, its header's plugin."""
    def registered(plugin: str | None) -> Any:
        if not plugin:
            return None
        try:
            return registry.get(kind, plugin).obj
        except StylebridgeError:
            return None

    name = getattr(spec, "name", None)
    if name:
        obj = registered(name)
        if obj is not None:
            return name, obj
        try:
            listed = weights_mod.WeightsManager().entries.get(name)
        except (StylebridgeError, OSError, ValueError):
            listed = None
        if listed is not None and listed.kind == kind and listed.plugin != name:
            return listed.plugin, registered(listed.plugin)
        return name, None
    path = getattr(spec, "path", None)
    if path is None:
        return None, None
    try:
        plugin = read_header(path).plugin
    except (StylebridgeError, OSError, ValueError):
        return None, None
    return plugin, registered(plugin)


def spec_options(kind: str, spec: Any, registry: Any, *,
                 guess: Callable[[str, str], Any] = coerce_option) -> dict[str, Any]:
    """The options of a parsed ``spec``, typed for the class it builds (:func:`spec_class`,
    :func:`typed_options`); guessed when that class cannot be told."""
    name, obj = spec_class(kind, spec, registry)
    where = registry.where(kind, name) if name and obj is not None else ""
    return typed_options(kind, name, obj if isinstance(obj, type) else None,
                         getattr(spec, "options", {}), where=where, guess=guess)
