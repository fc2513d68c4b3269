"""What the command line prints, read at 80 and 60 columns and piped (a QA pass): URLs,
paths, hashes and names come out whole, piped output is not padded, a table title keeps
``[RANDOM WEIGHTS]`` on one line, ``align`` says where it wrote, each notice is said once,
progress bars stay off stdout, a photo without a face is said to be one, and the same things
are named alike in every command."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from stylebridge.cli.main import main

HASH = "c4b1ce514c9eb0f7d1ffaf10cf368f32e317eb1d5b4dca90130e8e47e468df74"


@pytest.fixture
def columns(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """Set the terminal width rich reads (``COLUMNS``), no colours, an empty weights cache."""
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "home"))

    def set_width(n: int) -> None:
        monkeypatch.setenv("COLUMNS", str(n))

    return set_width


def _words(text: str) -> set[str]:
    return set(text.split())


def test_weights_list_long_piped_keeps_urls_whole_and_pads_nothing(
        columns: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from stylebridge.registry.weights import WeightsManager

    columns(80)
    assert main(["weights", "list", "--long"]) == 0
    out = capsys.readouterr().out
    assert not [line for line in out.splitlines() if line != line.rstrip()]
    urls = {src["url"] for entry in WeightsManager().entries.values()
            for src in entry.all_sources if src.get("url")}
    assert urls
    words = _words(out)
    assert all(url in words for url in urls), sorted(urls - words)[:3]


def test_weights_list_at_60_columns_splits_no_name(columns: Any,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from stylebridge.registry.weights import WeightsManager

    columns(60)
    assert main(["weights", "list"]) == 0
    words = _words(capsys.readouterr().out)
    for entry in WeightsManager().entries.values():
        assert {entry.name, entry.kind, entry.plugin} <= words, entry.name


def test_a_table_cell_hash_and_name_are_never_cut(columns: Any,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """``info``'s sha256 was ``…e47e…``; ``doctor``'s env names ``(STYLEBRIDGE_EPI…``."""
    from rich.table import Table

    from stylebridge.cli.options import cli_console

    columns(60)
    table = Table(show_header=False, title="some.safetensors")
    table.add_column("field")
    table.add_column("value")
    table.add_column("", overflow="fold")
    table.add_row("fused epilogue (STYLEBRIDGE_EPILOGUE)", f'"generator_sha256": "{HASH}"',
                  "note - the native PyTorch ops are used")
    cli_console().print(table)
    words = _words(capsys.readouterr().out.replace("│", " "))
    assert f'"{HASH}"' in words and "(STYLEBRIDGE_EPILOGUE)" in words


def test_a_long_word_in_a_line_of_text_is_not_folded(columns: Any,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from stylebridge.cli.options import cli_console

    columns(60)
    path = "/a/very/long/folder/" * 5 + "model.safetensors"
    cli_console().print(f"[green]wrote[/green] {path} and more words to wrap at sixty columns")
    out = capsys.readouterr().out
    assert path in out.split() and "wrote" in out
    assert all(len(line) <= 60 for line in out.splitlines() if path not in line)


@pytest.mark.parametrize("width", [60, 80])
def test_a_table_title_keeps_its_random_weights_tag_on_one_line(
        columns: Any, width: int, capsys: pytest.CaptureFixture[str]) -> None:
    """calibrate's title, 56 columns wide as its table: rich broke it as ``[RANDOM`` /
    ``WEIGHTS]``."""
    from stylebridge.cli.common import print_numeric_table
    from stylebridge.cli.options import cli_console

    columns(width)
    print_numeric_table(cli_console(), "alpha per style layer (3 photos, 50 samples) "
                        "[RANDOM WEIGHTS]", ["layer", "name", "α →1", "offset scale ×", "R² ↑"],
                        [["0", "conv1.conv", "0.8812", "1.135", "0.069"],
                         ["4", "to_rgbs.0.conv", "0.5332", "1.876", "-0.088"]], labels=2)
    out = capsys.readouterr().out
    assert "[RANDOM WEIGHTS]" in out, out
    assert "alpha per style layer (3 photos, 50 samples)" in out, out


def test_align_says_where_it_wrote(columns: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image
    from skimage import data as skdata

    columns(80)
    Image.fromarray(skdata.astronaut()).save(tmp_path / "face.png")
    monkeypatch.chdir(tmp_path)
    for folder in ("aligned", "aligned-2"):
        assert main(["align", "--size", "32", "face.png"]) == 0
        out = capsys.readouterr().out
        assert f"wrote 1 aligned face → {folder}" in out, out


def test_reproduce_says_the_random_weights_sentence_once(
        columns: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from stylebridge.cli.commands import reproduce
    from stylebridge.pipelines.reproduce.common import RANDOM_SENTENCE
    from stylebridge.pipelines.reproduce.tables import TablesProgress

    columns(200)

    def fake_run(config: Any, progress: Any, ensure_weights: Any) -> Any:
        progress(TablesProgress("random"))
        return SimpleNamespace(data={"notes": []}, random_weights=True, exit_code=0,
                               report=None, domains=None)

    monkeypatch.setattr(reproduce, "run_thesis_tables", fake_run)
    monkeypatch.setattr(reproduce, "print_tables", lambda console, data: None)
    monkeypatch.setattr(reproduce, "print_inputs", lambda console, photos, domains: None)
    args = SimpleNamespace(out=tmp_path / "tables")
    monkeypatch.setattr(reproduce, "thesis_tables_config", lambda args: None)
    reproduce.thesis_tables_command(args, _stdout_console())
    err = capsys.readouterr().err
    assert err.count(RANDOM_SENTENCE) == 1, err


def _stdout_console() -> Any:
    from stylebridge.cli.options import cli_console

    return cli_console()


def test_demo_says_its_notice_once(columns: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    from stylebridge.cli.commands import demo
    from stylebridge.pipelines.demo import RANDOM_WEIGHTS_NOTICE, DemoProgress

    columns(200)

    def fake_run(config: Any, progress: Any) -> Any:
        progress(DemoProgress("random-preset"))
        rows = [("e4e", {"mse": 0.1, "psnr": 9.0, "id[dlib]": 0.8})]
        return SimpleNamespace(photo_rows=rows, domain_rows=[], models_random=True,
                               notes=["id: id uses dlib's face descriptor",
                                      "id: no face was detected in 1 image(s)"],
                               grid_path=tmp_path / "demo_grid.png", seconds=1.0,
                               notice=RANDOM_WEIGHTS_NOTICE, data={})

    monkeypatch.setattr(demo, "run_demo", fake_run)
    assert main(["demo", "--out", str(tmp_path / "d")]) == 0
    captured = capsys.readouterr()
    assert captured.err.count(RANDOM_WEIGHTS_NOTICE) == 1, captured.err
    # named as adapt and eval name them; notes as every command says them
    assert "mse (on [0,1]) ↓" in captured.out and "psnr (dB) ↑" in captured.out
    assert "[RANDOM WEIGHTS]" in captured.out
    assert "note: id uses dlib's face descriptor" in captured.err
    assert "note: id: no face was detected in 1 image(s)" in captured.err


def test_note_text_names_the_metric_once() -> None:
    from stylebridge.cli.options import note_text

    assert note_text("id uses dlib's descriptor", "id") == "note: id uses dlib's descriptor"
    assert note_text("no face was detected", "id") == "note: id: no face was detected"
    assert note_text("id: id uses dlib's") == "note: id uses dlib's"
    assert note_text("id (domains): no face") == "note: id (domains): no face"


def test_the_training_progress_bar_stays_off_stdout(columns: Any,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """``train featureshift > fs.out`` put its bar's last line in the results."""
    from stylebridge.cli.commands.train import RichProgress
    from stylebridge.pipelines.training.progress import ProgressEvent

    columns(80)
    with RichProgress(_stdout_console(), "featureshift") as progress:
        progress(ProgressEvent("start", step=0, total=6, text="train"))
        for step in range(1, 7):
            progress(ProgressEvent("step", step=step, total=6, text="loss 1.0"))
        progress(ProgressEvent("end"))
    assert capsys.readouterr().out == ""


def test_bars_and_status_lines_draw_on_stderr() -> None:
    import sys

    from stylebridge.cli.options import bar_options, status_line

    console = _stdout_console()
    assert bar_options(console)["console"].file is sys.stderr
    assert status_line(console, "loading").console.file is sys.stderr


def test_no_face_in_any_photo_is_said_so_with_the_no_align_hint() -> None:
    from stylebridge.core.batch import BatchReport
    from stylebridge.pipelines.analyze.stats import STYLE_MEANS_PURPOSE, no_readable_photo

    report = BatchReport()
    report.skip(Path("a.png"), "no face found")
    report.skip(Path("b.png"), "no face found")
    text = str(no_readable_photo(report, STYLE_MEANS_PURPOSE))
    assert "no readable photo" not in text
    assert text.startswith("no face found in any photo") and "--no-align" in text
    report = BatchReport()
    report.skip(Path("a.png"), "is empty (0 bytes)")
    assert str(no_readable_photo(report, STYLE_MEANS_PURPOSE)).startswith("no readable photo")


def test_the_groups_title_names_the_row_as_its_table_does() -> None:
    from stylebridge.pipelines.reproduce.report import table_layouts

    result = {"clip_models": [], "rows": [], "random_weights": False, "domains": [],
              "groups": {"domains": {}, "gap_row": "fse_features", "clip": "c", "rule": "r"}}
    title = table_layouts(result)[-1][0]
    assert "FSE features" in title and "fse_features" not in title


def test_trailing_spaces_are_stripped_line_by_line() -> None:
    from stylebridge.cli.text import strip_trailing_spaces

    assert strip_trailing_spaces("a  \nb \x1b[0m\nask? ") == "a\nb\x1b[0m\nask? "
    assert not re.search(r" \n", strip_trailing_spaces("x   \n" * 3))
