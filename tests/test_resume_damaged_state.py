# ruff: noqa: F811  (the fixtures of test_train_domain and test_featureshift are parameters)
"""A ``--resume`` of a damaged training state or loss log, and a new run over an interrupted
run's state, with every trainer.

A state whose header misses a value or holds one of another type (``step`` missing or a
string), or whose tensors were renamed (a method offset, an optimiser moment, the domain
discriminator's weights), is refused in one line naming the file and what is wrong (exit 2)
before anything is written: ``train domain`` resumed a state without ``step`` from step 0
over the step-N weights, the others stopped on a ``KeyError``, a ``ValueError`` or torch's
``RuntimeError`` (exit 1), or cut the cause off.  A loss log that is not UTF-8, or holds a
line that is no record, is refused naming the log (it was a ``UnicodeDecodeError``, or the
line was dropped without a word); a last line cut short by a kill still resumes.  A new
``train domain`` into an ``--out`` whose state lies beside it without the model (a kill
between the two writes) is refused as ``train featureshift`` refuses one, not started over.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_featureshift import Env, _one_thread, env, tiny_cfg  # noqa: F401
from test_train_domain import (  # noqa: F401
    _cli,
    _text_args,
    generator_ckpt,
    registry,
    tiny_clips_in_cli,
)

from stylebridge.core.checkpoint import load_checkpoint, save_checkpoint
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.featureshift import trainer as fs
from stylebridge.pipelines.training.log import JsonlLog
from stylebridge.pipelines.training.outputs import check_run_out

DAMAGED = "damaged training state: "


def _rewrite(path: Path, edit: Callable[[dict[str, Any], dict[str, Any]], None]) -> None:
    """Write the state at ``path`` again with ``edit(extra, tensors)`` applied."""
    header, tensors = load_checkpoint(path)
    extra = json.loads(json.dumps(header.extra))
    edit(extra, tensors)
    save_checkpoint(path, tensors, kind=header.kind, plugin=header.plugin, config=header.config,
                    extra=extra)


def _rename(old: str, new: str) -> Callable[[dict[str, Any], dict[str, Any]], None]:
    def edit(extra: dict[str, Any], tensors: dict[str, Any]) -> None:
        tensors[new] = tensors.pop(old)
    return edit


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


# -- train domain (and hyperdomain, mindthegap: the same DomainTrainer.load_state) -----------


@pytest.fixture
def domain_run(registry: Any, tiny_clips_in_cli: list, generator_ckpt: Path, tmp_path: Path,
               capsys: pytest.CaptureFixture[str]) -> Path:
    """A run of 2 of 4 steps (its model, state and log in ``tmp_path``)."""
    out = tmp_path / "d.safetensors"
    code, _, err = _cli(capsys, *_text_args(generator_ckpt, out, "--steps", "2"))
    assert code == 0, err
    return out


def _errors(err: str) -> list[str]:
    """The error lines of stderr (the tiny CLIP models' notice aside), the last one last."""
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert "Traceback" not in err and (not errors or lines[-1] == errors[-1]), err
    return errors


def _resume(capsys: pytest.CaptureFixture[str], gen: Path, out: Path) -> tuple[int, list[str]]:
    code, _, err = _cli(capsys, *_text_args(gen, out, "--steps", "4", "--resume"))
    return code, _errors(err)


def _method_key(state: Path) -> str:
    return sorted(k for k in load_checkpoint(state)[1] if k.startswith("method."))[0]


def _unset(key: str) -> Callable[[dict[str, Any], dict[str, Any]], None]:
    return lambda extra, tensors: extra.pop(key)


def _set(key: str, value: Any) -> Callable[[dict[str, Any], dict[str, Any]], None]:
    return lambda extra, tensors: extra.__setitem__(key, value)


@pytest.mark.parametrize(("edit", "said"), [
    (_unset("step"), "its header has no 'step'"),
    (_set("step", "x"), "'step' in its header is \"x\", not a non-negative integer"),
    (_set("step", -1), "'step' in its header is -1, not a non-negative integer"),
    (_set("step", 1.5), "'step' in its header is 1.5, not a non-negative integer"),
    (_unset("fingerprint"), "its header has no 'fingerprint'"),
    (_set("fingerprint", [1]), "'fingerprint' in its header is [1], not an object"),
    (_set("last_losses", {"total": "x"}), "'last_losses.total' in its header is not a number"),
    (_set("cpu_threads", "2"), "'cpu_threads' in its header is \"2\", not a non-negative "
     "integer"),
    (_rename("optim.0.exp_avg", "optim.0.exp_#vg"), "its optimiser state is missing 1 "
     "tensor(s): optim.0.exp_avg and has 1 unexpected tensor(s): optim.0.exp_#vg"),
    (_rename("rng", "rn#"), "it has 1 unexpected tensor(s): rn#"),
], ids=["no-step", "step-string", "step-negative", "step-fraction", "no-fingerprint",
        "fingerprint-list", "last-losses", "threads", "optimiser-renamed", "rng-renamed"])
def test_a_damaged_domain_state_is_one_line_and_nothing_is_written(
        domain_run: Path, generator_ckpt: Path, capsys: pytest.CaptureFixture[str],
        edit: Callable[[dict[str, Any], dict[str, Any]], None], said: str) -> None:
    state = domain_run.with_name("d.train-state.safetensors")
    _rewrite(state, edit)
    before = _files(domain_run.parent)
    code, lines = _resume(capsys, generator_ckpt, domain_run)
    assert code == 2 and lines == [f"error: {state}: {DAMAGED}{said}"]
    assert _files(domain_run.parent) == before  # neither the model, the log nor the state


def test_a_renamed_method_tensor_names_both_names(
        domain_run: Path, generator_ckpt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """It said `method state does not fit: Error(s) in loading state_dict for ...:` and
    stopped at the colon."""
    state = domain_run.with_name("d.train-state.safetensors")
    key = _method_key(state)
    _rewrite(state, _rename(key, key + "#"))
    code, lines = _resume(capsys, generator_ckpt, domain_run)
    assert code == 2 and lines == [
        f"error: {state}: {DAMAGED}the method state is missing 1 tensor(s): {key} and has 1 "
        f"unexpected tensor(s): {key}#"]


@pytest.mark.parametrize(("damage", "said"), [
    (lambda text: b"\xff\xfe garbage \x80" + text, "line 1 is not UTF-8 text"),
    (lambda text: text.replace(b"\n", b"\nnot json at all\n", 1), "line 2 is not a JSON record"),
    (lambda text: text + b'{"step": "x"}\n', "is not a record of a step"),
], ids=["bytes", "line-in-the-middle", "step-string"])
def test_a_damaged_domain_log_is_one_line_naming_it(
        domain_run: Path, generator_ckpt: Path, capsys: pytest.CaptureFixture[str],
        damage: Callable[[bytes], bytes], said: str) -> None:
    log = domain_run.with_name("d.log.jsonl")
    log.write_bytes(damage(log.read_bytes()))
    before = _files(domain_run.parent)
    code, lines = _resume(capsys, generator_ckpt, domain_run)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"error: {log}: damaged training log: line ") and said in lines[0]
    assert "move the file aside and resume again" in lines[0]
    assert _files(domain_run.parent) == before
    # as it says: without the log, the run resumes
    log.rename(log.with_name("d.log.old"))
    code, lines = _resume(capsys, generator_ckpt, domain_run)
    assert code == 0, lines


def test_the_trim_drops_lines_cut_short_and_refuses_any_other(tmp_path: Path) -> None:
    """A kill mid-append leaves the last line cut short (and a later append ends it with a
    newline); such lines are dropped wherever they are.  Any other line is refused."""
    path = tmp_path / "log.jsonl"
    good = [json.dumps({"time": 1.0, "step": n, "total": 0.5}) for n in range(1, 5)]
    torn = '{"time": 1.0, "step": 3, "loss": {"a": 1}'
    path.write_text("\n".join([good[0], good[1], torn, good[2], good[3]]) + '\n{"time": 1.0, "st')
    JsonlLog(path).trim(2)
    assert path.read_text() == f"{good[0]}\n{good[1]}\n"
    path.write_text("\n".join([good[0], '{"time": 1.0, "step": 2, "total": xx}', good[1]]))
    with pytest.raises(StylebridgeError) as info:
        JsonlLog(path).trim(1)
    assert str(info.value).startswith(f"{path}: damaged training log: line 2 is not a JSON "
                                      "record; move the file aside")
    assert path.read_text().count("\n") == 2  # left as it was


def test_a_new_run_over_an_interrupted_runs_state_is_refused(
        domain_run: Path, generator_ckpt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Killed after its state was written, before its model: a new run without --resume or
    --force started over and replaced the state (`train featureshift` refuses the same)."""
    state = domain_run.with_name("d.train-state.safetensors")
    domain_run.unlink()
    before = _files(domain_run.parent)
    code, _, err = _cli(capsys, *_text_args(generator_ckpt, domain_run, "--steps", "4"))
    assert code == 2 and _errors(err) == [
        f"error: {state}: already exists, the training state of an interrupted run into "
        "d.safetensors (use --resume to continue it, --force to start over)"]
    assert _files(domain_run.parent) == before
    code, _, err = _cli(capsys, *_text_args(generator_ckpt, domain_run, "--steps", "4",
                                            "--resume"))
    assert code == 0, err
    assert load_checkpoint(domain_run)[0].extra["step"] == 4


def test_check_run_out_refuses_a_state_without_its_model_unless_forced(tmp_path: Path) -> None:
    out, state = tmp_path / "run.safetensors", tmp_path / "run.train-state.safetensors"
    state.write_bytes(b"state")
    with pytest.raises(StylebridgeError, match=r"run\.train-state\.safetensors: already exists, "
                                               r"the training state of an interrupted run"):
        check_run_out(out, resume=False, force=False)
    assert check_run_out(out, resume=True, force=False) == state
    assert check_run_out(out, resume=False, force=True) == state
    assert state.read_bytes() == b"state"


# -- train featureshift -----------------------------------------------------------------------


def fs_registry() -> Any:
    from test_featureshift_thesis import registry as thesis_registry

    return thesis_registry()


FS = dict(pretrain_inversion_steps=2, domain_discriminator="0.1:size=32,channels=8",
          adversarial=0.0, ema=0.9)


@pytest.fixture(scope="module")
def fs_part(env: Env, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 steps of 5, the domain discriminator trained on step 3."""
    out = tmp_path_factory.mktemp("fs") / "part"
    fs.train_featureshift(tiny_cfg(env, out, steps=3, **FS), registry=fs_registry())
    return out


def _fs_resume(env: Env, part: Path, tmp_path: Path,
               edit: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
               log: Callable[[bytes], bytes] | None = None) -> tuple[Path, str]:
    run = tmp_path / "run"
    shutil.copytree(part, run)
    if edit is not None:
        _rewrite(run / "state.safetensors", edit)
    if log is not None:
        (run / "log.jsonl").write_bytes(log((run / "log.jsonl").read_bytes()))
    before = _files(run)
    with pytest.raises(StylebridgeError) as info:
        fs.train_featureshift(tiny_cfg(env, run, steps=5, resume=True, **FS),
                              registry=fs_registry())
    assert _files(run) == before
    assert "\n" not in str(info.value)
    return run, str(info.value)


def _disc_key(extra: dict[str, Any], tensors: dict[str, Any]) -> None:
    (key,) = [k for k in tensors if k.endswith(".d.final_linear.1.weight")]
    tensors[key.replace("final_linear", "final_#inear")] = tensors.pop(key)


def test_a_renamed_domain_discriminator_tensor_is_one_line_naming_it(
        env: Env, fs_part: Path, tmp_path: Path) -> None:
    """It was torch's `RuntimeError: Error(s) in loading state_dict for Discriminator` (exit 1,
    no file named); a model tensor gave `FeatureShift state is missing 1 tensor(s)`."""
    (key,) = [k for k in load_checkpoint(fs_part / "state.safetensors")[1]
              if k.endswith(".d.final_linear.1.weight")]
    prefix = key.split(".d.")[0] + "."
    run, said = _fs_resume(env, fs_part, tmp_path, _disc_key)
    assert said == (
        f"{run / 'state.safetensors'}: {DAMAGED}the state of loss 'domain_adversarial' "
        f"({prefix}*) is missing 1 tensor(s): {key} and has 1 unexpected tensor(s): "
        f"{key.replace('final_linear', 'final_#inear')}")


def _edit(path: list[Any], value: Any = KeyError) -> Callable[[dict[str, Any], Any], None]:
    def edit(extra: dict[str, Any], tensors: Any) -> None:
        where = extra
        for key in path[:-1]:
            where = where[key]
        if value is KeyError:
            del where[path[-1]]
        else:
            where[path[-1]] = value
    return edit


@pytest.mark.parametrize(("edit", "said"), [
    (_edit(["step"]), "its header has no 'step'"),
    (_edit(["step"], "x"), "'step' in its header is \"x\", not a non-negative integer"),
    (_edit(["cursor", "offset"], "x"),
     "'cursor.offset' in its header is \"x\", not a non-negative integer"),
    (_edit(["cursor", "offset"], 10 ** 6), "its data position (epoch "),
    (_edit(["skipped_in_a_row"], None), None),   # null: read as 0, as when absent
    (_edit(["world_size"], "2"), "'world_size' in its header is \"2\", not a non-negative "
     "integer"),
    (_edit(["scheduler", "last_epoch"], 1.5),
     "'scheduler'.last_epoch in its header is 1.5, not a non-negative integer"),
    (_edit(["param_groups", 0, "lr"], "x"),
     "'param_groups'[0].lr in its header is \"x\", not a non-negative number"),
    (_edit(["rng_python", 1], [1, 2]), "'rng_python'[1] in its header is [1, 2], not a list "
     "of 625"),
    (_edit(["train_config"]), "its header has no 'train_config'"),
    (_rename("ema.blocks.0.bn1.bias", "ema.blocks.0.bn1.bi#s"), "the EMA state is missing 1 "
     "tensor(s): ema.blocks.0.bn1.bias and has 1 unexpected tensor(s): ema.blocks.0.bn1.bi#s"),
], ids=["no-step", "step-string", "offset-string", "offset-past", "skipped-null",
        "world-string", "scheduler", "lr-string", "rng-python", "no-train-config", "ema"])
def test_a_damaged_featureshift_state_is_one_line_naming_it(
        env: Env, fs_part: Path, tmp_path: Path, edit: Callable[[dict[str, Any], Any], None],
        said: str | None) -> None:
    if said is None:  # not damage: resumes
        run = tmp_path / "run"
        shutil.copytree(fs_part, run)
        _rewrite(run / "state.safetensors", edit)
        assert fs.train_featureshift(tiny_cfg(env, run, steps=5, resume=True, **FS),
                                     registry=fs_registry()).step == 5
        return
    run, message = _fs_resume(env, fs_part, tmp_path, edit)
    assert message.startswith(f"{run / 'state.safetensors'}: {DAMAGED}{said}"), message


def test_a_featureshift_log_of_random_bytes_is_one_line_naming_it(
        env: Env, fs_part: Path, tmp_path: Path) -> None:
    """It was `UnicodeDecodeError: 'utf-8' codec can't decode byte ...` (exit 1)."""
    run, said = _fs_resume(env, fs_part, tmp_path, log=lambda text: b"\x93\xff" * 64)
    assert said.startswith(f"{run / 'log.jsonl'}: damaged training log: line 1 is not UTF-8")
