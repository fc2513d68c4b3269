# ruff: noqa: F811  (the `files` / `registered` fixtures of test_adapt_random are imported and used as parameters)
"""The photo pipelines share :class:`PhotoOptions` (the configs keep their old keyword
arguments) and read random-weight provenance from the loaded objects, not from booleans."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest
import test_adapt as ta
import torch
from test_adapt_random import files, registered  # noqa: F401  (fixtures)

from stylebridge.cli.commands.adapt import AdaptCommand
from stylebridge.cli.commands.calibrate import CalibrateCommand
from stylebridge.cli.commands.invert import InvertCommand
from stylebridge.cli.photo_args import photo_options
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.adapt import AdaptConfig, prepare_adapt
from stylebridge.pipelines.calibrate import CalibrateConfig, prepare_calibrate
from stylebridge.pipelines.invert import InvertConfig, prepare_invert
from stylebridge.pipelines.photos import PhotoOptions, generator_file, is_random
from stylebridge.registry.resolve import provenance_of

PHOTO_FIELDS = {"images", "align", "align_size", "batch", "device"}
# every field each config had before PhotoOptions (names must keep working)
OLD_FIELDS = {
    AdaptConfig: {"images", "encoder", "generator", "methods", "out", "calibrate",
                  "skip_layers", "featureshift", "guide", "align", "align_size", "batch",
                  "device", "compile", "precision", "metrics", "strength", "save_latents"},
    InvertConfig: {"images", "encoder", "generator", "out", "save_latents", "align",
                   "align_size", "batch", "device", "compile", "precision", "metrics"},
    CalibrateConfig: {"calibrator", "images", "encoder", "generator", "out", "samples", "seed",
                      "skip_layers", "fit", "power", "force", "align", "align_size", "batch",
                      "device"},
}

# fields added since, each with a default that keeps the old behaviour
ADDED_FIELDS = {AdaptConfig: {"resume", "renderer"}, InvertConfig: {"resume"},
                CalibrateConfig: {"resume"}}


# ---------------------------------------------------------------------------------------------
# PhotoOptions


@pytest.mark.parametrize("cls", list(OLD_FIELDS))
def test_configs_keep_their_fields_and_defaults(cls: type, tmp_path: Path) -> None:
    assert issubclass(cls, PhotoOptions)
    assert {f.name for f in dataclasses.fields(cls)} == OLD_FIELDS[cls] | ADDED_FIELDS[cls]
    required = {"images": ["a.png"], "encoder": "e", "generator": "g", "out": tmp_path,
                "methods": ["m"], "calibrator": "alpha"}
    config = cls(**{k: v for k, v in required.items() if k in OLD_FIELDS[cls]})
    # the defaults each config had before
    assert (config.align, config.align_size, config.batch, config.device) == (True, 1024, 4,
                                                                            "auto")
    config = cls(**{k: v for k, v in required.items() if k in OLD_FIELDS[cls]}, align=False,
                 align_size=256, batch=2, device="cpu")
    assert (config.images, config.align, config.align_size, config.batch, config.device) == (
        ["a.png"], False, 256, 2, "cpu")
    assert config.batching == {"batch": 2, "align": False, "align_size": 256}
    assert config.resume is False  # off, and no --renderer: the defaults of before
    assert getattr(config, "renderer", None) is None


@pytest.mark.parametrize(("option", "value", "flag"), [("batch", 0, "--batch"),
                                                       ("align_size", 0, "--align-size"),
                                                       ("batch", 10**9, "--batch")])
def test_photo_options_are_checked_in_one_line(option: str, value: int, flag: str) -> None:
    options = PhotoOptions(images=["a.png"], **{option: value})
    with pytest.raises(StylebridgeError) as info:
        options.check_photos()
    assert str(info.value).startswith(flag) and "\n" not in str(info.value)
    PhotoOptions(images=["a.png"], batch=1, align_size=1).check_photos()  # the lower bounds pass


@pytest.mark.parametrize("command", [AdaptCommand, InvertCommand, CalibrateCommand])
def test_photo_args_read_back_what_the_parser_took(command: type) -> None:
    parser = argparse.ArgumentParser()
    command().add_arguments(parser)
    argv = ["-e", "e4e", "-g", "g.safetensors", "--out", "o", "--no-align", "--align-size",
            "256", "--batch", "3", "--device", "cpu"]
    argv += {AdaptCommand: ["-m", "d.safetensors", "x.png"], InvertCommand: ["x.png"],
             CalibrateCommand: ["alpha", "--images", "x.png"]}[command]
    got = photo_options(parser.parse_args(argv))
    assert got == {"images": ["x.png"], "align": False, "align_size": 256, "batch": 3,
                   "device": "cpu"}
    with pytest.raises(StylebridgeError, match=r"^--batch"):
        photo_options(parser.parse_args([*argv, "--batch", "0"]))


# ---------------------------------------------------------------------------------------------
# Provenance read from the objects


def test_is_random_reads_the_recorded_provenance_else_the_declaration() -> None:
    encoder = ta.TinyEncoder()  # not built by create(): nothing recorded
    assert provenance_of(encoder) is None and is_random(encoder) is False
    encoder.random_weights = True
    assert is_random(encoder) is True
    assert is_random(torch.nn.Linear(2, 2)) is False  # neither recorded nor a plugin
    with pytest.raises(StylebridgeError, match="checkpoint file is unknown"):
        generator_file(torch.nn.Linear(2, 2))


def test_invert_and_calibrate_jobs_read_random_weights_from_the_objects(
        files: dict[str, Path], tmp_path: Path, registered: None) -> None:
    job = prepare_invert(InvertConfig(images=[files["photos"]],
                                      encoder=f"test-adapt-tiny:{files['enc']}",
                                      generator=str(files["rgen"]), out=tmp_path / "inv",
                                      device="cpu", compile="off"))
    assert job.random_inputs == {"encoder": False, "generator": True}
    assert job.parts == ["generator"] and job.generator_path == files["rgen"]
    assert provenance_of(job.generator).random and not provenance_of(job.encoder).random
    from stylebridge.pipelines.invert import run_invert

    result = run_invert(job)  # the Python result says it too, as metrics.json does
    assert result.random_parts == ["generator"]

    cal = prepare_calibrate(CalibrateConfig(calibrator="alpha", images=[files["photos"]],
                                            encoder=f"test-adapt-tiny:{files['renc']}",
                                            generator=str(files["gen"]),
                                            out=tmp_path / "a.safetensors", device="cpu"))
    assert cal.random_inputs == {"encoder": True, "generator": False} and cal.random
    assert cal.generator_path == files["gen"]


def test_adapt_job_reads_random_weights_from_the_objects(
        files: dict[str, Path], tmp_path: Path, registered: None) -> None:
    job = prepare_adapt(AdaptConfig(images=[files["photos"]],
                                    encoder=f"test-adapt-tiny:{files['renc']}",
                                    generator=str(files["gen"]),
                                    methods=[str(files["pixar"]), str(files["joker"])],
                                    out=tmp_path / "ad", device="cpu", compile="off"))
    assert job.domain_random == {"pixar": False, "joker": True}
    assert list(job.random_inputs) == ["encoder", "generator", "domains"]
    assert job.random_inputs == {"encoder": True, "generator": False,
                                 "domains": {"pixar": False, "joker": True}}
    assert job.parts == ["encoder", "domain joker"]
    assert job.generator_path == files["gen"]


def test_no_align_says_when_it_squeezes_or_enlarges_a_photo(tmp_path) -> None:
    """A 512×200 photo is squeezed to a square, a 10×10 one enlarged: used, and said."""
    from PIL import Image

    from stylebridge.core.batch import BatchReport
    from stylebridge.pipelines.adapt import photo_batches

    for name, size in (("wide.png", (512, 200)), ("tiny.png", (10, 10)), ("ok.png", (64, 64))):
        Image.new("RGB", size, (90, 120, 150)).save(tmp_path / name)
    report = BatchReport()
    paths = [tmp_path / n for n in ("wide.png", "tiny.png", "ok.png")]
    batches = list(photo_batches(paths, report, enc_size=64, tile=8, batch=4, align=False,
                                 align_size=256))
    assert [p.name for p in batches[0].paths] == ["wide.png", "tiny.png", "ok.png"]
    assert report.notes == [
        (paths[0], "is 512×200, not square: without --align it is squeezed to a square"),
        (paths[1], "is 10×10: without --align it is enlarged to the encoder's 64×64")]


def test_an_align_size_far_below_the_encoders_input_is_said() -> None:
    """``--align-size 1`` encoded a 1-pixel crop without a word; below half the encoder's
    input a notice says every face is enlarged (at or above it, or without --align, none)."""
    from types import SimpleNamespace

    from stylebridge.pipelines.photos import small_crop_notice

    encoder = SimpleNamespace(preprocessing=SimpleNamespace(size=256))
    assert small_crop_notice(PhotoOptions(images=["a.png"], align_size=1), encoder, 1024) == [
        "--align-size 1 is below the encoder's 256x256 input: every aligned face is enlarged "
        "from that crop (default 1024)"]
    assert small_crop_notice(PhotoOptions(images=["a.png"], align_size=128), encoder, 1024) == []
    assert small_crop_notice(PhotoOptions(images=["a.png"], align_size=1, align=False),
                             encoder, 1024) == []
    unsized = SimpleNamespace(preprocessing=SimpleNamespace(size=None))  # the generator's size
    assert small_crop_notice(PhotoOptions(images=["a.png"], align_size=256), unsized, 1024)


def test_an_unwritable_out_is_refused_before_any_work(tmp_path, monkeypatch) -> None:
    """A read-only --out (a read-only mount: root too) was found only after the first batch
    had been computed; it is refused in one line first. The probe leaves no file behind."""
    import errno
    import tempfile

    from stylebridge.pipelines.photos import check_out_folder

    out = tmp_path / "out"
    out.mkdir()
    check_out_folder(out, [])                       # writable: nothing said, nothing left
    assert list(out.iterdir()) == []

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    with pytest.raises(StylebridgeError) as info:
        check_out_folder(out, [])
    assert str(info.value) == f"--out {out}: cannot write in {out} (read-only file system)"
    monkeypatch.undo()
    monkeypatch.setattr("os.access", lambda path, mode: False)   # a parent the user cannot write
    with pytest.raises(StylebridgeError, match=r"cannot write in .* \(permission denied\)"):
        check_out_folder(tmp_path / "new" / "deeper", [])
    # a new folder on a read-only mount: the mount is named, not a permission
    import os

    class ReadOnly:
        f_flag = os.ST_RDONLY

    monkeypatch.setattr("os.statvfs", lambda path: ReadOnly())
    with pytest.raises(StylebridgeError, match=r"cannot write in .* \(read-only file system\)$"):
        check_out_folder(tmp_path / "new" / "deeper", [])


@pytest.mark.parametrize(("option", "value", "said"), [
    ("fit", "bogus", "config fit='bogus': expected one of origin, intercept"),
    ("power", float("nan"), "config power=nan: expected a finite number")])
def test_calibrate_options_are_checked_before_the_photos_are_encoded(
        tmp_path, option, value, said) -> None:
    """`fit="bogus"` was a ValueError traceback after every photo was encoded; `power=nan`
    saved a file no one could load. Both are refused before anything loads (no generator or
    encoder named here exists)."""
    from stylebridge.pipelines.calibrate import CalibrateConfig, prepare_calibrate

    config = CalibrateConfig(calibrator="alpha", encoder="e4e", generator="missing.safetensors",
                             images=["a.png"], out=tmp_path / "a.safetensors",
                             **{option: value})
    with pytest.raises(StylebridgeError) as info:
        prepare_calibrate(config)
    assert str(info.value) == f"calibrator 'alpha': {said}" + (
        " in -100..100" if option == "power" else "")


def test_an_out_that_is_a_file_is_one_line_from_python(tmp_path) -> None:
    """`adapt(AdaptConfig(out=<a file>))` and `generate(GenerateConfig(out=<a file>))` were
    FileExistsError tracebacks after the work was done (the CLI said it, Python did not)."""
    from stylebridge.pipelines.generate import GenerateConfig, generate
    from stylebridge.pipelines.photos import check_out_folder

    afile = tmp_path / "report.txt"
    afile.write_text("mine")
    for out, said in ((afile, f"{afile}: is a file, not a folder"),
                      (afile / "sub", f"{afile}: is a file, not a folder ({afile / 'sub'} was "
                                      "to be written in it)")):
        with pytest.raises(StylebridgeError) as info:
            check_out_folder(out, [])
        assert str(info.value) == said
    with pytest.raises(StylebridgeError, match="is a file, not a folder"):
        generate(GenerateConfig(generator="missing.safetensors", out=afile, device="cpu"))
    assert afile.read_text() == "mine"
