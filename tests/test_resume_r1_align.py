"""``align``: the temporaries a killed run left of this run's files are removed, another
run's are not; after a Ctrl-C the terminal always says how to go on.  The face detector is
replaced by a fixed face (dlib is not what is tested here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from stylebridge.cli.commands import align as align_cli
from stylebridge.cli.main import main
from stylebridge.pipelines import align_batch
from stylebridge.pipelines.align import AlignedFace


def _face(size: int) -> AlignedFace:
    return AlignedFace(image=Image.new("RGB", (size, size), (200, 100, 50)),
                       landmarks=np.zeros((68, 2)), quad=np.zeros((4, 2)))


@pytest.fixture
def photos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``astro.png`` and ``b.png``; every photo has one face (two with --all-faces)."""
    monkeypatch.setattr(align_batch, "align_face",
                        lambda image, size, **options: _face(size))
    monkeypatch.setattr(align_batch, "align_faces",
                        lambda image, size, **options: [_face(size), _face(size)])
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("astro", "b"):
        Image.new("RGB", (16, 16)).save(folder / f"{name}.png")
    return folder


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def _plant(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"half a png")


OTHERS = [".c.png.abcdefgh.tmp", ".c_00.png.abcdefgh.tmp", ".notes.txt.abcdefgh.tmp"]


def test_align_removes_the_temporaries_of_its_own_outputs(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _plant(out, [".astro.png.cgw52qgf.tmp", ".b.png.x7k2m9qa.tmp", *OTHERS])
    assert main(["align", str(photos), "--out", str(out), "--size", "8"]) == 0
    assert _hidden(out) == sorted(OTHERS)
    assert sorted(p.name for p in out.glob("*.png")) == ["astro.png", "b.png"]
    # --all-faces: <stem>_NN.png, as many as the photo has faces; and landmarks.json
    faces = tmp_path / "faces"
    _plant(faces, [".astro_00.png.cgw52qgf.tmp", ".astro_07.png.cgw52qgf.tmp",
                   ".b_01.png.ab_12cd3.tmp", ".landmarks.json.abcdefgh.tmp", *OTHERS])
    assert main(["align", str(photos), "--out", str(faces), "--size", "8", "--all-faces",
                 "--landmarks"]) == 0
    assert _hidden(faces) == sorted(OTHERS)
    assert (faces / "astro_01.png").is_file() and (faces / "landmarks.json").is_file()


def test_an_interrupted_align_always_says_how_to_go_on(
        photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    written: list[str] = []

    def interrupted(config: Any, progress: Any = None) -> None:
        config.out.mkdir(parents=True, exist_ok=True)
        for name in written:
            Image.new("RGB", (8, 8)).save(config.out / name)
        raise KeyboardInterrupt

    monkeypatch.setattr(align_cli, "align", interrupted)
    monkeypatch.setenv("COLUMNS", "500")  # rich: no line folded inside a long path

    def said(out: Path, *extra: str) -> str:
        assert main(["align", str(photos), "--out", str(out), "--size", "8", *extra]) == 130
        captured = capsys.readouterr()
        # the hint is a notice: on stderr before the error line, as every batch command's
        # (it was printed on stdout, which `> results.txt` keeps for the results alone)
        assert captured.out == "" and captured.err.endswith("\nerror: interrupted\n")
        return " ".join(captured.err.removesuffix("error: interrupted\n").split())

    # interrupted before the first photo was written (dlib loading, a large first photo)
    out = tmp_path / "none"
    assert said(out) == f"no photo was aligned into {out} yet: run the same command again"
    # --all-faces and --landmarks cannot be continued: said, not offered
    written.append("astro_00.png")
    out = tmp_path / "faces"
    assert said(out, "--all-faces") == (
        f"the faces aligned so far are in {out}, but --skip-existing (--resume) cannot "
        "continue a run with --all-faces or --landmarks: run the same command again")
    written[:] = ["astro.png"]
    out = tmp_path / "one"
    assert said(out) == (
        f"the photos aligned so far are kept in {out} (by --skip-existing, also called "
        f"--resume): continue with `stylebridge align ... --resume --out {out}` (the same "
        "--size)")
