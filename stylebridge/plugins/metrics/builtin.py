"""Evaluation metrics (thesis, "Experiments setup" and Tables 4.1–4.3) and ``stylebridge eval``.

Reconstruction (pairs of prediction and target, images RGB in ``[0, 1]``):

* ``mse``: mean squared error over pixels and channels, in ``[0, 1]`` units.
* ``psnr``: ``10 log10(1 / MSE)`` per image (data range 1), as
  ``skimage.metrics.peak_signal_noise_ratio(data_range=1)``.
* ``ssim``: per-channel SSIM averaged over channels, as
  ``skimage.metrics.structural_similarity(data_range=1, channel_axis=-1)``:
  7×7 uniform window with sample covariance (default) or, with
  ``gaussian=true``, the 11-tap σ=1.5 Gaussian of Wang et al.
* ``lpips``: the ``lpips`` package (v0.1, ``net=alex|vgg``).  Its linear heads
  ship with the package; the torchvision ImageNet backbone is read from a local
  file (``backbone=PATH``, or torchvision's own cache
  ``~/.cache/torch/hub/checkpoints/alexnet-owt-7be5be79.pth`` /
  ``vgg16-397923af.pth``), never downloaded.  A random backbone is not LPIPS:
  it is refused unless ``allow_random=true``, and then labelled.
* ``id``: identity cosine similarity, ``backend=dlib`` (dlib's face-recognition
  ResNet, shipped by ``face-recognition-models``) or ``backend=arcface``
  (IR-SE50 as in pSp, ``weights=PATH``).  dlib's descriptors are trained for a
  Euclidean threshold, not for cosine: its values crowd near 1 (unrelated images
  ~0.85) and are not comparable with pSp-family ID numbers (CurricularFace /
  ArcFace): compare dlib values only with each other.
* MSE, PSNR, SSIM work on images in ``[0, 1]`` (pSp's ``l2`` on ``[-1, 1]`` is 4× MSE).

Realism and domain adaptation (no pairing needed):

* ``fid``: Fréchet Inception distance with the TF-FID Inception
  (``weights=PATH``: pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` or
  its conversion).  Features of the predictions are compared with those of the
  targets or with cached statistics (``ref_stats=PATH``: read if it exists,
  written from the targets otherwise).  Statistics are streamed.
* ``clip_quality``: ``1/N Σ_i <E_T(text), E_I(image_i)>`` (thesis, from
  HyperDomainNet A.3.3), or against the embedding of a ``reference`` image for
  image domains; ``model=ViT-B-32|ViT-B-16|...``, ``weights=PATH``.
* ``clip_diversity``: ``2/(N(N-1)) Σ_{i<j} (1 - <E_I(image_i), E_I(image_j)>)``,
  streamed through the sum of the embeddings.

Metrics whose network has random weights refuse to run unless
``allow_random=true`` and then report ``random_weights = True``; the CLI labels
every such number.
"""

from __future__ import annotations

import argparse
import csv
import inspect
import math
import warnings
from abc import abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.markup import escape
from torch import Tensor

from stylebridge.cli.base import Command
from stylebridge.core.interfaces import ConversionResult, Converter, Metric
from stylebridge.core.options import as_bool
from stylebridge.errors import CheckpointError, ConversionError, SpecError, StylebridgeError
from stylebridge.registry import hookimpl

# ---------------------------------------------------------------------------------------------
# Shared machinery


def _check_images(images: Tensor, what: str) -> None:
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = list(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"{what} must be images [B, 3, H, W] in [0, 1], got {shape}")


def _random_refused(metric: str, what: str, hint: str) -> StylebridgeError:
    return StylebridgeError(
        f"{metric}: {what} not available ({hint}); with random weights the number is not "
        f"{metric}: pass allow_random=true to compute it anyway, labelled as random")


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
        _check_images(pred, f"{self.name}: pred")
        if target is None:
            if self.needs_target:
                raise ValueError(f"metric {self.name!r} compares pairs: update(pred, target) "
                                 "needs a target batch")
            return
        _check_images(target, f"{self.name}: target")
        if self.needs_target and target.shape[0] != pred.shape[0]:
            raise ValueError(f"{self.name}: pred has {pred.shape[0]} images, target "
                             f"{target.shape[0]}")
        if self.needs_target and self.same_size and target.shape != pred.shape:
            raise ValueError(f"{self.name}: pred {list(pred.shape)} and target "
                             f"{list(target.shape)} differ in shape")


class PerImageMetric(BaseMetric):
    """A metric that is the mean of per-image values (NaN values are left out of the mean)."""

    def reset(self) -> None:
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._skipped: dict[str, int] = {}
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

    def compute(self) -> dict[str, float]:
        return {k: (self._sums[k] / self._counts[k] if self._counts[k] else math.nan)
                for k in self._sums}

    def notes(self) -> list[str]:
        notes = super().notes()
        notes += [f"{n} image(s) without a value were left out of the {k} mean"
                  for k, n in self._skipped.items() if n]
        return notes


# ---------------------------------------------------------------------------------------------
# Pixel metrics


def _mse(pred: Tensor, target: Tensor) -> Tensor:
    return (pred.double() - target.double()).pow(2).mean(dim=(1, 2, 3))


class MSEMetric(PerImageMetric):
    """Mean squared error per image, images in [0, 1]."""

    name = "mse"

    def __init__(self, device: str = "cpu") -> None:
        super().__init__(device=device)

    def score(self, pred: Tensor, target: Tensor | None, **context: Any) -> dict[str, Tensor]:
        assert target is not None
        return {"mse": _mse(pred, target)}


class PSNRMetric(PerImageMetric):
    """Peak signal-to-noise ratio per image (dB, data range 1); identical images give inf."""

    name = "psnr"

    def __init__(self, device: str = "cpu") -> None:
        super().__init__(device=device)

    def score(self, pred: Tensor, target: Tensor | None, **context: Any) -> dict[str, Tensor]:
        assert target is not None
        return {"psnr": 10.0 * torch.log10(1.0 / _mse(pred, target))}


def ssim(pred: Tensor, target: Tensor, *, gaussian: bool = False, data_range: float = 1.0,
         k1: float = 0.01, k2: float = 0.03) -> Tensor:
    """Per-image SSIM ``[B]`` (float64), channel-averaged, equal to scikit-image's.

    Uniform 7×7 window with the sample-covariance correction ``NP/(NP-1)``
    (scikit-image's default), or ``gaussian=True``: the 11-tap σ=1.5 Gaussian
    (radius ``int(3.5σ + 0.5)``) without it.  scikit-image filters the whole
    image and then averages only where the window lies inside the image, which
    is a 'valid' convolution here.
    """
    x, y = pred.double(), target.double()
    if gaussian:
        sigma, radius = 1.5, int(3.5 * 1.5 + 0.5)
        taps = torch.arange(-radius, radius + 1, dtype=torch.float64, device=x.device)
        kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
        cov_norm = 1.0
    else:
        kernel = torch.ones(7, dtype=torch.float64, device=x.device)
        cov_norm = 49.0 / 48.0
    kernel = kernel / kernel.sum()
    win = kernel.numel()
    if min(x.shape[-2:]) < win:
        raise StylebridgeError(f"ssim: images of {x.shape[-2]}×{x.shape[-1]} px are smaller than "
                               f"the {win}×{win} window")

    def filt(t: Tensor) -> Tensor:  # separable 'valid' filter (unfold + matmul: fast in float64)
        return t.unfold(-2, win, 1).matmul(kernel).unfold(-1, win, 1).matmul(kernel)

    ux, uy = filt(x), filt(y)
    uxx, uyy, uxy = filt(x * x), filt(y * y), filt(x * y)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean(dim=(2, 3)).mean(dim=1)


class SSIMMetric(PerImageMetric):
    """Structural similarity per image (scikit-image's definition, data range 1)."""

    name = "ssim"

    def __init__(self, gaussian: bool = False, device: str = "cpu") -> None:
        super().__init__(gaussian=bool(gaussian), device=device)
        self.gaussian = as_bool(gaussian, "gaussian")

    def score(self, pred: Tensor, target: Tensor | None, **context: Any) -> dict[str, Tensor]:
        assert target is not None
        return {"ssim": ssim(pred, target, gaussian=self.gaussian)}


# ---------------------------------------------------------------------------------------------
# LPIPS

TORCHVISION_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}


def _read_plain_state(path: Path, what: str = "") -> dict[str, Tensor]:
    """A plain state dict from ``.safetensors`` or a weights-only ``.pt``/``.pth``/``.bin``.

    Also reads CLIP weights (:func:`stylebridge.plugins.nets.clip.load_clip`; ``what="CLIP"``
    names them in the error).  A ``{"state_dict": ...}`` wrapper and DataParallel's
    ``module.`` prefixes are removed.  Errors are :class:`CheckpointError` naming the file.
    """
    if not path.is_file():
        raise CheckpointError("no such file" if not path.exists() else "is not a file", path=path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:
            raise CheckpointError(f"not a readable safetensors file ({exc})", path=path) from None
    from stylebridge.core.stylegan2.rosinality import torch_load_safe

    obj = torch_load_safe(path)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise CheckpointError(f"does not hold a {what + ' ' if what else ''}state dict of "
                              "tensors", path=path)
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_lpips_backbone(model: torch.nn.Module, path: Path) -> None:
    """Copy torchvision ``features.N.*`` weights into the lpips trunk ``net.sliceK.N.*``."""
    state = _read_plain_state(path)
    target = model.net.state_dict()
    mapped: dict[str, Tensor] = {}
    for key, ours in target.items():
        _, index_param = key.split(".", 1)          # "slice2.3.weight" -> "3.weight"
        src = state.get(f"features.{index_param}")
        if src is None:
            raise CheckpointError(f"is not a torchvision {model.pnet_type} state dict: "
                                  f"no features.{index_param}", path=path)
        if src.shape != ours.shape:
            raise CheckpointError(f"features.{index_param} has shape {list(src.shape)}, expected "
                                  f"{list(ours.shape)} (wrong network for lpips net="
                                  f"{model.pnet_type}?)", path=path)
        if not bool(torch.isfinite(src).all()):
            raise CheckpointError(f"features.{index_param} contains NaN or Inf values", path=path)
        mapped[key] = src.float()
    model.net.load_state_dict(mapped, strict=True)


class LPIPSMetric(PerImageMetric):
    """LPIPS v0.1 (lpips package), ``net=alex|vgg``; lower is more similar."""

    name = "lpips"

    def __init__(self, net: str = "alex", backbone: str | None = None, size: int | None = None,
                 allow_random: bool = False, device: str = "cpu") -> None:
        super().__init__(net=net, backbone=backbone, size=size, allow_random=allow_random,
                         device=device)
        if net not in TORCHVISION_FILES:
            raise StylebridgeError(f"lpips: net={net!r}; expected alex or vgg")
        import lpips

        with warnings.catch_warnings():  # torchvision's notice about `pretrained=False`
            warnings.simplefilter("ignore")
            model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
        path = Path(backbone) if backbone is not None else None
        if path is None:
            cached = Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILES[net]
            path = cached if cached.is_file() else None
        if path is not None:
            load_lpips_backbone(model, path)
        elif not allow_random:
            raise _random_refused("lpips", f"the torchvision ImageNet {net} backbone is",
                                  f"pass lpips:net={net},backbone=PATH to {TORCHVISION_FILES[net]}"
                                  " or put it in the torch hub cache")
        self.random_weights = path is None
        self.backbone_path = path
        self.size = None if size is None else int(size)
        self.model = model.to(self.device).eval().requires_grad_(False)

    def score(self, pred: Tensor, target: Tensor | None, **context: Any) -> dict[str, Tensor]:
        assert target is not None
        if self.size is not None:
            pred, target = (F.interpolate(t, size=(self.size, self.size), mode="bilinear",
                                          align_corners=False, antialias=True)
                            for t in (pred, target))
        out = self.model(pred.float(), target.float(), normalize=True)
        return {"lpips": out.reshape(-1)}


# ---------------------------------------------------------------------------------------------
# Identity


class IDMetric(PerImageMetric):
    """Identity similarity: cosine of face embeddings of pred and target (higher = same person)."""

    name = "id"
    same_size = False  # each image's face is found on its own

    def __init__(self, backend: str = "dlib", weights: str | None = None, detect: str = "auto",
                 device: str = "cpu") -> None:
        super().__init__(backend=backend, weights=weights, detect=detect, device=device)
        from stylebridge.plugins.nets import face_id as _face_id

        self.backend = backend
        if backend == "dlib":
            if weights is not None:
                raise StylebridgeError("id: backend=dlib uses the face-recognition-models files; "
                                       "weights= is for backend=arcface")
            self.embedder: Any = _face_id.DlibFaceEmbedder(detect=detect)
        elif backend == "arcface":
            self.embedder = _face_id.ArcFaceEmbedder(weights, self.device)
        else:
            raise StylebridgeError(f"id: backend={backend!r}; expected dlib or arcface")

    def score(self, pred: Tensor, target: Tensor | None, **context: Any) -> dict[str, Tensor]:
        assert target is not None
        a, _ = self.embedder.embed(pred)
        b, _ = self.embedder.embed(target)
        return {"id": (a * b).sum(dim=1)}  # NaN where a face was not found

    def reset(self) -> None:
        super().reset()
        if hasattr(getattr(self, "embedder", None), "n_fallback"):
            self.embedder.n_fallback = 0

    def notes(self) -> list[str]:
        notes = super().notes()
        fallback = getattr(self.embedder, "n_fallback", 0)
        if fallback:
            notes.append(f"no face was detected in {fallback} image(s); the whole image was "
                         "taken as the face box (use id:detect=hog to leave them out)")
        return notes


# ---------------------------------------------------------------------------------------------
# FID


class FIDMetric(BaseMetric):
    """Fréchet Inception distance between the predictions and the targets (or cached statistics)."""

    name = "fid"
    needs_target = False
    per_image = False

    def __init__(self, weights: str | None = None, ref_stats: str | None = None,
                 allow_random: bool = False, device: str = "cpu") -> None:
        super().__init__(weights=weights, ref_stats=ref_stats, allow_random=allow_random,
                         device=device)
        from stylebridge.plugins.nets import fid as _fid

        path = Path(weights) if weights is not None else _fid.default_weights_path()
        if path is not None:
            self.model = _fid.load_fid_inception(path, self.device)
        elif allow_random:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                self.model = _fid.FIDInceptionV3().to(self.device).eval().requires_grad_(False)
        else:
            raise _random_refused("fid", "the FID Inception weights are",
                                  f"pass fid:weights=PATH to {_fid.UPSTREAM_FILE} or its conversion")
        self.random_weights = path is None
        self.ref_path = Path(ref_stats) if ref_stats is not None else None
        self._ref: tuple[Any, Any, int | None] | None = None
        if self.ref_path is not None and self.ref_path.exists():
            self._ref = _fid.load_fid_stats(self.ref_path)

    def reset(self) -> None:
        from stylebridge.plugins.nets.fid import FeatureStats

        self.pred_stats = FeatureStats()
        self.target_stats = FeatureStats()
        self._targets_ignored = 0
        self.last = {}

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
        self.pred_stats.update(self.features(pred))
        if target is not None:
            if self._ref is None:
                self.target_stats.update(self.features(target))
            else:
                self._targets_ignored += target.shape[0]

    def update_reference(self, images: Tensor) -> None:
        """Reference images, unpaired (``eval --target`` when no metric compares pairs)."""
        _check_images(images, f"{self.name}: reference")
        if self._ref is None:
            self.target_stats.update(self.features(images))
        else:
            self._targets_ignored += images.shape[0]

    def compute(self) -> dict[str, float]:
        from stylebridge.plugins.nets import fid as _fid

        if self._ref is not None:
            mu2, sigma2, _ = self._ref
        elif self.target_stats.n:
            mu2, sigma2 = self.target_stats.mean(), self.target_stats.cov()
            if self.ref_path is not None and not self.random_weights:
                _fid.save_fid_stats(self.ref_path, mu2, sigma2, n=self.target_stats.n)
        else:
            raise StylebridgeError("fid: no reference: give target images or fid:ref_stats=PATH")
        return {"fid": _fid.frechet_distance(self.pred_stats.mean(), self.pred_stats.cov(),
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


# ---------------------------------------------------------------------------------------------
# CLIP


class _ClipMetric(BaseMetric):
    def _load_clip(self, model: str, weights: str | None, allow_random: bool) -> None:
        from stylebridge.plugins.nets.clip import load_clip

        if weights is None and not allow_random:
            raise _random_refused(self.name, f"CLIP {model} weights are",
                                  f"pass {self.name}:model={model},weights=PATH")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.clip = load_clip(model, weights=weights, device=self.device)
        self.random_weights = self.clip.random_weights

    @torch.no_grad()
    def embed(self, images01: Tensor) -> Tensor:
        """L2-normalised CLIP image embeddings ``[B, D]`` (float64)."""
        return self.clip.encode_images(images01.to(self.device).float()).double()


class ClipQualityMetric(_ClipMetric, PerImageMetric):
    """CLIP Quality: cosine of each image with the domain text (or reference image) embedding."""

    name = "clip_quality"
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
                from stylebridge.core.images import load_image

                emb = self.clip.encode_images(load_image(reference).unsqueeze(0).to(self.device))
        self.domain_embedding = emb[0].double()

    def score(self, pred: Tensor, target: Tensor | None, **context: Any) -> dict[str, Tensor]:
        return {"clip_quality": self.embed(pred) @ self.domain_embedding}


class ClipDiversityMetric(_ClipMetric):
    """CLIP Diversity: mean ``1 - cos`` over all pairs of images (streamed: O(D) memory)."""

    name = "clip_diversity"
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


class FIDInceptionConverter(Converter):
    """pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` → our checkpoint (kind ``backbone``)."""

    name = "fid-inception"
    source = "pytorch-fid pt_inception-2015-12-05-6726825d.pth (the TF-FID Inception-v3)"

    def convert(self, src: Path, dst: Path, **options: Any) -> ConversionResult:
        from stylebridge.core.checkpoint import save_checkpoint
        from stylebridge.core.stylegan2.rosinality import torch_load_safe
        from stylebridge.plugins.nets import fid as _fid

        src, dst = Path(src), Path(dst)
        if options:
            raise ConversionError(f"fid-inception takes no options, got {sorted(options)}",
                                  path=src)
        state = _fid.upstream_state_dict(torch_load_safe(src), src)
        save_checkpoint(dst, state, kind=_fid.NETWORK_KIND, plugin=_fid.NETWORK_PLUGIN,
                        config={}, extra={"source": src.name})
        return ConversionResult(path=dst, kind=_fid.NETWORK_KIND, plugin=_fid.NETWORK_PLUGIN,
                                n_tensors=len(state), notes=(_fid.LICENCE,))


METRICS: tuple[type[BaseMetric], ...] = (MSEMetric, PSNRMetric, SSIMMetric, LPIPSMetric, IDMetric,
                                         FIDMetric, ClipQualityMetric, ClipDiversityMetric)


# ---------------------------------------------------------------------------------------------
# `stylebridge eval`



@dataclass
class MetricRequest:
    """A parsed ``--metric NAME[:PATH][:k=v,...]`` (PATH becomes ``weights``)."""

    text: str
    name: str
    options: dict[str, Any] = field(default_factory=dict)


def parse_metric_spec(text: str) -> MetricRequest:
    """``psnr``, ``lpips:net=vgg``, ``fid:pt_inception.pth``, ``clip_quality:w.pt:model=ViT-B-16``."""
    from stylebridge.core.options import coerce_option
    from stylebridge.registry.spec import parse_plugin_spec

    spec = parse_plugin_spec(text, what="metric")
    if spec.name is None:
        raise SpecError(f"metric spec {text!r}: expected NAME[:k=v,...], e.g. lpips:net=vgg")
    raw_options = dict(spec.options)
    if spec.path is not None:
        if "weights" in raw_options:
            raise SpecError(f"metric spec {text!r} gives weights twice (PATH and weights=)")
        raw_options["weights"] = str(spec.path)
    options: dict[str, Any] = {}
    for key, value in raw_options.items():
        keep_text = key in {"weights", "backbone", "ref_stats", "reference", "text", "model"}
        options[key.replace("-", "_")] = value if keep_text else coerce_option(value)
    return MetricRequest(text=text.strip(), name=spec.name, options=options)


def pair_files(pred: list[Path], target: list[Path] | None, report: Any
               ) -> list[tuple[str, Path, Path | None]]:
    """Pair prediction and target files by stem; unpaired or ambiguous files go to ``report``."""

    def by_stem(paths: list[Path]) -> dict[str, Path]:
        table: dict[str, list[Path]] = {}
        for p in paths:
            table.setdefault(p.stem, []).append(p)
        out: dict[str, Path] = {}
        for stem, group in table.items():
            if len(group) > 1:
                for p in group:
                    report.skip(p, f"{len(group)} files share the name {stem!r} "
                                   f"({', '.join(q.name for q in group)})")
            else:
                out[stem] = group[0]
        return out

    preds = by_stem(pred)
    if target is None:
        return [(stem, p, None) for stem, p in preds.items()]
    targets = by_stem(target)
    pairs = []
    for stem, p in preds.items():
        if stem in targets:
            pairs.append((stem, p, targets[stem]))
        else:
            report.skip(p, f"no target image named {stem}.*")
    for stem, t in targets.items():
        if stem not in preds:
            report.skip(t, f"no prediction named {stem}.*")
    return pairs


def _json_number(value: float) -> float | str:
    """A float for JSON; ``inf``/``-inf``/``nan`` as those strings (as the CSV writes them:
    PSNR of identical images is inf, an ID without a face is nan)."""
    return value if math.isfinite(value) else str(value)


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf"
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"


class EvalCommand(Command):
    name = "eval"
    help = "evaluate predictions against targets (mse, psnr, ssim, lpips, id, fid, clip_*)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--metric", "-m", action="append", required=True,
                            metavar="NAME[:k=v,...]",
                            help="metric, repeatable: mse, psnr, ssim[:gaussian=true], "
                                 "lpips[:net=vgg,backbone=PATH], id[:backend=dlib|arcface], "
                                 "fid[:weights=PATH,ref_stats=PATH], "
                                 "clip_quality[:model=ViT-B-16,weights=PATH,reference=IMG], "
                                 "clip_diversity[:model=...,weights=PATH]")
        parser.add_argument("--pred", required=True, nargs="+", metavar="DIR|FILE",
                            help="predicted images (directories are expanded)")
        parser.add_argument("--target", nargs="+", metavar="DIR|FILE",
                            help="target images, paired with --pred by file name (stem); "
                                 "one file each: paired as given; when no metric compares "
                                 "pairs (fid alone): the reference set, names need not match")
        parser.add_argument("--domain-text", metavar="TEXT",
                            help="domain description for clip_quality (unless it has text= or "
                                 "reference=)")
        parser.add_argument("--size", type=int, metavar="N",
                            help="resize every image to N×N first (default: targets' size; "
                                 "predictions of another size are resized to their target)")
        parser.add_argument("--batch", type=int, default=8, help="images per batch (default 8)")
        parser.add_argument("--json", type=Path, metavar="OUT", help="write all values as JSON")
        parser.add_argument("--csv", type=Path, metavar="OUT",
                            help="write per-image values (and a 'mean' row) as CSV")
        parser.add_argument("--show", type=int, default=20, metavar="N",
                            help="print per-image rows when there are at most N images (default 20)")
        from stylebridge.cli.common import add_device_argument

        add_device_argument(parser)

    # -- helpers ---------------------------------------------------------------------------------
    @staticmethod
    def _build(requests: list[MetricRequest], args: argparse.Namespace, device: torch.device
               ) -> list[BaseMetric]:
        from stylebridge.registry import get_registry

        registry = get_registry()
        metrics = []
        for req in requests:
            options = dict(req.options)
            cls = registry.get("metric", req.name).obj
            if (req.name == "clip_quality" and "text" not in options
                    and "reference" not in options and args.domain_text):
                options["text"] = args.domain_text
            if "device" in inspect.signature(cls.__init__).parameters:
                options.setdefault("device", str(device))
            metric = registry.create("metric", req.name, **options)
            metric.reset()  # the interface's contract: reset, then update per batch, compute
            metrics.append(metric)
        return metrics

    @staticmethod
    def _labels(requests: list[MetricRequest]) -> list[str]:
        """Column prefix per metric: the name, or the whole spec when a name repeats."""
        counts: dict[str, int] = {}
        for req in requests:
            counts[req.name] = counts.get(req.name, 0) + 1
        return [req.text if counts[req.name] > 1 else "" for req in requests]

    @staticmethod
    def _batches(pairs: list[tuple[str, Path, Path | None]], args: argparse.Namespace,
                 report: Any, console: Console
                 ) -> Iterator[tuple[list[str], Tensor, Tensor | None]]:
        """Loaded, size-matched batches; unreadable pairs go to ``report``."""
        from stylebridge.core.images import load_image

        def resize(img: Tensor, hw: tuple[int, int]) -> Tensor:
            if tuple(img.shape[-2:]) == hw:
                return img
            return F.interpolate(img.unsqueeze(0), size=hw, mode="bilinear", align_corners=False,
                                 antialias=True)[0].clamp_(0, 1)

        names: list[str] = []
        preds: list[Tensor] = []
        targets: list[Tensor] = []
        noted = False
        for stem, p_path, t_path in pairs:
            try:
                pred = load_image(p_path)
            except StylebridgeError as exc:
                report.skip(p_path, str(exc).removeprefix(f"{p_path}: "))
                continue
            target = None
            if t_path is not None:
                try:
                    target = load_image(t_path)
                except StylebridgeError as exc:
                    report.skip(t_path, str(exc).removeprefix(f"{t_path}: "))
                    continue
            if args.size:
                pred = resize(pred, (args.size, args.size))
                target = None if target is None else resize(target, (args.size, args.size))
            elif target is not None and target.shape != pred.shape:
                if not noted:
                    console.print(f"[yellow]note:[/yellow] predictions whose size differs from "
                                  f"their target are resized to it (first: {p_path.name}, "
                                  f"{pred.shape[-1]}×{pred.shape[-2]} → "
                                  f"{target.shape[-1]}×{target.shape[-2]})")
                    noted = True
                pred = resize(pred, tuple(target.shape[-2:]))
            if preds and (pred.shape != preds[0].shape or len(preds) >= args.batch):
                yield names, torch.stack(preds), torch.stack(targets) if targets else None
                names, preds, targets = [], [], []
            report.ok(p_path)
            names.append(stem)
            preds.append(pred)
            if target is not None:
                targets.append(target)
        if preds:
            yield names, torch.stack(preds), torch.stack(targets) if targets else None

    # -- run -------------------------------------------------------------------------------------
    def run(self, args: argparse.Namespace, console: Console) -> int:
        from rich.progress import Progress
        from rich.table import Table

        from stylebridge.core.batch import BatchReport, expand_inputs
        from stylebridge.core.device import resolve_device

        if args.batch < 1:
            raise StylebridgeError(f"--batch {args.batch}: must be >= 1")
        if args.size is not None and args.size < 8:
            raise StylebridgeError(f"--size {args.size}: must be >= 8")
        requests = [parse_metric_spec(t) for t in args.metric]
        device = resolve_device(args.device)
        for item in (*args.pred, *(args.target or [])):
            if not Path(item).exists():
                raise StylebridgeError("no such file or directory", path=item)
        pred_files = expand_inputs(args.pred)
        target_files = expand_inputs(args.target) if args.target else None
        if not pred_files:
            raise StylebridgeError(f"--pred {' '.join(args.pred)}: no image files found")

        from stylebridge.core.io import check_writable

        for dst in (args.json, args.csv):  # before the work, not after it
            if dst is not None:
                check_writable(dst)
        metrics = self._build(requests, args, device)
        need_target = [r.name for r, m in zip(requests, metrics, strict=True) if m.needs_target]
        if need_target and target_files is None:
            raise StylebridgeError(f"metric(s) {', '.join(need_target)} compare pairs: "
                                   "give --target DIR")
        prefixes = self._labels(requests)

        report = BatchReport()
        # no metric compares pairs (FID, CLIP diversity): --target is a reference *set*,
        # read on its own, without matching names or resizing to a partner
        unpaired = target_files is not None and not any(m.needs_target for m in metrics)
        takes_reference = [m for m in metrics if hasattr(m, "update_reference")]
        for metric, req in zip(metrics, requests, strict=True):
            if hasattr(metric, "update_reference") and len(pred_files) < 2:
                raise StylebridgeError(f"{req.text}: FID compares distributions and needs at "
                                       f"least 2 predicted images, got {len(pred_files)}")
            if (hasattr(metric, "update_reference") and target_files is None
                    and getattr(metric, "_ref", None) is None):
                raise StylebridgeError(f"{req.text}: no reference: give --target DIR (the "
                                       "reference images) or fid:ref_stats=PATH")
        if unpaired and not takes_reference:
            console.print("[yellow]note:[/yellow] no requested metric uses --target; ignored")
        single = (len(args.pred) == 1 and args.target is not None and len(args.target) == 1
                  and Path(args.pred[0]).is_file() and Path(args.target[0]).is_file())
        if unpaired:
            pairs = pair_files(pred_files, None, report)
        elif single:  # two files named explicitly: a pair, whatever their names
            pairs = [(pred_files[0].stem, pred_files[0], target_files[0])]  # type: ignore[index]
        else:
            pairs = pair_files(pred_files, target_files, report)
        if not pairs:
            report.print(console)
            raise StylebridgeError("no image pairs to evaluate (file names of --pred and "
                                   "--target must match)")

        rows: list[dict[str, Any]] = []
        paths = {stem: (p, t) for stem, p, t in pairs}
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("evaluating", total=len(pairs))
            for names, pred, target in self._batches(pairs, args, report, console):
                batch_rows = [{"name": n, "pred": str(paths[n][0]),
                               "target": None if paths[n][1] is None else str(paths[n][1])}
                              for n in names]
                for prefix, metric in zip(prefixes, metrics, strict=True):
                    metric.update(pred, target)
                    for key, values in metric.last.items():
                        col = f"{key}[{prefix}]" if prefix else key
                        for row, value in zip(batch_rows, values, strict=True):
                            row[col] = value
                rows.extend(batch_rows)
                progress.advance(task, len(names))

        if not rows:
            report.print(console)
            raise StylebridgeError("no image could be read")
        if unpaired and takes_reference:
            n_reference = 0
            references = pair_files(target_files or [], None, report)
            for _, images, _ in self._batches(references, args, report, console):
                for metric in takes_reference:
                    metric.update_reference(images)  # type: ignore[attr-defined]
                n_reference += images.shape[0]
            if n_reference == 0:
                report.print(console)
                raise StylebridgeError("no --target image could be read as the reference set")

        results: dict[str, Any] = {}
        means: dict[str, float] = {}
        random_cols: set[str] = set()
        for prefix, req, metric in zip(prefixes, requests, metrics, strict=True):
            values = metric.compute()
            labelled = {(f"{k}[{prefix}]" if prefix else k): v for k, v in values.items()}
            means.update(labelled)
            if metric.random_weights:
                random_cols.update(labelled)
            results[req.text] = {"values": {k: _json_number(v) for k, v in labelled.items()},
                                 "config": metric.config(), "random_weights": metric.random_weights,
                                 "notes": metric.notes()}

        columns = list(means)
        per_image_cols = [c for c in columns if any(c in r for r in rows)]
        self._print(console, rows, means, per_image_cols, random_cols, args.show, Table)
        for req, metric in zip(requests, metrics, strict=True):
            for note in metric.notes():
                style = "bold red" if note.startswith("RANDOM") else "yellow"
                console.print(f"[{style}]{req.text}:[/{style}] {note}")

        if args.json:
            from stylebridge.core.io import write_json

            write_json(args.json, {
                "pred": [str(p) for p in args.pred],
                "target": [str(t) for t in args.target] if args.target else None,
                "n_images": len(rows),
                "metrics": results,
                "mean": {k: _json_number(v) for k, v in means.items()},
                "per_image": [{k: (_json_number(v) if isinstance(v, float) else v)
                               for k, v in r.items()} for r in rows],
                "report": report.as_dict(),
            })
            console.print(f"[green]wrote[/green] {escape(str(args.json))}")
        if args.csv:
            self._write_csv(args.csv, rows, means, per_image_cols, columns, random_cols)
            console.print(f"[green]wrote[/green] {escape(str(args.csv))}")
        report.print(console)
        return report.exit_code

    @staticmethod
    def _print(console: Console, rows: list[dict[str, Any]], means: dict[str, float],
               per_image_cols: list[str], random_cols: set[str], show: int, table_cls: Any) -> None:
        table = table_cls(title=f"stylebridge eval: {len(rows)} image(s)")
        table.add_column("image")
        for col in means:  # "ssim[ssim:gaussian=true]" is a label, not rich markup
            table.add_column(escape(col) + (" (RANDOM WEIGHTS)" if col in random_cols else ""),
                             justify="right")
        if len(rows) <= show:
            for row in rows:
                table.add_row(escape(row["name"]), *(_fmt(row[c]) if c in per_image_cols and c in row
                                              else "" for c in means))
            table.add_section()
        table.add_row("[bold]mean[/bold]", *(f"[bold]{_fmt(v)}[/bold]" for v in means.values()))
        console.print(table)

    @staticmethod
    def _write_csv(path: Path, rows: list[dict[str, Any]], means: dict[str, float],
                   per_image_cols: list[str], columns: list[str], random_cols: set[str]) -> None:
        from stylebridge.core.io import atomic_path

        header = ["name", "pred", "target", *columns]
        with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            for row in rows:
                writer.writerow([row["name"], row["pred"], row["target"] or "",
                                 *(repr(row[c]) if c in per_image_cols and c in row else ""
                                   for c in columns)])
            writer.writerow(["mean", "", "", *(repr(means[c]) for c in columns)])
            if random_cols:
                writer.writerow(["random_weights", "", "",
                                 *("yes" if c in random_cols else "" for c in columns)])


# ---------------------------------------------------------------------------------------------
# Registration


@hookimpl
def register_metrics(register: Any) -> None:
    for cls in METRICS:
        register(cls)


@hookimpl
def register_converters(register: Any) -> None:
    register(FIDInceptionConverter())


@hookimpl
def register_commands(register: Any) -> None:
    register(EvalCommand())
