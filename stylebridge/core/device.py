"""``--device auto|cpu|cuda[:N]`` → :class:`torch.device`."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import torch

from stylebridge.errors import StylebridgeError


def resolve_device(name: str = "auto") -> torch.device:
    name = ("auto" if name is None else str(name)).strip().lower()
    if not name:  # an unset variable in `--device "$DEV"`: not a silent auto
        raise StylebridgeError("--device is empty: expected auto, cpu or cuda[:N]")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not re.fullmatch(r"cuda(:\d+)?", name):  # cuda:x is a typo, not a missing GPU
            raise StylebridgeError(f"--device {name!r}: expected auto, cpu or cuda[:N]")
        if not torch.cuda.is_available():
            raise StylebridgeError(f"--device {name}: no CUDA device is available (use --device cpu)")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise StylebridgeError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s)")
        return dev
    if name == "mps" or name.startswith("mps:"):  # a Mac user's first guess: said plainly
        raise StylebridgeError(f"--device {name}: Apple GPUs (MPS) are not supported yet; "
                               "use --device cpu (auto picks it on a Mac)")
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
