"""Bounded fuzzing (fixed seeds, a few hundred mutations): only our clean errors escape.

Covers the stylebridge checkpoint reader and the header/structure parsing of the
StyleGAN2 converters.  Each case is a valid small file with random byte flips,
truncations, insertions or duplicated chunks.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from stylebridge.core.checkpoint import load_checkpoint, save_checkpoint
from stylebridge.errors import CheckpointError, StylebridgeError

N_MUTATIONS = 250


def mutate(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    kind = rng.randrange(5)
    if kind == 0:  # flip a few bytes, biased towards the header at the start
        for _ in range(rng.randint(1, 8)):
            limit = len(buf) if rng.random() < 0.5 else min(len(buf), 256)
            i = rng.randrange(limit)
            buf[i] = rng.randrange(256)
    elif kind == 1:  # truncate
        del buf[rng.randrange(len(buf)):]
    elif kind == 2:  # insert junk
        i = rng.randrange(len(buf))
        buf[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    elif kind == 3:  # duplicate a chunk
        i = rng.randrange(len(buf))
        j = min(len(buf), i + rng.randint(1, 128))
        buf[i:i] = buf[i:j]
    else:  # overwrite a 8-byte window (e.g. a length field) with extreme values
        i = rng.randrange(max(1, len(buf) - 8))
        buf[i:i + 8] = rng.choice([b"\xff" * 8, b"\x00" * 8, b"\x7f" + b"\xff" * 7])
    return bytes(buf)


def run_fuzz(tmp_path: Path, seed_bytes: bytes, suffix: str, load: Callable[[Path], object],
             allowed: tuple[type[BaseException], ...], seed: int,
             n_mutations: int = N_MUTATIONS) -> dict[str, int]:
    rng = random.Random(seed)
    outcomes = {"ok": 0, "error": 0}
    for n in range(n_mutations):
        path = tmp_path / f"case{n % 4}{suffix}"
        path.write_bytes(mutate(seed_bytes, rng))
        try:
            load(path)
        except allowed as exc:
            msg = str(exc)
            assert "\n" not in msg, msg
            outcomes["error"] += 1
        else:
            outcomes["ok"] += 1
    return outcomes


def test_fuzz_stylebridge_checkpoint_reader(tmp_path: Path) -> None:
    src = save_checkpoint(tmp_path / "seed.safetensors",
                          {"a": torch.randn(3, 4), "b": torch.arange(5)},
                          kind="encoder", plugin="toy", config={"x": [1, 2], "y": "z"})
    outcomes = run_fuzz(tmp_path, src.read_bytes(), ".safetensors",
                        lambda p: load_checkpoint(p), (CheckpointError,), seed=1)
    assert outcomes["error"] > N_MUTATIONS // 2


def test_fuzz_rosinality_converter(tmp_path: Path) -> None:
    from conftest import tiny_generator

    from stylebridge.plugins.converters.stylegan2 import RosinalityConverter

    gen = tiny_generator(size=8, style_dim=8, channels={4: 4, 8: 4})
    state = {k: v for k, v in gen.state_dict().items() if k != "latent_avg"}
    seed = tmp_path / "seed.pt"
    torch.save({"g_ema": state, "latent_avg": torch.zeros(8)}, seed)
    conv = RosinalityConverter()
    outcomes = run_fuzz(tmp_path, seed.read_bytes(), ".pt",
                        lambda p: conv.convert(p, tmp_path / "out.safetensors"),
                        (StylebridgeError,), seed=2)
    assert outcomes["error"] > N_MUTATIONS // 2


def test_fuzz_nvlabs_converter(tmp_path: Path) -> None:
    from conftest import tiny_generator
    from test_nvlabs import ros_to_nv_generator, write_nvlabs_pickle

    from stylebridge.core.stylegan2.nvlabs import convert_nvlabs_pickle

    gen = tiny_generator(size=8, style_dim=8, channels={4: 4, 8: 4})
    state = {k: v for k, v in gen.state_dict().items() if k != "latent_avg"}
    marker = tmp_path / "MARKER"
    seed = write_nvlabs_pickle(tmp_path / "seed.pkl", ros_to_nv_generator(state, torch.zeros(8)),
                               None, marker,
                               g_kwargs=_tiny_g_kwargs())
    convert_nvlabs_pickle(seed)  # the unmutated file converts
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcomes = run_fuzz(tmp_path, seed.read_bytes(), ".pkl", convert_nvlabs_pickle,
                            (StylebridgeError,), seed=3, n_mutations=120)  # ~0.1 s per case
    assert outcomes["error"] > 60
    # a damaged file is one error line, without torch's unpickler warnings besides
    assert not [w for w in caught if "pickle protocol" in str(w.message)]
    assert not marker.exists()


def _tiny_g_kwargs():
    from test_nvlabs import g_init_kwargs

    return g_init_kwargs(size=8, style_dim=8, n_mlp=2)


@pytest.mark.parametrize("seed", [11, 12])
def test_fuzz_generator_checkpoint_loader(tmp_path: Path, seed: int) -> None:
    from conftest import tiny_generator

    from stylebridge.core.stylegan2.checkpoint import load_stylegan2, save_stylegan2

    gen = tiny_generator(size=8, style_dim=8, channels={4: 4, 8: 4})
    src = save_stylegan2(tmp_path / "seed.safetensors", gen)
    outcomes = run_fuzz(tmp_path, src.read_bytes(), ".safetensors", load_stylegan2,
                        (StylebridgeError,), seed=seed)
    assert outcomes["error"] > N_MUTATIONS // 2
