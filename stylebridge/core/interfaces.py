"""The interfaces every plugin implements.

They are deliberately small.  Each pluggable class has a registered ``name``,
is rebuilt from ``cls(**config)`` and returns that config from
:meth:`config`, so that any object can be saved as a stylebridge checkpoint
(tensors = ``state_dict()``, header = kind + name + config) and recreated by
name alone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from stylebridge.core.calibrator import Calibrator, FitReport
from stylebridge.core.converter import ConversionResult, Converter
from stylebridge.core.inversion import FeatureMode, Inversion, Preprocessing
from stylebridge.core.plugin import Plugin

if TYPE_CHECKING:
    from stylebridge.core.stylegan2.generator import Generator


# ---------------------------------------------------------------------------------------------
# Encoders (their input and output types live in core/inversion.py)


class Encoder(nn.Module, Plugin, ABC):
    """Image → :class:`Inversion`.  Images are RGB in ``[0, 1]``, any size."""

    preprocessing: Preprocessing

    @abstractmethod
    def encode(self, images: Tensor) -> Inversion:
        """Invert a batch of aligned face images ``[B, 3, H, W]`` in ``[0, 1]``."""

    #: the generator activation ``K`` this encoder acts at, through ``Inversion.features``
    #: (FSE: its ``layer``) or ``Inversion.modifiers`` (StyleRes); ``None``: latents only
    feature_layer: int | None = None
    #: variants the web page offers beside the plain name: ``(label, options)``, e.g. FSE's
    #: ``("generator-shift mode", "mode=shift")`` (listed as ``fse:mode=shift``)
    variants: ClassVar[tuple[tuple[str, str], ...]] = ()

    def check_generator(self, generator: Generator) -> None:
        """Raise a one-line error unless ``generator`` can render this encoder's output
        (latent rows and width, feature shapes).  Default: accept any."""

    def bind_generator(self, generator: Generator | None) -> Encoder:
        """Tell the encoder which generator it will be rendered with (StyleRes needs it).

        The default needs none and returns ``self``; callers (``invert``, ``adapt``)
        call it once after loading both.
        """
        return self

    def restore(self, inversion: Inversion, generator: Generator) -> Inversion:
        """An inversion of this encoder read back from a file, made whole again for
        ``generator``.  A file holds tensors (``w_plus``, ``features``, ``extras``), not
        functions: an encoder whose inversions carry :attr:`Inversion.modifiers` (StyleRes)
        rebuilds them here from its extras.  An inversion that has its modifiers, or is not
        this encoder's, is returned as it is.  Default: as it is."""
        return inversion

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
    #: the method renders the domain of a text prompt, its option ``text=`` (HyperDomainNet's
    #: hyper-network); without one it refuses to render with a one-line error
    text_conditioned: ClassVar[bool] = False
    #: the prompt a text-conditioned method renders (its ``text=`` option); ``None``: none yet
    text: str | None = None

    def for_text(self, text: str) -> DomainMethod:
        """A method that renders the domain of ``text`` (text-conditioned methods: the
        hyper-network's prediction frozen into a plain domain; ``serve`` adds prompts so)."""
        raise NotImplementedError(f"domain method {self.name!r} is not text-conditioned")

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
        others then needs one generator pass per domain; FeatureShift renders them).  Default:
        ``False``; ``True`` for a class that defines :meth:`weight_deltas` but not this
        method beside it (``__init_subclass__``: whatever it inherits answers for its
        parent's deltas, not its own, which FeatureShift then silently left out)."""
        return False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "weight_deltas" in cls.__dict__ and "has_weight_offsets" not in cls.__dict__:
            cls.has_weight_offsets = _declares_deltas  # type: ignore[method-assign]

    def check_generator(self, generator: Generator) -> None:
        """Raise a one-line error unless the method fits ``generator``; default: accept any."""

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    # -- training capabilities (``stylebridge train domain``) ---------------------------------
    @classmethod
    def for_generator(cls, generator: Generator, **options: Any) -> DomainMethod:
        """A new, untrained method for ``generator``.  Default: ``cls(**kwargs, **options)``
        where the generator's config fills every ``__init__`` parameter named like a
        :class:`GeneratorConfig` field (``size``, ``style_dim``, ``channels``, ...) that
        ``options`` leaves open."""
        import inspect

        params = inspect.signature(cls.__init__).parameters
        kwargs = {k: v for k, v in generator.config().items() if k in params and k not in options}
        return cls(**kwargs, **options)

    def init_from(self, generator: Generator) -> Any:
        """Start a fresh method from ``generator`` (Affine+ copies its affine layers).
        Called once after :meth:`for_generator`.  Default: nothing."""

    def layer_parameters(self, indices: Iterable[int]) -> list[nn.Parameter] | None:
        """The parameters that change style layers ``indices`` (``--freeze-layers`` takes
        them out of the optimiser; they keep their values).  Default ``None``: the method
        cannot name them; the trainer traces them (``pipelines/training/freeze.py``) and
        refuses ``--freeze-layers`` when they also change other layers."""
        return None


# ---------------------------------------------------------------------------------------------
# Losses


@dataclass
class LossBatch:
    """Everything a loss may read, named by role.  A loss reads only the fields it declares
    in :attr:`Loss.requires`; a trainer fills what it provides (``provides`` on the trainer)
    and refuses, when it is built, a loss that requires a field it does not provide.

    Unset fields are ``None``; :meth:`require` raises a one-line error naming the loss and
    the missing field.  Images are RGB in ``[-1, 1]``.

    Images: ``output`` (the image being trained, with gradients), ``target`` (its paired
    target: the real photo or the e4e domain inversion in ``train featureshift``),
    ``source`` (the frozen source generator's output for the same w+, ``train domain``).
    Latents and styles: ``latents`` (w+ ``[B, n_latent, style_dim]``), ``styles`` (the
    styles ``output`` was rendered with, one ``[B, C_i]`` per modulated layer),
    ``styles_source`` (the same w+ without the domain).  Features: ``features`` (F', the
    feature being trained), ``features_target`` (the encoder's F), ``features_guide`` (the
    generator's feature from the guide encoder's latents, ``G^K(s(w_E))``, with the domain
    ``G^K(s_d(w_E))`` in the domain sets).  Text: ``text``.
    Encoder latents of the images: ``target_latents`` (of ``output``), ``source_latents``
    (of ``source``).  Schedule: ``step`` (0-based), ``total_steps``, ``phase``.  Domain:
    ``clip_guide`` (a :class:`~stylebridge.plugins.losses.clip.ClipGuide`), ``delta`` (Δ at
    the FeatureShift layer), ``domain`` (domain index per sample).  One-shot reference
    (MindTheGap): ``reference`` (the reference image ``[1, 3, H, W]``), ``reference_output``
    (its W+ inversion rendered by the generator being trained, with gradients),
    ``reference_source`` (the same W+ through the frozen source).  ``cache`` is scratch
    space shared by the losses of one step (e.g. CLIP encodings); ``extras`` holds anything
    else a third-party trainer adds.
    """

    output: Tensor | None = None
    target: Tensor | None = None
    source: Tensor | None = None
    latents: Tensor | None = None
    styles: list[Tensor] | None = None
    styles_source: list[Tensor] | None = None
    features: Tensor | None = None
    features_target: Tensor | None = None
    features_guide: Tensor | None = None
    text: Sequence[str] | None = None
    target_latents: Tensor | None = None
    source_latents: Tensor | None = None
    step: int | None = None
    total_steps: int | None = None
    phase: str | None = None
    clip_guide: Any = None
    delta: Tensor | None = None
    domain: Tensor | None = None
    reference: Tensor | None = None
    reference_output: Tensor | None = None
    reference_source: Tensor | None = None
    cache: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    def require(self, name: str, loss: str) -> Any:
        """The field ``name`` (or ``extras[name]``); a one-line error when it is unset."""
        value = (getattr(self, name) if name in LOSS_BATCH_FIELDS
                 else self.extras.get(name))
        if value is None:
            from stylebridge.errors import LossInputError

            raise LossInputError(f"loss {loss!r} needs '{name}' in its batch, which this trainer "
                                 "does not supply (see LossBatch for what each trainer fills)")
        return value


#: the :class:`LossBatch` fields a loss may require (``cache`` and ``extras`` excluded)
LOSS_BATCH_FIELDS: frozenset[str] = frozenset(
    f.name for f in fields(LossBatch) if f.name not in ("cache", "extras"))


class Loss(nn.Module, Plugin, ABC):
    """A named, keyword-configurable loss; the caller supplies the weight.

    Capabilities the trainers read (all optional, with defaults):

    * ``requires``: the :class:`LossBatch` fields :meth:`forward` reads
      (:meth:`required_fields` when they depend on the options).  A trainer checks
      them when it is built and refuses a loss whose fields it does not provide, with a
      one-line error naming the loss and the field.
    * ``clip_layers``: CLIP visual-transformer blocks whose tokens the loss reads (the
      trainer's CLIP guide captures them in its one forward per model).
    * :meth:`training_state` / :meth:`load_training_state`: state across steps, saved with
      the training state so that a resumed run continues exactly.
    * :meth:`ramp`: the factor the loss applies to itself at a step (the trainer uses it
      to warn about a loss that stays at weight 0), with ``window`` the steps it waits.
    * :meth:`bind_trained_fields`: the fields the trainer's module changes, for a loss whose
      subject is an option left at its default.
    """

    #: the LossBatch fields forward() reads (see LOSS_BATCH_FIELDS)
    requires: ClassVar[frozenset[str]] = frozenset()
    #: CLIP blocks whose tokens the loss reads (CLIP losses)
    clip_layers: tuple[int, ...] = ()
    #: steps the loss waits before its ramp starts (None: no ramp)
    window: int | None = None

    @abstractmethod
    def forward(self, batch: LossBatch) -> Tensor:
        """Return a scalar tensor."""

    def required_fields(self) -> frozenset[str]:
        """The fields this instance reads: :attr:`requires` unless its options change them
        (``corr:on=features``)."""
        return self.requires

    def training_state(self) -> dict[str, Tensor]:
        """State across steps, as tensors (saved with the training state).  Default: none."""
        return {}

    def load_training_state(self, state: dict[str, Tensor],
                            device: torch.device | str = "cpu") -> None:
        """Restore :meth:`training_state` output.  Default: nothing to restore."""

    def ramp(self, step: int, total_steps: int) -> float:
        """The factor the loss applies to its own value at ``step`` of ``total_steps``
        (DiFa's ramp).  Default: 1."""
        return 1.0

    def bind_trained_fields(self, fields: frozenset[str]) -> None:
        """Told once by a trainer which :class:`LossBatch` fields its trained module changes
        (``train featureshift``: ``output`` and ``features``); a loss whose subject was left
        at its default may pick one of them (``corr`` then regularises ``features``).
        Default: nothing."""


# ---------------------------------------------------------------------------------------------
# Metrics


class Note(str):
    """A line of :meth:`Metric.notes`: the command line's wording (it may name options, e.g.
    ``id:detect=hog``), with :attr:`web` the same fact worded for the web app, which has no
    such options (``stylebridge serve`` shows it; default: the line itself)."""

    web: str

    def __new__(cls, text: str, web: str | None = None) -> Note:
        note = super().__new__(cls, text)
        note.web = text if web is None else web
        return note


class Metric(Plugin, ABC):
    """A streaming metric: ``update`` per batch, ``compute`` at the end.

    ``stylebridge eval`` also reads the attributes below (the defaults suit a metric
    that compares pairs and reports only means) and passes ``device=`` when
    :attr:`takes_device` says ``__init__`` takes it.  For per-image values subclass
    :class:`stylebridge.plugins.metrics.base.PerImageMetric` and implement ``score``.

    An ``update`` that raises because of its images (a :class:`~stylebridge.errors.StylebridgeError`,
    or a size or shape error: images too small for a window or a network) must leave the
    metric as it was: ``eval`` then skips the pairs of that batch, naming each file, and goes
    on (it restores the other metrics from :meth:`state`).  Any other exception is a bug and
    stops the run.
    """

    #: ``update`` needs a target batch (``eval`` then requires ``--target``).
    needs_target: ClassVar[bool] = True
    #: the metric compares the predictions with a reference *set* (FID): when no requested
    #: metric compares pairs, ``eval`` feeds the unpaired ``--target`` images to
    #: :meth:`update_reference`, and it needs at least 2 predictions.
    takes_reference: ClassVar[bool] = False
    #: ``__init__`` takes ``device=`` (a string): ``eval`` passes its ``--device``
    takes_device: ClassVar[bool] = False
    #: the metric runs on untrained weights: its numbers are labelled, never reported as real.
    random_weights: bool = False
    #: per-image values of the latest ``update`` (``{key: [one float per image]}``), if any.
    last: Mapping[str, Sequence[float]] = MappingProxyType({})
    #: which way is better: ``"higher"`` (PSNR, SSIM), ``"lower"`` (MSE, LPIPS, FID), or
    #: ``None`` (not declared: shown without an arrow)
    direction: ClassVar[Literal["higher", "lower"] | None] = None
    #: the unit of its values, short, shown beside the column name (``"dB"``); ``""``: none
    unit: ClassVar[str] = ""
    #: what its numbers are, in a phrase (the range, what 0 or 1 means), for reports
    scale: ClassVar[str] = ""

    def notes(self) -> list[str]:
        """Lines ``eval`` prints under the table (e.g. which weights were used); a line
        that names command-line options may be a :class:`Note` with the web app's wording."""
        return ["RANDOM WEIGHTS: this number is not the real metric"] if self.random_weights else []

    def files(self) -> dict[str, str]:
        """The files this metric read when it was built (weights, a reference image, cached
        statistics), by what each is (``{"weights": PATH}``): a resumed run (``adapt``,
        ``invert``, ``eval --resume``) compares their size and modification time with the
        interrupted run's and refuses another file, as it does for checkpoints.  Default:
        none (a metric that reads a file should say so)."""
        return {}

    def fresh(self) -> Metric | None:
        """Another instance of this metric as it was built (reset: nothing accumulated) that
        shares its networks and keeps its own running values.  ``adapt``/``invert`` score each
        output (the inversion, every domain) with its own instance: a metric whose network is
        costly to build (LPIPS, ArcFace) then builds it once.  ``None`` (the default): the
        caller builds another instance from the spec."""
        return None

    def state(self) -> dict[str, Any] | None:
        """What :meth:`update` has accumulated, as plain JSON values, so that an interrupted
        batch run (``adapt``/``invert --resume``) continues where it stopped and computes what
        an uninterrupted run computes; ``None`` (the default): this metric cannot resume."""
        return None

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state` returned, into an instance built with the same config;
        required when :meth:`state` returns a value."""
        raise NotImplementedError(f"metric {self.name!r} keeps no state to resume from")

    @classmethod
    def with_domain_text(cls, options: Mapping[str, Any], text: str) -> dict[str, Any]:
        """The options to build this metric with when the run knows the domain's text prompt
        (``eval --domain-text``): a metric that scores against a prompt takes it here, unless
        ``options`` already say what to score against.  Default: ``options`` unchanged."""
        return dict(options)

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


def _declares_deltas(self: DomainMethod) -> bool:
    """``has_weight_offsets`` of a method that overrides only ``weight_deltas``."""
    return True


# ---------------------------------------------------------------------------------------------
# Renderers


class Renderer(nn.Module, Plugin, ABC):
    """Inversion (optionally + a domain method) → image through a generator.

    :meth:`render` returns the generator's output, nominally in ``[-1, 1]`` (unclamped).
    With ``method=None`` it renders the inversion itself; with a method, the adapted
    image (thesis, chapter 4), the method's change of style layer ``i`` multiplied by
    ``offset_scale[i]``.  The plain renderer is :func:`stylebridge.core.synthesis.synthesize`;
    FeatureShift (thesis, "Improving the gap") is another.

    ``needs_guide``: the renderer needs a guiding encoder's latents ``w+`` of the same
    images (FeatureShift's ``Δ`` comes from them); the caller then passes them as
    ``guide`` ``[B, n_latent, style_dim]``.  Default: no guide.

    ``trained_guide``: the spec of the guide encoder the renderer was trained with (read
    from its checkpoint), used when the caller names none; ``None``: the encoder's own
    latents guide it.
    """

    needs_guide: ClassVar[bool] = False
    trained_guide: str | None = None

    @abstractmethod
    def render(
        self,
        generator: Generator,
        inversion: Inversion,
        method: DomainMethod | None = None,
        *,
        offset_scale: Sequence[float] | Tensor | None = None,
        guide: Tensor | None = None,
    ) -> Tensor:
        """Images ``[B, 3, S, S]``, nominally ``[-1, 1]``, of ``inversion`` (through ``method``)."""

    def check_generator(self, generator: Generator, encoder: Encoder | None = None) -> None:
        """Raise a one-line error, before any image is encoded, unless the renderer can
        render ``generator`` with what ``encoder`` returns.  Default: accept any."""


__all__ = ["LOSS_BATCH_FIELDS", "Calibrator", "ConversionResult", "Converter", "DomainMethod",
           "Encoder", "FeatureMode", "FitReport", "Inversion", "Loss", "LossBatch", "Metric",
           "Note", "Plugin", "Preprocessing", "Renderer"]
