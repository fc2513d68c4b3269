"""Reading NVlabs StyleGAN2-ADA network pickles without running their code.

NVlabs (stylegan2-ada-pytorch, stylegan3) saves networks with plain
``pickle.dump``.  Every network class is wrapped by
``torch_utils.persistence.persistent_class``, whose ``__reduce__`` pickles an
instance as the call ``torch_utils.persistence._reconstruct_persistent_obj(meta)``
with ``meta = dict(type='class', version=6, module_src=<source text of the
defining module>, class_name=<bare class name, e.g. 'Generator'>,
state=<the instance __dict__>)``.  Upstream's loader ``exec``\\ s ``module_src``
— loading a network pickle with upstream code runs whatever source it holds.

This module never does.  :class:`SafeUnpickler` resolves globals through an
explicit allow-list (:data:`ALLOWED_GLOBALS`); the persistence hook is replaced
by :func:`_reconstruct_persistent_obj`, which only records the class name and
the instance state in a :class:`PersistentObject`.  Tensors are rebuilt by our
own wrappers around torch's rebuild functions; each storage arrives as bytes of
a legacy ``torch.save`` file (``torch.storage._load_from_bytes``), which we read
with ``torch.load(..., weights_only=True)`` — torch's own restricted unpickler
(checked to work for legacy storage bytes with torch 2.14).  Any other global
(``os.system``, ``builtins.eval``, ``subprocess.Popen``, a real module class
…) raises :class:`~stylebridge.errors.UnsafePickleError` before it is called.

What is allowed, and why (all of it constructs data, none of it runs user code):

* ``torch_utils.persistence._reconstruct_persistent_obj`` → :class:`PersistentObject`.
* ``dnnlib.util.EasyDict`` / ``dnnlib.EasyDict`` → :class:`EasyDict` (a plain dict
  subclass); ``collections.OrderedDict`` (module ``_parameters``/``_buffers``/
  ``_modules``, backward hooks).
* ``dnnlib.tflib.network.Network`` → :class:`TFNetworkStub`, only so that a
  TensorFlow-era pickle is recognised and refused with a clear message.
* ``torch._utils._rebuild_tensor`` / ``_rebuild_tensor_v2`` / ``_rebuild_parameter``
  / ``_rebuild_parameter_with_state``, ``torch._tensor._rebuild_from_type_v2``:
  our wrappers, which ignore pickled backward hooks and attribute state.
* ``torch.storage._load_from_bytes``: our wrapper (see above).  Storage classes
  themselves are not needed as globals (they only occur inside those bytes) and
  are not allowed, so a pickle cannot allocate storages of arbitrary size.
* ``torch.Size`` and the ``torch.<dtype>`` objects; ``torch.Tensor`` and
  ``torch.nn.parameter.Parameter`` resolve to non-callable markers that only
  ``_rebuild_from_type_v2`` accepts (so a pickle cannot call their constructors).
* numpy: ``multiarray._reconstruct`` / ``scalar``, ``numeric._frombuffer``,
  ``ndarray``, ``dtype`` — under both ``numpy.core.*`` (numpy 1 writers) and
  ``numpy._core.*`` (numpy 2) names.  NVlabs module state holds numpy scalars
  (``weight_gain``, ``act_gain``) and ``init_kwargs`` may hold arrays.
* ``builtins``: ``set``, ``frozenset`` (protocol < 4 sets), ``bytearray``,
  ``complex``, ``slice``; ``_codecs.encode`` only with ``latin1`` (protocol 2
  writes ``bytes`` that way).
* ``builtins.getattr`` → :func:`_placeholder_getattr`: bound methods of pickled network
  objects (DissimilarDomains' AffineLight+ ``(self.get_parameter, name)`` pairs) become
  :class:`MethodRef` records; getattr on anything else, or for a ``_``-name, is refused.

Persistent IDs (``torch.save``'s way to reference storages) are refused: an
NVlabs network pickle never contains them.
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import hashlib
import io
import pickle
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from stylebridge.core.checkpoint import refuse_nonfinite
from stylebridge.core.pickle_scan import pickle_globals, refused_global, torch_allows
from stylebridge.core.read_inputs import note_input
from stylebridge.core.sniff import file_kind
from stylebridge.errors import ConversionError, UnsafePickleError

__all__ = [
    "ALLOWED_GLOBALS",
    "EasyDict",
    "MethodRef",
    "PersistentObject",
    "SafeUnpickler",
    "TFNetworkStub",
    "load_nvlabs_pickle",
    "module_state_dict",
    "safe_load",
]


# ---------------------------------------------------------------------------
# Stand-ins for NVlabs classes


class EasyDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict``: a dict with attribute access."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        del self[name]


class TFNetworkStub(dict):
    """Stand-in for ``dnnlib.tflib.network.Network`` (TensorFlow-era pickles).

    Its pickled state (``static_kwargs``, ``variables``, ``build_module_src`` …)
    lands in the dict; ``build_module_src`` is never run.
    """

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, Mapping):
            self.update(state)


@dataclass
class PersistentObject:
    """An NVlabs persistent object, as data: its class name and instance state.

    ``class_name`` is the bare class name NVlabs records (``'Generator'``,
    ``'SynthesisLayer'`` …).  The pickle holds no module name, only the module's
    source text; ``module_name`` is therefore a stable label derived from that
    text (``persistent_<sha256 prefix>``), and ``module_src`` is kept for
    inspection.  The source is never executed.
    """

    class_name: str
    module_name: str
    state: dict[str, Any] = field(repr=False)
    module_src: str = field(default="", repr=False)
    version: int | None = None

    @property
    def init_kwargs(self) -> dict[str, Any]:
        """The constructor keyword arguments NVlabs records (``{}`` when absent)."""
        value = self.state.get("_init_kwargs")
        return dict(value) if isinstance(value, Mapping) else {}

    def submodules(self) -> dict[str, Any]:
        """``_modules`` of the recorded ``nn.Module`` (``{}`` when absent)."""
        value = self.state.get("_modules")
        return dict(value) if isinstance(value, Mapping) else {}


# ---------------------------------------------------------------------------
# Allowed callables (our own wrappers)


def _reconstruct_persistent_obj(meta: Any) -> PersistentObject:
    """Replacement for NVlabs' hook: record the object, never exec ``module_src``."""
    if not isinstance(meta, Mapping):
        raise pickle.UnpicklingError("persistent object metadata is not a dict")
    kind = meta.get("type", "class")
    if kind != "class":
        raise pickle.UnpicklingError(f"persistent object of unsupported type {kind!r}")
    class_name = meta.get("class_name")
    if not isinstance(class_name, str) or not class_name:
        raise pickle.UnpicklingError("persistent object without a class name")
    src = meta.get("module_src", "")
    if not isinstance(src, str):
        raise pickle.UnpicklingError(f"persistent object {class_name!r} has non-text module_src")
    state = meta.get("state")
    if state is None:
        state = {}
    if not isinstance(state, Mapping):
        raise pickle.UnpicklingError(f"persistent object {class_name!r} has a non-dict state")
    version = meta.get("version")
    digest = hashlib.sha256(src.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return PersistentObject(
        class_name=class_name,
        module_name=f"persistent_{digest}",
        state=dict(state),
        module_src=src,
        version=version if isinstance(version, int) else None,
    )


@dataclass(frozen=True)
class MethodRef:
    """A bound method of a pickled network object, as data: ``owner.name``.

    DissimilarDomains' AffineLight+ layers keep ``(self.get_parameter, "weights_offset_in_0")``
    pairs in their state, which a pickle rebuilds with ``builtins.getattr(layer,
    "get_parameter")``.  :func:`_placeholder_getattr` answers that call with this record;
    nothing is looked up or called (``resolve`` reads the named entry from the owner's
    recorded ``_parameters`` / ``_buffers``).
    """

    owner: PersistentObject = field(repr=False)
    name: str

    def resolve(self, key: str) -> Any:
        """What ``owner.get_parameter(key)`` / ``get_buffer(key)`` would return, from data."""
        for table in ("_parameters", "_buffers"):
            value = self.owner.state.get(table)
            if isinstance(value, Mapping) and key in value:
                return value[key]
        raise KeyError(f"{self.owner.class_name} records no parameter or buffer {key!r}")


def _placeholder_getattr(obj: Any, name: Any, *default: Any) -> MethodRef:
    """``builtins.getattr`` for pickles: only a public name of one of our placeholder objects
    (a :class:`PersistentObject`) resolves, to a :class:`MethodRef` record.  Every other
    target — a module, a class, an allowed function, a record, a dunder such as
    ``__class__`` or ``__globals__`` — is refused, so ``getattr`` cannot reach
    ``os.system``, ``eval`` or a placeholder's class internals."""
    if default:
        raise UnsafePickleError("refuses to load: the pickle calls getattr with a default "
                                "(no code was run)")
    if not isinstance(obj, PersistentObject):
        raise UnsafePickleError(f"refuses to load: the pickle calls getattr on a "
                                f"{type(obj).__name__}, not on a pickled network object "
                                "(no code was run)")
    if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
        raise UnsafePickleError(f"refuses to load: the pickle calls getattr for {name!r} on "
                                f"{obj.class_name} (only public method names are read; no code "
                                "was run)")
    return MethodRef(owner=obj, name=name)


class _TypeMarker:
    """Not callable: stands for ``torch.Tensor`` / ``torch.nn.Parameter`` as a *type*
    argument of ``_rebuild_from_type_v2`` (the real classes would let a pickle
    call their constructors, e.g. to allocate huge tensors)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<type marker {self.name}>"


_TENSOR_TYPE = _TypeMarker("torch.Tensor")
_PARAMETER_TYPE = _TypeMarker("torch.nn.parameter.Parameter")


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any) -> Tensor:
    """``torch._utils._rebuild_tensor``, checked: a typed storage, and a view inside it.

    (``Tensor.set_`` would silently *grow* a storage that is too small.)
    """
    if not isinstance(storage, torch.TypedStorage):
        raise pickle.UnpicklingError(f"tensor storage is a {type(storage).__name__}")
    try:
        offset = int(storage_offset)
        size_t = tuple(int(s) for s in size)
        stride_t = tuple(int(s) for s in stride)
    except (TypeError, ValueError):
        raise pickle.UnpicklingError("malformed tensor size/stride") from None
    if len(size_t) != len(stride_t) or offset < 0 or any(s < 0 for s in size_t + stride_t):
        raise pickle.UnpicklingError("malformed tensor size/stride")
    if all(size_t):
        last = offset + sum((n - 1) * st for n, st in zip(size_t, stride_t, strict=True))
        # ``_untyped_storage`` is what torch._utils itself uses (``.size()`` would warn).
        if (last + 1) * storage.dtype.itemsize > storage._untyped_storage.nbytes():
            raise pickle.UnpicklingError(f"tensor of size {list(size_t)} does not fit its storage")
    return torch._utils._rebuild_tensor(storage, offset, size_t, stride_t)


def _rebuild_tensor_v2(storage: Any, storage_offset: int, size: Any, stride: Any,
                       requires_grad: Any = False, backward_hooks: Any = None,
                       metadata: Any = None) -> Tensor:
    """``torch._utils._rebuild_tensor_v2`` minus hooks, metadata and grad flags."""
    del requires_grad, backward_hooks, metadata  # never restored: we only read weights
    return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None) -> Tensor:
    """``torch._utils._rebuild_parameter``: returns the plain (non-grad) tensor."""
    del requires_grad, backward_hooks
    if not isinstance(data, Tensor):
        raise pickle.UnpicklingError(f"parameter data is a {type(data).__name__}")
    return data


def _rebuild_parameter_with_state(data: Any, requires_grad: Any = False,
                                  backward_hooks: Any = None, state: Any = None) -> Tensor:
    """``torch._utils._rebuild_parameter_with_state``; the attribute state is dropped."""
    del state
    return _rebuild_parameter(data, requires_grad, backward_hooks)


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any) -> Any:
    """``torch._tensor._rebuild_from_type_v2`` for plain tensors/parameters only."""
    del state
    if func not in _REBUILDERS:
        raise pickle.UnpicklingError("tensor rebuilt through an unexpected function")
    if new_type is not _TENSOR_TYPE and new_type is not _PARAMETER_TYPE:
        raise pickle.UnpicklingError(f"tensor rebuilt as unexpected type {new_type!r}")
    if not isinstance(args, tuple):
        raise pickle.UnpicklingError("tensor rebuild arguments are not a tuple")
    return func(*args)


@contextlib.contextmanager
def quiet_protocol_warning() -> Iterator[None]:
    """Silence torch's warning about an unusual pickle protocol byte while loading: a damaged
    file then gives only its one-line error."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected pickle protocol")
        # torch's TorchScript-dispatch notice: stylebridge never runs TorchScript through torch
        warnings.filterwarnings("ignore", message=".*looks like a TorchScript archive")
        yield


#: where a storage payload's refused global was found (:func:`refused_global`)
STORAGE = "an embedded tensor storage (read by torch's weights-only loader)"


def _load_from_bytes(data: Any) -> Any:
    """Storage bytes (legacy ``torch.save`` format), read by torch's weights-only loader."""
    if not isinstance(data, bytes | bytearray):
        raise pickle.UnpicklingError("storage payload is not bytes")
    try:
        with quiet_protocol_warning():
            return torch.load(io.BytesIO(bytes(data)), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # name what torch refused, in the words of every refusal
        allows = torch_allows()
        name = next((g for g in pickle_globals(io.BytesIO(bytes(data))) if not allows(g)), None)
        if name is None:
            raise
        raise UnsafePickleError(refused_global(name if name != "?" else None, STORAGE)) from None


def _codecs_encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as protocol 2 uses it for ``bytes`` (latin-1 only)."""
    if encoding.replace("-", "").replace("_", "").lower() not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r}")
    if not isinstance(obj, str):
        raise pickle.UnpicklingError("_codecs.encode of a non-string")
    return codecs.encode(obj, "latin1", errors)


_REBUILDERS = (_rebuild_tensor, _rebuild_tensor_v2, _rebuild_parameter,
               _rebuild_parameter_with_state)


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """numpy reconstruction helpers under both their numpy-1 and numpy-2 module names."""
    try:  # numpy >= 2
        from numpy._core import multiarray, numeric
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    out: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for prefix in ("numpy.core", "numpy._core"):
        out[(f"{prefix}.multiarray", "_reconstruct")] = multiarray._reconstruct
        out[(f"{prefix}.multiarray", "scalar")] = multiarray.scalar
        frombuffer = getattr(numeric, "_frombuffer", None)
        if frombuffer is not None:
            out[(f"{prefix}.numeric", "_frombuffer")] = frombuffer
    return out


def _torch_dtypes() -> dict[tuple[str, str], Any]:
    return {("torch", name): value for name, value in vars(torch).items()
            if isinstance(value, torch.dtype)}


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("dnnlib", "EasyDict"): EasyDict,
    ("dnnlib.tflib.network", "Network"): TFNetworkStub,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch.storage", "_load_from_bytes"): _load_from_bytes,
    ("torch", "Size"): torch.Size,
    ("torch", "Tensor"): _TENSOR_TYPE,
    ("torch.nn.parameter", "Parameter"): _PARAMETER_TYPE,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "bytearray"): bytearray,
    ("builtins", "complex"): complex,
    ("builtins", "slice"): slice,
    ("builtins", "getattr"): _placeholder_getattr,
    ("_codecs", "encode"): _codecs_encode,
    **_numpy_globals(),
    **_torch_dtypes(),
}
"""``(module, name)`` → the object the unpickler hands out for it.  Nothing else resolves."""

_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


class SafeUnpickler(pickle.Unpickler):
    """A ``pickle.Unpickler`` that resolves globals only through :data:`ALLOWED_GLOBALS`."""

    def find_class(self, module: str, name: str) -> Any:
        module = _PY2_MODULES.get(module, module)
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(refused_global(f"{module}.{name}")) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(
            "refuses to load: the pickle uses persistent IDs (a torch.save checkpoint?), which "
            "an NVlabs network pickle never does (no code was run)"
        )


# ---------------------------------------------------------------------------
# Public API


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def not_a_pickle(path: Path) -> str | None:
    """What ``path`` is instead of a pickle (``"a JPEG image"``), or ``None`` when it starts
    as one (:func:`stylebridge.core.sniff.file_kind`)."""
    kind, what = file_kind(path)
    if kind == "pickle":
        return None
    if kind == "safetensors":
        return "a safetensors file (already converted? `stylebridge info` reads it)"
    return "a file without a pickle protocol header" if kind == "unknown" else what


def safe_load(path: str | Path) -> Any:
    """Unpickle ``path`` with :class:`SafeUnpickler`; one-line errors naming the file."""
    path = Path(path)
    if not path.exists():
        raise ConversionError("no such file", path=path)
    if path.is_dir():
        raise ConversionError("is a directory, expected an NVlabs network pickle (.pkl)", path=path)
    if path.stat().st_size == 0:
        raise ConversionError("is empty (0 bytes)", path=path)
    if zipfile.is_zipfile(path):
        raise ConversionError("is a zip archive (a torch.save checkpoint?), not an NVlabs "
                              "network pickle", path=path)
    what = not_a_pickle(path)
    if what is not None:
        raise ConversionError(f"is {what}, not a network pickle", path=path)
    note_input(path)   # no output is written onto it under another name
    try:
        with path.open("rb") as fh:
            data = SafeUnpickler(fh).load()
    except UnsafePickleError as exc:
        # Raised by find_class/persistent_load without a path; add it.
        raise UnsafePickleError(_strip_path(exc), path=path) from None
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "Unsupported global" in text or "weights_only" in text.lower():
            raise UnsafePickleError(refused_global(None, STORAGE), path=path) from None
        raise ConversionError(f"not a readable network pickle ({_first_line(exc)})",
                              path=path) from None
    except EOFError:
        raise ConversionError("not a readable network pickle (file ends early: truncated?)",
                              path=path) from None
    except MemoryError:
        raise ConversionError("not a readable network pickle (out of memory while unpickling)",
                              path=path) from None
    except Exception as exc:  # untrusted input: any failure is "unreadable", never a crash
        if isinstance(exc, ConversionError):
            raise
        raise ConversionError(f"not a readable network pickle ({type(exc).__name__}: "
                              f"{_first_line(exc)})", path=path) from None
    refuse_nonfinite(data, path, error=ConversionError)
    return data


def _strip_path(exc: UnsafePickleError) -> str:
    text = str(exc)
    if exc.path is not None:
        prefix = f"{exc.path}: "
        if text.startswith(prefix):
            return text[len(prefix):]
    return text


def load_nvlabs_pickle(path: str | Path) -> dict[str, Any]:
    """Load an NVlabs (stylegan2-ada-pytorch / stylegan3) network pickle as data.

    Returns the top-level dict with ``'G'``, ``'D'``, ``'G_ema'`` as
    :class:`PersistentObject` trees (``G``/``D`` may be missing or ``None`` in
    stripped pickles; ``G_ema`` is required) and everything else as loaded
    (``augment_pipe``, ``training_set_kwargs`` …).  No code from the file runs.
    """
    path = Path(path)
    data = safe_load(path)
    if isinstance(data, tuple) and data and all(isinstance(x, TFNetworkStub) for x in data):
        raise ConversionError(
            "is a TensorFlow-era StyleGAN2 pickle (dnnlib.tflib.network.Network), which is not "
            "supported; convert it to the PyTorch format first (e.g. NVlabs legacy.py)", path=path)
    if not isinstance(data, dict):
        raise ConversionError(f"holds a {type(data).__name__}, expected the NVlabs dict with "
                              "'G', 'D', 'G_ema'", path=path)
    if not isinstance(data.get("G_ema"), PersistentObject):
        keys = ", ".join(sorted(map(str, data))[:8]) or "none"
        raise ConversionError(f"has no NVlabs network under 'G_ema' (top-level keys: {keys})",
                              path=path)
    for key in ("G", "D"):
        if data.get(key) is not None and not isinstance(data[key], PersistentObject):
            raise ConversionError(f"entry {key!r} is a {type(data[key]).__name__}, expected an "
                                  "NVlabs network", path=path)
    return dict(data)


def _iter_module_tensors(obj: PersistentObject, prefix: str) -> Iterator[tuple[str, Tensor]]:
    state = obj.state
    params = state.get("_parameters", {})
    buffers = state.get("_buffers", {})
    modules = state.get("_modules", {})
    non_persistent = state.get("_non_persistent_buffers_set", set())
    for what, table in (("_parameters", params), ("_buffers", buffers), ("_modules", modules)):
        if not isinstance(table, Mapping):
            raise ConversionError(f"{obj.class_name} at {prefix or '<root>'!r} has a malformed "
                                  f"{what} ({type(table).__name__})")
    if not isinstance(non_persistent, set | frozenset | list | tuple):
        raise ConversionError(f"{obj.class_name} at {prefix or '<root>'!r} has a malformed "
                              "_non_persistent_buffers_set")
    for table, skip in ((params, ()), (buffers, non_persistent)):
        for name, value in table.items():
            if value is None or name in skip:
                continue
            if not isinstance(value, Tensor):
                raise ConversionError(f"{prefix}{name} is a {type(value).__name__}, not a tensor")
            yield prefix + str(name), value
    for name, child in modules.items():
        if child is None:
            continue
        if not isinstance(child, PersistentObject):
            raise ConversionError(f"submodule {prefix}{name} is a {type(child).__name__}, not a "
                                  "persistent NVlabs module")
        yield from _iter_module_tensors(child, f"{prefix}{name}.")


def module_state_dict(obj: PersistentObject) -> dict[str, Tensor]:
    """What ``nn.Module.state_dict()`` would return for the recorded module.

    Same order and naming: the module's ``_parameters``, then its ``_buffers``
    (minus ``_non_persistent_buffers_set``), then each entry of ``_modules``
    recursively with a ``name.`` prefix; ``None`` entries are skipped.
    """
    if not isinstance(obj, PersistentObject):
        raise ConversionError(f"expected an NVlabs network, got a {type(obj).__name__}")
    return dict(_iter_module_tensors(obj, ""))
