"""Bad options and inputs are refused in one line naming the option (or file), exit 2, before
anything is written, loaded or announced (CLI QA review): reproduce's numbers before the tiny
preset is built, align's --out only made when something is written, demo's --out before the
RANDOM WEIGHTS banner, serve's --precision / --work-dir before "loading models", the domain
trainers' numbers named as adapt names them, --data and the reference photo before the
weights, --freeze-layers in --skip-layers' grammar, calibrate's --resume --force, eval's
--show and --domain-text, align's --resume named as typed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylebridge.cli.main import main
from stylebridge.pipelines import align_batch
from stylebridge.pipelines.align import AlignedFace
from stylebridge.pipelines.presets import TinyPreset, build_tiny_preset


@pytest.fixture(scope="module")
def preset(tmp_path_factory: pytest.TempPathFactory) -> TinyPreset:
    return build_tiny_preset(tmp_path_factory.mktemp("preset") / "preset")


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder (the current one), whose listing must stay empty."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def _refused(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """Run the CLI, expect exit 2; (stdout, stderr)."""
    capsys.readouterr()
    try:
        code = main(args)
    except SystemExit as exc:  # an argparse usage error
        code = exc.code
    out, err = capsys.readouterr()
    assert code == 2, (code, out, err)
    return out, err


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _clip(preset: TinyPreset) -> list[str]:
    name, weights = next(iter(preset.clip_weights.items()))
    return ["--clip", name, "--clip-weights", f"{name}={weights}",
            "--clip-config", str(preset.clip_config)]


# -- 1. no work, no files, no banner before a refusal ------------------------------------------

@pytest.mark.parametrize(("option", "message"), [
    (["--samples", "0"], "--samples 0: Diversity needs at least 2"),
    (["--method-steps", "0"], "--method-steps 0: must be >= 1"),
    (["--batch", "0"], "--batch 0: must be >= 1"),
])
def test_reproduce_checks_its_numbers_before_building_the_preset(
        work: Path, capsys: pytest.CaptureFixture[str], option: list[str], message: str) -> None:
    out, err = _refused(["reproduce", "thesis-tables", "--preset", "tiny", "--out", "rt",
                         "--device", "cpu", *option], capsys)
    assert err == f"error: {message}\n"
    assert "RANDOM WEIGHTS" not in out
    assert _listing(work) == []


def test_align_leaves_no_empty_out_folder(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (work / "t.txt").write_text("hi\n")
    _, err = _refused(["align", "t.txt", "--out", "alf/deeper"], capsys)
    assert err == "error: nothing done: t.txt: is a text file, not an image\n"
    assert _listing(work) == ["t.txt"]


def test_demo_checks_out_before_the_random_weights_banner(
        work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (work / "g.safetensors").write_bytes(b"x")
    out, err = _refused(["demo", "--out", "g.safetensors", "--device", "cpu"], capsys)
    assert err == "error: --out g.safetensors: is a file, not a folder\n"
    assert out == ""
    assert _listing(work) == ["g.safetensors"]


def test_serve_refuses_before_loading_models(work: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("gradio")
    out, err = _refused(["serve", "--precision", "fp16", "--device", "cpu"], capsys)
    assert err == "error: --precision fp16: needs a CUDA device, not cpu; use bf16 on the CPU\n"
    assert out == ""
    (work / "t.txt").write_text("hi\n")
    out, err = _refused(["serve", "--work-dir", "t.txt", "--device", "cpu"], capsys)
    assert err == "error: --work-dir t.txt: is a file, not a folder\n"
    assert out == ""
    assert _listing(work) == ["t.txt"]


# -- 2. errors name the option, the first problem first ------------------------------------------

@pytest.mark.parametrize(("option", "message"), [
    (["--steps", "0"], "--steps 0: must be >= 1"),
    (["--lr", "-1"], "--lr -1.0: must be a positive number"),
    (["--batch", "0"], "--batch 0: must be >= 1"),
    (["--mixing", "2"], "--mixing 2.0: must be in [0, 1]"),
    (["--sample-every", "-1"], "--sample-every -1: must be >= 0"),
    (["--checkpoint-every", "-1"], "--checkpoint-every -1: must be >= 0"),
    (["--warmup-steps", "-3"], "--warmup-steps -3: must be >= 0"),
    (["--source-samples", "0"], "--source-samples 0: must be >= 1"),
    (["--freeze-layers", "x"], "--freeze-layers 'x': expected a set name (coarse, first, none) "
                               "or layer indices like 0,2-3, w:1 (W+ row), conv:0 (StyleDomain "
                               "head) or rgb:4"),
])
def test_train_domain_names_the_option(work: Path, preset: TinyPreset,
                                       capsys: pytest.CaptureFixture[str], option: list[str],
                                       message: str) -> None:
    _, err = _refused(["train", "domain", "--text", "sketch", "--out", "d/x.safetensors",
                       "--generator", str(preset.generator), *_clip(preset), "--device", "cpu",
                       *option], capsys)
    assert err == f"error: {message}\n"
    assert _listing(work) == []


def test_train_hyperdomain_and_mindthegap_name_the_option(
        work: Path, preset: TinyPreset, capsys: pytest.CaptureFixture[str]) -> None:
    (work / "prompts.txt").write_text("sketch\n")
    common = ["--generator", str(preset.generator), *_clip(preset), "--device", "cpu"]
    for option, message in ((["--batch", "1"], "--batch 1: must be >= 2 (BatchNorm and the "
                                               "pairwise losses)"),
                            (["--steps", "0"], "--steps 0: must be >= 1"),
                            (["--mixing", "2"], "--mixing 2.0: must be in [0, 1]"),
                            (["--width", "0"], "--width 0: must be >= 1")):
        _, err = _refused(["train", "hyperdomain", "--prompts", "prompts.txt", "--out",
                           "h/x.safetensors", *common, *option], capsys)
        assert err == f"error: {message}\n"
    reference = str(sorted(preset.images.glob("*.png"))[0])
    for option, message in ((["--lr", "-1"], "--lr -1.0: must be a positive number"),
                            (["--steps", "0"], "--steps 0: must be >= 1"),
                            (["--sample-every", "-1"], "--sample-every -1: must be >= 0")):
        _, err = _refused(["train", "mindthegap", reference, "--encoder", f"e4e:{preset.e4e}",
                           "--out", "m/x.safetensors", *common, *option], capsys)
        assert err == f"error: {message}\n"
    # the missing reference first, not the missing --encoder
    _, err = _refused(["train", "mindthegap", "nonexist.png", "--out", "m/x.safetensors",
                       *common], capsys)
    assert err == "error: nonexist.png: no such file\n"
    assert _listing(work) == ["prompts.txt"]


def test_train_featureshift_says_data_first(work: Path, preset: TinyPreset,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    _, err = _refused(["train", "featureshift", "--data", "nonexist", "--out", "fs",
                       "--generator", str(preset.generator), "--device", "cpu"], capsys)
    assert err == ("error: --data nonexist: no such folder (build a dataset with `stylebridge "
                   "featureshift build-dataset`)\n")
    assert _listing(work) == []


def test_adapt_skip_layers_out_of_range_names_the_option(
        work: Path, preset: TinyPreset, capsys: pytest.CaptureFixture[str]) -> None:
    photo = sorted(preset.images.glob("*.png"))[0]
    domain = sorted(preset.domains.glob("*.safetensors"))[0]
    _, err = _refused(["adapt", str(photo), "-g", str(preset.generator), "--encoder",
                       f"e4e:{preset.e4e}", "--method", str(domain), "--skip-layers", "99",
                       "--out", "ad", "--device", "cpu"], capsys)
    assert err == "error: --skip-layers 99: out of range: this generator has style layers 0..10\n"
    assert _listing(work) == []


# -- 3. meaningless values ------------------------------------------------------------------

def test_eval_refuses_a_negative_show_and_an_unused_domain_text(
        work: Path, preset: TinyPreset, capsys: pytest.CaptureFixture[str]) -> None:
    images = str(preset.images)
    _, err = _refused(["eval", "-m", "mse", "--pred", images, "--target", images, "--show",
                       "-1", "--json", "r.json"], capsys)
    assert err == "error: --show -1: must be >= 0\n"
    for metric in ("mse", "clip_quality:text=a sketch"):
        _, err = _refused(["eval", "-m", metric, "--pred", images, "--target", images,
                           "--domain-text", "hi", "--json", "r.json"], capsys)
        assert err == ("error: --domain-text applies with --metric clip_quality (without text= "
                       "or reference=: the prompt it scores against); without it nothing would "
                       "use it\n")
    assert _listing(work) == []


# -- 4. --freeze-layers reads --skip-layers' grammar --------------------------------------------

def test_freeze_layers_reads_the_skip_layers_grammar(preset: TinyPreset) -> None:
    from stylebridge.pipelines.train_domain import parse_freeze_layers
    from stylebridge.registry.resolve import load_generator

    gen = load_generator(str(preset.generator), "cpu")[0]
    coarse = tuple(gen.conv_style_indices()[:6])
    assert parse_freeze_layers("none", gen) == parse_freeze_layers("", gen) == ()
    assert parse_freeze_layers("coarse", gen) == parse_freeze_layers("COARSE", gen) == coarse
    assert parse_freeze_layers("0,,2", gen) == parse_freeze_layers(" 0, 2 ", gen) == (0, 2)
    assert parse_freeze_layers("first", gen) == (0,)
    assert parse_freeze_layers("w:2", gen) == (3,)
    assert parse_freeze_layers("conv:1", gen) == (2,)
    assert parse_freeze_layers("coarse,w:6", gen) == tuple(sorted({*coarse, 9}))
    assert parse_freeze_layers("rgb:1", gen) == (1,)


def test_freeze_layers_refuses_a_torgb_index_as_skip_layers_does(
        work: Path, preset: TinyPreset, capsys: pytest.CaptureFixture[str]) -> None:
    common = ["train", "domain", "--text", "sketch", "--out", "d/x.safetensors", "--generator",
              str(preset.generator), *_clip(preset), "--device", "cpu", "--steps", "1"]
    _, err = _refused([*common, "--freeze-layers", "1"], capsys)
    assert err.startswith("error: --freeze-layers '1': style layer 1 is to_rgb1 (ToRGB), which "
                          "StyleSpace domains do not offset;")
    assert err.count("\n") == 1
    _, err = _refused([*common, "--freeze-layers", "99"], capsys)
    assert err == ("error: --freeze-layers '99': style layer 99 is out of range: this generator "
                   "has style layers 0..10\n")
    assert _listing(work) == []


# -- 5. calibrate --resume --force ----------------------------------------------------------

def test_calibrate_refuses_resume_with_force(work: Path, preset: TinyPreset,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    _, err = _refused(["calibrate", "alpha", "--images", str(preset.images), "--encoder",
                       f"e4e:{preset.e4e}", "-g", str(preset.generator), "--out",
                       "c.safetensors", "--resume", "--force", "--device", "cpu"], capsys)
    assert err == ("error: --resume continues the run in --out and --force starts it over: "
                   "give one of them\n")
    assert _listing(work) == []


# -- 6. align --resume: the report and the wording ------------------------------------------

def _face(size: int) -> AlignedFace:
    return AlignedFace(image=Image.new("RGB", (size, size), (200, 100, 50)),
                       landmarks=np.zeros((68, 2)), quad=np.zeros((4, 2)))


def test_align_resume_reports_kept_photos_once_and_says_resume(
        work: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(align_batch, "align_face", lambda image, size, **options: _face(size))
    photos = work / "photos"
    photos.mkdir()
    for name in ("a", "b"):
        Image.new("RGB", (16, 16)).save(photos / f"{name}.png")
    out = work / "out"
    out.mkdir()
    Image.new("RGB", (8, 8)).save(out / "a.png")   # what an interrupted run aligned
    capsys.readouterr()
    assert main(["align", "photos", "--out", "out", "--size", "8", "--resume", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kept"] == [os.path.join("photos", "a.png")]
    assert report["done"] == [os.path.join("photos", "b.png")]
    _, err = _refused(["align", "photos", "--all-faces", "--resume", "--out", "out"], capsys)
    assert err == ("error: --resume works without --all-faces and --landmarks, whose outputs an "
                   "interrupted run leaves incomplete: leave out --resume or --all-faces\n")
    _, err = _refused(["align", "photos", "--resume"], capsys)
    assert err == "error: --resume continues a folder: give it as --out DIR\n"
