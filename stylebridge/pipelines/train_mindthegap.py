"""``stylebridge train mindthegap``: one-shot adaptation from one reference image (MindTheGap).

Zhu et al. (ICLR 2022; ZPdesu/MindTheGap ``train.py``, ``models/MTG.py``,
``options/MTG_options.py``) fine-tune the StyleGAN2 synthesis network from one reference
image ``I_B``.  Here the fine-tuning is a ``mindthegap`` domain method
(:mod:`stylebridge.plugins.domains.mindthegap`): the delta of the trained parameters, trained
on the shared :class:`~stylebridge.pipelines.training.domain.DomainTrainer` (its loop,
checkpoints, exact resume and NaN guard) through :class:`MindTheGapTrainer`, which adds the
reference to every step's batch.

1. **Inversion of the reference** into W+ (``w_B``).  Upstream uses II2S (1000 Adam steps,
   lr 0.01, L2 at full size + LPIPS-VGG at 256 px + a PCA prior, from the average w).  Here:
   one of our encoders (``--encoder e4e:CKPT``, any encoder; only its W+ is used), then
   optionally ``--refine-steps N`` Adam steps (lr ``--refine-lr`` 0.01) on w+ with II2S's
   L2 + LPIPS (weights 1 and 1; no PCA prior: "II2S-lite").  Without an encoder the
   refinement starts from the generator's average w, as II2S does.
2. **Fine-tuning** with upstream's losses and weights (:data:`DEFAULT_LOSSES`, see
   :mod:`stylebridge.plugins.losses.mindthegap`): ``clip_direction:1`` (across-domain,
   with the direction ``E(I_B) - E(G0(w_B))``), ``mtg_within:0.5``, ``mtg_ref_clip:30``,
   ``mtg_ref_l2:10``, ``mtg_ref_lpips:10``; CLIP ViT-B/32 + ViT-B/16; Adam with
   upstream's ``lr · g_reg_ratio`` = 0.002 · 4/5 = 0.0016 and betas ``(0, 0.99^(4/5))``;
   600 steps; batch 4; z without truncation or mixing; trained parts = upstream's default
   phase (constant input + every styled conv; ``--phase`` picks upstream's others).
   Differences: noise inputs of the reference renders are the generator's stored buffers
   (upstream draws fresh noise), so ``G0(w_B)`` is computed once.
3. **Reference mixing** (upstream's ``inference.py``/``generate.py``): the domain keeps
   ``w_B`` and renders W+ rows ``>= mix_from`` (7 at 1024 px) from it; ``--no-mix`` turns
   that off; training steps never mix (:meth:`MindTheGapTrainer.training_step`).
4. **Outputs** (atomic): ``--out RUN.safetensors`` (kind ``domain_method``, plugin
   ``mindthegap``), ``RUN.train-state.safetensors`` (``--resume``), ``RUN_samples/``,
   ``RUN_reference.safetensors`` (``w_B``, reused on resume) and ``RUN_reference.png``:
   reference | source reconstruction ``G0(w_B)`` | adapted reconstruction ``G(w_B)``, each
   at the generator's size (``3·size`` wide), written at the end of the run.

:func:`train_mindthegap` takes a :class:`MindTheGapConfig` and returns a
:class:`MindTheGapOutcome`; :func:`train_tiny_mindthegap` trains on the tiny preset.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from stylebridge.core.checkpoint import load_checkpoint, save_checkpoint
from stylebridge.core.device import resolve_device
from stylebridge.core.images import from_generator_range, load_image, resize_square, save_png
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.presets import random_seeded
from stylebridge.pipelines.training.board import require_tensorboard
from stylebridge.pipelines.training.domain import (
    BASE_FIELDS,
    CLIP_FIELDS,
    RANDOM_CLIP_NOTICE,
    DomainTrainer,
    TrainSettings,
    check_run_out,
    render,
)
from stylebridge.pipelines.training.fingerprint import (
    NOT_RECORDED,
    START_OVER,
    Computed,
    moved_image_as_now,
    option_label,
)
from stylebridge.pipelines.training.guard import refuse_several_processes
from stylebridge.pipelines.training.losses import check_trainable
from stylebridge.pipelines.training.options import check_train_numbers
from stylebridge.pipelines.training.progress import ProgressCallback, check_progress, emit
from stylebridge.pipelines.training.result import TrainResult
from stylebridge.pipelines.training.state import (
    file_sha256,
    first_difference,
    json_roundtrip,
    then_and_now,
)
from stylebridge.pipelines.typed import coerce_path_fields
from stylebridge.registry.needed import MissingWeightsError, WeightsCheck, require_weights

if TYPE_CHECKING:
    from stylebridge.core.interfaces import LossBatch
    from stylebridge.core.stylegan2.generator import Generator
    from stylebridge.plugins.domains.mindthegap import MindTheGap

#: upstream ``--lr 0.002`` times ``g_reg_ratio = 4/5`` (``--g_reg_every 4``), as ``train.py``
DEFAULT_LR = 0.002 * 4 / 5
DEFAULT_BETAS = (0.0, 0.99 ** (4 / 5))
DEFAULT_STEPS = 600
DEFAULT_BATCH = 4
DEFAULT_CLIP = ("ViT-B-32", "ViT-B-16")
LPIPS_VGG = "lpips-vgg"  # the weights entry of the VGG16 backbone
#: what the one line naming the missing downloads adds when lpips-vgg is one of them
LPIPS_HINT = (f"; or give --lpips-backbone PATH (torchvision's vgg16-397923af.pth) for "
              f"{LPIPS_VGG}")
REFERENCE_FIELDS = frozenset({"reference", "reference_output", "reference_source"})
LATENT_KIND = "mindthegap_reference"


def reference_paths(out: str | Path) -> tuple[Path, Path]:
    """``RUN.safetensors`` → (``RUN_reference.safetensors``, ``RUN_reference.png``)."""
    out = Path(out)
    return out.with_name(f"{out.stem}_reference.safetensors"), out.with_name(f"{out.stem}_reference.png")


def trained_fields(layers: Sequence[int]) -> frozenset[str]:
    """The LossBatch fields a ``mindthegap`` domain with deltas on style ``layers`` (its
    ``--phase``) changes: every image, the reference's too, and the styles of those layers
    (through their modulation affines)."""
    return frozenset({"output", "reference_output"} | ({"styles"} if layers else set()))


# ---------------------------------------------------------------------------------------------
# The trainer


class MindTheGapTrainer(DomainTrainer):
    """The domain trainer plus the reference: every batch gets ``reference`` (``I_B`` in
    ``[-1, 1]``, ``[1, 3, size, size]``), ``reference_source`` (``G0(w_B)``, computed once)
    and ``reference_output`` (``G(w_B)`` through the method being trained)."""

    method: MindTheGap
    command = "train mindthegap"
    takes_encoder = False   # its --encoder inverts the reference only
    #: its options besides train domain's, the reference's and those the domain's config
    #: holds (a --resume refusal names them; ``betas`` has none)
    resume_labels: ClassVar[Mapping[str, str]] = {
        **DomainTrainer.resume_labels, "target.image": "the reference image",
        "target.image_sha256": "the reference image (sha256)", "target.encoder": "--encoder",
        "target.refine_steps": "--refine-steps", "target.refine_lr": "--refine-lr",
        "phase": "--phase", "method.config.mix_from": "--mix-from",
        "method.config.mix": "mix (--no-mix)"}
    #: states written before ``--phase`` was recorded (85ef785): read from the layers the
    #: domain's config records (phase_of_state)
    saved_before: ClassVar[Mapping[str, Any]] = {
        **DomainTrainer.saved_before, "phase": Computed(lambda t, saved: t.phase_of_state(saved))}

    def __init__(self, generator: Generator, method: MindTheGap, losses: Sequence[Any],
                 settings: TrainSettings, *, reference: Tensor, w_ref: Tensor,
                 phase: str = "default", **kwargs: Any) -> None:
        self.reference = reference
        self.w_ref = w_ref
        self.phase = phase
        self.trained_fields = trained_fields(method.layers)   # a loss reading none: refused
        super().__init__(generator, method, losses, settings, **kwargs)
        self.reference = reference.to(self.device).reshape(1, 3, generator.size, generator.size)
        self.w_ref = w_ref.to(self.device).detach()
        with torch.no_grad():
            self.reference_source, _ = render(self.generator, self.w_ref)

    def provides(self) -> frozenset[str]:
        return super().provides() | REFERENCE_FIELDS

    def own_files(self) -> list[Path]:
        return [*super().own_files(), *reference_paths(self.out)]

    @property
    def trained_label(self) -> str:
        return f"{self.command} --phase {self.phase}"

    def phase_of_state(self, saved: Mapping[str, Any]) -> Any:
        """The ``--phase`` of a state that predates its record, from the style layers its
        domain's config lists: this run's when it trains those (phases can share them), else
        the first that does; NOT_RECORDED when none does (the layers are compared then)."""
        from stylebridge.plugins.domains.mindthegap import PHASES, phase_layers

        layers = ((saved.get("method") or {}).get("config") or {}).get("layers")
        n = self.generator.n_style_layers
        phases = [p for p in dict.fromkeys([self.phase, *PHASES])
                  if p in PHASES and phase_layers(p, n) == layers]
        return phases[0] if phases else NOT_RECORDED

    def training_step(self) -> dict[str, float]:
        """The shared step, without reference mixing (upstream trains on plain w)."""
        with self.method.mixing(False):
            return super().training_step()

    def extend_batch(self, batch: LossBatch) -> None:
        batch.reference = self.reference
        batch.reference_source = self.reference_source
        batch.reference_output, _ = render(self.generator, self.w_ref, self.method)

    def reference_strip(self) -> Tensor:
        """``[3, size, 3·size]`` in ``[0, 1]``: reference | G0(w_B) | G(w_B)."""
        was_training = self.method.training
        self.method.eval()
        with torch.no_grad():
            adapted, _ = render(self.generator, self.w_ref, self.method)
        self.method.train(was_training)
        tiles = [self.reference[0], self.reference_source[0], adapted[0]]
        return torch.cat([from_generator_range(t).cpu() for t in tiles], dim=-1)


# ---------------------------------------------------------------------------------------------
# Reference inversion


def load_reference(path: Path, size: int) -> Tensor:
    """The reference as ``[1, 3, size, size]`` in ``[0, 1]``: centre square, resized
    (antialiased).  A missing or broken file is a one-line error naming it."""
    image = load_image(path)
    h, w = image.shape[-2:]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return resize_square(image[:, top:top + s, left:left + s], size)[None].clamp(0, 1)


def refine_latent(generator: Generator, w_plus: Tensor, reference01: Tensor, *, steps: int,
                  lr: float = 0.01, lpips: Any = None,
                  progress: ProgressCallback | None = None) -> tuple[Tensor, list[float]]:
    """II2S-lite: ``steps`` Adam steps on ``w_plus`` minimising
    ``MSE(G(w), I) + LPIPS(G(w), I)`` (LPIPS at 256 px or the generator's size; skipped when
    ``lpips`` is ``None``) with the generator's stored noise.  Returns w+ and the losses."""
    target = reference01 * 2.0 - 1.0
    w = w_plus.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([w], lr=lr)
    side = min(256, generator.size)
    history: list[float] = []
    emit(progress, "start", step=0, total=steps, text="refining the reference's w+")
    for step in range(steps):
        image = generator.synthesis(generator.styles(w), randomize_noise=False)
        loss = F.mse_loss(image, target)
        if lpips is not None:
            a = F.interpolate(image, size=(side, side), mode="area") if side < image.shape[-1] else image
            b = F.interpolate(target, size=(side, side), mode="area") if side < target.shape[-1] else target
            loss = loss + lpips(a, b).mean()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise StylebridgeError(f"--refine-steps: the reconstruction loss became {value} at "
                                   f"step {step + 1} (try a smaller --refine-lr)")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history.append(value)
        emit(progress, "step", step=step + 1, total=steps, text=f"refining loss {value:.4f}")
    emit(progress, "end", step=steps, total=steps)
    return w.detach(), history


# ---------------------------------------------------------------------------------------------
# The pipeline


@dataclass
@coerce_path_fields
class MindTheGapConfig:
    """One ``train mindthegap`` run (the command's options)."""

    reference: Path
    generator: str                     # [stylegan2:]CKPT
    out: Path
    encoder: str | None = None         # NAME:CKPT; None: start from the average w
    refine_steps: int = 0
    refine_lr: float = 0.01
    lpips_backbone: str | None = None  # VGG16 weights for mtg_ref_lpips and the refinement
    allow_random_lpips: bool = False   # tests only
    phase: str = "default"
    mix: bool = True                   # render with the reference's fine rows (upstream inference)
    mix_from: int | None = None        # first mixed W+ row; None: 7 at 1024 px, scaled (ours)
    steps: int = DEFAULT_STEPS
    batch: int = DEFAULT_BATCH
    lr: float = DEFAULT_LR
    betas: tuple[float, float] = DEFAULT_BETAS
    losses: list[str] | None = None    # default: DEFAULT_LOSSES
    clip: list[str] | None = None      # default: DEFAULT_CLIP
    clip_weights: list[str] = field(default_factory=list)
    allow_random_clip: bool = False
    sample_every: int = 50
    checkpoint_every: int = 50
    resume: bool = False
    force: bool = False
    seed: int = 2                      # upstream's --seed
    device: str = "auto"
    tensorboard: bool = False             # also DOMAIN_tensorboard/ (not in train_config)
    #: stamp the checkpoint RANDOM WEIGHTS (the tiny preset: every network is untrained)
    random_weights: bool = False


@dataclass
class MindTheGapOutcome:
    """What :func:`train_mindthegap` did (``result`` is ``None`` when a resumed run had
    nothing left to do)."""

    out: Path
    steps: int
    step: int
    reference_png: Path
    reference_latent: Path
    result: TrainResult | None = None
    losses: dict[str, float] = field(default_factory=dict)
    refine_history: list[float] = field(default_factory=list)
    random_clip: bool = False
    samples_dir: Path | None = None


def _lpips_spec(cfg: MindTheGapConfig, spec: str = "mtg_ref_lpips:1") -> str:
    """``spec`` with ``--lpips-backbone`` and ``--allow-random-lpips`` as its options."""
    extra = [*([f"backbone={cfg.lpips_backbone}"] if cfg.lpips_backbone else []),
             *(["allow_random=true"] if cfg.allow_random_lpips else [])]
    return f"{spec}:{','.join(extra)}" if extra else spec


def _loss_specs(cfg: MindTheGapConfig) -> list[str]:
    from stylebridge.plugins.losses.mindthegap import DEFAULT_LOSSES

    if cfg.losses:
        return list(cfg.losses)
    return [_lpips_spec(cfg, s) if s.startswith("mtg_ref_lpips") else s for s in DEFAULT_LOSSES]


def _ensure_weights(cfg: MindTheGapConfig, inverting: bool,
                    ensure_weights: WeightsCheck | None) -> None:
    """Every official download the run lacks named at once (generator, encoder, losses, the
    refinement's LPIPS, CLIP), before anything loads; where lpips-vgg is one that
    ``--lpips-backbone`` would replace, the line says so."""
    from stylebridge.pipelines.training.needed import loss_clip_models, trainer_requests
    from stylebridge.pipelines.training.options import parse_clip_weights

    specs = _loss_specs(cfg)
    requests = trainer_requests(cfg.generator, specs, default_losses=not cfg.losses,
                                encoder=cfg.encoder if inverting else None,
                                clips=loss_clip_models(specs, cfg.clip, DEFAULT_CLIP),
                                clip_weights=parse_clip_weights(cfg.clip_weights),
                                allow_random_clip=cfg.allow_random_clip)
    refining = inverting and cfg.refine_steps > 0
    if refining:  # II2S-lite's LPIPS, as the mtg_ref_lpips loss builds it
        requests.append(("loss", _lpips_spec(cfg), f"--refine-steps {cfg.refine_steps}:"))
    try:
        (ensure_weights or require_weights)(requests)
    except MissingWeightsError as exc:
        if LPIPS_VGG not in [m.name for m in exc.missing] or (cfg.losses and not refining):
            raise
        raise MissingWeightsError(exc.missing, exc.also + LPIPS_HINT) from None


def _check(cfg: MindTheGapConfig) -> None:
    from stylebridge.plugins.domains.mindthegap import PHASES

    load_image(cfg.reference)  # a missing or broken reference: said before any option
    check_train_numbers(steps=cfg.steps, batch=cfg.batch, lr=cfg.lr,
                        sample_every=cfg.sample_every, checkpoint_every=cfg.checkpoint_every)
    checks = [(cfg.refine_steps >= 0, f"--refine-steps {cfg.refine_steps}: must be >= 0"),
              (cfg.refine_lr > 0 and math.isfinite(cfg.refine_lr),
               f"--refine-lr {cfg.refine_lr}: must be a positive number"),
              (cfg.phase in PHASES, f"--phase {cfg.phase!r}: expected one of {', '.join(PHASES)}"),
              (cfg.mix_from is None or cfg.mix_from >= 0,
               f"--mix-from {cfg.mix_from}: must be a W+ row >= 0"),
              (cfg.encoder is not None or cfg.refine_steps > 0,
               "give --encoder NAME:CKPT to invert the reference, or --refine-steps N to "
               "optimise its w+ from the average w (II2S-lite)")]
    for ok, message in checks:
        if not ok:
            raise StylebridgeError(message)


def _refine_lpips(cfg: MindTheGapConfig, device: torch.device) -> Any:
    """The LPIPS-VGG network of the refinement (the ``mtg_ref_lpips`` loss's)."""
    from stylebridge.plugins.losses.mindthegap import ReferenceLPIPSLoss

    loss = ReferenceLPIPSLoss(backbone=cfg.lpips_backbone, allow_random=cfg.allow_random_lpips)
    return loss.model.to(device)


def invert_reference(cfg: MindTheGapConfig, generator: Generator, reference01: Tensor,
                     device: torch.device, progress: ProgressCallback | None = None,
                     random_parts: list[str] | None = None) -> tuple[Tensor, list[float]]:
    """``w_B`` ``[1, n_latent, style_dim]``: the encoder's W+ (or the average w), refined.
    ``random_parts`` gets ``"encoder"`` appended when the encoder holds random weights."""
    from stylebridge.pipelines.adapter import attach_encoder, check_inversion
    from stylebridge.registry.resolve import load_plugin

    if cfg.encoder is not None:
        encoder = load_plugin("encoder", cfg.encoder, device=device)
        if random_parts is not None:
            from stylebridge.pipelines.photos import is_random

            if is_random(encoder):
                random_parts.append("encoder")
        encoder = attach_encoder(encoder, generator).eval()  # check_generator, then bind
        with torch.no_grad():
            inversion = encoder.encode(reference01.to(device))
        # shapes, dtype and NaN/inf, named as every photo command names the encoder
        check_inversion(inversion, generator, encoder, int(reference01.shape[0]))
        w = inversion.w_plus.detach()
    else:
        w = generator.latent_avg.detach().reshape(1, 1, -1).expand(1, generator.n_latent, -1)
    history: list[float] = []
    if cfg.refine_steps:
        with random_seeded(cfg.seed):
            lpips = _refine_lpips(cfg, device)
        w, history = refine_latent(generator, w, reference01.to(device), steps=cfg.refine_steps,
                                   lr=cfg.refine_lr, lpips=lpips, progress=progress)
    return w.detach(), history


def _reference_refusal(then: Any, now: Mapping[str, Any]) -> str | None:
    """Why the saved inversion of the reference cannot be resumed (``None``: it can): the
    first of the reference's settings that differs, named as every resume refusal names it."""
    if not isinstance(then, Mapping):
        return f"holds no record of its reference and encoder; {START_OVER}"
    why = first_difference(moved_image_as_now(then, now), now)
    if why is None:
        return None
    key, was, is_now = why
    shown = option_label(f"target.{key}", MindTheGapTrainer.resume_labels)
    return (f"cannot resume with different settings: {then_and_now(shown, was, is_now)}; "
            f"give the interrupted run's options, or {START_OVER}")


def train_mindthegap(cfg: MindTheGapConfig, *, progress: ProgressCallback | None = None,
                     ensure_weights: WeightsCheck | None = None) -> MindTheGapOutcome:
    """Run ``train mindthegap`` (see the module doc); cheap checks first, then
    ``ensure_weights`` gets what the run loads by name: by default one error naming every
    official download it lacks (``--fetch`` downloads them)."""
    from stylebridge.pipelines import train_domain as td
    from stylebridge.pipelines.training.options import input_files, parse_clip_weights
    from stylebridge.plugins.domains.mindthegap import MindTheGap, default_mix_from, phase_layers
    from stylebridge.plugins.losses.clip import ClipGuide
    from stylebridge.registry.resolve import generator_path, load_generator

    check_progress(progress, "train_mindthegap")
    refuse_several_processes("train_mindthegap")  # torchrun: each process would write --out
    if cfg.tensorboard:  # before anything loads
        require_tensorboard()
    _check(cfg)
    out = Path(cfg.out)
    latent_path, png_path = reference_paths(out)
    state_path = check_run_out(out, resume=cfg.resume, force=cfg.force,
                               inputs=input_files(
                                   {"reference": cfg.reference,
                                    "--lpips-backbone": cfg.lpips_backbone},
                                   generator=cfg.generator, specs={"--encoder": cfg.encoder},
                                   clip_weights=cfg.clip_weights, losses=cfg.losses),
                               side_files=(latent_path, png_path),
                               samples=cfg.sample_every > 0)
    clip_weights = parse_clip_weights(cfg.clip_weights)
    clip_names = list(dict.fromkeys(cfg.clip or DEFAULT_CLIP))
    # a resumed run whose reference latent is written reads it: no encoder, no refinement
    _ensure_weights(cfg, not (cfg.resume and latent_path.is_file()), ensure_weights)
    device = resolve_device(cfg.device)
    gen_path, _ = generator_path(cfg.generator)
    generator = load_generator(str(gen_path), device)[0].eval().requires_grad_(False)
    reference01 = load_reference(Path(cfg.reference), generator.size)   # one-line ImageError
    loss_specs = _loss_specs(cfg)
    with random_seeded(cfg.seed):   # losses on random weights (tests) are the same every run
        terms = td.build_losses(loss_specs)
    # a loss that cannot train what --phase trains: refused before the inversion (a loss
    # reading a field this command never fills is named by the trainer's own check)
    fillable = BASE_FIELDS | CLIP_FIELDS | REFERENCE_FIELDS
    check_trainable([t for t in terms if t.module.required_fields() <= fillable],
                    trained_fields(phase_layers(cfg.phase, generator.n_style_layers)),
                    f"{MindTheGapTrainer.command} --phase {cfg.phase}")
    if not cfg.resume and state_path.is_file():
        state_path.unlink()   # a stale state of an earlier run must not be resumed later

    uses_clip = any("clip_guide" in t.module.required_fields() for t in terms)
    models = []
    if uses_clip:   # before the inversion: a missing CLIP model is a cheap one-line error
        models = td.build_clip_models(clip_names, clip_weights, allow_random=cfg.allow_random_clip,
                                      device=device, seed=cfg.seed)
        detail = td.random_clip_detail(models, clip_weights)
        if detail is not None:
            emit(progress, "notice", text=RANDOM_CLIP_NOTICE, detail=detail)
    target = {"image": str(cfg.reference), "image_sha256": file_sha256(Path(cfg.reference)),
              "encoder": cfg.encoder, "refine_steps": cfg.refine_steps, "refine_lr": cfg.refine_lr}
    refine_history: list[float] = []
    random_parts: list[str] = []   # the reference's encoder, when it holds random weights
    if cfg.resume and latent_path.is_file():
        header, tensors = load_checkpoint(latent_path, kind=LATENT_KIND)
        why = _reference_refusal(header.extra.get("target"), json_roundtrip(target))
        if why is not None:
            raise StylebridgeError(why, path=latent_path)
        w_ref = tensors.get("w_plus")
        shape = (1, generator.n_latent, generator.style_dim)
        parts = header.extra.get("random_parts", [])
        what = None
        if w_ref is None:
            what = "holds no w_plus"
        elif (tuple(w_ref.shape) != shape or not w_ref.is_floating_point()
              or not bool(torch.isfinite(w_ref).all())):
            what = (f"holds w_plus {list(w_ref.shape)} {str(w_ref.dtype).removeprefix('torch.')}"
                    f", not {list(shape)} finite floats")
        elif not isinstance(parts, list):
            what = "records random_parts that are not a list"
        if what is not None:
            raise StylebridgeError(f"damaged reference inversion: it {what}; {START_OVER}",
                                   path=latent_path)
        w_ref = w_ref.to(device)
        random_parts = [str(p) for p in parts]
    else:
        emit(progress, "status", text="inverting the reference")
        w_ref, refine_history = invert_reference(cfg, generator, reference01, device, progress,
                                                 random_parts=random_parts)
        extra: dict[str, Any] = {"target": target, "refine_history": refine_history}
        if random_parts:
            extra["random_parts"] = random_parts
        save_checkpoint(latent_path, {"w_plus": w_ref.cpu()}, kind=LATENT_KIND,
                        plugin="mindthegap", extra=extra)

    mix_from = default_mix_from(generator.n_latent) if cfg.mix_from is None else cfg.mix_from
    if mix_from >= generator.n_latent:
        raise StylebridgeError(f"--mix-from {mix_from}: the {generator.size}px generator has W+ "
                               f"rows 0..{generator.n_latent - 1}")
    method = MindTheGap.for_generator(
        generator, layers=phase_layers(cfg.phase, generator.n_style_layers), mix_from=mix_from)
    method.set_reference_latent(w_ref, mix=cfg.mix)   # upstream's inference mixing (rows 7:)
    method = method.to(device)
    settings = TrainSettings(steps=cfg.steps, batch=cfg.batch, lr=cfg.lr, betas=cfg.betas,
                             warmup_steps=0, mixing=0.0, seed=cfg.seed,
                             checkpoint_every=cfg.checkpoint_every,
                             sample_every=cfg.sample_every, sample_truncation=0.5)
    fingerprint = {
        "method": {"plugin": method.name, "config": method.config()},
        "generator_config": generator.config(), "generator_sha256": file_sha256(gen_path),
        "clip_weights": td.clip_weights_fingerprint(clip_names if uses_clip else [],
                                                    clip_weights),
        "target": target, "phase": cfg.phase, "losses": loss_specs,
        "clip": clip_names if uses_clip else [], "batch": cfg.batch, "lr": cfg.lr,
        "betas": list(cfg.betas), "seed": cfg.seed,
    }
    header_extra = {"target": target, "generator": str(gen_path), "phase": cfg.phase,
                    "generator_sha256": fingerprint["generator_sha256"],
                    "trainer": "stylebridge train mindthegap",
                    "reference_latent": latent_path.name, "reference_image": png_path.name,
                    "train_config": td.run_train_config(   # the run, from this header alone
                        cfg, settings, fingerprint, terms, gen_path, clip_weights,
                        mix_from=mix_from, reference_sha256=target["image_sha256"])}
    if cfg.random_weights:
        header_extra.update({"random_weights": True, "notes": [
            "RANDOM WEIGHTS: trained on untrained networks (tiny preset), not a real domain"]})
    guide = None
    reference = reference01.to(device) * 2.0 - 1.0
    if uses_clip:
        with torch.no_grad():
            source_rec, _ = render(generator, w_ref)
            v_source = [m.encode_images((source_rec + 1.0) / 2.0) for m in models]
        guide = ClipGuide.from_image(models, reference01.to(device), v_source,
                                     target=str(cfg.reference))
    emit(progress, "status", text="")
    trainer = MindTheGapTrainer(generator, method, terms, settings, reference=reference,
                                w_ref=w_ref, out=out, guide=guide, header_extra=header_extra,
                                fingerprint=fingerprint, device=device, phase=cfg.phase,
                                tensorboard=cfg.tensorboard)
    trainer.extra_random_parts = random_parts
    outcome = MindTheGapOutcome(out=out, steps=cfg.steps, step=0, reference_png=png_path,
                                reference_latent=latent_path, refine_history=refine_history,
                                random_clip=trainer.random_clip,
                                samples_dir=trainer.samples_dir)
    trainer.resume_and_train(outcome, resume=cfg.resume, progress=progress)
    if outcome.result is not None or not png_path.is_file():  # a run killed before it: drawn
        save_png(png_path, trainer.reference_strip(), grid=True)  # from the finished state
    return outcome


def train_tiny_mindthegap(generator: str | Path, reference: str | Path, out: str | Path, *,
                          encoder: str | None = None,
                          clip_weights: Mapping[str, str | Path] | None = None,
                          steps: int = 4, batch: int = 2, seed: int = 0,
                          device: str = "cpu") -> Path:
    """Train ``mindthegap`` for ``steps`` steps from ``reference`` on a small (e.g. the tiny
    preset's) generator and return the checkpoint path.

    ``encoder``: an encoder spec (``e4e:PATH``; default: 20 refinement steps from the average
    w instead); ``clip_weights``: ``{CLIP model name: weights file}`` (e.g. the tiny
    preset's ``clip_weights``; default: random CLIP models).  LPIPS runs on random weights
    when no VGG backbone is installed; the checkpoint's header says ``random_weights`` (a
    tiny-preset domain is never a real one)."""
    names = list(clip_weights) if clip_weights else ["ViT-B-32"]
    cfg = MindTheGapConfig(
        reference=Path(reference), generator=str(generator), out=Path(out), encoder=encoder,
        refine_steps=0 if encoder else 20, allow_random_lpips=True, steps=steps, batch=batch,
        clip=names, clip_weights=[f"{k}={v}" for k, v in (clip_weights or {}).items()],
        allow_random_clip=not clip_weights, sample_every=0, checkpoint_every=0, force=True,
        seed=seed, device=device, random_weights=True)
    return train_mindthegap(cfg).out


__all__ = ["DEFAULT_BATCH", "DEFAULT_BETAS", "DEFAULT_CLIP", "DEFAULT_LR", "DEFAULT_STEPS",
           "MindTheGapConfig", "MindTheGapOutcome", "MindTheGapTrainer", "invert_reference",
           "load_reference", "reference_paths", "refine_latent", "train_mindthegap",
           "train_tiny_mindthegap"]
