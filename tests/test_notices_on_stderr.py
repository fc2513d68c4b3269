"""The command line prints its notices (RANDOM WEIGHTS labels, replaced reports, resume
hints, notes) on stderr and its results (tables, ``wrote ...`` lines) on stdout: ``>
results.txt`` or a pipe gets the results alone while the notices stay on the screen."""

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


def _generate(preset, out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    with one_torch_thread():
        code = main(["generate", "-g", str(preset.generator), "--seeds", "0", "--device", "cpu",
                     "--out", str(out)])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stdout + stderr
    return " ".join(stdout.split()), " ".join(stderr.split())  # rich folds long lines


def test_the_random_weights_notice_is_on_stderr_and_the_result_on_stdout(
        preset, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "500")  # no line folded inside a long temporary path
    out = tmp_path / "out"
    stdout, stderr = _generate(preset, out, capsys)
    notice = f"RANDOM WEIGHTS: {preset.generator} is a random-weight generator"
    assert notice in stderr and "RANDOM WEIGHTS:" not in stdout
    assert stdout.startswith(f"wrote 1 images and grid.png to {out}")
    assert "wrote" not in stderr
    assert (out / "seed0000.png").is_file() and (out / "grid.png").is_file()


def test_a_replaced_report_is_said_on_stderr(preset, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "500")
    out = tmp_path / "out"
    stdout, stderr = _generate(preset, out, capsys)
    assert "earlier run" not in stdout + stderr  # the first run replaces nothing
    stdout, stderr = _generate(preset, out, capsys)  # the same folder again
    notice = f"{out} holds the report of an earlier run (grid.png): this run replaces it"
    assert notice in stderr and "earlier run" not in stdout
    assert stdout.startswith(f"wrote 1 images and grid.png to {out}")
