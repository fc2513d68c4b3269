"""A run none of whose photos can be read ends the same way in ``analyze shift-norms``,
``analyze latents`` and ``calibrate``: what runs on random weights, the table of skipped
photos, then one error line naming the first of them and why.  ``shift-norms`` printed only
``error: no readable photo`` (no file, no reason, no table)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import one_torch_thread

from stylebridge.cli.main import main


@pytest.fixture(scope="module")
def preset(tmp_path_factory: pytest.TempPathFactory):
    from stylebridge.pipelines.presets import build_tiny_preset

    with one_torch_thread():
        return build_tiny_preset(tmp_path_factory.mktemp("preset"), n_images=2)


@pytest.fixture
def bad(tmp_path: Path) -> Path:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"")
    (folder / "b.png").write_text("not an image")
    return folder


def _argv(command: str, preset, bad: Path, out: Path) -> list[str]:
    common = ["--images", str(bad), "-g", str(preset.generator), "--no-align", "--device", "cpu",
              "--out", str(out)]
    domain = str(sorted(preset.domains.glob("*.safetensors"))[0])
    return {"shift-norms": ["analyze", "shift-norms", "-e", f"fse:{preset.fse}", "-d", domain,
                            *common],
            "latents": ["analyze", "latents", "-e", f"e4e:{preset.e4e}", "--samples", "4",
                        *common],
            "calibrate": ["calibrate", "alpha", "-e", f"e4e:{preset.e4e}", "--samples", "4",
                          *common]}[command]


PURPOSE = {"shift-norms": "to measure the norms on",
           "latents": "to compute the encoder's style means from",
           "calibrate": "to compute the encoder's style means from"}


@pytest.mark.parametrize("command", sorted(PURPOSE))
def test_no_readable_photo_ends_alike_everywhere(preset, bad: Path, tmp_path: Path,
                                                 command: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / ("out.safetensors" if command == "calibrate" else "out")
    with one_torch_thread():
        code = main(_argv(command, preset, bad, out))
    captured = capsys.readouterr()
    assert code == 2, captured
    said = " ".join(captured.out.split())
    assert "0 done, 2 skipped" in said
    assert "is empty (0 bytes)" in said and "is a text file, not an image" in said
    # stderr: the notices come first, then the one error line
    errors = [line for line in captured.err.splitlines() if line.strip()]
    notices = " ".join(" ".join(errors[:-1]).split())
    assert "RANDOM WEIGHTS" in notices and "error:" not in notices, errors
    assert errors[-1:] == [f"error: no readable photo {PURPOSE[command]}: {bad / 'a.png'}: is "
                           "empty (0 bytes) (and 1 more skipped)"], errors
    assert not out.exists()


def test_shift_norms_refuses_an_out_inside_a_file_before_loading(
        tmp_path: Path, bad: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Checked before anything loads (the encoder and generator named here do not exist);
    before, the norms were computed and then the folder could not be made."""
    blocker = tmp_path / "existing.txt"
    blocker.write_text("keep")
    code = main(["analyze", "shift-norms", "-e", f"fse:{tmp_path / 'no-fse.safetensors'}",
                 "-g", str(tmp_path / "no-g.safetensors"), "-d", "x.safetensors",
                 "--images", str(bad), "--out", str(blocker / "sn"), "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == f"error: {blocker}: is a file, not a folder ({blocker / 'sn'} was to be " \
                  "written in it)", err
