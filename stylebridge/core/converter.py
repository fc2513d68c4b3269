"""The converter interface: a plugin that turns an upstream checkpoint file into a
stylebridge checkpoint (re-exported by :mod:`stylebridge.core.interfaces`, where it was)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from stylebridge.core.plugin import Plugin


@dataclass(frozen=True)
class ConversionResult:
    """What a converter wrote."""

    path: Path
    kind: str
    plugin: str
    n_tensors: int
    notes: tuple[str, ...] = ()


class Converter(Plugin, ABC):
    """Turns an upstream checkpoint file into a stylebridge checkpoint.

    ``convert`` should start with ``self.check_options(options, src)`` so that a
    misspelled ``-o`` option is an error, not silently ignored, and read typed values
    with :meth:`option`.
    """

    source: ClassVar[str] = ""  # what file it reads, for `stylebridge plugins` / `convert --help`
    #: the ``-o KEY=VALUE`` options it accepts
    accepted_options: ClassVar[frozenset[str]] = frozenset()
    #: those whose value is another file it writes (``generator=PATH``): ``convert`` checks
    #: them as it checks DST (no overwrite without ``--force``, never SRC or DST)
    output_options: ClassVar[frozenset[str]] = frozenset()

    @abstractmethod
    def convert(self, src: Path, dst: Path, **options: Any) -> ConversionResult: ...

    def check_options(self, options: Mapping[str, Any], src: Path) -> None:
        from stylebridge.errors import ConversionError

        unknown = sorted(set(options) - set(self.accepted_options))
        if unknown:
            raise ConversionError(f"unknown converter option(s) {', '.join(unknown)} for "
                                  f"{self.name} (known: "
                                  f"{', '.join(sorted(self.accepted_options)) or 'none'})",
                                  path=src)

    @staticmethod
    def option(options: Mapping[str, Any], key: str, kind: type, default: Any, src: Path) -> Any:
        """``options[key]`` as ``kind`` (bool, int, float or str), or ``default``; one-line
        errors naming the option and the source file."""
        from stylebridge.core.options import as_bool
        from stylebridge.errors import ConversionError

        if key not in options or options[key] is None:
            return default
        value = options[key]
        try:
            return as_bool(value, key) if kind is bool else kind(value)
        except (TypeError, ValueError):
            raise ConversionError(f"option {key}={value!r}: expected {kind.__name__}",
                                  path=src) from None


__all__ = ["ConversionResult", "Converter"]
