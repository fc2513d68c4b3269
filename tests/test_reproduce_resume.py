"""``reproduce thesis-tables --resume``: an interrupted run keeps its finished rows, and the
tables come out as an uninterrupted run writes them; another run is refused, named."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from stylebridge.cli.main import main
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.reproduce import tables as T
from stylebridge.pipelines.reproduce.common import JSON_FILE, MARKDOWN_FILE
from stylebridge.pipelines.reproduce.journal import ROWS_FILE, RowJournal, content_identity
from stylebridge.pipelines.resume import JOURNAL_DIR


def _argv(out: Path, *extra: str) -> list[str]:
    return ["reproduce", "thesis-tables", "--preset", "tiny", "--device", "cpu",
            "--out", str(out), *extra]


def _built(monkeypatch: pytest.MonkeyPatch, stop_at: str | None = None) -> list[str]:
    """Record the rows that are built; Ctrl-C when row ``stop_at`` is about to be."""
    real, seen = T.RowBuilder.build, []

    def build(self: Any, key: str) -> Any:
        if key == stop_at:
            raise KeyboardInterrupt
        seen.append(key)
        return real(self, key)

    monkeypatch.setattr(T.RowBuilder, "build", build)
    return seen


def _text(out: Path, name: str) -> str:
    return (out / name).read_text().replace(str(out), "OUT")


def test_reproduce_resumes_after_the_rows_it_finished(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    ref, out = tmp_path / "ref", tmp_path / "out"
    assert main(_argv(ref)) == 0
    capsys.readouterr()
    with monkeypatch.context() as m:
        _built(m, stop_at="fse_features")
        assert main(_argv(out)) == 130
    said = " ".join(capsys.readouterr().out.split())
    assert "continue with `stylebridge reproduce thesis-tables ... --resume`" in said
    state = json.loads((out / JOURNAL_DIR / ROWS_FILE).read_text())
    assert [r["row"]["key"] for r in state["rows"]] == ["orig", "e4e", "fse_latents"]

    # another seed is another run: refused, named, and the journal stays
    assert main(_argv(out, "--resume", "--seed", "1")) == 2
    assert "--resume: --seed differs (0 then, 1 now)" in capsys.readouterr().err
    with monkeypatch.context() as m:
        built = _built(m)
        assert main(_argv(out, "--resume")) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert "row E4E latents: kept from the interrupted run" in said
    assert built == ["fse_features", "fse_shift", "featureshift_e4e", "featureshift_fse"]
    assert not (out / JOURNAL_DIR).exists()
    # the tables are the uninterrupted run's (the preset, rebuilt from its seed, is the same)
    assert _text(out, JSON_FILE) == _text(ref, JSON_FILE)
    assert _text(out, MARKDOWN_FILE) == _text(ref, MARKDOWN_FILE)


def test_reproduce_without_resume_starts_over_and_says_so(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    out = tmp_path / "out"
    with monkeypatch.context() as m:
        _built(m, stop_at="e4e")
        assert main(_argv(out)) == 130
    capsys.readouterr()
    with monkeypatch.context() as m:
        built = _built(m)
        assert main(_argv(out)) == 0
    assert "holds an interrupted run; starting over (--resume continues it)" in " ".join(
        capsys.readouterr().out.split())
    assert built[:2] == ["orig", "e4e"] and not (out / JOURNAL_DIR).exists()
    assert main(_argv(out, "--resume", "--methods", "stylespace")) == 2
    assert "--methods recipes train their domains again" in capsys.readouterr().err


def test_the_row_journal_names_a_changed_batch_and_refuses_a_changed_file(tmp_path: Path) -> None:
    photo = tmp_path / "a.png"
    photo.write_bytes(b"one")
    settings = {"--seed": 0, "--images": [content_identity(photo)]}
    journal = RowJournal.open(tmp_path, settings, resume=False, how={"--batch": 4})
    journal.record({"key": "orig", "mean": float("nan")}, ["a note"])
    again = RowJournal.open(tmp_path, settings, resume=True, how={"--batch": 2})
    row, notes = again.kept["orig"]
    assert row["key"] == "orig" and math.isnan(row["mean"]) and notes == ["a note"]
    assert again.notices == ["--resume: --batch 2 (was 4): the remaining rows agree with an "
                             "uninterrupted run's within floating-point rounding, not bit for "
                             "bit"]
    photo.write_bytes(b"two")
    with pytest.raises(StylebridgeError, match=f"--resume: --images: a file of {photo} has "
                                               "changed since the interrupted run"):
        RowJournal.open(tmp_path, {"--seed": 0, "--images": [content_identity(photo)]},
                        resume=True, how={"--batch": 4})
