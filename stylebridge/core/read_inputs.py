"""The files this process read as inputs (photos, checkpoints, network pickles), so that no
output is written onto one of them through another name.

An output is written atomically onto the file its path ends at, following a symlink
(:func:`stylebridge.core.io.atomic_path`): ``OUT/p_inversion.png`` left as a symlink to the
photo ``p.png`` would replace the photo, and ``RUN/model.safetensors`` linked to the
generator would replace the generator.  The readers (:func:`~stylebridge.core.images.
open_image`, :func:`~stylebridge.core.checkpoint.load_checkpoint`,
:func:`~stylebridge.core.safe_pickle.safe_load`) call :func:`note_input`; ``atomic_path``
calls :func:`check_not_an_input`, which refuses a destination that is a symlink to a file read
under another name.  A plain file is replaced as a directory entry (never written through),
and a link the run read itself is its own file: a resumed trainer reads its
``model.safetensors`` and writes it again.  Photos a batch has not read yet are guarded up
front (:func:`stylebridge.pipelines.photos.output_names`: an output linked to a photo
clashes).
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


def _entry(path: str | Path) -> str:
    """The directory entry ``path`` names: its folder with links resolved, and its own name
    (a link itself stays the link): two spellings of one entry give one string."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(os.path.realpath(folder), name)


def check_not_an_input(dst: str | Path, target: str | Path) -> None:
    """Refuse (a one-line :class:`~stylebridge.errors.StylebridgeError` naming ``dst``) to
    write through the symlink ``dst`` onto ``target`` when this process read ``target`` as
    an input under another name.  A plain file ``dst`` is replaced as an entry (another hard
    link to its file keeps its content): never refused; nor is the link a run read itself."""
    if not Path(dst).is_symlink():
        return
    real = os.path.realpath(target)
    names = read_as(real)
    if not names or _entry(dst) in {_entry(n) for n in names}:
        return
    from stylebridge.errors import StylebridgeError

    read = sorted(names)[0]
    what = f"{real}, which this run read" + ("" if read == real else f" as {read}")
    raise StylebridgeError(f"not written: it is a link to {what}; writing it would replace "
                           "that input (remove the link, or write elsewhere)", path=dst)


def forget_inputs() -> None:
    """Forget every file read so far (tests; a long-lived process between unrelated runs)."""
    with _LOCK:
        _READ.clear()


__all__ = ["MAX_REMEMBERED", "check_not_an_input", "forget_inputs", "note_input", "read_as"]
