"""File helpers of the weights manager: hashing while copying, recording the entry, licence
and source in a converted checkpoint's header, and the cheap checks of what a file is (an
archive of the expected type, a complete safetensors file)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import tarfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CHUNK = 1 << 20
#: bytes per element of each safetensors dtype
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "I16": 2,
               "F16": 2, "BF16": 2, "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8}
#: the largest safetensors JSON header read (bytes), as safetensors itself accepts
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024


def stamp_header(path: Path, info: Mapping[str, Any]) -> None:
    """Add ``extra.weights`` (entry, licence, source) to a converted checkpoint's header, and
    ``extra.licence`` when the converter wrote none. The file is rewritten atomically with the
    permissions a plain file creation gives (the umask), like every other output."""
    from safetensors.torch import load_file

    from stylebridge.core.checkpoint import METADATA_KEY
    from stylebridge.core.io import open_safetensors, utf8_path
    from stylebridge.core.tensorfile import save_tensors

    with open_safetensors(path) as fh:
        metadata = dict(fh.metadata() or {})
    header = json.loads(metadata[METADATA_KEY])
    extra = header.setdefault("extra", {})
    extra["weights"] = dict(info)
    extra.setdefault("licence", info["licence"])
    metadata[METADATA_KEY] = json.dumps(header, sort_keys=True)
    with utf8_path(path) as name:
        tensors = load_file(name)
    # atomically, with the umask's permissions; byte-identical for the same file (sorted
    # metadata keys: safetensors' own writer orders them at random)
    save_tensors(path, tensors, metadata)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def copy_hashing(src: Path, dst: Path) -> str:
    """Copy ``src`` to ``dst`` (flushed to disk) and return the sha256 of what was copied."""
    digest = hashlib.sha256()
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        for block in iter(lambda: fin.read(CHUNK), b""):
            digest.update(block)
            fout.write(block)
        fout.flush()
        os.fsync(fout.fileno())
    return digest.hexdigest()


# -- archives ------------------------------------------------------------------------------------

def expected_archive_format(filename: str) -> str | None:
    """``zip`` or ``tar`` as the file name says (``checkpoints.tar.gz``), else None."""
    name = filename.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tar.xz")):
        return "tar"
    return None


def archive_format(path: Path) -> str | None:
    """``zip`` or ``tar`` (compressed or not) as the file's bytes say, else None."""
    try:
        if zipfile.is_zipfile(path):
            return "zip"
        return "tar" if tarfile.is_tarfile(path) else None
    except (OSError, tarfile.TarError, EOFError):
        return None


def is_torch_zip(path: Path) -> bool:
    """A ``torch.save`` file (a zip holding ``<name>/data.pkl``), not an archive of files."""
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.endswith("/data.pkl") or n == "data.pkl" for n in zf.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


#: upstream files that are PyTorch checkpoints (``torch.save``: a zip holding ``data.pkl``, or
#: the legacy pickle stream) or plain pickles (NVIDIA's ``.pkl``)
TORCH_SUFFIXES = (".pt", ".pth", ".pkl", ".ckpt")


def is_html(path: Path) -> bool:
    """Whether ``path`` starts like a web page (a sign-in, quota or error page)."""
    with open(path, "rb") as fh:
        head = fh.read(512).lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml"))


def upstream_problem(filename: str, path: Path, *, pickle: bool = True) -> str | None:
    """What makes ``path`` obviously not the upstream file ``filename`` names, from its first
    bytes and (a zip) its member list: a web page, a zip cut short, a zip of other files, or
    (``pickle``: what its converter reads) not a pickle at all. None when it looks right; the
    conversion reads the rest."""
    if is_html(path):
        return "is a web page (HTML: a sign-in, quota or error page?), not " + filename
    suffix = Path(filename).suffix.lower()
    if filename.lower().endswith(".safetensors"):
        problem = safetensors_problem(path)
        return None if problem is None else f"{problem} (not a whole {filename})"
    if suffix not in TORCH_SUFFIXES:
        return None
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head.startswith(b"PK"):
        if not zipfile.is_zipfile(path):
            return (f"is a zip whose end is missing (a download cut short?), not a whole "
                    f"PyTorch checkpoint {filename}")
        if not is_torch_zip(path):
            return f"is a zip archive of other files, not the PyTorch checkpoint {filename}"
        return None
    if pickle and not head.startswith(b"\x80"):  # pickle protocols >= 2 start with PROTO
        return (f"is neither a PyTorch checkpoint nor a pickle (it starts with {head!r}), not "
                f"{filename}")
    return None


# -- converted files -----------------------------------------------------------------------------

def safetensors_problem(path: Path) -> str | None:
    """What makes ``path`` unloadable as a safetensors file, from its header and size only
    (no tensor data is read): missing, truncated, an unreadable header, a tensor whose bytes do
    not fit its shape, bytes past the last tensor. None when it looks whole."""
    if not path.exists():
        return "is missing"
    if not path.is_file():
        return "is not a regular file"
    size = path.stat().st_size
    if size < 8:
        return f"is truncated ({size} bytes)"
    with open(path, "rb") as fh:
        length = int.from_bytes(fh.read(8), "little")
        if length > MAX_SAFETENSORS_HEADER:
            return f"has a safetensors header length of {length} bytes (not a safetensors file?)"
        if length > size - 8:
            return (f"is truncated: its safetensors header needs {length} bytes, the file has "
                    f"{size - 8} after the length")
        try:
            header = json.loads(fh.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            return "has an unreadable safetensors header"
    if not isinstance(header, dict):
        return "has an unreadable safetensors header"
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        shape = info.get("shape") if isinstance(info, dict) else None
        dtype = info.get("dtype") if isinstance(info, dict) else None
        width = DTYPE_BYTES.get(dtype) if isinstance(dtype, str) else None  # ["F32"]: malformed
        if (width is None or not isinstance(shape, list) or not isinstance(offsets, list)
                or len(offsets) != 2 or not all(isinstance(v, int) and v >= 0
                                                for v in [*shape, *offsets])):
            return f"has a malformed safetensors entry for tensor {name!r}"
        begin, stop = offsets
        if stop - begin != math.prod(shape) * width:
            return (f"has tensor {name!r} stored in {stop - begin} bytes where its shape "
                    f"needs {math.prod(shape) * width}")
        end = max(end, stop)
    data = size - 8 - length
    if end > data:
        return f"is truncated: its tensors need {end} bytes of data, the file has {data}"
    if end < data:
        return f"has {data - end} bytes after its last tensor (not the file that was written)"
    return None


def converted_problem(path: Path) -> str | None:
    """:func:`safetensors_problem`, then the stylebridge header (as every loader reads it)."""
    from stylebridge.core.checkpoint import read_header
    from stylebridge.errors import StylebridgeError

    problem = safetensors_problem(path)
    if problem is not None:
        return problem
    try:
        read_header(path)
    except StylebridgeError as exc:
        return str(exc).removeprefix(f"{path}: ")
    return None
