"""Typed configs from Python: a path given as a string is a path.

The pipelines' configs annotate paths as :class:`~pathlib.Path`; from Python a user passes
``out="gen_out"`` as readily as ``Path("gen_out")`` (the README's examples pass strings for
the other paths), and ``"gen_out".mkdir`` was an AttributeError traceback.
:func:`coerce_path_fields` makes every ``Path`` field of a config dataclass accept a string.
"""

from __future__ import annotations

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
        if (value is not None and not isinstance(value, Path) and isinstance(value, str | Path)) or (value is not None and hasattr(value, "__fspath__") and not isinstance(value, Path)):
            object.__setattr__(config, f.name, Path(value))


def coerce_path_fields(cls: type[T]) -> type[T]:
    """Class decorator, placed *under* ``@dataclass``: its ``__init__`` then turns strings
    given for ``Path`` fields into paths (an existing ``__post_init__`` still runs)."""
    original = cls.__dict__.get("__post_init__")

    def __post_init__(self: Any) -> None:
        coerce_paths(self)
        if original is not None:
            original(self)
        else:
            parent = super(cls, self)  # type: ignore[misc]
            if hasattr(parent, "__post_init__"):
                parent.__post_init__()

    cls.__post_init__ = __post_init__  # type: ignore[attr-defined]
    return cls


__all__ = ["coerce_path_fields", "coerce_paths"]
