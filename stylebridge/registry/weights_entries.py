"""The weights catalogue's entries and where the cache lives: :class:`WeightsEntry` (one
checkpoint of ``weights_manifest.json``: sources, size, sha256, converter, licence), the
manifest and its named sets, and :func:`default_home` (``$STYLEBRIDGE_HOME``, else
``$XDG_CACHE_HOME/stylebridge``, else ``~/.cache/stylebridge``; one line when there is no home
folder).  :mod:`stylebridge.registry.weights` (the manager) re-exports them."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from stylebridge.registry.weights_checks import WeightsError


@dataclass(frozen=True)
class WeightsEntry:
    """One manifest entry."""

    name: str
    kind: str
    plugin: str
    filename: str
    converter: str | None = None
    url: str | None = None
    size: int | None = None
    sha256: str | None = None
    #: the leading hex digits of the sha256 that a file name publishes (torchvision's
    #: ``alexnet-owt-7be5be79.pth``, checked as torch.hub does) when no full sha256 is published
    sha256_prefix: str | None = None
    source: str = ""
    licence: str = ""
    convert_options: dict[str, Any] = field(default_factory=dict)
    sources: tuple[dict[str, Any], ...] = ()
    noncommercial: bool = False
    note: str = ""

    @property
    def all_sources(self) -> list[dict[str, Any]]:
        """The manifest's ``sources``, or the single ``url`` of an older-style entry."""
        if self.sources:
            return [dict(s) for s in self.sources]
        return [{"type": "url", "url": self.url}] if self.url else []

    def __hash__(self) -> int:
        return hash(self.name)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WeightsEntry:
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in data.items() if k in known}
        values["sources"] = tuple(dict(src) for src in values.get("sources") or ())
        return cls(**values)


#: why there is no weights cache: no ``$STYLEBRIDGE_HOME``/``$XDG_CACHE_HOME`` and no home
NO_HOME = ("no home folder (HOME unset, user has no passwd entry): set STYLEBRIDGE_HOME "
           "(or XDG_CACHE_HOME) to a writable folder")


def short_path(path: str | Path, head: int = 60, tail: int = 40) -> str:
    """``path`` for a message: a path longer than ``head + tail`` characters keeps its first
    ``head`` and last ``tail`` (a 5000-character ``STYLEBRIDGE_HOME`` made a 5 KB line)."""
    text = str(path)
    return text if len(text) <= head + tail else f"{text[:head]}…{text[-tail:]}"


def _expanded(path: str) -> Path:
    """``path`` with a leading ``~`` expanded; :data:`NO_HOME` when there is no home."""
    try:
        return Path(path).expanduser()
    except RuntimeError:  # "Could not determine home directory."
        raise WeightsError(NO_HOME) from None


def default_home() -> Path:
    """The weights cache: ``$STYLEBRIDGE_HOME``, else ``$XDG_CACHE_HOME/stylebridge``, else
    ``~/.cache/stylebridge``; a one-line :class:`WeightsError` (:data:`NO_HOME`) when none
    is set and the home folder is unknown (``HOME`` unset, a uid without a passwd entry: a
    container run as ``--user 12345``)."""
    env = os.environ.get("STYLEBRIDGE_HOME", "").strip()
    if env:
        return _expanded(env)
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (_expanded(xdg) if xdg else _expanded("~") / ".cache") / "stylebridge"


def _manifest_data() -> dict[str, Any]:
    text = resources.files("stylebridge.registry").joinpath("weights_manifest.json").read_text()
    return json.loads(text)


def load_manifest() -> list[WeightsEntry]:
    return [WeightsEntry.from_dict(d) for d in _manifest_data()["weights"]]


def load_sets() -> dict[str, list[str]]:
    """Named sets of entries (``demo``), from the manifest."""
    return {k: list(v) for k, v in _manifest_data().get("sets", {}).items()}


__all__ = ["NO_HOME", "WeightsEntry", "default_home", "load_manifest", "load_sets", "short_path"]
