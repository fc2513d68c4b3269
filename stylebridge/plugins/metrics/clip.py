"""CLIP metrics of domain adaptation (thesis, from HyperDomainNet A.3.3), through
:mod:`stylebridge.plugins.nets.clip` (``model=ViT-B-32|ViT-B-16|...``, ``weights=PATH``):

Without ``weights=`` the installed official weights of ``model`` are used
(``stylebridge weights fetch clip-vit-b-32``).  Without either, ``allow_random=true`` runs on
a random CLIP, labelled, drawn from a seed of the metric's spec
(:func:`~stylebridge.plugins.metrics.base.spec_seed` of its name and ``model``, as ``lpips``'s
of ``net``): every run and device scores with the same network and the two metrics with
different ones, not with the CLIP that ``train --allow-random-clip`` trained a domain against
(seeded by its ``--seed``, 0 by default: the seed these metrics had).  ``text`` and
``reference`` do not change the network: two domains' quality is measured by one random CLIP.

* ``clip_quality``: ``1/N Σ_i <E_T(text), E_I(image_i)>``, or against the embedding of a
  ``reference`` image for image domains.
* ``clip_diversity``: ``2/(N(N-1)) Σ_{i<j} (1 - <E_I(image_i), E_I(image_j)>)``, streamed
  through the sum of the embeddings.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from stylebridge.core.images import load_image
from stylebridge.core.options import as_bool
from stylebridge.errors import StylebridgeError
from stylebridge.plugins.metrics.base import (
    BaseMetric,
    PerImageMetric,
    random_refused,
    spec_seed,
)
from stylebridge.plugins.nets.clip import clip_fetch_hint, installed_clip_weights, load_clip
from stylebridge.registry import hookimpl


class _ClipMetric(BaseMetric):
    takes_device: ClassVar[bool] = True  # eval passes --device

    @classmethod
    def unavailable_weights(cls, config: Mapping[str, Any]) -> tuple[str, ...]:
        """The official entry of ``model`` (``clip-vit-b-32``) when no ``weights`` file is
        named, random weights are not allowed and it is not installed; none for a model the
        manifest does not list (building says how to give its weights)."""
        from stylebridge.registry.weights import WeightsManager

        if config.get("weights") is not None or as_bool(config.get("allow_random", False),
                                                        "allow_random"):
            return ()
        model = str(config.get("model", "ViT-B-32"))
        if installed_clip_weights(model) is not None:
            return ()
        known = WeightsManager().candidates("clip", model)
        return (known[0].name,) if known else ()

    def _load_clip(self, model: str, weights: str | None, allow_random: bool) -> None:
        if weights is None:  # the installed official weights (`weights fetch clip-vit-b-32`)
            found = installed_clip_weights(model)
            weights = None if found is None else str(found)
        if weights is None and not allow_random:
            raise random_refused(self.name, f"CLIP {model} weights are",
                                 f"{clip_fetch_hint(model)}pass "
                                 f"{self.name}:model={model},weights=PATH")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.clip = load_clip(model, weights=weights, device=self.device,
                                  seed=spec_seed(self.name, {"model": model}))
        self.random_weights = self.clip.random_weights
        self.weights_path = weights

    def files(self) -> dict[str, str]:
        """The CLIP checkpoint it read (none on a random CLIP)."""
        return {} if self.weights_path is None else {"weights": str(self.weights_path)}

    @torch.no_grad()
    def embed(self, images01: Tensor) -> Tensor:
        """L2-normalised CLIP image embeddings ``[B, D]`` (float64)."""
        return self.clip.encode_images(images01.to(self.device).float()).double()


class ClipQualityMetric(_ClipMetric, PerImageMetric):
    """CLIP Quality: cosine of each image with the domain text (or reference image) embedding."""

    name = "clip_quality"
    direction = "higher"
    unit = "cos"
    scale = ("cosine of CLIP embeddings of each image and the domain text (or reference "
             "image), -1..1")
    needs_target = False

    def __init__(self, model: str = "ViT-B-32", weights: str | None = None,
                 text: str | None = None, reference: str | None = None,
                 allow_random: bool = False, device: str = "cpu") -> None:
        PerImageMetric.__init__(self, model=model, weights=weights, text=text,
                                reference=reference, allow_random=allow_random, device=device)
        if (text is None) == (reference is None):
            raise StylebridgeError("clip_quality needs exactly one of text=... (the domain "
                                   "description, or --domain-text) and reference=IMAGE")
        self._load_clip(model, weights, allow_random)
        with torch.no_grad():
            if text is not None:
                emb = self.clip.encode_text([str(text)])
            else:
                emb = self.clip.encode_images(load_image(reference).unsqueeze(0).to(self.device))
        self.domain_embedding = emb[0].double()
        self.reference = reference

    def files(self) -> dict[str, str]:
        """The CLIP checkpoint and the reference image it read."""
        read = super().files()
        return read if self.reference is None else {**read, "reference": str(self.reference)}

    @classmethod
    def with_domain_text(cls, options: Mapping[str, Any], text: str) -> dict[str, Any]:
        """``text=`` the domain's prompt, unless a text or a reference image is given."""
        if "text" in options or "reference" in options:
            return dict(options)
        return {**options, "text": text}

    def score(self, pred: Tensor, target: Tensor | None, **context: Any) -> dict[str, Tensor]:
        return {"clip_quality": self.embed(pred) @ self.domain_embedding}


class ClipDiversityMetric(_ClipMetric):
    """CLIP Diversity: mean ``1 - cos`` over all pairs of images (streamed: O(D) memory)."""

    name = "clip_diversity"
    direction = "higher"
    scale = "mean 1 - cosine of CLIP embeddings over all pairs of images, 0 = all alike"
    needs_target = False
    per_image = False

    def __init__(self, model: str = "ViT-B-32", weights: str | None = None,
                 allow_random: bool = False, device: str = "cpu") -> None:
        BaseMetric.__init__(self, model=model, weights=weights, allow_random=allow_random,
                            device=device)
        self._load_clip(model, weights, allow_random)

    def reset(self) -> None:
        self.n = 0
        self._sum: Tensor | None = None
        self._sq = 0.0
        self.last = {}

    def update(self, pred: Tensor, target: Tensor | None = None, **context: Any) -> None:
        self._check_pair(pred, target)
        emb = self.embed(pred).cpu()
        self._sum = emb.sum(0) if self._sum is None else self._sum + emb.sum(0)
        self._sq += float((emb * emb).sum())
        self.n += emb.shape[0]

    def compute(self) -> dict[str, float]:
        if self.n < 2 or self._sum is None:
            raise StylebridgeError(f"clip_diversity needs at least 2 images, got {self.n}")
        pairs = self.n * (self.n - 1) / 2.0
        # Σ_{i<j} <e_i, e_j> = (‖Σ e_i‖² - Σ ‖e_i‖²) / 2
        cross = (float(self._sum @ self._sum) - self._sq) / 2.0
        return {"clip_diversity": 1.0 - cross / pairs}


@hookimpl
def register_metrics(register: Any) -> None:
    for cls in (ClipQualityMetric, ClipDiversityMetric):
        register(cls)
