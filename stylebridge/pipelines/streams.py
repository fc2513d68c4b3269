"""Random streams of a whole pipeline run, kept for the caller.

A pipeline that seeds the global generators for reproducible numbers (``run_demo``,
``train_featureshift``) must leave a Python caller's streams as they were: torch's (CPU and
CUDA), Python's :mod:`random` and numpy's.  (Here, not in ``core``: ``core`` imports torch,
safetensors and the image libraries only.)
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy
import torch


@contextlib.contextmanager
def keep_random_streams(device: torch.device | str | None = None) -> Iterator[None]:
    """:func:`~stylebridge.core.device.keep_rng_state` for a whole pipeline run that seeds
    the global generators:
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


__all__ = ["keep_random_streams"]
