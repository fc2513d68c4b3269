"""Typed configs from Python: values of the obvious other type are taken, wrong ones named.

The pipelines' configs annotate paths as :class:`~pathlib.Path`; from Python a user passes
``out="gen_out"`` as readily as ``Path("gen_out")`` (the README's examples pass strings for
the other paths), and ``"gen_out".mkdir`` was an AttributeError traceback.
:func:`coerce_path_fields` makes every ``Path`` field of a config dataclass accept a string,
and (:func:`check_field_types`) every other field read what its annotation says:

* a ``str`` field (a spec, a device) takes a path or a ``torch.device`` (the tiny preset
  hands out paths: ``encoder=preset.fse``);
* a list field takes one value for a list of one (``methods="pixar.safetensors"`` was read
  one character at a time);
* ``int`` / ``float`` / ``bool`` fields refuse strings, and booleans where a number is meant,
  in one line naming the field (``resume="no"`` was true; ``batch="4"`` a TypeError later);
  numpy and 0-d torch numbers are taken as numbers;
* a path or ``str`` field refuses anything else, and a list field a value that is not a list
  (a PIL image, an array, a tensor) or an item of the wrong type, in one line naming the field
  (:class:`~stylebridge.errors.InputTypeError`; ``images=[<PIL image>]`` failed deep in the
  run, ``encoder=5`` when the spec was parsed); a picture in memory goes through
  :class:`stylebridge.Adapter`, and the photo fields say so;
* seeds and layer lists (``str | Sequence[int]``) take their text form, one integer or a
  sequence of integers (``seeds=[1.5]`` was seed 1).
"""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

#: field annotations (strings, under ``from __future__ import annotations``) read as paths
_PATH_TYPES = {"Path", "Path | None", "pathlib.Path", "Optional[Path]"}


def coerce_paths(config: Any) -> None:
    """Turn the ``str`` (or ``os.PathLike``) values of ``config``'s ``Path`` fields into
    :class:`Path` (frozen dataclasses too)."""
    for f in fields(config):
        annotation = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
        if annotation.replace(" ", "") not in {t.replace(" ", "") for t in _PATH_TYPES}:
            continue
        value = getattr(config, f.name)
        if isinstance(value, str | os.PathLike) and not isinstance(value, Path):
            object.__setattr__(config, f.name, Path(value))


def _kinds(annotation: str) -> tuple[str, bool]:
    """``("int", True)`` for ``"int | None"``: the annotation without ``None``, and whether
    ``None`` is allowed."""
    parts = [a.strip() for a in annotation.replace(" ", "").split("|")]
    optional = "None" in parts
    return "|".join(a for a in parts if a != "None"), optional


_LISTS = {"Sequence[str]", "list[str]", "Sequence[str|Path]", "list[str|Path]", "list[Path]"}
_NUMBERS = {"int", "float", "float|Sequence[float]"}
_INTEGER_LISTS = {"str|Sequence[int]", "str|list[int]"}
#: the types of a picture in memory (PIL, numpy, torch), by class name: none is imported here
_PICTURES = ("Image", "ndarray", "Tensor", "Parameter")


def _shown_type(value: Any) -> str:
    """``Image`` / ``Tensor`` / ``int``: the type of a wrong value, as a refusal names it."""
    return type(value).__name__


def _is_picture(value: Any) -> bool:
    """A PIL image, a numpy array or a tensor (a picture in memory, not a file); an array of
    strings (``df["path"].values``) is a list of file names, not a picture."""
    if getattr(getattr(value, "dtype", None), "kind", "") in ("U", "S", "O"):
        return False
    return any(c.__name__ in _PICTURES for c in type(value).__mro__)


def _wrong(where: str, want: str, value: Any) -> Exception:
    """The one-line refusal of ``value`` for field ``where``; a picture given for photo files
    is pointed to :class:`stylebridge.Adapter`."""
    from stylebridge.errors import InputTypeError

    hint = ""
    if _is_picture(value) and "path" in want:
        hint = ("; a picture in memory goes through stylebridge.Adapter(...).run(images01), "
                "or save it first")
    return InputTypeError(f"{where}: expected {want}, got {_shown_type(value)}{hint}")


def _items(where: str, value: Any, want: str) -> list[Any]:
    """``value`` as a list: one path or string is a list of one; anything but a list, a tuple,
    a set, a range or another plain iterable of items is refused."""
    from collections.abc import Iterable, Mapping

    if isinstance(value, str) or hasattr(value, "__fspath__"):
        return [value]
    if (_is_picture(value) or isinstance(value, Mapping | bytes)
            or not isinstance(value, Iterable)):
        raise _wrong(where, f"a list of {want}", value)
    if hasattr(value, "tolist"):  # a numpy array of names: Python strings
        return list(value.tolist())
    return list(value)


def _whole(value: Any) -> Any:
    """``2.0`` → 2 and ``"7"`` → 7 (what ``int()`` took before, without rounding ``1.5``);
    anything else as is."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


def _integers(where: str, value: Any) -> str | list[int]:
    """Seeds or layers: the text form as is; one integer → a list of one; a sequence of
    integers (numpy / 0-d torch ones too, a 1-d integer array or tensor) → a list of ints."""
    import numbers

    from stylebridge.errors import InputTypeError

    if isinstance(value, str):
        return value
    value = _number(value)  # a 0-d tensor or numpy number: the number
    if _is_picture(value) and getattr(value, "ndim", None) == 1:  # np.arange / torch.arange
        value = value.tolist()
    items = [value] if not hasattr(value, "__iter__") else _items(where, value, "integers")
    items = [_whole(_number(v)) for v in items]
    bad = [v for v in items if isinstance(v, bool) or not isinstance(v, numbers.Integral)]
    if bad:  # 1.5 was read as 1, True as 1
        shown = repr(bad[0]) if len(repr(bad[0])) <= 40 else _shown_type(bad[0])
        raise InputTypeError(f"{where}: expected text like '0-7' or integers, got {shown} "
                             f"({_shown_type(bad[0])})")
    return [int(v) for v in items]


def _number(value: Any) -> Any:
    """A numpy scalar or a 0-d tensor as the Python number it holds; anything else as is."""
    item = getattr(value, "item", None)
    if item is not None and getattr(value, "ndim", None) == 0 and not isinstance(value, str):
        return item()
    return value


def check_field_types(config: Any) -> None:
    """Read ``config``'s fields as their annotations say (see the module doc); one-line
    :class:`~stylebridge.errors.StylebridgeError` for a value of the wrong type."""
    import numbers

    from stylebridge.errors import StylebridgeError

    for f in fields(config):
        annotation = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
        kind, optional = _kinds(annotation)
        value = getattr(config, f.name)
        if value is None:
            continue
        where = f"{type(config).__name__}.{f.name}"
        if kind == "str" and not isinstance(value, str):
            if hasattr(value, "__fspath__") or type(value).__name__ == "device":
                object.__setattr__(config, f.name, str(value))
            else:
                raise _wrong(where, "a string (a name, a spec or a path)", value)
        elif kind.replace("pathlib.", "") == "Path" and not isinstance(value, Path):
            raise _wrong(where, "a path (str or Path)", value)
        elif kind in _INTEGER_LISTS:
            object.__setattr__(config, f.name, _integers(where, value))
        elif kind in _LISTS:
            paths = "Path" in kind
            want = "paths (str or Path)" if paths else "strings"
            value = _items(where, value, want)
            for item in value:
                if not (isinstance(item, str) or hasattr(item, "__fspath__")):
                    raise _wrong(f"{where} item", "a path (str or Path)" if paths
                                 else "a string", item)
            if paths and "str" not in kind:
                value = [Path(v) for v in value]
            elif kind.endswith("[str]"):
                value = [str(v) if hasattr(v, "__fspath__") else v for v in value]
            object.__setattr__(config, f.name, list(value))
        elif kind in _NUMBERS or kind == "bool":
            value = _number(value)
            if kind == "bool":
                ok = isinstance(value, bool)
                want = "True or False"
            elif kind == "int":
                ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
                want = "an integer"
            elif kind == "float":
                ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
                want = "a number"
                value = float(value) if ok else value
            else:  # float | Sequence[float] (strengths)
                items = [_number(v) for v in value] if isinstance(value, list | tuple) else None
                ok = (items is not None and all(isinstance(v, numbers.Real)
                                                and not isinstance(v, bool) for v in items)) or (
                    isinstance(value, numbers.Real) and not isinstance(value, bool))
                want = "a number or a list of numbers"
                if ok:
                    value = [float(v) for v in items] if items is not None else float(value)
            if not ok:
                shown = repr(value) if len(repr(value)) <= 40 else type(value).__name__
                none = " (or None)" if optional else ""
                raise StylebridgeError(f"{where}: expected {want}{none}, got {shown} "
                                       f"({type(value).__name__})")
            object.__setattr__(config, f.name, int(value) if kind == "int" else value)


def coerce_path_fields(cls: type[T]) -> type[T]:
    """Class decorator, placed *under* ``@dataclass``: its ``__init__`` then turns strings
    given for ``Path`` fields into paths (an existing ``__post_init__`` still runs)."""
    original = cls.__dict__.get("__post_init__")

    def __post_init__(self: Any) -> None:
        coerce_paths(self)
        check_field_types(self)
        if original is not None:
            original(self)
        else:
            parent = super(cls, self)  # type: ignore[misc]
            if hasattr(parent, "__post_init__"):
                parent.__post_init__()

    cls.__post_init__ = __post_init__  # type: ignore[attr-defined]
    return cls


__all__ = ["check_field_types", "coerce_path_fields", "coerce_paths"]
