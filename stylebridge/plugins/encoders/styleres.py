"""StyleRes encoder (Pehlivan et al., CVPR 2023): e4e + a gated residual in the generator's 64×64 block.

Architecture (hamzapehlivan/StyleRes ``models/e4e.py``, ``models/stylegan2.py``):

* ``encoder`` — the e4e IR-SE50 encoder (:class:`~stylebridge.plugins.encoders.psp.IRSEStyleNet`,
  mode ``e4e``); ``w+ = codes + latent_avg`` ``[B, 18, 512]``, plus the high-resolution
  encoder feature ``c1`` (backbone stage 2, ``[B, 128, 64, 64]`` at the 256 px input).
* Three modules that upstream places in the generator's ``b64`` block and that belong to
  this plugin here (the core generator is untouched):
  ``modify_feature_alignment`` (E1, :class:`FeatureAlignment`: 1×1 conv on
  ``cat[c1, F]`` (640 ch) → a small U-Net of :class:`ResLayers` → 1×1 conv, 512 ch),
  ``modify_feature_extraction`` (:class:`FeatureExtraction`: 1×1 conv + 3 ResLayers) and
  ``modify_feature_gates`` (E2, :class:`GateNetwork`: ``down1(x)``, ``down2(Y)`` → cat →
  ``ΔF`` and a one-channel sigmoid ``gate``).

Where it acts — generator activation ``K = feature_layer`` (our convention, see
:mod:`stylebridge.core.stylegan2.generator`): at 1024 px, K = 8 is the output of
``convs[6]``, the first (up-sampling) 64×64 conv, which reads ``w[7]`` — upstream's
``synthesis.b64.conv0``.  No ToRGB reads activation 8, so replacing it feeds
``convs[7]`` (``b64.conv1``, ``w[8]``) and everything after, exactly as upstream.

Forward for styles ``s'`` (``s' = s(w)`` for a pure inversion; a domain method or an edit
gives other styles):

1. ``F = G^K(s(w))`` — the activation under the inversion's own ``w`` (upstream
   ``F_feats``, computed once per image),
2. ``Y = extraction(alignment(c1, F))`` — depends on the image only
   (``Inversion.extras["styleres.aligned"]``),
3. ``x = G^K(s')`` on the edited path, ``(ΔF, gate) = gates(x, Y)``,
   ``x' = x·(1 - gate) + (x + ΔF)·gate = x + gate·ΔF``,
4. continue the synthesis from ``x'`` with ``s'`` (``Generator.synthesize_from``).

:meth:`StyleResEncoder.encode` with a generator (``encode(images, generator=G)`` or after
:meth:`StyleResEncoder.bind_generator`) returns ``w_plus``, ``Y`` in ``extras`` and the gated
residual as ``modifiers={K: x ↦ x + gate·ΔF}``; ``pipeline.synthesize`` (and
``Generator.synthesis(styles, modifiers=...)``) applies it to activation K of the rendered
path, so under a domain method or an edit step 3 is recomputed on the new path, as upstream.
:meth:`StyleResEncoder.synthesize` does the same explicitly.  Noise: upstream renders with
``noise_mode='const'``, i.e. our ``randomize_noise=False``.

Licence: StyleRes code and weights are under the *NVIDIA Source Code License for
StyleRes* (non-commercial research use only); converting
(:mod:`stylebridge.plugins.converters.styleres`) or loading the weights says so.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylebridge.core.interfaces import Inversion
from stylebridge.core.schema import WIDTH, Field
from stylebridge.errors import CheckpointError
from stylebridge.plugins.encoders.psp import IRSEStyleEncoder
from stylebridge.plugins.nets.irse import IRSE50_UNITS, IRSE50_WIDTHS
from stylebridge.registry import hookimpl

if TYPE_CHECKING:
    from stylebridge.core.stylegan2.generator import Generator

STYLERES_LICENCE = ("licence: StyleRes (hamzapehlivan/StyleRes) code and weights are under the "
                    "NVIDIA Source Code License for StyleRes: non-commercial research and "
                    "evaluation use only")
EXTRA_ENCODER = "styleres.encoder_features"  # c1 [B, widths[1], R, R]
EXTRA_ALIGNED = "styleres.aligned"           # Y  [B, feature_channels, R, R]
UPSTREAM_CONV_CLAMP = 256.0  # StyleRes' SynthesisBlock default (conv_clamp=256)


class StyleResLicenceWarning(UserWarning):
    """Emitted once when StyleRes weights are loaded: they are for non-commercial use only."""


def activation_resolution(k: int) -> int:
    """Resolution of generator activation ``K`` (``K >= 2``): ``2 ** (K // 2 + 2)``."""
    return 2 ** (k // 2 + 2)


# ---------------------------------------------------------------------------------------------
# Modules (upstream names and key layout)


class ResLayers(nn.Module):
    """Conv3×3 → LeakyReLU(0.2) → Conv3×3(stride) plus a 1×1 shortcut when the shape changes."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.shortcut_layer: nn.Module
        if in_ch == out_ch and stride == 1:
            self.shortcut_layer = nn.Identity()
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False))
        self.res_layer = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(out_ch, out_ch, 3, stride, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


def _pair(ch: int) -> nn.Sequential:
    return nn.Sequential(ResLayers(ch, ch, 1), ResLayers(ch, ch, 1))


class FeatureAlignment(nn.Module):
    """E1: ``cat[encoder feature, generator feature]`` → aligned feature (a 3-level U-Net).

    ``[B, in_ch, R, R]`` → ``[B, out_ch, R, R]`` (``R`` divisible by 4).  ``dconv3``
    exists upstream (and in the checkpoint) but is not used by the forward pass.
    """

    def __init__(self, in_ch: int, out_ch: int, hidden: int = 512) -> None:
        super().__init__()
        self.first_layer = nn.Conv2d(in_ch, hidden, 1)
        self.conv1 = nn.Sequential(ResLayers(hidden, hidden, 1))
        self.conv2 = nn.Sequential(ResLayers(hidden, hidden, 2), ResLayers(hidden, hidden, 1))
        self.conv3 = nn.Sequential(ResLayers(hidden, hidden, 2), ResLayers(hidden, hidden, 1))
        self.dconv1 = _pair(hidden)
        self.dconv2 = _pair(hidden)
        self.dconv3 = _pair(hidden)  # unused upstream, kept for the key layout
        self.out_layer = nn.Conv2d(hidden, out_ch, 1)

    def forward(self, encoder_feats: Tensor, generator_feats: Tensor) -> Tensor:
        x = self.first_layer(torch.cat([encoder_feats, generator_feats], dim=1))
        f1 = self.conv1(x)
        f2 = self.conv2(f1)
        f3 = self.conv3(f2)
        s = f3.shape[-1]
        up = F.interpolate(f3, size=(2 * s, 2 * s), mode="bilinear", align_corners=True)
        d2 = self.dconv1(up + f2)
        d2 = F.interpolate(d2, size=(4 * s, 4 * s), mode="bilinear", align_corners=True)
        return self.out_layer(self.dconv2(d2 + f1))


class FeatureExtraction(nn.Module):
    """1×1 conv to ``hidden`` then three ResLayers to ``out_ch``."""

    def __init__(self, in_ch: int, out_ch: int, hidden: int = 512) -> None:
        super().__init__()
        self.first_layer = nn.Conv2d(in_ch, hidden, 1)
        self.convs = nn.Sequential(ResLayers(hidden, hidden), ResLayers(hidden, out_ch),
                                   ResLayers(out_ch, out_ch))

    def forward(self, x: Tensor) -> Tensor:
        return self.convs(self.first_layer(x))


class GateNetwork(nn.Module):
    """E2: ``(generator feature x, aligned feature Y)`` → ``(ΔF [B, out_ch, R, R], gate [B, 1, R, R])``.

    ``down1(x)`` and ``down2(Y)`` (3×3 convs to ``in_ch / 2``) are concatenated; ``convs``
    give ΔF, ``convs2`` + sigmoid the gate.
    """

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        if in_ch % 2:
            raise ValueError(f"GateNetwork needs an even channel count, got {in_ch}")
        half = in_ch // 2
        self.down1 = nn.Conv2d(in_ch, half, 3, padding=1)
        self.down2 = nn.Conv2d(in_ch, half, 3, padding=1)
        self.sigmoid = nn.Sigmoid()
        self.convs = nn.Sequential(ResLayers(in_ch, in_ch), ResLayers(in_ch, out_ch),
                                   ResLayers(out_ch, out_ch))
        self.convs2 = nn.Sequential(ResLayers(in_ch, in_ch), ResLayers(in_ch, out_ch),
                                    ResLayers(out_ch, 1))

    def forward(self, generator_feats: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.cat([self.down1(generator_feats), self.down2(y)], dim=1)
        return self.convs(x), self.sigmoid(self.convs2(x))


# ---------------------------------------------------------------------------------------------
# Encoder


class StyleResEncoder(IRSEStyleEncoder):
    """StyleRes: e4e w+ plus the gated 64×64 residual (see the module docstring).

    State dict: ``encoder.*`` (e4e), ``latent_avg`` ``[n_styles, style_dim]``,
    ``modify_feature_{alignment,extraction,gates}.*``.  Config: the e4e architecture plus
    ``feature_layer`` (activation K, default 8), ``feature_channels`` (generator width at
    K, 512) and ``hidden`` (512).  The generator is not part of the encoder: pass it to
    :meth:`encode`/:meth:`synthesize` or bind it with :meth:`bind_generator`.
    """

    name = "styleres"
    description = "StyleRes encoder (e4e + gated residual at the 64x64 generator block); non-commercial"
    mode = "e4e"
    licence: ClassVar[str] = STYLERES_LICENCE
    #: PIL's default filter, bicubic (hamzapehlivan/StyleRes ``datasets/process_image.py``,
    #: ``ImageProcessor.preprocess_image``: ``image.resize((256, 256))``)
    resize_filter: ClassVar[str] = "pil-bicubic"
    _licence_noted: ClassVar[bool] = False
    config_schema: ClassVar[Mapping[str, Field]] = {
        **IRSEStyleEncoder.config_schema, "feature_layer": Field("int", 2, 21, even=True),
        "feature_channels": WIDTH, "hidden": WIDTH,
    }

    def __init__(self, n_styles: int = 18, style_dim: int = 512, input_size: int = 256,
                 widths: Sequence[int] = IRSE50_WIDTHS, units: Sequence[int] = IRSE50_UNITS,
                 feature_layer: int = 8, feature_channels: int = 512, hidden: int = 512,
                 resize: str | None = None) -> None:
        super().__init__(n_styles, style_dim, input_size, widths, units, resize)
        k = int(feature_layer)
        if k < 2 or k % 2 or k >= n_styles:
            raise ValueError(f"feature_layer must be an even activation index (a stage's first conv) "
                             f"in 2..{n_styles - 1}, got {feature_layer}")
        res = activation_resolution(k)
        if input_size // 4 != res or res % 4:
            raise ValueError(f"activation {k} is {res}x{res} but the encoder feature c1 is "
                             f"{input_size // 4}x{input_size // 4} (input_size {input_size}); they "
                             "must match and be divisible by 4")
        #: activation K of the gated residual (config ``feature_layer``); ``encode`` returns
        #: no feature there, so the interface's ``feature_layer`` stays ``None``
        self.residual_layer = k
        self.feature_channels = int(feature_channels)
        self.hidden = int(hidden)
        enc_ch = self.encoder.widths[1]
        self.modify_feature_alignment = FeatureAlignment(enc_ch + self.feature_channels,
                                                         self.feature_channels, self.hidden)
        self.modify_feature_extraction = FeatureExtraction(self.feature_channels,
                                                           self.feature_channels, self.hidden)
        self.modify_feature_gates = GateNetwork(self.feature_channels, self.feature_channels)
        object.__setattr__(self, "_generator", None)  # not a submodule: not in the state dict

    def config(self) -> dict[str, Any]:
        return {**super().config(), "feature_layer": self.residual_layer,
                "feature_channels": self.feature_channels, "hidden": self.hidden}

    # -- weights -------------------------------------------------------------------------------
    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True,
                        assign: bool = False) -> Any:
        """As :meth:`nn.Module.load_state_dict`, plus a one-time licence notice."""
        if not StyleResEncoder._licence_noted:
            StyleResEncoder._licence_noted = True
            warnings.warn(STYLERES_LICENCE, StyleResLicenceWarning, stacklevel=2)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    # -- generator -----------------------------------------------------------------------------
    def check_generator(self, generator: Generator) -> None:
        """Raise a one-line :class:`CheckpointError` when ``generator`` does not fit these modules."""
        want = (self.feature_channels, *(2 * (activation_resolution(self.residual_layer),)))
        got = generator.feature_shapes().get(self.residual_layer)
        if generator.n_latent != self.encoder.n_styles or generator.style_dim != self.encoder.style_dim:
            raise CheckpointError(f"generator has {generator.n_latent}x{generator.style_dim} latents, "
                                  f"the styleres encoder predicts {self.encoder.n_styles}x"
                                  f"{self.encoder.style_dim}")
        if got != want:
            raise CheckpointError(f"generator activation {self.residual_layer} is {list(got or ())}, "
                                  f"the styleres feature modules expect {list(want)}")

    def bind_generator(self, generator: Generator | None) -> StyleResEncoder:
        """Use ``generator`` in :meth:`encode` (not saved with the encoder); ``None`` unbinds."""
        if generator is not None:
            self.check_generator(generator)
        object.__setattr__(self, "_generator", generator)
        return self

    # -- forward -------------------------------------------------------------------------------
    def encode(self, images: Tensor, generator: Generator | None = None) -> Inversion:
        """Images in ``[0, 1]`` → Inversion.

        Always: ``w_plus`` and ``extras["styleres.encoder_features"]`` (``c1``).  With a
        generator (argument or bound): also ``extras["styleres.aligned"]`` (``Y``) and
        ``features={K: x'}`` for the inversion's own styles, ``feature_mode="replace"``.
        """
        w_plus, c1 = self.codes(images)
        inversion = Inversion(w_plus=w_plus, extras={EXTRA_ENCODER: c1})
        gen = generator if generator is not None else self._generator
        return inversion if gen is None else self.complete(inversion, gen)

    def aligned_features(self, generator: Generator, inversion: Inversion, *,
                         noise: Sequence[Tensor | None] | None = None,
                         source_feature: Tensor | None = None) -> Tensor:
        """``Y = extraction(alignment(c1, F))`` ``[B, feature_channels, R, R]``, ``F = G^K(s(w))``.

        Taken from ``extras["styleres.aligned"]`` when present; ``source_feature`` is
        ``F`` if the caller already has it (computed with ``randomize_noise=False``).
        """
        if EXTRA_ALIGNED in inversion.extras:
            return inversion.extras[EXTRA_ALIGNED]
        if EXTRA_ENCODER not in inversion.extras:
            raise ValueError("this inversion was not produced by the styleres encoder "
                             f"(no extras[{EXTRA_ENCODER!r}])")
        self.check_generator(generator)
        if source_feature is None:
            source_feature, _ = generator.features_upto(
                generator.styles(inversion.w_plus), self.residual_layer, noise=noise,
                randomize_noise=False)
        enc = inversion.extras[EXTRA_ENCODER].to(source_feature.dtype)
        return self.modify_feature_extraction(self.modify_feature_alignment(enc, source_feature))

    def modify(self, feature: Tensor, aligned: Tensor) -> tuple[Tensor, Tensor]:
        """The gated residual at activation K: ``(x + gate·ΔF, gate)`` for ``x = G^K(s')``."""
        delta, gate = self.modify_feature_gates(feature, aligned.to(feature.dtype))
        return feature + gate * delta, gate

    def complete(self, inversion: Inversion, generator: Generator, *,
                 noise: Sequence[Tensor | None] | None = None) -> Inversion:
        """Add ``Y`` and the gated residual at activation K as an :attr:`Inversion.modifiers` entry.

        The modifier ``x ↦ x + gate(x, Y)·ΔF(x, Y)`` acts on the generator's own
        activation K of whatever path is rendered, so a domain method or an edit gets
        the gate recomputed on its path (``pipeline.synthesize`` does this).
        """
        self.check_generator(generator)
        feat, _ = generator.features_upto(generator.styles(inversion.w_plus), self.residual_layer,
                                          noise=noise, randomize_noise=False)
        aligned = self.aligned_features(generator, inversion, source_feature=feat)
        return Inversion(w_plus=inversion.w_plus,
                         modifiers={self.residual_layer: functools.partial(self._residual, aligned)},
                         extras={**inversion.extras, EXTRA_ALIGNED: aligned})

    def restore(self, inversion: Inversion, generator: Generator) -> Inversion:
        """A StyleRes inversion read from a file (``w_plus`` and the extras ``Y``/``c1``,
        no function) gets its gated residual back (:meth:`complete`, ``Y`` reused)."""
        if inversion.modifiers or not ({EXTRA_ALIGNED, EXTRA_ENCODER} & set(inversion.extras)):
            return inversion
        return self.complete(inversion, generator)

    def _residual(self, aligned: Tensor, feature: Tensor) -> Tensor:
        return self.modify(feature, aligned)[0]

    def synthesize(self, generator: Generator, inversion: Inversion,
                   styles: Sequence[Tensor] | None = None, *,
                   noise: Sequence[Tensor | None] | None = None,
                   randomize_noise: bool = False) -> Tensor:
        """Render ``inversion`` with ``styles`` (default: its own), recomputing the gate on that path.

        ``styles`` are style vectors in the :meth:`Generator.styles` layout, possibly
        changed by a domain method or an edit.  ``Y`` comes from the inversion (its own
        ``w``); ``x = G^K(styles)``, the gate and ΔF are recomputed, and the synthesis
        continues from ``x + gate·ΔF``.  Returns images ``[B, 3, size, size]`` in ``[-1, 1]``.
        """
        self.check_generator(generator)
        styles = list(generator.styles(inversion.w_plus) if styles is None else styles)
        feat, skip = generator.features_upto(styles, self.residual_layer, noise=noise,
                                             randomize_noise=randomize_noise)
        aligned = self.aligned_features(generator, inversion, noise=noise)
        out, _ = self.modify(feat, aligned)
        return generator.synthesize_from(self.residual_layer, out, skip, styles, noise=noise,
                                         randomize_noise=randomize_noise)


@hookimpl
def register_encoders(register: Any) -> None:
    register(StyleResEncoder)
