"""Usage errors of the command line: misspelt options and names get the closest one, no option
is taken for a prefix of another, a missing command is an error, and a NAME that a list
option read is named as such.  Every message is one line and exit code 2."""

from __future__ import annotations

import argparse
import json
import types
from pathlib import Path

import pytest
from test_cli import _fresh_registry, run  # noqa: F401  (an autouse fixture: a fresh registry)

from stylebridge.cli.main import _subparsers, build_parser, main


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The stderr of a command line that argparse refuses (exit 2, nothing on stdout)."""
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    out, err = capsys.readouterr()
    assert exc.value.code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and "usage:" not in err
    return err


@pytest.mark.parametrize(("argv", "expected"), [
    # `--methods D` left --method missing: the stray option is what to report, not that
    (["adapt", "img.png", "-e", "e4e", "--methods", "pixar"],
     "error: unrecognized arguments: --methods; did you mean --method? "
     "(see stylebridge adapt --help)\n"),
    (["invert", "img.png", "--encodr", "e4e"],
     "error: unrecognized arguments: --encodr; did you mean --encoder? "
     "(see stylebridge invert --help)\n"),
    # a sub-sub-command (train domain), its required --out missing as well
    (["train", "domain", "--text", "a cartoon", "--stepz", "3"],
     "error: unrecognized arguments: --stepz; did you mean --steps? "
     "(see stylebridge train domain --help)\n"),
    # nothing else wrong: the same suggestion, after argparse's own parse
    (["plugins", "--jsn"],
     "error: unrecognized arguments: --jsn; did you mean --json? "
     "(see stylebridge plugins --help)\n"),
    (["invert", "img.png", "-e", "e4e", "--btach=2", "--alin-size", "8"],
     "error: unrecognized arguments: --btach=2 --alin-size 8; did you mean --batch (not "
     "--btach), --align-size (not --alin-size)? (see stylebridge invert --help)\n"),
])
def test_a_misspelt_option_is_named_with_the_closest_one(capsys, argv, expected) -> None:
    assert usage_error(capsys, *argv) == expected


def test_a_value_that_looks_like_an_option_is_still_the_options_value(capsys) -> None:
    """`--text -x`: argparse's "expected one argument" is the error, not "unrecognized -x";
    a negative number is a value."""
    err = usage_error(capsys, "train", "domain", "--out", "d.safetensors", "--text", "-x")
    assert err == "error: --text: expected one argument (see stylebridge train domain --help)\n"
    parser, _ = build_parser()
    args = parser.parse_args(["generate", "--truncation", "-0.5"])
    assert args.truncation == -0.5


@pytest.mark.parametrize(("argv", "head", "tail"), [
    (["adpat"], "error: COMMAND: invalid choice: 'adpat'; did you mean 'adapt'? (choose from ",
     " (see stylebridge --help)\n"),
    (["train", "domian"], "error: TARGET: invalid choice: 'domian'; did you mean 'domain'? "
     "(choose from ", " (see stylebridge train --help)\n"),
    (["analyze", "shift-norm"], "error: TARGET: invalid choice: 'shift-norm'; did you mean "
     "'shift-norms'? (choose from ", " (see stylebridge analyze --help)\n"),
])
def test_an_invalid_choice_suggests_the_closest(capsys, argv, head, tail) -> None:
    err = usage_error(capsys, *argv)
    assert err.startswith(head) and err.endswith(tail)


def test_no_name_far_from_every_choice_is_suggested(capsys) -> None:
    err = usage_error(capsys, "xyzzy")
    assert err.startswith("error: COMMAND: invalid choice: 'xyzzy' (choose from 'adapt', ")
    assert "did you mean" not in err


def test_an_option_is_never_taken_for_its_prefix(capsys) -> None:
    """`generate --seed 3` was `--seeds 3`: one image instead of the default eight."""
    err = usage_error(capsys, "generate", "--seed", "3")
    assert err == ("error: unrecognized arguments: --seed 3; did you mean --seeds? "
                   "(see stylebridge generate --help)\n")
    err = usage_error(capsys, "analyze", "latents", "--image", "x", "-e", "e4e", "--out", "o")
    assert err.startswith("error: unrecognized arguments: --image; did you mean --images? ")
    # at every depth: weights actions, analyze/train targets, featureshift actions
    parser, _ = build_parser()
    parsers = [parser, *_subparsers(parser)]
    assert {"stylebridge weights fetch", "stylebridge analyze latents",
            "stylebridge train featureshift"} <= {p.prog for p in parsers}
    assert [p.prog for p in parsers if p.allow_abbrev] == []


def test_a_plugin_commands_parsers_take_no_abbreviation_either(capsys, monkeypatch) -> None:
    """Third-party commands with actions of their own, one under argparse's plain
    ArgumentParser class the plugin chose: the same one-line errors and suggestions."""
    from stylebridge.cli.base import Command
    from stylebridge.registry import hookimpl
    from stylebridge.registry import registry as registry_mod

    class Zoo(Command):
        name = "zoo-test"
        help = "counts animals"
        parser_class: type | None = None

        def add_arguments(self, parser) -> None:
            extra = {"parser_class": self.parser_class} if self.parser_class else {}
            actions = parser.add_subparsers(dest="action", required=True, **extra)
            actions.add_parser("count").add_argument("--animals", type=int, default=1)

        def run(self, args, console) -> int:
            print(f"{args.action} {args.animals}")
            return 0

    class Farm(Zoo):
        name = "farm-test"
        parser_class = argparse.ArgumentParser

    plugin = types.ModuleType("zoo_pkg")

    @hookimpl
    def register_commands(register) -> None:
        register(Zoo())
        register(Farm())

    plugin.register_commands = register_commands
    reg = registry_mod.Registry(entry_points=False, extra_plugins=[plugin])
    monkeypatch.setattr(registry_mod, "_REGISTRY", reg)
    for name in ("zoo-test", "farm-test"):
        code, out, _ = run(capsys, name, "count", "--animals", "3")
        assert code == 0 and out == "count 3\n"
        err = usage_error(capsys, name, "count", "--anim", "3")
        assert err == ("error: unrecognized arguments: --anim 3; did you mean --animals? "
                       f"(see stylebridge {name} count --help)\n")
        err = usage_error(capsys, name, "cont")
        assert err.startswith("error: action: invalid choice: 'cont'; did you mean 'count'?")
    err = usage_error(capsys, "zoo-tset")
    assert "invalid choice: 'zoo-tset'; did you mean 'zoo-test'?" in err


def test_no_command_is_a_usage_error_with_the_help_on_stderr(capsys) -> None:
    """As `stylebridge weights` without an action: exit 2, not 0 (a script that forgot the
    command must not pass); the help, which lists the commands, goes to stderr."""
    for argv in ([], ["--debug"]):
        code, out, err = run(capsys, *argv)
        assert code == 2 and out == ""
        assert err.startswith("usage: stylebridge ") and "COMMAND" in err
        assert "generate " in err and "weights " in err  # the command list
    assert usage_error(capsys, "weights") == ("error: the following arguments are required: "
                                              "ACTION (see stylebridge weights --help)\n")


CALIBRATE = ["calibrate", "-e", "e4e", "-g", "g.safetensors", "--no-align",
             "--out", "a.safetensors"]


def test_a_calibrator_name_read_as_an_images_path_is_named(capsys, monkeypatch,
                                                            tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    err = usage_error(capsys, *CALIBRATE, "--images", "preset/images", "alpha")
    assert err == ("error: NAME missing: `alpha` was read as an --images path; put NAME before "
                   "--images or end the list with -- (see stylebridge calibrate --help)\n")
    # both remedies parse
    parser, _ = build_parser()
    for argv in ([*CALIBRATE, "--images", "preset/images", "--", "alpha"],
                 [CALIBRATE[0], "alpha", *CALIBRATE[1:], "--images", "preset/images"]):
        args = parser.parse_args(argv)
        assert (args.calibrator, args.images) == ("alpha", ["preset/images"])
    # a folder that happens to be called alpha is a photo folder; no name: argparse's words
    (tmp_path / "alpha").mkdir()
    plain = ("error: the following arguments are required: NAME "
             "(see stylebridge calibrate --help)\n")
    assert usage_error(capsys, *CALIBRATE, "--images", "preset/images", "alpha") == plain
    assert usage_error(capsys, *CALIBRATE, "--images", "preset/images", "alhpa") == plain


@pytest.mark.parametrize(("name", "key", "allowed"), [
    ("id", "backend", "one of auto, arcface, dlib"),
    ("id", "detect", "one of auto, hog, whole"),
    ("lpips", "net", "one of alex, vgg"),
])
def test_metric_options_show_their_allowed_values(capsys, name, key, allowed) -> None:
    code, out, _ = run(capsys, "plugins", name, "--kind", "metric", "--json")
    assert code == 0
    rows = {row["name"]: row for row in json.loads(out)["options"]}
    assert rows[key]["allowed"] == allowed


@pytest.mark.parametrize(("spec", "message"), [
    ("id:backend=bogus", "backend='bogus': expected one of auto, arcface, dlib"),
    ("id:detect=bogus", "detect='bogus': expected one of auto, hog, whole"),
    ("lpips:net=bogus", "net='bogus': expected one of alex, vgg"),
])
def test_eval_refuses_what_the_metric_does_not_allow(capsys, tmp_path, spec, message) -> None:
    from PIL import Image

    Image.new("RGB", (16, 16)).save(tmp_path / "a.png")
    image = str(tmp_path / "a.png")
    code, _, err = run(capsys, "eval", "-m", spec, "--pred", image, "--target", image)
    assert code == 2 and message in err and err.count("\n") == 1


def _help(*words: str) -> str:
    parser, _ = build_parser()
    for p in [parser, *_subparsers(parser)]:
        if p.prog == " ".join(("stylebridge", *words)):
            return " ".join(p.format_help().split())
    raise AssertionError(words)


def _action(words: tuple[str, ...], name: str) -> argparse.Action:
    parser, _ = build_parser()
    for p in [parser, *_subparsers(parser)]:
        if p.prog == " ".join(("stylebridge", *words)):
            return next(a for a in p._actions if name in a.option_strings or a.metavar == name)
    raise AssertionError(words)


def test_eval_help_documents_id_detect() -> None:
    """The id metric's notes say `id:detect=hog`; `eval --help` says what it is."""
    text = _help("eval")
    assert "id[:backend=auto|arcface|dlib,detect=auto|hog|whole]" in text
    assert "hog = leave images without a found face out" in text


def test_every_argument_has_help() -> None:
    parser, _ = build_parser()
    missing = set()
    for p in [parser, *_subparsers(parser)]:
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction) or a.help:
                continue
            missing.add((p.prog, "/".join(a.option_strings) or str(a.metavar or a.dest)))
    assert missing == set()


@pytest.mark.parametrize(("words", "name", "says"), [
    (("serve",), "--seed", "(default 0)"),
    (("reproduce", "thesis-tables"), "--seed", "(default 0)"),
    (("train", "featureshift"), "--optimizer", "default adam"),
    (("train", "featureshift"), "--amp", "default auto"),
    (("train", "featureshift"), "--ema", "default 0 = off"),
    (("generate",), "--compile", "auto (default)"),
    (("train", "domain"), "--out", "DOMAIN.train-state.safetensors"),
    (("train", "hyperdomain"), "--out", "NET_samples/"),
    (("analyze", "latents"), "--out", "latents.json"),
    (("analyze", "shift-norms"), "--out", "shift_norms.json"),
    (("analyze", "shift-norms"), "--domain", "installed catalogue domain by name (-d pixar"),
    (("convert",), "SRC", "the upstream file KIND reads"),
    (("convert",), "DST", "refused when it exists, unless --force"),
])
def test_help_states_defaults_and_what_each_argument_is(words, name, says) -> None:
    assert says in " ".join(_action(words, name).help.split())


def test_shift_norms_domain_metavar_admits_installed_names() -> None:
    assert _action(("analyze", "shift-norms"), "--domain").metavar == \
        "[NAME:]DOMAIN.safetensors|DOMAIN"
