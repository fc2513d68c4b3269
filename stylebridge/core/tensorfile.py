"""A deterministic ``.safetensors`` writer (FeatureShift's dataset shards, the tiny preset's
CLIP files, converted CLIP checkpoints).

``safetensors.torch.save_file`` keeps the ``__metadata__`` of a file in a hash map, so a file
with more than one metadata key (a base shard's ``format`` and ``names``) is written with its
keys in a different order from one process to the next: two builds of the same images gave
different bytes (and another sha256, which resume checks compare).  :func:`save_tensors` writes the same format with the metadata keys sorted,
the tensors laid out as safetensors lays them out (by dtype, widest first, then by name: every
tensor starts at a multiple of its element size) and the header padded with spaces to a
multiple of 8 bytes.  Its files are byte-identical for the same tensors and metadata, and
``safe_open`` (and every earlier stylebridge) reads them as it reads ``save_file``'s.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from stylebridge.core.io import atomic_path

#: torch dtype → (safetensors name, rank): safetensors orders the data by its ``Dtype`` enum,
#: highest first (``U64 > I64 > F64 > C64 > F32 > U32 > I32 > BF16 > F16 > U16 > I16 >
#: F8_E4M3 > F8_E5M2 > I8 > U8 > BOOL``, as safetensors 0.8's ``save_file`` lays them out)
DTYPES: dict[torch.dtype, tuple[str, int]] = {
    torch.uint64: ("U64", 15), torch.int64: ("I64", 14), torch.float64: ("F64", 13),
    torch.complex64: ("C64", 12), torch.float32: ("F32", 11), torch.uint32: ("U32", 10),
    torch.int32: ("I32", 9), torch.bfloat16: ("BF16", 8), torch.float16: ("F16", 7),
    torch.uint16: ("U16", 6), torch.int16: ("I16", 5), torch.float8_e4m3fn: ("F8_E4M3", 4),
    torch.float8_e5m2: ("F8_E5M2", 3), torch.int8: ("I8", 2), torch.uint8: ("U8", 1),
    torch.bool: ("BOOL", 0),
}


def _bytes(tensor: Tensor) -> memoryview:
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy())


def save_tensors(path: str | Path, tensors: Mapping[str, Tensor],
                 metadata: Mapping[str, str] | None = None) -> Path:
    """Write ``tensors`` and ``metadata`` (strings) to ``path`` atomically as a safetensors
    file whose bytes depend only on its contents (see the module doc).  A failed write (a full
    disk) is an ``OSError`` naming ``path``; nothing is left at ``path`` then."""
    path = Path(path)
    with atomic_path(path) as tmp:
        write_tensors(tensors, tmp, metadata)
    return path


def write_tensors(tensors: Mapping[str, Tensor], filename: str | Path,
                  metadata: Mapping[str, str] | None = None) -> None:
    """Write the safetensors file of :func:`save_tensors` to ``filename`` itself (the
    temporary file of an atomic write: no other file is made, as ``save_file``'s own
    ``.tmpXXXXXX`` beside it was, which a kill left behind)."""
    if sys.byteorder != "little":  # safetensors stores little-endian data
        raise OSError(f"{filename}: safetensors files are written on little-endian machines only")
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"safetensors metadata must map strings to strings, got {key!r}")
    unknown = sorted(name for name, t in tensors.items() if t.dtype not in DTYPES)
    if unknown:
        raise TypeError(f"tensor {unknown[0]!r} has dtype {tensors[unknown[0]].dtype}, "
                        "which this writer does not store")
    order = sorted(tensors, key=lambda name: (-DTYPES[tensors[name].dtype][1], name))
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {k: metadata[k] for k in sorted(metadata)}
    offset = 0
    for name in order:
        t = tensors[name]
        size = t.numel() * t.element_size()
        header[name] = {"dtype": DTYPES[t.dtype][0], "shape": list(t.shape),
                        "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    with open(filename, "wb") as fh:
        fh.write(len(raw).to_bytes(8, "little"))
        fh.write(raw)
        for name in order:
            fh.write(_bytes(tensors[name]))
