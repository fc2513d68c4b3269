"""Kill -9 and ``--resume``: training runs survive a hard kill and end exactly where an
uninterrupted run ends.

Each trainer (``stylebridge train domain`` and ``stylebridge train featureshift``) runs in a
subprocess through the real CLI.  A small driver (:data:`DRIVER`) adds only what a test needs:
one torch thread, tiny random CLIP models for ``train domain`` (no CLIP weights exist here;
the run says RANDOM CLIP WEIGHTS), and a *hang point* that parks the process at a known place
so that the SIGKILL lands deterministically:

* ``step:N``: before optimisation step N+1 (N steps done, the checkpoint of step 2 on disk);
* ``state-write:N``: in the middle of writing the training state of step N: half of the bytes
  are in the temporary file when the process is killed.

Each trainer is killed twice in one chain: between checkpoints (``step:3``), then, resumed,
in the middle of writing its state (``state-write:4``).  The test polls for the checkpoint and
the driver's hang marker, sends SIGKILL, checks what is on disk, resumes with ``--resume``,
and at the end compares every tensor (``torch.equal``) with an uninterrupted run of the same
seed that ran concurrently.  It also checks that every resume started from the last complete
checkpoint, i.e. lost at most one checkpoint interval of work.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import tiny_generator
from PIL import Image
from safetensors.torch import load_file
from torch import Tensor, nn

from stylebridge.core.checkpoint import read_header
from stylebridge.core.interfaces import Encoder, Inversion, Preprocessing
from stylebridge.core.stylegan2.checkpoint import save_stylegan2

EVERY = 2          # --checkpoint-every
STEPS = 6          # total steps of every run
DEADLINE = 90.0    # seconds for any one subprocess (a loaded, shared machine)

#: Runs ``stylebridge.cli.main.main(argv)`` with one torch thread, tiny CLIP models and an
#: optional hang point (env ``SB_HANG`` = ``step:N`` | ``state-write:N``, ``SB_HANG_MARKER``).
DRIVER = r'''
import json, os, sys, time
import torch
torch.set_num_threads(1)

from stylebridge.pipelines import train_domain as td
from stylebridge.pipelines.featureshift import trainer as fs
import stylebridge.core.checkpoint as ck

HANG = os.environ.get("SB_HANG", "")
MARKER = os.environ.get("SB_HANG_MARKER", "")


def hang(what):
    tmp = MARKER + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(what)
    os.replace(tmp, MARKER)
    time.sleep(600)
    sys.exit(99)


class TinyClip(torch.nn.Module):
    """A CLIP-shaped toy (patch conv + pooling; token embedding + pooling), RANDOM weights."""

    def __init__(self, seed):
        super().__init__()
        torch.manual_seed(seed)
        self.visual = torch.nn.Conv2d(3, 16, 8, stride=8)   # no transformer blocks
        self.image_proj = torch.nn.Linear(16, 16)
        self.tokens = torch.nn.Embedding(256, 16)
        self.text_proj = torch.nn.Linear(16, 16)

    def encode_image(self, images):
        return self.image_proj(torch.tanh(self.visual(images)).mean((2, 3)))

    def encode_text(self, tokens):
        return self.text_proj(torch.tanh(self.tokens(tokens)).mean(1))


def tokenize(texts):
    rows = [list(t.encode("utf-8")[:32].ljust(32, b" ")) for t in texts]
    return torch.tensor(rows, dtype=torch.long)


def tiny_clip_models(names, weights, *, allow_random, device="cpu", seed=0):
    """Tiny CLIP-shaped models on RANDOM weights instead of ViT-B-32/16 (tests only)."""
    from stylebridge.plugins.nets.clip import ClipModel

    if not allow_random:
        raise td.StylebridgeError("no CLIP weights (test driver)")
    return [ClipModel(name=f"tiny-{name}", model=TinyClip(100 + i).eval().requires_grad_(False),
                      tokenizer=tokenize, image_size=32, random_weights=True)
            for i, name in enumerate(names)]


td.build_clip_models = tiny_clip_models

if HANG:
    where, _, n = HANG.partition(":")
    n = int(n)
    if where == "step":
        for cls, attr in ((td.DomainTrainer, "training_step"), (fs.FeatureShiftTrainer, "_train_step")):
            def wrap(orig):
                def step(self):
                    if self.step == n:
                        hang(f"step {self.step}")
                    return orig(self)
                return step
            setattr(cls, attr, wrap(getattr(cls, attr)))
    elif where == "state-write":
        real_write = ck.write_tensors

        def write_tensors(tensors, filename, metadata=None):
            header = json.loads((metadata or {}).get("stylebridge", "{}"))
            real_write(tensors, filename, metadata)
            if header.get("kind", "").endswith("state") and header["extra"].get("step") == n:
                with open(filename, "rb") as fh:
                    data = fh.read()
                with open(filename, "wb") as fh:
                    fh.write(data[: len(data) // 2])
                    fh.flush()
                    os.fsync(fh.fileno())
                hang(f"writing {filename}")

        ck.write_tensors = write_tensors
    else:
        raise SystemExit(f"bad SB_HANG {HANG!r}")

from stylebridge.cli.main import main
sys.exit(main(sys.argv[1:]))
'''


# ---------------------------------------------------------------------------------------------
# Subprocess helpers


def _env(tmp: Path, hang: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SB_HANG")}
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COLUMNS": "200",
                "STYLEBRIDGE_HOME": str(tmp / "home"), "PYTHONHASHSEED": "0"})
    if hang is not None:
        env["SB_HANG"] = hang
        env["SB_HANG_MARKER"] = str(tmp / "hang.marker")
    return env


_STARTED: list[subprocess.Popen[bytes]] = []


@pytest.fixture(autouse=True)
def _reap() -> Any:
    """Kill the subprocesses a failed test left running (only those this module started)."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _start(argv: list[str], tmp: Path, name: str, hang: str | None = None,
           ) -> tuple[subprocess.Popen[bytes], Path]:
    log = tmp / f"{name}.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-c", DRIVER, *argv], stdout=fh,
                                stderr=subprocess.STDOUT, env=_env(tmp, hang), cwd=tmp)
    _STARTED.append(proc)
    return proc, log


def _finish(proc: subprocess.Popen[bytes], log: Path) -> str:
    try:
        code = proc.wait(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"subprocess ran past {DEADLINE} s:\n{log.read_text()}")
    text = log.read_text()
    assert code == 0, text
    return text


def _kill_at_marker(proc: subprocess.Popen[bytes], log: Path, marker: Path,
                    checkpoint: Path, want_step: int) -> str:
    """Poll for the checkpoint (at ``want_step``) and the hang marker, then SIGKILL."""
    deadline = time.monotonic() + DEADLINE
    seen_checkpoint = False
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the run ended (code {proc.returncode}) before the kill point:\n"
                        f"{log.read_text()}")
        if not seen_checkpoint and checkpoint.is_file():
            seen_checkpoint = read_header(checkpoint).extra.get("step", 0) >= want_step
        if seen_checkpoint and marker.is_file():
            break
        time.sleep(0.05)
    else:
        proc.kill()
        proc.wait()
        pytest.fail(f"no checkpoint/hang marker within {DEADLINE} s:\n{log.read_text()}")
    what = marker.read_text()
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    marker.unlink()
    return what


def _tensors(path: Path) -> dict[str, Tensor]:
    return {k: v.clone() for k, v in load_file(path).items()}


def _assert_same(a: dict[str, Tensor], b: dict[str, Tensor], ignore: tuple[str, ...] = ()) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        if key not in ignore:
            assert torch.equal(a[key], b[key]), key


# the kill points of every chain, in order: (name, SB_HANG, steps done when killed); both
# resumes start from the complete checkpoint of step 2 (the write at step 4 never completes)
KILL_CHAIN = (("mid-interval", "step:3", 3), ("mid-write", "state-write:4", 4))
RESUME_STEP = 2
# Both tests are `slow`: each costs four subprocesses (10-25 s on the shared 2-core machine).


# ---------------------------------------------------------------------------------------------
# stylebridge train domain


@pytest.fixture(scope="module")
def generator_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_stylegan2(tmp_path_factory.mktemp("gen") / "g.safetensors", tiny_generator())


def _domain_argv(gen: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "domain", "--method", "stylespace", "--text", "a pixar render",
            "--templates", "none", "--generator", str(gen), "--out", str(out), "--batch", "2",
            "--allow-random-clip", "--clip", "ViT-B-32", "--device", "cpu",
            "--freeze-layers", "none", "--mixing", "0.5", "--steps", str(STEPS),
            "--checkpoint-every", str(EVERY), "--sample-every", "0", "--seed", "3", *extra]


@pytest.mark.slow
def test_train_domain_resumes_after_two_kills_as_the_uninterrupted_run(
        generator_ckpt: Path, tmp_path: Path) -> None:
    ref_out, out = tmp_path / "ref.safetensors", tmp_path / "run.safetensors"
    state = out.with_name("run.train-state.safetensors")
    ref = _start(_domain_argv(generator_ckpt, ref_out), tmp_path, "ref")
    for n, (point, hang, done_at_kill) in enumerate(KILL_CHAIN):
        extra = ("--resume",) if n else ()
        run = _start(_domain_argv(generator_ckpt, out, *extra), tmp_path, f"run{n}", hang=hang)
        what = _kill_at_marker(*run, tmp_path / "hang.marker", state, EVERY)
        assert what.startswith("writing" if point == "mid-write" else f"step {done_at_kill}")
        # on disk after the kill: the complete checkpoint of step 2, no half-written state
        assert read_header(state).extra["step"] == RESUME_STEP, point
        leftovers = sorted(p.name for p in tmp_path.glob(".run.train-state.safetensors.*.tmp"))
        assert len(leftovers) == (1 if point == "mid-write" else 0)  # hidden, never read
        assert done_at_kill - RESUME_STEP <= EVERY      # at most one checkpoint interval lost
    at_checkpoint = _tensors(state)

    text = _finish(*_start(_domain_argv(generator_ckpt, out, "--resume"), tmp_path, "resume"))
    assert f"resuming from step {RESUME_STEP} " in text and "RANDOM CLIP WEIGHTS" in text
    _finish(*ref)

    assert read_header(out).extra["step"] == read_header(ref_out).extra["step"] == STEPS
    final, expected = _tensors(out), _tensors(ref_out)
    _assert_same(final, expected)
    _assert_same(_tensors(state), _tensors(ref_out.with_name("ref.train-state.safetensors")))
    # the comparison is not trivial: training moved the offsets after the checkpoint
    assert any(float(t.abs().max()) > 0 for t in final.values())
    assert any(not torch.equal(final[k], at_checkpoint[f"method.{k}"]) for k in final)


# ---------------------------------------------------------------------------------------------
# stylebridge train featureshift

N_LATENT, STYLE_DIM, LAYER = 8, 32, 3    # tiny_generator: activation 3 is 32 × 8 × 8


class _Guide(Encoder):
    """w+ from a fixed random projection of a 4×4 thumbnail (the guiding encoder)."""

    name = "kill-test-guide"

    def __init__(self) -> None:
        super().__init__()
        self.preprocessing = Preprocessing(size=16)
        self.proj = nn.Linear(48, N_LATENT * STYLE_DIM)
        _seed(self, 1)

    def config(self) -> dict[str, Any]:
        return {}

    def encode(self, images: Tensor) -> Inversion:
        x = nn.functional.adaptive_avg_pool2d(self.preprocessing(images), 4).flatten(1)
        return Inversion(w_plus=self.proj(x).view(-1, N_LATENT, STYLE_DIM))


class _FSE(Encoder):
    """w+ and a 32×8×8 feature replacing activation 3 (an FSE stand-in)."""

    name = "kill-test-fse"

    def __init__(self) -> None:
        super().__init__()
        self.preprocessing = Preprocessing(size=16)
        self.proj = nn.Linear(48, N_LATENT * STYLE_DIM)
        self.feat = nn.Conv2d(3, 32, 1)
        _seed(self, 2)

    def config(self) -> dict[str, Any]:
        return {}

    def encode(self, images: Tensor) -> Inversion:
        x = self.preprocessing(images)
        w = self.proj(nn.functional.adaptive_avg_pool2d(x, 4).flatten(1))
        feat = self.feat(nn.functional.adaptive_avg_pool2d(x, 8))
        return Inversion(w_plus=w.view(-1, N_LATENT, STYLE_DIM), features={LAYER: feat})


def _seed(module: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g))


@pytest.fixture(scope="module")
def fs_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(generator checkpoint, dataset dir): 5 images, one built-in ``stylespace`` domain."""
    from stylebridge.pipelines.featureshift.dataset import build_dataset
    from stylebridge.plugins.domains.stylespace import StyleSpace

    root = tmp_path_factory.mktemp("fs")
    gen = tiny_generator(seed=0)
    gen_path = save_stylegan2(root / "gen.safetensors", gen)
    rng = np.random.default_rng(0)
    images = []
    for i in range(5):
        path = root / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
        images.append(path)
    domain = StyleSpace(size=gen.size, style_dim=gen.style_dim,
                        channels={str(r): c for r, c in gen.cfg.channels.items()})
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for p in domain.offsets.values():
            p.copy_(0.5 * torch.randn(p.shape, generator=g))
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        build_dataset(images, root / "data", generator=gen, encoder=_FSE(), guide=_Guide(),
                      domains=[("dom", domain)], image_size=32, shard_size=4, batch_size=2,
                      per_domain=True, dtype="float32")
    finally:
        torch.set_num_threads(n)
    return gen_path, root / "data"


def _fs_argv(gen: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "featureshift", "--data", str(data), "--generator", str(gen),
            "--loss", "mse:1.0", "--inversion-loss", "mse:1.0", "--pretrain-inversion-steps", "3",
            "--steps", str(STEPS), "--batch", "2", "--hidden", "24", "--n-blocks", "3",
            "--lr", "1e-2", "--checkpoint-every", str(EVERY), "--log-every", "1",
            "--sample-every", "0", "--seed", "5", "--adversarial", "0", "--out", str(out),
            "--device", "cpu", *extra]


def _log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_train_featureshift_resumes_after_two_kills_as_the_uninterrupted_run(
        fs_dataset: tuple[Path, Path], tmp_path: Path) -> None:
    gen, data = fs_dataset
    ref_out, out = tmp_path / "ref", tmp_path / "run"
    ref = _start(_fs_argv(gen, data, ref_out), tmp_path, "ref")
    for n, (point, hang, done_at_kill) in enumerate(KILL_CHAIN):
        extra = ("--resume",) if n else ()
        run = _start(_fs_argv(gen, data, out, *extra), tmp_path, f"run{n}", hang=hang)
        what = _kill_at_marker(*run, tmp_path / "hang.marker", out / "state.safetensors", EVERY)
        assert what.startswith("writing" if point == "mid-write" else f"step {done_at_kill}")
        assert read_header(out / "state.safetensors").extra["step"] == RESUME_STEP, point
        assert read_header(out / "model.safetensors").extra["step"] == RESUME_STEP, point
        leftovers = sorted(p.name for p in out.glob(".state.safetensors.*.tmp"))
        assert len(leftovers) == (1 if point == "mid-write" else 0)
        before = _log(out / "log.jsonl")              # every line of the killed run is whole
        assert max(r["step"] for r in before if "total" in r) == done_at_kill
    at_checkpoint = _tensors(out / "model.safetensors")

    _finish(*_start(_fs_argv(gen, data, out, "--resume"), tmp_path, "resume"))
    _finish(*ref)
    log = _log(out / "log.jsonl")
    starts = [r for r in log if r.get("event") == "start"]
    assert [(r["step"], r["resumed"]) for r in starts] == [
        (0, False), (RESUME_STEP, True), (RESUME_STEP, True)]
    assert (log[-1]["event"], log[-1]["step"]) == ("end", STEPS)

    final = _tensors(out / "model.safetensors")
    _assert_same(final, _tensors(ref_out / "model.safetensors"))
    _assert_same(_tensors(out / "state.safetensors"), _tensors(ref_out / "state.safetensors"))
    assert any(not torch.equal(final[k], at_checkpoint[k]) for k in final)
    # the resumed run's losses repeat the reference's steps 3..6 exactly
    ref_losses = {r["step"]: r["total"] for r in _log(ref_out / "log.jsonl") if "total" in r}
    resumed_at = log.index(starts[-1])
    new_losses = {r["step"]: r["total"] for r in log[resumed_at:] if "total" in r}
    assert sorted(new_losses) == list(range(RESUME_STEP + 1, STEPS + 1))
    assert all(new_losses[s] == ref_losses[s] for s in new_losses)
    # the killed runs' records after the checkpoint were dropped: every step is logged once
    assert [r["step"] for r in log if "total" in r] == list(range(1, STEPS + 1))
