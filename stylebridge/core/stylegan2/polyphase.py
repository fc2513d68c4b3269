"""The polyphase form of StyleGAN2's up-sampling convolution (issue 20's GPU speed work).

An up-sampling modulated conv is a transposed convolution with stride 2 followed by a FIR
blur.  Both are linear and the blur is fixed, so they fold into one weight: convolve every
(out, in) kernel with the blur, split the result by output parity into four phases, and run
them as one stride-1 convolution to ``4 * out`` channels followed by a 2x pixel shuffle.  The
image is the same to float rounding; the convolution does 4x the multiply-adds of the
transposed one but the separate blur pass over the up-sampled activation is gone, which is
the trade a GPU (tensor cores, memory-bound elementwise passes) may win and a CPU loses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

#: How an up-sampling modulated conv evaluates "transposed conv, then blur" (see
#: :func:`polyphase_weight`): ``transpose`` (upstream's order) or ``polyphase`` (the blur folded
#: into the weight: one stride-1 convolution to 4x the channels and a pixel shuffle, exact to
#: float rounding, 4x the multiply-adds of the transposed conv but no separate blur pass).
#: Per device type, from measurements: on the CPU (2 cores, 256 px batch 1) polyphase ran
#: 1.2-4.5x slower per layer, 1.8x in all (``benchmarks/results/upconv_cpu_256_b1.json``);
#: CUDA has not been measured yet (``benchmarks/gpu_speed.sh`` does), so it stays
#: ``transpose`` there.  ``ModulatedConv2d.upconv`` (or
#: :meth:`~stylebridge.core.stylegan2.Generator.set_upconv`) overrides it per layer.
UPCONV_BY_DEVICE: dict[str, str] = {"cpu": "transpose", "cuda": "transpose"}
UPCONV_ORDERS: tuple[str, ...] = ("transpose", "polyphase")


def phase_taps(k: int, taps: int, pad0: int) -> tuple[list[list[int]], int, int] | None:
    """Per axis, for the two output phases of "transposed conv (``k`` taps, stride 2), then an
    FIR filter (``taps`` taps, ``pad0`` before)": the index into the combined ``k + taps - 1``
    tap kernel of each tap of a stride-1 correlation (``-1``: zero), and that correlation's
    padding before/after.  ``None`` where the two phases' output lengths would differ from
    the input's (a filter padding this form does not cover).

    Derivation: ``z[m] = sum_i x[i] K[m - 2i + c]`` with ``K`` = the weight convolved with
    the filter and ``c = taps - 1 - pad0``; for ``m = 2q + p`` the taps of ``K`` at parity
    ``(p + c) % 2`` meet ``x[q + (p + c) // 2 - t]``."""
    full, c = k + taps - 1, taps - 1 - pad0
    phases = []
    for p in (0, 1):
        e, d = (p + c) % 2, (p + c) // 2
        count = (full - e + 1) // 2
        phases.append((e, d, count))
    lo = min(d - (count - 1) for _, d, count in phases)
    hi = max(d for _, d, _ in phases)
    if lo > 0 or hi < 0:
        return None
    table = []
    for e, d, _ in phases:
        row = []
        for u in range(hi - lo + 1):
            index = e + 2 * (d - (u + lo))
            row.append(index if 0 <= index < full else -1)
        table.append(row)
    return table, -lo, hi


def polyphase_weight(weight: Tensor, blur: Tensor, pad0: int) -> Tensor:
    """``[out, in, k, k]`` transposed-conv weight (applied with stride 2) and the ``[K, K]``
    blur after it (true convolution, ``pad0`` padding before) -> the ``[4 out, in, S, S]``
    weight of one stride-1 convolution whose output, pixel-shuffled by 2, is the same image
    (channel ``4o + 2py + px`` holds phase ``(py, px)`` of output channel ``o``).  Linear in
    ``weight`` per (out, in) pair, so modulating it per pair commutes with the fold."""
    out_ch, in_ch, k, _ = weight.shape
    taps = blur.shape[0]
    spec = phase_taps(k, taps, pad0)
    if spec is None:
        raise ValueError(f"no polyphase form for k={k}, {taps}-tap blur, pad {pad0}")
    table, _, _ = spec
    full = k + taps - 1
    # the full 2-D convolution of every (out, in) kernel with the blur, as a sum of shifted
    # copies (one fused elementwise kernel under torch.compile, where the synthesis network
    # recomputes it per call, instead of a convolution over out*in tiny planes), plus a zero
    # row and column: index `full` (-1 in the table) reads zero
    blur = blur.to(weight)
    combined = sum(blur[r, t] * F.pad(weight, [t, taps - t, r, taps - r])
                   for r in range(taps) for t in range(taps))
    assert isinstance(combined, Tensor)
    index = torch.tensor(table, device=weight.device).remainder(full + 1)  # -1 -> full
    size = index.shape[1]
    rows = index.view(2, 1, size, 1)
    cols = index.view(1, 2, 1, size)
    phases = combined[:, :, rows, cols]  # [out, in, 2, 2, S, S]
    return phases.permute(0, 2, 3, 1, 4, 5).reshape(out_ch * 4, in_ch, size, size)


__all__ = ["UPCONV_BY_DEVICE", "UPCONV_ORDERS", "phase_taps", "polyphase_weight"]
