"""What the side-by-side `analyze latents` report says about itself: the `pattern` column is
defined (with the run's thresholds), and per-encoder settings read as words, not a Python
dict."""

from __future__ import annotations

from typing import Any

from stylebridge.pipelines.analyze.markdown import render_comparison_markdown
from stylebridge.pipelines.analyze.report import compare_reports


def _report(alpha: float, pattern: str) -> dict[str, Any]:
    row = {"index": 0, "name": "conv1.conv", "conv_index": 0, "channels": 8, "alpha": alpha,
           "intercept": 0.0, "r2": 0.9, "corr_r2": 0.9, "pattern": pattern}
    return {"layers": [row], "domains": {}, "patterns": {pattern: [0]},
            "thresholds": {"alpha_tol": 0.1, "r2_min": 0.5, "min_alpha": 1e-3},
            "near_zero_alpha": {}}


def test_the_comparison_defines_its_patterns_and_reads_settings_as_words() -> None:
    comparison = compare_reports({"e4e": _report(1.02, "calibrated"),
                                  "fse": _report(1.6, "scaled")})
    assert comparison["thresholds"] == {"alpha_tol": 0.1, "r2_min": 0.5, "min_alpha": 1e-3}
    text = render_comparison_markdown(comparison, {"n_images": {"e4e": 3, "fse": 2},
                                                   "samples": 3000})
    lines = text.splitlines()
    assert "- n_images: e4e 3, fse 2" in lines and "- samples: 3000" in lines
    assert ("- patterns: independent if corr r² < 0.5, else calibrated if |α − 1| ≤ 0.1, else "
            "scaled (thesis groups 1 / 2 / 3)") in lines
    assert "{" not in text
