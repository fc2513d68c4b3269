"""A large batch run's terminal: 300 broken files printed 300 table rows (the means table and
the counts scrolled away); grid.png's 64-row limit was said nowhere; a refused --resume of a
changed 20,000-seed list took a minute (its difference was found in quadratic time)."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from stylebridge.cli.common import SKIPPED_SHOWN, print_skipped
from stylebridge.cli.options import grid_words, print_batch_report
from stylebridge.core.batch import BatchReport
from stylebridge.pipelines.resume import INPUTS_FILE, Journal


def _report(n_empty: int, n_text: int, done: int = 1) -> BatchReport:
    report = BatchReport()
    for i in range(done):
        report.done.append(Path(f"ok{i}.png"))
    for i in range(n_empty):
        report.skip(Path(f"empty{i:03d}.png"), "empty file (0 bytes)")
    for i in range(n_text):
        report.skip(Path(f"text{i:03d}.png"), "is a text file, not an image")
    return report


def _printed(report: BatchReport, **kw: object) -> str:
    console = Console(record=True, width=100, color_system=None)
    print_batch_report(console, report, **kw)
    return console.export_text()


def test_many_skipped_files_print_the_first_ones_and_a_summary() -> None:
    text = _printed(_report(150, 150), listed_in="out/invert.json")
    lines = text.splitlines()
    assert len(lines) < SKIPPED_SHOWN + 15  # 300 rows before
    assert "1 done, 300 skipped" in lines[0]
    assert "empty019.png" in text and "empty020.png" not in text  # the first 20, in order
    assert ("and 280 more skipped photos (all in out/invert.json); commonest reasons: 150 × "
            "empty file (0 bytes); 150 × is a text file, not an image") in " ".join(lines)


def test_a_few_skipped_files_are_all_shown_without_a_summary() -> None:
    text = _printed(_report(SKIPPED_SHOWN, 0), listed_in="out/adapt.json")
    assert f"empty{SKIPPED_SHOWN - 1:03d}.png" in text
    assert "more skipped" not in text


def test_nothing_done_names_no_report_file() -> None:
    console = Console(record=True, width=100, color_system=None)
    report = _report(25, 0, done=0)
    where = print_skipped(console, report, unit="photos", listed_in=None)
    text = console.export_text()
    assert where == "in the table above"
    assert "and 5 more skipped photos; commonest reasons: 25 × empty file (0 bytes)" in \
        " ".join(text.split())


def test_grid_words_say_when_the_grid_holds_the_first_64_only() -> None:
    assert grid_words(64) == "grid.png"
    assert grid_words(65) == "grid.png (the first 64 photos)"


def test_a_changed_long_input_list_is_found_in_linear_time(tmp_path: Path) -> None:
    """Counts string comparisons instead of timing: a list membership test per input (the
    quadratic version took a minute for 20,000 seeds) compares ~n²/2 pairs, set look-ups one
    per input found."""
    n = 20_000
    budget = 4 * n   # linear: about 2n (one equal-hash match per input, each way)
    comparisons = [0]

    class CountedStr(str):
        __hash__ = str.__hash__

        def __eq__(self, other: object) -> bool:
            comparisons[0] += 1
            assert comparisons[0] <= budget, "quadratic comparison of the input lists"
            return str.__eq__(self, other)

    journal = Journal.fresh(tmp_path, "generate", [str(s) for s in range(n + 1)])
    folder = tmp_path / ".stylebridge-run"
    folder.mkdir()
    (folder / INPUTS_FILE).write_text(json.dumps([str(s) for s in range(n)]))
    # the current inputs compare through CountedStr.__eq__, whichever side of == they are on
    journal.inputs = [CountedStr(s) for s in journal.inputs]
    assert journal._first_change() == f"; new: {n}"
    assert n <= comparisons[0] <= budget   # every input was compared, no list was scanned
    journal.finish()


def test_links_in_a_folder_are_inputs_of_their_own_names(tmp_path: Path) -> None:
    from stylebridge.core.batch import expand_inputs

    folder = tmp_path / "subset"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        (folder / name).write_bytes(b"\x89PNG")
    (folder / "alias_a.png").symlink_to(folder / "a.png")
    (folder / "alias_a2.png").symlink_to(folder / "a.png")
    names = [p.name for p in expand_inputs([folder])]
    assert names == ["a.png", "alias_a.png", "alias_a2.png", "b.png"]  # was: alias_a, b
    # a file given by name and through its folder is still read once
    assert [p.name for p in expand_inputs([folder / "b.png", folder])] == [
        "b.png", "a.png", "alias_a.png", "alias_a2.png"]


def test_a_folder_of_subfolders_says_they_are_not_searched(tmp_path: Path) -> None:
    import pytest

    from stylebridge.core.batch import require_inputs
    from stylebridge.errors import StylebridgeError

    for sub in ("s1", "s2"):
        (tmp_path / "top" / sub).mkdir(parents=True)
        (tmp_path / "top" / sub / "x.png").write_bytes(b"\x89PNG")
    with pytest.raises(StylebridgeError) as caught:
        require_inputs([tmp_path / "top"])
    assert str(caught.value) == (
        f"no input images in {tmp_path / 'top'} (folders are searched for image files; their "
        f"2 subfolder(s) are not searched: give them too, e.g. {tmp_path / 'top' / 's1'})")


def test_grid_marks_are_found_from_the_chunk_headers_as_pillow_reads_them(
        tmp_path: Path) -> None:
    import numpy as np
    import torch
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from stylebridge.core.images import GRID_KEY, is_grid_file, save_png

    save_png(tmp_path / "grid.png", torch.rand(3, 8, 8), grid=True, notice="RANDOM WEIGHTS")
    save_png(tmp_path / "photo.png", torch.rand(3, 8, 8), notice="RANDOM WEIGHTS")
    other = PngInfo()
    other.add_text("Software", "x" * 300)
    other.add_itxt(GRID_KEY, "an iTXt mark", zip=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "itxt.png", pnginfo=other)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "plain.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "grid.png").read_bytes()[:40])
    (tmp_path / "text.png").write_text("not a png")
    (tmp_path / "grid.jpg").write_bytes((tmp_path / "grid.png").read_bytes())
    found = {p.name: is_grid_file(p) for p in sorted(tmp_path.iterdir())}
    assert found == {"cut.png": False, "grid.jpg": False, "grid.png": True, "itxt.png": True,
                     "photo.png": False, "plain.png": False, "text.png": False}
    for name in ("grid.png", "itxt.png", "photo.png", "plain.png"):  # Pillow's own reading
        with Image.open(tmp_path / name) as image:
            assert (GRID_KEY in image.info) == found[name]
