"""The base types of the command line's plugins: :class:`Command` (a ``stylebridge``
subcommand) and :class:`Target` (one ``stylebridge COMMAND TARGET``, such as ``train
domain``), built-in or from a plugin package; :class:`TargetGroup` builds a grouped
command's sub-parsers from the registered targets."""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from stylebridge.core.interfaces import Plugin
from stylebridge.errors import RegistryError, StylebridgeError

if TYPE_CHECKING:
    from rich.console import Console


class Command(Plugin, ABC):
    """A ``stylebridge`` subcommand, registered through the ``register_commands`` hook."""

    help: ClassVar[str] = ""
    #: whether ``run`` may be one of several processes of a distributed launch (``torchrun
    #: --nproc_per_node N``, ``WORLD_SIZE`` > 1), each doing its share of one run; the command
    #: line refuses any other command there, in one line and before any work (each process
    #: would do the whole work into the same output).  A grouped command asks its target
    #: (:attr:`Target.distributed`, :meth:`runs_distributed`)
    distributed: ClassVar[bool] = False

    @abstractmethod
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def runs_distributed(self, args: argparse.Namespace) -> bool:
        """Whether this parsed command line may run as one of several processes (see
        :attr:`distributed`)."""
        return self.distributed

    @abstractmethod
    def run(self, args: argparse.Namespace, console: Console) -> int: ...


@dataclass(frozen=True)
class Target:
    """One ``stylebridge COMMAND TARGET`` entry (e.g. ``train domain``), registered through
    the ``register_command_targets`` hook::

        register(Target("mymethod", add_arguments, run, help="train my method",
                        command="train"))

    ``command`` is the grouped command it belongs to (``train`` or ``reproduce``);
    ``add_arguments(parser)`` adds its options to its own sub-parser, ``run(args, console)``
    returns the exit code; ``help`` is its line in ``stylebridge COMMAND --help`` and its
    description, ``epilog`` the text under its options; ``distributed``: its ``run`` may be
    one of several processes of a torchrun launch (:attr:`Command.distributed`).  The
    registry lists it as the ``command_target`` plugin ``COMMAND.NAME`` (``train.mymethod``)."""

    name: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, Any], int]
    help: str = ""
    epilog: str = ""
    command: str = ""
    distributed: bool = False


#: the registry kind of :class:`~stylebridge.cli.base.Target` plugins (``train.domain``)
TARGET_KIND = "command_target"


class TargetGroup:
    """The targets of a grouped command such as ``train`` or ``reproduce``: one sub-parser
    per :class:`~stylebridge.cli.base.Target` whose ``command`` is this one, registered
    through the ``register_command_targets`` hook (the registry's ``command_target``
    plugins ``COMMAND.NAME``), built-in and third-party alike.

    A third-party target that is no ``Target`` or whose ``add_arguments`` raises is dropped
    (:meth:`~stylebridge.registry.Registry.reject`); one that two installed packages register
    is used by neither (the registry).  Either way ``stylebridge COMMAND NAME`` says why in
    one line, and ``stylebridge plugins`` lists the failure.

    :meth:`register` (``register_train_target``, ``register_reproduce_target``) is the older
    way, kept for existing callers: a call at import of the caller's module.  Such a target
    is offered too, but not listed by ``stylebridge plugins``; a name a hook registered keeps
    the hook's target, and a name taken the older way is an error at once.
    """

    def __init__(self, command: str) -> None:
        self.command = command
        #: the targets added the older way (:meth:`register`), by name
        self.legacy: dict[str, Target] = {}
        #: every target offered (by name): the registry's, then the older way's
        self.targets: MutableMapping[str, Target] = _TargetView(self)
        self._built: dict[str, Target] = {}

    def register(self, name: str, add_arguments: Callable[[argparse.ArgumentParser], None],
                 run: Callable[[argparse.Namespace, Any], int], *, help: str = "",
                 epilog: str = "") -> None:
        """The older way to add a target (prefer the ``register_command_targets`` hook):
        registering the same ``run`` twice is a no-op, another one under a name taken this
        way is an error."""
        old = self.legacy.get(name)
        if old is not None and old.run is not run:
            raise RegistryError(f"{self.command} target {name!r} is registered twice")
        self.legacy[name] = Target(name, add_arguments, run, help, epilog, command=self.command)

    def _entries(self) -> tuple[Any, dict[str, Any]]:
        """The registry and its ``command_target`` entries of this command, by target name."""
        from stylebridge.registry import get_registry

        registry = get_registry()
        prefix = f"{self.command}."
        return registry, {key[len(prefix):]: registry.get(TARGET_KIND, key)
                          for key in registry.names(TARGET_KIND)
                          if key.startswith(prefix) and "." not in key[len(prefix):]}

    def resolve(self) -> dict[str, Target]:
        """Every usable target by name: the registry's, then those added the older way."""
        _, entries = self._entries()
        found = {name: e.obj for name, e in entries.items() if isinstance(e.obj, Target)}
        for name, target in self.legacy.items():
            found.setdefault(name, target)
        return found

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from stylebridge.registry.registry import BUILTIN_PROVIDER

        registry, entries = self._entries()
        candidates: dict[str, tuple[Any, Any]] = {n: (e.obj, e) for n, e in entries.items()}
        for name, target in self.legacy.items():
            candidates.setdefault(name, (target, None))
        sub = parser.add_subparsers(dest="target", metavar="TARGET", required=True)
        self._built = {}
        for name in sorted(candidates):
            target, entry = candidates[name]
            mine = entry is None or entry.provider == BUILTIN_PROVIDER  # faults are loud
            if not isinstance(target, Target):  # the registry cannot check this: it is below
                what = (f"the class {target.__name__}" if isinstance(target, type)
                        else f"a {type(target).__name__}")
                if mine:
                    who = "code" if entry is None else f"plugin {entry.provider!r}"
                    raise RegistryError(f"{who} registered {what} as "
                                        f"{self.command} target {name!r}, but targets must be "
                                        "instances of stylebridge.cli.base.Target")
                registry.reject(TARGET_KIND, entry.name,
                                f"registered {what}, not a stylebridge.cli.base.Target instance")
                continue
            # --debug is added to every sub-parser by the CLI (stylebridge.cli.main)
            p = sub.add_parser(name, help=target.help, description=target.help,
                               epilog=target.epilog or None)
            try:
                target.add_arguments(p)
            except Exception as exc:
                if mine:
                    raise
                # one package's broken target must not take `train --help` down
                sub.choices.pop(name, None)
                sub._choices_actions[:] = [a for a in sub._choices_actions if a.dest != name]
                text = " ".join(str(exc).split())
                registry.reject(TARGET_KIND, entry.name, f"add_arguments raised "
                                f"{type(exc).__name__}" + (f": {text}" if text else ""))
                continue
            self._built[name] = target
        self._add_refusals(registry, sub)

    def _add_refusals(self, registry: Any, sub: Any) -> None:
        """A hidden sub-parser per dropped or contested target of this command, which stops
        the parse with the reason (instead of argparse's "invalid choice")."""
        prefix = f"{self.command}."
        refused: dict[str, Callable[[], None]] = {}
        for (kind, key), why in registry.rejected.items():
            if kind == TARGET_KIND and key.startswith(prefix):
                message = (f"{self.command} target {key[len(prefix):]!r} is broken and was not "
                           f"loaded: {why}; `stylebridge plugins` lists the failures")
                refused[key[len(prefix):]] = partial(_refuse, message)
        for key in registry.contested_names(TARGET_KIND):
            if key.startswith(prefix):  # the registry's one-line clash message
                refused[key[len(prefix):]] = partial(registry.get, TARGET_KIND, key)
        for name, refuse in sorted(refused.items()):
            if name in sub.choices:
                continue
            p = sub.add_parser(name, add_help=False)  # no help=: not listed in --help
            p.parse_known_args = lambda *a, _refuse=refuse, **k: _refuse()

    def _target(self, args: argparse.Namespace) -> Target:
        target = self._built.get(args.target) or self.resolve().get(args.target)
        if target is None:  # pragma: no cover - argparse rejects unknown targets
            raise StylebridgeError(f"unknown {self.command} target {args.target!r}")
        return target

    def runs_distributed(self, args: argparse.Namespace) -> bool:
        """Whether the parsed target may run as one of several processes (its
        :attr:`Target.distributed`): :meth:`Command.runs_distributed` of a grouped command."""
        return self._target(args).distributed

    def run(self, args: argparse.Namespace, console: Console) -> int:
        return int(self._target(args).run(args, console) or 0)


def _refuse(message: str) -> None:
    raise RegistryError(message)


class _TargetView(MutableMapping[str, Target]):
    """:attr:`TargetGroup.targets`: reads every target offered (:meth:`TargetGroup.resolve`);
    setting or deleting a name adds or removes a target the older way."""

    def __init__(self, group: TargetGroup) -> None:
        self._group = group

    def __getitem__(self, name: str) -> Target:
        return self._group.resolve()[name]

    def __setitem__(self, name: str, target: Target) -> None:
        if not isinstance(target, Target):  # refused here, where the caller's line is
            what = (f"the class {target.__name__}" if isinstance(target, type)
                    else f"a {type(target).__name__}")
            raise RegistryError(f"{self._group.command} target {name!r}: got {what}; give a "
                                "stylebridge.cli.base.Target instance (or use register())")
        self._group.legacy[name] = target

    def __delitem__(self, name: str) -> None:
        del self._group.legacy[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._group.resolve())

    def __len__(self) -> int:
        return len(self._group.resolve())
