"""Labels on pictures: the column and row labels of grids (:func:`labelled_grid`), a caption
under a picture (:func:`caption`), their fonts and type sizes.  Moved out of
:mod:`stylebridge.core.images`, which still answers these names."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from stylebridge.core.images import to_uint8
from stylebridge.errors import printable

#: the size (px) of label type on tiles up to 192 px; larger tiles get type 1/16 of their
#: width (64 px at 1024), so a grid shown shrunk on a page stays readable
LABEL_PX = 12
LINE = 15  # px per line of LABEL_PX type; gaps around labels are px // 6 (2 px)
#: tiles smaller than a column label's longest word are enlarged (nearest, a whole factor)
#: up to this size; a word still longer is shortened with an ellipsis, never split
MAX_LABEL_TILE = 256

#: label fonts, in order: DejaVu Sans from matplotlib (a dependency: Latin, Greek, Cyrillic,
#: with real spaces: PIL's own 10 px font drew "no coarse" as "nocoarse"), common system
#: fonts (Noto CJK for Chinese, Japanese, Korean); PIL's own font comes last
FALLBACK_FONTS = ("{matplotlib}/mpl-data/fonts/ttf/DejaVuSans.ttf",
                  "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                  "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
                  "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
                  "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
                  "/System/Library/Fonts/PingFang.ttc",
                  "C:/Windows/Fonts/arial.ttf", "C:/Windows/Fonts/msyh.ttc")
Font = ImageFont.ImageFont | ImageFont.FreeTypeFont


def label_px(tile: int) -> int:
    """Label type size (px) for ``tile`` px tiles: 12 up to 192 px, then 1/16 of the tile."""
    return max(LABEL_PX, tile // 16)


@functools.cache
def _fonts(px: int = LABEL_PX) -> tuple[Font, ...]:
    """The label fonts found on this machine (:data:`FALLBACK_FONTS`), then PIL's own, at ``px``."""
    import importlib.util

    spec = importlib.util.find_spec("matplotlib")
    root = (spec.submodule_search_locations or [""])[0] if spec else ""
    found: list[Font] = []
    for path in (p.format(matplotlib=root) for p in FALLBACK_FONTS):
        try:
            found.append(ImageFont.truetype(path, px))
        except OSError:  # not there, unreadable or not a font: the next one
            continue
    try:
        found.append(ImageFont.load_default(size=px))
    except (TypeError, ImportError, OSError):  # Pillow < 10.1 or no FreeType: the bitmap font
        found.append(ImageFont.load_default())
    return tuple(found)


@functools.cache
def _draws(index: int, char: str) -> bool:
    """Whether font ``index`` of :func:`_fonts` has a glyph for ``char`` (not its box)."""
    if char.isspace():
        return True
    glyph, box = ((m.size, bytes(m)) for m in map(_fonts()[index].getmask, (char, "\uffff")))
    return glyph != box  # U+FFFF is no character: every font draws its box


def label_font(text: str, px: int = LABEL_PX) -> Font:
    """The font to draw ``text`` with at ``px``: the first of :func:`_fonts` that draws every
    character (DejaVu Sans where it is found), else the one that draws the most."""
    chars = set(text)
    fonts = range(len(_fonts()))
    counts = [sum(_draws(i, c) for c in chars) for i in fonts]
    best = next((i for i in fonts if counts[i] == len(chars)), max(fonts, key=counts.__getitem__))
    return _fonts(px)[best]


#: a label's closing ``[...]`` (``[RANDOM WEIGHTS]``): kept whole when the label is cut
_TAG = re.compile(r"\s(\[[^\[\]]+\])$")


def _wrap(draw: ImageDraw.ImageDraw, text: str, width: int, font: Font | None = None, *,
          split: bool = False) -> list[str]:
    """Greedy word wrap to ``width`` px, only between words (a closing tag that fits stays on
    one line); a longer word is shortened with an ellipsis, or with ``split`` (a notice) split."""
    font = font or label_font(text)
    lines: list[str] = []
    line, words, found = "", text.split(), _TAG.search(text)
    if found and draw.textlength(found[1], font=font) <= width:
        words = [*text[:found.start()].split(), found[1]]  # `[RANDOM WEIGHTS]` whole
    for word in words:
        if not split and draw.textlength(word, font=font) > width:
            while word and draw.textlength(word + "…", font=font) > width:
                word = word[:-1]
            word += "…"
        while draw.textlength(word, font=font) > width and len(word) > 1:  # split
            if line:
                lines.append(line)
                line = ""
            cut = len(word) - 1
            while cut > 1 and draw.textlength(word[:cut], font=font) > width:
                cut -= 1
            lines.append(word[:cut])
            word = word[cut:]
        candidate = f"{line} {word}".strip()
        if line and draw.textlength(candidate, font=font) > width:
            lines.append(line)
            candidate = word
        line = candidate
    return [*lines, line]


def _fit(draw: ImageDraw.ImageDraw, text: str, width: int, max_lines: int,
         font: Font | None = None) -> list[str]:
    """:func:`_wrap`, but a label too long for ``max_lines`` loses whole words at the end of
    its name (an ellipsis says so), never its closing ``[...]`` tag."""
    font = font or label_font(text)
    lines = _wrap(draw, text, width, font)
    if len(lines) <= max_lines:
        return lines
    found = _TAG.search(text)
    tag = _wrap(draw, found.group(1), width, font)[:max_lines - 1] if found else []
    kept = _wrap(draw, text[:found.start()] if found else text, width, font)
    kept = kept[:max_lines - len(tag)]
    words = kept[-1].split()
    while words and draw.textlength(" ".join(words) + "…", font=font) > width:
        words.pop()
    return [*kept[:-1], " ".join(words) + "…", *tag]


def _lines_for(draw: ImageDraw.ImageDraw, texts: Sequence[str], width: int, px: int,
               least: int) -> int:
    """How many lines a strip of ``texts`` gets: what the longest needs (none when all are
    empty), at least ``least``, at most 4, unless two different texts would then read alike."""
    whole = {t: len(_wrap(draw, t, width, label_font(t, px))) for t in dict.fromkeys(texts)}
    need = max((n for t, n in whole.items() if t.strip()), default=0)
    n = min(max(need, least), max(least, 4)) if need else 0
    while n < need and len({tuple(_fit(draw, t, width, n, label_font(t, px)))
                            for t in whole}) < len(whole):
        n += 1
    return n


def _to_tensor(canvas: Image.Image) -> Tensor:
    return torch.from_numpy(np.asarray(canvas).copy()).permute(2, 0, 1).float() / 255


def labelled_grid(rows: Sequence[Sequence[Tensor]], labels: Sequence[str], *, pad: int = 2,
                  notice: str | None = None, row_labels: Sequence[str] | None = None,
                  min_tile: int = 0, label_lines: int = 1,
                  tile_labels: Sequence[str] | None = None) -> Tensor:
    """Tiles ``rows[r][c]`` (``[3, T, T]`` in ``[0, 1]``) with column ``labels`` on top.

    Labels wrap between words, never inside one: tiles smaller than ``min_tile`` or than a
    label's longest word are enlarged (nearest, a whole factor, up to :data:`MAX_LABEL_TILE`);
    the header has the lines the longest label needs (at least ``label_lines``, at most 4
    unless two labels would then read alike; none for empty labels).  ``tile_labels`` (one a
    tile: ``seed 3``) go above each tile, ``row_labels`` left, ``notice`` in red under the
    grid (never cut).  Type is :func:`label_px`: a 1024 px grid shown shrunk stays readable.
    Control characters in a label (a photo named with a newline) are drawn escaped (``\\n``)."""
    labels = [printable(t) for t in labels]
    row_labels = None if row_labels is None else [printable(t) for t in row_labels]
    tile_labels = None if tile_labels is None else [printable(t) for t in tile_labels]
    notice = None if notice is None else printable(notice)
    ncol = max(1, len(labels))
    tiles = [t for row in rows for t in row]
    size = tiles[0].shape[-1] if tiles else 0
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    words = [w for text in [*labels, *(tile_labels or [])] for w in text.split()]
    factor = max(1, -(-min_tile // size)) if size else 1

    def narrow(t: int, px: int) -> bool:  # a word of the labels is wider than a t px tile
        return any(probe.textlength(w, font=label_font(w, px)) > t - px // 3 for w in words)

    while size and size * (factor + 1) <= MAX_LABEL_TILE and narrow(size * factor,
                                                                     label_px(size * factor)):
        factor += 1
    if factor > 1:
        tiles = [torch.nn.functional.interpolate(t[None], scale_factor=factor, mode="nearest")[0]
                 for t in tiles]
    tile = size * factor
    px = label_px(tile)
    line, u = px * LINE // LABEL_PX, px // 6
    n_head = _lines_for(probe, labels, tile - 2 * u, px, label_lines)
    n_tile = _lines_for(probe, tile_labels, tile - 2 * u, px, 1) if tile_labels else 0
    header = line * n_head + 2 * u if n_head else 0
    above = line * n_tile + u if n_tile else 0  # each tile's own label
    left = 0
    if row_labels:
        widths = [probe.textlength(t, font=label_font(t, px)) for t in row_labels]
        longest = max((probe.textlength(w, font=label_font(w, px))
                       for t in row_labels for w in t.split()), default=0)
        left = int(min(max(min(max(widths), 13 * px), longest), 27 * px)) + 4 * u
    width = left + ncol * (tile + pad) + pad
    body = -(-len(tiles) // ncol) * (tile + pad + above) + pad
    # the notice (RANDOM WEIGHTS ...) is never cut: it says what the picture is
    notice = notice.upper() if notice else None
    notice_font = label_font(notice or "", px)
    notice_lines = _wrap(probe, notice, width - 4 * u, notice_font, split=True) if notice else []
    foot = line * len(notice_lines) + 2 * u if notice_lines else 0
    canvas = Image.new("RGB", (width, header + body + foot), "white")
    draw = ImageDraw.Draw(canvas)
    for i, t in enumerate(tiles):
        r, c = divmod(i, ncol)
        x, y = left + pad + c * (tile + pad), header + pad + r * (tile + pad + above)
        canvas.paste(Image.fromarray(to_uint8(t[None])[0]), (x, y + above))
        text = tile_labels[i] if n_tile and i < len(tile_labels or []) else ""
        font = label_font(text, px)
        for k, part in enumerate(_fit(draw, text, tile - 2 * u, n_tile, font) if text else []):
            draw.text((x + u, y + line * k), part, fill="black", font=font)
    for col, label in enumerate(labels):
        font = label_font(label, px)
        for i, text in enumerate(_fit(draw, label, tile - 2 * u, n_head, font) if n_head else []):
            draw.text((left + pad + col * (tile + pad) + u, u + line * i), text, fill="black",
                      font=font)
    for r, label in enumerate(row_labels or []):
        font = label_font(label, px)
        parts = _fit(draw, label, left - 3 * u, max(1, tile // line), font)
        y = header + pad + r * (tile + pad + above) + above + (tile - line * len(parts)) // 2
        for i, text in enumerate(parts):
            draw.text((2 * u, y + line * i), text, fill="black", font=font)
    for i, text in enumerate(notice_lines):
        draw.text((2 * u, header + body + u + line * i), text, fill="red", font=notice_font)
    return _to_tensor(canvas)


def caption(image01: Tensor, text: str, max_lines: int | None = None) -> Tensor:
    """A caption strip under a ``[3, H, W]`` image: ``text`` wrapped between words, whole (or
    cut to ``max_lines`` with an ellipsis)."""
    img = Image.fromarray(to_uint8(image01[None])[0])
    font, u, draw = label_font(text), LABEL_PX // 6, ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines = (_wrap(draw, text, img.width - 4 * u, font, split=True) if max_lines is None
             else _fit(draw, text, img.width - 4 * u, max_lines, font))
    canvas = Image.new("RGB", (img.width, img.height + LINE * len(lines) + 2 * u), "white")
    canvas.paste(img, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for i, text_line in enumerate(lines):
        draw.text((2 * u, img.height + u + LINE * i), text_line, fill="black", font=font)
    return _to_tensor(canvas)
