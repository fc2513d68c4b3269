"""``feature_reg``: feature-map regularisation for FeatureShift (thesis, "Experiments").

The thesis "tested regularization on E4E intermediate feature maps both for the domain
adaptation and for inversion task and on fse feature maps for the inversion task only",
after StyleFeatureEditor, whose feature editor is kept close to a reference feature map by
a mean-squared error.  This loss is that term::

    L_feature_reg = mean over (B, C, H, W) of (F' − F_ref)²

with ``F'`` = ``LossBatch.features`` (FeatureShift's predicted feature map) and ``F_ref``
chosen by ``target``:

* ``target="fse"`` (default): ``LossBatch.features_target``, the FSE feature map the
  prediction started from.  In the inversion set (``--inversion-loss feature_reg:W``, the
  thesis' use) that is FSE's feature of the real photo; in the domain sets it pulls ``F'``
  back towards the unshifted feature, against the domain change, so the thesis used it
  "for the inversion task only".
* ``target="e4e"``: ``LossBatch.features_guide``, the generator's feature at layer K from
  the guide encoder's (e4e) latents: ``G^K(s(w_E))`` in the inversion set and
  ``G^K(s_d(w_E))`` (with the domain) in the domain sets, so it suits both
  (``--loss feature_reg:W:target=e4e``, ``--inversion-loss ...``).

``reduction="sum"`` sums over ``C, H, W`` and averages over the batch instead.  The thesis
gives no weight for either and reports neither as an improvement: both are off by default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from torch import Tensor

from stylebridge.core.interfaces import Loss, LossBatch
from stylebridge.core.schema import Field
from stylebridge.errors import StylebridgeError
from stylebridge.registry import hookimpl


class FeatureRegLoss(Loss):
    """MSE between the predicted feature map F' and the encoder's F (StyleFeatureEditor-style)."""

    name = "feature_reg"
    description = ("feature-map regularisation: MSE between FeatureShift's F' and the encoder's "
                   "F (target=fse) or the guide's G^K (target=e4e)")
    requires: ClassVar[frozenset[str]] = frozenset({"features", "features_target"})
    #: target= → the LossBatch field holding the reference feature map
    TARGETS: ClassVar[dict[str, str]] = {"fse": "features_target", "e4e": "features_guide"}
    config_schema: ClassVar[Mapping[str, Field]] = {
        "reduction": Field("str", choices=("mean", "sum")),
        "target": Field("str", choices=tuple(TARGETS)),
    }

    def __init__(self, reduction: str = "mean", target: str = "fse") -> None:
        super().__init__()
        if reduction not in ("mean", "sum"):
            raise StylebridgeError(f"feature_reg: reduction={reduction!r}: expected mean or sum")
        if target not in self.TARGETS:
            raise StylebridgeError(f"feature_reg: target={target!r}: expected fse (the "
                                   "encoder's F) or e4e (the guide's G^K)")
        self.reduction = reduction
        self.target = target

    def config(self) -> dict[str, Any]:
        return {"reduction": self.reduction, "target": self.target}

    def required_fields(self) -> frozenset[str]:
        return frozenset({"features", self.TARGETS[self.target]})

    def forward(self, batch: LossBatch) -> Tensor:
        pred = batch.require("features", self.name)
        field = self.TARGETS[self.target]
        target = batch.require(field, self.name)
        if pred.shape != target.shape:
            raise StylebridgeError(f"feature_reg: features {tuple(pred.shape)} and "
                                   f"{field} {tuple(target.shape)} differ in shape")
        sq = (pred.float() - target.detach().float()) ** 2
        if self.reduction == "mean":
            return sq.mean()
        return sq.flatten(1).sum(1).mean()


@hookimpl
def register_losses(register: Any) -> None:
    register(FeatureRegLoss)
