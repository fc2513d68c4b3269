"""``stylebridge train hyperdomain``: train HyperDomainNet's hyper-network over a list of prompts.

The ``hyperdomain`` domain method (:mod:`stylebridge.plugins.domains.hyperdomain`) maps the
CLIP text embedding of a prompt to the domain-modulation vectors of every modulated conv.
It is trained on the shared domain loop (:class:`HyperDomainTrainer`, a
:class:`~stylebridge.pipelines.training.domain.DomainTrainer` with two hooks): each step
samples w+ (style mixing 0.9), draws ``batch`` prompts, renders every sample in its own
domain and minimises the weighted CLIP losses.

Defaults follow MACderRu/HyperDomainNet's multi-domain config ``configs/td_multiple.yaml``
(trainer ``td_multiple_resample_and_convex``):

* losses ``clip_direction:1.0`` (upstream ``direction``) + ``tt_direction:0.4``
  (:mod:`stylebridge.plugins.losses.hyperdomain`); ``indomain:W`` (the in-domain angle
  consistency, 1.5 in ``td_single_car.yaml``) can be added with ``--loss``;
* Adam lr 5e-5, betas (0.9, 0.999), no weight decay, batch 8, 10000 steps (upstream runs
  ``iter_num + 1``), mixing probability 0.9;
* mapper input: the L2-normalised ViT-B/32 text embedding of the prompt alone; the loss
  embeddings average the 79 ImageNet templates (normalised per template);
* prompt sampling: ``batch`` prompts drawn uniformly with replacement; **convex hull**: a
  Dirichlet(2/B, ..., 2/B) weight matrix ``A`` [B, B] mixes them, so sample ``b`` gets the
  mapper input ``norm(Σ_j A_bj e_j)`` and the target/source template embeddings
  ``norm(Σ_j A_bj t_j)`` (per template); **resample**: every target template embedding is
  replaced by a random unit vector at cosine >= 0.95 to it (``divergence: 0.95``); with
  resampling on, upstream computes the losses with the mapper's CLIP only (ViT-B/32), so
  ``--clip`` defaults to ViT-B-32;
* ``crop_augmentation``: CLIP sees a random crop of 80 % of the side of each image (source
  and adapted cropped independently, as upstream).

The prompts file has one domain per line, ``Target`` or upstream's ``Target - Source``
(``text_domains/domain_list_20.txt``; the separator is a hyphen with white space on each
side, :func:`split_prompt`); a line without a source uses ``--source-text`` (default
``Photo``, upstream's ``source_class``).  Blank lines and ``#`` comments are skipped; a line
with an empty target or source is refused naming its line.

Outputs (atomic): ``--out NET.safetensors`` (kind ``domain_method``, plugin ``hyperdomain``:
the network, the training prompts and their mapper embeddings, so they render without CLIP),
``NET.train-state.safetensors`` for an exact ``--resume``, ``NET_samples/`` grids (source |
adapted for the first prompt).  Differences from upstream: image embeddings are
L2-normalised; random numbers come from one seeded generator (resumable).

:func:`train_hyperdomain` takes a :class:`HyperDomainTrainConfig` and returns a
:class:`HyperDomainOutcome`; :func:`train_tiny_hyperdomain` trains one on the tiny preset.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from stylebridge.core.device import resolve_device
from stylebridge.core.interfaces import LossBatch
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines import train_domain as td
from stylebridge.pipelines.presets import random_seeded
from stylebridge.pipelines.training.board import require_tensorboard
from stylebridge.pipelines.training.domain import (
    DomainTrainer,
    TrainSettings,
    check_run_out,
)
from stylebridge.pipelines.training.fingerprint import EarlierForm
from stylebridge.pipelines.training.guard import refuse_several_processes
from stylebridge.pipelines.training.needed import ClipModels, clip_models, trainer_requests
from stylebridge.pipelines.training.options import (
    check_train_numbers,
    input_files,
    parse_clip_weights,
)
from stylebridge.pipelines.training.progress import ProgressCallback, check_progress, emit
from stylebridge.pipelines.training.result import TrainResult
from stylebridge.pipelines.training.state import file_sha256
from stylebridge.pipelines.typed import coerce_path_fields
from stylebridge.plugins.domains.hyperdomain import DEFAULT_MAPPER_CLIP, HyperDomain
from stylebridge.plugins.losses.hyperdomain import PromptBatchGuide
from stylebridge.registry.needed import WeightsCheck, require_weights
from stylebridge.registry.resolve import generator_path, load_generator

if TYPE_CHECKING:
    from stylebridge.core.stylegan2.generator import Generator
    from stylebridge.pipelines.presets import TinyPreset
    from stylebridge.plugins.nets.clip import ClipModel

DEFAULT_LOSSES = ("clip_direction:1.0", "tt_direction:0.4")
DEFAULT_LOSS_CLIP = ("ViT-B-32",)
DEFAULT_SOURCE = "Photo"
STEPS, BATCH, LR, MIXING = 10000, 8, 5e-5, 0.9
RESAMPLE_COS, CROP = 0.95, 0.8


# ---------------------------------------------------------------------------------------------
# Prompts


#: the ``-`` of ``Target - Source``: a hyphen with white space (or the line's end) on each
#: side, so ``Spider-Man`` stays one target and `` - Photo`` has an empty one
_SEPARATOR = re.compile(r"(?<!\S)-(?!\S)")


def split_prompt(text: str, source_text: str = DEFAULT_SOURCE) -> tuple[str, str]:
    """``Target`` or ``Target - Source`` (the last separator counts) → ``(target, source)``,
    stripped; ``source_text`` without a separator.  A missing part comes back empty: the
    caller refuses it, naming where it was."""
    found = list(_SEPARATOR.finditer(text))
    if not found:
        return text.strip(), source_text.strip()
    return text[:found[-1].start()].strip(), text[found[-1].end():].strip()


def read_prompts(path: str | Path, source_text: str = DEFAULT_SOURCE) -> list[tuple[str, str]]:
    """``(target, source)`` pairs of a prompts file (see the module doc), duplicates dropped."""
    path = Path(path)
    if not path.is_file():
        raise StylebridgeError("no such file" if not path.exists() else
                               "is not a file; --prompts takes a text file, one prompt per line",
                               path=path)
    try:  # utf-8-sig: a byte-order mark (Windows editors) is no part of the first prompt
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:   # (permission denied), not PermissionError
        from stylebridge.core.images import os_error_reason

        why = os_error_reason(exc) if isinstance(exc, OSError) else type(exc).__name__
        raise StylebridgeError(f"cannot read the prompts ({why})", path=path) from None
    pairs: dict[str, str] = {}
    for n, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        target, source = split_prompt(line, source_text)
        if not target or not source:
            missing = "target" if not target else "source"
            raise StylebridgeError(f"line {n}: {line!r} has no {missing} (expected 'Target' "
                                   "or 'Target - Source')", path=path)
        pairs.setdefault(target, source)
    if not pairs:
        raise StylebridgeError("holds no prompts (one per line: 'Target' or 'Target - Source')",
                               path=path)
    return list(pairs.items())


@dataclass
class PromptBank:
    """The text embeddings of one run: mapper inputs ``[N, D_m]`` and, per loss CLIP model,
    the target template embeddings ``[N, T, D]`` and the sources' ``[S, T, D]``."""

    prompts: list[str]
    mapper: Tensor
    targets: list[Tensor]
    sources: list[Tensor]
    source_index: Tensor


@torch.no_grad()
def encode_prompts(pairs: Sequence[tuple[str, str]], mapper_models: Sequence[ClipModel],
                   loss_models: Sequence[ClipModel], templates: Sequence[str]) -> PromptBank:
    prompts = [t for t, _ in pairs]
    source_names = list(dict.fromkeys(s for _, s in pairs))
    mapper = torch.cat([m.encode_text(prompts).float() for m in mapper_models], dim=-1)

    def templated(model: ClipModel, texts: Sequence[str]) -> Tensor:
        return torch.stack([model.encode_text([t.format(x) for t in templates]).float()
                            for x in texts])

    return PromptBank(prompts=prompts, mapper=mapper,
                      targets=[templated(m, prompts) for m in loss_models],
                      sources=[templated(m, source_names) for m in loss_models],
                      source_index=torch.tensor([source_names.index(s) for _, s in pairs]))


def resample(vectors: Tensor, cos_min: float, rng: torch.Generator) -> Tensor:
    """Each ``[..., D]`` vector → a random unit vector at cosine in ``[cos_min, 1]`` to it
    (upstream ``resample_batch_vectors``)."""
    shape = vectors.shape
    u = F.normalize(vectors.reshape(-1, shape[-1]), dim=-1)
    r = (torch.rand(u.shape, generator=rng) * 2 - 1).to(u)
    perp = F.normalize(r - (r * u).sum(-1, keepdim=True) * u, dim=-1)
    cos = (torch.rand(u.shape[0], 1, generator=rng) * (1 - cos_min) + cos_min).to(u)
    return (cos * u + torch.sqrt(1 - cos ** 2) * perp).reshape(shape)


def dirichlet_mix(batch: int, rng: torch.Generator) -> Tensor:
    """Upstream ``calc_alphas``: rows of a ``[B, B]`` Dirichlet(2/B) sample, drawn from a seed
    taken from ``rng`` (torch's distributions have no generator argument)."""
    seed = int(torch.randint(0, 2**62, (1,), generator=rng))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        concentration = torch.full((batch, batch), 2.0 / batch)
        return torch.distributions.Dirichlet(concentration).sample()


# ---------------------------------------------------------------------------------------------
# The trainer


class HyperDomainTrainer(DomainTrainer):
    """The domain loop with per-sample prompts (see the module doc)."""

    method: HyperDomain
    guide: PromptBatchGuide
    command = "train hyperdomain"
    takes_encoder = False
    #: domain modulation changes the rendered images only, never the styles
    trained_fields = frozenset({"output"})
    #: its options besides train domain's, the network's sizes and mapper CLIP among them
    #: (a --resume refusal names them); a prompt that differs is named by its place
    resume_labels: ClassVar[Mapping[str, str]] = {**DomainTrainer.resume_labels, **{
        f"method.config.{key}": f"--{key.replace('_', '-')}"
        for key in ("width", "inner", "backbone_depth", "head_depth")},
        "method.config.clip": "--mapper-clip", "method.config.clip_weights": "--clip-weights",
        "prompts": "--prompts", "templates": "--templates",
        "convex": "convex (--no-convex)", "resample": "--resample", "crop": "--crop"}
    resume_narrowed: ClassVar[frozenset[str]] = DomainTrainer.resume_narrowed | {"prompts"}

    def __init__(self, generator: Generator, method: HyperDomain, losses: Sequence[Any],
                 settings: TrainSettings, *, bank: PromptBank, guide: PromptBatchGuide,
                 convex: bool = True, resample_cos: float | None = RESAMPLE_COS,
                 crop: float | None = CROP, **kwargs: Any) -> None:
        super().__init__(generator, method, losses, settings, guide=guide, **kwargs)
        self.bank = bank
        self.convex = convex
        self.resample_cos = resample_cos
        self.crop = crop
        self.step_prompts: list[str] = []

    @property
    def random_clip(self) -> bool:
        return super().random_clip or self.method.random_clip

    def render_adapted(self, w_plus: Tensor, noise: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        bank, n = self.bank, w_plus.shape[0]
        idx = torch.randint(len(bank.prompts), (n,), generator=self.rng)
        self.step_prompts = [bank.prompts[i] for i in idx.tolist()]
        mix = dirichlet_mix(n, self.rng) if self.convex else None

        def combine(x: Tensor) -> Tensor:  # [B, ..., D] → convex mixes, normalised
            if mix is None:
                return x
            return F.normalize(torch.einsum("ij,j...->i...", mix.to(x), x), dim=-1)

        directions, targets = [], []
        for trg_all, src_all in zip(bank.targets, bank.sources, strict=True):
            trg = combine(trg_all[idx])
            src = combine(src_all[bank.source_index[idx]])
            if self.resample_cos is not None:
                trg = resample(trg, self.resample_cos, self.rng)
            directions.append((trg - src).mean(1).to(self.device))
            targets.append(trg.mean(1).to(self.device))
        self.guide.set_batch(directions, targets)
        mapper_in = combine(bank.mapper[idx]).to(self.device)
        edits = self.method.edits_for(self.generator, self.method.vectors(mapper_in))
        styles = self.method.styles(self.generator, w_plus)
        images = self.generator.synthesis(styles, noise=noise, randomize_noise=False,
                                          weight_deltas=edits)
        return images, styles

    def _crop(self, images: Tensor) -> Tensor:
        size = images.shape[-1]
        length, room = int(size * self.crop), int(size * (1 - self.crop))  # type: ignore[operator]
        if room < 1:
            return images
        x, y = torch.randint(0, room, (2,), generator=self.rng).tolist()
        return images[..., x:x + length, y:y + length]

    def extend_batch(self, batch: LossBatch) -> None:
        batch.text = list(self.step_prompts)
        if self.crop is not None and batch.output is not None and batch.source is not None:
            batch.output = self._crop(batch.output)
            batch.source = self._crop(batch.source)

    def sample_grid(self) -> Tensor:
        """Source | adapted rows for the first training prompt."""
        before = self.method.text
        self.method.text = self.bank.prompts[0]
        try:
            return super().sample_grid()
        finally:
            self.method.text = before


# ---------------------------------------------------------------------------------------------
# The pipeline


@dataclass
@coerce_path_fields
class HyperDomainTrainConfig:
    """One ``train hyperdomain`` run (defaults: ``td_multiple.yaml``, see the module doc).
    Give ``prompts`` (a file) or ``prompt_list`` (``Target`` or ``Target - Source`` strings)."""

    generator: str
    out: Path
    prompts: Path | None = None
    prompt_list: list[str] | None = None
    source_text: str = DEFAULT_SOURCE
    templates: str = "imagenet"
    steps: int = STEPS
    batch: int = BATCH
    lr: float = LR
    mixing: float = MIXING
    losses: list[str] | None = None
    clip: list[str] | None = None            # loss CLIP models, default ViT-B-32
    mapper_clip: list[str] | None = None     # mapper input CLIP models, default ViT-B-32
    clip_weights: list[str] = field(default_factory=list)   # MODEL=PATH
    allow_random_clip: bool = False
    convex: bool = True
    resample: float | None = RESAMPLE_COS
    crop: float | None = CROP
    width: int = 512
    inner: int = 512
    backbone_depth: int = 4
    head_depth: int = 2
    sample_every: int = 500
    checkpoint_every: int = 250
    resume: bool = False
    force: bool = False
    seed: int = 0
    device: str = "auto"
    tensorboard: bool = False             # also DOMAIN_tensorboard/ (not in train_config)


@dataclass
class HyperDomainOutcome:
    """What :func:`train_hyperdomain` did (``result`` ``None``: a resumed run had nothing
    left to do)."""

    out: Path
    steps: int
    step: int
    prompts: list[str] = field(default_factory=list)
    result: TrainResult | None = None
    losses: dict[str, float] = field(default_factory=dict)
    random_clip: bool = False
    samples_dir: Path | None = None


def _pairs(cfg: HyperDomainTrainConfig) -> list[tuple[str, str]]:
    if (cfg.prompts is None) == (cfg.prompt_list is None):
        raise StylebridgeError("give the prompts: --prompts prompts.txt")
    if not cfg.source_text.strip():
        raise StylebridgeError("--source-text is empty (e.g. --source-text Photo)")
    if cfg.prompts is not None:
        return read_prompts(cfg.prompts, cfg.source_text)
    pairs: dict[str, str] = {}
    for item in cfg.prompt_list or []:
        target, source = split_prompt(item, cfg.source_text)
        if not target or not source:
            missing = "target" if not target else "source"
            raise StylebridgeError(f"prompt {item!r} has no {missing} (expected 'Target' or "
                                   "'Target - Source')")
        pairs.setdefault(target, source)
    if not pairs:
        raise StylebridgeError("no prompts given")
    return list(pairs.items())


def _check(cfg: HyperDomainTrainConfig) -> None:
    if cfg.batch < 2:
        raise StylebridgeError(f"--batch {cfg.batch}: must be >= 2 (BatchNorm and the pairwise "
                               "losses)")
    check_train_numbers(steps=cfg.steps, lr=cfg.lr, mixing=cfg.mixing,
                        sample_every=cfg.sample_every, checkpoint_every=cfg.checkpoint_every)
    checks = [(cfg.resample is None or 0.0 <= cfg.resample <= 1.0,
               f"--resample {cfg.resample}: must be a cosine in [0, 1] (or off)"),
              (cfg.crop is None or 0.0 < cfg.crop <= 1.0,
               f"--crop {cfg.crop}: must be in (0, 1] (or off)"),
              *((value >= 1, f"{option} {value}: must be >= 1") for option, value in (
                  ("--width", cfg.width), ("--inner", cfg.inner),
                  ("--backbone-depth", cfg.backbone_depth), ("--head-depth", cfg.head_depth)))]
    for ok, message in checks:
        if not ok:
            raise StylebridgeError(message)


def _clip_names(cfg: HyperDomainTrainConfig) -> list[ClipModels]:
    """The mapper's and the losses' CLIP models, with the options that name them."""
    return [clip_models("--mapper-clip", cfg.mapper_clip, DEFAULT_MAPPER_CLIP),
            clip_models("--clip", cfg.clip, DEFAULT_LOSS_CLIP)]


def _clip_models(cfg: HyperDomainTrainConfig, seed: int, device: torch.device
                 ) -> tuple[list[ClipModel], list[ClipModel]]:
    """Mapper and loss CLIP models; a loss model at the mapper's position and name is shared
    (a ``--clip-weights`` model among neither was refused before: :func:`train_hyperdomain`)."""
    weights = parse_clip_weights(cfg.clip_weights)
    (_, mapper_names), (_, loss_names) = _clip_names(cfg)

    def build(names: list[str]) -> list[ClipModel]:
        return td.build_clip_models(names, {k: v for k, v in weights.items() if k in names},
                                    allow_random=cfg.allow_random_clip, device=device, seed=seed)

    mapper = build(mapper_names)
    if loss_names[:len(mapper_names)] == mapper_names[:len(loss_names)]:
        shared = mapper[:len(loss_names)]
        rest = build(loss_names)[len(shared):] if len(loss_names) > len(shared) else []
        return mapper, shared + rest
    return mapper, build(loss_names)


def _prepare_out(cfg: HyperDomainTrainConfig) -> Path:
    out = Path(cfg.out)
    inputs = input_files({"--prompts": cfg.prompts}, generator=cfg.generator,
                         clip_weights=cfg.clip_weights, losses=cfg.losses)
    check_run_out(out, resume=cfg.resume, force=cfg.force, inputs=inputs,
                  samples=cfg.sample_every > 0)
    return out


def _hyperdomain(bank: PromptBank, desc: dict[str, Any], cfg: HyperDomainTrainConfig,
                 mapper_models: Sequence[ClipModel], mapper_file: Path | None,
                 seed: int) -> HyperDomain:
    """A fresh hyper-network for ``bank``'s prompts (its weights drawn from torch's
    generator: the caller seeds it)."""
    return HyperDomain(**desc, clip=[m.name for m in mapper_models], prompts=bank.prompts,
                       embed_dim=int(bank.mapper.shape[1]), width=cfg.width, inner=cfg.inner,
                       backbone_depth=cfg.backbone_depth, head_depth=cfg.head_depth,
                       random_clip=any(m.random_weights for m in mapper_models),
                       clip_seed=seed,
                       clip_weights=str(mapper_file.resolve()) if mapper_file else None)


def train_hyperdomain(cfg: HyperDomainTrainConfig, *, progress: ProgressCallback | None = None,
                      ensure_weights: WeightsCheck | None = None) -> HyperDomainOutcome:
    """Run ``train hyperdomain`` (see the module doc); bad options fail before loading, then
    ``ensure_weights`` gets what the run loads by name (generator, losses, CLIP models): by
    default one error naming every official download it lacks (``--fetch`` downloads them)."""
    from stylebridge.plugins.losses.clip import text_templates

    check_progress(progress, "train_hyperdomain")
    refuse_several_processes("train_hyperdomain")  # torchrun: each process would write --out
    if cfg.tensorboard:  # before anything loads
        require_tensorboard()
    pairs = _pairs(cfg)
    _check(cfg)
    out = _prepare_out(cfg)   # an --out that is a folder or an input: before anything loads
    settings = TrainSettings(steps=cfg.steps, batch=cfg.batch, lr=cfg.lr, mixing=cfg.mixing,
                             seed=cfg.seed, checkpoint_every=cfg.checkpoint_every,
                             sample_every=cfg.sample_every)
    state_path = td.state_path_for(out)
    if not cfg.resume and state_path.is_file():
        state_path.unlink()  # --force (else refused): not to be resumed later
    templates = text_templates(cfg.templates)
    loss_specs = list(cfg.losses or DEFAULT_LOSSES)
    (ensure_weights or require_weights)(trainer_requests(cfg.generator, loss_specs, default_losses=not cfg.losses,
                                    clips=_clip_names(cfg),
                                    clip_weights=parse_clip_weights(cfg.clip_weights),
                                    allow_random_clip=cfg.allow_random_clip))
    terms = td.build_losses(loss_specs)
    device = resolve_device(cfg.device)
    gen_path, _ = generator_path(cfg.generator)
    generator = load_generator(str(gen_path), device)[0]
    mapper_models, loss_models = _clip_models(cfg, settings.seed, device)
    detail = td.random_clip_detail([*mapper_models, *loss_models],
                                   parse_clip_weights(cfg.clip_weights), what="hyper-network")
    if detail is not None:
        emit(progress, "notice", text=td.RANDOM_CLIP_NOTICE, detail=detail)
    emit(progress, "status", text=f"encoding {len(pairs)} prompts")
    bank = encode_prompts(pairs, mapper_models, loss_models, templates)
    emit(progress, "status", text="")
    desc = {k: v for k, v in generator.config().items() if k in ("size", "style_dim", "channels")}
    # a mapper CLIP loaded from an explicit --clip-weights file: recorded, so that prompts
    # outside the training list encode with the same weights later
    mapper_file = (parse_clip_weights(cfg.clip_weights).get(mapper_models[0].name)
                   if len(mapper_models) == 1 else None)
    with random_seeded(settings.seed):   # the network's initialisation follows --seed
        method = _hyperdomain(bank, desc, cfg, mapper_models, mapper_file, settings.seed)
    with torch.no_grad():
        method.prompt_embeddings.copy_(bank.mapper)
    guide = PromptBatchGuide(loss_models, target=f"{len(pairs)} prompts",
                             source_text=cfg.source_text)
    sampling = {"convex": cfg.convex, "resample": cfg.resample, "crop": cfg.crop}
    fingerprint = {
        "method": {"plugin": method.name, "config": method.config()},
        "generator_config": generator.config(), "generator_sha256": file_sha256(gen_path),
        "clip_weights": td.clip_weights_fingerprint(
            [m.name for m in (*mapper_models, *loss_models)], parse_clip_weights(cfg.clip_weights)),
        "prompts": [list(p) for p in pairs], "templates": cfg.templates,
        "losses": loss_specs, "clip": [m.name for m in loss_models], "batch": settings.batch,
        "lr": settings.lr, "mixing": settings.mixing, "seed": settings.seed, **sampling,
    }
    header_extra = {"target": {"prompts": [list(p) for p in pairs], "templates": cfg.templates},
                    "generator": str(gen_path), "sampling": sampling,
                    "generator_sha256": fingerprint["generator_sha256"],
                    "mapper_clip": [m.name for m in mapper_models],
                    "trainer": "stylebridge train hyperdomain",
                    "train_config": td.run_train_config(   # the run, from this header alone
                        cfg, settings, fingerprint, terms, gen_path,
                        parse_clip_weights(cfg.clip_weights),
                        mapper_clip=[m.name for m in mapper_models],
                        prompt_pairs=[list(p) for p in pairs])}
    trainer = HyperDomainTrainer(generator, method, terms, settings, bank=bank, guide=guide,
                                 convex=cfg.convex, resample_cos=cfg.resample, crop=cfg.crop,
                                 out=out, header_extra=header_extra, fingerprint=fingerprint,
                                 device=device, tensorboard=cfg.tensorboard)
    # states written before cc6519f recorded each CLIP model as "random" (no file, or a file
    # of random weights) or "file", not by sha256; they lack last_losses (4de9f68, just after)
    trainer.earlier_forms = {"clip_weights": EarlierForm(
        {m.name: "random" if m.random_weights else "file" for m in (*mapper_models, *loss_models)},
        newer_key="last_losses")}
    outcome = HyperDomainOutcome(out=out, steps=settings.steps, step=0, prompts=bank.prompts,
                                 random_clip=trainer.random_clip,
                                 samples_dir=trainer.samples_dir)
    return trainer.resume_and_train(outcome, resume=cfg.resume, progress=progress)


def train_tiny_hyperdomain(preset: TinyPreset, out: str | Path, prompts: Sequence[str], *,
                           steps: int = 10, batch: int = 2, seed: int = 0,
                           device: str = "cpu") -> Path:
    """Train a small hyper-network on the tiny preset (``reproduce thesis-tables``): its
    generator, its first tiny CLIP (weights file) as mapper and loss CLIP, no templates,
    width 64; returns the checkpoint path (labelled RANDOM through the preset's weights)."""
    from stylebridge.pipelines.presets import register_tiny_clip_configs

    register_tiny_clip_configs(preset.clip_config)
    name = sorted(preset.clip_weights)[0]
    cfg = HyperDomainTrainConfig(
        generator=str(preset.generator), out=Path(out), prompt_list=list(prompts),
        templates="none", steps=steps, batch=batch, clip=[name], mapper_clip=[name],
        clip_weights=[f"{name}={preset.clip_weights[name]}"], width=64, inner=64,
        sample_every=0, checkpoint_every=0, force=True, seed=seed, device=device)
    return train_hyperdomain(cfg).out


__all__ = ["DEFAULT_LOSSES", "HyperDomainOutcome", "HyperDomainTrainConfig",
           "HyperDomainTrainer", "PromptBank", "encode_prompts", "read_prompts", "resample",
           "split_prompt", "train_hyperdomain", "train_tiny_hyperdomain"]
