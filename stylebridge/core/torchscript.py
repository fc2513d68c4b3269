"""Read the weights of a TorchScript archive (``torch.jit.save``) without loading its code.

OpenAI's original CLIP checkpoints (``ViT-B-32.pt``, ``ViT-B-16.pt``) are TorchScript
archives: a zip whose ``data.pkl`` pickles the module tree (classes named
``__torch__.*``, defined by the TorchScript code under ``code/``) and whose ``data/N``
entries hold the tensor bytes.  ``torch.jit.load`` would compile and run that code.
:func:`read_torchscript_state_dict` instead unpickles ``data.pkl`` with
:class:`stylebridge.core.safe_pickle.SafeUnpickler`'s allow-list plus stand-in
objects for the ``__torch__`` classes (they only record attributes) and reads each
storage straight from the zip, then walks the tree like ``Module.state_dict()``.
"""

from __future__ import annotations

import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from stylebridge.core.checkpoint import refuse_nonfinite
from stylebridge.core.safe_pickle import SafeUnpickler
from stylebridge.errors import ConversionError, UnsafePickleError


class ScriptObject:
    """Stands in for a ``__torch__`` class instance: records its attributes, runs nothing."""

    script_class = ""

    def __setstate__(self, state: Any) -> None:
        self.attributes = dict(state) if isinstance(state, dict) else {}


class _StorageType:
    """``torch.FloatStorage`` & co. as a dtype marker (never constructed)."""

    def __init__(self, name: str) -> None:
        dtype = getattr(torch, name.removesuffix("Storage").lower(), None)
        names = {"Float": torch.float32, "Half": torch.float16, "Double": torch.float64,
                 "BFloat16": torch.bfloat16, "Long": torch.int64, "Int": torch.int32,
                 "Short": torch.int16, "Char": torch.int8, "Byte": torch.uint8,
                 "Bool": torch.bool}
        self.dtype = names.get(name.removesuffix("Storage"), dtype)
        if not isinstance(self.dtype, torch.dtype):
            raise UnsafePickleError(f"refuses to load: unknown storage type torch.{name}")


class _ArchiveUnpickler(SafeUnpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str) -> None:
        import io

        super().__init__(io.BytesIO(data))
        self.archive, self.prefix = archive, prefix
        self._classes: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("__torch__"):
            key = f"{module}.{name}"
            if key not in self._classes:
                self._classes[key] = type(name, (ScriptObject,), {"script_class": key})
            return self._classes[key]
        if module == "torch" and name.endswith("Storage"):
            return _StorageType(name)
        return super().find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise UnsafePickleError("refuses to load: unexpected persistent id in data.pkl")
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, _StorageType):
            raise UnsafePickleError("refuses to load: storage without a known dtype")
        try:
            raw = self.archive.read(f"{self.prefix}/data/{key}")
        except KeyError:
            raise pickle.UnpicklingError(f"storage data/{key} is missing") from None
        dtype = storage_type.dtype
        if len(raw) < int(numel) * dtype.itemsize:
            raise pickle.UnpicklingError(f"storage data/{key} is truncated")
        flat = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
        return torch.TypedStorage(wrap_storage=flat.untyped_storage(), dtype=dtype, _internal=True)


def _walk(obj: ScriptObject, prefix: str, out: dict[str, Tensor]) -> None:
    for name, value in getattr(obj, "attributes", {}).items():
        if isinstance(value, Tensor):
            out[prefix + name] = value
        elif isinstance(value, ScriptObject):
            _walk(value, f"{prefix}{name}.", out)


def read_torchscript_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Parameters and buffers of a TorchScript archive, named as ``state_dict()`` would."""
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ConversionError(f"not a TorchScript archive ({exc})", path=path) from None
    with archive:
        names = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if not names or not any(n.endswith("/code/") or "/code/" in n for n in archive.namelist()):
            raise ConversionError("not a TorchScript archive (no data.pkl and code/)", path=path)
        prefix = names[0].removesuffix("/data.pkl")
        try:
            root = _ArchiveUnpickler(archive.read(names[0]), archive, prefix).load()
        except UnsafePickleError as exc:
            raise UnsafePickleError(str(exc), path=path) from None
        except Exception as exc:
            raise ConversionError(f"unreadable TorchScript data.pkl ({exc})", path=path) from None
    if not isinstance(root, ScriptObject):
        raise ConversionError("TorchScript archive holds no module", path=path)
    state: dict[str, Tensor] = OrderedDict()
    _walk(root, "", state)
    refuse_nonfinite(state, path, error=ConversionError)
    return {k: v.clone() for k, v in state.items()}
