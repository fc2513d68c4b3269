# ruff: noqa: F811  (the `files` / `registered` fixtures of test_batch_resume / test_adapt_random)
"""``stylebridge render``: inversions saved by ``adapt``/``invert --save-latents`` rendered
through domains without the photos; what adapt renders from the photo, render renders from
the file (StyleRes's residual included), and bad files are skipped and reported."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import test_adapt as ta
import test_encoders_irse as ti
import torch
from PIL import Image
from test_adapt_random import registered  # noqa: F401  (the fixture)
from test_batch_resume import files  # noqa: F401  (the fixture)

from stylebridge.cli.main import main
from stylebridge.core.checkpoint import load_checkpoint, read_header, save_checkpoint
from stylebridge.core.images import load_image
from stylebridge.core.stylegan2.checkpoint import save_stylegan2
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.render import RenderConfig, prepare_render
from stylebridge.pipelines.training.state import file_sha256
from stylebridge.plugins.converters.styleres import StyleResConverter
from stylebridge.plugins.domains.stylespace import StyleSpace

STEMS = ("a", "b", "c", "d", "e", "f", "g")


def _png(path: Path) -> np.ndarray:
    return (load_image(path).numpy() * 255).round().astype(int)


def _same_pictures(a: Path, b: Path) -> None:
    """The same render, up to one 8-bit level (batches of another size)."""
    assert np.abs(_png(a) - _png(b)).max() <= 1


def test_render_draws_more_domains_from_saved_latents_without_the_encoder(
        files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        registered: None) -> None:
    adapted, rendered = tmp_path / "adapted", tmp_path / "rendered"
    assert main(["adapt", "-e", f"test-adapt-tiny:{files['enc']}", "-g", str(files["gen"]),
                 "-m", str(files["pixar"]), "-m", str(files["joker"]), "--no-align",
                 "--device", "cpu", "--save-latents", "--strength", "1,0.5",
                 str(files["photos"]), "--out", str(adapted)]) == 3  # broken.png
    capsys.readouterr()
    ta.TinyEncoder.images_seen = 0
    # the generator is the one the files record; joker only now, pixar again
    assert main(["render", str(adapted), "-m", str(files["joker"]), "-m",
                 str(files["pixar"]), "--strength", "1,0.5", "--device", "cpu",
                 "--batch", "3", "--out", str(rendered)]) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert "wrote 7 inversion(s) × 5 images and grid.png" in said
    assert ta.TinyEncoder.images_seen == 0  # no photo was encoded (nor the encoder loaded)
    for stem in STEMS:
        for key in ("inversion", "pixar", "joker", "pixar@0.5", "joker@0.5"):
            _same_pictures(rendered / f"{stem}_{key}.png", adapted / f"{stem}_{key}.png")
    summary = json.loads((rendered / "render.json").read_text())
    assert summary["generator"] == str(files["gen"]) and summary["encoder"] is None
    assert list(summary["domains"]) == ["joker", "pixar"] and summary["skipped"] == []
    assert summary["outputs"][str(adapted / "a_inversion.safetensors")]["joker"] == "a_joker.png"
    assert summary["random_weights"] is False
    grid = load_image(rendered / "grid.png")
    # names | inversion | 4 outputs, in 128 px tiles (small ones enlarged: readable labels)
    assert 8 <= grid.shape[-1] - (5 * 128 + 6 * 2) <= 170


def test_render_skips_and_reports_bad_files(files: dict[str, Path], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch,
                                            registered: None) -> None:
    inverted, other = tmp_path / "inverted", tmp_path / "other"
    assert main(["invert", "-e", f"test-adapt-tiny:{files['enc']}", "-g", str(files["gen"]),
                 "--no-align", "--device", "cpu", "--save-latents", str(files["photos"]),
                 "--out", str(inverted)]) == 3
    other.mkdir()
    (other / "a_inversion.safetensors").write_bytes(
        (inverted / "a_inversion.safetensors").read_bytes())  # the same stem again
    (other / "junk_inversion.safetensors").write_text("not a checkpoint")
    big = ta.tiny_generator(seed=1, size=64, style_dim=ta.SD)
    save_stylegan2(other / "big_inversion.safetensors", big)  # a generator, not an inversion
    capsys.readouterr()
    out = tmp_path / "out"
    assert main(["render", str(inverted / "a_inversion.safetensors"), str(other),
                 "-m", str(files["pixar"]), "--device", "cpu", "--out", str(out)]) == 3
    skipped = {Path(s["file"]).name + "@" + Path(s["file"]).parent.name: s["reason"]
               for s in json.loads((out / "render.json").read_text())["skipped"]}
    assert skipped["a_inversion.safetensors@other"] == (
        f"output name a_* is already used by {inverted / 'a_inversion.safetensors'}")
    assert "not an inversion" in skipped["big_inversion.safetensors@other"]
    assert "junk_inversion.safetensors@other" in skipped
    assert (out / "a_pixar.png").is_file()
    # a generator the inversions do not fit: every file skipped, named
    bigfile = save_stylegan2(tmp_path / "big.safetensors", big)
    assert main(["render", str(inverted), "-m", str(files["pixar"]), "-g", str(bigfile),
                 "--device", "cpu", "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr()
    assert "Traceback" not in err.err
    # nothing to render at all: one line
    assert main(["render", str(files["photos"]), "-m", str(files["pixar"]),
                 "--device", "cpu"]) == 2
    assert "no inversion files in" in capsys.readouterr().err
    # the generator the files record is gone, and none is installed: both said in one line
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "home"))
    files["gen"].rename(tmp_path / "moved.safetensors")
    assert main(["render", str(inverted), "-m", str(files["pixar"]), "--device", "cpu",
                 "--out", str(tmp_path / "o3")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith(f"error: the inversions record generator {files['gen']}, which is "
                          "not there: rendering with the installed FFHQ generator (--generator "
                          "chooses another); official weights are not installed: "
                          "stylegan2-ffhq-1024")


def test_render_featureshift_needs_its_guide_and_feature(
        files: dict[str, Path], tmp_path: Path, registered: None,
        capsys: pytest.CaptureFixture[str]) -> None:
    import test_featureshift as tfs

    from stylebridge.plugins.renderers.featureshift import FeatureShift, save_featureshift

    model = FeatureShift(feature_channels=tfs.FEAT[0], hidden=8, layer=tfs.LAYER)
    path = save_featureshift(tmp_path / "fs.safetensors", model,
                             extra={"sources": {"guide": "e4e:e4e.safetensors"}})
    adapted = tmp_path / "adapted"
    assert main(["adapt", "-e", f"test-adapt-tiny:{files['enc']}", "-g", str(files["gen"]),
                 "-m", str(files["pixar"]), "--no-align", "--device", "cpu", "--save-latents",
                 str(files["photos"] / "a.png"), "--out", str(adapted)]) == 0
    with pytest.raises(StylebridgeError, match=r"trained with the latents of guide encoder "
                                               r"e4e:e4e\.safetensors"):
        prepare_render(RenderConfig(latents=[adapted], methods=[str(files["pixar"])],
                                    out=tmp_path / "o", featureshift=path, device="cpu"))
    # a model whose recorded guide is the encoder that made the inversions: its latents are
    # the guide's (the tiny preset's FeatureShift on FSE records fse.safetensors so)
    same = save_featureshift(tmp_path / "same.safetensors", model,
                             extra={"sources": {"guide": str(files["enc"].resolve())}})
    job = prepare_render(RenderConfig(latents=[adapted], methods=[str(files["pixar"])],
                                      out=tmp_path / "o", featureshift=same, device="cpu"))
    assert job.featureshift["guide"] == "the inversions' own latents"
    assert job.notes == []  # it records no generator: nothing to say
    # ... and the adapter builds no guide encoder: it built the recorded one, and rendering
    # then asked for that guide's latents of photos render does not have
    assert job.adapter.guide is None
    # a model trained on another generator file (train featureshift records its sha256)
    other = save_featureshift(tmp_path / "other.safetensors", model, extra={
        "sources": {"guide": str(files["enc"].resolve())}, "generator_sha256": "0" * 64,
        "generator_file": "/elsewhere/ffhq.safetensors"})
    job = prepare_render(RenderConfig(latents=[adapted], methods=[str(files["pixar"])],
                                      out=tmp_path / "o", featureshift=other, device="cpu"))
    assert job.notes == [
        "--featureshift other.safetensors was trained on generator sha256 00000000… "
        f"(ffhq.safetensors), not on the one loaded ({files['gen'].name}, sha256 "
        f"{file_sha256(files['gen'])[:8]}…): its feature corrections were learnt on that "
        "generator's features and may not fit this one"]
    # a model trained on the latents themselves: an inversion without the feature it shifts
    # (the tiny encoder gives w+ only) is skipped, named
    own = save_featureshift(tmp_path / "own.safetensors", model)
    out = tmp_path / "o2"
    capsys.readouterr()
    assert main(["render", str(adapted), "-m", str(files["pixar"]), "--featureshift", str(own),
                 "--device", "cpu", "--out", str(out)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert (f"holds no encoder feature at activation {tfs.LAYER}, which --featureshift shifts "
            "(save it from fse in mode=features)") in err
    # nothing rendered: no render.json claiming a run there (invert and adapt write none)
    assert not (out / "render.json").exists()


@pytest.mark.parametrize("old_header", [False, True])
def test_render_rebuilds_styleres_from_its_own_encoder(old_header: bool, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """adapt with StyleRes, then render: the encoder is loaded from the spec the files
    recorded and rebuilds the gated residual; the domain picture is adapt's.  ``old_header``:
    files written before headers listed the ``modifiers`` (their residual's ``extra_*``
    tensors are there) were rendered without the encoder, the residual silently dropped."""
    monkeypatch.setattr(ti.StyleResEncoder, "_licence_noted", False)  # said once a process
    src, _ = ti._styleres_file(tmp_path)
    enc, gen_file = tmp_path / "styleres.safetensors", tmp_path / "gen.safetensors"
    StyleResConverter().convert(src, enc, generator=str(gen_file))
    from stylebridge.core.stylegan2.checkpoint import load_stylegan2

    gen = load_stylegan2(gen_file).generator
    domain = StyleSpace(size=gen.size, style_dim=gen.style_dim,
                        channels={str(r): c for r, c in gen.cfg.channels.items()})
    with torch.no_grad():
        for offset in domain.offsets.values():
            offset.add_(0.3)
    pixar = domain.save(tmp_path / "pixar.safetensors")
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.fromarray((ti._images(1, 32, seed=i)[0].permute(1, 2, 0).numpy() * 255)
                           .astype(np.uint8)).save(photos / f"p{i}.png")
    adapted, rendered = tmp_path / "adapted", tmp_path / "rendered"
    # the command line says the licence in one line among its notices, not as a warning (a
    # warning is for Python users: main() quiets it while a command runs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["adapt", "-e", f"styleres:{enc}", "-g", str(gen_file), "-m", str(pixar),
                     "--no-align", "--device", "cpu", "--save-latents", str(photos),
                     "--out", str(adapted)]) == 0
        assert ("licence of styleres.safetensors: StyleRes (hamzapehlivan/StyleRes) code and "
                "weights are under the NVIDIA Source Code License for StyleRes: non-commercial "
                "research and evaluation use only") in capsys.readouterr().err
        if old_header:
            for file in adapted.glob("*_inversion.safetensors"):
                header, tensors = load_checkpoint(file, kind="inversion")
                assert any(name.startswith("extra_") for name in tensors)
                config = {k: v for k, v in header.config.items() if k != "modifiers"}
                save_checkpoint(file, tensors, kind="inversion", plugin=header.plugin,
                                config=config, extra=header.extra)
        assert main(["render", str(adapted), "-m", str(pixar), "--device", "cpu",
                     "--out", str(rendered)]) == 0
    assert [w for w in caught if issubclass(w.category, ti.StyleResLicenceWarning)] == []
    assert json.loads((rendered / "render.json").read_text())["encoder"] == f"styleres:{enc}"
    for i in range(3):
        for key in ("inversion", "pixar"):
            _same_pictures(rendered / f"p{i}_{key}.png", adapted / f"p{i}_{key}.png")
    capsys.readouterr()


def test_files_saved_with_relative_paths_render_from_another_folder(
        files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        registered: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """adapt run with relative --generator/--encoder paths; render run from elsewhere finds
    the same generator (before: the relative path was recorded and the installed FFHQ
    generator was used instead, or none)."""
    import shutil

    work = tmp_path / "work"
    (work / "models").mkdir(parents=True)
    shutil.copy(files["gen"], work / "models" / "g.safetensors")
    shutil.copy(files["enc"], work / "models" / "e.safetensors")
    monkeypatch.chdir(work)
    assert main(["adapt", "-e", "test-adapt-tiny:models/e.safetensors", "-g",
                 "models/g.safetensors", "-m", str(files["pixar"]), "--no-align", "--device",
                 "cpu", "--save-latents", str(files["photos"] / "a.png"), "--out", "sl"]) == 0
    recorded = read_header(work / "sl" / "a_inversion.safetensors").config
    assert recorded["generator"] == str(work / "models" / "g.safetensors")
    assert recorded["encoder"] == f"test-adapt-tiny:{work / 'models' / 'e.safetensors'}"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main(["render", str(work / "sl"), "-m", str(files["pixar"]), "--device", "cpu",
                 "--out", "r"]) == 0
    out, notices = capsys.readouterr()
    assert "not there" not in out and "not there" not in notices
    summary = json.loads((elsewhere / "r" / "render.json").read_text())
    assert summary["generator"] == str(work / "models" / "g.safetensors")
    _same_pictures(elsewhere / "r" / "a_pixar.png", work / "sl" / "a_pixar.png")



def test_a_folder_of_inversions_leaves_hidden_files_out(tmp_path: Path) -> None:
    """macOS' `._a_inversion.safetensors` resource forks were read, skipped as "a text file"
    and made the run exit 3, as they did in photo folders."""
    from stylebridge.pipelines.render import latent_files

    (tmp_path / "a_inversion.safetensors").write_bytes(b"x")
    (tmp_path / "._a_inversion.safetensors").write_bytes(b"\x00\x05\x16\x07")
    assert latent_files([tmp_path]) == [tmp_path / "a_inversion.safetensors"]


def test_render_says_when_the_inversions_were_made_on_another_generator(
        files: dict[str, Path], tmp_path: Path, registered: None) -> None:
    """An inversion file records its generator's sha256: rendered through another file
    (same config, other weights), render said nothing and the pictures were simply off."""
    adapted = tmp_path / "adapted"
    assert main(["adapt", "-e", f"test-adapt-tiny:{files['enc']}", "-g", str(files["gen"]),
                 "-m", str(files["pixar"]), "--no-align", "--device", "cpu", "--save-latents",
                 str(files["photos"] / "a.png"), str(files["photos"] / "b.png"),
                 "--out", str(adapted)]) == 0
    job = prepare_render(RenderConfig(latents=[adapted], methods=[str(files["pixar"])],
                                      out=tmp_path / "o", device="cpu"))
    assert job.notes == []  # the generator it records, the same file
    other = tmp_path / "other.safetensors"
    data = files["gen"].read_bytes()
    other.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # another float in the last weight
    job = prepare_render(RenderConfig(latents=[adapted], methods=[str(files["pixar"])],
                                      generator=str(other), out=tmp_path / "o2", device="cpu"))
    assert job.notes == [
        f"the inversions a_inversion.safetensors and 1 more were made on generator sha256 "
        f"{file_sha256(files['gen'])[:8]}… ({files['gen'].name}), not on the one loaded "
        f"(other.safetensors, sha256 {file_sha256(other)[:8]}…): their latents were fitted "
        "through that generator and may render otherwise through this one"]
