"""``stylebridge train domain``: train a domain method from a text prompt or one reference image.

A *domain method* (``--method stylespace``, ``affine_plus``, any registered
:class:`~stylebridge.core.interfaces.DomainMethod`) is trained on top of a frozen
StyleGAN2: each step samples w+ (with style mixing), renders the frozen source
``G_θ0(w)`` and the adapted ``G_θ(w)`` (the method's styles on the same generator,
whose own weights never change) and minimises a weighted sum of
:class:`~stylebridge.core.interfaces.Loss` plugins named on the command line
(``--loss NAME:WEIGHT[:k=v]``, see :mod:`stylebridge.plugins.losses.clip`).

Defaults follow AIRI-Institute/StyleDomain (``SimilarDomains/configs``):

* text target (StyleGAN-NADA, ``td_nada_ffhq_sdelta.yaml``): ``clip_direction:1.0``
  + ``indomain:0.25``, Adam lr 0.05, betas (0.9, 0.999), 250 steps, batch 4, style
  mixing probability 0.9, CLIP ViT-B/32 + ViT-B/16, ``no_coarse: True`` (no change on
  the first 6 conv layers = ``--freeze-layers coarse``), source class ``Human``, the
  79 ImageNet prompt templates;
* image target (DiFa, ``im2im_difa_sdelta.yaml``): ``clip_direction:1.0`` (global loss,
  thesis Eq. 2) + ``difa_w:6.0`` (Eq. 3) + ``difa_local:1.0``, Adam lr 0.08 with a
  linear warm-up from 0.001 over 30 steps, 301 steps, batch 2, no mixing, CLIP layer 3,
  α 0.6, window 50; ``v_source`` is the mean CLIP embedding of source samples at
  truncation 0.8 (``emb.online_truncation``).  ``difa_w`` compares encoder (e4e)
  inversions of the images: give ``--encoder e4e:CKPT`` or drop it with ``--loss``.

``--loss`` replaces the whole default list.  Differences from StyleDomain: noise
inputs use the generator's stored buffers (both branches see the same noise), and
the step loop runs ``--steps`` steps (StyleDomain's runs ``iter_num + 1``).

Outputs, all written atomically:

* ``--out DOMAIN.safetensors``: the method's checkpoint (``kind="domain_method"``),
  header ``extra = {"step", "steps", "target", "losses", "clip", "generator", ...}``,
  every ``--checkpoint-every`` steps and at the end;
* ``DOMAIN.train-state.safetensors``: method, Adam state, RNG state, loss state
  (DiFa's window) and step, so that ``--resume`` continues exactly;
* ``DOMAIN_samples/stepNNNNNN.png``: every ``--sample-every`` steps, rows of
  source | adapted for fixed seeds.

A non-finite loss or gradient stops the run (exit 2) with
``loss became NaN at step N; last good checkpoint kept at PATH``.

The ``train`` command dispatches on its first argument through :data:`TRAIN_TARGETS`;
other plugins add targets with :func:`register_train_target` (at import of their
module) without editing this file::

    from stylebridge.pipelines.train_domain import register_train_target
    register_train_target("featureshift", add_arguments, run, help="train FeatureShift")
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from stylebridge.cli.base import Command
from stylebridge.cli.common import Target, TargetGroup
from stylebridge.errors import CheckpointError, StylebridgeError
from stylebridge.registry import hookimpl

if TYPE_CHECKING:
    import torch
    from rich.console import Console
    from torch import Tensor

    from stylebridge.core.interfaces import DomainMethod, Encoder, Loss
    from stylebridge.core.stylegan2.generator import Generator
    from stylebridge.plugins.losses.clip import ClipGuide
    from stylebridge.plugins.nets.clip import ClipModel

RANDOM_CLIP_NOTICE = "RANDOM CLIP WEIGHTS"
STATE_KIND = "train_state"
STATE_SUFFIX = ".train-state.safetensors"
DEFAULT_CLIP = ("ViT-B-32", "ViT-B-16")
#: StyleDomain's ``no_coarse``: its conv heads ``conv_0 .. conv_5`` (first 6 conv layers).
N_COARSE_CONV = 6


# ---------------------------------------------------------------------------------------------
# The `train` command and its targets


#: ``stylebridge train TARGET``: the targets (``domain`` here, ``featureshift`` from its plugin).
TRAIN = TargetGroup("train")
TRAIN_TARGETS = TRAIN.targets
TrainTarget = Target
register_train_target = TRAIN.register


class TrainCommand(Command):
    name = "train"
    help = "train a model: `train domain` (text prompt or reference image), ..."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        TRAIN.add_arguments(parser)

    def run(self, args: argparse.Namespace, console: Console) -> int:
        return TRAIN.run(args, console)


# ---------------------------------------------------------------------------------------------
# Defaults


@dataclass(frozen=True)
class ModeDefaults:
    """Per-target defaults (StyleDomain configs, see the module docstring)."""

    losses: tuple[str, ...]
    steps: int
    batch: int
    lr: float
    warmup_steps: int
    mixing: float
    freeze_layers: str


TEXT_DEFAULTS = ModeDefaults(losses=("clip_direction:1.0", "indomain:0.25"), steps=250, batch=4,
                             lr=0.05, warmup_steps=0, mixing=0.9, freeze_layers="coarse")
IMAGE_DEFAULTS = ModeDefaults(losses=("clip_direction:1.0", "difa_w:6.0", "difa_local:1.0"),
                              steps=301, batch=2, lr=0.08, warmup_steps=30, mixing=0.0,
                              freeze_layers="none")
WARMUP_START_LR = 0.001  # StyleDomain scheduler.start_lr


class TrainingDiverged(StylebridgeError):
    """A non-finite loss or gradient; the last good checkpoint is left in place."""


# ---------------------------------------------------------------------------------------------
# Trainer


@dataclass
class TrainSettings:
    """Optimisation settings of :class:`DomainTrainer` (steps are counted from 0)."""

    steps: int
    batch: int = 4
    lr: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    warmup_start_lr: float = WARMUP_START_LR
    mixing: float = 0.9
    freeze_layers: tuple[int, ...] = ()
    seed: int = 0
    checkpoint_every: int = 25
    sample_every: int = 0
    n_samples: int = 4
    sample_truncation: float = 0.7

    def __post_init__(self) -> None:
        checks = [(self.steps >= 1, "steps must be >= 1"), (self.batch >= 1, "batch must be >= 1"),
                  (self.lr > 0 and math.isfinite(self.lr), "lr must be a positive number"),
                  (self.warmup_steps >= 0, "warm-up steps must be >= 0"),
                  (0.0 <= self.mixing <= 1.0, "mixing probability must be in [0, 1]"),
                  (self.checkpoint_every >= 0 and self.sample_every >= 0,
                   "checkpoint/sample intervals must be >= 0"),
                  (self.n_samples >= 1, "n_samples must be >= 1")]
        for ok, message in checks:
            if not ok:
                raise StylebridgeError(message)


@dataclass
class TrainResult:
    """What :meth:`DomainTrainer.train` did."""

    step: int
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoint: Path | None = None
    samples: list[Path] = field(default_factory=list)


def _flatten_optimizer_state(optimizer: torch.optim.Optimizer) -> dict[str, Tensor]:
    """Adam's per-parameter state as ``optim.<index>.<name>`` tensors (param groups are rebuilt)."""
    import torch

    out = {}
    for idx, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            out[f"optim.{idx}.{key}"] = value if isinstance(value, torch.Tensor) else torch.tensor(value)
    return out


def sample_wplus(generator: Generator, n: int, rng: torch.Generator, *,
                 truncation: float = 1.0, mixing: float = 0.0) -> Tensor:
    """z ~ N(0, I) drawn from ``rng`` (a CPU generator) → w+ ``[n, n_latent, style_dim]``.

    With probability ``mixing`` two z are mixed at a random row in ``1 .. n_latent - 1``
    (StyleDomain's ``mixing_noise``).  The result lives on the generator's device.
    """
    import torch

    device = generator.latent_avg.device
    mix = mixing > 0 and float(torch.rand((), generator=rng)) < mixing
    zs = [torch.randn(n, generator.style_dim, generator=rng)]
    inject = None
    if mix:
        zs.append(torch.randn(n, generator.style_dim, generator=rng))
        inject = int(torch.randint(1, generator.n_latent, (), generator=rng))
    return generator.make_wplus([z.to(device) for z in zs], truncation=truncation,
                                inject_index=inject)


def render(generator: Generator, w_plus: Tensor, method: DomainMethod | None = None,
           offset_scale: Sequence[float] | None = None, *,
           noise: Sequence[Tensor] | None = None) -> tuple[Tensor, list[Tensor]]:
    """Images ``[B, 3, H, W]`` in ``[-1, 1]`` and their styles; ``method=None`` = the source.

    ``noise``: per-layer noise inputs; by default the generator's stored buffers (sample
    grids: source and adapted images then share them).  A method's conv weight offsets
    (:meth:`DomainMethod.weight_deltas`) go to the synthesis as an argument.
    """
    if method is None:
        styles = generator.styles(w_plus)
        return generator.synthesis(styles, noise=noise, randomize_noise=False), styles
    styles = method.styles(generator, w_plus, offset_scale)
    deltas = method.weight_deltas(generator, offset_scale)
    return generator.synthesis(styles, noise=noise, randomize_noise=False,
                               weight_deltas=deltas), styles


class DomainTrainer:
    """Trains ``method`` on a frozen ``generator`` with weighted losses.

    ``losses``: ``(name, weight, Loss)``; ``guide``: the :class:`ClipGuide` passed to the
    CLIP losses in ``LossBatch.extras["clip_guide"]``; ``encoder``: inverts the images
    for losses that read ``target_latents``/``source_latents`` (``difa_w``).
    ``settings.freeze_layers`` are style-layer indices (the generator's convention)
    whose parameters are not trained (they keep their values, as in StyleDomain).
    The generator is put in eval mode with ``requires_grad_(False)``; its weights are
    never changed.  Use :meth:`train`; :meth:`load_state` before it resumes a run.
    """

    def __init__(self, generator: Generator, method: DomainMethod,
                 losses: Sequence[tuple[str, float, Loss]], settings: TrainSettings, *,
                 out: str | Path, guide: ClipGuide | None = None, encoder: Encoder | None = None,
                 header_extra: dict[str, Any] | None = None,
                 fingerprint: dict[str, Any] | None = None,
                 device: str | torch.device = "cpu") -> None:
        import torch

        self.device = torch.device(device)
        self.generator = generator.to(self.device).eval().requires_grad_(False)
        self.method = method.to(self.device).train()
        self.losses = [(n, float(w), loss.to(self.device)) for n, w, loss in losses]
        if not self.losses:
            raise StylebridgeError("no loss to train with (give --loss NAME:WEIGHT)")
        self.settings = settings
        self.out = Path(out)
        self.guide = guide
        self.encoder = encoder.to(self.device).eval().requires_grad_(False) if encoder else None
        self.header_extra = dict(header_extra or {})
        self.fingerprint = dict(fingerprint or {})
        needs = {key for _, _, loss in self.losses for key in getattr(loss, "batch_extras", ())}
        self.needs_latents = bool(needs & {"target_latents", "source_latents"})
        if self.needs_latents and self.encoder is None:
            names = [n for n, _, loss in self.losses
                     if "target_latents" in getattr(loss, "batch_extras", ())]
            raise StylebridgeError(
                f"loss {names[0]!r} compares encoder inversions of the images: give --encoder "
                "(DiFa uses e4e, e.g. --encoder e4e:e4e.safetensors) or leave it out with --loss")
        if "clip_guide" in needs and guide is None:
            raise StylebridgeError("the CLIP losses need a ClipGuide (text or image target)")
        if guide is not None:
            for _, _, loss in self.losses:
                guide.token_layers |= set(getattr(loss, "clip_layers", ()))
        n_layers = generator.n_style_layers
        bad = [i for i in settings.freeze_layers if not 0 <= i < n_layers]
        if bad:
            raise StylebridgeError(f"--freeze-layers {bad[0]}: style layers are 0..{n_layers - 1}")
        frozen = set(settings.freeze_layers)
        # StyleDomain's freeze: the frozen layers' parameters get no gradient but keep
        # their values (they still apply: continuing a domain trains what is saved).  A
        # method that cannot name its per-layer parameters is frozen by zeroing the change.
        layer_parameters = getattr(method, "layer_parameters", None)
        frozen_ids = ({id(p) for p in layer_parameters(frozen)}
                      if frozen and callable(layer_parameters) else set())
        self.offset_scale = ([0.0 if i in frozen else 1.0 for i in range(n_layers)]
                             if frozen and not callable(layer_parameters) else None)
        params = [p for p in method.trainable_parameters() if id(p) not in frozen_ids]
        if not params:
            raise StylebridgeError(f"domain method {method.name!r} has no trainable parameters"
                                   + (" outside the frozen layers" if frozen_ids else ""))
        self.params = params
        self.optimizer = torch.optim.Adam(params, lr=settings.lr, betas=settings.betas)
        self.rng = torch.Generator().manual_seed(settings.seed)
        self.step = 0
        self.last_checkpoint: Path | None = None
        self.saved_step = -1
        self.last_losses: dict[str, float] = {}

    # -- paths -------------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return state_path_for(self.out)

    @property
    def samples_dir(self) -> Path:
        return self.out.with_name(f"{self.out.stem}_samples")

    @property
    def random_clip(self) -> bool:
        return bool(self.guide is not None and self.guide.random_weights)

    # -- schedule and sampling ---------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        """StyleDomain's LambdaLR: ``start + min(1, step / warmup) * (lr - start)``."""
        s = self.settings
        if s.warmup_steps <= 0:
            return s.lr
        return s.warmup_start_lr + min(1.0, step / s.warmup_steps) * (s.lr - s.warmup_start_lr)

    # -- one step ----------------------------------------------------------------------------
    def _diverged(self, what: str, value: float | None, detail: str) -> TrainingDiverged:
        """``loss became NaN at step N; last good checkpoint kept at PATH (detail)``; N is 1-based."""
        word = "infinite" if value is not None and math.isinf(value) else "NaN"
        where = (f"last good checkpoint kept at {self.last_checkpoint}"
                 if self.last_checkpoint is not None else "no checkpoint was written in this run")
        return TrainingDiverged(f"{what} became {word} at step {self.step + 1}; {where} ({detail})")

    def _noise(self, batch: int) -> list[Tensor]:
        """Per-layer noise ``[B, 1, H, W]`` drawn from the run's generator (resumable)."""
        import torch

        buffers = [getattr(self.generator.noises, f"noise_{i}")
                   for i in range(self.generator.num_layers)]
        return [torch.randn(batch, 1, *b.shape[-2:], generator=self.rng).to(b.device)
                for b in buffers]

    def training_step(self) -> dict[str, float]:
        """One optimisation step; returns the weighted loss values and ``total``."""
        import torch

        from stylebridge.core.interfaces import LossBatch

        s = self.settings
        w_plus = sample_wplus(self.generator, s.batch, self.rng, mixing=s.mixing)
        # independent noise for the two branches, as StyleGAN-NADA and StyleDomain draw it:
        # with shared noise a fresh (identity) domain gives ΔI = 0 and the direction loss's
        # first gradient is ~1/eps, which stalls Adam for the whole run
        with torch.no_grad():
            source, source_styles = render(self.generator, w_plus, noise=self._noise(s.batch))
        images, styles = render(self.generator, w_plus, self.method, self.offset_scale,
                                noise=self._noise(s.batch))
        extras: dict[str, Any] = {"step": self.step, "total_steps": s.steps}
        if self.guide is not None:
            extras["clip_guide"] = self.guide
        if self.needs_latents:
            assert self.encoder is not None
            extras["target_latents"] = self.encoder.encode((images + 1.0) / 2.0).w_plus
            with torch.no_grad():
                extras["source_latents"] = self.encoder.encode((source + 1.0) / 2.0).w_plus
        batch = LossBatch(images=images, source_images=source, latents=w_plus, styles=styles,
                          source_styles=source_styles,
                          text=[self.guide.target] if self.guide is not None else None,
                          extras=extras)
        values: dict[str, float] = {}
        total = images.new_zeros(())
        for name, weight, loss in self.losses:
            value = loss(batch)
            number = float(value.detach())
            if not math.isfinite(number):
                raise self._diverged("loss", number, f"{name} = {number}")
            values[name] = number * weight
            total = total + weight * value
        total_number = float(total.detach())
        if not math.isfinite(total_number):
            raise self._diverged("loss", total_number, f"total = {total_number}")
        lr = self.lr_at(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        for p in self.params:
            if p.grad is not None and not bool(torch.isfinite(p.grad).all()):
                raise self._diverged("gradient", None, "non-finite gradient of the method's "
                                     "parameters")
        self.optimizer.step()
        self.step += 1
        values["total"] = total_number
        self.last_losses = values
        return values

    # -- checkpoints -------------------------------------------------------------------------
    def checkpoint_extra(self) -> dict[str, Any]:
        extra = dict(self.header_extra)
        extra.update({
            "step": self.step, "steps": self.settings.steps,
            "losses": {name: {"weight": w, "value": self.last_losses.get(name)}
                       for name, w, _ in self.losses},
            "total_loss": self.last_losses.get("total"),
            "generator_config": _json_roundtrip(self.generator.config()),
        })
        if self.guide is not None:
            extra["clip"] = {"models": self.guide.names, "random_weights": self.random_clip}
        if self.random_clip:
            extra["random_weights"] = True  # a domain trained through random CLIP is not real
            extra["notes"] = [*extra.get("notes", []),
                              f"{RANDOM_CLIP_NOTICE}: trained with untrained CLIP models, "
                              "not a real domain"]
        return extra

    def save(self) -> Path:
        """Write the training state, then the method checkpoint (each atomically)."""
        from stylebridge.core.checkpoint import save_checkpoint

        tensors: dict[str, Tensor] = {f"method.{k}": v for k, v in self.method.state_dict().items()}
        tensors.update(_flatten_optimizer_state(self.optimizer))
        tensors["rng"] = self.rng.get_state()
        for j, (_, _, loss) in enumerate(self.losses):
            state_fn = getattr(loss, "training_state", None)
            if callable(state_fn):
                tensors.update({f"loss.{j}.{k}": v for k, v in state_fn().items()})
        save_checkpoint(self.state_path, tensors, kind=STATE_KIND, plugin=self.method.name,
                        config=self.method.config(),
                        extra={"step": self.step, "steps": self.settings.steps,
                               "fingerprint": _json_roundtrip(self.fingerprint),
                               "checkpoint": str(self.out)})
        # the state first: it holds the method weights too, so --resume works even if the
        # process dies before the checkpoint below is written
        save_checkpoint(self.out, self.method.state_dict(), kind="domain_method",
                        plugin=self.method.name, config=self.method.config(),
                        extra=self.checkpoint_extra())
        self.last_checkpoint = self.out
        self.saved_step = self.step
        return self.out

    def load_state(self, path: str | Path | None = None) -> int:
        """Restore a state written by :meth:`save`; return the step it had reached."""
        import torch

        from stylebridge.core.checkpoint import load_checkpoint

        path = Path(path) if path is not None else self.state_path
        header, tensors = load_checkpoint(path, kind=STATE_KIND)
        if header.plugin != self.method.name:
            raise CheckpointError(f"holds the training state of a {header.plugin!r} domain, "
                                  f"this run trains {self.method.name!r}", path=path)
        saved = header.extra.get("fingerprint", {})
        mine = _json_roundtrip(self.fingerprint)
        for key in sorted(set(saved) | set(mine)):
            if saved.get(key) != mine.get(key):
                raise CheckpointError(
                    f"cannot resume: the run used {key}={json.dumps(saved.get(key))}, this "
                    f"command has {key}={json.dumps(mine.get(key))}", path=path)
        method_state = {k[len("method."):]: v for k, v in tensors.items() if k.startswith("method.")}
        try:
            self.method.load_state_dict(method_state, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"method state does not fit: {str(exc).splitlines()[0]}",
                                  path=path) from None
        opt_state: dict[int, dict[str, Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, idx, name = key.split(".", 2)
                opt_state.setdefault(int(idx), {})[name] = value
        sd = self.optimizer.state_dict()
        sd["state"] = opt_state
        self.optimizer.load_state_dict(sd)
        self.rng.set_state(tensors["rng"].to(torch.uint8))
        for j, (_, _, loss) in enumerate(self.losses):
            load_fn = getattr(loss, "load_training_state", None)
            if callable(load_fn):
                prefix = f"loss.{j}."
                load_fn({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)},
                        self.device)
        self.step = int(header.extra.get("step", 0))
        if self.out.is_file():
            self.last_checkpoint = self.out
            self.saved_step = self.step
        return self.step

    # -- samples -----------------------------------------------------------------------------
    def sample_grid(self) -> Tensor:
        """``[3, H', W']`` in ``[0, 1]``: one row per fixed seed, source | adapted."""
        import torch

        from stylebridge.core.images import from_generator_range, make_grid

        s = self.settings
        rng = torch.Generator().manual_seed(s.seed + 2)
        was_training = self.method.training
        self.method.eval()
        with torch.no_grad():
            w_plus = sample_wplus(self.generator, s.n_samples, rng, truncation=s.sample_truncation)
            source, _ = render(self.generator, w_plus)
            adapted, _ = render(self.generator, w_plus, self.method, self.offset_scale)
        self.method.train(was_training)
        tiles = [t for pair in zip(from_generator_range(source).cpu(),
                                   from_generator_range(adapted).cpu(), strict=True) for t in pair]
        grid = make_grid(tiles, ncol=2)
        if self.random_clip:
            from stylebridge.core.images import caption

            grid = caption(grid, f"{RANDOM_CLIP_NOTICE} - not a trained domain")
        return grid

    def write_samples(self) -> Path:
        from stylebridge.core.images import save_png

        return save_png(self.samples_dir / f"step{self.step:06d}.png", self.sample_grid())

    # -- loop --------------------------------------------------------------------------------
    def train(self, *, until: int | None = None, console: Console | None = None) -> TrainResult:
        """Run steps ``self.step .. until`` (default ``settings.steps``), saving as configured."""
        s = self.settings
        stop = s.steps if until is None else min(until, s.steps)
        result = TrainResult(step=self.step)
        progress = None
        if console is not None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                MofNCompleteColumn(), console=console, transient=True)
        label = "training" + (f" [{RANDOM_CLIP_NOTICE}]" if self.random_clip else "")
        try:
            if progress is not None:
                progress.start()
                task = progress.add_task(label, total=stop, completed=self.step)
            while self.step < stop:
                values = self.training_step()
                result.history.append(values)
                if progress is not None:
                    progress.update(task, advance=1,
                                    description=f"{label} loss {values['total']:.4f}")
                if s.checkpoint_every and self.step % s.checkpoint_every == 0:
                    result.checkpoint = self.save()
                if s.sample_every and self.step % s.sample_every == 0:
                    result.samples.append(self.write_samples())
        finally:
            if progress is not None:
                progress.stop()
        if self.saved_step != self.step:
            result.checkpoint = self.save()
        else:
            result.checkpoint = self.out
        result.step = self.step
        return result


def state_path_for(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.stem + STATE_SUFFIX) if out.suffix else Path(f"{out}{STATE_SUFFIX}")


def _json_roundtrip(data: Any) -> Any:
    return json.loads(json.dumps(data, sort_keys=True))


# ---------------------------------------------------------------------------------------------
# Building the pieces from command-line specs


def build_domain_method(spec_text: str, generator: Generator, *, registry: Any = None,
                        device: str | torch.device = "cpu",
                        generator_label: str = "the generator") -> DomainMethod:
    """``NAME[:k=v]`` (fresh, see :func:`_fresh_method`) or ``[NAME:]DOMAIN.safetensors``
    (continue from a domain).  The result must produce one style vector per style layer
    with the generator's shapes; a checkpoint trained for another generator config is
    refused with a one-line error.
    """
    import torch

    from stylebridge.core.checkpoint import read_header
    from stylebridge.core.options import coerce_option
    from stylebridge.registry import get_registry
    from stylebridge.registry.spec import parse_plugin_spec

    registry = registry or get_registry()
    spec = parse_plugin_spec(spec_text, what="domain method")
    options = {k: coerce_option(v) for k, v in spec.options.items()}
    if spec.path is not None:
        header = read_header(spec.path)
        trained_for = header.extra.get("generator_config")
        if trained_for is not None and trained_for != _json_roundtrip(generator.config()):
            raise CheckpointError(
                f"domain was trained for another generator config ({_describe(trained_for)}), "
                f"not {generator_label} ({_describe(generator.config())})", path=spec.path)
        method = registry.load("domain_method", spec.path, name=spec.name, device=str(device),
                               **options)
        label = f"{header.plugin} ({spec.path})"
    else:
        assert spec.name is not None
        cls = registry.get("domain_method", spec.name).obj
        try:
            method = _fresh_method(cls, generator, options)
        except (TypeError, ValueError) as exc:
            raise StylebridgeError(f"cannot build domain method {spec.name!r}: "
                                   f"{' '.join(str(exc).split())}") from None
        label = repr(spec.name)
    method = method.to(device)
    with torch.no_grad():
        w = generator.make_wplus(torch.zeros(1, generator.style_dim, device=device),
                                 input_is_latent=True)
        want = [tuple(t.shape) for t in generator.styles(w)]
        try:
            got = [tuple(t.shape) for t in method.styles(generator, w)]
        except (ValueError, RuntimeError, IndexError, KeyError, TypeError) as exc:
            reason = " ".join(str(exc).split())[:200]
            raise StylebridgeError(f"domain method {label} does not fit {generator_label} "
                                   f"({_describe(generator.config())}): {reason}") from None
    if got != want:
        raise StylebridgeError(f"domain method {label} does not fit {generator_label} "
                               f"({_describe(generator.config())}): it makes {len(got)} style "
                               f"vectors, the generator needs {len(want)} of shapes {want[:3]}...")
    return method


def _fresh_method(cls: type, generator: Generator, options: dict[str, Any]) -> DomainMethod:
    """A new, untrained method for ``generator``.

    ``cls.for_generator(generator, **options)`` when defined; otherwise ``cls(**kwargs)``
    where the generator's config fills every ``__init__`` parameter named like a
    :class:`GeneratorConfig` field (``size``, ``style_dim``, ``channels``, ...) that
    ``options`` leaves open, then ``method.init_from(generator)`` when defined
    (Affine+ starts from the generator's own affine layers).
    """
    factory = getattr(cls, "for_generator", None)
    if callable(factory):
        method = factory(generator, **options)
    else:
        params = inspect.signature(cls.__init__).parameters
        kwargs = {k: v for k, v in generator.config().items() if k in params and k not in options}
        method = cls(**kwargs, **options)
    init = getattr(method, "init_from", None)
    if callable(init):
        init(generator)
    return method


def _describe(config: dict[str, Any]) -> str:
    return f"{config.get('size')}px, style_dim {config.get('style_dim')}"


def parse_freeze_layers(text: str, generator: Generator) -> tuple[int, ...]:
    """``none`` | ``coarse`` (StyleDomain's no_coarse: first 6 conv layers) | ``0,2,3``."""
    text = text.strip().lower()
    if text in ("", "none"):
        return ()
    if text == "coarse":
        return tuple(generator.conv_style_indices()[:N_COARSE_CONV])
    try:
        return tuple(sorted({int(p) for p in text.split(",") if p.strip()}))
    except ValueError:
        raise StylebridgeError(f"--freeze-layers {text!r}: expected none, coarse or style-layer "
                               "indices like 0,1") from None


def build_losses(specs: Sequence[str], *, registry: Any = None) -> list[tuple[str, float, Loss]]:
    """``NAME:WEIGHT[:k=v,...]`` → ``(name, weight, Loss)``; names must be unique."""
    from stylebridge.core.options import coerce_option
    from stylebridge.registry import get_registry
    from stylebridge.registry.spec import parse_loss_spec

    registry = registry or get_registry()
    out: list[tuple[str, float, Loss]] = []
    for text in specs:
        spec = parse_loss_spec(text)
        if any(name == spec.name for name, _, _ in out):
            raise StylebridgeError(f"--loss {spec.name!r} is given twice")
        options = {k: coerce_option(v) for k, v in spec.options.items()}
        try:
            loss = registry.create("loss", spec.name, **options)
        except ValueError as exc:
            raise StylebridgeError(f"--loss {text!r}: {exc}") from None
        out.append((spec.name, spec.weight, loss))
    return out


def installed_clip_weights(name: str) -> Path | None:
    """CLIP weights registered with the weights manager, if it is available."""
    try:
        from stylebridge.registry.weights import WeightsManager
    except ImportError:  # pragma: no cover - weights manager not installed
        return None
    try:
        return WeightsManager().resolve("clip", name)
    except StylebridgeError:
        return None


def build_clip_models(names: Sequence[str], weights: dict[str, Path], *, allow_random: bool,
                      device: str | torch.device = "cpu") -> list[ClipModel]:
    """Load each CLIP model with its weights file; random weights only with ``allow_random``."""
    from stylebridge.plugins.nets.clip import load_clip

    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise StylebridgeError(f"--clip-weights {unknown[0]}=...: {unknown[0]} is not among the "
                               f"--clip models ({', '.join(names)})")
    models = []
    for name in names:
        path = weights.get(name) or installed_clip_weights(name)
        if path is None and not allow_random:
            raise StylebridgeError(
                f"no weights for CLIP {name}: give --clip-weights {name}=PATH (a .safetensors "
                f"state dict of open_clip's {name}); --allow-random-clip trains with "
                f"{RANDOM_CLIP_NOTICE} (tests only)")
        models.append(load_clip(name, weights=path, device=device))
    return models


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_image_batches(generator: Generator, n: int, batch: int, truncation: float,
                         seed: int) -> Iterator[Tensor]:
    """``n`` source-generator samples in ``[0, 1]`` for ``v_source`` (own RNG from ``seed``)."""
    import torch

    rng = torch.Generator().manual_seed(seed)
    done = 0
    while done < n:
        k = min(batch, n - done)
        with torch.no_grad():
            images, _ = render(generator, sample_wplus(generator, k, rng, truncation=truncation))
        done += k
        yield (images + 1.0) / 2.0


# ---------------------------------------------------------------------------------------------
# `stylebridge train domain`


def add_domain_arguments(parser: argparse.ArgumentParser) -> None:
    from stylebridge.cli.common import add_device_argument

    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--text", metavar="PROMPT",
                        help="target domain as text (StyleGAN-NADA + in-domain consistency)")
    target.add_argument("--image", type=Path, metavar="REF.png",
                        help="target domain as one reference image (DiFa)")
    parser.add_argument("--source-text", default=None, metavar="PROMPT",
                        help="description of the generator's own domain (default: Human)")
    parser.add_argument("--templates", choices=("imagenet", "none"), default="imagenet",
                        help="prompt templates for text targets (default: the 79 ImageNet ones)")
    parser.add_argument("--method", default="stylespace", metavar="NAME[:k=v]|DOMAIN.safetensors",
                        help="domain method to train (default stylespace), or a domain "
                             "checkpoint to continue from")
    parser.add_argument("--generator", "-g", required=True, metavar="[stylegan2:]CKPT")
    parser.add_argument("--out", type=Path, required=True, metavar="DOMAIN.safetensors")
    parser.add_argument("--steps", type=int, default=None,
                        help="optimisation steps (default: 250 text, 301 image)")
    parser.add_argument("--loss", action="append", metavar="NAME:WEIGHT[:k=v]",
                        help="repeatable; replaces the defaults (text: clip_direction:1.0 "
                             "indomain:0.25; image: clip_direction:1.0 difa_w:6.0 difa_local:1.0)")
    parser.add_argument("--clip", action="append", metavar="MODEL",
                        help="CLIP model, repeatable (default: ViT-B-32 and ViT-B-16)")
    parser.add_argument("--clip-weights", action="append", metavar="MODEL=PATH",
                        help="weights file of a CLIP model (.safetensors state dict), repeatable")
    parser.add_argument("--allow-random-clip", action="store_true",
                        help=f"run CLIP models without weights on {RANDOM_CLIP_NOTICE} "
                             "(tests only; every output says so)")
    parser.add_argument("--encoder", default=None, metavar="NAME:CKPT",
                        help="encoder that inverts images for difa_w (DiFa uses e4e)")
    parser.add_argument("--lr", type=float, default=None, help="Adam lr (default 0.05 text, 0.08 image)")
    parser.add_argument("--warmup-steps", type=int, default=None,
                        help="linear lr warm-up from 0.001 (default 0 text, 30 image)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default 4 text, 2 image)")
    parser.add_argument("--mixing", type=float, default=None,
                        help="style-mixing probability (default 0.9 text, 0.0 image)")
    parser.add_argument("--freeze-layers", default=None, metavar="none|coarse|I,J,...",
                        help="style layers kept unchanged (default: coarse for text = StyleDomain's "
                             "no_coarse, none for image)")
    parser.add_argument("--source-samples", type=int, default=256,
                        help="source samples averaged for v_source (image targets; default 256)")
    parser.add_argument("--source-truncation", type=float, default=0.8,
                        help="truncation of those samples (default 0.8)")
    parser.add_argument("--sample-every", type=int, default=50,
                        help="write a source | adapted grid every N steps (0 = never; default 50)")
    parser.add_argument("--checkpoint-every", type=int, default=25,
                        help="write the checkpoint and training state every N steps (default 25)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run whose training state lies beside --out")
    parser.add_argument("--force", action="store_true", help="start over even if --out exists")
    parser.add_argument("--seed", type=int, default=0)
    add_device_argument(parser)


def _parse_clip_weights(items: Sequence[str] | None) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for item in items or []:
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise StylebridgeError(f"--clip-weights {item!r}: expected MODEL=PATH")
        out[name.strip()] = Path(path.strip())
    return out


def run_domain(args: argparse.Namespace, console: Console) -> int:
    from stylebridge.cli.common import checkpoint_spec
    from stylebridge.core.device import resolve_device
    from stylebridge.core.images import load_image
    from stylebridge.core.stylegan2.checkpoint import load_stylegan2
    from stylebridge.plugins.losses.clip import (
        DEFAULT_SOURCE_TEXT,
        ClipGuide,
        mean_embeddings,
        text_templates,
    )

    # -- cheap checks first: one-line errors before anything is loaded ----------------------
    text_mode = args.text is not None
    if text_mode and not args.text.strip():
        raise StylebridgeError("--text is empty: describe the target domain, "
                               "e.g. --text \"a 3d render in the style of Pixar\"")
    reference = None
    if not text_mode:
        reference = load_image(args.image)  # one-line ImageError for missing/broken files
    source_text = args.source_text if args.source_text is not None else DEFAULT_SOURCE_TEXT
    if text_mode and not source_text.strip():
        raise StylebridgeError("--source-text is empty (e.g. --source-text Human)")
    d = TEXT_DEFAULTS if text_mode else IMAGE_DEFAULTS
    steps = args.steps if args.steps is not None else d.steps
    state_path = state_path_for(args.out)
    if args.resume and not state_path.is_file():
        raise StylebridgeError(f"--resume: no training state at {state_path}")
    if not args.resume and args.out.exists() and not args.force:
        raise StylebridgeError("already exists (use --resume to continue, --force to start over)",
                               path=args.out)
    if not args.resume and state_path.is_file() and (args.force or not args.out.exists()):
        state_path.unlink()  # a stale state of an earlier run must not be resumed later
    if args.source_samples < 1:
        raise StylebridgeError("--source-samples must be >= 1")
    clip_weights = _parse_clip_weights(args.clip_weights)
    clip_names = list(dict.fromkeys(args.clip or DEFAULT_CLIP))

    device = resolve_device(args.device)
    gen_name, gen_path = checkpoint_spec(args.generator, "generator")
    if gen_name not in (None, "stylegan2"):
        raise StylebridgeError(f"--generator {args.generator!r}: unknown generator {gen_name!r}")
    generator = load_stylegan2(gen_path, device=device).generator
    method = build_domain_method(args.method, generator, device=device,
                                 generator_label=str(gen_path))
    losses = build_losses(args.loss or d.losses)
    settings = TrainSettings(
        steps=steps, batch=args.batch if args.batch is not None else d.batch,
        lr=args.lr if args.lr is not None else d.lr,
        warmup_steps=args.warmup_steps if args.warmup_steps is not None else d.warmup_steps,
        mixing=args.mixing if args.mixing is not None else d.mixing,
        freeze_layers=parse_freeze_layers(args.freeze_layers or d.freeze_layers, generator),
        seed=args.seed, checkpoint_every=args.checkpoint_every, sample_every=args.sample_every)
    for name, _, loss in losses:  # DiFa's ramp: no weight until the window has passed
        ramp = getattr(loss, "ramp", None)
        if callable(ramp) and ramp(steps, steps) == 0.0:
            console.print(f"[yellow]note:[/yellow] loss {name!r} stays at weight 0 for "
                          f"--steps {steps} (its ramp starts after its window of "
                          f"{getattr(loss, 'window', '?')} steps)")
    encoder = None
    needs_latents = any("target_latents" in getattr(loss, "batch_extras", ())
                        for _, _, loss in losses)
    if args.encoder is not None:
        from stylebridge.registry.resolve import load_plugin

        encoder = load_plugin("encoder", args.encoder, device=device)
    elif needs_latents:
        raise StylebridgeError(
            "loss 'difa_w' compares encoder inversions of the images: give --encoder "
            "(DiFa uses e4e, e.g. --encoder e4e:e4e.safetensors) or choose losses with --loss")
    uses_clip = any("clip_guide" in getattr(loss, "batch_extras", ()) for _, _, loss in losses)

    target: dict[str, Any]
    if text_mode:
        target = {"text": args.text, "source_text": source_text, "templates": args.templates}
    else:
        target = {"image": str(args.image), "image_sha256": file_sha256(args.image),
                  "source_samples": args.source_samples,
                  "source_truncation": args.source_truncation}
    # which weights the losses use: a resumed run must not mix CLIP (or generator) weights,
    # and a run that started on random CLIP weights stays labelled as such
    clip_files = {name: clip_weights.get(name) or installed_clip_weights(name)
                  for name in clip_names} if uses_clip else {}
    fingerprint = {
        "method": {"plugin": method.name, "config": method.config()},
        "generator_config": generator.config(), "generator_sha256": file_sha256(gen_path),
        "clip_weights": {name: file_sha256(path) if path is not None and path.is_file()
                         else "random" for name, path in clip_files.items()},
        "target": target,
        "losses": list(args.loss or d.losses), "clip": clip_names if uses_clip else [],
        "encoder": args.encoder, "batch": settings.batch, "lr": settings.lr,
        "warmup_steps": settings.warmup_steps, "mixing": settings.mixing,
        "freeze_layers": list(settings.freeze_layers), "seed": settings.seed,
    }
    header_extra = {"target": target, "generator": str(gen_path), "method_spec": args.method,
                    "trainer": "stylebridge train domain"}

    guide = None
    if uses_clip:
        models = build_clip_models(clip_names, clip_weights, allow_random=args.allow_random_clip,
                                   device=device)
        if any(m.random_weights for m in models):
            console.print(f"[bold yellow]{RANDOM_CLIP_NOTICE}[/bold yellow]: "
                          f"{', '.join(m.name for m in models if m.random_weights)} "
                          "without weights; the result is not a real domain (tests only)")
        if text_mode:
            with console.status("encoding the prompts"):
                templates = text_templates(args.templates)
                guide = ClipGuide.from_text(models, args.text, source_text, templates)
        else:
            with console.status(f"averaging CLIP embeddings of {args.source_samples} source samples"):
                v_source = mean_embeddings(models, source_image_batches(
                    generator, args.source_samples, max(settings.batch, 8),
                    args.source_truncation, seed=settings.seed + 1))
            layers = {layer for _, _, loss in losses for layer in getattr(loss, "clip_layers", ())}
            assert reference is not None
            guide = ClipGuide.from_image(models, reference.to(device), v_source,
                                         target=str(args.image), token_layers=layers)
    trainer = DomainTrainer(generator, method, losses, settings, out=args.out, guide=guide,
                            encoder=encoder, header_extra=header_extra, fingerprint=fingerprint,
                            device=device)
    if args.resume:
        step = trainer.load_state(state_path)
        if step >= steps:
            console.print(f"{escape(str(args.out))} is already trained for {step} steps (--steps {steps}); "
                          "nothing to do")
            return 0
        console.print(f"resuming from step {step} ({escape(str(state_path))})")
    result = trainer.train(console=console)
    notice = f" [bold yellow]{RANDOM_CLIP_NOTICE}[/bold yellow]" if trainer.random_clip else ""
    summary = ", ".join(f"{k} {v:.4f}" for k, v in trainer.last_losses.items())
    console.print(f"[green]wrote[/green] {escape(str(args.out))} (step {result.step}/{steps}; {summary}){notice}")
    if result.samples:
        console.print(f"samples: {escape(str(trainer.samples_dir))}{notice}")
    return 0


@hookimpl
def register_commands(register: Any) -> None:
    register(TrainCommand())


register_train_target("domain", add_domain_arguments, run_domain,
                      help="train a domain method from a text prompt or one reference image")
