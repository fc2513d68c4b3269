"""CLIP-guided domain-adaptation losses: StyleGAN-NADA, in-domain angle consistency, DiFa.

The four :class:`~stylebridge.core.interfaces.Loss` plugins here train a domain
method (StyleSpace offsets, Affine+, ...) on a frozen StyleGAN2 from a text
prompt or one reference image (thesis, section *Domain Adaptation*, Eq. 1–4):

``clip_direction``
    StyleGAN-NADA's directional loss (thesis Eq. 4) and DiFa's global loss (Eq. 2):
    ``1 - cos(ΔI, Δ)`` with ``ΔI = E_I(G_θ(w)) - E_I(G_θ0(w))`` per sample and
    ``Δ`` the domain direction of the :class:`ClipGuide`: for a text target
    ``ΔT = mean_t [E_T(t(target)) - E_T(t(source))]`` over prompt templates ``t``;
    for an image target ``E_I(I_target) - v_source`` with ``v_source`` the mean CLIP
    embedding of source-generator samples.
``indomain``
    StyleDomain's in-domain angle consistency: the pairwise cosine similarities of
    the batch's CLIP embeddings must stay those of the source images,
    ``mean_{i<j} (<e_i^src, e_j^src> - <e_i^trg, e_j^trg>)^2``.
``difa_local``
    DiFa's local loss: patch tokens of CLIP's visual transformer after block
    ``layer`` (0-based, default 3) of each adapted image are matched to the reference
    image's tokens (cost ``1 - cos``); the loss is ``max(mean row-min, mean col-min)``
    averaged over the batch.
``difa_w``
    DiFa's selective cross-domain consistency (thesis Eq. 3):
    ``|mask(Δw, α) · (w_domain - w_source)|_1`` with ``w_domain``/``w_source`` the
    encoder (e4e) inversions of the adapted/source images (first 7 rows of w+,
    flattened), ``Δw`` the difference of their means over a sliding window of the
    last 50 batches, and the mask selecting the ``α = 0.6`` fraction of channels
    with the smallest ``|Δw|``; it is ramped in linearly after the window,
    ``max(0, (step - window) / (total_steps - window))``.

Facts from AIRI-Institute/StyleDomain (``SimilarDomains/core/loss.py``, ``trainers.py``,
``configs/td_nada_ffhq_sdelta.yaml``, ``configs/im2im_difa_sdelta.yaml``) and
rinongal/StyleGAN-nada (``ZSSGAN/criteria/clip_loss.py``):

* image embeddings are L2-normalised before any difference; text features are
  normalised per template, differenced, then averaged over the 79 ImageNet templates
  (open_clip's 80 OpenAI templates without ``"a photo of many {}."``);
* the loss of every CLIP model is **summed** over models (StyleDomain adds one term
  per visual encoder, ViT-B/32 and ViT-B/16, to the total); ``reduction=mean``
  averages instead;
* DiFa's local loss taps the output of ``visual.transformer.resblocks[3]`` without
  the CLS token (``clip_layer: 3``); the reference tokens are taken unnormalised and
  both sides are normalised inside the loss;
* DiFa's SCC loss: ``num_keep_first = 7`` rows, ``sliding_window_size = 50``,
  ``psp_alpha = 0.6``, ``F.l1_loss`` (mean over all batch × channel entries, masked
  entries count as zeros), ramp denominator = the run's number of iterations.

How the trainer feeds these losses (:class:`~stylebridge.core.interfaces.LossBatch`):
``output`` = adapted generator output ``[B, 3, H, W]`` in ``[-1, 1]``,
``source`` = frozen-source output for the same w+, ``clip_guide`` = a :class:`ClipGuide`
(CLIP models, domain directions, reference image), and for ``difa_w``
``target_latents``/``source_latents`` (``[B, n_latent, D]``) plus ``step`` (0-based) and
``total_steps``.  A loss class lists the fields it reads in ``requires``.  Losses with
state across steps (``difa_w``'s window) implement ``training_state()`` /
``load_training_state()`` so that a resumed run continues exactly.

CLIP models come from :func:`stylebridge.plugins.nets.clip.load_clip` (weights from a file).
A model with random weights is only for tests; :attr:`ClipGuide.random_weights` says
so and the trainer prints ``RANDOM CLIP WEIGHTS`` on everything it writes.

The CLIP encodings with intermediate tokens (:func:`clip_encode`, :class:`EncodedImages`,
:func:`clip_depth`, :func:`check_clip_layers`, :func:`center_square`) live in
:mod:`stylebridge.plugins.losses.clip_tokens`, a helper module that registers nothing;
they are re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from stylebridge.core.interfaces import Loss, LossBatch
from stylebridge.core.options import as_bool
from stylebridge.core.schema import Field
from stylebridge.errors import StylebridgeError
from stylebridge.plugins.losses.clip_tokens import (  # noqa: F401  (re-exported)
    EncodedImages,
    LossTermLike,
    _term_spec,
    _vit,
    center_square,
    check_clip_layers,
    clip_depth,
    clip_encode,
)
from stylebridge.plugins.nets.clip import ClipModel, import_open_clip
from stylebridge.registry import hookimpl

Reduction = Literal["sum", "mean"]

#: StyleDomain's / StyleGAN-NADA's default source description for FFHQ generators
#: (``source_class: Human`` in ``td_nada_ffhq_sdelta.yaml``).
DEFAULT_SOURCE_TEXT = "Human"

#: The one OpenAI ImageNet template that StyleGAN-NADA and StyleDomain leave out.
_DROPPED_TEMPLATE = "a photo of many {}."

_CACHE_KEY = "clip_encodings"


def text_templates(kind: str = "imagenet") -> list[str]:
    """Prompt templates with one ``{}``: ``imagenet`` (79, as StyleGAN-NADA/StyleDomain) or ``none``."""
    if kind == "none":
        return ["{}"]
    if kind != "imagenet":
        raise StylebridgeError(f"unknown prompt templates {kind!r} (expected imagenet or none)")
    import_open_clip()  # the package first, the caller's environment kept
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    return [t for t in (f("{}") for f in OPENAI_IMAGENET_TEMPLATES) if t != _DROPPED_TEMPLATE]


# ---------------------------------------------------------------------------------------------
# The shared CLIP state of one training run


class ClipGuide:
    """CLIP models + the target domain, shared by the CLIP losses of one run.

    ``directions[i]`` (``[1, D]``) is the domain direction for ``models[i]``: the text
    direction ``ΔT`` (text target) or ``E_I(I_target) - v_source`` (image target).
    Build it with :meth:`from_text` or :meth:`from_image`.
    """

    def __init__(self, models: Sequence[ClipModel], directions: Sequence[Tensor], *,
                 mode: Literal["text", "image"], target: str,
                 source_text: str | None = None, reference01: Tensor | None = None,
                 token_layers: Iterable[int] = ()) -> None:
        if not models:
            raise StylebridgeError("no CLIP model given (e.g. --clip ViT-B-32)")
        if len(directions) != len(models):
            raise ValueError("one direction per CLIP model is needed")
        self.models = list(models)
        self.directions = [d.detach().reshape(1, -1) for d in directions]
        self.mode = mode
        self.target = target
        self.source_text = source_text
        self.reference01 = reference01
        self.token_layers = set(token_layers)
        self._reference_tokens: dict[tuple[int, int], Tensor] = {}

    @property
    def random_weights(self) -> bool:
        return any(m.random_weights for m in self.models)

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.models]

    # -- construction ------------------------------------------------------------------------
    @staticmethod
    @torch.no_grad()
    def text_direction(clip: ClipModel, target_text: str, source_text: str,
                       templates: Sequence[str]) -> Tensor:
        """``mean_t [norm(E_T(t(target))) - norm(E_T(t(source)))]`` → ``[1, D]`` (not normalised)."""
        target = clip.encode_text([t.format(target_text) for t in templates])
        source = clip.encode_text([t.format(source_text) for t in templates])
        return (target - source).mean(0, keepdim=True)

    @classmethod
    def from_text(cls, models: Sequence[ClipModel], target_text: str,
                  source_text: str = DEFAULT_SOURCE_TEXT,
                  templates: Sequence[str] | None = None) -> ClipGuide:
        if not target_text.strip():
            raise StylebridgeError("the target prompt is empty: describe the target domain, "
                                   "e.g. --text \"a 3d render in the style of Pixar\"")
        if not source_text.strip():
            raise StylebridgeError("the source prompt is empty (e.g. --source-text Human)")
        templates = list(templates) if templates is not None else text_templates()
        directions = [cls.text_direction(m, target_text, source_text, templates) for m in models]
        return cls(models, directions, mode="text", target=target_text, source_text=source_text)

    @classmethod
    @torch.no_grad()
    def from_image(cls, models: Sequence[ClipModel], reference01: Tensor,
                   source_embeddings: Sequence[Tensor], *, target: str = "reference image",
                   token_layers: Iterable[int] = ()) -> ClipGuide:
        """``reference01``: ``[3, H, W]`` (or ``[1, 3, H, W]``) in ``[0, 1]``, centre-cropped here.

        ``source_embeddings[i]``: ``v_source`` for ``models[i]`` (see :func:`mean_embeddings`).
        """
        ref = center_square(reference01 if reference01.ndim == 4 else reference01.unsqueeze(0))
        guide = cls(models, [torch.zeros(1, 1)] * len(models), mode="image", target=target,
                    reference01=ref, token_layers=token_layers)
        directions = []
        for i, (clip, src) in enumerate(zip(models, source_embeddings, strict=True)):
            device = next(clip.model.parameters()).device
            enc = clip_encode(clip, ref.to(device), guide.token_layers)
            for layer, tokens in enc.tokens.items():
                guide._reference_tokens[(i, layer)] = tokens
            directions.append(enc.embedding - src.to(enc.embedding).reshape(1, -1))
        guide.directions = directions
        return guide

    def reference_tokens(self, model_index: int, layer: int) -> Tensor:
        """Tokens ``[1, M, C]`` of the reference image after block ``layer`` (image targets)."""
        if self.reference01 is None:
            raise StylebridgeError("difa_local needs a reference image target (--image), "
                                   "not a text prompt")
        key = (model_index, layer)
        if key not in self._reference_tokens:
            clip = self.models[model_index]
            device = next(clip.model.parameters()).device
            with torch.no_grad():
                enc = clip_encode(clip, self.reference01.to(device), [layer])
            self._reference_tokens[key] = enc.tokens[layer]
        return self._reference_tokens[key]

    # -- per-batch encodings -----------------------------------------------------------------
    def encode(self, batch: LossBatch, name: str, loss: str,
               layers: Iterable[int] = ()) -> list[EncodedImages]:
        """CLIP encodings of ``batch.<name>`` (``[-1, 1]`` images), one per model, cached in
        ``batch.cache``.

        Every loss of a step shares one forward per model and field; tokens of all
        ``token_layers`` are captured in that forward.
        """
        layers = set(layers)
        self.token_layers |= layers
        cache: dict[tuple[str, int], EncodedImages] = batch.cache.setdefault(_CACHE_KEY, {})
        images = None
        out = []
        for i, clip in enumerate(self.models):
            enc = cache.get((name, i))
            if enc is None or not layers <= set(enc.tokens):
                if images is None:
                    images = (batch.require(name, loss) + 1.0) / 2.0
                enc = clip_encode(clip, images, self.token_layers)
                cache[(name, i)] = enc
            out.append(enc)
        return out


@torch.no_grad()
def mean_embeddings(models: Sequence[ClipModel], batches: Iterable[Tensor]) -> list[Tensor]:
    """``v_source`` per model: mean of the unnormalised CLIP embeddings of ``batches``, normalised.

    ``batches`` yields ``[B, 3, H, W]`` images in ``[0, 1]`` (source-generator samples).
    StyleDomain's ``emb.type: mean`` reads DiFa's precomputed mean CLIP embeddings of
    source-generator samples (pickles not available here) and normalises them; we
    recompute that mean from ``--source-samples`` samples (truncation 0.8 by default) and
    normalise it.
    """
    sums: list[Tensor | None] = [None] * len(models)
    count = 0
    for images in batches:
        for i, clip in enumerate(models):
            device = next(clip.model.parameters()).device
            emb = clip.encode_images(images.to(device), normalize=False).float().sum(0)
            sums[i] = emb if sums[i] is None else sums[i] + emb
        count += images.shape[0]
    if count == 0:
        raise ValueError("no source images to average")
    return [F.normalize((s / count).reshape(1, -1), dim=-1) for s in sums]  # type: ignore[operator]


# ---------------------------------------------------------------------------------------------
# Losses


class _ClipLoss(Loss):
    """Shared by the CLIP losses: guide lookup and reduction over CLIP models."""

    requires: ClassVar[frozenset[str]] = frozenset({"output", "source", "clip_guide"})

    def __init__(self, reduction: Reduction = "sum") -> None:
        super().__init__()
        if reduction not in ("sum", "mean"):
            raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
        self.reduction = reduction

    def config(self) -> dict[str, Any]:
        return {"reduction": self.reduction}

    def guide(self, batch: LossBatch) -> ClipGuide:
        guide = batch.require("clip_guide", self.name)
        if not isinstance(guide, ClipGuide):
            raise TypeError(f"loss {self.name!r}: LossBatch.clip_guide must be a ClipGuide")
        return guide

    def reduce(self, values: list[Tensor]) -> Tensor:
        total = torch.stack(values).sum()
        return total / len(values) if self.reduction == "mean" else total


class ClipDirectionLoss(_ClipLoss):
    """StyleGAN-NADA directional loss / DiFa global loss: ``1 - cos(ΔI, Δ)`` (thesis Eq. 4, 2)."""

    name = "clip_direction"
    description = "StyleGAN-NADA / DiFa global: 1 - cos(E_I(G)-E_I(G0), domain direction)"

    def forward(self, batch: LossBatch) -> Tensor:
        guide = self.guide(batch)
        target = guide.encode(batch, "output", self.name)
        source = guide.encode(batch, "source", self.name)
        values = []
        for trg, src, direction in zip(target, source, guide.directions, strict=True):
            delta_i = trg.embedding - src.embedding
            delta = direction.to(delta_i).expand_as(delta_i)
            values.append((1.0 - F.cosine_similarity(delta_i, delta, dim=-1)).mean())
        return self.reduce(values)


class InDomainLoss(_ClipLoss):
    """StyleDomain's in-domain angle consistency of the batch's CLIP embeddings."""

    name = "indomain"
    description = "in-domain angle consistency: pairwise CLIP cosines kept as in the source"

    def forward(self, batch: LossBatch) -> Tensor:
        guide = self.guide(batch)
        target = guide.encode(batch, "output", self.name)
        source = guide.encode(batch, "source", self.name)
        n = target[0].embedding.shape[0]
        if n < 2:
            raise StylebridgeError("loss 'indomain' compares pairs of images: use --batch 2 or more")
        rows, cols = torch.tril_indices(n, n, offset=-1)
        values = []
        for trg, src in zip(target, source, strict=True):
            cos_t = trg.embedding @ trg.embedding.T
            cos_s = src.embedding @ src.embedding.T
            values.append(((cos_s[rows, cols] - cos_t[rows, cols]) ** 2).mean())
        return self.reduce(values)


class DifaLocalLoss(_ClipLoss):
    """DiFa local loss: nearest-token matching of CLIP block-``layer`` tokens to the reference."""

    name = "difa_local"
    description = "DiFa local: CLIP token matching to the reference image (block `layer`)"
    requires: ClassVar[frozenset[str]] = frozenset({"output", "clip_guide"})

    def __init__(self, layer: int = 3, reduction: Reduction = "sum") -> None:
        super().__init__(reduction)
        self.layer = int(layer)

    @property
    def clip_layers(self) -> tuple[int, ...]:
        return (self.layer,)

    def config(self) -> dict[str, Any]:
        return {"layer": self.layer, "reduction": self.reduction}

    @staticmethod
    def token_distance(tokens: Tensor, reference: Tensor) -> Tensor:
        """``tokens [B, N, C]``, ``reference [1, M, C]`` → ``[B]``: max(mean row-min, mean col-min)."""
        a = F.normalize(tokens, dim=-1)
        b = F.normalize(reference, dim=-1).expand(a.shape[0], -1, -1)
        cost = 1.0 - torch.bmm(a, b.transpose(1, 2))          # [B, N, M]
        row = cost.min(dim=2).values.mean(dim=1)
        col = cost.min(dim=1).values.mean(dim=1)
        return torch.maximum(row, col)

    def forward(self, batch: LossBatch) -> Tensor:
        guide = self.guide(batch)
        target = guide.encode(batch, "output", self.name, layers=[self.layer])
        values = []
        for i, trg in enumerate(target):
            ref = guide.reference_tokens(i, self.layer)
            values.append(self.token_distance(trg.tokens[self.layer], ref.to(trg.tokens[self.layer])).mean())
        return self.reduce(values)


class DifaSccLoss(Loss):
    """DiFa selective cross-domain consistency on encoder latents (thesis Eq. 3).

    ``reduction``: ``mean`` (default) is DiFa's code, ``F.l1_loss``: the mean over every
    batch × channel entry; ``sum`` is Eq. 3 as written, ``‖·‖₁`` = the sum of the masked
    ``|w_domain - w_source|`` over a sample's entries (the formula is for one ``z``), averaged
    over the batch (its estimate of the expectation over ``z``), i.e. ``mean`` × the number of
    entries per sample (7·512 = 3584 at the defaults).  Eq. 3 restricts no rows and has no
    ramp: ``keep_rows=18`` (or more: every row of w+ at 1024 px) covers all rows, and
    ``ramp=false`` weighs every step fully (the window still averages Δw).  The defaults
    are DiFa's released code (7 rows, mean, ramp), whose scale the image-mode weight
    ``difa_w:6.0`` (λ_scc = 6, StyleDomain's ``im2im_difa_sdelta.yaml``) was set for:
    ``difa_w:6:keep_rows=18,reduction=sum,ramp=false`` is Eq. 3 as written."""

    name = "difa_w"
    description = "DiFa selective cross-domain consistency |mask(Δw, α)·(w_domain - w_source)|_1"
    requires: ClassVar[frozenset[str]] = frozenset({"target_latents", "source_latents", "step",
                                                    "total_steps"})
    config_schema: ClassVar[Mapping[str, Field]] = {"reduction": Field("str", choices=("mean", "sum")),
                                                    "ramp": Field("bool")}

    def __init__(self, alpha: float = 0.6, window: int = 50, keep_rows: int = 7,
                 reduction: str = "mean", ramp: bool = True) -> None:
        super().__init__()
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if int(window) < 1 or int(keep_rows) < 1:
            raise ValueError("window and keep_rows must be >= 1")
        if reduction not in ("mean", "sum"):
            raise ValueError(f"difa_w: reduction must be 'mean' (DiFa's code) or 'sum' (Eq. 3 as "
                             f"written), got {reduction!r}")
        self.alpha = float(alpha)
        self.window = int(window)
        self.keep_rows = int(keep_rows)
        self.reduction = reduction
        self.ramped = as_bool(ramp, "ramp")
        self._source: list[Tensor] = []
        self._target: list[Tensor] = []
        self._pos = 0

    def config(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "window": self.window, "keep_rows": self.keep_rows,
                "reduction": self.reduction, "ramp": self.ramped}

    # -- state across steps ------------------------------------------------------------------
    def reset(self) -> None:
        self._source, self._target, self._pos = [], [], 0

    def training_state(self) -> dict[str, Tensor]:
        """The sliding window, as tensors (for the trainer's resume file)."""
        if not self._source:
            return {"pos": torch.tensor([0])}
        return {"source": torch.stack(self._source).cpu(), "target": torch.stack(self._target).cpu(),
                "pos": torch.tensor([self._pos])}

    def load_training_state(self, state: dict[str, Tensor], device: torch.device | str = "cpu") -> None:
        self.reset()
        if "source" in state:
            self._source = [t.to(device) for t in state["source"]]
            self._target = [t.to(device) for t in state["target"]]
        self._pos = int(state["pos"][0]) if "pos" in state else 0

    def _update(self, source: Tensor, target: Tensor) -> Tensor:
        src, trg = source.detach().mean(0), target.detach().mean(0)
        if len(self._target) < self.window:
            self._source.append(src)
            self._target.append(trg)
        else:
            self._source[self._pos] = src
            self._target[self._pos] = trg
            self._pos = (self._pos + 1) % self.window
        return torch.stack(self._target).mean(0) - torch.stack(self._source).mean(0)

    def mask(self, delta_w: Tensor) -> Tensor:
        """1 on the ``α`` fraction of channels with the smallest ``|Δw|`` (ties: lower index)."""
        n = delta_w.numel()
        chosen = delta_w.abs().argsort(stable=True)[: int(self.alpha * n)]
        cond = torch.zeros(n, device=delta_w.device, dtype=delta_w.dtype)
        cond[chosen] = 1.0
        return cond

    def ramp(self, step: int, total_steps: int) -> float:
        """DiFa's weight ``max(0, (step - window) / (total_steps - window))``; 0 when total <= window;
        1 with ``ramp=false`` (Eq. 3 as written)."""
        if not self.ramped:
            return 1.0
        if total_steps <= self.window:
            return 0.0
        return min(1.0, max(0.0, (step - self.window) / (total_steps - self.window)))

    def forward(self, batch: LossBatch) -> Tensor:
        target = batch.require("target_latents", self.name)
        source = batch.require("source_latents", self.name)
        step = int(batch.require("step", self.name))
        total = int(batch.require("total_steps", self.name))
        if target.shape != source.shape:
            raise ValueError(f"loss 'difa_w': latents of shape {list(target.shape)} and "
                             f"{list(source.shape)} differ")
        rows = min(self.keep_rows, target.shape[1]) if target.ndim == 3 else target.shape[1]
        target = target[:, :rows].reshape(target.shape[0], -1)
        source = source[:, :rows].reshape(source.shape[0], -1)
        delta_w = self._update(source, target)
        cond = self.mask(delta_w).unsqueeze(0)
        if self.reduction == "sum":  # Eq. 3: ‖·‖₁ per sample, averaged over the batch
            loss = (cond * target - cond * source).abs().sum(1).mean()
        else:
            loss = F.l1_loss(cond * target, cond * source)
        return self.ramp(step, total) * loss


LOSSES = (ClipDirectionLoss, InDomainLoss, DifaLocalLoss, DifaSccLoss)


@hookimpl
def register_losses(register: Any) -> None:
    for cls in LOSSES:
        register(cls)
