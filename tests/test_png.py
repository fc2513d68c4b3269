"""The PNGs stylebridge writes: lossless, at the zlib level ``core.images`` states.

zlib records a coarse level in the second byte of its stream (FLEVEL, bits 6-7: 0 for levels
0-1, 1 for 2-5, 2 for 6, 3 for 7-9), so the level a file was written at can be read back from
its first IDAT chunk.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
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
