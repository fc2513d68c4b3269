"""What a pickle would import, read without unpickling it: the one wording of every refusal.

Every loader of untrusted pickles refuses a global it does not allow before anything is
called: the NVlabs unpickler (:class:`stylebridge.core.safe_pickle.SafeUnpickler`, its own
allow-list) and torch's weights-only loader (``torch_load_safe``: rosinality, pSp/e4e, FSE,
StyleRes, StyleDomain, HyperDomainNet, MindTheGap, ArcFace and FID checkpoints).  They say so
in one wording that names the global (:func:`refused_global`)::

    refuses to load: the pickle references `posix.system`, which is not on the allow-list
    (no code was run)

torch's own message names the global only for the ``GLOBAL`` opcode (pickle protocols up
to 3); for ``STACK_GLOBAL`` (protocols 4 and 5, e.g. ``pickle.dumps(obj)``) it stops at the
first opcode it does not support, and the name is read here from the opcodes
(:func:`pickle_globals`, :mod:`pickletools`: nothing is imported, constructed or called).
"""

from __future__ import annotations

import contextlib
import io
import pickletools
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from stylebridge.errors import ConversionError, UnsafePickleError

#: opcodes whose argument is a string an object might be named by
_STRINGS = frozenset({"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE",
                      "SHORT_BINUNICODE", "BINUNICODE8"})
_GETS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
#: pickles read from one file at most (a legacy ``torch.save`` file holds five in a row)
_MAX_PICKLES = 8
#: globals torch's weights-only loader admits besides its own list (``torch_load_safe``
#: allows the ``argparse.Namespace`` of rosinality's training options as plain data)
EXTRA_TORCH_ALLOWED = frozenset({"argparse.Namespace"})


def refused_global(name: str | None, where: str = "the pickle") -> str:
    """The refusal of a global, in the words every loader uses: ``name`` is
    ``module.qualname`` (``None``: not known)."""
    what = f"`{name}`" if name else "a global"
    return (f"refuses to load: {where} references {what}, which is not on the allow-list "
            "(no code was run)")


def pickle_globals(stream: BinaryIO) -> Iterator[str]:
    """The globals (``module.name``) the pickle(s) in ``stream`` would import, in order, read
    from the opcodes: ``GLOBAL``/``INST`` name theirs, ``STACK_GLOBAL`` the two strings
    pushed before it (directly or through the memo; ``?`` when they cannot be told).  Stops
    quietly at the first malformed opcode or after the last of the pickles that follow one
    another (legacy ``torch.save`` files)."""
    for _ in range(_MAX_PICKLES):
        pushed: list[Any] = []  # what each opcode pushed, in order (a string or None)
        memo: dict[int, Any] = {}
        try:
            for op, arg, _pos in pickletools.genops(stream):
                name = op.name
                if name in ("GLOBAL", "INST"):
                    yield str(arg).replace(" ", ".", 1)
                    pushed.append(None)
                elif name == "STACK_GLOBAL":
                    module, attr = (pushed[-2:] if len(pushed) >= 2 else (None, None))
                    ok = isinstance(module, str) and isinstance(attr, str)
                    yield f"{module}.{attr}" if ok else "?"
                    pushed.append(None)
                elif name in _STRINGS:
                    pushed.append(arg if isinstance(arg, str) else None)
                elif name == "MEMOIZE":
                    memo[len(memo)] = pushed[-1] if pushed else None
                elif name in _PUTS:
                    memo[int(arg)] = pushed[-1] if pushed else None
                elif name in _GETS:
                    pushed.append(memo.get(int(arg)))
                elif op.stack_after:
                    pushed.append(None)
        except Exception:  # untrusted bytes: a malformed opcode ends the scan
            return
        if stream.read(1) != b"\x80":  # no further pickle (protocol 2+ starts with PROTO)
            return
        stream.seek(-1, io.SEEK_CUR)


def file_globals(path: str | Path) -> list[str]:
    """:func:`pickle_globals` of a pickle file, or of the ``data.pkl`` of a ``torch.save``
    zip archive; ``[]`` when it cannot be read."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if n.endswith("data.pkl")]
                if not names:
                    return []
                with zf.open(names[0]) as fh:
                    return list(pickle_globals(io.BytesIO(fh.read())))
        with open(path, "rb") as fh:
            return list(pickle_globals(fh))
    except (OSError, zipfile.BadZipFile, ValueError):
        return []


def torch_allows() -> Callable[[str], bool]:
    """Whether torch's weights-only loader admits a global (its allow-list, the globals the
    user added, :data:`EXTRA_TORCH_ALLOWED`); without that list (another torch), every
    global outside ``torch``, ``collections`` and :data:`EXTRA_TORCH_ALLOWED` counts as
    refused."""
    try:
        from torch import _weights_only_unpickler as unpickler

        allowed = set(unpickler._get_allowed_globals()) | set(
            unpickler._get_user_allowed_globals())
    except Exception:  # a private API: fall back to the modules torch's list is made of
        return lambda name: (name in EXTRA_TORCH_ALLOWED
                             or name.startswith(("torch.", "collections.")))
    return lambda name: name in allowed or name in EXTRA_TORCH_ALLOWED


def first_refused(path: str | Path, allows: Callable[[str], bool]) -> str | None:
    """The first global of the pickle in ``path`` that ``allows`` refuses (``None``: none)."""
    return next((g for g in file_globals(path) if not allows(g)), None)


def weights_only_refusal(path: str | Path) -> UnsafePickleError | None:
    """The refusal of ``path`` by torch's weights-only loader, naming the first global it
    does not admit (:func:`refused_global`); ``None`` when the file names no such global
    (then its failure was something else: say that instead)."""
    name = first_refused(path, torch_allows())
    if name is None:
        return None
    return UnsafePickleError(refused_global(name if name != "?" else None), path=path)


#: how ``torch_load_safe`` (``core/stylegan2/rosinality.py``) words its refusal: torch's text
#: names the global for ``GLOBAL`` opcodes only ("references a non-tensor object" else)
TORCH_REFUSAL = "which a weights-only load does not allow"


@contextlib.contextmanager
def named_refusals() -> Iterator[None]:
    """Inside, a weights-only load's refusal of a file (``torch_load_safe``'s, which does
    not always name the global) is raised again in the words of :func:`refused_global`,
    naming the first global the file holds that torch does not admit; any other error goes
    through as it is.  ``stylebridge convert`` runs every converter inside it."""
    try:
        yield
    except ConversionError as exc:
        if (isinstance(exc, UnsafePickleError) or exc.path is None
                or TORCH_REFUSAL not in exc.message):
            raise
        named = weights_only_refusal(exc.path)
        if named is None:
            raise
        raise named from None


__all__ = ["EXTRA_TORCH_ALLOWED", "TORCH_REFUSAL", "file_globals", "first_refused",
           "named_refusals", "pickle_globals", "refused_global", "torch_allows",
           "weights_only_refusal"]
