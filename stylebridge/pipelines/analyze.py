"""``stylebridge analyze latents``: encoder vs mapping-network style distributions (thesis,
"Examining latent distributions", Fig. 4.9, Eq. 5, Fig. 4.10).

What is compared.  For every modulated layer ``i`` the thesis takes the *style*
vectors ``s_i = A_i(w+[:, row_i])`` ("latents after learned style affine
transforms") and compares their per-channel means over a photo set encoded by
an encoder (FFHQ small, 3000 images; y axis) with the per-channel means of the
mapping network's styles over sampled ``z ~ N(0, I)`` (3000 samples, no
truncation; x axis).  Layers are the style-layer indices of
:mod:`stylebridge.core.stylegan2.generator` (0 = ``conv1``, 1 = ``to_rgb1``,
then per stage ``j``: ``2+3j``/``3+3j`` the convs, ``4+3j`` ToRGB; 26 at
1024 px).  ``layers="conv"`` keeps the 17 non-RGB ones (StyleDomain's
``s_delta`` order, reported as ``conv_index``).  The thesis' figures show 18
panels / rows for a 1024-px generator, which matches neither 17 convs nor 26
modulated layers; we report every style layer (or the convs) with its name so
the numbering is unambiguous.

Per layer (Fig. 4.9 and the calibration behind Fig. 4.11):

* ``alpha``, ``intercept``, ``r2``: the fit of ``encoder ≈ α · mapping`` over
  the layer's channel means, computed by
  :func:`stylebridge.plugins.calibrators.alpha.fit_alpha` (through the origin by
  default, exactly the statistics ``stylebridge calibrate alpha`` stores);
* ``corr_r2``: the squared Pearson correlation of the two mean vectors (the
  ``r2`` of the fit with intercept), the thesis' "covariance";
* ``pattern``: the thesis' three groups of layers, characterised numerically
  (the thesis gives no thresholds; these are ours and are options):
  ``independent`` (group 1, "low covariance ... independency", first layers):
  ``corr_r2 < r2_min`` (default 0.5); ``calibrated`` (group 2, "well-calibrated",
  middle layers): otherwise, if ``|α − 1| <= alpha_tol`` (default 0.1);
  ``scaled`` (group 3, "scaled by some constant y = α·x", upper layers):
  otherwise.  The thesis' groups are also positional (first / middle / upper
  layers); the report lists which layers fall in each pattern and leaves the
  positional reading to the reader.

Domain adaptability (Eq. 5, Fig. 4.10).  For a domain method ``D``,
``Adaptability⁽ⁱ⁾ = ⟨w_enc⁽ⁱ⁾, w_enc⁽ⁱ⁾ + Δw_domain⁽ⁱ⁾⟩ − ⟨w_orig⁽ⁱ⁾, w_orig⁽ⁱ⁾ +
Δw_domain⁽ⁱ⁾⟩`` where ``w⁽ⁱ⁾`` is layer ``i``'s style vector of one encoded
photo (``enc``) or one mapped sample (``orig``) and ``w + Δw`` the same style
vector with the domain applied, i.e. ``D.styles(generator, w_plus)[i]`` — for
StyleSpace ``s + Δ``, for methods whose change is not additive (Affine+,
AffineLight+) the per-sample ``Δs = s_domain − s_source``.  Each term is the
**average over the photos / samples** of the per-vector similarity.

``⟨·,·⟩`` is the **cosine similarity**: the text introducing Eq. 5 says "we have
calculated cosine similarities between latents with or without offsets ... the
final metric takes differences between their cosine similarities", and
Fig. 4.10 lists ``stoch_sim`` / ``fse_sim`` / ``e4e_sim`` in ``[-1, 1]`` (1.000 on
a layer without offset) with ``*_diff = *_sim − stoch_sim``.  That is the
``adaptability`` column.  Because the formula's brackets could also be read as
a plain dot product, the report also gives that variant
(``orig_dot`` / ``enc_dot`` / ``adaptability_dot``, mean of ``⟨s, s'⟩``); it is
scale-dependent (an encoder whose styles are ``α`` times larger changes it by
``~α²`` even without any difference in the domain's effect), so it is for
reference only.  Conv weight offsets that some DissimilarDomains checkpoints
carry are not a change of ``s`` and are not part of Eq. 5 (flagged as
``weight_offsets_excluded``).

CLI::

    stylebridge analyze latents --encoder e4e:e4e.safetensors [--encoder fse:fse.safetensors] \\
        --generator ffhq.safetensors \\
        --images ffhq_small/ --out analysis/ [--samples 3000] [--domain pixar.safetensors ...]

writes ``latents.png`` (one panel per layer: density-coloured scatter of the
channel means, the ``y = x`` line in green and the fitted ``y = α·x`` line),
``layers/layer_XX.png`` with ``--per-layer``, ``latents.md`` and
``latents.json`` (atomic writes).  ``--encoder`` is repeatable (the thesis compares
e4e and FSE): each encoder's report then goes to ``OUT/<encoder>/`` and ``OUT/latents.*``
hold the side-by-side comparison (one colour per encoder in every panel; α and pattern
per encoder; per domain Fig. 4.10's ``stoch_sim`` / ``<encoder>_sim`` / ``<encoder>_diff``).  Unreadable photos (and, with ``--align``,
photos without a face) are skipped and reported; exit 3 when some were
skipped, 2 when none could be used.  Anything computed with random weights is
labelled as such in the plot titles, the markdown and the JSON.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from rich.markup import escape
from torch import Tensor

from stylebridge.cli.base import Command
from stylebridge.core.checkpoint import RANDOM_NOTICE
from stylebridge.core.interfaces import DomainMethod, Encoder
from stylebridge.errors import StylebridgeError
from stylebridge.plugins.calibrators.alpha import (
    FITS,
    MAPPING_BATCH,
    StyleMeanAccumulator,
    fit_alpha,
    mapping_wplus_batches,
)
from stylebridge.registry import hookimpl

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from rich.console import Console

    from stylebridge.core.stylegan2.generator import Generator

PATTERNS = ("independent", "calibrated", "scaled")
THESIS_GROUPS = {"independent": 1, "calibrated": 2, "scaled": 3}
LAYER_SETS = ("all", "conv")
SAMPLE_BATCH = MAPPING_BATCH  # as calibrators.mapping_style_means, so both draw the same z


# ---------------------------------------------------------------------------------------------
# Statistics


class SimilarityAccumulator:
    """Running per-layer sums of ``cos(s, s')`` and ``⟨s, s'⟩`` over vectors (float64).

    ``add(styles, domain_styles)`` takes two lists (one ``[B, C_i]`` tensor per
    style layer): the source style vectors ``s`` and the same vectors with the
    domain applied, ``s' = s + Δs``.
    """

    def __init__(self) -> None:
        self.cos: Tensor | None = None
        self.dot: Tensor | None = None
        self.count = 0

    def add(self, styles: Sequence[Tensor], domain_styles: Sequence[Tensor]) -> None:
        if len(styles) != len(domain_styles):
            raise ValueError(f"{len(styles)} style layers but {len(domain_styles)} domain layers")
        cos, dot = [], []
        for s, d in zip(styles, domain_styles, strict=True):
            s, d = s.detach().double().flatten(1), d.detach().double().flatten(1)
            if s.shape != d.shape:
                raise ValueError(f"style shapes differ: {list(s.shape)} vs {list(d.shape)}")
            cos.append(F.cosine_similarity(s, d, dim=1, eps=1e-12).sum().cpu())
            dot.append((s * d).sum().cpu())
        c, t = torch.stack(cos), torch.stack(dot)
        if self.cos is None or self.dot is None:
            self.cos, self.dot = c, t
        else:
            if c.shape != self.cos.shape:
                raise ValueError(f"got {c.numel()} style layers, expected {self.cos.numel()}")
            self.cos, self.dot = self.cos + c, self.dot + t
        self.count += int(styles[0].shape[0])

    def means(self) -> tuple[Tensor, Tensor]:
        """``(mean cos [L], mean dot [L])`` in float64."""
        if self.cos is None or self.dot is None or self.count == 0:
            raise ValueError("no style vectors were accumulated")
        return self.cos / self.count, self.dot / self.count


@torch.no_grad()
def collect_mapping_stats(generator: Generator, domains: Mapping[str, DomainMethod] | None = None,
                          samples: int = 3000, *, seed: int = 0, batch: int = SAMPLE_BATCH,
                          advance: Callable[[int], None] | None = None
                          ) -> tuple[list[Tensor], dict[str, SimilarityAccumulator]]:
    """Mapping-network side: per-channel style means over ``samples`` z and Eq. 5's ``orig`` terms.

    Draws the same z as :func:`stylebridge.plugins.calibrators.alpha.mapping_style_means`
    (both use :func:`~stylebridge.plugins.calibrators.alpha.mapping_wplus_batches`: same seed,
    batches of 500), so the means equal the ones ``calibrate`` stores.
    """
    domains = dict(domains or {})
    means = StyleMeanAccumulator()
    sims = {name: SimilarityAccumulator() for name in domains}
    for w_plus in mapping_wplus_batches(generator, samples, seed=seed, batch=batch):
        styles = generator.styles(w_plus)
        means.add(styles)
        for name, method in domains.items():
            sims[name].add(styles, method.styles(generator, w_plus))
        if advance is not None:
            advance(int(w_plus.shape[0]))
    return means.means(), sims


@torch.no_grad()
def collect_encoder_stats(encoder: Encoder, generator: Generator, batches: Iterable[Tensor],
                          domains: Mapping[str, DomainMethod] | None = None
                          ) -> tuple[list[Tensor], int, dict[str, SimilarityAccumulator]]:
    """Encoder side: per-channel means of ``generator.styles(encoder(images).w_plus)`` and
    Eq. 5's ``enc`` terms.  ``batches`` yields images ``[B, 3, H, W]`` in ``[0, 1]``;
    returns the means (one ``[C_i]`` per style layer), the image count and the similarities.
    """
    from stylebridge.core.synthesis import check_compatible

    domains = dict(domains or {})
    means = StyleMeanAccumulator()
    sims = {name: SimilarityAccumulator() for name in domains}
    device = generator.input.input.device
    for images in batches:
        inversion = encoder.encode(images.to(device))
        check_compatible(inversion, generator, f"encoder {encoder.name!r}")
        w_plus = inversion.w_plus.detach().to(device)
        styles = generator.styles(w_plus)
        means.add(styles)
        for name, method in domains.items():
            sims[name].add(styles, method.styles(generator, w_plus))
    if means.count == 0:
        raise StylebridgeError("no readable images to compute the encoder's style means from")
    return means.means(), means.count, sims


# ---------------------------------------------------------------------------------------------
# Report


@dataclass(frozen=True)
class LayerRef:
    """A style layer as reported: its style index, module name, conv index (None for ToRGB)."""

    index: int
    name: str
    channels: int
    is_rgb: bool
    conv_index: int | None


def layer_refs(generator: Generator, which: str = "all") -> list[LayerRef]:
    """The generator's style layers (``which="all"``) or only the non-RGB ones (``"conv"``)."""
    if which not in LAYER_SETS:
        raise StylebridgeError(f"--layers {which!r}: expected one of {', '.join(LAYER_SETS)}")
    conv = {i: k for k, i in enumerate(generator.conv_style_indices())}
    refs = [LayerRef(layer.index, layer.name, layer.channels, layer.is_rgb, conv.get(layer.index))
            for layer in generator.style_layers()]
    return refs if which == "all" else [r for r in refs if not r.is_rgb]


def classify(alpha: float, corr_r2: float, *, alpha_tol: float = 0.1, r2_min: float = 0.5) -> str:
    """The thesis' layer pattern (module doc): ``independent`` / ``calibrated`` / ``scaled``."""
    if not (math.isfinite(corr_r2) and corr_r2 >= r2_min):
        return "independent"
    if math.isfinite(alpha) and abs(alpha - 1.0) <= alpha_tol:
        return "calibrated"
    return "scaled"


def _num(value: float | Tensor) -> float | None:
    v = float(value)
    return v if math.isfinite(v) else None


def build_report(source_means: Sequence[Tensor], encoder_means: Sequence[Tensor],
                 layers: Sequence[LayerRef], *,
                 source_sims: Mapping[str, SimilarityAccumulator] | None = None,
                 encoder_sims: Mapping[str, SimilarityAccumulator] | None = None,
                 fit: str = "origin", alpha_tol: float = 0.1, r2_min: float = 0.5
                 ) -> dict[str, Any]:
    """Per-layer α / R² / pattern and per-domain Eq. 5 rows, as a JSON-ready dict.

    ``source_means`` / ``encoder_means`` have one ``[C_i]`` tensor per style layer
    of the generator (all of them); ``layers`` picks and names the reported ones.
    Non-finite numbers become ``None``.
    """
    if fit not in FITS:
        raise ValueError(f"fit must be one of {FITS}, got {fit!r}")
    pick = [r.index for r in layers]
    xs = [source_means[i] for i in pick]
    ys = [encoder_means[i] for i in pick]
    chosen = fit_alpha(xs, ys, fit)
    corr = fit_alpha(xs, ys, "intercept").r2
    rows = []
    for k, ref in enumerate(layers):
        alpha, r2c = float(chosen.alpha[k]), float(corr[k])
        rows.append({"index": ref.index, "name": ref.name, "conv_index": ref.conv_index,
                     "channels": ref.channels, "is_rgb": ref.is_rgb,
                     "alpha": _num(alpha), "intercept": _num(chosen.intercept[k]),
                     "r2": _num(chosen.r2[k]), "corr_r2": _num(r2c),
                     "pattern": classify(alpha, r2c, alpha_tol=alpha_tol, r2_min=r2_min)})
    groups = {p: [r["index"] for r in rows if r["pattern"] == p] for p in PATTERNS}
    domains: dict[str, Any] = {}
    source_sims, encoder_sims = source_sims or {}, encoder_sims or {}
    for name in source_sims:
        o_cos, o_dot = source_sims[name].means()
        e_cos, e_dot = encoder_sims[name].means()
        domains[name] = {"layers": [
            {"index": i, "orig_cos": _num(o_cos[i]), "enc_cos": _num(e_cos[i]),
             "adaptability": _num(e_cos[i] - o_cos[i]),
             "orig_dot": _num(o_dot[i]), "enc_dot": _num(e_dot[i]),
             "adaptability_dot": _num(e_dot[i] - o_dot[i])} for i in pick]}
    return {"fit": fit, "thresholds": {"alpha_tol": alpha_tol, "r2_min": r2_min},
            "layers": rows, "patterns": groups,
            "thesis_groups": {p: THESIS_GROUPS[p] for p in PATTERNS}, "domains": domains}


def _fmt(value: Any, spec: str = ".4g") -> str:
    return "n/a" if value is None else format(value, spec)


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report as markdown: the α table, the pattern summary and one Eq. 5 table per domain."""
    meta = report.get("meta", {})
    lines = ["# Latent distributions: encoder vs mapping network", ""]
    if meta.get("random_weights"):
        parts = ", ".join(k for k, v in meta.get("random_inputs", {}).items() if v) or "inputs"
        lines += [f"**{RANDOM_NOTICE}** ({parts}): these numbers show no trained model.", ""]
    for key in ("encoder", "generator", "n_images", "samples", "seed"):
        if key in meta:
            lines.append(f"- {key}: {meta[key]}")
    lines.append(f"- fit: {report['fit']} (α from the per-channel style means, "
                 "stylebridge.plugins.calibrators.alpha.fit_alpha)")
    th = report["thresholds"]
    lines += [f"- patterns: independent if corr r² < {th['r2_min']}, else calibrated if "
              f"|α − 1| ≤ {th['alpha_tol']}, else scaled (thesis groups 1 / 2 / 3)", ""]
    lines += ["## α per layer", "",
              "| layer | name | conv # | channels | α | intercept | R² (fit) | corr r² | pattern |",
              "|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in report["layers"]:
        conv = "" if r["conv_index"] is None else str(r["conv_index"])
        lines.append(f"| {r['index']} | {r['name']} | {conv} | {r['channels']} | "
                     f"{_fmt(r['alpha'])} | {_fmt(r['intercept'])} | {_fmt(r['r2'], '.3f')} | "
                     f"{_fmt(r['corr_r2'], '.3f')} | {r['pattern']} |")
    lines += ["", "Layers by pattern: " + "; ".join(
        f"{p}: {', '.join(map(str, idx)) or '-'}" for p, idx in report["patterns"].items()), ""]
    if report["domains"]:
        lines += ["## Domain adaptability (Eq. 5)", "",
                  "adaptability = mean cos(s_enc, s_enc + Δs) − mean cos(s_orig, s_orig + Δs) "
                  "(the thesis' cosine similarities, Fig. 4.10); the *dot* columns read ⟨·,·⟩ "
                  "as a plain dot product (scale-dependent, for reference).", ""]
        names = {r["index"]: r["name"] for r in report["layers"]}
        for dname, dom in report["domains"].items():
            lines += [f"### {dname}", ""]
            if dom.get("weight_offsets_excluded"):
                lines += ["(this domain also changes conv weights; those changes are not a "
                          "change of s and are not included)", ""]
            lines += ["| layer | name | orig cos | enc cos | adaptability | orig dot | enc dot | "
                      "adaptability (dot) |", "|---:|---|---:|---:|---:|---:|---:|---:|"]
            for r in dom["layers"]:
                lines.append(f"| {r['index']} | {names.get(r['index'], '')} | "
                             f"{_fmt(r['orig_cos'], '.4f')} | {_fmt(r['enc_cos'], '.4f')} | "
                             f"{_fmt(r['adaptability'], '+.4f')} | {_fmt(r['orig_dot'])} | "
                             f"{_fmt(r['enc_dot'])} | {_fmt(r['adaptability_dot'], '+.4g')} |")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------------------------------------
# Plots


def _density(x: Any, y: Any) -> Any:
    """Gaussian-kernel density of each point among the others (Scott bandwidth, numpy only)."""
    import numpy as np

    n = len(x)
    if n < 3:
        return np.ones(n)
    pts = np.stack([x, y], 1).astype(np.float64)
    std = pts.std(0)
    std[std <= 0] = 1.0
    h = std * n ** (-1.0 / 6.0)
    d = (pts[:, None, :] - pts[None, :, :]) / h
    return np.exp(-0.5 * (d ** 2).sum(-1)).sum(1)


def _panel(ax: Any, x: Tensor, y: Tensor, row: Mapping[str, Any]) -> None:
    import numpy as np

    xn, yn = x.double().numpy(), y.double().numpy()
    dens = _density(xn, yn)
    order = np.argsort(dens)
    ax.scatter(xn[order], yn[order], c=dens[order], s=6, cmap="viridis", linewidths=0, zorder=3)
    lo = float(min(xn.min(), yn.min()))
    hi = float(max(xn.max(), yn.max()))
    pad = 0.05 * (hi - lo or 1.0)
    line = np.array([lo - pad, hi + pad])
    ax.plot(line, line, color="tab:green", lw=1, label="y = x", zorder=1)
    if row["alpha"] is not None:
        b = row["intercept"] or 0.0
        ax.plot(line, row["alpha"] * line + b, color="tab:red", lw=1, ls="--", zorder=2,
                label=f"y = {row['alpha']:.3g}·x" + (f" + {b:.3g}" if b else ""))
    ax.set_title(f"{row['index']}: {row['name']}\nα={_fmt(row['alpha'], '.3g')} "
                 f"R²={_fmt(row['r2'], '.2f')} ({row['pattern']})", fontsize=8)
    ax.tick_params(labelsize=6)


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
    layer of ``report["layers"]``, in that order.
    """
    from matplotlib.figure import Figure

    rows = list(report["layers"])
    n = len(rows)
    cols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / cols))
    fig = Figure(figsize=(3.0 * cols, 3.0 * nrows + 0.8), layout="constrained")
    axes = fig.subplots(nrows, cols, squeeze=False).flatten()
    for ax, row in zip(axes, rows, strict=False):
        _panel(ax, source_means[row["index"]].cpu(), encoder_means[row["index"]].cpu(), row)
    for ax in axes[n:]:
        fig.delaxes(ax)
    if n:
        axes[0].legend(fontsize=6, loc="upper left")
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
    _panel(ax, source_mean.cpu(), encoder_mean.cpu(), row)
    ax.set_xlabel("mapping network (z ~ N(0, I))", fontsize=8)
    ax.set_ylabel("encoder", fontsize=8)
    ax.legend(fontsize=6, loc="upper left")
    if meta and meta.get("random_weights"):
        fig.suptitle(f"{RANDOM_NOTICE}: not a trained model", fontsize=9, color="tab:red")
    return fig


def save_figure(fig: Figure, dst: Path, *, dpi: int = 100) -> Path:
    """Write ``fig`` as PNG atomically."""
    from stylebridge.core.io import atomic_path

    with atomic_path(dst) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return dst


# ---------------------------------------------------------------------------------------------
# CLI


def _add_latents_arguments(p: argparse.ArgumentParser) -> None:
    from stylebridge.cli.options import add_photo_arguments, add_style_means_arguments

    add_style_means_arguments(p)
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    p.add_argument("--domain", "-d", action="append", default=[],
                   metavar="[NAME:]DOMAIN.safetensors",
                   help="domain checkpoint for the Eq. 5 adaptability table, repeatable")
    p.add_argument("--layers", choices=LAYER_SETS, default="all",
                   help="all style layers (default, incl. ToRGB) or only the modulated convs")
    p.add_argument("--fit", choices=FITS, default="origin",
                   help="alpha by least squares through the origin (default) or with intercept")
    p.add_argument("--alpha-tol", type=float, default=0.1,
                   help="|alpha - 1| up to which a correlated layer counts as calibrated")
    p.add_argument("--r2-min", type=float, default=0.5,
                   help="squared correlation below which a layer counts as independent")
    p.add_argument("--per-layer", action="store_true", help="also write one PNG per layer")
    add_photo_arguments(p, several_encoders=True)


@dataclass
class _EncoderRun:
    """One ``--encoder`` of ``analyze latents``: its statistics and report."""

    label: str
    spec: str
    random: bool
    means: list[Tensor]
    n_images: int
    sims: dict[str, SimilarityAccumulator]
    batch: Any  # BatchReport
    result: dict[str, Any] | None = None


def _write_report(out: Path, result: dict[str, Any], src_means: Sequence[Tensor],
                  enc_means: Sequence[Tensor], per_layer: bool) -> dict[str, str]:
    """``latents.png`` (+ ``layers/``), ``latents.md`` and ``latents.json`` of one encoder."""
    from stylebridge.core.io import atomic_path, write_json

    out.mkdir(parents=True, exist_ok=True)
    files = {"plot": "latents.png", "markdown": "latents.md", "json": "latents.json"}
    save_figure(plot_distributions(src_means, enc_means, result), out / files["plot"])
    if per_layer:
        for row in result["layers"]:
            i = row["index"]
            save_figure(plot_layer(src_means[i], enc_means[i], row, result["meta"]),
                        out / "layers" / f"layer_{i:02d}.png")
        files["per_layer"] = "layers/"
    result["files"] = files
    with atomic_path(out / files["markdown"]) as tmp:
        tmp.write_text(render_markdown(result), encoding="utf-8")
    write_json(out / files["json"], result)
    return files


def compare_reports(results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Several encoders' reports side by side (thesis Fig. 4.9 panels, Fig. 4.10 table).

    ``layers``: per layer, each encoder's α / R² / pattern; ``domains``: per domain
    and layer, the mapping network's ``orig_cos`` (Fig. 4.10's ``stoch_sim``), each
    encoder's ``enc_cos`` (``<encoder>_sim``) and adaptability (``<encoder>_diff``).
    """
    labels = list(results)
    first = results[labels[0]]
    layers = []
    for k, row in enumerate(first["layers"]):
        layers.append({"index": row["index"], "name": row["name"], "conv_index": row["conv_index"],
                       "encoders": {e: {key: results[e]["layers"][k][key]
                                        for key in ("alpha", "r2", "corr_r2", "pattern")}
                                    for e in labels}})
    domains: dict[str, Any] = {}
    for dname, dom in first["domains"].items():
        rows = []
        for k, row in enumerate(dom["layers"]):
            rows.append({"index": row["index"], "orig_cos": row["orig_cos"],
                         "encoders": {e: {key: results[e]["domains"][dname]["layers"][k][key]
                                          for key in ("enc_cos", "adaptability")}
                                      for e in labels}})
        domains[dname] = {"layers": rows}
    return {"encoders": labels, "layers": layers, "domains": domains,
            "patterns": {e: results[e]["patterns"] for e in labels}}


def render_comparison_markdown(comparison: Mapping[str, Any], meta: Mapping[str, Any]) -> str:
    """The side-by-side report as markdown (one α table, one Eq. 5 table per domain)."""
    labels = list(comparison["encoders"])
    lines = ["# Latent distributions: encoders vs mapping network", ""]
    if meta.get("random_weights"):
        lines += [f"**{RANDOM_NOTICE}** ({', '.join(meta.get('random_parts', [])) or 'inputs'}): "
                  "these numbers show no trained model.", ""]
    for key in ("generator", "samples", "seed", "n_images"):
        if key in meta:
            lines.append(f"- {key}: {meta[key]}")
    lines += [f"- per-encoder reports: {', '.join(f'{e}/latents.md' for e in labels)}", "",
              "## α per layer", "",
              "| layer | name | " + " | ".join(f"α {e} | pattern {e}" for e in labels) + " |",
              "|---:|---|" + "---:|---|" * len(labels)]
    for row in comparison["layers"]:
        cells = " | ".join(f"{_fmt(row['encoders'][e]['alpha'])} | {row['encoders'][e]['pattern']}"
                           for e in labels)
        lines.append(f"| {row['index']} | {row['name']} | {cells} |")
    lines.append("")
    names = {r["index"]: r["name"] for r in comparison["layers"]}
    for dname, dom in comparison["domains"].items():
        lines += [f"## Domain adaptability (Eq. 5): {dname}", "",
                  "stoch_sim = mean cos(s_orig, s_orig + Δs) over z samples; <encoder>_sim the "
                  "same over the encoded photos; <encoder>_diff = <encoder>_sim − stoch_sim.", "",
                  "| layer | name | stoch_sim | " + " | ".join(f"{e}_sim" for e in labels) + " | "
                  + " | ".join(f"{e}_diff" for e in labels) + " |",
                  "|---:|---|---:|" + "---:|" * (2 * len(labels))]
        for row in dom["layers"]:
            sims = " | ".join(_fmt(row["encoders"][e]["enc_cos"], ".4f") for e in labels)
            diffs = " | ".join(_fmt(row["encoders"][e]["adaptability"], "+.4f") for e in labels)
            lines.append(f"| {row['index']} | {names.get(row['index'], '')} | "
                         f"{_fmt(row['orig_cos'], '.4f')} | {sims} | {diffs} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


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
            alpha = results[e]["layers"][k]["alpha"]
            title.append(f"α_{e}={_fmt(alpha, '.3g')}")
            if alpha is not None:
                lo, hi = float(x.min()), float(x.max())
                b = results[e]["layers"][k]["intercept"] or 0.0
                ax.plot([lo, hi], [alpha * lo + b, alpha * hi + b], color=colour, lw=1, ls="--",
                        zorder=2)
        lo = float(min(v.min() for v in values))
        hi = float(max(v.max() for v in values))
        ax.plot([lo, hi], [lo, hi], color="tab:green", lw=1, zorder=1, label="y = x")
        ax.set_title(f"{i}: {row['name']}\n" + " ".join(title), fontsize=7)
        ax.tick_params(labelsize=6)
        if k == 0:
            ax.legend(fontsize=6, loc="upper left")
    for ax in axes[n:]:
        fig.delaxes(ax)
    fig.supxlabel("mapping network: per-channel mean of s over z ~ N(0, I)", fontsize=9)
    fig.supylabel("encoders: per-channel mean of s over the images", fontsize=9)
    title = "per-channel style means: " + ", ".join(labels) + " vs the mapping network"
    if meta.get("random_weights"):
        title += f"\n{RANDOM_NOTICE} ({', '.join(meta.get('random_parts', []))}): not a trained model"
    fig.suptitle(title, fontsize=10, color="tab:red" if meta.get("random_weights") else "black")
    return fig


def run_latents(args: argparse.Namespace, console: Console) -> int:
    """``stylebridge analyze latents``: see the module docstring."""
    from rich.progress import Progress
    from rich.table import Table

    from stylebridge.cli.options import check_photo_arguments, encoder_inputs, print_random_notices
    from stylebridge.core.batch import BatchReport, require_inputs
    from stylebridge.core.device import resolve_device
    from stylebridge.core.io import atomic_path, write_json
    from stylebridge.pipelines.adapt import check_domains, load_domains, load_generator_arg
    from stylebridge.registry.resolve import load_encoder

    check_photo_arguments(args)
    specs: list[str] = args.encoder if isinstance(args.encoder, list) else [args.encoder]
    if args.samples < 1:
        raise StylebridgeError(f"--samples {args.samples}: must be >= 1")
    if args.alpha_tol < 0:
        raise StylebridgeError(f"--alpha-tol {args.alpha_tol}: must be >= 0")
    device = resolve_device(args.device)
    paths = require_inputs(args.images)
    gen, gen_random, g_path = load_generator_arg(args.generator, device)
    refs = layer_refs(gen, args.layers)
    encoders: list[tuple[str, str, Encoder, bool]] = []
    for spec in specs:
        encoder, enc_random = load_encoder(spec, device)
        encoder.bind_generator(gen)
        label, k = encoder.name, 2
        while label in {e[0] for e in encoders}:
            label, k = f"{encoder.name}-{k}", k + 1
        encoders.append((label, spec, encoder, enc_random))
        print_random_notices(console, {"encoder": enc_random}, encoder=encoder.name)
    domains, domain_random = load_domains(args.domain, device)
    domain_info: dict[str, dict[str, Any]] = {}
    check_domains(domains.values(), gen)
    for (name, method), spec in zip(domains.items(), args.domain, strict=True):
        domain_info[name] = {"spec": spec, "method": method.name,
                             "random_weights": domain_random[name],
                             "weight_offsets_excluded": method.has_weight_offsets()}
    dom_random = any(domain_random.values())
    print_random_notices(console, {"generator": gen_random, "domains": domain_random},
                         generator=g_path)

    runs: list[_EncoderRun] = []
    with Progress(console=console, transient=True) as progress:
        for label, spec, encoder, enc_random in encoders:
            prep = getattr(encoder, "preprocessing", None)
            enc_size = int(getattr(prep, "size", 0) or gen.size)
            report = BatchReport()
            task = progress.add_task(f"encoding photos ({label})", total=len(paths))

            def tick(report: BatchReport = report, task: Any = task) -> None:
                progress.update(task, completed=len(report.done) + len(report.skipped))

            batches = encoder_inputs(paths, report, args, enc_size, tick)
            try:
                means, n_images, sims = collect_encoder_stats(encoder, gen, batches, domains)
            except StylebridgeError:
                report.print(console)
                raise
            runs.append(_EncoderRun(label, spec, enc_random, means, n_images, sims, report))
        sample_task = progress.add_task(f"sampling {args.samples} z", total=args.samples)
        src_means, src_sims = collect_mapping_stats(
            gen, domains, args.samples, seed=args.seed,
            advance=lambda n: progress.advance(sample_task, n))

    for run in runs:
        result = build_report(src_means, run.means, refs, source_sims=src_sims,
                              encoder_sims=run.sims, fit=args.fit, alpha_tol=args.alpha_tol,
                              r2_min=args.r2_min)
        for name, info in domain_info.items():
            result["domains"][name] = {**info, **result["domains"][name]}
        random_inputs = {"encoder": run.random, "generator": gen_random, "domains": dom_random}
        meta = {"encoder": run.spec, "generator": str(g_path), "n_images": run.n_images,
                "samples": args.samples, "seed": args.seed, "layers": args.layers,
                "aligned": bool(args.align), "random_weights": any(random_inputs.values()),
                "random_inputs": random_inputs}
        if meta["random_weights"]:
            meta["notes"] = ["computed with random weights: not real statistics"]
        run.result = {"meta": meta, **result, **run.batch.as_dict()}

    out: Path = args.out
    random = gen_random or dom_random or any(r.random for r in runs)
    if len(runs) == 1:
        run = runs[0]
        assert run.result is not None
        written = list(_write_report(out, run.result, src_means, run.means,
                                     args.per_layer).values())
    else:
        for run in runs:
            assert run.result is not None
            _write_report(out / run.label, run.result, src_means, run.means, args.per_layer)
        results = {r.label: r.result for r in runs if r.result is not None}
        parts = [f"encoder {r.label}" for r in runs if r.random]
        parts += ["generator"] * gen_random + ["domains"] * dom_random
        meta = {"encoders": {r.label: r.spec for r in runs}, "generator": str(g_path),
                "samples": args.samples, "seed": args.seed,
                "n_images": {r.label: r.n_images for r in runs},
                "random_weights": random, "random_parts": parts}
        comparison = {"meta": meta, **compare_reports(results)}
        save_figure(plot_comparison(src_means, {r.label: r.means for r in runs}, results, meta),
                    out / "latents.png")
        with atomic_path(out / "latents.md") as tmp:
            tmp.write_text(render_comparison_markdown(comparison, meta), encoding="utf-8")
        write_json(out / "latents.json", comparison)
        written = ["latents.png", "latents.md", "latents.json",
                   *(f"{r.label}/" for r in runs)]

    n_text = ", ".join(f"{r.n_images} photos" + (f" ({r.label})" if len(runs) > 1 else "")
                       for r in runs)
    table = Table(title=f"alpha per style layer ({n_text}, {args.samples} samples)"
                  + (f" [{RANDOM_NOTICE}]" if random else ""))
    table.add_column("layer", justify="right")
    table.add_column("name")
    for run in runs:
        tag = f" {run.label}" if len(runs) > 1 else ""
        table.add_column(f"alpha{tag}", justify="right")
        if len(runs) == 1:
            table.add_column("R²", justify="right")
            table.add_column("corr r²", justify="right")
        table.add_column(f"pattern{tag}")
        for d in domains:
            table.add_column(d + tag, justify="right")
    for k, ref in enumerate(refs):
        cells = [str(ref.index), ref.name]
        for run in runs:
            assert run.result is not None
            row = run.result["layers"][k]
            cells.append(_fmt(row["alpha"]))
            if len(runs) == 1:
                cells += [_fmt(row["r2"], ".3f"), _fmt(row["corr_r2"], ".3f")]
            cells.append(row["pattern"])
            cells += [_fmt(run.result["domains"][d]["layers"][k]["adaptability"], "+.3f")
                      for d in domains]
        table.add_row(*cells)
    console.print(table)
    console.print(f"[green]wrote[/green] {escape(', '.join(written))} to {escape(str(out))}")
    runs[0].batch.print(console)  # every encoder reads the same photos: one report
    return max(run.batch.exit_code for run in runs)


class AnalyzeCommand(Command):
    """Analysis tools: ``analyze latents``."""

    name = "analyze"
    help = "analysis tools: latents (encoder vs mapping-network style distributions, Eq. 5)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="target", metavar="TARGET", required=True)
        p = sub.add_parser("latents", help="per-layer style means of an encoder vs the mapping "
                           "network (thesis Fig. 4.9), alpha per layer and Eq. 5 adaptability",
                           description=__doc__.split("\n\n")[0].replace("``", "")
                           if __doc__ else None)
        _add_latents_arguments(p)

    def run(self, args: argparse.Namespace, console: Console) -> int:
        if args.target == "latents":
            return run_latents(args, console)
        raise StylebridgeError(f"unknown analyze target {args.target!r}")


@hookimpl
def register_commands(register: Any) -> None:
    register(AnalyzeCommand())


__all__ = ["AnalyzeCommand", "SimilarityAccumulator", "build_report", "classify",
           "collect_encoder_stats", "collect_mapping_stats", "layer_refs", "plot_distributions",
           "render_markdown"]
