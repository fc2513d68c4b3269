"""Declarative config schemas: every plugin config is checked before anything is built.

A plugin declares ``config_schema`` (a mapping ``key -> Field``) on its class; the registry
(:meth:`stylebridge.registry.registry.Registry.create` / ``load``) and the generator config
(:class:`stylebridge.core.stylegan2.config.GeneratorConfig`) apply it before a constructor
runs, so a checkpoint header cannot make a command allocate without bound
(``n_mlp=10**9``, ``units=[10**6]*4``, a channel count of 2**31).  The check is:

* types: an ``int`` field takes an int (not ``32.5``, not ``"32"``, not ``True``); a
  ``float`` field takes an int or float, always finite; ``bool`` takes true/false;
* ranges: ``lo..hi`` inclusive, optionally a power of two or even;
* lists: at most ``max_len`` items, each in range; ``channels``: a resolution → width map.

Every float anywhere in a config (schema or not) must be finite (:func:`check_finite`).
Errors are :class:`ConfigSchemaError` (a ``ValueError``) naming the key and the allowed range;
callers add the file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

FieldType = Literal["int", "float", "bool", "str", "ints", "channels", "any"]


class ConfigSchemaError(ValueError):
    """A config value of the wrong type, out of its range, or not finite."""


@dataclass(frozen=True)
class Field:
    """One config key: its type and allowed values.

    ``lo``/``hi``: inclusive bounds (for ``ints``/``channels``: of each item);
    ``pow2``: a power of two; ``even``: an even number; ``choices``: the allowed strings;
    ``max_len``/``length``: bounds on a list's length; ``nullable``: ``None`` is allowed;
    ``text_ok``: an ``ints`` field may also be a string the plugin parses (``"1,2,5"``),
    an ``int`` field a string of digits is still refused.
    """

    type: FieldType
    lo: float | None = None
    hi: float | None = None
    pow2: bool = False
    even: bool = False
    choices: tuple[str, ...] = ()
    max_len: int = 64
    length: int | None = None
    nullable: bool = False
    text_ok: bool = False

    def describe(self) -> str:
        if self.type == "bool":
            return "true or false"
        if self.type == "str":
            return f"one of {', '.join(self.choices)}" if self.choices else "a string"
        what = {"int": "an integer", "float": "a finite number", "ints": "a list of integers",
                "channels": "a map resolution -> width", "any": "a value"}[self.type]
        if self.pow2:
            what += " power of two"
        if self.even:
            what = "an even integer" if self.type == "int" else what + " (even)"
        if self.lo is not None or self.hi is not None:
            lo = "-inf" if self.lo is None else _num(self.lo)
            hi = "inf" if self.hi is None else _num(self.hi)
            what += f" in {lo}..{hi}"
        if self.type == "ints":
            what += f", {self.length} items" if self.length else f", at most {self.max_len} items"
        if self.nullable:
            what += " (or null)"
        return what


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _in_range(f: Field, v: float) -> bool:
    if f.lo is not None and v < f.lo:
        return False
    if f.hi is not None and v > f.hi:
        return False
    if f.pow2 and (v < 1 or int(v) & (int(v) - 1)):
        return False
    return not (f.even and int(v) % 2)


def check_value(key: str, value: Any, f: Field) -> None:
    """Raise :class:`ConfigSchemaError` unless ``value`` fits ``f``."""
    def bad() -> ConfigSchemaError:
        return ConfigSchemaError(f"config {key}={_short(value)}: expected {f.describe()}")

    if value is None:
        if f.nullable or f.type == "any":
            return
        raise bad()
    if f.type == "any":
        check_finite(key, value)
    elif f.type == "int":
        if not _is_int(value) or not _in_range(f, value):
            raise bad()
    elif f.type == "float":
        if not (_is_int(value) or isinstance(value, float)) or not math.isfinite(value) \
                or not _in_range(f, value):
            raise bad()
    elif f.type == "bool":
        if not (isinstance(value, bool) or (_is_int(value) and value in (0, 1))
                or (isinstance(value, str) and value.strip().lower()
                    in {"true", "false", "yes", "no", "on", "off", "1", "0"})):
            raise bad()
    elif f.type == "str":
        if not isinstance(value, str) or (f.choices and value not in f.choices):
            raise bad()
    elif f.type == "ints":
        if isinstance(value, str) and f.text_ok:
            if len(value) > 4096:
                raise bad()
            return
        if _is_int(value) and f.text_ok:
            value = [value]
        if not isinstance(value, list | tuple) or len(value) > f.max_len \
                or (f.length is not None and len(value) != f.length) \
                or not all(_is_int(v) and _in_range(f, v) for v in value):
            raise bad()
    elif f.type == "channels":
        if not isinstance(value, Mapping) or len(value) > f.max_len:
            raise bad()
        for res, width in value.items():
            try:
                r = int(res)
            except (TypeError, ValueError):
                raise bad() from None
            if r < 4 or r & (r - 1) or r > 2**20 or not _is_int(width) or not _in_range(f, width):
                raise bad()


def check_finite(key: str, value: Any, depth: int = 0) -> None:
    """Refuse NaN/Inf anywhere in ``value`` (floats, lists, dicts)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigSchemaError(f"config {key}={value!r}: expected a finite number")
    if depth > 32:
        return
    if isinstance(value, list | tuple):
        for item in value:
            check_finite(key, item, depth + 1)
    elif isinstance(value, Mapping):
        for k, item in value.items():
            check_finite(f"{key}.{k}", item, depth + 1)


def validate_config(schema: Mapping[str, Field], config: Mapping[str, Any]) -> None:
    """Check every key of ``config`` that ``schema`` names, and every float for finiteness.

    Keys the schema does not name are left to the constructor (which refuses unknown ones).
    """
    for key, value in config.items():
        f = schema.get(key)
        if f is None:
            check_finite(str(key), value)
        else:
            check_value(str(key), value, f)


# Shared limits (SECURITY.md states them) --------------------------------------------------------
#: generator / domain sizes: powers of two in this range
SIZE = Field("int", 4, 4096, pow2=True)
#: latent width (512 for every released StyleGAN2)
STYLE_DIM = Field("int", 1, 4096)
#: convolution widths (512 at most upstream)
WIDTH = Field("int", 1, 4096)
#: per-resolution widths of the generator
CHANNELS = Field("channels", 1, 4096, max_len=12, nullable=True)
#: rows of w+ (18 at 1024 px; 2·log2(4096) - 2 = 22 at most)
N_LATENT = Field("int", 1, 22)
#: style-layer indices (26 at 1024 px, 32 at 4096 px)
LAYER_INDEX = Field("ints", 0, 63, max_len=64, nullable=True, text_ok=True)

__all__ = ["CHANNELS", "LAYER_INDEX", "N_LATENT", "SIZE", "STYLE_DIM", "WIDTH",
           "ConfigSchemaError", "Field", "check_finite", "check_value", "validate_config"]
