"""The typed configuration of a FeatureShift run (``train featureshift``) and its result."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.typed import coerce_path_fields

THESIS_LOSSES = ("mse:1.0", "lpips:0.8", "id:0.1")
THESIS_DOMAIN_INVERSION_LOSSES = ("lpips:0.2", "id:0.025")
#: λ_Adv of the inversion loss ("Adversarial loss with λ_Adv = 0.01 ... the original StyleGAN
#: discriminator stays frozen and is applied only after the sufficient number of training
#: iterations"): on from step :data:`ADVERSARIAL_AFTER` by default
THESIS_ADVERSARIAL = 0.01
#: the default start of the frozen-discriminator term (``--adversarial-after``): a fixed step,
#: whatever ``--pretrain-inversion-steps`` is.  The thesis gives no number for "the sufficient
#: number of training iterations"; 10 000 is its only training length (the inversion-only
#: pre-training, "the first 10000 iterations"), and equals the default
#: ``pretrain_inversion_steps``, so a default run starts the term where it always did.  With
#: ``--pretrain-inversion-steps 0`` (the thesis' 70-domain setting) the term still waits
#: 10 000 steps: "only after" never means from step 0.
ADVERSARIAL_AFTER = 10_000
#: the readings of "the generated domain adapted image" the domain-inversion loss compares with
#: the photo (``--domain-inversion-source``; the first is the default):
#: ``inference``: FeatureShift on the photo's FSE feature with Δ, rendered with the domain
#: styles of the photo's w (the image inference produces; a third slice of each batch, about
#: 1.5× the compute of a joint step); ``domain-branch``: the domain task's own output,
#: FeatureShift on the e4e-inverted image's feature with Δ (the image the domain loss already
#: renders: no extra compute)
DOMAIN_INVERSION_SOURCES = ("inference", "domain-branch")
#: "the first 10000 iterations which equals to 12 epochs over our dataset" (10k images):
#: 12 × 10 000 images / 10 000 iterations = 12 images per iteration
THESIS_BATCH = 12


@dataclass
@coerce_path_fields
class TrainConfig:
    """Everything a FeatureShift run depends on (JSON; stored in the training state)."""

    data: str
    generator: str
    out: str
    losses: list[str] = field(default_factory=lambda: list(THESIS_LOSSES))
    inversion_losses: list[str] | None = None     # None: the same as ``losses``
    domain_inversion_losses: list[str] = field(default_factory=list)
    adversarial: float = THESIS_ADVERSARIAL       # inversion-loss weight of `adversarial`
    adversarial_after: int | None = None          # None: adversarial_after_default
    #: the start ``adversarial_after=None`` stands for: :data:`ADVERSARIAL_AFTER`; ``None``:
    #: ``pretrain_inversion_steps``, how states written before this field read it (absent
    #: from their ``train_config``): their resume keeps it (:func:`.state.keep_saved_readings`);
    #: not an option
    adversarial_after_default: int | None = ADVERSARIAL_AFTER
    domain_inversion_source: str = DOMAIN_INVERSION_SOURCES[0]  # DOMAIN_INVERSION_SOURCES
    discriminator: str | None = None              # default: the generator checkpoint
    domain_discriminator: str | None = None       # "WEIGHT[:k=v,...]" of `domain_adversarial`
    pretrain_inversion_steps: int = 10_000
    steps: int = 100_000
    batch_size: int = THESIS_BATCH                # per process
    optimizer: str = "adam"
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    scheduler: str = "constant"                   # constant | cosine (after warm-up)
    warmup_steps: int = 0
    clip_grad: float = 1.0                        # max gradient norm; 0 = off
    amp: str = "auto"                             # auto | off | bf16 | fp16 (CUDA only)
    ema: float = 0.0                              # EMA decay; 0 = off
    hidden: int | None = None                     # default: 1.5 × feature channels (768 for 512)
    n_blocks: int = 6
    residual: bool = False
    init: str | None = None                       # start from a featureshift checkpoint
    seed: int = 0
    checkpoint_every: int = 1000
    log_every: int = 50
    sample_every: int = 1000
    n_samples: int = 4
    #: also write the log's numbers and the sample grids as TensorBoard events in OUT/tensorboard
    tensorboard: bool = False
    device: str = "auto"
    resume: bool = False

    # fields that may change when a run is resumed
    RESUMABLE_CHANGES = ("steps", "checkpoint_every", "log_every", "sample_every", "n_samples",
                         "device", "resume", "out", "data", "generator", "discriminator")

    def adversarial_start(self) -> int:
        """The step the frozen-discriminator term starts at: ``adversarial_after``, default
        :data:`ADVERSARIAL_AFTER` (10 000, whatever the pre-training length; a run resumed from
        a state written before that default keeps its start, the end of its pre-training)."""
        if self.adversarial_after is not None:
            return self.adversarial_after
        if self.adversarial_after_default is not None:
            return self.adversarial_after_default
        return self.pretrain_inversion_steps

    def weight_requests(self) -> list[tuple[str, str, str]]:
        """The losses of every set as ``(kind, spec, option)`` requests: the official weights
        they read (``lpips-alex``, ``arcface-irse50``) and that are not installed are named
        together before anything loads (:func:`stylebridge.registry.needed.require_weights`)."""
        inversion = self.losses if self.inversion_losses is None else self.inversion_losses
        # the thesis set, when not given, is named as the default it is (no one typed it)
        default = list(self.losses) == list(THESIS_LOSSES)
        defaulted = {"losses": default, "inversion_losses": default and self.inversion_losses is None,
                     "domain_inversion_losses": False}
        return [("loss", spec, option_name(name) + (" (default)" if defaulted[name] else ""))
                for name, specs in (("losses", self.losses), ("inversion_losses", inversion),
                                    ("domain_inversion_losses", self.domain_inversion_losses))
                for spec in specs]

    #: how one invocation runs, not what the run trains: left out of :meth:`to_json` (the
    #: checkpoints' ``train_config``), so that a resumed run writes an uninterrupted run's bytes
    #: (the device each start ran on is in ``log.jsonl``, the last one in the model's header)
    INVOCATION = ("resume", "device", "tensorboard")

    def to_json(self) -> dict[str, Any]:
        """The settings, as recorded in ``model.safetensors``, ``state.safetensors`` and the
        log's ``start`` record (less :data:`INVOCATION`)."""
        data = {k: v for k, v in asdict(self).items() if k not in self.INVOCATION}
        data["betas"] = list(self.betas)
        return data

    def validate(self) -> None:
        for option, value in (("--steps", self.steps), ("--batch", self.batch_size)):
            if value < 1:
                raise StylebridgeError(f"{option} {value}: must be >= 1")
        if self.optimizer not in ("adam", "adamw"):
            raise StylebridgeError(f"--optimizer {self.optimizer!r}: expected adam or adamw")
        if self.scheduler not in ("constant", "cosine"):
            raise StylebridgeError(f"--scheduler {self.scheduler!r}: expected constant or cosine")
        if self.amp not in ("auto", "off", "bf16", "fp16"):
            raise StylebridgeError(f"--amp {self.amp!r}: expected auto, off, bf16 or fp16")
        if not 0.0 <= self.ema < 1.0:
            raise StylebridgeError(f"--ema {self.ema}: expected a decay in [0, 1)")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise StylebridgeError(f"--lr {self.lr}: must be > 0")
        if self.domain_inversion_source not in DOMAIN_INVERSION_SOURCES:
            raise StylebridgeError(f"--domain-inversion-source {self.domain_inversion_source!r}: "
                                   f"expected {' or '.join(DOMAIN_INVERSION_SOURCES)}")
        for name in ("checkpoint_every", "log_every", "sample_every", "pretrain_inversion_steps",
                     "adversarial_after", "adversarial_after_default", "warmup_steps"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise StylebridgeError(f"{option_name(name)} {getattr(self, name)}: "
                                       "must be >= 0")
        if self.domain_discriminator is not None:
            head = str(self.domain_discriminator).split(":", 1)[0]
            try:
                ok = math.isfinite(float(head)) and float(head) >= 0
            except ValueError:
                ok = False
            if not ok:
                raise StylebridgeError(f"--domain-discriminator {self.domain_discriminator!r}: "
                                       "expected WEIGHT[:key=value,...] with a weight >= 0")
        for name in ("adversarial", "clip_grad", "weight_decay"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise StylebridgeError(f"{option_name(name)} {value}: must be a number >= 0")
        # the limits a featureshift checkpoint's header is checked against when it is loaded:
        # a model trained outside them could never be used (or resumed)
        from stylebridge.core.schema import ConfigSchemaError, validate_config
        from stylebridge.plugins.renderers.featureshift import FeatureShift

        for key, value in (("hidden", self.hidden), ("n_blocks", self.n_blocks)):
            if value is None:
                continue
            try:
                validate_config({key: FeatureShift.config_schema[key]}, {key: value})
            except ConfigSchemaError:
                raise StylebridgeError(
                    f"{option_name(key)} {value}: expected "
                    f"{FeatureShift.config_schema[key].describe()} (what a featureshift "
                    "checkpoint may hold)") from None
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise StylebridgeError(f"--betas {','.join(map(str, self.betas))}: expected two "
                                   "numbers in [0, 1)")


#: TrainConfig fields whose command-line option is not ``--`` + the field name.
_OPTION_NAMES = {"batch_size": "--batch", "losses": "--loss", "inversion_losses": "--inversion-loss",
                 "domain_inversion_losses": "--domain-inversion-loss",
                 # not an option: what a state recorded (see TrainConfig), named by its meaning
                 "adversarial_after_default": "the default --adversarial-after"}


def option_name(field_name: str) -> str:
    """The ``train featureshift`` option of a :class:`TrainConfig` field."""
    return _OPTION_NAMES.get(field_name, "--" + field_name.replace("_", "-"))


def split_specs(items: Sequence[str] | None) -> list[str]:
    """``["a.safetensors,b.safetensors", "stylespace:c.safetensors:k=v,k2=v"]`` → one spec each.

    Commas separate specs, except inside a spec's ``key=value`` options.
    """
    out: list[str] = []
    for item in items or []:
        for part in item.split(","):
            part = part.strip()
            if not part:
                continue
            if out and "=" in part and ":" not in part and "/" not in part:
                out[-1] = f"{out[-1]},{part}"  # another option of the previous spec
            else:
                out.append(part)
    return out
