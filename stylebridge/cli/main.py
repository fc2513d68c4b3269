"""``stylebridge`` command line: subcommands come from the ``register_commands`` hook (built-in
commands under :mod:`stylebridge.cli.commands`, third-party ones from their packages)."""

from __future__ import annotations

import argparse
import difflib
import numbers
import os
import re
import sys
import textwrap
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from stylebridge import __version__
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

_ARGPARSE_VALUE = re.compile(r"^argument (?P<opt>[^:]+): invalid (?P<type>\w+) value: (?P<val>.*)$")
_ARGPARSE_OTHER = re.compile(r"^argument (?P<opt>[^:]+): (?P<rest>.*)$")
_EXPECTED = {"float": "a number", "int": "an integer", "finite_float": "a finite number"}


def one_line_usage_error(message: str, prog: str) -> str:
    """argparse's message as one line: ``--truncation: expected a number, got 'abc' (see
    stylebridge generate --help)`` instead of a usage block."""
    m = _ARGPARSE_VALUE.match(message)
    if m:
        what = _EXPECTED.get(m["type"], f"a valid {m['type']}")
        text = f"{m['opt']}: expected {what}, got {m['val']}"
    else:
        m = _ARGPARSE_OTHER.match(message)
        text = f"{m['opt']}: {m['rest']}" if m else message
    return f"{' '.join(text.split())} (see {prog} --help)"


_PROG = "_stylebridge_prog"  # the namespace attribute naming the command that parsed last
_CHAIN = "_stylebridge_parsers"  # the parsers that parsed, innermost first


@dataclass
class _Parsing:
    """A parser whose ``parse_known_args`` is running, with the arguments it was given (a
    sub-command's parser gets what follows its name) and, once its sub-command's parser has
    started, how many of them that one got."""

    parser: argparse.ArgumentParser
    args: list[str]
    to_child: int | None = None

    def own(self) -> list[str]:
        """The arguments that are this parser's own: before its sub-command and ``--``."""
        args = self.args
        if self.to_child is not None:
            args = args[:len(args) - self.to_child - 1]
        return args[:args.index("--")] if "--" in args else args


#: the parsers parsing now, outermost first
_ACTIVE: list[_Parsing] = []

#: attribute of a positional action: a test of whether a value was meant for it, although a
#: list option before it (``--images a b NAME``) read it (:func:`stylebridge.cli.common.
#: claim_swallowed`)
SWALLOW_TEST = "stylebridge_claims"


def did_you_mean(word: str, candidates: Sequence[str]) -> str | None:
    """The candidate closest to ``word`` (difflib), if one is close enough."""
    close = difflib.get_close_matches(word, list(dict.fromkeys(candidates)), n=1, cutoff=0.6)
    return close[0] if close else None


def _long_options(parsers: Sequence[argparse.ArgumentParser]) -> list[str]:
    return [o for p in parsers for o in p._option_string_actions if o.startswith("--")]


def _option_suggestions(tokens: Sequence[str], parsers: Sequence[argparse.ArgumentParser]) -> str:
    """``; did you mean --method?`` for the unknown ``--options`` among ``tokens`` that are
    close to an option of ``parsers`` (``--method (not --methods), --encoder (not --encodr)``
    when there are several)."""
    options = _long_options(parsers)
    found = []
    for token in tokens:
        word = token.split("=", 1)[0]
        if word.startswith("--") and len(word) > 2:
            close = did_you_mean(word[2:], [o[2:] for o in options])
            if close is not None and close != word[2:]:  # `adapt --version`: the top level's
                found.append((word, f"--{close}"))
    if not found:
        return ""
    if len(found) == 1:
        return f"; did you mean {found[0][1]}?"
    return "; did you mean " + ", ".join(f"{good} (not {bad})" for bad, good in found) + "?"


def _is_unknown_option(parser: argparse.ArgumentParser, arg: str) -> bool:
    """Whether argparse would take ``arg`` for an option that ``parser`` does not have (the
    tests of ``ArgumentParser._parse_optional``, without abbreviations)."""
    if len(arg) < 2 or arg[0] not in parser.prefix_chars or " " in arg:
        return False
    known = parser._option_string_actions
    if arg in known or arg.split("=", 1)[0] in known:
        return False
    if arg[1] not in parser.prefix_chars and arg[:2] in known:  # -eVALUE
        return False
    return not (parser._negative_number_matcher.match(arg)
                and not parser._has_negative_number_optionals)


def _unknown_options(parser: argparse.ArgumentParser, args: Sequence[str]) -> list[str]:
    """The options in ``args`` that ``parser`` does not know, but for one right after an
    option that takes a value (``--text -x``: argparse's "expected one argument" says it)."""
    found, wants_value = [], False
    for arg in args:
        if not wants_value and _is_unknown_option(parser, arg):
            found.append(arg)
        action = parser._option_string_actions.get(arg)
        wants_value = action is not None and action.nargs not in (0, "?", "*")
    return found


def _stray_options() -> str | None:
    """``unrecognized arguments: --methods; did you mean --method?`` when the command line
    being parsed has options no parser knows: said before whatever else argparse found (a
    misspelt ``--methods`` makes ``--method`` look missing)."""
    stray = [arg for run in _ACTIVE for arg in _unknown_options(run.parser, run.own())]
    if not stray:
        return None
    parsers = [run.parser for run in reversed(_ACTIVE)]
    return f"unrecognized arguments: {' '.join(stray)}{_option_suggestions(stray, parsers)}"


def _list_values(parser: argparse.ArgumentParser, args: Sequence[str]
                 ) -> list[tuple[str, list[str]]]:
    """``(option, values)`` of each list option (``nargs`` ``+``, ``*``, ``?``) in ``args``."""
    found: list[tuple[str, list[str]]] = []
    current: list[str] | None = None
    for arg in args:
        if arg == "--":
            break
        action = parser._option_string_actions.get(arg)
        if action is not None:
            current = None
            if action.nargs in ("+", "*", "?"):
                current = []
                found.append((arg, current))
        elif len(arg) > 1 and arg[0] in parser.prefix_chars:
            current = None
        elif current is not None:
            current.append(arg)
    return found


def _swallowed_positional(parser: argparse.ArgumentParser, message: str) -> str | None:
    """``NAME missing: `alpha` was read as an --images path; ...`` when argparse finds a
    positional missing because a list option before it read it as one of its values."""
    m = re.match(r"^the following arguments are required: (.*)$", message)
    if not m or not _ACTIVE or _ACTIVE[-1].parser is not parser:
        return None
    missing = set(m[1].split(", "))
    args = _ACTIVE[-1].own()
    for action in parser._actions:
        test = getattr(action, SWALLOW_TEST, None)
        name = action.metavar if isinstance(action.metavar, str) else action.dest
        if test is None or action.option_strings or name not in missing:
            continue
        for option, values in reversed(_list_values(parser, args)):
            if values and test(values[-1]):
                return (f"{name} missing: `{values[-1]}` was read as an {option} path; put "
                        f"{name} before {option} or end the list with --")
    return None


def _choice_suggestion(message: str) -> str:
    """``invalid choice: 'adpat'; did you mean 'adapt'? (choose from ...)``."""
    m = re.match(r"^(?P<head>.*invalid choice: '(?P<val>[^']*)')(?P<rest> \(choose from "
                 r"(?P<choices>.*)\))$", message)
    if not m:
        return message
    close = did_you_mean(m["val"], re.findall(r"'([^']*)'", m["choices"]))
    return message if close is None else f"{m['head']}; did you mean {close!r}?{m['rest']}"


class WordWrapFormatter(argparse.HelpFormatter):
    """argparse's help formatter, wrapping at spaces only: a name in a help text
    (``tiny-vit-p16.safetensors``, ``clip_quality[:model=ViT-B-16]``) is never split at a
    hyphen or cut in two, so it can be copied from the terminal."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        text = self._whitespace_matcher.sub(" ", text).strip()
        return textwrap.wrap(text, width, break_on_hyphens=False, break_long_words=False)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        text = self._whitespace_matcher.sub(" ", text).strip()
        return textwrap.fill(text, width, initial_indent=indent, subsequent_indent=indent,
                             break_on_hyphens=False, break_long_words=False)


class RawDescriptionWordWrapFormatter(WordWrapFormatter):
    """:class:`WordWrapFormatter` that keeps the tables of a description or epilog as written
    (``--skip-layers``' layer table: lines that start with ``|``) and wraps its paragraphs
    (separated by blank lines) at the terminal's width, at spaces only."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out: list[str] = []
        paragraph: list[str] = []

        def flush() -> None:
            if paragraph:
                out.extend(textwrap.wrap(" ".join(paragraph), width, initial_indent=indent,
                                         subsequent_indent=indent, break_on_hyphens=False,
                                         break_long_words=False))
                paragraph.clear()

        for line in text.splitlines():
            if line.lstrip().startswith("|") or not line.strip():
                flush()
                out.append(indent + line if line.strip() else "")
            else:
                paragraph.append(line.strip())
        flush()
        return "\n".join(out) + "\n"


class OneLineArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` (and, through ``add_subparsers``, every parser below it) whose
    usage errors are one line on stderr and exit code 2, like every other stylebridge error.

    It takes no abbreviations (``--seed`` is not ``--seeds``), reports an unknown option
    before anything else argparse finds, with the closest option (``did you mean
    --method?``), and the closest name of an invalid choice."""

    #: commands of installed packages that were dropped (name -> why), for a clear error
    #: when one is called instead of argparse's "invalid choice"
    broken_commands: dict[str, str]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False  # a prefix of an option is a typo, not that option
        kwargs.setdefault("formatter_class", WordWrapFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str, prog: str | None = None) -> NoReturn:
        if not message.startswith("unrecognized arguments"):
            message = _stray_options() or _swallowed_positional(self, message) or message
        error_line(one_line_usage_error(_choice_suggestion(message), prog or self.prog),
                   every_rank=False)  # torchrun: all ranks parsed the same arguments
        self.exit(2)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        args = list(sys.argv[1:] if args is None else args)
        if _ACTIVE and _ACTIVE[-1].to_child is None:  # this is the sub-command's parser
            _ACTIVE[-1].to_child = len(args)
        _ACTIVE.append(_Parsing(self, args))
        try:
            parsed, extras = super().parse_known_args(args, namespace)
        finally:
            _ACTIVE.pop()
        if not hasattr(parsed, _PROG):  # the innermost (sub-)command's parser returns first
            setattr(parsed, _PROG, self.prog)
            setattr(parsed, _CHAIN, [])
        getattr(parsed, _CHAIN).append(self)
        return parsed, extras

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:  # the help to see is the command's, not the top level's
            hint = _option_suggestions(extras, getattr(parsed, _CHAIN))
            self.error(f"unrecognized arguments: {' '.join(extras)}{hint}", getattr(parsed, _PROG))
        self.parsed_prog = str(getattr(parsed, _PROG))  # `stylebridge train domain`
        delattr(parsed, _PROG)
        delattr(parsed, _CHAIN)
        return parsed


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
        return 130
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


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
