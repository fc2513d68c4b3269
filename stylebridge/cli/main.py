"""``stylebridge`` command line: subcommands come from the ``register_commands`` hook (built-in
commands under :mod:`stylebridge.cli.commands`, third-party ones from their packages).

The parser class and its one-line usage errors are in :mod:`stylebridge.cli.parser` (re-exported
here); this module builds the parser and turns an error into one line and an exit code."""

from __future__ import annotations

import argparse
import numbers
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from stylebridge import __version__
from stylebridge.cli.parser import (
    SWALLOW_TEST,
    OneLineArgumentParser,
    RawDescriptionWordWrapFormatter,
    WordWrapFormatter,
    did_you_mean,
    one_line_usage_error,
)
from stylebridge.cli.streams import (
    STOP_ON_SIGNALS,
    Stopped,
    error_line,
    launch,
    peer_stopped,
    printable_names,
    signals_stop,
    silence_stdout,
)
from stylebridge.errors import RegistryError, StylebridgeError


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, object]]:
    """The ``stylebridge`` parser: one sub-command per object registered through the
    ``register_commands`` hook (built-in and third-party alike)."""
    from stylebridge.cli.base import Command
    from stylebridge.registry import get_registry
    from stylebridge.registry.registry import BUILTIN_PROVIDER

    registry = get_registry()
    parser = OneLineArgumentParser(
        prog="stylebridge",
        description="StyleGAN2 encoders and domain adaptation, composed from plugins.",
    )
    parser.add_argument("--version", action="version", version=f"stylebridge {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show full tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands: dict[str, object] = {}

    for name in registry.names("command"):
        entry = registry.get("command", name)
        cmd = entry.obj
        if not isinstance(cmd, Command):  # the registry cannot check this: it is below the CLI
            what = (f"the class {cmd.__name__} (register an instance: {cmd.__name__}())"
                    if isinstance(cmd, type) else f"a {type(cmd).__name__}")
            message = (f"plugin {entry.provider!r} registered {what} as command {name!r}, but "
                       "commands must be instances of stylebridge.cli.base.Command")
            if entry.provider == BUILTIN_PROVIDER:
                raise RegistryError(message)
            why = f"registered {what}, not a stylebridge.cli.base.Command instance"
            registry.reject("command", name, why)
            continue
        p = sub.add_parser(name, help=cmd.help, description=cmd.description or cmd.help)
        try:
            cmd.add_arguments(p)
        except Exception as exc:
            if entry.provider == BUILTIN_PROVIDER:
                raise
            # one package's broken command must not take `--help`, `plugins` or `doctor` down
            sub.choices.pop(name, None)
            sub._choices_actions[:] = [a for a in sub._choices_actions if a.dest != name]
            text = " ".join(str(exc).split())
            why = f"add_arguments raised {type(exc).__name__}" + (f": {text}" if text else "")
            registry.reject("command", name, why)
            continue
        commands[name] = cmd
    parser.broken_commands = {name: why for (kind, name), why in registry.rejected.items()
                              if kind == "command"}
    for p in _subparsers(parser):  # every (sub-)command accepts --debug, whoever built it
        if type(p) is argparse.ArgumentParser:  # a plugin's add_subparsers(parser_class=...)
            p.__class__ = OneLineArgumentParser
        if p.formatter_class is argparse.HelpFormatter:
            p.formatter_class = WordWrapFormatter
        p.allow_abbrev = False
        if "--debug" not in p._option_string_actions:
            p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                           help="show full tracebacks instead of one-line errors")
    return parser, commands


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """All parsers below ``parser`` (commands, their targets, their actions, ...)."""
    found: list[argparse.ArgumentParser] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases share a parser
                found.append(child)
                found.extend(_subparsers(child))
    return found


#: the options that bound a command's memory, named when it runs out (first: the command words)
_OOM_OPTIONS: dict[tuple[str, ...], str] = {
    ("generate",): "--batch",
    ("invert",): "--batch or --align-size",
    ("adapt",): "--batch or --align-size",
    ("calibrate",): "--batch, --align-size or --samples",
    ("eval",): "--batch or --size",
    ("align",): "--size or --transform-size",
    ("featureshift",): "--batch, --image-size or --shard-size",
    ("train",): "--batch",
    ("analyze",): "--batch or --samples",
    ("reproduce",): "--batch or --samples",
    ("demo",): "--device cpu",
}


def oom_advice(argv: Sequence[str]) -> str:
    """``try a smaller --batch`` with the option(s) that bound the command's memory."""
    command = next((a for a in argv if not a.startswith("-")), "")
    options = _OOM_OPTIONS.get((command,), "--batch")
    if options == "--device cpu":
        return "try --device cpu"
    return f"try a smaller {options}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``stylebridge`` command; the warnings filters, the CUDA-ops notice handler and
    the error handling of the standard streams are as before when it returns."""
    argv = list(sys.argv[1:] if argv is None else argv)
    with warnings.catch_warnings(), printable_names():
        # the CUDA-ops fall-back is one line on stderr (_main sets the handler); for Python
        # users it is a warning, which the command line would show a second time
        warnings.filterwarnings("ignore", message="stylebridge: CUDA ops unavailable")
        try:
            return _main(argv)
        finally:
            while _RESTORE:
                _RESTORE.pop()()


#: what :func:`main` undoes when the command returns (the CUDA-ops notice handler)
_RESTORE: list[Any] = []


def _cuda_notices_as_lines() -> None:
    """The CUDA-ops fall-back notice as one line on stderr while the command runs."""
    from stylebridge.core.ops import _cuda

    previous = _cuda.set_notice_handler(lambda line: print(line, file=sys.stderr, flush=True))
    _RESTORE.append(lambda: _cuda.set_notice_handler(previous))


def _main(argv: list[str]) -> int:
    if argv[:1] == ["--version"]:  # argparse would say just this: without torch and plugins
        print(f"stylebridge {__version__}")
        return 0
    debug = "--debug" in argv or os.environ.get("STYLEBRIDGE_DEBUG") == "1"
    try:
        # a non-commercial licence is one line among the notices here, not a warning: quieted
        # while the CLI runs only, never by an import (the registry imports every command).
        # Importing it imports torch (seconds): a Ctrl-C then is `error: interrupted` too
        from stylebridge.cli.options import quiet_api_warnings, quiet_licence_warnings

        quiet_licence_warnings()
        quiet_api_warnings()  # RANDOM WEIGHTS, skipped inputs...: the command prints its own
        _cuda_notices_as_lines()
        parser, commands = build_parser()
        word = next((a for a in argv if not a.startswith("-")), None)
        # what every rank of a torchrun launch finds alike (usage errors too): rank 0 says it
        if word in parser.broken_commands:
            error_line(f"command {word!r} is broken and was not loaded: "
                       f"{parser.broken_commands[word]}; `stylebridge plugins` lists the "
                       "failures", every_rank=False)
            return 2
        if word is not None and word not in commands:
            try:
                _refuse_contested_command(word)  # before argparse's "invalid choice"
            except RegistryError as exc:
                error_line(str(exc), every_rank=False)
                return exc.exit_code
        args = parser.parse_args(argv)
        if not args.command:  # a usage error, like a sub-command without its action
            if not launch()[0]:  # torchrun: rank 0 prints it, the others exit with it
                parser.print_help(sys.stderr)
            return 2
        world = launch()[1]  # torchrun: a command that runs in one process, before any work
        if world > 1 and not commands[args.command].runs_distributed(args):  # type: ignore[attr-defined]
            error_line(f"{parser.parsed_prog.removeprefix('stylebridge ')} runs in one "
                       f"process: start it without torchrun (WORLD_SIZE={world})",
                       every_rank=False)  # the other ranks exit silently
            return 2
        from stylebridge.cli.options import cli_console

        with signals_stop(args.command in STOP_ON_SIGNALS):
            code = commands[args.command].run(args, cli_console())  # type: ignore[attr-defined]
        return _exit_code(args.command, code)
    except StylebridgeError as exc:
        _trace(debug)
        error_line(str(exc))
        return exc.exit_code
    except KeyboardInterrupt as exc:
        error_line("interrupted" + (f" ({exc.name})" if isinstance(exc, Stopped) else ""))
        # 128 + the signal's number, as a shell reports a process the signal stopped:
        # 130 after Ctrl-C, 143 after SIGTERM, 129 after SIGHUP
        return 128 + exc.signum if isinstance(exc, Stopped) else 130
    except MemoryError:
        _trace(debug)
        error_line(f"out of memory; {oom_advice(argv)}")
        return 2
    except RecursionError:
        _trace(debug)
        error_line("an input is nested too deeply to read (a crafted or corrupt file?)")
        return 2
    except BrokenPipeError:  # whoever read the output went away (`| head`): stop quietly
        silence_stdout()
        return 128 + 13  # as a process killed by SIGPIPE
    except OSError as exc:  # full disk, permissions, ...: the write failed cleanly (atomic)
        _trace(debug)
        from stylebridge.core.io import DISK_FULL, disk_full_message

        if exc.errno in DISK_FULL:
            error_line(disk_full_message(exc.filename or "the output"))
            return 2
        blocking = _file_in_the_way(exc)
        if blocking is not None:
            target = str(exc.filename)
            error_line(f"{blocking}: is a file, not a folder" + (
                f" ({target} was to be written in it)" if target != blocking else ""))
            return 2
        where = f"{exc.filename}: " if exc.filename else ""
        error_line(f"{where}{exc.strerror or exc}")
        return 2
    except Exception as exc:
        _trace(debug)
        if peer_stopped(exc):  # that process' own error is its rank's line
            print(f"error: rank {launch()[0]} stopped: another process of the run failed (its "
                  "error is above)", file=sys.stderr)
            return 1
        if type(exc).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError
            error_line(f"out of GPU memory; {oom_advice(argv)} (or --device cpu)")
            return 2
        text = " ".join(str(exc).split()) or type(exc).__name__
        if "enforce fail at alloc_cpu" in text or "DefaultCPUAllocator: can't allocate" in text:
            error_line(f"out of memory; {oom_advice(argv)}")
            return 2
        if len(text) > 400:
            text = text[:400] + f" [... {len(text) - 400} characters cut]"
        origin = _plugin_origin(exc)
        why = f"{origin}the traceback is above" if debug else \
            f"{origin}rerun with --debug for the traceback"
        error_line(f"{type(exc).__name__}: {text} ({why})")
        return 1


def _trace(debug: bool) -> None:
    """With ``--debug``, the traceback of the error being handled, before its one line: the
    exit code stays the one the error has without ``--debug``."""
    if debug:
        import traceback

        traceback.print_exc()


def _refuse_contested_command(word: str) -> None:
    """Raise the registry's one-line clash message when ``word`` is a command name that two
    installed packages register (so neither is a command)."""
    from stylebridge.registry import get_registry

    registry = get_registry()
    if registry.contested("command", word):
        registry.get("command", word)  # raises: "command 'x' is registered by 'a' and 'b' ..."


def _exit_code(name: str, code: object) -> int:
    """A command's ``run()`` result as the exit code: an int, or None for 0; anything else
    is the command's bug, named in one line (with its package when it is a third party's)."""
    if code is None:
        return 0
    if isinstance(code, numbers.Integral):
        return int(code)
    from stylebridge.registry import get_registry

    shown = repr(code)
    if len(shown) > 60:
        shown = f"a {type(code).__name__}"
    raise RegistryError(f"command {name!r}{get_registry().where('command', name)}: run() "
                        f"returned {shown}, not an int exit code")


def _file_in_the_way(exc: OSError) -> str | None:
    """The file that stands where a folder was to be made (``--out afile``), if that is why
    ``exc`` was raised."""
    import errno
    from pathlib import Path

    if exc.errno not in (errno.EEXIST, errno.ENOTDIR) or not exc.filename:
        return None
    path = Path(str(exc.filename))
    for candidate in (path, *path.parents):
        if candidate.is_file():
            return str(candidate)
        if candidate.is_dir():
            return None
    return None


def _plugin_origin(exc: BaseException) -> str:
    """``raised in plugin package P (file.py:12); `` when the innermost frame of an installed
    third-party plugin package's code is in ``exc``'s traceback: the package to report the
    bug to.  Empty for stylebridge's own code."""
    try:
        from stylebridge.registry import get_registry

        registry = get_registry()
        found = None
        tb = exc.__traceback__
        while tb is not None:
            package = registry.package_of(str(tb.tb_frame.f_globals.get("__name__", "")))
            if package is not None:
                found = (package, os.path.basename(tb.tb_frame.f_code.co_filename), tb.tb_lineno)
            tb = tb.tb_next
    except Exception:  # the registry itself is what failed: no attribution
        return ""
    return "" if found is None else f"raised in plugin package {found[0]} ({found[1]}:{found[2]}); "


__all__ = ["SWALLOW_TEST", "OneLineArgumentParser", "RawDescriptionWordWrapFormatter",
           "WordWrapFormatter", "build_parser", "did_you_mean", "main", "one_line_usage_error",
           "oom_advice"]


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
