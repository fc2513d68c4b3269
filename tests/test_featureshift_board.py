# ruff: noqa: F811  (the `env` fixture of test_featureshift is imported and used as a parameter)
"""`train featureshift --tensorboard`: every number of `log.jsonl` as a TensorBoard scalar at its
step and every sample grid as an image, in `OUT/tensorboard`; a resumed run draws its events
again from its log and sample grids (whatever earlier parts wrote, with or without the flag,
the curves are the log's, once per step); a new run moves an earlier run's events aside, as
it does the log, with or without the flag."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from test_featureshift import Env, _one_thread, env, make_registry, tiny_cfg  # noqa: F401

from stylebridge.core.checkpoint import read_header
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.featureshift import trainer as fs
from stylebridge.pipelines.training import board as board_mod

pytest.importorskip("tensorboard")


def _events(folder: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()  # purge_orphaned_data (the default) drops what a resume's purge_step purged
    return acc


def _curve(acc: Any, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def _same(curve: list[tuple[int, float]], logged: list[tuple[int, float]]) -> bool:
    """The same steps and, as float32 events hold them, the same values."""
    return [s for s, _ in curve] == [s for s, _ in logged] and \
        [v for _, v in curve] == pytest.approx([v for _, v in logged], rel=1e-6)


def _log_curve(out: Path, key: str) -> list[tuple[int, float]]:
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return [(r["step"], r[key]) for r in records if "event" not in r]


KW = dict(steps=6, pretrain_inversion_steps=2, log_every=1, sample_every=2, checkpoint_every=2,
          n_samples=2)


def test_every_logged_number_and_sample_grid_is_an_event(env: Env, tmp_path: Path) -> None:
    out = tmp_path / "run"
    fs.train_featureshift(tiny_cfg(env, out, tensorboard=True, **KW), registry=make_registry())
    acc = _events(out / "tensorboard")
    total = _curve(acc, "run/total")
    assert [step for step, _ in total] == [1, 2, 3, 4, 5, 6]
    assert _same(total, _log_curve(out, "total"))  # float32 events
    assert _same(_curve(acc, "run/lr"), _log_curve(out, "lr"))
    tags = set(acc.Tags()["scalars"])
    assert {"run/total", "run/lr", "run/grad_norm", "inversion/mse"} <= tags
    assert not any(t.endswith(("/time", "/step")) for t in tags)
    assert [e.step for e in acc.Images("samples")] == [2, 4, 6]
    grid = acc.Images("samples")[-1]
    from PIL import Image

    with Image.open(out / "samples" / "step_0000006.png") as png:
        assert (grid.width, grid.height) == png.size
    # a new run in the same --out (the earlier one left no state: killed before its first
    # checkpoint, or diverged): the earlier events moved aside, as the log is
    for name in ("state.safetensors", "model.safetensors"):
        (out / name).unlink()
    notes: list[str] = []
    fs.train_featureshift(tiny_cfg(env, out, tensorboard=True, **{**KW, "steps": 2}),
                          registry=make_registry(), progress=lambda e: notes.append(e.text or ""))
    assert f"a new run: the TensorBoard events of an earlier run in {out} were moved aside " \
           "to tensorboard.1" in notes
    assert [s for s, _ in _curve(_events(out / "tensorboard"), "run/total")] == [1, 2]
    assert [s for s, _ in _curve(_events(out / "tensorboard.1"), "run/total")] == \
        list(range(1, 7))
    # a new run without the flag moves them aside too: no dead run's curves beside its log
    for name in ("state.safetensors", "model.safetensors"):
        (out / name).unlink()
    fs.train_featureshift(tiny_cfg(env, out, **{**KW, "steps": 2}), registry=make_registry())
    assert not (out / "tensorboard").exists() and (out / "tensorboard.2").is_dir()


class Stop(Exception):
    pass


def _crash_at(step: int) -> Any:
    def crash(trainer: fs.FeatureShiftTrainer) -> None:
        if trainer.step == step:
            raise Stop
    return crash


@pytest.mark.parametrize("flags", [(True, True), (False, True), (True, False, True)])
def test_a_resumed_run_draws_the_curves_of_its_log(env: Env, tmp_path: Path,
                                                   flags: tuple[bool, ...]) -> None:
    # each part but the last killed one step after a checkpoint (its step logged, then lost);
    # parts with and without --tensorboard in any order: the curves are the log's, once each
    kw = {**KW, "steps": 8}
    out = tmp_path / "run"
    for part, board in enumerate(flags[:-1]):
        with pytest.raises(Stop):
            fs.train_featureshift(tiny_cfg(env, out, tensorboard=board, resume=part > 0, **kw),
                                  registry=make_registry(), on_step=_crash_at(3 + 2 * part))
    notes: list[str] = []
    fs.train_featureshift(tiny_cfg(env, out, tensorboard=True, resume=True, **kw),
                          registry=make_registry(), progress=lambda e: notes.append(e.text or ""))
    resumed_at = 2 * (len(flags) - 1)
    assert f"TensorBoard events drawn again from log.jsonl up to step {resumed_at}" in notes
    acc = _events(out / "tensorboard")
    total = _curve(acc, "run/total")
    assert [step for step, _ in total] == list(range(1, 9))
    assert _same(total, _log_curve(out, "total"))
    assert [e.step for e in acc.Images("samples")] == [2, 4, 6, 8]
    assert not list(out.glob(".tensorboard*"))  # the replaced events are gone
    # and the run equals an uninterrupted one: the flag is how it ran, not what it trained
    fs.train_featureshift(tiny_cfg(env, tmp_path / "plain", **kw), registry=make_registry())
    resumed, plain = (load_file(p / "model.safetensors") for p in (out, tmp_path / "plain"))
    assert resumed.keys() == plain.keys()
    assert all(torch.equal(resumed[k], plain[k]) for k in plain)
    recorded = read_header(out / "model.safetensors").extra["train_config"]
    assert "log_every" in recorded and "tensorboard" not in recorded


def test_without_tensorboard_installed_the_flag_is_one_line_before_any_work(
        env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_tensorboard(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "torch.utils.tensorboard" or name.startswith("tensorboard"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    out = tmp_path / "run"
    with pytest.raises(StylebridgeError) as info:
        fs.train_featureshift(tiny_cfg(env, out, tensorboard=True, **KW),
                              registry=make_registry())
    assert str(info.value) == board_mod.NO_TENSORBOARD
    assert not (out / "log.jsonl").exists()


def test_scalars_flatten_numbers_and_leave_the_rest_out() -> None:
    record = {"time": 1.5, "step": 3, "phase": "joint", "total": 0.25, "ok": True,
              "nan": float("nan"), "grad_norm": float("inf"), "inversion/mse": 0.5,
              "losses": {"mse": 0.125, "note": "x", "deep": {"a": 2}}}
    assert list(board_mod.scalars(record)) == [
        ("run/total", 0.25), ("run/grad_norm", float("inf")), ("inversion/mse", 0.5),
        ("losses/mse", 0.125), ("losses/deep/a", 2.0)]
