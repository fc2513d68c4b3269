"""What ``reproduce thesis-tables`` and ``calibrate`` say about their inputs (QA): an empty
``--domains`` or ``--images`` folder is one line naming it, as the other commands say it;
photos and domain files are counted apart; a file in the photo folder that is no photo is
not an input ``--out`` could replace."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stylebridge.cli.main import main
from stylebridge.pipelines.presets import build_tiny_preset


def _argv(out: Path, *extra: str) -> list[str]:
    return ["reproduce", "thesis-tables", "--preset", "tiny", "--device", "cpu",
            "--out", str(out), *extra]


@pytest.mark.parametrize("option, said", [
    ("--domains", "no domain checkpoints in {} (folders are searched for *.safetensors files)"),
    ("--images", "no input images in {} (folders are searched for image files)")])
def test_an_empty_folder_is_one_line_naming_it(option: str, said: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no checkpoint, no photo")
    assert main(_argv(tmp_path / "out", option, str(empty))) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: {said.format(empty)}\n"
    assert "done" not in captured.out and "skipped" not in captured.out  # no empty report
    assert not (tmp_path / "out").exists()   # said before the preset is built


@pytest.mark.parametrize("option, value, said", [
    ("--clip-weights", "noeq", "--clip-weights 'noeq': expected NAME=PATH, e.g. "
                               "ViT-B-32=ViT-B-32.safetensors"),
    ("--clip-weights", "tiny-vit-p16={tmp}/none.pt", "{tmp}/none.pt: no such file"),
    ("--clip-weights", "ViT-B-16={tmp}/list.json", "--clip-weights names ['ViT-B-16'], which "
                                                   "are not among --clip ['tiny-vit-p16', "
                                                   "'tiny-vit-p8']"),
    ("--targets", "{tmp}/none.json", "{tmp}/none.json: no such file"),
    ("--targets", "{tmp}/list.json", "{tmp}/list.json: must map domain files to a text or "
                                     "{{\"text\"|\"image\": ...}}")])
def test_a_bad_cheap_option_is_said_before_the_preset_is_built(
        option: str, value: str, said: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # these were read after the tiny preset had been built (6 s, 14 files left in --out)
    (tmp_path / "list.json").write_text("[1, 2]")
    assert main(_argv(tmp_path / "out", option, value.format(tmp=tmp_path))) == 2
    assert capsys.readouterr().err == f"error: {said.format(tmp=tmp_path)}\n"
    assert not (tmp_path / "out").exists()


def test_no_usable_domain_lists_the_skipped_files_and_counts_domains(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # the skipped table's long temporary paths
    bad = tmp_path / "domains"
    bad.mkdir()
    (bad / "corrupt.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    (bad / "junk.safetensors").write_bytes(b"not a checkpoint")
    assert main(_argv(tmp_path / "out", "--domains", str(bad))) == 2
    captured = capsys.readouterr()
    out = " ".join(captured.out.split())
    assert "domains: 0 used, 2 skipped" in out and "photos:" not in out  # none was read
    assert "corrupt.safetensors" in out and "junk.safetensors" in out
    # stderr: the --preset tiny notice, then the error
    assert captured.err == (f"RANDOM WEIGHTS: --preset tiny built random-weight tiny models in "
                            f"{tmp_path / 'out' / 'tiny-preset'}; the numbers test the code "
                            "paths only\n"
                            "error: no usable domain: the 2 domain checkpoint(s) given were "
                            "all skipped (see the table above)\n")


def test_calibrate_out_beside_the_photos_replaces_an_earlier_calibration(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--out in the photo folder, over an earlier run's file: that file is no photo, the run
    does not read it, --force replaces it; a photo as --out is still refused."""
    from stylebridge.core.checkpoint import read_header

    preset = build_tiny_preset(tmp_path / "preset", n_images=3)
    photos = tmp_path / "photos"
    shutil.copytree(preset.images, photos)
    out = photos / "cal.safetensors"
    out.write_bytes(b"an earlier calibration")

    def calibrate(target: Path) -> int:
        return main(["calibrate", "alpha", "-e", f"e4e:{preset.e4e}", "-g",
                     str(preset.generator), "--images", str(photos), "--out", str(target),
                     "--force", "--samples", "8", "--no-align", "--device", "cpu"])

    assert calibrate(out) == 0, capsys.readouterr().err
    text = " ".join(capsys.readouterr().out.split())
    assert "alpha per style layer (3 photos, 8 samples)" in text and "3 done, 0 skipped" in text
    assert read_header(out).plugin == "alpha"   # replaced by this run's fit
    assert "α →1" in text and "R² ↑" in text    # the headers say which way is better
    photo = sorted(photos.glob("*.png"))[0]
    before = photo.read_bytes()
    assert calibrate(photo) == 2
    assert "--out names a file this run reads" in capsys.readouterr().err
    assert photo.read_bytes() == before
