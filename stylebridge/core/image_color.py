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
  profiles: what 16-bit files carry); with a table (LUT) profile they are converted at 8 bits
  by LittleCMS (a note says so).  32-bit float TIFFs are not converted.
* A profile that is sRGB already (LittleCMS maps it within one level of 255) is skipped.
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

from stylebridge.errors import StylebridgeWarning

#: LittleCMS rendering intent: perceptual (0).  For the matrix/TRC profiles of phones and
#: cameras (Display P3, Adobe RGB) LittleCMS computes it exactly as relative colorimetric (such
#: profiles hold no perceptual table): colours inside sRGB keep their values, the media white
#: becomes sRGB white, colours outside sRGB are clipped - as :func:`float_to_srgb` does.  For
#: table profiles (CMYK press profiles) the profile's perceptual table compresses out-of-gamut
#: colours smoothly instead of clipping them, which suits photos, and is what viewers use.
INTENT = 0
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
    """A ``curv`` or ``para`` tag → a function of float arrays in ``[0, 1]``."""
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
        if ftype in (1, 2):  # (aX + b)^g (+ c) above -b/a, else (0 or) c
            edge, floor = (-b / a if a else 0.0), (c if ftype == 2 else 0.0)
            return lambda x: np.where(x >= edge, np.power(np.maximum(a * x + b, 0.0), g) + floor,
                                      floor)
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


@dataclass(frozen=True)
class _Shaper:
    """A matrix/TRC profile: device values → linear light → PCS XYZ (D50)."""

    curves: tuple[Any, ...]       # one per channel (one for grey)
    matrix: np.ndarray | None     # 3×3 columns r, g, b XYZ; None for grey


def _shaper(icc: bytes, space: str) -> _Shaper | None:
    """The matrix/TRC model of ``icc``; ``None`` where LittleCMS would use a table (an A2B
    tag) or the tags are missing."""
    try:
        tags = _tags(icc)
        if any(k in tags for k in (b"A2B0", b"A2B1", b"A2B2")):
            return None
        if space == "GRAY":
            return _Shaper((_curve(tags[b"kTRC"]),), None)
        cols = [[_s15(tags[k], 8 + 4 * j) for j in range(3)] for k in (b"rXYZ", b"gXYZ", b"bXYZ")]
        curves = tuple(_curve(tags[k]) for k in (b"rTRC", b"gTRC", b"bTRC"))
        return _Shaper(curves, np.array(cols, dtype=np.float64).T)
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
    if space == "RGB":  # LittleCMS' own verdict: every 17th level of each channel
        levels = np.arange(0, 256, 17, dtype=np.uint8)
        probe = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(1, -1, 3)
        out = np.asarray(_transform(profile, "RGB", "RGB")(Image.fromarray(probe)))
        srgb = int(np.abs(out.astype(int) - probe).max()) <= 1
    return Profile(name, space, srgb, shaper, profile)


@functools.lru_cache(maxsize=64)
def _transform(profile: Any, in_mode: str, out_mode: str) -> Any:
    """A cached LittleCMS transform ``profile`` → sRGB, as a function of PIL images."""
    cms = _cms()
    srgb = cms.createProfile("sRGB")
    try:
        transform = cms.buildTransform(profile, srgb, in_mode, out_mode, renderingIntent=INTENT,
                                       flags=_NOCACHE)
    except (cms.PyCMSError, OSError, ValueError) as exc:
        raise ProfileError(f"LittleCMS cannot use it ({exc})") from None
    return lambda img, in_place=False: cms.applyTransform(img, transform, inPlace=in_place)


def check_profile(img: Image.Image) -> tuple[Profile | None, str | None]:
    """``(profile, note)`` for ``img``'s embedded profile: ``(None, None)`` without one or
    when it is sRGB already; ``(None, note)`` when it is not applied (unreadable, no
    LittleCMS, not for the image's colours; ``note`` says why: the photo is read as sRGB)."""
    icc = profile_bytes(img)
    if icc is None:
        return None, None
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
    ``profile``'s colours → sRGB ``[H, W, 3]`` in float, exactly for a matrix/TRC profile
    (relative colorimetric, as :data:`INTENT` is for these), else at 8 bits by LittleCMS
    (with a note)."""
    grey = unit.ndim == 2
    if profile.shaper is not None:
        shaper = profile.shaper
        if grey:  # neutral: R = G = B = the luminance
            linear = shaper.curves[0](np.clip(unit, 0.0, 1.0))
            return np.repeat(_srgb_encode(linear)[..., None], 3, axis=2), None
        linear = np.stack([shaper.curves[c](np.clip(unit[..., c], 0.0, 1.0)) for c in range(3)],
                          axis=-1)
        rgb = linear @ (_srgb_from_xyz() @ shaper.matrix).T
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
    icc = profile_bytes(img)
    if icc is None:
        return ""
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
