"""``train domain/hyperdomain/mindthegap --clip-config``: a CLIP architecture open_clip does not
ship (the tiny preset's, a new one) could be named by ``--clip`` only in ``reproduce``; the
trainers said ``unknown CLIP model``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stylebridge.cli.main import main
from stylebridge.core.checkpoint import read_header


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A config folder holding one architecture under a name no other test registers, and
    its (random) weights file."""
    from stylebridge.pipelines.presets import write_tiny_clips

    made = tmp_path_factory.mktemp("tiny_clips")
    weights = write_tiny_clips(made)["tiny-vit-p16"]
    configs = tmp_path_factory.mktemp("configs")
    shutil.copy(made / "tiny-vit-p16.json", configs / "clip-config-test.json")
    return configs, weights


def _train(generator: Path, out: Path, weights: Path, *extra: str) -> int:
    return main(["train", "domain", "-g", str(generator), "--text", "a sketch", "--clip",
                 "clip-config-test", "--clip-weights", f"clip-config-test={weights}",
                 "--steps", "1", "--batch", "1", "--out", str(out), "--device", "cpu", *extra])


def test_train_domain_names_a_clip_that_clip_config_registers(
        tmp_path: Path, converted_tiny: Path, clip_files: tuple[Path, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    configs, weights = clip_files
    out = tmp_path / "d.safetensors"
    assert _train(converted_tiny, out, weights) == 2
    assert "clip-config-test" in capsys.readouterr().err
    assert not out.exists()
    assert _train(converted_tiny, out, weights, "--clip-config", str(configs)) == 0
    assert read_header(out).kind == "domain_method"


def test_a_missing_clip_config_is_one_line(tmp_path: Path, converted_tiny: Path,
                                           clip_files: tuple[Path, Path],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere"
    assert _train(converted_tiny, tmp_path / "d.safetensors", clip_files[1],
                  "--clip-config", str(missing)) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"error: {missing}: no such file or directory"]
