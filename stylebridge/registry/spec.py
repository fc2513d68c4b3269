"""Command-line specifications of plugins: ``NAME``, ``PATH``, ``NAME:PATH``, ``NAME:PATH:k=v,...``.

Plugin specs (``--encoder``, ``--method``, ``--calibrate``)::

    e4e                       registered name, default weights
    e4e:ckpt.safetensors      name + checkpoint (the header must agree with the name)
    ckpt.safetensors          checkpoint alone; the header names the plugin
    fse:fse.safetensors:mode=shift,layer=5
    fse:mode=latents          name + options, no checkpoint
    fse.safetensors:mode=shift  an existing checkpoint + options (its header names the plugin)
    hyperdomain:net.safetensors:text="a sketch, in pencil"
                              a value in double quotes may hold commas

Generator specs (``--generator``, :func:`stylebridge.registry.resolve.load_generator`)::

    ffhq.safetensors          checkpoint alone
    stylegan2:ffhq.safetensors
    stylegan2                 the installed generator weights (``stylebridge weights``)
    stylegan2-ffhq-1024       a weights entry by name

Existing files are resolved before the grammar, so a path with ``:`` in it works wherever the
file exists: ``dir/c:olon/gen.safetensors``, ``e4e:dir/c:olon/e4e.safetensors``,
``fse:a:b.safetensors:mode=shift``.  Escape: a file that does not exist yet cannot be told
from ``NAME:PATH``; prefix a relative path with ``./`` (``./e4e:x.safetensors``) so that it is
never read as a name.

Loss specs (``--loss``)::

    lpips:0.8                 name + weight
    lpips:0.8:net=vgg         name + weight + options
    id                        refused: the weight is always given (id:1.0)

A loss spec is the trainers' (``--loss``, a trainer config's ``losses=["lpips:0.8"]``): from
Python, ``create("loss", "lpips:net=vgg")`` takes the plugin spec, without the weight
(``create("loss", "lpips:0.8")`` says so).  :func:`spec_usage` words each kind's grammar for
``stylebridge plugins NAME``.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from stylebridge.core.options import as_bool, coerce_option
from stylebridge.errors import SpecError

__all__ = ["LossSpec", "PluginSpec", "absolute_spec", "as_bool", "coerce_option", "parse_loss_spec",
           "parse_plugin_spec", "spec_usage"]

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")


def _home_pattern(windows: bool) -> re.Pattern[str]:
    return re.compile(r"(^|[:=,])~(?=[/\\]|$|[:,])" if windows else r"(^|[:=,])~(?=/|$|[:,])")


#: a ``~`` that starts a path part of a spec (after ``:``, ``=`` or ``,``, or at the start)
#: and is the whole home folder name (``~`` or ``~/...``; ``~\\...`` too on Windows, whose
#: shells leave ``~`` to the program)
_SPEC_HOME = _home_pattern(os.name == "nt")
#: a Windows drive (``C:\\``, ``C:/``) opening a path: its ``:`` separates nothing
_DRIVE = re.compile(r"[A-Za-z]:[\\/]")
_OPTION_DRIVE = re.compile(r"(?<==)[A-Za-z]:(?=[\\/])")


def _drive_path(text: str, raw: str) -> tuple[Path, dict[str, str]] | None:
    """``C:\\w\\fse.pt[:k=v]`` → the path and its options, the drive's ``:`` kept in the path
    (a name is lower-case, so ``C:/w`` is no plugin ``C``; a lower-case drive is read so only
    on Windows or before a backslash, ``c:/x`` elsewhere staying the plugin ``c``)."""
    if not _DRIVE.match(text) or not (text[0].isupper() or text[2] == "\\" or os.name == "nt"):
        return None
    path, _, options = text[2:].partition(":")
    return Path(text[:2] + path), _parse_options(options, raw) if options else {}


def expand_home(text: str) -> str:
    """``text`` (a spec, or ``KEY=PATH``) with ``~`` expanded where it starts a path part
    (``~/g.safetensors``, ``e4e:~/e4e.safetensors``, ``lpips:backbone=~/vgg.pth``,
    ``tiny=~/clip.safetensors``, ``a.safetensors,~/b.safetensors``), as the shell expands
    ``--out ~/x`` (but not ``--out=~/x``, nor a string in Python); a ``~`` anywhere else (in
    a prompt) is kept."""
    if "~" not in text:
        return text
    home = os.path.expanduser("~")
    return text if home == "~" else _SPEC_HOME.sub(lambda m: m.group(1) + home, text)
_CKPT_SUFFIXES = (".safetensors", ".pt", ".pth", ".pkl", ".ckpt")


def _split_options(text: str, spec: str) -> list[str]:
    """``a=1,b="x, y"`` → ``['a=1', 'b="x, y"']``: commas inside double quotes do not split."""
    items, current, quoted = [], [], False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    if quoted:
        raise SpecError(f"unbalanced double quote in {spec!r}")
    items.append("".join(current))
    return items


def _parse_options(text: str, spec: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for item in _split_options(text, spec):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]   # a quoted value: kept as written, commas included
        if not sep or not key or not value.strip():
            raise SpecError(f"malformed option {item!r} in {spec!r}: expected key=value")
        if key in options:
            raise SpecError(f"option {key!r} is given twice in {spec!r}")
        options[key] = value.strip()
    return options


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or text.lower().endswith(_CKPT_SUFFIXES)


@dataclass(frozen=True)
class PluginSpec:
    """A parsed ``NAME[:PATH][:OPTIONS]`` specification."""

    name: str | None
    path: Path | None
    options: dict[str, str] = field(default_factory=dict)
    text: str = ""

    def __str__(self) -> str:
        return self.text


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # a name too long for the OS, a NUL byte
        return False


def _existing_path_spec(text: str, raw: str, what: str) -> PluginSpec | None:
    """Existing files first, then the grammar: a path with ``:`` in it is read as a file when
    that file exists, alone (``dir/c:olon/gen.safetensors``), after a name
    (``e4e:dir/c:olon/e4e.safetensors``) or before options (``NAME:PATH:k=v``, and
    ``PATH:k=v`` without a name)."""
    if ":" not in text:
        return None
    if _is_file(text):
        return PluginSpec(name=None, path=Path(text), text=raw)
    head, _, tail = text.rpartition(":")
    if "=" in tail and tail.split("=", 1)[0].isidentifier() and _is_file(head):
        # CKPT:k=v: the header names the plugin, the options follow the file
        return PluginSpec(name=None, path=Path(head), options=_parse_options(tail, raw),
                          text=raw)
    name, _, rest = text.partition(":")
    if not _NAME_RE.match(name) or not rest:
        return None
    if _is_file(rest):
        return PluginSpec(name=name, path=Path(rest), text=raw)
    cut = len(rest)
    while (cut := rest.rfind(":", 0, cut)) > 0:  # NAME:PATH:OPTIONS, PATH with ':' in it
        path_part, opt_part = rest[:cut], rest[cut + 1:]
        if "=" in opt_part and _is_file(path_part):
            return PluginSpec(name=name, path=Path(path_part),
                              options=_parse_options(opt_part, raw), text=raw)
    return None


def _colon_options(text: str) -> bool:
    """``a=1:b=2``: options written with ':' between them (each piece ``key=...``)."""
    return all("=" in piece and piece.split("=", 1)[0].isidentifier()
               for piece in text.split(":"))


def parse_plugin_spec(text: str, *, what: str = "plugin") -> PluginSpec:
    """Parse a plugin spec; raise :class:`SpecError` with a one-line reason."""
    raw = text
    text = expand_home(text.strip())  # `e4e:~/e4e.safetensors` from Python too
    if not text:
        raise SpecError(f"empty {what} spec")
    if ":" not in text and (_looks_like_path(text) or Path(text).is_file()):
        return PluginSpec(name=None, path=Path(text), text=raw)  # an existing file wins
    existing = _existing_path_spec(text, raw, what)
    if existing is not None:
        return existing
    if (drive := _drive_path(text, raw)) is not None:  # C:\\w\\g.pt, on any system
        return PluginSpec(name=None, path=drive[0], options=drive[1], text=raw)
    name, _, rest = text.partition(":")
    if not name:
        raise SpecError(f"{what} spec {raw!r} has no name before ':' (expected NAME:PATH)")
    if _NAME_RE.match(name) and _DRIVE.match(rest):  # fse:C:/w/fse.pt[:k=v]: a drive
        path, _, opt_part = rest[2:].partition(":")
        options = _parse_options(opt_part, raw) if opt_part else {}
        return PluginSpec(name=name, path=Path(rest[:2] + path), options=options, text=raw)
    if not _NAME_RE.match(name):
        if _looks_like_path(name) or (not _ and Path(text).is_dir()):
            # ./x:y.safetensors, dir/c:olon/..., `.`: a path (the loader names the problem)
            return PluginSpec(name=None, path=Path(text), text=raw)
        raise SpecError(f"{what} spec {raw!r}: invalid name {name!r} "
                        "(lower-case letters, digits, '_', '-', '.')")
    if not _:
        return PluginSpec(name=name, path=None, text=raw)
    if not rest:
        raise SpecError(f"{what} spec {raw!r} ends with ':' (expected NAME:PATH or NAME:key=value)")
    path_part, _, opt_part = rest.partition(":")
    first_key = path_part.split("=", 1)[0].split(",", 1)[0]
    if "=" in path_part and first_key.isidentifier() and ":" not in _OPTION_DRIVE.sub("", rest):
        # NAME:k=C:\\w\\x.pth,...: the only ':' are drives of option values
        return PluginSpec(name=name, path=None, options=_parse_options(rest, raw), text=raw)
    if "=" in path_part and first_key.isidentifier():  # NAME:k=v,... (values may be paths)
        if opt_part and _colon_options(opt_part):
            raise SpecError(f"{what} spec {raw!r}: separate options with ',', not ':' "
                            f"({name}:{path_part},{opt_part.replace(':', ',')})")
        if opt_part:
            raise SpecError(f"{what} spec {raw!r}: options must come last (NAME:PATH:key=value)")
        return PluginSpec(name=name, path=None, options=_parse_options(path_part, raw), text=raw)
    if not path_part:
        hint = (f" (options without a checkpoint: {name}:{opt_part})"
                if opt_part and "=" in opt_part else "")
        raise SpecError(f"{what} spec {raw!r} has an empty path{hint}")
    if ":" in opt_part and _colon_options(opt_part):
        raise SpecError(f"{what} spec {raw!r}: separate options with ',', not ':' "
                        f"({name}:{path_part}:{opt_part.replace(':', ',')})")
    options = _parse_options(opt_part, raw) if opt_part else {}
    if _ and opt_part == "" and rest.endswith(":"):
        raise SpecError(f"{what} spec {raw!r} ends with ':' (expected NAME:PATH:key=value)")
    return PluginSpec(name=name, path=Path(path_part), options=options, text=raw)


@dataclass(frozen=True)
class LossSpec:
    """A parsed ``NAME:WEIGHT[:OPTIONS]`` loss specification."""

    name: str
    weight: float = 1.0
    options: dict[str, str] = field(default_factory=dict)


def parse_loss_spec(text: str) -> LossSpec:
    raw = text
    text = text.strip()
    if not text:
        raise SpecError("empty loss spec (expected NAME:WEIGHT, e.g. lpips:0.8)")
    parts = text.split(":", 2)
    name = parts[0]
    if not _NAME_RE.match(name):
        lower = name.strip().lower()
        hint = f" (names are lower-case: {lower!r})" if _NAME_RE.match(lower) else \
            " (lower-case letters, digits, '_', '-', '.')"
        raise SpecError(f"loss spec {raw!r}: invalid name {name!r}{hint}")
    if len(parts) < 2 or not parts[1].strip():
        raise SpecError(f"loss spec {raw!r}: give the weight, NAME:WEIGHT (e.g. {name}:1.0)")
    try:
        if "_" in parts[1]:  # Python reads 1_0 as 10: a typo, not a weight
            raise ValueError(parts[1])
        weight = float(parts[1])
    except ValueError:
        raise SpecError(f"loss spec {raw!r}: weight {parts[1]!r} is not a number") from None
    if not math.isfinite(weight) or weight < 0:
        raise SpecError(f"loss spec {raw!r}: weight must be a finite number >= 0")
    options = _parse_options(parts[2], raw) if len(parts) == 3 else {}
    return LossSpec(name=name, weight=weight, options=options)


#: the command-line option that takes each kind's plugin spec
_SPEC_OPTIONS = {"encoder": "--encoder", "domain_method": "--method", "calibrator": "--calibrate"}


def spec_usage(kind: str, name: str, *, takes_weights: bool = False) -> str:
    """How a user writes a spec of the ``kind`` plugin ``name`` with options, by the grammar
    above (what ``stylebridge plugins NAME`` shows): a loss spec carries its weight
    (``--loss NAME:WEIGHT[:KEY=VALUE,...]``), which ``create`` does not take; a metric's
    ``NAME:PATH`` is its ``weights=PATH`` (``takes_weights``: the metric has that option)."""
    if kind == "loss":
        return (f"--loss {name}:WEIGHT[:KEY=VALUE,...]; create(\"loss\", "
                f"\"{name}[:KEY=VALUE,...]\") takes no weight")
    if kind == "metric":
        path = f"; {name}:PATH is {name}:weights=PATH" if takes_weights else ""
        return f"--metric {name}[:KEY=VALUE,...]{path}"
    if kind == "converter":
        return f"stylebridge convert {name} SRC DST --option KEY=VALUE"
    option = _SPEC_OPTIONS.get(kind)
    return f"{option + ' ' if option else ''}{name}[:CHECKPOINT][:KEY=VALUE,...]"


def absolute_spec(spec: str | Path) -> str:
    """``spec`` with its checkpoint path made absolute when that file exists: a file that
    records it and is read later from another folder (an inversion file read by ``render``,
    the guide a FeatureShift records read by ``adapt``) still finds the networks it was made
    with.  Names and missing paths stay as given."""
    text = str(spec)
    if Path(text).is_file():
        return str(Path(text).resolve())
    try:
        parsed = parse_plugin_spec(text)
    except SpecError:
        return text
    path = parsed.path
    if path is None or path.is_absolute() or not _is_file(str(path)):
        return text
    # the path as written sits after `NAME:` and before `:OPTIONS`; found by comparing paths
    # (`./e4e.safetensors` and `w\x.pt` on Windows are written otherwise than str(Path) gives them)
    expanded = expand_home(text.strip())
    start = len(parsed.name) + 1 if parsed.name is not None else 0
    ends = [len(expanded), *(i for i, c in enumerate(expanded) if c == ":" and i > start)]
    for end in ends:
        if Path(expanded[start:end]) == path:
            return f"{expanded[:start]}{path.resolve()}{expanded[end:]}"
    return text
