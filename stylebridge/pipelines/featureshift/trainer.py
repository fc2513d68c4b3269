"""FeatureShift: correct an FSE feature map for a domain-adapted image (thesis, "Improving the gap").

The network, its Δ convention (``Δ = G^K(s(w_E)) − G^K(s_domain(w_E))``, recorded in every
checkpoint header and in the dataset index; ``Δ = 0`` means "no domain") and inference are
in :mod:`stylebridge.plugins.renderers.featureshift`, where FeatureShift is a renderer
plugin; the dataset in :mod:`stylebridge.pipelines.featureshift.dataset` (and
:mod:`.reader`); the commands
``featureshift build-dataset`` and ``train featureshift`` in
:mod:`stylebridge.cli.commands.featureshift` and :mod:`stylebridge.cli.commands.train`.

This package: :mod:`.config` (:class:`TrainConfig`), :mod:`.losses` (the three loss
sets and the phases), :mod:`.passes` (one pass: rows and loss batches), :mod:`.render`
(mixed-domain batches), :mod:`.distributed` (DDP),
:mod:`.state` (checkpoints and exact resume), :mod:`.samples` (the sample grids),
:mod:`.setup_run` (the set-up before the first step) and this module (the trainer and its
loop);
the parts shared with ``train domain`` are in :mod:`stylebridge.pipelines.training`.

**Training** (:func:`train_featureshift`, thesis losses and phases):

1. from the dataset: ``w_E`` (guide), the domain target ``G(s_d(w_E))`` and ``Δ``
   (stored, or computed on the fly from ``w_E``), the FSE inversion ``(w_F, F)`` of the
   e4e-inverted image ``G(w_E)``, and the FSE inversion of the real image;
2. *domain loss*: ``G(s_d(w_F), K := FeatureShift(F, Δ))`` vs the e4e domain inversion;
3. *inversion loss*: ``G(s(w_F^real), K := FeatureShift(F^real, 0))`` vs the real image,
   with the frozen StyleGAN2 discriminator's adversarial term switched on after N steps
   (default 10 000, :data:`~.config.ADVERSARIAL_AFTER`, whatever the pre-training);
4. optional *domain-inversion loss* (LPIPS 0.2 + ID 0.025 in the thesis): "the generated
   domain adapted image" vs the real image; ``--domain-inversion-source inference``
   (default): the inference-path output ``G(s_d(w_F^real), K := FeatureShift(F^real, Δ))``;
   ``domain-branch``: the domain loss' output of step 2 (:mod:`.passes`);

``total = domain + inversion [+ domain-inversion]``; the first
``pretrain_inversion_steps`` (10 000) steps use the inversion loss only.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from stylebridge.core.checkpoint import RANDOM_NOTICE
from stylebridge.core.io import DISK_FULL
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.featureshift import passes
from stylebridge.pipelines.featureshift.config import (
    THESIS_DOMAIN_INVERSION_LOSSES,
    THESIS_LOSSES,
    TrainConfig,
    option_name,
    split_specs,
)
from stylebridge.pipelines.featureshift.distributed import (
    all_min,
    mean_over_ranks,
    process_device,
)
from stylebridge.pipelines.featureshift.losses import (
    LABELS,
    PROVIDES,
    losses_line,
    phase,
    schedule_notes,
)
from stylebridge.pipelines.featureshift.render import (
    domain_styles,
    images_to_uint8,
    synthesis_by_domain,
    uint8_to_images,
)
from stylebridge.pipelines.featureshift.samples import write_samples
from stylebridge.pipelines.featureshift.setup_run import open_data, setup_trainer
from stylebridge.pipelines.featureshift.state import (
    STATE_KIND,
    all_finite,
    check_run_out,
    disk_full_error,
    load_state,
    save_state,
    take_over_outputs,
)
from stylebridge.pipelines.streams import keep_random_streams
from stylebridge.pipelines.training.board import (
    BOARD_DIR,
    Board,
    open_board,
    set_aside,
)
from stylebridge.pipelines.training.guard import TrainingDivergedError
from stylebridge.pipelines.training.interrupt import StopRequests
from stylebridge.pipelines.training.log import JsonlLog
from stylebridge.pipelines.training.progress import ProgressCallback, check_progress, emit
from stylebridge.pipelines.training.result import TrainResult
from stylebridge.plugins.renderers.featureshift import (
    DELTA_FORMULA,
    DELTA_SIGN,
    KIND,
    FeatureShift,
    apply_featureshift,
    domain_delta,
    domain_quantities,
    load_featureshift,
    save_featureshift,
)
from stylebridge.registry import get_registry
from stylebridge.registry.needed import WeightsCheck, require_weights

#: fp16 training stops after this many consecutive steps skipped for NaN/Inf gradients.
MAX_SKIPPED_STEPS = 50



class FeatureShiftTrainer:
    """One training run (see :func:`train_featureshift`).

    The LossBatch fields it fills, per loss set: :data:`PROVIDES` (checked in
    :meth:`setup` against every loss's ``requires``).
    """

    #: loss set → the LossBatch fields this trainer fills for it
    PROVIDES = PROVIDES

    def __init__(self, cfg: TrainConfig, *, registry: Any = None,
                 progress: ProgressCallback | None = None,
                 on_step: Callable[[FeatureShiftTrainer], None] | None = None,
                 ensure_weights: WeightsCheck | None = None) -> None:
        cfg.validate()
        self.cfg = cfg
        self.registry = registry or get_registry()
        #: what checks the losses' official weights before loading (default: one line naming
        #: every missing one; ``--fetch`` / ``stylebridge.fetching()``: downloads them)
        self.ensure_weights = ensure_weights or partial(require_weights, registry=self.registry)
        self.progress = progress
        self.on_step = on_step
        self.out = Path(cfg.out)
        self.state_path = self.out / "state.safetensors"
        self.model_path = self.out / "model.safetensors"
        self.log_path = self.out / "log.jsonl"
        self.log = JsonlLog(self.log_path)
        self.history: list[dict[str, Any]] = []
        self.step = 0
        self.epoch = 0
        self.offset = 0
        self.last_saved = -1
        self.resumed = False  # continues a saved state (keeps and trims its log)
        self.skipped_in_a_row = 0  # consecutive steps the fp16 grad scaler skipped
        self.skipped_since_log = 0  # steps it skipped since the last log record
        self.scheduler_stepped = False  # in this process
        self.board: Board | None = None  # --tensorboard (rank 0, while the loop runs)

    # -- set-up ----------------------------------------------------------------------------------
    def _open_data(self) -> None:
        """``--data`` opened (:func:`~.setup_run.open_data`)."""
        open_data(self)

    def setup(self) -> None:
        """Everything loaded and checked before the first step
        (:func:`~.setup_run.setup_trainer`)."""
        setup_trainer(self)

    # -- one step --------------------------------------------------------------------------------
    def _next_batch(self) -> dict[str, Tensor]:
        size = self.cfg.batch_size * self.dist.world
        entries, self.epoch, self.offset = self.plan.batch(self.epoch, self.offset, size)
        b = self.cfg.batch_size
        mine = entries[self.dist.rank * b:(self.dist.rank + 1) * b]
        data = self.data.read(mine)
        return {k: v.to(self.device) for k, v in data.items()}

    def phase(self, step: int | None = None) -> str:
        """``inversion`` (pre-training) or ``joint`` at ``step`` (default: the current one)."""
        return phase(self.cfg, self.step if step is None else step)

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
        """The stacked inputs of one pass (:func:`~.passes.compose`)."""
        return passes.compose(self, data, domain=domain, adapted=adapted)

    def _guide_features(self, data: dict[str, Tensor], parts: dict[str, Any], joint: bool
                        ) -> dict[str, Tensor]:
        """``features_guide`` when a loss reads it (:func:`~.passes.guide_features`)."""
        return passes.guide_features(self, data, parts, joint)

    def _render(self, model: nn.Module, parts: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """FeatureShift on the stacked features, then one generator pass → (images, F')."""
        autocast = (torch.autocast(self.device.type, dtype=self.amp_dtype)
                    if self.amp_dtype is not None else contextlib.nullcontext())
        with autocast:
            shifted = model(parts["features"], parts["deltas"])
            images = synthesis_by_domain(self.generator, parts["styles"], self.layer, shifted,
                                parts["keys"], self.methods)
        return images.float(), shifted.float()

    def _forward(self, data: dict[str, Tensor], step: int
                 ) -> tuple[Tensor | None, dict[str, float]]:
        """Loss of one batch ``(total, unweighted values)`` (:func:`~.passes.forward`)."""
        return passes.forward(self, data, step)

    def _train_step(self) -> dict[str, Any]:
        cfg, step = self.cfg, self.step
        data = self._next_batch()
        self.optimizer.zero_grad(set_to_none=True)
        total, values = self._forward(data, step)
        if total is None:
            sets = self.loss_sets["inversion" if phase(cfg, step) == "inversion" else "domain"]
            why = ", ".join(f"{t.key}: " + ("weight 0" if t.weight == 0 else f"after={t.after}")
                            for t in sets) or "none given"
            raise StylebridgeError(f"no loss is active at step {step} ({why}); give a term "
                                   "that acts from the start")
        finite = all_min(float(torch.isfinite(total.detach()).all()), self.dist, self.device)
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

    def _diverged(self, step: int, what: str) -> None:
        """Stop at update ``step + 1`` (``step`` updates were done, as the log counts)."""
        where = (f"the last checkpoint, written before this, is {self.state_path} (step "
                 f"{self.last_saved}; resume from it with other settings, e.g. a lower --lr)"
                 if self.last_saved >= 0 else "no checkpoint was written yet")
        self._log({"event": "diverged", "step": step, "reason": what})
        raise TrainingDivergedError(f"training stopped at step {step + 1} (after {step} "
                                    f"completed): {what}; {where}")

    # -- checkpoints and log ---------------------------------------------------------------------
    def _save_if_due(self) -> None:
        if self.last_saved != self.step:
            self.save()

    def _save_stopped(self) -> None:
        """The save of a run stopped by a signal: every rank waits for rank 0's write."""
        self._save_if_due()
        if self.dist.backend is not None:
            dist.barrier()

    def _any_rank(self, signum: int) -> int:
        """The signal any process had, 0 for none (one all-reduce, MAX, per step): every rank
        names the same signal (the highest number received, where ranks got different ones)
        and exits with the same code."""
        flag = torch.tensor([float(signum)], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag.item())

    def save(self) -> None:
        """Write the training state and ``model.safetensors`` (rank 0, atomically); weights
        that became NaN/Inf are not saved.  Every rank calls it at the same step and counts
        it saved (its divergence message names the same checkpoint as rank 0's); the weights
        are the same on every rank, so every rank finds them finite or not alike."""
        if not all_finite(self.model):
            self._diverged(self.step - 1, "the weights became NaN/Inf (not saved)")
        if self.dist.main:
            save_state(self)
        self.last_saved = self.step

    def _load_state(self) -> None:
        load_state(self)
        self.resumed = True
        if self.dist.main:
            # records of steps after the checkpoint are about to be written again
            self.log.trim(self.step)

    def _log(self, record: dict[str, Any]) -> None:
        if self.dist.main:
            self.history.append(self.log.append(record))
            if self.board is not None:
                self.board.record(self.history[-1])

    def _new_log(self, progress: ProgressCallback | None) -> None:
        """A fresh run starts a new log: an earlier run's (diverged, killed before its first
        checkpoint) is renamed to ``log.N.jsonl``, never appended to or deleted."""
        if not self.dist.main or self.resumed:
            return
        for aside, what in ((self.log.set_aside(), "log"),  # and its TensorBoard events
                            (set_aside(self.out / BOARD_DIR), "TensorBoard events")):
            if aside is not None:
                verb = "were" if what.endswith("s") else "was"
                emit(progress, "info", text=f"a new run: the {what} of an earlier run in "
                                            f"{self.out} {verb} moved aside to {aside.name}")

    def write_samples(self) -> Path | None:
        """``OUT/samples/step_N.png`` (:func:`~stylebridge.pipelines.featureshift.samples.
        write_samples`); changes no state."""
        path = write_samples(self)
        if path is not None and self.board is not None:
            self.board.image("samples", path, self.step)
        return path

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        """The loop: steps, log records, checkpoints, samples, ``on_step``; progress events
        (rank 0) ``start`` / ``step`` (text ``PHASE loss TOTAL``) / ``end``."""
        cfg = self.cfg
        if self.dist.main:  # temporaries a kill left; a model left behind the state
            take_over_outputs(self)
        if cfg.resume and self.step >= cfg.steps:  # a finished run: nothing to add to its log
            if self.dist.main:
                more = ("a larger --steps trains on" if cfg.scheduler != "cosine" else
                        "its cosine schedule ends there: --init MODEL into a new --out trains on")
                emit(self.progress, "info",
                     text=f"{self.out} is already at --steps {cfg.steps}; {more}")
            if self.dist.created:
                dist.destroy_process_group()
            return TrainResult(step=self.step, history=self.history, checkpoint=self.model_path,
                               state_path=self.state_path, log_path=self.log_path)
        progress = self.progress if self.dist.main else None
        try:
            self._run(progress)
        except OSError as exc:
            if exc.errno not in DISK_FULL:
                raise
            raise disk_full_error(self, exc) from None
        finally:
            if self.dist.created:
                dist.destroy_process_group()
        return TrainResult(step=self.step, history=self.history, checkpoint=self.model_path,
                           state_path=self.state_path, log_path=self.log_path,
                           events=self.out / BOARD_DIR if cfg.tensorboard and self.dist.main
                           else None)

    def _run(self, progress: ProgressCallback | None) -> None:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        self._new_log(progress)
        if cfg.tensorboard and self.dist.main:
            self.board = open_board(self.out / BOARD_DIR, self.log,
                                    self.step if self.resumed else None, progress,
                                    samples=self.out / "samples")
        try:
            self._loop(progress)
        finally:
            if self.board is not None:
                self.board.close()
                self.board = None

    def _loop(self, progress: ProgressCallback | None) -> None:
        cfg = self.cfg
        self._log({"event": "start", "step": self.step, "resumed": self.step > 0,
                   "world_size": self.dist.world, "backend": self.dist.backend,
                   "device": str(self.device),
                   "losses": {LABELS[k]: [t.describe() for t in v]
                              for k, v in self.loss_sets.items()},
                   "config": cfg.to_json(), "model": self.model.config(),
                   "delta_sign": DELTA_SIGN, "layer": self.layer,
                   "random_parts": self.random_parts})
        t0, s0 = time.perf_counter(), self.step
        emit(progress, "info", text=losses_line(cfg, self.loss_sets))
        for note in schedule_notes(cfg, self.loss_sets, self.device):
            emit(progress, "note", text=note)
        if self.random_parts:
            emit(progress, "notice", text=f"{RANDOM_NOTICE}: ",
                 detail=f"trained on {', '.join(self.random_parts)} with random (untrained) "
                        "weights; the model learns no real domain shift")
        emit(progress, "start", step=self.step, total=cfg.steps, text="featureshift")
        try:
            # Ctrl-C / SIGTERM: save after the step, stop (under torchrun its forwarded
            # copy of the same signal is not a second request)
            with StopRequests(distributed=self.dist.backend is not None) as stops:
                while self.step < cfg.steps:
                    record = self._train_step()
                    if cfg.log_every and (self.step % cfg.log_every == 0
                                          or self.step == cfg.steps):
                        dt = time.perf_counter() - t0
                        record["steps_per_s"] = (self.step - s0) / dt if dt > 0 else None
                        t0, s0 = time.perf_counter(), self.step
                        self._log(mean_over_ranks(record, self.dist, self.device))
                        self.skipped_since_log = 0
                    emit(progress, "step", step=self.step, total=cfg.steps,
                         text=f"{record['phase']} loss {record['total']:.4f}")
                    # samples first: a run killed before the state resumes and redraws them
                    if cfg.sample_every and self.step % cfg.sample_every == 0:
                        self.write_samples()
                    if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                        self.save()
                    if self.on_step is not None:
                        self.on_step(self)
                    stops.stop_if_requested(self.step, self.state_path, self._save_stopped,
                                            agree=self._any_rank if self.dist.world > 1
                                            else None)
        finally:
            emit(progress, "end", step=self.step, total=cfg.steps)
        if self.last_saved != self.step:
            self.save()
        self._log({"event": "end", "step": self.step})
        if self.dist.backend is not None:
            dist.barrier()  # no rank tears the group down while rank 0 still writes


def train_featureshift(cfg: TrainConfig, *, registry: Any = None,
                       progress: ProgressCallback | None = None,
                       on_step: Callable[[FeatureShiftTrainer], None] | None = None,
                       ensure_weights: WeightsCheck | None = None) -> TrainResult:
    """Train FeatureShift on a dataset from ``featureshift build-dataset`` (see the module doc).

    Writes ``OUT/state.safetensors`` (everything needed to resume: weights, optimiser,
    scheduler, grad scaler, EMA, RNG states, data position) and ``OUT/model.safetensors``
    (the ``featureshift`` checkpoint; EMA weights when ``ema > 0``) every
    ``checkpoint_every`` steps and at the end, ``OUT/log.jsonl`` and
    ``OUT/samples/step_*.png``.  Under torchrun it trains with DDP (the batch is per
    process; rank 0 writes; end such a process with
    :func:`~stylebridge.pipelines.featureshift.distributed.end_process`).  ``progress``
    receives the progress events (rank 0); ``on_step(trainer)`` runs after every step
    (tests, hooks); ``ensure_weights`` gets the losses' weights requests before anything
    loads (``stylebridge.fetching()`` downloads what is missing, as ``--fetch`` does).
    """
    check_progress(progress, "train_featureshift")
    with check_run_out(cfg):  # checked, and held from another run, before any model loads
        trainer = FeatureShiftTrainer(cfg, registry=registry, progress=progress, on_step=on_step,
                                      ensure_weights=ensure_weights)
        # the run seeds the global generators: the caller's are as they were afterwards
        with keep_random_streams(process_device(cfg.device)):
            trainer.setup()
            return trainer.run()


#: the older name of :func:`synthesis_by_domain`
_synthesis = synthesis_by_domain

__all__ = [
    "DELTA_FORMULA", "DELTA_SIGN", "KIND", "MAX_SKIPPED_STEPS", "STATE_KIND",
    "THESIS_DOMAIN_INVERSION_LOSSES", "THESIS_LOSSES", "FeatureShift", "FeatureShiftTrainer",
    "TrainConfig", "TrainResult", "TrainingDivergedError", "apply_featureshift", "domain_delta",
    "domain_quantities", "domain_styles", "images_to_uint8", "load_featureshift",
    "option_name", "save_featureshift", "split_specs", "synthesis_by_domain",
    "train_featureshift", "uint8_to_images",
]
