"""The plugin registry (pluggy).  Built-in plugins use the same hooks as third-party ones."""

from stylebridge.registry.hookspecs import hookimpl, hookspec
from stylebridge.registry.registry import (
    KINDS,
    Entry,
    Registry,
    get_registry,
    reset_registry,
)

__all__ = ["KINDS", "Entry", "Registry", "get_registry", "hookimpl", "hookspec", "reset_registry"]
