"""``--device auto|cpu|cuda[:N]`` → :class:`torch.device`."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy
import torch

from stylebridge.errors import StylebridgeError


def resolve_device(name: str = "auto") -> torch.device:
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise StylebridgeError(f"--device {name}: no CUDA device is available (use --device cpu)")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise StylebridgeError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s)")
        return dev
    raise StylebridgeError(f"--device {name!r}: expected auto, cpu or cuda[:N]")


@contextlib.contextmanager
def keep_rng_state() -> Iterator[None]:
    """Leave torch's global random state as it was: the CPU generator's and that of every
    CUDA device already in use (``torch.random.fork_rng`` on them).

    For building modules whose random initialisation is overwritten at once (a checkpoint's
    weights are loaded into them): loading a model must not advance a caller's random stream.
    Draws inside the block start from the caller's state, so what they draw is unchanged."""
    devices = (list(range(torch.cuda.device_count()))
               if torch.cuda.is_available() and torch.cuda.is_initialized() else [])
    with torch.random.fork_rng(devices=devices):
        yield


@contextlib.contextmanager
def keep_random_streams(device: torch.device | str | None = None) -> Iterator[None]:
    """:func:`keep_rng_state` for a whole pipeline run that seeds the global generators:
    torch's CPU generator, every CUDA device already in use and ``device`` when it is a CUDA
    device (its generator is forked before the run touches it), Python's :mod:`random` and
    numpy's global generator are as they were afterwards, whatever the block seeds or draws.

    Draws inside the block start from the caller's state and a seed set inside it acts as
    before, so what the run computes is unchanged; only the caller's streams are kept."""
    devices = (set(range(torch.cuda.device_count()))
               if torch.cuda.is_available() and torch.cuda.is_initialized() else set())
    target = torch.device(device) if device is not None else None
    if target is not None and target.type == "cuda" and torch.cuda.is_available():
        devices.add(target.index if target.index is not None else torch.cuda.current_device())
    python_state, numpy_state = random.getstate(), numpy.random.get_state()
    try:
        with torch.random.fork_rng(devices=sorted(devices)):
            yield
    finally:
        random.setstate(python_state)
        numpy.random.set_state(numpy_state)
