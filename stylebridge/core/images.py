"""Image tensors ↔ files.  Tensors are ``[B, 3, H, W]``; generator output is in ``[-1, 1]``."""

from __future__ import annotations

import errno
import functools
import re
import stat
import threading
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError, features
from torch import Tensor

from stylebridge.core.image_color import (
    ColourProfileWarning,
    Profile,
    check_profile,
    float_to_srgb,
    over_white,
    to_srgb,
)
from stylebridge.core.image_depth import (  # noqa: F401  (declared_type: re-exported)
    INTEGER_MODES,
    LOW_RAWMODE,
    declared_type,
    deep_colour,
    float_image,
    integer_unit,
    planar16,
    planar16_bytes,
)
from stylebridge.core.io import atomic_path
from stylebridge.core.limits import MAX_PIXELS, REDUCE_KEEP_SIDE
from stylebridge.core.read_inputs import note_input
from stylebridge.core.resize import resize as resize_filtered
from stylebridge.core.sniff import file_kind
from stylebridge.errors import ImageError, StylebridgeError

# MAX_PIXELS (16384 × 16384 = 268,435,456, :mod:`stylebridge.core.limits`): larger images are
# refused in one line before decoding.  Pillow's own bomb limit (~179 M pixels, a warning above
# ~89 M) is lifted while opening, so this documented limit applies, to every command (``info``).
_PIL_LIMIT_LOCK = threading.Lock()
#: the file suffixes read from a folder (an image named otherwise is read when named itself);
#: HEIC/HEIF need the optional ``pillow-heif`` (:func:`heif_support`), AVIF a Pillow built
#: with it; a GIF is read as its first frame (as when it is named itself)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".jfif", ".bmp", ".webp", ".tif", ".tiff", ".heic",
                  ".heif", ".avif", ".gif")
HEIF_INSTALL = "pip install 'stylebridge[heif]'"


@functools.cache
def heif_support() -> bool:
    """Whether HEIC/HEIF photos (what iPhones save) can be read: ``pillow-heif`` is installed,
    and then its Pillow opener is registered (once).  It applies the file's own rotation and
    clears the EXIF orientation, so :func:`exif_upright` does not turn such a photo twice."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def unreadable_reason(path: Path, otherwise: str) -> str:
    """Why Pillow could not identify ``path``, from what the file is (:func:`file_kind`): empty,
    a HEIC/HEIF photo without ``pillow-heif``, an AVIF Pillow cannot decode, another kind of
    file; ``otherwise`` where it looks like an image, nothing is known or it cannot be read."""
    try:
        if path.stat().st_size == 0:
            return "is empty (0 bytes)"
        kind, what = file_kind(path)
    except OSError:
        return otherwise
    if what == "a HEIC/HEIF image" and not heif_support():
        return f"is a HEIC/HEIF photo; reading it needs pillow-heif ({HEIF_INSTALL})"
    if what == "an AVIF image" and not features.check("avif"):
        return "is an AVIF image and this Pillow was built without AVIF support"
    if kind not in ("image", "unknown"):
        return f"is {what}, not an image"
    return otherwise


def _too_large(path: Path, exc: Exception) -> ImageError:
    """The one line for a decompression bomb Pillow refused (over twice :data:`MAX_PIXELS`)."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    size = f"has {int(found[1]):,} pixels, " if found else "is "
    return ImageError(f"image {size}larger than the {MAX_PIXELS:,} pixel limit", path=path)


def open_image(path: Path) -> Image.Image:
    """``Image.open(path)`` (lazy: only the header is read) with :data:`MAX_PIXELS` as the only
    size limit: Pillow's bomb check is set above it while the header is parsed (under a lock,
    as ``Image.MAX_IMAGE_PIXELS`` is global) and its warning silenced.  HEIC/HEIF files open
    when ``pillow-heif`` is installed (:func:`heif_support`)."""
    heif_support()
    with _PIL_LIMIT_LOCK:
        old = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow raises above twice this, warns above it
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img = Image.open(path)
        except Image.DecompressionBombError as exc:
            raise _too_large(path, exc) from None
        finally:
            Image.MAX_IMAGE_PIXELS = old
    if img.width * img.height > MAX_PIXELS:
        img.close()
        raise ImageError(f"image is {img.width}×{img.height}, larger than the {MAX_PIXELS:,} "
                         "pixel limit", path=path)
    note_input(path)   # no output is written onto it under another name
    return img


def from_generator_range(images: Tensor) -> Tensor:
    """``[-1, 1]`` → ``[0, 1]``, clamped."""
    return ((images.detach().float() + 1.0) / 2.0).clamp_(0.0, 1.0)


def to_uint8(images01: Tensor) -> np.ndarray:
    """``[B, 3, H, W]`` in ``[0, 1]`` → ``uint8 [B, H, W, 3]``."""
    arr = (images01.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8)
    return arr.permute(0, 2, 3, 1).cpu().numpy()


#: zlib level of the PNGs written here: lossless like every level; at 1024 px it wrote in 0.31×
#: the time of Pillow's default (6) for files 8 % larger (``benchmarks/bench_png.py``,
#: ``benchmarks/results/png_levels.json``).
PNG_COMPRESS_LEVEL = 3


#: the PNG text key that marks a picture of tiles written by stylebridge (``grid.png``, sample
#: grids): a folder given as input photos does not read it as a photo
GRID_KEY = "stylebridge-grid"


#: the PNG text key of a picture's notice (``RANDOM WEIGHTS: ...``): the file says it too
NOTICE_KEY = "stylebridge-notice"


def save_png(path: str | Path, image01: Tensor, *, grid: bool = False,
             notice: str | None = None) -> Path:
    """Write one image ``[3, H, W]`` (or ``[1, 3, H, W]``) in ``[0, 1]`` atomically, as an
    untagged (sRGB) 8-bit PNG; ``grid`` marks it as a grid of tiles (:data:`GRID_KEY`, see
    :func:`is_grid_file`), ``notice`` is kept in the file (:data:`NOTICE_KEY`: a picture made
    on random weights says so when it travels without its run's report).  NaN or infinite
    values are refused (:class:`StylebridgeError` naming the file and how many; nothing is
    written)."""
    from PIL.PngImagePlugin import PngInfo

    path = Path(path)
    if not bool(torch.isfinite(image01).all()):  # NaN was written black, ±Inf clamped
        bad = int((~torch.isfinite(image01)).sum())
        raise StylebridgeError(f"the picture has {bad} NaN or infinite value(s); nothing was "
                               "written", path=path)
    if image01.ndim == 3:
        image01 = image01.unsqueeze(0)
    arr = to_uint8(image01)[0]
    info = PngInfo() if grid or notice else None
    if grid:
        info.add_text(GRID_KEY, "tiles of a stylebridge run, not a photo")
    if notice:
        info.add_itxt(NOTICE_KEY, notice)  # iTXt: any text, UTF-8
    with atomic_path(path) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG", compress_level=PNG_COMPRESS_LEVEL,
                                  pnginfo=info)
    return path


def is_grid_file(path: str | Path) -> bool:
    """Whether ``path`` is a PNG that :func:`save_png` marked as a grid: a text chunk keyed
    :data:`GRID_KEY` before the image data, where Pillow writes it (and reads ``info``).  The
    chunk headers are read, not the image (a folder of 10,000 photos was listed in 4.7 s,
    two thirds of it in ``Image.open``); ``False`` for anything unreadable."""
    if Path(path).suffix.lower() != ".png":
        return False
    key = GRID_KEY.encode("latin-1") + b"\0"
    try:
        with open(path, "rb") as fh:
            if fh.read(8) != b"\x89PNG\r\n\x1a\n":
                return False
            while True:
                head = fh.read(8)
                if len(head) < 8 or head[4:] in (b"IDAT", b"IEND"):
                    return False
                length = int.from_bytes(head[:4], "big")
                if head[4:] in (b"tEXt", b"zTXt", b"iTXt") and length >= len(key):
                    if fh.read(len(key)) == key:
                        return True
                    length -= len(key)
                fh.seek(length + 4, 1)  # the rest of the chunk and its CRC
    except OSError:
        return False


def resize_square(image: Tensor, size: int, name: str = "torch-bilinear") -> Tensor:
    """``[3, H, W]`` or ``[B, 3, H, W]`` → square ``size`` with the named filter of
    :mod:`stylebridge.core.resize` (default: bilinear + antialias; pass an encoder's
    ``preprocessing.resize`` to prepare its input as upstream does)."""
    batch = image if image.ndim == 4 else image[None]
    batch = resize_filtered(batch, size, name)
    return batch if image.ndim == 4 else batch[0]


def _low_bytes(path: Path, tiles: list) -> Image.Image | None:
    """The low bytes of a 16-bit RGB(A) PNG or TIFF, of which Pillow keeps the high bytes
    only (mode RGB/RGBA): the file decoded again with every tile unpacked as
    :data:`LOW_RAWMODE` says; ``None`` for any other file, or when Pillow refuses that."""
    swapped = []
    for tile in tiles:
        args = tile[3] if isinstance(tile[3], tuple) else (tile[3],)
        if not (args and isinstance(args[0], str) and args[0] in LOW_RAWMODE):
            return None
        args = (LOW_RAWMODE[args[0]], *args[1:]) if len(args) > 1 else LOW_RAWMODE[args[0]]
        swapped.append(tile._replace(args=args) if hasattr(tile, "_replace") else (*tile[:3], args))
    try:
        with open_image(path) as again:
            again.tile = swapped
            again.load()
            return again.copy() if swapped else None
    except (OSError, ValueError, SyntaxError, ImageError):
        return None


#: EXIF orientation (tag 0x0112) → the transposition that shows the picture upright
_ORIENTATION = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
                8: Image.Transpose.ROTATE_90}


def _upright_method(img: Image.Image) -> Image.Transpose | None:
    """The transposition :func:`exif_upright` applies to ``img`` (``None``: none)."""
    try:
        orientation = int(img.getexif().get(0x0112, 1))
    except Exception:  # malformed EXIF from a camera or an editor: the pixels still count
        return None
    return _ORIENTATION.get(orientation)


def exif_upright(img: Image.Image) -> Image.Image:
    """``img`` as it is meant to be seen: a phone photo stored sideways with an EXIF
    orientation is turned upright (as viewers do), so the face detector sees an upright
    face.  Unreadable EXIF data counts as no orientation.  The upright copy says orientation
    1 (``ImageOps.exif_transpose``): turning it upright again changes nothing."""
    method = _upright_method(img)
    if method is None:
        return img
    try:
        from PIL import ImageOps

        return ImageOps.exif_transpose(img)
    except Exception:  # EXIF Pillow read but cannot write back: turned, the tag left
        return img.transpose(method)


def reduce_factor(width: int, height: int) -> int:
    """The integer factor a ``width × height`` photo is reduced by when it is read: 1 (read
    as it is) unless its shorter side is at least twice
    :data:`~stylebridge.core.limits.REDUCE_KEEP_SIDE` (8192 px); then the largest factor
    that keeps the shorter side at least 4096 px (15000 × 15000 → 3, read as 5000 × 5000)."""
    return max(1, min(width, height) // REDUCE_KEEP_SIDE)


def _rgb(img: Image.Image) -> Image.Image:
    """``img`` in RGB: alpha (also a palette's or a PNG's tRNS colour key) composited over
    white, palettes, CMYK and the rest converted (:func:`over_white`)."""
    return over_white(img)


def _reducible(img: Image.Image) -> bool:
    """Whether :func:`_reduced` averages ``img``'s own samples (no conversion first)."""
    return img.mode in {"I", "F", *INTEGER_MODES} or (
        img.mode in {"L", "RGB"} and "transparency" not in img.info)


def _reduced(img: Image.Image, factor: int) -> Image.Image:
    """``img`` reduced ``factor`` times on each side by exact box averaging (``Image.reduce``)
    while still 8-bit (or the file's own integer/float samples), converted as
    :func:`load_image` does first where averaging would differ (alpha, a transparent colour,
    palettes, CMYK)."""
    if img.mode in {"L", "RGB", "I", "F"} and _reducible(img):
        return img.reduce(factor)
    if img.mode in INTEGER_MODES:  # I;16*: Image.reduce needs I (the same values)
        return img.convert("I").reduce(factor)
    return _rgb(img).reduce(factor)


#: pixels per strip that :func:`_srgb_reduced` converts at a time (12 MB of RGB)
_STRIP_PIXELS = 1 << 22


def _srgb_reduced(img: Image.Image, profile: Profile, factor: int
                  ) -> tuple[Image.Image, str | None]:
    """``(img converted to sRGB, then reduced)``: what :func:`_reduced` gives of the whole
    photo once :func:`~stylebridge.core.image_color.to_srgb` converted it (alpha over white),
    done in strips of rows (a multiple of ``factor``) so that no converted copy of the whole
    photo is made; ``(img reduced, note)`` unconverted where LittleCMS refuses."""
    rows = factor * max(1, _STRIP_PIXELS // (factor * max(1, img.width)))
    out = Image.new("RGB", (-(-img.width // factor), -(-img.height // factor)))
    for top in range(0, img.height, rows):
        strip = img.crop((0, top, img.width, min(img.height, top + rows)))
        strip, note = to_srgb(strip, profile, in_place=True)
        if note:
            return _reduced(img, factor), note
        out.paste(_rgb(strip).reduce(factor), (0, top // factor))
    return out, None


def os_error_reason(exc: OSError) -> str:
    """What went wrong with a file, in plain lower-case words and without ``[Errno N]`` or the
    file name (the message names it once, in front): ``permission denied``, ``read-only file
    system``, ``input/output error``; the first line of ``str(exc)`` for an error without an
    errno (Pillow's ``image file is truncated``)."""
    text = exc.strerror if exc.errno is not None and exc.strerror else (
        str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    return text[:1].lower() + text[1:]


def image_error(path: Path, exc: Exception) -> ImageError:
    """The one-line :class:`ImageError` for what Pillow raised reading ``path``: what the file
    is when it is no image (:func:`unreadable_reason`: empty, text, a video...), else Pillow's
    reason with the path said once, in front; an error of the system (no permission, an I/O
    error) as its plain words (:func:`os_error_reason`: ``permission denied``)."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return ImageError(f"cannot read image ({os_error_reason(exc)})", path=path)
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    reason = reason.replace(f" '{path}'", "").replace(f" {path}", "")  # named once, in front
    if isinstance(exc, UnidentifiedImageError):
        return ImageError(unreadable_reason(path, f"cannot read image ({reason})"), path=path)
    return ImageError(f"cannot read image ({reason})", path=path)


def load_image(path: str | Path, *, notes: list[str] | None = None) -> Tensor:
    """Read any common image file as RGB ``[3, H, W]`` in ``[0, 1]``, upright, in sRGB.

    Grayscale, palette, RGBA (over white), CMYK, 16-bit and 32-bit integer files
    (:func:`integer_unit`: by the depth the file declares) are converted; 16-bit RGB(A) PNGs
    and TIFFs keep all 16 bits (:func:`_low_bytes`; planar TIFFs: :func:`planar16_bytes`),
    not Pillow's high byte; a transparent colour (PNG tRNS) is white, as alpha is; an
    embedded ICC colour profile (Display P3, Adobe RGB, CMYK...), or the ``nclx`` colour code
    points of a HEIC/AVIF, is converted to sRGB (:mod:`stylebridge.core.image_color`:
    relative colorimetric with black point compensation); a GIF or another animation gives
    its first frame; an EXIF orientation (phone photos) is applied (:func:`exif_upright`); a
    photo whose shorter side is 8192 px or more is reduced by an integer factor while it is
    read (:func:`reduce_factor`; smaller photos are read exactly as they are): an 8-bit one
    with a profile is converted first, then box-averaged (in strips of rows: no converted
    copy of the whole photo is kept, the peak memory is that of a photo without a profile;
    LittleCMS converts all its pixels, ~1 s more for 67 M pixels), as an sRGB photo is
    averaged in sRGB; a 16-bit grey one is averaged in its own encoding and then converted
    (converting it first would need 8 bytes a pixel); unreadable, truncated or oversized
    files raise :class:`ImageError` naming the file.  The values are always within
    ``[0, 1]``.  A profile that is not applied (unreadable; Pillow without LittleCMS; nclx
    code points not converted, such as HDR's PQ and HLG) is said: appended to ``notes`` when
    given (a batch reports it), else a
    :class:`~stylebridge.core.image_color.ColourProfileWarning`.
    """
    said: list[str] = []
    image = _load_image(Path(path), said)
    for text in dict.fromkeys(said):
        if notes is not None:
            notes.append(text)
        else:
            warnings.warn(f"{path}: {text}", ColourProfileWarning, stacklevel=2)
    return image


def _load_image(path: Path, said: list[str]) -> Tensor:
    """:func:`load_image`; the notes on its colour profile go to ``said``."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        why = ("is a symlink loop" if exc.errno == errno.ELOOP else
               "is a broken symlink" if path.is_symlink() else "no such file")
        raise ImageError(why, path=path) from None
    if stat.S_ISDIR(mode):
        raise ImageError("is a folder, not an image file", path=path)
    if not stat.S_ISREG(mode):  # a FIFO would block, /dev/zero never ends
        raise ImageError("is not a regular file (a FIFO, socket or device?)", path=path)
    size: tuple[int, int] | None = None
    try:
        with open_image(path) as opened:
            size = opened.size
            tiles = list(opened.tile)  # load() empties them; a 16-bit colour file needs them
            planar = planar16_bytes(path, opened, tiles) if planar16(opened, tiles) else None
            if planar is None:
                opened.load()
            factor = reduce_factor(*opened.size)
            method = _upright_method(opened)  # after a reduction (8-bit, 1/9 of the pixels at 3)
            profile = _noted(check_profile(opened), said)
            img = opened if planar is None else planar[0]
            if factor > 1 and profile is not None and img.mode not in {"I", "F", *INTEGER_MODES}:
                img, profile = _noted(_srgb_reduced(img, profile, factor), said), None
            elif factor > 1:  # (16-bit grey: averaged, then converted in float)
                img = _reduced(img, factor)
            img = img if method is None else img.transpose(method)
            low = None if factor > 1 else planar[1] if planar is not None else (
                _low_bytes(path, tiles) if img.mode in ("RGB", "RGBA") else None)
            if low is not None:  # 16-bit colour: the high bytes and the low bytes
                colour = None if profile is None else (
                    lambda rgb: _noted(float_to_srgb(rgb, profile), said))
                return deep_colour(img, low if method is None else low.transpose(method),
                                   colour)
            if img.mode == "F":  # 32-bit float (TIFF): [0, 1] by convention
                return float_image(np.asarray(img, dtype=np.float64), path)
            if img.mode in INTEGER_MODES:
                return _integer(opened, img, profile, factor, said)
            if profile is not None:
                img = _noted(to_srgb(img, profile, in_place=True), said)
            rgb = _rgb(img)
            # one writable uint8 copy; the decoded images go before the float tensor is made
            # (a 200-megapixel photo peaked at 5 GB with every copy alive)
            arr8 = np.array(rgb, dtype=np.uint8)
            del rgb, img
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:  # checked again by formats sized at load
        raise _too_large(path, exc) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise image_error(path, exc) from None
    except MemoryError:  # this photo, not the run: a batch skips it and goes on
        raise _out_of_memory(path, size) from None
    try:
        out = torch.empty((3, *arr8.shape[:2]), dtype=torch.float32)
        for c in range(3):  # channel by channel: no second full-size float buffer
            out[c].copy_(torch.from_numpy(arr8[..., c]))
    except (MemoryError, RuntimeError) as exc:  # torch says "not enough memory" in a RuntimeError
        if not isinstance(exc, MemoryError) and "memory" not in str(exc).lower():
            raise
        raise _out_of_memory(path, size) from None
    del arr8
    return out.div_(255.0)


def _noted(result: tuple, said: list[str]) -> object:
    """The first item of ``(value, note)``; ``note`` (when there is one) goes to ``said``."""
    value, note = result
    if note:
        said.append(note)
    return value


def _integer_rgb(original: Image.Image, img: Image.Image, profile: Profile | None,
                 said: list[str], keyed: bool = True) -> np.ndarray:
    """An integer (16/32-bit grey) image ``img`` (``original`` upright) as RGB ``[H, W, 3]``
    float64 in ``[0, 1]``: by the depth ``original``'s file declares (:func:`integer_unit`),
    its profile's grey converted to sRGB, a PNG's transparent grey (tRNS) white."""
    arr = np.asarray(img)
    unit = integer_unit(original, arr)
    rgb = np.repeat(unit[..., None], 3, axis=2) if profile is None else _noted(
        float_to_srgb(unit, profile), said)
    key = img.info.get("transparency")
    if keyed and isinstance(key, int) and not isinstance(key, bool):
        rgb[arr == key] = 1.0
    return rgb


def _integer(opened: Image.Image, img: Image.Image, profile: Profile | None, factor: int,
             said: list[str]) -> Tensor:
    """:func:`_integer_rgb` as the ``[3, H, W]`` float32 tensor :func:`load_image` returns
    (a transparent grey only where the photo was not reduced: averages lose it)."""
    rgb = _integer_rgb(opened, img, profile, said, keyed=factor == 1)
    return torch.from_numpy(rgb.astype(np.float32)).permute(2, 0, 1).contiguous()


def picture_rgb8(image: Image.Image) -> np.ndarray:
    """A PIL image (``load_photo``, ``align_face``) as ``uint8 [H, W, 3]`` sRGB, as
    :func:`load_image` reads its file (at 8 bits): upright (:func:`exif_upright`), integer
    samples by the depth its file declared (also once turned upright), its embedded
    profile (or HEIC/AVIF nclx code points) converted, transparency over white.  A profile not applied is a
    :class:`~stylebridge.core.image_color.ColourProfileWarning`."""
    said: list[str] = []
    upright = exif_upright(image)
    profile = _noted(check_profile(image), said)
    if upright.mode in INTEGER_MODES:
        rgb = _integer_rgb(image, upright, profile, said)
        out = np.round(rgb * 255.0).astype(np.uint8)
    elif upright.mode == "F":
        unit = float_image(np.asarray(upright, dtype=np.float64), None)
        out = np.round(unit.permute(1, 2, 0).numpy() * 255.0).astype(np.uint8)
    else:
        if profile is not None:
            upright = _noted(to_srgb(upright, profile), said)
        out = np.asarray(_rgb(upright), dtype=np.uint8)
    for text in dict.fromkeys(said):
        warnings.warn(f"this picture {text}", ColourProfileWarning, stacklevel=3)
    return out


def _out_of_memory(path: Path, size: tuple[int, int] | None) -> ImageError:
    """The photo that did not fit in memory, named with its size (a run skips it)."""
    what = "this image" if size is None else f"this {size[0]}×{size[1]} image"
    return ImageError(f"out of memory reading {what} (a smaller copy of it would fit)", path=path)


#: the label names that moved to :mod:`stylebridge.core.labels`, still answered here
_LABELS = frozenset({'FALLBACK_FONTS', 'Font', 'LABEL_PX', 'LINE', 'MAX_LABEL_TILE', 'caption', 'label_font', 'label_px', 'labelled_grid'})


def __getattr__(name: str) -> object:
    if name in _LABELS:  # imported when asked: labels.py imports this module
        from stylebridge.core import labels

        return getattr(labels, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
