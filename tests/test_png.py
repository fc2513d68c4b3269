"""The PNGs stylebridge writes: lossless, at the zlib level ``core.images`` states.

zlib records a coarse level in the second byte of its stream (FLEVEL, bits 6-7: 0 for levels
0-1, 1 for 2-5, 2 for 6, 3 for 7-9), so the level a file was written at can be read back from
its first IDAT chunk.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylebridge.core.images import PNG_COMPRESS_LEVEL, save_png


def _zlib_flevel(path: Path) -> int:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos = 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            return data[pos + 8 + 1] >> 6
        pos += 12 + length
    raise AssertionError("no IDAT chunk")


def test_save_png_is_lossless_at_the_stated_level(tmp_path: Path) -> None:
    assert 2 <= PNG_COMPRESS_LEVEL <= 5  # the FLEVEL 1 band checked below
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, 40, 24, generator=g)
    path = save_png(tmp_path / "x.png", image)
    assert _zlib_flevel(path) == 1
    back = np.asarray(Image.open(path))
    expected = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert back.shape == (40, 24, 3) and np.array_equal(back, expected)
    Image.fromarray(expected).save(tmp_path / "pil.png")  # Pillow's default level 6
    assert _zlib_flevel(tmp_path / "pil.png") == 2


def test_grid_labels_that_would_read_alike_get_more_lines_and_notices_are_whole() -> None:
    """`tiny-pixar@0.5` / `@1.5` in a 54 px tile both read `tiny-pi` on one line: the tile is
    enlarged (a whole factor) until each word is whole, never broken; distinct short labels
    keep one line; a long notice is not cut."""
    from PIL import ImageDraw

    from stylebridge.core.labels import LINE, _wrap, label_font, labelled_grid

    tile = torch.zeros(3, 54, 54)
    distinct = labelled_grid([[tile, tile]], ["input", "photo"])
    alike = labelled_grid([[tile, tile]], ["tiny-pixar@0.5", "tiny-pixar@1.5"])
    assert distinct.shape[1] == 54 + 2 * 2 + LINE + 4  # one label line, 2 px above and below
    assert alike.shape[1] == 108 + 2 * 2 + LINE + 4  # 108 px tiles: each label on one line
    notice = "RANDOM WEIGHTS: not a trained model (" + ", ".join(
        f"domain number{i}" for i in range(12)) + ")"
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    width = 2 * 54 + 3 * 2 - 8
    lines = _wrap(probe, notice.upper(), width, label_font(notice.upper()), split=True)
    assert len(lines) > 4 and " ".join(lines) == notice.upper()
    with_notice = labelled_grid([[tile, tile]], ["input", "photo"], notice=notice)
    assert with_notice.shape[1] == distinct.shape[1] + LINE * len(lines) + 4


def test_grid_labels_outside_ascii_are_drawn_not_boxed() -> None:
    """PIL's built-in font has ASCII only: a domain named ``café`` or ``пиксар`` was drawn as
    boxes.  Labels are drawn with DejaVu Sans (it ships with matplotlib; PIL's own 10 px font
    also lost its spaces), other fonts only for characters it lacks; the grid keeps its
    geometry."""
    from PIL import ImageDraw, ImageFont

    from stylebridge.core.images import LINE, label_font, labelled_grid

    tile = torch.zeros(3, 54, 54)

    def header(label: str) -> torch.Tensor:
        grid = labelled_grid([[tile]], [label])
        assert grid.shape[1] == 54 + 2 * 2 + LINE + 4  # one line, as an ASCII label
        return grid[:, :LINE + 4]

    box = header("\uffff")  # no character: every font draws its box
    for label in ("é", "п", "ж", "ß"):
        assert not torch.equal(header(label), box), label
    assert not torch.equal(header("п"), header("ж"))
    dejavu = label_font("random domain A")
    assert Path(dejavu.path).name == "DejaVuSans.ttf" and label_font("café") is dejavu
    # ASCII: exactly what DejaVu Sans draws at 12 px, 2 px in from the tile's corner
    ref = Image.new("RGB", (54 + 4, LINE + 4), "white")
    ImageDraw.Draw(ref).text((4, 2), "input", fill="black",
                             font=ImageFont.truetype(dejavu.path, 12))
    expected = torch.from_numpy(np.asarray(ref).copy()).permute(2, 0, 1).float() / 255
    assert torch.equal(header("input"), expected)
    # a red notice with a Cyrillic name is drawn too, not boxed
    with_name = labelled_grid([[tile]], ["a"], notice="random: домен")
    with_box = labelled_grid([[tile]], ["a"], notice="random: \uffff\uffff\uffff\uffff")
    assert not torch.equal(with_name, with_box)


def test_grid_labels_grow_with_the_tile_so_a_shrunk_1024_px_grid_stays_readable() -> None:
    """Captions were 10 px type whatever the tile: a grid of 1024 px tiles shown at a third of
    its width (the web app, a page) had 3 px captions.  From 192 px tiles the type, lines,
    row-label column and notice grow with the tile (1/16 of it: x4 at 768 px, x5.3 at 1024);
    smaller grids keep 12 px type (the tests above)."""
    from stylebridge.core.images import LABEL_PX, LINE, label_px, labelled_grid

    def text_rows(strip: torch.Tensor) -> int:
        """How many pixel rows of ``strip`` hold dark (black) text."""
        return int((strip.min(dim=0).values < 0.5).any(dim=1).sum())

    for size in (256, 512, 1024):
        px = label_px(size)
        scale = px / LABEL_PX
        tile = torch.ones(3, size, size)
        grid = labelled_grid([[tile, tile]], ["photo", "inversion (fse)"],
                             notice="random weights: generator", row_labels=["astronaut"])
        header = notice = px * LINE // LABEL_PX + 2 * (px // 6)
        assert grid.shape[1] == header + size + 2 * 2 + notice, size
        small_text = text_rows(labelled_grid([[tile[:, :64, :64]]], ["photo"])[:, :LINE + 4])
        assert text_rows(grid[:, :header]) >= 0.85 * scale * small_text, size  # hinting
        red = (grid[0] > 0.5) & (grid[1] < 0.5)  # the notice is red, under the tiles
        assert red[header + size + 4:].any(dim=1).sum() >= scale * 6, size
        # the row label sits in a column left of the tiles, as wide as its text needs
        left = grid.shape[2] - (2 * size + 3 * 2)
        assert left > 0 and text_rows(grid[:, header:header + size, :left]) >= scale * 6, size


def test_a_cut_label_keeps_its_random_weights_tag() -> None:
    """`a watercolor portrait painting [RANDOM WEIGHTS]` in two lines of a 128 px tile showed
    `... [RANDOM` and dropped `WEIGHTS]`: the name is shortened (with an ellipsis) instead."""
    from PIL import ImageDraw

    from stylebridge.core.labels import _fit, label_font

    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    for name in ("a watercolor portrait painting", "x" * 300, "пиксар " * 12):
        lines = _fit(draw, f"{name} [RANDOM WEIGHTS]", 126, 2)
        assert len(lines) == 2 and lines[-1] == "[RANDOM WEIGHTS]", lines
        assert lines[0].endswith("…") and draw.textlength(lines[0], font=label_font(name)) <= 126
    # the tag that fits a line is not split across two (`short [RANDOM` / `WEIGHTS]`)
    assert _fit(draw, "short [RANDOM WEIGHTS]", 126, 2) == ["short", "[RANDOM WEIGHTS]"]
    untagged = _fit(draw, "a label with no tag that needs three lines of this tile", 126, 2)
    assert len(untagged) == 2 and untagged[-1].endswith("…")


def test_save_image_writes_the_format_of_its_suffix_and_checks_the_range(tmp_path: Path) -> None:
    """`save_image(x, "out.jpg")` wrote PNG bytes; a [-1, 1] image was clamped silently."""
    import stylebridge
    from stylebridge.errors import StylebridgeError

    x = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))
    for name, fmt in (("a.png", "PNG"), ("a.jpg", "JPEG"), ("a.webp", "WEBP")):
        with Image.open(stylebridge.save_image(x, tmp_path / name)) as img:
            assert img.format == fmt and img.size == (16, 16)
    with Image.open(tmp_path / "a.png") as img:  # lossless: the exact 8-bit values
        assert np.array_equal(np.asarray(img), (x.permute(1, 2, 0) * 255).round().byte().numpy())
    with pytest.raises(StylebridgeError, match=r"values span \[-0.998, 1\], expected \[0, 1\]"):
        stylebridge.save_image(x * 2 - 1, tmp_path / "b.png")
    with pytest.raises(StylebridgeError, match=r"expected a float tensor in \[0, 1\], got "
                                               r"torch.uint8"):
        stylebridge.save_image((x * 255).byte(), tmp_path / "b.png")
    with pytest.raises(StylebridgeError, match=r"unknown image suffix"):
        stylebridge.save_image(x, tmp_path / "b.gif2")
    assert not (tmp_path / "b.png").exists()
