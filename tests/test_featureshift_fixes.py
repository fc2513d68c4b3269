# ruff: noqa: F811  (the `env` fixture of test_featureshift is imported and used as a parameter)
"""`train featureshift` QA fixes: a fresh run's own log, the losses in use said and recorded,
the generator digest and its note, a full disk, resume refusals that say what differs (and
same-meaning loss specs accepted), the domain discriminator given twice, help texts."""

from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from test_featureshift import Env, _one_thread, env, tiny_cfg  # noqa: F401  (fixtures)
from test_featureshift_thesis import registry

from stylebridge.cli.commands import train as train_cli
from stylebridge.core.checkpoint import read_header
from stylebridge.core.stylegan2.checkpoint import load_stylegan2, save_stylegan2
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.featureshift import trainer as fs
from stylebridge.pipelines.featureshift.usage import generator_notes
from stylebridge.pipelines.training.guard import TrainingDivergedError
from stylebridge.pipelines.training.log import JsonlLog
from stylebridge.pipelines.training.progress import ProgressEvent
from stylebridge.pipelines.training.schedule import warmup_cosine_factor
from stylebridge.pipelines.training.state import file_sha256


def _log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _train(env: Env, out: Path, events: list[ProgressEvent] | None = None,
           **kw: Any) -> fs.TrainResult:
    return fs.train_featureshift(tiny_cfg(env, out, **kw), registry=registry(),
                                 progress=events.append if events is not None else None)


def _texts(events: list[ProgressEvent], kind: str) -> list[str]:
    return [e.text for e in events if e.kind == kind]


# -- 1. a fresh run starts a new log -----------------------------------------------------------


def test_a_fresh_run_moves_an_earlier_log_aside(env: Env, tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(TrainingDivergedError):  # before any checkpoint: a log, no state
        _train(env, out, losses=["mse:1e39"], steps=3)
    events: list[ProgressEvent] = []
    _train(env, out, events, steps=3)
    old, new = _log(out / "log.1.jsonl"), _log(out / "log.jsonl")
    assert [r.get("event") for r in old] == ["start", "diverged"]
    assert old[0]["config"]["losses"] == ["mse:1e39"]
    assert new[0]["event"] == "start" and new[0]["config"]["losses"] == ["mse:1.0"]
    assert [r["step"] for r in new if "total" in r] == [1, 2, 3]
    assert not any(r.get("event") == "diverged" for r in new)
    assert _texts(events, "info")[0] == (f"a new run: the log of an earlier run in {out} was "
                                         "moved aside to log.1.jsonl")
    # --resume where no state was saved is a new run too: the next free number
    shutil.copy(out / "log.jsonl", tmp_path / "kept.jsonl")
    (out / "state.safetensors").unlink()   # killed before its first checkpoint: neither
    (out / "model.safetensors").unlink()   # (a model without a state is refused)
    _train(env, out, steps=2, resume=True)
    assert (out / "log.2.jsonl").read_text() == (tmp_path / "kept.jsonl").read_text()
    assert [r["step"] for r in _log(out / "log.jsonl") if "total" in r] == [1, 2]
    # a resumed run keeps (and trims) its own log
    _train(env, out, steps=3, resume=True)
    assert [r["step"] for r in _log(out / "log.jsonl") if "total" in r] == [1, 2, 3]
    assert sorted(p.name for p in out.glob("log*.jsonl")) == [
        "log.1.jsonl", "log.2.jsonl", "log.jsonl"]


def test_set_aside_renames_without_overwriting(tmp_path: Path) -> None:
    log = JsonlLog(tmp_path / "log.jsonl")
    assert log.set_aside() is None  # none yet
    (tmp_path / "log.jsonl").write_text("")
    assert log.set_aside() is None  # empty: nothing to keep
    (tmp_path / "log.1.jsonl").write_text("one\n")
    (tmp_path / "log.jsonl").write_text("two\n")
    assert log.set_aside() == tmp_path / "log.2.jsonl"
    assert (tmp_path / "log.1.jsonl").read_text() == "one\n"
    assert (tmp_path / "log.2.jsonl").read_text() == "two\n"
    assert not (tmp_path / "log.jsonl").exists()


# -- 2/3/4. the losses in use: said, recorded; the generator digest ----------------------------


def test_losses_said_and_recorded_in_the_model(env: Env, tmp_path: Path) -> None:
    events: list[ProgressEvent] = []
    _train(env, tmp_path / "run", events, steps=3,
           losses=["mse:1.0", "corr:1e3:after=2"], domain_inversion_losses=["mse:0.5"])
    assert "losses: domain mse:1 corr:1000 (from step 2); inversion mse:1 corr:1000 (from step " \
           "2); domain-inversion mse:0.5" in _texts(events, "info")
    extra = read_header(tmp_path / "run" / "model.safetensors").extra
    assert [(t["key"], t["weight"], t["after"]) for t in extra["losses"]["domain"]] == [
        ("mse", 1.0, 0), ("corr", 1000.0, 2)]
    assert [t["key"] for t in extra["losses"]["domain-inversion"]] == ["mse"]
    assert extra["loss_configs"]["domain"]["corr"] == {"on": "features", "norm": "cosine",
                                                        "reduction": "mean"}
    assert extra["train_config"]["losses"] == ["mse:1.0", "corr:1e3:after=2"]
    assert extra["train_config"]["lr"] == 1e-3
    assert extra["generator_sha256"] == file_sha256(env.gen_path)
    assert extra["generator_file"] == str(env.gen_path)


def test_help_says_loss_replaces_the_defaults() -> None:
    parser = argparse.ArgumentParser()
    train_cli.add_train_arguments(parser)
    text = " ".join(parser.format_help().split())
    assert "repeatable; replaces the defaults (the thesis' mse:1.0 lpips:0.8 id:0.1" in text
    assert "--log-every N a log.jsonl record every N steps (default 50; 0 = none" in text
    assert "the first step uses --lr/N (default 0 = off)" in text
    # what the warm-up text says: update k of N uses k/N of the rate, the first one 1/N
    factor = warmup_cosine_factor(4, 10, "constant")
    assert [factor(s) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]


def test_adapt_notes_a_featureshift_model_used_with_another_generator(env: Env,
                                                                      tmp_path: Path) -> None:
    from stylebridge.pipelines.photos import open_generator

    _train(env, tmp_path / "run", steps=1)
    header = read_header(tmp_path / "run" / "model.safetensors")
    same = open_generator(str(env.gen_path), torch.device("cpu"))
    assert generator_notes(tmp_path / "run" / "model.safetensors", header, same) == []
    loaded = load_stylegan2(env.gen_path)
    with torch.no_grad():
        next(loaded.generator.parameters()).add_(0.5)
    save_stylegan2(tmp_path / "other.safetensors", loaded.generator)
    other = open_generator(str(tmp_path / "other.safetensors"), torch.device("cpu"))
    (note,) = generator_notes(tmp_path / "run" / "model.safetensors", header, other)
    sha = file_sha256(env.gen_path)
    assert note.startswith(f"--featureshift model.safetensors was trained on generator sha256 "
                           f"{sha[:8]}… ({env.gen_path.name}), not on the one loaded "
                           "(other.safetensors, sha256 ")


def test_the_training_state_given_as_the_model_names_the_model(env: Env,
                                                               tmp_path: Path) -> None:
    from stylebridge.pipelines.adapt import open_featureshift

    _train(env, tmp_path / "run", steps=1)
    state = tmp_path / "run" / "state.safetensors"
    with pytest.raises(StylebridgeError) as info:
        open_featureshift(state, torch.device("cpu"))
    assert str(info.value) == (
        f"--featureshift {state}: this is the training state of a `train featureshift` run "
        f"(for --resume), not the model: give {tmp_path / 'run' / 'model.safetensors'}, "
        "written beside it")


# -- 5. a full disk ----------------------------------------------------------------------------


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_names_the_file_and_the_saved_step(env: Env, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _train(env, out, steps=2, checkpoint_every=2)
    (out / "log.jsonl").unlink()
    (out / "log.jsonl").symlink_to("/dev/full")
    with pytest.raises(StylebridgeError) as info:
        _train(env, out, steps=4, resume=True)
    assert str(info.value) == (
        f"disk full (or file size limit) writing {out / 'log.jsonl'}; the state of step 2 is "
        f"saved in {out / 'state.safetensors'}: free space and rerun the same command with "
        "--resume to continue exactly from there")


def test_a_full_disk_at_a_checkpoint_says_the_earlier_one_is_kept(
        env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stylebridge.pipelines.featureshift import state as fs_state

    real, calls = fs_state.save_checkpoint, []

    def full(path: Any, *args: Any, **kw: Any) -> Any:
        calls.append(path)
        if len(calls) > 1:  # the second checkpoint's state file
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, *args, **kw)

    monkeypatch.setattr(fs_state, "save_checkpoint", full)
    out = tmp_path / "run"
    with pytest.raises(StylebridgeError, match=r"^disk full \(or file size limit\) writing "
                       rf"{out / 'state.safetensors'}; the state of step 1 is saved in "):
        _train(env, out, steps=3, checkpoint_every=1)


# -- 6. resume refusals that say what differs ---------------------------------------------------


def test_resume_accepts_a_loss_spelled_with_its_resolved_default(env: Env,
                                                                 tmp_path: Path) -> None:
    base = dict(losses=["mse:1.0", "corr:1e3"], steps=4)
    _train(env, tmp_path / "ref", **base)
    _train(env, tmp_path / "run", **{**base, "steps": 2})
    _train(env, tmp_path / "run", **{**base, "losses": ["mse:1", "corr:1000:norm=cosine"]},
           resume=True)
    ref, run = (load_file(tmp_path / n / "state.safetensors") for n in ("ref", "run"))
    assert sorted(ref) == sorted(run) and all(torch.equal(ref[k], run[k]) for k in ref)


def test_resume_refusals_name_the_first_difference(env: Env, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _train(env, out, losses=["mse:1.0", "corr:1e3"], steps=2)

    def refused(**kw: Any) -> str:
        with pytest.raises(StylebridgeError) as info:
            _train(env, out, **{"losses": ["mse:1.0", "corr:1e3"], "steps": 3, **kw},
                   resume=True)
        return str(info.value).split(": ", 1)[1]

    # the order is part of the run: the total is summed in it (the numbers differ)
    assert refused(losses=["corr:1e3", "mse:1"]) == (
        "was written with different settings (--loss): same losses in another order: give "
        "them in the saved order: --loss mse:1 --loss corr:1000; resume with the same ones or "
        "start a new --out")
    assert refused(losses=["mse:1.0", "corr:1e2"]) == (
        "was written with different settings (--loss): --loss term 2 was corr:1000, now "
        "corr:100 (saved: --loss mse:1 --loss corr:1000); resume with the same ones or start "
        "a new --out")
    assert refused(losses=["mse:1.0", "corr:1e3:norm=none"]).startswith(
        "was written with different settings (--loss): --loss term 2 was corr:1000, now "
        "corr:1000:norm=none (saved: ")
    assert refused(losses=["mse:1.0"]).startswith(
        "was written with different settings (--loss): --loss corr:1000 was given then, not now "
        "(saved: --loss mse:1 --loss corr:1000)")
    assert refused(lr=2e-3) == ("was written with different settings (--lr): --lr 0.001 then, "
                                "0.002 now; resume with the same ones or start a new --out")


# -- 7/9. the domain discriminator -------------------------------------------------------------


def _setup(env: Env, tmp_path: Path, **kw: Any) -> None:
    fs.FeatureShiftTrainer(tiny_cfg(env, tmp_path / "x", **kw), registry=registry()).setup()


def test_the_domain_discriminator_given_twice_is_refused(env: Env, tmp_path: Path) -> None:
    with pytest.raises(StylebridgeError, match=r"^--domain-discriminator '0.01:size=32' adds "
                       r"the term --loss domain_adversarial:0.01:size=32, and --loss "
                       r"'domain_adversarial:0.01:size=32' gives it again: give one of them"):
        _setup(env, tmp_path, losses=["mse:1", "domain_adversarial:0.01:size=32"],
               domain_discriminator="0.01:size=32")
    with pytest.raises(StylebridgeError, match=r"^--loss domain_adversarial#2: "
                       "domain_adversarial is given twice with the same options, so both terms "
                       "would share one discriminator"):
        _setup(env, tmp_path, losses=["mse:1", "domain_adversarial:0.01:size=32",
                                      "domain_adversarial:0.02:size=32"])
    assert not (tmp_path / "x").exists()


def test_domain_discriminator_errors_name_that_option(env: Env, tmp_path: Path) -> None:
    with pytest.raises(StylebridgeError) as info:
        _setup(env, tmp_path, domain_discriminator="0.01:foo=1")
    message = str(info.value)  # (the test registry names the module as the provider)
    assert message.startswith("--domain-discriminator '0.01:foo=1': loss 'domain_adversarial'")
    assert message.endswith(": unknown option(s) foo (accepted: size, channels, lr, beta1, "
                            "beta2, r1)") and "--loss" not in message
    with pytest.raises(StylebridgeError) as info:
        _setup(env, tmp_path, domain_discriminator="0.01:size=33")
    assert str(info.value) == ("--domain-discriminator '0.01:size=33': domain_adversarial: "
                               "size=33: expected a power of two >= 4")


# -- 8. list defaults as they are typed --------------------------------------------------------


def test_plugins_shows_list_defaults_as_typed() -> None:
    from stylebridge.plugins.losses.recon import _parse_resolutions
    from stylebridge.registry import describe, get_registry

    rows = {r["name"]: r for r in describe.options(get_registry().entries["loss"]["lpips"])}
    assert rows["resolutions"]["default"] == "256+128"
    assert rows["resolutions"]["allowed"].endswith(", typed as 256+128")
    assert _parse_resolutions(rows["resolutions"]["default"]) == (256, 128)


def test_out_is_refused_in_the_dataset_folder(env: Env, tmp_path: Path) -> None:
    """`--out` = `--data` wrote model, state and log among the dataset's shards (QA)."""
    data = tmp_path / "data"
    shutil.copytree(env.data32, data)
    before = sorted(p.name for p in data.rglob("*"))
    for out, where in ((data, "the"), (data / "run", "inside the")):
        cfg = tiny_cfg(env, out, data=str(data))
        with pytest.raises(StylebridgeError, match=rf"^--out {out}: is {where} --data folder "
                                                   rf"{data}, which holds the dataset alone"):
            fs.train_featureshift(cfg, registry=registry())
    assert sorted(p.name for p in data.rglob("*")) == before
    # a --data that is not there is said as such, not as an --out inside it
    missing = tmp_path / "nods"
    with pytest.raises(StylebridgeError, match=rf"^--data {missing}: "):
        fs.train_featureshift(tiny_cfg(env, missing / "run", data=str(missing)),
                              registry=registry())
