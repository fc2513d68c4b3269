"""The interfaces every plugin implements.

They are deliberately small.  Each pluggable class has a registered ``name``,
is rebuilt from ``cls(**config)`` and returns that config from
:meth:`config`, so that any object can be saved as a stylebridge checkpoint
(tensors = ``state_dict()``, header = kind + name + config) and recreated by
name alone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from stylebridge.core.stylegan2.generator import Generator


# ---------------------------------------------------------------------------------------------
# Encoders


@dataclass(frozen=True)
class Preprocessing:
    """How an encoder wants its input: square size and per-channel normalisation.

    Callers give images in ``[0, 1]``; :meth:`__call__` resizes (bilinear,
    antialiased) and normalises, so a caller cannot pair an encoder with the
    wrong transform.
    """

    size: int
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    def __call__(self, images: Tensor) -> Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape [B, 3, H, W], got {list(images.shape)}")
        if images.shape[-2:] != (self.size, self.size):
            images = nn.functional.interpolate(
                images, size=(self.size, self.size), mode="bilinear", align_corners=False,
                antialias=True)
        mean = images.new_tensor(self.mean).view(1, 3, 1, 1)
        std = images.new_tensor(self.std).view(1, 3, 1, 1)
        return (images - mean) / std


FeatureMode = Literal["replace", "shift"]


@dataclass
class Inversion:
    """What an encoder returns.

    ``w_plus`` is ``[B, n_latent, style_dim]``.  ``features`` maps a generator
    activation index K (see :mod:`stylebridge.core.stylegan2.generator` for
    the convention) to a tensor that replaces that activation.  With
    ``feature_mode="shift"`` the synthesiser adds ``G^K(w') - G^K(w)`` to the
    feature when the styles are changed (FSE's generator-shift mode).
    ``modifiers`` maps an activation index K to a function applied to the
    generator's own activation K on whatever path is rendered (StyleRes' gated
    residual ``x + gate(x)·ΔF(x)``): unlike a replaced feature it follows a
    domain change.  ``extras`` holds encoder-specific tensors (e.g. StyleRes'
    64×64 encoder features).
    """

    w_plus: Tensor
    features: dict[int, Tensor] = field(default_factory=dict)
    feature_mode: FeatureMode = "replace"
    extras: dict[str, Tensor] = field(default_factory=dict)
    modifiers: dict[int, Callable[[Tensor], Tensor]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.w_plus.ndim != 3:
            raise ValueError(f"w_plus must be [B, n_latent, style_dim], got {list(self.w_plus.shape)}")
        batch = self.w_plus.shape[0]
        for k, feat in self.features.items():
            if feat.shape[0] != batch:
                raise ValueError(f"feature at layer {k} has batch {feat.shape[0]}, w_plus has {batch}")

    @property
    def batch_size(self) -> int:
        return int(self.w_plus.shape[0])

    def to(self, device: torch.device | str) -> Inversion:
        return replace(
            self,
            w_plus=self.w_plus.to(device),
            features={k: v.to(device) for k, v in self.features.items()},
            extras={k: v.to(device) for k, v in self.extras.items()},
        )

    def detach(self) -> Inversion:
        return replace(
            self,
            w_plus=self.w_plus.detach(),
            features={k: v.detach() for k, v in self.features.items()},
            extras={k: v.detach() for k, v in self.extras.items()},
        )


class Plugin:
    """Shared by every registered class: a ``name`` and a JSON config that rebuilds it.

    ``random_weights``: ``True`` when the object runs on untrained weights (its numbers and
    images are then labelled, never reported as real), ``False`` when it needs no weights or
    has real ones, ``None`` (default) when that follows from whether a checkpoint was loaded
    (:func:`stylebridge.registry.resolve.spec_random`).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    random_weights: bool | None = None

    def config(self) -> dict[str, Any]:
        """Keyword arguments such that ``type(self)(**self.config())`` rebuilds the object."""
        return {}


class Encoder(nn.Module, Plugin, ABC):
    """Image → :class:`Inversion`.  Images are RGB in ``[0, 1]``, any size."""

    preprocessing: Preprocessing

    @abstractmethod
    def encode(self, images: Tensor) -> Inversion:
        """Invert a batch of aligned face images ``[B, 3, H, W]`` in ``[0, 1]``."""

    @property
    def feature_layer(self) -> int | None:
        """The generator activation ``K`` whose feature map :meth:`encode` returns in
        ``Inversion.features`` (FSE: its ``layer``); ``None`` for latents-only encoders."""
        return None

    def check_generator(self, generator: Generator) -> None:
        """Raise a one-line error unless ``generator`` can render this encoder's output
        (latent rows and width, feature shapes).  Default: accept any."""

    def bind_generator(self, generator: Generator | None) -> Encoder:
        """Tell the encoder which generator it will be rendered with (StyleRes needs it).

        The default needs none and returns ``self``; callers (``invert``, ``adapt``)
        call it once after loading both.
        """
        return self

    def forward(self, images: Tensor) -> Inversion:
        return self.encode(images)


# ---------------------------------------------------------------------------------------------
# Domain methods


class DomainMethod(nn.Module, Plugin, ABC):
    """A parameterisation of a new domain on top of a frozen StyleGAN2.

    The generator asks the method for the per-layer style vectors ``s`` (see
    :meth:`Generator.styles`); a method may add offsets to them (StyleSpace) or
    replace the affine layers that produce them (Affine+).  ``offset_scale``
    multiplies the method's change of layer ``i`` (alpha-rescaling sets it to
    ``1/α_i``; skipped layers get 0).

    A method that also changes conv weights (StyleDomain's Affine+ tunes the 64 px
    convolutions) returns them from :meth:`weight_deltas`, and the renderer passes them
    to :meth:`Generator.synthesis` as an argument: the generator's own parameters are
    never swapped, so one generator can render several domains at once, from several
    threads, under DDP or ``torch.compile``.
    """

    #: how messages name this domain (e.g. the checkpoint file's stem); ``name`` when empty
    label: str = ""

    @abstractmethod
    def styles(
        self,
        generator: Generator,
        w_plus: Tensor,
        offset_scale: Sequence[float] | Tensor | None = None,
    ) -> list[Tensor]:
        """The adapted style vectors for ``w_plus``, one tensor ``[B, C_i]`` per modulated layer."""

    def weight_deltas(
        self,
        generator: Generator,
        offset_scale: Sequence[float] | Tensor | None = None,
    ) -> dict[int, Tensor]:
        """Style-layer index ``i`` → ``ΔW_i`` added to that layer's conv weight (broadcast to
        ``[1, out, in, k, k]``), already multiplied by ``offset_scale[i]``.  Default: none."""
        return {}

    def has_weight_offsets(self) -> bool:
        """Whether :meth:`weight_deltas` changes anything (a batch mixing this domain with
        others then needs one generator pass per domain).  Default: ``False``."""
        return False

    def check_generator(self, generator: Generator) -> None:
        """Raise a one-line error unless the method fits ``generator``; default: accept any."""

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]


# ---------------------------------------------------------------------------------------------
# Losses


@dataclass
class LossBatch:
    """Everything a loss may read.  A loss reads only the fields it needs.

    Unset fields are ``None``; :meth:`require` raises a one-line error naming the
    loss and the missing field.  Images are RGB in ``[-1, 1]``.  What each trainer fills:

    * ``train featureshift`` (paired): ``images`` = the *target* (the real photo for
      the inversion loss, the e4e domain inversion for the domain loss),
      ``reconstructions`` = the generator output being trained, ``latents``,
      ``styles`` / ``source_styles`` (with / without the domain), ``features`` (F'),
      ``target_features`` (F); extras ``step``, ``phase`` and, in the domain phases,
      ``delta`` and ``domain``.
    * ``train domain`` (unpaired): ``images`` = the adapted generator output being
      trained, ``source_images`` = the frozen source generator's output for the same
      w+, ``latents``, ``styles`` / ``source_styles``, ``text`` (the prompt); extras
      ``step``, ``total_steps``, ``clip_guide`` and, for encoder-based losses,
      ``target_latents`` / ``source_latents``.  ``reconstructions`` is not set, so
      reconstruction losses (``mse``, ``lpips``, ``id``) are FeatureShift-only.
    """

    images: Tensor | None = None           # featureshift: target; train domain: output
    reconstructions: Tensor | None = None  # featureshift: generator output being trained
    source_images: Tensor | None = None    # train domain: frozen-source generator output
    latents: Tensor | None = None          # w+ [B, n_latent, style_dim]
    styles: list[Tensor] | None = None     # adapted s, one per modulated layer
    source_styles: list[Tensor] | None = None
    features: Tensor | None = None
    target_features: Tensor | None = None
    text: Sequence[str] | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def require(self, name: str, loss: str) -> Any:
        value = getattr(self, name) if name in {f.name for f in fields(self)} else self.extras.get(name)
        if value is None:
            from stylebridge.errors import LossInputError

            raise LossInputError(f"loss {loss!r} needs '{name}' in its batch, which this trainer "
                                 "does not supply (see LossBatch for what each trainer fills)")
        return value


class Loss(nn.Module, Plugin, ABC):
    """A named, keyword-configurable loss; the caller supplies the weight."""

    @abstractmethod
    def forward(self, batch: LossBatch) -> Tensor:
        """Return a scalar tensor."""


# ---------------------------------------------------------------------------------------------
# Metrics


class Metric(Plugin, ABC):
    """A streaming metric: ``update`` per batch, ``compute`` at the end.

    ``stylebridge eval`` also reads the attributes below (the defaults suit a metric
    that compares pairs and reports only means) and passes ``device=`` when
    ``__init__`` takes a ``device`` parameter.  For per-image values subclass
    :class:`stylebridge.plugins.metrics.base.PerImageMetric` and implement ``score``.
    """

    #: ``update`` needs a target batch (``eval`` then requires ``--target``).
    needs_target: ClassVar[bool] = True
    #: the metric compares the predictions with a reference *set* (FID): when no requested
    #: metric compares pairs, ``eval`` feeds the unpaired ``--target`` images to
    #: :meth:`update_reference`, and it needs at least 2 predictions.
    takes_reference: ClassVar[bool] = False
    #: the metric runs on untrained weights: its numbers are labelled, never reported as real.
    random_weights: bool = False
    #: per-image values of the latest ``update`` (``{key: [one float per image]}``), if any.
    last: Mapping[str, Sequence[float]] = MappingProxyType({})

    def notes(self) -> list[str]:
        """Lines ``eval`` prints under the table (e.g. which weights were used)."""
        return ["RANDOM WEIGHTS: this number is not the real metric"] if self.random_weights else []

    def has_reference(self) -> bool:
        """Whether the reference is known without any reference image (FID's cached
        ``ref_stats``); read only when :attr:`takes_reference`.  Default: ``False``."""
        return False

    def update_reference(self, images: Tensor) -> None:
        """Accumulate a batch of the unpaired reference set (RGB in ``[0, 1]``); called only
        when :attr:`takes_reference`."""
        raise NotImplementedError(f"metric {self.name!r} takes no reference set")

    @abstractmethod
    def reset(self) -> None: ...

    @abstractmethod
    def update(self, pred: Tensor, target: Tensor | None = None, **context: Any) -> None:
        """Accumulate a batch; images are RGB in ``[0, 1]``."""

    @abstractmethod
    def compute(self) -> dict[str, float]: ...


# ---------------------------------------------------------------------------------------------
# Calibrators


class Calibrator(nn.Module, Plugin, ABC):
    """Fitted statistics applied between encoding and a domain method.

    ``apply`` may change the inversion; ``offset_scale`` returns per-layer
    multipliers for a method's style offsets (``None`` = leave them alone).
    """

    def apply(self, inversion: Inversion) -> Inversion:
        return inversion

    def offset_scale(self, n_layers: int) -> Tensor | None:
        return None


# ---------------------------------------------------------------------------------------------
# Converters


@dataclass(frozen=True)
class ConversionResult:
    """What a converter wrote."""

    path: Path
    kind: str
    plugin: str
    n_tensors: int
    notes: tuple[str, ...] = ()


class Converter(Plugin, ABC):
    """Turns an upstream checkpoint file into a stylebridge checkpoint.

    ``convert`` should start with ``self.check_options(options, src)`` so that a
    misspelled ``-o`` option is an error, not silently ignored, and read typed values
    with :meth:`option`.
    """

    source: ClassVar[str] = ""  # what file it reads, for `stylebridge plugins` / `convert --help`
    #: the ``-o KEY=VALUE`` options it accepts
    accepted_options: ClassVar[frozenset[str]] = frozenset()

    @abstractmethod
    def convert(self, src: Path, dst: Path, **options: Any) -> ConversionResult: ...

    def check_options(self, options: Mapping[str, Any], src: Path) -> None:
        from stylebridge.errors import ConversionError

        unknown = sorted(set(options) - set(self.accepted_options))
        if unknown:
            raise ConversionError(f"unknown converter option(s) {', '.join(unknown)} for "
                                  f"{self.name} (known: "
                                  f"{', '.join(sorted(self.accepted_options)) or 'none'})",
                                  path=src)

    @staticmethod
    def option(options: Mapping[str, Any], key: str, kind: type, default: Any, src: Path) -> Any:
        """``options[key]`` as ``kind`` (bool, int, float or str), or ``default``; one-line
        errors naming the option and the source file."""
        from stylebridge.core.options import as_bool
        from stylebridge.errors import ConversionError

        if key not in options or options[key] is None:
            return default
        value = options[key]
        try:
            return as_bool(value, key) if kind is bool else kind(value)
        except (TypeError, ValueError):
            raise ConversionError(f"option {key}={value!r}: expected {kind.__name__}",
                                  path=src) from None
