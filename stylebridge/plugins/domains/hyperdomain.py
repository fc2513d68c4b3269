"""HyperDomainNet's hyper-network: a CLIP text embedding → the domain-modulation vectors.

Alanov, Titov & Vetrov (NeurIPS 2022) train one network over many text domains that predicts
the domain-modulation parameterisation of :mod:`stylebridge.plugins.domains.modulation`
(``W'_i = demod(W_i·s_i)·(1 + d_i)``, one ``d_i`` per input channel of every modulated conv,
none on ToRGB) from the CLIP text embedding of a prompt, so that any prompt, also one never
seen in training, renders without retraining:
``--method hyperdomain:NET.safetensors:text=a sketch``.

Architecture (MACderRu/HyperDomainNet ``core/mappers.py``, ``mapper_type:
residual_channelin`` with ``configs/td_multiple.yaml``'s ``mapper_config``: ``backbone_type:
shared``, ``activation: relu``, ``input_dimension: 512``, ``width: 512``, ``backbone_depth:
4``, ``head_depth: 2``)::

    backbone = BN(ReLU(Linear(D → width)))  then (backbone_depth - 1) residual blocks
    head_i   = (head_depth - 1) residual blocks, then Linear(width → C_in of conv i)
    residual block(x) = ReLU(x + BN(Linear(inner → width)(ReLU(BN(Linear(width → inner)(x))))))

with ``inner = 512`` (upstream's fixed ``inner_features``), every Linear initialised
Xavier-uniform × 0.01 with zero bias (so a fresh network predicts ``d ≈ 0``: the source
generator), BatchNorm with PyTorch defaults.  The input is the L2-normalised CLIP text
embedding of the prompt alone (template ``"{}"``) by the mapper CLIP model (upstream's
``mapper_encoder_type = 'ViT-B/32'``); several ``clip`` models concatenate their embeddings.

The vectors have exactly ``domain_modulation``'s layout (style-layer index of each conv →
``[C_in]``), and :meth:`HyperDomain.weight_deltas` goes through the same
:func:`~stylebridge.plugins.domains.modulation.modulation_edits`, so ``--calibrate alpha``
and ``--skip-layers`` (``offset_scale``) mean the same thing for both: a scale of the change
``d_i`` of layer ``i``.  :meth:`HyperDomain.domain_modulation` freezes the vectors of one
prompt into a ``domain_modulation`` method.

Text.  The training prompts and their mapper embeddings are stored in the checkpoint
(``prompts`` in the config, buffer ``prompt_embeddings``), so they render without CLIP.
Another prompt is encoded with the CLIP model(s) recorded in the config, loaded from the
weights installed with ``stylebridge weights`` (as ``train domain`` loads CLIP); a network
trained through random CLIP weights (tests) rebuilds the same random models from the
recorded seed and is labelled RANDOM, never real; ``clip_weights=PATH`` names the weights file of
the (one) mapper CLIP model instead.  The ``text=`` option is one string; a
prompt with commas goes in double quotes (``text="a sketch, in pencil"``: commas otherwise
separate spec options); surrounding quotes are removed.

Train it with ``stylebridge train hyperdomain`` (:mod:`stylebridge.pipelines.train_hyperdomain`);
convert the published upstream networks with ``stylebridge convert hyperdomainnet-mapper``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from stylebridge.core.schema import Field
from stylebridge.core.stylegan2.layers import ConvEdit
from stylebridge.errors import StylebridgeError
from stylebridge.plugins.domains.base import StyleDomainMethod, as_scale
from stylebridge.plugins.domains.modulation import DomainModulation, modulation_edits
from stylebridge.registry import hookimpl

if TYPE_CHECKING:
    from stylebridge.core.stylegan2.generator import Generator

#: upstream's mapper CLIP model (``_setup_mapper_encoder_model``: ``'ViT-B/32'``)
DEFAULT_MAPPER_CLIP = ("ViT-B-32",)
MAX_PROMPTS = 100_000
TextEncoder = Callable[[Sequence[str]], Tensor]


# ---------------------------------------------------------------------------------------------
# The network (our code after upstream's core/mappers.py; parameter names follow it so that
# the converter maps upstream files by renaming prefixes)


def _init_linear(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        with torch.no_grad():
            module.weight.mul_(0.01)
            module.bias.zero_()


class LinReluBN(nn.Module):
    """``BN(ReLU(Linear(x)))`` (upstream ``BNLinRelu``: the BatchNorm comes last)."""

    def __init__(self, features_in: int, features_out: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(features_out)
        self.lin = nn.Linear(features_in, features_out)
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.act(self.lin(x)))


class ResidualBlock(nn.Module):
    """``ReLU(x + BN(Linear(ReLU(BN(Linear(x))))))`` (upstream ``DummyResBlock``)."""

    def __init__(self, features: int, inner: int) -> None:
        super().__init__()
        self.input_block = nn.Sequential(nn.Linear(features, inner), nn.BatchNorm1d(inner),
                                         nn.ReLU())
        self.second_block = nn.Sequential(nn.Linear(inner, features), nn.BatchNorm1d(features))
        self.out = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.second_block(self.input_block(x)) + x)


class HyperNetwork(nn.Module):
    """Embedding ``[B, D]`` → one ``[B, C_in]`` vector per modulated conv (``heads`` keyed by
    the conv's style-layer index)."""

    def __init__(self, embed_dim: int, conv_channels: Mapping[int, int], *, width: int = 512,
                 inner: int = 512, backbone_depth: int = 4, head_depth: int = 2) -> None:
        super().__init__()
        self.backbone = nn.Sequential(LinReluBN(embed_dim, width),
                                      *[ResidualBlock(width, inner)
                                        for _ in range(backbone_depth - 1)])
        self.heads = nn.ModuleDict([
            (str(i), nn.Sequential(*[ResidualBlock(width, inner) for _ in range(head_depth - 1)],
                                   nn.Linear(width, c)))
            for i, c in conv_channels.items()])
        self.apply(_init_linear)

    def forward(self, embedding: Tensor) -> dict[int, Tensor]:
        features = self.backbone(embedding)
        return {int(k): head(features) for k, head in self.heads.items()}


# ---------------------------------------------------------------------------------------------
# The domain method


def _clean_text(text: Any) -> str | None:
    if text is None:
        return None
    value = str(text).strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1].strip()
    return value


class HyperDomain(StyleDomainMethod):
    """HyperDomainNet: a hyper-network predicting ``domain_modulation``'s vectors from text."""

    name = "hyperdomain"
    description = ("HyperDomainNet hyper-network: CLIP text embedding -> domain-modulation "
                   "vectors (any prompt, text=...)")
    text_conditioned: ClassVar[bool] = True
    config_schema: ClassVar[Mapping[str, Field]] = {
        **StyleDomainMethod.config_schema,
        "text": Field("any"), "clip": Field("any"), "prompts": Field("any"),
        "embed_dim": Field("int", 1, 8192), "width": Field("int", 1, 8192),
        "inner": Field("int", 1, 8192), "backbone_depth": Field("int", 1, 64),
        "head_depth": Field("int", 1, 16), "random_clip": Field("bool"),
        "clip_seed": Field("int", 0, 2**63 - 1), "clip_weights": Field("str", nullable=True),
    }

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> None:
        super().check_config(config)
        clip = config.get("clip", DEFAULT_MAPPER_CLIP)
        if not isinstance(clip, list | tuple) or not 1 <= len(clip) <= 8 \
                or not all(isinstance(c, str) and c for c in clip):
            raise ValueError("config clip: expected a list of 1..8 CLIP model names")
        prompts = config.get("prompts", ())
        if not isinstance(prompts, list | tuple) or len(prompts) > MAX_PROMPTS \
                or not all(isinstance(p, str) and len(p) <= 1000 for p in prompts):
            raise ValueError(f"config prompts: expected a list of at most {MAX_PROMPTS} strings")
        text = config.get("text")
        if text is not None and not isinstance(text, str | int | float):
            raise ValueError("config text: expected a prompt (a string)")

    def __init__(self, size: int = 1024, style_dim: int = 512,
                 channels: Mapping[Any, int] | None = None,
                 weight_offset_layers: Sequence[int] = (), *, text: Any = None,
                 clip: Sequence[str] = DEFAULT_MAPPER_CLIP, prompts: Sequence[str] = (),
                 embed_dim: int = 512, width: int = 512, inner: int = 512,
                 backbone_depth: int = 4, head_depth: int = 2, random_clip: bool = False,
                 clip_seed: int = 0, clip_weights: str | None = None) -> None:
        super().__init__(size, style_dim, channels, weight_offset_layers)
        self.text = _clean_text(text)
        self.clip = [str(c) for c in clip]
        self.prompts = [str(p) for p in prompts]
        self.embed_dim, self.width, self.inner = int(embed_dim), int(width), int(inner)
        self.backbone_depth, self.head_depth = int(backbone_depth), int(head_depth)
        self.random_clip, self.clip_seed = bool(random_clip), int(clip_seed)
        self.clip_weights = clip_weights
        if clip_weights is not None and len(self.clip) != 1:
            raise ValueError("clip_weights= names the weights file of one mapper CLIP model; "
                             f"this network uses {len(self.clip)}")
        if self.random_clip:
            self.random_weights = True
        self.net = HyperNetwork(self.embed_dim, {layer.index: layer.in_ch for layer in self.layout
                                                 if not layer.is_rgb},
                                width=self.width, inner=self.inner,
                                backbone_depth=self.backbone_depth, head_depth=self.head_depth)
        self.register_buffer("prompt_embeddings", torch.zeros(len(self.prompts), self.embed_dim))
        self._text_encoder: TextEncoder | None = None
        self._encoded: dict[str, Tensor] = {}

    @classmethod
    def for_generator(cls, generator: Generator, **options: Any) -> StyleDomainMethod:
        raise ValueError("a hyper-network is trained over a list of prompts: use "
                         "`stylebridge train hyperdomain --prompts prompts.txt`")

    def config(self) -> dict[str, Any]:
        return {**super().config(), "text": self.text, "clip": list(self.clip),
                "prompts": list(self.prompts), "embed_dim": self.embed_dim,
                "width": self.width, "inner": self.inner,
                "backbone_depth": self.backbone_depth, "head_depth": self.head_depth,
                "random_clip": self.random_clip, "clip_seed": self.clip_seed,
                "clip_weights": self.clip_weights}

    @property
    def layers(self) -> list[int]:
        """Style-layer indices of the modulated convs (``domain_modulation``'s layout)."""
        return [int(k) for k in self.net.heads]

    def layer_parameters(self, indices: Any) -> list[nn.Parameter] | None:
        # the shared backbone changes every layer: `--freeze-layers` traces and holds the
        # parameters frozen layers depend on (and refuses ones shared with trained layers)
        return None

    # -- text ---------------------------------------------------------------------------------
    def use_text_encoder(self, encoder: TextEncoder | None) -> None:
        """Encode prompts outside the checkpoint with ``encoder`` (texts → ``[N, embed_dim]``
        L2-normalised) instead of the recorded CLIP models (the trainer passes its own)."""
        self._text_encoder = encoder
        self._encoded.clear()

    def _clip_encoder(self) -> TextEncoder:
        from stylebridge.plugins.nets.clip import import_open_clip, load_clip
        from stylebridge.registry.weights import WeightsManager

        open_clip = import_open_clip()
        device = self.prompt_embeddings.device
        models = []
        for i, name in enumerate(self.clip):
            if name not in open_clip.list_models():
                raise StylebridgeError(
                    f"domain {self.label}: text={self.text!r} is not one of its "
                    f"{len(self.prompts)} training prompts, and encoding it needs CLIP {name}, "
                    "which open_clip does not know here (a tiny-preset test model? only the "
                    "training prompts render)")
            path = Path(self.clip_weights) if self.clip_weights is not None else None
            if path is None and not self.random_clip:
                path = WeightsManager().resolve("clip", name)
            if path is None and not self.random_clip:
                raise StylebridgeError(
                    f"domain {self.label}: text={self.text!r} is not one of its "
                    f"{len(self.prompts)} training prompts, and encoding it needs CLIP {name}, "
                    "which is not installed (`stylebridge weights` lists how to get it; or "
                    "give clip_weights=PATH)")
            if path is not None and not path.is_file():
                raise StylebridgeError(f"domain {self.label}: clip_weights={path}: no such file")
            models.append(load_clip(name, weights=path, device=device, seed=self.clip_seed + i))

        @torch.no_grad()
        def encode(texts: Sequence[str]) -> Tensor:
            return torch.cat([m.encode_text(list(texts)).float() for m in models], dim=-1)

        return encode

    def embed(self, texts: Sequence[str]) -> Tensor:
        """The mapper input ``[N, embed_dim]`` of ``texts``: stored embeddings for training
        prompts, else encoded (and cached) with the text encoder."""
        rows = []
        known = {p: i for i, p in enumerate(self.prompts)}
        for text in texts:
            if text in known:
                rows.append(self.prompt_embeddings[known[text]])
                continue
            if text not in self._encoded:
                if self._text_encoder is None:
                    self._text_encoder = self._clip_encoder()
                emb = self._text_encoder([text]).reshape(1, -1)
                if emb.shape[1] != self.embed_dim:
                    raise StylebridgeError(
                        f"domain {self.label}: the text encoder gives {emb.shape[1]}-d "
                        f"embeddings, the network takes {self.embed_dim}-d")
                self._encoded[text] = emb[0].detach().to(self.prompt_embeddings)
            rows.append(self._encoded[text])
        return torch.stack(rows)

    def _require_text(self) -> str:
        if not self.text:
            raise StylebridgeError(
                f"domain {self.label}: a hyper-network renders the domain of a prompt: give "
                "text=PROMPT, e.g. --method hyperdomain:NET.safetensors:text=a sketch")
        return self.text

    # -- vectors ------------------------------------------------------------------------------
    def vectors(self, embeddings: Tensor) -> dict[int, Tensor]:
        """Mapper input ``[B, embed_dim]`` → style-layer index → ``d_i`` ``[B, C_in]``."""
        return self.net(embeddings)

    def text_vectors(self, text: str | None = None) -> dict[int, Tensor]:
        """The vectors ``d_i`` ``[C_in]`` of one prompt (default: the ``text`` option), with
        BatchNorm's running statistics (a single prompt has no batch statistics)."""
        text = _clean_text(text) if text is not None else self._require_text()
        emb = self.embed([text])
        was = self.net.training
        self.net.eval()
        try:
            vectors = self.net(emb)
        finally:
            self.net.train(was)
        return {i: v[0] for i, v in vectors.items()}

    def for_text(self, text: str) -> DomainModulation:
        """:meth:`domain_modulation` of ``text``, labelled with the prompt."""
        method = self.domain_modulation(text)
        method.label = _clean_text(text) or self.label
        if self.random_weights:
            method.random_weights = True
        return method

    def domain_modulation(self, text: str | None = None) -> DomainModulation:
        """A ``domain_modulation`` method holding the vectors of one prompt."""
        desc = self.generator_description()
        method = DomainModulation(**desc)
        with torch.no_grad():
            for i, d in self.text_vectors(text).items():
                method.modulation[str(i)].copy_(d)
        return method.to(self.prompt_embeddings.device)

    # -- DomainMethod -------------------------------------------------------------------------
    def styles(self, generator: Generator, w_plus: Tensor,
               offset_scale: Sequence[float] | Tensor | None = None) -> list[Tensor]:
        """The source styles: domain modulation changes the demodulated weights, not ``s``."""
        _, styles, _ = self._prepare(generator, w_plus, offset_scale)
        return styles

    def has_weight_offsets(self) -> bool:
        return bool(self.text) or super().has_weight_offsets()

    def weight_deltas(self, generator: Generator,
                      offset_scale: Sequence[float] | Tensor | None = None
                      ) -> dict[int, Tensor | ConvEdit]:
        """The ``domain_modulation`` edits of the ``text`` option's vectors."""
        return self.edits_for(generator, self.text_vectors(), offset_scale)

    def edits_for(self, generator: Generator, vectors: Mapping[int, Tensor],
                  offset_scale: Sequence[float] | Tensor | None = None
                  ) -> dict[int, Tensor | ConvEdit]:
        """Edits for given vectors (``[C_in]`` or one ``[B, C_in]`` per sample, the trainer's)."""
        edits = dict(super().weight_deltas(generator, offset_scale))
        scale = as_scale(offset_scale, self.n_style_layers, device=self.prompt_embeddings.device,
                         dtype=self.prompt_embeddings.dtype)
        return modulation_edits(edits, vectors, scale)


@hookimpl
def register_domain_methods(register: Any) -> None:
    register(HyperDomain)
