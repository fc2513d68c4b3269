"""What the built-in metrics share: input checks, the config, device and random-weights flag,
and the mean of per-image values (:class:`PerImageMetric`)."""

from __future__ import annotations

import hashlib
import json
import math
from abc import abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from stylebridge.core.interfaces import Metric
from stylebridge.core.inversion import RANGE_TOLERANCE
from stylebridge.core.options import as_bool
from stylebridge.errors import StylebridgeError


class MetricInputError(StylebridgeError, ValueError):
    """Images given to a metric that are not RGB ``[B, 3, H, W]`` floats in ``[0, 1]``, or a
    pred/target pair that does not match; one line naming the metric (a ``ValueError`` too,
    as these raised before).  ``eval`` skips the pairs of such a batch."""


def check_images(images: Tensor, what: str) -> None:
    """:class:`MetricInputError` unless ``images`` is a float batch ``[B, 3, H, W]`` in
    ``[0, 1]`` (within the Adapter's tolerance,
    :data:`~stylebridge.core.inversion.RANGE_TOLERANCE`): an 8-bit, 0..255 or ``[-1, 1]``
    batch gave a number on another scale (MSE 10892, PSNR -40 dB) without a word.  One
    ``aminmax`` per batch; NaN or Inf pixels are refused too."""
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = list(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise MetricInputError(f"{what} must be images [B, 3, H, W] in [0, 1], got {shape}")
    if not images.is_floating_point():
        hint = " (8-bit images: x.float() / 255)" if images.dtype == torch.uint8 else ""
        raise MetricInputError(f"{what} must be a float tensor in [0, 1], got {images.dtype}"
                               f"{hint}")
    if images.numel() == 0 or images.device.type == "meta":
        return
    lo, hi = (float(v) for v in torch.aminmax(images.detach()))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise MetricInputError(f"{what} contains NaN or Inf values")
    if lo < -RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
        raise MetricInputError(f"{what} values span [{lo:.4g}, {hi:.4g}], expected [0, 1] "
                               "(0..255 images: x / 255; [-1, 1] images: (x + 1) / 2)")


def nothing_scored(metric: str) -> StylebridgeError:
    """The one-line error of ``compute()`` before any ``update()``."""
    return StylebridgeError(f"{metric}: compute() before any update(): no images were scored "
                            "(call update(pred, target) with each batch first)")


def random_refused(metric: str, what: str, hint: str) -> StylebridgeError:
    """The one-line error of a metric asked to run without its trained weights."""
    return StylebridgeError(
        f"{metric}: {what} not available ({hint}); with random weights the number is not "
        f"{metric}: pass allow_random=true to compute it anyway, labelled as random")


def spec_seed(metric: str, options: Mapping[str, Any]) -> int:
    """The torch seed a metric's random network is drawn from (``allow_random=true``): the
    same metric and options (those that shape the network, never ``device``) give the same
    weights in every run and on every device."""
    text = json.dumps(["metric", metric, sorted((k, repr(v)) for k, v in options.items())])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


class BaseMetric(Metric):
    """Common parts: the config, device, ``random_weights`` flag and notes."""

    needs_target: ClassVar[bool] = True   # update() requires a target batch
    per_image: ClassVar[bool] = True      # each image has its own value (see ``last``)
    same_size: ClassVar[bool] = True      # pred and target must have the same H, W
    random_weights: bool = False

    def __init__(self, **config: Any) -> None:
        if "allow_random" in config:  # refuse "allow_random=nope" (truthy as a string)
            config["allow_random"] = as_bool(config["allow_random"], "allow_random")
        self._config = {k: v for k, v in config.items() if v is not None}
        self.device = torch.device(config.get("device") or "cpu")
        self.last: dict[str, list[float]] = {}
        self.reset()

    def config(self) -> dict[str, Any]:
        return dict(self._config)

    def _check_pair(self, pred: Tensor, target: Tensor | None) -> None:
        check_images(pred, f"{self.name}: pred")
        if target is None:
            if self.needs_target:
                raise MetricInputError(f"metric {self.name!r} compares pairs: update(pred, "
                                       "target) needs a target batch")
            return
        check_images(target, f"{self.name}: target")
        if self.needs_target and target.shape[0] != pred.shape[0]:
            raise MetricInputError(f"{self.name}: pred has {pred.shape[0]} images, target "
                                   f"{target.shape[0]}")
        if self.needs_target and self.same_size and target.shape != pred.shape:
            raise MetricInputError(f"{self.name}: pred {list(pred.shape)} and target "
                                   f"{list(target.shape)} differ in shape")


class PerImageMetric(BaseMetric):
    """A metric that is the mean of per-image values (NaN values are left out of the mean)."""

    def reset(self) -> None:
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._skipped: dict[str, int] = {}
        self._updated = False  # compute() before any update() is refused
        self.last = {}

    @abstractmethod
    def score(self, pred: Tensor, target: Tensor | None, **context: Any) -> dict[str, Tensor]:
        """Per-image values ``{key: [B]}`` for a batch (inputs on ``self.device``)."""

    def update(self, pred: Tensor, target: Tensor | None = None, **context: Any) -> None:
        self._check_pair(pred, target)
        with torch.no_grad():
            values = self.score(pred.to(self.device),
                                None if target is None else target.to(self.device), **context)
        self.last = {}
        for key, value in values.items():
            v = value.detach().to("cpu", torch.float64).reshape(-1)
            ok = ~torch.isnan(v)
            self._sums[key] = self._sums.get(key, 0.0) + float(v[ok].sum())
            self._counts[key] = self._counts.get(key, 0) + int(ok.sum())
            self._skipped[key] = self._skipped.get(key, 0) + int((~ok).sum())
            self.last[key] = v.tolist()
        self._updated = True

    def compute(self) -> dict[str, float]:
        """The mean of each key over the images scored (NaN when every value of a key was
        NaN); before any :meth:`update` a one-line error, not an empty dict."""
        if not self._sums and not getattr(self, "_updated", True):
            raise nothing_scored(self.name)
        return {k: (self._sums[k] / self._counts[k] if self._counts[k] else math.nan)
                for k in self._sums}

    def state(self) -> dict[str, Any]:
        """The sums (exact: ``float.hex``, which also holds ``inf``), counts and NaN counts."""
        return {"sums": {k: v.hex() for k, v in self._sums.items()},
                "counts": dict(self._counts), "skipped": dict(self._skipped)}

    def load_state(self, state: Mapping[str, Any]) -> None:
        try:
            sums = {str(k): float.fromhex(v) for k, v in state["sums"].items()}
            counts = {str(k): int(v) for k, v in state["counts"].items()}
            skipped = {str(k): int(v) for k, v in state["skipped"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StylebridgeError(f"{self.name}: saved metric state is malformed ({exc})"
                                   ) from None
        self._sums, self._counts, self._skipped = sums, counts, skipped
        self._updated = True
        self.last = {}

    def notes(self) -> list[str]:
        notes = super().notes()
        notes += [f"{n} image(s) without a value were left out of the {k} mean"
                  for k, n in self._skipped.items() if n]
        return notes
