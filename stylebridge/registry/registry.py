"""Collects plugins through the hooks and looks them up by kind and name."""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import inspect
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pluggy
import torch

from stylebridge.core import interfaces as itf
from stylebridge.errors import RegistryError, StylebridgeError
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
    "renderer": ("register_renderers", itf.Renderer, True),
    "converter": ("register_converters", itf.Converter, False),
    # commands are argparse objects: the CLI layer checks them against cli.base.Command
    "command": ("register_commands", object, False),
    # `stylebridge COMMAND TARGET` (train domain): registered as COMMAND.TARGET, checked by
    # the CLI against cli.base.Target
    "command_target": ("register_command_targets", object, False),
}

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")
#: a command target's own name: no '.', which joins it to its command (``train.domain``)
_TARGET_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")


@dataclass(frozen=True)
class Entry:
    """One registered plugin object."""

    kind: str
    name: str
    obj: Any
    provider: str
    #: the entry point (of an installed package) whose hook registered it; None for
    #: built-ins and ``extra_plugins``
    entry_point: str | None = None

    @property
    def description(self) -> str:
        text = (getattr(self.obj, "description", "") or getattr(self.obj, "help", "")
                or (self.obj.__doc__ or ""))
        first = text.strip().splitlines()[0] if text.strip() else ""
        # a docstring's first line reads as the other descriptions do: no reST literals, no
        # closing full stop
        return first.replace("``", "").rstrip(".")


@dataclass(frozen=True)
class PluginFailure:
    """A third-party plugin package, or one of its hooks, that failed (reported, not fatal).

    An installed package that cannot be imported, has a hook with a wrong signature,
    raises in a hook, or registers something invalid or under a taken name loses that
    hook's registrations; every other plugin keeps working.
    """

    provider: str
    entry_point: str
    error: str


def builtin_entry_points() -> list[importlib.metadata.EntryPoint]:
    """stylebridge's own entry points in the ``stylebridge`` group, one per built-in plugin
    module (``[project.entry-points.stylebridge]`` in pyproject.toml): the built-ins register
    exactly as a third-party package does, and the registry imports no plugin package."""
    try:
        dist = importlib.metadata.distribution(BUILTIN_PROVIDER)
    except importlib.metadata.PackageNotFoundError:
        raise RegistryError("stylebridge is not installed, so its built-in plugins (entry "
                            "points) cannot be found; install it (`pip install .`, or `pip install -e .` in a source checkout)"
                            ) from None
    return sorted((ep for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP),
                  key=lambda ep: ep.name)


def _is_builtin(ep: importlib.metadata.EntryPoint) -> bool:
    return ep.dist is not None and ep.dist.name == BUILTIN_PROVIDER


class Registry:
    """All plugins of one plugin manager, by kind and name.

    ``Registry()`` loads the built-in plugins and every package that declares an
    entry point in the ``stylebridge`` group; tests pass ``entry_points=False``
    and ``extra_plugins`` to build an isolated one.

    Faults: a fault in an *installed* package (entry point) is recorded in
    :attr:`failures` and only that hook's registrations are dropped, so one broken
    package cannot break the CLI.  Built-ins and ``extra_plugins`` are code the
    caller controls: their faults raise :class:`RegistryError` at once.
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
        self._installed: dict[str, str] = {}  # plugin name in pm -> entry-point name (tolerant)
        self.failures: list[PluginFailure] = []
        self._packages: dict[str, str] = {}  # top-level module of an installed plugin -> dist
        #: (kind, name) -> why: plugins dropped after loading (:meth:`reject`)
        self.rejected: dict[tuple[str, str], str] = {}
        # importing a plugin module must leave the caller's Python random stream alone (rich,
        # which the commands import, draws from it at import)
        random_state = random.getstate()
        try:
            self._load_plugins(builtins, entry_points, extra_plugins)
        finally:
            random.setstate(random_state)
        self._entries: dict[str, dict[str, Entry]] | None = None
        #: (kind, name) -> the packages that all registered it (so none is used)
        self._contested: dict[tuple[str, str], list[str]] = {}

    # -- loading ---------------------------------------------------------------------------------
    def _load_plugins(self, builtins: bool, entry_points: bool,
                      extra_plugins: Sequence[object]) -> None:
        if builtins:  # first, so that built-in names win over third-party ones
            for ep in builtin_entry_points():
                try:
                    module = ep.load()
                except ImportError as exc:  # a stale install: name the fix
                    raise RegistryError(f"built-in plugin module {ep.value} (entry point "
                                        f"{ep.name!r}) cannot be imported: {exc}; reinstall "
                                        "stylebridge (`pip install --force-reinstall --no-deps stylebridge`, or "
                                        "`pip install -e .` in a source checkout)") from None
                self._add(module, module.__name__, BUILTIN_PROVIDER)
        if entry_points:
            self._load_entry_points()
        for plugin in extra_plugins:
            provider = getattr(plugin, "__name__", type(plugin).__name__)
            self._add(plugin, provider, provider)

    def _add(self, plugin: object, name: str, provider: str, entry_point: str | None = None) -> None:
        if self.plugin_manager.is_registered(plugin):
            return
        other = self.plugin_manager.get_plugin(name)
        if other is not None:  # pluggy's text listed every plugin (7 KB)
            why = (f"the name is taken by another plugin "
                   f"({getattr(other, '__name__', type(other).__name__)}); give this one "
                   "another provider name")
            if entry_point is None:
                raise RegistryError(f"plugin {provider!r}: {why}")
            self._fail(provider, entry_point, f"not loaded: {why}")
            return
        unknown = self._unknown_hooks(plugin)
        try:
            registered = self.plugin_manager.register(plugin, name=name)
        except Exception as exc:  # pluggy.PluginValidationError: a hook's signature is wrong
            text = " ".join(str(exc).split())
            why = (f"a hook signature does not match stylebridge's hook specs ({text}); every "
                   "hook takes one argument, `register`"
                   if isinstance(exc, pluggy.PluginValidationError) else _one_line(exc))
            if entry_point is None:
                raise RegistryError(f"plugin {provider!r}: {why}") from None
            self._fail(provider, entry_point, f"not loaded: {why}")
            return
        if registered is None:  # blocked name
            return
        self._providers[registered] = provider
        if entry_point is not None:
            self._installed[registered] = entry_point
        for hook in unknown:
            message = f"@hookimpl {hook!r} is not a stylebridge hook{_did_you_mean(hook, self._hook_names())}"
            if entry_point is None:
                raise RegistryError(f"plugin {provider!r}: {message}")
            self._fail(provider, entry_point, message + " (ignored)")
        for hook in self._unmarked_hooks(plugin):
            message = (f"function {hook!r} has no @hookimpl marker (from stylebridge.registry "
                       "import hookimpl), so pluggy does not call it")
            if entry_point is None:
                raise RegistryError(f"plugin {provider!r}: {message}")
            self._fail(provider, entry_point, message + " (ignored)")

    def _hook_names(self) -> list[str]:
        return sorted(spec[0] for spec in KINDS.values())

    def _unknown_hooks(self, plugin: object) -> list[str]:
        """Attributes marked ``@hookimpl`` whose name is no hook (a typo pluggy would ignore)."""
        hooks = set(self._hook_names())
        out = []
        for attr in dir(plugin):
            if attr.startswith("_") or attr in hooks:
                continue
            try:
                opts = self.plugin_manager.parse_hookimpl_opts(plugin, attr)
            except Exception:  # an attribute that cannot be read: not a hook
                continue
            if opts is not None:
                out.append(attr)
        return out

    def _unmarked_hooks(self, plugin: object) -> list[str]:
        """Functions named like a hook but not marked ``@hookimpl`` (pluggy ignores them)."""
        out = []
        for hook in self._hook_names():
            fn = inspect.getattr_static(plugin, hook, None)
            if callable(fn) and self.plugin_manager.parse_hookimpl_opts(plugin, hook) is None:
                out.append(hook)
        return out

    def _fail(self, provider: str, entry_point: str, error: str) -> None:
        failure = PluginFailure(provider, entry_point, error)
        if failure not in self.failures:
            self.failures.append(failure)

    def _load_entry_points(self) -> None:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if _is_builtin(ep):  # loaded (or deliberately not) by the builtins switch
                continue
            dist = ep.dist.name if ep.dist is not None else ep.value.split(":")[0]
            try:
                plugin = ep.load()
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                # a plugin that fails to import (even one that calls sys.exit()) must not
                # break the CLI
                self._fail(dist, ep.name, _one_line(exc))
                continue
            self._add(plugin, f"{dist}:{ep.name}", dist, entry_point=ep.name)
            top = ep.value.split(":")[0].partition(".")[0]
            if top and top != "stylebridge":
                self._packages[top] = dist

    def reject(self, kind: str, name: str, why: str) -> None:
        """Drop a registered plugin that a layer above found unusable (the CLI: a command
        that is no ``Command`` instance, or whose ``add_arguments`` raised), and report it
        under :attr:`failures` like a fault found while loading."""
        entry = self.entries[kind].pop(name, None)
        if entry is None:
            return
        self.rejected[(kind, name)] = f"{why} (package {entry.provider})"
        self._fail(entry.provider, entry.entry_point or entry.provider,
                   f"{kind.replace('_', ' ')} {name!r}: {why} (ignored)")

    def package_of(self, module: str) -> str | None:
        """The installed third-party package (distribution) whose plugin module ``module``
        (a dotted name) belongs to, by top-level package; ``None`` for stylebridge's own
        modules and any other code."""
        return self._packages.get(module.partition(".")[0])

    def add_plugin(self, plugin: object, provider: str) -> None:
        """Register another plugin module/object at run time (invalidates the cache)."""
        self._add(plugin, provider, provider)
        self._entries = None

    def _collect(self) -> dict[str, dict[str, Entry]]:
        entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        clashes: list[tuple[str, str, Entry, str, str]] = []
        for kind, (hook_name, base, as_class) in KINDS.items():
            hook = getattr(self.plugin_manager.hook, hook_name)
            for impl in hook.get_hookimpls():  # registration order
                provider = self._providers.get(impl.plugin_name, impl.plugin_name)
                staged: dict[str, Entry] = {}
                entry_point = self._installed.get(impl.plugin_name)

                def register(obj: Any, name: str | None = None, *, _kind: str = kind,
                             _base: type = base, _as_class: bool = as_class,
                             _provider: str = provider, _staged: dict[str, Entry] = staged,
                             _entry_point: str | None = entry_point) -> None:
                    entry = self._check_one(_staged, _kind, _base, _as_class, _provider, obj,
                                            name, _entry_point)
                    taken = entries[_kind].get(entry.name)
                    if taken is None:
                        _staged[entry.name] = entry
                    elif _entry_point is None:  # the caller's own code: loud
                        raise RegistryError(f"{_kind} {entry.name!r} is registered twice: by "
                                            f"{taken.provider!r} and by {_provider!r}")
                    else:  # an installed package: that name only is dropped (below)
                        clashes.append((_kind, entry.name, taken, _provider, _entry_point))

                if entry_point is None:
                    impl.function(register=register)
                else:
                    try:
                        impl.function(register=register)
                    except Exception as exc:  # an installed package's fault: drop this hook
                        self._fail(provider, entry_point,
                                   f"{hook_name} failed, its {_plural(kind)} are not "
                                   f"available: {_one_line(exc)}")
                        continue
                entries[kind].update(staged)
        self._settle_clashes(entries, clashes)
        return entries

    def _settle_clashes(self, entries: dict[str, dict[str, Entry]],
                        clashes: list[tuple[str, str, Entry, str, str]]) -> None:
        """A built-in name keeps its built-in; a name two installed packages register is
        used by neither (which one won would depend on the install order): both are told,
        each under the entry point whose hook registered the name."""
        self._contested = {}
        claims: dict[tuple[str, str], list[tuple[str, str]]] = {}  # -> (provider, entry point)
        for kind, name, taken, provider, entry_point in clashes:
            label = kind.replace("_", " ")
            if taken.provider == BUILTIN_PROVIDER:
                self._fail(provider, entry_point, f"{label} {name!r} is a built-in name: this "
                                                  "registration is ignored (rename it)")
                continue
            claims.setdefault((kind, name), [(taken.provider, taken.entry_point
                                              or taken.provider)]).append((provider, entry_point))
        for (kind, name), claimants in claims.items():
            entries[kind].pop(name)
            providers = list(dict.fromkeys(p for p, _ in claimants))
            self._contested[(kind, name)] = providers
            why = (f"{kind.replace('_', ' ')} {name!r} is {_claimed_by(providers)}: neither is "
                   "used (" + ("uninstall one, or rename it)" if len(providers) > 1
                               else "rename one of them)"))
            for provider, entry_point in claimants:
                self._fail(provider, entry_point, why)

    def _check_one(self, staged: dict[str, Entry], kind: str, base: type, as_class: bool,
                   provider: str, obj: Any, name: str | None,
                   entry_point: str | None = None) -> Entry:
        ok = (isinstance(obj, type) and issubclass(obj, base)) if as_class else isinstance(obj, base)
        if not ok:
            shown = f"the class {obj.__name__}" if isinstance(obj, type) else repr(obj)
            what = f"a subclass of {base.__name__}" if as_class else f"an instance of {base.__name__}"
            raise RegistryError(f"plugin {provider!r} registered {shown} as {kind} plugin, "
                                f"but {kind} plugins must be {what}")
        if as_class and inspect.isabstract(obj):
            missing = ", ".join(sorted(getattr(obj, "__abstractmethods__", ())))
            raise RegistryError(f"plugin {provider!r} registered {kind} {obj.__name__}, "
                                f"which does not implement {missing} (an abstract class)")
        if kind == "command_target":
            name = _target_key(provider, obj, name)
        elif as_class and name is not None and name != getattr(obj, "name", ""):
            # its objects and checkpoints go by the class's name: under another one a saved
            # checkpoint names a plugin that is not registered
            raise RegistryError(f"plugin {provider!r} registered {kind} {obj.__name__} as "
                                f"{name!r}, but its objects and checkpoints are named "
                                f"{getattr(obj, 'name', '')!r} (the class's name): set name = "
                                f"{name!r} on the class and register it without name=")
        name = name or getattr(obj, "name", "")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise RegistryError(f"plugin {provider!r} registered {kind} plugin with invalid name {name!r} "
                                "(use lower-case letters, digits, '_', '-', '.')")
        if name in staged:
            raise RegistryError(f"{kind} {name!r} is registered twice by {provider!r}")
        return Entry(kind=kind, name=name, obj=obj, provider=provider, entry_point=entry_point)

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

    def contested(self, kind: str, name: str) -> list[str] | None:
        """The installed packages that all register ``name`` as a ``kind`` plugin (so that
        none of them is used), or None when the name is not contested."""
        self._table(kind)  # the hooks run (and clashes are settled) on first use
        found = self._contested.get((kind, name))
        return list(found) if found else None

    def contested_names(self, kind: str) -> list[str]:
        """The ``kind`` names that two installed packages (or two entry points of one) all
        register, so that none is used (the CLI refuses them by name, in one line)."""
        self._table(kind)
        return sorted(name for k, name in self._contested if k == kind)

    def where(self, kind: str, name: str) -> str:
        """``" (from PKG)"`` for a plugin a third-party package registered, else ``""`` (a
        built-in or an unknown name): what one-line errors put after a plugin's name."""
        entry = self._table(kind).get(name)
        if entry is None or entry.provider == BUILTIN_PROVIDER:
            return ""
        return f" (from {entry.provider})"

    def provider_of(self, kind: str, name: str, obj: Any = None) -> str | None:
        """The third-party package that provides ``obj``, a ``kind`` plugin registered as
        ``name``: the registry's entry when ``obj`` is of its class, else the installed package
        the class's module belongs to; ``None`` for stylebridge's own plugins and other code
        (how one-line errors about a plugin's return values name its package)."""
        entry = self._table(kind).get(name)
        if entry is not None and (obj is None or not isinstance(entry.obj, type)
                                  or isinstance(obj, entry.obj)):
            provider: str | None = entry.provider
        else:
            provider = None if obj is None else self.package_of(type(obj).__module__)
        return None if provider == BUILTIN_PROVIDER else provider

    def get(self, kind: str, name: str) -> Entry:
        table = self._table(kind)
        if name in table:
            return table[name]
        label = kind.replace("_", " ")
        contested = self._contested.get((kind, name))
        if contested:
            fix = ("uninstall one of them (or rename it there)" if len(contested) > 1
                   else "rename one of them there")
            raise RegistryError(f"{label} {name!r} is {_claimed_by(contested)}: neither is "
                                f"used; {fix}")
        known = sorted(table)
        listing = ", ".join(known) if known else "none are installed"
        raise RegistryError(f"unknown {label} {name!r}{_did_you_mean(name, known)} "
                            f"(known: {listing}){self._problems_note()}")

    def _problems_note(self) -> str:
        """``; note: plugin package(s) P reported problems, ...`` when an installed package
        is in :attr:`failures` (its plugins, or some of them, may be what was asked for)."""
        troubled = sorted({f.provider for f in self.failures})
        if not troubled:
            return ""
        return (f"; note: plugin package(s) {', '.join(troubled)} reported problems, see "
                "`stylebridge plugins`")

    def create(self, kind: str, name: str, **config: Any) -> Any:
        """Instantiate a class-registered plugin from its config.

        A plugin rejects a bad option by raising ``TypeError``/``ValueError`` (or a
        :class:`StylebridgeError`, passed through); the CLI shows it in one line with
        the plugin's name and package.  A plugin saved as checkpoints (an encoder, ...) whose
        ``config()`` would rebuild it with other options than ``config`` is refused in one
        line (:func:`~stylebridge.registry.roundtrip.check_round_trip`): its checkpoints would
        not load.
        """
        from stylebridge.registry.roundtrip import check_round_trip

        obj = self._build(kind, name, config)
        check_round_trip(kind, f"{kind.replace('_', ' ')} {name!r}{self.where(kind, name)}",
                         obj, config)
        return obj

    def _build(self, kind: str, name: str, config: dict[str, Any]) -> Any:
        entry = self.get(kind, name)
        if not isinstance(entry.obj, type):
            return entry.obj
        where = self.where(kind, name)
        if issubclass(entry.obj, itf.Plugin):
            try:
                entry.obj.check_config(config)
            except ValueError as exc:  # ConfigSchemaError or a plugin's cross-key check
                raise RegistryError(f"{kind.replace('_', ' ')} {name!r}{where}: {exc}") from None
        try:
            return entry.obj(**config)
        except StylebridgeError:
            raise
        except (TypeError, ValueError) as exc:
            label = kind.replace("_", " ")
            accepted = accepted_options(entry.obj)
            # None: the plugin takes **kwargs, so no option is unknown by its signature
            unknown = sorted(set(config) - set(accepted)) if accepted is not None else []
            if isinstance(exc, TypeError) and unknown:
                raise RegistryError(f"{label} {name!r}{where}: unknown option(s) "
                                    f"{', '.join(unknown)}{_did_you_mean(unknown[0], accepted)} "
                                    f"(accepted: {', '.join(accepted) or 'none'})") from None
            raise RegistryError(f"cannot build {label} {name!r}{where} from its "
                                f"options: {_one_line(exc)}") from None

    def load(self, kind: str, path: str | Path, *, name: str | None = None,
             device: str = "cpu", **overrides: Any) -> Any:
        """Recreate a plugin object from a stylebridge checkpoint (header → class → weights):
        :func:`stylebridge.registry.loader.load_checkpointed`."""
        from stylebridge.registry.loader import load_checkpointed  # it imports this module

        return load_checkpointed(self, kind, path, name=name, device=device, **overrides)

    def resolve(self, kind: str, spec: Any, **options: Any) -> Any:
        """``(object, provenance)`` from a spec (``NAME``, ``NAME:CKPT``, ``CKPT``,
        ``NAME:CKPT:k=v``) with this registry's plugins: see
        :func:`stylebridge.registry.resolve.create`."""
        from stylebridge.registry.resolve import create  # resolve imports this module

        return create(kind, spec, registry=self, **options)

    def all_entries(self) -> Iterable[Entry]:
        for kind in KINDS:
            yield from (self.entries[kind][n] for n in sorted(self.entries[kind]))


def accepted_options(cls: type) -> list[str] | None:
    """The keyword options ``cls(...)`` accepts, or None when it takes ``**kwargs``."""
    if cls.__init__ in (torch.nn.Module.__init__, object.__init__):
        return []  # no constructor of its own: nn.Module's (*args, **kwargs) takes no option
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                 inspect.Parameter.KEYWORD_ONLY)]


def _target_key(provider: str, obj: Any, name: str | None) -> str:
    """The registered name of a command target: ``COMMAND.TARGET`` (``train.domain``), from
    ``obj.command`` and ``name`` or ``obj.name``.  One kind for every grouped command keeps
    the registry's name rules (a name is one word, no space) and its clash rules (per kind
    and name: ``train.x`` and ``reproduce.x`` do not clash); the target's own name has no
    '.', so the command is everything before the last one."""
    command = getattr(obj, "command", "")
    target = name or getattr(obj, "name", "")
    if not isinstance(command, str) or not _NAME_RE.match(command):
        raise RegistryError(f"plugin {provider!r} registered a command target with invalid "
                            f"command {command!r} (the command it belongs to, e.g. 'train' "
                            "or 'reproduce')")
    if not isinstance(target, str) or not _TARGET_RE.match(target):
        raise RegistryError(f"plugin {provider!r} registered {command} target with invalid "
                            f"name {target!r} (use lower-case letters, digits, '_', '-')")
    return f"{command}.{target}"


def _plural(kind: str) -> str:
    label = kind.replace("_", " ")
    return label + ("es" if label.endswith("s") else "s")


def _claimed_by(providers: Sequence[str]) -> str:
    """``registered by 'a' and 'b'``, or ``registered twice by 'a'`` (two of its entry
    points)."""
    if len(providers) == 1:
        return f"registered twice by {providers[0]!r} (by two of its entry points)"
    return f"registered by {' and '.join(repr(p) for p in providers)}"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _did_you_mean(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


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
