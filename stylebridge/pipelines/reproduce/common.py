"""Names shared by the ``reproduce thesis-tables`` modules: file names, defaults, the rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stylebridge.core.checkpoint import RANDOM_NOTICE, is_random_weights

RANDOM_SENTENCE = (f"{RANDOM_NOTICE}: some networks of this run are untrained; the numbers test "
                   "the code paths and are not the thesis' metrics")
DEFAULT_CLIPS = ("ViT-B-16", "ViT-B-32")   # Table 4.1's column order
DEFAULT_TEMPLATE = "A {}"
TARGETS_FILE = "targets.json"
RANDOM_SOURCE = "random weights (--allow-random)"
MARKDOWN_FILE = "thesis_tables.md"
JSON_FILE = "thesis_tables.json"
PRESET_DIR = "tiny-preset"
KINDS = ("image", "text")


@dataclass(frozen=True)
class RowSpec:
    """One row of the tables: key (JSON), the thesis' label, what it needs."""

    key: str
    label: str
    needs: tuple[str, ...]   # option names of the weights it needs


ROWS: tuple[RowSpec, ...] = (
    RowSpec("orig", "Orig", ()),
    RowSpec("e4e", "E4E latents", ("--e4e",)),
    RowSpec("fse_latents", "FSE latents", ("--fse",)),
    RowSpec("fse_features", "FSE features", ("--fse",)),
    RowSpec("fse_shift", "FSE generator shift", ("--fse",)),
    RowSpec("featureshift_e4e", "FeatureShift on E4E", ("--fse", "--e4e", "--featureshift-e4e")),
    RowSpec("featureshift_fse", "FeatureShift on FSE", ("--fse", "--featureshift-fse")),
)
FSE_MODES = {"fse_latents": "latents", "fse_features": "features", "fse_shift": "shift"}


def header_random(extra: Mapping[str, Any]) -> bool:
    """A stylebridge header that says its weights (or the CLIP that trained them) are random."""
    clip = extra.get("clip")
    return is_random_weights(extra) or (isinstance(clip, Mapping) and bool(clip.get("random_weights")))


@dataclass(frozen=True)
class Quantity:
    """A number the reports print, with its unit and which way is better (the headers carry
    :attr:`mark`; the markdown reports a legend, the JSON reports :meth:`as_dict`).

    ``better``: ``"higher"`` (↑), ``"lower"`` (↓), a value the quantity is best at (``"1"``:
    →1) or ``""`` (no better direction, e.g. a measured ratio)."""

    label: str
    unit: str
    range: tuple[float, float] | None
    better: str
    meaning: str

    @property
    def mark(self) -> str:
        return {"higher": "↑", "lower": "↓", "": ""}.get(self.better, f"→{self.better}")

    @property
    def header(self) -> str:
        """The column header: ``Quality ↑``."""
        return f"{self.label} {self.mark}".rstrip()

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "unit": self.unit,
                "range": None if self.range is None else list(self.range),
                "better": self.better or None, "meaning": self.meaning}


#: the thesis' tables print three decimals under "Quality" / "Diversity" and a CLIP model
#: (Tables 4.1-4.3) and say no direction; both are HyperDomainNet's (A.3.3): higher Quality =
#: closer to the domain, higher Diversity = less alike (no mode collapse)
QUANTITIES: dict[str, Quantity] = {
    "quality": Quantity("Quality", "CLIP cosine similarity", (-1.0, 1.0), "higher",
                        "mean cosine between each adapted image's CLIP embedding and the "
                        "domain's text (or reference image); higher = closer to the domain"),
    "diversity": Quantity("Diversity", "1 - CLIP cosine similarity", (0.0, 2.0), "higher",
                          "mean of 1 - cosine over every pair of adapted images; higher = "
                          "more varied, lower = the images look alike"),
}
LEGEND_MARKS = "↑ higher is better, ↓ lower is better, →v best at v"


def legend(quantities: Mapping[str, Quantity]) -> list[str]:
    """A legend's lines, one per quantity: ``**Quality ↑** (CLIP cosine similarity, -1 to
    1): ...`` (markdown)."""
    def span(q: Quantity) -> str:
        return "" if q.range is None else f", {q.range[0]:g} to {q.range[1]:g}"

    return [f"**{q.header}** ({q.unit}{span(q)}): {q.meaning}" for q in quantities.values()]
