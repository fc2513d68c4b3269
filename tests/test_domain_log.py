# ruff: noqa: F811  (fixtures of test_train_domain are imported and used as parameters)
"""The domain trainers' loss log (``DOMAIN.log.jsonl``, one record per step) and
``--tensorboard`` (``DOMAIN_tensorboard/``): a run's losses were kept nowhere but the last
step's in the checkpoint header.  A resumed run's log equals an uninterrupted run's (each
step once), a new run moves an earlier one's log and events aside, and the events are the
log's numbers."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from test_train_domain import (  # noqa: F401
    _cli,
    _one_thread,
    _text_args,
    generator_ckpt,
    registry,
    tiny_clips_in_cli,
)

from stylebridge.core.checkpoint import read_header
from stylebridge.pipelines import train_domain as td
from stylebridge.pipelines.training.board import NO_TENSORBOARD
from stylebridge.pipelines.training.domain_log import board_dir_for, log_path_for


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _steps(path: Path) -> list[dict[str, Any]]:
    """The step records without their time."""
    return [{k: v for k, v in r.items() if k != "time"} for r in _records(path)
            if "event" not in r]


def _curve(folder: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    if tag == "samples":
        return [(e.step, 0.0) for e in acc.Images(tag)]
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_paths_beside_the_domain() -> None:
    assert log_path_for("runs/pixar.safetensors") == Path("runs/pixar.log.jsonl")
    assert log_path_for("runs/pixar") == Path("runs/pixar.log.jsonl")
    assert board_dir_for("runs/pixar.safetensors") == Path("runs/pixar_tensorboard")


def test_log_has_every_step_once_and_a_resume_equals_an_uninterrupted_run(
        registry: Any, tiny_clips_in_cli: list, generator_ckpt: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tensorboard")
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    run = ("--sample-every", "2", "--checkpoint-every", "2")
    code, out, err = _cli(capsys, *_text_args(generator_ckpt, a, "--steps", "4", *run,
                                              "--tensorboard"))
    assert code == 0, err
    said = " ".join(out.split())
    assert f"log: {tmp_path / 'a.log.jsonl'} (TensorBoard: tensorboard --logdir " \
           f"{tmp_path / 'a_tensorboard'})" in said
    steps = _steps(tmp_path / "a.log.jsonl")
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    for r in steps:  # the one term is the total; the default lr, no warm-up
        assert set(r) == {"step", "total", "lr", "loss"}
        assert r["loss"] == {"clip_direction": r["total"]} and r["lr"] == td.TEXT_DEFAULTS.lr
    header = read_header(a)
    assert steps[-1]["total"] == header.extra["total_loss"]
    assert "tensorboard" not in header.extra["train_config"]  # the same domain either way
    events = [r.get("event") for r in _records(tmp_path / "a.log.jsonl")]
    assert events == ["start", None, None, None, None, "end"]
    # two steps, then a resume to four (with --tensorboard only on the resume)
    assert _cli(capsys, *_text_args(generator_ckpt, b, "--steps", "2", *run))[0] == 0
    assert not board_dir_for(b).exists()
    code, out, err = _cli(capsys, *_text_args(generator_ckpt, b, "--steps", "4", *run,
                                              "--resume", "--tensorboard"))
    assert code == 0, err
    assert _steps(tmp_path / "b.log.jsonl") == steps  # each step once, the same numbers
    starts = [r for r in _records(tmp_path / "b.log.jsonl") if r.get("event") == "start"]
    assert [(r["step"], r["resumed"]) for r in starts] == [(0, False), (2, True)]
    # the events: the log's numbers (float32), drawn again for the steps before the resume
    for folder in (tmp_path / "a_tensorboard", tmp_path / "b_tensorboard"):
        curve = _curve(folder, "loss/clip_direction")
        assert [s for s, _ in curve] == [1, 2, 3, 4]
        assert [v for _, v in curve] == pytest.approx([r["total"] for r in steps], rel=1e-6)
        assert [s for s, _ in _curve(folder, "run/lr")] == [1, 2, 3, 4]
        assert [s for s, _ in _curve(folder, "samples")] == [2, 4]


def test_a_resume_drops_records_after_its_checkpoint(
        registry: Any, tiny_clips_in_cli: list, generator_ckpt: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Killed after logging step 3 but before its checkpoint (and mid-line): the resume
    repeats step 3 and records it once, with the numbers it computes."""
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    assert _cli(capsys, *_text_args(generator_ckpt, a, "--steps", "4"))[0] == 0
    assert _cli(capsys, *_text_args(generator_ckpt, b, "--steps", "2"))[0] == 0
    log = tmp_path / "b.log.jsonl"
    with log.open("a") as fh:
        fh.write(json.dumps({"step": 3, "total": 99.0, "lr": 1.0, "loss": {}}) + '\n{"step": 4, "to')
    code, _, err = _cli(capsys, *_text_args(generator_ckpt, b, "--steps", "4", "--resume"))
    assert code == 0, err
    assert _steps(log) == _steps(tmp_path / "a.log.jsonl")


def test_a_new_run_moves_the_earlier_log_and_events_aside(
        registry: Any, tiny_clips_in_cli: list, generator_ckpt: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tensorboard")
    a = tmp_path / "a.safetensors"
    assert _cli(capsys, *_text_args(generator_ckpt, a, "--steps", "2", "--tensorboard"))[0] == 0
    first = (tmp_path / "a.log.jsonl").read_bytes()
    code, out, err = _cli(capsys, *_text_args(generator_ckpt, a, "--steps", "1", "--force"))
    assert code == 0, err
    said = " ".join(out.split())
    assert "a new run: the loss log of an earlier run was moved aside to a.log.1.jsonl" in said
    assert "the TensorBoard events of an earlier run were moved aside to a_tensorboard.1" in said
    assert (tmp_path / "a.log.1.jsonl").read_bytes() == first  # kept, not deleted
    assert [r["step"] for r in _steps(tmp_path / "a.log.jsonl")] == [1]
    assert not (tmp_path / "a_tensorboard").exists()  # this run did not ask for events
    assert [s for s, _ in _curve(tmp_path / "a_tensorboard.1", "run/total")] == [1, 2]
    assert "TensorBoard" not in said.split("log: ")[-1]


def test_tensorboard_missing_is_one_line_before_anything_loads(
        registry: Any, tiny_clips_in_cli: list, generator_ckpt: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    a = tmp_path / "a.safetensors"
    code, _, err = _cli(capsys, *_text_args(generator_ckpt, a, "--steps", "2", "--tensorboard"))
    assert code == 2 and err.strip().splitlines()[-1] == f"error: {NO_TENSORBOARD}"
    assert tiny_clips_in_cli == []  # no CLIP model was built
    assert not a.exists() and not (tmp_path / "a.log.jsonl").exists()


@pytest.mark.parametrize("command", ["hyperdomain", "mindthegap"])
def test_the_other_domain_trainers_pass_the_flag(command: str, tmp_path: Path) -> None:
    from stylebridge.cli.commands import train_hyperdomain, train_mindthegap
    from stylebridge.cli.main import build_parser

    parser, _ = build_parser()
    first = ["--prompts", str(tmp_path / "p.txt")] if command == "hyperdomain" else \
        [str(tmp_path / "ref.png")]
    module = train_hyperdomain if command == "hyperdomain" else train_mindthegap
    for flag, expected in (([], False), (["--tensorboard"], True)):
        args = parser.parse_args(["train", command, *first, "--out",
                                  str(tmp_path / "d.safetensors"), *flag])
        assert module.config(args).tensorboard is expected


def test_remove_run_records_leaves_domains_only(tmp_path: Path) -> None:
    """`reproduce --methods` removes what its recipes' runs keep beside each domain; a log an
    interrupted earlier run left was moved aside to `.log.1.jsonl` and stayed."""
    from stylebridge.pipelines.training.domain_log import remove_run_records

    out = tmp_path / "d.safetensors"
    names = ["d.safetensors", "d.train-state.safetensors", "d.log.jsonl", "d.log.1.jsonl",
             "d.log.12.jsonl", "e.log.1.jsonl", "d.log.x.jsonl", "dd.log.1.jsonl"]
    for name in names:
        (tmp_path / name).write_text("{}")
    remove_run_records(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "d.log.x.jsonl", "d.safetensors", "dd.log.1.jsonl", "e.log.1.jsonl"]
