"""``stylebridge train domain``: train a domain method from a text prompt or one reference image.

A *domain method* (``--method stylespace``, ``affine_plus``, any registered
:class:`~stylebridge.core.interfaces.DomainMethod`) is trained on top of a frozen
StyleGAN2 by :class:`~stylebridge.pipelines.training.domain.DomainTrainer`: each step
samples w+ (with style mixing), renders the frozen source ``G_θ0(w)`` and the adapted
``G_θ(w)`` and minimises a weighted sum of :class:`~stylebridge.core.interfaces.Loss`
plugins named on the command line (``--loss NAME:WEIGHT[:k=v]``, the shared rules of
:mod:`stylebridge.pipelines.training.losses`; see :mod:`stylebridge.plugins.losses.clip`).

Defaults follow the thesis, and AIRI-Institute/StyleDomain (``SimilarDomains/configs``)
where the thesis gives no value:

* text target: the thesis trains StyleSpace "only on the StyleGAN-NADA loss" (Eq. 4, "the
  absence of other regularizations"), so the default is ``clip_direction:1.0`` alone with
  every layer trained; the rest is StyleDomain's ``td_nada_ffhq_sdelta.yaml``: Adam lr
  0.05, betas (0.9, 0.999), 250 steps, batch 4, style mixing probability 0.9, CLIP
  ViT-B/32 + ViT-B/16, source class ``Human``, the 79 ImageNet prompt templates.
  ``--indomain`` (:data:`TEXT_INDOMAIN_DEFAULTS`) is that config whole, the thesis' "(indomain)"
  domains (Fig. 4.11): ``+ indomain:0.25`` and ``no_coarse: True`` (no change on the
  first 6 conv layers = ``--freeze-layers coarse``).  StyleDomain's text configs all use it;
  the thesis tells the two apart ("Modigliani Painting" and "Modigliani Painting
  (indomain)"), so its plain reading is the default;
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
  header ``extra = {"step", "steps", "target", "losses", "clip", "generator",
  "generator_sha256", "train_config", ...}`` (adapt/generate/render note another generator
  file; ``train_config``: every option, defaults as applied, paths absolute, the sha256s of
  the generator and CLIP weights: the run repeated from the checkpoint alone,
  :func:`~stylebridge.pipelines.training.state.train_config_record`), every
  ``--checkpoint-every`` steps and at the end;
* ``DOMAIN.train-state.safetensors``: method, Adam state, RNG state, loss state
  (DiFa's window), step and (on the CPU) torch's thread count, so that ``--resume``
  continues exactly (with another thread count: within floating-point rounding, said in a
  notice);
* ``DOMAIN_samples/stepNNNNNN.png``: every ``--sample-every`` steps, rows of
  source | adapted for fixed seeds.

A non-finite loss or gradient stops the run (exit 2) with
``loss became NaN at step N; last good checkpoint kept at PATH``
(:class:`~stylebridge.pipelines.training.guard.TrainingDivergedError`).

This module is the pipeline: :func:`train_domain` takes a :class:`DomainTrainConfig`
and returns a :class:`DomainTrainOutcome`; the command line lives in
:mod:`stylebridge.cli.commands.train`.  The domain method and the frozen layers are built
from their specs in :mod:`stylebridge.pipelines.train_domain_build`
(:func:`build_domain_method`, :func:`parse_freeze_layers`), re-exported here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from stylebridge.core.device import resolve_device
from stylebridge.core.images import load_image
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.adapter import attach_encoder
from stylebridge.pipelines.train_domain_build import (  # noqa: F401  (re-exported)
    N_COARSE_CONV,
    _fresh_method,
    build_domain_method,
    parse_freeze_layers,
)
from stylebridge.pipelines.training.board import require_tensorboard
from stylebridge.pipelines.training.domain import (
    RANDOM_CLIP_NOTICE,
    STATE_KIND,
    STATE_SUFFIX,
    WARMUP_START_LR,
    DomainTrainer,
    TrainSettings,
    check_run_out,
    render,
    sample_wplus,
    state_path_for,
)
from stylebridge.pipelines.training.fingerprint import DefaultChange
from stylebridge.pipelines.training.guard import TrainingDivergedError, refuse_several_processes
from stylebridge.pipelines.training.losses import LossTerm, build_loss_terms, idle_term_notes
from stylebridge.pipelines.training.needed import (
    check_method_generator,
    declared_fields,
    loss_clip_models,
    refuse_unknown_clip_weights,
    trainer_requests,
)
from stylebridge.pipelines.training.options import (
    check_train_numbers,
    input_files,
    parse_clip_weights,
)
from stylebridge.pipelines.training.progress import ProgressCallback, check_progress, emit
from stylebridge.pipelines.training.result import TrainResult
from stylebridge.pipelines.training.state import (
    file_sha256,
    train_config_record,
)
from stylebridge.pipelines.typed import coerce_path_fields
from stylebridge.plugins.nets.clip import clip_fetch_hint, installed_clip_weights
from stylebridge.registry.needed import WeightsCheck, require_weights
from stylebridge.registry.resolve import generator_path, load_generator, load_plugin

if TYPE_CHECKING:
    from stylebridge.core.stylegan2.generator import Generator
    from stylebridge.plugins.nets.clip import ClipModel

DEFAULT_CLIP = ("ViT-B-32", "ViT-B-16")
NO_ENCODER = ("loss 'difa_w' compares encoder inversions of the images: give --encoder (DiFa "
              "uses e4e, e.g. --encoder e4e:e4e.safetensors) or choose losses with --loss")

#: deprecated alias of the one training error
TrainingDiverged = TrainingDivergedError


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


#: text targets: the thesis' NADA loss alone (Eq. 4), every layer trained
TEXT_DEFAULTS = ModeDefaults(losses=("clip_direction:1.0",), steps=250, batch=4,
                             lr=0.05, warmup_steps=0, mixing=0.9, freeze_layers="none")
#: ``--indomain``: StyleDomain's ``td_nada_ffhq_sdelta.yaml`` whole (the thesis' "(indomain)")
TEXT_INDOMAIN_DEFAULTS = ModeDefaults(losses=("clip_direction:1.0", "indomain:0.25"), steps=250,
                                      batch=4, lr=0.05, warmup_steps=0, mixing=0.9,
                                      freeze_layers="coarse")
IMAGE_DEFAULTS = ModeDefaults(losses=("clip_direction:1.0", "difa_w:6.0", "difa_local:1.0"),
                              steps=301, batch=2, lr=0.08, warmup_steps=30, mixing=0.0,
                              freeze_layers="none")


# ---------------------------------------------------------------------------------------------
# Building the pieces from command-line specs


def build_losses(specs: Sequence[str], *, registry: Any = None) -> list[LossTerm]:
    """``NAME:WEIGHT[:k=v,...]`` → loss terms (the shared rules of
    :func:`stylebridge.pipelines.training.losses.build_loss_terms`: ``after=N``, a name
    given twice is keyed ``NAME#2``).  The official weights they read and that are not
    installed (``lpips-alex``, ``arcface-irse50``) are named together first."""
    require_weights([("loss", spec, "--loss") for spec in specs], registry)
    return build_loss_terms(specs, registry=registry, option="--loss")


def build_clip_models(names: Sequence[str], weights: dict[str, Path], *, allow_random: bool,
                      device: str | torch.device = "cpu", seed: int = 0) -> list[ClipModel]:
    """Load each CLIP model with its weights file; random weights only with ``allow_random``,
    then seeded by ``seed`` (+ the model's position) so that a run is reproducible."""
    from stylebridge.plugins.nets.clip import load_clip

    refuse_unknown_clip_weights(weights, names)
    models = []
    for i, name in enumerate(names):
        path = weights.get(name) or installed_clip_weights(name)
        if path is None and not allow_random:
            raise StylebridgeError(
                f"no weights for CLIP {name}: {clip_fetch_hint(name)}give --clip-weights "
                f"{name}=PATH (a .safetensors state dict of open_clip's {name}); "
                f"--allow-random-clip trains with {RANDOM_CLIP_NOTICE} (tests only)")
        models.append(load_clip(name, weights=path, device=device, seed=seed + i))
    return models


def clip_weights_fingerprint(names: Sequence[str], weights: Mapping[str, Path]
                             ) -> dict[str, str]:
    """Which weights each CLIP model of a training run holds, for its resume fingerprint: the
    sha256 of its file (``weights``, from ``--clip-weights``, else the installed one), or
    ``"random"`` without one; a resume with another CLIP file is refused naming it."""
    out = {}
    for name in names:
        path = weights.get(name) or installed_clip_weights(name)
        out[name] = file_sha256(path) if path is not None and path.is_file() else "random"
    return out


def clip_weights_record(names: Sequence[str], weights: Mapping[str, Path],
                        digests: Mapping[str, str]) -> dict[str, Any]:
    """What a checkpoint's ``train_config`` says of each CLIP model's weights: the file
    (``weights``, from ``--clip-weights``, else the installed one; absolute, ``None`` without
    one) and its sha256 as the run's fingerprint has it (``digests``, from
    :func:`clip_weights_fingerprint`: ``"random"`` without a file), and its open_clip
    architecture (``config``: a model that ``--clip-config`` registered is rebuilt from it)."""
    from stylebridge.plugins.nets.clip import import_open_clip

    open_clip = import_open_clip()
    out: dict[str, Any] = {}
    for name in names:
        path = weights.get(name) or installed_clip_weights(name)
        out[name] = {"path": os.path.abspath(path) if path is not None else None,
                     "sha256": digests.get(name, "random"),
                     "config": open_clip.get_model_config(name)}
    return out


def run_train_config(cfg: Any, settings: TrainSettings, fingerprint: Mapping[str, Any],
                     terms: Sequence[LossTerm], gen_path: Path, clip_weights: Mapping[str, Path],
                     **resolved: Any) -> dict[str, Any]:
    """The ``train_config`` of a domain trainer's checkpoint
    (:func:`~stylebridge.pipelines.training.state.train_config_record`): ``cfg``'s options,
    ``settings``, and what every domain pipeline resolves: the generator file (absolute) and
    its sha256, the loss specs and their options as built, the loss CLIP models and each CLIP
    model's weights file and sha256 (``fingerprint["clip_weights"]``); then ``resolved``."""
    return train_config_record(
        cfg, settings, generator=os.path.abspath(gen_path),
        generator_sha256=fingerprint["generator_sha256"], losses=list(fingerprint["losses"]),
        loss_configs={t.key: t.module.config() for t in terms}, clip=list(fingerprint["clip"]),
        clip_weights=clip_weights_record(list(fingerprint["clip_weights"]), clip_weights,
                                         fingerprint["clip_weights"]), **resolved)


def random_clip_detail(models: Sequence[ClipModel], weights: Mapping[str, Path], *,
                       what: str = "domain") -> str | None:
    """The detail of the RANDOM CLIP WEIGHTS notice (``None``: no model is random): each
    random model as built without weights, or as loaded from its weights file (``weights``,
    else the installed one) whose metadata says random (the tiny preset's), then what the
    result is not."""
    said = []
    for model in models:
        if model.random_weights:
            path = weights.get(model.name) or installed_clip_weights(model.name)
            said.append(f"{model.name} without weights" if path is None else
                        f"{model.name} from {path}, a file of random weights")
    if not said:
        return None
    return f": {', '.join(dict.fromkeys(said))}; the result is not a real {what} (tests only)"


def source_image_batches(generator: Generator, n: int, batch: int, truncation: float,
                         seed: int) -> Iterator[Tensor]:
    """``n`` source-generator samples in ``[0, 1]`` for ``v_source`` (own RNG from ``seed``)."""
    rng = torch.Generator().manual_seed(seed)
    done = 0
    while done < n:
        k = min(batch, n - done)
        with torch.no_grad():
            images, _ = render(generator, sample_wplus(generator, k, rng, truncation=truncation))
        done += k
        yield (images + 1.0) / 2.0


# ---------------------------------------------------------------------------------------------
# The pipeline


@dataclass
@coerce_path_fields
class DomainTrainConfig:
    """One ``train domain`` run (the command's options; ``None`` = the target's default,
    :data:`TEXT_DEFAULTS` (:data:`TEXT_INDOMAIN_DEFAULTS` with ``indomain``) or
    :data:`IMAGE_DEFAULTS`).  Exactly one of ``text`` / ``image``."""

    generator: str                        # [stylegan2:]CKPT (see train_domain's resolver)
    out: Path
    text: str | None = None
    image: Path | None = None
    source_text: str | None = None        # default: Human
    templates: str = "imagenet"
    method: str = "stylespace"
    steps: int | None = None
    losses: list[str] | None = None
    clip: list[str] | None = None         # default: DEFAULT_CLIP
    clip_weights: list[str] = field(default_factory=list)   # MODEL=PATH
    allow_random_clip: bool = False
    encoder: str | None = None
    lr: float | None = None
    warmup_steps: int | None = None
    batch: int | None = None
    mixing: float | None = None
    freeze_layers: str | None = None
    indomain: bool = False                # text: StyleDomain's in-domain config as defaults
    source_samples: int = 256
    source_truncation: float = 0.8
    sample_every: int = 50
    checkpoint_every: int = 25
    resume: bool = False
    force: bool = False
    seed: int = 0
    device: str = "auto"
    tensorboard: bool = False             # also DOMAIN_tensorboard/ (not in train_config)


@dataclass
class DomainTrainOutcome:
    """What :func:`train_domain` did; ``result`` is ``None`` when a resumed run had
    nothing left to do (``step >= steps``).  ``random_parts``: what the run trained through
    on random (untrained) weights, as the checkpoint header's ``random_parts`` names them
    (``generator``, ``encoder``, a loss, ``CLIP``); empty for a real domain.
    ``random_clip``: ``"CLIP"`` is among them."""

    out: Path
    steps: int
    step: int
    result: TrainResult | None = None
    losses: dict[str, float] = field(default_factory=dict)
    random_clip: bool = False
    samples_dir: Path | None = None
    random_parts: list[str] = field(default_factory=list)


def train_domain(cfg: DomainTrainConfig, *, progress: ProgressCallback | None = None,
                 ensure_weights: WeightsCheck | None = None) -> DomainTrainOutcome:
    """Run ``train domain`` (see the module doc).  Cheap checks come first, so that a bad
    option is a one-line error before anything is loaded; then ``ensure_weights`` gets what
    the run loads by name: by default one error naming every official download it lacks
    (``--fetch`` downloads them).  ``progress`` receives the notes, notices and step events."""
    from stylebridge.plugins.losses.clip import (
        DEFAULT_SOURCE_TEXT,
        ClipGuide,
        check_clip_layers,
        mean_embeddings,
        text_templates,
    )

    if not isinstance(cfg, DomainTrainConfig):
        raise StylebridgeError(f"train_domain: expected a DomainTrainConfig, got "
                               f"{type(cfg).__name__}")
    check_progress(progress, "train_domain")
    refuse_several_processes("train_domain")  # torchrun: each process would write --out
    if cfg.tensorboard:  # before anything loads
        require_tensorboard()
    if (cfg.text is None) == (cfg.image is None):
        raise StylebridgeError("give one target: --text PROMPT or --image REF.png")
    text_mode = cfg.text is not None
    if cfg.text is not None and not cfg.text.strip():
        raise StylebridgeError("--text is empty: describe the target domain, "
                               "e.g. --text \"a 3d render in the style of Pixar\"")
    check_train_numbers(steps=cfg.steps, batch=cfg.batch, lr=cfg.lr,
                        warmup_steps=cfg.warmup_steps, mixing=cfg.mixing,
                        sample_every=cfg.sample_every, checkpoint_every=cfg.checkpoint_every)
    if cfg.source_samples < 1:
        raise StylebridgeError(f"--source-samples {cfg.source_samples}: must be >= 1")
    if cfg.freeze_layers is not None:
        parse_freeze_layers(cfg.freeze_layers)  # its syntax, before anything loads
    out = Path(cfg.out)   # a folder or an input file as --out: refused before anything loads
    state_path = check_run_out(out, resume=cfg.resume, force=cfg.force,
                               inputs=input_files(
        {"--image": cfg.image}, generator=cfg.generator,
        specs={"--encoder": cfg.encoder, "--method": cfg.method},
        clip_weights=cfg.clip_weights, losses=cfg.losses), samples=cfg.sample_every > 0)
    reference = None
    if cfg.image is not None:
        reference = load_image(cfg.image)  # one-line ImageError for missing/broken files
    source_text = cfg.source_text if cfg.source_text is not None else DEFAULT_SOURCE_TEXT
    if text_mode and not source_text.strip():
        raise StylebridgeError("--source-text is empty (e.g. --source-text Human)")
    if cfg.indomain and not text_mode:
        raise StylebridgeError("--indomain is StyleDomain's config for text targets (--text); "
                               "image targets train DiFa's losses")
    d = (TEXT_INDOMAIN_DEFAULTS if cfg.indomain else TEXT_DEFAULTS) if text_mode \
        else IMAGE_DEFAULTS
    steps = cfg.steps if cfg.steps is not None else d.steps
    if not cfg.resume and state_path.is_file():
        state_path.unlink()  # --force (else refused): not to be resumed later
    clip_weights = parse_clip_weights(cfg.clip_weights)
    clip_names = list(dict.fromkeys(cfg.clip or DEFAULT_CLIP))
    loss_specs = list(cfg.losses or d.losses)
    # as the loss classes say, before any is built
    if cfg.encoder is None and "target_latents" in declared_fields(loss_specs):
        raise StylebridgeError(NO_ENCODER)
    check_method_generator(cfg.method, cfg.generator)  # from the headers, before downloads
    (ensure_weights or require_weights)(trainer_requests(cfg.generator, loss_specs, default_losses=not cfg.losses,
                                    encoder=cfg.encoder, clip_weights=clip_weights,
                                    clips=loss_clip_models(loss_specs, cfg.clip, DEFAULT_CLIP),
                                    allow_random_clip=cfg.allow_random_clip))

    device = resolve_device(cfg.device)
    gen_path, _ = generator_path(cfg.generator)
    generator = load_generator(str(gen_path), device)[0]
    method = build_domain_method(cfg.method, generator, device=device,
                                 generator_label=str(gen_path))
    terms = build_losses(loss_specs)
    settings = TrainSettings(
        steps=steps, batch=cfg.batch if cfg.batch is not None else d.batch,
        lr=cfg.lr if cfg.lr is not None else d.lr,
        warmup_steps=cfg.warmup_steps if cfg.warmup_steps is not None else d.warmup_steps,
        mixing=cfg.mixing if cfg.mixing is not None else d.mixing,
        freeze_layers=parse_freeze_layers(cfg.freeze_layers or d.freeze_layers, generator),
        seed=cfg.seed, checkpoint_every=cfg.checkpoint_every, sample_every=cfg.sample_every)
    for note in idle_term_notes(terms, steps):  # after=N past the end; DiFa's ramp window
        emit(progress, "note", text=note)
    needs = set().union(*(t.module.required_fields() for t in terms))
    uses_clip = "clip_guide" in needs
    if uses_clip:  # a CLIP block a model lacks: said before the encoder and CLIP load
        check_clip_layers(terms, clip_names)
    encoder = None
    if cfg.encoder is not None:
        encoder = attach_encoder(load_plugin("encoder", cfg.encoder, device=device), generator)
    elif "target_latents" in needs:
        raise StylebridgeError(NO_ENCODER)

    target: dict[str, Any]
    if text_mode:
        target = {"text": cfg.text, "source_text": source_text, "templates": cfg.templates}
    else:
        assert cfg.image is not None
        target = {"image": str(cfg.image), "image_sha256": file_sha256(cfg.image),
                  "source_samples": cfg.source_samples,
                  "source_truncation": cfg.source_truncation}
    # which weights the losses use: a resumed run must not mix CLIP (or generator) weights,
    # and a run that started on random CLIP weights stays labelled as such
    fingerprint = {
        "method": {"plugin": method.name, "config": method.config()},
        "generator_config": generator.config(), "generator_sha256": file_sha256(gen_path),
        "clip_weights": clip_weights_fingerprint(clip_names if uses_clip else [], clip_weights),
        "target": target,
        "losses": loss_specs, "clip": clip_names if uses_clip else [],
        "encoder": cfg.encoder, "batch": settings.batch, "lr": settings.lr,
        "warmup_steps": settings.warmup_steps, "mixing": settings.mixing,
        "freeze_layers": list(settings.freeze_layers), "seed": settings.seed,
    }
    header_extra = {"target": target, "generator": str(gen_path), "method_spec": cfg.method,
                    # which generator file the domain was trained on: applied to another one,
                    # adapt/generate/render say so (pipelines.adapter.domain_generator_notes)
                    "generator_sha256": fingerprint["generator_sha256"],
                    "trainer": "stylebridge train domain",
                    # the whole run, as given and as resolved: repeated from this header alone
                    "train_config": run_train_config(
                        cfg, settings, fingerprint, terms, gen_path, clip_weights,
                        source_text=source_text if text_mode else None,
                        image_sha256=target.get("image_sha256"))}

    guide = None
    if uses_clip:
        models = build_clip_models(clip_names, clip_weights, allow_random=cfg.allow_random_clip,
                                   device=device, seed=settings.seed)
        detail = random_clip_detail(models, clip_weights)
        if detail is not None:
            emit(progress, "notice", text=RANDOM_CLIP_NOTICE, detail=detail)
        if text_mode:
            assert cfg.text is not None
            emit(progress, "status", text="encoding the prompts")
            templates = text_templates(cfg.templates)
            guide = ClipGuide.from_text(models, cfg.text, source_text, templates)
        else:
            emit(progress, "status",
                 text=f"averaging CLIP embeddings of {cfg.source_samples} source samples")
            v_source = mean_embeddings(models, source_image_batches(
                generator, cfg.source_samples, max(settings.batch, 8),
                cfg.source_truncation, seed=settings.seed + 1))
            layers = {layer for t in terms for layer in t.module.clip_layers}
            assert reference is not None
            guide = ClipGuide.from_image(models, reference.to(device), v_source,
                                         target=str(cfg.image), token_layers=layers)
        emit(progress, "status", text="")
    trainer = DomainTrainer(generator, method, terms, settings, out=out, guide=guide,
                            encoder=encoder, header_extra=header_extra, fingerprint=fingerprint,
                            device=device, tensorboard=cfg.tensorboard)
    if text_mode and not cfg.indomain:   # runs begun before 2aa8b44 trained --indomain's config
        old = TEXT_INDOMAIN_DEFAULTS
        frozen = list(parse_freeze_layers(old.freeze_layers, generator))
        trainer.default_changes = [change for change, unset in (
            (DefaultChange("losses", list(old.losses), "--indomain"), not cfg.losses),
            (DefaultChange("freeze_layers", frozen, f"--freeze-layers {old.freeze_layers}"
                           if cfg.losses else "--indomain"), not cfg.freeze_layers)) if unset]
    outcome = DomainTrainOutcome(out=out, steps=steps, step=0, random_clip=trainer.random_clip,
                                 samples_dir=trainer.samples_dir,
                                 random_parts=[*trainer.random_parts,
                                               *(["CLIP"] if trainer.random_clip else [])])
    return trainer.resume_and_train(outcome, resume=cfg.resume, progress=progress)


__all__ = [
    "DEFAULT_CLIP", "IMAGE_DEFAULTS", "RANDOM_CLIP_NOTICE", "STATE_KIND", "STATE_SUFFIX",
    "TEXT_DEFAULTS", "TEXT_INDOMAIN_DEFAULTS", "WARMUP_START_LR", "DomainTrainConfig",
    "DomainTrainOutcome", "DomainTrainer", "LossTerm", "TrainResult", "TrainSettings",
    "TrainingDiverged", "TrainingDivergedError", "build_clip_models", "build_domain_method",
    "build_losses", "clip_weights_record", "file_sha256", "installed_clip_weights",
    "parse_freeze_layers", "random_clip_detail", "render", "run_train_config", "sample_wplus",
    "source_image_batches", "state_path_for", "train_domain",
]
