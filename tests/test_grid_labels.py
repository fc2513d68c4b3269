"""What the pictures of tiles say: column labels are whole words (``tiny-sketch@0.5``, never
``tiny-…`` / ``[RAND OM WEIG``), two outputs never read alike, every tile of ``generate`` names
its seed, sample grids of training runs label their columns and rows and carry their red
notice whole, and the font draws its spaces (``no coarse``, not ``nocoarse``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image, ImageDraw

from stylebridge.core import images
from stylebridge.core import labels as label_code

NOTICE_WORDS = {"[RANDOM", "WEIGHTS]"}


@pytest.fixture(scope="module")
def preset(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The tiny random preset (32 px generator, e4e, FSE, two domains, three photos, CLIP)."""
    from stylebridge.pipelines.presets import build_tiny_preset

    return build_tiny_preset(tmp_path_factory.mktemp("grid_labels") / "preset")


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any, Any]]:
    """Every text drawn on a picture: ``(text, fill, font)``."""
    seen: list[tuple[str, Any, Any]] = []
    original = ImageDraw.ImageDraw.text

    def spy(self: ImageDraw.ImageDraw, xy: Any, text: str, *args: Any, **kw: Any) -> Any:
        seen.append((text, kw.get("fill", args[0] if args else None), kw.get("font")))
        return original(self, xy, text, *args, **kw)

    monkeypatch.setattr(ImageDraw.ImageDraw, "text", spy)
    return seen


def _words(seen: list[tuple[str, Any, Any]], fill: str = "black") -> list[str]:
    return [w for text, colour, _ in seen if colour == fill for w in text.split()]


def _cli(*args: str) -> None:
    from stylebridge.cli.main import main

    assert main([*args, "--device", "cpu"]) == 0


def _whole(seen: list[tuple[str, Any, Any]], names: list[str], allowed: set[str]) -> None:
    """Each of ``names`` is drawn as one whole word, and nothing else is drawn in black but
    the words of ``allowed`` (no ``tiny-…``, ``[RAND``, ``sampl``, ``invers``)."""
    words = _words(seen)
    missing = [name for name in names if name not in words]
    assert not missing, (missing, words)
    stray = set(words) - set(names) - allowed
    assert not stray, stray


def test_a_small_tile_grows_until_no_label_word_is_broken(drawn: list) -> None:
    """32 px tiles with adapt's labels: every word whole, every column told apart."""
    labels = ["input", "inversion: fse", "tiny-pixar@0.5 [RANDOM WEIGHTS]",
              "tiny-pixar [RANDOM WEIGHTS]", "tiny-sketch@0.5 [RANDOM WEIGHTS]",
              "tiny-sketch [RANDOM WEIGHTS]"]
    tile = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    grid = images.labelled_grid([[tile] * 6], labels, row_labels=["photo0.png"])
    _whole(drawn, ["tiny-pixar@0.5", "tiny-pixar", "tiny-sketch@0.5", "tiny-sketch", "input",
                   "photo0.png"], {"inversion:", "fse", *NOTICE_WORDS})
    assert grid.shape[-1] > 6 * 64
    # the tiles are enlarged by a whole factor (nearest): their pixels are the same
    grid = images.labelled_grid([[tile] * 6], labels)
    size = (grid.shape[-1] - 2) // 6 - 2
    assert grid.shape[-1] == 6 * (size + 2) + 2 and size % 32 == 0 and size > 32
    enlarged = torch.nn.functional.interpolate(tile[None], scale_factor=size // 32)[0]
    corner = grid[:, -2 - size:-2, -2 - size:-2]
    assert torch.equal(corner, (enlarged * 255).round() / 255)
    # labels cut to fit are cut between words, never inside one
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines = label_code._fit(probe, "a watercolor portrait painting [RANDOM WEIGHTS]", 126, 2)
    assert lines[-1] == "[RANDOM WEIGHTS]" and lines[0].removesuffix("…") in {
        "a", "a watercolor", "a watercolor portrait"}, lines


def test_adapt_render_invert_generate_grids_show_whole_distinct_labels(
        preset: Any, tmp_path: Path, drawn: list) -> None:
    p = preset
    domains = [str(p.domains / "tiny-pixar.safetensors"), str(p.domains / "tiny-sketch.safetensors")]
    common = ["-g", str(p.generator)]
    _cli("adapt", "-e", f"fse:{p.fse}", *common, "-m", domains[0], "-m", domains[1],
         "--strength", "0.5,1", "--no-align", "--save-latents", str(p.images),
         "--out", str(tmp_path / "ad"))
    rows = ["photo0.png", "photo1.png", "photo2.png"]
    _whole(drawn, ["tiny-pixar@0.5", "tiny-pixar", "tiny-sketch@0.5", "tiny-sketch", "input",
                   *rows], {"inversion:", "fse", *NOTICE_WORDS})
    drawn.clear()
    _cli("render", *sorted(str(f) for f in (tmp_path / "ad").glob("*.safetensors")), *common,
         "-m", domains[1], "--strength", "0.5,1,1.5", "--out", str(tmp_path / "r"))
    # three strengths, three different headers (they read `tiny-…` three times)
    _whole(drawn, ["tiny-sketch@0.5", "tiny-sketch", "tiny-sketch@1.5", "inversion",
                   "photo0", "photo1", "photo2"], NOTICE_WORDS)
    drawn.clear()
    _cli("invert", "-e", f"e4e:{p.e4e}", *common, "--no-align", str(p.images),
         "--out", str(tmp_path / "i"))
    _whole(drawn, ["input", "inversion:", "e4e", *rows], NOTICE_WORDS)
    drawn.clear()
    _cli("generate", *common, "-m", domains[0], "--seeds", "0-1", "--out", str(tmp_path / "g"))
    _whole(drawn, ["sample", "tiny-pixar", "seed"], {"0", "1", *NOTICE_WORDS})
    # small tiles are enlarged to 128 px so the labels are readable
    with Image.open(tmp_path / "g" / "grid.png") as grid:
        assert grid.height > 2 * 128


def test_generate_without_domains_labels_every_tile_with_its_seed(
        preset: Any, tmp_path: Path, drawn: list) -> None:
    """``generate`` without ``-m`` drew six tiles under a blank header strip."""
    _cli("generate", "-g", str(preset.generator), "--seeds", "0-5", "--out", str(tmp_path / "g"))
    black = [text for text, colour, _ in drawn if colour == "black"]
    assert sorted(black) == [f"seed {i}" for i in range(6)]


def test_train_domain_samples_label_their_columns_and_say_the_whole_notice_in_red(
        preset: Any, tmp_path: Path, drawn: list) -> None:
    """The sample grid's notice read ``RANDOM CLIP WEIGHTS -`` in black (the rest cut), named
    no random generator, and source | adapted were unlabelled."""
    _cli("train", "domain", "--text", "a sketch", "-g", str(preset.generator),
         "--clip", "tiny-vit-p16", "--clip-config", str(preset.clip_config),
         "--allow-random-clip", "--steps", "2", "--sample-every", "2",
         "--out", str(tmp_path / "s.safetensors"))
    assert {"source", "adapted"} <= set(_words(drawn))
    red = " ".join(_words(drawn, "red"))
    assert red.startswith("RANDOM WEIGHTS:") and red.endswith("NOT A TRAINED DOMAIN"), red
    assert "GENERATOR" in red and "CLIP" in red
    assert not [text for text, colour, _ in drawn if "RANDOM" in text and colour != "red"]


def test_featureshift_samples_name_each_row_and_scale_the_type(
        preset: Any, tmp_path: Path, drawn: list) -> None:
    """Rows said nothing of their photo or domain; captions were 10 px on a 1292 px picture."""
    p = preset
    data = tmp_path / "fsd"
    _cli("featureshift", "build-dataset", "--encoder", f"fse:{p.fse}", "--guide",
         f"e4e:{p.e4e}", "-g", str(p.generator), "--images", str(p.images), "--domains",
         f"{p.domains / 'tiny-pixar.safetensors'},{p.domains / 'tiny-sketch.safetensors'}",
         "--layer", "3", "--out", str(data))
    drawn.clear()
    _cli("train", "featureshift", "--data", str(data), "-g", str(p.generator), "--out",
         str(tmp_path / "run"), "--steps", "1", "--pretrain-inversion-steps", "0", "--batch", "2",
         "--sample-every", "1", "--loss", "mse:1", "--inversion-loss", "mse:1",
         "--adversarial", "0")
    words = _words(drawn)
    for name in ("photo0.png", "photo1.png", "photo2.png", "tiny-pixar", "tiny-sketch"):
        assert name in words, words
    with Image.open(tmp_path / "run" / "samples" / "step_0000001.png") as grid:
        width = grid.width
    sizes = {font.size for _, _, font in drawn}
    assert min(sizes) >= width // 100, (sizes, width)  # 256 px tiles: 16 px type


def test_the_label_font_draws_its_spaces_and_grows_with_the_tile() -> None:
    """PIL's 10 px font drew ``no coarse`` as ``nocoarse`` (a 1 px gap)."""
    def gap(tile: int) -> tuple[int, int]:
        grid = images.labelled_grid([[torch.ones(3, tile, tile)]], ["no coarse"])
        ink = (grid[:, :-tile - 4].min(dim=0).values < 0.5)
        columns = ink.any(dim=0).tolist()
        first, last = columns.index(True), len(columns) - columns[::-1].index(True)
        runs, run = [], 0
        for dark in columns[first:last]:
            run = 0 if dark else run + 1
            runs.append(run)
        return max(runs), int(ink.any(dim=1).sum())

    space, height = gap(128)
    assert space >= 4, space
    space_1024, height_1024 = gap(1024)
    assert space_1024 >= 4 * space - 4 and height_1024 >= 4 * height, (space_1024, height_1024)


def test_the_demo_names_its_featureshift_row_by_what_it_shows() -> None:
    """The row read ``FeatureShift on e4e`` above FSE's inversion: FeatureShift shifts FSE's
    features, with e4e's latents as its guide."""
    from stylebridge.pipelines import demo

    assert "FSE" in demo.FEATURESHIFT_ROW and "e4e" in demo.FEATURESHIFT_ROW


def test_a_label_with_control_characters_is_drawn_escaped() -> None:
    """A photo named with a newline stopped `invert`/`adapt` at the grid (Pillow: "can't
    measure length of multiline text") after its pictures were written."""
    from stylebridge.core.labels import labelled_grid
    from stylebridge.errors import printable

    assert printable("new\nline\t\x1b[2J é") == "new\\nline\\t\\x1b[2J é"
    tile = torch.zeros(3, 16, 16)
    grid = labelled_grid([[tile, tile]], ["photo", "new\nline"], row_labels=["a\rb"],
                         notice="RANDOM WEIGHTS:\x07 x")
    same = labelled_grid([[tile, tile]], ["photo", "new\\nline"], row_labels=["a\\rb"],
                         notice="RANDOM WEIGHTS:\\x07 x")
    assert torch.equal(grid, same)
