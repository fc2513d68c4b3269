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

Which fit each thesis figure implies: Fig. 4.9 draws ``y = α·x`` lines and the text states
the hypothesis ``w_enc = α·w_orig`` (origin); Fig. 4.11 scales offsets by ``1/α``, which only
corrects a proportional mismatch (origin); Fig. 4.10 (Eq. 5) uses no α.  "Simple Linear
Regression" alone would suggest a library default with intercept, so ``intercept`` stays
selectable, and ``stylebridge analyze latents`` draws and tables both.  The thesis prints no α
values to decide between them numerically; the default is ``origin``.

Layers: every modulated layer of the generator (style-layer indices of
:mod:`stylebridge.core.stylegan2.generator`, 26 at 1024 px incl. ToRGB).
``skip_layers`` (:func:`parse_layers`: ``coarse`` = StyleDomain's ``no_coarse``, the
thesis' in-domain remedy; ``first`` = ``conv1``; indices; ``w:N`` W+ rows) get scale 0,
and so do layers whose ``α`` is not a finite number above ``min_alpha`` (a near-zero or
negative mean ratio would blow up or flip the offsets; compared in float64 everywhere) or
whose ``α ** power`` is not finite (or is 0) in float32; those are not silent:
:meth:`AlphaCalibrator.unreliable_layers` lists them and ``calibrate``, ``adapt``
(``adapt.json``: ``calibrator_zeroed_layers``) and ``analyze latents``
(``near_zero_alpha``) report them.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor

from stylebridge.core.interfaces import Calibrator, Encoder, FitReport
from stylebridge.core.schema import LAYER_INDEX, Field
from stylebridge.errors import StylebridgeError
from stylebridge.registry import hookimpl

if TYPE_CHECKING:
    from stylebridge.core.stylegan2.generator import Generator

FITS = ("origin", "intercept")
#: α at or below this (or not finite) is "near 0": no usable offset scale (1/α would blow up)
MIN_ALPHA = 1e-3
MAPPING_BATCH = 500  # z per batch: with the seed, it fixes which z are drawn
#: the α and R² columns of ``calibrate``'s table: header and meaning, as ``analyze latents``
#: names them (``pipelines/analyze/report.py``'s ``QUANTITIES``; a test keeps them equal)
ALPHA_COLUMN = ("α →1", "slope of encoder ≈ α · mapping over a layer's per-channel style means; "
                "1 = calibrated (thesis Fig. 4.9's y = x)")
R2_COLUMN = ("R² ↑", "how much of the layer's spread the fit y = α·x (or with intercept) "
             "explains; below 0 when the line through the origin fits worse than the mean")


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

    def state(self) -> dict[str, Any]:
        """The sums (exact: ``float.hex``) and the count, as JSON values."""
        return {"count": self.count,
                "sums": None if self.sums is None else [[v.hex() for v in s.tolist()]
                                                        for s in self.sums]}

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Continue from what :meth:`state` returned."""
        sums = state.get("sums")
        self.sums = None if sums is None else [
            torch.tensor([float.fromhex(v) for v in s], dtype=torch.float64) for s in sums]
        self.count = int(state["count"])


@torch.no_grad()
def encoder_style_means(encoder: Encoder, generator: Generator,
                        batches: Iterable[Tensor], acc: StyleMeanAccumulator | None = None
                        ) -> tuple[list[Tensor], int]:
    """Per-channel means of ``generator.styles(encoder(images).w_plus)`` over all batches.

    ``batches`` yields images ``[B, 3, H, W]`` in ``[0, 1]``; returns the
    means (one ``[C_i]`` per style layer) and the number of images.  ``acc``: add to these
    sums (a run that continues an interrupted one) and keep them there.
    """
    acc = StyleMeanAccumulator() if acc is None else acc
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


# Named skip sets, in our style-layer indexing (see LAYER_TABLE_DOC).
#: StyleDomain's ``no_coarse`` (SimilarDomains/core/parametrizations.py,
#: ``BaseParametrization.level_to_conv_name_map["coarse"]`` = heads ``conv_0 … conv_5``; heads are
#: the 17 modulated convs in execution order, ``get_stylegan_conv_dimensions``): ``conv1`` (4 px),
#: both 8 px convs, both 16 px convs and the first 32 px conv.  Its in-domain configs
#: (``configs/td_nada_ffhq*.yaml``: ``no_coarse: True`` with the ``indomain`` loss) train with it:
#: the thesis' "indomain adaptation does not shift first layer latents" remedy.
SKIP_SETS: dict[str, tuple[int, ...]] = {
    "coarse": (0, 2, 3, 5, 6, 8),
    "first": (0,),
    "none": (),
}

LAYER_TABLE_DOC = """\
Layer numbering (1024 px; smaller generators stop earlier).  ``--skip-layers`` takes our
26 style-layer indices; upstream W+ code numbers the 18 W+ rows, StyleDomain's heads the 17
modulated convs.  ``w:N`` translates W+ row N to the style layers that read it, ``conv:N``
StyleDomain's head ``conv_N``.

| W+ row (thesis/upstream, 18) | style layers (ours, 26) | StyleDomain head |
|---|---|---|
| 0 | 0 = conv1 (4 px) | conv_0 |
| 1 | 1 = to_rgb1 (ToRGB), 2 = convs.0 (8 px) | -, conv_1 |
| 2 | 3 = convs.1 (8 px) | conv_2 |
| 3 | 4 = to_rgbs.0 (ToRGB), 5 = convs.2 (16 px) | -, conv_3 |
| 4 | 6 = convs.3 (16 px) | conv_4 |
| 5 | 7 = to_rgbs.1 (ToRGB), 8 = convs.4 (32 px) | -, conv_5 |
| 2j+2 (j = 0..7) | 3+3j = convs.(2j+1) | conv_(2j+2) |
| 2j+3 (j = 0..6) | 4+3j = to_rgbs.j, 5+3j = convs.(2j+2) | -, conv_(2j+3) |
| 17 | 25 = to_rgbs.7 (ToRGB) | - |

Named sets: ``coarse`` = 0,2,3,5,6,8 (StyleDomain ``no_coarse``: heads conv_0 … conv_5, the
in-domain remedy the thesis recommends for FSE); ``first`` = 0 (conv1 only); ``none``.
A plain number that names a ToRGB layer (1, 4, 7, …) is refused: in the 18-row numbering
those numbers are convs, and StyleSpace domains (without ``torgb``) put no offset on ToRGB,
so skipping one would silently do nothing.  Write ``w:N`` for a W+ row, ``conv:N`` for a
StyleDomain head or ``rgb:N`` to skip that ToRGB layer on purpose.

The thesis' 18 rows (Fig. 4.9, 4.10) have two readings.  W+ rows: "the 1-st layer" is
``w:1``.  Or row 0 unshifted and rows 1-17 the 17 convs (Fig. 4.10's row 0 reads 1.000 for
every encoder, although StyleDomain's domains offset conv_0, and row 17 changes, although they
offset no ToRGB layer): "the 1-st layer" is ``conv:0`` = ``first``.
"""


def is_rgb_layer(i: int) -> bool:
    """Whether style layer ``i`` is a ToRGB layer (1 = ``to_rgb1``, ``4+3j`` = ``to_rgbs[j]``)."""
    return i >= 1 and (i - 1) % 3 == 0


def layer_name(i: int) -> str:
    """``conv1`` / ``to_rgb1`` / ``convs.K`` / ``to_rgbs.J`` for style layer ``i``."""
    if i == 0:
        return "conv1"
    if i == 1:
        return "to_rgb1"
    j, r = divmod(i - 2, 3)
    return f"to_rgbs.{j}" if r == 2 else f"convs.{2 * j + r}"


def wplus_row_layers(row: int) -> list[int]:
    """Style layers that read W+ row ``row`` (1024-px layout; out-of-range ones are range-checked later)."""
    if row == 0:
        return [0]
    if row % 2 == 0:          # 2j+2 → convs[2j+1]
        return [3 + 3 * ((row - 2) // 2)]
    j = (row - 3) // 2        # row 1 → to_rgb1 and convs[0]; 2j+3 → to_rgbs[j] and convs[2j+2]
    return [1, 2] if row == 1 else [4 + 3 * j, 5 + 3 * j]


def conv_head_layer(head: int) -> int:
    """The style layer of StyleDomain's head ``conv_<head>`` (the modulated convs in execution
    order: 0 → conv1, 2j+1 → convs[2j], 2j+2 → convs[2j+1])."""
    if head == 0:
        return 0
    j, r = divmod(head - 1, 2)
    return 2 + 3 * j + r


def _span(part: str, text: str, what: str) -> range:
    lo, sep, hi = part.partition("-")
    if not lo.isdigit() or (sep and not hi.isdigit()):
        raise StylebridgeError(f"{what} {text!r}: expected a set name ({', '.join(SKIP_SETS)}) or "
                               "layer indices like 0,2-3, w:1 (W+ row), conv:0 (StyleDomain "
                               "head) or rgb:4")
    a, b = int(lo), int(hi) if sep else int(lo)
    if b < a:
        raise StylebridgeError(f"{what} {text!r}: range {part} is empty")
    return range(a, b + 1)


def alpha_usable(alpha: float | None, min_alpha: float = MIN_ALPHA) -> bool:
    """Whether ``α`` gives a usable offset scale: a finite number above ``min_alpha``."""
    return alpha is not None and math.isfinite(float(alpha)) and float(alpha) > min_alpha


def parse_layers(text: str | int | Sequence[int] | None, *, what: str = "--skip-layers",
                 n_layers: int | None = None, syntax_only: bool = False) -> list[int]:
    """A skip set → sorted unique style-layer indices (see :data:`LAYER_TABLE_DOC`).

    Text: comma-separated items, each a set name (``coarse``, ``first``, ``none``), a style-layer
    index or range (``0``, ``2-3``; a ToRGB index is refused), ``w:N`` / ``w:A-B`` (W+ rows,
    translated), ``conv:N`` / ``conv:A-B`` (StyleDomain's heads ``conv_N``, the modulated
    convs in order) or ``rgb:N`` (a ToRGB layer on purpose).
    An int or a sequence of ints is taken as already-resolved style-layer indices.  With
    ``n_layers`` (the generator's style-layer count), a W+ row's conv that the generator does
    not have (the last row reads only the last ToRGB) is left out instead of failing the range
    check in :func:`skip_scale`.  ``syntax_only``: the check a command makes before loading
    the generator; a ToRGB index is refused later, with that generator's layer counts.
    """
    if text is None or text == "":
        return []
    if not isinstance(text, str):
        items = [text] if isinstance(text, int) else list(text)
        bad = [i for i in items if isinstance(i, bool) or not isinstance(i, numbers.Integral)]
        if bad:  # 2.5 was read as 2, True as 1
            raise StylebridgeError(f"{what} {items!r}: style-layer indices are integers "
                                   f"({bad[0]!r} is not); or give the text form, e.g. 'w:1'")
        return sorted({int(i) for i in items})
    out: set[int] = set()
    for raw in text.split(","):
        part = raw.strip().lower()
        if part in SKIP_SETS:
            out.update(SKIP_SETS[part])
        elif part.startswith("w:"):
            for row in _span(part[2:].strip(), text, what):
                layers = wplus_row_layers(row)
                if n_layers is not None and layers[0] >= n_layers:
                    rows = next(r for r in range(n_layers + 1)
                                if wplus_row_layers(r)[0] >= n_layers)
                    raise StylebridgeError(f"{what} {text!r}: W+ row {row} is out of range: "
                                           f"this generator has W+ rows 0..{rows - 1}")
                if n_layers is not None:
                    layers = [i for i in layers if i < n_layers]
                out.update(layers)
        elif part.startswith("conv:"):
            for head in _span(part[5:].strip(), text, what):
                layer = conv_head_layer(head)
                if n_layers is not None and layer >= n_layers:
                    heads = sum(1 for i in range(n_layers) if not is_rgb_layer(i))
                    raise StylebridgeError(f"{what} {text!r}: conv:{head} is out of range: this "
                                           f"generator has StyleDomain heads conv:0..{heads - 1}")
                out.add(layer)
        elif part.startswith("rgb:"):
            for i in _span(part[4:].strip(), text, what):
                if not is_rgb_layer(i):
                    raise StylebridgeError(f"{what} {text!r}: rgb:{i} is {layer_name(i)}, not a "
                                           "ToRGB layer")
                out.add(i)
        else:
            for i in _span(part, text, what):
                if is_rgb_layer(i) and not syntax_only:
                    raise StylebridgeError(
                        f"{what} {text!r}: style layer {i} is {layer_name(i)} (ToRGB), which "
                        "StyleSpace domains do not offset; our numbering counts every modulated "
                        f"layer ({_layer_counts(n_layers)}), the thesis and upstream code count "
                        f"W+ rows: write w:{i} for W+ row {i} (style "
                        f"layers {','.join(map(str, wplus_row_layers(i)))}), rgb:{i} to skip the "
                        "ToRGB layer on purpose, or coarse for the in-domain set")
                out.add(i)
    return sorted(out)


def _layer_counts(n_layers: int | None) -> str:
    """``26 style layers for 18 W+ rows`` (1024 px), or this generator's counts."""
    if n_layers is None:
        return "26 style layers for 18 W+ rows at 1024 px"
    rows = next(r for r in range(n_layers + 1) if wplus_row_layers(r)[0] >= n_layers)
    return f"{n_layers} style layers for {rows} W+ rows in this generator"


def skip_scale(n_layers: int, skip_layers: Sequence[int], base: Tensor | None = None) -> Tensor | None:
    """``base`` (or ones) with the ``skip_layers`` entries set to 0; ``None`` if nothing to do."""
    bad = [i for i in skip_layers if not 0 <= i < n_layers]
    if bad:
        raise StylebridgeError(f"--skip-layers {','.join(map(str, bad))}: out of range: this "
                               f"generator has style layers 0..{n_layers - 1}")
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
    weights_hint: ClassVar[str | None] = (
        "fit one for your encoder and generator with `stylebridge calibrate`")
    config_schema: ClassVar[Mapping[str, Field]] = {
        "widths": Field("ints", 1, 4096, max_len=64), "skip_layers": LAYER_INDEX,
        "fit": Field("str", choices=FITS), "power": Field("float", -100.0, 100.0),
        "min_alpha": Field("float", 1e-12, 1.0),
    }

    def __init__(self, widths: Sequence[int] = (), skip_layers: Sequence[int] | str | int = (),
                 fit: str = "origin", power: float = -1.0, min_alpha: float = MIN_ALPHA) -> None:
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
    fit_options: ClassVar[frozenset[str]] = frozenset({"skip_layers", "fit", "power"})

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

    def _scales(self) -> tuple[Tensor, Tensor]:
        """(usable, scale) per layer, decided once for :meth:`unreliable_layers` and
        :meth:`offset_scale`: α compared in float64 as :func:`alpha_usable` does (a float32 α
        of ``1e-3`` is just above ``min_alpha`` in both), and ``α ** power`` in float32 must be
        finite and non-zero (``α = 1e-3`` at ``power = -100`` overflows: switched off and
        reported like a near-zero α, not rendered as NaN)."""
        a = self.alpha.detach().cpu().to(torch.float64)
        ok = torch.isfinite(a) & (a > self.min_alpha)
        raw = torch.where(ok, a.clamp(min=self.min_alpha).pow(self.power), torch.zeros_like(a))
        raw = raw.float()
        ok = ok & torch.isfinite(raw) & (raw != 0)
        return ok, torch.where(ok, raw, torch.zeros_like(raw))

    def unreliable_layers(self) -> list[int]:
        """Layers whose α gives no usable scale (not a finite number above ``min_alpha``,
        or ``α ** power`` not finite / zero in float32): they get no offset, and
        ``calibrate`` / ``adapt`` / ``analyze latents`` report them by name."""
        ok = self._scales()[0]
        return [i for i in range(ok.numel()) if not bool(ok[i])]

    def offset_scale(self, n_layers: int) -> Tensor:
        """``α_i ** power`` (``1/α_i`` by default) per style layer; 0 on skipped/unreliable
        layers (:meth:`unreliable_layers`)."""
        n = self.alpha.numel()
        if n != n_layers:
            raise StylebridgeError(f"alpha statistics have {n} style layers, this generator has "
                                   f"{n_layers}: calibrate with the same generator")
        scale = self._scales()[1]
        return skip_scale(n_layers, self.skip_layers, scale)  # type: ignore[return-value]

    def fit_report(self, generator: Generator) -> FitReport:
        """``calibrate``'s table: α, offset scale and R² of each style layer, what they mean,
        and the layers whose α gives no usable scale."""
        scale = self.offset_scale(generator.n_style_layers)
        rows = [[str(layer.index), layer.name, f"{float(self.alpha[layer.index]):.4g}",
                 f"{float(scale[layer.index]):.4g}", f"{float(self.r2[layer.index]):.3f}"]
                for layer in generator.style_layers()]
        notes = [f"{ALPHA_COLUMN[0]}: {ALPHA_COLUMN[1]}",
                 f"offset scale ×: what each layer's domain offset is multiplied by "
                 f"(alpha ** {self.power:g}; 0 = switched off)",
                 f"{R2_COLUMN[0]}: {R2_COLUMN[1]}"]
        bad = self.unreliable_layers()
        warnings = [f"layers {bad} have alpha <= {self.min_alpha} (or undefined): they get no "
                    "domain offset"] if bad else []
        return FitReport("alpha per style layer",
                         ["layer", "name", ALPHA_COLUMN[0], "offset scale ×", R2_COLUMN[0]],
                         rows, labels=2, notes=notes, warnings=warnings)


@hookimpl
def register_calibrators(register: Any) -> None:
    register(AlphaCalibrator)
