"""``--device auto|cpu|cuda[:N]`` → :class:`torch.device`."""

from __future__ import annotations

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
