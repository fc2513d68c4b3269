# ruff: noqa: F811  (the `files` / `registered` / `latents` fixtures of other test modules)
"""``--resume`` of the batch commands (``adapt``, ``render``, ``eval``) compares which files a
run reads, not how their paths are spelled: a run interrupted with relative paths continues
when given the same files by an absolute path, a ``../`` path or from another folder (the
photos, the inversion files, ``--pred``/``--target`` and the checkpoints), and ends with the
files an uninterrupted run of the resuming command writes, byte for byte.  The journal keeps
the interrupted run's spelling through any number of resumes.  Other files are still refused,
and the refusal shows the paths as given then and now with the files they name."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_adapt_random import registered  # noqa: F401  (the fixture)
from test_batch_resume import _files, _interrupted, _journal, files  # noqa: F401  (fixture)
from test_render_resume import latents  # noqa: F401  (the fixture)

from stylebridge.cli.main import main
from stylebridge.pipelines import adapt as adapt_module
from stylebridge.pipelines import render as render_module
from stylebridge.pipelines.resume import JOURNAL_DIR
from stylebridge.pipelines.run_settings import differs, model_setting
from stylebridge.plugins.metrics.image import SSIMMetric


def _adapt(enc: str, gen: str, methods: tuple[str, str], photos: str, out: str,
           *extra: str) -> list[str]:
    return ["adapt", "--encoder", f"test-adapt-tiny:{enc}", "--generator", gen,
            "--method", methods[0], "--method", methods[1], "--no-align", "--device", "cpu",
            "--compile", "off", "--batch", "2", "--metric", "mse", "--metric", "ssim", photos,
            "--out", out, *extra]


def _relative(out: str, *extra: str) -> list[str]:
    """The run as given from the folder of its files (the test's tmp_path)."""
    return _adapt("enc.safetensors", "gen.safetensors", ("pixar.safetensors",
                  "joker.safetensors"), "photos", out, *extra)


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "Traceback" not in err
    return err


def test_adapt_resumes_from_another_folder_and_the_journal_keeps_its_spelling(
        files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], registered: None) -> None:
    """Before: `--resume: the interrupted run in out had other photos (8 then, 8 now; new:
    ../photos/a.png, ...)`, and `--encoder differs (... then, ... now)` for the same file."""
    monkeypatch.chdir(tmp_path)
    assert main(_relative("ref")) == 3  # broken.png skipped
    capsys.readouterr()
    # batches of 2: [a b] [broken c d] [e f] [g], 3 PNGs a photo: a and b kept
    _interrupted(monkeypatch, capsys, adapt_module, _relative("out"), 8)
    assert _journal(tmp_path / "out")["done"] == 2
    journal = tmp_path / "out" / JOURNAL_DIR
    inputs = (journal / "inputs.json").read_bytes()

    # from another folder, every file spelled otherwise (`../`, absolute), interrupted again
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    other = _adapt(str(files["enc"]), "../gen.safetensors",
                   ("../pixar.safetensors", str(files["joker"])), "../photos", "../out",
                   "--resume")
    _, notices = _interrupted(monkeypatch, capsys, adapt_module, other, 8)
    assert "2 photo(s) done before are kept" in notices
    assert _journal(tmp_path / "out")["done"] == 4  # c and d, broken.png skipped
    assert (journal / "inputs.json").read_bytes() == inputs  # the interrupted run's list
    logged = [json.loads(line) for line in (journal / "log.jsonl").read_text().splitlines()]
    assert sorted(e.get("done") or e.get("skipped") for e in logged) == [
        "photos/a.png", "photos/b.png", "photos/broken.png", "photos/c.png", "photos/d.png"]

    # and with the first spelling again, from the first folder: to the end
    monkeypatch.chdir(tmp_path)
    assert main(_relative("out", "--resume")) == 3
    assert "4 photo(s) done before are kept" in " ".join(capsys.readouterr().err.split())
    assert not journal.exists()
    assert _files(tmp_path / "out") == _files(tmp_path / "ref")


def test_adapt_resumed_with_absolute_paths_writes_what_an_uninterrupted_run_of_them_writes(
        files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], registered: None) -> None:
    monkeypatch.chdir(tmp_path)

    def absolute(out: str, *extra: str) -> list[str]:
        return _adapt(str(files["enc"]), str(files["gen"]), (str(files["pixar"]),
                      str(files["joker"])), str(files["photos"]), out, *extra)

    assert main(absolute("ref")) == 3
    capsys.readouterr()
    _interrupted(monkeypatch, capsys, adapt_module, _relative("out"), 14)  # a to d kept
    assert main(absolute("out", "--resume")) == 3
    said = " ".join(capsys.readouterr().out.split())
    assert "7 done, 1 skipped" in said
    assert _files(tmp_path / "out") == _files(tmp_path / "ref")  # metrics.json by these paths
    report = json.loads((tmp_path / "out" / "adapt.json").read_text())
    assert report["done"] == [str(files["photos"] / f"{s}.png") for s in "abcdefg"]


def test_other_files_are_still_refused_showing_both_spellings(
        files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], registered: None) -> None:
    monkeypatch.chdir(tmp_path)
    _interrupted(monkeypatch, capsys, adapt_module, _relative("out"), 8)
    photos = files["photos"]
    # the same spelling from another folder names other files (copies of the photos)
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(photos, elsewhere / "photos")
    for name in ("enc", "gen", "pixar", "joker"):
        os.symlink(files[name], elsewhere / files[name].name)
    monkeypatch.chdir(elsewhere)
    err = _refused(_relative("../out", "--resume"), capsys)
    assert (f"had other photos (8 then and now; new: photos/a.png "
            f"({elsewhere / 'photos' / 'a.png'}), ...; gone: photos/a.png "
            f"({photos / 'a.png'}), ...)") in err
    monkeypatch.chdir(tmp_path)
    # a photo renamed: the new one and the gone one, the latter as the run was given it
    absolute = _adapt("enc.safetensors", "gen.safetensors", ("pixar.safetensors",
                      "joker.safetensors"), str(photos), "out", "--resume")
    (photos / "g.png").rename(photos / "h.png")
    err = _refused(absolute, capsys)
    assert f"(8 then and now; new: {photos / 'h.png'}; gone: photos/g.png " \
           f"({photos / 'g.png'}))" in err
    (photos / "h.png").rename(photos / "g.png")
    # the same bytes in another checkpoint file: another --encoder, both spellings shown
    copy = shutil.copy2(files["enc"], tmp_path / "enc2.safetensors")
    err = _refused([copy if a == "test-adapt-tiny:enc.safetensors" else a
                    for a in _adapt(f"{copy}", "gen.safetensors", ("pixar.safetensors",
                                    "joker.safetensors"), "photos", "out", "--resume")],
                   capsys)
    assert (f"--encoder differs (test-adapt-tiny:enc.safetensors ({files['enc']}) then, "
            f"test-adapt-tiny:{copy} now)") in err
    # a photo of the kept ones written again: named as this run gives it
    Image.new("RGB", (20, 24)).save(photos / "a.png")
    assert f"photo {photos / 'a.png'} has changed since the interrupted run" in \
        _refused(absolute, capsys)


def test_render_resumes_inversion_files_given_by_another_path(
        files: dict[str, Path], latents: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: `had other inversions (8 then, 8 now; new: .../inverted/a_inversion...`."""
    monkeypatch.chdir(tmp_path)

    def argv(inverted: str, out: str, *extra: str) -> list[str]:
        return ["render", inverted, "-m", "pixar.safetensors", "-m", str(files["joker"]),
                "--device", "cpu", "--compile", "off", "--batch", "2", "--out", out, *extra]

    assert main(argv(str(latents), "ref")) == 3  # ab_inversion.safetensors skipped
    capsys.readouterr()
    _interrupted(monkeypatch, capsys, render_module, argv("inverted", "out"), 8)
    assert _journal(tmp_path / "out")["done"] == 2
    assert main(argv(str(latents), "out", "--resume")) == 3
    assert "2 inversion(s) done before are kept" in " ".join(capsys.readouterr().err.split())
    assert _files(tmp_path / "out") == _files(tmp_path / "ref")  # render.json by these paths


def _grey(path: Path, level: int, size: int = 16) -> None:
    Image.fromarray(np.full((size, size, 3), level, np.uint8)).save(path)


def test_eval_resumes_pred_and_target_given_by_another_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Also a pair SSIM refuses (its reason names the target) and a target without a
    prediction: reported as this run gives them.  Before: `the interrupted evaluation had
    other --pred files: a new prediction, /.../pred/a_tiny.png (and 13 more)`."""
    for folder in ("pred", "target", "ref", "out"):
        (tmp_path / folder).mkdir()
    for i in range(9):
        _grey(tmp_path / "pred" / f"img{i}.png", 100 + i)
        _grey(tmp_path / "target" / f"img{i}.png", 90)
    _grey(tmp_path / "pred" / "a_tiny.png", 0)
    _grey(tmp_path / "target" / "a_tiny.png", 255, 2)  # too small for SSIM: skipped, named
    _grey(tmp_path / "target" / "lonely.png", 3)        # no prediction: skipped
    monkeypatch.chdir(tmp_path)

    def argv(where: str, out: str, *extra: str) -> list[str]:
        return ["eval", "-m", "mse", "-m", "ssim", "--pred", f"{where}pred", "--target",
                f"{where}target", "--batch", "4", "--json", f"{out}/r.json", "--csv",
                f"{out}/r.csv", *extra]

    assert main(argv(f"{tmp_path}/", "ref")) == 3
    real, calls = SSIMMetric.update, [0]

    def update(self: SSIMMetric, *args: object, **kwargs: object) -> None:
        calls[0] += 1
        if calls[0] == 3:  # a_tiny refused, img0-img3 scored, then the batch img4-img7
            raise KeyboardInterrupt
        real(self, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(SSIMMetric, "update", update)
        assert main(argv("", "out")) == 130
    capsys.readouterr()
    journal = tmp_path / "out" / f"{JOURNAL_DIR}-r.json"
    assert len((journal / "log.jsonl").read_text().splitlines()) == 6  # 2 skipped, 4 scored
    assert main(argv(f"{tmp_path}/", "out", "--resume")) == 3
    said = " ".join(capsys.readouterr().out.split())
    assert "9 done, 2 skipped" in said
    for name in ("r.json", "r.csv"):
        assert (tmp_path / "out" / name).read_text() == (tmp_path / "ref" / name).read_text()
    report = json.loads((tmp_path / "out" / "r.json").read_text())["report"]
    assert [s["file"] for s in report["skipped"]] == [  # pairing first, then scoring
        f"{tmp_path}/target/lonely.png", f"{tmp_path}/pred/a_tiny.png"]
    assert f"{tmp_path}/target/a_tiny.png" in report["skipped"][1]["reason"]


def test_a_checkpoint_spec_compares_by_the_file_its_path_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ckpt = tmp_path / "w" / "fse.safetensors"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    then = {"--encoder": model_setting("fse:w/fse.safetensors:mode=shift,layer=5",
                                       Path("w/fse.safetensors")),
            "--method": [model_setting("w/fse.safetensors", Path("w/fse.safetensors"))]}
    monkeypatch.chdir(ckpt.parent)
    assert differs(then, {"--encoder": model_setting(f"fse:{ckpt}:layer=5,mode=shift", ckpt),
                          "--method": [model_setting("./fse.safetensors",
                                                     Path("fse.safetensors"))]}) is None
    # other options of the same file, and the same bytes in another file, still differ
    assert differs(then, {"--encoder": model_setting(f"fse:{ckpt}:mode=shift", ckpt),
                          "--method": then["--method"]}) == (
        f"--encoder differs (fse:w/fse.safetensors:mode=shift,layer=5 ({ckpt}) then, "
        f"fse:{ckpt}:mode=shift now)")
    copy = shutil.copy2(ckpt, tmp_path / "copy.safetensors")
    assert differs(then, {"--encoder": then["--encoder"],
                          "--method": [model_setting(str(copy), Path(copy))]}) == (
        f"--method differs (w/fse.safetensors ({ckpt}) then, {copy} now)")


def test_a_respelling_changes_the_paths_of_the_inputs_only(tmp_path: Path) -> None:
    """Inputs given one by one, one spelled as before: its folder's other files keep their
    spelling; output names and values are never taken for paths."""
    from stylebridge.pipelines.resume_paths import Respelling

    b = str(tmp_path / "photos" / "b.png")
    spelling = Respelling.of(["photos/a.png", "photos/b.png"], ["photos/a.png", b])
    assert spelling is not None
    assert spelling.now({"skipped": "photos/a.png", "reason": "photos/b.png: broken"}) == \
        {"skipped": "photos/a.png", "reason": "photos/b.png: broken"}
    line = {"done": "photos/b.png", "record": {"files": {"x": "photos/b.png"},
                                               "values": {"mse": 1.0},
                                               "notes": ["read photos/b.png, as sRGB"]}}
    now = spelling.now(line)
    assert now == {"done": b, "record": {"files": {"x": "photos/b.png"}, "values": {"mse": 1.0},
                                         "notes": [f"read {b}, as sRGB"]}}
    assert spelling.then(now) == line
    assert Respelling.of(["photos/a.png"], ["photos/a.png"]) is None
