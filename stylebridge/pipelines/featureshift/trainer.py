"""FeatureShift: correct an FSE feature map for a domain-adapted image (thesis, "Improving the gap").

FSE (``features`` mode) reconstructs an image well by replacing generator activation
``K`` (5 = the second 16×16 conv, 512 channels at 1024 px) with its own feature ``F``,
but then a domain method that changes the styles barely changes the image.  e4e
latents adapt well but reconstruct poorly.  FeatureShift (the thesis' name for
StyleFeatureEditor's feature editor, trained for domains) takes ``F`` and the change
that the domain makes to the generator's layer-``K`` features of the *guiding*
encoder's latents ``w_E`` (e4e, or FSE latents-only)::

    Δ  = G^K(s(w_E)) − G^K(s_domain(w_E))        (DELTA_SIGN = "source_minus_domain")
    F' = FeatureShift(concat(F, Δ))               [B, 2C, H, W] → [B, C, H, W]
    image = G(s_domain(w_F), activation K := F')

The sign is the thesis' ``Δ = F_{w_E} − F_{w'_E}`` and StyleFeatureEditor's
``delta = orig − edited``; it is recorded in every checkpoint header
(``extra.delta_sign``) and in the dataset index.  ``Δ = 0`` means "no domain": the
network must then reproduce ``F`` (inversion loss).

**Network** (:class:`FeatureShift`): an iResNet of ``n_blocks`` (6) insightface
``IBasicBlock`` s (BN → Conv3×3 → BN → PReLU → Conv3×3 → BN, plus the identity, or a
1×1 conv + BN projection when the channel count changes; stride 1).  The thesis'
"each 2 blocks lower the channel number 1024 → 768 → 512" is read as three stages of
two blocks with widths ``2C``, ``hidden``, ``C`` (1024, 768, 512 officially), the first
block of a stage projecting from the previous width::

    blocks: 2C→2C, 2C→2C, 2C→hidden, hidden→hidden, hidden→C, C→C

(other ``n_blocks >= 3`` split the blocks into three near-equal stages).  ``residual``
(off by default, as in the thesis/SFE, which predict ``F'`` directly) adds ``F`` to the
output.  The block is the one of :mod:`stylebridge.plugins.nets.iresnet` (the FSE backbone).

**Plugin kind.**  FeatureShift is neither an encoder (it does not read images) nor a
domain method (it does not produce styles), so it is not registered in a plugin
table: the class lives here, its checkpoints have their own kind ``"featureshift"``
(:func:`save_featureshift` / :func:`load_featureshift`), and this module registers the
command ``featureshift build-dataset`` and the ``train featureshift`` target of the
``train`` command (see :mod:`stylebridge.pipelines.featureshift.dataset` for the dataset).  Inference:
:func:`apply_featureshift`.

**Training** (:func:`train_featureshift`, thesis losses and phases):

1. from the dataset: ``w_E`` (guide), the domain target ``G(s_d(w_E))`` and ``Δ``
   (stored, or computed on the fly from ``w_E``), the FSE inversion ``(w_F, F)`` of the
   e4e-inverted image ``G(w_E)``, and the FSE inversion of the real image;
2. *domain loss*: ``G(s_d(w_F), K := FeatureShift(F, Δ))`` vs the e4e domain inversion;
3. *inversion loss*: ``G(s(w_F^real), K := FeatureShift(F^real, 0))`` vs the real image,
   with the frozen StyleGAN2 discriminator's adversarial term switched on after N steps;
4. optional *domain-inversion loss*: the inference-path output
   ``G(s_d(w_F^real), K := FeatureShift(F^real, Δ))`` vs the real image (LPIPS 0.2 + ID 0.025);

``total = domain + inversion [+ domain-inversion]``; the first
``pretrain_inversion_steps`` (10 000) steps use the inversion loss only.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import random
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy
import torch
from rich.markup import escape
from torch import Tensor, nn

from stylebridge.cli.base import Command
from stylebridge.core.checkpoint import (
    check_state_dict,
    load_checkpoint,
    save_checkpoint,
)
from stylebridge.core.interfaces import DomainMethod, Loss, LossBatch
from stylebridge.errors import CheckpointError, StylebridgeError
from stylebridge.plugins.renderers.featureshift import (
    DELTA_FORMULA,
    DELTA_SIGN,
    KIND,
    PLUGIN,
    FeatureShift,
    apply_featureshift,
    domain_delta,
    domain_quantities,
    load_featureshift,
    save_featureshift,
)
from stylebridge.registry import hookimpl

if TYPE_CHECKING:
    from rich.console import Console

    from stylebridge.core.stylegan2.generator import Generator

STATE_KIND = "featureshift_state"
THESIS_LOSSES = ("mse:1.0", "lpips:0.8", "id:0.1")
#: fp16 training stops after this many consecutive steps skipped for NaN/Inf gradients.
MAX_SKIPPED_STEPS = 50
THESIS_DOMAIN_INVERSION_LOSSES = ("lpips:0.2", "id:0.025")


class TrainingDivergedError(StylebridgeError):
    """The loss or the gradients became NaN/Inf; the last good checkpoint is kept."""


# ---------------------------------------------------------------------------------------------
# Domain deltas, targets and synthesis


def images_to_uint8(images: Tensor, size: int) -> Tensor:
    """``[B, 3, H, W]`` in ``[-1, 1]`` → ``uint8 [B, 3, size, size]`` (resized, rounded)."""
    from stylebridge.plugins.losses.recon import resize_images

    x = resize_images(images.float(), size)
    return ((x + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


def uint8_to_images(images: Tensor) -> Tensor:
    """``uint8 [B, 3, H, W]`` → float in ``[-1, 1]``."""
    return images.float() / 127.5 - 1.0


def domain_styles(generator: Generator, methods: Sequence[DomainMethod], w_plus: Tensor,
                  domain: Tensor, offset_scale: Sequence[float] | Tensor | None = None
                  ) -> list[Tensor]:
    """The styles of ``w_plus`` ``[B, L, D]`` where sample ``b`` goes through ``methods[domain[b]]``."""
    out: list[Tensor] | None = None
    for d in sorted(set(domain.tolist())):
        idx = (domain == d).nonzero().squeeze(1).to(w_plus.device)
        styles = methods[d].styles(generator, w_plus[idx], offset_scale)
        if out is None:
            out = [s.new_empty((w_plus.shape[0], *s.shape[1:])) for s in styles]
        for o, s in zip(out, styles, strict=True):
            o[idx] = s
    assert out is not None
    return out


def _synthesis(generator: Generator, styles: Sequence[Tensor], layer: int, feature: Tensor,
               keys: Tensor, methods: Sequence[DomainMethod]) -> Tensor:
    """Render a batch whose sample ``b`` belongs to domain ``keys[b]`` (``-1`` = no domain).

    One generator pass, unless a domain changes conv weights: then one pass per domain.
    """
    used = sorted(set(keys.tolist()))
    if not any(d >= 0 and methods[d].has_weight_offsets() for d in used):
        return generator.synthesis(styles, features={layer: feature}, randomize_noise=False)
    parts, order = [], []
    for d in used:
        idx = (keys == d).nonzero().squeeze(1).to(feature.device)
        deltas = methods[d].weight_deltas(generator) if d >= 0 else None
        parts.append(generator.synthesis([s[idx] for s in styles], features={layer: feature[idx]},
                                         randomize_noise=False, weight_deltas=deltas))
        order.append(idx)
    perm = torch.cat(order)
    return torch.cat(parts)[torch.argsort(perm)]


# ---------------------------------------------------------------------------------------------
# Losses chosen by name


@dataclass
class LossTerm:
    """One weighted loss of a loss set; ``after``: active from that step on."""

    key: str
    name: str
    weight: float
    after: int
    module: Loss
    options: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "weight": self.weight, "after": self.after,
                "options": self.options}


def build_loss_terms(specs: Sequence[str], *, registry: Any, label: str,
                     cache: dict[tuple[str, str], Loss], device: torch.device) -> list[LossTerm]:
    """``["mse:1.0", "lpips:0.8:backbone=P", ...]`` → terms; equal specs share one module.

    The option ``after=N`` is reserved: the term is active from step N on.
    """
    from stylebridge.core.options import coerce_option
    from stylebridge.registry.spec import parse_loss_spec

    terms: list[LossTerm] = []
    seen: dict[str, int] = {}
    for text in specs:
        spec = parse_loss_spec(text)
        options = {k: coerce_option(v) for k, v in spec.options.items()}
        after = options.pop("after", 0)
        if not isinstance(after, int) or after < 0:
            option = "--loss" if label == "domain" else f"--{label}-loss"
            raise StylebridgeError(f"{option} {text!r}: after={after!r} must be a step >= 0")
        cache_key = (spec.name, json.dumps(options, sort_keys=True, default=str))
        module = cache.get(cache_key)
        if module is None:
            try:
                module = registry.create("loss", spec.name, **options)
            except (TypeError, ValueError) as exc:
                raise StylebridgeError(f"loss {text!r}: {' '.join(str(exc).split())}") from None
            module = module.to(device).eval().requires_grad_(False)
            cache[cache_key] = module
        n = seen.get(spec.name, 0)
        seen[spec.name] = n + 1
        key = spec.name if n == 0 else f"{spec.name}#{n + 1}"
        terms.append(LossTerm(key, spec.name, spec.weight, after, module, options))
    return terms


def evaluate_terms(terms: Sequence[LossTerm], batch: LossBatch, step: int, label: str,
                   values: dict[str, float]) -> Tensor | None:
    """``Σ weight · loss`` over the active terms; unweighted values go to ``values[label/key]``."""
    total: Tensor | None = None
    for term in terms:
        if term.weight == 0 or step < term.after:
            continue
        value = term.module(batch)
        if torch.is_grad_enabled() and not value.requires_grad:
            raise StylebridgeError(
                f"{label} loss {term.name!r} does not depend on FeatureShift's output (its value "
                "has no gradient): FeatureShift changes only `reconstructions` and `features` "
                "of the loss batch" + ("; use corr:WEIGHT:on=features" if term.name == "corr"
                                       else ""))
        values[f"{label}/{term.key}"] = float(value.detach())
        total = term.weight * value if total is None else total + term.weight * value
    return total


# ---------------------------------------------------------------------------------------------
# Training


@dataclass
class TrainConfig:
    """Everything a FeatureShift run depends on (JSON; stored in the training state)."""

    data: str
    generator: str
    out: str
    losses: list[str] = field(default_factory=lambda: list(THESIS_LOSSES))
    inversion_losses: list[str] | None = None     # None: the same as ``losses``
    domain_inversion_losses: list[str] = field(default_factory=list)
    adversarial: float = 0.0                      # inversion-loss weight of `adversarial`
    adversarial_after: int = 0
    discriminator: str | None = None              # default: the generator checkpoint
    pretrain_inversion_steps: int = 10_000
    steps: int = 100_000
    batch_size: int = 4                           # per process
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
    device: str = "auto"
    resume: bool = False

    # fields that may change when a run is resumed
    RESUMABLE_CHANGES = ("steps", "checkpoint_every", "log_every", "sample_every", "n_samples",
                         "device", "resume", "out", "data", "generator", "discriminator")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["betas"] = list(self.betas)
        return data

    def validate(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise StylebridgeError("--steps and --batch must be >= 1")
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
        for name in ("checkpoint_every", "log_every", "sample_every", "pretrain_inversion_steps",
                     "adversarial_after", "warmup_steps"):
            if getattr(self, name) < 0:
                raise StylebridgeError(f"{option_name(name)} must be >= 0")
        for name in ("adversarial", "clip_grad", "weight_decay"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise StylebridgeError(f"{option_name(name)} {value}: must be a number >= 0")
        if self.hidden is not None and self.hidden < 1:
            raise StylebridgeError(f"--hidden {self.hidden}: must be >= 1")
        if self.n_blocks < 1:
            raise StylebridgeError(f"--n-blocks {self.n_blocks}: must be >= 1")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise StylebridgeError(f"--betas {','.join(map(str, self.betas))}: expected two "
                                   "numbers in [0, 1)")


#: TrainConfig fields whose command-line option is not ``--`` + the field name.
_OPTION_NAMES = {"batch_size": "--batch", "losses": "--loss", "inversion_losses": "--inversion-loss",
                 "domain_inversion_losses": "--domain-inversion-loss"}


def option_name(field_name: str) -> str:
    """The ``train featureshift`` option of a :class:`TrainConfig` field."""
    return _OPTION_NAMES.get(field_name, "--" + field_name.replace("_", "-"))


@dataclass
class TrainResult:
    """What a run ended with."""

    step: int
    model_path: Path
    state_path: Path
    log_path: Path
    history: list[dict[str, Any]]


@dataclass
class _Dist:
    world: int = 1
    rank: int = 0
    local_rank: int = 0
    created: bool = False
    backend: str | None = None   # None: a plain single process (no process group)

    @property
    def main(self) -> bool:
        return self.rank == 0


def _launched_distributed() -> bool:
    """Whether a launcher (torchrun, or a test setting the same variables) asked for DDP.

    ``torchrun`` always sets ``RANK``, ``WORLD_SIZE`` and ``MASTER_ADDR``; with them a run
    uses DistributedDataParallel even with one process (``--nproc_per_node 1``), so the
    multi-GPU code path can be checked on one GPU.
    """
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR"))


def _amp_name(dtype: torch.dtype | None) -> str:
    return {None: "off", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def _setup_distributed(device_name: str) -> tuple[_Dist, torch.device]:
    """Single process, or DDP (NCCL on CUDA, gloo on the CPU) when launched by torchrun."""
    import torch.distributed as dist

    from stylebridge.core.device import resolve_device

    if not _launched_distributed():
        return _Dist(), resolve_device(device_name)
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    device = resolve_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    created = False
    if not dist.is_initialized():
        if device.type == "cuda":  # bound to this rank's GPU (barriers need not guess it)
            dist.init_process_group("nccl", device_id=device)
        else:
            dist.init_process_group("gloo")
        created = True
    return _Dist(world=dist.get_world_size(), rank=dist.get_rank(), local_rank=local,
                 created=created, backend=str(dist.get_backend())), device


def _all_min(value: float, dist_info: _Dist, device: torch.device) -> float:
    if dist_info.world == 1:
        return value
    import torch.distributed as dist

    t = torch.tensor([value], device=device, dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return float(t.item())


def _lr_lambda(cfg: TrainConfig) -> Callable[[int], float]:
    def fn(step: int) -> float:
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.scheduler == "cosine":
            span = max(1, cfg.steps - cfg.warmup_steps)
            t = min(1.0, (step - cfg.warmup_steps) / span)
            return 0.5 * (1.0 + math.cos(math.pi * t))
        return 1.0
    return fn


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, Tensor):
        return obj.item() if obj.numel() == 1 else obj.tolist()
    if isinstance(obj, float | int | str | bool) or obj is None:
        return obj
    return str(obj)


class FeatureShiftTrainer:
    """One training run (see :func:`train_featureshift`)."""

    def __init__(self, cfg: TrainConfig, *, registry: Any = None, console: Console | None = None,
                 on_step: Callable[[FeatureShiftTrainer], None] | None = None) -> None:
        from stylebridge.registry import get_registry

        cfg.validate()
        self.cfg = cfg
        self.registry = registry or get_registry()
        self.console = console
        self.on_step = on_step
        self.out = Path(cfg.out)
        self.state_path = self.out / "state.safetensors"
        self.model_path = self.out / "model.safetensors"
        self.log_path = self.out / "log.jsonl"
        self.history: list[dict[str, Any]] = []
        self.step = 0
        self.epoch = 0
        self.offset = 0
        self.last_saved = -1
        self.skipped_in_a_row = 0  # consecutive steps the fp16 grad scaler skipped
        self.skipped_since_log = 0  # steps it skipped since the last log record
        self.scheduler_stepped = False  # in this process

    # -- set-up ----------------------------------------------------------------------------------
    def setup(self) -> None:
        from stylebridge.core.stylegan2.checkpoint import load_stylegan2
        from stylebridge.pipelines.featureshift.dataset import (
            FeatureShiftDataset,
            SamplePlan,
            _state_digest,
        )
        from stylebridge.registry.resolve import load_plugin

        cfg = self.cfg
        self.dist, self.device = _setup_distributed(cfg.device)
        if self.state_path.exists() and not cfg.resume:
            raise StylebridgeError("already holds a training state; pass --resume to continue it "
                                   "or choose a new --out", path=self.out)
        self.data = FeatureShiftDataset(cfg.data)
        self.layer = self.data.layer
        gen = load_stylegan2(cfg.generator, device=self.device).generator
        want = self.data.settings.get("generator", {}).get("digest")
        if want is not None and _state_digest(gen) != want:
            raise StylebridgeError(f"is not the generator the dataset {cfg.data} was built with",
                                   path=cfg.generator)
        self.generator = gen.eval().requires_grad_(False)
        self.methods = [load_plugin("domain_method", str(self.data.domain_path(d)), device=self.device,
                                    registry=self.registry).requires_grad_(False)
                        for d in range(self.data.n_domains)]
        self.plan = SamplePlan(self.data.shard_rows, self.data.n_domains, seed=cfg.seed)

        # the network
        channels = int(self.data.feature_shape[0])
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)  # saved and restored with the run: seed them too
        numpy.random.seed(cfg.seed)
        self.model = FeatureShift(feature_channels=channels,
                                  hidden=cfg.hidden or (3 * channels) // 2,
                                  n_blocks=cfg.n_blocks, layer=self.layer,
                                  residual=cfg.residual).to(self.device)
        if cfg.init:
            init, _ = load_featureshift(cfg.init, device=self.device)
            if init.config() != self.model.config():
                raise StylebridgeError(f"--init has config {init.config()}, this run needs "
                                       f"{self.model.config()}", path=cfg.init)
            self.model.load_state_dict(init.state_dict())
        self.model.train()
        self.ema = (copy.deepcopy(self.model).eval().requires_grad_(False)
                    if cfg.ema > 0 else None)

        # losses
        cache: dict[tuple[str, str], Loss] = {}
        inversion = list(cfg.losses if cfg.inversion_losses is None else cfg.inversion_losses)
        if cfg.adversarial > 0:
            disc = cfg.discriminator or cfg.generator
            inversion.append(f"adversarial:{cfg.adversarial}:after={cfg.adversarial_after},"
                             f"discriminator={disc}")
        kw = {"registry": self.registry, "cache": cache, "device": self.device}
        self.loss_sets = {
            "domain": build_loss_terms(cfg.losses, label="domain", **kw),
            "inversion": build_loss_terms(inversion, label="inversion", **kw),
            "domain_inversion": build_loss_terms(cfg.domain_inversion_losses,
                                                 label="domain-inversion", **kw),
        }
        if not self.loss_sets["inversion"]:
            raise StylebridgeError("the inversion loss set is empty (give --inversion-loss)")
        if cfg.steps > cfg.pretrain_inversion_steps and not self.loss_sets["domain"]:
            raise StylebridgeError("the domain loss set is empty (give --loss)")

        # optimisation
        params = list(self.model.parameters())
        opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        self.optimizer = opt_cls(params, lr=cfg.lr, betas=tuple(cfg.betas),
                                 weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _lr_lambda(cfg))
        amp = cfg.amp
        if self.device.type != "cuda":
            amp = "off"
        elif amp == "auto":
            amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        self.amp_dtype = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.ddp: nn.Module = self.model
        if self.dist.backend is not None:
            from torch.nn.parallel import DistributedDataParallel

            self.ddp = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if cfg.resume and self.state_path.exists():
            self._load_state()
        elif cfg.resume and self.console is not None and self.dist.main:
            self.console.print(f"no training state in {escape(str(self.out))}; starting a new run")

    # -- one step --------------------------------------------------------------------------------
    def _next_batch(self) -> dict[str, Tensor]:
        size = self.cfg.batch_size * self.dist.world
        entries, self.epoch, self.offset = self.plan.batch(self.epoch, self.offset, size)
        b = self.cfg.batch_size
        mine = entries[self.dist.rank * b:(self.dist.rank + 1) * b]
        data = self.data.read(mine)
        return {k: v.to(self.device) for k, v in data.items()}

    def phase(self, step: int | None = None) -> str:
        step = self.step if step is None else step
        return "inversion" if step < self.cfg.pretrain_inversion_steps else "joint"

    @torch.no_grad()
    def _domain_inputs(self, data: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """``(Δ, target)`` of the batch: stored, or computed from ``w_guide``."""
        if "delta" in data and "target" in data:
            return data["delta"], uint8_to_images(data["target"])
        deltas, targets, order = [], [], []
        for d in sorted(set(data["domain"].tolist())):
            idx = (data["domain"] == d).nonzero().squeeze(1)
            delta, target = domain_quantities(self.generator, self.methods[d],
                                              data["w_guide"][idx], self.layer,
                                              image_size=self.data.image_size)
            assert target is not None
            deltas.append(delta)
            # the stored targets are uint8: quantise the same way
            targets.append(uint8_to_images(images_to_uint8(target, self.data.image_size)))
            order.append(idx)
        inverse = torch.argsort(torch.cat(order))
        return torch.cat(deltas)[inverse], torch.cat(targets)[inverse]

    def _compose(self, data: dict[str, Tensor], *, domain: bool, adapted: bool
                 ) -> dict[str, Any]:
        """The stacked inputs of one pass: inversion rows, then domain rows, then adapted rows.

        Inversion: real image's FSE feature with Δ = 0 and its source styles; domain: the
        feature of the e4e-inverted image with Δ and the domain styles of its w; adapted
        (inference path): the real image's feature with Δ and the domain styles of its w.
        """
        gen, b = self.generator, data["w_real"].shape[0]
        out: dict[str, Any] = {"src_real": gen.styles(data["w_real"])}
        feats, deltas = [data["f_real"]], [torch.zeros_like(data["f_real"])]
        styles, keys = [out["src_real"]], [torch.full((b,), -1, device=self.device)]
        if domain:
            out["delta"], out["target"] = self._domain_inputs(data)
            out["dom_inv"] = domain_styles(gen, self.methods, data["w_inv"], data["domain"])
            out["src_inv"] = gen.styles(data["w_inv"])
            feats.append(data["f_inv"])
            deltas.append(out["delta"])
            styles.append(out["dom_inv"])
            keys.append(data["domain"])
        if domain and adapted:
            out["dom_real"] = domain_styles(gen, self.methods, data["w_real"], data["domain"])
            feats.append(data["f_real"])
            deltas.append(out["delta"])
            styles.append(out["dom_real"])
            keys.append(data["domain"])
        out["features"], out["deltas"] = torch.cat(feats), torch.cat(deltas)
        out["styles"] = [torch.cat(parts) for parts in zip(*styles, strict=True)]
        out["keys"] = torch.cat(keys)
        return out

    def _render(self, model: nn.Module, parts: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """FeatureShift on the stacked features, then one generator pass → (images, F')."""
        autocast = (torch.autocast(self.device.type, dtype=self.amp_dtype)
                    if self.amp_dtype is not None else contextlib.nullcontext())
        with autocast:
            shifted = model(parts["features"], parts["deltas"])
            images = _synthesis(self.generator, parts["styles"], self.layer, shifted,
                                parts["keys"], self.methods)
        return images.float(), shifted.float()

    def _forward(self, data: dict[str, Tensor], step: int
                 ) -> tuple[Tensor | None, dict[str, float]]:
        """Loss of one batch ``(total, unweighted values)``: one FeatureShift and one generator pass."""
        b = data["w_real"].shape[0]
        joint = self.phase(step) == "joint"
        use_dinv = joint and bool(self.loss_sets["domain_inversion"])
        with torch.no_grad():
            parts = self._compose(data, domain=joint, adapted=use_dinv)
        images, shifted = self._render(self.ddp, parts)
        real = uint8_to_images(data["image"])
        values: dict[str, float] = {}
        totals: list[Tensor | None] = [evaluate_terms(self.loss_sets["inversion"], LossBatch(
            images=real, reconstructions=images[:b], latents=data["w_real"],
            styles=parts["src_real"], source_styles=parts["src_real"], features=shifted[:b],
            target_features=data["f_real"], extras={"step": step, "phase": "inversion"}),
            step, "inversion", values)]
        if joint:
            extras = {"step": step, "delta": parts["delta"], "domain": data["domain"]}
            totals.append(evaluate_terms(self.loss_sets["domain"], LossBatch(
                images=parts["target"], reconstructions=images[b:2 * b], latents=data["w_inv"],
                styles=parts["dom_inv"], source_styles=parts["src_inv"],
                features=shifted[b:2 * b], target_features=data["f_inv"],
                extras={**extras, "phase": "domain"}), step, "domain", values))
        if use_dinv:
            totals.append(evaluate_terms(self.loss_sets["domain_inversion"], LossBatch(
                images=real, reconstructions=images[2 * b:], latents=data["w_real"],
                styles=parts["dom_real"], source_styles=parts["src_real"],
                features=shifted[2 * b:], target_features=data["f_real"],
                extras={**extras, "phase": "domain_inversion"}), step, "domain-inversion", values))
        active = [t for t in totals if t is not None]
        return (torch.stack(active).sum() if active else None), values

    def _train_step(self) -> dict[str, Any]:
        cfg, step = self.cfg, self.step
        data = self._next_batch()
        self.optimizer.zero_grad(set_to_none=True)
        total, values = self._forward(data, step)
        if total is None:
            raise StylebridgeError(f"no loss is active at step {step} (all weights are 0?)")
        finite = _all_min(float(torch.isfinite(total.detach()).all()), self.dist, self.device)
        if finite < 1.0:
            bad = [k for k, v in values.items() if not math.isfinite(v)]
            self._diverged(step, f"the loss is NaN/Inf ({', '.join(bad) or 'total'})")
        self.scaler.scale(total).backward()
        self.scaler.unscale_(self.optimizer)
        max_norm = cfg.clip_grad if cfg.clip_grad > 0 else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm))
        if not math.isfinite(grad_norm) and not self.scaler.is_enabled():
            self._diverged(step, "the gradients are NaN/Inf")
        lr = float(self.optimizer.param_groups[0]["lr"])
        scale = self.scaler.get_scale() if self.scaler.is_enabled() else None
        self.scaler.step(self.optimizer)
        self.scaler.update()
        skipped = scale is not None and self.scaler.get_scale() < scale
        if scale is not None:  # fp16: the scaler skips steps with NaN/Inf gradients
            self.skipped_in_a_row = self.skipped_in_a_row + 1 if skipped else 0
            self.skipped_since_log += int(skipped)
            if self.skipped_in_a_row >= MAX_SKIPPED_STEPS:
                self._diverged(step, f"the gradients were NaN/Inf {MAX_SKIPPED_STEPS} steps in a "
                                     "row (fp16 loss scaling did not recover; try --amp bf16)")
        if self.phase(step) == "inversion":
            # Δ = 0 in this phase: keep the input BatchNorm's Δ statistics neutral, so a
            # checkpoint or sample grid of this phase treats a real Δ sensibly in eval mode
            self.model.reset_delta_input_stats()
        if self.scheduler_stepped:
            self.scheduler.step()
        else:  # the learning rate follows the step count, skipped fp16 steps included (phases
            # and resume count steps too); torch warns on its first call if that step was
            # skipped.  Only the first call: a filter resets Python's once-per-run warnings
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler")
                self.scheduler.step()
            self.scheduler_stepped = True
        if self.ema is not None:
            with torch.no_grad():
                for pe, p in zip(self.ema.parameters(), self.model.parameters(), strict=True):
                    pe.lerp_(p, 1.0 - cfg.ema)
                for be, bm in zip(self.ema.buffers(), self.model.buffers(), strict=True):
                    be.copy_(bm)
        self.step += 1
        return {"step": self.step, "phase": self.phase(step), "total": float(total.detach()),
                **values, "grad_norm": grad_norm, "lr": lr,
                **({"skipped_steps": self.skipped_since_log} if scale is not None else {})}

    def _mean_over_ranks(self, record: dict[str, Any]) -> dict[str, Any]:
        """Under DDP, the loss values of a log record averaged over the processes (every
        rank calls this; a loss of a whole global batch, not of rank 0's share)."""
        if self.dist.world == 1:
            return record
        import torch.distributed as dist

        keys = [k for k, v in record.items() if (k == "total" or "/" in k)
                and isinstance(v, float)]
        t = torch.tensor([record[k] for k in keys], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return {**record, **{k: float(v) / self.dist.world for k, v in zip(keys, t.tolist(),
                                                                           strict=True)}}

    def _diverged(self, step: int, what: str) -> None:
        """Stop at update ``step + 1`` (``step`` updates were done, as the log counts)."""
        where = (f"the last checkpoint, written before this, is {self.state_path} (step "
                 f"{self.last_saved}; resume from it with other settings, e.g. a lower --lr)"
                 if self.last_saved >= 0 else "no checkpoint was written yet")
        self._log({"event": "diverged", "step": step, "reason": what})
        raise TrainingDivergedError(f"training stopped at step {step + 1} (after {step} "
                                    f"completed): {what}; {where}")

    # -- checkpoints -----------------------------------------------------------------------------
    def _model_extra(self) -> dict[str, Any]:
        s = self.data.settings
        return {
            "step": self.step,
            "ema": self.cfg.ema or None,
            "guiding_encoder": {"name": s["guide"]["name"], "config": s["guide"]["config"]},
            "encoder": {"name": s["encoder"]["name"], "config": s["encoder"]["config"]},
            "generator": s["generator"]["config"],
            "domains": [d["name"] for d in self.data.domains],
            "sources": self.data.index.get("sources", {}),
            "dataset": str(self.cfg.data),
        }

    def save(self) -> None:
        """Write the training state and ``model.safetensors`` (rank 0, atomically)."""
        if not self.dist.main:
            return
        import numpy as np

        if not all(bool(torch.isfinite(p).all()) for p in self.model.parameters()):
            self._diverged(self.step - 1, "the weights became NaN/Inf (not saved)")
        tensors: dict[str, Tensor] = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        if self.ema is not None:
            tensors.update({f"ema.{k}": v for k, v in self.ema.state_dict().items()})
        opt = self.optimizer.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for pid, state in opt["state"].items():
            for key, value in state.items():
                if isinstance(value, Tensor):
                    tensors[f"optim.{pid}.{key}"] = value
                else:
                    scalars.setdefault(str(pid), {})[key] = value
        tensors["rng.torch"] = torch.get_rng_state()
        if torch.cuda.is_available() and self.device.type == "cuda":
            for i, s in enumerate(torch.cuda.get_rng_state_all()):
                tensors[f"rng.cuda.{i}"] = s
        np_state = np.random.get_state()
        tensors["rng.numpy"] = torch.from_numpy(np.asarray(np_state[1], dtype=np.int64))
        py_state = random.getstate()
        extra = {
            "step": self.step,
            "cursor": {"epoch": self.epoch, "offset": self.offset},
            "param_groups": _json_safe(opt["param_groups"]),
            "optim_scalars": _json_safe(scalars),
            "scheduler": _json_safe(self.scheduler.state_dict()),
            "scaler": _json_safe(self.scaler.state_dict()),
            "rng_python": [py_state[0], list(py_state[1]), py_state[2]],
            "rng_numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
            "train_config": self.cfg.to_json(),
            "amp_effective": _amp_name(self.amp_dtype),
            "skipped_in_a_row": self.skipped_in_a_row,
            "world_size": self.dist.world,
            "dataset": self.data.identity(),
        }
        save_checkpoint(self.state_path, tensors, kind=STATE_KIND, plugin=PLUGIN,
                        config=self.model.config(), extra=extra)
        save_featureshift(self.model_path, self.ema if self.ema is not None else self.model,
                          extra=self._model_extra())
        self.last_saved = self.step

    def _load_state(self) -> None:
        import numpy as np

        header, tensors = load_checkpoint(self.state_path, kind=STATE_KIND, plugin=PLUGIN,
                                          device="cpu")
        extra = header.extra
        old = extra.get("train_config", {})
        now = self.cfg.to_json()
        diff = [k for k in now if k not in TrainConfig.RESUMABLE_CHANGES and old.get(k) != now[k]]
        if "amp" in diff and extra.get("amp_effective") == _amp_name(self.amp_dtype):
            diff.remove("amp")  # e.g. auto vs off on the CPU: the same computation
        if diff:
            names = ", ".join(sorted(option_name(k) for k in diff))
            raise StylebridgeError(f"was written with different settings ({names}); resume with "
                                   "the same ones or start a new --out", path=self.state_path)
        if "amp" not in diff and extra.get("amp_effective") not in (None, _amp_name(self.amp_dtype)):
            raise StylebridgeError(f"was trained with --amp {extra['amp_effective']}, this run "
                                   f"would use {_amp_name(self.amp_dtype)} (another device?); "
                                   "resume where it was trained", path=self.state_path)
        world = int(extra.get("world_size", 1))
        if world != self.dist.world:
            raise StylebridgeError(f"was trained by {world} process(es), this run has "
                                   f"{self.dist.world}: the global batch and the data order would "
                                   "change; resume with the same torchrun --nproc_per_node",
                                   path=self.state_path)
        dataset = extra.get("dataset")
        if dataset is not None and dataset != self.data.identity():
            raise StylebridgeError(f"--data {self.cfg.data} is not the dataset this run was trained "
                                   "on (other images, domains or shard layout); a moved copy of "
                                   "the same dataset is fine", path=self.state_path)
        if header.config != self.model.config():
            raise CheckpointError(f"holds a FeatureShift {header.config}, expected "
                                  f"{self.model.config()}", path=self.state_path)
        model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        check_state_dict(self.state_path, {k: v.shape for k, v in self.model.state_dict().items()},
                         model_state, what="FeatureShift state")
        self.model.load_state_dict(model_state)
        if self.ema is not None:
            ema_state = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}
            self.ema.load_state_dict(ema_state if ema_state else model_state)
        state: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, pid, name = key.split(".", 2)
                state.setdefault(int(pid), {})[name] = value
        for pid, items in extra.get("optim_scalars", {}).items():
            state.setdefault(int(pid), {}).update(items)
        groups = copy.deepcopy(extra["param_groups"])
        for group in groups:
            if "betas" in group:
                group["betas"] = tuple(group["betas"])
        self.optimizer.load_state_dict({"state": state, "param_groups": groups})
        self.scheduler.load_state_dict(extra["scheduler"])
        if extra.get("scaler"):
            self.scaler.load_state_dict(extra["scaler"])
        torch.set_rng_state(tensors["rng.torch"])
        cuda_states = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
        if cuda_states and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(cuda_states)
        name, pos, has_gauss, cached = extra["rng_numpy"]
        np.random.set_state((name, tensors["rng.numpy"].numpy().astype(np.uint32), pos,
                             has_gauss, cached))
        version, internal, gauss = extra["rng_python"]
        random.setstate((version, tuple(internal), gauss))
        self.step = int(extra["step"])
        self.epoch = int(extra["cursor"]["epoch"])
        self.offset = int(extra["cursor"]["offset"])
        self.last_saved = self.step
        self.skipped_in_a_row = int(extra.get("skipped_in_a_row", 0))
        self._trim_log(self.step)

    def _trim_log(self, step: int) -> None:
        """Drop log records of steps after ``step`` (written after the checkpoint a resumed
        run continues from, and about to be written again)."""
        if not self.dist.main or not self.log_path.is_file():
            return
        from stylebridge.core.io import atomic_path

        keep = []
        for line in self.log_path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by the kill
            if int(record.get("step", 0)) <= step:
                keep.append(line)
        with atomic_path(self.log_path) as tmp:
            tmp.write_text("".join(line + "\n" for line in keep), encoding="utf-8")

    # -- logs and samples ------------------------------------------------------------------------
    def _log(self, record: dict[str, Any]) -> None:
        if not self.dist.main:
            return
        record = {"time": round(time.time(), 3), **_json_safe(record)}
        self.history.append(record)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # an append-only JSON-lines log: a line cut short (full disk, kill) is ended first so
        # the next record stays readable
        torn = False
        if self.log_path.is_file() and self.log_path.stat().st_size:
            with open(self.log_path, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                torn = fh.read(1) != b"\n"
        with open(self.log_path, "a", encoding="utf-8") as fh:
            fh.write(("\n" if torn else "") + json.dumps(record) + "\n")

    @torch.no_grad()
    def write_samples(self) -> Path | None:
        """``OUT/samples/step_N.png``; one row per sample: real | inversion (Δ = 0) |
        e4e domain target | FeatureShift on the e4e-inverted image | FeatureShift on the real
        image (the inference path).  Eval mode (EMA weights when on); changes no state."""
        if not self.dist.main or self.cfg.n_samples < 1:
            return None
        from stylebridge.core.images import make_grid, save_png
        from stylebridge.plugins.losses.recon import resize_images

        n = min(self.cfg.n_samples, len(self.data))
        entries, j, row = [], 0, 0
        while len(entries) < n:
            if row >= self.data.shard_rows[j]:
                j, row = j + 1, 0
                continue
            entries.append([j, row, len(entries) % self.data.n_domains])
            row += 1
        data = {k: v.to(self.device) for k, v in self.data.read(torch.tensor(entries)).items()}
        model = self.ema if self.ema is not None else self.model
        was_training = model.training
        model.eval()
        try:
            parts = self._compose(data, domain=True, adapted=True)
            images, _ = self._render(model, parts)
        finally:
            model.train(was_training)
        size = self.data.image_size
        columns = [uint8_to_images(data["image"]), images[:n], parts["target"],
                   images[n:2 * n], images[2 * n:]]
        tiles = [((resize_images(c[i:i + 1].float(), size) + 1) / 2).clamp(0, 1)[0]
                 for i in range(n) for c in columns]
        path = self.out / "samples" / f"step_{self.step:07d}.png"
        save_png(path, make_grid(torch.stack(tiles).cpu(), ncol=len(columns)))
        return path

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        self._log({"event": "start", "step": self.step, "resumed": self.step > 0,
                   "world_size": self.dist.world, "backend": self.dist.backend,
                   "device": str(self.device),
                   "losses": {k: [t.describe() for t in v] for k, v in self.loss_sets.items()},
                   "config": cfg.to_json(), "model": self.model.config(),
                   "delta_sign": DELTA_SIGN, "layer": self.layer})
        show = self.console is not None and self.dist.main
        progress = Progress(TextColumn("[bold]featureshift"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[info]}"), TimeRemainingColumn(),
                            console=self.console, disable=not show, transient=False)
        t0, s0 = time.perf_counter(), self.step
        try:
            with progress:
                task = progress.add_task("train", total=cfg.steps, completed=self.step, info="")
                while self.step < cfg.steps:
                    record = self._train_step()
                    if cfg.log_every and (self.step % cfg.log_every == 0 or self.step == cfg.steps):
                        dt = time.perf_counter() - t0
                        record["steps_per_s"] = (self.step - s0) / dt if dt > 0 else None
                        t0, s0 = time.perf_counter(), self.step
                        self._log(self._mean_over_ranks(record))
                        self.skipped_since_log = 0
                    progress.update(task, completed=self.step,
                                    info=f"{record['phase']} loss {record['total']:.4f}")
                    if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                        self.save()
                    if cfg.sample_every and self.step % cfg.sample_every == 0:
                        self.write_samples()
                    if self.on_step is not None:
                        self.on_step(self)
            if self.last_saved != self.step:
                self.save()
            self._log({"event": "end", "step": self.step})
            if self.dist.backend is not None:
                import torch.distributed as dist

                dist.barrier()  # no rank tears the group down while rank 0 still writes
        finally:
            if self.dist.created:
                import torch.distributed as dist

                dist.destroy_process_group()
        return TrainResult(self.step, self.model_path, self.state_path, self.log_path, self.history)


def train_featureshift(cfg: TrainConfig, *, registry: Any = None, console: Console | None = None,
                       on_step: Callable[[FeatureShiftTrainer], None] | None = None) -> TrainResult:
    """Train FeatureShift on a dataset from ``featureshift build-dataset`` (see the module doc).

    Writes ``OUT/state.safetensors`` (everything needed to resume: weights, optimiser,
    scheduler, grad scaler, EMA, RNG states, data position) and ``OUT/model.safetensors``
    (the ``featureshift`` checkpoint; EMA weights when ``ema > 0``) every
    ``checkpoint_every`` steps and at the end, ``OUT/log.jsonl`` and
    ``OUT/samples/step_*.png``.  Under torchrun it trains with DDP (the batch is per
    process; rank 0 writes).  ``on_step(trainer)`` runs after every step (tests, hooks).
    """
    trainer = FeatureShiftTrainer(cfg, registry=registry, console=console, on_step=on_step)
    trainer.setup()
    return trainer.run()


# ---------------------------------------------------------------------------------------------
# Commands


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


def _add_loss_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--loss", action="append", metavar="NAME:WEIGHT[:k=v]",
                   help="domain-loss term, repeatable (default: thesis mse:1.0 lpips:0.8 id:0.1); "
                        "any registered loss plugin; option after=N starts it at step N")
    p.add_argument("--inversion-loss", action="append", metavar="NAME:WEIGHT[:k=v]",
                   help="inversion-loss term, repeatable (default: the same terms as --loss)")
    p.add_argument("--domain-inversion-loss", action="append", metavar="NAME:WEIGHT[:k=v]",
                   help="optional domain-inversion term (thesis: lpips:0.2 and id:0.025)")
    p.add_argument("--adversarial", type=float, default=0.0, metavar="WEIGHT",
                   help="add the frozen-discriminator adversarial term to the inversion loss "
                        "(thesis 0.01)")
    p.add_argument("--adversarial-after", type=int, default=0, metavar="N",
                   help="switch the adversarial term on at step N")
    p.add_argument("--discriminator", metavar="CKPT",
                   help="generator checkpoint holding the discriminator (default: --generator)")


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The ``train featureshift`` options."""
    from stylebridge.cli.common import add_device_argument

    d = TrainConfig(data="", generator="", out="")
    p.add_argument("--data", required=True, metavar="DATASET", help="from `featureshift build-dataset`")
    p.add_argument("--generator", "-g", required=True, metavar="[stylegan2:]CKPT")
    p.add_argument("--out", required=True, metavar="RUN")
    _add_loss_arguments(p)
    p.add_argument("--pretrain-inversion-steps", type=int, default=d.pretrain_inversion_steps,
                   metavar="N", help=f"inversion-only steps first (default {d.pretrain_inversion_steps})")
    p.add_argument("--steps", type=int, default=d.steps, help=f"total steps (default {d.steps})")
    p.add_argument("--batch", type=int, default=d.batch_size, help="batch per process")
    p.add_argument("--optimizer", choices=("adam", "adamw"), default=d.optimizer)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--betas", default="0.9,0.999", metavar="B1,B2")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--scheduler", choices=("constant", "cosine"), default=d.scheduler)
    p.add_argument("--warmup-steps", type=int, default=0)
    p.add_argument("--clip-grad", type=float, default=d.clip_grad, metavar="NORM",
                   help="max gradient norm (0 = off)")
    p.add_argument("--amp", choices=("auto", "off", "bf16", "fp16"), default=d.amp,
                   help="mixed precision on CUDA (auto: bf16 where supported); off on CPU. "
                        "At the thesis's size on an H200, bf16 cut the GPU time per step by "
                        "about a sixth (benchmarks/RESULTS.md)")
    p.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                   help="keep an EMA of the weights (e.g. 0.999); model.safetensors holds it")
    p.add_argument("--hidden", type=int, help="middle-stage width (default 1.5 × feature channels)")
    p.add_argument("--n-blocks", type=int, default=d.n_blocks)
    p.add_argument("--residual", action="store_true", help="predict F' - F instead of F'")
    p.add_argument("--init", metavar="CKPT", help="start from a featureshift checkpoint")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, metavar="N")
    p.add_argument("--log-every", type=int, default=d.log_every, metavar="N")
    p.add_argument("--sample-every", type=int, default=d.sample_every, metavar="N")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly")
    add_device_argument(p)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    from stylebridge.cli.common import checkpoint_spec

    try:
        b1, b2 = (float(v) for v in args.betas.split(","))
    except ValueError:
        raise StylebridgeError(f"--betas {args.betas!r}: expected two numbers B1,B2") from None
    name, gen_path = checkpoint_spec(args.generator, "generator")
    if name not in (None, "stylegan2"):
        raise StylebridgeError(f"--generator {args.generator!r}: unknown generator {name!r}")
    return TrainConfig(
        data=str(args.data), generator=str(gen_path), out=str(args.out),
        losses=list(args.loss) if args.loss else list(THESIS_LOSSES),
        inversion_losses=list(args.inversion_loss) if args.inversion_loss else None,
        domain_inversion_losses=list(args.domain_inversion_loss or []),
        adversarial=args.adversarial, adversarial_after=args.adversarial_after,
        discriminator=args.discriminator,
        pretrain_inversion_steps=args.pretrain_inversion_steps, steps=args.steps,
        batch_size=args.batch, optimizer=args.optimizer, lr=args.lr, betas=(b1, b2),
        weight_decay=args.weight_decay, scheduler=args.scheduler, warmup_steps=args.warmup_steps,
        clip_grad=args.clip_grad, amp=args.amp, ema=args.ema, hidden=args.hidden,
        n_blocks=args.n_blocks, residual=args.residual, init=args.init, seed=args.seed,
        checkpoint_every=args.checkpoint_every, log_every=args.log_every,
        sample_every=args.sample_every, device=args.device, resume=args.resume)


def run_train(args: argparse.Namespace, console: Console) -> int:
    cfg = config_from_args(args)
    result = train_featureshift(cfg, console=console)
    if int(os.environ.get("RANK", "0")) == 0:
        console.print(f"[green]trained[/green] {result.step} steps → "
                      f"{escape(str(result.model_path))} (log {escape(str(result.log_path))})")
    return 0


TRAIN_HELP = "train FeatureShift on a `featureshift build-dataset` dataset (thesis losses and phases)"
TRAIN_EPILOG = ("Multi-GPU: `torchrun --nproc_per_node N -m stylebridge train featureshift ...` "
                "trains with DistributedDataParallel (NCCL on CUDA, gloo on the CPU); --batch is "
                "per process and rank 0 writes the checkpoints, log and samples.")


def _register_train_target() -> None:
    """``stylebridge train featureshift`` through the ``train`` command's target table
    (at import: the registry imports every plugin module before the CLI is built)."""
    from stylebridge.pipelines.train_domain import register_train_target

    register_train_target("featureshift", add_train_arguments, run_train, help=TRAIN_HELP,
                          epilog=TRAIN_EPILOG)


_register_train_target()


class FeatureShiftCommand(Command):
    """FeatureShift tools: ``featureshift build-dataset``."""

    name = "featureshift"
    help = "FeatureShift tools: build-dataset (encode images once for training)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from stylebridge.cli.common import add_device_argument

        sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
        build_help = ("encode images with FSE and the guiding encoder, store w+, F and "
                      "per-domain Δ/targets in resumable shards")
        p = sub.add_parser("build-dataset", help=build_help,
                           description=build_help + ". Rerunning the same command resumes an "
                           "interrupted build; unreadable images are skipped and reported.")
        p.add_argument("--encoder", required=True, metavar="SPEC",
                       help="the FSE-like inverter with a feature, e.g. fse:fse.safetensors")
        p.add_argument("--guide", required=True, metavar="SPEC",
                       help="the guiding encoder, e.g. e4e:e4e.safetensors or "
                            "fse:fse.safetensors:mode=latents")
        p.add_argument("--generator", "-g", required=True, metavar="[stylegan2:]CKPT")
        p.add_argument("--images", required=True, nargs="+", metavar="DIR|FILE")
        p.add_argument("--domains", required=True, action="append", metavar="D1,D2,...",
                       help="domain checkpoints (comma-separated and/or repeated)")
        p.add_argument("--out", required=True, type=Path, metavar="DATASET")
        p.add_argument("--layer", type=int, help="generator activation K (default: the encoder's)")
        p.add_argument("--image-size", type=int, default=256,
                       help="stored image/target size (default 256, where the losses compare)")
        p.add_argument("--shard-size", type=int, default=256, help="images per shard")
        p.add_argument("--batch", type=int, default=4)
        p.add_argument("--no-per-domain", action="store_true",
                       help="store no per-domain Δ/targets (the trainer computes them)")
        p.add_argument("--dtype", choices=("float16", "bfloat16", "float32"), default="float16",
                       help="storage type of features and Δ (latents are float32)")
        add_device_argument(p)

    def run(self, args: argparse.Namespace, console: Console) -> int:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        from stylebridge.cli.common import checkpoint_spec
        from stylebridge.core.batch import expand_inputs
        from stylebridge.core.device import resolve_device
        from stylebridge.core.stylegan2.checkpoint import load_stylegan2
        from stylebridge.pipelines.featureshift.dataset import build_dataset
        from stylebridge.registry.resolve import load_plugin
        from stylebridge.registry.spec import parse_plugin_spec

        device = resolve_device(args.device)
        name, gen_path = checkpoint_spec(args.generator, "generator")
        if name not in (None, "stylegan2"):
            raise StylebridgeError(f"--generator {args.generator!r}: unknown generator {name!r}")
        generator = load_stylegan2(gen_path, device=device).generator
        encoder = load_plugin("encoder", args.encoder, device=device)
        guide = load_plugin("encoder", args.guide, device=device)
        specs = split_specs(args.domains)
        domains = []
        for text in specs:
            spec = parse_plugin_spec(text, what="domain method")
            method = load_plugin("domain_method", spec, device=device)
            domains.append((spec.path.stem if spec.path is not None else str(spec.name), method))
        inputs = expand_inputs(args.images)
        n_units = len(inputs) * (1 + (0 if args.no_per_domain else len(domains)))
        with Progress(TextColumn("[bold]build-dataset"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn(), console=console) as progress:
            task = progress.add_task("encode", total=n_units)
            result = build_dataset(
                inputs, args.out, generator=generator, encoder=encoder, guide=guide,
                domains=domains, layer=args.layer, image_size=args.image_size,
                shard_size=args.shard_size, batch_size=args.batch,
                per_domain=not args.no_per_domain, dtype=args.dtype, device=device,
                sources={"encoder": args.encoder, "guide": args.guide,
                         "generator": str(gen_path), "domains": specs},
                progress=lambda n: progress.advance(task, n))
        console.print(f"[green]wrote[/green] {result.n_rows} images in {result.n_shards} shard(s) "
                      f"to {escape(str(result.root))}" + (f" ({result.skipped_files} file(s) were already done)"
                                             if result.skipped_files else ""))
        result.report.print(console)
        return result.report.exit_code


@hookimpl
def register_commands(register: Any) -> None:
    register(FeatureShiftCommand())


__all__ = [
    "DELTA_FORMULA", "DELTA_SIGN", "KIND", "FeatureShift", "FeatureShiftTrainer", "TrainConfig",
    "TrainResult", "TrainingDivergedError", "apply_featureshift", "domain_delta",
    "domain_quantities", "domain_styles", "load_featureshift", "save_featureshift",
    "train_featureshift",
]

