"""``lpips``: the ``lpips`` package (v0.1, ``net=alex|vgg``).

Its linear heads ship with the package; the torchvision ImageNet backbone is read from a
local file (``backbone=PATH``, else the installed ``lpips-alex`` / ``lpips-vgg`` weights,
else torchvision's own cache ``~/.cache/torch/hub/checkpoints/alexnet-owt-7be5be79.pth`` /
``vgg16-397923af.pth``), never downloaded here (:mod:`stylebridge.plugins.nets.lpips`).  A random backbone is not LPIPS:
it is refused unless ``allow_random=true``, and then labelled; it is drawn from a seed of its
spec (:func:`~stylebridge.plugins.metrics.base.spec_seed` of ``net``), so that every run and
every device scores with the same random network, and the caller's random stream is left as
it was.  The linear heads are always the package's trained ones.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from stylebridge.core.schema import Field
from stylebridge.errors import StylebridgeError
from stylebridge.plugins.metrics.base import PerImageMetric, random_refused, spec_seed
from stylebridge.plugins.nets.lpips import (
    TORCHVISION_FILES,
    default_lpips_backbone,
    load_lpips_backbone,
    missing_backbone_hint,
    unavailable_backbone,
)
from stylebridge.registry import hookimpl


class LPIPSMetric(PerImageMetric):
    """LPIPS v0.1 (lpips package), ``net=alex|vgg``; lower is more similar."""

    name = "lpips"
    takes_device: ClassVar[bool] = True  # eval passes --device
    direction = "lower"
    scale = "LPIPS v0.1 perceptual distance (net=alex|vgg), 0 = identical"
    #: the allowed values (checked before anything is built; `stylebridge plugins lpips` shows them)
    config_schema: ClassVar[Mapping[str, Field]] = {
        "net": Field("str", choices=tuple(TORCHVISION_FILES))}

    @classmethod
    def unavailable_weights(cls, config: Mapping[str, Any]) -> tuple[str, ...]:
        return unavailable_backbone(cls, config)

    def __init__(self, net: str = "alex", backbone: str | None = None, size: int | None = None,
                 allow_random: bool = False, device: str = "cpu") -> None:
        super().__init__(net=net, backbone=backbone, size=size, allow_random=allow_random,
                         device=device)
        if net not in TORCHVISION_FILES:
            raise StylebridgeError(f"lpips: net={net!r}; expected alex or vgg")
        import lpips

        # the trunk is built random (then overwritten by the backbone file, if any): seeded
        # by the spec, on the CPU, in a forked random stream (the caller's is left as is)
        with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
            warnings.simplefilter("ignore")  # torchvision's notice about `pretrained=False`
            torch.manual_seed(spec_seed(self.name, {"net": net}))
            model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
        path = Path(backbone) if backbone is not None else default_lpips_backbone(net)
        if path is not None:
            load_lpips_backbone(model, path)
        elif not allow_random:
            raise random_refused("lpips", f"the torchvision ImageNet {net} backbone is",
                                 missing_backbone_hint(net, f"lpips:net={net},backbone=PATH"))
        self.random_weights = path is None
        self.backbone_path = path
        self.size = None if size is None else int(size)
        self.model = model.to(self.device).eval().requires_grad_(False)

    def fresh(self) -> LPIPSMetric | None:
        """The same network (read-only: eval mode, no gradients), its own running values; a
        subclass (which may keep running values of its own) is built anew."""
        if type(self) is not LPIPSMetric:
            return None
        twin = copy.copy(self)
        twin.reset()
        return twin

    def files(self) -> dict[str, str]:
        """The ImageNet backbone file it read (none on a random backbone)."""
        return {} if self.backbone_path is None else {"backbone": str(self.backbone_path)}

    def score(self, pred: Tensor, target: Tensor | None, **context: Any) -> dict[str, Tensor]:
        assert target is not None
        if self.size is not None:
            pred, target = (F.interpolate(t, size=(self.size, self.size), mode="bilinear",
                                          align_corners=False, antialias=True)
                            for t in (pred, target))
        out = self.model(pred.float(), target.float(), normalize=True)
        return {"lpips": out.reshape(-1)}


@hookimpl
def register_metrics(register: Any) -> None:
    register(LPIPSMetric)
