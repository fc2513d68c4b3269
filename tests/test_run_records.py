# ruff: noqa: F811  (the `files` and `registered` fixtures are used as parameters)
"""Run records carry what reproduces a run: ``generate.json`` (always, with every option that
changes a pixel), ``invert.json`` (as ``adapt.json``: written only when a photo was done, the
same after ``--resume``, its killed temporaries removed), ``adapt.json`` and a fitted
calibrator's header; each with the versions (``software``), the generator's absolute path and
sha256, and the other checkpoints' absolute paths beside the specs as given."""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path
from typing import Any

import pytest
import torch
from test_adapt_random import registered  # noqa: F401  (the fixture)
from test_batch_resume import (  # noqa: F401  (the fixture)
    _files,
    _interrupted,
    _journal,
    files,
)

import stylebridge
from stylebridge.cli.main import main
from stylebridge.core.checkpoint import read_header
from stylebridge.pipelines import invert as invert_module
from stylebridge.pipelines.run_record import software

SOFTWARE = {"stylebridge": stylebridge.__version__, "torch": torch.__version__,
            "python": platform.python_version()}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _identity(path: Path) -> dict[str, Any]:
    """How a record names a model file: its place, size, time and content's sha256 (the
    content: a same-size file copied over it with its time set back is another file)."""
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def _check_shared(record: dict[str, Any], files: dict[str, Path], cwd: Path) -> None:
    """The generator given as a relative path: recorded as given, absolute, and hashed."""
    assert record["software"] == SOFTWARE
    assert record["generator"] == str(files["gen"].resolve())
    assert record["generator_spec"] == "gen.safetensors"
    assert record["generator_sha256"] == _sha256(files["gen"])
    assert record["cwd"] == str(cwd)


def _invert_argv(out: str, *extra: str) -> list[str]:
    """``invert`` with relative paths (the test runs in the folder of the files)."""
    return ["invert", "--encoder", "test-adapt-tiny:enc.safetensors", "--generator",
            "gen.safetensors", "--no-align", "--device", "cpu", "--compile", "off",
            "--batch", "2", "--metric", "mse", "photos", "--out", out, *extra]


def test_software_block_names_the_versions() -> None:
    got = software()
    assert got == SOFTWARE
    assert got["python"].count(".") == 2 and got["python"].startswith("3.")


def test_generate_without_a_domain_writes_its_record(
        files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: no generate.json without --method (seeds, truncation, noise, precision lost)."""
    monkeypatch.chdir(files["gen"].parent)
    (files["gen"].parent / "out").mkdir()
    # a killed run's half-written generate.json: removed, as the PNGs' and grid.png's are
    (files["gen"].parent / "out" / ".generate.json.abcdefgh.tmp").write_bytes(b"half")
    assert main(["generate", "-g", "gen.safetensors", "--seeds", "3,1-2", "--truncation", "0.7",
                 "--noise", "random", "--precision", "bf16", "--batch", "2", "--device", "cpu",
                 "--compile", "off", "--out", "out"]) == 0
    out = files["gen"].parent / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "generate.json", "grid.png", "seed0001.png", "seed0002.png", "seed0003.png"]
    record = _json(out / "generate.json")
    _check_shared(record, files, files["gen"].parent)
    assert (record["seeds"], record["truncation"], record["noise"], record["precision"]) == (
        [3, 1, 2], 0.7, "random", "bf16")
    assert record["domains"] == {} and record["domain_files"] == {}
    assert record["strength"] == [1.0]
    assert record["files"]["3"] == {"source": "seed0003.png"}


def test_generate_with_a_domain_records_precision_and_the_domains_file(
        files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: generate.json with --method left out --precision (bf16 changes pixels) and
    the domain's file (a path relative to an unrecorded folder)."""
    monkeypatch.chdir(files["gen"].parent)
    assert main(["generate", "-g", "gen.safetensors", "-m", "pixar.safetensors", "--seeds",
                 "0-1", "--precision", "bf16", "--device", "cpu", "--compile", "off",
                 "--out", "out"]) == 0
    record = _json(files["gen"].parent / "out" / "generate.json")
    _check_shared(record, files, files["gen"].parent)
    assert record["precision"] == "bf16" and record["noise"] == "const"
    assert record["domains"] == {"pixar": "pixar.safetensors"}  # as given
    assert record["domain_files"] == {"pixar": _identity(files["pixar"])}


def test_invert_writes_a_run_record(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                    registered: None) -> None:
    """Before: invert wrote metrics.json only, naming neither encoder nor generator."""
    root = files["gen"].parent
    monkeypatch.chdir(root)
    assert main(_invert_argv("out", "--precision", "bf16")) == 3  # broken.png skipped
    record = _json(root / "out" / "invert.json")
    _check_shared(record, files, root)
    assert record["encoder"] == "test-adapt-tiny:enc.safetensors"  # the spec as given
    assert record["encoder_file"] == _identity(files["enc"])
    assert (record["aligned"], record["align_size"], record["precision"]) == (False, None,
                                                                              "bf16")
    assert record["metrics"] == ["mse"] and record["random_parts"] == []
    assert record["outputs"]["photos/a.png"] == {"inversion": "a_inversion.png"}
    assert len(record["done"]) == 7
    assert [s["file"] for s in record["skipped"]] == ["photos/broken.png"]
    assert record["metrics_input_vs_inversion"] == _json(root / "out" / "metrics.json")[
        "input_vs_inversion"]


def test_invert_record_is_written_only_when_a_photo_was_done(
        files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, registered: None) -> None:
    root = files["gen"].parent
    monkeypatch.chdir(root)
    assert main(_invert_argv("out")) == 3
    before = (root / "out" / "invert.json").read_bytes()
    # a run that made nothing keeps the earlier run's record, as adapt keeps adapt.json
    assert main([*_invert_argv("out")[:-3], "photos/broken.png", "--out", "out"]) == 2
    assert (root / "out" / "invert.json").read_bytes() == before
    assert main([*_invert_argv("none")[:-3], "photos/broken.png", "--out", "none"]) == 2
    assert not (root / "none" / "invert.json").exists()


def test_invert_removes_a_killed_runs_record_temporary(
        files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, registered: None) -> None:
    root = files["gen"].parent
    monkeypatch.chdir(root)
    (root / "out").mkdir()
    others = [".adapt.json.abcdefgh.tmp", ".notes.txt.abcdefgh.tmp"]  # not invert's files
    for name in [".invert.json.abcdefgh.tmp", *others]:
        (root / "out" / name).write_bytes(b"half a file")
    assert main(_invert_argv("out")) == 3
    assert sorted(p.name for p in (root / "out").iterdir() if p.name.endswith(".tmp")) == \
        sorted(others)


def test_invert_resumed_writes_the_uninterrupted_runs_record(
        files: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], registered: None) -> None:
    root = files["gen"].parent
    monkeypatch.chdir(root)
    assert main(_invert_argv("ref")) == 3
    capsys.readouterr()
    # one PNG per photo: the 6th is f, in the third batch of 2
    _interrupted(monkeypatch, capsys, invert_module, _invert_argv("out"), 6)
    assert _journal(root / "out")["done"] == 4
    assert not (root / "out" / "invert.json").exists()  # written at the end only
    assert main(_invert_argv("out", "--resume")) == 3
    assert _files(root / "out") == _files(root / "ref")  # invert.json too, byte for byte
    assert "invert.json" in _files(root / "ref")


def test_adapt_record_has_absolute_files_and_versions(
        files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, registered: None) -> None:
    """Before: adapt.json held `"encoder": "NAME:relative/path"` relative to an unrecorded
    folder, and neither the versions nor the generator's sha256."""
    root = files["gen"].parent
    monkeypatch.chdir(root)
    assert main(["adapt", "--encoder", "test-adapt-tiny:enc.safetensors", "--generator",
                 "gen.safetensors", "--method", "pixar.safetensors", "--no-align",
                 "--device", "cpu", "--compile", "off", "photos/a.png", "--out", "out"]) == 0
    record = _json(root / "out" / "adapt.json")
    _check_shared(record, files, root)
    assert record["encoder"] == "test-adapt-tiny:enc.safetensors"
    assert record["encoder_file"] == _identity(files["enc"])
    assert record["domains"] == {"pixar": "pixar.safetensors"}
    assert record["domain_files"] == {"pixar": _identity(files["pixar"])}
    assert record["calibrator_file"] is None and record["featureshift_file"] is None
    assert record["precision"] == "fp32" and record["align_size"] is None


def test_render_record_has_the_versions_and_absolute_files(
        files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, registered: None) -> None:
    """render.json held the generator's path as given and no versions."""
    root = files["gen"].parent
    monkeypatch.chdir(root)
    assert main(["adapt", "--encoder", "test-adapt-tiny:enc.safetensors", "--generator",
                 "gen.safetensors", "--method", "pixar.safetensors", "--no-align",
                 "--device", "cpu", "--compile", "off", "--save-latents", "photos/a.png",
                 "--out", "out"]) == 0
    assert main(["render", "out", "--generator", "gen.safetensors", "--method",
                 "pixar.safetensors", "--device", "cpu", "--compile", "off",
                 "--out", "rendered"]) == 0
    record = _json(root / "rendered" / "render.json")
    _check_shared(record, files, root)
    assert record["domain_files"] == {"pixar": _identity(files["pixar"])}
    assert record["featureshift_file"] is None


def test_calibrate_records_the_generators_absolute_path_and_sha256(
        files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, registered: None) -> None:
    """Before: the calibrator's header named the generator by its file name only."""
    root = files["gen"].parent
    monkeypatch.chdir(root)
    assert main(["calibrate", "alpha", "-e", "test-adapt-tiny:enc.safetensors", "-g",
                 "gen.safetensors", "--images", "photos", "--samples", "16", "--no-align",
                 "--device", "cpu", "--out", "alpha.safetensors"]) == 3  # broken.png
    extra = read_header(root / "alpha.safetensors").extra
    _check_shared(extra, files, root)
    assert extra["encoder"] == "test-adapt-tiny:enc.safetensors"
    assert extra["encoder_file"] == _identity(files["enc"])
    assert extra["n_images"] == 7 and extra["samples"] == 16
    # which photos (the header said how many only): the 7 read, broken.png left out
    photos = extra["photos"]
    assert photos["count"] == 7 and len(photos["paths"]) == 7
    assert "photos/broken.png" not in photos["paths"]
    assert all((root / p).is_file() for p in photos["paths"])
    assert photos["list_sha256"] == hashlib.sha256("\n".join(photos["paths"]).encode()).hexdigest()
    contents = "\n".join(hashlib.sha256((root / p).read_bytes()).hexdigest()
                         for p in photos["paths"])
    assert photos["contents_sha256"] == hashlib.sha256(contents.encode()).hexdigest()


def test_records_name_the_working_folder_they_were_read_from(
        files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Given as absolute paths, the record holds the same file (paths do not depend on cwd)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["generate", "-g", str(files["gen"]), "--seeds", "0", "--device", "cpu",
                 "--compile", "off", "--out", str(tmp_path / "g")]) == 0
    record = _json(tmp_path / "g" / "generate.json")
    assert record["generator"] == str(files["gen"].resolve()) and record["cwd"] == str(
        Path(os.getcwd()))
    assert record["generator_spec"] == str(files["gen"])
