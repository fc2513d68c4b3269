"""Shared readers for the HyperDomainNet family of ``.pt`` files (no plugin here).

MACderRu/HyperDomainNet and StyleDomain's SimilarDomains (a fork of it) save one domain as a
dict ``{model_type, patch_key, state_dict, sg2_params, da_type[, style_latents]}`` whose
``state_dict`` holds one head per modulated conv, ``heads.conv_{k}.*``, with ``conv_0`` the
4 px ``conv1`` and ``conv_k`` ``convs[k-1]`` (upstream ``offsets_model.py``; no ToRGB heads).
Used by the ``styledomain`` (``s_delta``) and ``hyperdomainnet`` (``cin_mult``) converters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from stylebridge.errors import CheckpointError, ConversionError
from stylebridge.plugins.domains.base import generator_layout, make_generator_config


def log2_size(n_convs: int, path: Path | None) -> int:
    if n_convs < 1 or n_convs % 2 == 0:
        raise ConversionError(f"has {n_convs} per-conv heads; a StyleGAN2 has an odd number "
                              "(17 at 1024 px)", path=path)
    return (n_convs - 1) // 2 + 2



def conv_heads_layout(widths: Sequence[tuple[str, int]], style_dim: int,
                      path: Path | None) -> tuple[dict[str, Any], list[int]]:
    """(head name, input width) of every modulated conv in execution order (upstream's
    ``conv_0`` = ``conv1``, ``conv_k`` = ``convs[k-1]``) → (generator description, the
    style-layer index of each head).  Shared by the SimilarDomains and HyperDomainNet readers."""
    log_size = log2_size(len(widths), path)
    channels = {4: widths[0][1]}
    for j in range(log_size - 2):
        r = 2 ** (j + 3)
        if widths[2 * j + 1][1] != channels[r // 2]:
            raise ConversionError(
                f"head {widths[2 * j + 1][0]} has {widths[2 * j + 1][1]} channels, but the "
                f"{r // 2}px layer before it has {channels[r // 2]}", path=path)
        channels[r] = widths[2 * j + 2][1]
    cfg = make_generator_config(2 ** log_size, style_dim, channels)
    conv_idx = [layer.index for layer in generator_layout(cfg) if not layer.is_rgb]
    desc = {"size": cfg.size, "style_dim": cfg.style_dim,
            "channels": {str(r): c for r, c in cfg.channels.items()}}
    return desc, conv_idx



#: ``model_type`` of a single-domain file: SimilarDomains' and HyperDomainNet's spellings
PARAMETRIZATION_TYPES = ("parametrization", "parameterization")


def parametrization_state(ck: Any, options: Mapping[str, Any], src: Path, *, what: str,
                          hint: str) -> tuple[Mapping[str, Any], str]:
    """(per-conv state dict, patch_key) of a HyperDomainNet-family ``.pt`` (SimilarDomains and
    HyperDomainNet save the same dict: ``model_type``, ``patch_key``, ``state_dict``,
    ``sg2_params``, ``da_type``; or a training ``checkpoint.pt`` / bare ``heads.*`` dict plus
    ``-o patch_key=...``).  ``what`` names the file kind, ``hint`` the option to pass."""
    if not isinstance(ck, Mapping):
        raise ConversionError(f"holds a {type(ck).__name__}, expected the {what} dict "
                              "(model_type, patch_key, state_dict, ...)", path=src)
    if "state_dict" in ck:
        state, patch_key = ck["state_dict"], ck.get("patch_key")
    elif "trainable" in ck:  # training checkpoint.pt
        state, patch_key = ck["trainable"], options.get("patch_key")
    elif ck and all(isinstance(k, str) and k.startswith("heads.") for k in ck):
        state, patch_key = ck, options.get("patch_key")
    else:
        keys = ", ".join(sorted(map(str, ck))[:8]) or "none"
        raise ConversionError(f"is not a {what} checkpoint (top-level keys: {keys})", path=src)
    if patch_key is None:
        raise ConversionError(f"does not say its parameterisation ({hint})", path=src)
    model_type = ck.get("model_type", PARAMETRIZATION_TYPES[0])
    if model_type not in PARAMETRIZATION_TYPES:
        raise ConversionError(f"has model_type {model_type!r}; only single-domain "
                              "'parametrization' checkpoints can be converted ('mapper' is a "
                              "hyper-network, 'original' a fine-tuned generator)", path=src)
    if not isinstance(state, Mapping):
        raise ConversionError(f"state_dict is a {type(state).__name__}, not a dict", path=src)
    return state, str(patch_key)


def sg2_params(ck: Mapping[str, Any]) -> dict[str, Any]:
    """The ``sg2_params`` dict of a HyperDomainNet-family ``.pt`` ({} when absent)."""
    sg2 = ck.get("sg2_params")
    return dict(sg2) if isinstance(sg2, Mapping) else {}


def parametrization_extra(ck: Mapping[str, Any], src: Path, notes: list[str]) -> dict[str, Any]:
    """Header extra of a converted HyperDomainNet-family file: ``da_type``, ``style_latents``
    (kept, with a note), plain ``sg2_params``; appends to ``notes``."""
    extra: dict[str, Any] = {"source_file": src.name}
    da_type = ck.get("da_type")
    if da_type is not None:
        extra["da_type"] = str(da_type)
    latents = ck.get("style_latents")
    if isinstance(latents, Tensor):
        extra["style_latents"] = latents.detach().float().cpu().tolist()
        extra["style_latents_shape"] = list(latents.shape)
        notes.append(f"kept style_latents {list(latents.shape)} (the style image's W+ rows "
                     "7..) in the header: rendered mixed in, as upstream's inference does "
                     "(FILE:mix=false renders without)")
    sg2 = sg2_params(ck)
    if sg2:
        extra["sg2_params"] = {k: v for k, v in sg2.items()
                               if isinstance(v, str | int | float | bool) and k != "device"}
    return extra


def check_img_size(ck: Mapping[str, Any], desc: Mapping[str, Any], src: Path) -> None:
    img_size = sg2_params(ck).get("img_size")
    if img_size is not None and int(img_size) != desc["size"]:
        raise ConversionError(f"sg2_params say img_size={img_size}, but the heads describe a "
                              f"{desc['size']}px generator", path=src)


def take_style_latents(method: Any, extra: Mapping[str, Any], src: Path) -> None:
    """Give ``method`` (``stylespace`` / ``domain_modulation``) the style image's rows of an
    image domain, checked against its generator at conversion rather than at every load."""
    try:
        method.read_extra(extra)
    except CheckpointError as exc:
        raise ConversionError(exc.message, path=src) from None
