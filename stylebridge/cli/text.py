"""How the command line's console lays text out: words whole, tags unbroken, no padding
when piped (:func:`stylebridge.cli.options.cli_console` applies these to every print).

Rich wraps at the console's width and, where a word does not fit, folds it (``…/stylegan2/
version`` / ``s/1/files/…``) or cuts it with ``…`` (a sha256, ``(STYLEBRIDGE_EPI…``): a URL,
a path, a hash or a name copied from the output was then wrong.  Here text still wraps at
spaces, but a word wider than the console stays whole on a line of its own; a table's column
is at least as wide as its widest word (a table wider than the console is left for the
terminal to wrap); a table's title keeps a tag such as ``[RANDOM WEIGHTS]`` on one line; and
output that goes to a file or a pipe has no trailing spaces."""

from __future__ import annotations

import re
from typing import Any

from stylebridge.core.checkpoint import RANDOM_NOTICE

#: a title's words: a ``[...]`` tag, a ``RANDOM WEIGHTS`` notice (``(RANDOM WEIGHTS)``,
#: ``RANDOM WEIGHTS:``) and any other run of non-spaces
_TITLE_WORD = re.compile(r"\[[^\]\n]*\]\S*|\S*" + re.escape(RANDOM_NOTICE) + r"\S*|\S+")
#: spaces at the end of a line (an ANSI style code may follow them)
_TRAILING = re.compile(r"[ \t]+((?:\x1b\[[0-9;]*m)*)(?=\n)")


def strip_trailing_spaces(text: str) -> str:
    """``text`` without the spaces rich pads each line with (before every newline; an
    unfinished last line, a question, keeps its own)."""
    return _TRAILING.sub(r"\1", text)


def title_breaks(plain: str, width: int) -> list[int]:
    """The offsets of the spaces at which ``plain`` breaks into lines of at most ``width``
    cells (greedy, as rich wraps), a tag (:data:`_TITLE_WORD`) never broken; a word wider
    than ``width`` gets a line of its own."""
    from rich.cells import cell_len

    breaks: list[int] = []
    start = 0  # where the current line starts
    for word in _TITLE_WORD.finditer(plain):
        newline = plain.rfind("\n", start, word.start())
        if newline >= 0:  # a line the title breaks itself
            start = newline + 1
        if (word.start() > start and plain[word.start() - 1] == " "
                and cell_len(plain[start:word.end()]) > width):
            breaks.append(word.start() - 1)
            start = word.start()
    return breaks


def _plain_text(console: Any, cell: Any) -> str | None:
    """A cell's text (a markup string rendered as rich renders it), or None for another
    renderable."""
    from rich.text import Text

    if isinstance(cell, Text):
        return cell.plain
    if isinstance(cell, str):
        return console.render_str(cell).plain
    return None


def _widest_word(console: Any, cells: list[Any], whole_lines: bool) -> int:
    from rich.cells import cell_len

    widest = 0
    for cell in cells:
        text = _plain_text(console, cell)
        if text is None:
            continue
        parts = text.splitlines() if whole_lines else text.split()
        widest = max([widest, *(cell_len(part.strip()) for part in parts)])
    return widest


def keep_words(console: Any, table: Any, width: int) -> int:
    """Make ``table`` (a rich ``Table``) split no word: each column at least as wide as its
    widest word (its widest line where it does not wrap), whatever the console's width; its
    title broken at spaces so that each line fits the table's width, a tag whole.

    Where the table's natural layout is wider than ``width``, the columns are narrowed here
    (the one furthest above its widest word first, as rich narrows the widest), never below
    their widest word, and fixed: rich's own narrowing ignores words and would fold them.
    Returns the width the table needs (more than ``width`` when its words are wider)."""
    lows: list[int] = []
    for column in table.columns:
        if column.width is not None:  # a fixed width: the caller measured its cells
            lows.append(column.width)
            continue
        cells = [column.header] if table.show_header else []
        widest = _widest_word(console, [*cells, *column._cells], column.no_wrap)
        column.min_width = max(column.min_width or 0, widest)
        if column.max_width is not None and column.max_width < widest:
            column.max_width = widest
        lows.append(column.min_width)
    try:
        needed = _fit(console, table, width, lows)
    except Exception:  # another rich: its own layout, the minimum widths above
        needed = width
    if table.title:
        table.title = _title(console, table, max(width, needed))
    return needed


def _fit(console: Any, table: Any, width: int, lows: list[int]) -> int:
    """Fix the widths of ``table``'s columns where rich would narrow them below ``lows``;
    returns the width the table needs."""
    columns = table.columns
    if table.expand or not columns:
        return width
    wide = console.options.update_width(10**6)
    pads = [table._get_padding_width(column._index) for column in columns]
    widths = [max(table._measure_column(console, wide, column).maximum - pad, low)
              for column, pad, low in zip(columns, pads, lows, strict=True)]
    room = width - table._extra_width - sum(pads)
    if sum(widths) <= room:
        return width  # rich lays it out as it is
    while sum(widths) > room:
        k = max((i for i in range(len(widths)) if widths[i] > lows[i]),
                key=lambda i: widths[i] - lows[i], default=None)
        if k is None:
            break  # every column at its widest word: wider than the console
        widths[k] -= 1
    for column, w in zip(columns, widths, strict=True):
        column.width = w
    return width + max(0, sum(widths) - room)


def _title(console: Any, table: Any, width: int) -> Any:
    from rich.cells import cell_len
    from rich.style import Style
    from rich.text import Text

    title = table.title
    if isinstance(title, str):
        title = console.render_str(title, style=Style.pick_first(table.title_style,
                                                                  "table.title"),
                                   highlight=False)
    if not isinstance(title, Text):
        return table.title
    try:  # the width rich gives the title: the table's own
        extra = table._extra_width
        widths = table._calculate_column_widths(console,
                                                console.options.update_width(width - extra))
        table_width = sum(widths) + extra
    except Exception:  # another rich: the console's width
        table_width = width
    if all(cell_len(line) <= table_width for line in title.plain.splitlines()):
        return table.title  # one line, as rich lays it out
    return broken_text(title, table_width, table.title_justify)


def broken_text(text: Any, width: int, justify: str | None = None) -> Any:
    """``text`` (a rich ``Text``) broken at spaces into lines of at most ``width`` cells
    (:func:`title_breaks`: a tag, a word wider than ``width``, stays whole), each line
    centred or right-aligned as ``justify`` says; rich wraps it no further."""
    from rich.cells import cell_len
    from rich.text import Text

    chars = list(text.plain)
    for offset in title_breaks(text.plain, width):
        chars[offset] = "\n"
    text = text.copy()
    text.plain = "".join(chars)  # as long as before: the styles stay where they were
    lines = text.split("\n", allow_blank=True)
    for line in lines:
        line.rstrip()
        room = width - cell_len(line.plain)
        if room > 0 and justify in ("center", "right"):
            line.pad_left(room // 2 if justify == "center" else room)
    joined = Text("\n").join(lines)
    joined.no_wrap = True  # broken here; a word wider than the width stays whole
    joined.overflow = "ignore"
    joined.end = text.end
    return joined


def whole_text(console: Any, renderable: Any, **markup: Any) -> Any:
    """A string (rich markup unless ``markup=False``) or ``Text`` printed on ``console``
    that holds a word wider than the console, broken at spaces by :func:`broken_text`
    instead of rich's folding; anything else (what rich wraps without splitting a word)
    as it is."""
    from rich.cells import cell_len
    from rich.text import Text

    if not isinstance(renderable, str | Text):
        return renderable
    plain = renderable.plain if isinstance(renderable, Text) else renderable
    if max((cell_len(word) for word in plain.split()), default=0) <= console.width:
        return renderable
    text = renderable if isinstance(renderable, Text) else console.render_str(
        renderable, **{k: v for k, v in markup.items() if v is not None})
    if text.no_wrap:
        return text
    from rich.containers import Renderables

    # in a container: print() joins the Text objects it is given into one, which would drop
    # no_wrap and let rich fold the long word again
    return Renderables([broken_text(text, console.width, text.justify)])


def whole_words(console: Any, renderable: Any) -> int:
    """Make ``renderable`` split no word when printed on ``console`` (a table, also one in a
    ``Padding``; anything else is left as it is); returns the width it needs: more than the
    console's when a word is wider (the caller prints it that wide, uncropped)."""
    from rich.padding import Padding
    from rich.table import Table

    if isinstance(renderable, Table):
        return keep_words(console, renderable, console.width)
    if isinstance(renderable, Padding) and isinstance(renderable.renderable, Table):
        sides = renderable.left + renderable.right
        return keep_words(console, renderable.renderable, console.width - sides) + sides
    return console.width


__all__ = ["broken_text", "keep_words", "strip_trailing_spaces", "title_breaks", "whole_text",
           "whole_words"]
