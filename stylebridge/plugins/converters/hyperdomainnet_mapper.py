"""The ``hyperdomainnet-mapper`` converter: HyperDomainNet's published text hyper-networks → ``hyperdomain``.

MACderRu/HyperDomainNet's README ("Pretrained model Inference") publishes its checkpoints in
one archive, ``checkpoints.zip``, whose link is in the repository's ``download.py``
(``SOURCES['checkpoints']``); it holds ``mapper_20_td.pt`` (trained on the 20 domains of
``text_domains/domain_list_20.txt``), ``mapper_large_resample_td.pt`` and
``mapper_base_im2im.pt`` (an image-conditioned mapper, not converted here).

Upstream layout (``core/utils/common.py`` ``get_trainable_model_state``, read with
``torch.load(weights_only=True)``; pickled code never runs)::

    {"model_type": "mapper", "patch_key": "cin_mult", "da_type": "td",
     "mapper_config": {"mapper_type": "residual_channelin", "backbone_type": "shared",
                       "activation": "relu", "input_dimension": 512, "width": 512,
                       "backbone_depth": 4, "head_depth": 2, ...},
     "sg2_params": {"img_size": 1024, "latent_size": 512, ...},
     "clip_encoder": "ViT-B/32",            # read by upstream's Inferencer, may be absent
     "state_dict": {"backbone.backbone.0.{lin,bn}.*", "backbone.backbone.K.{input,second}_block.*",
                    "heads.conv_I.in.J.*", ...}}

``backbone.backbone.*`` → ``net.backbone.*``; ``heads.conv_I.in.*`` → ``net.heads.<style-layer
index of conv I>.*`` (conv_0 = ``conv1``, conv_I = ``convs[I-1]``).  The generator size and
channels follow from the heads' output widths.  Any other mapper type (``*_channelwise_sep``
with ``out`` heads, ``levels`` backbones), activation, parameterisation or an ``im2im``
mapper is refused with one line.  The converted network has no stored training prompts:
every prompt is encoded with the recorded CLIP model (ViT-B-32 unless the file says
otherwise), as upstream's Inferencer does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from stylebridge.core.checkpoint import check_state_dict
from stylebridge.core.interfaces import ConversionResult, Converter
from stylebridge.core.stylegan2.rosinality import torch_load_safe
from stylebridge.errors import ConversionError
from stylebridge.plugins.domains.base import KIND, generator_layout, make_generator_config
from stylebridge.plugins.domains.hyperdomain import HyperDomain
from stylebridge.registry import hookimpl

SOURCE = "MACderRu/HyperDomainNet (checkpoints.zip of download.py)"
LICENCE = ("licence: MACderRu/HyperDomainNet is MIT-licensed code; its networks were trained "
           "through NVIDIA's StyleGAN2 FFHQ weights (NVIDIA Source Code License-NC, "
           "non-commercial) and OpenAI's CLIP")
_BACKBONE_RX = re.compile(r"^backbone\.backbone\.(\d+)\.(.+)$")
_HEAD_RX = re.compile(r"^heads\.conv_(\d+)\.in\.(\d+)\.(.+)$")
_EXPECT = {"mapper_type": "residual_channelin", "backbone_type": "shared", "activation": "relu"}


def _tensor(state: Mapping[str, Any], key: str, src: Path) -> Tensor:
    value = state.get(key)
    if not isinstance(value, Tensor):
        raise ConversionError(f"state_dict has no tensor {key!r}", path=src)
    return value


def convert_state(ck: Mapping[str, Any], src: Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """An upstream mapper checkpoint → (``HyperDomain`` config, its state dict)."""
    model_type = ck.get("model_type")
    if model_type != "mapper":
        raise ConversionError(f"has model_type {model_type!r}, expected 'mapper' (a single-domain "
                              "checkpoint is not a hyper-network)", path=src)
    if ck.get("patch_key", "cin_mult") != "cin_mult":
        raise ConversionError(f"uses patch_key {ck.get('patch_key')!r}; only 'cin_mult' (domain "
                              "modulation) is known", path=src)
    if ck.get("da_type", "td") != "td":
        raise ConversionError(f"is a {ck.get('da_type')!r} mapper (image embeddings); only text "
                              "mappers ('td') convert", path=src)
    mc = ck.get("mapper_config")
    if not isinstance(mc, Mapping):
        raise ConversionError("has no mapper_config dict", path=src)
    for key, want in _EXPECT.items():
        if mc.get(key, want) != want:
            raise ConversionError(f"has mapper_config {key}={mc.get(key)!r}; only {want!r} is "
                                  "known", path=src)
    state = ck.get("state_dict")
    if not isinstance(state, Mapping) or not state:
        raise ConversionError("has no state_dict", path=src)
    if all(str(k).startswith("module.") for k in state):  # saved from upstream's DataParallel
        state = {str(k)[len("module."):]: v for k, v in state.items()}
    tensors: dict[str, Tensor] = {}
    backbone: set[int] = set()
    heads: dict[int, set[int]] = {}
    for key, value in state.items():
        if not isinstance(value, Tensor):
            raise ConversionError(f"state_dict entry {key!r} is not a tensor", path=src)
        if m := _BACKBONE_RX.match(str(key)):
            backbone.add(int(m.group(1)))
            tensors[f"net.backbone.{m.group(1)}.{m.group(2)}"] = value
        elif m := _HEAD_RX.match(str(key)):
            heads.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
        else:
            raise ConversionError(f"state_dict has key {key!r}, unknown to the residual_channelin "
                                  "layout", path=src)
    n = len(heads)
    if n < 1 or n % 2 == 0 or sorted(heads) != list(range(n)):
        raise ConversionError(f"has heads conv_{sorted(heads)[:3]}...: a StyleGAN2 has an odd "
                              "number of convs numbered from 0 (17 at 1024 px)", path=src)
    depth = len(heads[0])
    last = depth - 1
    c_in = [int(_tensor(state, f"heads.conv_{i}.in.{last}.weight", src).shape[0])
            for i in range(n)]
    size = 2 ** ((n - 1) // 2 + 2)
    channels = {4: c_in[0]}
    for j in range((n - 1) // 2):
        r = 2 ** (j + 3)
        channels[r] = c_in[2 * j + 2]
        if c_in[2 * j + 1] != channels[r // 2]:
            raise ConversionError(f"head conv_{2 * j + 1} predicts {c_in[2 * j + 1]} channels, "
                                  f"the {r // 2}px convs have {channels[r // 2]}", path=src)
    sg2 = ck.get("sg2_params") if isinstance(ck.get("sg2_params"), Mapping) else {}
    if sg2.get("img_size") is not None and int(sg2["img_size"]) != size:
        raise ConversionError(f"sg2_params say img_size={sg2['img_size']}, but its {n} heads "
                              f"describe a {size}px generator", path=src)
    style_dim = int(sg2.get("latent_size", 512))
    layout = [layer for layer in generator_layout(make_generator_config(size, style_dim, channels))
              if not layer.is_rgb]
    for key, value in state.items():  # head conv_I → the style-layer index of conv I
        if m := _HEAD_RX.match(str(key)):
            index = layout[int(m.group(1))].index
            tensors[f"net.heads.{index}.{m.group(2)}.{m.group(3)}"] = value
    lin = _tensor(state, "backbone.backbone.0.lin.weight", src)
    inner = (int(_tensor(state, "backbone.backbone.1.input_block.0.weight", src).shape[0])
             if len(backbone) > 1 else 512)
    clip = str(ck.get("clip_encoder") or "ViT-B/32").replace("/", "-")
    config = {"size": size, "style_dim": style_dim, "channels": {str(r): c for r, c in
                                                                  channels.items()},
              "clip": [clip], "embed_dim": int(lin.shape[1]), "width": int(lin.shape[0]),
              "inner": inner, "backbone_depth": len(backbone), "head_depth": depth}
    for key, want in (("input_dimension", config["embed_dim"]), ("width", config["width"]),
                      ("backbone_depth", config["backbone_depth"]),
                      ("head_depth", config["head_depth"])):
        if key in mc and int(mc[key]) != want:
            raise ConversionError(f"mapper_config {key}={mc[key]} disagrees with its weights "
                                  f"({want})", path=src)
    return config, tensors


class HyperDomainNetConverter(Converter):
    """HyperDomainNet text hyper-networks (``mapper_*_td.pt``) → the ``hyperdomain`` method."""

    name = "hyperdomainnet-mapper"
    source = ("HyperDomainNet text mapper .pt (mapper_20_td.pt, mapper_large_resample_td.pt; "
              "residual_channelin, cin_mult); pickled code never runs")

    def convert(self, src: Path, dst: Path, **options: Any) -> ConversionResult:
        src, dst = Path(src), Path(dst)
        self.check_options(options, src)
        ck = torch_load_safe(src)
        if not isinstance(ck, Mapping):
            raise ConversionError(f"holds a {type(ck).__name__}, expected HyperDomainNet's "
                                  "checkpoint dict (model_type, mapper_config, state_dict)",
                                  path=src)
        config, tensors = convert_state(ck, src)
        method = HyperDomain(**config)
        state = {k: v.detach().to(t.dtype) for k, v in tensors.items()
                 for t in [method.state_dict()[k]] if k in method.state_dict()}
        state["prompt_embeddings"] = torch.zeros(0, config["embed_dim"])
        check_state_dict(src, {k: v.shape for k, v in method.state_dict().items()},
                         {**tensors, "prompt_embeddings": state["prompt_embeddings"]},
                         what="HyperDomainNet mapper", error=ConversionError)
        method.load_state_dict(state, strict=True)
        notes = (f"mapper CLIP {config['clip'][0]}: every prompt is encoded with it "
                 "(install its weights with `stylebridge weights`)", LICENCE)
        method.save(dst, extra={"source": SOURCE, "source_file": src.name,
                                "patch_key": "cin_mult", "notes": list(notes),
                                "licence": LICENCE})
        return ConversionResult(path=dst, kind=KIND, plugin=method.name, n_tensors=len(state),
                                notes=notes)


@hookimpl
def register_converters(register: Any) -> None:
    register(HyperDomainNetConverter())
