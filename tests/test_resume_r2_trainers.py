# ruff: noqa: F811  (the `env` fixture of test_featureshift is imported and used as a parameter)
"""Killed trainers resume to an uninterrupted run's files, byte for byte: the sample grid of
the step whose state was the last thing written, the checkpoint a kill between the state and
the checkpoint left behind (also at the last step, where `--resume` has no step left to
train), MindTheGap's reference picture, `train featureshift`'s model and state (whose header
recorded `resume`); and a trainer removes the temporary files a kill left of its own outputs,
and no other file's.

A kill is a :class:`Killed` raised right after the training state of a given step is written
(nothing after it runs, as after SIGKILL); the temporary files SIGKILL would also leave are
put in place by hand.  Tiny preset, tiny CLIPs on random weights."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_featureshift import Env, _one_thread, env, tiny_cfg  # noqa: F401  (fixtures)
from test_featureshift_thesis import registry

from stylebridge.core.checkpoint import read_header
from stylebridge.pipelines import train_domain as td
from stylebridge.pipelines import train_hyperdomain as th
from stylebridge.pipelines import train_mindthegap as mtg
from stylebridge.pipelines.featureshift import state as fs_state
from stylebridge.pipelines.featureshift import trainer as fs
from stylebridge.pipelines.presets import TinyPreset, build_tiny_preset
from stylebridge.pipelines.training import domain as dom

STEPS, EVERY = 4, 2


class Killed(BaseException):
    """SIGKILL stand-in: raised right after a state write, nothing after it runs."""


pytestmark = pytest.mark.usefixtures("no_weights_one_thread")


@pytest.fixture(scope="module")
def preset(tmp_path_factory: pytest.TempPathFactory) -> TinyPreset:
    return build_tiny_preset(tmp_path_factory.mktemp("tiny"), seed=0)



def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _log_steps(data: bytes) -> list[dict[str, Any]]:
    """A loss log's step records, without their times."""
    records = [json.loads(line) for line in data.decode().splitlines()]
    return [{k: v for k, v in r.items() if k != "time"} for r in records if "event" not in r]


def _kill_after_state(monkeypatch: pytest.MonkeyPatch, module: Any, name: str, step: int,
                      is_state: Callable[[Any, dict[str, Any]], bool]) -> None:
    """Make ``module.name`` (a checkpoint writer) raise :class:`Killed` once the write of the
    training state of ``step`` is done."""
    real = getattr(module, name)

    def write(path: Any, *args: Any, **kw: Any) -> Any:
        out = real(path, *args, **kw)
        if is_state(path, kw) and (kw.get("extra") or {}).get("step") == step:
            raise Killed
        return out

    monkeypatch.setattr(module, name, write)


# -- the domain trainers -----------------------------------------------------------------------


def _domain(preset: TinyPreset, out: Path, resume: bool) -> Any:
    return td.train_domain(td.DomainTrainConfig(
        generator=str(preset.generator), out=out, text="a pixar render", steps=STEPS,
        checkpoint_every=EVERY, sample_every=EVERY, batch=2, clip=["a"], allow_random_clip=True,
        device="cpu", resume=resume, force=not resume))


def _hyper(preset: TinyPreset, out: Path, resume: bool) -> Any:
    return th.train_hyperdomain(th.HyperDomainTrainConfig(
        generator=str(preset.generator), out=out, prompt_list=["a pixar render", "zombie"],
        templates="none", steps=STEPS, batch=2, width=16, inner=16, allow_random_clip=True,
        sample_every=EVERY, checkpoint_every=EVERY, device="cpu", resume=resume,
        force=not resume))


def _mindthegap(preset: TinyPreset, out: Path, resume: bool) -> Any:
    return mtg.train_mindthegap(mtg.MindTheGapConfig(
        reference=preset.images / "photo0.png", generator=str(preset.generator), out=out,
        encoder=f"e4e:{preset.e4e}", losses=["clip_direction:1", "mtg_ref_l2:10"], clip=["a"],
        allow_random_clip=True, steps=STEPS, batch=2, lr=0.01, sample_every=EVERY,
        checkpoint_every=EVERY, device="cpu", resume=resume, force=not resume))


@pytest.mark.parametrize("train", [_domain, _hyper, _mindthegap],
                         ids=["domain", "hyperdomain", "mindthegap"])
def test_a_domain_trainer_killed_after_its_state_resumes_to_the_uninterrupted_files(
        preset: TinyPreset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_clips: None,
        train: Callable[[TinyPreset, Path, bool], Any]) -> None:
    """Before: `d_samples/` lacked step000002.png (it was drawn after the state); a kill after
    the last state left no `d.safetensors` (or that of an earlier step) and no `d_reference.png` (MindTheGap),
    since `--resume` found no step to train; the temporary files of the kill stayed."""
    run = tmp_path / "run"
    out = run / "d.safetensors"
    train(preset, out, False)
    shutil.move(run, tmp_path / "ref")
    want = _files(tmp_path / "ref")
    assert "d_samples/step000002.png" in want
    # the loss log holds times: its step records (each once) are compared below
    want_log = _log_steps(want.pop("d.log.jsonl"))
    assert [r["step"] for r in want_log] == list(range(1, STEPS + 1))

    def is_state(path: Any, kw: dict[str, Any]) -> bool:
        return kw.get("kind") == dom.STATE_KIND

    with monkeypatch.context() as m:     # killed after the state of step 2 ...
        _kill_after_state(m, dom, "save_checkpoint", EVERY, is_state)
        with pytest.raises(Killed):
            train(preset, out, False)
    assert read_header(run / "d.train-state.safetensors").extra["step"] == EVERY
    with monkeypatch.context() as m:     # ... then, resumed, after the state of the last step
        _kill_after_state(m, dom, "save_checkpoint", STEPS, is_state)
        with pytest.raises(Killed):
            train(preset, out, True)
    assert not out.exists()   # each kill came between a state and its checkpoint
    (run / "d_reference.png").unlink(missing_ok=True)   # MindTheGap: none yet at a kill
    # what SIGKILL leaves besides: the temporaries of this run's files, beside another run's
    own = [run / ".d.safetensors.zhgtxqsv.tmp", run / ".d.train-state.safetensors.abcdefgh.tmp",
           run / "d_samples" / ".step000004.png.k2_x9abc.tmp", run / ".d.log.jsonl.abcdefgh.tmp"]
    other = [run / ".e.safetensors.abcdefgh.tmp", run / ".d.safetensors.json.abcdefgh.tmp",
             run / "d_samples" / ".notes.txt.abcdefgh.tmp"]
    for path in own + other:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"\0" * 64)
    outcome = train(preset, out, True)
    assert outcome.step == STEPS
    assert [p.exists() for p in own + other] == [False] * len(own) + [True] * len(other)
    for path in other:
        path.unlink()
    got = _files(run)
    assert _log_steps(got.pop("d.log.jsonl")) == want_log
    assert got == want


# -- train featureshift ------------------------------------------------------------------------


def test_train_featureshift_killed_after_its_state_resumes_to_the_uninterrupted_files(
        env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: `samples/step_0000002.png` was missing, `model.safetensors` and
    `state.safetensors` differed in `train_config.resume` (true after a resume), a kill after
    the last state left the model of step 2, and `.model.safetensors.*.tmp` stayed."""
    run = tmp_path / "run"

    def cfg(resume: bool) -> fs.TrainConfig:
        return tiny_cfg(env, run, steps=6, checkpoint_every=EVERY, sample_every=EVERY,
                        n_samples=2, resume=resume)

    fs.train_featureshift(cfg(False), registry=registry())
    shutil.move(run, tmp_path / "ref")
    want = {k: v for k, v in _files(tmp_path / "ref").items() if not k.startswith("log")}
    assert sorted(k for k in want if k.startswith("samples/")) == [
        f"samples/step_{s:07d}.png" for s in (2, 4, 6)]
    extra = read_header(tmp_path / "ref" / "model.safetensors").extra
    assert "resume" not in extra["train_config"] and "device" not in extra["train_config"]
    assert extra["device"] == "cpu"    # what it ran on is still said

    real = fs_state.save_featureshift
    for step, resume in ((EVERY, False), (6, True)):
        def model_write(path: Any, model: Any, *, extra: dict[str, Any], _s: int = step) -> Any:
            if extra["step"] == _s:   # written right after the state of step _s: killed
                raise Killed
            return real(path, model, extra=extra)

        with monkeypatch.context() as m:
            m.setattr(fs_state, "save_featureshift", model_write)
            with pytest.raises(Killed):
                fs.train_featureshift(cfg(resume), registry=registry())
        assert read_header(run / "state.safetensors").extra["step"] == step
    assert read_header(run / "model.safetensors").extra["step"] == 4   # behind the state
    own = [run / ".model.safetensors.7c6tx5i7.tmp", run / ".state.safetensors.abcdefgh.tmp",
           run / ".log.jsonl.abcdefgh.tmp", run / "samples" / ".step_0000004.png.abcdefgh.tmp"]
    other = [run / ".notes.txt.abcdefgh.tmp", run / "samples" / ".mine.png.abcdefgh.tmp"]
    for path in own + other:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"\0" * 64)
    result = fs.train_featureshift(cfg(True), registry=registry())
    assert result.step == 6
    assert [p.exists() for p in own + other] == [False] * len(own) + [True] * len(other)
    for path in other:
        path.unlink()
    assert {k: v for k, v in _files(run).items() if not k.startswith("log")} == want
