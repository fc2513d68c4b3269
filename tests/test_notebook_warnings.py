"""From a notebook, what runs on random weights, skips inputs or renders a domain its skip
layers switch off says so on screen, as warnings at the user's own line (once per call); the
command line prints its own lines instead and shows none of these warnings.

Before: `stylebridge.create(...)`, `Adapter(...)`, `adapt()`/`invert()`/`generate()`/`render()`
on the tiny random-weight preset printed nothing; a run whose every photo was skipped returned
exit code 2 silently; `skip_layers="coarse"` at 32 px gave a domain output equal to the
inversion without a word."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

import stylebridge
from stylebridge.core.checkpoint import RANDOM_NOTICE
from stylebridge.errors import RandomWeightsWarning, SkippedInputsWarning, StylebridgeWarning
from stylebridge.pipelines.presets import TinyPreset, build_tiny_preset


@pytest.fixture(scope="module")
def preset(tmp_path_factory: pytest.TempPathFactory) -> TinyPreset:
    return build_tiny_preset(tmp_path_factory.mktemp("nb") / "preset", n_images=2)


@contextmanager
def recorded() -> Iterator[list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


def ours(caught: list[warnings.WarningMessage]) -> list[tuple[type, str]]:
    """The stylebridge warnings, each checked to point at this file (the user's line)."""
    found = [w for w in caught if issubclass(w.category, StylebridgeWarning)]
    assert [w.filename for w in found] == [__file__] * len(found)
    return [(w.category, str(w.message)) for w in found]


def _bad_photos(folder: Path, n: int) -> list[Path]:
    paths = []
    for i in range(n):
        path = folder / f"bad{i}.png"
        path.write_bytes(b"not a picture")
        paths.append(path)
    return paths


def test_create_and_the_adapter_say_random_weights_once_at_the_users_line(
        preset: TinyPreset) -> None:
    with recorded() as caught:
        line = sys._getframe().f_lineno + 1
        gen = stylebridge.create("generator", str(preset.generator))
    assert [(w.category, w.lineno) for w in caught] == [(RandomWeightsWarning, line)]
    assert ours(caught) == [(RandomWeightsWarning,
                             f"{RANDOM_NOTICE}: generator '{preset.generator}' runs on untrained "
                             "(random) weights: its results show no trained model")]
    with recorded() as caught:
        fse = stylebridge.create("encoder", f"fse:{preset.fse}")
        also = stylebridge.create_encoder("fse", preset.fse)
        pixar = stylebridge.create("domain_method", str(preset.domains / "tiny-pixar.safetensors"))
    said = ours(caught)
    assert [category for category, _ in said] == [RandomWeightsWarning] * 3
    assert said[0][1].startswith(f"{RANDOM_NOTICE}: encoder 'fse:{preset.fse}' runs on")
    assert said[1][1].startswith(f"{RANDOM_NOTICE}: encoder 'fse:{preset.fse}' runs on")
    assert said[2][1].startswith(f"{RANDOM_NOTICE}: domain_method '")
    assert also.name == fse.name == "fse"
    with recorded() as caught:
        adapter = stylebridge.Adapter(fse, gen, {"pixar": pixar})
    assert ours(caught) == [(RandomWeightsWarning, adapter.notice)]
    assert adapter.notice == ("RANDOM WEIGHTS: made with untrained (random) weights (encoder, "
                              "generator, domain pixar)")
    assert repr(adapter) == (
        "Adapter(RANDOM WEIGHTS: made with untrained (random) weights (encoder, generator, "
        "domain pixar); encoder 'fse', generator 32 px, domains ['pixar'], renderer 'plain', "
        "skip layers [], strength 1)")
    with recorded() as caught:  # trained objects: nothing to say
        loss = stylebridge.create("loss", "mse")
    assert ours(caught) == [] and loss.name == "mse"


def test_a_skip_setting_that_switches_a_domain_off_is_said(preset: TinyPreset) -> None:
    with recorded():
        gen = stylebridge.create("generator", str(preset.generator))
        fse = stylebridge.create("encoder", f"fse:{preset.fse}")
        pixar = stylebridge.create("domain_method", str(preset.domains / "tiny-pixar.safetensors"))
        sketch = stylebridge.create("domain_method",
                                    str(preset.domains / "tiny-sketch.safetensors"))
    with recorded() as caught:
        coarse = stylebridge.Adapter(fse, gen, {"pixar": pixar, "sketch": sketch},
                                     skip_layers="coarse", strength=(1.0, 0.5))
    note = ("domain 'pixar': the skip layers 'coarse' (style layers 0, 2, 3, 5, 6, 8) include "
            "every style layer it changes on this 32 px generator (0, 2, 3): the output equals "
            "the inversion")
    assert ours(caught) == [(RandomWeightsWarning, coarse.notice), (StylebridgeWarning, note)]
    assert coarse.unchanged_notes == [note] and coarse.notes == [note]  # sketch: fine layers
    photos = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = coarse.run(photos)
    assert float((out["pixar"] - out["inversion"]).abs().max()) == 0.0  # what the note says
    assert float((out["pixar@0.5"] - out["inversion"]).abs().max()) == 0.0
    assert float((out["sketch"] - out["inversion"]).abs().max()) > 1e-3
    with recorded() as caught:  # "first" (conv1 only) leaves layers 2 and 3 changed
        first = stylebridge.Adapter(fse, gen, {"pixar": pixar}, skip_layers="first")
    assert ours(caught) == [(RandomWeightsWarning, first.notice)]
    assert first.unchanged_notes == [] and first.notes == []
    assert repr(coarse).endswith("; encoder 'fse', generator 32 px, domains ['pixar', "
                                 "'sketch'], renderer 'plain', skip layers [0, 2, 3, 5, 6, 8], "
                                 "strength 1, 0.5)")


def test_adapt_and_invert_warn_once_each_and_list_the_skipped_photos(
        preset: TinyPreset, tmp_path: Path) -> None:
    from stylebridge.pipelines.adapt import AdaptConfig, adapt
    from stylebridge.pipelines.invert import InvertConfig, invert

    good = preset.images / "photo0.png"
    bad = _bad_photos(tmp_path, 4)
    options = dict(encoder=f"fse:{preset.fse}", generator=str(preset.generator),
                   align=False, device="cpu", metrics=["mse"])
    with recorded() as caught:
        result = adapt(AdaptConfig(images=[good, *bad], out=tmp_path / "a", save_latents=True,
                                   methods=[str(preset.domains / "tiny-pixar.safetensors")],
                                   skip_layers="coarse", **options))
    assert result.exit_code == 3 and len(result.report.skipped) == 4
    (p0, r0), (p1, r1), (p2, r2), _ = result.report.skipped
    assert r0 and r0 == r1 == r2
    assert ours(caught) == [
        (RandomWeightsWarning, f"{RANDOM_NOTICE}: adapt runs on untrained (random) weights "
                               "(encoder, generator, domain tiny-pixar): its pictures and "
                               "numbers show no trained model"),
        (StylebridgeWarning, "domain 'tiny-pixar': the skip layers 'coarse' (style layers 0, "
                             "2, 3, 5, 6, 8) include every style layer it changes on this 32 px "
                             "generator (0, 2, 3): the output equals the inversion"),
        (SkippedInputsWarning, f"adapt skipped 4 of 5 photos: {p0}: {r0}; {p1}: {r1}; {p2}: "
                               f"{r2}; and 1 more (result.report.skipped lists them)")]
    with recorded() as caught:  # every photo skipped: exit code 2, and said
        result = invert(InvertConfig(images=bad[:2], out=tmp_path / "i", **options))
    assert result.exit_code == 2 and result.report.done == []
    assert ours(caught) == [
        (RandomWeightsWarning, f"{RANDOM_NOTICE}: invert runs on untrained (random) weights "
                               "(encoder, generator): its pictures and numbers show no trained "
                               "model"),
        (SkippedInputsWarning, f"invert: nothing done, every photo was skipped (2): {bad[0]}: "
                               f"{r0}; {bad[1]}: {r1}")]


def test_generate_and_render_say_random_weights_and_skipped_files(
        preset: TinyPreset, tmp_path: Path) -> None:
    from stylebridge.pipelines.adapt import AdaptConfig, adapt
    from stylebridge.pipelines.generate import GenerateConfig, generate
    from stylebridge.pipelines.render import RenderConfig, render

    with recorded() as caught:
        samples = generate(GenerateConfig(generator=str(preset.generator), seeds="0-1",
                                          device="cpu", out=tmp_path / "s"))
    assert sorted(samples.files) == [0, 1]
    assert ours(caught) == [(RandomWeightsWarning, f"{RANDOM_NOTICE}: generate runs on untrained "
                                                   "(random) weights (generator): its pictures "
                                                   "and numbers show no trained model")]
    with recorded():
        adapt(AdaptConfig(images=[preset.images / "photo0.png"], out=tmp_path / "a",
                          encoder=f"fse:{preset.fse}", generator=str(preset.generator),
                          methods=[], align=False, device="cpu", save_latents=True))
    latents = tmp_path / "a" / "photo0_inversion.safetensors"
    broken = tmp_path / "broken_inversion.safetensors"
    broken.write_bytes(b"not a checkpoint")
    with recorded() as caught:
        result = render(RenderConfig(latents=[latents, broken], out=tmp_path / "r",
                                     methods=[str(preset.domains / "tiny-sketch.safetensors")],
                                     generator=str(preset.generator), device="cpu"))
    assert result.exit_code == 3 and [p for p, _ in result.report.skipped] == [broken]
    reason = result.report.skipped[0][1]
    assert ours(caught) == [
        (RandomWeightsWarning, f"{RANDOM_NOTICE}: render runs on untrained (random) weights "
                               "(generator, domain tiny-sketch, latents): its pictures and "
                               "numbers show no trained model"),
        (SkippedInputsWarning, f"render skipped 1 of 2 files: {broken}: {reason}")]


def test_the_command_line_prints_its_own_lines_and_no_warnings(
        preset: TinyPreset, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from stylebridge.cli.main import main

    bad = _bad_photos(tmp_path, 1)
    filters_before = list(warnings.filters)
    with recorded() as caught:
        code = main(["adapt", "-e", f"fse:{preset.fse}", "-g", str(preset.generator),
                     "-m", str(preset.domains / "tiny-pixar.safetensors"), "--skip-layers",
                     "coarse", "--no-align", "--device", "cpu", "--metric", "mse",
                     str(preset.images / "photo0.png"), str(bad[0]), "--out", str(tmp_path / "o")])
    assert code == 3
    assert [w for w in caught if issubclass(w.category, StylebridgeWarning)] == []
    err = " ".join(capsys.readouterr().err.split())
    assert ("domain 'tiny-pixar': the skip layers 'coarse' (style layers 0, 2, 3, 5, 6, 8) "
            "include every style layer it changes on this 32 px generator (0, 2, 3): the output "
            "equals the inversion") in err
    assert f"{RANDOM_NOTICE}: domain tiny-pixar has random (untrained) weights" in err
    # outside the command, Python's filters are as they were: the warning shows again
    assert warnings.filters == filters_before
    with recorded() as caught:
        stylebridge.create("generator", str(preset.generator))
    assert [category for category, _ in ours(caught)] == [RandomWeightsWarning]


def test_calibrate_and_evaluate_say_random_weights_and_skipped_files(
        preset: TinyPreset, tmp_path: Path) -> None:
    # both were silent from Python on the random preset, and about the files they skipped
    from stylebridge.pipelines.calibrate import CalibrateConfig, calibrate
    from stylebridge.pipelines.evaluate import EvalConfig, evaluate
    from stylebridge.pipelines.generate import GenerateConfig, generate

    bad = _bad_photos(tmp_path, 1)
    with recorded() as caught:
        fitted = calibrate(CalibrateConfig(images=[preset.images, *bad], align=False,
                                           calibrator="alpha", encoder=f"e4e:{preset.e4e}",
                                           device="cpu",
                                           generator=str(preset.generator), samples=64,
                                           out=tmp_path / "alpha.safetensors"))
    assert fitted.random and [p for p, _ in fitted.report.skipped] == bad
    assert ours(caught) == [
        (RandomWeightsWarning, f"{RANDOM_NOTICE}: calibrate runs on untrained (random) weights "
                               "(encoder, generator): its pictures and numbers show no trained "
                               "model"),
        (SkippedInputsWarning, f"calibrate skipped 1 of 3 photos: {bad[0]}: "
                               f"{fitted.report.skipped[0][1]}")]
    with recorded():
        made = generate(GenerateConfig(generator=str(preset.generator), seeds="0-1",
                                       device="cpu", out=tmp_path / "s"))
    pred = tmp_path / "pred"
    pred.mkdir()
    for outputs in made.files.values():
        path = next(iter(outputs.values()))  # the sample itself (no domain)
        (pred / path.name).write_bytes(path.read_bytes())
    (pred / "extra.png").write_bytes((pred / path.name).read_bytes())  # no target of that name
    with recorded() as caught:
        scored = evaluate(EvalConfig(pred=[pred], target=[tmp_path / "s"], device="cpu",
                                     metrics=["mse", "lpips:allow_random=true"]))
    assert len(scored.rows) == 2 and [p.name for p, _ in scored.report.skipped] == ["extra.png"]
    said = ours(caught)  # random pictures and a random metric: one warning per call
    assert [category for category, _ in said] == [RandomWeightsWarning, SkippedInputsWarning]
    assert said[0][1].startswith(f"{RANDOM_NOTICE}: 2 of 2 pred file(s) and 2 of 2 target "
                                 "file(s) were made on untrained weights, as the files say (")
    assert said[0][1].endswith("; evaluate scored with untrained (random) weights (metric "
                               "lpips:allow_random=true): its numbers are not the real metric's")
    assert said[1][1].startswith("evaluate skipped 1 of 3 files: ") and "extra.png" in said[1][1]
