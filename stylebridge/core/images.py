"""Image tensors ↔ files.  Tensors are ``[B, 3, H, W]``; generator output is in ``[-1, 1]``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

from stylebridge.core.io import atomic_path
from stylebridge.errors import ImageError

# Refuse images above ~ 16k × 16k instead of PIL's warning-then-error behaviour.
MAX_PIXELS = 16384 * 16384


def from_generator_range(images: Tensor) -> Tensor:
    """``[-1, 1]`` → ``[0, 1]``, clamped."""
    return ((images.detach().float() + 1.0) / 2.0).clamp_(0.0, 1.0)


def to_uint8(images01: Tensor) -> np.ndarray:
    """``[B, 3, H, W]`` in ``[0, 1]`` → ``uint8 [B, H, W, 3]``."""
    arr = (images01.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8)
    return arr.permute(0, 2, 3, 1).cpu().numpy()


def save_png(path: str | Path, image01: Tensor) -> Path:
    """Write one image ``[3, H, W]`` (or ``[1, 3, H, W]``) in ``[0, 1]`` atomically."""
    if image01.ndim == 3:
        image01 = image01.unsqueeze(0)
    arr = to_uint8(image01)[0]
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")
    return path


def make_grid(images01: Tensor | Sequence[Tensor], ncol: int | None = None, pad: int = 2,
              fill: float = 1.0) -> Tensor:
    """Tile images (all the same size) into one ``[3, H', W']`` picture."""
    batch = torch.stack(list(images01)) if not isinstance(images01, Tensor) else images01
    n, c, h, w = batch.shape
    ncol = ncol or min(n, max(1, math.ceil(math.sqrt(n))))
    nrow = math.ceil(n / ncol)
    grid = batch.new_full((c, nrow * (h + pad) + pad, ncol * (w + pad) + pad), fill)
    for i in range(n):
        r, col = divmod(i, ncol)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[:, y:y + h, x:x + w] = batch[i]
    return grid


def labelled_grid(rows: Sequence[Sequence[Tensor]], labels: Sequence[str], *, pad: int = 2,
                  notice: str | None = None) -> Tensor:
    """Tiles ``rows[r][c]`` (``[3, T, T]`` in ``[0, 1]``) under a strip of column ``labels``."""
    ncol = len(labels)
    tiles = [t for row in rows for t in row]
    grid = make_grid(tiles, ncol=ncol, pad=pad)
    tile = tiles[0].shape[-1]
    strip = 14
    foot = 14 if notice else 0
    arr = to_uint8(grid[None])[0]
    canvas = Image.new("RGB", (arr.shape[1], arr.shape[0] + strip + foot), "white")
    canvas.paste(Image.fromarray(arr), (0, strip))
    draw = ImageDraw.Draw(canvas)
    for col, label in enumerate(labels):
        text = label
        while text and draw.textlength(text) > tile - 2:
            text = text[:-1]
        draw.text((pad + col * (tile + pad) + 1, 1), text, fill="black")
    if notice:
        draw.text((pad + 1, strip + arr.shape[0]), notice.upper(), fill="red")
    return torch.from_numpy(np.asarray(canvas).copy()).permute(2, 0, 1).float() / 255


def caption(image01: Tensor, text: str, max_lines: int = 3) -> Tensor:
    """Add a caption strip (``max_lines`` lines of PIL's built-in font) under a ``[3, H, W]`` image."""
    arr = (image01.permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    img = Image.fromarray(arr)
    draw = ImageDraw.Draw(img)
    lines: list[str] = []
    line = ""
    for word in text.split():
        if draw.textlength(f"{line} {word}".strip()) > img.width - 4 and line:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines = [*lines, line][:max_lines]
    canvas = Image.new("RGB", (img.width, img.height + 12 * max_lines + 2), "white")
    canvas.paste(img, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for i, text_line in enumerate(lines):
        draw.text((2, img.height + 1 + 12 * i), text_line, fill="black")
    return torch.from_numpy(np.asarray(canvas).copy()).permute(2, 0, 1).float() / 255


def load_image(path: str | Path) -> Tensor:
    """Read any common image file as RGB ``[3, H, W]`` in ``[0, 1]``.

    Grayscale, palette, RGBA, CMYK and 16-bit files are converted; unreadable,
    truncated or oversized files raise :class:`ImageError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError("no such file" if not path.exists() else "is not a file", path=path)
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_PIXELS:
                raise ImageError(f"image is {img.width}×{img.height}, larger than the "
                                 f"{MAX_PIXELS} pixel limit", path=path)
            img.load()
            if img.mode in {"I;16", "I;16B", "I;16L", "I"}:
                arr16 = np.asarray(img, dtype=np.float64)
                scale = 65535.0 if arr16.max() > 255 else 255.0
                arr = np.repeat((arr16 / scale)[..., None], 3, axis=2)
                return torch.from_numpy(arr.astype(np.float32)).permute(2, 0, 1).contiguous()
            if img.mode in {"RGBA", "LA", "PA"} or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                img = Image.alpha_composite(background, rgba)
            rgb = img.convert("RGB")
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError(f"image is larger than the {MAX_PIXELS} pixel limit", path=path) from None
    except (OSError, ValueError, SyntaxError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageError(f"cannot read image ({reason})", path=path) from None
    arr8 = np.asarray(rgb, dtype=np.uint8)
    return torch.from_numpy(arr8.copy()).permute(2, 0, 1).float().div_(255.0)
