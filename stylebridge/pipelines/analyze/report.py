"""The ``analyze latents`` report: α / R² / pattern per style layer (Fig. 4.9) and Eq. 5 per
domain (Fig. 4.10), as JSON-ready dicts; several encoders side by side."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from stylebridge.core.stylegan2.generator import Generator
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.analyze.stats import SimilarityAccumulator
from stylebridge.pipelines.reproduce.common import Quantity
from stylebridge.plugins.calibrators.alpha import (
    FITS,
    MIN_ALPHA,
    alpha_usable,
    fit_alpha,
    wplus_row_layers,
)

PATTERNS = ("independent", "calibrated", "scaled")
THESIS_GROUPS = {"independent": 1, "calibrated": 2, "scaled": 3}
#: the thesis' groups by position (its Fig. 4.9 rows of a 1024-px generator): "First layers"
#: (rows 0-4), "Middle layers, more precisely layers 5-11", "Upper layers" (rows 12-17)
THESIS_ROWS = {1: range(0, 5), 2: range(5, 12), 3: range(12, 18)}
#: the two readings of those 18 rows (``docs/layers.md``): W+ rows (a style layer is in the row
#: it reads), or row 0 unshifted and rows 1-17 the 17 modulated convs (conv head k = row k + 1;
#: a ToRGB layer has no row)
ROW_READINGS = ("wplus", "convs")
#: the style layers of the generator the thesis' rows number (1024 px: 18 W+ rows)
THESIS_STYLE_LAYERS = 26
_WPLUS_ROW = {i: row for row in range(18) for i in wplus_row_layers(row)}
LAYER_SETS = ("all", "conv")

#: the numbers of the α and Eq. 5 tables (``calibrate`` prints α and R² too).  The thesis:
#: "Ideally we should observe averaged per-channel values lying along the y = x line" (α = 1);
#: Eq. 5 measures how differently a domain changes encoder latents and the mapping network's
#: (0 = alike)
QUANTITIES: dict[str, Quantity] = {
    "alpha": Quantity("α", "ratio, encoder / mapping-network style means", None, "1",
                      "slope of encoder ≈ α · mapping over a layer's per-channel style means; "
                      "1 = calibrated (thesis Fig. 4.9's y = x)"),
    "r2": Quantity("R²", "coefficient of determination, at most 1", None, "higher",
                   "how much of the layer's spread the fit y = α·x (or with intercept) "
                   "explains; below 0 when the line through the origin fits worse than the "
                   "mean"),
    "corr_r2": Quantity("corr r²", "squared Pearson correlation", (0.0, 1.0), "higher",
                        "the thesis' \"covariance\" of the two mean vectors; low = independent"),
    "cos": Quantity("cos", "cosine similarity", (-1.0, 1.0), "",
                    "mean cos(s, s + Δs) of a style vector with and without the domain's offset: "
                    "orig over mapping-network samples (Fig. 4.10's stoch_sim), enc over the "
                    "encoded photos (its e4e_sim, fse_sim)"),
    "adaptability": Quantity(
        "adaptability", "difference of cosine similarities", (-2.0, 2.0), "0",
        "Eq. 5, EncoderLatentsDomainAdaptability = enc cos − orig cos (Fig. 4.10's "
        "e4e_diff, fse_diff); 0 = the domain changes encoder latents as it changes the mapping "
        "network's, > 0 = less (weaker adaptation), < 0 = more"),
}


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


def thesis_group(row: int | None) -> int | None:
    """The thesis' positional group (1 / 2 / 3, :data:`THESIS_ROWS`) of one of its 18 rows."""
    return next((g for g, rows in THESIS_ROWS.items() if row in rows), None)


def thesis_rows(ref: LayerRef) -> dict[str, int | None]:
    """The thesis row of a 1024-px style layer under each reading (:data:`ROW_READINGS`):
    ``wplus`` the W+ row it reads, ``convs`` its conv head + 1 (None for a ToRGB layer)."""
    return {"wplus": _WPLUS_ROW.get(ref.index),
            "convs": None if ref.conv_index is None else ref.conv_index + 1}


def thesis_positions(layers: Sequence[LayerRef],
                     n_style_layers: int) -> dict[str, dict[str, list[int]]] | None:
    """Per reading, the reported layers in each positional group (keys ``"1"``-``"3"``);
    None unless the generator has the thesis' 18 W+ rows (26 style layers, 1024 px)."""
    if n_style_layers != THESIS_STYLE_LAYERS:
        return None
    return {reading: {str(g): [r.index for r in layers
                               if thesis_group(thesis_rows(r)[reading]) == g]
                      for g in THESIS_ROWS} for reading in ROW_READINGS}


def _num(value: float | Tensor) -> float | None:
    v = float(value)
    return v if math.isfinite(v) else None


def build_report(source_means: Sequence[Tensor], encoder_means: Sequence[Tensor],
                 layers: Sequence[LayerRef], *,
                 source_sims: Mapping[str, SimilarityAccumulator] | None = None,
                 encoder_sims: Mapping[str, SimilarityAccumulator] | None = None,
                 fit: str = "origin", alpha_tol: float = 0.1, r2_min: float = 0.5,
                 min_alpha: float = MIN_ALPHA) -> dict[str, Any]:
    """Per-layer α / R² / pattern and per-domain Eq. 5 rows, as a JSON-ready dict.

    Every row carries both fits (``fits.origin`` / ``fits.intercept``); ``alpha`` /
    ``intercept`` / ``r2`` are the chosen ``fit``'s.  ``near_zero_alpha`` lists, per fit,
    the layers whose α is not a finite number above ``min_alpha`` (the alpha calibrator
    gives those layers no offset, and says so).  ``thesis_group`` is each layer's positional
    group under both readings of the thesis' 18 rows (``{"wplus": 1, "convs": 2}``, None for
    a reading that gives the layer no row; ``thesis_row`` the rows) and ``thesis_positions``
    the reported layers per group and reading: only for the 1024-px layout (26 style layers,
    18 W+ rows), else None.

    ``source_means`` / ``encoder_means`` have one ``[C_i]`` tensor per style layer
    of the generator (all of them); ``layers`` picks and names the reported ones.
    Non-finite numbers become ``None``.
    """
    if fit not in FITS:
        raise ValueError(f"fit must be one of {FITS}, got {fit!r}")
    pick = [r.index for r in layers]
    xs = [source_means[i] for i in pick]
    ys = [encoder_means[i] for i in pick]
    fits = {kind: fit_alpha(xs, ys, kind) for kind in FITS}
    chosen = fits[fit]
    corr = fits["intercept"].r2
    positions = thesis_positions(layers, len(source_means))
    rows = []
    for k, ref in enumerate(layers):
        alpha, r2c = float(chosen.alpha[k]), float(corr[k])
        where = thesis_rows(ref) if positions is not None else None
        rows.append({"index": ref.index, "name": ref.name, "conv_index": ref.conv_index,
                     "channels": ref.channels, "is_rgb": ref.is_rgb,
                     "alpha": _num(alpha), "intercept": _num(chosen.intercept[k]),
                     "r2": _num(chosen.r2[k]), "corr_r2": _num(r2c),
                     "pattern": classify(alpha, r2c, alpha_tol=alpha_tol, r2_min=r2_min),
                     # both readings of the thesis' "simple Linear Regression", always
                     "fits": {kind: {"alpha": _num(f.alpha[k]), "intercept": _num(f.intercept[k]),
                                     "r2": _num(f.r2[k])} for kind, f in fits.items()},
                     # the thesis' positional groups (1024 px only): the row under each reading
                     "thesis_row": where,
                     "thesis_group": None if where is None else {
                         reading: thesis_group(row) for reading, row in where.items()}})
    groups = {p: [r["index"] for r in rows if r["pattern"] == p] for p in PATTERNS}
    near_zero = {kind: [r["index"] for r in rows if not alpha_usable(r["fits"][kind]["alpha"],
                                                                     min_alpha)]
                 for kind in FITS}
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
    return {"fit": fit, "thresholds": {"alpha_tol": alpha_tol, "r2_min": r2_min,
                                       "min_alpha": min_alpha},
            "layers": rows, "patterns": groups, "near_zero_alpha": near_zero,
            "thesis_groups": {p: THESIS_GROUPS[p] for p in PATTERNS},
            "thesis_positions": positions, "domains": domains}


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
                       "thesis_group": row.get("thesis_group"),
                       "encoders": {e: {key: results[e]["layers"][k][key]
                                        for key in ("alpha", "intercept", "r2", "corr_r2", "pattern",
                                                    "fits") if key in results[e]["layers"][k]}
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
            "patterns": {e: results[e]["patterns"] for e in labels},
            "thresholds": first.get("thresholds"),  # the same run: the same for every encoder
            "thesis_positions": first.get("thesis_positions"),
            "near_zero_alpha": {e: results[e].get("near_zero_alpha", {}) for e in labels}}

