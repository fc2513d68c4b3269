"""The bad-input corpus (tests/data/bad) through the CLI: one line, non-zero exit, no partial output.

One parametrised table lists every (file, command, expected message).  Image commands added by
later plugins extend ``IMAGE_COMMANDS``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import load_script

from stylebridge.cli.main import main
from stylebridge.core.images import load_image
from stylebridge.errors import ImageError

make_corpus = load_script(Path(__file__).parent / "data" / "bad" / "make_corpus.py")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_corpus.make_corpus(tmp_path_factory.mktemp("bad"))


IMAGE_ERRORS = {
    "truncated.jpg": "cannot read image",
    "truncated.png": "cannot read image",
    "zero_bytes.png": "is empty (0 bytes)",
    "text_named.png": "is a text file, not an image",
    "huge_dimensions.png": "pixel limit",
}

CHECKPOINT_ERRORS = {
    "corrupt_header.safetensors": "not a readable safetensors file",
    "wrong_shapes.safetensors": "generator tensor conv1.activate.bias has shape [7], expected [4]",
    "nan_weights.safetensors": "tensor g_ema.style.1.weight contains NaN or Inf values",
    "no_stylebridge_header.safetensors": "without a stylebridge header",
    "encoder_kind.safetensors": "is a checkpoint of kind 'encoder' (e4e), expected kind 'generator'",
}


def test_corpus_lists_every_case(corpus: dict[str, Path]) -> None:
    assert set(corpus) == set(make_corpus.CASES)
    covered = set(IMAGE_ERRORS) | set(CHECKPOINT_ERRORS) | set(CRAFTED_ERRORS) | {
        "torchscript_model.pt", "c:olon_generator.safetensors"} | {
        n for n, c in make_corpus.CASES.items() if c in ("image-ok", "image-noface")} | {
        "other_resolution.safetensors"}
    assert covered == set(make_corpus.CASES)
    for path in corpus.values():
        assert path.exists()


@pytest.mark.parametrize(("name", "message"), sorted(IMAGE_ERRORS.items()))
def test_bad_images_are_refused_with_one_line(corpus, name, message) -> None:
    with pytest.raises(ImageError) as info:
        load_image(corpus[name])
    text = str(info.value)
    assert message in text and str(corpus[name]) in text and "\n" not in text


@pytest.mark.parametrize("name", sorted(n for n, c in make_corpus.CASES.items() if c == "image-ok"))
def test_unusual_but_valid_images_are_converted(corpus, name) -> None:
    image = load_image(corpus[name])
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    assert float(image.std()) > 0.05  # real content, not a blank conversion


HEADER_CASES = {"corrupt_header.safetensors", "no_stylebridge_header.safetensors",
                "encoder_kind.safetensors"}
CHECKPOINT_RUNS = [(name, "generate") for name in sorted(CHECKPOINT_ERRORS)] + [
    (name, "info") for name in sorted(HEADER_CASES)]  # info reads headers, not weights


@pytest.mark.parametrize(("name", "command"), CHECKPOINT_RUNS)
def test_bad_checkpoints_through_the_cli(corpus, tmp_path, capsys, name, command) -> None:
    out = tmp_path / "out"
    message = CHECKPOINT_ERRORS[name]
    if command == "generate":
        argv = ["generate", "-g", str(corpus[name]), "--seeds", "0", "--out", str(out)]
    else:
        argv = ["info", f"stylegan2:{corpus[name]}"]
        if name == "encoder_kind.safetensors":
            message = "holds an encoder of plugin 'e4e', expected 'stylegan2'"
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and err.startswith("error: ") and err.count("\n") == 1
    assert "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())  # nothing written


def test_other_resolution_checkpoint_is_named(corpus) -> None:
    from stylebridge.core.stylegan2.checkpoint import load_stylegan2
    from stylebridge.errors import CheckpointError

    with pytest.raises(CheckpointError, match="is a 64px generator with 10 latent rows, expected 16px"):
        load_stylegan2(corpus["other_resolution.safetensors"], expect_size=16)


@pytest.mark.parametrize(("argv", "message"), [
    (["generate", "-g", "x.safetensors", "--seeds", "5-1", "--out", "o"], "range 5-1 is empty"),
    (["generate", "-g", "x.safetensors", "--truncation", "1.5", "--out", "o"], "must be in [0, 1]"),
    (["generate", "-g", "x.safetensors", "--batch", "-3", "--out", "o"], "must be >= 1"),
    (["info", "e4e::x"], "empty path"),
    (["info", "e4e:x.safetensors:k"], "malformed option 'k'"),
    (["convert", "nope", "a", "b"], "unknown converter 'nope'"),
])
def test_out_of_range_values_and_bad_specs(capsys, argv, message) -> None:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1


ALIGN_REASONS = {**IMAGE_ERRORS, "no_face.png": "no face found"}


@pytest.mark.parametrize(("name", "message"), sorted(ALIGN_REASONS.items()))
def test_bad_images_through_a_batch_command(corpus, tmp_path, capsys, name, message) -> None:
    """`align` on one bad file: skipped and reported with its reason; nothing written; exit 2."""
    import json

    out = tmp_path / "aligned"
    code = main(["align", str(corpus[name]), "--out", str(out), "--json"])
    captured = capsys.readouterr()
    report = json.loads(captured.out[captured.out.index("{"):])
    assert code == 2  # every input failed (a partial success exits 3)
    assert report["done"] == []
    assert [s["file"] for s in report["skipped"]] == [str(corpus[name])]
    assert message in report["skipped"][0]["reason"]
    assert "\n" not in report["skipped"][0]["reason"]
    assert "Traceback" not in captured.err
    assert not out.exists() or not any(out.iterdir())


# -- crafted headers (issue 19, item 2): every config checked against its plugin's schema ----
CRAFTED_ERRORS = {
    "crafted_n_mlp.safetensors": "config n_mlp=1000000000: expected an integer in 1..32",
    "crafted_channels.safetensors": "expected a map resolution -> width in 1..4096",
    "crafted_float_size.safetensors": "config size=32.5: expected an integer power of two in 4..4096",
    "crafted_string_size.safetensors": "config size='32': expected an integer power of two",
    "crafted_nan_lr_mlp.safetensors": "config lr_mlp=nan: expected a finite number",
    "crafted_implied_memory.safetensors": "has shape [4], expected [4096] by its config",
    "crafted_units.safetensors": "encoder 'e4e': config units=[1000000, 1000000, 1000000, "
                                 "1000000]: expected a list of integers in 1..64",
    "crafted_n_styles.safetensors": "encoder 'e4e': config n_styles=1048576: expected an "
                                    "integer in 1..22",
    "crafted_foreign_option.safetensors": "its header config has option(s) torgb that domain "
                                          "method 'affine_plus' does not take",
    "int_domain_weights.safetensors": "domain method 'stylespace' tensor offsets.0 has dtype "
                                      "int64, expected a floating-point tensor",
    "nan_domain_weights.safetensors": "tensor offsets.0 contains NaN or Inf values",
    "nan_upstream_generator.pt": "tensor g_ema.style.1.weight contains NaN or Inf values",
    "crafted_featureshift_hidden.safetensors": "invalid FeatureShift config in header: config "
                                               "hidden=10000000: expected an integer in 1..4096",
    "crafted_arcface_units.safetensors": "invalid ArcFace config in header: config units=",
    "inf_clip_weights.safetensors": "tensor visual.proj contains NaN or Inf values",
}


def _crafted_argv(corpus: dict[str, Path], name: str, out: Path) -> list[str]:
    if make_corpus.CASES[name] == "crafted-generator":
        return ["generate", "-g", str(corpus[name]), "--seeds", "0", "--out", str(out)]
    if make_corpus.CASES[name] == "crafted-encoder":
        return ["invert", str(corpus["rgba.png"]), "--no-align", "-e", f"e4e:{corpus[name]}",
                "-g", str(corpus["other_resolution.safetensors"]), "--out", str(out)]
    return ["info", "--help"]  # domains: through stylebridge.create below


@pytest.mark.parametrize(("name", "message"), sorted(
    (n, m) for n, m in CRAFTED_ERRORS.items()
    if make_corpus.CASES[n] in ("crafted-generator", "crafted-encoder")))
def test_crafted_headers_through_the_cli(corpus, tmp_path, capsys, name, message) -> None:
    out = tmp_path / "out"
    code = main(_crafted_argv(corpus, name, out))
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith(f"error: {corpus[name]}: ") and err.count("\n") == 1, err
    assert message in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("name", sorted(
    n for n, c in make_corpus.CASES.items() if c == "crafted-domain"))
def test_crafted_domain_files_are_refused_by_name(corpus, name) -> None:
    import stylebridge
    from stylebridge.errors import CheckpointError

    with pytest.raises(CheckpointError) as info:
        stylebridge.create("domain_method", str(corpus[name]))
    text = str(info.value)
    assert text.startswith(f"{corpus[name]}: ") and CRAFTED_ERRORS[name] in text


_BOUNDED = """
import resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from stylebridge.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("name", ["crafted_n_mlp.safetensors", "crafted_channels.safetensors",
                                  "crafted_units.safetensors", "crafted_n_styles.safetensors",
                                  "crafted_implied_memory.safetensors"])
def test_crafted_header_is_refused_before_allocation(corpus, tmp_path, name) -> None:
    """Under a 6 GiB address-space limit (torch itself maps ~4), each crafted header is refused
    with its one-line error: had anything been built from it, the allocation (GBs to PBs) would
    fail with MemoryError or the allocator's message instead."""
    import os
    import subprocess
    import sys

    out = tmp_path / "out"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _BOUNDED, str(6 * 2**30),
                           *_crafted_argv(corpus, name, out)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2, proc.stderr
    assert CRAFTED_ERRORS[name] in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert not out.exists() or not any(out.iterdir())


def test_nonfinite_upstream_weights_are_refused_by_the_converter(corpus, tmp_path, capsys) -> None:
    name = "nan_upstream_generator.pt"
    dst = tmp_path / "gen.safetensors"
    code = main(["convert", "stylegan2-rosinality", str(corpus[name]), str(dst)])
    err = capsys.readouterr().err
    assert code == 2 and err == f"error: {corpus[name]}: {CRAFTED_ERRORS[name]}\n"
    assert not dst.exists() and list(tmp_path.iterdir()) == []


def test_nonfinite_clip_weights_are_refused(corpus) -> None:
    from stylebridge.errors import CheckpointError
    from stylebridge.plugins.nets.state import read_plain_state

    name = "inf_clip_weights.safetensors"
    with pytest.raises(CheckpointError) as info:
        read_plain_state(corpus[name], what="CLIP")
    assert str(info.value) == f"{corpus[name]}: {CRAFTED_ERRORS[name]}"


@pytest.mark.parametrize(("argv", "message"), [
    (["generate", "-g", "x.safetensors", "--truncation", "nan", "--out", "o"],
     "--truncation: expected a finite number, got 'nan'"),
    (["calibrate", "--power", "inf"], "--power: expected a finite number, got 'inf'"),
    (["train", "domain", "--lr=-inf"], "--lr: expected a finite number, got '-inf'"),
    (["generate", "-g", "x.safetensors", "--truncation", "abc", "--out", "o"],
     "--truncation: expected a number, got 'abc'"),
])
def test_nonfinite_float_options_are_refused(capsys, argv, message) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith(f"error: {message}") and err.count("\n") == 1, err


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-Infinity", "1e999"])
def test_nonfinite_plugin_options_are_refused(text) -> None:
    from stylebridge.core.options import coerce_option
    from stylebridge.errors import SpecError

    with pytest.raises(SpecError, match=f"option power={text}: expected a finite number"):
        coerce_option(text, "power")
    assert coerce_option("0.5", "power") == 0.5 and coerce_option("3") == 3


def test_nonfinite_plugin_option_through_a_spec(corpus) -> None:
    import stylebridge
    from stylebridge.errors import StylebridgeError

    with pytest.raises(StylebridgeError, match="option power=nan: expected a finite number"):
        stylebridge.create("calibrator", "alpha:power=nan")


# -- unbounded work (issue 19, item 6): refused up front, the limit in the message and --help --
@pytest.mark.parametrize(("argv", "message"), [
    (["generate", "-g", "x.safetensors", "--seeds", "0", "--batch", "100000", "--out", "o"],
     "--batch 100000: more than the limit of 256"),
    (["eval", "--pred", "p", "--target", "t", "-m", "mse", "--size", "100000"],
     "--size 100000: more than the limit of 4,096"),
    (["calibrate", "alpha", "--out", "o.safetensors", "--images", "i", "-e", "e4e", "-g", "x",
      "--samples", "1000000000"], "--samples 1000000000: more than the limit of 1,000,000"),
    (["featureshift", "build-dataset", "--encoder", "fse", "--guide", "e4e", "--generator", "x",
      "--images", "i", "--domains", "d.safetensors", "--out", "o", "--image-size", "100000"],
     "--image-size 100000: more than the limit of 1,024"),
    (["align", "i.png", "--out", "o", "--size", "100000"], "--size 100000: more than the limit"),
])
def test_unbounded_sizes_are_refused_up_front(tmp_path, monkeypatch, capsys, argv, message) -> None:
    monkeypatch.chdir(tmp_path)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: {message}") and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize(("command", "limit"), [
    (["generate"], "at most 256"), (["eval"], "8..4096"), (["calibrate"], "at most 1,000,000"),
    (["featureshift", "build-dataset"], "8..1024"), (["align"], "at most 4096")])
def test_limits_are_stated_in_help(capsys, command, limit) -> None:
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    assert limit in " ".join(capsys.readouterr().out.split())


def test_documented_pixel_limit_is_the_one_that_applies(tmp_path) -> None:
    """Pillow alone refuses > ~179 M pixels; MAX_PIXELS (268 M) is what applies.  Only headers
    are parsed, nothing is decoded."""
    from PIL import Image

    from stylebridge.core.images import MAX_PIXELS, open_image

    assert MAX_PIXELS == 16384 * 16384
    below = tmp_path / "below.png"  # 200 M pixels: above Pillow's default, below ours
    below.write_bytes(make_corpus._huge_png_header(20_000, 10_000))
    assert 2 * Image.MAX_IMAGE_PIXELS < 200_000_000 < MAX_PIXELS
    with open_image(below) as img:
        assert img.size == (20_000, 10_000)
    above = tmp_path / "above.png"
    above.write_bytes(make_corpus._huge_png_header(17_000, 17_000))
    with pytest.raises(ImageError, match="image is 17000×17000, larger than the 268,435,456 pixel"):
        open_image(above)
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # Pillow's global is restored


def test_torchscript_archive_through_a_converter(corpus, tmp_path, capsys) -> None:
    src = corpus["torchscript_model.pt"]
    dst = tmp_path / "out.safetensors"
    code = main(["convert", "stylegan2-rosinality", str(src), str(dst)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: {src}: is a TorchScript archive (torch.jit.save)")
    assert err.count("\n") == 1 and "weights_only" not in err
    assert list(tmp_path.iterdir()) == []


def test_generator_named_like_a_spec_is_read_as_its_file(corpus, tmp_path, monkeypatch,
                                                         capsys) -> None:
    """`c:olon_generator.safetensors` would parse as plugin `c`, path `olon_...`: the existing
    file wins (relative, as users type it)."""
    monkeypatch.chdir(corpus["c:olon_generator.safetensors"].parent)
    out = tmp_path / "out"
    code = main(["generate", "-g", "c:olon_generator.safetensors", "--seeds", "0",
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert (out / "seed0000.png").is_file()


def test_converter_config_out_of_schema_names_the_file(tmp_path) -> None:
    """A NaN lr_mlp (Python API; the CLI refuses `-o lr_mlp=nan` while parsing) is refused by
    the generator schema, as a one-line error naming the upstream file."""
    from stylebridge.core.stylegan2 import Generator
    from stylebridge.errors import ConversionError
    from stylebridge.registry import get_registry

    src = tmp_path / "rosinality.pt"
    torch.save({"g_ema": Generator(size=8, style_dim=8, n_mlp=1,
                                   channels={4: 4, 8: 4}).state_dict()}, src)
    converter = get_registry().get("converter", "stylegan2-rosinality").obj
    with pytest.raises(ConversionError) as info:
        converter.convert(src, tmp_path / "out.safetensors", lr_mlp=float("nan"))
    assert str(info.value) == (f"{src}: its network configuration is not usable: config "
                               "lr_mlp=nan: expected a finite number in 1e-06..10")
    assert not (tmp_path / "out.safetensors").exists()


def test_crafted_headers_of_other_loaders(corpus) -> None:
    """FeatureShift models and ArcFace backbones are built from headers too: same schema rule."""
    from stylebridge.errors import CheckpointError
    from stylebridge.plugins.nets.irse import load_arcface_irse50
    from stylebridge.plugins.renderers.featureshift import load_featureshift

    for name, load in (("crafted_featureshift_hidden.safetensors", load_featureshift),
                       ("crafted_arcface_units.safetensors", load_arcface_irse50)):
        with pytest.raises(CheckpointError) as info:
            load(corpus[name])
        assert str(info.value).startswith(f"{corpus[name]}: {CRAFTED_ERRORS[name]}")


def test_a_batch_where_nothing_was_done_ends_with_one_error_line(corpus, tmp_path,
                                                                 capsys) -> None:
    """Exit 2 with a table only read as a success to a glance; the last line now says it."""
    code = main(["align", str(corpus["zero_bytes.png"]), str(tmp_path / "missing.png"),
                 "--out", str(tmp_path / "aligned")])
    err = capsys.readouterr().err
    assert code == 2
    # the files are in a table, or listed one per line when a name is wider than any table
    assert err.endswith(tuple(
        f"error: nothing done: {corpus['zero_bytes.png']}: is empty (0 bytes) "
        f"(and 1 more, {where} above)\n" for where in ("in the table", "listed")))


def test_a_run_of_which_nothing_could_be_used_ends_in_one_error_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`eval` with no pairs and `calibrate` with no readable photo printed two `error:`
    lines (the report's "nothing done" and the exception's); now the table, then one."""
    import numpy as np
    from PIL import Image

    from stylebridge.cli.main import main
    from stylebridge.pipelines.presets import build_tiny_preset

    pred, tgt = tmp_path / "pred", tmp_path / "tgt"
    for folder, names in ((pred, ("a", "b")), (tgt, ("x",))):
        folder.mkdir()
        for name in names:
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / f"{name}.png")
    assert main(["eval", "-m", "mse", "--pred", str(pred), "--target", str(tgt)]) == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error")]
    assert len(errors) == 1 and "no image pairs to evaluate" in errors[0], errors

    preset = build_tiny_preset(tmp_path / "preset", n_images=2)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"not an image")
    (bad / "b.png").write_bytes(b"")
    assert main(["calibrate", "alpha", "-e", f"e4e:{preset.e4e}", "-g", str(preset.generator),
                 "--images", str(bad), "--out", str(tmp_path / "a.safetensors"),
                 "--no-align", "--device", "cpu"]) == 2
    captured = capsys.readouterr()
    errors = [ln for ln in captured.err.splitlines() if ln.startswith("error")]
    assert len(errors) == 1, errors
    assert "0 done, 2 skipped" in captured.out and "is empty (0 bytes)" in captured.out
