"""Shared test helpers: the reference fixtures (tests/data) and small networks."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
# The developers' read-only folder beside the checkout; STYLEBRIDGE_SHARED points elsewhere
# (a non-existent path checks that a fresh clone tests itself from tests/data alone).
SHARED = Path(os.environ.get("STYLEBRIDGE_SHARED", REPO.parent / "shared"))


def pytest_configure(config: pytest.Config) -> None:
    """The tests' checkpoint hashes never go to the user's cache (STYLEBRIDGE_HOME's
    cache/sha256.json: most tests leave STYLEBRIDGE_HOME as it is): one file per run."""
    import tempfile

    if "STYLEBRIDGE_HASH_CACHE" not in os.environ:
        folder = tempfile.mkdtemp(prefix="stylebridge-test-hashes-")
        os.environ["STYLEBRIDGE_HASH_CACHE"] = os.path.join(folder, "sha256.json")


def _fixture_dir(kind: str, probe: str) -> Path:
    """tests/data/<kind> (vendored, see tests/data/README.md), else ../shared/fixtures/<kind>."""
    vendored = DATA / kind
    return vendored if (vendored / probe).is_file() else SHARED / "fixtures" / kind


SG2_FIXTURES = _fixture_dir("stylegan2", "rosinality_tiny64.pt")
ENCODER_FIXTURES = _fixture_dir("encoders", "fse_ffhq_keys.json")

# Under pytest-xdist every worker is its own process: one torch thread each, so that n workers
# on n cores do not run 2n threads on them (measured on 2 cores: the tests' summed durations were
# 486 s that way, 381 s in a serial run; 408 s with one thread per worker, measured together
# with the shorter kill-and-resume tests).
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)



@pytest.fixture(autouse=True)
def _seeded_global_rng() -> None:
    """Every test starts from the same global torch RNG state, whichever tests ran before it
    in this (xdist) worker: a test that draws from ``torch.randn`` without its own generator
    sees the same numbers in every run and every order."""
    torch.manual_seed(20261205)


# Fixture channels: replaces the default dict (see the fixture README).
TINY_CHANNELS = {4: 64, 8: 64, 16: 64, 32: 32, 64: 16}


def fixture_file(kind: str, name: str) -> Path:
    """The reference fixture ``tests/data/<kind>/<name>`` (committed; see tests/data/README.md),
    else the same file under ../shared/fixtures/<kind> (or $STYLEBRIDGE_SHARED/fixtures/<kind>).
    A missing one fails the test, naming the file: it is part of the checkout, so its absence is
    a broken clone, not a reason to skip."""
    for folder in (DATA / kind, SHARED / "fixtures" / kind):
        if (folder / name).is_file():
            return folder / name
    pytest.fail(f"reference fixture {DATA / kind / name} is missing (it is committed in "
                "tests/data; see tests/data/README.md)", pytrace=False)


def require_sg2_fixture() -> Path:
    """The folder of the tiny StyleGAN2 parity fixture (its three files must all be there)."""
    for name in ("rosinality_tiny64.pt", "rosinality_tiny64_config.json",
                 "rosinality_tiny64_expected.safetensors"):
        if not (SG2_FIXTURES / name).is_file():
            pytest.fail(f"StyleGAN2 parity fixture {SG2_FIXTURES / name} is missing (committed "
                        "in tests/data/stylegan2; see tests/data/README.md)", pytrace=False)
    return SG2_FIXTURES


@pytest.fixture(scope="session")
def sg2_fixture() -> dict:
    """The tiny rosinality checkpoint, its config and the expected tensors."""
    from safetensors.torch import load_file

    fx = require_sg2_fixture()
    ckpt = torch.load(fx / "rosinality_tiny64.pt", map_location="cpu", weights_only=True)
    # clone: safetensors tensors are not 64-byte aligned (see the fixture README)
    expected = {k: v.clone() for k, v in load_file(fx / "rosinality_tiny64_expected.safetensors").items()}
    config = json.loads((fx / "rosinality_tiny64_config.json").read_text())
    return {"ckpt": ckpt, "expected": expected, "config": config, "dir": fx}


@pytest.fixture(scope="session")
def converted_tiny(tmp_path_factory: pytest.TempPathFactory, sg2_fixture: dict) -> Path:
    """The fixture converted once to our format by the rosinality converter."""
    from stylebridge.plugins.converters.stylegan2 import RosinalityConverter

    dst = tmp_path_factory.mktemp("converted") / "tiny64.safetensors"
    RosinalityConverter().convert(sg2_fixture["dir"] / "rosinality_tiny64.pt", dst)
    return dst



def load_script(path: Path, name: str | None = None):
    """A script that is not part of a package (``benchmarks/*.py``, ``tests/data/*``) as a
    module, so tests can call its functions."""
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

def tiny_generator(seed: int = 0, size: int = 32, style_dim: int = 32, **kw) -> torch.nn.Module:
    from stylebridge.core.stylegan2 import Generator

    torch.manual_seed(seed)
    channels = kw.pop("channels", {r: 32 if r <= 16 else 16 for r in (4, 8, 16, 32, 64, 128)})
    gen = Generator(size=size, style_dim=style_dim, n_mlp=2, channels=channels, **kw)
    with torch.no_grad():  # non-trivial biases and noise strengths
        for p in gen.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return gen.eval()


def random_stylespace(gen: Any, seed: int, scale: float = 1.0) -> Any:
    """A StyleSpace domain for ``gen`` whose offsets are ``scale`` × seeded normal noise."""
    from stylebridge.plugins.domains.stylespace import StyleSpace

    method = StyleSpace(size=gen.size, style_dim=gen.style_dim,
                        channels={str(r): c for r, c in gen.cfg.channels.items()})
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in method.offsets.values():
            p.copy_(scale * torch.randn(p.shape, generator=g))
    return method


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread: tiny networks run much faster so on a shared 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


@pytest.fixture
def no_weights_one_thread(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """An empty ``STYLEBRIDGE_HOME`` (no installed weights) and :func:`one_torch_thread`
    (``pytestmark = pytest.mark.usefixtures("no_weights_one_thread")``)."""
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "home"))
    with one_torch_thread():
        yield


@pytest.fixture
def registered(request: pytest.FixtureRequest) -> Iterator[None]:
    """The process-wide registry with the requesting test module added as a plugin."""
    from stylebridge.registry import get_registry, reset_registry

    reset_registry()
    get_registry().add_plugin(request.module, "tests")
    yield
    reset_registry()


OPS_SWITCHES = ("STYLEBRIDGE_OPS", "STYLEBRIDGE_EPILOGUE", "STYLEBRIDGE_UPFIRDN2D")


@pytest.fixture
def clean_ops_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The ops' switches at their defaults (no environment variable, no Python override) and
    the CUDA extension untried, before and after the test."""
    from stylebridge.core.ops import _cuda, set_backend, set_fused_epilogue, set_upfirdn2d_tiled

    def reset() -> None:
        set_backend(None)
        set_fused_epilogue(None)
        set_upfirdn2d_tiled(None)
        _cuda.reset()

    for name in OPS_SWITCHES:
        monkeypatch.delenv(name, raising=False)
    reset()
    yield
    reset()


def tiny_clip_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path, Any]:
    """A tiny random CLIP written under ``tmp_path`` and a weights home whose manifest lists it
    as ``tiny-clip``, not installed yet: ``(model name, its file, the manager)``."""
    from stylebridge.pipelines.presets import write_tiny_clips
    from stylebridge.registry.weights import WeightsEntry, WeightsManager

    files = write_tiny_clips(tmp_path / "clip")
    name = sorted(files)[0]
    entry = WeightsEntry(name="tiny-clip", kind="clip", plugin=name, filename="tiny.safetensors",
                         licence="test")
    home = tmp_path / "home"
    monkeypatch.setattr("stylebridge.registry.weights.WeightsManager",
                        lambda *a, **k: WeightsManager(home, manifest=[entry]))
    return name, files[name], WeightsManager(home, manifest=[entry])


@pytest.fixture
def fake_clips(monkeypatch: pytest.MonkeyPatch) -> None:
    """The domain pipelines' CLIP loader builds tiny random CLIPs (model i seeded seed + i)."""
    from test_train_domain import tiny_clip

    from stylebridge.pipelines import train_domain as td

    def fake(names: Any, weights: Any, *, allow_random: bool, device: Any = "cpu",
             seed: int = 0) -> list:
        return [tiny_clip(seed + i, 8, n) for i, n in enumerate(names)]

    monkeypatch.setattr(td, "build_clip_models", fake)
