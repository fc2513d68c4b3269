"""The ``charbonnier`` loss: a smooth L1 between the trained image and its target.

One plugin module, registered through ``register_losses``.  The loss declares the
:class:`~stylebridge.core.interfaces.LossBatch` fields it reads in ``requires``; a trainer
checks them when it is built, so ``stylebridge train featureshift --loss charbonnier:1.0``
works (that trainer fills ``output`` and ``target``), while ``train domain`` (no paired
target) refuses it in one line before training starts.

    L = mean( sqrt((output - target)^2 + eps^2) - eps )

(Charbonnier's penalty: quadratic near 0 and linear for large errors; minus ``eps`` so that a
perfect match gives exactly 0.)
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch.nn.functional as F
from torch import Tensor

from stylebridge.core.interfaces import Loss, LossBatch
from stylebridge.registry import hookimpl


class CharbonnierLoss(Loss):
    name = "charbonnier"
    description = "smooth L1 (Charbonnier) between output and target, images in [-1, 1]"
    requires: ClassVar[frozenset[str]] = frozenset({"output", "target"})

    def __init__(self, eps: float = 1e-3) -> None:
        super().__init__()
        eps = float(eps)
        if not math.isfinite(eps) or eps <= 0:
            raise ValueError(f"eps must be a finite number > 0, got {eps}")
        self.eps = eps

    def config(self) -> dict[str, Any]:
        return {"eps": self.eps}

    def forward(self, batch: LossBatch) -> Tensor:
        output, target = batch.output, batch.target
        assert output is not None and target is not None  # checked through `requires`
        if target.shape[-2:] != output.shape[-2:]:  # e.g. a 256 px target for a 1024 px output
            output = F.interpolate(output, size=target.shape[-2:], mode="bilinear",
                                   align_corners=False, antialias=True)
        diff = output - target
        return ((diff * diff + self.eps**2).sqrt() - self.eps).mean()


@hookimpl
def register_losses(register: Any) -> None:
    register(CharbonnierLoss)
