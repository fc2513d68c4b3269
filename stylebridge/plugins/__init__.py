"""Built-in plugins.  They register through the same hooks as third-party packages.

Every module in this package is a plugin module (found with :mod:`pkgutil`, in
name order); modules whose name starts with ``_`` are helpers, not plugins.
"""

from __future__ import annotations

import pkgutil


def _plugin_modules() -> list[str]:
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    return [f"{__name__}.{name}" for name in names]


BUILTIN_PLUGIN_MODULES: list[str] = [*_plugin_modules(), "stylebridge.cli.commands"]
