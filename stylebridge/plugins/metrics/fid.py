"""``fid``: Fréchet Inception distance with the TF-FID Inception (:mod:`stylebridge.plugins.nets.fid`).

``weights=PATH``: pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` or its conversion.
Features of the predictions are compared with those of the targets or with cached
statistics (``ref_stats=PATH``: read if it exists, written from the targets otherwise).
Statistics are streamed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import torch
from torch import Tensor

from stylebridge.core.options import as_bool
from stylebridge.errors import StylebridgeError
from stylebridge.plugins.metrics.base import (
    BaseMetric,
    check_images,
    nothing_scored,
    random_refused,
)
from stylebridge.registry import hookimpl


def _net() -> ModuleType:
    """:mod:`stylebridge.plugins.nets.fid`, imported at first use: its network subclasses
    torchvision's Inception blocks, and importing torchvision (which imports ``torch._dynamo``)
    would add about a second to every start of the CLI, which registers this plugin."""
    from stylebridge.plugins.nets import fid

    return fid


class FIDMetric(BaseMetric):
    """Fréchet Inception distance between the predictions and the targets (or cached statistics)."""

    name = "fid"
    takes_device: ClassVar[bool] = True  # eval passes --device
    direction = "lower"
    scale = ("Fréchet distance of Inception pool features, 0 = the same distribution; "
             "biased upwards below 2048 images, compare only with the same N")
    needs_target = False
    takes_reference = True
    per_image = False

    @classmethod
    def unavailable_weights(cls, config: Mapping[str, Any]) -> tuple[str, ...]:
        """``("fid-inception",)`` when no ``weights`` file is named, random weights are not
        allowed and neither the entry nor pytorch-fid's download is there."""
        if config.get("weights") is not None or as_bool(config.get("allow_random", False),
                                                        "allow_random"):
            return ()
        return () if _net().default_weights_path() is not None else (_net().WEIGHTS_ENTRY,)

    def __init__(self, weights: str | None = None, ref_stats: str | None = None,
                 allow_random: bool = False, device: str = "cpu") -> None:
        super().__init__(weights=weights, ref_stats=ref_stats, allow_random=allow_random,
                         device=device)
        path = Path(weights) if weights is not None else _net().default_weights_path()
        if path is not None:
            self.model = _net().load_fid_inception(path, self.device)
        elif allow_random:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                self.model = _net().FIDInceptionV3().to(self.device).eval().requires_grad_(False)
        else:
            raise random_refused("fid", "the FID Inception weights are",
                                 f"run `stylebridge weights fetch {_net().WEIGHTS_ENTRY}`, or "
                                 f"pass fid:weights=PATH to {_net().UPSTREAM_FILE} or its "
                                 "conversion")
        self.random_weights = path is None
        self.weights_path = path
        self.ref_path = Path(ref_stats) if ref_stats is not None else None
        self._ref: tuple[Any, Any, int | None] | None = None
        if self.ref_path is not None and self.ref_path.exists():
            self._ref = _net().load_fid_stats(self.ref_path)

    def files(self) -> dict[str, str]:
        """The Inception weights and the cached reference statistics it read (``ref_stats``
        only when it existed: otherwise this run writes it)."""
        read = {} if self.weights_path is None else {"weights": str(self.weights_path)}
        if self._ref is not None and self.ref_path is not None:
            read["ref_stats"] = str(self.ref_path)
        return read

    def reset(self) -> None:
        self.pred_stats = _net().FeatureStats()
        self.target_stats = _net().FeatureStats()
        self._targets_ignored = 0
        self.last = {}

    def has_reference(self) -> bool:
        """Whether cached reference statistics (``ref_stats``) were read."""
        return self._ref is not None

    @torch.no_grad()
    def features(self, images01: Tensor) -> Tensor:
        """``[B, 2048]`` Inception pool features of images in ``[0, 1]``.

        Full float32 convolutions (no TF32 on CUDA): TF32 moves the features by
        ~5e-4 relative, which shifts FID against statistics computed in float32.
        """
        saved = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = False
        try:
            return self.model(images01.to(self.device))
        finally:
            torch.backends.cudnn.allow_tf32 = saved

    def update(self, pred: Tensor, target: Tensor | None = None, **context: Any) -> None:
        self._check_pair(pred, target)
        # every feature first, then the sums: a batch that fails leaves the metric as it was
        # (it keeps no state() to restore: eval skips the batch's pairs and goes on)
        features = self.features(pred)
        target_features = None if target is None or self._ref is not None \
            else self.features(target)
        self.pred_stats.update(features)
        if target_features is not None:
            self.target_stats.update(target_features)
        elif target is not None:
            self._targets_ignored += target.shape[0]

    def update_reference(self, images: Tensor) -> None:
        """Reference images, unpaired (``eval --target`` when no metric compares pairs)."""
        check_images(images, f"{self.name}: reference")
        if self._ref is None:
            self.target_stats.update(self.features(images))
        else:
            self._targets_ignored += images.shape[0]

    def compute(self) -> dict[str, float]:
        if not self.pred_stats.n:
            raise nothing_scored(self.name)
        if self._ref is not None:
            mu2, sigma2, _ = self._ref
        elif self.target_stats.n:
            mu2, sigma2 = self.target_stats.mean(), self.target_stats.cov()
            if self.ref_path is not None and not self.random_weights:
                _net().save_fid_stats(self.ref_path, mu2, sigma2, n=self.target_stats.n)
        else:
            raise StylebridgeError("fid: no reference: give target images or fid:ref_stats=PATH")
        return {"fid": _net().frechet_distance(self.pred_stats.mean(), self.pred_stats.cov(),
                                             mu2, sigma2)}

    def notes(self) -> list[str]:
        notes = super().notes()
        if self._ref is not None and self.ref_path is not None:
            n = self._ref[2]
            notes.append(f"reference statistics read from {self.ref_path}"
                         + (f" ({n} images)" if n else "")
                         + (f"; the {self._targets_ignored} target images were not used"
                            if self._targets_ignored else ""))
        elif self.ref_path is not None and self.target_stats.n and not self.random_weights:
            notes.append(f"reference statistics of {self.target_stats.n} images cached in "
                         f"{self.ref_path}")
        elif self.ref_path is not None and self.random_weights:
            notes.append(f"reference statistics were not cached in {self.ref_path} (random weights)")
        if 0 < self.pred_stats.n < 2048:
            notes.append(f"FID of {self.pred_stats.n} images (< 2048 features): biased upwards, "
                         "compare only with the same N")
        return notes


@hookimpl
def register_metrics(register: Any) -> None:
    register(FIDMetric)
