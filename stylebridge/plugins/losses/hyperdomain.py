"""HyperDomainNet's multi-domain CLIP losses: per-sample text directions and ``tt_direction``.

A hyper-network step renders every sample of the batch in its own domain (a prompt, or a
convex mix of the batch's prompts), so the domain direction of StyleGAN-NADA's
``clip_direction`` differs per sample.  :class:`PromptBatchGuide` is the
:class:`~stylebridge.plugins.losses.clip.ClipGuide` of such a run: its ``directions`` are
``[B, D]`` per CLIP model (``clip_direction`` and ``indomain`` from
:mod:`stylebridge.plugins.losses.clip` read it unchanged), and ``targets`` holds each sample's
target text embedding for:

``tt_direction``
    HyperDomainNet's target-target direction loss (MACderRu/HyperDomainNet ``core/loss.py``
    ``target_target_direction``): for every pair ``i > j`` of the batch,
    ``1 - cos(E_I(G_i) - E_I(G_j), T_i - T_j)`` with ``T`` the template-averaged target text
    embeddings, averaged over pairs and summed over CLIP models (``reduction=mean``
    averages).  It keeps the domains apart: two prompts must move the images apart the way
    their texts differ.  Weight 0.4 in ``configs/td_multiple.yaml`` (``direction`` 1.0).

The in-domain angle consistency (``indomain`` in clip.py, upstream's ``indomain``: weight 1.5
in ``td_single_car.yaml``, not in the multi-domain configs) works with this guide too.

Differences from upstream: image embeddings are L2-normalised (upstream's multi-domain
trainer ``td_multiple_resample_and_convex`` differences raw ``encode_image`` outputs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from stylebridge.core.interfaces import LossBatch
from stylebridge.errors import StylebridgeError
from stylebridge.plugins.losses.clip import ClipGuide, Reduction, _ClipLoss
from stylebridge.plugins.nets.clip import ClipModel
from stylebridge.registry import hookimpl


class PromptBatchGuide(ClipGuide):
    """A text :class:`ClipGuide` whose direction and target differ per sample.

    The trainer calls :meth:`set_batch` every step with, per CLIP model, ``directions``
    ``[B, D]`` (target - source text embedding of each sample's domain) and ``targets``
    ``[B, D]`` (its target text embedding).
    """

    def __init__(self, models: Sequence[ClipModel], *, target: str,
                 source_text: str | None = None) -> None:
        super().__init__(models, [torch.zeros(1, 1) for _ in models], mode="text",
                         target=target, source_text=source_text)
        self.targets: list[Tensor] | None = None

    def set_batch(self, directions: Sequence[Tensor], targets: Sequence[Tensor]) -> None:
        if len(directions) != len(self.models) or len(targets) != len(self.models):
            raise ValueError("one direction and one target batch per CLIP model are needed")
        self.directions = [d.detach() for d in directions]
        self.targets = [t.detach() for t in targets]


class TargetTargetDirectionLoss(_ClipLoss):
    """HyperDomainNet ``tt_direction``: pairwise image differences follow text differences."""

    name = "tt_direction"
    description = ("HyperDomainNet target-target direction: 1 - cos(E_I(G_i)-E_I(G_j), "
                   "T_i-T_j) over pairs of the batch's domains")

    def __init__(self, reduction: Reduction = "sum") -> None:
        super().__init__(reduction)

    def forward(self, batch: LossBatch) -> Tensor:
        guide = self.guide(batch)
        if not isinstance(guide, PromptBatchGuide) or guide.targets is None:
            raise StylebridgeError("loss 'tt_direction' compares the domains of one batch: it "
                                   "needs a multi-prompt trainer (stylebridge train hyperdomain)")
        encoded = guide.encode(batch, "output", self.name)
        n = encoded[0].embedding.shape[0]
        if n < 2:
            raise StylebridgeError("loss 'tt_direction' compares pairs of images: use --batch 2 "
                                   "or more")
        rows, cols = torch.tril_indices(n, n, offset=-1)
        values = []
        for enc, target in zip(encoded, guide.targets, strict=True):
            emb = enc.embedding
            text = target.to(emb)
            d_img = emb[cols] - emb[rows]
            d_text = text[cols] - text[rows]
            values.append((1.0 - F.cosine_similarity(d_img.float(), d_text.float(), dim=-1))
                          .mean())
        return self.reduce(values)


@hookimpl
def register_losses(register: Any) -> None:
    register(TargetTargetDirectionLoss)
