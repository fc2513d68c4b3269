"""Collects plugins through the hooks and looks them up by kind and name."""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from stylebridge.core import interfaces as itf
from stylebridge.errors import RegistryError
from stylebridge.registry import hookspecs

ENTRY_POINT_GROUP = "stylebridge"
BUILTIN_PROVIDER = "stylebridge"

# kind -> (hook name, base class, registered as class?)
KINDS: dict[str, tuple[str, type, bool]] = {
    "encoder": ("register_encoders", itf.Encoder, True),
    "domain_method": ("register_domain_methods", itf.DomainMethod, True),
    "loss": ("register_losses", itf.Loss, True),
    "metric": ("register_metrics", itf.Metric, True),
    "calibrator": ("register_calibrators", itf.Calibrator, True),
    "converter": ("register_converters", itf.Converter, False),
    "command": ("register_commands", itf.Command, False),
}

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")


@dataclass(frozen=True)
class Entry:
    """One registered plugin object."""

    kind: str
    name: str
    obj: Any
    provider: str

    @property
    def description(self) -> str:
        text = (getattr(self.obj, "description", "") or getattr(self.obj, "help", "")
                or (self.obj.__doc__ or ""))
        return text.strip().splitlines()[0] if text.strip() else ""


@dataclass(frozen=True)
class PluginFailure:
    """A third-party plugin package that could not be imported (reported, not fatal)."""

    provider: str
    entry_point: str
    error: str


def _builtin_modules() -> list[ModuleType]:
    from stylebridge.plugins import BUILTIN_PLUGIN_MODULES

    return [importlib.import_module(name) for name in BUILTIN_PLUGIN_MODULES]


class Registry:
    """All plugins of one plugin manager, by kind and name.

    ``Registry()`` loads the built-in plugins and every package that declares an
    entry point in the ``stylebridge`` group; tests pass ``entry_points=False``
    and ``extra_plugins`` to build an isolated one.
    """

    def __init__(
        self,
        *,
        builtins: bool = True,
        entry_points: bool = True,
        extra_plugins: Sequence[object] = (),
    ) -> None:
        self.plugin_manager = pluggy.PluginManager(hookspecs.PROJECT)
        self.plugin_manager.add_hookspecs(hookspecs)
        self._providers: dict[str, str] = {}  # plugin name in pm -> provider package
        self.failures: list[PluginFailure] = []
        if builtins:
            for module in _builtin_modules():
                self._add(module, module.__name__, BUILTIN_PROVIDER)
        if entry_points:
            self._load_entry_points()
        for plugin in extra_plugins:
            provider = getattr(plugin, "__name__", type(plugin).__name__)
            self._add(plugin, provider, provider)
        self._entries: dict[str, dict[str, Entry]] | None = None

    # -- loading ---------------------------------------------------------------------------------
    def _add(self, plugin: object, name: str, provider: str) -> None:
        if self.plugin_manager.is_registered(plugin):
            return
        registered = self.plugin_manager.register(plugin, name=name)
        if registered is None:  # blocked name
            return
        self._providers[registered] = provider

    def _load_entry_points(self) -> None:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist is not None else ep.value.split(":")[0]
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken third-party package must not break the CLI
                self.failures.append(PluginFailure(dist, ep.name, f"{type(exc).__name__}: {exc}"))
                continue
            self._add(plugin, f"{dist}:{ep.name}", dist)

    def add_plugin(self, plugin: object, provider: str) -> None:
        """Register another plugin module/object at run time (invalidates the cache)."""
        self._add(plugin, provider, provider)
        self._entries = None

    def _collect(self) -> dict[str, dict[str, Entry]]:
        entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        for kind, (hook_name, base, as_class) in KINDS.items():
            hook = getattr(self.plugin_manager.hook, hook_name)
            for impl in hook.get_hookimpls():  # registration order
                provider = self._providers.get(impl.plugin_name, impl.plugin_name)

                def register(obj: Any, name: str | None = None, *, _kind: str = kind,
                             _base: type = base, _as_class: bool = as_class,
                             _provider: str = provider) -> None:
                    self._register_one(entries[_kind], _kind, _base, _as_class, _provider, obj, name)

                impl.function(register=register)
        return entries

    @staticmethod
    def _register_one(table: dict[str, Entry], kind: str, base: type, as_class: bool,
                      provider: str, obj: Any, name: str | None) -> None:
        ok = (isinstance(obj, type) and issubclass(obj, base)) if as_class else isinstance(obj, base)
        if not ok:
            what = f"a subclass of {base.__name__}" if as_class else f"an instance of {base.__name__}"
            raise RegistryError(f"plugin {provider!r} registered {obj!r} as a {kind}, "
                                f"but a {kind} must be {what}")
        name = name or getattr(obj, "name", "")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise RegistryError(f"plugin {provider!r} registered a {kind} with invalid name {name!r} "
                                "(use lower-case letters, digits, '_', '-', '.')")
        if name in table:
            other = table[name].provider
            raise RegistryError(f"{kind} {name!r} is registered twice: by {other!r} and by {provider!r}")
        table[name] = Entry(kind=kind, name=name, obj=obj, provider=provider)

    @property
    def entries(self) -> dict[str, dict[str, Entry]]:
        if self._entries is None:
            self._entries = self._collect()
        return self._entries

    # -- lookup ----------------------------------------------------------------------------------
    def names(self, kind: str) -> list[str]:
        return sorted(self._table(kind))

    def _table(self, kind: str) -> dict[str, Entry]:
        if kind not in KINDS:
            raise RegistryError(f"unknown plugin kind {kind!r}; kinds are: {', '.join(KINDS)}")
        return self.entries[kind]

    def get(self, kind: str, name: str) -> Entry:
        table = self._table(kind)
        if name in table:
            return table[name]
        label = kind.replace("_", " ")
        known = sorted(table)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        listing = ", ".join(known) if known else "none are installed"
        raise RegistryError(f"unknown {label} {name!r}{hint} (known: {listing})")

    def create(self, kind: str, name: str, **config: Any) -> Any:
        """Instantiate a class-registered plugin from its config."""
        entry = self.get(kind, name)
        if not isinstance(entry.obj, type):
            return entry.obj
        try:
            return entry.obj(**config)
        except TypeError as exc:
            raise RegistryError(f"cannot build {kind.replace('_', ' ')} {name!r} from config: {exc}") from None

    def load(self, kind: str, path: str | Path, *, name: str | None = None,
             device: str = "cpu", **overrides: Any) -> Any:
        """Recreate a plugin object from a stylebridge checkpoint (header → class → weights)."""
        from stylebridge.core.checkpoint import load_checkpoint
        from stylebridge.errors import CheckpointError

        header, tensors = load_checkpoint(path, kind=kind, plugin=name, device=device)
        obj = self.create(kind, header.plugin, **{**header.config, **overrides})
        try:
            result = obj.load_state_dict(tensors, strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()
            detail = " ".join(line.strip() for line in first[:3])
            raise CheckpointError(f"weights do not fit {kind} {header.plugin!r}: {detail}", path=path) from None
        del result
        return obj

    def all_entries(self) -> Iterable[Entry]:
        for kind in KINDS:
            yield from (self.entries[kind][n] for n in sorted(self.entries[kind]))


_REGISTRY: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry (built-ins + installed entry points), built on first use."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = Registry()
    return _REGISTRY


def reset_registry() -> None:
    """Forget the process-wide registry (tests, or after installing a plugin package)."""
    global _REGISTRY
    _REGISTRY = None
