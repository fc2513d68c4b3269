"""The metric-reference review: our metrics against scikit-image on the files as they are.

1. A 16-bit file was divided by 255 when no value was above 255, else by 65535, file by
   file: the two PNGs of one pair landed on scales 257 times apart (PSNR 5.05 dB where
   scikit-image on /65535 gives 92.7 dB).  The depth the file declares decides now.
2. A 16-bit RGB(A) PNG or TIFF was cut to its high byte (Pillow's reading); all 16 bits now.
3. The PSNR cap (58.92 dB) is said in ``eval --help``, README and ``plugins psnr`` (which
   printed ``:data:`PSNR_CAP```).
4. ``eval`` resized a prediction of another size than its target and said so on the console
   only: the JSON's ``notes`` were empty.  5. ``lpips``' ``size=`` was not in ``eval --help``.

Expected values come from the numbers written into the files (numpy), from tifffile's and
scikit-image's own readings and metrics, or by hand; never from stylebridge.
"""

from __future__ import annotations

import csv
import json
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylebridge.cli.main import main
from stylebridge.core import images

README = Path(__file__).resolve().parent.parent / "README.md"


def _words(text: str) -> str:
    return " ".join(text.split())


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png16(path: Path, values: np.ndarray, filt: int = 1) -> Path:
    """A 16-bit PNG written by hand (PNG spec: big-endian samples, one filter byte a row:
    0 none, 1 Sub, 2 Up) from ``values`` ``uint16 [H, W, C]``, C = 1 (grey), 3 or 4."""
    h, w, c = values.shape
    raw = values.astype(">u2").tobytes()
    stride, bpp = w * c * 2, c * 2
    rows, prev = [], bytes(stride)
    for y in range(h):
        row = raw[y * stride:(y + 1) * stride]
        left = bytes(bpp) + row[:-bpp]
        ref = left if filt == 1 else prev if filt == 2 else bytes(stride)
        rows.append(bytes([filt]) + bytes((a - b) % 256 for a, b in zip(row, ref, strict=True)))
        prev = row
    ihdr = struct.pack(">IIBBBBB", w, h, 16, {1: 0, 3: 2, 4: 6}[c], 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
                     + _chunk(b"IDAT", zlib.compress(b"".join(rows))) + _chunk(b"IEND", b""))
    return path


# -- 1: the declared depth decides --------------------------------------------------------------


def test_the_qa_pair_of_dark_16_bit_pngs_scores_as_scikit_image_on_65535(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Values 0-250 in both, one target pixel at 300: both files are read /65535, so the
    MSE is scikit-image's on /65535 (the old reading: 5.05 dB, the pred /255) and the PSNR,
    88.8 dB by scikit-image, is above the cap: 10 log10(12 · 255²)."""
    from skimage.metrics import mean_squared_error, peak_signal_noise_ratio

    values = (np.arange(64 * 64) % 251).astype(np.uint16).reshape(64, 64)
    target = values.copy()
    target[10, 10] = 300
    Image.fromarray(values).save(tmp_path / "a.png")
    (tmp_path / "t").mkdir()
    Image.fromarray(target).save(tmp_path / "t" / "a.png")
    assert Image.open(tmp_path / "a.png").mode == "I;16"
    read = images.load_image(tmp_path / "a.png")
    assert torch.allclose(read[0].double(), torch.from_numpy(values / 65535), atol=1e-8)
    out = tmp_path / "m.json"
    assert main(["eval", "-m", "psnr", "-m", "mse", "--pred", str(tmp_path / "a.png"),
                 "--target", str(tmp_path / "t" / "a.png"), "--json", str(out)]) == 0
    capsys.readouterr()
    mean = json.loads(out.read_text())["mean"]
    cap = 10 * math.log10(12 * 255**2)
    assert peak_signal_noise_ratio(target / 65535, values / 65535, data_range=1) > cap + 25
    assert mean["mse"] == pytest.approx(mean_squared_error(target / 65535, values / 65535),
                                        rel=1e-5)
    assert mean["psnr"] == pytest.approx(cap, abs=1e-6)


def test_16_bit_tiff_and_pgm_are_read_by_their_full_scale(tmp_path: Path) -> None:
    """A dark 16-bit TIFF (BitsPerSample 16) is divided by 65535; a PGM with maxval 1023,
    which Pillow scales to 0..65535 (3 → 192), reads as value / 1023; a 16-bit PGM (maxval
    65535) with no value above 255 by 65535 too."""
    tifffile = pytest.importorskip("tifffile")
    dark = np.array([[0, 7, 100, 255]], np.uint16)
    tifffile.imwrite(tmp_path / "dark.tif", dark)
    assert torch.allclose(images.load_image(tmp_path / "dark.tif")[0].double(),
                          torch.from_numpy(dark / 65535), atol=1e-9)
    ten = np.array([0, 1, 2, 3], np.uint16)
    (tmp_path / "ten.pgm").write_bytes(b"P5\n4 1\n1023\n" + ten.astype(">u2").tobytes())
    read = images.load_image(tmp_path / "ten.pgm")[0, 0].double().numpy()
    np.testing.assert_allclose(read, ten / 1023, atol=0.5 / 65535)
    (tmp_path / "full.pgm").write_bytes(b"P5\n4 1\n65535\n" + dark.astype(">u2").tobytes())
    np.testing.assert_allclose(images.load_image(tmp_path / "full.pgm")[0].double().numpy(),
                               dark / 65535, atol=1e-9)


def test_a_32_bit_tiff_is_read_by_its_type_whatever_its_values(tmp_path: Path) -> None:
    """Pillow writes int32 as a signed 32-bit TIFF: small values are divided by 2**31 - 1,
    as large ones were (they were divided by 255 or 65535 by their range)."""
    values = np.array([[0, 100, 250, 60000]], np.int32)
    Image.fromarray(values).save(tmp_path / "small.tiff")
    expected = (values / (2**31 - 1)).astype(np.float32)
    assert torch.equal(images.load_image(tmp_path / "small.tiff")[0], torch.from_numpy(expected))


def test_the_value_heuristic_is_kept_where_nothing_declares_the_depth() -> None:
    """A mode-I image made in Python (no file, no format): values up to 255 by 255, up to
    65535 by 65535, as before."""
    for values, scale in ((np.array([[0, 51, 255]], np.int32), 255),
                          (np.array([[0, 300, 65535]], np.int32), 65535)):
        image = Image.fromarray(values)
        assert image.format is None and images.declared_type(image) is None
        np.testing.assert_array_equal(images.integer_unit(image, np.asarray(image)),
                                      values / scale)


# -- 2: 16-bit colour ---------------------------------------------------------------------------


@pytest.mark.parametrize("filt", [0, 1, 2])
def test_16_bit_rgb_and_rgba_pngs_keep_all_16_bits(tmp_path: Path, filt: int) -> None:
    rng = np.random.default_rng(filt)
    rgb = rng.integers(0, 65536, (5, 7, 3), dtype=np.uint16)
    read = images.load_image(write_png16(tmp_path / "rgb.png", rgb, filt))
    np.testing.assert_allclose(read.double().numpy(), np.moveaxis(rgb, 2, 0) / 65535, atol=1e-7)
    rgba = rng.integers(0, 65536, (5, 7, 4), dtype=np.uint16)
    read = images.load_image(write_png16(tmp_path / "rgba.png", rgba, filt))
    unit = np.moveaxis(rgba, 2, 0) / 65535
    over_white = unit[:3] * unit[3] + (1 - unit[3])  # alpha over white
    np.testing.assert_allclose(read.double().numpy(), over_white, atol=1e-6)


@pytest.mark.parametrize("options", [{}, {"byteorder": ">"}, {"compression": "zlib"},
                                     {"tile": (16, 16)}])
def test_16_bit_rgb_tiffs_equal_tifffiles_reading(tmp_path: Path, options: dict) -> None:
    tifffile = pytest.importorskip("tifffile")
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 65536, (32, 48, 3), dtype=np.uint16)
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, rgb, photometric="rgb", **options)
    reference = tifffile.imread(path)
    read = images.load_image(path)
    np.testing.assert_allclose(read.double().numpy(), np.moveaxis(reference, 2, 0) / 65535,
                               atol=1e-7)


def test_an_8_bit_png_is_read_as_before(tmp_path: Path) -> None:
    rgb = np.random.default_rng(4).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    assert torch.equal(images.load_image(tmp_path / "rgb.png"),
                       torch.from_numpy(np.moveaxis(rgb, 2, 0).astype(np.float32)) / 255)


# -- 3-5: what eval says ------------------------------------------------------------------------


def _eval_help(capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    return _words(capsys.readouterr().out)


def test_eval_help_states_the_psnr_cap_the_resize_filter_and_lpips_size(
        capsys: pytest.CaptureFixture[str]) -> None:
    text = _eval_help(capsys)
    cap = 10 * math.log10(12 * 255**2)  # 58.9226...
    assert f"psnr (dB, capped at {cap:.2f}:" in text
    assert "(1/255)²/12" in text
    assert "lpips[:net=alex|vgg,backbone=PATH,size=N]" in text
    assert "torch bilinear (antialias=True, align_corners=False" in text


def test_plugins_psnr_says_the_cap_in_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "psnr"]) == 0
    out = _words(capsys.readouterr().out)
    assert "capped at 58.92 dB" in out and ":data:" not in out and "PSNR_CAP" not in out


def test_readme_states_the_cap_and_the_depth_rule() -> None:
    text = _words(README.read_text(encoding="utf-8"))
    assert "`psnr` is capped at 58.92 dB" in text and "(1/255)²/12" in text
    assert "so a dark 16-bit file stays dark" in text
    assert "as before (65535 is white, or 255 when no value is above it)" not in text


def test_the_resize_of_a_prediction_is_in_the_json_and_csv_notes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(5)
    (tmp_path / "p").mkdir()
    (tmp_path / "t").mkdir()
    for name, size in (("a", 32), ("b", 16)):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
            tmp_path / "p" / f"{name}.png")
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
            tmp_path / "t" / f"{name}.png")
    out, table = tmp_path / "m.json", tmp_path / "m.csv"
    assert main(["eval", "-m", "mse", "--pred", str(tmp_path / "p"), "--target",
                 str(tmp_path / "t"), "--json", str(out), "--csv", str(table)]) == 0
    assert "torch bilinear" in capsys.readouterr().err  # the metric's note: on stderr
    doc = json.loads(out.read_text())
    assert len(doc["notes"]) == 1
    note = doc["notes"][0]
    assert note.startswith("1 of 2 prediction(s) differ in size from their target")
    assert "a (32×32 → 16×16)" in note and "torch bilinear (antialias=True" in note
    rows = {row["name"]: row for row in doc["per_image"]}
    assert rows["a"]["resized"] == "32×32 → 16×16" and "resized" not in rows["b"]
    with open(table, newline="", encoding="utf-8") as fh:
        lines = list(csv.reader(fh))
    column = lines[0].index("resized")
    assert {line[0]: line[column] for line in lines[1:3]} == {"a": "32×32 → 16×16", "b": ""}


def test_info_says_how_each_file_s_samples_are_read(tmp_path: Path) -> None:
    """``stylebridge info FILE`` names the depth every command reads a file at."""
    import json
    import subprocess
    import sys

    rgb16 = write_png16(tmp_path / "rgb16.png", np.full((4, 5, 3), 40000, np.uint16))
    grey16 = tmp_path / "grey16.png"
    Image.fromarray(np.full((4, 5), 200, np.uint16)).save(grey16)
    rgba8 = tmp_path / "rgba8.png"
    Image.fromarray(np.zeros((4, 5, 4), np.uint8)).save(rgba8)
    expected = {rgb16: "16-bit RGB, read at 16 bits", grey16: "16-bit grey (÷ 65535)",
                rgba8: "8-bit RGBA (alpha over white)"}
    for path, words in expected.items():
        out = subprocess.run([sys.executable, "-m", "stylebridge", "info", str(path), "--json"],
                             capture_output=True, text=True, check=True).stdout
        assert json.loads(out)["samples"] == words, path
