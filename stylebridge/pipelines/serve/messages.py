"""The text of a failed request as a page may see it: no absolute path of the server's own
folders (the upload folder, the temporary folder the default work dir is made in); an
internal error (not one of stylebridge's one-line errors) keeps no absolute path at all and is
logged in full, with its traceback, on the server's terminal (logger ``stylebridge.serve``).
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

#: an absolute path in a message: a ``/`` at the start of the text or after a space, a quote,
#: a bracket, ``=`` or ``:``, up to the next space, quote or bracket
_ABSOLUTE = re.compile(r"(?:^|(?<=[\s'\"(\[{<=:,]))/[^\s'\"<>()\[\]{},;]*")


def server_folders() -> list[str]:
    """The folders of the server whose paths a page is not shown (longest first)."""
    folders = {os.environ.get("GRADIO_TEMP_DIR") or "", tempfile.gettempdir()}
    with contextlib.suppress(RuntimeError):  # no home folder
        folders.add(str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                        / "stylebridge"))
    for folder in list(folders):
        with contextlib.suppress(OSError, RuntimeError):
            folders.add(str(Path(folder).resolve()))
    return sorted((f.rstrip("/") for f in folders if f.strip("/")), key=len, reverse=True)


def _short(path: str) -> str:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return f"…/{name}" if name else "…"


def hide_paths(text: str, every: bool = False) -> str:
    """``text`` with each absolute path in a server folder (``every``: each absolute path)
    cut to its last name, ``…/NAME``."""
    folders = server_folders()

    def cut(match: re.Match[str]) -> str:
        path = match.group(0)
        if every or any(path == f or path.startswith(f + "/") for f in folders):
            return _short(path)
        return path

    return _ABSOLUTE.sub(cut, text)


def public_text(exc: BaseException) -> tuple[str, bool]:
    """The one line of ``exc`` a page is shown, paths hidden, and whether it is an internal
    error (then logged here with its traceback)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    internal = not isinstance(exc, StylebridgeError)
    if internal:
        LOG.error("stylebridge serve: internal error in a request: %s: %s",
                  type(exc).__name__, exc, exc_info=exc)
    return hide_paths(text, every=internal), internal


__all__ = ["hide_paths", "public_text", "server_folders"]
