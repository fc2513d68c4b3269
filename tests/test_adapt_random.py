"""``adapt`` / ``calibrate``: every input on random (untrained) weights is labelled on screen,
on grid.png and in the JSON reports; rich keeps the labels; early errors leave no folder."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import test_adapt as ta
import test_featureshift as tfs
import torch
from conftest import tiny_generator
from PIL import Image

from stylebridge.cli.main import main
from stylebridge.core.checkpoint import is_random_weights, read_header, save_checkpoint
from stylebridge.core.stylegan2.checkpoint import save_stylegan2
from stylebridge.plugins.renderers.featureshift import FeatureShift, save_featureshift

RANDOM = {"random_weights": True}


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from stylebridge.registry import get_registry, reset_registry

    monkeypatch.setenv("COLUMNS", "500")  # rich: no line folded inside a long temporary path
    reset_registry()
    get_registry().add_plugin(ta, "tests")
    get_registry().add_plugin(tfs, "tests-featureshift")
    yield
    reset_registry()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """Trained-looking and random-marked copies of each input (same weights, other header)."""
    gen = tiny_generator(seed=0, size=ta.SIZE, style_dim=ta.SD)
    enc, fse = ta.TinyEncoder(), tfs.ToyFSE()
    torch.manual_seed(0)
    model = FeatureShift(feature_channels=tfs.FEAT[0], hidden=48, layer=tfs.LAYER).eval()
    out: dict[str, Path] = {}
    for tag, extra in (("", None), ("r", RANDOM)):
        out[f"{tag}gen"] = save_stylegan2(tmp_path / f"{tag}gen.safetensors", gen, extra=extra)
        out[f"{tag}enc"] = save_checkpoint(tmp_path / f"{tag}enc.safetensors", enc.state_dict(),
                                           kind="encoder", plugin=enc.name, config=enc.config(),
                                           extra=extra)
        out[f"{tag}fse"] = save_checkpoint(tmp_path / f"{tag}fse.safetensors", fse.state_dict(),
                                           kind="encoder", plugin=fse.name, config=fse.config(),
                                           extra=extra)
        out[f"{tag}fs"] = save_featureshift(tmp_path / f"{tag}fs.safetensors", model, extra=extra)
    out["pixar"] = ta._domain(gen, 7).save(tmp_path / "pixar.safetensors")
    out["joker"] = ta._domain(gen, 8).save(tmp_path / "joker.safetensors", extra=RANDOM)
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)).save(photos / f"{name}.png")
    out["photos"] = photos
    return out


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, " ".join(out.split()), err  # rich wraps lines: compare word by word


def _no_notice(text: str) -> bool:
    return "RANDOM WEIGHTS" not in text and "untrained" not in text and "random-weight" not in text


def _red_footer(grid_png: Path, rows: int = 2, columns: int = 3) -> bool:
    """Whether grid.png has red notice text under its tiles (32 px tiles enlarged to 128 px;
    the label strip is whole lines of LINE px + 4 px, a notice adds its lines + 4 px)."""
    from stylebridge.core.images import LINE

    arr = np.asarray(Image.open(grid_png).convert("RGB")).astype(int)
    assert 8 <= arr.shape[1] - (columns * (128 + 2) + 2) <= 170  # + the photo names
    strips = arr.shape[0] - (rows * (128 + 2) + 2)  # the label strip (and the notice's)
    if strips % LINE == 4:  # label lines only
        return False
    assert strips % LINE == 8, strips
    foot = arr[-(LINE + 4):]  # the notice's last line
    return bool(((foot[..., 0] > 200) & (foot[..., 1] < 80) & (foot[..., 2] < 80)).any())


def _calibrate(files: dict[str, Path], capsys: pytest.CaptureFixture[str], out: Path,
               enc: str, gen: str) -> tuple[int, str, str]:
    return _run(capsys, "calibrate", "alpha", "-e", f"test-adapt-tiny:{files[enc]}", "-g",
                str(files[gen]), "--images", str(files["photos"]), "--samples", "32",
                "--no-align", "--device", "cpu", "--out", str(out))


# ---------------------------------------------------------------------------------------------
# calibrate


def test_calibrate_says_random_weights_on_screen_and_in_the_stats(
        files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        registered: None) -> None:
    stats = tmp_path / "alpha_random.safetensors"
    code, out, err = _calibrate(files, capsys, stats, "renc", "rgen")
    assert code == 0, err
    notices = " ".join(err.split())  # the notices are on stderr, the results on stdout
    assert "RANDOM WEIGHTS: encoder 'test-adapt-tiny' runs on untrained (random) weights" in notices
    assert f"RANDOM WEIGHTS: {files['rgen']} is a random-weight generator" in notices
    # the table title keeps its label (rich took "[random weights]" for a markup tag)
    assert "alpha per style layer (2 photos, 32 samples) [RANDOM WEIGHTS]" in out
    assert f"wrote {stats} [RANDOM WEIGHTS]" in out
    extra = read_header(stats).extra
    assert extra["random_weights"] is True and is_random_weights(extra)
    assert extra["random_inputs"] == {"encoder": True, "generator": True}
    assert "random weights (encoder, generator)" in extra["notes"][0]

    # only the generator random
    code, out, err = _calibrate(files, capsys, tmp_path / "g.safetensors", "enc", "rgen")
    notices = " ".join(err.split())
    assert code == 0 and "random-weight generator" in notices
    assert "encoder 'test-adapt" not in notices and "encoder 'test-adapt" not in out
    assert read_header(tmp_path / "g.safetensors").extra["random_inputs"] == {
        "encoder": False, "generator": True}

    # trained inputs: no notice anywhere
    code, out, err = _calibrate(files, capsys, tmp_path / "t.safetensors", "enc", "gen")
    assert code == 0 and _no_notice(out) and _no_notice(err)
    extra = read_header(tmp_path / "t.safetensors").extra
    assert extra["random_weights"] is False and not is_random_weights(extra)


# ---------------------------------------------------------------------------------------------
# adapt


def _adapt(files: dict[str, Path], capsys: pytest.CaptureFixture[str], out: Path,
           *extra: str, enc: str = "test-adapt-tiny:{enc}",
           method: str = "pixar") -> tuple[int, str, str]:
    return _run(capsys, "adapt", "-e", enc.format(**{k: str(v) for k, v in files.items()}),
                "-g", str(files["gen"]), "-m", str(files[method]), *extra, "--no-align",
                "--device", "cpu", str(files["photos"]), "--out", str(out))


def _reports(out: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """adapt.json and metrics.json (mse/psnr are built in: both are always written)."""
    adapt = json.loads((out / "adapt.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    return adapt, metrics


def test_adapt_with_trained_inputs_has_no_notice(files: dict[str, Path], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 registered: None) -> None:
    out = tmp_path / "out"
    code, text, err = _adapt(files, capsys, out)
    assert code == 0, err
    assert _no_notice(text) and "input vs inversion" in text  # the metrics table, unlabelled
    assert _no_notice(err)  # nor a notice on stderr
    adapt, metrics = _reports(out)
    assert adapt["random_weights"] is False and adapt["random_parts"] == []
    assert adapt["random_inputs"] == {"encoder": False, "generator": False,
                                      "domains": {"pixar": False}}
    assert "notice" not in adapt
    assert metrics["random_weights"] is False and metrics["random_parts"] == []
    assert not _red_footer(out / "grid.png")
    assert all("stylebridge-notice" not in Image.open(png).info for png in out.glob("*.png"))


@pytest.mark.parametrize("case", ["domain", "calibrator", "featureshift", "encoder"])
def test_adapt_labels_each_random_input(case: str, files: dict[str, Path], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str],
                                        registered: None) -> None:
    extra: list[str] = []
    enc, method = "test-adapt-tiny:{enc}", "pixar"
    if case == "domain":
        method = "joker"
        want_parts, key = ["domain joker"], ("domains", {"joker": True})
    elif case == "calibrator":  # stats fitted from a random encoder are themselves random
        stats = tmp_path / "alpha.safetensors"
        assert _calibrate(files, capsys, stats, "renc", "gen")[0] == 0
        extra = ["--calibrate", f"alpha:{stats}"]
        want_parts, key = ["calibrator"], ("calibrator", True)
    elif case == "featureshift":
        enc = "toy-fse:{fse}"
        extra = ["--featureshift", str(files["rfs"])]
        want_parts, key = ["featureshift"], ("featureshift", True)
    else:
        enc = "test-adapt-tiny:{renc}"
        want_parts, key = ["encoder"], ("encoder", True)
    out = tmp_path / "out"
    code, text, err = _adapt(files, capsys, out, *extra, enc=enc, method=method)
    assert code == 0, err
    assert "RANDOM WEIGHTS:" in " ".join(err.split())  # the terminal notice (on stderr)
    assert "input vs inversion and each domain [RANDOM WEIGHTS]" in text  # the table's title
    adapt, metrics = _reports(out)
    assert adapt["random_weights"] is True
    assert adapt["random_parts"] == want_parts
    assert adapt["random_inputs"][key[0]] == key[1]
    assert adapt["notice"].startswith("RANDOM WEIGHTS: not a trained model")
    assert want_parts[0] in adapt["notice"]
    assert metrics["random_weights"] is True and metrics["random_parts"] == want_parts
    assert metrics["random_inputs"] == adapt["random_inputs"]
    assert _red_footer(out / "grid.png")
    assert Image.open(out / "grid.png").info["stylebridge-notice"].startswith(
        "RANDOM WEIGHTS: not a trained model")                  # the grid's file says it too
    # every picture keeps the notice in its file (a picture travels without adapt.json) and
    # `stylebridge info` shows it
    # (the inversions too, unless only the domain or the calibrator was random: those change
    # only the domain outputs)
    pictures = [png for png in out.glob(f"*_{method}.png")]
    if case in ("encoder", "featureshift"):
        pictures += list(out.glob("*_inversion.png"))
    else:
        assert all("stylebridge-notice" not in Image.open(png).info
                   for png in out.glob("*_inversion.png"))
    assert len(pictures) >= 2 and all(Image.open(png).info["stylebridge-notice"] == (
        f"RANDOM WEIGHTS: made with untrained (random) weights ({want_parts[0]})")
        for png in pictures)
    code, text, _ = _run(capsys, "info", str(pictures[0]))
    assert code == 0 and "RANDOM WEIGHTS: made with untrained (random) weights" in text


def test_adapt_with_trained_featureshift_and_calibrator_is_not_random(
        files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        registered: None) -> None:
    stats = tmp_path / "alpha.safetensors"
    assert _calibrate(files, capsys, stats, "enc", "gen")[0] == 0
    out = tmp_path / "out"
    code, text, err = _adapt(files, capsys, out, "--featureshift", str(files["fs"]),
                             "--calibrate", f"alpha:{stats}", enc="toy-fse:{fse}")
    assert code == 0, err
    adapt, _ = _reports(out)
    assert adapt["random_weights"] is False and _no_notice(text) and _no_notice(err)
    assert adapt["random_inputs"]["featureshift"] is False
    assert adapt["random_inputs"]["calibrator"] is False


def test_adapt_early_errors_leave_no_output_folder(files: dict[str, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str],
                                                  registered: None) -> None:
    # an encoder option that does not fit the generator: found when the first batch is encoded
    out = tmp_path / "out1"
    code, _, err = _adapt(files, capsys, out, enc="test-adapt-tiny:n_latent=18")
    # stderr: the encoder's random-weights notice (a built encoder), then the error alone
    notice, error = err.splitlines()
    assert notice == ("RANDOM WEIGHTS: encoder 'test-adapt-tiny' runs on untrained (random) "
                      "weights; the results show no trained model")
    assert code == 2 and err.count("\n") == 2 and error.startswith("error: ") and "18 rows" in error
    assert not out.exists()
    # a FeatureShift for another layer than the encoder's feature
    out = tmp_path / "out2"
    code, _, err = _adapt(files, capsys, out, "--featureshift", str(files["fs"]),
                          enc="toy-fse:{fse}:layer=2")
    assert code == 2 and err.count("\n") == 1
    assert not out.exists()
    # a folder that already existed is kept as it was
    out = tmp_path / "old"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    code, _, _ = _adapt(files, capsys, out, enc="test-adapt-tiny:n_latent=18")
    assert code == 2 and sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_adapt_prints_bracketed_paths_verbatim(files: dict[str, Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str],
                                              registered: None) -> None:
    """Paths and labels are escaped: rich would take "[draft]" for a markup tag and drop it."""
    out = tmp_path / "[draft]"
    code, text, err = _adapt(files, capsys, out, enc="test-adapt-tiny:{renc}")
    assert code == 0, err
    assert f"grid.png to {out}" in text
    assert "input vs inversion and each domain [RANDOM WEIGHTS]" in text


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))


def test_results_name_their_random_parts_alike(files: dict[str, Path], tmp_path: Path,
                                              registered: None) -> None:
    """AdaptResult kept them only inside `summary`; InvertResult had `.random_parts`."""
    from stylebridge.pipelines.adapt import AdaptConfig, adapt

    result = adapt(AdaptConfig(images=[files["photos"]], encoder=f"test-adapt-tiny:{files['renc']}",
                               generator=str(files["gen"]), methods=[str(files["pixar"])],
                               out=tmp_path / "o", align=False, device="cpu"))
    assert result.random_parts == ["encoder"] == result.summary["random_parts"]


def test_strength_zero_with_featureshift_is_said_not_to_be_the_inversion(
        files: dict[str, Path], tmp_path: Path, registered: None) -> None:
    """`adapt --featureshift F --strength 0,1`: the @0 column is F'(F, 0), not the inversion
    column (MSE 0.05 vs 0.36 in a user's run); the web app said so, adapt did not."""
    from stylebridge.pipelines.adapt import AdaptConfig, prepare_adapt

    def notices(strength: tuple[float, ...]) -> list[str]:
        job = prepare_adapt(AdaptConfig(
            images=[files["photos"]], encoder=f"toy-fse:{files['fse']}",
            generator=str(files["gen"]), methods=[str(files["pixar"])], out=tmp_path / "o",
            featureshift=files["rfs"], strength=strength, align=False, device="cpu"))
        return [n for n in job.journal.notices if "strength 0" in n]

    assert notices((0.0, 1.0)) == ["with --featureshift, strength 0 (Δ = 0) is FeatureShift's "
                                   "own rendering of the photo, F'(F, 0), not the encoder's "
                                   "inversion (the inversion column)"]
    assert notices((0.5, 1.0)) == []
