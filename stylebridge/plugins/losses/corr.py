"""Losses on style vectors that need no pretrained network: ``corr``.

``corr`` is the correlation regulariser of the thesis ("Future work / Latent
correlations")::

    L_corr = Σ_i Σ_{j≠i} [ (s_i^new)ᵀ s_j^new − (s_i^old)ᵀ s_j^old ]²

What ``i`` and ``j`` index.  The thesis does not say; it wants to "save the
correlation between style codes ... while preserving the relationship between
style codes", in StyleSpace training and in encoder training ("force the
distribution of correlations between predicted latents to stay the same",
"regularize outputs' correlations").  We read ``i, j`` as the **samples of a
batch**, within one modulated layer: (1) ``s_iᵀ s_j`` needs vectors of equal
length, and style vectors of different layers differ in width (512 … 32 at
1024 px); (2) the second line can only come from the first when ``i`` and ``j``
share one offset (``Δs_i = Δs_j``), as the samples of a batch do under a layer's
StyleSpace offset, while two layers have different offsets.  So for every style
layer ``l`` given we compute the Gram matrices ``G = S Sᵀ`` (``S`` = ``[B, C_l]``)
of the adapted and the source styles and sum the squared off-diagonal
differences over layers::

    L_corr = Σ_l Σ_{i≠j} (G_new^l − G_old^l)_{ij}²

Even with a shared offset ``Δ`` the second line equals the first only when also
``s_iᵀΔ = s_jᵀΔ`` (the exact term is ``Δᵀ(Δ + s_i + s_j)``): it is a
simplification, and we implement the definition (first line).  With a batch of
one there are no pairs and the loss is 0.  ``reduction="mean"`` divides by the
number of (layer, ordered pair) terms, ``"sum"`` (default) is the formula as
written.

``norm`` and ``reduction``: the thesis defines the loss on style vectors, whose scale the
generator fixes, and there its formula is used as written (``norm=none``, ``reduction=sum``).
It gives no form for feature maps, and on them the formula as written is meaningless at any
fixed weight: a feature map's Gram entries grow with its size and values (the joint loss of
``train featureshift`` reached 6e9 at ``corr:1e3`` on the tiny preset).  So on features
(``on=features``, the default in ``train featureshift``) the defaults are the other reading,
"the correlation between" vectors taken literally: ``norm=cosine`` (each sample's vector
L2-normalised first, ``G_ij = cos(s_i, s_j)``, scale-free, every term at most 4) and
``reduction=mean`` (over the ordered pairs), so a weight such as the brief's ``1e3`` means
the same on any generator.  Both are ``auto`` by default and resolve by ``on``; give
``norm=none,reduction=sum`` for the formula as written on features, or ``norm=cosine`` on
styles.  :meth:`CorrLoss.config` records what was used.

``on=styles`` (the default, except in ``train featureshift``) regularises
``LossBatch.styles`` against ``styles_source`` — what ``train domain`` trains.
``on=features`` (the default in ``train featureshift``, which changes no styles, so that
``--loss corr:1e3`` works there as written) applies the same Gram-matrix
penalty to feature maps, ``features`` against ``features_target`` (each sample's
map flattened to one vector): in ``train featureshift`` that keeps the pairwise
inner products of the shifted features F' close to those of FSE's F (the thesis'
"regularization on ... feature maps", Experiments), since FeatureShift does not
change the styles at all.

``over``: what ``i`` and ``j`` index.  ``samples`` (default): the reading above, ``G = S Sᵀ``
(``[B, B]``) per layer.  ``channels``: the other reading of "the correlation between style
codes", StyleSpace's name for single channels: ``i, j`` are the channels of a layer and
``s_i`` is channel ``i``'s values over the batch, ``G = Sᵀ S`` (``[C_l, C_l]``, the channels'
Gram matrix over the batch), ``L = Σ_l Σ_{i≠j} (G_new^l − G_old^l)_{ij}²``.  On features a
channel's vector is its values over the batch and all positions, ``G_cc' = Σ_{b,h,w}
F[b,c,h,w] F[b,c',h,w]`` (the Gatys Gram matrix, summed over the batch): styles are then the
case ``H = W = 1``, and one shared matrix compares the batch's channel statistics as the
styles' reading does.  ``norm=cosine`` normalises each channel's vector
(``G_ij = cos(s_i, s_j)``, the channels' uncentred correlation), ``reduction=mean`` divides by
the ``C(C−1)`` ordered pairs per layer; ``auto`` resolves by ``on`` exactly as above.  A batch
of one gives a non-zero loss here.  The default stays ``samples`` (the numbers of every run so
far, and the reading argued above); :meth:`CorrLoss.config` records ``over`` only when it is
``channels``, so the records of earlier runs are unchanged.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from stylebridge.core.interfaces import Loss, LossBatch
from stylebridge.registry import hookimpl


class CorrLoss(Loss):
    """Keeps the pairwise inner products of the batch's style vectors (thesis L_corr)."""

    name = "corr"
    description = ("correlation regulariser: keep s_i·s_j of batch samples (over=channels: of "
                   "channels) per style layer (thesis)")
    requires: ClassVar[frozenset[str]] = frozenset({"styles", "styles_source"})

    def __init__(self, reduction: str = "auto", on: str | None = None, norm: str = "auto",
                 over: str = "samples") -> None:
        super().__init__()
        if over not in ("samples", "channels"):
            raise ValueError(f"corr: over must be 'samples' (i, j = batch samples) or 'channels' "
                             f"(i, j = channels of a layer), got {over!r}")
        self.over = over
        if reduction not in ("auto", "sum", "mean"):
            raise ValueError(f"corr: reduction must be 'sum' or 'mean', got {reduction!r}")
        if norm not in ("auto", "none", "cosine"):
            raise ValueError(f"corr: norm must be 'none' or 'cosine', got {norm!r}")
        if on not in (None, "styles", "features"):
            raise ValueError(f"corr: on must be 'styles' or 'features', got {on!r}")
        self._norm, self._reduction = norm, reduction
        self.on = on or "styles"
        self._on_given = on is not None

    @property
    def norm(self) -> str:
        """``none`` / ``cosine``; ``auto`` is ``cosine`` on features, ``none`` on styles."""
        if self._norm != "auto":
            return self._norm
        return "cosine" if self.on == "features" else "none"

    @property
    def reduction(self) -> str:
        """``sum`` / ``mean``; ``auto`` is ``mean`` on features, ``sum`` on styles."""
        if self._reduction != "auto":
            return self._reduction
        return "mean" if self.on == "features" else "sum"

    def bind_trained_fields(self, fields: frozenset[str]) -> None:
        """Without ``on=``, a trainer that changes no styles but the features (``train
        featureshift``) gets ``on=features``: the only reading in which this loss can train
        its module.  An explicit ``on=`` is kept (and refused there if it cannot train)."""
        if not self._on_given and "styles" not in fields and "features" in fields:
            self.on = "features"

    def config(self) -> dict[str, Any]:
        over = {"over": self.over} if self.over != "samples" else {}
        return {"reduction": self.reduction, "on": self.on, "norm": self.norm, **over}

    def required_fields(self) -> frozenset[str]:
        if self.on == "features":
            return frozenset({"features", "features_target"})
        return self.requires

    def forward(self, batch: LossBatch) -> Tensor:
        """``on=styles``: ``batch.styles`` / ``batch.styles_source``, one ``[B, C_l]`` tensor
        per style layer; ``on=features``: ``batch.features`` / ``batch.features_target``."""
        if self.on == "features":
            new = [batch.require("features", self.name)]
            old = [batch.require("features_target", self.name)]
            if self.over == "channels":  # [B, C, ...] -> [C, B·positions]
                if new[0].shape != old[0].shape or new[0].ndim < 2:
                    raise ValueError(f"loss 'corr': features of shapes {list(new[0].shape)} and "
                                     f"{list(old[0].shape)}, expected equal [B, C, ...]")
                new, old = [new[0].transpose(0, 1).flatten(1)], [old[0].transpose(0, 1).flatten(1)]
            else:
                new, old = [new[0].flatten(1)], [old[0].flatten(1)]
        else:
            new = batch.require("styles", self.name)
            old = batch.require("styles_source", self.name)
        if len(new) != len(old):
            raise ValueError(f"loss 'corr': {len(new)} adapted style layers but {len(old)} source ones")
        if not new:
            raise ValueError("loss 'corr': no style layers in the batch")
        total: Tensor | None = None
        terms = 0
        for layer, (s_new, s_old) in enumerate(zip(new, old, strict=True)):
            if s_new.shape != s_old.shape or s_new.ndim != 2:
                raise ValueError(f"loss 'corr': style layer {layer} has shapes {list(s_new.shape)} "
                                 f"and {list(s_old.shape)}, expected equal [B, C]")
            if self.over == "channels" and self.on == "styles":  # rows: channels over the batch
                s_new, s_old = s_new.transpose(0, 1), s_old.transpose(0, 1)
            b = s_new.shape[0]  # the rows i, j: samples, or channels with over=channels
            s_old = s_old.to(s_new)
            if self.norm == "cosine":  # directions only: G_ij = cos(s_i, s_j)
                s_new = torch.nn.functional.normalize(s_new, dim=1)
                s_old = torch.nn.functional.normalize(s_old, dim=1)
            off_diag = ~torch.eye(b, dtype=torch.bool, device=s_new.device)
            diff = s_new @ s_new.transpose(0, 1) - s_old @ s_old.transpose(0, 1)
            value = diff.pow(2).masked_select(off_diag).sum()
            total = value if total is None else total + value
            terms += b * (b - 1)
        assert total is not None
        if self.reduction == "mean":
            return total / max(terms, 1)
        return total


@hookimpl
def register_losses(register: Any) -> None:
    register(CorrLoss)
