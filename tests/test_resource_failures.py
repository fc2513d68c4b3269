"""Running out of a resource never costs more than the one input or the one step it hit:
a photo too large for memory is skipped like any unreadable one (a resume would otherwise hit
it again and again), a journal's removal cannot be caught half done, and an output folder
removed while a run writes into it is said as such, without a resume hint that cannot work."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

import stylebridge.core.images as images
import stylebridge.core.io as sio
import stylebridge.pipelines.align as align
from stylebridge.cli.resume_args import resumable
from stylebridge.core.batch import BatchReport, iter_images
from stylebridge.errors import ImageError, StylebridgeError
from stylebridge.pipelines.resume import JOURNAL_DIR, Journal


def _photo(path: Path, w: int, h: int) -> Path:
    Image.fromarray(np.full((h, w, 3), 128, dtype=np.uint8)).save(path)
    return path


def test_a_photo_that_does_not_fit_in_memory_is_skipped_and_named(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = [_photo(tmp_path / "a.png", 8, 8), _photo(tmp_path / "huge.png", 40, 30),
             _photo(tmp_path / "c.png", 8, 8)]
    real = images._rgb

    def rgb(img):  # decoding the large one runs out of memory
        if img.size == (40, 30):
            raise MemoryError
        return real(img)

    monkeypatch.setattr(images, "_rgb", rgb)
    report = BatchReport()
    read = [p.name for p, _ in iter_images(paths, report)]
    assert read == ["a.png", "c.png"]  # the batch goes on past it
    assert [(p.name, r) for p, r in report.skipped] == [
        ("huge.png", "out of memory reading this 40×30 image (a smaller copy of it would fit)")]
    with pytest.raises(ImageError, match=r"huge\.png: out of memory reading this 40×30 image"):
        images.load_image(paths[1])


def test_out_of_memory_while_aligning_is_that_photos_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def detect(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(align, "detect_landmarks", detect)
    monkeypatch.setattr(align, "detect_faces", detect)
    image = np.zeros((30, 50, 3), dtype=np.uint8)
    for call in (align.align_face, align.align_faces):
        with pytest.raises(ImageError, match=r"^p\.png: out of memory aligning this 50×30 "
                                             r"image"):
            call(image, 64, path="p.png")


def test_a_journal_is_removed_in_one_step(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    journal = out / JOURNAL_DIR
    journal.mkdir(parents=True)
    for i in range(5):
        (journal / f"row_{i:05d}.png").write_bytes(b"x")

    def killed(path, ignore_errors=False):  # the process dies while deleting
        raise KeyboardInterrupt

    monkeypatch.setattr(sio.shutil, "rmtree", killed)
    with pytest.raises(KeyboardInterrupt):
        sio.remove_folder(journal)
    assert not journal.exists()  # never half there under its own name
    left = [p.name for p in out.iterdir()]
    assert len(left) == 1 and left[0].startswith(f".{JOURNAL_DIR}.") and left[0].endswith(".tmp")
    monkeypatch.undo()
    # the next run in that folder deletes what the kill left, and only that
    (out / "keep.png").write_bytes(b"y")
    Journal.open(out, "adapt", settings={}, how={}, inputs=[], metrics={}, resume=False)
    assert sorted(p.name for p in out.iterdir()) == ["keep.png"]


def test_an_out_folder_removed_during_the_run_is_said_without_a_resume_hint(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    console = Console(record=True, width=200)
    gone = tmp_path / "gone"
    removed = r"gone \(--out\) was removed while the run wrote into it: nothing of the run is kept"
    with pytest.raises(StylebridgeError, match=removed), resumable(console, None, "generate", gone):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(gone / "x"))
    # nor on stderr, where the hint would go (a notice of a console on stdout)
    assert "--resume" not in console.export_text() and "--resume" not in capsys.readouterr().err
    # a folder that is still there: the error is the run's own (a full disk, say)
    there = tmp_path / "there"
    there.mkdir()
    with pytest.raises(FileNotFoundError), resumable(console, None, "generate", there):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(there / "x"))


def test_the_umask_is_read_without_being_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading the umask with os.umask sets it to 0 for a moment: another thread (the web
    app's) creating a file then made it world-writable. Linux says it in /proc instead."""
    import os

    if not Path("/proc/self/status").is_file():
        pytest.skip("no /proc/self/status on this system")
    actual = os.umask(0o027)
    try:
        sio._umask.cache_clear()

        def refuse(mask: int) -> int:
            raise AssertionError("os.umask called")

        monkeypatch.setattr(sio.os, "umask", refuse)
        assert sio._umask() == 0o027
    finally:
        monkeypatch.undo()
        os.umask(actual)
        sio._umask.cache_clear()
