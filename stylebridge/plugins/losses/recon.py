"""Reconstruction losses: ``mse``, ``lpips``, ``id`` and ``adversarial`` (Loss plugins).

The thesis trains FeatureShift (and pSp/e4e/FSE are trained) with

    L = λ_MSE · MSE + λ_LPIPS · LPIPS(256 & 128 px) + λ_ID · ID [+ λ_adv · adversarial]

(weights 1.0 / 0.8 / 0.1 / 0.01 for FeatureShift; the caller supplies them,
``--loss lpips:0.8``).  Every loss reads ``batch.output`` (generator output,
``[B, 3, H, W]`` in ``[-1, 1]``, with gradients) and, except ``adversarial``,
``batch.target`` (targets in ``[-1, 1]``); they declare it in ``requires``.  The two may have different sizes: the
reconstruction is resized to what each loss compares at (see :func:`resize_images`),
so a 1024 px generator output can be compared with 256 px stored targets.  Targets
never receive gradients.

* ``mse``: mean of ``(recon - target)²`` over pixels and channels, in ``[-1, 1]`` units,
  at the target's size.
* ``lpips``: LPIPS v0.1 of the ``lpips`` package (``net=alex|vgg``, default ``alex`` as
  pSp/e4e/FSE), summed over ``resolutions`` (default ``256+128``: both images are
  resized to 256 and to 128 px; the thesis' "LPIPS on 256 and 128 resolutions").
  The linear heads ship with the package; the ImageNet backbone is read from a local
  file (``backbone=PATH``: torchvision's ``alexnet-owt-7be5be79.pth`` /
  ``vgg16-397923af.pth``, or the same file in torchvision's hub cache), never
  downloaded.  A random backbone is refused unless ``allow_random=true`` (tests).
* ``id``: ``1 - cos(E(recon), E(target))`` averaged over the batch, with ``E`` the
  ArcFace IR-SE50 of pSp's ID loss (``weights=PATH``: ``model_ir_se50.pth`` or its
  conversion), on pSp's crop (256 px, rows 35:223, columns 32:220, pooled to
  112 px).  ``allow_random=true`` builds a *small random* IR-SE network instead (tests
  only; it measures nothing).
* ``adversarial``: the non-saturating generator loss ``softplus(-D(recon))`` averaged
  over the batch, with the frozen StyleGAN2 discriminator of a generator checkpoint
  (``discriminator=PATH``, a stylebridge generator file with its ``d.*`` tensors).
  The reconstruction is resized to the discriminator's size.

Losses are ``nn.Module``\\ s whose networks are frozen (``requires_grad=False``, eval
mode); move them to the training device with ``.to(device)``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylebridge.core.interfaces import Loss, LossBatch
from stylebridge.core.options import as_bool
from stylebridge.core.schema import Field
from stylebridge.errors import StylebridgeError
from stylebridge.registry import hookimpl

DEFAULT_LPIPS_RESOLUTIONS: tuple[int, ...] = (256, 128)
LPIPS_NETS = ("alex", "vgg")


def resize_images(images: Tensor, size: int) -> Tensor:
    """Resize ``[B, C, H, W]`` to ``size × size``.

    Integer down-scaling uses area averaging (what pSp's ``AdaptiveAvgPool2d(256)``
    face pool computes on a 1024 px output); anything else antialiased bilinear.
    The identity when the size already matches.
    """
    h, w = images.shape[-2:]
    if (h, w) == (size, size):
        return images
    if h == w and h > size and h % size == 0:
        return F.interpolate(images, size=(size, size), mode="area")
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=h > size or w > size)


def _pair(batch: LossBatch, loss: str) -> tuple[Tensor, Tensor]:
    recon = batch.require("output", loss)
    target = batch.require("target", loss)
    if recon.ndim != 4 or target.ndim != 4 or recon.shape[:2] != target.shape[:2]:
        raise ValueError(f"loss {loss!r}: output {list(recon.shape)} and target "
                         f"{list(target.shape)} must be [B, 3, H, W] with the same B")
    return recon, target.detach()


LPIPS_MIN_SIZE, LPIPS_MAX_SIZE = 32, 1024  # the sizes LPIPS is computed at


def _parse_resolutions(value: int | str | Sequence[int]) -> tuple[int, ...]:
    """``256``, ``"256+128"``, ``"256/128"``, ``"256 128"`` or ``[256, 128]`` → ``(256, 128)``."""
    if isinstance(value, int | float):
        items: list[Any] = [value]
    elif isinstance(value, str):
        items = [p for p in re.split(r"[+/\s;]+", value.strip()) if p]
    else:
        items = list(value)
    try:
        out = tuple(int(v) for v in items)
    except (TypeError, ValueError):
        raise StylebridgeError(f"lpips: resolutions={value!r}; expected sizes such as 256+128") from None
    if not out or any(not LPIPS_MIN_SIZE <= r <= LPIPS_MAX_SIZE for r in out):
        # below 32 px AlexNet's pooling runs out of pixels (a RuntimeError mid-run); far above
        # the generator's 1024 px the network's activations run out of memory (killed)
        raise StylebridgeError(f"lpips: resolutions={value!r}; expected sizes in "
                               f"{LPIPS_MIN_SIZE}..{LPIPS_MAX_SIZE} such as 256+128")
    return out


def _random_refused(loss: str, what: str, hint: str) -> StylebridgeError:
    return StylebridgeError(
        f"{loss}: {what} not available ({hint}); a loss on random weights trains towards "
        "nothing meaningful: pass allow_random=true only for tests")


# ---------------------------------------------------------------------------------------------
# MSE


class MSELoss(Loss):
    """Mean squared error between reconstruction and target, at the target's size."""

    name = "mse"
    requires: ClassVar[frozenset[str]] = frozenset({"output", "target"})
    description = "mean squared error in [-1, 1] units (reconstruction resized to the target)"

    def forward(self, batch: LossBatch) -> Tensor:
        recon, target = _pair(batch, self.name)
        recon = resize_images(recon, target.shape[-1])
        return F.mse_loss(recon.float(), target.float())


# ---------------------------------------------------------------------------------------------
# LPIPS


class LPIPSLoss(Loss):
    """LPIPS v0.1 summed over several resolutions (default 256 and 128 px)."""

    name = "lpips"
    requires: ClassVar[frozenset[str]] = frozenset({"output", "target"})
    description = "LPIPS (lpips package, local backbone weights) at 256 and 128 px"
    #: what `stylebridge plugins lpips` shows (a string such as "256+128" is parsed here)
    config_schema: ClassVar[Mapping[str, Field]] = {
        "resolutions": Field("ints", LPIPS_MIN_SIZE, LPIPS_MAX_SIZE, max_len=8, text_ok=True),
        "net": Field("str", choices=LPIPS_NETS)}

    @classmethod
    def unavailable_weights(cls, config: Mapping[str, Any]) -> tuple[str, ...]:
        from stylebridge.plugins.nets.lpips import unavailable_backbone

        return unavailable_backbone(cls, config)

    def __init__(self, net: str = "alex", backbone: str | None = None,
                 resolutions: int | str | Sequence[int] = DEFAULT_LPIPS_RESOLUTIONS,
                 allow_random: bool = False) -> None:
        super().__init__()
        if net not in LPIPS_NETS:
            raise StylebridgeError(f"lpips: net={net!r}; expected one of {', '.join(LPIPS_NETS)}")
        self.net = net
        self.backbone = None if backbone is None else str(backbone)
        self.resolutions = _parse_resolutions(resolutions)
        self.allow_random = as_bool(allow_random, "allow_random")
        import lpips

        from stylebridge.plugins.nets.lpips import (
            default_lpips_backbone,
            load_lpips_backbone,
            missing_backbone_hint,
        )

        path = (Path(self.backbone) if self.backbone is not None
                else default_lpips_backbone(net))
        if path is None and not self.allow_random:
            raise _random_refused("lpips", f"the torchvision ImageNet {net} backbone is",
                                  missing_backbone_hint(net, "lpips:WEIGHT:backbone=PATH"))
        with warnings.catch_warnings():  # torchvision's notice about `pretrained=False`
            warnings.simplefilter("ignore")
            # pnet_rand=True: the trunk is built without touching the network; the linear
            # heads (pretrained=True) are read from the files inside the lpips package.
            model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
        if path is not None:
            load_lpips_backbone(model, path)
        self.random_weights = path is None
        self.model = model.eval().requires_grad_(False)

    def config(self) -> dict[str, Any]:
        return {"net": self.net, "backbone": self.backbone,
                "resolutions": list(self.resolutions), "allow_random": self.allow_random}

    def train(self, mode: bool = True) -> LPIPSLoss:  # the network stays in eval mode
        super().train(mode)
        self.model.eval()
        return self

    def forward(self, batch: LossBatch) -> Tensor:
        recon, target = _pair(batch, self.name)
        total = recon.new_zeros((), dtype=torch.float32)
        for size in self.resolutions:
            a = resize_images(recon.float(), size)
            b = resize_images(target.float(), size)
            total = total + self.model(a, b).mean()
        return total


# ---------------------------------------------------------------------------------------------
# ID (ArcFace)


def _arcface_crop(images: Tensor) -> Tensor:
    """``[B, 3, H, W]`` in ``[-1, 1]`` → pSp's ArcFace input ``[B, 3, 112, 112]`` in ``[-1, 1]``."""
    from stylebridge.plugins.nets.face_id import arcface_preprocess

    return arcface_preprocess((images.float() + 1.0) / 2.0)


class IDLoss(Loss):
    """``1 - cos`` of ArcFace IR-SE50 embeddings of reconstruction and target (pSp's ID loss)."""

    name = "id"
    requires: ClassVar[frozenset[str]] = frozenset({"output", "target"})
    description = "identity loss 1 - cos(ArcFace(recon), ArcFace(target)) (IR-SE50, local weights)"

    @classmethod
    def unavailable_weights(cls, config: Mapping[str, Any]) -> tuple[str, ...]:
        from stylebridge.plugins.nets.face_id import unavailable_arcface

        return unavailable_arcface(config)

    def __init__(self, weights: str | None = None, allow_random: bool = False) -> None:
        super().__init__()
        self.weights = None if weights is None else str(weights)
        self.allow_random = as_bool(allow_random, "allow_random")
        #: the file loaded: ``weights``, else the installed official ``arcface-irse50``
        #: (the same default as the ``id`` metric), else ``None`` (random, tests only)
        self.weights_path: str | None = self.weights
        if self.weights_path is None:
            from stylebridge.plugins.nets.face_id import installed_arcface_weights

            found = installed_arcface_weights()
            self.weights_path = None if found is None else str(found)
        if self.weights_path is not None:
            from stylebridge.plugins.nets.irse import load_arcface_irse50

            model: nn.Module = load_arcface_irse50(self.weights_path)
        elif self.allow_random:
            from stylebridge.plugins.nets.irse import ArcFaceIRSE50

            # A small random IR-SE network with the same input/output contract (tests only).
            model = ArcFaceIRSE50(widths=(16, 16, 32, 32), units=(1, 1, 1, 1))
        else:
            raise _random_refused("id", "ArcFace IR-SE50 weights are",
                                  "run `stylebridge weights fetch arcface-irse50` (or `weights "
                                  "register arcface-irse50 --from model_ir_se50.pth`), or pass "
                                  "id:WEIGHT:weights=PATH to that file or its conversion")
        self.random_weights = self.weights_path is None
        self.model = model.eval().requires_grad_(False)

    def config(self) -> dict[str, Any]:
        return {"weights": self.weights, "allow_random": self.allow_random}

    def train(self, mode: bool = True) -> IDLoss:  # the network stays in eval mode
        super().train(mode)
        self.model.eval()
        return self

    def forward(self, batch: LossBatch) -> Tensor:
        recon, target = _pair(batch, self.name)
        with torch.no_grad():
            target_emb = F.normalize(self.model(_arcface_crop(target)).float(), dim=-1)
        recon_emb = F.normalize(self.model(_arcface_crop(recon)).float(), dim=-1)
        return (1.0 - (recon_emb * target_emb).sum(dim=-1)).mean()


# ---------------------------------------------------------------------------------------------
# Adversarial (frozen StyleGAN2 discriminator)


class AdversarialLoss(Loss):
    """Non-saturating ``softplus(-D(recon))`` with a frozen StyleGAN2 discriminator."""

    name = "adversarial"
    requires: ClassVar[frozenset[str]] = frozenset({"output"})
    description = "non-saturating GAN loss with the frozen StyleGAN2 discriminator of a checkpoint"

    def __init__(self, discriminator: str | None = None) -> None:
        super().__init__()
        if discriminator is None:
            raise StylebridgeError(
                "adversarial: needs discriminator=PATH (a stylebridge generator checkpoint with "
                "its discriminator; convert the upstream file with `stylebridge convert`)")
        from stylebridge.core.checkpoint import is_random_weights
        from stylebridge.core.stylegan2.checkpoint import load_stylegan2

        self.discriminator_path = str(discriminator)
        ck = load_stylegan2(self.discriminator_path, discriminator=True)
        disc = ck.discriminator
        assert disc is not None
        # a random-weight file (the tiny preset's) is named as such with the run's random parts
        self.random_weights = bool(is_random_weights(ck.header.extra))
        self.model = disc.eval().requires_grad_(False)
        self.size = int(disc.cfg.size)
        self.group = int(disc.stddev_group)

    def config(self) -> dict[str, Any]:
        return {"discriminator": self.discriminator_path}

    def train(self, mode: bool = True) -> AdversarialLoss:
        super().train(mode)
        self.model.eval()
        return self

    def logits(self, images: Tensor) -> Tensor:
        """``D(images)`` ``[B, 1]``; batches not divisible by the minibatch-stddev group run in chunks."""
        x = resize_images(images.float(), self.size)
        if x.shape[0] <= self.group or x.shape[0] % self.group == 0:
            return self.model(x)
        return torch.cat([self.model(chunk) for chunk in x.split(self.group)])

    def forward(self, batch: LossBatch) -> Tensor:
        recon = batch.require("output", self.name)
        return F.softplus(-self.logits(recon)).mean()


@hookimpl
def register_losses(register: Any) -> None:
    for cls in (MSELoss, LPIPSLoss, IDLoss, AdversarialLoss):
        register(cls)
