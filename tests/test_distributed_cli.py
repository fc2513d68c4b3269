"""Multi-process runs (torchrun, gloo on the CPU): a signal sent to torchrun and its workers
together, the commands that run in one process, and the errors of a run's processes (one
line each, attributable, the same story on every rank).

The DDP runs reuse :mod:`test_featureshift`'s toy dataset and registry (``mp.spawn`` with
torchrun's variables, as its DDP tests do); the command-line runs start the processes with
those variables too, or torchrun itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest
import test_featureshift as tfs
import torch
from conftest import one_torch_thread, tiny_generator

from stylebridge.cli.main import main
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.featureshift.distributed import end_process
from stylebridge.pipelines.training import interrupt
from stylebridge.pipelines.training.guard import TrainingDivergedError
from stylebridge.pipelines.training.interrupt import StopRequests, TrainingInterrupted
from stylebridge.registry import hookimpl
from stylebridge.registry import registry as registry_mod

env = tfs.env  # the toy FeatureShift dataset, generator and domains (module-scoped)

LAUNCH = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
GLOO_CLOSED = ("[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:561] Connection "
               "closed by peer [127.0.0.1]:28561. This is typically caused by a remote worker "
               "crashing. Check the logs of the remote worker before reporting an error.")
GLOO_RESET = ("[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:545] Read error "
              "[127.0.0.1]:2450: Connection reset by peer. This is typically caused by a remote "
              "worker hanging or bugs in the application.")
PEER_LINE = "error: rank {} stopped: another process of the run failed (its error is above)\n"


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Any:
    with one_torch_thread():
        yield


@pytest.fixture
def launch(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``launch(rank, world)``: torchrun's variables of that process (none: ``world=None``)."""
    def set_launch(rank: int = 0, world: int | None = 2) -> None:
        for key in LAUNCH:
            monkeypatch.delenv(key, raising=False)
        if world is not None:
            monkeypatch.setenv("RANK", str(rank))
            monkeypatch.setenv("WORLD_SIZE", str(world))

    set_launch(world=None)
    return set_launch


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(argv))
    return code, capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Signals


def test_a_launchers_repeat_of_the_signal_is_the_same_request(monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    """Ctrl-C in a terminal reaches torchrun's workers and then once more, forwarded by
    torchrun, within milliseconds: that repeat asked for nothing new.  A repeat after the
    window stops at once, and one process keeps its double Ctrl-C = stop now."""
    now = [100.0]
    monkeypatch.setattr(interrupt, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    with StopRequests(distributed=True) as stops:
        os.kill(os.getpid(), signal.SIGINT)      # the terminal's, to the whole process group
        now[0] += 0.01
        os.kill(os.getpid(), signal.SIGINT)      # torchrun's forwarded copy
        assert stops.signal == signal.SIGINT
        now[0] += interrupt.REPEAT_WINDOW_S      # a person's second Ctrl-C, later
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    with StopRequests() as stops, pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)      # one process: stop now, however soon


def _ddp_worker(rank: int, world: int, port: int, cfg: Any, out: str,
                signals: dict[int, list[int]]) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)

    def signalled_at_step_2(trainer: Any) -> None:
        if trainer.step == 2:
            for sig in signals.get(rank, []):
                os.kill(os.getpid(), sig)

    try:
        tfs.fs.train_featureshift(cfg, registry=tfs.make_registry(), on_step=signalled_at_step_2)
    except (TrainingInterrupted, TrainingDivergedError) as exc:
        (Path(out) / f"rank{rank}.txt").write_text(str(exc))
    end_process(0)  # as the command line ends a process of a torchrun launch


def _ddp(cfg: Any, out: Path, signals: dict[int, list[int]] | None = None) -> list[str]:
    """Two DDP processes; the message each one stopped with."""
    import torch.multiprocessing as mp

    ctx = mp.spawn(_ddp_worker, args=(2, tfs._free_port(), cfg, str(out), signals or {}),
                   nprocs=2, join=False)
    deadline = time.monotonic() + 120
    while not ctx.join(timeout=5):
        assert time.monotonic() < deadline, "a rank hung"
    return [(out / f"rank{r}.txt").read_text() for r in range(2)]


def test_ddp_a_signal_to_torchrun_and_its_workers_together_saves_the_step(env: Any,
                                                                          tmp_path: Path) -> None:
    """Every worker gets the signal twice (directly, then torchrun's copy): the run saves
    after the step and stops, on every rank (it lost the run: KeyboardInterrupt, unsaved)."""
    cfg = tfs.tiny_cfg(env, tmp_path / "run", steps=6, pretrain_inversion_steps=1, batch_size=1)
    twice = [signal.SIGINT, signal.SIGINT]
    said = _ddp(cfg, tmp_path, {0: twice, 1: twice})
    assert all(s.startswith("interrupted (SIGINT) after step 2; the state is saved") for s in said)
    assert tfs.read_header(tmp_path / "run" / "state.safetensors").extra["step"] == 2


def test_ddp_every_rank_names_the_signal_one_rank_received(env: Any, tmp_path: Path) -> None:
    """SIGTERM to rank 1 only: rank 0 said SIGINT (the ranks agreed on a flag only)."""
    cfg = tfs.tiny_cfg(env, tmp_path / "run", steps=6, pretrain_inversion_steps=1, batch_size=1)
    said = _ddp(cfg, tmp_path, {1: [signal.SIGTERM]})
    assert all(s.startswith("interrupted (SIGTERM) after step 2;") for s in said), said


def test_ddp_divergence_names_the_same_checkpoint_on_every_rank(env: Any, tmp_path: Path) -> None:
    """Rank 1 said "no checkpoint was written yet" while rank 0 named the step-2 checkpoint."""
    cfg = tfs.tiny_cfg(env, tmp_path / "run", losses=["toy-nan:1.0:nan_at=3"], checkpoint_every=2,
                       steps=6, batch_size=1)
    said = _ddp(cfg, tmp_path)
    state = tmp_path / "run" / "state.safetensors"
    assert said[0] == said[1]
    assert said[0].startswith("training stopped at step 4 (after 3 completed): the loss is NaN")
    assert f"the last checkpoint, written before this, is {state} (step 2;" in said[0]


# ---------------------------------------------------------------------------------------------
# Commands that run in one process


def test_commands_that_run_in_one_process_refuse_a_multi_process_launch(
        launch: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Each process ran the whole command into the same output: now rank 0 says why in one
    line before any work, the other ranks exit silently with the same code."""
    gen = str(tmp_path / "gen.safetensors")
    runs = {
        "train domain": ["train", "domain", "--text", "a sketch", "-g", gen,
                         "--out", str(tmp_path / "d.safetensors")],
        "train hyperdomain": ["train", "hyperdomain", "--prompts", str(tmp_path / "p.txt"),
                              "-g", gen, "--out", str(tmp_path / "h.safetensors")],
        "train mindthegap": ["train", "mindthegap", "-g", gen, "--out",
                             str(tmp_path / "m.safetensors"), str(tmp_path / "ref.png")],
        "plugins": ["plugins", "--json"],
    }
    for words, argv in runs.items():
        launch(rank=0, world=2)
        assert _run(capsys, *argv) == (2, f"error: {words} runs in one process: start it without "
                                          "torchrun (WORLD_SIZE=2)\n")
        launch(rank=1, world=2)
        assert _run(capsys, *argv) == (2, "")
    assert list(tmp_path.iterdir()) == []
    # one process under torchrun runs as without it; train featureshift takes several
    launch(rank=0, world=1)
    code, err = _run(capsys, *runs["train domain"])
    assert code == 2 and "runs in one process" not in err and "gen.safetensors" in err
    launch(rank=0, world=2)
    code, err = _run(capsys, "train", "featureshift", "--data", str(tmp_path / "none"), "-g", gen,
                     "--out", str(tmp_path / "run"), "--device", "cpu")
    assert code == 2 and "runs in one process" not in err and "none" in err


def test_a_usage_error_under_torchrun_is_said_once(launch: Any,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Every rank parsed the same command line: rank 0 says what is wrong, the others exit
    with the same code silently (four ranks printed four lines before)."""
    argv = ("train", "featureshift", "--steps", "ten")
    line = "error: --steps: expected an integer, got 'ten' (see stylebridge train featureshift --help)\n"

    def usage(*words: str) -> tuple[int, str]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as info:
            main(list(words))
        return info.value.code, capsys.readouterr().err  # type: ignore[return-value]

    for rank, said in ((0, line), (1, ""), (3, "")):
        launch(rank=rank, world=4)
        assert usage(*argv) == (2, said)
    launch(rank=2, world=4)
    assert usage("nosuchcommand") == (2, "")
    # no command at all: the help, by rank 0 alone (every rank printed it)
    capsys.readouterr()
    launch(rank=1, world=4)
    assert main([]) == 2 and capsys.readouterr().err == ""
    launch(rank=0, world=4)
    assert main([]) == 2 and capsys.readouterr().err.startswith("usage: stylebridge")
    launch(world=None)
    assert usage(*argv) == (2, line)


def test_the_domain_trainers_refuse_several_processes_from_python(launch: Any,
                                                                  tmp_path: Path) -> None:
    from stylebridge.pipelines.train_domain import DomainTrainConfig, train_domain
    from stylebridge.pipelines.train_hyperdomain import HyperDomainTrainConfig, train_hyperdomain
    from stylebridge.pipelines.train_mindthegap import MindTheGapConfig, train_mindthegap

    gen = str(tmp_path / "gen.safetensors")
    launch(rank=1, world=3)
    calls = {
        "train_domain": lambda: train_domain(DomainTrainConfig(
            generator=gen, out=tmp_path / "d.safetensors", text="a sketch")),
        "train_hyperdomain": lambda: train_hyperdomain(HyperDomainTrainConfig(
            generator=gen, out=tmp_path / "h.safetensors", prompt_list=["a sketch"])),
        "train_mindthegap": lambda: train_mindthegap(MindTheGapConfig(
            reference=tmp_path / "ref.png", generator=gen, out=tmp_path / "m.safetensors")),
    }
    for name, call in calls.items():
        with pytest.raises(StylebridgeError) as caught:
            call()
        assert str(caught.value) == (f"{name} runs in one process: start it without torchrun "
                                     "(WORLD_SIZE=3)")
    assert list(tmp_path.iterdir()) == []


def test_a_multi_process_launch_of_train_domain_says_so_once(tmp_path: Path) -> None:
    """The real launcher: one line for the two processes, nothing written."""
    out = tmp_path / "d.safetensors"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "stylebridge", "train", "domain", "--text", "a sketch", "-g",
           str(tmp_path / "gen.safetensors"), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert lines == ["error: train domain runs in one process: start it without torchrun "
                     "(WORLD_SIZE=2)"]
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# Errors of a multi-process run


@pytest.fixture
def raising(monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """A command ``raise-test`` that raises what the test puts in the returned list."""
    from stylebridge.cli.base import Command

    errors: list[BaseException] = []

    class Raise(Command):
        name = "raise-test"
        help = "raises"
        distributed = True  # may run as several processes (train featureshift's capability)

        def add_arguments(self, parser: Any) -> None:
            pass

        def run(self, args: Any, console: Any) -> int:
            raise errors[-1]

    plugin = types.ModuleType("raise_test_cmds")

    @hookimpl
    def register_commands(register: Any) -> None:
        register(Raise())

    plugin.register_commands = register_commands  # type: ignore[attr-defined]
    monkeypatch.setattr(registry_mod, "_REGISTRY",
                        registry_mod.Registry(entry_points=False, extra_plugins=[plugin]))
    return errors


def test_a_rank_whose_peer_stopped_says_so_in_one_line(launch: Any, raising: list[BaseException],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """Not gloo's "RuntimeError: [.../pair.cc:561] Connection closed by peer": the error
    that matters is the other process's."""
    from torch.distributed import DistBackendError

    for rank, exc in ((1, RuntimeError(GLOO_CLOSED)), (0, RuntimeError(GLOO_RESET)),
                      (1, DistBackendError("NCCL error: remote process exited or there was a "
                                           "network error"))):
        launch(rank=rank, world=2)
        raising.append(exc)
        assert _run(capsys, "raise-test") == (1, PEER_LINE.format(rank))
    # matched narrowly: another RuntimeError is reported as it is, by its rank
    raising.append(RuntimeError("Connection reset by peer"))
    code, err = _run(capsys, "raise-test")
    assert code == 1 and err.startswith("error: rank 1: RuntimeError: Connection reset by peer")
    # without a launch gloo's message is what it was
    launch(world=None)
    raising.append(RuntimeError(GLOO_CLOSED))
    code, err = _run(capsys, "raise-test")
    assert code == 1 and err.startswith("error: RuntimeError: [/__w/pytorch/")


def test_ranks_but_0_name_themselves_in_their_error_line(launch: Any,
                                                         raising: list[BaseException],
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    raising.append(StylebridgeError("the disk is full"))
    for rank, line in ((0, "error: the disk is full\n"), (2, "error: rank 2: the disk is full\n")):
        launch(rank=rank, world=3)
        assert _run(capsys, "raise-test") == (2, line)
    launch(world=None)
    assert _run(capsys, "raise-test") == (2, "error: the disk is full\n")


@pytest.fixture(scope="module")
def installed_data(env: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset whose domains are ``stylespace`` checkpoints: the command-line processes
    know only the installed plugins."""
    from stylebridge.pipelines.featureshift.dataset import build_dataset
    from stylebridge.plugins.domains import stylespace

    gen = tiny_generator(seed=0)
    methods = []
    for d in range(2):
        method = stylespace.StyleSpace(size=gen.size, style_dim=gen.style_dim,
                                       channels=gen.cfg.channels)
        with torch.no_grad():
            for p in method.offsets.values():
                p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(d)) * 0.5)
        methods.append((f"ss{d}", method))
    data = tmp_path_factory.mktemp("installed") / "data"
    build_dataset(env.images, data, generator=gen, encoder=tfs.ToyFSE(), guide=tfs.ToyGuide(),
                  domains=methods, image_size=32, shard_size=2, batch_size=2)
    return data


def test_a_failure_of_rank_0_is_one_line_and_rank_1_points_at_it(env: Any, installed_data: Path,
                                                                 tmp_path: Path) -> None:
    """Rank 0 cannot write a sample grid (a folder stands at its name); rank 1, waiting in
    the next step's all-reduce, printed gloo's "Connection closed by peer" error."""
    run = tmp_path / "run"
    (run / "samples" / "step_0000002.png").mkdir(parents=True)
    port = tfs._free_port()
    procs = []
    for rank in range(2):
        child = {**os.environ, "OMP_NUM_THREADS": "1", "RANK": str(rank), "WORLD_SIZE": "2",
                 "LOCAL_RANK": str(rank), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "stylebridge", "train", "featureshift", "--data",
             str(installed_data), "-g", str(env.gen_path), "--loss", "mse:1.0", "--batch", "1",
             "--hidden", "48", "--pretrain-inversion-steps", "1", "--steps", "4",
             "--sample-every", "2", "--adversarial", "0", "--device", "cpu", "--out", str(run)],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=child))
    errors = []
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
        errors.append([line for line in err.splitlines() if line.startswith("error: ")])
    assert [p.returncode for p in procs] == [2, 1]
    shown = run / "samples" / "step_0000002.png"
    assert errors == [[f"error: {shown}: is a folder, not a file"], [PEER_LINE.format(1).strip()]]
