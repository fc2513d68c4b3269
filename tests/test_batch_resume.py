# ruff: noqa: F811  (the `registered` fixture of test_adapt_random is used as a parameter)
"""``adapt``/``invert --resume --out DIR``: a batch run that was interrupted continues where
it stopped and ends with the files an uninterrupted run writes, byte for byte; a resume of
another run is refused in one line naming what differs."""

from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import test_adapt as ta
import torch
from conftest import tiny_generator
from PIL import Image
from test_adapt_random import registered  # noqa: F401  (the fixture)

from stylebridge.cli.main import main
from stylebridge.core.checkpoint import load_checkpoint, save_checkpoint
from stylebridge.core.interfaces import Metric
from stylebridge.core.stylegan2.checkpoint import save_stylegan2
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines import adapt as adapt_module
from stylebridge.pipelines import invert as invert_module
from stylebridge.pipelines.resume import JOURNAL_DIR, Journal
from stylebridge.plugins.metrics.id import IDMetric
from stylebridge.plugins.metrics.image import MSEMetric, PSNRMetric

PHOTOS = ("a", "b", "c", "d", "e", "f", "g")  # + broken.png, sorted after b


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    gen = tiny_generator(seed=0, size=ta.SIZE, style_dim=ta.SD)
    enc = ta.TinyEncoder()
    out = {"gen": save_stylegan2(tmp_path / "gen.safetensors", gen),
           "enc": save_checkpoint(tmp_path / "enc.safetensors", enc.state_dict(),
                                  kind="encoder", plugin=enc.name, config=enc.config()),
           "pixar": ta._domain(gen, 7).save(tmp_path / "pixar.safetensors"),
           "joker": ta._domain(gen, 8).save(tmp_path / "joker.safetensors")}
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for name in PHOTOS:
        Image.fromarray(rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)).save(
            photos / f"{name}.png")
    (photos / "broken.png").write_bytes(b"not an image")
    out["photos"] = photos
    return out


def _adapt_argv(files: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ["adapt", "--encoder", f"test-adapt-tiny:{files['enc']}", "--generator",
            str(files["gen"]), "--method", str(files["pixar"]), "--method",
            str(files["joker"]), "--no-align", "--device", "cpu", "--compile", "off",
            "--batch", "2", "--metric", "mse", "--metric", "psnr", "--metric", "ssim",
            str(files["photos"]), "--out", str(out), *extra]


def _invert_argv(files: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ["invert", "--encoder", f"test-adapt-tiny:{files['enc']}", "--generator",
            str(files["gen"]), "--no-align", "--device", "cpu", "--compile", "off",
            "--batch", "2", "--save-latents", "--metric", "mse", "--metric",
            "id:backend=dlib", str(files["photos"]), "--out", str(out), *extra]


def _interrupt_at(monkeypatch: pytest.MonkeyPatch, module: Any, call: int) -> None:
    """Ctrl-C in the pipeline's ``call``-th output PNG (the middle of a batch)."""
    real, count = module.save_png, [0]

    def save_png(path: Any, image: Any, **options: Any) -> Any:
        count[0] += 1
        if count[0] == call:
            raise KeyboardInterrupt
        return real(path, image, **options)

    monkeypatch.setattr(module, "save_png", save_png)


def _interrupted(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                 module: Any, argv: list[str], call: int) -> tuple[str, str]:
    """Run ``argv`` with a Ctrl-C in its ``call``-th output PNG; what it printed on stdout
    and on stderr (its notices: the resume hint)."""
    with monkeypatch.context() as m:
        _interrupt_at(m, module, call)
        assert main(argv) == 130
    out, err = capsys.readouterr()
    return " ".join(out.split()), " ".join(err.split())


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def _journal(out: Path) -> dict[str, Any]:
    return json.loads((out / JOURNAL_DIR / "state.json").read_text())


def test_adapt_resumed_after_a_ctrl_c_writes_what_an_uninterrupted_run_writes(
        files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], registered: None) -> None:
    ref, out = tmp_path / "ref", tmp_path / "out"
    assert main(_adapt_argv(files, ref)) == 3  # broken.png skipped
    assert not (ref / JOURNAL_DIR).exists()  # a complete run leaves no journal
    capsys.readouterr()

    # batches of 2 good photos, 3 PNGs each (inversion, pixar, joker): [a b] [broken c d]
    # [e f] [g]; the 14th PNG is the second of e, in the third batch
    _, notices = _interrupted(monkeypatch, capsys, adapt_module, _adapt_argv(files, out), 14)
    assert f"--resume --out {out}" in notices  # the command that continues it
    state = _journal(out)
    assert state["done"] == 4 and state["grid_rows"] == 4
    assert not (out / "metrics.json").exists() and (out / "e_inversion.png").exists()
    # a kill between appending to the log and writing the state leaves a cut line behind
    with open(out / JOURNAL_DIR / "log.jsonl", "ab") as fh:
        fh.write(b'{"done": "' + str(files["photos"] / "e.png").encode() + b'", "rec')

    # resumed, and interrupted again in the last batch (g): the resume of a resume
    ta.TinyEncoder.images_seen = 0
    _, notices = _interrupted(monkeypatch, capsys, adapt_module,
                              _adapt_argv(files, out, "--resume"), 8)
    assert "4 photo(s) done before are kept" in notices  # a notice: on stderr
    assert _journal(out)["done"] == 6 and ta.TinyEncoder.images_seen == 3  # e, f, g
    ta.TinyEncoder.images_seen = 0
    assert main(_adapt_argv(files, out, "--resume")) == 3
    said, notices = (" ".join(text.split()) for text in capsys.readouterr())
    assert "6 photo(s) done before are kept" in notices  # a notice: on stderr
    assert "7 done, 1 skipped" in said
    assert ta.TinyEncoder.images_seen == 1  # g: the kept photos are not encoded again
    assert not (out / JOURNAL_DIR).exists()
    assert _files(out) == _files(ref)  # every PNG, adapt.json, metrics.json, grid.png
    report = json.loads((out / "adapt.json").read_text())
    assert [s["file"] for s in report["skipped"]] == [str(files["photos"] / "broken.png")]
    assert len(report["done"]) == 7 and len(json.loads(
        (out / "metrics.json").read_text())["per_photo"]) == 7


def test_invert_resumed_after_a_ctrl_c_keeps_metric_state_and_latents(
        files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], registered: None) -> None:
    """Also the ID metric's no-face count (dlib finds no face in 32 px noise: in 7 outputs
    and 7 inputs; its note)."""
    ref, out = tmp_path / "ref", tmp_path / "out"
    assert main(_invert_argv(files, ref)) == 3
    ref_metrics = json.loads((ref / "metrics.json").read_text())
    assert any("no face was detected in 14 image(s)" in n for n in ref_metrics["notes"])
    capsys.readouterr()
    # one PNG per photo (the latents are no PNG): the 6th is f, in the third batch
    _interrupted(monkeypatch, capsys, invert_module, _invert_argv(files, out), 6)
    assert _journal(out)["done"] == 4
    assert main(_invert_argv(files, out, "--resume")) == 3
    assert "4 photo(s) done before are kept" in " ".join(capsys.readouterr().err.split())
    assert _files(out) == _files(ref)  # inversions, latents, metrics.json (notes), grid.png


def test_a_full_disk_at_the_last_write_is_resumed_without_running_a_photo_again(
        files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], registered: None) -> None:
    ref, out = tmp_path / "ref", tmp_path / "out"
    assert main(_adapt_argv(files, ref)) == 3

    def full(path: Any, data: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    with monkeypatch.context() as m:
        m.setattr(adapt_module, "write_json", full)  # metrics.json, after the last batch
        assert main(_adapt_argv(files, out)) == 2
    err = capsys.readouterr().err
    notices, _, error = err.rstrip("\n").rpartition("\n")  # the resume hint, then the error
    assert error.startswith("error: disk full") and "metrics.json" in error
    assert f"--resume --out {out}" in " ".join(notices.split())
    ta.TinyEncoder.images_seen = 0
    assert main(_adapt_argv(files, out, "--resume")) == 3
    assert ta.TinyEncoder.images_seen == 0  # all 7 kept: only the reports are written
    assert _files(out) == _files(ref)


def test_a_full_disk_while_journaling_names_the_journal_file(
        files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], registered: None) -> None:
    from stylebridge.pipelines import resume as resume_module

    class Full:
        def __init__(self, *args: Any, **kwargs: Any) -> None: ...

        def __enter__(self) -> Full:
            return self

        def __exit__(self, *exc: Any) -> None: ...

        def truncate(self, size: int) -> None: ...

        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    out = tmp_path / "out"
    monkeypatch.setattr(resume_module, "open", Full, raising=False)
    assert main(_adapt_argv(files, out)) == 2
    err = capsys.readouterr().err
    assert err == (f"error: disk full (or file size limit) writing "
                   f"{out / JOURNAL_DIR / 'log.jsonl'}\n")


def test_resume_with_another_batch_size_says_so_and_agrees_closely(
        files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], registered: None) -> None:
    ref, out = tmp_path / "ref", tmp_path / "out"
    assert main(_adapt_argv(files, ref)) == 3
    _interrupted(monkeypatch, capsys, adapt_module, _adapt_argv(files, out), 8)
    assert main(_adapt_argv(files, out, "--resume", "--batch", "3")) == 3
    said = " ".join(capsys.readouterr().err.split())  # a notice: on stderr
    assert "--batch 3 (was 2)" in said and "not bit for bit" in said
    got, want = (json.loads((d / "metrics.json").read_text()) for d in (out, ref))
    assert list(got["per_photo"]) == list(want["per_photo"])
    for output, values in want["input_vs_domain"].items():
        for key, value in values.items():
            assert got["input_vs_domain"][output][key] == pytest.approx(value, rel=1e-5)


def test_resume_refuses_another_run_naming_what_differs(
        files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], registered: None) -> None:
    out = tmp_path / "out"
    _interrupted(monkeypatch, capsys, adapt_module, _adapt_argv(files, out), 8)

    def refused(argv: list[str]) -> str:
        assert main(argv) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert "Traceback" not in err
        return err

    argv = _adapt_argv(files, out, "--resume")
    other = [a if a != str(files["joker"]) else str(files["pixar"]) for a in argv]
    assert f"--method differs ({files['pixar']}, {files['joker']} then, {files['pixar']}, " \
        f"{files['pixar']} now)" in refused(other)
    assert "--precision differs (fp32 then, bf16 now)" in refused([*argv, "--precision", "bf16"])
    no_ssim = argv[:argv.index("ssim") - 1] + argv[argv.index("ssim") + 1:]
    assert "--metric differs (mse, psnr, ssim then, mse, psnr now)" in refused(no_ssim)
    assert "holds an interrupted adapt run, not invert" in refused(
        _invert_argv(files, out, "--resume"))
    # a checkpoint replaced since by another of the same size with its time set back: its
    # content tells (it was compared by size and time only)
    original, st = files["joker"].read_bytes(), os.stat(files["joker"])
    files["joker"].write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    os.utime(files["joker"], ns=(st.st_atime_ns, st.st_mtime_ns))
    assert f"--method: a file of {files['pixar']}, {files['joker']} has changed since" in \
        refused(argv)
    files["joker"].write_bytes(original)  # the same content again, written later: the same
    os.utime(files["joker"], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    # ... and so is the generator (its sha256 was recorded, the resume compared its time)
    gen, st = files["gen"].read_bytes(), os.stat(files["gen"])
    files["gen"].write_bytes(gen[:-1] + bytes([gen[-1] ^ 1]))
    os.utime(files["gen"], ns=(st.st_atime_ns, st.st_mtime_ns))
    assert f"--generator {files['gen'].resolve()} has changed since the interrupted run" in \
        refused(argv)
    files["gen"].write_bytes(gen)
    # another photo list
    Image.new("RGB", (20, 24)).save(files["photos"] / "h.png")
    assert (f"had other photos (8 then, 9 now; new: {files['photos'] / 'h.png'})"
            in refused(argv))
    (files["photos"] / "h.png").unlink()
    assert "--resume continues a folder: give it as --out DIR" in refused([*argv[:-3], "--resume"])
    # a damaged journal: what is wrong, and how to start over
    state_file = out / JOURNAL_DIR / "state.json"
    state = state_file.read_bytes()
    state_file.write_text("{")
    assert "--resume: the journal in " in (err := refused(argv)) and "cannot be read" in err
    assert "run without --resume to start over" in err
    state_file.write_bytes(state)
    row = out / JOURNAL_DIR / "row_00001.png"
    row.rename(row.with_suffix(".bak"))
    assert f"is incomplete ({row}: no such file)" in refused(argv)
    row.with_suffix(".bak").rename(row)
    # a kept photo's output deleted since: it cannot be kept
    kept = out / "a_joker.png"
    kept.rename(tmp_path / "a_joker.png")
    assert f"--resume: {kept}, written by the interrupted run, is gone" in refused(argv)
    (tmp_path / "a_joker.png").rename(kept)
    # ... or written over by another picture of that name (it was kept unchecked: the report
    # and grid described the interrupted run's picture)
    original = kept.read_bytes()
    stat = kept.stat()
    Image.new("RGB", (ta.SIZE, ta.SIZE), (9, 9, 9)).save(kept)
    assert (f"--resume: {kept} was changed since the interrupted run wrote it"
            in refused(argv))
    # the same bytes with another modification time (a copy without its times) are kept
    kept.write_bytes(original)
    os.utime(kept, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    # the journal is untouched by every refusal: the resume still works
    assert main(argv) == 3
    assert not (out / JOURNAL_DIR).exists()


def test_resume_is_refused_for_random_weights_built_without_a_file(
        files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], registered: None) -> None:
    out = tmp_path / "out"
    argv = [a if a != f"test-adapt-tiny:{files['enc']}" else "test-adapt-tiny"
            for a in _adapt_argv(files, out)]
    said, notices = _interrupted(monkeypatch, capsys, adapt_module, argv, 8)
    # the Ctrl-C hint (on stderr) does not offer the --resume that is refused next
    assert "--resume --out" not in notices and "--resume --out" not in said
    assert ("--encoder ran on random weights built without a checkpoint file, which a new run "
            "draws anew: a --resume would be refused; rerun without --resume" in notices)
    assert main([*argv, "--resume"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert ("--resume: --encoder run(s) on random weights built without a checkpoint file"
            in err)
    assert main(argv) == 3  # a new run is not refused


def test_an_output_folder_that_is_an_input_folder_is_refused(
        files: dict[str, Path], capsys: pytest.CaptureFixture[str], registered: None) -> None:
    """Its pictures would be read as photos by the next run (and a --resume would find other
    photos than the interrupted run had)."""
    photos = files["photos"]
    for argv in (_adapt_argv(files, photos), _invert_argv(files, photos)):
        assert main(argv) == 2
        assert capsys.readouterr().err == (
            f"error: --out {photos} is also an input folder: the next run would read these "
            "outputs as photos; choose another --out\n")
    assert sorted(p.name for p in photos.iterdir()) == sorted(
        [f"{n}.png" for n in PHOTOS] + ["broken.png"])  # nothing written


def test_a_fresh_run_over_an_interrupted_one_says_it_starts_over(
        files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], registered: None) -> None:
    out = tmp_path / "out"
    _interrupted(monkeypatch, capsys, adapt_module, _adapt_argv(files, out), 8)
    # a fresh run that is itself cut short in its first batch has overwritten a kept photo:
    # the old journal is gone as soon as it writes, so no --resume takes that photo as kept
    other = [a if a != str(files["joker"]) else str(files["pixar"])
             for a in _adapt_argv(files, out)]
    _, notices = _interrupted(monkeypatch, capsys, adapt_module, other, 2)
    assert "holds an interrupted adapt run (2 of 8 photos done); starting over" in notices
    assert not (out / JOURNAL_DIR).exists()
    _interrupted(monkeypatch, capsys, adapt_module, _adapt_argv(files, out), 8)
    ta.TinyEncoder.images_seen = 0
    assert main(_adapt_argv(files, out)) == 3
    said = " ".join(capsys.readouterr().err.split())  # notices: on stderr
    assert "holds an interrupted adapt run (2 of 8 photos done); starting over" in said
    assert ta.TinyEncoder.images_seen == 7 and not (out / JOURNAL_DIR).exists()
    # another command into a folder that holds an interrupted run names that run's command
    _interrupted(monkeypatch, capsys, adapt_module, _adapt_argv(files, out), 8)
    assert main(_invert_argv(files, out)) == 3
    stdout, said = (" ".join(text.split()) for text in capsys.readouterr())
    assert f"{out} holds an interrupted adapt run (2 of 8 photos done); starting over" in said
    assert "--resume continues it" not in said and "--resume continues it" not in stdout
    # --resume into a finished run's folder: nothing to continue, and its report is kept
    # (it started over and replaced the report, with other photos or options too)
    before = (out / "metrics.json").read_bytes()
    assert main(_adapt_argv(files, out, "--resume")) == 2
    said = " ".join(capsys.readouterr().err.split())
    assert (f"--resume: {out} holds a finished run (metrics.json, grid.png), not an "
            "interrupted one: nothing to continue") in said
    assert (out / "metrics.json").read_bytes() == before
    # --resume where nothing was interrupted: a full run, said so
    fresh = tmp_path / "fresh"
    assert main(_adapt_argv(files, fresh, "--resume")) == 3
    assert "holds no interrupted adapt run; starting from the first photo" in " ".join(
        capsys.readouterr().err.split())


def test_a_run_into_the_default_folder_names_an_interrupted_one_it_does_not_continue(
        files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], registered: None) -> None:
    monkeypatch.chdir(tmp_path)
    argv = _adapt_argv(files, tmp_path)[:-2]  # no --out: ./adapted, then ./adapted-2
    _, notices = _interrupted(monkeypatch, capsys, adapt_module, argv, 8)
    assert "--resume --out adapted" in notices
    assert main(argv) == 3
    said = " ".join(capsys.readouterr().err.split())  # a notice: on stderr
    assert ("adapted holds an interrupted adapt run; this one writes to adapted-2 (`--resume "
            "--out adapted` continues it instead)") in said
    assert (tmp_path / "adapted-2" / "grid.png").is_file()
    assert (tmp_path / "adapted" / JOURNAL_DIR).is_dir()  # left for --resume


def test_generate_resumed_writes_what_an_uninterrupted_run_writes(
        files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from stylebridge.pipelines import generate as generate_module

    def argv(out: Path, *extra: str) -> list[str]:
        return ["generate", "-g", str(files["gen"]), "-m", str(files["pixar"]), "--seeds",
                "0-9", "--batch", "3", "--noise", "random", "--device", "cpu", "--compile",
                "off", "--out", str(out), *extra]

    ref, out = tmp_path / "ref", tmp_path / "out"
    assert main(argv(ref)) == 0
    # 2 PNGs a seed (sample, pixar), 3 seeds a batch: the 8th PNG is in the second batch
    _, notices = _interrupted(monkeypatch, capsys, generate_module, argv(out), 8)
    assert f"--resume --out {out}" in notices
    assert _journal(out)["done"] == 3
    assert main(argv(out, "--truncation", "0.5", "--resume")) == 2
    assert "--resume: --truncation differs (1.0 then, 0.5 now)" in capsys.readouterr().err
    # what a `kill -9` mid-write leaves: the resumed run ends without them
    (out / ".seed0004.png.x7k2m9qa.tmp").write_bytes(b"half a png")
    (out / ".grid.png.ab_12cd3.tmp").write_bytes(b"")
    assert main(argv(out, "--resume")) == 0
    assert "3 seed(s) done before are kept" in " ".join(capsys.readouterr().err.split())
    assert _files(out) == _files(ref)  # every sample, grid.png, generate.json


def test_eval_resumed_writes_what_an_uninterrupted_evaluation_writes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(3)
    pred, target = tmp_path / "pred", tmp_path / "target"
    for folder in (pred, target):
        folder.mkdir()
        for name in PHOTOS:
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
                folder / f"{name}.png")
    (pred / "c.png").write_bytes(b"not an image")            # unreadable: skipped
    Image.new("RGB", (32, 32)).save(pred / "lonely.png")      # no target: skipped

    def argv(out: Path, *extra: str) -> list[str]:
        return ["eval", "-m", "mse", "-m", "ssim", "-m", "id:backend=dlib", "--pred", str(pred),
                "--target", str(target), "--batch", "2", "--device", "cpu",
                "--json", str(out / "eval.json"), "--csv", str(out / "eval.csv"), *extra]

    ref, out = tmp_path / "ref", tmp_path / "out"
    ref.mkdir()
    out.mkdir()
    assert main(argv(ref)) == 3
    real, calls = MSEMetric.update, [0]

    def update(self: Any, *args: Any, **kwargs: Any) -> None:
        calls[0] += 1
        if calls[0] == 3:  # the third batch
            raise KeyboardInterrupt
        real(self, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(MSEMetric, "update", update)
        assert main(argv(out)) == 130
    assert "continue with `stylebridge eval ... --resume`" in " ".join(
        capsys.readouterr().err.split())
    assert main(argv(out, "--resume", "-m", "psnr")) == 2
    assert "--resume: --metric differs" in capsys.readouterr().err
    assert main(argv(out, "--resume", "-m", "fid:allow_random=true")) == 2
    assert "metric fid keeps no state to continue from" in capsys.readouterr().err
    assert main(argv(out, "--resume")) == 3
    kept = re.search(r"continuing the interrupted run: (\d+) pair\(s\) done before are kept",
                     " ".join(capsys.readouterr().err.split()))  # a note: on stderr
    assert kept and int(kept[1]) == 4  # two finished batches of 2 (as adapt says it)
    assert not (out / f"{JOURNAL_DIR}-eval.json").exists()
    for name in ("eval.json", "eval.csv"):
        assert (out / name).read_text().replace(str(out), "X") == \
            (ref / name).read_text().replace(str(ref), "X")
    # a metric on random weights drawn from its spec: a resume draws the same weights, so
    # the hint offers --resume and the resume is taken
    calls[0] = 0
    with monkeypatch.context() as m:
        m.setattr(MSEMetric, "update", update)
        assert main(argv(tmp_path / "r2", "-m", "lpips:allow_random=true")) == 130
    stdout, said = (" ".join(text.split()) for text in capsys.readouterr())
    assert "continue with `stylebridge eval ... --resume`" in said
    assert "ran on random weights" not in said and "ran on random weights" not in stdout
    assert main(argv(tmp_path / "r2", "-m", "lpips:allow_random=true", "--resume")) == 3


def test_calibrate_resumed_fits_what_an_uninterrupted_run_fits(
        files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], registered: None) -> None:
    def argv(out: Path, *extra: str) -> list[str]:
        return ["calibrate", "alpha", "-e", f"test-adapt-tiny:{files['enc']}", "-g",
                str(files["gen"]), "--images", str(files["photos"]), "--no-align", "--batch",
                "2", "--samples", "64", "--device", "cpu", "--out", str(out), *extra]

    ref, out = tmp_path / "ref.safetensors", tmp_path / "alpha.safetensors"
    assert main(argv(ref)) == 3  # broken.png skipped
    real, calls = ta.TinyEncoder.encode, [0]

    def encode(self: Any, images: Any) -> Any:
        calls[0] += 1
        if calls[0] == 3:  # the third batch
            raise KeyboardInterrupt
        return real(self, images)

    with monkeypatch.context() as m:
        m.setattr(ta.TinyEncoder, "encode", encode)
        assert main(argv(out)) == 130
    assert f"--resume --out {out}" in " ".join(capsys.readouterr().err.split())
    assert not out.exists()
    # other photos: the refusal names calibrate's option, not adapt's positional IMAGES
    fewer = tmp_path / "fewer"
    fewer.mkdir()
    for photo in sorted(files["photos"].glob("*.png"))[:3]:
        (fewer / photo.name).write_bytes(photo.read_bytes())
    changed = [a if a != str(files["photos"]) else str(fewer) for a in argv(out, "--resume")]
    assert main(changed) == 2
    assert "give the same --images, or another --out" in capsys.readouterr().err
    ta.TinyEncoder.images_seen = 0
    assert main(argv(out, "--resume")) == 3
    assert "4 photo(s) done before are kept" in " ".join(capsys.readouterr().err.split())
    assert ta.TinyEncoder.images_seen == 3  # e, f, g
    assert not (tmp_path / f"{JOURNAL_DIR}-alpha.safetensors").exists()
    got, want = load_checkpoint(out), load_checkpoint(ref)
    assert got[0] == want[0]  # the header: n_images 7, ...
    assert got[1].keys() == want[1].keys()
    assert all(torch.equal(got[1][k], want[1][k]) for k in want[1])  # the same alpha, exactly


# ---------------------------------------------------------------------------------------------
# Metric state


def test_per_image_metric_state_restores_sums_exactly_also_capped() -> None:
    a, b = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0)), None
    b = a.clone()
    b[1] *= 0.9  # a different image, still in [0, 1] (metrics refuse other ranges)
    whole, first, second = PSNRMetric(), PSNRMetric(), PSNRMetric()
    for m in (whole, first):
        m.update(a[:2], b[:2])  # image 0 is identical: PSNR capped (8-bit noise floor)
    whole.update(a[2:], b[2:])
    state = json.loads(json.dumps(first.state()))  # through JSON, as the journal keeps it
    assert state["capped"] == 1
    second.load_state(state)
    second.update(a[2:], b[2:])
    assert second.compute() == whole.compute() and second.notes() == whole.notes()
    mse = MSEMetric()
    mse.update(a[:1] * 0.5, a[:1] * 0.5 + 0.25)  # both in [0, 1]
    restored = MSEMetric()
    restored.load_state(json.loads(json.dumps(mse.state())))
    assert restored.compute() == mse.compute() == {"mse": pytest.approx(0.0625)}
    with pytest.raises(StylebridgeError, match="mse: saved metric state is malformed"):
        MSEMetric().load_state({"sums": {"mse": 3}})


def test_id_metric_state_keeps_its_no_face_count() -> None:
    noise = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    metric = IDMetric(backend="dlib")
    metric.update(noise, noise.flip(0))
    state = metric.state()
    assert state["no_face"] == 4  # two predictions and two targets, none with a face
    restored = IDMetric(backend="dlib")
    restored.load_state(json.loads(json.dumps(state)))
    assert restored.notes() == metric.notes() and restored.compute() == metric.compute()


class _NoState(Metric):
    name = "nostate"

    def reset(self) -> None: ...

    def update(self, pred: Any, target: Any = None, **context: Any) -> None: ...

    def compute(self) -> dict[str, float]:
        return {"x": 0.0}


def test_a_metric_without_state_is_named_when_resuming(tmp_path: Path) -> None:
    inputs = [tmp_path / "a.png"]
    metrics: Any = {"inversion": [_NoState()]}
    assert _NoState().state() is None  # the interface's default: cannot resume
    journal = Journal.open(tmp_path, "invert", settings={}, how={}, inputs=inputs,
                           metrics=metrics, resume=False)
    journal.report.ok(inputs[0])
    journal.records[str(inputs[0])] = {"values": {}}
    journal.save(metrics)
    with pytest.raises(StylebridgeError, match="keeps no state to continue from"):
        Journal.open(tmp_path, "invert", settings={}, how={}, inputs=inputs, metrics=metrics,
                     resume=True)


def test_the_same_checkpoint_with_other_options_is_named_as_such(tmp_path: Path) -> None:
    """`--encoder fse:F` then `fse:F:mode=shift`: the file did not change, the spec did."""
    from stylebridge.pipelines.resume import differs, model_setting

    ckpt = tmp_path / "fse.safetensors"
    ckpt.write_bytes(b"x")
    then = {"--encoder": model_setting(f"fse:{ckpt}", ckpt)}
    now = {"--encoder": model_setting(f"fse:{ckpt}:mode=shift", ckpt)}
    assert differs(then, now) == (f"--encoder differs (fse:{ckpt} then, fse:{ckpt}:mode=shift "
                                  "now)")
    os.utime(ckpt, ns=(0, 10**9))  # touched: the same content, the same file
    assert differs(then, {"--encoder": model_setting(f"fse:{ckpt}", ckpt)}) is None
    ckpt.write_bytes(b"y")  # another content of the same size, its time set back
    os.utime(ckpt, ns=(0, 10**9))
    assert differs(then, {"--encoder": model_setting(f"fse:{ckpt}", ckpt)}) == (
        f"--encoder {ckpt.resolve()} has changed since the interrupted run")
    # a journal written before files had a sha256: compared by path, size and time
    old = {k: v for k, v in then["--encoder"].items() if k != "sha256"}
    assert differs({"--encoder": old}, then) is None


def test_a_run_into_a_finished_runs_folder_says_it_replaces_its_report(
        files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        registered: None) -> None:
    out = tmp_path / "out"
    assert main(_adapt_argv(files, out)) == 3
    assert "report of an earlier run" not in "".join(capsys.readouterr())
    assert main(_adapt_argv(files, out)) == 3
    said = " ".join(capsys.readouterr().err.split())  # a notice: on stderr
    assert (f"{out} holds the report of an earlier run (metrics.json, grid.png): this run "
            "replaces them and any picture of the same name") in said


def test_a_run_that_makes_nothing_keeps_the_earlier_runs_report(
        files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        registered: None) -> None:
    """A second adapt into a finished run's folder whose only photo cannot be read wrote an
    empty adapt.json / metrics.json over the earlier run's (its grid.png and pictures stayed,
    so the folder contradicted itself); now nothing is written."""
    out = tmp_path / "out"
    assert main(_adapt_argv(files, out)) == 3
    kept = {name: (out / name).read_bytes() for name in ("adapt.json", "metrics.json")}
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    argv = _adapt_argv(files, out)
    argv[argv.index(str(files["photos"]))] = str(bad)
    assert main(argv) == 2
    capsys.readouterr()
    assert {name: (out / name).read_bytes() for name in kept} == kept
    nothing = tmp_path / "nothing"
    argv = _adapt_argv(files, nothing)
    argv[argv.index(str(files["photos"]))] = str(bad)
    assert main(argv) == 2
    assert not (nothing / "adapt.json").exists() and not (nothing / "metrics.json").exists()


def test_a_generate_into_a_finished_generates_folder_says_it(
        files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """generate writes no metrics.json: a second run with fewer seeds left the first's
    seed0004-0007 beside its own without a word; its grid.png now says a run was there."""
    out = tmp_path / "out"
    argv = ["generate", "-g", str(files["gen"]), "--seeds", "0-3", "--device", "cpu",
            "--out", str(out)]
    assert main(argv) == 0
    assert "earlier run" not in "".join(capsys.readouterr())
    assert main([*argv[:4], "0-1", *argv[5:]]) == 0
    said = " ".join(capsys.readouterr().err.split())  # a notice: on stderr
    assert f"{out} holds the report of an earlier run (grid.png): this run replaces it" in said


def test_a_photo_whose_files_would_be_another_photos_is_skipped(
        files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        registered: None) -> None:
    """Photos ``a`` and ``a_x`` with a domain named ``x_inversion``: ``a``'s domain output and
    ``a_x``'s inversion are both ``a_x_inversion.png``; the second photo was written over the
    first's output and adapt.json named one file for two outputs. Now it is skipped, named."""
    import shutil

    photos = tmp_path / "cx"
    photos.mkdir()
    for name in ("a", "a_x"):
        shutil.copy(files["photos"] / f"{PHOTOS[0]}.png", photos / f"{name}.png")
    domain = shutil.copy(files["pixar"], tmp_path / "x_inversion.safetensors")
    out = tmp_path / "out"
    argv = _adapt_argv(files, out)
    argv[argv.index(str(files["photos"]))] = str(photos)
    argv[argv.index(str(files["pixar"]))] = str(domain)
    assert main(argv) == 3
    said = " ".join(capsys.readouterr().out.split())
    assert "output name a_x_inversion is already used by" in said
    summary = json.loads((out / "adapt.json").read_text())
    assert list(summary["outputs"]) == [str(photos / "a.png")]
    assert [s["file"] for s in summary["skipped"]] == [str(photos / "a_x.png")]
