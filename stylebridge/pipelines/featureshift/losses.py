"""FeatureShift's three loss sets and its phases (thesis, "Improving the gap").

* ``inversion``: ``G(s(w_F^real), K := FeatureShift(F^real, 0))`` vs the real image
  (``--inversion-loss``, default the ``--loss`` terms; ``--adversarial`` (thesis λ_Adv =
  0.01, the default) adds the frozen discriminator's term from ``--adversarial-after``,
  default step 10 000 (:data:`~.config.ADVERSARIAL_AFTER`), whatever the pre-training);
* ``domain``: ``G(s_d(w_F), K := FeatureShift(F, Δ))`` vs the e4e domain inversion
  (``--loss``; ``--domain-discriminator W`` adds the trainable domain discriminator's
  term, ``domain_adversarial``, off by default);
* ``domain_inversion`` (optional, ``--domain-inversion-loss``): "the generated domain
  adapted image" vs the real image; by default the inference path ``G(s_d(w_F^real),
  K := FeatureShift(F^real, Δ))``, with ``--domain-inversion-source domain-branch`` the
  domain set's output (:mod:`.passes`).

Phases: ``inversion`` (the inversion set alone) for the first
``pretrain_inversion_steps`` steps, then ``joint`` (all sets).  The terms follow the
shared rules of :mod:`stylebridge.pipelines.training.losses`; equal specs share one
module across the sets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from stylebridge.core.interfaces import Loss, LossBatch
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.featureshift.config import TrainConfig
from stylebridge.pipelines.training.losses import (
    LossTerm,
    build_loss_terms,
    check_requirements,
    check_trainable,
    evaluate,
    idle_term_notes,
    loss_label,
)
from stylebridge.pipelines.training.schedule import phase_at

#: LossBatch fields every set fills; the domain sets also fill ``delta`` and ``domain``
BASE_FIELDS = frozenset({"output", "target", "latents", "styles", "styles_source", "features",
                         "features_target", "features_guide", "step", "total_steps", "phase"})
PROVIDES = {"inversion": BASE_FIELDS, "domain": BASE_FIELDS | {"delta", "domain"},
            "domain_inversion": BASE_FIELDS | {"delta", "domain"}}
#: the fields FeatureShift changes: the image and the generator feature it shifts
TRAINED = frozenset({"output", "features"})
#: losses that belong to the domain set only: the trainable domain discriminator's *real*
#: images are the e4e domain inversions, so the inversion set (photos as *real*) never copies
#: it from ``--loss`` (a second discriminator would learn the photos)
DOMAIN_ONLY = frozenset({"domain_adversarial"})
#: how the sets are named in log records (``inversion/mse``) and options
LABELS = {"inversion": "inversion", "domain": "domain", "domain_inversion": "domain-inversion"}
#: the option that gives each set's terms (the inversion set copies --loss when not given)
SET_OPTIONS = {"inversion": "--inversion-loss", "domain": "--loss",
               "domain_inversion": "--domain-inversion-loss"}


def build_loss_sets(cfg: TrainConfig, *, registry: Any, device: torch.device
                    ) -> dict[str, list[LossTerm]]:
    """The three sets of ``cfg`` (checked against the fields each set provides)."""
    cache: dict[tuple[str, str], Loss] = {}
    inversion = (list(cfg.inversion_losses) if cfg.inversion_losses is not None
                 else [t for t in cfg.losses if t.split(":", 1)[0].strip() not in DOMAIN_ONLY])
    if cfg.adversarial > 0 and cfg.adversarial_start() < cfg.steps:
        # a run that ends before the term starts neither builds it nor needs a discriminator
        # (said by schedule_notes); a longer resumed run builds it then
        disc = cfg.discriminator or cfg.generator
        check_discriminator(disc, explicit=cfg.discriminator is not None)
        inversion.append(f"adversarial:{cfg.adversarial}:after={cfg.adversarial_start()},"
                         f"discriminator={disc}")
    elif cfg.adversarial > 0 and cfg.discriminator is not None:
        # not loaded by this run, but named: a wrong path is said now, not by the longer
        # resumed run that loads it (what it holds is checked then, with the term)
        from stylebridge.core.checkpoint import read_header

        read_header(cfg.discriminator)  # missing or unreadable: one line naming the file
    given = [t for t in cfg.losses if t.split(":", 1)[0].strip() == "domain_adversarial"]
    if cfg.domain_discriminator and given:
        raise StylebridgeError(
            f"--domain-discriminator {cfg.domain_discriminator!r} adds the term --loss "
            f"domain_adversarial:{cfg.domain_discriminator}, and --loss {given[0]!r} gives it "
            "again: give one of them (with both, its discriminator would train twice per step, "
            "or two would, and the term would count twice)")
    kw = {"registry": registry, "cache": cache, "device": device}
    sets = {
        "domain": build_loss_terms(cfg.losses, option="--loss", **kw)
        + _domain_discriminator(cfg.domain_discriminator, kw),
        "inversion": build_loss_terms(inversion, option="--inversion-loss", **kw),
        "domain_inversion": build_loss_terms(cfg.domain_inversion_losses,
                                             option="--domain-inversion-loss", **kw),
    }
    twice = [t.key for t in sets["domain"] if t.name in DOMAIN_ONLY and any(
        u is not t and u.module is t.module for u in sets["domain"])]
    if twice:  # equal specs share one module: one discriminator, two steps per training step
        raise StylebridgeError(f"--loss {twice[1]}: domain_adversarial is given twice with the "
                               "same options, so both terms would share one discriminator that "
                               "takes two steps per training step; give it once (with the "
                               "summed weight)")
    if not sets["inversion"]:
        raise StylebridgeError("the inversion loss set is empty (give --inversion-loss)")
    if cfg.steps > cfg.pretrain_inversion_steps and not sets["domain"]:
        raise StylebridgeError("the domain loss set is empty (give --loss)")
    for name, option in (("inversion", "--inversion-loss"),
                         ("domain_inversion", "--domain-inversion-loss")):
        wrong = [t.key for t in sets[name] if t.name in DOMAIN_ONLY]
        if wrong:  # its real images are the e4e domain inversions: here it learns the photos
            raise StylebridgeError(f"{option} {wrong[0]}: the trainable domain discriminator "
                                   "takes the e4e domain inversions as real images, so it "
                                   "belongs to the domain set (--loss, or "
                                   "--domain-discriminator)")
    for name, terms in sets.items():
        check_trainable(terms, TRAINED, "FeatureShift")
        check_requirements(terms, PROVIDES[name], f"train featureshift ({LABELS[name]} loss)")
    # the first step trains something, or the run is refused before it writes anything
    first = [("inversion", t) for t in sets["inversion"]] + (
        [("domain", t) for t in sets["domain"]] if cfg.pretrain_inversion_steps == 0 else [])
    if not any(t.weight > 0 and t.active(0) for _, t in first):
        # named by option: `--loss mse:1 --inversion-loss mse:0` said only "mse: weight 0"
        given = {**SET_OPTIONS, **({"inversion": "--loss"} if cfg.inversion_losses is None
                                   else {})}
        why = ", ".join(f"{given[name]} {t.key}: " + (
            "weight 0" if t.weight == 0 else f"after={t.after}") for name, t in first)
        raise StylebridgeError(f"no loss is active at step 0 ({why}); give a term that acts "
                               "from the start")
    return sets


def _domain_discriminator(spec: str | None, kw: dict[str, Any]) -> list[LossTerm]:
    """The ``domain_adversarial`` term of ``--domain-discriminator`` (errors name that option
    and what was typed there)."""
    if not spec:
        return []
    text = f"domain_adversarial:{spec}"
    try:
        return build_loss_terms([text], option="--domain-discriminator", **kw)
    except StylebridgeError as exc:
        message = exc.message.replace(f"--domain-discriminator {text!r}", "").lstrip(": ")
        raise StylebridgeError(f"--domain-discriminator {spec!r}: {message}") from None


def _term_text(term: LossTerm) -> str:
    opts = [f"{k}={str(v).lower() if isinstance(v, bool) else v}"
            for k, v in term.options.items()
            if not (isinstance(v, str) and ("/" in v or "\\" in v))]  # file paths: left out
    return f"{term.key}:{term.weight:g}" + (f":{','.join(opts)}" if opts else "") + (
        f" (from step {term.after})" if term.after else "")


def losses_line(cfg: TrainConfig, sets: dict[str, list[LossTerm]]) -> str:
    """One line of the terms in use, by set (said at the start of training: ``--loss``
    replaces the defaults)."""
    from stylebridge.pipelines.featureshift.config import THESIS_LOSSES

    default = " (the default)" if list(cfg.losses) == list(THESIS_LOSSES) else ""
    return "losses: " + "; ".join(
        f"{LABELS[name]} {' '.join(_term_text(t) for t in terms) or 'none'}"
        + (default if name == "domain" else "") for name, terms in sets.items())


def schedule_notes(cfg: TrainConfig, sets: dict[str, list[LossTerm]],
                   device: torch.device | None = None) -> list[str]:
    """What in ``cfg`` never happens in a run of ``cfg.steps`` steps (or on ``device``): said
    before the first step instead of a run that silently trains less than asked."""
    notes = []
    if device is not None and device.type != "cuda" and cfg.amp in ("bf16", "fp16"):
        notes.append(f"--amp {cfg.amp} applies on CUDA only: this {device.type} run is fp32")
    if cfg.pretrain_inversion_steps >= cfg.steps:
        notes.append(f"the run ends within the inversion-only pre-training "
                     f"(--pretrain-inversion-steps {cfg.pretrain_inversion_steps}, --steps "
                     f"{cfg.steps}): no domain training")
    if cfg.tensorboard and not cfg.log_every:
        notes.append("--tensorboard draws log.jsonl's step records: with --log-every 0 it "
                     "shows the sample grids only")
    if cfg.warmup_steps >= cfg.steps:
        notes.append(f"--warmup-steps {cfg.warmup_steps} is not below --steps {cfg.steps}: "
                     "the learning rate never reaches --lr")
    if cfg.domain_inversion_source != "inference" and not sets.get("domain_inversion"):
        notes.append(f"--domain-inversion-source {cfg.domain_inversion_source} has no "
                     "effect without a --domain-inversion-loss term")
    for name, terms in sets.items():
        option = SET_OPTIONS[name]
        if name != "inversion" and cfg.pretrain_inversion_steps >= cfg.steps:
            continue  # said above
        notes += idle_term_notes(terms, cfg.steps, option)  # the --adversarial term: below
    if cfg.adversarial > 0 and cfg.adversarial_start() >= cfg.steps:
        notes.append(f"--adversarial starts at step {cfg.adversarial_start()} "
                     f"(--adversarial-after), not before the run's end (--steps {cfg.steps}): "
                     "it never acts, and its discriminator is not loaded")
    return notes


def check_discriminator(path: str, *, explicit: bool) -> None:
    """The frozen discriminator must be in ``path``; a one-line error says how to get one or
    switch the term off (the thesis' λ_Adv = 0.01 is on by default)."""
    from stylebridge.core.checkpoint import read_header

    try:
        header = read_header(path)
    except (OSError, StylebridgeError):
        return  # the generator/discriminator loader reports a missing or bad file itself
    if isinstance(header.config, dict) and "generator" in header.config and \
            header.config.get("discriminator") is None:
        where = "--discriminator" if explicit else "--generator (the default --discriminator)"
        raise StylebridgeError(
            f"{where} {path} holds no StyleGAN2 discriminator, which the thesis' adversarial "
            "term (--adversarial 0.01, on from --adversarial-after, default step 10000) needs: convert the upstream "
            "checkpoint with its discriminator (rosinality's .pt has `d`) and pass "
            "--discriminator CKPT, or switch the term off with --adversarial 0")


def phase(cfg: TrainConfig, step: int) -> str:
    """``inversion`` during pre-training, then ``joint``."""
    return phase_at(step, [("inversion", 0), ("joint", cfg.pretrain_inversion_steps)])


def evaluate_set(terms: Sequence[LossTerm], batch: LossBatch, step: int, label: str,
                 values: dict[str, float]) -> Tensor | None:
    """``Σ weight · loss`` over the active terms (weight 0 skipped); unweighted values go to
    ``values[label/key]``.  A term whose value is no scalar tensor (checked by
    :func:`~stylebridge.pipelines.training.losses.evaluate`) or has no gradient (it does not
    depend on FeatureShift) is refused in one line naming the loss and its package."""
    total: Tensor | None = None
    for term, value in evaluate(terms, batch, step, skip_zero_weight=True):
        if torch.is_grad_enabled() and not value.requires_grad:
            raise StylebridgeError(
                f"{label} {loss_label(term)} does not depend on FeatureShift's output (its value "
                "has no gradient): FeatureShift changes only `output` and `features` "
                "of the loss batch" + ("; use corr:WEIGHT:on=features" if term.name == "corr"
                                       else ""))
        values[f"{label}/{term.key}"] = float(value.detach())
        total = term.weight * value if total is None else total + term.weight * value
    return total
