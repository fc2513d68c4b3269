"""Command-line details a script or a terminal depends on (QA, CLI consistency): an empty
path is refused instead of meaning the current folder, ``--debug`` keeps the exit code,
``eval --json -`` leaves stdout to the JSON, help texts never split a name, and an option of
the top level is not suggested as a typo fix for itself."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylebridge.cli.main import main
from stylebridge.registry import reset_registry


@pytest.fixture(autouse=True)
def _fresh_registry():
    reset_registry()
    yield
    reset_registry()


@pytest.mark.parametrize("argv, option", [
    (["generate", "-g", "", "--seeds", "0"], "--generator/-g"),
    (["adapt", "-e", "  ", "x.png"], "--encoder/-e"),
    (["eval", "--metric", "", "--pred", "x"], "--metric/-m"),
])
def test_an_empty_spec_is_refused_naming_its_option(argv, option, tmp_path: Path, capsys,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # `-g ''` (an unset shell variable) was "error: empty generator spec", naming no option
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {option}: expected a value, got ")
    assert err.count("\n") == 1 and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv", [
    ["generate", "--seeds", "0", "--out", ""],
    ["invert", "--encoder", "e4e", ""],
    ["align", "--out", "", "x.png"],
])
def test_an_empty_path_is_refused_not_the_current_folder(argv, tmp_path: Path, capsys,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:  # a usage error, as argparse's
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "empty path" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # nothing written where the shell stood


def test_debug_keeps_the_exit_code_and_adds_the_traceback(tmp_path: Path, capsys) -> None:
    missing = str(tmp_path / "nope.safetensors")
    assert main(["info", missing]) == 2
    plain = capsys.readouterr().err
    assert main(["--debug", "info", missing]) == 2
    debug = capsys.readouterr().err
    assert "Traceback" not in plain and "Traceback" in debug
    assert debug.rstrip().endswith(plain.rstrip())  # the same one line, after the traceback


def test_a_top_level_option_is_not_suggested_for_itself(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["adapt", "--version"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --version" in err and "did you mean" not in err


def test_help_wraps_at_spaces_and_keeps_names_whole(capsys, monkeypatch: pytest.MonkeyPatch
                                                    ) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit):
        main(["train", "domain", "--help"])
    out = capsys.readouterr().out
    lines = [line.strip() for line in out.splitlines()]
    # argparse's default wrapper broke this at a hyphen ("tiny-" / "vit-p16.safetensors")
    assert any("tiny-vit-p16=PRESET/clip/tiny-vit-p16.safetensors" in line for line in lines)
    assert not any(line.endswith("-") and not line.endswith(" -") for line in lines
                   if not line.startswith("-"))


def test_eval_json_to_stdout_is_the_json_alone(tmp_path: Path, capfd) -> None:
    folder = tmp_path / "img"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
            folder / f"{name}.png")
    assert main(["eval", "-m", "mse", "--pred", str(folder), "--target", str(folder),
                 "--json", "-"]) == 0
    out, err = capfd.readouterr()  # the JSON is written to file descriptor 1
    data = json.loads(out)  # nothing else on stdout
    assert data["mean"] == {"mse": 0.0} and data["n_images"] == 2
    assert "mean" in err and "wrote" not in err  # the table went to stderr


@pytest.mark.parametrize("name, message", [
    ("", "--device is empty: expected auto, cpu or cuda[:N]"),
    ("cuda:x", "--device 'cuda:x': expected auto, cpu or cuda[:N]"),
    ("gpu", "--device 'gpu': expected auto, cpu or cuda[:N]"),
    ("mps", "--device mps: Apple GPUs (MPS) are not supported yet; use --device cpu (auto "
            "picks it on a Mac)"),
])
def test_a_device_that_is_no_device_is_refused_as_such(name: str, message: str) -> None:
    """An empty --device (an unset variable) ran on auto, `cuda:x` was "no CUDA device"."""
    from stylebridge.core.device import resolve_device
    from stylebridge.errors import StylebridgeError

    with pytest.raises(StylebridgeError) as info:
        resolve_device(name)
    assert str(info.value) == message
    assert str(resolve_device(" CPU ")) == "cpu"
    assert str(resolve_device(None)) in ("cpu", "cuda")  # None: auto


def test_domain_options_take_adapts_method_name_too() -> None:
    """``--method``/``-m`` names the domains in ``adapt``/``generate``; the commands that
    spell it ``--domain`` or ``--domains`` take it as well, into the same list."""
    from stylebridge.cli.main import build_parser

    parser, _ = build_parser()
    shift = parser.parse_args(["analyze", "shift-norms", "--images", "x.png", "-m", "a", "--domain",
                               "b", "--method", "c", "-d", "d", "--out", "o", "--encoder", "e4e"])
    assert shift.domain == ["a", "b", "c", "d"]
    latents = parser.parse_args(["analyze", "latents", "--images", "x", "--encoder", "e4e", "--out", "o",
                                 "--method", "a", "-d", "b"])
    assert latents.domain == ["a", "b"]
    dataset = parser.parse_args(["featureshift", "build-dataset", "--images", "x", "-m", "a,b",
                                 "--domains", "c", "--method", "d", "--out", "o",
                                 "--encoder", "fse", "--guide", "e4e"])
    assert dataset.domains == ["a,b", "c", "d"]
