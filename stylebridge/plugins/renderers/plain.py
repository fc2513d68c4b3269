"""Registers the plain renderer (:class:`stylebridge.core.synthesis.PlainRenderer`) as ``plain``."""

from __future__ import annotations

from typing import Any

from stylebridge.core.synthesis import PlainRenderer
from stylebridge.registry import hookimpl


@hookimpl
def register_renderers(register: Any) -> None:
    register(PlainRenderer)


__all__ = ["PlainRenderer"]
