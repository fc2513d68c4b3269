# ruff: noqa: F811  (the `files` / `registered` fixtures of test_batch_resume / test_adapt_random)
"""Adapter combinations: render's calibration, missing inputs' names, alpha edge cases,
calibrator-silenced domains, FeatureShift without features, strength types and CLI values."""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import test_adapt as ta
import torch
from conftest import random_stylespace, tiny_generator
from test_adapt_random import registered  # noqa: F401  (the fixture)
from test_batch_resume import files  # noqa: F401  (the fixture)

from stylebridge.cli.main import build_parser, main
from stylebridge.core.images import load_image
from stylebridge.core.interfaces import Calibrator, Inversion
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.adapter import Adapter, check_strengths
from stylebridge.pipelines.photos import output_names
from stylebridge.plugins.calibrators.alpha import AlphaCalibrator
from stylebridge.registry import hookimpl


class ShiftCalibrator(Calibrator):
    """Adds 0.5 to every w+ entry: a calibrator whose calibrate(inversion) changes it."""

    name = "test-comb-shift"
    description = "adds 0.5 to w+"
    random_weights = False

    def config(self) -> dict[str, Any]:
        return {}

    def calibrate(self, inversion: Inversion) -> Inversion:
        return dataclasses.replace(inversion, w_plus=inversion.w_plus + 0.5)


@hookimpl
def register_calibrators(register: Any) -> None:
    register(ShiftCalibrator)


@pytest.fixture
def with_shift(registered: None) -> Iterator[None]:
    from stylebridge.registry import get_registry

    get_registry().add_plugin(sys.modules[__name__], "tests-comb")
    yield


def _png(path: Path) -> np.ndarray:
    return (load_image(path).numpy() * 255).round().astype(int)


def test_render_calibrates_saved_inversions_as_adapt_does(
        files: dict[str, Path], tmp_path: Path, with_shift: None) -> None:
    adapted, rendered = tmp_path / "adapted", tmp_path / "rendered"
    common = ["-g", str(files["gen"]), "-m", str(files["pixar"]), "--calibrate",
              "test-comb-shift", "--device", "cpu"]
    photo = files["photos"] / "a.png"
    assert main(["adapt", "-e", f"test-adapt-tiny:{files['enc']}", *common, "--no-align",
                 "--save-latents", str(photo), "--out", str(adapted)]) == 0
    assert main(["render", *common, str(adapted), "--out", str(rendered)]) == 0
    for key in ("inversion", "pixar"):
        assert np.abs(_png(adapted / f"a_{key}.png") - _png(rendered / f"a_{key}.png")).max() <= 1


def test_render_with_featureshift_and_a_calibrator_draws_what_adapt_drew(
        tmp_path: Path, with_shift: None) -> None:
    """FeatureShift without a guide encoder is guided by the inversion's own w+: adapt gives
    it the uncalibrated one; render gave it the calibrated one (another picture)."""
    from stylebridge.pipelines.presets import build_tiny_preset

    preset = build_tiny_preset(tmp_path / "preset", n_images=2)
    photo = sorted(preset.images.iterdir())[0]
    adapted, rendered = tmp_path / "adapted", tmp_path / "rendered"
    common = ["-g", str(preset.generator), "-m", str(sorted(preset.domains.iterdir())[0]),
              "--featureshift", str(preset.featureshift_fse), "--calibrate", "test-comb-shift",
              "--device", "cpu"]
    assert main(["adapt", "-e", f"fse:{preset.fse}", *common, "--no-align", "--save-latents",
                 str(photo), "--out", str(adapted)]) == 0
    assert main(["render", "-e", f"fse:{preset.fse}", *common, str(adapted),
                 "--out", str(rendered)]) == 0
    pngs = sorted(p.name for p in adapted.glob(f"{photo.stem}_*.png"))
    assert len(pngs) == 2
    for name in pngs:
        assert np.abs(_png(adapted / name) - _png(rendered / name)).max() <= 1, name


def test_a_missing_file_claims_no_output_name(tmp_path: Path) -> None:
    real = tmp_path / "photos" / "photo0.png"
    real.parent.mkdir()
    real.write_bytes(b"x")
    missing = tmp_path / "nowhere" / "photo0.png"
    names, clashes = output_names([missing, real], "", keys=["_inversion"])
    assert clashes == {}
    assert names == {missing: "photo0", real: "photo0"}  # the missing one: reported when read
    # several missing paths of a real photo's name: each kept, to be reported missing
    other = tmp_path / "elsewhere" / "photo0.png"
    names, clashes = output_names([missing, other, real], "", keys=["_inversion"])
    assert list(names) == [missing, other, real] and clashes == {}


def _alpha(alphas: list[float], **kw: Any) -> AlphaCalibrator:
    cal = AlphaCalibrator(widths=[1] * len(alphas), **kw)
    with torch.no_grad():
        cal.alpha.copy_(torch.tensor(alphas))
    return cal


def test_alpha_at_min_alpha_is_judged_once() -> None:
    # 1e-3 stored in float32 is 1.0000000475e-3: above min_alpha (1e-3) in float64
    cal = _alpha([1e-3, 0.5, 5e-4])
    scale = cal.offset_scale(3)
    assert cal.unreliable_layers() == [2]
    assert math.isclose(float(scale[0]), 1 / 1.0000000474974513e-3, rel_tol=1e-6)
    assert float(scale[1]) == 2.0 and float(scale[2]) == 0.0


def test_an_overflowing_alpha_power_is_switched_off_and_reported() -> None:
    cal = _alpha([1e-2, 0.5, 2.0], power=-100.0)  # 1e200: no float32; 2**100, 2**-100 are
    scale = cal.offset_scale(3)
    assert bool(torch.isfinite(scale).all())
    assert float(scale[0]) == 0.0 and cal.unreliable_layers() == [0]
    assert float(scale[1]) == 2.0 ** 100 and float(scale[2]) == 2.0 ** -100


def _tiny() -> tuple[Any, Any, Any]:
    gen = tiny_generator(seed=0, size=ta.SIZE, style_dim=ta.SD)
    return gen, ta.TinyEncoder(), random_stylespace(gen, 7)


@pytest.mark.parametrize("how", ["skip", "zero"])
def test_a_calibrator_that_silences_a_domain_says_so(how: str) -> None:
    gen, enc, method = _tiny()
    n = gen.n_style_layers
    cal = (_alpha([1.0] * n, skip_layers=list(range(n))) if how == "skip"
           else _alpha([0.0] * n))
    with pytest.warns(Warning, match="equals the inversion"):
        adapter = Adapter(enc, gen, {"d": method}, calibrator=cal)
    assert len(adapter.unchanged_notes) == 1 and "'d'" in adapter.unchanged_notes[0]
    images = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    out = adapter.run(images)
    assert torch.equal(out["d"], out["inversion"])  # what the note says


def test_strength_accepts_real_numbers_and_refuses_bool() -> None:
    assert check_strengths(np.float32(0.5)) == (0.5,)
    assert check_strengths(torch.tensor(0.5)) == (0.5,)
    assert check_strengths([np.float64(2.0), torch.tensor([-1.0])]) == (2.0, -1.0)
    for bad in (True, [1.0, False]):
        with pytest.raises(StylebridgeError, match="real number"):
            check_strengths(bad)


def test_strength_takes_a_negative_first_value_after_a_space() -> None:
    from stylebridge.cli.parser import join_number_lists

    assert join_number_lists(["--strength", "-0.5,1", "--", "--strength", "-1,2"]) == [
        "--strength=-0.5,1", "--", "--strength", "-1,2"]
    parser, _ = build_parser()
    args = parser.parse_args(["render", "x.safetensors", "-m", "d", "--strength", "-0.5,1"])
    assert list(args.strength) == [-0.5, 1.0]
