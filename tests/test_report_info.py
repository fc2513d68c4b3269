"""`stylebridge info REPORT.json` / `info FOLDER` read reports defensively: only regular
files (a FIFO blocked, /dev/urandom filled the memory), every field checked for its type (a
hand-edited report gave TypeError/AttributeError with exit code 1), a report saying random
weights by its notice only (generate.json) labelled, and one bad file in a folder skipped
with a note instead of stopping the listing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from stylebridge.cli.main import main
from stylebridge.cli.report_info import report_summary


def _write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_fields_of_the_wrong_type_are_left_out(tmp_path: Path) -> None:
    info = report_summary(_write(tmp_path / "r.json", {
        "software": "1.0", "encoder_file": {"path": "x", "sha256": 1}, "clip_models": 5,
        "random_parts": "encoder", "random_weights": "no", "strength": [0.5, 1.0]}))
    assert info["software"] is None and info["random_parts"] == []
    assert info["random_weights"] is False  # only `true` says so
    assert info["files"] == {"encoder file": {"path": "x", "sha256": None}}
    assert info["options"] == {"strength": [0.5, 1.0]}


def test_reproduce_rows_name_their_checkpoints(tmp_path: Path) -> None:
    info = report_summary(_write(tmp_path / "thesis_tables.json", {
        "software": "1.0", "rows": [
            {"key": "orig", "files": {}},
            {"key": "featureshift_e4e", "files": {
                "encoder": {"path": "fse.safetensors", "sha256": "ab"},
                "guide": {"path": "e4e.safetensors", "sha256": 3}}},
            {"key": "e4e", "files": ["not", "a", "mapping"]}, "not a row"]}))
    assert info["files"] == {
        "row featureshift_e4e encoder file": {"path": "fse.safetensors", "sha256": "ab"},
        "row featureshift_e4e guide file": {"path": "e4e.safetensors", "sha256": None}}


def test_a_notice_alone_says_random_weights(tmp_path: Path) -> None:
    """generate.json has a notice and random_parts but no random_weights."""
    info = report_summary(_write(tmp_path / "generate.json", {
        "software": {"torch": "2"}, "notice": "RANDOM WEIGHTS: not a trained model (generator)"}))
    assert info["random_weights"] is True


def test_a_foreign_json_with_a_meta_key_is_no_report(tmp_path: Path) -> None:
    from stylebridge.errors import StylebridgeError

    with pytest.raises(StylebridgeError, match="not a report a stylebridge run wrote"):
        report_summary(_write(tmp_path / "package.json", {"meta": {"name": "x"}}))
    # analyze's latents.json: its meta says it
    assert report_summary(_write(tmp_path / "latents.json", {
        "meta": {"software": {"torch": "2"}, "random_weights": False,
                 "encoders": {"e4e": "e4e:x"}}}))["options"]["encoders"] == {"e4e": "e4e:x"}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_folder_skips_what_is_no_report_and_says_so(tmp_path: Path, capsys) -> None:
    _write(tmp_path / "adapt.json", {"software": {"torch": "2"}, "done": ["a.png"],
                                     "skipped": []})
    os.mkfifo(tmp_path / "x.json")  # would block a read
    _write(tmp_path / "deep.json", '{"software": {')  # cut short
    _write(tmp_path / "other.json", {"a": 1})  # not a report: left out without a word
    assert main(["info", str(tmp_path), "--json"]) == 0
    out, err = capsys.readouterr()
    assert [r["report"] for r in json.loads(out)] == ["adapt.json"]
    assert " ".join(err.split()) == (
        f"note: skipped {tmp_path / 'deep.json'}: is no JSON report (Expecting property name "
        "enclosed in double quotes: line 1 column 15 (char 14)) "
        f"note: skipped {tmp_path / 'x.json'}: is not a regular file")
    code = main(["info", str(tmp_path / "x.json")])  # named alone: refused, not read
    assert code == 2 and "x.json: is not a regular file" in capsys.readouterr().err


def test_a_report_nested_too_deeply_is_one_line(tmp_path: Path) -> None:
    import sys

    from stylebridge.errors import StylebridgeError

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)  # a plain interpreter's (pytest-xdist raises it)
    try:
        with pytest.raises(StylebridgeError, match=r"is no JSON report \(nested too deeply\)"):
            report_summary(_write(tmp_path / "deep.json", "[" * 5000 + "]" * 5000))
    finally:
        sys.setrecursionlimit(limit)
