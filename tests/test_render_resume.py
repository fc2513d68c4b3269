# ruff: noqa: F811  (the `files` / `registered` fixtures of test_batch_resume / test_adapt_random)
"""``render --resume --out DIR``: a render of many inversion files that was interrupted
continues where it stopped and ends with the files an uninterrupted run writes, byte for
byte (its pictures, ``render.json``, ``grid.png``); a resume of another run is refused in one
line naming what differs; ``--batch`` may change."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_adapt_random import registered  # noqa: F401  (the fixture)
from test_batch_resume import _files, _interrupted, _journal, files  # noqa: F401  (fixture)

from stylebridge.cli.main import main
from stylebridge.core.images import load_image
from stylebridge.pipelines import render as render_module
from stylebridge.pipelines.render import RenderConfig, render
from stylebridge.pipelines.resume import JOURNAL_DIR


@pytest.fixture
def latents(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
            registered: None) -> Path:
    """The inversions of the 7 photos (``invert --save-latents``) and one file that is no
    inversion, sorted between ``a`` and ``b``: skipped and reported."""
    inverted = tmp_path / "inverted"
    assert main(["invert", "-e", f"test-adapt-tiny:{files['enc']}", "-g", str(files["gen"]),
                 "--no-align", "--device", "cpu", "--compile", "off", "--save-latents",
                 str(files["photos"]), "--out", str(inverted)]) == 3  # broken.png
    (inverted / "ab_inversion.safetensors").write_text("not a checkpoint")
    capsys.readouterr()
    return inverted


def _argv(files: dict[str, Path], latents: Path, out: Path, *extra: str) -> list[str]:
    return ["render", str(latents), "-m", str(files["pixar"]), "-m", str(files["joker"]),
            "--device", "cpu", "--compile", "off", "--batch", "2", "--out", str(out), *extra]


def _pixels(path: Path) -> np.ndarray:
    return (load_image(path).numpy() * 255).round().astype(int)


def test_render_resumed_after_a_ctrl_c_writes_what_an_uninterrupted_run_writes(
        files: dict[str, Path], latents: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    ref, out = tmp_path / "ref", tmp_path / "out"
    assert main(_argv(files, latents, ref)) == 3  # ab_inversion.safetensors skipped
    assert not (ref / JOURNAL_DIR).exists()
    capsys.readouterr()

    # 3 PNGs a file (inversion, pixar, joker), batches of 2: [a (ab) b] [c d] [e f] [g];
    # the 8th PNG is c's second: a and b are kept, the skipped file with them
    _, notices = _interrupted(monkeypatch, capsys, render_module, _argv(files, latents, out), 8)
    assert f"`stylebridge render ... --resume --out {out}`" in notices  # how to continue
    state = _journal(out)
    assert state["done"] == 2 and state["grid_rows"] == 2 and state["command"] == "render"
    assert not (out / "render.json").exists() and not (out / "grid.png").exists()
    assert (out / "c_inversion.png").is_file()  # of the batch cut short: done again

    # resumed, and interrupted again in the batch [e f] (the resume of a resume)
    _, notices = _interrupted(monkeypatch, capsys, render_module,
                              _argv(files, latents, out, "--resume"), 8)
    assert "continuing the interrupted run in" in notices
    assert "2 inversion(s) done before are kept" in notices
    assert _journal(out)["done"] == 4
    rendered: list[str] = []
    real = render_module.save_png

    def save_png(path: Path, image: Any, **options: Any) -> Path:
        rendered.append(Path(path).name)
        return real(path, image, **options)

    monkeypatch.setattr(render_module, "save_png", save_png)
    assert main(_argv(files, latents, out, "--resume")) == 3
    said, notices = (" ".join(text.split()) for text in capsys.readouterr())
    assert "4 inversion(s) done before are kept" in notices
    assert "wrote 7 inversion(s) × 3 images and grid.png" in said
    # only e, f and g rendered again, then the grid
    assert sorted(rendered) == sorted([f"{s}_{k}.png" for s in "efg"
                                       for k in ("inversion", "pixar", "joker")] + ["grid.png"])
    assert not (out / JOURNAL_DIR).exists()
    assert _files(out) == _files(ref)  # every PNG, render.json and grid.png, byte for byte
    summary = json.loads((out / "render.json").read_text())
    assert [Path(p).stem for p in summary["done"]] == [f"{s}_inversion" for s in "abcdefg"]
    assert [Path(s["file"]).name for s in summary["skipped"]] == ["ab_inversion.safetensors"]
    assert list(summary["outputs"]) == summary["done"]


def test_render_resumed_from_python_after_an_interrupting_progress_callback(
        files: dict[str, Path], latents: Path, tmp_path: Path) -> None:
    ref, out = tmp_path / "ref", tmp_path / "out"

    def config(folder: Path, **options: Any) -> RenderConfig:
        return RenderConfig(latents=[latents], methods=[str(files["pixar"])], out=folder,
                            device="cpu", compile="off", batch=2, **options)

    assert render(config(ref)).kept == 0

    def progress(done: int, total: int | None, description: str) -> None:
        if done == 6:  # the files are [a ab b c d e f g]: [a b] [c d] are finished
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        render(config(out), progress)
    assert _journal(out)["done"] == 4
    result = render(config(out, resume=True))  # the call let go of its output
    assert result.kept == 4 and len(result.report.done) == 7 and result.exit_code == 3
    assert not (out / JOURNAL_DIR).exists()
    assert _files(out) == _files(ref)


def test_render_resume_refuses_another_run_naming_what_differs(
        files: dict[str, Path], latents: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    _interrupted(monkeypatch, capsys, render_module, _argv(files, latents, out), 8)

    def refused(argv: list[str]) -> str:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert len(err.strip().splitlines()) == 1  # one line
        return " ".join(err.split())

    argv = _argv(files, latents, out, "--resume")
    assert "error: --resume: --strength differs (1.0 then, 1.0, 0.5 now); give the options " \
        "of the interrupted run" in refused([*argv, "--strength", "1,0.5"])
    only_pixar = argv[:argv.index(str(files["joker"])) - 1] + \
        argv[argv.index(str(files["joker"])) + 1:]
    assert f"--method differs ({files['pixar']}, {files['joker']} then, {files['pixar']} now)" \
        in refused(only_pixar)
    assert "--skip-layers differs (none then, 0 now)" in refused([*argv, "--skip-layers", "0"])
    assert "--precision differs (fp32 then, bf16 now)" in refused([*argv, "--precision", "bf16"])
    other = tmp_path / "gen2.safetensors"  # the same generator in another file
    other.write_bytes(files["gen"].read_bytes())
    assert f"--generator differs ({files['gen']} then, {other} now)" in refused(
        [*argv, "--generator", str(other)])
    # a domain replaced since by another of the same size with its time set back: its
    # content tells (it was compared by size and time only)
    original, st = files["joker"].read_bytes(), os.stat(files["joker"])
    files["joker"].write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    os.utime(files["joker"], ns=(st.st_atime_ns, st.st_mtime_ns))
    assert f"--method: a file of {files['pixar']}, {files['joker']} has changed since" in \
        refused(argv)
    files["joker"].write_bytes(original)  # the same content again, written later: the same
    os.utime(files["joker"], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    # an inversion file written again since: named
    kept = latents / "a_inversion.safetensors"
    st = os.stat(kept)
    os.utime(kept, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert f"--resume: inversion {kept} has changed since the interrupted run" in refused(argv)
    os.utime(kept, ns=(st.st_atime_ns, st.st_mtime_ns))
    # another command's run in the folder
    assert "holds an interrupted render run, not invert" in refused(
        ["invert", "-e", f"test-adapt-tiny:{files['enc']}", "-g", str(files["gen"]),
         "--no-align", "--device", "cpu", str(files["photos"]), "--out", str(out), "--resume"])
    # a kept output deleted since
    (out / "a_joker.png").rename(tmp_path / "a_joker.png")
    assert f"--resume: {out / 'a_joker.png'}, written by the interrupted run, is gone" in \
        refused(argv)
    (tmp_path / "a_joker.png").rename(out / "a_joker.png")
    # every refusal left the journal as it was: the resume works, and a finished run has
    # nothing to continue
    assert main(argv) == 3
    assert not (out / JOURNAL_DIR).exists()
    capsys.readouterr()
    assert f"--resume: {out} holds a finished run (grid.png), not an interrupted one" in \
        refused(argv)


def test_render_resume_with_another_batch_is_accepted_and_said(
        files: dict[str, Path], latents: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    ref, out = tmp_path / "ref", tmp_path / "out"
    assert main(_argv(files, latents, ref)) == 3
    capsys.readouterr()
    _interrupted(monkeypatch, capsys, render_module, _argv(files, latents, out), 8)
    argv = _argv(files, latents, out, "--resume")
    argv[argv.index("--batch") + 1] = "3"
    assert main(argv) == 3
    _, notices = (" ".join(text.split()) for text in capsys.readouterr())
    assert "--resume: --batch 3 (was 2): the inversions' values agree with an uninterrupted " \
        "run's within floating-point rounding" in notices
    assert "2 inversion(s) done before are kept" in notices
    assert not (out / JOURNAL_DIR).exists()
    got, want = _files(out), _files(ref)
    assert sorted(got) == sorted(want) and got["render.json"] == want["render.json"]
    for name in want:
        if name.endswith(".png"):
            assert np.abs(_pixels(out / name) - _pixels(ref / name)).max() <= 1, name


def test_render_without_resume_into_an_interrupted_or_finished_folder_starts_over(
        files: dict[str, Path], latents: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    ref, out = tmp_path / "ref", tmp_path / "out"
    assert main(_argv(files, latents, ref)) == 3
    capsys.readouterr()
    _interrupted(monkeypatch, capsys, render_module, _argv(files, latents, out), 8)
    assert main(_argv(files, latents, out)) == 3
    _, notices = (" ".join(text.split()) for text in capsys.readouterr())
    assert f"{out} holds an interrupted render run (2 of 8 inversions done); starting over " \
        "(--resume continues it)" in notices
    assert "done before are kept" not in notices
    assert not (out / JOURNAL_DIR).exists() and _files(out) == _files(ref)
    assert main(_argv(files, latents, out)) == 3  # a finished run's report: replaced, said
    _, notices = (" ".join(text.split()) for text in capsys.readouterr())
    assert f"{out} holds the report of an earlier run (grid.png): this run replaces it" \
        in notices
    assert _files(out) == _files(ref)
    # a fresh run's first file removes the interrupted run's journal (its files are replaced)
    _interrupted(monkeypatch, capsys, render_module, _argv(files, latents, tmp_path / "o2"), 8)
    _interrupted(monkeypatch, capsys, render_module, _argv(files, latents, tmp_path / "o2"), 2)
    assert not (tmp_path / "o2" / JOURNAL_DIR).exists()


def test_a_file_skipped_when_read_takes_no_name_from_a_later_one_on_resume(
        files: dict[str, Path], latents: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """d1/x does not fit the generator (skipped when read), d2/x has the same output names.
    A fresh run renders d2/x; a resumed one skipped it as "already used by d1/x"."""
    import shutil

    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    src = tmp_path / "mix"
    (src / "d1").mkdir(parents=True)
    (src / "d2").mkdir()
    with safe_open(str(latents / "a_inversion.safetensors"), "pt") as f:
        meta = f.metadata()
    tensors = load_file(str(latents / "a_inversion.safetensors"))
    tensors["w_plus"] = torch.cat([tensors["w_plus"], tensors["w_plus"][:, :1]], 1)  # a row more
    save_file(tensors, str(src / "d1" / "x_inversion.safetensors"), metadata=meta)
    shutil.copy(latents / "c_inversion.safetensors", src / "c_inversion.safetensors")
    shutil.copy(latents / "b_inversion.safetensors", src / "d2" / "x_inversion.safetensors")
    inputs = [str(src / "d1" / "x_inversion.safetensors"), str(src / "c_inversion.safetensors"),
              str(src / "d2" / "x_inversion.safetensors")]
    argv = ["render", *inputs, "-m", str(files["pixar"]), "--device", "cpu", "--compile", "off",
            "--batch", "1"]
    ref, out = tmp_path / "ref", tmp_path / "out"
    assert main([*argv, "--out", str(ref)]) == 3  # d1/x skipped
    capsys.readouterr()
    assert (ref / "x_pixar.png").is_file()
    # 2 PNGs a file: c's are the 1st and 2nd, d2/x's inversion the 3rd
    _interrupted(monkeypatch, capsys, render_module, [*argv, "--out", str(out)], 3)
    assert main([*argv, "--out", str(out), "--resume"]) == 3
    skipped = json.loads((out / "render.json").read_text())["skipped"]
    assert [s["file"] for s in skipped] == [inputs[0]], skipped
    assert (out / "x_pixar.png").read_bytes() == (ref / "x_pixar.png").read_bytes()
