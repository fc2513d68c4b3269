"""BatchReport and input expansion: file names are shown verbatim, inputs are not repeated."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from stylebridge.cli.options import print_batch_report
from stylebridge.core.batch import BatchReport, expand_inputs


def test_skipped_file_names_are_not_rich_markup() -> None:
    report = BatchReport()
    report.skip(Path("photos/img[bad].jpg"), "cannot read image")
    report.skip(Path("q[/b].jpg"), "no face [found]")
    console = Console(record=True, width=200)
    print_batch_report(console, report)
    text = console.export_text()
    assert "photos/img[bad].jpg" in text and "q[/b].jpg" in text and "no face [found]" in text


def test_an_input_given_twice_is_processed_once(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("b.png", "a.jpg", "notes.txt"):
        (folder / name).write_bytes(b"x")
    a = folder / "a.jpg"
    got = expand_inputs([str(a), str(folder), str(a), f"{folder}/../photos/b.png"])
    assert got == [a, folder / "b.png"]
