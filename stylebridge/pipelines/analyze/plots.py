"""The ``analyze latents`` figures (thesis Fig. 4.9): matplotlib ``Figure`` objects, no pyplot
state; matplotlib is imported only when a figure is made."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import Tensor

from stylebridge.core.checkpoint import RANDOM_NOTICE
from stylebridge.core.io import atomic_path
from stylebridge.pipelines.analyze.markdown import fmt

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _density(x: Any, y: Any) -> Any:
    """Gaussian-kernel density of each point among the others (Scott bandwidth, numpy only)."""
    n = len(x)
    if n < 3:
        return np.ones(n)
    pts = np.stack([x, y], 1).astype(np.float64)
    std = pts.std(0)
    std[std <= 0] = 1.0
    h = std * n ** (-1.0 / 6.0)
    d = (pts[:, None, :] - pts[None, :, :]) / h
    return np.exp(-0.5 * (d ** 2).sum(-1)).sum(1)


#: line colour and style of each α fit: through the origin (the thesis' ``y = α·x``) and
#: ordinary least squares with intercept (the other reading of "simple Linear Regression")
FIT_STYLE = {"origin": ("tab:red", "--"), "intercept": ("tab:purple", ":")}


def _fits(row: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The row's fits, origin first (a row without ``fits`` has only its chosen one)."""
    if "fits" in row:
        return {k: row["fits"][k] for k in FIT_STYLE if k in row["fits"]}
    kind = "intercept" if row.get("intercept") else "origin"
    return {kind: {"alpha": row["alpha"], "intercept": row.get("intercept")}}


def _panel(ax: Any, x: Tensor, y: Tensor, row: Mapping[str, Any]) -> Any:
    """One layer's scatter (coloured by point density), y = x and its fits; returns the
    scatter (for the colour bar)."""
    xn, yn = x.double().numpy(), y.double().numpy()
    dens = _density(xn, yn)
    order = np.argsort(dens)
    points = ax.scatter(xn[order], yn[order], c=dens[order], s=6, cmap="viridis",
                        linewidths=0, zorder=3)
    lo = float(min(xn.min(), yn.min()))
    hi = float(max(xn.max(), yn.max()))
    pad = 0.05 * (hi - lo or 1.0)
    line = np.array([lo - pad, hi + pad])
    ax.plot(line, line, color="tab:green", lw=1, label="y = x", zorder=1)
    for kind, f in _fits(row).items():
        if f["alpha"] is None:
            continue
        b = f["intercept"] or 0.0
        ax.plot(line, f["alpha"] * line + b, color=FIT_STYLE[kind][0], lw=1,
                ls=FIT_STYLE[kind][1], zorder=2,
                label=f"{kind}: y = {f['alpha']:.3g}·x" + (f" + {b:.3g}" if b else ""))
    both = _fits(row)
    alphas = " ".join(f"α_{k[0]}={fmt(f['alpha'], '.3g')}" for k, f in both.items())
    ax.set_title(f"{row['index']}: {row['name']}\n{alphas} "
                 f"R²={fmt(row['r2'], '.2f')} ({row['pattern']})", fontsize=8)
    ax.tick_params(labelsize=6)
    return points


def _density_bar(fig: Any, points: Any, axes: Any) -> None:
    """What the scatter colours mean (the density is scaled per panel)."""
    bar = fig.colorbar(points, ax=axes, shrink=0.5, aspect=30, pad=0.01)
    bar.set_label("point density (per panel, relative)", fontsize=7)
    bar.set_ticks([])


def _suptitle(meta: Mapping[str, Any]) -> str:
    title = "per-channel style means: encoder (y) vs mapping network (x)"
    if meta.get("encoder"):
        title += f"\nencoder {meta['encoder']}, {meta.get('n_images', '?')} images; " \
                 f"{meta.get('samples', '?')} z samples"
    if meta.get("random_weights"):
        parts = ", ".join(k for k, v in meta.get("random_inputs", {}).items() if v)
        title += f"\n{RANDOM_NOTICE} ({parts or 'inputs'}): not a trained model"
    return title


def plot_distributions(source_means: Sequence[Tensor], encoder_means: Sequence[Tensor],
                       report: Mapping[str, Any], *, ncols: int = 6) -> Figure:
    """Fig. 4.9: one panel per reported layer (x = mapping means, y = encoder means).

    Returns a matplotlib ``Figure`` (no pyplot state) with exactly one axes per
    layer of ``report["layers"]``, in that order, then the density colour bar's.
    """
    from matplotlib.figure import Figure

    rows = list(report["layers"])
    n = len(rows)
    cols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / cols))
    fig = Figure(figsize=(3.0 * cols, 3.0 * nrows + 0.8), layout="constrained")
    axes = fig.subplots(nrows, cols, squeeze=False).flatten()
    points = None
    for ax, row in zip(axes, rows, strict=False):
        points = _panel(ax, source_means[row["index"]].cpu(), encoder_means[row["index"]].cpu(),
                        row)
    for ax in axes[n:]:
        fig.delaxes(ax)
    if n:
        axes[0].legend(fontsize=6, loc="upper left")
        _density_bar(fig, points, list(axes[:n]))
    fig.supxlabel("mapping network: per-channel mean of s over z ~ N(0, I)", fontsize=9)
    fig.supylabel("encoder: per-channel mean of s over the images", fontsize=9)
    meta = report.get("meta", {})
    fig.suptitle(_suptitle(meta), fontsize=10,
                 color="tab:red" if meta.get("random_weights") else "black")
    return fig


def plot_layer(source_mean: Tensor, encoder_mean: Tensor, row: Mapping[str, Any],
               meta: Mapping[str, Any] | None = None) -> Figure:
    """One layer's panel as its own figure (``--per-layer``)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5, 4.8), layout="constrained")
    ax = fig.subplots()
    _density_bar(fig, _panel(ax, source_mean.cpu(), encoder_mean.cpu(), row), ax)
    ax.set_xlabel("mapping network (z ~ N(0, I))", fontsize=8)
    ax.set_ylabel("encoder", fontsize=8)
    ax.legend(fontsize=6, loc="upper left")
    if meta and meta.get("random_weights"):
        fig.suptitle(f"{RANDOM_NOTICE}: not a trained model", fontsize=9, color="tab:red")
    return fig


def save_figure(fig: Figure, dst: Path, *, dpi: int = 100, notice: str | None = None) -> Path:
    """Write ``fig`` as PNG atomically; ``notice`` is kept in the file as a picture's is
    (:data:`~stylebridge.core.images.NOTICE_KEY`: a plot of random weights says so when it
    travels without its report, ``stylebridge info PLOT.png``)."""
    from stylebridge.core.images import NOTICE_KEY

    with atomic_path(dst) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi,
                    metadata={NOTICE_KEY: notice} if notice else None)
    return dst


def plot_comparison(source_means: Sequence[Tensor], encoder_means: Mapping[str, Sequence[Tensor]],
                    results: Mapping[str, Mapping[str, Any]], meta: Mapping[str, Any], *,
                    ncols: int = 6) -> Figure:
    """Fig. 4.9 with several encoders: per layer, one colour per encoder and its α line."""
    from matplotlib.figure import Figure

    labels = list(results)
    rows = list(results[labels[0]]["layers"])
    n = len(rows)
    cols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / cols))
    fig = Figure(figsize=(3.0 * cols, 3.0 * nrows + 0.8), layout="constrained")
    axes = fig.subplots(nrows, cols, squeeze=False).flatten()
    colours = ["tab:blue", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive"]
    for k, (ax, row) in enumerate(zip(axes, rows, strict=False)):
        i = row["index"]
        x = source_means[i].double().cpu().numpy()
        values = [x]
        title = []
        for j, e in enumerate(labels):
            y = encoder_means[e][i].double().cpu().numpy()
            values.append(y)
            colour = colours[j % len(colours)]
            ax.scatter(x, y, s=5, color=colour, alpha=0.5, linewidths=0, zorder=3, label=e)
            row_e = results[e]["layers"][k]
            title.append(f"α_{e}={fmt(row_e['alpha'], '.3g')}")
            lo, hi = float(x.min()), float(x.max())
            for kind, f in _fits(row_e).items():  # origin dashed, intercept dotted
                if f["alpha"] is not None:
                    b = f["intercept"] or 0.0
                    ax.plot([lo, hi], [f["alpha"] * lo + b, f["alpha"] * hi + b], color=colour,
                            lw=1, ls=FIT_STYLE[kind][1], zorder=2)
        lo = float(min(v.min() for v in values))
        hi = float(max(v.max() for v in values))
        ax.plot([lo, hi], [lo, hi], color="tab:green", lw=1, zorder=1, label="y = x")
        ax.set_title(f"{i}: {row['name']}\n" + " ".join(title), fontsize=7)
        ax.tick_params(labelsize=6)
        if k == 0:  # the fit lines' styles too (their colour is their encoder's)
            from matplotlib.lines import Line2D

            handles, _ = ax.get_legend_handles_labels()
            handles += [Line2D([], [], color="grey", lw=1, ls=FIT_STYLE[kind][1],
                               label=f"{kind} fit" + (" (y = α·x)" if kind == "origin"
                                                      else " (y = α·x + b)"))
                        for kind in FIT_STYLE]
            ax.legend(handles=handles, fontsize=6, loc="upper left")
    for ax in axes[n:]:
        fig.delaxes(ax)
    fig.supxlabel("mapping network: per-channel mean of s over z ~ N(0, I)", fontsize=9)
    fig.supylabel("encoders: per-channel mean of s over the images", fontsize=9)
    title = "per-channel style means: " + ", ".join(labels) + " vs the mapping network"
    if meta.get("random_weights"):
        title += f"\n{RANDOM_NOTICE} ({', '.join(meta.get('random_parts', []))}): not a trained model"
    fig.suptitle(title, fontsize=10, color="tab:red" if meta.get("random_weights") else "black")
    return fig
