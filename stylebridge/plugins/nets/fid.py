"""FID: the TF-FID Inception-v3 (pytorch-fid layout), streaming statistics, Fréchet distance.

The network is the Inception-v3 that TensorFlow's FID code used
(``inception-2015-12-05``), in the layout of pytorch-fid's port
``pt_inception-2015-12-05-6726825d.pth``: torchvision's ``Inception3`` module
names with ``num_classes=1008`` and no auxiliary head, and three patched block
types (facts from mseitzer/pytorch-fid ``inception.py``):

* ``FIDInceptionA`` / ``FIDInceptionC`` (Mixed_5b-d, Mixed_6b-e) and the first
  ``FIDInceptionE`` (Mixed_7b): the pool branch averages over the 3×3 window
  *without* the zero padding (``count_include_pad=False``), as TF does;
* the second ``FIDInceptionE`` (Mixed_7c) max-pools in its pool branch.

Input: images ``[B, 3, H, W]`` in ``[0, 1]``, resized to 299×299 (bilinear,
``align_corners=False``, no antialiasing, as pytorch-fid does) and mapped to
``[-1, 1]``.  Features: the 2048-d global average pool before ``fc``.

Statistics are accumulated in float64 as a shifted sum and outer sum, so that
10k+ images never need to be held in memory; the covariance uses ``N - 1``
(``numpy.cov``'s default, as pytorch-fid).  The Fréchet distance uses a
symmetric eigenvalue formula that is exact for PSD inputs:
``tr sqrt(Σ1 Σ2) = Σ sqrt(eig(Lᵀ Σ2 L))`` with ``L Lᵀ = Σ1``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.inception import (
    BasicConv2d,
    InceptionA,
    InceptionB,
    InceptionC,
    InceptionD,
    InceptionE,
)

from stylebridge.core.checkpoint import check_state_dict, load_checkpoint, save_checkpoint
from stylebridge.core.stylegan2.rosinality import torch_load_safe
from stylebridge.errors import CheckpointError, ConversionError, StylebridgeError
from stylebridge.plugins.nets.state import default_backbone

UPSTREAM_FILE = "pt_inception-2015-12-05-6726825d.pth"
NETWORK_KIND = "backbone"
NETWORK_PLUGIN = "fid-inception"
WEIGHTS_ENTRY = "fid-inception"  # stylebridge weights fetch fid-inception
STATS_KIND = "fid_stats"
STATS_PLUGIN = "fid"
FEATURE_DIM = 2048
INPUT_SIZE = 299
LICENCE = ("licence: the FID Inception weights are Google's inception-2015-12-05 (Apache-2.0), "
           "ported by pytorch-fid (Apache-2.0)")


# ---------------------------------------------------------------------------------------------
# The network


def _tf_avg_pool(x: Tensor) -> Tensor:
    """3×3 stride-1 average pool that ignores the zero padding (TensorFlow's behaviour)."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(InceptionA):
    """Mixed_5b-d: torchvision's InceptionA with the TF average pool."""

    def _forward(self, x: Tensor) -> list[Tensor]:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return [b1, b5, b3, self.branch_pool(_tf_avg_pool(x))]


class FIDInceptionC(InceptionC):
    """Mixed_6b-e: torchvision's InceptionC with the TF average pool."""

    def _forward(self, x: Tensor) -> list[Tensor]:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            bd = layer(bd)
        return [b1, b7, bd, self.branch_pool(_tf_avg_pool(x))]


class FIDInceptionE(InceptionE):
    """Mixed_7b (``pool="avg"``, TF average pool) and Mixed_7c (``pool="max"``)."""

    def __init__(self, in_channels: int, pool: str) -> None:
        super().__init__(in_channels)
        self.pool = pool

    def _forward(self, x: Tensor) -> list[Tensor]:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        pooled = (_tf_avg_pool(x) if self.pool == "avg"
                  else F.max_pool2d(x, kernel_size=3, stride=1, padding=1))
        return [b1, b3, bd, self.branch_pool(pooled)]


class FIDInceptionV3(nn.Module):
    """TF-FID Inception-v3; :meth:`forward` maps images in ``[0, 1]`` to ``[B, 2048]`` features.

    Parameter names equal pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``
    (torchvision ``Inception3`` names, ``fc`` with 1008 classes), so that file
    loads with ``strict=True`` after :func:`upstream_state_dict`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = FIDInceptionA(192, pool_features=32)
        self.Mixed_5c = FIDInceptionA(256, pool_features=64)
        self.Mixed_5d = FIDInceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        self.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = FIDInceptionE(1280, pool="avg")
        self.Mixed_7c = FIDInceptionE(2048, pool="max")
        self.fc = nn.Linear(FEATURE_DIM, 1008)  # unused for FID; kept so the upstream file loads

    @staticmethod
    def preprocess(images01: Tensor) -> Tensor:
        """``[B, 3, H, W]`` in ``[0, 1]`` → 299×299 in ``[-1, 1]`` (pytorch-fid's transform)."""
        if images01.ndim != 4 or images01.shape[1] != 3:
            raise ValueError(f"expected images [B, 3, H, W], got {list(images01.shape)}")
        x = images01.float()
        if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear",
                              align_corners=False)
        return 2.0 * x - 1.0

    def forward(self, images01: Tensor) -> Tensor:
        x = self.preprocess(images01)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b,
                      self.Mixed_6c, self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b,
                      self.Mixed_7c):
            x = block(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


def _expected_shapes(model: nn.Module) -> dict[str, torch.Size]:
    return {k: v.shape for k, v in model.state_dict().items()
            if not k.endswith("num_batches_tracked")}


def upstream_state_dict(obj: Any, path: Path) -> dict[str, Tensor]:
    """Validate pytorch-fid's state dict (any ``num_batches_tracked`` entries are dropped)."""
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ConversionError(f"does not hold an Inception state dict (expected {UPSTREAM_FILE})",
                              path=path)
    state = {k.removeprefix("module."): v for k, v in obj.items()
             if not k.endswith("num_batches_tracked")}
    check_state_dict(path, _expected_shapes(FIDInceptionV3()), state, what="FID Inception",
                     error=ConversionError)
    return {k: v.float() for k, v in state.items()}


def _load_into(model: FIDInceptionV3, state: dict[str, Tensor]) -> FIDInceptionV3:
    result = model.load_state_dict(state, strict=False)
    bad = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if bad or result.unexpected_keys:  # pragma: no cover - validated before
        raise CheckpointError(f"FID Inception weights do not fit: {bad[:3]} {result.unexpected_keys[:3]}")
    return model


def load_fid_inception(path: str | Path, device: str | torch.device = "cpu") -> FIDInceptionV3:
    """Our converted checkpoint (``.safetensors``) or pytorch-fid's ``.pth`` → eval-mode network."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("no such file" if not path.exists() else "is not a file", path=path)
    if path.suffix == ".safetensors":
        _, tensors = load_checkpoint(path, kind=NETWORK_KIND, plugin=NETWORK_PLUGIN)
        check_state_dict(path, _expected_shapes(FIDInceptionV3()), tensors, what="FID Inception",
                         check_finite=False)  # load_checkpoint checked the values
        state = tensors
    else:
        state = upstream_state_dict(torch_load_safe(path), path)
    model = _load_into(FIDInceptionV3(), state)
    return model.to(device).eval().requires_grad_(False)


def default_weights_path() -> Path | None:
    """The network used without ``weights=PATH``: the installed ``fid-inception`` entry
    (``stylebridge weights fetch fid-inception``), else pytorch-fid's download in the torch
    hub cache; ``None`` when neither is there."""
    return default_backbone(WEIGHTS_ENTRY, UPSTREAM_FILE)


# ---------------------------------------------------------------------------------------------
# Statistics


class FeatureStats:
    """Streaming mean and covariance of feature vectors (float64; memory O(D²), not O(N·D)).

    Keeps ``Σ(x - c)`` and ``Σ(x - c)(x - c)ᵀ`` around a shift ``c`` (the first
    batch's mean), which avoids the cancellation of a plain outer sum.
    """

    def __init__(self, dim: int | None = None) -> None:
        self.dim = dim  # None: taken from the first batch
        self.n = 0
        self._shift: Tensor | None = None
        self._sum: Tensor | None = None
        self._outer: Tensor | None = None

    def update(self, features: Tensor) -> None:
        """Add ``[B, D]`` feature vectors."""
        if features.ndim != 2 or (self.dim is not None and features.shape[1] != self.dim):
            raise ValueError(f"expected features [B, {self.dim or 'D'}], got {list(features.shape)}")
        x = features.detach().to("cpu", torch.float64)
        if self._shift is None or self._sum is None or self._outer is None:
            self.dim = x.shape[1]
            self._shift = x.mean(0)
            self._sum = torch.zeros(self.dim, dtype=torch.float64)
            self._outer = torch.zeros(self.dim, self.dim, dtype=torch.float64)
        x = x - self._shift
        self.n += x.shape[0]
        self._sum += x.sum(0)
        self._outer.addmm_(x.T, x)

    def mean(self) -> np.ndarray:
        if self.n == 0 or self._shift is None or self._sum is None:
            raise StylebridgeError("no features were accumulated")
        return (self._shift + self._sum / self.n).numpy()

    def cov(self) -> np.ndarray:
        """Unbiased covariance (divides by ``N - 1``, like ``numpy.cov``)."""
        if self.n < 2 or self._sum is None or self._outer is None:
            raise StylebridgeError(f"fid: a covariance needs at least 2 images per set, got {self.n}")
        centred = self._sum / self.n
        cov = (self._outer - self.n * torch.outer(centred, centred)) / (self.n - 1)
        return cov.numpy()


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``tr((Σ1 Σ2)^½)`` for symmetric PSD matrices.

    ``Σ1 Σ2`` is similar to the symmetric PSD ``Bᵀ Σ2 B`` for any ``B`` with
    ``B Bᵀ = Σ1``, so the trace is the sum of square roots of that matrix's
    eigenvalues.  ``B`` is the Cholesky factor when ``Σ1`` is positive definite
    (one eigenvalue problem) and the symmetric square root otherwise.
    """
    try:
        factor = np.linalg.cholesky(sigma1)
    except np.linalg.LinAlgError:  # singular (fewer images than dimensions): eigen square root
        vals, vecs = np.linalg.eigh(sigma1)
        factor = (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T
    inner = factor.T @ sigma2 @ factor
    eig = np.linalg.eigvalsh((inner + inner.T) / 2.0)
    return float(np.sqrt(np.clip(eig, 0.0, None)).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                     sigma2: np.ndarray) -> float:
    """``‖μ1 - μ2‖² + tr(Σ1) + tr(Σ2) - 2 tr((Σ1 Σ2)^½)`` for PSD covariances (float64)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise StylebridgeError(f"FID statistics do not match: mean {mu1.shape} vs {mu2.shape}, "
                               f"covariance {sigma1.shape} vs {sigma2.shape}")
    sigma1, sigma2 = (sigma1 + sigma1.T) / 2.0, (sigma2 + sigma2.T) / 2.0
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2)
                  - 2.0 * _trace_sqrt_product(sigma1, sigma2))
    return max(value, 0.0)


def save_fid_stats(path: str | Path, mu: np.ndarray, sigma: np.ndarray, *, n: int,
                   extra: dict[str, Any] | None = None) -> Path:
    """Write FID statistics as a stylebridge checkpoint (kind ``fid_stats``, float64)."""
    tensors = {"mu": torch.from_numpy(np.ascontiguousarray(mu, np.float64)),
               "sigma": torch.from_numpy(np.ascontiguousarray(sigma, np.float64))}
    return save_checkpoint(path, tensors, kind=STATS_KIND, plugin=STATS_PLUGIN,
                           config={"n": int(n), "dim": int(mu.shape[0])}, extra=dict(extra or {}))


def load_fid_stats(path: str | Path) -> tuple[np.ndarray, np.ndarray, int | None]:
    """``(mu, sigma, n)`` from our ``fid_stats`` checkpoint or a pytorch-fid ``.npz`` (mu, sigma)."""
    path = Path(path)
    if path.suffix == ".npz":
        if not path.is_file():
            raise CheckpointError("no such file", path=path)
        try:
            with np.load(path, allow_pickle=False) as data:
                mu, sigma = np.asarray(data["mu"], np.float64), np.asarray(data["sigma"], np.float64)
        except (KeyError, ValueError, OSError) as exc:
            raise CheckpointError(f"not a FID statistics .npz with 'mu' and 'sigma' ({exc})",
                                  path=path) from None
        n = None
    else:
        header, tensors = load_checkpoint(path, kind=STATS_KIND)
        if set(tensors) != {"mu", "sigma"}:
            raise CheckpointError(f"FID statistics must hold 'mu' and 'sigma', found {sorted(tensors)}",
                                  path=path)
        mu, sigma = tensors["mu"].double().numpy(), tensors["sigma"].double().numpy()
        n = header.config.get("n")
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise CheckpointError(f"FID statistics have mean {list(mu.shape)} and covariance "
                              f"{list(sigma.shape)}", path=path)
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise CheckpointError("FID statistics contain NaN or Inf values", path=path)
    return mu, sigma, n
