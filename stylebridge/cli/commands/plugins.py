"""``stylebridge plugins``: every registered plugin by kind, with its provider package;
``stylebridge plugins NAME``: one plugin's spec grammar, options, weights and optional
capabilities (or why the registry refused a plugin of that name)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from stylebridge.cli.base import TARGET_KIND, Command
from stylebridge.cli.common import print_json
from stylebridge.errors import RegistryError
from stylebridge.registry import KINDS, Entry, get_registry, hookimpl
from stylebridge.registry.describe import describe
from stylebridge.registry.registry import BUILTIN_PROVIDER, Registry, _did_you_mean


class PluginsCommand(Command):
    name = "plugins"
    help = ("list every registered plugin by kind, with the package that provides it; "
            "`plugins NAME`: its options, weights and capabilities")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("name", nargs="?", metavar="NAME",
                            help="show one plugin: how its spec is written (NAME:k=v; a loss "
                                 "NAME:WEIGHT:k=v), its options with defaults and allowed "
                                 "values, the weights it loads and the optional capabilities "
                                 "it implements (every kind with that name), or why a "
                                 "package's plugin of that name was refused")
        parser.add_argument("--kind", choices=list(KINDS), metavar="KIND",
                            help="with NAME: only this kind (id, lpips, mse are both a loss "
                                 f"and a metric): {', '.join(KINDS)}")
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")

    def run(self, args: argparse.Namespace, console: Console) -> int:
        registry = get_registry()
        if args.name is not None or args.kind is not None:
            return self._show(args, console)
        data: dict[str, Any] = {
            kind: [{"name": e.name, "provider": e.provider, "description": e.description}
                   for e in (registry.get(kind, n) for n in registry.names(kind))]
            for kind in KINDS
        }
        data["failed"] = [{"provider": f.provider, "entry_point": f.entry_point, "error": f.error}
                          for f in registry.failures]
        if args.json:
            print_json(data)
            return 0
        # one section per kind; the description gets the width (readable at 80 columns), and a
        # plugin from another package names it there
        table = Table(title="stylebridge plugins", show_lines=False)
        table.add_column("name", no_wrap=True)
        table.add_column("description (provider when not stylebridge)", ratio=1,
                         overflow="fold")
        for i, kind in enumerate(KINDS):
            if i:
                table.add_section()
            table.add_row(f"[bold cyan]{escape(kind)}[/bold cyan]", "")
            rows = data[kind]
            if not rows:
                table.add_row("  [dim](none yet)[/dim]", "")
            for row in rows:  # plain text: a "[word]" in a description is no rich tag
                provider = ("" if row["provider"] == BUILTIN_PROVIDER
                            else f" [dim](from {escape(row['provider'])})[/dim]")
                described = (escape(row["description"]) if row["description"] else
                             f"[dim]{NO_DESCRIPTION}[/dim]")
                table.add_row(f"  {escape(row['name'])}", described + provider)
        console.print(table)
        # the error says what went wrong (not loaded, a hook failed, a name clash, a dropped
        # command): the package's other plugins are listed above when they loaded
        for fail in data["failed"]:
            console.print(f"[yellow]plugin {escape(str(fail['provider']))} "
                          f"({escape(str(fail['entry_point']))}):[/yellow] "
                          f"{escape(str(fail['error']))}")
        return 0

    def _show(self, args: argparse.Namespace, console: Console) -> int:
        from stylebridge.registry.weights import WeightsManager

        registry = get_registry()
        kinds = [args.kind] if args.kind else list(KINDS)
        if args.name is None:
            raise RegistryError("--kind needs a plugin NAME (`stylebridge plugins` lists them all)")
        manager = WeightsManager()
        entries = [registry.get(k, args.name) for k in kinds if args.name in registry.names(k)]
        listed = manager.entries.get(args.name)
        if not entries and listed is not None and listed.plugin in registry.names(listed.kind) \
                and listed.kind in kinds:
            # an official weights entry's name (``--method pixar``): show the plugin it loads into
            state = "installed" if manager.installed(listed.name) else "not installed"
            console.print(f"{escape(args.name)!r} is official weights ({state}) for the "
                          f"{escape(listed.kind.replace('_', ' '))} plugin "
                          f"{escape(listed.plugin)!r}: `stylebridge weights list --long` "
                          "for its source and licence")
            entries = [registry.get(listed.kind, listed.plugin)]
        if not entries and TARGET_KIND in kinds:  # a target by its own name: `plugins domain`
            entries = [registry.get(TARGET_KIND, n) for n in registry.names(TARGET_KIND)
                       if n.rpartition(".")[2] == args.name]
        if not entries:
            for kind in kinds:  # two installed packages register it: say so, not "no plugin"
                if registry.contested(kind, args.name):
                    registry.get(kind, args.name)  # raises the one-line clash message
            refused = _refusal(registry, kinds, args.name)
            if refused:
                raise RegistryError(f"{refused}; `stylebridge plugins` lists every failure")
            known = sorted({n for k in kinds for n in registry.names(k)})
            what = f"{args.kind.replace('_', ' ')} plugin" if args.kind else "plugin"
            raise RegistryError(f"no {what} named {args.name!r}"
                                f"{_did_you_mean(args.name, known)} (`stylebridge plugins` "
                                "lists them all)")
        data = [describe(e, manager.candidates, lambda n: manager.installed(n) is not None)
                for e in entries]
        for entry, info in zip(entries, data, strict=True):
            if entry.kind == TARGET_KIND:  # run from the command line, never written as a spec
                info["spec"] = None
        if args.json:
            print_json(data if len(data) > 1 else data[0])
            return 0
        for entry, info in zip(entries, data, strict=True):
            _print_plugin(console, entry, info)
        return 0


def _refusal(registry: Registry, kinds: list[str], name: str) -> str | None:
    """Why a plugin called ``name`` of one of ``kinds`` is not registered when the registry
    dropped it after loading (:meth:`Registry.reject`: a command or command target that is no
    ``Command`` / ``Target``, or whose ``add_arguments`` raised): the reason it recorded, else
    ``None``."""
    for kind in kinds:
        why = registry.rejected.get((kind, name))
        if why is not None:
            return f"{kind.replace('_', ' ')} {name!r} is not available: {why}"
    return None


#: what a plugin without a description shows (the class has no docstring or `description`)
NO_DESCRIPTION = "(no description: give the class a docstring or a `description`)"


def _print_plugin(console: Console, entry: Entry, info: dict[str, Any]) -> None:
    """One plugin as a titled block: description, class, options table, weights, capabilities."""
    provider = "" if entry.provider == BUILTIN_PROVIDER else f" from {entry.provider}"
    described = f": {escape(info['description'] or NO_DESCRIPTION)}"
    console.print(f"[bold cyan]{escape(entry.kind.replace('_', ' '))}[/bold cyan] "
                  f"[bold]{escape(entry.name)}[/bold]{escape(provider)}{described}")
    console.print(f"  class {escape(info['class'])}")
    opts = info["options"]
    if entry.kind == "command":
        console.print(f"  usage: stylebridge {escape(entry.name)} --help")
    elif entry.kind == TARGET_KIND:  # COMMAND.TARGET
        command, _, target = entry.name.rpartition(".")
        console.print(f"  usage: stylebridge {escape(command)} {escape(target)} --help")
    elif opts is None:
        console.print(f"  options: any (its constructor takes **kwargs; {escape(info['spec'])})")
    elif opts:
        table = Table(show_header=True, box=None, padding=(0, 2, 0, 2))
        table.add_column("option")
        table.add_column("default")
        table.add_column("allowed", overflow="fold")
        for row in opts:
            default = "(required)" if row["required"] else json.dumps(row["default"])
            table.add_row(escape(row["name"]), escape(default), escape(row["allowed"]))
        console.print(f"  options ({escape(info['spec'])}):")
        console.print(table)
    else:
        console.print("  options: none")
        if entry.kind == "loss":  # the weight is still part of its spec
            console.print(f"  spec: {escape(info['spec'])}")
    weights = info["weights"]
    if weights and (weights["requires_weights"] or weights["official"]
                    or entry.kind not in ("loss", "metric")):
        # losses and metrics read their own model files through options (id:weights=...)
        declared = weights.get("random_weights")
        need = ("needs weights: a bare name without installed weights is refused"
                if weights["requires_weights"] else
                "needs none: a bare name builds it as it is (it declares random_weights = "
                "False)" if declared is False else
                "a bare name runs on untrained weights, labelled as such (it declares "
                "random_weights = True)" if declared is True else
                "a bare name without installed weights builds random weights (if it holds "
                "any parameters or buffers), labelled as such")
        console.print(f"  weights: {need}; {escape(entry.name)}:CHECKPOINT loads a "
                      f"checkpoint of kind {escape(weights['checkpoint_kind'])}")
        if weights["hint"]:
            console.print(f"    {escape(weights['hint'])}")
        official = weights["official"]
        if official:
            shown = ", ".join(f"{w['name']}{' (installed)' if w['installed'] else ''}"
                              for w in official[:8])
            more = f" and {len(official) - 8} more" if len(official) > 8 else ""
            console.print(f"    official: {escape(shown)}{more} (`stylebridge weights list "
                          "--long` for sources and licences)")
    for warning in info["warnings"]:
        console.print(f"  [yellow]warning:[/yellow] {escape(warning)}")
    caps = info["capabilities"]
    if caps:
        console.print("  capabilities:")
        for cap in caps:
            when = "" if cap["when"] == "always" else f" ({cap['when']})"
            console.print(f"    {escape(cap['name'])}: {escape(cap['meaning'])}{when}")
    console.print()


@hookimpl
def register_commands(register: Any) -> None:
    register(PluginsCommand())
