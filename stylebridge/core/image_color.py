"""Colour on the way in: a photo's embedded ICC profile converted to sRGB, and transparency
(alpha, a palette's or a PNG's tRNS colour key) composited over white.

Every photo becomes sRGB when it is read (:func:`stylebridge.core.images.load_image`, and a
PIL image given to ``load_photo`` / ``align_face``): the encoders were trained on sRGB faces,
and a Display P3 iPhone photo or an Adobe RGB camera file read as if it were sRGB has dull,
shifted colours.  What stylebridge writes is untagged sRGB (a PNG without a profile is sRGB).

* 8-bit RGB, RGBA (alpha kept), grey, grey + alpha, palette and CMYK images with a profile are
  converted by LittleCMS (Pillow's ``ImageCms``, :data:`INTENT`).  A CMYK file without a
  profile is still converted by Pillow's plain formula (no standard CMYK profile ships with
  Pillow).
* 16-bit colour and 16-bit grey are converted in float (:func:`float_to_srgb`), exactly, when
  the profile is a matrix/TRC one (Display P3, Adobe RGB, ProPhoto, Rec. 2020, grey gamma
  profiles with an XYZ or a Lab connection space: what 16-bit files carry), with the same
  intent and black point compensation as LittleCMS (:data:`INTENT`); with a table (LUT)
  profile they are converted at 8 bits by LittleCMS (a note says so).  32-bit float TIFFs are
  not converted.
* A HEIC/AVIF photo that describes its colours by code points (an ``nclx`` box: Display P3,
  BT.2020, BT.709 or linear light) instead of a profile is converted the same way, through
  an equivalent profile (:mod:`stylebridge.core.image_nclx`); code points it does not know
  (HDR transfers: PQ, HLG...) are said in a note, and the photo is read as sRGB.
* A profile that is sRGB already (LittleCMS maps every level of a grey ramp and of each
  primary, and a 16-level cube, within one level of itself) is skipped: such photos are read
  bit for bit as if they had no profile.
* A profile that cannot be read, or one for another colour space than the image's, is
  ignored (the photo is read as sRGB, as before) with a note; so is every profile when Pillow
  was built without LittleCMS (``PIL.features.check("littlecms2")``).  The notes are
  :class:`ColourProfileWarning` warnings, or a batch report's notes.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, features

from stylebridge.core.image_nclx import nclx_icc, nclx_of
from stylebridge.errors import StylebridgeWarning

#: LittleCMS rendering intent: relative colorimetric (1), with black point compensation
#: (:data:`_BPC`), what photo editors use by default.  Colours inside sRGB keep their values,
#: the media white becomes sRGB white, colours outside sRGB are clipped, and a profile whose
#: black is lifted (a black of Y > 0) has it scaled down to sRGB black (XYZ scaled so that the
#: source black point goes to sRGB's, relative to the white, as LittleCMS computes it).
#: :func:`float_to_srgb` (16-bit files) does the same maths.  Perceptual was used before:
#: LittleCMS forces black point compensation with it, as Pillow's sRGB is a v4 profile, so
#: matrix profiles are converted as they were; table profiles (CMYK) now use their
#: colorimetric table rather than their perceptual one.
INTENT = 1
#: ``cmsFLAGS_BLACKPOINTCOMPENSATION``
_BPC = 0x2000
#: ``cmsFLAGS_NOCACHE``: a transform shared by threads (cached per profile) keeps no state
_NOCACHE = 0x0040


class ColourProfileWarning(StylebridgeWarning):
    """A photo's embedded colour profile was not applied (unreadable, not for the image's
    colours, or Pillow without LittleCMS): the photo was read as sRGB."""


class ProfileError(ValueError):
    """An embedded ICC profile that cannot be read or used (its text says why)."""


def profile_bytes(img: Image.Image) -> bytes | None:
    """The ICC profile embedded in ``img``'s file (``info["icc_profile"]``), or ``None``."""
    icc = img.info.get("icc_profile")
    return bytes(icc) if isinstance(icc, bytes | bytearray) and icc else None


def _embedded(img: Image.Image) -> tuple[bytes | None, str | None]:
    """``(icc, note)``: ``img``'s ICC profile, else the profile equivalent to the ``nclx``
    code points of a HEIC/AVIF (:mod:`stylebridge.core.image_nclx`; ``None`` for sRGB), or
    ``(None, note)`` for code points that are not converted."""
    icc = profile_bytes(img)
    if icc is not None:
        return icc, None
    nclx = nclx_of(img)
    if nclx is None:
        return None, None
    return nclx_icc(nclx, grey=img.mode.split(";")[0] in ("L", "LA", "I", "1"))


@functools.cache
def _cms() -> Any:
    """Pillow's ``ImageCms`` module, or ``None`` when Pillow was built without LittleCMS."""
    if not features.check("littlecms2"):
        return None
    try:
        from PIL import ImageCms
    except ImportError:
        return None
    return ImageCms


def cms_available() -> bool:
    """Whether embedded colour profiles can be converted (Pillow built with LittleCMS)."""
    return _cms() is not None


# ---------------------------------------------------------------------------------------------
# Matrix/TRC profiles in float (16-bit files)


def _s15(data: bytes, at: int) -> float:
    return struct.unpack_from(">i", data, at)[0] / 65536.0


def _curve(data: bytes) -> Any:
    """A ``curv`` or ``para`` tag → a function of float arrays in ``[0, 1]``, as LittleCMS
    evaluates it (``cmsEvalToneCurveFloat``): a table by linear interpolation, the parametric
    types of ICC.1 (10.18) with their parameters in the order the tag stores them."""
    kind = data[:4]
    if kind == b"curv":
        count = struct.unpack_from(">I", data, 8)[0]
        if count == 0:
            return lambda x: x
        if count == 1:
            gamma = struct.unpack_from(">H", data, 12)[0] / 256.0
            return lambda x: np.power(x, gamma)
        table = np.frombuffer(data, ">u2", count, 12).astype(np.float64) / 65535.0
        grid = np.linspace(0.0, 1.0, count)
        return lambda x: np.interp(x, grid, table)
    if kind == b"para":
        ftype = struct.unpack_from(">H", data, 8)[0]
        n = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}.get(ftype)
        if n is None:
            raise ProfileError(f"unknown parametric curve type {ftype}")
        g, a, b, c, d, e, f = ([_s15(data, 12 + 4 * i) for i in range(n)] + [0.0] * 7)[:7]
        if ftype == 0:
            return lambda x: np.power(x, g)
        if ftype in (1, 2):  # (aX + b)^g (+ c) from -b/a, else (0 or) c
            if not a:
                return lambda x: np.zeros_like(x)
            edge, floor = -b / a, (c if ftype == 2 else 0.0)

            def piecewise(x: np.ndarray) -> np.ndarray:
                base = a * x + b  # LittleCMS: 0 (not c) where it is not above 0, at -b/a
                above = np.where(base > 0.0, np.power(np.maximum(base, 0.0), g) + floor, 0.0)
                return np.where(x >= edge, above, floor)
            return piecewise
        e, f = (e, f) if ftype == 4 else (0.0, 0.0)
        return lambda x: np.where(x >= d, np.power(np.maximum(a * x + b, 0.0), g) + e,
                                  c * x + f)
    raise ProfileError(f"unknown curve type {kind!r}")


def _tags(icc: bytes) -> dict[bytes, bytes]:
    """The tags of an ICC profile by signature."""
    count = struct.unpack_from(">I", icc, 128)[0]
    tags = {}
    for i in range(min(count, 1000)):
        sig, offset, size = struct.unpack_from(">4sII", icc, 132 + 12 * i)
        tags[sig] = icc[offset:offset + size]
    return tags


#: the PCS white (D50) as LittleCMS holds it (``cmsD50_XYZ``)
_D50 = np.array([0.9642, 1.0, 0.8249])


@dataclass(frozen=True)
class _Shaper:
    """A matrix/TRC profile: device values → linear light → PCS XYZ (D50)."""

    curves: tuple[Any, ...]       # one per channel (one for grey)
    matrix: np.ndarray | None     # 3×3 columns r, g, b XYZ; None for grey
    lab: bool = False             # grey whose curve gives L* / 100 (a Lab PCS), not Y
    black: float = 0.0            # Y of its black point (black point compensation)


def _lab_to_y(lightness: np.ndarray) -> np.ndarray:
    """CIE L* (0..100) → Y (white 1)."""
    f = (np.asarray(lightness, dtype=np.float64) + 16.0) / 116.0
    return np.where(f > 6.0 / 29.0, f ** 3, 3.0 * (6.0 / 29.0) ** 2 * (f - 4.0 / 29.0))


def _black_y(y: float) -> float:
    """The black point LittleCMS detects for a device black of luminance ``y``
    (``BlackPointAsDarkerColorant``: neutral, its L* kept within 0..50, else 0)."""
    lightness = 116.0 * np.cbrt(y) - 16.0 if y > (6.0 / 29.0) ** 3 else y * (29.0 / 3.0) ** 3
    return float(y) if 0.0 <= lightness <= 50.0 else 0.0


def _shaper(icc: bytes, space: str) -> _Shaper | None:
    """The matrix/TRC model of ``icc``; ``None`` where LittleCMS would use a table (an A2B
    tag), the tags are missing, or for a grey profile whose PCS is neither XYZ nor Lab."""
    try:
        tags = _tags(icc)
        if any(k in tags for k in (b"A2B0", b"A2B1", b"A2B2")):
            return None
        pcs = icc[20:24]
        zero = np.zeros(1)
        if space == "GRAY":  # LittleCMS: the curve gives Y with an XYZ PCS, L* / 100 with Lab
            if pcs not in (b"XYZ ", b"Lab "):
                return None
            curve = _curve(tags[b"kTRC"])
            lab = pcs == b"Lab "
            y0 = float(_lab_to_y(100.0 * curve(zero))[0] if lab else curve(zero)[0])
            return _Shaper((curve,), None, lab, _black_y(y0))
        cols = [[_s15(tags[k], 8 + 4 * j) for j in range(3)] for k in (b"rXYZ", b"gXYZ", b"bXYZ")]
        curves = tuple(_curve(tags[k]) for k in (b"rTRC", b"gTRC", b"bTRC"))
        matrix = np.array(cols, dtype=np.float64).T
        y0 = float((matrix @ np.array([float(c(zero)[0]) for c in curves]))[1])
        return _Shaper(curves, matrix, False, _black_y(y0))
    except (KeyError, struct.error, ProfileError, ValueError, IndexError):
        return None


def _srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Linear light → sRGB values (IEC 61966-2-1), clipped to ``[0, 1]``."""
    x = np.clip(linear, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1.0 / 2.4) - 0.055)


@functools.cache
def _srgb_from_xyz() -> np.ndarray:
    """PCS XYZ (D50) → linear sRGB: the inverse of LittleCMS' own sRGB colorants (Bradford
    adapted to D50), so that 16-bit files agree with the 8-bit conversions."""
    srgb = _cms().createProfile("sRGB")
    cols = [srgb.red_colorant[0], srgb.green_colorant[0], srgb.blue_colorant[0]]
    return np.linalg.inv(np.array(cols, dtype=np.float64).T)


# ---------------------------------------------------------------------------------------------
# Profiles


@dataclass(frozen=True)
class Profile:
    """An embedded profile as read once (:func:`read_profile`, cached by its bytes)."""

    name: str                     # its description ("Display P3")
    space: str                    # "RGB", "GRAY", "CMYK"...
    srgb: bool                    # sRGB already: nothing to do
    shaper: _Shaper | None        # its matrix/TRC model for float (16-bit) samples
    cms: Any                      # the ImageCmsProfile


#: the Pillow modes LittleCMS converts, by the profile's colour space
_MODES = {"RGB": ("RGB", "RGBA"), "GRAY": ("L", "LA"), "CMYK": ("CMYK",)}


@functools.lru_cache(maxsize=32)
def read_profile(icc: bytes) -> Profile:
    """``icc`` read by LittleCMS (which must be available); :class:`ProfileError` saying why
    it cannot be used."""
    import io

    cms = _cms()
    try:
        profile = cms.ImageCmsProfile(io.BytesIO(icc))
        space = str(profile.profile.xcolor_space).strip().upper()
        name = (profile.profile.profile_description or "").strip() or "unnamed"
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise ProfileError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                           ) from None
    if space not in _MODES:
        return Profile(name, space, False, None, profile)
    shaper = _shaper(icc, space) if space in ("RGB", "GRAY") else None
    srgb = False
    if space == "RGB":  # LittleCMS' own verdict (:func:`_srgb_probe`)
        probe = _srgb_probe()
        out = np.asarray(_transform(profile, "RGB", "RGB")(Image.fromarray(probe)))
        srgb = int(np.abs(out.astype(int) - probe).max()) <= 1
    return Profile(name, space, srgb, shaper, profile)


@functools.cache
def _srgb_probe() -> np.ndarray:
    """The colours that decide whether an RGB profile is sRGB (``uint8 [1, N, 3]``): every
    level of a grey ramp and of each primary alone (every level of each channel's curve), and
    every 17th level of each channel together (the 4913 colours of a cube: the matrix)."""
    ramp = np.arange(256, dtype=np.uint8)
    zero = np.zeros(256, dtype=np.uint8)
    ramps = [np.stack(c, -1) for c in ((ramp, ramp, ramp), (ramp, zero, zero),
                                       (zero, ramp, zero), (zero, zero, ramp))]
    levels = ramp[::17]
    cube = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    probe = np.concatenate([*ramps, cube])[None]
    probe.flags.writeable = False
    return probe


@functools.lru_cache(maxsize=64)
def _transform(profile: Any, in_mode: str, out_mode: str) -> Any:
    """A cached LittleCMS transform ``profile`` → sRGB, as a function of PIL images."""
    cms = _cms()
    srgb = cms.createProfile("sRGB")
    try:
        transform = cms.buildTransform(profile, srgb, in_mode, out_mode, renderingIntent=INTENT,
                                       flags=_NOCACHE | _BPC)
    except (cms.PyCMSError, OSError, ValueError) as exc:
        raise ProfileError(f"LittleCMS cannot use it ({exc})") from None
    return lambda img, in_place=False: cms.applyTransform(img, transform, inPlace=in_place)


def check_profile(img: Image.Image) -> tuple[Profile | None, str | None]:
    """``(profile, note)`` for ``img``'s embedded profile (or its HEIC/AVIF ``nclx`` code
    points, :func:`_embedded`): ``(None, None)`` without one or when it is sRGB already;
    ``(None, note)`` when it is not applied (unreadable, no LittleCMS, not for the image's
    colours, code points not converted; ``note`` says why: the photo is read as sRGB)."""
    icc, note = _embedded(img)
    if icc is None:
        return None, note
    if _cms() is None:
        return None, ("has an embedded colour profile, but this Pillow has no LittleCMS "
                      "(PIL.features.check('littlecms2') is False): read as sRGB, its colours "
                      "may be off")
    try:
        profile = read_profile(icc)
    except ProfileError as exc:
        return None, f"its embedded colour profile cannot be read ({exc}): read as sRGB"
    if profile.srgb:
        return None, None
    base = img.mode.split(";")[0]
    fits = {"RGB": ("RGB", "RGBA", "P", "PA", "YCbCr"), "GRAY": ("L", "LA", "I", "1"),
            "CMYK": ("CMYK",)}.get(profile.space, ())
    if base not in fits:
        return None, (f"its embedded colour profile {profile.name!r} is for {profile.space} "
                      f"colours, not this {img.mode} image: ignored, read as sRGB")
    return profile, None


def to_srgb(img: Image.Image, profile: Profile, *, in_place: bool = False
            ) -> tuple[Image.Image, str | None]:
    """``(img converted, None)``: an 8-bit ``img`` from ``profile`` (:func:`check_profile`)
    to sRGB by LittleCMS: RGB (or RGBA, alpha kept); ``(img, note)`` unchanged where
    LittleCMS refuses.  Grey images come out RGB; palettes and a PNG's transparent colour are
    expanded first; ``1`` images are left as they are.  ``in_place``: an RGB(A) ``img`` (the
    caller's own) is overwritten instead of copied."""
    if img.mode == "1":
        return img, None
    if "transparency" in img.info and img.mode in ("RGB", "L"):  # the key before the colours
        img = img.convert("RGBA" if img.mode == "RGB" else "LA")
    if img.mode in ("P", "PA"):
        img = img.convert("RGBA" if img.mode == "PA" or "transparency" in img.info else "RGB")
    elif img.mode == "YCbCr":
        img = img.convert("RGB")
    alpha = img.getchannel("A") if img.mode in ("LA", "RGBA") else None
    colour = img.convert("L") if img.mode == "LA" else img
    out_mode = "RGBA" if img.mode == "RGBA" else "RGB"
    try:
        transform = _transform(profile.cms, colour.mode, out_mode)
        if in_place and colour is img and img.mode == out_mode and not img.readonly:
            # (a memory-mapped file's pixels are read-only: those are copied)
            return transform(img, True) or img, None
        out = transform(colour)
    except ProfileError as exc:
        return img, f"its colour profile {profile.name!r}: {exc}; read as sRGB"
    if alpha is not None and out.mode == "RGB":
        out.putalpha(alpha)
    return out, None


def float_to_srgb(unit: np.ndarray, profile: Profile) -> tuple[np.ndarray, str | None]:
    """Samples in ``[0, 1]`` (``[H, W, 3]`` colour or ``[H, W]`` grey) of a 16-bit file, in
    ``profile``'s colours → sRGB ``[H, W, 3]`` in float, exactly for a matrix/TRC profile (as
    LittleCMS converts 8-bit files, :data:`INTENT`: relative colorimetric, the profile's
    black point mapped to sRGB black), else at 8 bits by LittleCMS (with a note)."""
    grey = unit.ndim == 2
    if profile.shaper is not None:
        shaper = profile.shaper
        black = shaper.black  # black point compensation: XYZ' = (XYZ - black D50) / (1 - black)
        if grey:  # neutral: X, Y, Z = Y × D50, which is sRGB's white: R = G = B = Y
            y = shaper.curves[0](np.clip(unit, 0.0, 1.0))
            y = _lab_to_y(100.0 * y) if shaper.lab else y
            if black:
                y = (y - black) / (1.0 - black)
            return np.repeat(_srgb_encode(y)[..., None], 3, axis=2), None
        linear = np.stack([shaper.curves[c](np.clip(unit[..., c], 0.0, 1.0)) for c in range(3)],
                          axis=-1)
        to_srgb_linear = _srgb_from_xyz()
        rgb = linear @ (to_srgb_linear @ shaper.matrix).T
        if black:
            rgb = (rgb - black * (to_srgb_linear @ _D50)) / (1.0 - black)
        return _srgb_encode(rgb), None
    eight = Image.fromarray(np.round(np.clip(unit, 0.0, 1.0) * 255.0).astype(np.uint8),
                            "L" if grey else "RGB")
    out, note = to_srgb(eight, profile)
    arr = np.asarray(out.convert("RGB"), dtype=np.float64) / 255.0
    return arr, note or (f"its colour profile {profile.name!r} is a table profile: its 16-bit "
                         "samples were converted to sRGB at 8 bits")


def over_white(img: Image.Image) -> Image.Image:
    """``img`` in RGB: alpha composited over white (also a palette's transparent entries and
    the tRNS colour key of an RGB, grey or 1-bit PNG), palettes, CMYK and the rest converted."""
    keyed = "transparency" in img.info and img.mode in ("P", "RGB", "L", "1")
    if img.mode in {"RGBA", "LA", "PA", "RGBa", "La"} or keyed:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img if img.mode == "RGB" else img.convert("RGB")


def describe_profile(img: Image.Image) -> str:
    """A few words on ``img``'s embedded profile for ``stylebridge info``: ``""`` without one
    (or with an sRGB one), else ``; colour profile 'Display P3' converted to sRGB`` or why it
    is ignored."""
    icc, note = _embedded(img)
    if icc is None:
        return "; colour code points (nclx) not converted, read as sRGB" if note else ""
    if _cms() is None:
        return "; colour profile not applied (Pillow without LittleCMS)"
    try:
        profile = read_profile(icc)
    except ProfileError:
        return "; colour profile unreadable, ignored"
    if check_profile(img)[1] is not None:
        return f"; colour profile {profile.name!r} ({profile.space}) ignored"
    return "" if profile.srgb else f"; colour profile {profile.name!r} converted to sRGB"


__all__ = ["INTENT", "ColourProfileWarning", "Profile", "ProfileError", "check_profile",
           "cms_available", "describe_profile", "float_to_srgb", "over_white",
           "profile_bytes", "read_profile", "to_srgb"]
