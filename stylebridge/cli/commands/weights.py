"""``stylebridge weights list|fetch|register|verify|path``: the official-checkpoint cache."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from stylebridge.cli.base import Command
from stylebridge.cli.common import user_path_text
from stylebridge.errors import StylebridgeError
from stylebridge.registry import hookimpl

KIND_ALIASES = {"domain": "domain_method", "domains": "domain_method"}
TOFU = ("none published: trust on first use - the sha256 recorded at the first download is "
        "checked by every later fetch and by `weights verify`")


def accept_licences(manager: Any, names: list[str], accepted: bool, console: Console) -> None:
    """Show the non-commercial licences a fetch of ``names`` would download and require
    ``--accept-licence`` or, on a terminal, an interactive yes; raise otherwise.  The
    licences and the question are notices (stderr when ``console`` is stdout): ``> log``
    keeps them on the screen, where the answer is typed."""
    from stylebridge.cli.options import notice_console

    gated = manager.licence_gate(names)
    if not gated:
        return
    notices = notice_console(console)
    for entry in gated:
        notices.print(f"licence of {entry.name}: {entry.licence}", markup=False, highlight=False)
    if accepted:
        notices.print("licences accepted (--accept-licence)", markup=False)
        return
    refusal = StylebridgeError(f"{gated[0].name} is under a non-commercial licence (shown "
                               "above); pass --accept-licence to accept it and download")
    if sys.stdin is not None and sys.stdin.isatty():
        try:
            answer = notices.input("Non-commercial licences: accept them and download? [y/N] ",
                                   markup=False)  # [y/N] is no style tag
        except EOFError:  # Ctrl-D: no answer is no, said as a closed input is
            notices.print()  # the error on a line of its own, not after the question
            raise refusal from None
        if answer.strip().lower() in ("y", "yes"):
            return
        raise StylebridgeError("licence not accepted; nothing was downloaded")
    raise refusal


def hash_note(manager: Any, name: str, console: Console) -> None:
    """Say whether the file was checked against a published sha256 (only some have one)."""
    entry = manager.entry(name)
    record = manager.installed(name) or {}
    digest = str(record.get("sha256") or "")
    if entry.sha256:
        console.print(f"sha256: matches the published {entry.sha256[:16]}…", markup=False)
    elif entry.sha256_prefix:
        console.print(f"sha256: starts with the {entry.sha256_prefix} published in the file "
                      f"name; recorded {digest[:16]}… (later fetches and `stylebridge weights "
                      "verify` check the whole hash)", markup=False)
    else:
        console.print(f"sha256: not checked, the manifest has no published hash for {name}; "
                      f"recorded {digest[:16]}… (trust on first use: later fetches and "
                      "`stylebridge weights verify` check it)", markup=False)


def reference_notice(name: str, before: str | None, after: str | None, how: str,
                     console: Console) -> None:
    """``notice: the reference sha256 of NAME changed ...`` when ``--force`` replaced it."""
    if before and after and after != before:
        console.print(f"notice: the reference sha256 of {name} changed from {before[:16]}… to "
                      f"{after[:16]}… ({how}): later fetches and `stylebridge weights verify` "
                      "check the new file", markup=False, highlight=False)


def fetch_entries(manager: Any, names: list[str], console: Console, *,
                  convert: bool = True, force: bool = False) -> None:
    """Fetch ``names`` in order with a download bar each (licences already accepted), then
    say where each went, how its hash was checked and its licence. Another process
    installing the same entry is waited for (said in one line)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from stylebridge.cli.options import bar_options

    for name in names:
        with Progress("[progress.description]{task.description}", BarColumn(),
                      DownloadColumn(), TransferSpeedColumn(),
                      **bar_options(console)) as progress:
            task = progress.add_task(name, total=None)

            def update(done: int, total: int | None, _task: Any = task,
                       _p: Progress = progress) -> None:
                _p.update(_task, completed=done, total=total)

            def waiting(text: str) -> None:
                console.print(text, markup=False, highlight=False)

            before = manager.recorded_sha256(name)
            path = manager.fetch(name, progress=update, convert=convert, accept_licence=True,
                                 force=force, on_wait=waiting)
        console.print(f"[green]installed[/green] {name} → {path}", markup=True, highlight=False)
        reference_notice(name, before, manager.recorded_sha256(name), "--force", console)
        hash_note(manager, name, console)
        console.print(f"licence: {manager.entry(name).licence}", markup=False)


def add_fetch_arguments(parser: argparse.ArgumentParser, fetch_help: str = "") -> None:
    """``--fetch`` and ``--accept-licence`` of the commands that load official weights by
    name (``adapt``, ``invert``, ``render``, ``eval``, ``calibrate``, ``analyze``,
    ``reproduce``, ``train domain``/``hyperdomain``/``mindthegap``/``featureshift``,
    ``generate``, ``featureshift build-dataset``; ``demo``)."""
    parser.add_argument("--fetch", action="store_true",
                        help=fetch_help or "first download the official weights named here "
                             "that are not installed (as `stylebridge weights fetch` does: "
                             "checked, converted, resumable)")
    parser.add_argument("--accept-licence", action="store_true",
                        help="with --fetch: accept the non-commercial licences of what is "
                             "downloaded (shown first; otherwise a terminal asks yes/no)")


def fetch_demo_set(accepted: bool, console: Console) -> None:
    """``serve --fetch``: the licences of the demo set's missing entries (accepted by flag or
    a yes, else an error), then their download; a download that fails (no network, a source
    down) is one yellow line and the command goes on with what is installed."""
    from rich.markup import escape

    from stylebridge.registry.weights import WeightsManager

    manager = WeightsManager()
    missing = manager.missing_from_set("demo")
    if not missing:
        return
    accept_licences(manager, missing, accepted, console)
    try:
        fetch_entries(manager, missing, console)
    except StylebridgeError as exc:
        console.print(f"[bold yellow]could not fetch the demo weights:[/bold yellow] "
                      f"{escape(str(exc))}", highlight=False)


def ensure_weights(args: argparse.Namespace, requests: Any, console: Console) -> None:
    """Before a run loads anything: with ``--fetch``, download every official checkpoint it
    names and lacks; without, one line naming all of them and how to get them."""
    from stylebridge.registry.licences import take_loaded
    from stylebridge.registry.needed import (
        MissingWeightsError,
        check_files,
        check_names,
        missing_weights,
    )
    from stylebridge.registry.weights import WeightsManager

    take_loaded()  # the licences said after loading are this run's (print_random_notices)
    if args.accept_licence and not args.fetch:
        raise StylebridgeError("--accept-licence applies with --fetch (it accepts the licences "
                               "of what --fetch downloads)")
    check_files(requests)
    check_names(requests)  # a typo is said before a download, not after
    manager = WeightsManager()
    missing = missing_weights(requests, manager)
    if not missing:
        return
    if not args.fetch:
        raise MissingWeightsError(missing, "; or add --fetch to this command")
    names = [m.name for m in missing]
    accept_licences(manager, names, args.accept_licence, console)
    fetch_entries(manager, names, console)


def fetch_check(args: argparse.Namespace, console: Console) -> Callable[[Any], None]:
    """:func:`ensure_weights` for ``args`` (``--fetch``, ``--accept-licence``), as the
    ``ensure_weights`` a pipeline calls with its requests before it loads anything."""
    return lambda requests: ensure_weights(args, requests, console)


def _note_unusable_home(manager: Any, console: Console) -> bool:
    """A yellow note when the weights cache is under a file (``STYLEBRIDGE_HOME`` set to a
    file): ``list`` then shows nothing installed, which is true but not why.  True when the
    note was given (``verify`` then exits 2: the cache it checks cannot hold anything)."""
    from stylebridge.cli.options import notice_console

    try:
        home = manager.home
    except StylebridgeError:
        return False  # no home at all: the actions that need one say so
    existing = home
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        notice_console(console).print(
            f"note: the weights cache {home} cannot be a folder: {existing} is a file, so "
            "nothing can be installed there; set STYLEBRIDGE_HOME to a folder (`stylebridge "
            "doctor` checks it)", style="yellow", markup=False, highlight=False)
        return True
    return False


class WeightsCommand(Command):
    name = "weights"
    help = "list, download, register, verify and locate official checkpoints"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

        def add(name: str, text: str) -> argparse.ArgumentParser:
            # the one-line help also heads the action's own --help
            return actions.add_parser(name, help=text, description=text)

        p = add("list", "the supported checkpoints and what is installed")
        p.add_argument("--long", action="store_true",
                       help="also how to get each one, what it needs first, licence, source, "
                            "published sha256 and installed path")
        p.add_argument("--json", action="store_true", help="everything, as JSON")
        p.add_argument("--kind", metavar="KIND",
                       help="only this kind: generator, encoder, domain (= domain_method: "
                            "StyleDomain's, HyperDomainNet's and MindTheGap's domains), "
                            "backbone, clip, archive")
        p = add("fetch", "download from the first source that works (URL, Google Drive, "
                         "Hugging Face mirror; resumable), check size and sha256 where the "
                         "manifest has them (else trust on first use), convert")
        p.add_argument("names", nargs="*", metavar="NAME",
                       help="entries to download (`stylebridge weights list`), e.g. e4e-ffhq; "
                            "or use --set")
        p.add_argument("--set", dest="set_name", metavar="SET",
                       help="fetch a named set: `demo` is exactly what `stylebridge demo` uses")
        p.add_argument("--accept-licence", action="store_true",
                       help="accept the non-commercial licences of what is downloaded (they "
                            "are shown first; without this flag a terminal asks yes/no and "
                            "anything else refuses)")
        p.add_argument("--no-convert", action="store_true",
                       help="keep the upstream file as published, without converting it to a "
                            "stylebridge checkpoint (it is still checked, and converted as a "
                            "check when it can be; commands load only converted files)")
        p.add_argument("--force", action="store_true",
                       help="download again even if a file is there, and make its sha256 the "
                            "new trust-on-first-use reference (when the file installed first "
                            "was bad)")
        p = add("register", "add a file you downloaded yourself: checked against the sha256 where "
                            "the manifest has one, converted, and only then installed")
        p.add_argument("name", metavar="NAME", help="the entry (`stylebridge weights list`)")
        p.add_argument("--from", type=user_path_text, dest="source", required=True, metavar="FILE",
                       help="the upstream file as published (e4e_ffhq_encode.pt, ...)")
        p.add_argument("--no-convert", action="store_true",
                       help="install the file as it is, without converting it (it is still "
                            "checked, and converted as a check when it can be; commands load "
                            "only converted files)")
        p.add_argument("--link", action="store_true",
                       help="record FILE where it is instead of copying it into the cache")
        p.add_argument("--force", action="store_true",
                       help="replace an entry registered (or fetched) earlier with a different "
                            "file: its sha256 becomes the new trust-on-first-use reference")
        p = add("verify", "re-hash installed files (against the published sha256, else the one "
                          "recorded at install) and check the converted files are there and "
                          "loadable")
        p.add_argument("names", nargs="*", metavar="NAME",
                       help="entries to check (default: every installed one)")
        p = add("path", "print the path of an installed checkpoint")
        p.add_argument("name", metavar="NAME",
                       help="an installed entry (`stylebridge weights list`)")

    def run(self, args: argparse.Namespace, console: Console) -> int:
        from stylebridge.registry.weights import WeightsManager

        manager = WeightsManager()
        unusable = args.action in ("list", "verify") and _note_unusable_home(manager, console)
        if args.action == "list":
            return self._list(manager, args, console)
        if args.action == "path":
            print(manager.installed_file(args.name))  # --no-convert: the upstream file
            return 0
        if args.action == "verify":
            from rich.text import Text

            results = manager.verify(args.names or None)
            if not results:
                console.print(f"no official weights are installed in {manager.home} (`stylebridge "
                              "weights list` shows what can be fetched)", markup=False)
            for name, status in results.items():
                style = "green" if status == "ok" else "red"
                console.print(Text.assemble(f"{name}: ", (status, style)), highlight=False)
            return 0 if all(s == "ok" for s in results.values()) and not unusable else 2
        if args.action == "register":
            before = manager.recorded_sha256(args.name)
            path = manager.register(args.name, args.source, convert=not args.no_convert,
                                    copy=not args.link, force=args.force)
            console.print(f"[green]registered[/green] {args.name} → {path}", highlight=False)
            reference_notice(args.name, before, manager.recorded_sha256(args.name), "--force",
                             console)
            hash_note(manager, args.name, console)
            console.print(f"licence: {manager.entry(args.name).licence}", markup=False)
            return 0
        # a set fetches what is not installed yet; named entries are fetched (again) as asked
        names = list(args.names) + (manager.missing_from_set(args.set_name) if args.set_name
                                    else [])
        if args.set_name and not names:
            console.print(f"every entry of the set {args.set_name!r} is installed", markup=False)
            return 0
        if not names:
            raise StylebridgeError("weights fetch: name at least one entry or --set SET")
        for name in names:
            manager.entry(name)  # unknown names fail before any download
        accept_licences(manager, names, args.accept_licence, console)
        fetch_entries(manager, names, console, convert=not args.no_convert, force=args.force)
        return 0

    @staticmethod
    def _list(manager: Any, args: argparse.Namespace, console: Console) -> int:
        from rich.text import Text

        from stylebridge.cli.common import print_json
        from stylebridge.registry import sources

        kind = KIND_ALIASES.get(args.kind or "", args.kind)
        known_kinds = sorted({e.kind for e in manager.entries.values()})
        if kind is not None and kind not in known_kinds:
            raise StylebridgeError(f"--kind {args.kind}: unknown kind (known: "
                                   f"{', '.join(known_kinds)}, domain)")
        rows = []
        for entry in manager.entries.values():
            if kind is not None and entry.kind != kind:
                continue
            record = manager.installed(entry.name)
            rows.append({"name": entry.name, "kind": entry.kind, "plugin": entry.plugin,
                         "installed": record is not None,
                         "path": (record.get("converted") or record.get("raw")) if record else None,
                         "download": "fetch" if entry.all_sources else "register --from",
                         "needs": [dep.name for dep in manager.prerequisites(entry)],
                         "how": manager.how_to_install(entry),
                         "sha256": entry.sha256,
                         "sha256_prefix": entry.sha256_prefix,
                         "sha256_recorded": (record or {}).get("sha256"),
                         "noncommercial": entry.noncommercial,
                         "sources": [{**src, "description": sources.describe(src)}
                                     for src in entry.all_sources],
                         "note": entry.note,
                         "source": entry.source, "licence": entry.licence})
        problems = manager.index_problems()
        for problem in problems.values():  # the rest of the index is listed as usual
            print(f"warning: {problem}", file=sys.stderr)
        if args.json:
            print_json({"home": str(manager.home), "weights": rows,
                        "index_problems": list(problems.values())})
            return 0
        console.print(Text(f"weights cache: {manager.home}"))
        if args.long:
            # one block per entry, each field wrapped at spaces under its label: a URL, a
            # path or a hash is never split (a wide table of licences and sources cannot
            # fit 80 columns)
            for row in rows:
                state = "[green]installed[/green]" if row["installed"] else "not installed"
                console.print(Text.assemble("\n", (row["name"], "bold"),
                                            f"  {row['kind']} · {row['plugin']} · ")
                              + Text.from_markup(state))
                fields: list[tuple[str, str]] = []
                if row["needs"]:
                    fields.append(("needs", ", ".join(row["needs"]) + " (fetch installs it first)"))
                fields.append(("get", row["how"]))
                licence = row["licence"] + (" [non-commercial: accept with --accept-licence or "
                                            "a yes when asked]" if row["noncommercial"] else "")
                fields.append(("licence", licence))
                fields.append(("source", row["source"]))
                for i, src in enumerate(row["sources"], 1):
                    fields.append((f"from {i}", f"{src['description']} (found in "
                                                f"{src.get('found_in', '?')})"))
                if row["note"]:
                    fields.append(("note", row["note"]))
                recorded = (f" (recorded {row['sha256_recorded']})"
                            if row["sha256_recorded"] else "")
                sha = row["sha256"] or (
                    f"starts with {row['sha256_prefix']} (published in the file name); the "
                    f"rest: {TOFU}{recorded}" if row["sha256_prefix"] else TOFU + recorded)
                fields.append(("sha256", sha))
                if row["path"]:
                    fields.append(("path", row["path"]))
                for label, value in fields:
                    _print_field(console, label, value)
            return 0
        # fits 80 columns (no rules: room for plugin "domain_modulation"); on a narrower
        # terminal the table is wider than it (the terminal wraps it): names stay whole
        table = Table(box=None)
        table.add_column("name", no_wrap=True)
        table.add_column("kind", no_wrap=True)
        table.add_column("plugin", no_wrap=True)
        table.add_column("installed", no_wrap=True)
        table.add_column("get", no_wrap=True)
        for row in rows:
            table.add_row(Text(row["name"]), row["kind"], Text(row["plugin"]),
                          "[green]yes[/green]" if row["installed"] else "no",
                          row["download"].split()[0])
        console.print(table)
        console.print("fetch: `stylebridge weights fetch NAME` (or `--set demo`); a file you "
                      "already have: `stylebridge weights register NAME --from FILE`. "
                      "Licences, sources and what each needs first: `stylebridge weights list "
                      "--long` (or --json).", markup=False, highlight=False)
        return 0


#: the width of ``weights list --long``'s field labels (``  licence ``)
_LABEL = 10


def _print_field(console: Console, label: str, value: str) -> None:
    """``  LABEL   VALUE``, the value wrapped at spaces under itself: a word wider than the
    line (a URL, a path) gets a line of its own, whole."""
    import textwrap

    from rich.text import Text

    lines = textwrap.wrap(value, max(console.width - _LABEL, 20), break_long_words=False,
                          break_on_hyphens=False) or [""]
    head = Text(f"  {label}".ljust(_LABEL), style="dim")
    console.print(head + Text(lines[0]), soft_wrap=True)
    for line in lines[1:]:
        console.print(Text(" " * _LABEL + line), soft_wrap=True)


@hookimpl
def register_commands(register: Any) -> None:
    register(WeightsCommand())
