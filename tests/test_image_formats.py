"""Photo formats as people have them: HEIC from an iPhone, AVIF, files given by mistake.

The HEIC and AVIF files are encoded here by libheif (``pillow-heif``) and libavif (Pillow),
not by stylebridge, and compared with the pixels they were made from.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image, features

import stylebridge.core.images as images
from stylebridge.cli.main import main
from stylebridge.core.batch import expand_inputs
from stylebridge.core.images import load_image, unreadable_reason
from stylebridge.core.sniff import file_kind
from stylebridge.errors import ImageError


@pytest.fixture(scope="module")
def face() -> Image.Image:
    """The astronaut's face, 96 wide × 64 high (not square, so a turn shows in the shape)."""
    return Image.fromarray(skimage.data.astronaut()[40:232, 120:408]).resize((96, 64))


def _pixels(tensor) -> np.ndarray:
    return tensor.permute(1, 2, 0).numpy()


def test_iphone_heic_is_read_upright(tmp_path: Path, face: Image.Image) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways, shown turned 90° clockwise (a portrait-held phone)
    path = tmp_path / "IMG_0001.HEIC"
    pillow_heif.from_pillow(face).save(path, quality=95, exif=exif.tobytes())
    assert file_kind(path) == ("image", "a HEIC/HEIF image")
    image = load_image(path)
    # turned once (a second turn, from EXIF after libheif's own, would give 64 × 96 upside down)
    assert image.shape == (3, 96, 64)
    upright = np.asarray(face.transpose(Image.Transpose.ROTATE_270), dtype=np.float32) / 255
    assert float(np.abs(_pixels(image) - upright).mean()) < 0.03  # lossy HEVC at quality 95
    wrong_way = np.asarray(face.transpose(Image.Transpose.ROTATE_90), dtype=np.float32) / 255
    assert float(np.abs(_pixels(image) - wrong_way).mean()) > 0.1


def test_heic_is_held_to_the_pixel_limit(tmp_path: Path, face: Image.Image,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    path = tmp_path / "big.heic"
    pillow_heif.from_pillow(face).save(path)
    monkeypatch.setattr(images, "MAX_PIXELS", 96 * 64 - 1)  # one pixel short of this photo
    with pytest.raises(ImageError, match=r"pixel limit"):
        load_image(path)


def test_heic_without_pillow_heif_says_what_to_install(tmp_path: Path, face: Image.Image,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    path = tmp_path / "photo.heic"
    pillow_heif.from_pillow(face).save(path)
    monkeypatch.setattr(images, "heif_support", lambda: False)
    assert unreadable_reason(path, "?") == (
        "is a HEIC/HEIF photo; reading it needs pillow-heif (pip install 'stylebridge[heif]')")
    # a file that cannot be looked at again (gone, unreadable) keeps the reason it was given
    assert unreadable_reason(tmp_path / "gone.jpg", "cannot read image (x)") == (
        "cannot read image (x)")


@pytest.mark.skipif(not features.check("avif"), reason="this Pillow was built without AVIF")
def test_avif_is_read(tmp_path: Path, face: Image.Image) -> None:
    path = tmp_path / "photo.avif"
    face.save(path, quality=95)
    assert file_kind(path) == ("image", "an AVIF image")
    image = load_image(path)
    assert image.shape == (3, 64, 96)
    assert float(np.abs(_pixels(image) - np.asarray(face, dtype=np.float32) / 255).mean()) < 0.03


def test_a_folder_offers_phone_formats_and_only_images(tmp_path: Path) -> None:
    names = ["a.HEIC", "b.heif", "c.avif", "d.jfif", "e.JPG", "notes.txt", "clip.mov"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in expand_inputs([tmp_path])] == ["a.HEIC", "b.heif", "c.avif",
                                                            "d.jfif", "e.JPG"]


def _ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return (8 + len(body)).to_bytes(4, "big") + b"ftyp" + body + b"\x00" * 8


@pytest.mark.parametrize(("head", "what"), [
    (_ftyp(b"heic", b"mif1", b"heic"), "a HEIC/HEIF image"),
    (_ftyp(b"mif1", b"mif1", b"heic"), "a HEIC/HEIF image"),
    (_ftyp(b"mif1", b"avif", b"mif1"), "an AVIF image"),  # AVIF is HEIF with the av01 codec
    (_ftyp(b"qt  ", b"qt  "), "an MP4/QuickTime video"),
    (_ftyp(b"isom", b"isom", b"mp42"), "an MP4/QuickTime video"),
])
def test_iso_media_files_are_told_apart(tmp_path: Path, head: bytes, what: str) -> None:
    path = tmp_path / "file"
    path.write_bytes(head)
    assert file_kind(path)[1] == what


@pytest.mark.parametrize(("content", "message"), [
    (b"", "is empty (0 bytes)"),
    (b"name,score\nada,1\n", "is a text file, not an image"),
    (_ftyp(b"qt  ", b"qt  "), "is an MP4/QuickTime video, not an image"),
    (b"%PDF-1.7\n" + bytes(range(256)), "is a PDF document, not an image"),
    (bytes(range(7, 256)), "cannot read image (cannot identify image file)"),
])
def test_a_file_that_is_no_image_says_what_it_is(tmp_path: Path, content: bytes,
                                                  message: str) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError) as info:
        load_image(path)
    assert str(info.value) == f"{path}: {message}"


def test_a_batch_skips_a_video_named_as_a_photo(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Through a batch command: the video is skipped, saying what it is; nothing is written."""
    clip = tmp_path / "clip.jpg"
    clip.write_bytes(_ftyp(b"qt  ", b"qt  "))
    code = main(["align", str(clip), "--out", str(tmp_path / "out"), "--json"])
    captured = capsys.readouterr()
    report = json.loads(captured.out[captured.out.index("{"):])
    assert code == 2 and report["done"] == []
    assert report["skipped"] == [{"file": str(clip),
                                  "reason": "is an MP4/QuickTime video, not an image"}]
    assert "Traceback" not in captured.err
    assert not any((tmp_path / "out").glob("*"))


def test_load_photo_and_save_image_from_python(tmp_path: Path, face: Image.Image) -> None:
    """The package's photo helpers: as-is resizing without alignment, the no-face error
    naming the file, and one picture per PNG."""
    import torch

    import stylebridge
    from stylebridge.core.images import resize_square

    path = tmp_path / "face.png"
    face.save(path)
    photo = stylebridge.load_photo(path, align=False, size=32)
    assert torch.equal(photo, resize_square(load_image(path), 32)[None])
    wall = tmp_path / "wall.png"
    Image.new("RGB", (96, 96), (128, 128, 128)).save(wall)
    with pytest.raises(stylebridge.StylebridgeError, match=rf"^{wall}: no face found$"):
        stylebridge.load_photo(wall)
    out = stylebridge.save_image(photo, tmp_path / "out.png")
    assert (load_image(out) - photo[0]).abs().max() <= 0.5 / 255 + 1e-6  # 8-bit rounding
    with pytest.raises(stylebridge.StylebridgeError, match="one picture; got a batch of 2"):
        stylebridge.save_image(torch.cat([photo, photo]), tmp_path / "two.png")
    assert not (tmp_path / "two.png").exists()
