"""Putting a checkpoint's tensors into a module fast, with the numbers a copy would give.

Two parts of :func:`~stylebridge.core.checkpoint.load_checkpoint` and the loaders built on it:

* :func:`read_owned`: the tensors of a ``.safetensors`` file read into memory torch allocates
  (64-byte aligned, each tensor its own storage), as a module's own parameters are.
  ``safe_open(...).get_tensor`` returns views of a memory map that are not 64-byte aligned,
  and the BLAS kernels' results can depend on alignment (tests/data/README.md: a generator
  image differed by 2.5e-6); nor does a loaded module then depend on the file staying as it
  was.
* :func:`load_weights`: a module built on the ``meta`` device (no memory, no random
  initialisation: :func:`~stylebridge.core.checkpoint.check_implied_shapes` builds it to check
  the shapes anyway) takes the tensors by assignment (``load_state_dict(assign=True)``), each
  first cast to the dtype, device and layout the module declares, so that the result is what
  building it on the CPU and copying the tensors in gave, without a second copy of the weights
  in memory.  A module that could hold anything a checkpoint does not fill (a non-persistent
  buffer, a tensor or module kept outside its state dict, parameters shared between modules, a
  ``load_state_dict`` without ``assign``) is built on the CPU and copied into as before
  (:func:`assignable`).
"""

from __future__ import annotations

import ctypes
import inspect
import json
import math
import os
import struct
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

#: safetensors dtype names read straight into torch's memory (others: ``get_tensor``)
OWNED_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8,
}

#: the alignment of torch's CPU allocator, which a module's own parameters have
CPU_ALIGNMENT = 64


def _entries(fh: Any) -> tuple[dict[str, Any], int, int]:
    """The header of the open file ``fh``: ``({name: entry}, start of the data, file size)``."""
    size = os.fstat(fh.fileno()).st_size
    raw = fh.read(8)
    if len(raw) != 8:
        return {}, 0, size
    (length,) = struct.unpack("<Q", raw)
    if length > size - 8:
        return {}, 0, size
    try:
        header = json.loads(fh.read(length))
    except (ValueError, RecursionError):  # safetensors read it: its get_tensor does
        return {}, 0, size
    return (header if isinstance(header, dict) else {}), 8 + length, size


def _read_into(fh: Any, tensor: torch.Tensor, offset: int, nbytes: int) -> bool:
    """Fill ``tensor`` (contiguous, ``nbytes`` bytes) from ``offset``; False at a short read."""
    view = memoryview((ctypes.c_char * nbytes).from_address(tensor.data_ptr())).cast("B")
    fh.seek(offset)
    done = 0
    while done < nbytes:
        got = fh.readinto(view[done:])
        if not got:
            return False
        done += got
    return True


def read_owned(path: str | Path, fh: Any) -> dict[str, torch.Tensor]:
    """Every tensor of ``path``, opened by safetensors as ``fh`` (``safe_open(..., device=
    "cpu")``, which validated the file), read into CPU memory torch allocates, in ``fh``'s key
    order.  A tensor whose header entry this reader does not take (another dtype, an entry
    that differs from safetensors' own reading of the header) comes from ``fh.get_tensor``."""
    names = list(fh.keys())
    if sys.byteorder != "little":
        return {name: fh.get_tensor(name) for name in names}
    out: dict[str, torch.Tensor] = {}
    with open(path, "rb", buffering=0) as raw:
        entries, start, size = _entries(raw)
        plan = []
        for name in names:
            entry = entries.get(name)
            try:
                dtype = OWNED_DTYPES[entry["dtype"]]
                shape = [int(n) for n in entry["shape"]]
                begin, end = (int(n) for n in entry["data_offsets"])
                piece = fh.get_slice(name)
                same = piece.get_dtype() == entry["dtype"] and list(piece.get_shape()) == shape
            except (KeyError, TypeError, ValueError):
                continue
            nbytes = math.prod(shape) * dtype.itemsize
            if same and begin >= 0 and end - begin == nbytes and start + end <= size:
                plan.append((start + begin, name, dtype, shape, nbytes))
        for offset, name, dtype, shape, nbytes in sorted(plan, key=lambda item: item[0]):
            tensor = torch.empty(shape, dtype=dtype, device="cpu")
            if nbytes and not _read_into(raw, tensor, offset, nbytes):
                raise OSError(f"the file ended before tensor {name}'s data")
            out[name] = tensor
    return {name: out[name] if name in out else fh.get_tensor(name) for name in names}


# ---------------------------------------------------------------------------------------------
# Building on meta, loading by assignment


#: a constructor's random factories: on ``meta`` they give what ``torch.empty`` gives
_RANDOM_FACTORIES = frozenset({torch.randn, torch.rand})
#: the in-place operations constructors initialise tensors with: on a ``meta`` tensor they
#: change nothing (no values; shape, dtype and strides stay)
_INIT_IN_PLACE = frozenset({torch.Tensor.normal_, torch.Tensor.uniform_, torch.Tensor.zero_,
                            torch.Tensor.fill_, torch.Tensor.add_, torch.Tensor.sub_,
                            torch.Tensor.mul_, torch.Tensor.div_})


class _ShapesOnly(TorchFunctionMode):
    """Under ``torch.device("meta")``: random factories become ``torch.empty`` and the
    initialising in-place operations on meta tensors return them as they are.  torch's meta
    kernels for these are Python decompositions whose first use imports sympy (and some
    ``torch._dynamo``): 0.3 s and more in every process that loads a network, for tensors
    that hold no values anyway."""

    def __torch_function__(self, func: Any, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func in _INIT_IN_PLACE and args and isinstance(args[0], torch.Tensor) \
                and args[0].is_meta:
            return args[0]
        if func in _RANDOM_FACTORIES and "out" not in kwargs:
            device = kwargs.get("device")
            if torch.device(device if device is not None
                            else torch.get_default_device()).type == "meta":
                return torch.empty(*args, **{k: v for k, v in kwargs.items()
                                             if k != "generator"})
        return func(*args, **kwargs)


def build_on_meta(build: Callable[[], nn.Module]) -> nn.Module:
    """``build()`` with ``torch.device("meta")`` as the default device: no memory, no random
    numbers drawn, the shapes, dtypes and strides of a CPU build (explicit ``device=`` arguments
    are kept)."""
    with torch.device("meta"), _ShapesOnly():
        return build()


def _tensors(module: nn.Module) -> Iterable[torch.Tensor]:
    yield from module.parameters()
    yield from module.buffers()


def on_meta(module: nn.Module) -> bool:
    """Whether any parameter or buffer of ``module`` is on the ``meta`` device."""
    return any(t.is_meta for t in _tensors(module))


def _takes_assign(module: nn.Module) -> bool:
    method = type(module).load_state_dict
    if method is nn.Module.load_state_dict:
        return True
    try:
        params = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "assign" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _holds_meta(value: Any, depth: int = 0) -> bool:
    """A meta tensor (or a module with one) in ``value``, looked for in containers."""
    if isinstance(value, torch.Tensor):
        return value.is_meta
    if isinstance(value, nn.Module):
        return on_meta(value)
    if depth >= 3:
        return False
    if isinstance(value, Mapping):
        return any(_holds_meta(v, depth + 1) for v in value.values())
    if isinstance(value, list | tuple | set | frozenset):
        return any(_holds_meta(v, depth + 1) for v in value)
    return False


#: the attributes every module has that hold its parameters, buffers, children and hooks
_MODULE_SLOTS = frozenset(vars(nn.Module()))


def assignable(module: nn.Module) -> bool:
    """Whether ``module``, built on the ``meta`` device, is filled completely by assigning its
    state dict: its ``load_state_dict`` takes ``assign``, no tensor is shared between two
    names, and no non-persistent buffer or other attribute holds a meta tensor (the checkpoint
    would not replace it)."""
    if not _takes_assign(module):
        return False
    named = [*module.named_parameters(remove_duplicate=False),
             *module.named_buffers(remove_duplicate=False)]
    if len({id(t) for _, t in named}) != len(named):
        return False
    for sub in module.modules():
        if any(sub._buffers[name] is not None and sub._buffers[name].is_meta
               for name in sub._non_persistent_buffers_set):
            return False
        if any(_holds_meta(value) for key, value in vars(sub).items()
               if key not in _MODULE_SLOTS):
            return False
    return True


def _like(tensor: torch.Tensor, want: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``tensor`` as ``load_state_dict`` would have copied it into ``want`` (a module's
    tensor, on ``meta`` or not): ``want``'s dtype and strides on ``device``, in memory torch
    allocated (64-byte aligned on the CPU)."""
    if tensor.dtype != want.dtype or tensor.device != device:
        tensor = tensor.to(device=device, dtype=want.dtype)
    elif device.type == "cpu" and tensor.numel() and tensor.data_ptr() % CPU_ALIGNMENT:
        tensor = tensor.clone()
    layout_ok = tensor.stride() == want.stride() or (tensor.is_contiguous()
                                                     and want.is_contiguous())
    if not layout_ok:
        tensor = torch.empty_strided(want.shape, want.stride(), dtype=want.dtype,
                                     device=device).copy_(tensor)
    return tensor


def prepare_state(module: nn.Module, state: Mapping[str, Any]) -> dict[str, Any]:
    """``state`` with each tensor that fits one of ``module``'s (same name and shape) cast as
    :func:`_like` does; everything else as given, for ``load_state_dict`` to refuse."""
    default = torch.get_default_device()
    out = dict(state)
    for key, want in module.state_dict(keep_vars=True).items():
        got = state.get(key)
        if isinstance(got, torch.Tensor) and got.shape == want.shape:
            out[key] = _like(got, want, default if want.is_meta else want.device)
    return out


def load_weights(module: nn.Module, state: Mapping[str, Any],
                 rebuild: Callable[[], nn.Module]) -> nn.Module:
    """``module.load_state_dict(state, strict=True)``; a module on ``meta`` takes the tensors
    by assignment (:func:`prepare_state`), and if that leaves anything on ``meta`` (a
    ``load_state_dict`` that drops ``assign``), ``rebuild()`` builds it for real and the
    tensors are copied in.  Returns the loaded module; ``load_state_dict``'s errors pass."""
    if not on_meta(module):
        module.load_state_dict(state, strict=True)
        return module
    module.load_state_dict(prepare_state(module, state), strict=True, assign=True)
    if on_meta(module):
        module = rebuild()
        module.load_state_dict(state, strict=True)
    return module


__all__ = ["OWNED_DTYPES", "assignable", "build_on_meta", "load_weights", "on_meta",
           "prepare_state", "read_owned"]
