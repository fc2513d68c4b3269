"""Training on the CPU depends on torch's thread count; the runs now record it and say so.

Between 1 and 2 threads FeatureShift weights differed up to 1.6e-5 and domain offsets up to
2.8e-6, but nothing recorded the count: a resume with another one continued silently, and
``reproduce thesis-tables --methods --resume`` refused retrained domains without naming the
cause.  Now both trainers' states record ``cpu_threads`` and a resume with another count says,
once, that it continues within rounding; the reproduce journal keeps the count with its
trained domains and its refusal names it.  Every test sets the thread counts it needs with
``torch.set_num_threads`` and puts the count back.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from test_featureshift import Env, env, make_registry, tiny_cfg  # noqa: F401  (fixtures)

from stylebridge.core.checkpoint import read_header
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines import train_domain as td
from stylebridge.pipelines.featureshift import trainer as fs
from stylebridge.pipelines.presets import TinyPreset, build_tiny_preset
from stylebridge.pipelines.reproduce import journal as J
from stylebridge.pipelines.resume import JOURNAL_DIR, ROWS_FILE
from stylebridge.pipelines.training.progress import ProgressEvent

CLIP = "tiny-vit-p8"
SAID = ("resuming with 1 CPU thread (the run had 2): it continues within floating-point "
        "rounding of an uninterrupted run, not bit for bit")


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _quiet_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "home"))  # no installed weights
    with threads(1):
        yield


@pytest.fixture(scope="module")
def preset(tmp_path_factory: pytest.TempPathFactory) -> TinyPreset:
    with threads(1):
        return build_tiny_preset(tmp_path_factory.mktemp("tiny"), seed=0)


def _thread_notices(events: list[ProgressEvent]) -> list[str]:
    return [e.text + e.detail for e in events if e.kind == "notice" and "CPU thread" in e.text]


# -- the thread notice -----------------------------------------------------------------------


def test_the_notice_is_for_a_cpu_run_resumed_with_another_count_only() -> None:
    from stylebridge.pipelines.training.state import cpu_threads, thread_notice

    with threads(1):
        assert cpu_threads("cpu") == 1 and cpu_threads(torch.device("cuda")) is None
        assert "".join(thread_notice(2, "cpu") or ()) == SAID
        assert thread_notice(1, "cpu") is None          # the same count
        assert thread_notice(None, "cpu") is None       # a state of an earlier stylebridge
        assert thread_notice(2, torch.device("cuda")) is None   # not a CPU run
    with threads(2):
        assert "".join(thread_notice(1, "cpu") or ()) == (
            "resuming with 2 CPU threads (the run had 1): it continues within floating-point "
            "rounding of an uninterrupted run, not bit for bit")


# -- train domain ----------------------------------------------------------------------------


def _domain(preset: TinyPreset, out: Path, steps: int, *, resume: bool,
            events: list[ProgressEvent] | None = None) -> Any:
    cfg = td.DomainTrainConfig(
        generator=str(preset.generator), out=out, text="a pixar render", templates="none",
        steps=steps, batch=2, clip=[CLIP], clip_weights=[f"{CLIP}={preset.clip_weights[CLIP]}"],
        sample_every=0, checkpoint_every=1, device="cpu", resume=resume, force=not resume)
    return td.train_domain(cfg, progress=None if events is None else events.append)


def test_a_domain_run_records_its_threads_and_a_resume_with_others_says_so_once(
        preset: TinyPreset, tmp_path: Path) -> None:
    out = tmp_path / "d.safetensors"
    state = td.state_path_for(out)
    with threads(2):
        _domain(preset, out, 2, resume=False)
    assert read_header(state).extra["cpu_threads"] == 2
    events: list[ProgressEvent] = []
    with threads(1):
        outcome = _domain(preset, out, 3, resume=True, events=events)
    assert outcome.step == 3
    assert _thread_notices(events) == [SAID]
    infos = [e.text for e in events if e.kind in ("info", "notice")]
    assert infos.index(SAID.split(":")[0]) == infos.index(
        f"resuming from step 2 ({state})") + 1          # said with the resume, not refused
    assert read_header(state).extra["cpu_threads"] == 1  # the count of the last part
    events.clear()
    with threads(1):                                      # the same count again: nothing said
        _domain(preset, out, 4, resume=True, events=events)
    assert _thread_notices(events) == [] and read_header(out).extra["step"] == 4


# -- train featureshift ----------------------------------------------------------------------


def test_a_featureshift_run_records_its_threads_and_a_resume_with_others_says_so_once(
        env: Env, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "run"
    with threads(2):
        fs.train_featureshift(tiny_cfg(env, out, steps=2, pretrain_inversion_steps=1),
                              registry=make_registry())
    state = out / "state.safetensors"
    assert read_header(state).extra["cpu_threads"] == 2
    train_config = read_header(state).extra["train_config"]
    assert "cpu_threads" not in train_config    # not a setting: a resume is not refused
    events: list[ProgressEvent] = []
    with threads(1):
        result = fs.train_featureshift(tiny_cfg(env, out, steps=3, pretrain_inversion_steps=1,
                                                resume=True),
                                       registry=make_registry(), progress=events.append)
    assert result.step == 3 and _thread_notices(events) == [SAID]
    assert read_header(state).extra["cpu_threads"] == 1
    events.clear()
    with threads(1):   # at --steps already: nothing to train, nothing said
        fs.train_featureshift(tiny_cfg(env, out, steps=3, pretrain_inversion_steps=1,
                                       resume=True),
                              registry=make_registry(), progress=events.append)
    assert _thread_notices(events) == []


# -- reproduce thesis-tables --methods --resume ----------------------------------------------


def _trained(sha: str) -> list[dict[str, Any]]:
    return [{"name": "stylespace-tiny-pixar", "path": "/x/a.safetensors", "sha256": "a" * 64},
            {"name": "stylespace-tiny-sketch", "path": "/x/b.safetensors", "sha256": sha}]


def _interrupted(out: Path, count: int) -> dict[str, Any]:
    """A journal of a run on ``count`` CPU threads that finished one row."""
    settings = {"--seed": 0, J.TRAINED: _trained("b" * 64)}
    with threads(count):
        how = {"--batch": 4, "--device": "cpu", **J.thread_how("cpu")}
    journal = J.open_rows(out, "reproduce thesis-tables", settings, resume=False, how=how,
                          unit="row")
    journal.record({"key": "orig", "values": [1.0]}, [])
    return settings


def test_the_journal_keeps_the_thread_count_and_the_refusal_names_it(tmp_path: Path) -> None:
    out = tmp_path / "tables"
    settings = _interrupted(out, 2)
    state = json.loads((out / JOURNAL_DIR / ROWS_FILE).read_text())
    assert state["how"][J.CPU_THREADS] == 2
    assert J.thread_how(torch.device("cuda")) == {}

    other = {**settings, J.TRAINED: _trained("c" * 64)}   # the recipes trained otherwise
    with pytest.raises(StylebridgeError) as info:
        J.open_rows(out, "reproduce thesis-tables", other, resume=True, unit="row",
                    how={"--batch": 4, "--device": "cpu", J.CPU_THREADS: 1})
    said = str(info.value)
    assert said == (f"--resume: the --methods recipes trained other domains than the "
                    f"interrupted run in {out} (stylespace-tiny-sketch differs; they were "
                    "trained with 2 CPU threads, this run has 1): set OMP_NUM_THREADS=2 to "
                    "resume, or run without --resume")
    # the same count: the thread count is not the cause, and the message says what is needed
    with pytest.raises(StylebridgeError, match=r"stylespace-tiny-sketch differs; training "
                       r"repeats bit for bit only on the same machine, --device, torch build "
                       r"and CPU thread count\); run without --resume"):
        J.open_rows(out, "reproduce thesis-tables", other, resume=True, unit="row",
                    how={"--batch": 4, "--device": "cpu", J.CPU_THREADS: 2})

    # the same domains with another count: resumed, said to agree within rounding
    journal = J.open_rows(out, "reproduce thesis-tables", settings, resume=True, unit="row",
                          how={"--batch": 4, "--device": "cpu", J.CPU_THREADS: 1})
    assert list(journal.kept) == ["orig"]
    assert journal.notices == ["--resume: CPU threads 1 (was 2): the remaining rows agree with "
                               "an uninterrupted run's within floating-point rounding, not bit "
                               "for bit"]


@pytest.mark.slow  # two runs of reproduce --methods on the tiny preset (~15 s)
def test_reproduce_methods_resume_with_other_threads_names_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    from stylebridge.cli.main import main
    from stylebridge.pipelines.reproduce import methods as M
    from stylebridge.pipelines.reproduce import tables as T

    out = tmp_path / "out"
    argv = ["reproduce", "thesis-tables", "--preset", "tiny", "--device", "cpu", "--out",
            str(out), "--methods", "stylespace", "--method-steps", "1", "--samples", "2"]
    real_build = T.RowBuilder.build

    def build(self: Any, key: str) -> Any:
        if key == "fse_latents":
            raise KeyboardInterrupt
        return real_build(self, key)

    with monkeypatch.context() as m, threads(2):
        m.setattr(T.RowBuilder, "build", build)
        assert main(argv) == 130
    capsys.readouterr()
    state = json.loads((out / JOURNAL_DIR / ROWS_FILE).read_text())
    assert state["how"][J.CPU_THREADS] == 2

    real = M.RECIPES["stylespace"]

    def otherwise(inputs: M.RecipeInputs) -> list[M.TrainedDomain]:
        """As trained with another thread count: one weight of a domain a little apart."""
        domains = real(inputs)
        with safe_open(str(domains[1].path), framework="pt") as fh:
            meta, tensors = fh.metadata(), {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
        key = sorted(tensors)[0]
        tensors[key] = tensors[key] + 1e-6
        save_file(tensors, str(domains[1].path), metadata=meta)
        return domains

    with monkeypatch.context() as m, threads(1):
        m.setitem(M.RECIPES, "stylespace", otherwise)
        assert main([*argv, "--resume"]) == 2
    err = capsys.readouterr().err
    # (on a 2-core machine the first domain comes out otherwise already: 1 and 2 threads
    # round differently; the nudge makes the test independent of that)
    # stderr: the --preset tiny notice (rich folds its long path anywhere), then the error
    notice, _, error = err.rstrip("\n").rpartition("\n")
    assert "".join(notice.split()) == "".join((
        f"RANDOM WEIGHTS: --preset tiny built random-weight tiny models in {out / 'tiny-preset'}; "
        "the numbers test the code paths only").split()), err
    assert err.endswith("\n") and error.startswith("error: ") and re.search(
        r"\(stylespace-tiny-(pixar|sketch) differs; they were trained with 2 CPU threads, this "
        r"run has 1\): set OMP_NUM_THREADS=2 to resume, or run without --resume$", error), err
    assert (out / JOURNAL_DIR / ROWS_FILE).is_file()   # refused: the journal stays
