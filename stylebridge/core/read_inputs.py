"""The files this process read as inputs (photos, checkpoints, network pickles), so that no
output is written onto one of them through another name.

An output is written atomically onto the file its path ends at, following a symlink
(:func:`stylebridge.core.io.atomic_path`): ``OUT/p_inversion.png`` left as a symlink to the
photo ``p.png`` would replace the photo, and ``RUN/model.safetensors`` linked to the
generator would replace the generator.  The readers (:func:`~stylebridge.core.images.
open_image`, :func:`~stylebridge.core.checkpoint.load_checkpoint`,
:func:`~stylebridge.core.safe_pickle.safe_load`) call :func:`note_input`; ``atomic_path``
calls :func:`check_not_an_input`, which refuses a destination that ends at a file read under
another name.  A file written under the name it was read by is not refused: a resumed trainer
reads its own ``model.safetensors`` and writes it again.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

#: the most files remembered (the oldest are forgotten first; a long ``serve`` reads many)
MAX_REMEMBERED = 100_000

_LOCK = threading.Lock()
#: the file a path ends at (links resolved) -> the absolute paths it was read by
_READ: dict[str, set[str]] = {}


def _target(path: str | Path) -> str | None:
    try:
        return os.path.realpath(path)
    except (OSError, ValueError):  # a NUL byte; realpath itself does not raise on loops
        return None


def note_input(path: str | Path) -> None:
    """Remember that this process read ``path`` as an input."""
    target = _target(path)
    if target is None:
        return
    given = os.path.abspath(path)
    with _LOCK:
        names = _READ.pop(target, None) or set()
        names.add(given)
        _READ[target] = names   # the most recent last
        while len(_READ) > MAX_REMEMBERED:
            _READ.pop(next(iter(_READ)))


def read_as(target: str | Path) -> set[str]:
    """The names under which this process read the file ``target`` (a resolved path)."""
    with _LOCK:
        return set(_READ.get(str(target), ()))


def check_not_an_input(dst: str | Path, target: str | Path) -> None:
    """Refuse (a one-line :class:`~stylebridge.errors.StylebridgeError` naming ``dst``) to
    write ``dst``, which ends at ``target``, when this process read ``target`` as an input
    under another name."""
    names = read_as(os.path.realpath(target))
    if not names or os.path.abspath(dst) in names:
        return
    from stylebridge.errors import StylebridgeError

    real = os.path.realpath(target)
    read = sorted(names)[0]
    what = f"{real}, which this run read" + ("" if read == real else f" as {read}")
    via = f"it is a link to {what}" if Path(dst).is_symlink() else f"it is {what}"
    raise StylebridgeError(f"not written: {via}; writing it would replace that input (remove "
                           "the link, or write elsewhere)", path=dst)


def forget_inputs() -> None:
    """Forget every file read so far (tests; a long-lived process between unrelated runs)."""
    with _LOCK:
        _READ.clear()


__all__ = ["MAX_REMEMBERED", "check_not_an_input", "forget_inputs", "note_input", "read_as"]
