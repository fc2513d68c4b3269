"""The text of a failed request as a page may see it: no absolute path of the server's own
folders (the upload folder, the temporary folder the default work dir is made in); an
internal error (not one of stylebridge's one-line errors) keeps no absolute path at all and is
logged in full, with its traceback, on the server's terminal (logger ``stylebridge.serve``).

A path is cut to its last name, ``…/NAME``.  The server's folders are found as written
(spaces and all; on Windows with either separator and in any case); a path that follows a
quote (``[Errno 21] Is a directory: '/tmp/my folder/x'``) runs to the closing quote, any
other to the next space.  An internal error's other absolute paths are found by their start
(``/``, ``C:\\``, ``\\\\server``) after a space, a quote, a bracket, ``=``, ``:`` or ``,``;
a URL (``https://…``) and a lone slash in prose (``sketch / ink``) are not paths.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from pathlib import Path

from stylebridge.errors import StylebridgeError

LOG = logging.getLogger("stylebridge.serve")

#: an absolute path's start: at the start of the text or after a space, a quote, a bracket,
#: ``=``, ``:`` or ``,``: ``/`` and a name (not ``//``: a URL's), a drive (``C:\\``, ``C:/``)
#: or a UNC share (``\\\\server``)
_ABSOLUTE = re.compile(r"(?:^|(?<=[\s'\"(\[{<=:,]))"
                       r"(?:/[^\s/'\"<>()\[\]{},;]|[A-Za-z]:[\\/](?![\\/])|\\\\\w)")
#: what ends a path that does not follow a quote
_ENDS = frozenset("'\"<>()[]{},;")
_SEPARATORS = "/\\"


def _windows(folder: str) -> bool:
    return bool(re.match(r"^(?:[A-Za-z]:|\\\\)", folder)) or os.name == "nt"


def server_folders() -> list[str]:
    """The folders of the server whose paths a page is not shown (longest first); never
    the working directory (an unset ``GRADIO_TEMP_DIR`` is not ``Path("")``)."""
    folders = {tempfile.gettempdir()}
    if os.environ.get("GRADIO_TEMP_DIR", "").strip():
        folders.add(os.environ["GRADIO_TEMP_DIR"])
    with contextlib.suppress(RuntimeError):  # no home folder
        folders.add(str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                        / "stylebridge"))
    for folder in list(folders):
        if folder.strip():
            with contextlib.suppress(OSError, RuntimeError):
                folders.add(str(Path(folder).resolve()))
    kept = {f.rstrip(_SEPARATORS) for f in folders if f.strip()}
    # a root (``/``, ``C:\\``) is every path, not a folder of the server's
    kept = {f for f in kept if f.strip(_SEPARATORS) and not re.fullmatch(r"[A-Za-z]:", f)}
    return sorted(kept, key=len, reverse=True)


def _folder_pattern(folders: list[str]) -> re.Pattern[str] | None:
    """The server's folders, literally (either separator on Windows), each followed by a
    separator or by what ends a path."""
    alternatives = []
    for folder in folders:
        parts = re.split(r"[\\/]+", folder)
        if _windows(folder):
            body = r"[\\/]+".join(re.escape(part) for part in parts)
            alternatives.append(f"(?i:{body})")
        else:
            alternatives.append("/+".join(re.escape(part) for part in parts))
    if not alternatives:
        return None
    return re.compile(r"(?<![\w.~-])(?:" + "|".join(alternatives) + r")"
                      r"(?=$|[\\/\s'\"<>()\[\]{},;:])")


def _end(text: str, start: int, after: int) -> int:
    """Where the path starting at ``start`` ends, scanning from ``after``: at the closing
    quote when one opens it, else at the next space or :data:`_ENDS` character."""
    quote = text[start - 1] if start and text[start - 1] in "'\"" else None
    if quote is not None:
        close = text.find(quote, after)
        if close != -1 and "\n" not in text[after:close]:
            return close
    end = after
    while end < len(text) and not text[end].isspace() and text[end] not in _ENDS:
        end += 1
    return end


def _short(path: str) -> str:
    name = re.split(r"[\\/]", path.rstrip(_SEPARATORS))[-1]
    return f"…/{name}" if name else "…"


def hide_paths(text: str, every: bool = False, strip: str = "") -> str:
    """``text`` with each absolute path in a server folder (``every``: each absolute path)
    cut to its last name, ``…/NAME``; ``strip`` (a folder, e.g. an upload's) is first
    removed with the separator after it, leaving the names under it."""
    if strip.strip(_SEPARATORS):
        text = re.sub(re.escape(strip.rstrip(_SEPARATORS)) + r"[\\/]+", "", text)
    spans: list[tuple[int, int]] = []
    pattern = _folder_pattern(server_folders())
    if pattern is not None:
        spans += [(m.start(), _end(text, m.start(), m.end())) for m in pattern.finditer(text)]
    if every:
        spans += [(m.start(), _end(text, m.start(), m.end())) for m in _ABSOLUTE.finditer(text)]
    out, at = [], 0
    for start, end in sorted(spans, key=lambda span: (span[0], -span[1])):
        if start < at:  # inside a path already cut
            continue
        out += [text[at:start], _short(text[start:end])]
        at = end
    return "".join([*out, text[at:]])


def public_text(exc: BaseException, strip: str = "") -> tuple[str, bool]:
    """The one line of ``exc`` a page is shown, paths hidden (``strip``: a folder removed
    first, :func:`hide_paths`), and whether it is an internal error (then logged here with
    its traceback)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    internal = not isinstance(exc, StylebridgeError)
    if internal:
        LOG.error("stylebridge serve: internal error in a request: %s: %s",
                  type(exc).__name__, exc, exc_info=exc)
    return hide_paths(text, every=internal, strip=strip), internal


__all__ = ["hide_paths", "public_text", "server_folders"]
