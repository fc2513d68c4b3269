"""Checkpoints of a FeatureShift run: ``OUT/state.safetensors`` (exact resume) and
``OUT/model.safetensors`` (the ``featureshift`` checkpoint, EMA weights when on).

The state holds the weights, EMA, optimiser, scheduler, grad scaler, every RNG state,
the data position and the state of losses that keep one
(:meth:`~stylebridge.core.interfaces.Loss.training_state`); its header records the
settings, so that a resume with other settings, another dataset, another world size or
another AMP mode is refused in one line.  It also records a CPU run's torch thread count and
the stylebridge and torch versions: a resume with another count continues within
floating-point rounding, not bit for bit, one by other versions (or of a state that records
none, from an earlier stylebridge) not necessarily bit for bit; either says so in one
``notice`` (not refused).
"""

from __future__ import annotations

import contextlib
import json
import os
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from stylebridge.core.checkpoint import (
    load_checkpoint,
    read_header,
    save_checkpoint,
)
from stylebridge.errors import CheckpointError, StylebridgeError
from stylebridge.pipelines.featureshift.config import (
    ADVERSARIAL_AFTER,
    DOMAIN_INVERSION_SOURCES,
    TrainConfig,
    option_name,
)
from stylebridge.pipelines.featureshift.distributed import amp_name
from stylebridge.pipelines.featureshift.losses import DOMAIN_ONLY, LABELS
from stylebridge.pipelines.resume import held
from stylebridge.pipelines.run_record import software
from stylebridge.pipelines.training.losses import canonical_loss_spec
from stylebridge.pipelines.training.outputs import (
    check_out_writable,
    remove_run_temporaries,
    sample_names,
)
from stylebridge.pipelines.training.progress import emit
from stylebridge.pipelines.training.state import (
    DAMAGED,
    check_claimed,
    check_provenance,
    check_tensors,
    cpu_threads,
    damaged,
    global_rng_state,
    header_value,
    json_safe,
    load_loss_states,
    load_optimizer_tensors,
    loss_state_tensors,
    optimizer_tensors,
    resume_notice,
    said,
    set_global_rng_state,
    software_versions,
    then_and_now,
)
from stylebridge.plugins.renderers.featureshift import PLUGIN, save_featureshift

if TYPE_CHECKING:
    from stylebridge.pipelines.featureshift.trainer import FeatureShiftTrainer

STATE_KIND = "featureshift_state"


def _loss_modules(trainer: FeatureShiftTrainer) -> list[tuple[str, Any]]:
    """``(prefix, Loss)`` of every term, by set and index (shared modules once)."""
    out, seen = [], set()
    for name, terms in trainer.loss_sets.items():
        for j, term in enumerate(terms):
            if id(term.module) not in seen:
                seen.add(id(term.module))
                out.append((f"loss.{name}.{j}.", term.module))
    return out


def model_extra(trainer: FeatureShiftTrainer) -> dict[str, Any]:
    """The header ``extra`` of ``model.safetensors``."""
    s = trainer.data.settings
    return {
        "step": trainer.step,
        "ema": trainer.cfg.ema or None,
        "guiding_encoder": {"name": s["guide"]["name"], "config": s["guide"]["config"]},
        "encoder": {"name": s["encoder"]["name"], "config": s["encoder"]["config"]},
        "generator": s["generator"]["config"],
        "domains": [d["name"] for d in trainer.data.domains],
        "sources": trainer.data.index.get("sources", {}),
        "dataset": str(trainer.cfg.data),
        "random_weights": bool(trainer.random_parts),  # trained on random-weight inputs
        "random_parts": list(trainer.random_parts),
        # which generator file it was trained on: `adapt --featureshift` notes another one
        "generator_file": str(trainer.cfg.generator),
        "generator_sha256": trainer.generator_sha256,
        # what it was trained with, as log.jsonl's start record says it (`stylebridge info`)
        "losses": {LABELS[k]: [t.describe() for t in v] for k, v in trainer.loss_sets.items()},
        "loss_configs": loss_configs(trainer),
        "train_config": trainer.cfg.to_json(),
        "device": str(trainer.device),  # what it last trained on (train_config has no device)
        # the dataset's content (the state's resume check) and where it was; what the
        # numbers depend on besides the settings (docs/training.md)
        "dataset_identity": trainer.data.identity(),
        "dataset_path": str(Path(trainer.cfg.data).resolve()),
        "software": software(), "cpu_threads": cpu_threads(trainer.device),
    }


def loss_configs(trainer: FeatureShiftTrainer) -> dict[str, dict[str, Any]]:
    """What each loss resolved its options to (``corr``'s ``auto`` norm, for one), by set and
    term: a run resumes only with the same, even where the spec text is unchanged.  File
    paths are left out: a moved discriminator or backbone file may be resumed with, as a moved
    ``--generator`` may."""
    def settled(config: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in json_safe(config).items()
                if not (isinstance(v, str) and ("/" in v or "\\" in v))}

    return {name: {term.key: settled(term.module.config()) for term in terms}
            for name, terms in trainer.loss_sets.items()}


def _with_new_defaults_as_saved(trainer: FeatureShiftTrainer,
                                saved: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """:func:`loss_configs`, less the options a loss gained since ``saved`` was written and
    holds at their defaults (``feature_reg``'s ``target=fse``): such a state trains the same."""
    import inspect

    now = loss_configs(trainer)
    for name, terms in trainer.loss_sets.items():
        for term in terms:
            old, new = saved.get(name, {}).get(term.key), now[name].get(term.key)
            if not isinstance(old, dict) or not isinstance(new, dict):
                continue
            params = inspect.signature(type(term.module).__init__).parameters
            for key in set(new) - set(old):
                default = params[key].default if key in params else inspect.Parameter.empty
                if default is not inspect.Parameter.empty and json_safe({key: default}) == {
                        key: new[key]}:
                    del new[key]
    return now


def _adversarial_as_built(cfg: TrainConfig, saved: dict[str, Any] | None,
                          now: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """``saved`` and ``now`` without the ``--adversarial`` term where only one has it: a run
    that ends before the term's start does not build it (``build_loss_sets``), so a state of a
    shorter run lacks it and one resumed for fewer steps drops it; its settings are compared
    with the train config's ``adversarial*`` fields."""
    if saved is None or cfg.adversarial <= 0:
        return saved, now
    typed = cfg.losses if cfg.inversion_losses is None else cfg.inversion_losses
    n = 1 + sum(str(t).split(":", 1)[0].strip() == "adversarial" for t in typed)
    key = "adversarial" if n == 1 else f"adversarial#{n}"
    was, is_ = dict(saved.get("inversion") or {}), dict(now.get("inversion") or {})
    if (key in was) == (key in is_):
        return saved, now
    was.pop(key, None)
    is_.pop(key, None)
    return {**saved, "inversion": was}, {**now, "inversion": is_}


#: what a state's ``train_config`` meant by a field it lacks (written before the field was):
#: the domain-inversion loss read the inference path, and ``adversarial_after`` unset started
#: the frozen-discriminator term at the end of the pre-training (``None`` here)
SAVED_BEFORE: dict[str, Any] = {"domain_inversion_source": DOMAIN_INVERSION_SOURCES[0],
                                "adversarial_after_default": None}


def saved_train_config(extra: dict[str, Any]) -> dict[str, Any]:
    """The ``train_config`` of a state's header, the fields it predates read as it meant them
    (:data:`SAVED_BEFORE`)."""
    return {**SAVED_BEFORE, **(extra.get("train_config") or {})}


def keep_saved_readings(cfg: TrainConfig, state_path: Path) -> tuple[TrainConfig, str | None]:
    """``cfg`` for resuming the state at ``state_path``, with its recorded reading of an unset
    ``--adversarial-after`` (``adversarial_after_default``) where ``cfg`` has today's default:
    a state written when the term started at the end of the pre-training resumes so, exactly
    as it would have (the default became :data:`ADVERSARIAL_AFTER` later).  Also the notice to
    show when that moves the term's start; ``(cfg, None)`` when nothing changes or the state
    cannot be read (:func:`load_state` reports that).  Called before the loss sets are built:
    the term's start is part of its spec."""
    from dataclasses import replace

    try:
        saved = saved_train_config(read_header(state_path).extra)
    except (StylebridgeError, OSError, AttributeError, TypeError):
        return cfg, None
    recorded = saved.get("adversarial_after_default")
    if cfg.adversarial_after_default != ADVERSARIAL_AFTER or recorded == ADVERSARIAL_AFTER:
        return cfg, None
    kept = replace(cfg, adversarial_after_default=recorded)
    if cfg.adversarial <= 0 or cfg.adversarial_after is not None or \
            kept.adversarial_start() == cfg.adversarial_start():
        return kept, None
    why = " (the end of its --pretrain-inversion-steps)" if recorded is None else ""
    return kept, (f"{state_path} was written before the adversarial term's default start "
                  f"became step {ADVERSARIAL_AFTER}: this run keeps the start it was begun "
                  f"with, step {kept.adversarial_start()}{why}")


def comparable_config(config: dict[str, Any]) -> dict[str, Any]:
    """A ``train_config`` with its loss specs in one spelling (:func:`canonical_loss_spec`),
    ``inversion_losses`` unset read as the set the trainer copies from ``losses`` and
    ``domain_discriminator`` read as the ``domain_adversarial`` term it adds: a resume compares
    what the settings mean, not how they were typed."""
    out = dict(config)
    if out.get("inversion_losses") is None and isinstance(out.get("losses"), list):
        # as the trainer builds it: the --loss terms but the domain-only ones
        out["inversion_losses"] = [spec for spec in out["losses"]
                                   if str(spec).split(":", 1)[0].strip() not in DOMAIN_ONLY]
    for key in ("losses", "inversion_losses", "domain_inversion_losses"):
        if isinstance(out.get(key), list):
            out[key] = [canonical_loss_spec(str(spec)) for spec in out[key]]
    if out.get("domain_discriminator") is not None and isinstance(out.get("losses"), list):
        # `--domain-discriminator W` is `--loss domain_adversarial:W` appended to the domain set
        out["losses"] = [*out["losses"], canonical_loss_spec(
            f"domain_adversarial:{out['domain_discriminator']}")]
        out["domain_discriminator"] = None
    return out


#: the TrainConfig fields of loss specs → the loss set their terms open
_LOSS_FIELDS = {"losses": "domain", "inversion_losses": "inversion",
                "domain_inversion_losses": "domain_inversion"}


def _shown(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return str(value)


def _spelled(canon: Any) -> str:
    """A :func:`canonical_loss_spec` as a spec again (``corr:1000:on=features``)."""
    if not isinstance(canon, list):
        return str(canon)
    name, weight, options = canon
    opts = ",".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in options)
    return f"{name}:{weight:g}" + (f":{opts}" if opts else "")


def _meanings(specs: list[Any], resolved: dict[str, Any] | None) -> list[str]:
    """What each term means: name, weight, start and its options as the loss resolved them
    (``resolved``: the set's :func:`loss_configs`, by key), over the options as typed."""
    out, seen = [], {}
    for canon in specs:
        if not isinstance(canon, list):
            out.append(json.dumps(canon))
            continue
        name, weight, options = canon
        n = seen[name] = seen.get(name, 0) + 1
        options = dict(options)
        after = options.pop("after", 0)
        conf = (resolved or {}).get(name if n == 1 else f"{name}#{n}")
        merged = {**options, **conf} if isinstance(conf, dict) else options
        out.append(json.dumps([name, weight, after, merged], sort_keys=True, default=str))
    return out


def _sharing(config: dict[str, Any]) -> list[int]:
    """Which terms of the three sets share one loss module (equal name and options as typed,
    as :func:`~stylebridge.pipelines.featureshift.losses.build_loss_sets` shares them)."""
    groups: dict[str, int] = {}
    return [groups.setdefault(json.dumps(c if not isinstance(c, list) else [
        c[0], [o for o in c[2] if o[0] != "after"]], default=str), len(groups))
            for key in _LOSS_FIELDS for c in config.get(key) or []]


def _loss_difference(key: str, old: dict[str, Any], now: dict[str, Any],
                     saved: dict[str, Any] | None, resolved: dict[str, Any]) -> str | None:
    """``None`` when the loss specs of field ``key`` mean what the saved ones meant (and share
    modules alike), else what differs first, in words.  Order is part of the meaning: the
    sum's order, the ``NAME#2`` keys, the saved loss states and random-weight draws follow it."""
    opt, was, new = option_name(key), list(old.get(key) or []), list(now.get(key) or [])
    before = _meanings(was, (saved or {}).get(_LOSS_FIELDS[key]) if saved is not None else None)
    after = _meanings(new, resolved.get(_LOSS_FIELDS[key]) if saved is not None else None)
    listed = " ".join(f"{opt} {_spelled(c)}" for c in was) or "none"
    if before == after:
        if _sharing(old) == _sharing(now):
            return None
        return (f"the same {opt} terms, spelled so that other terms share one loss module "
                f"across the sets; give them as saved: {listed}")
    if sorted(before) == sorted(after):
        return f"same losses in another order: give them in the saved order: {listed}"
    i = next((j for j, (a, b) in enumerate(zip(before, after, strict=False)) if a != b),
             min(len(was), len(new)))
    if i < len(was) and i < len(new):
        what = f"{opt} term {i + 1} was {_spelled(was[i])}, now {_spelled(new[i])}"
    elif i < len(was):
        what = f"{opt} {_spelled(was[i])} was given then, not now"
    else:
        what = f"{opt} {_spelled(new[i])} is new"
    return f"{what} (saved: {listed})"


#: what ``train featureshift`` writes in its ``--out`` folder (``samples/`` besides)
RUN_FILES = ("state.safetensors", "model.safetensors", "log.jsonl")


def check_run_out(cfg: TrainConfig) -> AbstractContextManager[object]:
    """Before any model loads (the process that writes: rank 0), one line naming ``--out``
    when the run folder or a file in it cannot be written (a file in its path, ``/sys``):
    a bad ``--out`` was found when the run first saved; or when another process trains into
    it (a second run, a ``--resume`` of a run that still goes).  The hold on ``--out`` it
    returns is the ``with`` block of the run (:func:`stylebridge.pipelines.resume.held`)."""
    if int(os.environ.get("RANK", "0")) != 0:
        return contextlib.nullcontext()
    out = Path(cfg.out)
    check_out_writable(out, folder=True, files=[out / f for f in RUN_FILES],
                       folders=[out / name for name, on in (("samples", cfg.sample_every > 0),
                                                            ("tensorboard", cfg.tensorboard))
                                if on])
    return held(out, "train featureshift")


def disk_full_error(trainer: FeatureShiftTrainer, exc: OSError) -> StylebridgeError:
    """A full disk (or file-size limit) mid-run, in one line: the file it was writing and
    the step whose state is saved (checkpoints are written whole or not at all)."""
    from stylebridge.core.checkpoint import read_header
    from stylebridge.core.io import disk_full_message

    t, step = trainer, None
    try:
        if t.state_path.is_file():
            step = int(read_header(t.state_path).extra["step"])
    except (StylebridgeError, OSError, KeyError, TypeError, ValueError):
        step = None
    saved = (f"the state of step {step} is saved in {t.state_path}: free space and rerun the "
             "same command with --resume to continue exactly from there" if step is not None
             else "no checkpoint was written yet: free space and rerun the command")
    return StylebridgeError(f"{disk_full_message(exc.filename or t.out)}; {saved}")


def save_state(trainer: FeatureShiftTrainer) -> None:
    """Write the training state and ``model.safetensors`` (atomically; the caller is rank 0)."""
    t = trainer
    tensors: dict[str, Tensor] = {f"model.{k}": v for k, v in t.model.state_dict().items()}
    if t.ema is not None:
        tensors.update({f"ema.{k}": v for k, v in t.ema.state_dict().items()})
    opt = t.optimizer.state_dict()
    optim, scalars = optimizer_tensors(t.optimizer, scalars_as_tensors=False)
    tensors.update(optim)
    rng, rng_extra = global_rng_state(t.device)
    tensors.update(rng)
    tensors.update(loss_state_tensors(_loss_modules(t)))
    extra = {
        "step": t.step,
        "cursor": {"epoch": t.epoch, "offset": t.offset},
        "param_groups": json_safe(opt["param_groups"]),
        "optim_scalars": json_safe(scalars),
        "scheduler": json_safe(t.scheduler.state_dict()),
        "scaler": json_safe(t.scaler.state_dict()),
        **rng_extra,
        "train_config": t.cfg.to_json(),
        "loss_configs": loss_configs(t),
        "amp_effective": amp_name(t.amp_dtype),
        "skipped_in_a_row": t.skipped_in_a_row,
        "world_size": t.dist.world,
        "dataset": t.data.identity(),
        "cpu_threads": cpu_threads(t.device),  # CPU results depend on it (see load_state)
        "software": software_versions(),  # and the versions (a resume by others says so)
    }
    save_checkpoint(t.state_path, tensors, kind=STATE_KIND, plugin=PLUGIN,
                    config=t.model.config(), extra=extra)
    save_model(t)


def save_model(trainer: FeatureShiftTrainer) -> None:
    """Write ``model.safetensors`` of the current step (EMA weights when on)."""
    t = trainer
    save_featureshift(t.model_path, t.ema if t.ema is not None else t.model, extra=model_extra(t))


def take_over_outputs(trainer: FeatureShiftTrainer) -> None:
    """What a run (rank 0) does to its files before its first step: remove the temporary files
    a run killed mid-write left of them (model, state, log, sample grids; nothing else in the
    folder), and when a resumed run is at ``--steps`` already, write ``model.safetensors``
    again if a kill between the state and the model left it behind."""
    t, cfg = trainer, trainer.cfg
    remove_run_temporaries([t.model_path, t.state_path, t.log_path], t.out / "samples",
                           sample_names(cfg.sample_every, cfg.steps, "step_{:07d}.png"))
    if not (t.resumed and t.step >= cfg.steps):
        return
    try:
        current = read_header(t.model_path).extra.get("step") == t.step
    except (StylebridgeError, OSError):  # missing or cut short: written again
        current = False
    if not current:
        save_model(t)


def check_header(trainer: FeatureShiftTrainer, extra: dict[str, Any]) -> None:
    """Every value of a state's header ``extra`` that :func:`load_state` reads, checked
    before any is used: one of another form (a ``step`` that is a string or missing, a
    scheduler state of another shape) is refused in one line naming the state (``damaged
    training state: ...``)."""
    t, path = trainer, trainer.state_path
    for key in ("step", "cursor.epoch", "cursor.offset"):
        header_value(extra, key, path, 0)
    header_value(extra, "train_config", path, {})
    check_provenance(extra, path)
    for name, terms in (header_value(extra, "loss_configs", path, {}, required=False)
                        or {}).items():
        if not isinstance(terms, dict) or not all(isinstance(c, dict) for c in terms.values()):
            raise damaged(f"'loss_configs.{name}' in its header is not an object of objects",
                          path)
    header_value(extra, "amp_effective", path, "", required=False)
    header_value(extra, "skipped_in_a_row", path, 0, required=False)
    header_value(extra, "world_size", path, 1, required=False)
    header_value(extra, "param_groups", path, t.optimizer.state_dict()["param_groups"])
    header_value(extra, "optim_scalars", path, {}, required=False)
    header_value(extra, "scheduler", path, t.scheduler.state_dict())
    for key in ("scheduler.last_epoch", "scheduler.base_lrs"):  # what the rate depends on
        header_value(extra, key, path, t.scheduler.state_dict()[key[10:]])
    header_value(extra, "scaler", path, t.scaler.state_dict(), required=False)


def load_state(trainer: FeatureShiftTrainer) -> None:
    """Restore the state of ``trainer.state_path`` into ``trainer`` (checked first)."""
    t = trainer
    header, tensors = load_checkpoint(t.state_path, kind=STATE_KIND, plugin=PLUGIN, device="cpu")
    extra = header.extra
    check_header(t, extra)
    old_raw, now_raw = saved_train_config(extra), t.cfg.to_json()
    old, now = comparable_config(old_raw), comparable_config(now_raw)
    diff = [k for k in now if k not in TrainConfig.RESUMABLE_CHANGES and old.get(k) != now[k]
            and not (k == "inversion_losses" and old_raw.get(k) is now_raw[k] is None)]
    if "amp" in diff and extra.get("amp_effective") == amp_name(t.amp_dtype):
        diff.remove("amp")  # e.g. auto vs off on the CPU: the same computation
    saved_losses = extra.get("loss_configs")  # absent in states written before it was kept
    now_losses = _with_new_defaults_as_saved(t, saved_losses or {})
    saved_losses, now_losses = _adversarial_as_built(t.cfg, saved_losses, now_losses)
    # loss specs that differ as typed but mean the same (`corr:1e3:norm=cosine` = `corr:1e3`)
    diff = [k for k in diff if k not in _LOSS_FIELDS or _loss_difference(
        k, old, now, saved_losses, now_losses) is not None]
    if diff:
        names = ", ".join(sorted(option_name(k) for k in diff))
        first = diff[0]
        detail = (_loss_difference(first, old, now, saved_losses, now_losses)
                  if first in _LOSS_FIELDS else then_and_now(
                      option_name(first), _shown(old_raw.get(first)), _shown(now_raw.get(first))))
        raise StylebridgeError(f"was written with different settings ({names}): {detail}; "
                               "resume with the same ones or start a new --out",
                               path=t.state_path)
    if now.get("scheduler") == "cosine" and "steps" in old and old["steps"] != now["steps"]:
        # the cosine decays to 0 at --steps: another length is another schedule, and the
        # learning rate would jump at the resumed step (extending a constant schedule is fine)
        raise StylebridgeError(f"was written for --steps {old['steps']} with --scheduler cosine, "
                               f"whose learning rate reaches 0 there; --steps {now['steps']} "
                               "would change the schedule mid-run: resume with --steps "
                               f"{old['steps']}, or start a new --out (with --init "
                               "MODEL.safetensors to continue from its weights) to train longer",
                               path=t.state_path)
    if saved_losses is not None and saved_losses != now_losses:
        changed = sorted(f"{name}/{key}" for name, terms in now_losses.items()
                         for key, conf in terms.items()
                         if saved_losses.get(name, {}).get(key) != conf)
        raise StylebridgeError(f"was written with other loss settings ({', '.join(changed)}: "
                               "e.g. a default that changed between versions); give the "
                               "options it recorded in log.jsonl or start a new --out",
                               path=t.state_path)
    if "amp" not in diff and extra.get("amp_effective") not in (None, amp_name(t.amp_dtype)):
        raise StylebridgeError(f"was trained with --amp {extra['amp_effective']}, this run "
                               f"would use {amp_name(t.amp_dtype)} (another device?); "
                               "resume where it was trained", path=t.state_path)
    world = 1 if extra.get("world_size") is None else extra["world_size"]
    if world != t.dist.world:
        raise StylebridgeError(f"was trained by {world} process(es), this run has "
                               f"{t.dist.world}: the global batch and the data order would "
                               "change; resume with the same torchrun --nproc_per_node",
                               path=t.state_path)
    dataset = extra.get("dataset")
    if dataset is not None and dataset != t.data.identity():
        raise StylebridgeError(f"--data {t.cfg.data} is not the dataset this run was trained "
                               "on (other images, domains or shard layout); a moved copy of "
                               "the same dataset is fine", path=t.state_path)
    if header.config != t.model.config():
        raise CheckpointError(f"holds a FeatureShift {header.config}, expected "
                              f"{t.model.config()}", path=t.state_path)
    t.step = int(extra["step"])
    if t.step > t.cfg.steps:  # the loop would not run, and the log would say it did
        raise StylebridgeError(f"is at step {t.step}, past --steps {t.cfg.steps}: give --steps "
                               f"above {t.step} to train on", path=t.state_path)
    t.epoch, t.offset = extra["cursor"]["epoch"], extra["cursor"]["offset"]
    if t.epoch > t.step or t.offset > t.plan.size:  # one batch a step, epochs of plan.size
        raise damaged(f"its data position (epoch {t.epoch}, sample {t.offset}) cannot be that "
                      f"of step {t.step} in a dataset of {t.plan.size} samples", t.state_path)
    _restore(t, tensors, extra)
    t.last_saved = t.step
    t.skipped_in_a_row = extra.get("skipped_in_a_row") or 0
    notice = resume_notice(extra, t.device)  # threads or versions other than the state's
    if notice is not None and t.step < t.cfg.steps and t.dist.main:  # steps left to train
        emit(t.progress, "notice", text=notice[0], detail=notice[1])


def _restore(t: FeatureShiftTrainer, tensors: dict[str, Tensor], extra: dict[str, Any]) -> None:
    """The tensors and the optimiser, scheduler, scaler and RNG states of a state whose header
    :func:`check_header` passed, into ``t``; tensors that do not fit are refused naming the
    state (``damaged training state: ...``), the model's and the EMA's before either loads."""
    path, losses = t.state_path, _loss_modules(t)
    check_claimed(tensors, ["model.", "ema.", "optim.", "rng.torch", "rng.numpy", "rng.cuda.",
                            *(prefix for prefix, _ in losses)], path)
    model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    check_tensors(path, f"{DAMAGED}: the FeatureShift state", t.model.state_dict(),
                  model_state, "model.")
    ema_state = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}
    if t.ema is not None and ema_state:
        check_tensors(path, f"{DAMAGED}: the EMA state", t.ema.state_dict(), ema_state, "ema.")
    t.model.load_state_dict(model_state)
    if t.ema is not None:
        t.ema.load_state_dict(ema_state if ema_state else model_state)
    load_optimizer_tensors(t.optimizer, tensors, extra.get("optim_scalars") or {},
                           extra["param_groups"], path=path)
    try:
        t.scheduler.load_state_dict(dict(extra["scheduler"]))
        if extra.get("scaler"):
            t.scaler.load_state_dict(extra["scaler"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise damaged(f"its scheduler or grad-scaler state cannot be restored ({said(exc)})",
                      path) from None
    set_global_rng_state(tensors, extra, t.device, path=path)
    load_loss_states(losses, tensors, t.device, path=path)


def all_finite(module: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in module.parameters())
