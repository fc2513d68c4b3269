"""Quality targets per table and the thesis' domain groups (Tables 4.1–4.3).

**Quality target per table.**  The thesis' image-domain Quality is ≈ 0.25 in Tables 4.1 /
4.2 and ≈ 0.64–0.77 in Table 4.3.  CLIP image–text cosines live around 0.2–0.35 and
image–image cosines around 0.6–0.9, so Tables 4.1 / 4.2 scored image domains against a
*text* and Table 4.3 against the domain's *reference image*.  One rule cannot reproduce
both, so each table has its own target (``--quality-target [TABLE=]text|reference-image``):

=========  ===================  ============================================================
table      default target       why
=========  ===================  ============================================================
4.1        ``text``             image domains' Quality 0.235–0.252: an image–text range
4.2        ``text``             Image column 0.234–0.249 (≈ Table 4.1's ViT-B-32, ±0.001)
4.3        ``reference-image``  Image column 0.640–0.774: an image–image range
=========  ===================  ============================================================

Text domains are always scored against their text (the thesis' formula).  An image domain
without a text is scored against its image under ``text`` (and the other way round); the
domains table of the report says which target each domain had.

**Domain groups.**  "We have used quality metric over each domain in particular to split
them into 3 groups: which behave differently with E4E and FSE, similarly or somewhere in
the middle", "selecting 3 groups among image and text domains separately"; Table 4.3
averages over the "different" group.  The thesis gives no thresholds; our reading: the gap
of a domain is ``Quality(E4E latents) − Quality(FSE row)`` (FSE row ``fse_features`` by
default, the FSE application that loses most Quality in Table 4.1) with the Table 4.2
target and ViT-B-32 when it was computed (else the first CLIP model); within each kind the
domains are sorted by gap, largest first, and cut into thirds (rank ``r`` of ``n`` →
group ``floor(3r / n)``: different, middle, similar).  Absolute thresholds
(``thresholds=(different_above, similar_below)``) are the alternative reading.  The gap is
*signed* by default (``gap="signed"``): the thesis splits the domains right after noting
"the insufficiency of domain adaptation with Feature-Style-Encoder", so "different" are the
domains where FSE falls furthest behind E4E; ``gap="absolute"`` sorts by ``|gap|`` instead
(a domain where FSE scores much higher is "different" too).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from stylebridge.errors import StylebridgeError

QUALITY_TARGETS = ("text", "reference-image")
TABLES = ("4.1", "4.2", "4.3")
DEFAULT_QUALITY_TARGETS: dict[str, str] = {"4.1": "text", "4.2": "text",
                                           "4.3": "reference-image"}
GROUPS = ("different", "middle", "similar")
GROUP_CLIP = "ViT-B-32"          # Table 4.3's CLIP model
DEFAULT_GAP_ROW = "fse_features"
GAP_ROWS = ("fse_latents", "fse_features", "fse_shift")
#: how a domain's gap sorts it (module docstring): signed (FSE behind E4E) or its size
GAP_READINGS = ("signed", "absolute")
KINDS = ("image", "text")


def parse_quality_targets(items: Sequence[str]) -> dict[str, str]:
    """``["text"]``, ``["4.3=text", "4.1=reference-image"]`` → a target per table (the
    defaults for tables not named; a bare value sets every table)."""
    out = dict(DEFAULT_QUALITY_TARGETS)
    for item in items:
        table, sep, value = item.rpartition("=")
        value = value.strip()
        if value not in QUALITY_TARGETS:
            raise StylebridgeError(f"--quality-target {item!r}: expected [TABLE=]"
                                   f"{'|'.join(QUALITY_TARGETS)}")
        if not sep:
            out = dict.fromkeys(TABLES, value)
            continue
        table = table.strip().removeprefix("table").strip()
        if table not in TABLES:
            raise StylebridgeError(f"--quality-target {item!r}: TABLE must be one of "
                                   f"{', '.join(TABLES)}")
        out[table] = value
    return out


def domain_quality(values: Mapping[str, Any], kind: str, target: str) -> float | None:
    """The Quality of one (domain, CLIP) cell under ``target`` (see the module docstring)."""
    text, image = values.get("quality_text"), values.get("quality_image")
    if text is None and image is None:  # a cell without the split values
        return values.get("quality")
    if kind == "image" and target == "reference-image":
        return image if image is not None else text
    return text if text is not None else image


def other_scale(per_domain: Mapping[str, Mapping[str, Mapping[str, Any]]],
                kinds: Mapping[str, str], target: str) -> list[str]:
    """The domains whose Quality under ``target`` falls back to the other target (an image
    domain without a text under ``text``: an image-image cosine, ~0.7, averaged with
    image-text ones, ~0.25), so the run can say so."""
    out = []
    for name, cells in per_domain.items():
        for values in cells.values():
            text, image = values.get("quality_text"), values.get("quality_image")
            wanted = image if kinds.get(name) == "image" and target == "reference-image" else text
            if wanted is None and (text is not None or image is not None):
                out.append(name)
                break
    return out


def _mean(values: Sequence[float | None]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(sum(finite) / len(finite)) if finite else math.nan


def average(per_domain: Mapping[str, Mapping[str, Mapping[str, Any]]],
            kinds: Mapping[str, str], names: Sequence[str], target: str
            ) -> dict[str, dict[str, float]] | None:
    """``{clip: {"quality", "diversity"}}`` averaged over ``names`` (``None`` if none)."""
    names = [n for n in names if n in per_domain]
    if not names:
        return None
    clips = list(per_domain[names[0]])
    return {c: {"quality": _mean([domain_quality(per_domain[n][c], kinds[n], target)
                                  for n in names]),
                "diversity": _mean([per_domain[n][c]["diversity"] for n in names])}
            for c in clips}


def group_domains(e4e: Mapping[str, Mapping[str, Mapping[str, Any]]],
                  fse: Mapping[str, Mapping[str, Mapping[str, Any]]],
                  kinds: Mapping[str, str], *, clip: str, target: str = "text",
                  thresholds: tuple[float, float] | None = None,
                  gap: str = "signed") -> dict[str, dict[str, Any]]:
    """Each domain's E4E − FSE Quality gap and group (``different`` / ``middle`` /
    ``similar``), per kind (see the module docstring).  ``e4e`` / ``fse``: the rows'
    ``per_domain`` values; ``thresholds``: ``(different_above, similar_below)`` instead of
    thirds; ``gap``: ``signed`` (default) or ``absolute`` (groups by ``|gap|``; the
    recorded ``gap`` stays signed)."""
    if gap not in GAP_READINGS:
        raise StylebridgeError(f"--group-gap {gap!r}: expected one of {', '.join(GAP_READINGS)}")
    out: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        gaps = []
        for name, k in kinds.items():
            if k != kind or name not in e4e or name not in fse:
                continue
            a = domain_quality(e4e[name][clip], kind, target)
            b = domain_quality(fse[name][clip], kind, target)
            if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
                continue
            gaps.append((a - b, name))
        size = abs if gap == "absolute" else (lambda v: v)
        gaps.sort(key=lambda t: (-size(t[0]), t[1]))
        for rank, (value, name) in enumerate(gaps):
            if thresholds is None:
                group = GROUPS[min(2, 3 * rank // len(gaps))]
            else:
                high, low = thresholds
                group = ("different" if size(value) > high else "similar" if size(value) < low
                         else "middle")
            out[name] = {"kind": kind, "gap": value, "group": group, "rank": rank}
    return out


def pick_group_clip(clips: Sequence[str]) -> str:
    return GROUP_CLIP if GROUP_CLIP in clips else clips[0]


def table_values(per_domain: Mapping[str, Mapping[str, Mapping[str, Any]]],
                 kinds: Mapping[str, str], targets: Mapping[str, str],
                 groups: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Any]:
    """One row's values in each table: ``{"4.1": {clip: {q, d}}, "4.2": {kind: ...},
    "4.3": {kind: ...} (over the "different" domains; ``None`` without groups)}``."""
    names = list(kinds)
    out: dict[str, Any] = {
        "4.1": average(per_domain, kinds, names, targets["4.1"]),
        "4.2": {k: average(per_domain, kinds, [n for n in names if kinds[n] == k],
                           targets["4.2"]) for k in KINDS},
    }
    if groups is None:
        out["4.3"] = None
    else:
        different = [n for n in names if groups.get(n, {}).get("group") == "different"]
        out["4.3"] = {k: average(per_domain, kinds, [n for n in different if kinds[n] == k],
                                 targets["4.3"]) for k in KINDS}
    return out
