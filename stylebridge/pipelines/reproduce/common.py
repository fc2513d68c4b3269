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
