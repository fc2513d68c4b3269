"""A leading ``~`` in a path option is the home folder, also where the shell leaves it
(``--out=~/x``, ``-o~/x``, a quoted ``'~/x'``, the path part of a plugin spec
``e4e:~/e4e.safetensors``): ``--out=~/x`` made a folder literally named ``~`` in the current
one.  Every built-in command's path options take the shared types of ``cli/common.py``."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from stylebridge.cli import common
from stylebridge.cli.main import build_parser

HOME = "/home/tester"

#: metavars (or destinations) of options that name files or folders, or specs with a path
PATHISH = re.compile(r"CKPT|DIR|FILE|PATH|SPEC|IMAGE|INVERSION|JSON|OUT|DATASET|^RUN$|SRC|DST|"
                     r"PHOTO|DOMAIN|STATS|safetensors|\.png|\.jpg|\.txt|KEY=VALUE|"
                     r"reference-image|D1,D2|NAME\[:k=v|NAME:WEIGHT|WEIGHT\[:k=v")
#: commands whose parsers are not checked here (none: `info` takes user_spec too)
NOT_CHECKED: set[str] = set()


@pytest.fixture(autouse=True)
def _home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", HOME)


def test_the_shared_types() -> None:
    assert common.user_path("~/x") == Path(f"{HOME}/x")
    assert common.user_path("~") == Path(HOME)
    assert common.user_path("a/~/x") == Path("a/~/x")
    assert common.user_path_text("~/photos") == f"{HOME}/photos"
    for given, expected in [
        ("~/g.safetensors", f"{HOME}/g.safetensors"),
        ("e4e:~/e4e.safetensors", f"e4e:{HOME}/e4e.safetensors"),
        ("fse:~/fse.safetensors:mode=features", f"fse:{HOME}/fse.safetensors:mode=features"),
        ("lpips:backbone=~/vgg.pth", f"lpips:backbone={HOME}/vgg.pth"),
        ("id:0.1:weights=~/ir.pth,detect=hog", f"id:0.1:weights={HOME}/ir.pth,detect=hog"),
        ("tiny=~/clip.safetensors", f"tiny={HOME}/clip.safetensors"),
        ("a.safetensors,~/b.safetensors", f"a.safetensors,{HOME}/b.safetensors"),
        ("stylegan2", "stylegan2"),
        ("clip_direction:1.0:text=~ish", "clip_direction:1.0:text=~ish"),  # not a path
        ("x:~user/y", "x:~user/y"),
    ]:
        assert common.user_spec(given) == expected, given


def _walk(parser: argparse.ArgumentParser, prog: str):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _walk(child, f"{prog} {name}")
        else:
            yield prog, action


def test_every_path_option_of_the_built_in_commands_expands_home() -> None:
    parser, commands = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    checked, missing = 0, []
    for name, command in commands.items():
        if name in NOT_CHECKED or not type(command).__module__.startswith(
                "stylebridge.cli.commands."):
            continue
        for prog, action in _walk(sub.choices[name], name):
            label = str(action.metavar or action.dest)
            if not PATHISH.search(label) or action.nargs == 0:
                continue
            checked += 1
            if action.type not in (common.user_path, common.user_path_text, common.user_spec):
                missing.append(f"{prog} {'/'.join(action.option_strings) or action.dest}")
    assert checked > 60 and missing == []


def test_a_command_line_with_tildes_the_shell_left() -> None:
    parser, _ = build_parser()
    args = parser.parse_args(["render", "~/inv", "-m", "~/d.safetensors", "--out=~/r",
                              "--generator=~/g.safetensors", "-e", "e4e:~/e.safetensors"])
    assert args.latents == [f"{HOME}/inv"] and args.method == [f"{HOME}/d.safetensors"]
    assert args.out == Path(f"{HOME}/r") and args.generator == f"{HOME}/g.safetensors"
    assert args.encoder == f"e4e:{HOME}/e.safetensors"
    args = parser.parse_args(["train", "domain", "--image=~/ref.png", "--out=~/d.safetensors",
                              "--clip-weights=m=~/c", "--loss", "lpips:1:backbone=~/v.pth"])
    assert args.out == Path(f"{HOME}/d.safetensors") and args.clip_weights == [f"m={HOME}/c"]
    assert args.image == Path(f"{HOME}/ref.png")
    assert args.loss == [f"lpips:1:backbone={HOME}/v.pth"]
    args = parser.parse_args(["eval", "-m", "lpips:backbone=~/v.pth", "--pred=~/p",
                              "--csv=~/r.csv"])
    assert args.metric == [f"lpips:backbone={HOME}/v.pth"] and args.pred == [f"{HOME}/p"]
    assert args.csv == Path(f"{HOME}/r.csv")


def test_python_specs_expand_home_as_the_command_line_does() -> None:
    """`create("encoder", "e4e:~/e4e.safetensors")` looked for a folder named `~`."""
    from stylebridge.registry.spec import parse_plugin_spec

    assert parse_plugin_spec("e4e:~/e4e.safetensors").path == Path(f"{HOME}/e4e.safetensors")
    assert parse_plugin_spec("~/g.safetensors").path == Path(f"{HOME}/g.safetensors")
    spec = parse_plugin_spec("lpips:backbone=~/vgg.pth")
    assert spec.options == {"backbone": f"{HOME}/vgg.pth"}
    assert parse_plugin_spec("e4e:a~/x.safetensors").path == Path("a~/x.safetensors")
