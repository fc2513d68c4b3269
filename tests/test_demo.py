"""`stylebridge demo` end to end on the random-weight preset (no official weights installed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylebridge.cli.main import main


@pytest.fixture(autouse=True)
def _empty_weights_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "no-weights"))


def test_demo_runs_every_stage_and_labels_random_weights(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--device", "cpu"]) == 0
    terminal = capsys.readouterr().out
    assert "RANDOM WEIGHTS" in terminal and "photo vs inversion" in terminal
    info = json.loads((out / "demo.json").read_text())
    assert info["random_weights"] is True and "RANDOM WEIGHTS" in info["notice"]
    assert info["photo"] == "skimage.data.astronaut()"
    assert info["rows"] == ["e4e", "e4e + alpha", "FSE features", "FSE shift",
                            "FSE shift, no offsets on layer 0", "FeatureShift on e4e"]
    assert info["columns"] == ["aligned photo", "inversion", "random domain A", "random domain B"]
    stages = [s["stage"] for s in info["stages"]]
    assert stages[0].startswith("align") and stages[1].startswith("alpha calibration")
    assert len(stages) == 2 + len(info["rows"])
    for row, values in info["metrics_photo_vs_inversion"].items():
        assert row in info["rows"]
        assert {"mse", "psnr", "ssim"} <= set(values)
        assert all(np.isfinite(v) for v in values.values())
    aligned = Image.open(out / "aligned.png")
    assert aligned.size == (256, 256)
    # the grid: 6 rows x 4 columns of 128 px tiles (2 px padding), a 2-line header, a notice
    grid = np.asarray(Image.open(out / "demo_grid.png"))
    assert grid.shape[0] == 26 + 6 * 130 + 2 + 14
    assert grid.shape[1] > 4 * 130
    # the red notice line under the grid is there
    foot = grid[26 + 6 * 130 + 2:]
    assert ((foot[..., 0] > 200) & (foot[..., 1] < 80)).any()


def test_demo_with_a_photo_without_a_face_is_one_line(tmp_path: Path, capsys) -> None:
    from skimage import data as skdata

    cat = tmp_path / "cat.png"
    Image.fromarray(skdata.chelsea()).save(cat)
    assert main(["demo", "--out", str(tmp_path / "d"), "--image", str(cat)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no face found" in err and str(cat) in err
