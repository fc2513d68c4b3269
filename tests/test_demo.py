"""`stylebridge demo` end to end on the random-weight preset (no official weights installed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylebridge.cli.main import main
from stylebridge.pipelines import demo

FS_ROW = "FeatureShift on FSE features, e4e guide (RANDOM WEIGHTS: untrained FeatureShift)"


@pytest.fixture(autouse=True)
def _empty_weights_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "no-weights"))


@pytest.mark.slow  # the full demo run (~5 s on CPU)
def test_demo_runs_every_stage_and_labels_random_weights(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--device", "cpu"]) == 0
    terminal = capsys.readouterr().out
    assert "RANDOM WEIGHTS" in terminal and "photo vs inversion" in terminal
    assert "id[dlib]" in terminal  # the column keeps its name (no rich tag)
    info = json.loads((out / "demo.json").read_text())
    assert info["random_weights"] is True and "RANDOM WEIGHTS" in info["notice"]
    assert info["photo"] == "skimage.data.astronaut()"
    assert info["rows"] == ["e4e", "e4e + alpha", "FSE features", "FSE shift",
                            demo.COARSE_ROW, FS_ROW]
    assert info["random_rows"] == info["rows"]
    assert info["random_inputs"] == {
        "generator": True, "e4e": True, "fse": True, "featureshift": True,
        "domains": {"random domain A": True, "random domain B": True}}
    assert info["columns"] == ["aligned photo", "inversion", "random domain A", "random domain B"]
    stages = [s["stage"] for s in info["stages"]]
    assert stages[0].startswith("align") and stages[1].startswith("alpha calibration")
    assert len(stages) == 2 + len(info["rows"])
    for row, values in info["metrics_photo_vs_inversion"].items():
        assert row in info["rows"]
        assert set(values) == {"mse", "psnr", "ssim", "id[dlib]"}  # the metric's own keys
        assert all(np.isfinite(v) for v in values.values())
    # the domain table tells the variants apart: how much each changed the inversion
    domain_metrics = info["metrics_domains"]
    change = {row: domain_metrics[row]["change (mse vs inversion)"] for row in info["rows"]}
    assert all(np.isfinite(v) and v > 0 for v in change.values())
    assert change[demo.COARSE_ROW] != change["FSE shift"]
    aligned = Image.open(out / "aligned.png")
    assert aligned.size == (256, 256)
    # the grid: 6 rows x 4 columns of 128 px tiles (2 px padding), a 2-line header (15 px
    # lines, 2 px above and below), a one-line notice
    grid = np.asarray(Image.open(out / "demo_grid.png"))
    assert grid.shape[0] == 34 + 6 * 130 + 2 + 19
    assert grid.shape[1] > 4 * 130
    # the red notice line under the grid is there
    foot = grid[34 + 6 * 130 + 2:]
    assert ((foot[..., 0] > 200) & (foot[..., 1] < 80)).any()


# what the demo says on stderr before it stops when no official weights are installed
RANDOM_BANNER = (f"{demo.RANDOM_WEIGHTS_NOTICE} Official weights are not installed (`stylebridge "
                 "demo --fetch` gets them; see `stylebridge weights list`); using a 64 px "
                 "random-weight preset.")


def _notices_then_one_error(err: str) -> str:
    """The error line of a demo's stderr, checked to come last and alone: before it only the
    notices (the RANDOM WEIGHTS banner, or nothing), no other line."""
    assert err.endswith("\n"), err
    notices, _, error = err.rstrip("\n").rpartition("\n")
    assert " ".join(notices.split()) in ("", RANDOM_BANNER), err
    assert error.startswith("error: ") and "error:" not in notices, err
    return error


def test_demo_with_a_photo_without_a_face_is_one_line(tmp_path: Path, capsys) -> None:
    from skimage import data as skdata

    cat = tmp_path / "cat.png"
    Image.fromarray(skdata.chelsea()).save(cat)
    assert main(["demo", "--out", str(tmp_path / "d"), "--image", str(cat)]) == 2
    error = _notices_then_one_error(capsys.readouterr().err)
    assert "no face found" in error and str(cat) in error


def _trained_preset(device: object) -> demo.DemoModels:
    """Stands in for installed official weights: the tiny preset, not marked as random."""
    models = demo._tiny_preset(0)
    models.random = False
    models.sources = {"generator": "official (test)", "e4e": "official (test)",
                      "fse": "official (test)"}
    return models


def _domain_for(size: int, style_dim: int, channels: dict[int, int], path: Path,
                **extra: object) -> Path:
    import torch

    from stylebridge.plugins.domains.stylespace import StyleSpace

    method = StyleSpace(size=size, style_dim=style_dim, channels=channels)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for off in method.offsets.values():
            off.copy_(torch.randn(off.shape, generator=g))
    return method.save(path, extra=extra or None)


def _red(arr: np.ndarray) -> np.ndarray:
    arr = arr.astype(int)
    return (arr[..., 0] > 200) & (arr[..., 1] < 80) & (arr[..., 2] < 80)


@pytest.mark.slow  # a full demo run (~3-4 s on CPU)
def test_demo_with_official_weights_labels_the_untrained_featureshift(
        tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "_official", _trained_preset)
    monkeypatch.setenv("COLUMNS", "300")
    gen = demo._tiny_preset(0).generator
    # as the weights manager installs a StyleDomain domain: its licence in the header
    joker = _domain_for(gen.size, gen.style_dim, gen.cfg.channels, tmp_path / "joker.safetensors",
                        weights={"name": "joker", "noncommercial": True,
                                 "licence": "trained on NVIDIA's FFHQ StyleGAN2 (NVIDIA Source "
                                            "Code License-NC, non-commercial)"})
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--device", "cpu",
                 "--method", f"stylespace:{joker}"]) == 0
    terminal, notices = (" ".join(text.split()) for text in capsys.readouterr())
    # the models are trained
    assert "RANDOM WEIGHTS - demo of the code paths" not in terminal + notices
    # the demo states the licence of what it loaded, as adapt does (it said nothing): on stderr
    assert ("licence of joker (joker.safetensors): trained on NVIDIA's FFHQ StyleGAN2 (NVIDIA "
            "Source Code License-NC, non-commercial)") in notices
    assert FS_ROW in terminal  # the table row
    assert ("RANDOM WEIGHTS: row 'FeatureShift on FSE features, e4e guide' uses an untrained "
            "FeatureShift") in notices
    info = json.loads((out / "demo.json").read_text())
    assert info["columns"] == ["aligned photo", "inversion", "joker"]  # the file stem
    assert info["domains"] == ["joker"]
    assert info["rows"][-1] == FS_ROW and info["random_rows"] == [FS_ROW]
    assert info["random_weights"] is True and "untrained FeatureShift" in info["notice"]
    assert info["random_inputs"] == {"generator": False, "e4e": False, "fse": False,
                                     "featureshift": True, "domains": {"joker": False}}
    assert FS_ROW in info["metrics_photo_vs_inversion"]
    # the grid: 6 rows x 3 columns of 128 px tiles, a 2-line header, a red notice underneath
    grid = np.asarray(Image.open(out / "demo_grid.png"))
    assert grid.shape[0] > 34 + 6 * 130 + 2
    assert _red(grid[34 + 6 * 130 + 2:]).any()


def test_demo_labels_a_random_weight_domain(tmp_path: Path, capsys,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "_official", _trained_preset)
    gen = demo._tiny_preset(0).generator
    joker = _domain_for(gen.size, gen.style_dim, gen.cfg.channels,
                        tmp_path / "joker.safetensors", random_weights=True)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--device", "cpu", "--method", str(joker)]) == 0
    info = json.loads((out / "demo.json").read_text())
    assert info["random_inputs"]["domains"] == {"joker": True}
    assert "domain joker has random weights" in info["notice"]


def test_demo_checks_method_checkpoints_before_aligning(tmp_path: Path, capsys,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from stylebridge.core.checkpoint import save_checkpoint
    from stylebridge.pipelines import align as alignment

    def no_alignment(*args: object, **kwargs: object) -> None:
        raise AssertionError("the photo was aligned before the domains were checked")

    monkeypatch.setattr(alignment, "align_face", no_alignment)
    encoder = save_checkpoint(tmp_path / "enc.safetensors", {"x": torch.zeros(1)},
                              kind="encoder", plugin="e4e")
    big = _domain_for(128, 64, {4: 64, 8: 64, 16: 48, 32: 32, 64: 24, 128: 16},
                      tmp_path / "big.safetensors")
    missing = tmp_path / "missing.safetensors"
    out = tmp_path / "demo"
    for method, message in ((missing, f"{missing}: no such file"),
                            (encoder, "expected kind 'domain_method'"),
                            (big, "this generator is 64px")):
        code = main(["demo", "--out", str(out), "--device", "cpu", "--method", str(method)])
        err = capsys.readouterr().err
        assert code == 2, method
        assert message in _notices_then_one_error(err), err
        assert not out.exists()


@pytest.mark.slow  # a full demo run (~5 s on CPU)
def test_run_demo_without_the_cli_reports_its_stages(tmp_path: Path) -> None:
    """The pipeline: a DemoConfig in, a DemoResult out, the notices and stages through the
    plain callback, in the order the stages ran."""
    events: list[demo.DemoProgress] = []
    result = demo.run_demo(demo.DemoConfig(out=tmp_path / "d", device="cpu"),
                           progress=events.append)
    assert events[0].kind == "random-preset"
    stages = [e.label for e in events if e.kind == "stage"]
    assert stages == [s["stage"] for s in result.data["stages"]]
    assert result.models_random and result.notice == demo.RANDOM_WEIGHTS_NOTICE
    assert [label for label, _ in result.photo_rows] == result.data["rows"]
    assert json.loads(result.json_path.read_text()) == result.data
    assert result.grid_path.is_file() and (tmp_path / "d" / "aligned.png").is_file()
    # the random preset renders colour blobs, no face: the ID numbers compare whole images,
    # and the notes say so, naming the rows (here all of them) and which pass (domains)
    assert result.notes == result.data["notes"]
    no_face = [n for n in result.notes if "no face was detected" in n]
    assert [n.split(":")[0] for n in no_face] == ["id", "id (domains)"]
    assert all(n.endswith("(every row)") for n in no_face)
