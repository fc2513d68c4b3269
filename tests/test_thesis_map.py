"""``docs/thesis-map.md`` stays true, and the FeatureShift loss weights are the thesis's."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAP = ROOT / "docs" / "thesis-map.md"


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_every_path_and_test_in_the_thesis_map_exists() -> None:
    text = MAP.read_text(encoding="utf-8")
    tests = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", text)
    paths = set(re.findall(r"`(stylebridge/[\w/]+(?:\.py)?/?)`", text))
    assert len(tests) > 40 and len(paths) > 30
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert not missing, f"thesis-map names missing files: {missing}"
    for file, name in tests:
        assert (ROOT / file).is_file(), file
        assert name in _test_names(ROOT / file), f"{file}::{name} not found"
    for label in ("Eq. 1", "Eq. 2", "Eq. 3", "Eq. 4", "Eq. 5", "Table 4.1", "Table 4.2",
                  "Table 4.3", "Fig. 4.9", "Fig. 4.10", "Fig. 4.11", "Fig. 4.12", "λ_Adv = 0.01",
                  "λ_LPIPS = 0.8", "λ_ID = 0.1", "LPIPS 0.2, ID 0.025"):
        assert label in text, label


def test_featureshift_thesis_loss_weights() -> None:
    """Losses section: domain and inversion losses MSE 1.0, LPIPS (256 and 128 px) 0.8,
    ID 0.1; domain inversion LPIPS 0.2 and ID 0.025; 10 000 inversion-only iterations."""
    from stylebridge.pipelines.featureshift.config import (
        THESIS_DOMAIN_INVERSION_LOSSES,
        THESIS_LOSSES,
        TrainConfig,
    )

    assert THESIS_LOSSES == ("mse:1.0", "lpips:0.8", "id:0.1")
    assert THESIS_DOMAIN_INVERSION_LOSSES == ("lpips:0.2", "id:0.025")
    fields = TrainConfig.__dataclass_fields__
    assert fields["losses"].default_factory() == list(THESIS_LOSSES)
    assert fields["pretrain_inversion_steps"].default == 10_000


def test_ffhq_small_sizes_are_the_analyze_defaults() -> None:
    """Fig. 4.9 / 4.10: 3000 FFHQ-small photos against 3000 mapping-network samples."""
    from stylebridge.pipelines.analyze import LatentsConfig

    assert LatentsConfig.__dataclass_fields__["samples"].default == 3000
