"""Reading NVlabs state dicts, for the converters of :mod:`stylebridge.core.stylegan2.nvlabs`.

The small helpers both converters share: the error context (``_Ctx``: the file and the
network named in every one-line :class:`~stylebridge.errors.ConversionError`), checked
tensors (``_take``, ``_check_state``, ``_check_unused``), the block pyramid
(``_block_resolutions``), the activation check, and the FIR taps recovered from NVlabs'
``resample_filter`` buffers (``_resolve_taps``, default :data:`DEFAULT_TAPS`) with
rosinality's ``make_kernel`` (``_make_kernel``).  ``nvlabs`` re-exports every name here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from stylebridge.errors import ConversionError

DEFAULT_TAPS: tuple[int, ...] = (1, 3, 3, 1)




class _Ctx:
    """Error context: the file (if any) and the network being converted."""

    def __init__(self, path: str | Path | None, what: str) -> None:
        self.path = None if path is None else Path(path)
        self.what = what

    def error(self, message: str) -> ConversionError:
        return ConversionError(f"{self.what} {message}", path=self.path)


def _kw(kwargs: Mapping[str, Any] | None, *keys: str, default: Any = None) -> Any:
    """``kwargs[k0][k1]…``, or ``default`` when any level is missing (or ``None``)."""
    cur: Any = kwargs
    for key in keys:
        if not isinstance(cur, Mapping) or cur.get(key) is None:
            return default
        cur = cur[key]
    return cur


def _make_kernel(taps: Iterable[float], gain: float = 1.0) -> Tensor:
    """rosinality's ``make_kernel``: outer product of the taps, normalised to sum 1."""
    k = torch.tensor(list(taps), dtype=torch.float32)
    k2 = k[None, :] * k[:, None] if k.ndim == 1 else k
    return k2 / k2.sum() * gain


def _taps_from_filter(buf: Tensor, ctx: _Ctx, name: str) -> tuple[int, ...]:
    """Recover integer 1-D taps from an NVlabs ``setup_filter`` buffer (2-D or separable 1-D)."""
    f = buf.detach().to(torch.float64)
    if f.ndim == 2:
        if f.shape[0] != f.shape[1]:
            raise ctx.error(f"has a non-square FIR filter {name} {list(f.shape)}")
        k = f.sum(dim=0)
    elif f.ndim == 1:
        k = f
    else:
        raise ctx.error(f"has a FIR filter {name} of unexpected shape {list(f.shape)}")
    if k.numel() == 0 or float(k.min()) <= 0:
        raise ctx.error(f"has a FIR filter {name} without positive taps")
    ratio = k / k.min()
    taps = torch.round(ratio)
    if not torch.allclose(ratio, taps, atol=1e-4):
        raise ctx.error(f"has non-integer FIR taps {ratio.tolist()} in {name}, not supported")
    result = tuple(int(t) for t in taps.tolist())
    if f.ndim == 2 and not torch.allclose(_make_kernel(result).double(), f, atol=1e-6):
        raise ctx.error(f"has a non-separable FIR filter {name}")
    return result


def _resolve_taps(state: Mapping[str, Tensor], filter_keys: list[str],
                  init_taps: Any, ctx: _Ctx) -> tuple[int, ...]:
    """The FIR taps: from ``init_kwargs`` if recorded, else the buffers; both must agree."""
    taps: tuple[int, ...] | None = None
    if init_taps is not None:
        try:
            raw = [float(t) for t in init_taps]
        except (TypeError, ValueError):
            raise ctx.error(f"has resample_filter={init_taps!r}, not a list of taps") from None
        if not raw or any(t != int(t) or t <= 0 for t in raw):
            raise ctx.error(f"has resample_filter={raw}, not a list of positive integers")
        taps = tuple(int(t) for t in raw)
    for key in filter_keys:
        buf = state.get(key)
        if buf is None or buf.is_meta:
            continue
        found = _taps_from_filter(buf, ctx, key)
        if taps is None:
            taps = found
        elif not torch.allclose(_make_kernel(found), _make_kernel(taps)):
            raise ctx.error(f"has taps {list(found)} in {key} but resample_filter={list(taps)}")
    return taps if taps is not None else DEFAULT_TAPS


def _take(state: Mapping[str, Tensor], key: str, shape: list[int] | tuple[int, ...],
          used: set[str], ctx: _Ctx) -> Tensor:
    """``state[key]`` as float32, checked to have ``shape``; marks the key as used."""
    if key not in state:
        raise ctx.error(f"lacks {key!r}")
    value = state[key]
    if not isinstance(value, Tensor):
        raise ctx.error(f"has a non-tensor {key!r} ({type(value).__name__})")
    if list(value.shape) != list(shape):
        raise ctx.error(f"has {key!r} of shape {list(value.shape)}, expected {list(shape)}")
    if not value.is_floating_point():
        raise ctx.error(f"has {key!r} of dtype {value.dtype}, expected floating point")
    used.add(key)
    return value.detach().to(torch.float32)


def _block_resolutions(state: Mapping[str, Tensor], pattern: str, ctx: _Ctx) -> list[int]:
    rx = re.compile(pattern)
    res = sorted({int(m.group(1)) for k in state if (m := rx.match(k))})
    if not res:
        raise ctx.error("has no b<R>.* blocks")
    for r in res:
        if r < 4 or r & (r - 1):
            raise ctx.error(f"has a block at resolution {r}, not a power of two >= 4")
    expected = [2**i for i in range(2, res[-1].bit_length())]
    if res != expected:
        missing = sorted(set(expected) - set(res))
        raise ctx.error(f"has blocks that are not a full pyramid 4..{res[-1]} (missing {missing})")
    return res


def _check_unused(state: Mapping[str, Tensor], used: set[str], ctx: _Ctx, hint: str) -> None:
    extra = sorted(k for k in state if k not in used and not k.endswith("resample_filter"))
    if extra:
        shown = ", ".join(extra[:4]) + (f" (+{len(extra) - 4} more)" if len(extra) > 4 else "")
        raise ctx.error(f"has tensors the StyleGAN2 layout has no place for: {shown}; {hint}")


def _check_state(state: Any, ctx: _Ctx) -> Mapping[str, Tensor]:
    if not isinstance(state, Mapping) or not state:
        raise ctx.error("is empty or not a state dict")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, Tensor):
            raise ctx.error(f"has an entry {key!r} that is not a named tensor")
    return state


def _check_activation(kwargs: Mapping[str, Any] | None, keys: list[tuple[str, ...]],
                      ctx: _Ctx) -> None:
    for path in keys:
        act = _kw(kwargs, *path)
        if act is not None and act != "lrelu":
            raise ctx.error(f"uses activation {'.'.join(path)}={act!r}; only 'lrelu' is supported")
