"""Quality target per table and the thesis' domain groups (issue 16: item 5, Table 4.3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import one_torch_thread

from stylebridge.cli.main import main
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines import reproduce as R
from stylebridge.pipelines.reproduce.groups import (
    DEFAULT_QUALITY_TARGETS,
    domain_quality,
    group_domains,
    parse_quality_targets,
    table_values,
)


def test_default_quality_target_per_table_is_the_thesis_reading() -> None:
    """Tables 4.1/4.2: image domains ≈ 0.25 (image-text); Table 4.3 ≈ 0.64-0.77 (image-image)."""
    assert DEFAULT_QUALITY_TARGETS == {"4.1": "text", "4.2": "text", "4.3": "reference-image"}
    assert parse_quality_targets([]) == DEFAULT_QUALITY_TARGETS
    assert parse_quality_targets(["text"]) == dict.fromkeys(("4.1", "4.2", "4.3"), "text")
    assert parse_quality_targets(["4.3=text", "4.1=reference-image"]) == {
        "4.1": "reference-image", "4.2": "text", "4.3": "text"}
    for bad in ("4.4=text", "4.1=image", "clip"):
        with pytest.raises(StylebridgeError, match="--quality-target"):
            parse_quality_targets([bad])


def test_domain_quality_picks_the_target() -> None:
    both = {"quality": 0.25, "quality_text": 0.25, "quality_image": 0.75}
    assert domain_quality(both, "image", "text") == 0.25
    assert domain_quality(both, "image", "reference-image") == 0.75
    assert domain_quality(both, "text", "reference-image") == 0.25  # text domains: their text
    only_image = {"quality": 0.7, "quality_text": None, "quality_image": 0.7}
    assert domain_quality(only_image, "image", "text") == 0.7


def _cell(q_e4e: float, q_fse: float) -> tuple[dict, dict]:
    return ({"c": {"quality_text": q_e4e, "quality_image": None, "diversity": 0.2}},
            {"c": {"quality_text": q_fse, "quality_image": None, "diversity": 0.3}})


def test_hand_made_domains_land_in_the_expected_groups() -> None:
    # gaps: image a .30, b .10, c .01 | text d .05, e .02, f .20 (kinds split separately:
    # d has a smaller gap than image b yet is "middle" among the text domains)
    gaps = {"a": (0.80, 0.50), "b": (0.80, 0.70), "c": (0.80, 0.79),
            "d": (0.30, 0.25), "e": (0.30, 0.28), "f": (0.40, 0.20)}
    kinds = {"a": "image", "b": "image", "c": "image", "d": "text", "e": "text", "f": "text"}
    e4e = {n: _cell(*g)[0] for n, g in gaps.items()}
    fse = {n: _cell(*g)[1] for n, g in gaps.items()}
    groups = group_domains(e4e, fse, kinds, clip="c")
    assert {n: g["group"] for n, g in groups.items()} == {
        "a": "different", "b": "middle", "c": "similar",
        "f": "different", "d": "middle", "e": "similar"}
    assert groups["a"]["gap"] == pytest.approx(0.30) and groups["e"]["gap"] == pytest.approx(0.02)
    # the alternative reading: absolute thresholds
    fixed = group_domains(e4e, fse, kinds, clip="c", thresholds=(0.15, 0.04))
    assert {n: g["group"] for n, g in fixed.items()} == {
        "a": "different", "b": "middle", "c": "similar",
        "f": "different", "d": "middle", "e": "similar"}
    fixed = group_domains(e4e, fse, kinds, clip="c", thresholds=(0.04, 0.03))
    assert [n for n, g in sorted(fixed.items()) if g["group"] == "different"] == ["a", "b", "d",
                                                                                 "f"]


def test_the_absolute_gap_reading_counts_domains_where_fse_scores_higher() -> None:
    """Signed (default): "different" = FSE furthest behind E4E; `gap="absolute"` sorts by
    |E4E − FSE|, so a domain where FSE scores much higher is "different" too."""
    gaps = {"a": (0.50, 0.80), "b": (0.80, 0.70), "c": (0.80, 0.79)}  # a: FSE ahead by .30
    kinds = dict.fromkeys(gaps, "image")
    e4e = {n: _cell(*g)[0] for n, g in gaps.items()}
    fse = {n: _cell(*g)[1] for n, g in gaps.items()}
    signed = group_domains(e4e, fse, kinds, clip="c")
    assert {n: g["group"] for n, g in signed.items()} == {
        "b": "different", "c": "middle", "a": "similar"}
    size = group_domains(e4e, fse, kinds, clip="c", gap="absolute")
    assert {n: g["group"] for n, g in size.items()} == {
        "a": "different", "b": "middle", "c": "similar"}
    assert size["a"]["gap"] == pytest.approx(-0.30)  # recorded signed
    fixed = group_domains(e4e, fse, kinds, clip="c", gap="absolute", thresholds=(0.05, 0.02))
    assert {n: g["group"] for n, g in fixed.items()} == {
        "a": "different", "b": "different", "c": "similar"}
    with pytest.raises(StylebridgeError, match="--group-gap 'abs': expected one of signed, "
                                               "absolute"):
        group_domains(e4e, fse, kinds, clip="c", gap="abs")


def test_table_values_use_each_tables_target_and_the_different_subset() -> None:
    per_domain = {
        "img1": {"c": {"quality_text": 0.25, "quality_image": 0.75, "diversity": 0.2}},
        "img2": {"c": {"quality_text": 0.23, "quality_image": 0.65, "diversity": 0.4}},
        "txt": {"c": {"quality_text": 0.31, "quality_image": None, "diversity": 0.1}},
    }
    kinds = {"img1": "image", "img2": "image", "txt": "text"}
    groups = {"img1": {"group": "different"}, "img2": {"group": "similar"},
              "txt": {"group": "different"}}
    t = table_values(per_domain, kinds, DEFAULT_QUALITY_TARGETS, groups)
    assert t["4.1"]["c"]["quality"] == pytest.approx((0.25 + 0.23 + 0.31) / 3)
    assert t["4.2"]["image"]["c"]["quality"] == pytest.approx(0.24)
    assert t["4.2"]["text"]["c"]["quality"] == pytest.approx(0.31)
    assert t["4.3"]["image"]["c"]["quality"] == pytest.approx(0.75)   # img1 only, its image
    assert t["4.3"]["image"]["c"]["diversity"] == pytest.approx(0.2)
    assert t["4.3"]["text"]["c"]["quality"] == pytest.approx(0.31)
    assert table_values(per_domain, kinds, DEFAULT_QUALITY_TARGETS, None)["4.3"] is None


def test_tiny_preset_with_an_image_domain_prints_groups_and_table_4_3(tmp_path: Path,
                                                                     capsys) -> None:
    out = tmp_path / "out"
    with one_torch_thread():
        assert main(["reproduce", "thesis-tables", "--preset", "tiny", "--out", str(out),
                     "--device", "cpu", "--samples", "2"]) == 0
    capsys.readouterr()
    preset = out / R.PRESET_DIR
    photo = sorted(p for p in Path(preset / "images").iterdir())[0]
    targets = tmp_path / "targets.json"
    targets.write_text(json.dumps({"tiny-pixar": {"text": "pixar", "image": str(photo),
                                                  "kind": "image"}}))
    out2 = tmp_path / "out2"
    with one_torch_thread():
        code = main(["reproduce", "thesis-tables", "--preset", "tiny", "--out", str(out2),
                     "--device", "cpu", "--samples", "2", "--targets", str(targets),
                     "--group-gap", "absolute"])
    text = " ".join(capsys.readouterr().out.split())  # titles wrap at the tables' width
    assert code == 0, text
    assert "Table 4.3 layout" in text and "Domain groups" in text and "different" in text
    assert "thirds per kind, by |gap|)" in text
    data = json.loads((out2 / R.JSON_FILE).read_text())
    assert data["groups"]["gap"] == "absolute"
    assert data["quality_targets"] == DEFAULT_QUALITY_TARGETS
    assert {n: g["group"] for n, g in data["groups"]["domains"].items()} == {
        "tiny-pixar": "different", "tiny-sketch": "different"}  # one domain per kind
    clip = data["clip_models"][0]["name"]
    for row in (r for r in data["rows"] if r["status"] == "done"):
        cell = row["per_domain"]["tiny-pixar"][clip]
        assert cell["quality_image"] is not None and cell["quality_text"] is not None
        assert cell["quality_image"] != cell["quality_text"]
        assert row["tables"]["4.2"]["image"][clip]["quality"] == pytest.approx(
            cell["quality_text"])
        assert row["tables"]["4.3"]["image"][clip]["quality"] == pytest.approx(
            cell["quality_image"])


def test_a_domain_scored_on_the_other_cosine_scale_is_named() -> None:
    """An image domain without a text, in a table whose Quality target is text, is scored
    against its reference image (~0.7) inside means of image-text cosines (~0.25): named."""
    from stylebridge.pipelines.reproduce.groups import other_scale

    per_domain = {
        "img-only": {"ViT-B-32": {"quality_text": None, "quality_image": 0.71}},
        "both": {"ViT-B-32": {"quality_text": 0.26, "quality_image": 0.69}},
        "txt": {"ViT-B-32": {"quality_text": 0.31, "quality_image": None}},
    }
    kinds = {"img-only": "image", "both": "image", "txt": "text"}
    assert other_scale(per_domain, kinds, "text") == ["img-only"]
    assert other_scale(per_domain, kinds, "reference-image") == []  # text domains use text
