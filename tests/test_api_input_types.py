"""Values of the wrong type from a notebook: the pipelines' configs, ``load_photo``,
``align_face`` and ``save_image`` refuse them in one line naming the field (an
``InputTypeError``, a ``TypeError`` too), take the obvious other forms (a picture in memory
for ``load_photo``, a path for ``align_face``, one seed for ``seeds``), and never read a
wrong value as another (``seeds=[1.5]`` was seed 1)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import stylebridge
from stylebridge.errors import InputTypeError
from stylebridge.pipelines.adapt import AdaptConfig
from stylebridge.pipelines.evaluate import EvalConfig
from stylebridge.pipelines.generate import GenerateConfig
from stylebridge.pipelines.invert import InvertConfig

PIL_IMAGE = Image.new("RGB", (32, 32), (200, 120, 40))
INVERT = {"encoder": "e4e", "generator": "stylegan2", "out": "out"}


@pytest.mark.parametrize("images, said", [
    (PIL_IMAGE, "InvertConfig.images: expected a list of paths (str or Path), got Image; a "
                "picture in memory goes through stylebridge.Adapter"),
    ([PIL_IMAGE], "InvertConfig.images item: expected a path (str or Path), got Image; a "
                  "picture in memory goes through stylebridge.Adapter"),
    (torch.zeros(1, 3, 8, 8), "InvertConfig.images: expected a list of paths (str or Path), "
                              "got Tensor"),
    (np.zeros((8, 8, 3)), "InvertConfig.images: expected a list of paths (str or Path), got "
                          "ndarray"),
    (5, "InvertConfig.images: expected a list of paths (str or Path), got int"),
    (["a.jpg", 5], "InvertConfig.images item: expected a path (str or Path), got int"),
    ({"a.jpg": 1}, "InvertConfig.images: expected a list of paths (str or Path), got dict"),
])
def test_photo_fields_refuse_pictures_and_other_types(images, said) -> None:
    with pytest.raises(InputTypeError) as info:
        InvertConfig(images=images, **INVERT)
    assert str(info.value).startswith(said)
    assert isinstance(info.value, TypeError) and "\n" not in str(info.value)


def test_photo_fields_take_any_sequence_of_paths() -> None:
    config = InvertConfig(images=("a.jpg", Path("b")), **INVERT)
    assert config.images == ["a.jpg", Path("b")]
    assert InvertConfig(images=(p for p in ["c.png"]), **INVERT).images == ["c.png"]


@pytest.mark.parametrize("pred, said", [
    ([torch.zeros(3, 8, 8)], "EvalConfig.pred item: expected a path (str or Path), got Tensor"),
    (torch.zeros(3, 8, 8), "EvalConfig.pred: expected a list of paths (str or Path), got Tensor"),
])
def test_eval_refuses_tensors_for_files(pred, said) -> None:
    with pytest.raises(InputTypeError, match=f"^{re.escape(said)}"):
        EvalConfig(pred=pred, metrics=["lpips"])


@pytest.mark.parametrize("field, value, said", [
    ("generator", torch.nn.Linear(1, 1),
     "GenerateConfig.generator: expected a string (a name, a spec or a path), got Linear"),
    ("methods", {"pixar": 1}, "GenerateConfig.methods: expected a list of strings, got dict"),
    ("methods", ["pixar", 3], "GenerateConfig.methods item: expected a string, got int"),
    ("out", 7, "GenerateConfig.out: expected a path (str or Path), got int"),
    ("seeds", [1.5], "GenerateConfig.seeds: expected text like '0-7' or integers, got 1.5 "
                     "(float)"),
    ("seeds", [True], "GenerateConfig.seeds: expected text like '0-7' or integers, got True "
                      "(bool)"),
    ("seeds", 2.5, "GenerateConfig.seeds: expected text like '0-7' or integers, got 2.5"),
])
def test_generate_config_names_the_field(field, value, said) -> None:
    with pytest.raises(InputTypeError) as info:
        GenerateConfig(**{field: value})
    assert str(info.value) == said or str(info.value).startswith(said)


@pytest.mark.parametrize("seeds, expected", [
    (5, [5]), (np.int64(7), [7]), (range(3), [0, 1, 2]), ((4, 2), [4, 2]),
    (np.arange(2), [0, 1]), (torch.tensor([3, 9]), [3, 9]), ("0-2", [0, 1, 2]),
    (torch.tensor(3), [3]), (["1", "2"], [1, 2]), (np.array([1.0, 2.0]), [1, 2]),  # as int()
])
def test_seeds_take_one_integer_or_any_integers(seeds, expected) -> None:
    assert GenerateConfig(seeds=seeds).seed_list() == expected


def test_skip_layers_take_one_integer() -> None:
    config = AdaptConfig(images="a.jpg", encoder="e4e", generator="stylegan2", out="o",
                         methods=["pixar"], skip_layers=2)
    assert config.skip_layers == [2]
    with pytest.raises(InputTypeError, match=r"AdaptConfig.skip_layers: .* got 2.5"):
        AdaptConfig(images="a.jpg", encoder="e4e", generator="stylegan2", out="o",
                    methods=["pixar"], skip_layers=[2.5])


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, Path]:
    skimage_data = pytest.importorskip("skimage.data")
    rgb = skimage_data.astronaut()
    path = tmp_path_factory.mktemp("photo") / "astronaut.png"
    Image.fromarray(rgb).save(path)
    return rgb, path


def test_load_photo_takes_a_picture_in_memory(astronaut) -> None:
    rgb, path = astronaut
    from_file = stylebridge.load_photo(path, size=128)
    assert from_file.shape == (1, 3, 128, 128)
    for picture in (Image.fromarray(rgb), rgb,
                    torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0):
        assert torch.equal(stylebridge.load_photo(picture, size=128), from_file)
    whole = stylebridge.load_photo(Image.fromarray(rgb), align=False, size=64)
    assert torch.equal(whole, stylebridge.load_photo(path, align=False, size=64))


def test_load_photo_turns_a_pil_image_upright(astronaut) -> None:
    rgb, _ = astronaut
    stored = Image.fromarray(np.ascontiguousarray(rgb[:64, :96]))  # 96 x 64, as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: shown turned 90° clockwise (a phone photo)
    buffer = io.BytesIO()
    stored.save(buffer, format="PNG", exif=exif)
    opened = Image.open(io.BytesIO(buffer.getvalue()))  # what a notebook's Image.open gives
    out = stylebridge.load_photo(opened, align=False, size=32)
    upright = stylebridge.load_photo(stored.transpose(Image.Transpose.ROTATE_270),
                                     align=False, size=32)
    assert torch.equal(out, upright)
    assert not torch.equal(out, stylebridge.load_photo(stored, align=False, size=32))


def test_load_photo_refuses_other_types() -> None:
    with pytest.raises(InputTypeError, match=r"^load_photo: expected a photo file \(str or "
                                             r"Path\) or a picture .*got int$"):
        stylebridge.load_photo(123)


def test_align_face_takes_a_path(astronaut) -> None:
    from stylebridge.pipelines.align import align_face

    rgb, path = astronaut
    by_path, in_memory = align_face(path, 128), align_face(rgb, 128)
    assert np.array_equal(np.asarray(by_path.image), np.asarray(in_memory.image))
    with pytest.raises(InputTypeError, match=r"^expected a picture .*got int$"):
        align_face(5, 128)


def test_save_image_refuses_a_missing_path() -> None:
    with pytest.raises(InputTypeError, match=r"^save_image: expected a file path \(str or "
                                             r"Path\), got NoneType$"):
        stylebridge.save_image(torch.zeros(3, 8, 8), None)


def _one_event(event) -> None:
    pass


def _done_total_text(done, total, text) -> None:
    pass


def _pipeline(module: str, function: str, config: str, progress, **fields):
    """A call of ``stylebridge.pipelines.MODULE.FUNCTION(CONFIG(out=..., **fields), progress)``."""
    import importlib

    mod = importlib.import_module(f"stylebridge.pipelines.{module}")
    return lambda out: getattr(mod, function)(getattr(mod, config)(out=out, **fields), progress)


@pytest.mark.parametrize("call, said", [
    (_pipeline("render", "render", "RenderConfig", _one_event, latents=["a.safetensors"],
               methods=["pixar"]), "render: progress= is called as progress(done, total, text)"),
    (_pipeline("calibrate", "calibrate", "CalibrateConfig", _one_event, images=["a.jpg"],
               calibrator="alpha", encoder="e4e", generator="stylegan2"),
     "calibrate: progress= is called as progress(done, total, text)"),
    (_pipeline("align_batch", "align", "AlignConfig", _one_event, images=["a.jpg"]),
     "align: progress= is called as progress(done, total, text)"),
    (_pipeline("demo", "run_demo", "DemoConfig", _done_total_text),
     "run_demo: progress= is called with one DemoProgress"),
    (_pipeline("reproduce.tables", "run_thesis_tables", "ThesisTablesConfig", _done_total_text),
     "run_thesis_tables: progress= is called with one TablesProgress"),
    (_pipeline("analyze.latents", "run_latents", "LatentsConfig", _done_total_text,
               encoders=["e4e"], generator="stylegan2", images=["a.jpg"]),
     "run_latents: progress must be a LatentsProgress"),
])
def test_a_progress_of_another_shape_is_refused_before_anything_runs(call, said,
                                                                     tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(stylebridge.StylebridgeError) as info:
        call(out)
    assert str(info.value).startswith(said)
    assert not out.exists()


@pytest.mark.parametrize("module, config", [
    ("adapt", lambda out: AdaptConfig(images=[out.parent / "a.jpg"], encoder="e4e",
                                      generator="stylegan2", out=out, methods=["pixar"])),
    ("invert", lambda out: InvertConfig(images=[out.parent / "a.jpg"], encoder="e4e",
                                        generator="stylegan2", out=out)),
])
def test_adapt_and_invert_take_ensure_weights(module: str, config, tmp_path: Path) -> None:
    import importlib

    (tmp_path / "a.jpg").write_bytes(b"")
    seen: list[list[tuple[str, str, str]]] = []

    class Asked(Exception):
        pass

    def ensure(requests) -> None:
        seen.append(list(requests))
        raise Asked

    run = getattr(importlib.import_module(f"stylebridge.pipelines.{module}"), module)
    with pytest.raises(Asked):
        run(config(tmp_path / "out"), ensure_weights=ensure)
    assert ("generator", "stylegan2", "--generator") in seen[0]
    assert ("encoder", "e4e", "--encoder") in seen[0]


def test_a_numpy_array_of_file_names_is_a_list_of_paths() -> None:
    """`df["path"].values`: strings, not a picture (it was taken before the type checks)."""
    config = InvertConfig(images=np.array(["a.jpg", "b.jpg"]), **INVERT)
    assert config.images == ["a.jpg", "b.jpg"] and all(type(p) is str for p in config.images)


def test_load_photo_reads_a_uint8_tensor_as_0_to_255(astronaut) -> None:
    """`torchvision.io.read_image` gives uint8 [3, H, W]: it was clamped to [0, 1] first (a
    white picture), silently."""
    rgb, path = astronaut
    u8 = torch.from_numpy(rgb).permute(2, 0, 1).contiguous()
    assert torch.equal(stylebridge.load_photo(u8, align=False, size=64),
                       stylebridge.load_photo(path, align=False, size=64))


@pytest.mark.parametrize("picture, said", [
    (torch.zeros(64, 64, 3), "load_photo: expected an image tensor [3, H, W], got [64, 64, 3]"),
    (np.zeros((3, 64, 64)), "load_photo: expected an image array [H, W] or [H, W, 3|4], got "
                            "[3, 64, 64]"),
    (np.zeros((0, 0, 3)), "load_photo: expected an image array [H, W] or [H, W, 3|4], got "
                          "[0, 0, 3]"),
    (torch.zeros(3, 8, 8, dtype=torch.int32), "load_photo: expected a float tensor in [0, 1] "
                                              "or a uint8 one, got torch.int32"),
])
def test_load_photo_names_a_picture_of_the_wrong_layout(picture, said) -> None:
    from stylebridge.errors import InputValueError

    with pytest.raises(InputValueError) as info:
        stylebridge.load_photo(picture, align=False, size=8)
    assert str(info.value) == said and isinstance(info.value, ValueError)


def test_fetch_weights_takes_a_list_too() -> None:
    with pytest.raises(InputTypeError, match=r"^fetch_weights: expected entry names \(str\), "
                                             r"got int$"):
        stylebridge.fetch_weights(["e4e-ffhq", 3])


def test_run_latents_takes_a_progress_object_with_the_methods(tmp_path: Path) -> None:
    """Duck typing: an object with LatentsProgress's methods, not a subclass, is taken (it
    was before); one without them is refused, naming what it lacks."""
    from stylebridge.pipelines.analyze.latents import LatentsConfig, run_latents

    class Duck:
        def random_inputs(self, *a, **k): ...
        def progress(self, *a): ...
        def stop(self): ...
        def note(self, text): ...

    config = LatentsConfig(encoders=["e4e"], generator="stylegan2", images=[tmp_path / "none"],
                           out=tmp_path / "out")
    with pytest.raises(stylebridge.StylebridgeError) as info:  # past the progress check
        run_latents(config, Duck())
    assert "progress" not in str(info.value)
    with pytest.raises(InputTypeError, match=r"got Quack \(no progress\(\)\)$"):
        class Quack(Duck):
            progress = None
        run_latents(config, Quack())
