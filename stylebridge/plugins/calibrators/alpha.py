"""Calibrators: alpha-rescaling of domain offsets (thesis, "Examining latent distributions").

The thesis compares, per modulated layer ``i``, the per-channel means of an
encoder's style codes (``s = A_i(w)``, *after* the affine transforms) over a
photo set (FFHQ small, 3000 images) with the per-channel means of the mapping
network's style codes over sampled ``z ~ N(0, I)`` (3000 samples), finds
``s_enc ≈ α⁽ⁱ⁾ · s_orig`` on most layers and rescales the domain offsets of
layer ``i`` by ``1/α⁽ⁱ⁾``.

Fit.  The thesis fits "simple Linear Regression models ... in the
``w_enc⁽ⁱ⁾ = α⁽ⁱ⁾ · w_orig⁽ⁱ⁾`` hypothesis".  The hypothesis has no
intercept, and only a pure proportionality makes "scale the offsets by
``1/α``" meaningful (an intercept would be an additive shift that no offset
scale can absorb), so we fit by least squares **through the origin** over the
``C_i`` channel means of the layer: ``α = Σ_c x_c y_c / Σ_c x_c²`` (``x`` =
mapping-network means, ``y`` = encoder means).  ``fit="intercept"`` instead
uses the slope of an ordinary least-squares fit with intercept (the default
of e.g. scikit-learn's ``LinearRegression``); the intercept and the R² of the
chosen fit are stored for inspection either way.

Direction.  The thesis states the rescaling as ``1/α⁽ⁱ⁾`` (and so does our
spec), but its next sentence reads "if encoder's latents on the particular
layer tend to be twice as large as the original ones, we double up the offsets
power", which is ``α``, not ``1/α``.  ``offset_scale`` returns ``α ** power``
with ``power = -1`` (the formula) by default; ``power = 1`` gives the other
reading.

Layers: every modulated layer of the generator (style-layer indices of
:mod:`stylebridge.core.stylegan2.generator`, 26 at 1024 px incl. ToRGB).
``skip_layers`` (the thesis' "indomain" observation: no offsets on the first
layer(s), e.g. 0 = ``conv1``) get scale 0, and so do layers whose ``α`` is not
a finite number above ``min_alpha`` (a near-zero or negative mean ratio would
blow up or flip the offsets).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor

from stylebridge.core.checkpoint import save_checkpoint
from stylebridge.core.interfaces import Calibrator, Encoder
from stylebridge.core.schema import LAYER_INDEX, Field
from stylebridge.errors import StylebridgeError
from stylebridge.registry import hookimpl

if TYPE_CHECKING:
    from stylebridge.core.stylegan2.generator import Generator

FITS = ("origin", "intercept")
MAPPING_BATCH = 500  # z per batch: with the seed, it fixes which z are drawn


class StyleMeanAccumulator:
    """Running per-channel sums of style vectors (float64), one entry per style layer."""

    def __init__(self) -> None:
        self.sums: list[Tensor] | None = None
        self.count = 0

    def add(self, styles: Sequence[Tensor]) -> None:
        batch = [s.detach().to(torch.float64).sum(0).cpu() for s in styles]
        if self.sums is None:
            self.sums = batch
        else:
            if len(batch) != len(self.sums):
                raise ValueError(f"got {len(batch)} style layers, expected {len(self.sums)}")
            self.sums = [a + b for a, b in zip(self.sums, batch, strict=True)]
        self.count += int(styles[0].shape[0])

    def means(self) -> list[Tensor]:
        if self.sums is None or self.count == 0:
            raise ValueError("no style vectors were accumulated")
        return [(s / self.count).float() for s in self.sums]


@torch.no_grad()
def encoder_style_means(encoder: Encoder, generator: Generator,
                        batches: Iterable[Tensor]) -> tuple[list[Tensor], int]:
    """Per-channel means of ``generator.styles(encoder(images).w_plus)`` over all batches.

    ``batches`` yields images ``[B, 3, H, W]`` in ``[0, 1]``; returns the
    means (one ``[C_i]`` per style layer) and the number of images.
    """
    acc = StyleMeanAccumulator()
    device = generator.input.input.device
    for images in batches:
        inversion = encoder.encode(images.to(device))
        acc.add(generator.styles(inversion.w_plus.to(device)))
    if acc.count == 0:
        raise StylebridgeError("no readable images to compute the encoder's style means from")
    return acc.means(), acc.count


@torch.no_grad()
def mapping_wplus_batches(generator: Generator, samples: int, *, seed: int = 0,
                          batch: int = MAPPING_BATCH) -> Iterator[Tensor]:
    """``w+`` of ``samples`` mapped ``z ~ N(0, I)`` (no truncation), ``batch`` at a time.

    The z come from a CPU ``torch.Generator`` seeded with ``seed`` and are drawn in
    batches of ``batch`` (the last one smaller): the same ``seed`` and ``batch`` give the
    same z on every device, so :func:`mapping_style_means` and ``stylebridge analyze``
    (:func:`stylebridge.pipelines.analyze.collect_mapping_stats`) see the same samples.
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    device = generator.input.input.device
    gen = torch.Generator().manual_seed(seed)
    done = 0
    while done < samples:
        n = min(batch, samples - done)
        z = torch.randn(n, generator.style_dim, generator=gen).to(device)
        yield generator.make_wplus(z)
        done += n


@torch.no_grad()
def mapping_style_means(generator: Generator, samples: int = 3000, *, batch: int = MAPPING_BATCH,
                        seed: int = 0) -> list[Tensor]:
    """Per-channel means of the styles of ``samples`` mapped ``z ~ N(0, I)`` (no truncation)."""
    acc = StyleMeanAccumulator()
    for w_plus in mapping_wplus_batches(generator, samples, seed=seed, batch=batch):
        acc.add(generator.styles(w_plus))
    return acc.means()


@dataclass(frozen=True)
class AlphaFit:
    """Per-layer fit of ``y ≈ alpha * x + intercept`` (``intercept`` = 0 for ``fit="origin"``)."""

    alpha: Tensor      # [L]
    intercept: Tensor  # [L]
    r2: Tensor         # [L], coefficient of determination of the chosen fit


def fit_alpha(source_means: Sequence[Tensor], encoder_means: Sequence[Tensor],
              fit: str = "origin") -> AlphaFit:
    """Least-squares ``encoder ≈ α · source`` per layer over the channel means (see module doc)."""
    if fit not in FITS:
        raise ValueError(f"fit must be one of {FITS}, got {fit!r}")
    if len(source_means) != len(encoder_means):
        raise ValueError(f"{len(source_means)} source layers but {len(encoder_means)} encoder layers")
    alpha, intercept, r2 = [], [], []
    for x, y in zip(source_means, encoder_means, strict=True):
        x, y = x.double().flatten(), y.double().flatten()
        if x.shape != y.shape:
            raise ValueError(f"layer widths differ: {x.numel()} vs {y.numel()}")
        if fit == "origin":
            a = (x * y).sum() / (x * x).sum()
            b = torch.zeros((), dtype=torch.float64)
        else:
            xc, yc = x - x.mean(), y - y.mean()
            a = (xc * yc).sum() / (xc * xc).sum()
            b = y.mean() - a * x.mean()
        resid = y - (a * x + b)
        ss_tot = ((y - y.mean()) ** 2).sum()
        r2.append(1 - (resid ** 2).sum() / ss_tot if ss_tot > 0 else torch.tensor(float("nan")))
        alpha.append(a)
        intercept.append(b)
    return AlphaFit(torch.stack(alpha).float(), torch.stack(intercept).float(),
                    torch.stack([torch.as_tensor(v, dtype=torch.float64) for v in r2]).float())


def parse_layers(text: str | int | Sequence[int] | None, *, what: str = "--skip-layers") -> list[int]:
    """``"0,1"`` / ``"0-2,5"`` / ``[0, 1]`` → sorted unique layer indices."""
    if text is None or text == "":
        return []
    if isinstance(text, int):
        return [int(text)]
    if not isinstance(text, str):
        return sorted({int(i) for i in text})
    out: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise StylebridgeError(f"{what} {text!r}: expected layer indices like 0,1 or 0-3")
        a, b = int(lo), int(hi) if sep else int(lo)
        if b < a:
            raise StylebridgeError(f"{what} {text!r}: range {part} is empty")
        out.update(range(a, b + 1))
    return sorted(out)


def skip_scale(n_layers: int, skip_layers: Sequence[int], base: Tensor | None = None) -> Tensor | None:
    """``base`` (or ones) with the ``skip_layers`` entries set to 0; ``None`` if nothing to do."""
    bad = [i for i in skip_layers if not 0 <= i < n_layers]
    if bad:
        raise StylebridgeError(f"skip layers {bad} out of range: this generator has style layers "
                               f"0..{n_layers - 1}")
    if base is None and not skip_layers:
        return None
    scale = torch.ones(n_layers) if base is None else base.detach().float().cpu().clone()
    if scale.shape != (n_layers,):
        raise StylebridgeError(f"offset scale has {scale.numel()} entries, this generator has "
                               f"{n_layers} style layers")
    scale[list(skip_layers)] = 0.0
    return scale


class AlphaCalibrator(Calibrator):
    """Alpha-rescaling: domain offsets of layer i scaled by 1/alpha_i (thesis)."""

    name = "alpha"
    description = "alpha-rescaling: scale each layer's domain offset by 1/alpha (encoder vs mapping styles)"
    requires_weights: ClassVar[bool] = True
    config_schema: ClassVar[Mapping[str, Field]] = {
        "widths": Field("ints", 1, 4096, max_len=64), "skip_layers": LAYER_INDEX,
        "fit": Field("str", choices=FITS), "power": Field("float", -100.0, 100.0),
        "min_alpha": Field("float", 1e-12, 1.0),
    }

    def __init__(self, widths: Sequence[int] = (), skip_layers: Sequence[int] | str | int = (),
                 fit: str = "origin", power: float = -1.0, min_alpha: float = 1e-3) -> None:
        super().__init__()
        if fit not in FITS:
            raise ValueError(f"fit must be one of {FITS}, got {fit!r}")
        self.widths = [int(c) for c in widths]
        self.skip_layers = parse_layers(skip_layers)
        self.fit, self.power, self.min_alpha = fit, float(power), float(min_alpha)
        n = len(self.widths)
        self.register_buffer("alpha", torch.ones(n))
        self.register_buffer("intercept", torch.zeros(n))
        self.register_buffer("r2", torch.zeros(n))
        for i, c in enumerate(self.widths):
            self.register_buffer(f"source_mean_{i}", torch.zeros(c))
            self.register_buffer(f"encoder_mean_{i}", torch.zeros(c))

    def config(self) -> dict[str, Any]:
        return {"widths": list(self.widths), "skip_layers": list(self.skip_layers), "fit": self.fit,
                "power": self.power, "min_alpha": self.min_alpha}

    fittable = True

    @classmethod
    def from_style_means(cls, source_means: Sequence[Tensor], encoder_means: Sequence[Tensor],
                         **config: Any) -> AlphaCalibrator:
        """Fit α from per-layer channel means (mapping network = source, encoder)."""
        calib = cls(widths=[int(m.numel()) for m in source_means], **config)
        result = fit_alpha(source_means, encoder_means, calib.fit)
        with torch.no_grad():
            calib.alpha.copy_(result.alpha)
            calib.intercept.copy_(result.intercept)
            calib.r2.copy_(result.r2)
            for i, (x, y) in enumerate(zip(source_means, encoder_means, strict=True)):
                getattr(calib, f"source_mean_{i}").copy_(x.flatten())
                getattr(calib, f"encoder_mean_{i}").copy_(y.flatten())
        return calib

    def unreliable_layers(self) -> list[int]:
        """Layers whose α is not a finite number above ``min_alpha`` (they get no offset)."""
        a = self.alpha
        return [i for i in range(a.numel()) if not (bool(torch.isfinite(a[i])) and
                                                    float(a[i]) > self.min_alpha)]

    def offset_scale(self, n_layers: int) -> Tensor:
        """``α_i ** power`` (``1/α_i`` by default) per style layer; 0 on skipped/unreliable layers."""
        n = self.alpha.numel()
        if n != n_layers:
            raise StylebridgeError(f"alpha statistics have {n} style layers, this generator has "
                                   f"{n_layers}: calibrate with the same generator")
        a = self.alpha.detach().float().cpu()
        ok = torch.isfinite(a) & (a > self.min_alpha)
        scale = torch.where(ok, a.clamp(min=self.min_alpha).pow(self.power), torch.zeros_like(a))
        return skip_scale(n_layers, self.skip_layers, scale)  # type: ignore[return-value]

    def save(self, path: str | Path, *, extra: dict[str, Any] | None = None) -> Path:
        return save_checkpoint(path, self.state_dict(), kind="calibrator", plugin=self.name,
                               config=self.config(), extra=extra)


@hookimpl
def register_calibrators(register: Any) -> None:
    register(AlphaCalibrator)
