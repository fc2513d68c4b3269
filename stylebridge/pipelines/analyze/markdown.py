"""The ``analyze latents`` report and the side-by-side comparison as markdown."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stylebridge.core.checkpoint import RANDOM_NOTICE
from stylebridge.pipelines.analyze.report import QUANTITIES, ROW_READINGS, THESIS_ROWS
from stylebridge.pipelines.reproduce.common import LEGEND_MARKS, legend

A, R2, CORR, ADAPT = (QUANTITIES[k].header for k in ("alpha", "r2", "corr_r2", "adaptability"))


def _legend(keys: tuple[str, ...]) -> list[str]:
    """The markdown legend of the quantities ``keys`` (:data:`QUANTITIES`)."""
    return [f"Legend ({LEGEND_MARKS}):", "",
            *(f"- {line}" for line in legend({k: QUANTITIES[k] for k in keys})), ""]


def fmt(value: Any, spec: str = ".4g") -> str:
    """A report number for a table: ``n/a`` for ``None`` (not finite)."""
    return "n/a" if value is None else format(value, spec)


#: the α tables' column of the thesis' positional groups
GROUP_HEADER = "thesis group (W+ / conv)"
_READING_NAMES = {"wplus": "W+ rows", "convs": "conv rows (conv k = row k + 1)"}
_SPANS = " / ".join(f"{g} = rows {r.start}-{r.stop - 1}" for g, r in THESIS_ROWS.items())
#: what the column means (the terminal's legend) and why a report has none
GROUP_MEANING = (f"the thesis' positional group of the layer ({_SPANS} of its 18: first / "
                 "middle / upper layers) with the rows read as W+ rows / as row 0 and the 17 "
                 "convs (- = no row: a ToRGB layer); compare with the pattern")
NOT_1024 = ("The thesis' positional groups (first / middle / upper layers: rows 0-4 / 5-11 / "
            "12-17 of 18) are for a 1024 px generator (26 style layers, 18 W+ rows); this "
            "generator has another size, so no layer is given a thesis group.")


def group_cell(group: Mapping[str, int | None] | None) -> str:
    """A layer's thesis group under both readings, ``1 / 2`` (``-`` where a reading gives the
    layer no row)."""
    group = group or {}
    return " / ".join("-" if group.get(r) is None else str(group[r]) for r in ROW_READINGS)


def _positions(report: Mapping[str, Any]) -> list[str]:
    """The layers per positional group and reading, or why there are none (not 1024 px);
    nothing for a report written before the positions were added."""
    if "thesis_positions" not in report:
        return []
    positions = report["thesis_positions"]
    if positions is None:
        return [NOT_1024, ""]
    head, *lines = position_lines(positions)
    return [head, *(f"- {line}" for line in lines), ""]


def position_lines(positions: Mapping[str, Mapping[str, list[int]]]) -> list[str]:
    """A heading, then per reading the layers of each thesis group (a report's
    ``thesis_positions``)."""
    return [f"Layers by thesis group ({_SPANS}; compare with their pattern):",
            *(f"{_READING_NAMES[reading]}: " + "; ".join(
                f"group {g}: {', '.join(map(str, idx)) or '-'}"
                for g, idx in positions[reading].items()) for reading in ROW_READINGS)]


def _meta_line(key: str, value: Any) -> str:
    """``- n_images: e4e 3, fse 3``: a report's setting, a per-encoder dict in words."""
    if isinstance(value, Mapping):
        value = ", ".join(f"{k} {v}" for k, v in value.items()) or "-"
    return f"- {key}: {value}"


def _patterns_line(th: Mapping[str, Any]) -> str:
    """What the ``pattern`` column says (the thesis' three groups), with this run's thresholds."""
    return (f"- patterns: independent if corr r² < {th['r2_min']}, else calibrated if "
            f"|α − 1| ≤ {th['alpha_tol']}, else scaled (thesis groups 1 / 2 / 3)")


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report as markdown: the α table, the pattern summary and one Eq. 5 table per domain."""
    meta = report.get("meta", {})
    lines = ["# Latent distributions: encoder vs mapping network", ""]
    if meta.get("random_weights"):
        parts = ", ".join(k for k, v in meta.get("random_inputs", {}).items() if v) or "inputs"
        lines += [f"**{RANDOM_NOTICE}** ({parts}): these numbers show no trained model.", ""]
    for key in ("encoder", "generator", "n_images", "samples", "seed"):
        if key in meta:
            lines.append(_meta_line(key, meta[key]))
    lines.append(f"- fit: {report['fit']} (α from the per-channel style means, "
                 "stylebridge.plugins.calibrators.alpha.fit_alpha); both fits are tabled and "
                 "drawn: origin = least squares of y = α·x (the thesis' hypothesis "
                 "w_enc = α·w_orig and Fig. 4.9's lines), intercept = ordinary least squares "
                 "y = α·x + b (a library's default \"Linear Regression\")")
    lines += [_patterns_line(report["thresholds"]), ""]
    lines += _legend(("alpha", "r2", "corr_r2", *(("cos", "adaptability")
                                                 if report["domains"] else ())))
    grouped = report.get("thesis_positions") is not None
    lines += ["## α per layer", "",
              f"| layer | name | conv # | channels | {A} | intercept | {R2} (fit) | {CORR} | "
              f"pattern | {GROUP_HEADER + ' | ' if grouped else ''}{A} (origin) | "
              f"{A} (intercept) | b (intercept) |",
              "|---:|---|---:|---:|---:|---:|---:|---:|---|" + "---|" * grouped + "---:|---:|---:|"]
    for r in report["layers"]:
        conv = "" if r["conv_index"] is None else str(r["conv_index"])
        fits = r.get("fits", {})
        both = " | ".join(fmt(fits.get(k, {}).get("alpha")) for k in ("origin", "intercept"))
        group = f"{group_cell(r.get('thesis_group'))} | " if grouped else ""
        lines.append(f"| {r['index']} | {r['name']} | {conv} | {r['channels']} | "
                     f"{fmt(r['alpha'])} | {fmt(r['intercept'])} | {fmt(r['r2'], '.3f')} | "
                     f"{fmt(r['corr_r2'], '.3f')} | {r['pattern']} | {group}{both} | "
                     f"{fmt(fits.get('intercept', {}).get('intercept'))} |")
    lines += ["", "Layers by pattern: " + "; ".join(
        f"{p}: {', '.join(map(str, idx)) or '-'}" for p, idx in report["patterns"].items()), ""]
    lines += _positions(report)
    near = report.get("near_zero_alpha", {})
    if any(near.values()):
        limit = report["thresholds"].get("min_alpha")
        lines += ["**α near 0** (≤ " + str(limit) + " or undefined; `calibrate alpha` gives these "
                  "layers no domain offset): " + "; ".join(
                      f"{k} fit: {', '.join(map(str, v)) or '-'}" for k, v in near.items()), ""]
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
            lines += [f"| layer | name | orig cos | enc cos | {ADAPT} | orig dot | enc dot | "
                      "adaptability (dot) |", "|---:|---|---:|---:|---:|---:|---:|---:|"]
            for r in dom["layers"]:
                lines.append(f"| {r['index']} | {names.get(r['index'], '')} | "
                             f"{fmt(r['orig_cos'], '.4f')} | {fmt(r['enc_cos'], '.4f')} | "
                             f"{fmt(r['adaptability'], '+.4f')} | {fmt(r['orig_dot'])} | "
                             f"{fmt(r['enc_dot'])} | {fmt(r['adaptability_dot'], '+.4g')} |")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def render_comparison_markdown(comparison: Mapping[str, Any], meta: Mapping[str, Any]) -> str:
    """The side-by-side report as markdown (one α table, one Eq. 5 table per domain)."""
    labels = list(comparison["encoders"])
    lines = ["# Latent distributions: encoders vs mapping network", ""]
    if meta.get("random_weights"):
        lines += [f"**{RANDOM_NOTICE}** ({', '.join(meta.get('random_parts', [])) or 'inputs'}): "
                  "these numbers show no trained model.", ""]
    for key in ("generator", "samples", "seed", "n_images"):
        if key in meta:
            lines.append(_meta_line(key, meta[key]))
    if comparison.get("thresholds"):
        lines.append(_patterns_line(comparison["thresholds"]))
    lines += [f"- per-encoder reports: {', '.join(f'{e}/latents.md' for e in labels)}", ""]
    lines += _legend(("alpha", *(("cos", "adaptability") if comparison["domains"] else ())))
    grouped = comparison.get("thesis_positions") is not None
    lines += ["## α per layer", "",
              "| layer | name | " + f"{GROUP_HEADER} | " * grouped
              + " | ".join(f"{A} {e} | pattern {e}" for e in labels) + " |",
              "|---:|---|" + "---|" * grouped + "---:|---|" * len(labels)]
    for row in comparison["layers"]:
        cells = " | ".join(f"{fmt(row['encoders'][e]['alpha'])} | {row['encoders'][e]['pattern']}"
                           for e in labels)
        group = f"{group_cell(row.get('thesis_group'))} | " if grouped else ""
        lines.append(f"| {row['index']} | {row['name']} | {group}{cells} |")
    lines.append("")
    lines += _positions(comparison)
    names = {r["index"]: r["name"] for r in comparison["layers"]}
    for dname, dom in comparison["domains"].items():
        lines += [f"## Domain adaptability (Eq. 5): {dname}", "",
                  "stoch_sim = mean cos(s_orig, s_orig + Δs) over z samples; <encoder>_sim the "
                  "same over the encoded photos; adaptability <encoder> = <encoder>_sim − "
                  "stoch_sim (Fig. 4.10's <encoder>_diff).", "",
                  "| layer | name | stoch_sim | " + " | ".join(f"{e}_sim" for e in labels) + " | "
                  + " | ".join(f"{ADAPT} {e}" for e in labels) + " |",
                  "|---:|---|---:|" + "---:|" * (2 * len(labels))]
        for row in dom["layers"]:
            sims = " | ".join(fmt(row["encoders"][e]["enc_cos"], ".4f") for e in labels)
            diffs = " | ".join(fmt(row["encoders"][e]["adaptability"], "+.4f") for e in labels)
            lines.append(f"| {row['index']} | {names.get(row['index'], '')} | "
                         f"{fmt(row['orig_cos'], '.4f')} | {sims} | {diffs} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
