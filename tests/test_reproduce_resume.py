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


def _tables(out: Path) -> Any:
    """The JSON, but for the tiny preset's FeatureShift files' sha256s: their headers hold
    the paths of the preset the run built under OUT (two folders, two contents)."""
    data = json.loads(_text(out, JSON_FILE))
    for row in data["rows"]:
        if "featureshift" in row["files"]:
            row["files"]["featureshift"].pop("sha256")
    return data


def test_reproduce_resumes_after_the_rows_it_finished(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    ref, out = tmp_path / "ref", tmp_path / "out"
    assert main(_argv(ref)) == 0
    capsys.readouterr()
    with monkeypatch.context() as m:
        _built(m, stop_at="fse_features")
        assert main(_argv(out)) == 130
    said = " ".join(capsys.readouterr().err.split())  # the resume hint: on stderr
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
    assert _tables(out) == _tables(ref)
    assert _text(out, MARKDOWN_FILE) == _text(ref, MARKDOWN_FILE)
    # the tables say the unit and the better direction of their numbers
    data = json.loads((out / JSON_FILE).read_text())
    assert data["quantities"]["quality"]["better"] == "higher"
    assert data["quantities"]["diversity"]["range"] == [0.0, 2.0]


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
        capsys.readouterr().err.split())  # a notice: on stderr
    assert built[:2] == ["orig", "e4e"] and not (out / JOURNAL_DIR).exists()


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


def test_rows_kept_from_an_older_journal_say_they_name_no_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    with monkeypatch.context() as m:
        _built(m, stop_at="e4e")
        assert main(_argv(out)) == 130
    journal = out / JOURNAL_DIR / ROWS_FILE
    state = json.loads(journal.read_text())
    for item in state["rows"]:  # as a journal written before rows named their files
        item["row"].pop("files")
    journal.write_text(json.dumps(state))
    assert main(_argv(out, "--resume")) == 0
    data = json.loads((out / JSON_FILE).read_text())
    assert "files" not in data["rows"][0] and "files" in data["rows"][1]
    assert ("row 'Orig': kept from a journal of an earlier stylebridge, which named no "
            "checkpoint files by sha256 (files)") in data["notes"]


def test_options_read_only_by_the_tables_may_change_on_resume() -> None:
    """--quality-target, --group-gap(-row) and --group-thresholds group and score the finished
    rows at the end: a resumed run may change them (they were refused, but for --group-gap)."""
    import dataclasses

    from stylebridge.pipelines.reproduce.journal import run_settings
    from stylebridge.pipelines.reproduce.tables import ThesisTablesConfig

    base = ThesisTablesConfig()
    other = dataclasses.replace(base, quality_target=["4.2=reference-image"],
                                group_gap="absolute", group_gap_row="fse_latents",
                                group_thresholds=(0.1, 0.0))
    assert run_settings(other) == run_settings(base)
    assert run_settings(dataclasses.replace(base, seed=1)) != run_settings(base)


def _without_timings(value: Any) -> Any:
    """The report without the recipes' training times (wall clock, never the same twice) and
    the trained files' sha256s (their headers hold the run's absolute paths: two output
    folders, two contents; the domains' weights are compared by the resume itself)."""
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items()
                if k not in ("train_seconds", "sha256")}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


@pytest.mark.slow  # three runs with --methods (~25 s)
def test_reproduce_methods_resume_keeps_rows_when_the_recipes_train_the_same_domains(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """--methods on the tiny preset: the recipes train again on --resume (seeded); the rows of
    the interrupted run are kept when the retrained domains are the same files, and refused,
    named, when they are not."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from stylebridge.pipelines.reproduce import methods as M
    from stylebridge.pipelines.reproduce.journal import TRAINED

    args = ("--methods", "stylespace", "--method-steps", "1", "--samples", "2")
    ref, out = tmp_path / "ref", tmp_path / "out"
    assert main(_argv(ref, *args)) == 0
    capsys.readouterr()
    with monkeypatch.context() as m:
        _built(m, stop_at="fse_features")
        assert main(_argv(out, *args)) == 130
    said = " ".join(capsys.readouterr().err.split())  # the resume hint: on stderr
    assert "continue with `stylebridge reproduce thesis-tables ... --resume`" in said
    state = json.loads((out / JOURNAL_DIR / ROWS_FILE).read_text())
    assert [r["row"]["key"] for r in state["rows"]] == ["orig", "e4e", "fse_latents"]
    assert [d["name"] for d in state["settings"][TRAINED]] == ["stylespace-tiny-pixar",
                                                                "stylespace-tiny-sketch"]

    real = M.RECIPES["stylespace"]

    def not_repeatable(inputs: M.RecipeInputs) -> list[M.TrainedDomain]:
        """Trains as the recipe does, then nudges one weight of the second domain (a
        training that came out otherwise, e.g. on another device)."""
        domains = real(inputs)
        path = domains[1].path
        with safe_open(str(path), framework="pt") as fh:
            meta, tensors = fh.metadata(), {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
        key = sorted(tensors)[0]
        tensors[key] = tensors[key] + 1e-3
        save_file(tensors, str(path), metadata=meta)
        return domains

    with monkeypatch.context() as m:
        m.setitem(M.RECIPES, "stylespace", not_repeatable)
        assert main(_argv(out, *args, "--resume")) == 2
    err = capsys.readouterr().err
    # stderr: the --preset tiny notice (rich folds its long path anywhere), then the error
    notice, _, error = err.rstrip("\n").rpartition("\n")
    assert "".join(notice.split()) == "".join((
        f"RANDOM WEIGHTS: --preset tiny built random-weight tiny models in {out / 'tiny-preset'}; "
        "the numbers test the code paths only").split())
    assert err.endswith("\n") and error.startswith("error: ") and "--resume: the --methods " \
        "recipes trained other domains than the interrupted run" in error and \
        "(stylespace-tiny-sketch differs;" in error
    assert (out / JOURNAL_DIR / ROWS_FILE).is_file()   # refused: the journal stays

    with monkeypatch.context() as m:
        built = _built(m)
        assert main(_argv(out, *args, "--resume")) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert "row FSE latents: kept from the interrupted run" in said
    assert built == ["fse_features", "fse_shift", "featureshift_e4e", "featureshift_fse"]
    assert not (out / JOURNAL_DIR).exists()
    # the uninterrupted run's tables (the training times aside)
    got, want = (_without_timings(json.loads(_text(d, JSON_FILE))) for d in (out, ref))
    assert got == want and got["methods"]["methods"][0]["status"] == "done"


def test_resume_refuses_another_commands_journal_naming_it(tmp_path: Path) -> None:
    """reproduce thesis-tables and analyze latents keep their rows in the same file: a
    --resume of the other command's run is refused naming that command, not an option the
    command lacks; so is a journal that records no command (an earlier version's)."""
    from stylebridge.pipelines.reproduce.journal import check_resume, open_rows

    journal = open_rows(tmp_path, "analyze latents", {"--encoder": ["e4e"]}, resume=False,
                        how={}, unit="encoder")
    journal.record({"key": "e4e"}, [])
    with pytest.raises(StylebridgeError) as info:
        check_resume(tmp_path, "reproduce thesis-tables", {"--e4e": []}, resume=True)
    assert str(info.value) == (f"--resume: {tmp_path} holds an interrupted analyze latents run, "
                               "not this command's (reproduce thesis-tables); run without "
                               "--resume to start over, or give another --out")
    check_resume(tmp_path, "reproduce thesis-tables", {}, resume=False)  # a fresh run: fine
    kept = open_rows(tmp_path, "analyze latents", {"--encoder": ["e4e"]}, resume=True, how={},
                     unit="encoder")
    assert list(kept.kept) == ["e4e"]

    old = RowJournal.open(tmp_path / "old", {"--seed": 0}, resume=False)
    old.record({"key": "orig"}, [])
    with pytest.raises(StylebridgeError, match="holds an interrupted run of an earlier "
                                               "stylebridge or of another command"):
        open_rows(tmp_path / "old", "reproduce thesis-tables", {"--seed": 0}, resume=True,
                  how={}, unit="row")
