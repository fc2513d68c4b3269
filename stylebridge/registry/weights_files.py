"""File helpers of the weights manager: hashing while copying, and recording the entry,
licence and source in a converted checkpoint's header."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


def stamp_header(path: Path, info: Mapping[str, Any]) -> None:
    """Add ``extra.weights`` (entry, licence, source) to a converted checkpoint's header, and
    ``extra.licence`` when the converter wrote none."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from stylebridge.core.checkpoint import METADATA_KEY

    with safe_open(str(path), framework="pt") as fh:
        metadata = dict(fh.metadata() or {})
    header = json.loads(metadata[METADATA_KEY])
    extra = header.setdefault("extra", {})
    extra["weights"] = dict(info)
    extra.setdefault("licence", info["licence"])
    metadata[METADATA_KEY] = json.dumps(header, sort_keys=True)
    tensors = load_file(str(path))
    tmp = path.with_name(path.name + ".stamp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)


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
