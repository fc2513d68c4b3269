"""Image fidelity on the way in and out (QA review of image loading).

* an embedded ICC profile (Display P3, Adobe RGB, a grey gamma, CMYK) is converted to sRGB
  when a photo is read; an unreadable one, or Pillow without LittleCMS, reads it as before
  with a note (no traceback);
* a PIL image given to ``align_face`` / ``to_rgb_uint8`` is turned upright by its EXIF
  orientation, as a file is, and keeps the bit depth its file declared;
* the tRNS transparent colour of an RGB or grey PNG is white, as alpha is;
* a ``uint16`` array always means 0..65535;
* ``save_png`` refuses NaN/Inf; a planar 16-bit TIFF is read at 16 bits (or refused in one
  line); a non-ASCII notice survives in EXIF.

Expected values come from LittleCMS called here directly (``ImageCms``) or from the colour
maths written out in this file, never from the code under test.

8. a grey profile's curve is applied, as Y or (Lab PCS) as L*; parametric curves of every
   type, and tables interpolated; relative colorimetric with black point compensation at 8
   and 16 bits; nclx colours of HEIC/AVIF; sRGB profiles (at every level) left bit for bit;
   huge photos converted before they are reduced; PIL images converted as files are.
"""

from __future__ import annotations

import codecs
import importlib.util
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms, ImageOps

import stylebridge
from stylebridge.core import image_color
from stylebridge.core.batch import BatchReport, iter_images
from stylebridge.core.image_depth import describe_samples
from stylebridge.core.images import load_image, save_png
from stylebridge.errors import ImageError, StylebridgeError
from stylebridge.pipelines.align import to_rgb_uint8

pytestmark = pytest.mark.skipif(not image_color.cms_available(),
                                reason="Pillow without LittleCMS")

# ---------------------------------------------------------------------------------------------
# ICC profiles written by hand (ICC.1 v2 layout)

D50 = (0.9642, 1.0, 0.8249)
#: D50-adapted colorants of Display P3 and Adobe RGB (1998), as their published profiles hold
P3 = [(0.5151, 0.2412, -0.0011), (0.2920, 0.6922, 0.0419), (0.1571, 0.0666, 0.7841)]
ADOBE = [(0.6097, 0.3111, 0.0195), (0.2053, 0.6257, 0.0609), (0.1492, 0.0632, 0.7446)]


def _s15(x: float) -> bytes:
    return struct.pack(">i", round(x * 65536))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ " + b"\0" * 4 + _s15(x) + _s15(y) + _s15(z)


def _gamma(g: float | bytes) -> bytes:
    if isinstance(g, bytes):  # a curve tag already
        return g
    return b"curv" + b"\0" * 4 + struct.pack(">IH", 1, round(g * 256)) + b"\0\0"


def _para(ftype: int, *params: float) -> bytes:
    return b"para" + b"\0" * 4 + struct.pack(">HH", ftype, 0) + b"".join(map(_s15, params))


def _table(values: np.ndarray) -> bytes:
    v = np.round(np.clip(values, 0, 1) * 65535).astype(">u2")
    return b"curv" + b"\0" * 4 + struct.pack(">I", len(v)) + v.tobytes()


SRGB_PARA = _para(3, 2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)


def _desc(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return b"desc" + b"\0" * 4 + struct.pack(">I", len(raw)) + raw + b"\0" * 81


def _icc(cls: bytes, space: bytes, tags: list[tuple[bytes, bytes]], pcs: bytes = b"XYZ "
         ) -> bytes:
    tags = [(b"desc", tags[0][1]), *tags[1:], (b"cprt", b"text" + b"\0" * 4 + b"none\0")]
    table, data = b"", b""
    start = 128 + 4 + 12 * len(tags)
    for sig, body in tags:
        body += b"\0" * (-len(body) % 4)
        table += sig + struct.pack(">II", start + len(data), len(body))
        data += body
    body = struct.pack(">I", len(tags)) + table + data
    head = (struct.pack(">I", 128 + len(body)) + b"lcms" + bytes([2, 0x10, 0, 0]) + cls
            + space + pcs + b"\0" * 12 + b"acsp" + b"APPL" + b"\0" * 24 + _s15(D50[0])
            + _s15(D50[1]) + _s15(D50[2]) + b"\0" * 48)
    assert len(head) == 128
    return head + body


def rgb_profile(name: str, colorants: list, gamma: float | bytes, white: tuple = D50) -> bytes:
    return _icc(b"mntr", b"RGB ", [
        (b"desc", _desc(name)), (b"wtpt", _xyz(*white)),
        *[(k, _xyz(*c)) for k, c in zip((b"rXYZ", b"gXYZ", b"bXYZ"), colorants, strict=True)],
        *[(k, _gamma(gamma)) for k in (b"rTRC", b"gTRC", b"bTRC")]])


def grey_profile(gamma: float | bytes, pcs: bytes = b"XYZ ") -> bytes:
    return _icc(b"mntr", b"GRAY", [(b"desc", _desc("linear grey")), (b"wtpt", _xyz(*D50)),
                                   (b"kTRC", _gamma(gamma))], pcs)


def srgb_d50(prims: tuple = ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06))) -> np.ndarray:
    """Linear RGB → XYZ D50 of D65 primaries (sRGB's), Bradford-adapted, by hand."""
    def xyz(x: float, y: float) -> np.ndarray:
        return np.array([x / y, 1.0, (1 - x - y) / y])
    prim = np.stack([xyz(*p) for p in prims], axis=1)
    white = xyz(0.3127, 0.3290)
    m65 = prim * np.linalg.solve(prim, white)
    bradford = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367],
                         [0.0389, -0.0685, 1.0296]])
    cone = (bradford @ np.array(D50)) / (bradford @ white)
    return np.linalg.inv(bradford) @ np.diag(cone) @ bradford @ m65


def srgb_encode(lin: np.ndarray) -> np.ndarray:
    lin = np.clip(lin, 0.0, 1.0)
    return np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)


def by_hand(unit_rgb: np.ndarray, colorants: list, gamma: float) -> np.ndarray:
    """Matrix/TRC profile → sRGB in float, relative colorimetric, written out."""
    g = round(gamma * 256) / 256  # as the profile stores it (u8Fixed8)
    m = np.array([[round(v * 65536) / 65536 for v in c] for c in colorants]).T
    return srgb_encode((unit_rgb ** g) @ (np.linalg.inv(srgb_d50()) @ m).T)


def lcms(img: Image.Image, icc: bytes, mode: str = "RGB", exact: bool = False) -> Image.Image:
    """LittleCMS itself, profile → sRGB, relative colorimetric with black point compensation;
    ``exact``: its pipeline evaluated in float (unoptimized: no precalculated 8-bit tables)."""
    import io
    flags = ImageCms.Flags.BLACKPOINTCOMPENSATION | (ImageCms.Flags.NOOPTIMIZE if exact else 0)
    return ImageCms.profileToProfile(img, ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                                     ImageCms.createProfile("sRGB"), outputMode=mode,
                                     renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
                                     flags=flags)


def read8(path: Path) -> np.ndarray:
    return np.round(load_image(path).permute(1, 2, 0).double().numpy() * 255).astype(int)


def colours() -> np.ndarray:
    rng = np.random.default_rng(5)
    arr = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    arr[0, 0] = (200, 100, 50)
    arr[0, 1] = (255, 255, 255)
    return arr


# ---------------------------------------------------------------------------------------------
# 1. ICC profiles → sRGB


@pytest.mark.parametrize("suffix", [".png", ".tif", ".webp"])
@pytest.mark.parametrize("name,colorants", [("Display P3", P3), ("Adobe RGB", ADOBE)])
def test_a_wide_gamut_rgb_photo_is_converted_to_srgb(tmp_path: Path, suffix: str, name: str,
                                                     colorants: list) -> None:
    icc = rgb_profile(name, colorants, 2.2)
    src = Image.fromarray(colours())
    path = tmp_path / f"photo{suffix}"
    src.save(path, icc_profile=icc, **({"lossless": True} if suffix == ".webp" else {}))
    got = read8(path)
    np.testing.assert_array_equal(got, np.asarray(lcms(src, icc)))
    hand = by_hand(colours() / 255.0, colorants, 2.2) * 255
    assert np.abs(got - hand).max() <= 1.0
    assert np.abs(got - colours().astype(int)).max() > 10  # not read as if it were sRGB
    with Image.open(path) as img:
        assert f"colour profile {name!r} converted to sRGB" in describe_samples(img, img.tile)
    # a photo tagged sRGB is left exactly as it is
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    src.save(tmp_path / "srgb.png", icc_profile=srgb)
    np.testing.assert_array_equal(read8(tmp_path / "srgb.png"), colours())


def test_rgba_keeps_its_alpha_and_grey_and_cmyk_are_converted(tmp_path: Path) -> None:
    icc = rgb_profile("Display P3", P3, 2.2)
    rgba = np.dstack([colours(), np.full((6, 8), 128, np.uint8)])
    rgba[0, 0, 3], rgba[0, 2, 3] = 255, 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png", icc_profile=icc)
    conv = np.asarray(lcms(Image.fromarray(colours()), icc)).astype(float)
    a = rgba[..., 3:] / 255.0
    want = conv * a + 255.0 * (1 - a)
    got = read8(tmp_path / "rgba.png")
    assert np.abs(got - want).max() <= 1.0
    np.testing.assert_array_equal(got[0, 0], conv[0, 0])       # opaque: the converted colour
    np.testing.assert_array_equal(got[0, 2], [255, 255, 255])  # transparent: white

    grey = np.arange(0, 256, 5, dtype=np.uint8).reshape(4, 13)
    g_icc = grey_profile(1.0)  # linear light: mid grey is bright in sRGB
    Image.fromarray(grey, "L").save(tmp_path / "grey.png", icc_profile=g_icc)
    got = read8(tmp_path / "grey.png")
    np.testing.assert_array_equal(got, np.asarray(lcms(Image.fromarray(grey, "L"), g_icc)))
    hand = srgb_encode(grey / 255.0)[..., None] * 255
    # by hand within a level, but for 5/255 (LittleCMS' 8-bit grey path is coarse where the
    # sRGB curve is steepest: 31 for 38.3)
    assert np.abs(got - hand)[grey >= 10].max() <= 1.0 and got[0, 12, 0] > 120  # 60 is 133

    cmyk = np.random.default_rng(1).integers(0, 256, (5, 6, 4), dtype=np.uint8)
    c_icc = cmyk_profile()
    for suffix in (".tif", ".jpg"):
        Image.fromarray(cmyk, "CMYK").save(tmp_path / f"cmyk{suffix}", icc_profile=c_icc)
        with Image.open(tmp_path / f"cmyk{suffix}") as img:
            want = np.asarray(lcms(img.copy(), c_icc)).astype(int)
            naive = np.asarray(img.convert("RGB")).astype(int)
        got = read8(tmp_path / f"cmyk{suffix}")
        np.testing.assert_array_equal(got, want)
        assert np.abs(got - naive).max() > 20  # not Pillow's plain CMYK formula


def cmyk_profile() -> bytes:
    """A CMYK printer profile (A2B0 lut16, 2-point grid, XYZ PCS): ink removes light from each
    channel in linear light (a toy press, but a real table profile for LittleCMS)."""
    m = srgb_d50()
    clut = b""
    for c in (0, 1):
        for mg in (0, 1):
            for y in (0, 1):
                for k in (0, 1):
                    lin = np.array([(1 - c), (1 - mg), (1 - y)]) * (1 - k)
                    xyz = m @ lin
                    clut += struct.pack(">3H", *(min(65535, round(v * 32768)) for v in xyz))
    ident = b"".join(_s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    ramp = struct.pack(">2H", 0, 65535)
    lut = (b"mft2" + b"\0" * 4 + bytes([4, 3, 2, 0]) + ident + struct.pack(">HH", 2, 2)
           + ramp * 4 + clut + ramp * 3)
    return _icc(b"prtr", b"CMYK", [(b"desc", _desc("toy CMYK")), (b"wtpt", _xyz(*D50)),
                                   (b"A2B0", lut)])


def png16(path: Path, arr: np.ndarray, icc: bytes | None = None, exif: bytes | None = None
          ) -> Path:
    """A 16-bit PNG (grey, RGB or RGBA) written byte by byte, with an iCCP / eXIf chunk."""
    h, w = arr.shape[:2]
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    raw = b"".join(b"\0" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    head = struct.pack(">IIBBBBB", w, h, 16, {1: 0, 3: 2, 4: 6}[channels], 0, 0, 0)
    extra = (chunk(b"iCCP", b"p\0\0" + zlib.compress(icc)) if icc else b"") + (
        chunk(b"eXIf", exif) if exif else b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + extra
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


def test_16_bit_colour_and_grey_are_converted_in_float(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    arr = rng.integers(0, 65536, (5, 7, 3), dtype=np.uint16)
    arr[0, 0] = (200 * 257, 100 * 257, 50 * 257)
    got = load_image(png16(tmp_path / "p3.png", arr, rgb_profile("Display P3", P3, 2.2)))
    got = got.permute(1, 2, 0).double().numpy()
    hand = by_hand(arr / 65535.0, P3, 2.2)
    assert np.abs(got - hand).max() < 5e-4  # at 16 bits: 8-bit rounding would be ~2e-3
    eight = np.asarray(lcms(Image.new("RGB", (1, 1), (200, 100, 50)),
                            rgb_profile("Display P3", P3, 2.2))).astype(float)
    assert np.abs(got[0, 0] * 255 - eight[0, 0]).max() <= 1.0  # agrees with LittleCMS

    rgba = np.dstack([arr, np.full((5, 7), 65535, np.uint16)])
    got = load_image(png16(tmp_path / "p3a.png", rgba, rgb_profile("Display P3", P3, 2.2)))
    assert np.abs(got.permute(1, 2, 0).double().numpy() - hand).max() < 5e-4

    grey = rng.integers(0, 65536, (4, 6), dtype=np.uint16)
    got = load_image(png16(tmp_path / "grey16.png", grey, grey_profile(1.0)))
    want = srgb_encode(grey / 65535.0)
    for c in range(3):
        assert np.abs(got[c].double().numpy() - want).max() < 1e-4


def test_a_broken_profile_is_read_as_before_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "broken.png"
    Image.fromarray(colours()).save(path, icc_profile=b"not a colour profile" * 8)
    with pytest.warns(image_color.ColourProfileWarning, match="broken.png.*cannot be read"):
        got = read8(path)
    np.testing.assert_array_equal(got, colours())
    notes: list[str] = []
    load_image(path, notes=notes)
    assert len(notes) == 1 and "read as sRGB" in notes[0]
    report = BatchReport()
    assert [p for p, _ in iter_images([path], report)] == [path]
    assert report.notes and report.notes[0][0] == path and "profile" in report.notes[0][1]


def test_without_littlecms_profiles_are_ignored_visibly(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "p3.png"
    Image.fromarray(colours()).save(path, icc_profile=rgb_profile("Display P3", P3, 2.2))
    monkeypatch.setattr(image_color, "_cms", lambda: None)
    with pytest.warns(image_color.ColourProfileWarning, match="LittleCMS"):
        got = read8(path)
    np.testing.assert_array_equal(got, colours())
    with Image.open(path) as img:
        assert "LittleCMS" in describe_samples(img, img.tile)


# ---------------------------------------------------------------------------------------------
# 2. EXIF orientation of PIL images; 4. the depth a 16-bit file declared


def _oriented(path: Path, arr: np.ndarray, orientation: int) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(arr).save(path, exif=exif)
    return path


def test_a_pil_image_is_turned_upright_as_its_file_is(tmp_path: Path) -> None:
    arr = colours()
    for orientation in range(2, 9):
        path = _oriented(tmp_path / f"o{orientation}.png", arr, orientation)
        with Image.open(path) as img:
            want = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
            np.testing.assert_array_equal(to_rgb_uint8(img), want)
        with Image.open(path) as img:  # load_photo: turned once, not twice
            photo = stylebridge.load_photo(img, align=False, size=8)[0]
        assert torch.equal(photo, stylebridge.load_photo(path, align=False, size=8)[0])


@pytest.mark.skipif(importlib.util.find_spec("dlib") is None
                    or importlib.util.find_spec("skimage") is None, reason="needs dlib, skimage")
def test_align_face_of_a_pil_image_honours_its_orientation(tmp_path: Path) -> None:
    from skimage import data

    from stylebridge.pipelines.align import align_face

    face = np.asarray(data.astronaut())
    path = _oriented(tmp_path / "sideways.png", np.ascontiguousarray(np.rot90(face)), 6)
    want = np.asarray(align_face(path, 128).image)
    with Image.open(path) as img:
        got = np.asarray(align_face(img, 128).image)
    np.testing.assert_array_equal(got, want)


def test_uint16_is_0_to_65535_and_a_16_bit_file_keeps_its_depth_upright(tmp_path: Path) -> None:
    dark = np.full((4, 4, 3), 200, np.uint16)
    assert (to_rgb_uint8(dark) == round(200 / 65535 * 255)).all()
    rgba = np.dstack([dark, np.full((4, 4), 65535, np.uint16)])
    assert (to_rgb_uint8(rgba) == round(200 / 65535 * 255)).all()
    assert (to_rgb_uint8(np.full((2, 2), 65535, np.uint16)) == 255).all()

    grey = (np.arange(36, dtype=np.uint16).reshape(6, 6) * 7)  # dark: no value above 255
    exif = Image.Exif()
    exif[0x0112] = 6
    path = png16(tmp_path / "dark16.png", grey, exif=exif.tobytes()[6:])
    want = np.round(np.rot90(grey, -1) / 65535 * 255) / 255  # orientation 6: 90° clockwise
    with Image.open(path) as img:
        assert img.mode.startswith("I")
        photo = stylebridge.load_photo(img, align=False, size=6)[0]
    for c in range(3):
        np.testing.assert_allclose(photo[c].double().numpy(), want, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# 3. tRNS colour key


def test_a_pngs_transparent_colour_is_white(tmp_path: Path) -> None:
    rgb = np.full((3, 4, 3), (10, 20, 30), np.uint8)
    rgb[0, 0] = (40, 50, 60)
    Image.fromarray(rgb).save(tmp_path / "rgb.png", transparency=(10, 20, 30))
    want = np.full((3, 4, 3), 255)
    want[0, 0] = (40, 50, 60)
    np.testing.assert_array_equal(read8(tmp_path / "rgb.png"), want)
    with Image.open(tmp_path / "rgb.png") as img:
        np.testing.assert_array_equal(to_rgb_uint8(img), want)

    grey = np.full((3, 4), 7, np.uint8)
    grey[1, 2] = 90
    Image.fromarray(grey).save(tmp_path / "grey.png", transparency=7)
    want = np.where(grey == 7, 255, grey)[..., None].repeat(3, axis=2)
    np.testing.assert_array_equal(read8(tmp_path / "grey.png"), want)
    with Image.open(tmp_path / "grey.png") as img:
        np.testing.assert_array_equal(to_rgb_uint8(img), want)

    deep = np.full((3, 4), 5, np.uint16)
    deep[2, 3] = 30000
    Image.fromarray(deep).save(tmp_path / "grey16.png", transparency=5)
    got = load_image(tmp_path / "grey16.png")[0].double().numpy()
    np.testing.assert_allclose(got, np.where(deep == 5, 1.0, deep / 65535), atol=1e-6)


# ---------------------------------------------------------------------------------------------
# 5. save_png; 6. planar TIFF; 7. notices in EXIF


def test_save_png_refuses_nan_and_inf_and_writes_nothing(tmp_path: Path) -> None:
    image = torch.full((3, 4, 4), 0.5)
    image[0, 0, 0] = float("nan")
    image[1, 2, 3] = float("inf")
    image[2, 1, 1] = float("-inf")
    dst = tmp_path / "out.png"
    with pytest.raises(StylebridgeError) as caught:
        save_png(dst, image)
    text = str(caught.value)
    assert "\n" not in text and str(dst) in text and "3 NaN or infinite" in text
    assert list(tmp_path.iterdir()) == []


def planar_tiff(path: Path, arr: np.ndarray, endian: str = "<") -> Path:
    """An uncompressed 16-bit RGB TIFF with planar samples (PlanarConfiguration 2), one strip
    per plane, written byte by byte."""
    h, w, c = arr.shape
    planes = [np.ascontiguousarray(arr[..., i]).astype(f"{endian}u2").tobytes() for i in range(c)]
    p = "<" if endian == "<" else ">"
    n_tags = 10
    ifd_at = 8
    extra_at = ifd_at + 2 + 12 * n_tags + 4
    bits_at, offs_at, counts_at = extra_at, extra_at + 2 * c, extra_at + 6 * c
    data_at = extra_at + 10 * c
    offsets = [data_at + i * len(planes[0]) for i in range(c)]

    def tag(code: int, kind: int, count: int, value: int) -> bytes:
        packed = struct.pack(p + "H", value) + b"\0\0" if kind == 3 and count == 1 else \
            struct.pack(p + "I", value)
        return struct.pack(p + "HHI", code, kind, count) + packed

    tags = [tag(256, 4, 1, w), tag(257, 4, 1, h), tag(258, 3, c, bits_at), tag(259, 3, 1, 1),
            tag(262, 3, 1, 2), tag(273, 4, c, offs_at), tag(277, 3, 1, c), tag(278, 4, 1, h),
            tag(279, 4, c, counts_at), tag(284, 3, 1, 2)]
    out = (b"II" if endian == "<" else b"MM") + struct.pack(p + "HI", 42, ifd_at)
    out += struct.pack(p + "H", n_tags) + b"".join(tags) + b"\0" * 4
    out += struct.pack(p + f"{c}H", *[16] * c) + struct.pack(p + f"{c}I", *offsets)
    out += struct.pack(p + f"{c}I", *[len(x) for x in planes]) + b"".join(planes)
    path.write_bytes(out)
    return path


@pytest.mark.parametrize("endian", ["<", ">"])
def test_a_planar_16_bit_tiff_is_read_at_16_bits(tmp_path: Path, endian: str) -> None:
    arr = np.random.default_rng(3).integers(0, 65536, (5, 7, 3), dtype=np.uint16)
    path = planar_tiff(tmp_path / "planar.tif", arr, endian)
    got = load_image(path).permute(1, 2, 0).double().numpy()
    assert np.abs(got - arr / 65535.0).max() < 1e-6
    with Image.open(path) as img:
        assert "16-bit RGB (planar)" in describe_samples(img, img.tile)
    cut = tmp_path / "cut.tif"
    cut.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(ImageError) as caught:
        load_image(cut)
    assert str(caught.value).startswith(f"{cut}: ") and "planar" in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("suffix", [".jpg", ".webp", ".tif"])
def test_a_non_ascii_notice_stays_readable_in_exif(tmp_path: Path, suffix: str) -> None:
    from stylebridge.pipelines.eval_report import read_notice

    notice = "RANDOM WEIGHTS: encoder 'fse:/modèles/顔.safetensors' is untrained"
    path = stylebridge.save_image(torch.full((3, 8, 8), 0.5), tmp_path / f"x{suffix}",
                                  notice=notice)
    text = read_notice(path)
    assert text is not None and "?" not in text
    assert codecs.decode(text, "unicode_escape") == notice


# ---------------------------------------------------------------------------------------------
# 8. Curves, intent and black point, nclx, sRGB left alone, huge photos, PIL images

#: a lifted black (Y 0.02 at 0: type 4's f) and a curve of each parametric type
K = 0.98 ** (1 / 2.4)
LIFTED = _para(4, 2.4, K / 1.055, K * 0.055 / 1.055, 0.98 / 12.92, 0.04045, 0.005, 0.02)
PARA = {"0": _para(0, 2.6), "1": _para(1, 2.2, 1.05, -0.05), "2": _para(2, 2.2, 0.9, 0.05, 0.03),
        "3": SRGB_PARA, "3 BT.709": _para(3, 1 / 0.45, 1 / 1.099, 0.099 / 1.099, 1 / 4.5, 0.081),
        "4": LIFTED}


#: LittleCMS' result rounded to 8 bits (0.5), its tables evaluated at 16 bits (a little more)
ROUNDED = 0.6


def cube(step: int) -> np.ndarray:
    """8-bit levels, every ``step``-th of each channel together, ``[1, N, 3]``."""
    v = np.arange(0, 256, step)
    return np.stack(np.meshgrid(v, v, v, indexing="ij"), -1).reshape(1, -1, 3)


def off16(tmp_path: Path, levels: np.ndarray, icc: bytes) -> float:
    """How far (in 8-bit levels) a 16-bit PNG of 8-bit ``levels`` (× 257: exactly level / 255)
    reads from LittleCMS evaluating its pipeline in float (rounded to 8 bits: 0.5 at most)."""
    got = load_image(png16(tmp_path / "x16.png", (levels * 257).astype(np.uint16), icc))
    got = got.permute(1, 2, 0).double().numpy() * 255
    want = np.asarray(lcms(Image.fromarray(levels.astype(np.uint8)), icc, exact=True))
    return float(np.abs(got - want).max())


def lab_y(lightness: np.ndarray) -> np.ndarray:
    f = (lightness + 16) / 116
    return np.where(f > 6 / 29, f ** 3, 3 * (6 / 29) ** 2 * (f - 4 / 29))


@pytest.mark.parametrize("kind", PARA)
def test_parametric_curves_at_16_bits_are_read_as_littlecms_reads_them(tmp_path: Path,
                                                                        kind: str) -> None:
    assert off16(tmp_path, cube(15), rgb_profile("P3", P3, PARA[kind])) <= ROUNDED
    assert off16(tmp_path, np.arange(0, 256, 3)[None], grey_profile(PARA[kind])) <= ROUNDED


@pytest.mark.parametrize("entries", [2, 16, 26, 1024])
def test_curve_tables_are_interpolated_between_their_entries(tmp_path: Path, entries: int) -> None:
    x = np.linspace(0, 1, entries)
    curve = _table(x ** 2.0 if entries > 2 else x)
    assert off16(tmp_path, cube(15), rgb_profile("P3", P3, curve)) <= ROUNDED
    assert off16(tmp_path, np.arange(0, 256, 3)[None], grey_profile(curve)) <= ROUNDED


@pytest.mark.parametrize("pcs", [b"XYZ ", b"Lab "])
def test_a_grey_curve_gives_luminance_or_with_a_lab_pcs_lightness(tmp_path: Path,
                                                                  pcs: bytes) -> None:
    icc = grey_profile(1.8, pcs)
    grey = np.arange(0, 65536, 257 * 3, dtype=np.uint16).reshape(2, -1)
    got = load_image(png16(tmp_path / "g16.png", grey, icc)).double().numpy()
    v = (grey / 65535.0) ** (round(1.8 * 256) / 256)
    want = srgb_encode(v if pcs == b"XYZ " else lab_y(100 * v))
    assert np.abs(got - want[None]).max() < 1e-4
    assert off16(tmp_path, (grey // 257).astype(int), icc) <= ROUNDED
    eight = Image.fromarray((grey // 257).astype(np.uint8))
    eight.save(tmp_path / "g8.png", icc_profile=icc)
    np.testing.assert_array_equal(read8(tmp_path / "g8.png"), np.asarray(lcms(eight, icc)))


def test_a_lifted_black_becomes_black_at_8_and_at_16_bits(tmp_path: Path) -> None:
    """Relative colorimetric with black point compensation: XYZ scaled so that the profile's
    black (Y = 0.02 × the sum of its colorants' Y) is sRGB black, its white white."""
    icc = rgb_profile("lifted black", P3, LIFTED)
    levels = cube(17)
    src = Image.fromarray(levels.astype(np.uint8))
    src.save(tmp_path / "l8.png", icc_profile=icc)
    eight = read8(tmp_path / "l8.png")
    np.testing.assert_array_equal(eight, np.asarray(lcms(src, icc)))
    assert eight[0, 0].tolist() == [0, 0, 0]
    assert off16(tmp_path, levels, icc) <= ROUNDED
    v = np.arange(0, 65536, 771) / 65535.0  # greys by hand
    y = np.where(v >= 0.04045, (K / 1.055 * v + K * 0.055 / 1.055) ** 2.4 + 0.005,
                 0.98 / 12.92 * v + 0.02)
    black = 0.02 * sum(c[1] for c in P3)
    want = srgb_encode((y - black) / (1 - black))
    grey = np.repeat((v * 65535).round().astype(np.uint16)[None, :, None], 3, axis=2)
    got = load_image(png16(tmp_path / "grey.png", grey, icc)).double().numpy()
    assert np.abs(got - want).max() < 1e-3
    assert np.abs(got[:, 0, 0]).max() < 1e-4  # (not 0.02: black, as near as its colorants)


#: the colorants of the sRGB profile cameras and Windows embed (HP's v2 "sRGB IEC61966-2.1")
HP = [(0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141)]


def hp_srgb(bump: bool = False) -> bytes:
    """HP's sRGB profile as it is laid out (1024-entry curves, D65 media white); ``bump``:
    its curves doubled between levels 3 and 13 (none of them a multiple of 17)."""
    x = np.linspace(0, 1, 1024)
    curve = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
    if bump:
        curve = np.where((x * 255 >= 3) & (x * 255 <= 13), curve * 2, curve)
    return rgb_profile("sRGB IEC61966-2.1", HP, _table(curve), white=(0.9505, 1.0, 1.0891))


def test_a_photo_tagged_srgb_is_read_bit_for_bit_as_without_its_profile(tmp_path: Path) -> None:
    icc = hp_srgb()
    for suffix in (".png", ".jpg"):
        Image.fromarray(colours()).save(tmp_path / f"hp{suffix}", icc_profile=icc)
        Image.fromarray(colours()).save(tmp_path / f"none{suffix}")
        assert torch.equal(load_image(tmp_path / f"hp{suffix}"),
                           load_image(tmp_path / f"none{suffix}"))
        with Image.open(tmp_path / f"hp{suffix}") as img:
            assert "colour profile" not in describe_samples(img, img.tile)
            np.testing.assert_array_equal(to_rgb_uint8(img), read8(tmp_path / f"none{suffix}"))
    deep = np.random.default_rng(4).integers(0, 65536, (5, 7, 3), dtype=np.uint16)
    assert torch.equal(load_image(png16(tmp_path / "hp16.png", deep, icc)),
                       load_image(png16(tmp_path / "none16.png", deep)))
    grey = deep[..., 0]
    assert torch.equal(load_image(png16(tmp_path / "g16.png", grey, hp_srgb())),
                       load_image(png16(tmp_path / "gnone16.png", grey)))  # RGB profile: ignored


def test_a_profile_unlike_srgb_only_between_every_17th_level_is_converted(tmp_path: Path) -> None:
    icc = hp_srgb(bump=True)
    ramp = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
    Image.fromarray(ramp).save(tmp_path / "bump.png", icc_profile=icc)
    want = np.asarray(lcms(Image.fromarray(ramp), icc)).astype(int)
    assert np.abs(want - ramp).max() > 3  # LittleCMS: not sRGB
    np.testing.assert_array_equal(read8(tmp_path / "bump.png"), want)


#: Display P3 (D65 primaries) adapted to D50 here, and its profile (sRGB's curve)
P3_XY = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))
NCLX = {"color_primaries": 12, "transfer_characteristics": 13, "matrix_coefficients": 6,
        "full_range_flag": 1}


def p3_icc() -> bytes:
    return rgb_profile("Display P3", srgb_d50(P3_XY).T.tolist(), SRGB_PARA)


def test_nclx_code_points_are_converted_or_said(tmp_path: Path) -> None:
    src = colours()
    img = Image.fromarray(src)
    img.info["nclx_profile"] = dict(NCLX)  # as pillow-heif gives them
    want = np.asarray(lcms(Image.fromarray(src), p3_icc())).astype(int)
    got = to_rgb_uint8(img).astype(int)
    assert np.abs(got - want).max() <= 1 and np.abs(got - src).max() > 10
    ramp = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
    img = Image.fromarray(ramp)
    img.info["nclx_profile"] = {**NCLX, "color_primaries": 1, "transfer_characteristics": 1}
    v = np.arange(256) / 255  # BT.709's inverse OETF, by hand
    lin = np.where(v < 0.081, v / 4.5, ((v + 0.099) / 1.099) ** (1 / 0.45))
    assert np.abs(to_rgb_uint8(img)[0] - srgb_encode(lin)[:, None] * 255).max() <= 1.0
    grey = Image.fromarray(np.arange(256, dtype=np.uint8)[None])
    grey.info["nclx_profile"] = {**NCLX, "transfer_characteristics": 8}  # linear light
    np.testing.assert_array_equal(to_rgb_uint8(grey), lcms(grey, grey_profile(1.0)))
    for points in ({"color_primaries": 9, "transfer_characteristics": 16},
                   {"color_primaries": 5, "transfer_characteristics": 13}):
        img = Image.fromarray(src)
        img.info["nclx_profile"] = {**NCLX, **points}
        with pytest.warns(image_color.ColourProfileWarning, match="nclx"):
            np.testing.assert_array_equal(to_rgb_uint8(img), src)
    img.info["nclx_profile"] = {**NCLX, "color_primaries": 1}  # sRGB: nothing, no note
    np.testing.assert_array_equal(to_rgb_uint8(img), src)


@pytest.mark.parametrize("suffix", [".heic", ".avif"])
def test_a_heic_or_avif_in_display_p3_by_code_points_is_converted(tmp_path: Path,
                                                                  suffix: str) -> None:
    from PIL import features

    from stylebridge.core.images import heif_support

    src = np.kron(colours(), np.ones((8, 8, 1), np.uint8))
    path = tmp_path / f"p3{suffix}"
    if suffix == ".heic":
        if not heif_support():
            pytest.skip("needs pillow-heif")
        import pillow_heif
        if not pillow_heif.libheif_info().get("HEIF"):
            pytest.skip("pillow-heif without a HEVC encoder")
        Image.fromarray(src).save(path, quality=95, color_primaries=12,
                                  transfer_characteristics=13, matrix_coefficients=6,
                                  full_range_flag=1)
    else:
        if not features.check("avif"):
            pytest.skip("Pillow without AVIF")
        Image.fromarray(src).save(path, quality=95)
        data = path.read_bytes()
        at = data.find(b"colrnclx\0\1\0\x0d")  # BT.709 primaries, sRGB transfer → Display P3
        if at < 0:
            pytest.skip("this Pillow writes no nclx box")
        path.write_bytes(data[:at + 8] + b"\0\x0c" + data[at + 10:])
    with Image.open(path) as img:
        raw = np.asarray(img.convert("RGB"))  # the decoder's values, not converted
        assert "nclx Display P3" in describe_samples(img, img.tile)
    got = read8(path)
    want = np.asarray(lcms(Image.fromarray(raw), p3_icc())).astype(int)
    assert np.abs(got - want).max() <= 1 and np.abs(got - raw).max() > 10


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "CMYK", "I;16"])
def test_a_huge_photo_is_converted_then_reduced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                mode: str) -> None:
    from stylebridge.core import images

    monkeypatch.setattr(images, "REDUCE_KEEP_SIDE", 4)  # an 18 × 25 photo is reduced by 4
    monkeypatch.setattr(images, "_STRIP_PIXELS", 64)   # in several strips
    rng = np.random.default_rng(6)
    channels = {"RGB": 3, "RGBA": 4, "L": 1, "CMYK": 4, "I;16": 1}[mode]
    arr = rng.integers(0, 256, (18, 25, channels), dtype=np.uint8)[..., :channels].squeeze()
    icc = (grey_profile(1.8) if channels == 1 else cmyk_profile() if mode == "CMYK"
           else rgb_profile("Display P3", P3, 2.2))
    path = tmp_path / ("huge.tif" if mode == "CMYK" else "huge.png")
    if mode == "I;16":  # 16-bit grey: averaged in the file's encoding, then converted
        deep = arr.astype(np.uint16) * 257 + 3
        reduced = np.asarray(Image.fromarray(deep.astype(np.int32), "I").reduce(4)) / 65535.0
        got = load_image(png16(path, deep, icc)).double().numpy()
        assert np.abs(got - srgb_encode(reduced ** (461 / 256))[None]).max() < 1e-4
        return
    img = Image.fromarray(arr, mode)
    img.save(path, icc_profile=icc)
    conv = lcms(img, icc, "RGBA" if mode == "RGBA" else "RGB")
    if mode == "RGBA":
        conv = Image.alpha_composite(Image.new("RGBA", conv.size, "white"), conv).convert("RGB")
    want = np.asarray(conv.reduce(4)).astype(int)
    got = read8(path)
    assert got.shape == (5, 7, 3)
    assert np.abs(got - want).max() <= (1 if mode == "RGBA" else 0)


def test_a_pil_image_with_a_profile_is_converted_as_its_file_is(tmp_path: Path) -> None:
    icc = rgb_profile("Display P3", P3, 2.2)
    path = tmp_path / "p3.png"
    Image.fromarray(colours()).save(path, icc_profile=icc)
    want = np.asarray(lcms(Image.fromarray(colours()), icc))
    with Image.open(path) as img:
        np.testing.assert_array_equal(to_rgb_uint8(img), want)
    made = Image.fromarray(colours())
    made.info["icc_profile"] = icc
    np.testing.assert_array_equal(to_rgb_uint8(made), want)
    assert torch.equal(stylebridge.load_photo(made, align=False, size=8)[0],
                       stylebridge.load_photo(path, align=False, size=8)[0])
