"""BatchReport and input expansion: file names are shown verbatim, inputs are not repeated."""

from __future__ import annotations

import io
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


def test_control_characters_of_a_file_name_never_reach_the_terminal(capsys) -> None:
    """A file named `bad<ESC>[2Jname.png` cleared the screen when the skipped table (or the
    error line) printed it: they are written escaped."""
    from stylebridge.cli.streams import error_line

    bad = Path("photos") / "bad\x1b[2Jname\x07.png"
    report = BatchReport()
    report.ok(Path("photos/a.png"))
    report.skip(bad, "is a text file, not an image")
    report.note(bad, "is grey\x1b]0;title\x07")
    console = Console(file=io.StringIO(), width=200)
    print_batch_report(console, report)
    shown = console.file.getvalue() + capsys.readouterr().err
    assert "\x1b[2J" not in shown and "\x07" not in shown and "\x1b]0;" not in shown
    assert "photos/bad\\x1b[2Jname\\x07.png" in shown and "grey\\x1b]0;title\\x07" in shown
    only = BatchReport()
    only.skip(bad, "is a text file, not an image")
    print_batch_report(Console(file=io.StringIO(), width=200), only)
    error_line(f"{bad}: cannot read\x1b[31m")
    err = capsys.readouterr().err
    assert "\x1b" not in err and "bad\\x1b[2Jname\\x07.png" in err and "read\\x1b[31m" in err
