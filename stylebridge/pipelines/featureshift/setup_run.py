"""The set-up of a FeatureShift run (:meth:`FeatureShiftTrainer.setup
<stylebridge.pipelines.featureshift.trainer.FeatureShiftTrainer.setup>`): ``--out`` and
``--data`` checked, the dataset opened (:func:`open_data`), the generator, domains, network
(``--init``), losses, optimiser, scheduler, mixed precision, DDP and a resumed state
loaded (:func:`setup_trainer`), everything before the first step."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from stylebridge.core.checkpoint import is_random_weights
from stylebridge.core.read_inputs import check_not_an_input
from stylebridge.core.stylegan2.checkpoint import load_stylegan2
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.featureshift.dataset import INDEX, DatasetError, _state_digest
from stylebridge.pipelines.featureshift.distributed import setup_distributed
from stylebridge.pipelines.featureshift.losses import build_loss_sets
from stylebridge.pipelines.featureshift.reader import FeatureShiftDataset, SamplePlan
from stylebridge.pipelines.featureshift.state import keep_saved_readings
from stylebridge.pipelines.training.board import require_tensorboard
from stylebridge.pipelines.training.losses import random_loss_names
from stylebridge.pipelines.training.progress import emit
from stylebridge.pipelines.training.schedule import warmup_cosine_factor
from stylebridge.pipelines.training.state import file_sha256, seed_everything
from stylebridge.plugins.renderers.featureshift import FeatureShift, load_featureshift
from stylebridge.registry.resolve import load_plugin

if TYPE_CHECKING:
    from stylebridge.pipelines.featureshift.trainer import FeatureShiftTrainer


def open_data(trainer: FeatureShiftTrainer) -> None:
    """``--data`` opened; a folder that is missing or holds no dataset is named by it."""
    try:
        trainer.data = FeatureShiftDataset(trainer.cfg.data)
    except DatasetError as exc:
        if exc.path is None or exc.path != Path(trainer.cfg.data):
            raise
        raise DatasetError(f"--data {trainer.cfg.data}: {exc.message}") from None


def setup_trainer(trainer: FeatureShiftTrainer) -> None:
    """:meth:`FeatureShiftTrainer.setup <stylebridge.pipelines.featureshift.trainer.
    FeatureShiftTrainer.setup>`: everything loaded and checked before the first step."""
    cfg = trainer.cfg
    if cfg.tensorboard:
        require_tensorboard()  # before any model loads
    out, data = trainer.out.resolve(), Path(cfg.data).resolve()
    if data.is_dir() and (out == data or data in out.parents):  # the two runs' files mixed
        raise StylebridgeError(f"--out {trainer.out}: is {'the' if out == data else 'inside the'}"
                               f" --data folder {cfg.data}, which holds the dataset alone: "
                               "choose another --out")
    trainer.dist, trainer.device = setup_distributed(cfg.device)
    if trainer.state_path.exists() and not cfg.resume:
        raise StylebridgeError("already holds a training state; pass --resume to continue it "
                               "or choose a new --out", path=trainer.out)
    if trainer.model_path.exists() and not trainer.state_path.exists():  # not a run of ours
        raise StylebridgeError(f"holds a {trainer.model_path.name} but no training state (a "
                               "model from elsewhere, or a run whose state was deleted): "
                               "choose a new --out, or move it away", path=trainer.out)
    if not (Path(cfg.data) / INDEX).is_file():  # no dataset there: said before downloads
        trainer._open_data()
    # every missing download named at once (after any unknown loss name), before the
    # dataset is read
    trainer.ensure_weights(cfg.weight_requests())
    trainer._open_data()
    trainer.layer = trainer.data.layer
    loaded = load_stylegan2(cfg.generator, device=trainer.device)
    gen = loaded.generator
    #: what this run trains on that holds random weights: labelled on screen and in
    #: model.safetensors (random_weights), so that `adapt --featureshift` labels it too
    trainer.random_parts = list(dict.fromkeys(trainer.data.random_parts + (
        ["generator"] if is_random_weights(loaded.header.extra) else [])))
    want = trainer.data.settings.get("generator", {}).get("digest")
    if want is not None and _state_digest(gen) != want:
        raise StylebridgeError(f"is not the generator the dataset {cfg.data} was built with",
                               path=cfg.generator)
    #: recorded in model.safetensors: `adapt --featureshift` notes another generator file
    trainer.generator_sha256 = file_sha256(cfg.generator)
    trainer.generator = gen.eval().requires_grad_(False)
    trainer.methods = [load_plugin("domain_method", str(trainer.data.domain_path(d)), device=trainer.device,
                                registry=trainer.registry).requires_grad_(False)
                    for d in range(trainer.data.n_domains)]
    trainer.plan = SamplePlan(trainer.data.shard_rows, trainer.data.n_domains, seed=cfg.seed)
    per_step = cfg.batch_size * trainer.dist.world
    if per_step > trainer.plan.size:  # before any step, log or folder
        raise StylebridgeError(
            f"the dataset has {trainer.plan.size} samples, fewer than one batch ({per_step}"
            f"{f' = {cfg.batch_size} x {trainer.dist.world} processes' if trainer.dist.world > 1 else ''}"
            "); lower --batch", path=cfg.data)

    # the network
    channels = int(trainer.data.feature_shape[0])
    seed_everything(cfg.seed, trainer.device)  # torch, Python, numpy: saved with the run
    trainer.model = FeatureShift(feature_channels=channels,
                              hidden=cfg.hidden or (3 * channels) // 2,
                              n_blocks=cfg.n_blocks, layer=trainer.layer,
                              residual=cfg.residual).to(trainer.device)
    if cfg.init:
        init, init_header = load_featureshift(cfg.init, device=trainer.device)
        if init.config() != trainer.model.config():
            raise StylebridgeError(f"--init has config {init.config()}, this run needs "
                                   f"{trainer.model.config()}", path=cfg.init)
        trainer.model.load_state_dict(init.state_dict())
        if is_random_weights(init_header.extra):  # its random inputs carry over
            trainer.random_parts.append("the --init model")
    trainer.model.train()
    for written in (trainer.model_path, trainer.state_path, trainer.log_path):
        check_not_an_input(written, written)   # a link to the generator or --init (read)
    trainer.ema = (copy.deepcopy(trainer.model).eval().requires_grad_(False)
                if cfg.ema > 0 else None)

    if cfg.resume and trainer.state_path.exists():  # before the losses: part of their specs
        trainer.cfg, notice = keep_saved_readings(cfg, trainer.state_path)
        cfg = trainer.cfg
        if notice is not None and trainer.dist.main:
            emit(trainer.progress, "notice", text=notice)
    # losses (after the network: a loss may draw random weights from the seeded RNG)
    trainer.loss_sets = build_loss_sets(cfg, registry=trainer.registry, device=trainer.device)
    trainer.random_parts = list(dict.fromkeys(trainer.random_parts + random_loss_names(
        [t for terms in trainer.loss_sets.values() for t in terms])))

    # optimisation
    params = list(trainer.model.parameters())
    opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    trainer.optimizer = opt_cls(params, lr=cfg.lr, betas=tuple(cfg.betas),
                             weight_decay=cfg.weight_decay)
    trainer.scheduler = torch.optim.lr_scheduler.LambdaLR(
        trainer.optimizer, warmup_cosine_factor(cfg.warmup_steps, cfg.steps, cfg.scheduler))
    amp = cfg.amp
    if trainer.device.type != "cuda":
        amp = "off"
    elif amp == "auto":
        amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    trainer.amp_dtype = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    trainer.scaler = torch.amp.GradScaler("cuda", enabled=trainer.amp_dtype == torch.float16)
    trainer.ddp: nn.Module = trainer.model
    if trainer.dist.backend is not None:
        trainer.ddp = DistributedDataParallel(
            trainer.model, device_ids=[trainer.device.index] if trainer.device.type == "cuda" else None)
    if cfg.resume and trainer.state_path.exists():
        trainer._load_state()
    elif cfg.resume and trainer.dist.main:
        emit(trainer.progress, "info", text=f"no training state in {trainer.out}; starting a new run")


__all__ = ["open_data", "setup_trainer"]
