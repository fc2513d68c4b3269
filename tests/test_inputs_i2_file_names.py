"""File names that are not valid UTF-8 (``b"\\xff\\xfe.png"``, which Python holds as
surrogates) reach every report: ``eval --csv`` crashed after all the scoring
(``UnicodeEncodeError: ... surrogates not allowed``) and left its journal behind.  The CSV
now holds the name's bytes as the file system does; the JSON reports escape them."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylebridge.cli.main import main

RAW = b"\xff\xfe"  # not UTF-8


def _folder_with_raw_name(folder: Path, value: int) -> Path:
    """``folder`` holding ``ok.png`` and ``\\xff\\xfe.png`` (skips where the file system
    refuses such names)."""
    folder.mkdir()
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(folder / "ok.png")
    try:
        raw = os.path.join(os.fsencode(folder), RAW + b".png")
        with open(raw, "wb") as fh:
            Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(fh, "PNG")
    except OSError:
        pytest.skip("the file system refuses names that are not UTF-8")
    return folder


def test_eval_csv_and_json_keep_names_that_are_not_utf8(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pred = _folder_with_raw_name(tmp_path / "pred", 0)
    target = _folder_with_raw_name(tmp_path / "target", 255)
    out_csv, out_json = tmp_path / "r.csv", tmp_path / "r.json"
    # the streams as Python opens them under a C/C.UTF-8 locale (the table shows the name)
    streams = {name: io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="surrogateescape")
               for name in ("stdout", "stderr")}
    for name, stream in streams.items():
        monkeypatch.setattr(f"sys.{name}", stream)
    code = main(["eval", "-m", "mse", "--pred", str(pred), "--target", str(target),
                 "--csv", str(out_csv), "--json", str(out_json), "--device", "cpu"])
    streams["stderr"].seek(0)
    err = streams["stderr"].read()
    assert code == 0, err
    assert "error" not in err
    # the journal of a finished evaluation is gone (a crash left it)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred", "r.csv", "r.json", "target"]
    raw = out_csv.read_bytes()
    assert RAW + b".png" in raw  # the name's own bytes
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8", "surrogateescape"))))
    by_name = {row[0]: row for row in rows[1:]}
    name = os.fsdecode(RAW)  # what Python calls that file
    assert by_name[name][1] == os.fsdecode(os.path.join(os.fsencode(pred), RAW + b".png"))
    assert float(by_name[name][3]) == 1.0 and float(by_name["ok"][3]) == 1.0  # black vs white
    report = json.loads(out_json.read_text(encoding="ascii"))  # escaped: plain ASCII
    assert sorted(r["name"] for r in report["per_image"]) == sorted(["ok", name])


def test_a_strict_utf8_terminal_prints_such_names_escaped(tmp_path: Path) -> None:
    """Under a strict UTF-8 locale the table's name raised UnicodeEncodeError after the
    work (exit 1); the CLI's streams now escape what they cannot encode."""
    import subprocess
    import sys

    pred = _folder_with_raw_name(tmp_path / "pred", 0)
    target = _folder_with_raw_name(tmp_path / "target", 255)
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict", "COLUMNS": "120"}
    done = subprocess.run([sys.executable, "-m", "stylebridge", "eval", "-m", "mse", "--pred",
                           str(pred), "--target", str(target), "--show", "5"],
                          capture_output=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-500:]
    assert b"\\udcff\\udcfe" in done.stdout and b"Traceback" not in done.stderr


def _folder_not_utf8(tmp_path: Path) -> Path:
    """``tmp_path/caf\\xe9`` (Latin-1 ``café``), as Python names it (skips where the file
    system refuses such names)."""
    raw = os.path.join(os.fsencode(tmp_path), b"caf\xe9")
    try:
        os.mkdir(raw)
    except OSError:
        pytest.skip("the file system refuses names that are not UTF-8")
    return Path(os.fsdecode(raw))


def test_checkpoints_write_and_read_at_paths_that_are_not_utf8(tmp_path: Path) -> None:
    """safetensors takes UTF-8 paths only ('Path ... is not valid UTF-8'): such a folder
    could not hold a checkpoint, nor could `render` read the inversions `adapt` wrote there."""
    import torch

    from stylebridge.core.checkpoint import load_checkpoint, read_header, save_checkpoint

    folder = _folder_not_utf8(tmp_path)
    weights = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    path = save_checkpoint(folder / "m.safetensors", {"w": weights}, kind="domain",
                           plugin="stylespace", config={"a": 1})
    assert os.listdir(os.fsencode(folder)) == [b"m.safetensors"]  # no temporary left behind
    header = read_header(path)
    assert (header.kind, header.plugin, header.config) == ("domain", "stylespace", {"a": 1})
    _, tensors = load_checkpoint(path)
    assert torch.equal(tensors["w"], weights)


def test_generate_reads_a_generator_and_writes_into_folders_that_are_not_utf8(
        tmp_path: Path, converted_tiny: Path) -> None:
    import shutil

    folder = _folder_not_utf8(tmp_path)
    generator = folder / "g.safetensors"
    shutil.copy(converted_tiny, generator)
    out = folder / "out"
    assert main(["generate", "-g", str(generator), "--seeds", "0-1", "--out", str(out),
                 "--device", "cpu"]) == 0
    images = sorted(p.name for p in out.glob("*.png"))
    assert len(images) == 3 and "grid.png" in images  # two seeds and their grid
