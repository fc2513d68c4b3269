"""Defaults that follow the thesis (issue 16): each test checks the value the thesis gives."""

from __future__ import annotations

import pytest
import torch

from stylebridge.errors import StylebridgeError
from stylebridge.plugins.calibrators.alpha import (
    SKIP_SETS,
    is_rgb_layer,
    parse_layers,
    skip_scale,
    wplus_row_layers,
)


def _rosinality_layers(n_latent: int = 18) -> list[tuple[str, int, bool]]:
    """(name, W+ row, is ToRGB) per style layer in execution order, written out from the
    rosinality generator's forward (conv1 row 0, to_rgb1 row 1, then per stage j: convs[2j]
    row 2j+1, convs[2j+1] row 2j+2, to_rgbs[j] row 2j+3)."""
    out = [("conv1", 0, False), ("to_rgb1", 1, True)]
    for j in range((n_latent - 2) // 2):
        out += [(f"convs.{2 * j}", 2 * j + 1, False), (f"convs.{2 * j + 1}", 2 * j + 2, False),
                (f"to_rgbs.{j}", 2 * j + 3, True)]
    return out


def test_coarse_is_styledomain_no_coarse_heads_conv0_to_conv5() -> None:
    # StyleDomain's heads conv_0..conv_16 are the 17 modulated convs in execution order;
    # no_coarse freezes conv_0..conv_5 → the first six non-ToRGB style layers
    layers = _rosinality_layers()
    conv_indices = [i for i, (_, _, rgb) in enumerate(layers) if not rgb]
    assert len(conv_indices) == 17 and len(layers) == 26
    assert parse_layers("coarse") == conv_indices[:6] == [0, 2, 3, 5, 6, 8]
    assert [layers[i][0] for i in parse_layers("coarse")] == [
        "conv1", "convs.0", "convs.1", "convs.2", "convs.3", "convs.4"]
    assert parse_layers("first") == [0]
    assert parse_layers("none") == [] and parse_layers("") == []
    assert set(SKIP_SETS) == {"coarse", "first", "none"}


def test_wplus_rows_translate_to_the_style_layers_that_read_them() -> None:
    layers = _rosinality_layers()
    for row in range(18):
        expected = [i for i, (_, r, _) in enumerate(layers) if r == row]
        got = [i for i in wplus_row_layers(row) if i < 26]
        assert got == expected, row
    assert parse_layers("w:1") == [1, 2]
    assert parse_layers("w:17", n_layers=26) == [25]
    assert parse_layers("w:0-2") == [0, 1, 2, 3]
    # a row the generator does not have is named as typed, with the rows it has
    # (18 at 1024 px; the 32 px tiny generator has 11 style layers and 8 rows)
    for text, n_layers, last in (("w:18", 26, 17), ("w:16-18", 26, 17), ("w:8", 11, 7)):
        with pytest.raises(StylebridgeError, match=rf"^--skip-layers '{text}': W\+ row "
                           rf"{text[-2:].lstrip('-:')} is out of range: this generator has W\+ "
                           rf"rows 0\.\.{last}$"):
            parse_layers(text, n_layers=n_layers)


def test_conv_heads_translate_to_the_convs_in_execution_order() -> None:
    """``conv:N`` is StyleDomain's head conv_N: the N-th modulated conv (no ToRGB) in the
    rosinality generator's execution order; the coarse set is conv:0-5."""
    layers = _rosinality_layers()
    convs = [i for i, (_, _, rgb) in enumerate(layers) if not rgb]
    for head, layer in enumerate(convs):
        assert parse_layers(f"conv:{head}") == [layer], head
    assert parse_layers("conv:0-5") == parse_layers("coarse")
    assert parse_layers("conv:0") == parse_layers("first") == [0]
    assert [layers[i][0] for i in parse_layers("conv:1,conv:16")] == ["convs.0", "convs.15"]
    # the 32 px tiny generator has 11 style layers: 7 convs
    with pytest.raises(StylebridgeError, match=r"^--skip-layers 'conv:7': conv:7 is out of "
                       r"range: this generator has StyleDomain heads conv:0\.\.6$"):
        parse_layers("conv:7", n_layers=11)
    assert parse_layers("conv:6", n_layers=11) == [convs[6]] == [9]


def test_a_toRGB_number_is_refused_not_silently_skipped() -> None:
    rgb = [i for i, (_, _, is_rgb) in enumerate(_rosinality_layers()) if is_rgb]
    assert [i for i in range(26) if is_rgb_layer(i)] == rgb == [1, 4, 7, 10, 13, 16, 19, 22, 25]
    for text in ("1", "0,4", "0-2"):
        with pytest.raises(StylebridgeError, match=r"ToRGB.*w:"):
            parse_layers(text)
    assert parse_layers("rgb:4,0") == [0, 4]  # on purpose
    with pytest.raises(StylebridgeError, match="not a ToRGB"):
        parse_layers("rgb:3")
    assert parse_layers("coarse,9") == [0, 2, 3, 5, 6, 8, 9]
    assert parse_layers([1, 4]) == [1, 4]  # a resolved list (e.g. from a checkpoint) is kept
    with pytest.raises(StylebridgeError, match="expected a set name"):
        parse_layers("coarsest")
    scale = skip_scale(11, parse_layers("coarse"))
    assert scale is not None
    assert scale.tolist() == [0, 1, 0, 0, 1, 0, 0, 1, 0, 1, 1]
    assert torch.equal(skip_scale(26, parse_layers("first"))[1:], torch.ones(25))


# -- alpha fit (thesis "Examining latent distributions") ----------------------------------------


def test_alpha_fit_default_is_through_the_origin_and_both_fits_are_reported() -> None:
    import inspect

    from stylebridge.pipelines.analyze import LatentsConfig, build_report
    from stylebridge.pipelines.analyze.report import LayerRef
    from stylebridge.pipelines.calibrate import CalibrateConfig
    from stylebridge.plugins.calibrators.alpha import AlphaCalibrator

    # the thesis' hypothesis w_enc = α·w_orig (no intercept) is the default everywhere
    assert inspect.signature(AlphaCalibrator).parameters["fit"].default == "origin"
    assert LatentsConfig.__dataclass_fields__["fit"].default == "origin"
    assert CalibrateConfig.__dataclass_fields__["fit"].default == "origin"
    # hand-made means: layer 0 y = 2x exactly; layer 1 y = x + 1 (the fits disagree);
    # layer 2 encoder means ≈ 0 (α near 0: reported, not silently dropped)
    x0 = torch.tensor([1.0, 2.0, 3.0])
    src = [x0, x0.clone(), x0.clone()]
    enc = [2 * x0, x0 + 1, torch.tensor([1e-5, -1e-5, 0.0])]
    refs = [LayerRef(i, f"l{i}", 3, False, i) for i in range(3)]
    report = build_report(src, enc, refs)
    rows = report["layers"]
    assert rows[0]["fits"]["origin"]["alpha"] == pytest.approx(2.0)
    assert rows[0]["fits"]["intercept"]["alpha"] == pytest.approx(2.0)
    # layer 1: origin α = Σxy/Σx² = (2+6+12)/14 = 20/14; with intercept: slope 1, b = 1
    assert rows[1]["alpha"] == pytest.approx(20 / 14)
    assert rows[1]["fits"]["intercept"]["alpha"] == pytest.approx(1.0)
    assert rows[1]["fits"]["intercept"]["intercept"] == pytest.approx(1.0)
    assert report["near_zero_alpha"] == {"origin": [2], "intercept": [2]}
    calib = AlphaCalibrator.from_style_means(src, enc)
    assert calib.unreliable_layers() == [2]
    assert calib.offset_scale(3).tolist() == pytest.approx([0.5, 14 / 20, 0.0])


def test_docs_layer_table_is_the_help_text() -> None:
    from pathlib import Path

    from stylebridge.plugins.calibrators.alpha import LAYER_TABLE_DOC

    doc = (Path(__file__).parents[1] / "docs" / "layers.md").read_text()
    assert LAYER_TABLE_DOC in doc
