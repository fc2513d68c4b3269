"""README's "Python API" block runs as written, on the tiny random-weight preset's files
copied to the names it uses (ffhq/fse/e4e/pixar.safetensors, run/model.safetensors), and
its results check out: a README that drifted from the API fails here."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import skimage.data
import torch
from PIL import Image

from stylebridge.core.images import load_image
from stylebridge.pipelines.align import align_face
from stylebridge.pipelines.presets import build_tiny_preset

README = Path(__file__).resolve().parents[1] / "README.md"


def _api_block() -> str:
    found = re.search(r"^## Python API\n\n```python\n(.*?)^```", README.read_text(), re.S | re.M)
    assert found is not None, "README has no ```python block under '## Python API'"
    return found.group(1)


def test_the_readme_python_api_block_runs_and_its_numbers_hold(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    preset = build_tiny_preset(tmp_path / "preset", n_images=2)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run").mkdir()
    # the sketch domain moves fine layers, which skip_layers="coarse" leaves alone
    for src, dst in ((preset.generator, "ffhq.safetensors"), (preset.fse, "fse.safetensors"),
                     (preset.e4e, "e4e.safetensors"),
                     (preset.domains / "tiny-sketch.safetensors", "pixar.safetensors"),
                     (preset.featureshift_e4e, "run/model.safetensors")):
        shutil.copy(src, dst)
    Image.fromarray(skimage.data.astronaut()).save("photo.jpg", quality=95)  # a real face
    ns: dict = {"images01": torch.stack([load_image(preset.images / f"photo{i}.png")
                                         for i in range(2)])}  # rendered by its generator
    with torch.no_grad():
        exec(compile(_api_block(), str(README), "exec"), ns)  # our own README

    gen, size = ns["gen"], ns["gen"].size
    assert ns["stylebridge"].provenance_of(ns["fse"]).describe() == "random weights (fse.safetensors)"
    assert ns["adapted"].shape == (2, 3, size, size)
    outputs = ns["outputs"]
    assert set(outputs) == {"inversion", "pixar"}
    for image in outputs.values():
        assert image.shape == (2, 3, size, size) and image.min() >= 0 and image.max() <= 1
    assert (outputs["pixar"] - outputs["inversion"]).abs().mean() > 1e-3
    # the photo file: aligned as `align` aligns it, and its pixar picture written
    photo = ns["photo"]
    assert photo.shape == (1, 3, 1024, 1024)
    aligned = align_face(load_image("photo.jpg"), 1024).to_tensor()
    assert torch.equal(photo[0], aligned)
    assert load_image("photo_pixar.png").shape == (3, size, size)
    assert Image.open("photo_pixar.png").info["stylebridge-notice"].startswith("RANDOM WEIGHTS")
    sweep = ns["sweep"]  # half the change moves the picture less than one and a half
    assert set(sweep) == {"inversion", "pixar@0.5", "pixar@1.5"}
    moved = {k: float((sweep[k] - sweep["inversion"]).abs().mean()) for k in sweep}
    assert 0 < moved["pixar@0.5"] < moved["pixar@1.5"]
    samples = ns["samples"]  # the generate pipeline: each seed, and each seed through pixar
    assert samples.outputs == ["source", "pixar"] and sorted(samples.files) == [0, 1, 2, 3]
    assert (tmp_path / "samples" / "seed0003_pixar.png").is_file()
    assert set(ns["shifted"].run(ns["images01"])) == {"inversion", "pixar"}
    # guide= left out: the preset's FeatureShift records its guide as build-dataset does
    # (sources.guide): the e4e it was made with is built, not FSE's own latents used silently
    st = ns["stylebridge"]
    recorded = st.Adapter(ns["fse"], gen, {"pixar": ns["pixar"]},
                          renderer=st.create("renderer", preset.featureshift_e4e))
    assert recorded.guide is not None
    assert st.provenance_of(recorded.guide).path == preset.e4e.resolve()

    # synthesize is deterministic (fixed noise): the README's call again gives the same image
    with torch.no_grad():
        again = ns["synthesize"](gen, ns["inversion"], method=ns["pixar"])
    torch.testing.assert_close(again, ns["adapted"], rtol=0, atol=0)
    # feature injection at K of G's own G^K (fixed noise) reproduces the plain synthesis
    styles = ns["styles"]
    with torch.no_grad():
        feat, _ = gen.features_upto(styles, 5, randomize_noise=False)
        injected = gen.synthesis(styles, features={5: feat}, randomize_noise=False)
        plain = gen.synthesis(styles, randomize_noise=False)
    assert ns["feat"].shape == feat.shape
    torch.testing.assert_close(injected, plain, rtol=0, atol=1e-5)


def test_the_tiny_preset_refuses_one_image(tmp_path: Path) -> None:
    """Its encoders are scaled to the spread of their outputs over the preset's images: one
    image has none (the scale would be 0.5 / 1e-8 and w+ would reach 1e7)."""
    with pytest.raises(ValueError, match="needs n_images >= 2"):
        build_tiny_preset(tmp_path / "preset", n_images=1)
    assert not (tmp_path / "preset").exists()


def test_config_paths_given_as_strings_are_paths(tmp_path) -> None:
    """`GenerateConfig(out="gen_out")` crashed with "'str' object has no attribute 'mkdir'"
    (the README passes strings for the other paths): every pipeline config with a Path field
    turns a string into a Path; the run writes where it was told."""
    import dataclasses
    import importlib
    import pkgutil
    from pathlib import Path

    import stylebridge.pipelines as pipelines
    from stylebridge.pipelines.generate import GenerateConfig, generate
    from stylebridge.pipelines.presets import build_tiny_preset

    preset = build_tiny_preset(tmp_path / "preset", n_images=2)
    out = tmp_path / "gen_str"
    generate(GenerateConfig(generator=str(preset.generator), seeds="0-1", device="cpu",
                            out=str(out)))
    assert sorted(p.name for p in out.glob("seed*.png")) == ["seed0000.png", "seed0001.png"]

    checked = []
    for info in pkgutil.walk_packages(pipelines.__path__, "stylebridge.pipelines."):
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if not (isinstance(obj, type) and dataclasses.is_dataclass(obj)
                    and obj.__module__ == module.__name__ and obj.__name__.endswith("Config")):
                continue
            path_fields = [f for f in dataclasses.fields(obj)
                           if str(f.type).replace(" ", "") in ("Path", "Path|None")]
            if path_fields:
                checked.append(obj.__name__)
                assert "__post_init__" in dir(obj), obj
    assert {"GenerateConfig", "AdaptConfig", "EvalConfig", "RenderConfig"} <= set(checked)
    from stylebridge.pipelines.evaluate import EvalConfig

    config = EvalConfig(metrics=["mse"], pred=["a"], json="r.json")
    assert config.json == Path("r.json") and config.csv is None


def test_config_fields_take_the_obvious_type_and_refuse_the_wrong_one(tmp_path) -> None:
    """From Python: a spec given as a Path (what the tiny preset hands out) was
    "'PosixPath' object has no attribute 'strip'"; ``methods="x.safetensors"`` was read one
    character at a time; ``resume="no"`` was true and ``batch="4"`` a TypeError later."""
    import numpy as np
    import torch

    from stylebridge.errors import StylebridgeError
    from stylebridge.pipelines.adapt import AdaptConfig
    from stylebridge.pipelines.generate import GenerateConfig

    config = AdaptConfig(images=tmp_path / "photos", encoder=tmp_path / "fse.safetensors",
                         generator=tmp_path / "g.safetensors", methods="pixar.safetensors",
                         metrics="psnr", device=torch.device("cpu"), out=tmp_path / "o",
                         strength=np.float32(0.5), batch=np.int64(2))
    assert config.encoder == str(tmp_path / "fse.safetensors")
    assert config.methods == ["pixar.safetensors"] and config.metrics == ["psnr"]
    assert config.images == [tmp_path / "photos"] and config.device == "cpu"
    assert config.strength == 0.5 and type(config.strength) is float
    assert config.batch == 2 and type(config.batch) is int
    for field, value, message in (
            ("batch", "4", "AdaptConfig.batch: expected an integer, got '4' (str)"),
            ("batch", 2.5, "AdaptConfig.batch: expected an integer, got 2.5 (float)"),
            ("resume", "no", "AdaptConfig.resume: expected True or False, got 'no' (str)"),
            ("strength", "0.5", "AdaptConfig.strength: expected a number or a list of numbers")):
        with pytest.raises(StylebridgeError) as info:
            AdaptConfig(images=["a.png"], encoder="e4e", generator="g", methods=["m"], out="o",
                        **{field: value})
        assert str(info.value).startswith(message)
    with pytest.raises(StylebridgeError, match=r"GenerateConfig.truncation: expected a number"):
        GenerateConfig(truncation="0.7")
    assert GenerateConfig(strength=torch.tensor(0.25)).strength == 0.25


def test_the_adapter_says_what_it_runs_on_random_weights_and_save_image_keeps_it(
        tmp_path, capsys) -> None:
    """From Python, an Adapter on the tiny preset's random models gave bare tensors and
    `save_image` wrote files `stylebridge info` called unlabelled; now `Adapter.random_parts`
    / `.notice` say it and `save_image(..., notice=)` keeps it (PNG text, JPEG EXIF)."""
    from PIL import Image

    import stylebridge
    from stylebridge.errors import StylebridgeError

    preset = build_tiny_preset(tmp_path / "preset", n_images=2)
    gen = stylebridge.create("generator", preset.generator)
    fse = stylebridge.create("encoder", f"fse:{preset.fse}")
    pixar = stylebridge.create("domain_method", preset.domains / "tiny-pixar.safetensors")
    adapter = stylebridge.Adapter(fse, gen, {"pixar": pixar})
    assert adapter.random_parts == ["encoder", "generator", "domain pixar"]
    assert adapter.notice == ("RANDOM WEIGHTS: made with untrained (random) weights (encoder, "
                              "generator, domain pixar)")
    with torch.no_grad():
        out = adapter.run(torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    png = stylebridge.save_image(out["pixar"], tmp_path / "a.png", notice=adapter.notice)
    assert Image.open(png).info["stylebridge-notice"] == adapter.notice
    jpg = stylebridge.save_image(out["pixar"], tmp_path / "a.jpg", notice=adapter.notice)
    assert Image.open(jpg).getexif()[0x010E] == adapter.notice
    from stylebridge.cli.main import main

    assert main(["info", str(jpg), "--json"]) == 0       # `info` reads it from the JPEG too
    import json

    assert json.loads(capsys.readouterr().out)["notice"] == adapter.notice
    with pytest.raises(StylebridgeError, match="a BMP keeps no notice"):
        stylebridge.save_image(out["pixar"], tmp_path / "a.bmp", notice=adapter.notice)
    with pytest.raises(StylebridgeError, match=r"expected an RGB picture \[3, H, W\], got shape"):
        stylebridge.save_image(out["pixar"][0, :1], tmp_path / "b.png")


def test_load_photo_refuses_a_transform_size_it_would_ignore_or_misuse(tmp_path) -> None:
    import stylebridge
    from stylebridge.errors import StylebridgeError

    photo = tmp_path / "p.png"
    Image.new("RGB", (16, 16)).save(photo)
    for kwargs, said in ((dict(align=False, transform_size=64), "applies with align=True"),
                         (dict(transform_size=0), "transform_size 0: must be >= 1"),
                         (dict(size=64, transform_size=32), "is below size 64")):
        with pytest.raises(StylebridgeError, match=said):
            stylebridge.load_photo(photo, **kwargs)
    assert stylebridge.load_photo(photo, align=False, size=8).shape == (1, 3, 8, 8)
