"""MindTheGap's losses (Zhu et al., ICLR 2022; ZPdesu/MindTheGap ``models/MTG.py``,
``losses/clip_loss.py``) as Loss plugins.

Upstream's total loss, with the weights of ``options/MTG_options.py``::

    1·across + 0.5·within + 30·ref_clip + 10·l2 + 10·lpips

summed over two CLIP models (ViT-B/32 and ViT-B/16, weight 1 each).  With ``I_B`` the
reference, ``w_B`` its W+ inversion, ``G0`` the frozen source and ``G`` the generator being
trained (``E`` = L2-normalised CLIP image embedding, ``n(v) = v/|v|``):

``clip_direction`` (across-domain consistency; :mod:`stylebridge.plugins.losses.clip`)
    ``1 - cos(E(G(w)) - E(G0(w)), E(I_B) - E(G0(w_B)))``: upstream's
    ``domain_clip_directional_loss`` is StyleGAN-NADA's directional loss with the domain
    direction taken from the reference and its source reconstruction, which is what
    ``clip_direction`` computes when the :class:`ClipGuide` is built by
    ``ClipGuide.from_image(models, I_B, [E(G0(w_B))])`` (``train mindthegap`` does).
``mtg_within`` (within-domain consistency, ``in_clip_directional_loss``)
    ``1 - cos(n(E(G(w)) - E(I_B)), n(E(G0(w)) - E(G0(w_B))))``: a sample's offset from the
    reference in the new domain matches its offset from the reference's reconstruction in
    the source domain.
``mtg_ref_clip`` (``rec_loss``)
    ``1 - cos(E(G(w_B)), E(I_B))``: the adapted reconstruction of the reference looks like
    the reference to CLIP.
``mtg_ref_l2`` / ``mtg_ref_lpips`` (upstream ``l2_lambda``, ``lpips_lambda``)
    MSE and LPIPS (VGG, v0.1) between ``G(w_B)`` and ``I_B`` at 256 px (upstream
    bicubic-downsamples the 1024 px reconstruction by 4 and resizes the reference to 256
    with Lanczos; here both are area/antialiased-resized to ``size``, or to the generator's
    own size when it is smaller).

They read the :class:`~stylebridge.core.interfaces.LossBatch` fields ``reference``,
``reference_output`` and ``reference_source`` that the MindTheGap trainer
(:mod:`stylebridge.pipelines.train_mindthegap`) fills.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from stylebridge.core.interfaces import LossBatch
from stylebridge.plugins.losses.clip import _ClipLoss
from stylebridge.plugins.losses.recon import LPIPSLoss, MSELoss, resize_images
from stylebridge.registry import hookimpl

#: upstream's default weights (``options/MTG_options.py``), as ``--loss`` specs
DEFAULT_LOSSES: tuple[str, ...] = ("clip_direction:1.0", "mtg_within:0.5", "mtg_ref_clip:30",
                                   "mtg_ref_l2:10", "mtg_ref_lpips:10")
#: the size upstream compares the reference reconstruction at (1024 px / 4)
REFERENCE_SIZE = 256


def _cos_distance(a: Tensor, b: Tensor) -> Tensor:
    return 1.0 - F.cosine_similarity(a, b.expand_as(a), dim=-1)


class WithinDomainLoss(_ClipLoss):
    """MindTheGap's within-domain consistency ``1 - cos(E(G)-E(I_B), E(G0)-E(G0(w_B)))``."""

    name = "mtg_within"
    description = ("MindTheGap within-domain: CLIP offset sample - reference kept as in the "
                   "source (sample - reference reconstruction)")
    requires: ClassVar[frozenset[str]] = frozenset({"output", "source", "reference",
                                                    "reference_source", "clip_guide"})

    def forward(self, batch: LossBatch) -> Tensor:
        guide = self.guide(batch)
        target = guide.encode(batch, "output", self.name)
        source = guide.encode(batch, "source", self.name)
        ref = guide.encode(batch, "reference", self.name)
        ref_src = guide.encode(batch, "reference_source", self.name)
        values = []
        for trg, src, r, rs in zip(target, source, ref, ref_src, strict=True):
            edit = trg.embedding - r.embedding.detach()
            want = src.embedding - rs.embedding.detach()
            values.append(_cos_distance(edit, want).mean())
        return self.reduce(values)


class ReferenceClipLoss(_ClipLoss):
    """MindTheGap's reference loss ``1 - cos(E(G(w_B)), E(I_B))``."""

    name = "mtg_ref_clip"
    description = "MindTheGap: CLIP distance of the adapted reference reconstruction to the reference"
    requires: ClassVar[frozenset[str]] = frozenset({"reference_output", "reference",
                                                    "clip_guide"})

    def forward(self, batch: LossBatch) -> Tensor:
        guide = self.guide(batch)
        rec = guide.encode(batch, "reference_output", self.name)
        ref = guide.encode(batch, "reference", self.name)
        values = [_cos_distance(a.embedding, b.embedding.detach()).mean()
                  for a, b in zip(rec, ref, strict=True)]
        return self.reduce(values)


def _reference_pair(batch: LossBatch, loss: str, size: int) -> tuple[Tensor, Tensor]:
    rec = batch.require("reference_output", loss)
    ref = batch.require("reference", loss).detach()
    side = min(size, rec.shape[-1])
    return resize_images(rec.float(), side), resize_images(ref.float(), side)


class ReferenceL2Loss(MSELoss):
    """MindTheGap's ``l2``: MSE of ``G(w_B)`` and the reference at 256 px."""

    name = "mtg_ref_l2"
    description = "MindTheGap: MSE of the adapted reference reconstruction and the reference (256 px)"
    requires: ClassVar[frozenset[str]] = frozenset({"reference_output", "reference"})

    def __init__(self, size: int = REFERENCE_SIZE) -> None:
        super().__init__()
        if int(size) < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = int(size)

    def config(self) -> dict[str, Any]:
        return {"size": self.size}

    def forward(self, batch: LossBatch) -> Tensor:
        rec, ref = _reference_pair(batch, self.name, self.size)
        return F.mse_loss(rec, ref.expand_as(rec))


class ReferenceLPIPSLoss(LPIPSLoss):
    """MindTheGap's ``lpips``: LPIPS (VGG) of ``G(w_B)`` and the reference at 256 px."""

    name = "mtg_ref_lpips"
    description = "MindTheGap: LPIPS (VGG) of the adapted reference reconstruction and the reference"
    requires: ClassVar[frozenset[str]] = frozenset({"reference_output", "reference"})

    def __init__(self, net: str = "vgg", backbone: str | None = None,
                 size: int = REFERENCE_SIZE, allow_random: bool = False) -> None:
        super().__init__(net=net, backbone=backbone, resolutions=(max(16, int(size)),),
                         allow_random=allow_random)
        self.size = int(size)

    def config(self) -> dict[str, Any]:
        return {"net": self.net, "backbone": self.backbone, "size": self.size,
                "allow_random": self.allow_random}

    def forward(self, batch: LossBatch) -> Tensor:
        rec, ref = _reference_pair(batch, self.name, self.size)
        return self.model(rec, ref.expand_as(rec)).mean().to(torch.float32)


LOSSES = (WithinDomainLoss, ReferenceClipLoss, ReferenceL2Loss, ReferenceLPIPSLoss)


@hookimpl
def register_losses(register: Any) -> None:
    for cls in LOSSES:
        register(cls)
