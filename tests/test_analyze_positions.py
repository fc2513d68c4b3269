"""``analyze latents``: the thesis' positional layer groups next to the numeric pattern.

The thesis (Fig. 4.9, "Examining latent distributions") splits its 18 rows of a 1024 px
StyleGAN2 into "First layers" (rows 0-4), "Middle layers, more precisely layers 5-11" and
"Upper layers" (rows 12-17).  The rows are read two ways (docs/layers.md): W+ rows (a style
layer is in the row it reads) or row 0 unshifted and rows 1-17 the 17 modulated convs (conv
head k = row k + 1; a ToRGB layer has no row).  The expected groups below are written out by
hand from those ranges."""

from __future__ import annotations

import io
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from conftest import tiny_generator
from rich.console import Console

from stylebridge.cli.commands.analyze import print_latents
from stylebridge.pipelines.analyze import (
    LayerRef,
    build_report,
    compare_reports,
    layer_refs,
    render_comparison_markdown,
    render_markdown,
)


def _refs_1024() -> list[LayerRef]:
    """The 26 style layers of a 1024 px generator in rosinality order: conv1, to_rgb1, then
    per stage j convs.2j, convs.2j+1, to_rgbs.j (conv heads counted over the convs)."""
    refs = [LayerRef(0, "conv1.conv", 8, False, 0), LayerRef(1, "to_rgb1.conv", 8, True, None)]
    for j in range(8):
        refs += [LayerRef(2 + 3 * j, f"convs.{2 * j}.conv", 8, False, 2 * j + 1),
                 LayerRef(3 + 3 * j, f"convs.{2 * j + 1}.conv", 8, False, 2 * j + 2),
                 LayerRef(4 + 3 * j, f"to_rgbs.{j}.conv", 8, True, None)]
    return refs


def _means(refs: list[LayerRef], scale: float = 1.3) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    src = [torch.randn(r.channels, generator=g) for r in refs]
    return src, [scale * s for s in src]


#: style layer → (W+ reading, conv reading), by hand from the thesis' row ranges
EXPECTED = {
    0: (1, 1),      # conv1: W+ row 0; conv head 0 → row 1
    1: (1, None),   # to_rgb1: W+ row 1; no conv row
    5: (1, 1),      # convs.2: W+ row 3; conv head 3 → row 4
    6: (1, 2),      # convs.3: W+ row 4 → 1; conv head 4 → row 5 → 2 (the readings disagree)
    7: (2, None),   # to_rgbs.1: W+ row 5
    8: (2, 2),      # convs.4: W+ row 5; conv head 5 → row 6
    15: (2, 2),     # convs.9: W+ row 10; conv head 10 → row 11
    17: (2, 3),     # convs.10: W+ row 11 → 2; conv head 11 → row 12 → 3 (disagree)
    18: (3, 3),     # convs.11: W+ row 12; conv head 12 → row 13
    24: (3, 3),     # convs.15: W+ row 16; conv head 16 → row 17
    25: (3, None),  # to_rgbs.7: W+ row 17
}


def test_each_layer_gets_its_thesis_group_under_both_readings() -> None:
    refs = _refs_1024()
    report = build_report(*_means(refs), refs)
    rows = {r["index"]: r for r in report["layers"]}
    for index, (wplus, convs) in EXPECTED.items():
        assert rows[index]["thesis_group"] == {"wplus": wplus, "convs": convs}, index
    assert rows[6]["thesis_row"] == {"wplus": 4, "convs": 5}
    assert rows[25]["thesis_row"] == {"wplus": 17, "convs": None}
    # the layers per group: W+ rows 0-4 are style layers 0-6, rows 5-11 layers 7-17, 12-17 18-25
    pos = report["thesis_positions"]
    assert pos["wplus"] == {"1": list(range(0, 7)), "2": list(range(7, 18)),
                            "3": list(range(18, 26))}
    # conv heads 0-3 (rows 1-4), 4-10 (rows 5-11), 11-16 (rows 12-17); no ToRGB layer
    assert pos["convs"] == {"1": [0, 2, 3, 5], "2": [6, 8, 9, 11, 12, 14, 15],
                            "3": [17, 18, 20, 21, 23, 24]}
    # the numeric pattern and the other keys are still there
    assert all(r["pattern"] == "scaled" for r in report["layers"])
    assert report["thesis_groups"] == {"independent": 1, "calibrated": 2, "scaled": 3}


def test_only_the_convs_reported_keep_their_positions() -> None:
    refs = _refs_1024()
    convs = [r for r in refs if not r.is_rgb]
    report = build_report(*_means(refs), convs)   # means of all 26 layers, 17 reported
    assert [r["thesis_group"]["convs"] for r in report["layers"]] == [1] * 4 + [2] * 7 + [3] * 6
    assert report["thesis_positions"]["wplus"]["1"] == [0, 2, 3, 5, 6]


def test_a_real_1024_px_layout_reads_the_w_plus_rows_the_generator_reads() -> None:
    gen = tiny_generator(seed=0, size=1024, style_dim=8,
                         channels={r: 4 for r in (4, 8, 16, 32, 64, 128, 256, 512, 1024)})
    refs = layer_refs(gen)
    assert refs == [LayerRef(r.index, r.name, 4, r.is_rgb, r.conv_index) for r in _refs_1024()]
    report = build_report(*_means(refs), refs)
    for row, layer in zip(report["layers"], gen.style_layers(), strict=True):
        assert row["thesis_row"]["wplus"] == layer.latent_index


def test_the_markdown_shows_the_groups_next_to_the_pattern() -> None:
    refs = _refs_1024()
    report = build_report(*_means(refs), refs)
    md = render_markdown(report)
    assert "| pattern | thesis group (W+ / conv) |" in md
    lines = {line.split(" | ")[1]: line for line in md.splitlines()
             if line.startswith("| ") and line.count(" | ") > 10}
    assert "| scaled | 1 / 1 |" in lines["conv1.conv"]
    assert "| scaled | 1 / 2 |" in lines["convs.3.conv"]
    assert "| scaled | 2 / - |" in lines["to_rgbs.1.conv"]
    assert "| scaled | 2 / 2 |" in lines["convs.4.conv"]
    assert "| scaled | 3 / - |" in lines["to_rgbs.7.conv"]
    # the header and separator have as many columns as a row
    table = [line for line in md.splitlines() if line.startswith("|")][:3]
    assert len({line.count("|") for line in table}) == 1
    assert "Layers by pattern: " in md and "Layers by thesis group" in md
    assert "- W+ rows: group 1: 0, 1, 2, 3, 4, 5, 6; group 2: 7, 8, 9" in md
    assert "group 3: 17, 18, 20, 21, 23, 24" in md
    assert "1024 px generator" not in md

    comparison = compare_reports({"e4e": report, "fse": build_report(*_means(refs, 1.0), refs)})
    assert comparison["layers"][6]["thesis_group"] == {"wplus": 1, "convs": 2}
    cmp_md = render_comparison_markdown(comparison, {})
    assert "| 6 | convs.3.conv | 1 / 2 | 1.3 | scaled | 1 | calibrated |" in cmp_md
    assert "Layers by thesis group" in cmp_md


def test_another_size_gets_no_group_and_says_why() -> None:
    gen = tiny_generator(seed=0, size=32)
    refs = layer_refs(gen)
    report = build_report(*_means(refs), refs)
    assert report["thesis_positions"] is None
    assert all(r["thesis_group"] is None and r["thesis_row"] is None for r in report["layers"])
    md = render_markdown(report)
    assert md.count("are for a 1024 px generator") == 1
    assert "thesis group (W+ / conv)" not in md and "Layers by thesis group" not in md
    comparison = compare_reports({"e4e": report})
    assert render_comparison_markdown(comparison, {}).count("are for a 1024 px generator") == 1


def _print(results: list[tuple[str, dict[str, Any]]], refs: list[LayerRef],
           domains: tuple[str, ...] = ()) -> str:
    runs = []
    for label, report in results:
        report = dict(report, domains={d: {"layers": [{"adaptability": -0.1234}] * len(refs)}
                                       for d in domains})
        runs.append(SimpleNamespace(label=label, n_images=3, result=report))
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=False, color_system=None)
    print_latents(console, SimpleNamespace(runs=runs, layers=refs, domains=list(domains),
                                           samples=200, random=False, out=Path("x"),
                                           written=["latents.md"]))
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80 and "…" not in text
    return text


def test_the_terminal_table_shows_the_groups_when_they_fit_else_lists_them() -> None:
    refs = _refs_1024()
    report = build_report(*_means(refs), refs)
    text = _print([("e4e", report)], refs)
    assert "part 1 of" not in text
    row = next(line for line in text.splitlines() if "convs.3.conv" in line)
    assert re.split(r"\s*│\s*", row)[-3:-1] == ["scaled", "1 / 2"]
    assert "thesis group (W+ / conv):" in text
    # two encoders and a domain: the table is cut already, the column goes in a part
    text = _print([("e4e", report), ("fse", report)], refs, ("pixar",))
    assert "Layers by thesis group" not in text and "thesis group (W+ / conv):" in text
    assert any(re.search(r"convs\.3\.conv\s*│.*│ 1 / 2\s*│", line) for line in text.splitlines())
    # one encoder whose numbers and patterns take the room (α -1.972e-06, "independent"): the
    # column would cut the table in two, so the groups come as lines under it
    src, enc = _means(refs)
    g = torch.Generator().manual_seed(1)
    enc[0], enc[3] = src[0].clone(), 1e-5 * torch.randn(8, generator=g)  # calibrated, independent
    wide = build_report(src, enc, refs)
    assert {r["pattern"] for r in wide["layers"]} == {"calibrated", "independent", "scaled"}
    text = _print([("e4e", wide)], refs)
    assert "part 1 of" not in text and "thesis group (W+ / conv):" not in text
    assert "Layers by thesis group" in text
    assert "W+ rows: group 1: 0, 1, 2, 3, 4, 5, 6;" in text
    assert "conv rows (conv k = row k + 1): group 1: 0, 2, 3, 5;" in text
    # another size: the one note
    tiny = layer_refs(tiny_generator(seed=0, size=32))
    text = _print([("e4e", build_report(*_means(tiny), tiny))], tiny)
    assert "for a 1024 px generator" in " ".join(text.split())
