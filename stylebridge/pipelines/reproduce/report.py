"""The tables of ``reproduce thesis-tables``: averages over domains, layouts, markdown."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from stylebridge.core.checkpoint import RANDOM_NOTICE
from stylebridge.pipelines.reproduce.common import (
    KINDS,
    LEGEND_MARKS,
    QUANTITIES,
    RANDOM_SENTENCE,
    ROWS,
    legend,
)
from stylebridge.pipelines.reproduce.domains import DomainEntry


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else math.nan


def aggregate(per_domain: Mapping[str, Mapping[str, Mapping[str, float]]],
              domains: Sequence[DomainEntry]) -> dict[str, Any]:
    """Averages over domains: ``{"all": {clip: {q, d}}, "image": ..., "text": ...}``
    (``None`` where no domain of that kind was evaluated)."""
    out: dict[str, Any] = {}
    for group in ("all", *KINDS):
        names = [d.name for d in domains if group == "all" or d.kind == group]
        names = [n for n in names if n in per_domain]
        if not names:
            out[group] = None
            continue
        clips = list(per_domain[names[0]])
        out[group] = {c: {m: _mean([per_domain[n][c][m] for n in names])
                          for m in ("quality", "diversity")} for c in clips}
    return out


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.{digits}f}"


def _row_label(row: Mapping[str, Any], run_random: bool) -> str:
    # when the whole run is random the titles say it; otherwise mark the random rows
    return row["label"] + (f" ({RANDOM_NOTICE})" if row.get("random_weights") and not run_random
                           else "")


def _cell(row: Mapping[str, Any], table: str, kind: str | None, clip: str,
          metric: str) -> str:
    values = (row.get("tables") or {}).get(table)
    if values is not None and kind is not None:
        values = values.get(kind)
    if values is None and "tables" not in row:  # a result written before per-table targets
        values = row["mean"]["all" if kind is None else kind]
    return _fmt(None if values is None else values.get(clip, {}).get(metric))


def table_layouts(result: Mapping[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """The tables as (title, header, rows of cells): Table 4.1's layout (all domains), Table
    4.2's (Image | Text) per CLIP model, the domain groups, and Table 4.3's (Image | Text over
    the "different" domains) per CLIP model; each title names its Quality target."""
    clips = [c["name"] for c in result["clip_models"]]
    rows = [r for r in result["rows"] if r["status"] == "done"]
    random = bool(result["random_weights"])
    mark = f" [{RANDOM_NOTICE}]" if random else ""
    # results written before the per-table targets scored a domain with a text against it,
    # one without against its reference image (in every table)
    targets = result.get("quality_targets") or dict.fromkeys(
        ("4.1", "4.2", "4.3"), "its text, else its reference image (an older results file)")
    n_dom = len(result["domains"])
    tables = []
    quality, diversity = QUANTITIES["quality"].header, QUANTITIES["diversity"].header
    header = ["", *(f"{quality} {c}" for c in clips), *(f"{diversity} {c}" for c in clips)]
    body = [[_row_label(row, random), *(_cell(row, "4.1", None, c, "quality") for c in clips),
             *(_cell(row, "4.1", None, c, "diversity") for c in clips)] for row in rows]
    tables.append((f"Quality and Diversity averaged over {n_dom} domain(s) "
                   f"(Table 4.1 layout; image domains' Quality target: {targets['4.1']}){mark}",
                   header, body))
    counts = {k: sum(1 for d in result["domains"] if d["kind"] == k) for k in KINDS}
    split = ["", f"{quality} Image", f"{quality} Text", f"{diversity} Image",
             f"{diversity} Text"]
    for clip in clips:
        body = [[_row_label(row, random),
                 *(_cell(row, "4.2", kind, clip, metric)
                   for metric in ("quality", "diversity") for kind in KINDS)] for row in rows]
        tables.append((f"CLIP {clip}: image ({counts['image']}) and text ({counts['text']}) "
                       f"domains (Table 4.2 layout; image domains' Quality target: "
                       f"{targets['4.2']}){mark}", split, body))
    if result.get("methods"):
        tables.append(methods_layout(result["methods"], clips, mark))
    groups = result.get("groups")
    if groups:
        entries = sorted(groups["domains"].items(),
                         key=lambda kv: (kv[1]["kind"], kv[1]["rank"]))
        gap_label = {row.key: row.label for row in ROWS}.get(groups["gap_row"], groups["gap_row"])
        by_size = ", by |gap|" if groups.get("gap") == "absolute" else ""
        tables.append((f"Domain groups: Quality gap E4E latents - {gap_label} "
                       f"(CLIP {groups['clip']}, {groups['rule']}{by_size}){mark}",
                       ["domain", "kind", "gap", "group"],
                       [[name, g["kind"], _fmt(g["gap"]), g["group"]] for name, g in entries]))
        n_diff = {k: sum(1 for g in groups["domains"].values()
                         if g["group"] == "different" and g["kind"] == k) for k in KINDS}
        for clip in clips:
            body = [[_row_label(row, random),
                     *(_cell(row, "4.3", kind, clip, metric)
                       for metric in ("quality", "diversity") for kind in KINDS)]
                    for row in rows]
            tables.append((f"CLIP {clip}: \"different\" image ({n_diff['image']}) and text "
                           f"({n_diff['text']}) domains (Table 4.3 layout; image domains' "
                           f"Quality target: {targets['4.3']}){mark}", split, body))
    return tables


def methods_layout(methods: Mapping[str, Any], clips: Sequence[str], mark: str
                   ) -> tuple[str, list[str], list[list[str]]]:
    """``--methods``: one row per method, Quality / Diversity per CLIP model averaged over its
    domains on one latent row, its domain count, what Quality compared with (a text, or a
    reference image: an image-image cosine, not comparable with text rows), parameters and
    training seconds per domain."""
    quality, diversity = QUANTITIES["quality"].header, QUANTITIES["diversity"].header
    header = ["method", "domains", "Quality vs", *(f"{quality} {c}" for c in clips),
              *(f"{diversity} {c}" for c in clips), "params / domain", "train s / domain"]
    body = []
    for m in methods["methods"]:
        mean = m.get("mean") or {}
        params = m.get("params_per_domain")
        body.append([m["method"] + ("" if m["status"] == "done" else f" ({m['status']})"),
                     str(len(m["domains"])), " + ".join(m.get("quality_vs") or ["–"]),
                     *(_fmt(mean.get(c, {}).get("quality")) for c in clips),
                     *(_fmt(mean.get(c, {}).get("diversity")) for c in clips),
                     "–" if params is None else f"{params:,.0f}",
                     _fmt(m.get("train_seconds"), 2)])
    row = methods.get("row_label") or "no row"
    return (f"Domain methods compared: {row}, averaged over each method's domains (image "
            f"domains' Quality target: {methods['quality_target']}){mark}", header, body)


def per_domain_layouts(result: Mapping[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """One table per CLIP model: rows × domains, cells ``quality / diversity``."""
    clips = [c["name"] for c in result["clip_models"]]
    rows = [r for r in result["rows"] if r["status"] == "done"]
    random = bool(result["random_weights"])
    mark = f" [{RANDOM_NOTICE}]" if random else ""
    names = [d["name"] for d in result["domains"]]
    out = []
    for clip in clips:
        header = ["", *(f"{n} ({d['kind']})" for n, d in zip(names, result["domains"],
                                                           strict=True))]
        body = [[_row_label(row, random),
                 *(f"{_fmt(row['per_domain'][n][clip]['quality'])} / "
                   f"{_fmt(row['per_domain'][n][clip]['diversity'])}" for n in names)]
                for row in rows]
        out.append((f"{clip} per domain, {QUANTITIES['quality'].header} / "
                    f"{QUANTITIES['diversity'].header}{mark}", header, body))
    return out


def _md_table(header: Sequence[str], body: Sequence[Sequence[str]], *,
              numeric: bool = True) -> str:
    """A markdown table; ``numeric``: right-align every column but the first."""
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    align = "---:" if numeric else "---"
    lines = ["| " + " | ".join(esc(h) for h in header) + " |",
             "|" + "|".join(["---"] + [align] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


def render_markdown(result: Mapping[str, Any]) -> str:
    """The markdown report: notice, the thesis-layout tables, per-domain tables, notes."""
    parts = ["# Thesis Tables 4.1–4.3: CLIP Quality and Diversity"]
    if result["random_weights"]:
        parts.append(f"**{RANDOM_SENTENCE}.**")
    parts.append(f"Domains adapted with their StyleSpace / domain-method offsets; Quality against "
                 f"the domain text (template `{result['text_template']}`) or reference image, "
                 "per table as each title says (Tables 4.1/4.2: image domains against a text, "
                 "the thesis' 0.23-0.25 image-text range; Table 4.3: against the reference "
                 "image, its 0.64-0.77 image-image range; `--quality-target`); "
                 f"{result['n_images']} photo(s), {result['samples']} random sample(s) for Orig; "
                 "values averaged over domains. (The thesis' Table 4.1 values equal its Table "
                 "4.2 Image column: compare them with the Image column here.)")
    settings = [f"generator `{result['generator']}`"
                + (" (random weights)" if result.get("generator_random_weights") else ""),
                "CLIP " + ", ".join(f"`{c['name']}`" + (" (random weights)" if c.get(
                    "random_weights") else "") for c in result.get("clip_models", [])),
                f"seed {result['seed']}", f"truncation {result['truncation']}"]
    versions = result.get("software") or {}
    if versions:
        settings.append(", ".join(f"{k} {v}" for k, v in versions.items()))
    parts.append("Run with: " + "; ".join(settings) + ".")
    parts.append("Legend (" + LEGEND_MARKS + "; three decimals, as the thesis' tables):\n\n"
                 + "\n".join(f"- {line}" for line in legend(QUANTITIES)))
    for title, header, body in table_layouts(result):
        parts += [f"## {title}", _md_table(header, body)]
    for title, header, body in per_domain_layouts(result):
        parts += [f"## {title}", _md_table(header, body)]
    parts.append("## Domains")
    parts.append(_md_table(["domain", "kind", "Quality targets", "from"],
                           [[d["name"], d["kind"],
                             "; ".join(x for x in (
                                 None if d["text"] is None else f"text {d['text']!r}",
                                 None if d["image"] is None else f"image {d['image']}") if x),
                             d["target_source"]] for d in result["domains"]],
                           numeric=False))
    parts.append("## Rows")
    parts.append(_md_table(["row", "status", "weights"],
                           [[r["label"], r["status"] + (f": {r['reason']}" if r.get("reason")
                                                        else ""),
                             "; ".join(f"{k}: {v}" for k, v in r.get("sources", {}).items())]
                            for r in result["rows"]], numeric=False))
    if result["notes"]:
        parts.append("## Notes")
        parts.append("\n".join(f"- {n}" for n in result["notes"]))
    skipped = result["report"]["skipped"]
    if skipped:
        parts.append("## Skipped inputs")
        parts.append(_md_table(["file", "reason"], [[s["file"], s["reason"]] for s in skipped],
                               numeric=False))
    return "\n\n".join(parts) + "\n"


def json_ready(obj: Any) -> Any:
    if isinstance(obj, float):
        return _finite(obj)
    if isinstance(obj, dict):
        return {k: json_ready(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_ready(v) for v in obj]
    return obj

