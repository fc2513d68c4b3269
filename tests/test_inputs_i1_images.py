"""Defects 2-5 of the image-input review: what a file reads as, and how large.

2. A 32-bit integer TIFF was divided by 65535 and never clipped (values up to 32768): a
   metric refused the batch with no file named.  Integer images are now always read into
   ``[0, 1]``: values within 16 bits as before, values beyond by the file's sample type.
3. ``info`` opened pictures with Pillow's own bomb limit (DecompressionBombError, exit 1) and
   said "cannot read this PNG (... 'path')" for any file that is no image.
4. A 15000 × 15000 photo went through float copies of itself (6 GB); photos whose shorter
   side is 8192 px or more are now reduced by box averaging while still 8-bit.
5. GIFs were read when named but left out of folders without a word.

Expected values are written out from the file's own numbers (numpy), never from earlier runs.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylebridge.cli.main import main
from stylebridge.core.batch import BatchReport, expand_inputs, iter_images
from stylebridge.core.images import load_image
from stylebridge.errors import ImageError

# -- 2: integer images ------------------------------------------------------------------------


def test_a_32_bit_integer_tiff_reads_within_0_1_by_its_range(tmp_path: Path) -> None:
    """Pillow writes an int32 array as a signed 32-bit TIFF: divided by 2**31 - 1."""
    values = np.array([[0, 1000, 70000, 2**30], [2**31 - 1, 5, 65536, 123456789]], np.int32)
    path = tmp_path / "int_I.tiff"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode == "I"
    img = load_image(path)
    assert img.shape == (3, 2, 4) and img.dtype == torch.float32
    assert float(img.min()) >= 0.0 and float(img.max()) <= 1.0
    expected = torch.from_numpy((values / (2**31 - 1)).astype(np.float32))
    assert torch.equal(img[0], expected) and torch.equal(img[1], img[2])


def test_unsigned_and_signed_integer_tiffs(tmp_path: Path) -> None:
    """A uint32 TIFF (which Pillow keeps in int32, wrapped) reads by 2**32 - 1; a signed
    16-bit TIFF with negative values by 2**15 - 1, its negative values black."""
    tifffile = pytest.importorskip("tifffile")
    unsigned = np.array([[0, 1000, 2**31 + 5, 2**32 - 1]], np.uint32)
    tifffile.imwrite(tmp_path / "u32.tiff", unsigned)
    img = load_image(tmp_path / "u32.tiff")
    assert torch.equal(img[0], torch.from_numpy((unsigned / (2**32 - 1)).astype(np.float32)))
    signed = np.array([[-5, 0, 1000, 32767]], np.int16)
    tifffile.imwrite(tmp_path / "i16.tiff", signed)
    img = load_image(tmp_path / "i16.tiff")
    expected = np.clip(signed / (2**15 - 1), 0, 1).astype(np.float32)
    assert torch.equal(img[0], torch.from_numpy(expected))


def test_16_bit_files_keep_their_numbers_and_alignment_reads_mode_i_alike(tmp_path: Path) -> None:
    """16-bit PNG and TIFF: divided by 65535, the full scale their 16-bit depth declares,
    a dark file too (no value above 255: it was divided by 255, 256 times too bright); the
    alignment's conversion of an opened mode-I image (Python API) gives the same
    bytes as the file read by load_image (it divided a 32-bit image by 65535 and clipped)."""
    from stylebridge.pipelines.align import to_rgb_uint8

    ramp = np.arange(0, 65536, 4099, dtype=np.uint16).reshape(2, 8)
    dark = np.arange(0, 256, 16, dtype=np.uint16).reshape(2, 8)
    for name, values, scale in (("g.png", ramp, 65535), ("g.tiff", ramp, 65535),
                                ("dark.png", dark, 65535)):
        Image.fromarray(values).save(tmp_path / name)
        img = load_image(tmp_path / name)
        assert torch.equal(img[0], torch.from_numpy((values / scale).astype(np.float32))), name
    wide = np.array([[0, 70000, 2**31 - 1, 2**30]], np.int32)
    Image.fromarray(wide).save(tmp_path / "wide.tiff")
    with Image.open(tmp_path / "wide.tiff") as opened:
        rgb = to_rgb_uint8(opened)
    np.testing.assert_array_equal(rgb[..., 0], np.round(wide / (2**31 - 1) * 255).astype(np.uint8))


def test_adapt_batch_with_a_32_bit_tiff_finishes(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The QA run: `adapt --no-align --batch 1` over good.png, int_I.tiff, noise.png stopped
    with `mse: target values span [0, 3.498]`, exit 2, and did so again on --resume."""
    from stylebridge.pipelines.presets import build_tiny_preset

    preset = build_tiny_preset(tmp_path / "preset", n_images=2)
    photos = tmp_path / "imix"
    photos.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(photos / "good.png")
    Image.fromarray((rng.random((40, 40)) * 2**31).astype(np.int32)).save(photos / "int_I.tiff")
    Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(photos / "noise.png")
    domain = sorted((tmp_path / "preset" / "domains").glob("*.safetensors"))[0]
    code = main(["adapt", "-e", f"e4e:{preset.e4e}", "-g", str(preset.generator),
                 "--method", str(domain), "--no-align", "--batch", "1", str(photos),
                 "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    assert "3 done, 0 skipped" in captured.out


# -- 3: info ----------------------------------------------------------------------------------


def _png_header(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width × height`` (8-bit RGB) with next to no data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


def test_info_uses_the_documented_pixel_limit(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """15000 × 15000 (225 M pixels, under 268,435,456: invert reads it) is shown; 20000 ×
    20000 and a 70000 × 70000 bomb are refused in one line naming the file, exit 2."""
    big = _png_header(tmp_path / "big.png", 15000, 15000)
    assert main(["info", str(big), "--json"]) == 0
    assert '"width": 15000' in capsys.readouterr().out
    over = _png_header(tmp_path / "over.png", 20000, 20000)
    assert main(["info", str(over)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {over}: image is 20000×20000, larger than the 268,435,456 pixel limit")
    bomb = _png_header(tmp_path / "bomb.png", 70000, 70000)
    assert main(["info", str(bomb)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {bomb}: image has 4,900,000,000 pixels, larger than the 268,435,456 pixel "
        "limit")


def test_info_says_what_a_file_that_is_no_image_is(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    zero = tmp_path / "zero.png"
    zero.write_bytes(b"")
    text = tmp_path / "text.jpg"
    text.write_text("hello, not a photo\n")
    video = tmp_path / "clip.jpg"
    video.write_bytes(b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom" + b"\0" * 64)
    for path, reason in ((zero, "is empty (0 bytes)"), (text, "is a text file, not an image"),
                         (video, "is an MP4/QuickTime video, not an image")):
        assert main(["info", str(path)]) == 2
        assert capsys.readouterr().err.strip() == f"error: {path}: {reason}"
    jpeg = tmp_path / "photo.png"  # a JPEG named .png is said to be a JPEG
    Image.new("RGB", (6, 4)).save(jpeg, format="JPEG")
    assert main(["info", str(jpeg)]) == 0
    assert "6x4 JPEG" in capsys.readouterr().out


# -- 4: huge photos ---------------------------------------------------------------------------


def test_a_huge_photo_is_box_reduced_while_8_bit(tmp_path: Path) -> None:
    """Shorter side 8192 → reduced by 2 (each value the mean of a 2 × 2 block; blocks of
    one value here, so the mean is exact); a photo with a shorter side of 8191 is not."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (4096, 4096), dtype=np.uint8)
    path = tmp_path / "huge.png"
    Image.fromarray(np.kron(small, np.ones((2, 2), np.uint8))).save(path, compress_level=1)
    img = load_image(path)
    assert img.shape == (3, 4096, 4096)
    assert torch.equal(img[0], torch.from_numpy(small.astype(np.float32) / 255))
    assert torch.equal(img[0], img[2])
    narrow = tmp_path / "narrow.png"
    Image.fromarray(np.kron(small[:, :2], np.ones((2, 2), np.uint8))[:, :3]).save(narrow)
    assert load_image(narrow).shape == (3, 8192, 3)  # shorter side 3: read as it is


def test_huge_photo_blocks_are_averaged_and_turned_upright(tmp_path: Path) -> None:
    """An 8200 × 8192 photo with an EXIF rotation: reduced by 2 (each value within half a
    level of numpy's mean of its 2 × 2 block), then turned as the orientation says."""
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 256, (8192, 8200), dtype=np.uint8)
    image = Image.fromarray(arr)
    exif = image.getexif()
    exif[0x0112] = 6  # stored sideways: ROTATE_270 (a quarter turn clockwise) shows it upright
    path = tmp_path / "rot.png"
    image.save(path, exif=exif, compress_level=1)
    del image
    means = arr.reshape(4096, 2, 4100, 2).mean(axis=(1, 3)) / 255
    expected = np.rot90(means, k=-1)
    img = load_image(path)
    assert img.shape == (3, 4100, 4096)
    assert float(np.abs(img[0].numpy() - expected).max()) <= 0.5 / 255 + 1e-6
    assert torch.equal(img[0], img[1])


_PEAK = """
import sys
from stylebridge.core.images import load_image

def peak():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) * 1024

before = peak()
img = load_image(sys.argv[1])
print(tuple(img.shape), peak() - before)
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs /proc (Linux)")
def test_a_huge_photo_is_read_in_memory_in_proportion(tmp_path: Path) -> None:
    """An 8-bit grey 12288 × 12288 PNG (151 M pixels, 151 MB decoded): read as 4096 × 4096.
    Before, its float copies took ~2.5 GB above the imports; now under 0.6 GB."""
    path = tmp_path / "grey.png"
    Image.new("L", (12288, 12288), 77).save(path)
    proc = subprocess.run([sys.executable, "-c", _PEAK, str(path)], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    shape, grown = proc.stdout.split(") ")
    assert shape == "(3, 4096, 4096"
    assert int(grown) < 600 * 2**20, f"{int(grown) / 2**20:.0f} MB"


# -- 5: GIFs in folders -----------------------------------------------------------------------


def test_gifs_in_a_folder_are_read_as_when_named(tmp_path: Path) -> None:
    """A folder's GIFs are read, the first frame of an animated one, as a GIF named itself
    is; before, they were left out of the folder without a word."""
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(np.full((8, 8, 3), (1, 2, 3), np.uint8)).save(folder / "a.png")
    Image.fromarray(np.full((8, 8, 3), (200, 10, 10), np.uint8)).save(folder / "still.gif")
    frames = [Image.fromarray(np.full((8, 8, 3), c, np.uint8)) for c in ((10, 200, 10),
                                                                         (10, 10, 200))]
    frames[0].save(folder / "anim.GIF", save_all=True, append_images=frames[1:], duration=100)
    paths = expand_inputs([folder])
    assert [p.name for p in paths] == ["a.png", "anim.GIF", "still.gif"]
    report = BatchReport()
    read = {p.name: img for p, img in iter_images(paths, report)}
    assert not report.skipped
    assert read["still.gif"][:, 0, 0].mul(255).round().tolist() == [200, 10, 10]
    assert read["anim.GIF"][:, 0, 0].mul(255).round().tolist() == [10, 200, 10]
    for name in ("still.gif", "anim.GIF"):  # named itself: the same pixels
        assert torch.equal(load_image(folder / name), read[name])


def test_a_broken_gif_in_a_folder_is_skipped_and_named(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("RGB", (4, 4)).save(folder / "a.png")
    (folder / "broken.gif").write_text("GIF? no, a text file\n")
    report = BatchReport()
    assert [p.name for p, _ in iter_images(expand_inputs([folder]), report)] == ["a.png"]
    assert report.skipped == [(folder / "broken.gif", "is a text file, not an image")]
    with pytest.raises(ImageError, match="is a text file"):
        load_image(folder / "broken.gif")
