"""Plugin options from command-line strings: ``coerce_option`` (the guess from the text alone)
and ``as_bool``, with the spellings both share.

The registry types a spec's options by the plugin constructor's hints first
(:mod:`stylebridge.registry.typed_options`); ``coerce_option`` is what an option without a
usable hint gets (and an option with a ``config_schema`` field, which then checks it)."""

from __future__ import annotations

import math

from stylebridge.errors import SpecError

#: the spellings of a true and of a false boolean option (``as_bool``; case and spaces ignored)
TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
FALSE_WORDS = frozenset({"false", "no", "off", "0"})
#: the spellings of ``None`` for an option whose type allows it (``opt: int | None``)
NONE_WORDS = frozenset({"none", "null"})


def coerce_option(value: str, key: str = "") -> bool | int | float | str:
    """``"true"``→True, ``"3"``→3, ``"0.5"``→0.5, otherwise the string.

    ``nan``, ``inf`` and ``-inf`` (any spelling float() takes) are refused with a one-line
    :class:`~stylebridge.errors.SpecError` naming ``key``: no plugin option is ever NaN."""
    low = value.lower()
    if low in {"true", "yes", "on"}:
        return True
    if low in {"false", "no", "off"}:
        return False
    try:
        return int(value)
    except ValueError:
        pass
    try:
        number = float(value)
    except ValueError:
        return value
    if not math.isfinite(number):
        name = f"{key}={value}" if key else repr(value)
        raise SpecError(f"option {name}: expected a finite number (NaN and Inf are refused)")
    return number


def as_bool(value: object, option: str) -> bool:
    """A boolean plugin option: ``True``/``False`` or true/false, yes/no, on/off, 1/0.

    Anything else is refused (``bool("nope")`` would be ``True``).
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in TRUE_WORDS:
            return True
        if low in FALSE_WORDS:
            return False
    raise ValueError(f"{option}={value!r}: expected true or false (several options are "
                     "separated by commas: a=1,b=2)")
