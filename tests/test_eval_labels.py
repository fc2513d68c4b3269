"""What `stylebridge eval` says about its numbers: units and direction of every metric, the
RANDOM WEIGHTS notice its input pictures keep, PSNR of identical pictures (capped, so a mean
stays finite), null for undefined values in the JSON, the same random LPIPS in every run, and
a table whose numbers are never cut at 80 columns.

Expected values are closed forms: PSNR of grey pictures ``d`` levels apart is
``20 log10(255 / d)``; the cap is ``10 log10(12 · 255²)``, the PSNR of an MSE equal to the
8-bit quantisation noise ``(1/255)² / 12``.
"""

from __future__ import annotations

import csv
import json
import math
import re
import types
from pathlib import Path

import pytest
import torch
from test_eval_partial import _folders, _strict_json

from stylebridge.cli.main import main
from stylebridge.registry import Registry, get_registry, hookimpl, reset_registry
from stylebridge.registry import registry as registry_mod

NOTICE = "RANDOM WEIGHTS: made with untrained (random) weights (encoder, generator)"


# ---------------------------------------------------------------------------------------------
# issue 4: PSNR of identical pictures, JSON null


def test_one_identical_pair_no_longer_makes_the_mean_psnr_infinite(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: mean `inf`, written as the string "inf" in the JSON."""
    pred, target = _folders(tmp_path, {"a": (110, 100), "b": (90, 100), "c": (140, 130),
                                       "same": (77, 77)})
    out_json = tmp_path / "r.json"
    assert main(["eval", "-m", "psnr", "--pred", str(pred), "--target", str(target),
                 "--json", str(out_json)]) == 0
    notes = " ".join(capsys.readouterr().err.split())  # the metric's note: on stderr
    data = _strict_json(out_json)
    cap = 10 * math.log10(12 * 255 ** 2)
    assert cap == pytest.approx(58.9226, abs=1e-4)
    ten_levels = 20 * math.log10(255 / 10)
    per_image = {row["name"]: row["psnr"] for row in data["per_image"]}
    assert per_image["same"] == pytest.approx(cap, abs=1e-9)
    assert per_image["a"] == pytest.approx(ten_levels, abs=1e-4)
    assert data["mean"]["psnr"] == pytest.approx((3 * ten_levels + cap) / 4, abs=1e-4)
    assert "1 image(s) equal to their target within 8-bit quantisation noise" in notes
    assert "capped at 58.92 dB" in notes


def test_psnr_keeps_its_capped_count_through_resume_state() -> None:
    from stylebridge.plugins.metrics.image import PSNRMetric

    x = torch.full((2, 3, 8, 8), 0.5)
    metric = PSNRMetric()
    metric.update(x, x)
    state = json.loads(json.dumps(metric.state()))
    again = PSNRMetric()
    again.load_state(state)
    assert again.compute() == metric.compute()
    assert again.notes() == metric.notes() and "2 image(s)" in again.notes()[0]


def test_an_infinite_sum_still_survives_the_resume_state() -> None:
    """PSNR no longer gives inf; a plugin's per-image metric still may: float.hex keeps it."""
    from stylebridge.plugins.metrics.base import PerImageMetric

    class Ratio(PerImageMetric):
        name = "ratio-test"

        def __init__(self) -> None:
            super().__init__()

        def score(self, pred, target, **context):
            return {"ratio": pred.double().mean(dim=(1, 2, 3)) / target.double().mean(
                dim=(1, 2, 3))}

    x = torch.full((2, 3, 4, 4), 0.5)
    zero = torch.zeros_like(x)
    first, whole = Ratio(), Ratio()
    for metric in (first, whole):
        metric.update(x, zero)                     # 0.5 / 0: +inf
    state = json.loads(json.dumps(first.state()))
    assert state["sums"]["ratio"] == "inf"
    restored = Ratio()
    restored.load_state(state)
    for metric in (restored, whole):
        metric.update(x, x)
    assert restored.compute() == whole.compute() == {"ratio": math.inf}


def _nan_metric() -> type:
    from stylebridge.plugins.metrics.base import PerImageMetric

    class DarkOnly(PerImageMetric):
        """A value for dark pictures only (NaN for the others, as `id` without a face)."""

        name = "dark-test"

        def __init__(self) -> None:
            super().__init__()

        def score(self, pred, target, **context):
            level = pred.double().mean(dim=(1, 2, 3))
            return {"dark": torch.where(level < 0.5, level, torch.nan),
                    "never": torch.full_like(level, torch.nan)}

    return DarkOnly


def _with_plugin(monkeypatch: pytest.MonkeyPatch, *classes: type) -> None:
    mod = types.ModuleType("eval_labels_test_pkg")
    mod.register_metrics = hookimpl(  # type: ignore[attr-defined]
        lambda register: [register(cls) for cls in classes] and None)
    monkeypatch.setattr(registry_mod, "_REGISTRY", Registry(extra_plugins=[mod],
                                                            entry_points=False))


def test_json_writes_null_for_undefined_values_and_says_why(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: "nan" strings among numbers in the same fields."""
    _with_plugin(monkeypatch, _nan_metric())
    pred, target = _folders(tmp_path, {"dark": (51, 0), "light": (204, 0)})
    out_json = tmp_path / "r.json"
    assert main(["eval", "-m", "dark-test", "--pred", str(pred), "--target", str(target),
                 "--json", str(out_json)]) == 0
    data = _strict_json(out_json)
    rows = {row["name"]: row for row in data["per_image"]}
    assert rows["dark"]["dark"] == pytest.approx(0.2, abs=1e-6)
    assert rows["light"]["dark"] is None and rows["light"]["never"] is None
    assert data["mean"]["dark"] == pytest.approx(0.2, abs=1e-6)
    assert data["mean"]["never"] is None
    assert data["metrics"]["dark-test"]["values"]["never"] is None
    assert "dark: 1 of 2 per-image value(s) are null" in " ".join(data["notes"])
    assert "never: the mean is null (no value)" in data["notes"]
    # every field holds one type (or null): no string among the numbers
    for row in data["per_image"]:
        assert all(row[k] is None or isinstance(row[k], float) for k in ("dark", "never"))


# ---------------------------------------------------------------------------------------------
# issue 3: pictures made on random weights are labelled


def test_scores_of_pictures_made_on_random_weights_are_labelled(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: no notice on screen, "random_weights": false in the JSON."""
    from stylebridge import save_image
    from stylebridge.core.images import save_png

    pred, target = tmp_path / "pred", tmp_path / "target"
    pred.mkdir()
    target.mkdir()
    grey = torch.full((3, 16, 16), 0.4)
    save_png(pred / "a.png", grey, notice=NOTICE)             # what adapt/invert write
    save_image(grey, pred / "b.jpg", notice=NOTICE)           # EXIF ImageDescription
    save_png(pred / "c.png", grey)                            # no notice
    for name in "abc":
        save_png(target / f"{name}.png", torch.full((3, 16, 16), 0.5))
    out_json, out_csv = tmp_path / "r.json", tmp_path / "r.csv"
    assert main(["eval", "-m", "mse", "--pred", str(pred), "--target", str(target),
                 "--json", str(out_json), "--csv", str(out_csv)]) == 0
    out, notices = (" ".join(text.split()) for text in capsys.readouterr())
    assert "RANDOM WEIGHTS: 2 of 3 pred file(s) were made on untrained weights" in notices
    assert "stylebridge eval: 3 image(s) [RANDOM WEIGHTS pictures]" in out
    data = _strict_json(out_json)
    assert data["random_weights"] is True
    assert data["input_notices"] == {"pred": 2, "target": 0,
                                     "first": {"file": str(pred / "a.png"), "notice": NOTICE}}
    notices = {row["name"]: row["pred_notice"] for row in data["per_image"]}
    assert notices == {"a": NOTICE, "b": NOTICE, "c": None}
    rows = {row["name"]: row for row in csv.DictReader(out_csv.open())}
    assert rows["a"]["notice"] == f"pred: {NOTICE}" and rows["c"]["notice"] == ""


def test_plain_pictures_are_not_labelled(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    pred, target = _folders(tmp_path, {"a": (10, 20)})
    out_json = tmp_path / "r.json"
    assert main(["eval", "-m", "mse", "--pred", str(pred), "--target", str(target),
                 "--json", str(out_json)]) == 0
    out, notices = capsys.readouterr()
    assert "RANDOM" not in out and "RANDOM" not in notices
    data = _strict_json(out_json)
    assert data["random_weights"] is False
    assert data["input_notices"] == {"pred": 0, "target": 0, "first": None}


# ---------------------------------------------------------------------------------------------
# issue 5: units and direction


EXPECTED_DIRECTIONS = {"mse": "lower", "psnr": "higher", "ssim": "higher", "lpips": "lower",
                       "id": "higher", "clip_quality": "higher", "clip_diversity": "higher",
                       "fid": "lower"}


def test_every_built_in_metric_declares_its_direction_and_scale() -> None:
    reset_registry()
    registry = get_registry()
    for name, direction in EXPECTED_DIRECTIONS.items():
        cls = registry.get("metric", name).obj
        assert cls.direction == direction, name
        assert cls.scale, name
    assert registry.get("metric", "psnr").obj.unit == "dB"


def test_eval_shows_units_and_direction_and_a_bare_metric_still_works(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from stylebridge.core.interfaces import Metric

    class Bare(Metric):  # declares nothing but the documented reset/update/compute
        name = "bare-test"

        def reset(self) -> None:
            self.n = 0

        def update(self, pred, target=None, **context) -> None:
            self.n += pred.shape[0]

        def compute(self) -> dict[str, float]:
            return {"count": float(self.n)}

    _with_plugin(monkeypatch, Bare)
    monkeypatch.setenv("COLUMNS", "100")
    pred, target = _folders(tmp_path, {"a": (10, 20), "b": (30, 20)})
    out_json = tmp_path / "r.json"
    assert main(["eval", "-m", "psnr", "-m", "mse", "-m", "bare-test", "--pred", str(pred),
                 "--target", str(target), "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("┃ image"))
    cells = [c.strip() for c in header.strip("┃ ").split("┃")]
    assert cells == ["image", "psnr (dB) ↑", "mse (on [0,1]) ↓", "count"]
    data = _strict_json(out_json)
    assert {k: (v["direction"], v["unit"]) for k, v in data["metrics"].items()} == {
        "psnr": ("higher", "dB"), "mse": ("lower", "on [0,1]"), "bare-test": (None, "")}
    assert data["metrics"]["mse"]["scale"].startswith("mean squared error of images in [0, 1]")
    assert data["mean"]["count"] == 2.0


def test_adapt_and_invert_tables_can_show_the_same_headers() -> None:
    from stylebridge.pipelines.output_metrics import output_column_header

    reset_registry()
    assert output_column_header("psnr") == "psnr (dB) ↑"
    assert output_column_header("mse") == "mse (on [0,1]) ↓"
    assert output_column_header("id[dlib]") == "id[dlib] (cos) ↑"
    assert output_column_header("lpips") == "lpips ↓"
    assert output_column_header("other") == "other"


def test_numbers_are_never_cut_at_80_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Before: `27.02…` in a table of 8 metrics piped at 80 columns."""
    monkeypatch.setenv("COLUMNS", "80")
    pred, target = _folders(tmp_path, {f"photo_with_a_long_name_{i}": (100 + 7 * i, 100)
                                       for i in range(1, 4)})
    specs = ["mse", "psnr", "ssim", "ssim:gaussian=true", "mse:device=cpu", "psnr:device=cpu",
             "ssim:device=cpu", "ssim:gaussian=true,device=cpu"]
    out_json = tmp_path / "r.json"
    assert main(["eval", *(a for s in specs for a in ("-m", s)), "--pred", str(pred),
                 "--target", str(target), "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    data = _strict_json(out_json)
    shown = set(re.findall(r"-?\d+\.\d{4}\b", out))
    for row in data["per_image"]:
        for col in data["mean"]:
            assert f"{row[col]:.4f}" in shown, (row["name"], col)
    assert all(f"{v:.4f}" in shown for v in data["mean"].values())
    assert "…" not in out


# ---------------------------------------------------------------------------------------------
# issue 2: the random LPIPS is the same in every run


def test_random_lpips_is_seeded_by_its_spec_and_leaves_the_callers_stream(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: `lpips:allow_random=true` gave other numbers in every run."""
    pytest.importorskip("lpips")
    from stylebridge.plugins.metrics.lpips import LPIPSMetric

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    torch.manual_seed(7)
    expected_draw = torch.rand(3)
    torch.manual_seed(7)
    first = LPIPSMetric(allow_random=True)
    assert torch.equal(torch.rand(3), expected_draw)         # the caller's stream, untouched
    torch.manual_seed(8)
    second = LPIPSMetric(allow_random=True)
    assert first.random_weights and second.random_weights
    for (key, a), b in zip(first.model.state_dict().items(),
                           second.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), key
    vgg = LPIPSMetric(net="vgg", allow_random=True)            # another spec: other weights
    assert vgg.model.state_dict().keys() != first.model.state_dict().keys()


def test_eval_builds_a_random_plugin_metric_from_its_spec_seed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A third-party metric that draws its weights from torch's stream gets the same ones in
    every run (as every plugin built by name), without touching the caller's stream."""
    from stylebridge.core.interfaces import Metric
    from stylebridge.pipelines.evaluate import build_metrics, parse_metric_spec

    class Drawn(Metric):
        name = "drawn-test"
        random_weights = True

        def __init__(self, width: int = 4) -> None:
            self.weights = torch.randn(width)

        def reset(self) -> None:
            pass

        def update(self, pred, target=None, **context) -> None:
            pass

        def compute(self) -> dict[str, float]:
            return {"drawn": float(self.weights.sum())}

    _with_plugin(monkeypatch, Drawn)
    torch.manual_seed(1)
    draw = torch.rand(2)
    torch.manual_seed(1)
    [a] = build_metrics([parse_metric_spec("drawn-test")], torch.device("cpu"))
    assert torch.equal(torch.rand(2), draw)
    [b] = build_metrics([parse_metric_spec("drawn-test")], torch.device("cpu"))
    [c] = build_metrics([parse_metric_spec("drawn-test:width=5")], torch.device("cpu"))
    assert torch.equal(a.weights, b.weights) and not torch.equal(a.weights, c.weights[:4])
