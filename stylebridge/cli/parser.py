"""The ``stylebridge`` argument parser: :class:`OneLineArgumentParser` (no abbreviations;
a usage error is one line on stderr and exit code 2, an unknown option said first with the
closest one, ``did you mean --method?``, the closest name of an invalid choice, a positional
that a list option before it read named) and the help formatters that wrap at spaces only
(:class:`WordWrapFormatter`, :class:`RawDescriptionWordWrapFormatter`).
:func:`stylebridge.cli.main.build_parser` builds the command line from them."""

from __future__ import annotations

import argparse
import difflib
import re
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from stylebridge.cli.streams import error_line

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


#: options whose value is a comma-separated number list (``--strength -0.5,1``)
NUMBER_LIST_OPTIONS = frozenset({"--strength"})
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_NEGATIVE_LIST = re.compile(rf"-(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?:,\s*{_NUMBER})*")


def join_number_lists(args: list[str]) -> list[str]:
    """``--strength -0.5,1`` → ``--strength=-0.5,1``: argparse takes a value that starts with
    ``-`` for an option unless it is one plain negative number (before ``--`` only)."""
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return out + args[i:]
        if (arg in NUMBER_LIST_OPTIONS and i + 1 < len(args)
                and _NEGATIVE_LIST.fullmatch(str(args[i + 1]))):
            out.append(f"{arg}={args[i + 1]}")
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


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
        args = join_number_lists(list(sys.argv[1:] if args is None else args))
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


__all__ = ["SWALLOW_TEST", "OneLineArgumentParser", "RawDescriptionWordWrapFormatter",
           "WordWrapFormatter", "did_you_mean", "one_line_usage_error"]
