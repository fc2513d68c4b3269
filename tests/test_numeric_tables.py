"""Tables of numbers at the default 80 columns (also piped): a number, a name or a pattern is
never split or cut (QA: ``-0.07`` / ``9``, Diversity read as ``0.00`` instead of ``0.005``,
``tiny-p…``, ``indepe…``); the headers say the unit and which way is better."""

from __future__ import annotations

import io
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from stylebridge.cli.commands.analyze import print_latents
from stylebridge.cli.commands.reproduce import print_tables

CLIPS = ("tiny-vit-p16", "tiny-vit-p8")


def _console(width: int = 80) -> tuple[Console, io.StringIO]:
    """A console as a pipe sees it (``| cat``: not a terminal, no colour)."""
    out = io.StringIO()
    return Console(file=out, width=width, force_terminal=False, color_system=None), out


def _cells(text: str) -> list[str]:
    """Every cell of the printed tables, each line of a cell stripped."""
    return [c.strip() for line in text.splitlines() for c in re.split(r"[│┃]", line)[1:-1]]


def _methods_result() -> dict[str, Any]:
    """A ``thesis_tables.json`` with the QA's methods table (two methods, two tiny CLIPs)."""
    def mean(q16: float, q8: float, d16: float, d8: float) -> dict[str, Any]:
        return {CLIPS[0]: {"quality": q16, "diversity": d16},
                CLIPS[1]: {"quality": q8, "diversity": d8}}

    row = {"key": "e4e", "label": "E4E latents", "status": "done", "random_weights": True,
           "tables": {"4.1": mean(-0.0793, 0.0301, 0.0164, 0.0052),
                      "4.2": {"image": None, "text": mean(-0.0793, 0.0301, 0.0164, 0.0052)}},
           "per_domain": {}}
    return {
        "random_weights": True, "clip_models": [{"name": c} for c in CLIPS], "rows": [row],
        "quality_targets": {"4.1": "text", "4.2": "text", "4.3": "reference-image"},
        "domains": [{"name": "stylespace-tiny-pixar", "kind": "text"}],
        "methods": {"row_label": "E4E latents", "quality_target": "text", "methods": [
            {"method": "stylespace", "status": "done", "domains": ["a", "b"],
             "quality_vs": ["text"], "mean": mean(-0.0793, 0.0301, 0.0164, 0.0052),
             "params_per_domain": 208, "train_seconds": 0.3612},
            {"method": "domain_modulation", "status": "done", "domains": ["c", "d"],
             "quality_vs": ["text"], "mean": mean(-0.0791, 0.0284, 0.0171, 0.0063),
             "params_per_domain": 208, "train_seconds": 0.3398}]}}


def test_the_methods_table_at_80_columns_splits_no_number() -> None:
    console, out = _console(80)
    print_tables(console, _methods_result())
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80
    cells = _cells(text)
    # every value whole, in one cell: 0.005 (Diversity), not 0.00 with a 5 below it
    for value in ("-0.079", "0.030", "0.016", "0.005", "0.028", "0.017", "0.006", "208",
                  "0.36", "0.34", "stylespace", "domain_modulation"):
        assert value in cells, value
    assert "0.00" not in cells and "9" not in cells and "5" not in cells
    assert "…" not in text
    # the headers carry the direction: higher Quality and Diversity are better
    assert "Quality ↑" in text and "Diversity ↑" in text


def test_a_results_file_without_quality_targets_names_what_its_numbers_were_scored_against(
        ) -> None:
    """Before the per-table targets, a domain with a text was scored against it and one
    without against its reference image: the titles must not say `text` for those."""
    from stylebridge.pipelines.reproduce.report import table_layouts

    result = _methods_result()
    del result["quality_targets"], result["methods"]
    titles = [title for title, _, _ in table_layouts(result)]
    assert titles and all("its text, else its reference image" in t for t in titles)
    assert not any("Quality target: text)" in t for t in titles)


@pytest.mark.parametrize("width", [60, 80, 100, 200])
def test_numeric_tables_fit_the_width_and_keep_every_cell_whole(width: int) -> None:
    from stylebridge.cli.common import numeric_tables

    header = ["method", "domains", "Quality vs", *(f"Quality ↑ {c}" for c in CLIPS),
              *(f"Diversity ↑ {c}" for c in CLIPS), "params / domain", "train s / domain"]
    names = ["stylespace", "affine_plus", "domain_modulation", "hyperdomain", "mindthegap"]
    rows = [[n, "2", "reference image" if n == "mindthegap" else "text", f"-0.0{k}9",
             f"0.0{k}0", f"0.01{k}", f"0.00{k}", f"{10_560 * (k + 1):,}", f"{k}.34"]
            for k, n in enumerate(names)]
    console, out = _console(width)
    for table in numeric_tables("methods", header, rows, width=width):
        console.print(table)
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= width
    cells = _cells(text)
    for row in rows:
        for cell in row:  # "reference image" may wrap at its space, never inside a word
            assert all(word in cells or cell in cells for word in cell.split()), cell
    assert all(h.split()[0] in text for h in header) and "…" not in text
    if width >= 200:
        assert "part 1 of" not in text   # one table when it fits


def test_a_table_too_wide_for_the_console_is_transposed_when_that_fits() -> None:
    from stylebridge.cli.common import numeric_tables

    header = ["", *(f"metric {k} ↓" for k in range(8))]
    rows = [["one", *(f"{k}.125" for k in range(8))], ["two", *(f"-{k}.5" for k in range(8))]]
    tables = numeric_tables("t", header, rows, width=40)
    assert len(tables) == 1   # one row per metric instead of 2 parts or more
    console, out = _console(40)
    console.print(tables[0])
    lines = out.getvalue().splitlines()
    assert any("metric 7 ↓" in line and "7.125" in line and "-7.5" in line for line in lines)


def _latents_result() -> Any:
    """Two encoders and one domain, as the QA's ``analyze latents`` run printed them."""
    def run(label: str, alpha: float, pattern: str, adapt: float) -> Any:
        layers = [{"alpha": alpha + k / 100, "r2": 0.5, "corr_r2": 0.25, "pattern": pattern}
                  for k in range(11)]
        return SimpleNamespace(label=label, n_images=3, result={
            "layers": layers,
            "domains": {"tiny-pixar": {"layers": [{"adaptability": adapt}] * 11}}})

    names = ["conv1.conv", "to_rgb1.conv", *(f"convs.{k}.conv" for k in range(6)),
             "to_rgbs.0.conv", "to_rgbs.1.conv", "to_rgbs.2.conv"]
    return SimpleNamespace(
        runs=[run("e4e", 1.037, "independent", 0.0994), run("fse", 0.7921, "calibrated", -0.103)],
        layers=[SimpleNamespace(index=k, name=n) for k, n in enumerate(names)],
        domains=["tiny-pixar"], samples=200, random=True, out=Path("an1"),
        written=["latents.png", "latents.md", "latents.json", "e4e/", "fse/"])


def test_analyze_latents_at_80_columns_cuts_no_name_nor_pattern() -> None:
    console, out = _console(80)
    print_latents(console, _latents_result())
    text = out.getvalue()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    cells = _cells(text)
    for cell in ("to_rgbs.2.conv", "independent", "calibrated", "1.037", "0.7921", "+0.099",
                 "-0.103", "tiny-pixar e4e", "tiny-pixar fse"):
        assert cell in cells, cell
    # one name for the Eq. 5 quantity, with its ideal value; a legend says what it is
    assert text.count("adaptability →0") >= 3 and "Eq. 5" in text and "α →1" in text
