"""``feature_reg``: feature-map regularisation for FeatureShift (thesis, "Experiments").

The thesis "tested regularization ... on fse feature maps for the inversion task only",
after StyleFeatureEditor, whose feature editor is kept close to the inverter's feature
map by a mean-squared error.  This loss is that term::

    L_feature_reg = mean over (B, C, H, W) of (F' − F)²

with ``F'`` = ``LossBatch.features`` (FeatureShift's predicted feature map) and ``F`` =
``LossBatch.features_target`` (the encoder's feature map the prediction started from).
``reduction="sum"`` sums over ``C, H, W`` and averages over the batch instead.

In ``train featureshift`` every loss set fills both fields: in the inversion set
(``--inversion-loss feature_reg:W``, the thesis' use) ``F`` is FSE's feature of the real
photo and ``Δ = 0``; in the domain sets it pulls ``F'`` back towards the unshifted
feature, i.e. it works against the domain change, and is best left off there.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor

from stylebridge.core.interfaces import Loss, LossBatch
from stylebridge.errors import StylebridgeError
from stylebridge.registry import hookimpl


class FeatureRegLoss(Loss):
    """MSE between the predicted feature map F' and the encoder's F (StyleFeatureEditor-style)."""

    name = "feature_reg"
    description = "feature-map regularisation: MSE between FeatureShift's F' and the encoder's F"
    requires: ClassVar[frozenset[str]] = frozenset({"features", "features_target"})

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in ("mean", "sum"):
            raise StylebridgeError(f"feature_reg: reduction={reduction!r}: expected mean or sum")
        self.reduction = reduction

    def config(self) -> dict[str, Any]:
        return {"reduction": self.reduction}

    def forward(self, batch: LossBatch) -> Tensor:
        pred = batch.require("features", self.name)
        target = batch.require("features_target", self.name)
        if pred.shape != target.shape:
            raise StylebridgeError(f"feature_reg: features {tuple(pred.shape)} and "
                                   f"features_target {tuple(target.shape)} differ in shape")
        sq = (pred.float() - target.detach().float()) ** 2
        if self.reduction == "mean":
            return sq.mean()
        return sq.flatten(1).sum(1).mean()


@hookimpl
def register_losses(register: Any) -> None:
    register(FeatureRegLoss)
