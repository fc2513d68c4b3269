"""The samples of an image file as ``[0, 1]``: integer files by the depth their file declares
(16-bit PNG, TIFF and PGM by 65535, 32-bit TIFFs by their type's full scale), float files by
their value range, and 16-bit colour from its high and low bytes
(:func:`stylebridge.core.images.load_image` reads the files; these turn their pixels into
numbers)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from stylebridge.errors import ImageError


def float_image(arr: np.ndarray, path: Path) -> Tensor:
    """A one-channel float image → RGB in ``[0, 1]``, by its value range: ``[0, 1]`` as is
    (the float convention), else ``[0, 255]`` or ``[0, 65535]`` scaled down."""
    if not np.isfinite(arr).all():
        raise ImageError("float image contains NaN or Inf values", path=path)
    top = float(arr.max(initial=0.0))
    scale = 1.0 if top <= 1.0 else 255.0 if top <= 255.0 else 65535.0
    arr = np.clip(arr / scale, 0.0, 1.0)
    return torch.from_numpy(np.repeat(arr[None], 3, axis=0).astype(np.float32)).contiguous()


#: the Pillow modes of one-channel integer images (16-bit PNG, 16/32-bit TIFF, 16-bit PGM)
INTEGER_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})


def declared_type(img: Image.Image) -> tuple[int, bool] | None:
    """``(bits, signed)`` of an integer image's samples as its file declares them: a TIFF's
    BitsPerSample and SampleFormat (unsigned unless it says otherwise); 16-bit unsigned for
    a PNG (a 16-bit grey IHDR) and a PGM with a maxval above 255 (Pillow scales it to 65535);
    ``None`` where nothing declares it (an image made in Python, JPEG 2000, FITS...)."""
    if img.format in ("PNG", "PPM") and img.mode in INTEGER_MODES:
        return 16, False
    tags = getattr(img, "tag_v2", None) if img.format == "TIFF" else None
    try:
        bits = int(tags[258][0] if isinstance(tags[258], tuple) else tags[258])
        fmt = tags.get(339, 1)
        signed = int(fmt[0] if isinstance(fmt, tuple) else fmt) == 2
    except (TypeError, KeyError, IndexError, ValueError):
        return None
    return (bits, signed) if 8 < bits <= 32 else None


def integer_unit(img: Image.Image, arr: np.ndarray) -> np.ndarray:
    """The pixels ``arr`` (``np.asarray(img)``) of an integer image ``img`` as float64 in
    ``[0, 1]``: divided by the largest value of the type its file declares
    (:func:`declared_type`), whatever values it holds: 65535 for a 16-bit PNG, TIFF or PGM (a
    dark one stays dark), ``2**bits - 1`` unsigned (Pillow's wrapped 32-bit values read back
    as unsigned), ``2**(bits - 1) - 1`` signed (negative values black).  Only where nothing
    declares it is it guessed from the values: within ``0..65535`` by 65535, or by 255 when
    none is above 255; beyond, as mode ``I``'s 32-bit signed."""
    declared = declared_type(img)
    if declared is None:
        lo, hi = int(arr.min(initial=0)), int(arr.max(initial=0))
        if lo >= 0 and hi <= 65535:
            return arr / (65535.0 if hi > 255 else 255.0)
    bits, signed = declared or (32, True)
    if not signed and bits == 32 and arr.dtype == np.int32:
        arr = arr.view(np.uint32)  # Pillow keeps uint32 samples in int32: 2**31 came as < 0
    return np.clip(arr / float(2 ** (bits - 1 if signed else bits) - 1), 0.0, 1.0)


#: Pillow's rawmodes of 16-bit colour (high bytes kept) → those of the low bytes (N: native)
LOW_RAWMODE = {f"{m};16{o}": f"{m};16{x}" for m in ("RGB", "RGBA") for o, x in
                (("B", "L"), ("L", "B"), ("N", "B" if sys.byteorder == "little" else "L"))}


def deep_colour(high: Image.Image, low: Image.Image,
                colour: Callable[[np.ndarray], np.ndarray] | None = None) -> Tensor:
    """RGB ``[3, H, W]`` in ``[0, 1]`` of 16-bit colour from its ``high`` and ``low`` bytes
    (upright) / 65535, alpha over white (as :func:`~stylebridge.core.images.load_image` does);
    ``colour``: RGB ``[H, W, 3]`` → sRGB in float, before the alpha (an embedded profile's,
    :func:`~stylebridge.core.image_color.float_to_srgb`)."""
    full = (np.asarray(high, np.float32) * 256.0 + np.asarray(low, np.float32)) / 65535.0
    if colour is not None:
        rgb = colour(full[..., :3].astype(np.float64)).astype(np.float32)
        full = np.concatenate([rgb, full[..., 3:]], axis=2)
    if full.shape[2] == 4:
        full = full[..., :3] * full[..., 3:] + (1.0 - full[..., 3:])
    return torch.from_numpy(full.astype(np.float32)).permute(2, 0, 1).contiguous()


def planar16(img: Image.Image, tiles: list) -> bool:
    """Whether ``img`` (opened, not loaded) is a 16-bit RGB(A) TIFF with planar samples
    (PlanarConfiguration 2, uncompressed) that Pillow would unpack with 8-bit one-band
    rawmodes (``R``, ``G``...): garbage, read here by :func:`planar16_bytes` instead."""
    if img.format != "TIFF" or img.mode not in ("RGB", "RGBA"):
        return False
    declared = declared_type(img)
    rawmodes = {str(t[3][0] if isinstance(t[3], tuple) else t[3]) for t in tiles}
    return declared is not None and declared[0] == 16 and bool(rawmodes) and \
        rawmodes <= set(img.mode)


def planar16_bytes(path: Path, img: Image.Image, tiles: list) -> tuple[Image.Image, Image.Image]:
    """The high and the low bytes (two images of ``img``'s mode) of a 16-bit planar TIFF
    (:func:`planar16`), read from its uncompressed strips or tiles; :class:`ImageError` naming
    the file for any other layout."""
    endian = getattr(getattr(img, "tag_v2", None), "_endian", "<")
    signed = (declared_type(img) or (16, False))[1]
    full = np.zeros((img.height, img.width, len(img.mode)), dtype=np.uint16)
    try:
        with open(path, "rb") as fh:
            for tile in tiles:
                codec, (x0, y0, x1, y1), offset, args = tile[0], tile[1], tile[2], tile[3]
                stride = int(args[1]) if isinstance(args, tuple) and len(args) > 1 else 0
                if codec != "raw" or signed:
                    raise ValueError(f"{'signed' if signed else codec} samples")
                row = stride or (x1 - x0) * 2
                fh.seek(offset)
                data = fh.read(row * (y1 - y0))
                plane = np.frombuffer(data, f"{endian}u2", (y1 - y0) * (row // 2))
                band = img.mode.index(str(args[0] if isinstance(args, tuple) else args))
                full[y0:y1, x0:x1, band] = plane.reshape(y1 - y0, row // 2)[:, :x1 - x0]
    except (OSError, ValueError) as exc:  # a short file, a compressed one
        raise ImageError(f"cannot read this 16-bit planar TIFF (PlanarConfiguration 2: "
                         f"{os_reason(exc)}); save it with contiguous samples", path=path
                         ) from None
    return (Image.fromarray((full >> 8).astype(np.uint8), img.mode),
            Image.fromarray((full & 255).astype(np.uint8), img.mode))


def os_reason(exc: Exception) -> str:
    """A short reason for ``exc`` (its first line)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:1].lower() + text[1:]


def describe_samples(img: Image.Image, tiles: list | None = None) -> str:
    """How an opened (not yet loaded) image's samples are read, in a few words
    (``stylebridge info``): ``16-bit RGB, read at 16 bits``, ``16-bit grey (÷ 65535)``,
    ``8-bit RGBA (alpha over white)``...  and its embedded colour profile
    (:func:`~stylebridge.core.image_color.describe_profile`: ``; colour profile 'Display P3'
    converted to sRGB``).  ``tiles``: the image's tiles (its ``tile`` before loading) where
    they decide (16-bit colour)."""
    from stylebridge.core.image_color import describe_profile

    return _samples(img, tiles) + describe_profile(img)


def _samples(img: Image.Image, tiles: list | None) -> str:
    rawmodes = {str(t[3] if not isinstance(t[3], tuple) else t[3][0]) for t in tiles or []
                if len(t) > 3 and t[3]}
    if planar16(img, tiles or []):
        return f"16-bit {img.mode} (planar), read at 16 bits" + (" (alpha over white)"
                                                                 if img.mode == "RGBA" else "")
    if img.mode in ("RGB", "RGBA") and rawmodes and rawmodes <= set(LOW_RAWMODE):
        return f"16-bit {img.mode}, read at 16 bits" + (" (alpha over white)"
                                                        if img.mode == "RGBA" else "")
    if img.mode in INTEGER_MODES:
        declared = declared_type(img)
        if declared is None:
            return "integer grey, depth not declared (÷ 65535, or 255 when no value is above it)"
        bits, signed = declared
        return f"{bits}-bit {'signed ' if signed else ''}grey (÷ {2 ** (bits - signed) - 1})"
    if img.mode == "F":
        return "32-bit float grey (as it is within [0, 1], else ÷ 255 or 65535)"
    keyed = " (transparent colour over white)" if "transparency" in img.info and \
        img.mode in ("RGB", "L", "1") else ""
    words = {"1": "1-bit black and white", "L": "8-bit grey", "LA": "8-bit grey with alpha "
             "(over white)", "P": "palette colours", "RGB": "8-bit RGB", "RGBA": "8-bit RGBA "
             "(alpha over white)", "CMYK": "CMYK (converted to RGB)", "YCbCr": "8-bit YCbCr"}
    return words.get(img.mode, f"mode {img.mode} (converted to RGB)") + keyed


__all__ = ["INTEGER_MODES", "LOW_RAWMODE", "declared_type", "deep_colour", "describe_samples",
           "float_image", "integer_unit", "planar16", "planar16_bytes"]
