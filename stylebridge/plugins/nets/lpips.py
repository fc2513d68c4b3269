"""The torchvision ImageNet backbone of LPIPS, read from a local file (never downloaded here:
``stylebridge weights fetch lpips-alex`` installs it).

Shared by the ``lpips`` metric and the ``lpips`` loss: the ``lpips`` package ships its
linear heads but fetches the AlexNet / VGG16 trunk from torchvision; we copy a local
torchvision state dict (``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth``) into it.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from stylebridge.core.options import as_bool
from stylebridge.errors import CheckpointError
from stylebridge.plugins.nets.state import default_backbone, read_plain_state

#: torchvision's file names of the ImageNet backbones, per lpips ``net``
TORCHVISION_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}
#: their weights entries (``stylebridge weights fetch lpips-alex``)
WEIGHTS_ENTRIES = {"alex": "lpips-alex", "vgg": "lpips-vgg"}


def default_lpips_backbone(net: str) -> Path | None:
    """The backbone file used without ``backbone=PATH``: the installed ``lpips-NET`` entry,
    else torchvision's file in the torch hub cache; ``None`` when neither is there."""
    return default_backbone(WEIGHTS_ENTRIES[net], TORCHVISION_FILES[net])


def unavailable_backbone(cls: type, config: Mapping[str, Any]) -> tuple[str, ...]:
    """The ``lpips-NET`` entry the loss or metric class ``cls`` built with ``config`` would
    need and cannot find (:meth:`~stylebridge.core.interfaces.Plugin.unavailable_weights`;
    ``net`` defaults to the default of ``cls``'s own ``net`` parameter): none when it names a
    ``backbone`` file, allows random weights, or finds the default one."""
    own = inspect.signature(cls).parameters.get("net")
    default = "alex" if own is None or own.default is inspect.Parameter.empty else own.default
    net = config.get("net", default)
    if net not in WEIGHTS_ENTRIES or config.get("backbone") is not None \
            or as_bool(config.get("allow_random", False), "allow_random"):
        return ()  # a bad net or flag: building says so
    return () if default_lpips_backbone(net) is not None else (WEIGHTS_ENTRIES[net],)


def missing_backbone_hint(net: str, option: str) -> str:
    """How to provide the backbone, for the one-line refusal of a random one."""
    return (f"run `stylebridge weights fetch {WEIGHTS_ENTRIES[net]}`, or pass {option} to "
            f"{TORCHVISION_FILES[net]}")


def load_lpips_backbone(model: torch.nn.Module, path: Path) -> None:
    """Copy torchvision ``features.N.*`` weights into the lpips trunk ``net.sliceK.N.*``."""
    if not Path(path).is_file():  # `backbone=none` is a file name too: say what it names
        net = model.pnet_type
        what = "is not a file" if Path(path).exists() else "no such file"
        raise CheckpointError(f"{what} (the LPIPS backbone, backbone= / --lpips-backbone: "
                              f"torchvision's {TORCHVISION_FILES.get(net, net)}; leave it out "
                              "for the installed one)", path=path)
    state = read_plain_state(path)
    target = model.net.state_dict()
    mapped: dict[str, Tensor] = {}
    for key, ours in target.items():
        _, index_param = key.split(".", 1)          # "slice2.3.weight" -> "3.weight"
        src = state.get(f"features.{index_param}")
        if src is None:
            raise CheckpointError(f"is not a torchvision {model.pnet_type} state dict: "
                                  f"no features.{index_param}", path=path)
        if src.shape != ours.shape:
            raise CheckpointError(f"features.{index_param} has shape {list(src.shape)}, expected "
                                  f"{list(ours.shape)} (wrong network for lpips net="
                                  f"{model.pnet_type}?)", path=path)
        if not bool(torch.isfinite(src).all()):
            raise CheckpointError(f"features.{index_param} contains NaN or Inf values", path=path)
        mapped[key] = src.float()
    model.net.load_state_dict(mapped, strict=True)
