"""Plain state dicts read from local weight files (shared by the LPIPS and CLIP backbones),
and the installed file of a backbone's weights entry (``stylebridge weights fetch NAME``)."""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file
from torch import Tensor

from stylebridge.core.checkpoint import (
    FILE_ERRORS,
    not_the_files,
    refuse_nonfinite,
    unreadable_safetensors,
)
from stylebridge.core.io import utf8_path
from stylebridge.core.stylegan2.rosinality import torch_load_safe
from stylebridge.errors import CheckpointError, StylebridgeError


def read_plain_state(path: Path, what: str = "") -> dict[str, Tensor]:
    """A plain state dict from ``.safetensors`` or a weights-only ``.pt``/``.pth``/``.bin``.

    Used for torchvision backbones (LPIPS) and CLIP weights
    (:func:`stylebridge.plugins.nets.clip.load_clip`; ``what="CLIP"`` names them in the
    error).  A ``{"state_dict": ...}`` wrapper and DataParallel's ``module.`` prefixes are
    removed.  Errors are :class:`CheckpointError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("no such file" if not path.exists() else "is not a file", path=path)
    if path.suffix == ".safetensors":
        try:
            with utf8_path(path) as name:
                state = load_file(name)
        except FILE_ERRORS as exc:  # memory running out is not the file's: raised as it is
            not_the_files(exc)
            raise unreadable_safetensors(path, exc) from None
        refuse_nonfinite(state, path)
        return state
    obj = torch_load_safe(path)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise CheckpointError(f"does not hold a {what + ' ' if what else ''}state dict of "
                              "tensors", path=path)
    return {k.removeprefix("module."): v for k, v in obj.items()}


def installed_weights(name: str) -> Path | None:
    """The installed file of weights entry ``name`` (``arcface-irse50``, ``lpips-alex``...)
    under the weights home (``$STYLEBRIDGE_HOME``), or ``None`` when it is not installed."""
    from stylebridge.registry.weights import WeightsManager

    manager = WeightsManager()
    try:
        return manager.path(name) if manager.installed(name) else None
    except StylebridgeError:  # an unreadable index: treated as not installed
        return None


def default_backbone(name: str, hub_file: str) -> Path | None:
    """A backbone's weights when none are given: the installed entry ``name``, else
    ``hub_file`` in torch's hub cache (where torchvision or pytorch-fid would have put it)."""
    import torch

    found = installed_weights(name)
    if found is not None:
        return found
    cached = Path(torch.hub.get_dir()) / "checkpoints" / hub_file
    return cached if cached.is_file() else None
