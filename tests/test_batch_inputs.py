"""Image folders with odd entries (issue 19, item 5): symlink loops, FIFOs and devices are
skipped and reported, not fatal and not silently dropped; a float32 TIFF in [0, 1] is read
by its value range."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylebridge.core.batch import BatchReport, expand_inputs, iter_images
from stylebridge.core.images import load_image
from stylebridge.errors import ImageError


def _png(path: Path, value: int) -> Path:
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "photos"
    d.mkdir()
    _png(d / "a.png", 10)
    _png(d / "b.png", 20)
    (d / "loop1.png").symlink_to(d / "loop2.png")
    (d / "loop2.png").symlink_to(d / "loop1.png")
    (d / "self").symlink_to(d / "self")          # a loop without an image suffix
    os.mkfifo(d / "pipe")
    (d / "notes.txt").write_text("not an image")   # a regular non-image file: ignored
    (d / "sub").mkdir()                            # folders are not descended into
    (d / "dangling.jpg").symlink_to(d / "gone.jpg")
    return d


def test_odd_entries_are_skipped_and_reported(folder: Path) -> None:
    paths = expand_inputs([folder])
    assert [p.name for p in paths] == ["a.png", "b.png", "dangling.jpg", "loop1.png",
                                       "loop2.png", "pipe", "self"]
    report = BatchReport()
    read = [p.name for p, _ in iter_images(paths, report)]
    assert read == ["a.png", "b.png"]
    reasons = {p.name: r for p, r in report.skipped}
    assert reasons == {"dangling.jpg": "is a broken symlink",
                       "loop1.png": "is a symlink loop", "loop2.png": "is a symlink loop",
                       "self": "is a symlink loop",
                       "pipe": "is not a regular file (a FIFO, socket or device?)"}


def test_a_loop_given_by_name_is_reported_not_fatal(folder: Path) -> None:
    paths = expand_inputs([folder / "loop1.png", folder / "a.png"])
    report = BatchReport()
    assert [p.name for p, _ in iter_images(paths, report)] == ["a.png"]
    assert report.skipped == [(folder / "loop1.png", "is a symlink loop")]


def test_a_device_is_never_read(tmp_path: Path) -> None:
    dev = tmp_path / "zero.png"
    try:
        os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 5))  # a copy of /dev/zero
    except PermissionError:
        pytest.skip("creating a character device needs root")
    with pytest.raises(ImageError, match="is not a regular file"):
        load_image(dev)


def test_cli_batch_over_a_folder_with_odd_entries_reports_them(folder: Path,
                                                               tmp_path: Path) -> None:
    pytest.importorskip("dlib")
    out = tmp_path / "aligned"
    proc = subprocess.run([sys.executable, "-m", "stylebridge", "align", str(folder),
                           "--out", str(out)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "400"})
    # flat-colour squares have no face: every readable file is skipped too, so all fail (2)
    assert proc.returncode == 2, proc.stderr
    assert "0 done, 7 skipped" in proc.stdout
    for name in ("loop1.png", "pipe", "self", "dangling.jpg"):
        assert name in proc.stdout
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(("top", "scale"), [(1.0, 1.0), (255.0, 255.0), (4000.0, 65535.0)])
def test_float_tiff_is_read_by_its_value_range(tmp_path: Path, top: float, scale: float) -> None:
    ramp = np.linspace(0.0, top, 64, dtype=np.float32).reshape(8, 8)
    path = tmp_path / "f.tif"
    Image.fromarray(ramp, mode="F").save(path)
    img = load_image(path)
    assert img.shape == (3, 8, 8) and img.dtype == torch.float32
    expected = torch.from_numpy(ramp / scale)
    assert torch.allclose(img[0], expected, atol=1e-6) and torch.equal(img[0], img[2])
    if top == 1.0:
        assert float(img.max()) == 1.0  # not black, as a uint8 conversion made it


def test_float_tiff_with_nan_is_refused(tmp_path: Path) -> None:
    arr = np.zeros((4, 4), np.float32)
    arr[1, 1] = np.nan
    path = tmp_path / "nan.tif"
    Image.fromarray(arr, mode="F").save(path)
    with pytest.raises(ImageError, match="contains NaN or Inf"):
        load_image(path)


def test_a_grid_stylebridge_wrote_is_no_photo_of_its_folder(tmp_path: Path) -> None:
    """``grid.png`` (marked in the PNG by save_png(grid=True)) is left out when its folder is
    given as photos (``adapt gen_out/`` read it as a face before); named as a file, it is read;
    an unmarked PNG called grid.png is a photo like any other."""
    from stylebridge.core.images import is_grid_file, save_png

    out = tmp_path / "run"
    out.mkdir()
    photo = _png(out / "a.png", 10)
    grid = save_png(out / "grid.png", torch.full((3, 8, 16), 0.5), grid=True)
    assert is_grid_file(grid) and not is_grid_file(photo)
    assert expand_inputs([out]) == [photo]
    assert expand_inputs([grid]) == [grid]
    assert load_image(grid).shape == (3, 8, 16)              # still an ordinary PNG
    other = tmp_path / "other"
    other.mkdir()
    plain = _png(other / "grid.png", 20)
    assert expand_inputs([other]) == [plain]
    broken = other / "z.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    assert not is_grid_file(broken) and expand_inputs([other]) == [plain, broken]


def test_hidden_files_of_a_folder_are_not_photos(tmp_path: Path) -> None:
    """macOS copies leave `._a.png` resource forks beside each photo: they were read, failed
    and turned a clean run's exit code into 3; a hidden `.b.png` was used as a photo."""
    folder = tmp_path / "photos"
    folder.mkdir()
    a = _png(folder / "a.png", 10)
    (folder / "._a.png").write_bytes(b"\x00\x05\x16\x07" + bytes(60))   # AppleDouble header
    hidden = _png(folder / ".b.png", 20)
    assert expand_inputs([folder]) == [a]
    assert expand_inputs([hidden]) == [hidden]                            # named: read
