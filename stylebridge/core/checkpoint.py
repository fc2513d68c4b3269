"""stylebridge checkpoints: ``.safetensors`` with a JSON header in the metadata.

Everything stylebridge writes (generators, encoders, domain methods, calibration
statistics, FeatureShift models) uses this one format::

    metadata["stylebridge"] = json.dumps({
        "format": "stylebridge", "version": 1,
        "kind": "encoder", "plugin": "e4e", "config": {...}, "extra": {...}})

``kind`` says which registry the object belongs to, ``plugin`` the registered
name that rebuilds it from ``config``; the tensors are its state dict.  Tensors
are stored as safetensors, so loading a checkpoint never runs code.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError

from stylebridge.core.io import atomic_path, open_safetensors
from stylebridge.core.loading import build_on_meta, read_owned
from stylebridge.core.read_inputs import note_input
from stylebridge.core.sniff import file_kind
from stylebridge.core.tensorfile import write_tensors
from stylebridge.errors import CheckpointError, StylebridgeError

FORMAT = "stylebridge"
VERSION = 1
METADATA_KEY = "stylebridge"


@dataclass(frozen=True)
class CheckpointHeader:
    """The JSON header of a stylebridge checkpoint."""

    kind: str
    plugin: str
    config: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    version: int = VERSION

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT,
                "version": self.version,
                "kind": self.kind,
                "plugin": self.plugin,
                "config": self.config,
                "extra": self.extra,
            },
            sort_keys=True,
        )


def with_article(word: str) -> str:
    """``a generator``, ``an encoder``: a kind named in a message."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


_a = with_article


def _detach_for_saving(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies; tensors that share storage are cloned (safetensors refuses them)."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"checkpoint entry {name!r} is {type(tensor).__name__}, not a tensor")
        t = tensor.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen and t.numel() > 0:
            t = t.clone()
        seen.add(t.untyped_storage().data_ptr())
        out[name] = t
    return out


def save_checkpoint(
    path: str | Path,
    tensors: Mapping[str, torch.Tensor],
    *,
    kind: str,
    plugin: str,
    config: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``tensors`` and the header atomically (temporary file + rename)."""
    path = Path(path)
    header = CheckpointHeader(kind=kind, plugin=plugin, config=dict(config or {}),
                              extra=dict(extra or {}))
    try:
        metadata = {METADATA_KEY: header.to_json()}
    except TypeError as exc:  # config not JSON-serialisable: a programming error
        raise TypeError(f"checkpoint config for {plugin!r} is not JSON-serialisable: {exc}") from exc
    data = _detach_for_saving(tensors)
    # the bytes safetensors' save_file writes, but into the temporary file itself: save_file
    # wrote its own hidden .tmpXXXXXX beside it first, which a kill left (and no cleanup knew)
    with atomic_path(path) as tmp:
        write_tensors(data, tmp, metadata)
    return path


#: the largest stylebridge JSON header read (bytes); real ones are a few kB
MAX_HEADER_BYTES = 4 * 1024 * 1024
#: the deepest nesting of JSON objects/arrays accepted in a header; real ones are < 6
MAX_HEADER_DEPTH = 32


def _check_file(path: Path) -> None:
    if not path.exists():
        why = "no such file"
        if path.is_symlink():  # said as what it is, as a photo's is (core.images)
            try:
                os.stat(path)
            except OSError as exc:
                why = ("is a symlink loop" if exc.errno == errno.ELOOP
                       else f"is a broken symlink to {os.readlink(path)}")
        raise CheckpointError(why, path=path)
    if path.is_dir():
        raise CheckpointError("is a directory, expected a .safetensors checkpoint", path=path)
    if not path.is_file():  # a FIFO would block forever, a device never ends
        raise CheckpointError("is not a regular file (a FIFO, socket or device?), expected a "
                              ".safetensors checkpoint", path=path)


def _depth(value: Any) -> int:
    """Nesting depth of JSON data, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level > MAX_HEADER_DEPTH:
                break
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


#: what reading a file can raise because of the file: safetensors' own errors, a failed or
#: short read, a malformed value.  Anything else (memory running out, a CUDA device error
#: while tensors go to the GPU, a bug) is not the file's and is raised as it is.
FILE_ERRORS: tuple[type[Exception], ...] = (SafetensorError, OSError, ValueError)


def not_the_files(exc: BaseException) -> None:
    """Raise ``MemoryError`` for a :data:`FILE_ERRORS` error that says memory ran out (a read
    or mmap refused with ENOMEM): that is not the file's fault; else return."""
    if (isinstance(exc, OSError) and exc.errno == errno.ENOMEM) or "(os error 12)" in str(exc):
        raise MemoryError(str(exc)) from exc


def unreadable_safetensors(path: Path, exc: BaseException) -> CheckpointError:
    """The one-line error for a file safetensors cannot read: what the file is instead where
    its first bytes tell (an upstream ``torch.save`` file, a photo), else safetensors' reason."""
    if path.stat().st_size == 0:
        return CheckpointError("is empty (0 bytes), expected a .safetensors checkpoint", path=path)
    kind, what = file_kind(path)
    if kind in ("zip", "pickle"):
        return CheckpointError(
            f"is {what} (an upstream PyTorch checkpoint?), not a .safetensors checkpoint: "
            "convert it with `stylebridge convert KIND SRC DST`, or `stylebridge weights "
            "register NAME --from FILE` for an official one", path=path)
    if kind not in ("safetensors", "unknown"):
        return CheckpointError(f"is {what}, not a .safetensors checkpoint", path=path)
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return CheckpointError(f"not a readable safetensors file ({reason})", path=path)


def _plain_file_kind(metadata: Mapping[str, str]) -> str | None:
    """What a header-less safetensors file that stylebridge wrote is, from its metadata: a
    FeatureShift dataset shard, a plain weights file (CLIP, LPIPS); ``None``: unknown."""
    fmt = str(metadata.get("format", ""))
    if fmt.startswith("stylebridge-featureshift"):
        return "a FeatureShift dataset shard (`train featureshift --data` reads its folder)"
    if "random_weights" in metadata or "quick_gelu" in metadata:
        return "a plain weights file (CLIP, LPIPS, ...)"
    return None


def read_header(path: str | Path) -> CheckpointHeader:
    """Read and validate the header only (no tensor data is loaded)."""
    path = Path(path)
    _check_file(path)
    try:
        with open_safetensors(path) as fh:
            metadata = fh.metadata() or {}
    except FILE_ERRORS as exc:
        not_the_files(exc)
        raise unreadable_safetensors(path, exc) from None
    raw = metadata.get(METADATA_KEY)
    if raw is None:
        what = _plain_file_kind(metadata)
        if what is not None:
            raise CheckpointError(f"is {what}, not a stylebridge checkpoint (no stylebridge "
                                  "header): the command that uses it reads it", path=path)
        raise CheckpointError(
            "safetensors file without a stylebridge header; if it is an upstream checkpoint, "
            "convert it first with `stylebridge convert`",
            path=path,
        )
    if len(raw) > MAX_HEADER_BYTES:
        raise CheckpointError(f"stylebridge header is {len(raw):,} bytes, more than the "
                              f"{MAX_HEADER_BYTES:,} accepted", path=path)
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"stylebridge header is not valid JSON ({exc.msg})", path=path) from None
    except RecursionError:
        data = None
    if data is None or _depth(data) > MAX_HEADER_DEPTH:
        raise CheckpointError(f"stylebridge header is nested more than {MAX_HEADER_DEPTH} "
                              "levels deep", path=path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError("header does not declare format 'stylebridge'", path=path)
    version = data.get("version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"header has an invalid version {version!r}", path=path)
    if version > VERSION:
        raise CheckpointError(
            f"written by a newer stylebridge (format version {version}, this one reads {VERSION})",
            path=path,
        )
    kind, plugin = data.get("kind"), data.get("plugin")
    if not isinstance(kind, str) or not kind:
        raise CheckpointError("header has no 'kind'", path=path)
    if not isinstance(plugin, str) or not plugin:
        raise CheckpointError("header has no 'plugin'", path=path)
    config, extra = data.get("config", {}), data.get("extra", {})
    if not isinstance(config, dict) or not isinstance(extra, dict):
        raise CheckpointError("header 'config' and 'extra' must be JSON objects", path=path)
    return CheckpointHeader(kind=kind, plugin=plugin, config=config, extra=extra, version=version)


def load_checkpoint(
    path: str | Path,
    *,
    kind: str | None = None,
    plugin: str | None = None,
    device: str | torch.device = "cpu",
) -> tuple[CheckpointHeader, dict[str, torch.Tensor]]:
    """Load header and tensors, checking ``kind``/``plugin`` when given."""
    path = Path(path)
    header = read_header(path)
    note_input(path)   # no output is written onto it under another name
    if kind is not None and header.kind != kind:
        raise CheckpointError(f"is a checkpoint of kind {header.kind!r} ({header.plugin}), expected kind {kind!r}",
                              path=path)
    if plugin is not None and header.plugin != plugin:
        raise CheckpointError(
            f"holds {_a(header.kind)} of plugin {header.plugin!r}, expected {plugin!r}", path=path)
    tensors: dict[str, torch.Tensor] = {}
    try:
        with open_safetensors(path, device=str(device)) as fh:
            if torch.device(device).type == "cpu":  # in torch's own (aligned) memory
                tensors = read_owned(path, fh)
            else:
                for name in fh.keys():  # noqa: SIM118 - safe_open is not a mapping
                    tensors[name] = fh.get_tensor(name)
    except FILE_ERRORS as exc:  # memory or a GPU running out is not the file's: raised as is
        not_the_files(exc)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"tensor data is unreadable ({reason})", path=path) from None
    refuse_nonfinite(tensors, path)  # every loader gets finite weights, whatever it checks
    return header, tensors


def check_state_dict(
    path: str | Path | None,
    expected: Mapping[str, torch.Size | tuple[int, ...] | torch.Tensor],
    actual: Mapping[str, torch.Tensor],
    *,
    what: str = "checkpoint",
    ignore: Iterable[str] = (),
    error: type[CheckpointError] = CheckpointError,
    check_finite: bool = True,
) -> None:
    """Raise a one-line ``error`` on missing/extra keys, shape or dtype mismatches or NaN/Inf
    values (``check_finite=False``: not the values, for tensors :func:`load_checkpoint`
    returned, which it checked).

    ``expected`` maps names to shapes, or to tensors (a module's ``state_dict()``): then the
    kind of dtype is checked too.  A floating-point tensor may arrive in any floating
    dtype (upstream files hold fp16 and fp64; ``load_state_dict`` casts), but an integer,
    bool or complex tensor where a float is expected, or a float where an integer buffer
    is expected, is refused: ``load_state_dict`` would cast it silently.
    """
    ignored = set(ignore)
    exp_keys = set(expected) - ignored
    act_keys = set(actual) - ignored
    missing = sorted(exp_keys - act_keys)
    unexpected = sorted(act_keys - exp_keys)

    def _few(keys: list[str]) -> str:
        head = ", ".join(keys[:3])
        return head + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")

    if missing:
        raise error(f"{what} is missing {len(missing)} tensor(s): {_few(missing)}", path=path)
    if unexpected:
        raise error(f"{what} has {len(unexpected)} unexpected tensor(s): {_few(unexpected)}",
                              path=path)
    for name in sorted(exp_keys):
        ref = expected[name]
        want = tuple(ref.shape) if isinstance(ref, torch.Tensor) else tuple(ref)
        got = tuple(actual[name].shape)
        if want != got:
            raise error(f"{what} tensor {name} has shape {list(got)}, expected {list(want)}",
                                  path=path)
        if isinstance(ref, torch.Tensor) and _dtype_kind(ref) != _dtype_kind(actual[name]):
            raise error(f"{what} tensor {name} has dtype {str(actual[name].dtype)[6:]}, "
                        f"expected a {_dtype_kind(ref)} tensor", path=path)
    for name in sorted(exp_keys) if check_finite else ():
        t = actual[name]
        if t.is_floating_point() and not all_finite(t):
            raise error(f"{what} tensor {name} contains NaN or Inf values", path=path)


def all_finite(t: torch.Tensor) -> bool:
    """Whether every element of the floating-point tensor ``t`` is finite, exactly.

    A sum is finite only if every term is (NaN and an infinity stay NaN or infinite through
    any additions), and summing reads the tensor once where ``isfinite(t).all()`` writes a
    mask of it first (8-100x slower on a 2-core CPU: ``benchmarks/load_speed.py``).  A
    finite tensor whose sum overflows (fp16 or bf16 values are summed in float32; fp32 near
    its largest value) is told by the element-wise test."""
    if t.numel() == 0:
        return True
    try:
        total = t.sum(dtype=torch.float32) if t.element_size() < 4 else t.sum()
    except (RuntimeError, TypeError):  # a dtype without a sum (float8): element-wise only
        total = None
    if total is not None and bool(torch.isfinite(total)):
        return True
    return bool(torch.isfinite(t).all())


def _dtype_kind(t: torch.Tensor) -> str:
    if t.is_complex():
        return "complex"
    if t.is_floating_point():
        return "floating-point"
    return "bool" if t.dtype == torch.bool else "integer"


def refuse_nonfinite(obj: Any, path: str | Path | None, *, what: str = "tensor",
                     error: type[CheckpointError] = CheckpointError) -> None:
    """Raise a one-line ``error`` naming the first floating-point tensor in ``obj`` (a tensor,
    or dicts/lists/tuples/namespaces of them, as upstream files hold) with NaN or Inf values.
    Every weight file stylebridge reads (its own, upstream checkpoints for the converters,
    CLIP/ArcFace/LPIPS/Inception weights) goes through this.  A tensor named ``*mask*``
    (an attention mask) may hold -inf, never NaN."""
    stack: list[tuple[str, Any, int]] = [("", obj, 0)]
    seen: set[int] = set()  # shared and cyclic references are walked once
    while stack:
        name, item, depth = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, torch.Tensor):
            if item.is_floating_point() and not all_finite(item):
                # attention masks (CLIP's attn_mask) hold -inf by design; never NaN
                mask = "mask" in name.rsplit(".", 1)[-1]
                if not mask or bool(torch.isnan(item).any()):
                    label = f"{what} {name}" if name else what
                    raise error(f"{label} contains NaN or Inf values", path=path)
            continue
        if depth > 64:
            continue
        if isinstance(item, Mapping):
            children = list(item.items())
        elif isinstance(item, list | tuple):
            children = list(enumerate(item))
        elif hasattr(item, "__dict__") and not isinstance(item, type):
            children = list(vars(item).items())
        else:
            continue
        stack.extend((f"{name}.{k}" if name else str(k), v, depth + 1) for k, v in children)


def refuse_wrong_dtypes(path: str | Path | None, expected: Mapping[str, torch.Tensor],
                        actual: Mapping[str, torch.Tensor], *, what: str = "checkpoint",
                        prefix: str = "", error: type[CheckpointError] = CheckpointError
                        ) -> None:
    """An integer or bool tensor in the file where the module holds a float one (it would be
    cast silently) is refused by name."""
    for name in sorted(set(expected) & set(actual)):
        want, got = expected[name], actual[name]
        if want.is_floating_point() and not got.is_floating_point():
            raise error(f"{what} tensor {name[len(prefix):]} has dtype "
                        f"{str(got.dtype).removeprefix('torch.')}, expected a floating-point "
                        "tensor", path=path)


#: what building a module on ``meta`` raises when the module cannot be built there (an op
#: without a meta kernel, a value read) or its config is refused (the real build says it):
#: the pre-check is skipped.  Other errors (a bug, memory) are raised.
_META_BUILD_ERRORS = (RuntimeError, TypeError, ValueError, KeyError, IndexError,
                      AssertionError, StylebridgeError)

#: slack for tensors a config implies beyond the file's (non-persistent buffers, caches)
IMPLIED_SLACK_BYTES = 256 * 1024 * 1024


def check_implied_shapes(path: str | Path | None, build: Callable[[], torch.nn.Module],
                         tensors: Mapping[str, torch.Tensor], *, what: str = "checkpoint",
                         prefix: str = "", error: type[CheckpointError] = CheckpointError
                         ) -> torch.nn.Module | None:
    """Before a module is allocated from a header's config, build it on the ``meta`` device
    (no memory) and compare the tensor shapes the config implies with the file's: a tensor
    of another shape is refused by name, and a config that implies far more memory than the
    file holds (more than twice, plus :data:`IMPLIED_SLACK_BYTES`) is refused with both
    sizes.  A module that cannot be built on ``meta`` is not pre-checked (its own loader still
    checks keys and shapes after building it): ``None``; else the module built on ``meta``,
    which :func:`~stylebridge.core.loading.load_weights` can fill with the tensors."""
    try:
        module = build_on_meta(build)
        implied = {prefix + k: v for k, v in module.state_dict().items()}
    except MemoryError:  # even the memory-free build is too big: an absurd config
        raise error(f"the {what} config is too large to build (out of memory before a weight "
                    "was allocated; a crafted or corrupt header)", path=path) from None
    except _META_BUILD_ERRORS as exc:  # not buildable on meta, or a config its build refuses
        if isinstance(exc, torch.cuda.OutOfMemoryError):  # not the file's: raised as it is
            raise
        if "overflow" in str(exc).lower():  # tensor sizes beyond int64: an absurd config
            raise error(f"the {what} config implies tensors too large to index (a crafted or "
                        "corrupt header)", path=path) from None
        return None  # the real build (after this) raises a bad config's own error
    refuse_wrong_dtypes(path, implied, tensors, what=what, prefix=prefix, error=error)
    for name in sorted(set(implied) & set(tensors)):
        want, got = tuple(implied[name].shape), tuple(tensors[name].shape)
        if want != got:
            raise error(f"{what} tensor {name[len(prefix):]} has shape {list(got)}, expected "
                        f"{list(want)} by its config", path=path)
    need = sum(t.numel() * t.element_size() for t in implied.values())
    have = sum(t.numel() * t.element_size() for t in tensors.values())
    if need > 2 * have + IMPLIED_SLACK_BYTES:
        raise error(f"the {what} config implies {need / 2**20:,.0f} MiB of tensors but "
                    f"the file holds {have / 2**20:,.0f} MiB; refused before allocating (a "
                    "crafted or corrupt header)", path=path)
    return module


#: The label of anything computed with untrained weights (terminal, grids, JSON, markdown).
#: Upper case: rich would take "[random weights]" for a markup tag.
RANDOM_NOTICE = "RANDOM WEIGHTS"


def is_random_weights(extra: Mapping[str, Any]) -> bool:
    """Whether a header's ``extra`` marks untrained weights (``random_weights`` or a note)."""
    if extra.get("random_weights"):
        return True
    notes = extra.get("notes", [])
    return isinstance(notes, list) and any("random weights" in str(n).lower() for n in notes)


def file_random(path: str | Path) -> bool:
    """A plain ``.safetensors`` weights file (CLIP, LPIPS, ...) whose metadata says
    ``random_weights: true`` (the tiny preset's stand-ins); unreadable files: ``False`` (their
    loader reports them with its own message)."""
    path = Path(path)
    if path.suffix != ".safetensors":
        return False
    try:
        with open_safetensors(path) as fh:
            meta = fh.metadata() or {}
    except Exception:
        return False
    return str(meta.get("random_weights", "")).lower() in {"1", "true", "yes"}
