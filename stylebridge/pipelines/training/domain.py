"""The domain trainer: a :class:`~stylebridge.core.interfaces.DomainMethod` on a frozen StyleGAN2.

Each step samples w+ (with style mixing), renders the frozen source ``G_θ0(w)`` and the
adapted ``G_θ(w)`` (the method's styles on the same generator, whose own weights never
change) and minimises a weighted sum of :class:`~stylebridge.core.interfaces.Loss`
terms (see :mod:`stylebridge.pipelines.train_domain` for the command and its defaults).
Sampling w+, rendering and the sample grids: :mod:`.samples` (``sample_wplus``, ``render``).

It fills these :class:`~stylebridge.core.interfaces.LossBatch` fields
(:meth:`DomainTrainer.provides`): ``output`` (adapted image, trained), ``source``
(frozen-source image for the same w+), ``latents``, ``styles``, ``styles_source``,
``step``, ``total_steps``; with a CLIP guide also ``clip_guide`` and ``text``; with an
encoder also ``target_latents`` / ``source_latents`` (its inversions of ``output`` /
``source``).  Paired fields (``target``, ``features``, ...) are not filled: a loss that
requires them is refused when the trainer is built.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor

from stylebridge.core.checkpoint import (
    RANDOM_NOTICE,
    load_checkpoint,
    read_header,
    save_checkpoint,
)
from stylebridge.core.interfaces import DomainMethod, Encoder, Loss, LossBatch
from stylebridge.errors import CheckpointError, StylebridgeError
from stylebridge.pipelines.adapter import check_inversion
from stylebridge.pipelines.resume import held
from stylebridge.pipelines.run_record import software
from stylebridge.pipelines.training.domain_log import RunLog
from stylebridge.pipelines.training.fingerprint import (
    NOT_RECORDED,
    RESUME_NARROWED,
    RESUME_OPTIONS,
    DefaultChange,
    EarlierForm,
    resume_refusal,
)
from stylebridge.pipelines.training.freeze import frozen_parameters
from stylebridge.pipelines.training.guard import TrainingDivergedError, non_finite_word
from stylebridge.pipelines.training.interrupt import StopRequests
from stylebridge.pipelines.training.losses import (
    LossTerm,
    check_requirements,
    check_trainable,
    evaluate,
    random_loss_names,
    required_fields,
)
from stylebridge.pipelines.training.outputs import (  # noqa: F401  (re-exported)
    STATE_SUFFIX,
    check_run_out,
    remove_run_temporaries,
    sample_names,
    samples_dir_for,
    state_path_for,
)
from stylebridge.pipelines.training.progress import ProgressCallback, emit
from stylebridge.pipelines.training.result import TrainResult
from stylebridge.pipelines.training.samples import (
    domain_sample_grid,
    domain_samples_notice,
    render,
    sample_wplus,
    write_domain_samples,
)
from stylebridge.pipelines.training.schedule import linear_warmup_lr
from stylebridge.pipelines.training.settings import (  # noqa: F401  (re-exported)
    WARMUP_START_LR,
    TrainSettings,
)
from stylebridge.pipelines.training.state import (
    DAMAGED,
    check_claimed,
    check_provenance,
    check_tensors,
    cpu_threads,
    damaged,
    header_value,
    json_roundtrip,
    load_loss_states,
    load_optimizer_tensors,
    loss_state_tensors,
    optimizer_tensors,
    resume_notice,
    said,
    software_versions,
    trained_optimizer_tensors,
)

if TYPE_CHECKING:
    from stylebridge.core.stylegan2.generator import Generator
    from stylebridge.plugins.losses.clip import ClipGuide

RANDOM_CLIP_NOTICE = "RANDOM CLIP WEIGHTS"
STATE_KIND = "train_state"

#: the LossBatch fields the domain trainer always fills
BASE_FIELDS = frozenset({"output", "source", "latents", "styles", "styles_source", "step",
                         "total_steps"})
LATENT_FIELDS = frozenset({"target_latents", "source_latents"})
#: filled whenever a loss reads them (the trainer then builds a CLIP guide)
CLIP_FIELDS = frozenset({"clip_guide", "text"})


class DomainTrainer:
    """Trains ``method`` on a frozen ``generator`` with weighted losses.

    ``losses``: :class:`LossTerm` s (or ``(name, weight, Loss)`` tuples); ``guide``: the
    :class:`ClipGuide` the CLIP losses read from ``LossBatch.clip_guide``; ``encoder``:
    inverts the images for losses that read ``target_latents``/``source_latents``
    (``difa_w``).  ``settings.freeze_layers`` are style-layer indices (the generator's
    convention) whose parameters are not trained (they keep their values, as in
    StyleDomain; :meth:`DomainMethod.layer_parameters`).  The generator is put in eval
    mode with ``requires_grad_(False)``; its weights are never changed.  Use
    :meth:`train`; :meth:`load_state` before it resumes a run.
    """

    #: the command named in messages
    command = "train domain"
    #: whether the command has an ``--encoder`` that inverts the training images (difa_w)
    takes_encoder = True
    #: the LossBatch fields the trained method changes; ``None``: not checked
    #: (:func:`~stylebridge.pipelines.training.losses.check_trainable`)
    trained_fields: frozenset[str] | None = None
    #: how a ``--resume`` refusal names a fingerprint entry: the option that gives it
    #: (``{"lr": "--lr", "target.text": "--text"}``; a narrowed member keeps its tail:
    #: ``--prompts item 3``); others go by their key (:func:`.fingerprint.option_label`)
    resume_labels: ClassVar[Mapping[str, str]] = RESUME_OPTIONS
    #: the fingerprint's dicts/lists a refusal narrows to the member that differs, whatever
    #: their length (a longer value always is)
    resume_narrowed: ClassVar[frozenset[str]] = RESUME_NARROWED
    #: a setting a state predates read as (a value, a Computed one, NOT_RECORDED: not
    #: compared; :mod:`.fingerprint`): file sha256s came in efd7591 (the config was compared)
    saved_before: ClassVar[Mapping[str, Any]] = {"generator_sha256": NOT_RECORDED,
                                                  "clip_weights": NOT_RECORDED}
    #: set by the pipelines: settings in earlier versions' form, defaults that changed
    earlier_forms: Mapping[str, EarlierForm] = {}
    default_changes: Sequence[DefaultChange] = ()

    def __init__(self, generator: Generator, method: DomainMethod,
                 losses: Sequence[LossTerm | tuple[str, float, Loss]], settings: TrainSettings,
                 *, out: str | Path, guide: ClipGuide | None = None,
                 encoder: Encoder | None = None, header_extra: dict[str, Any] | None = None,
                 fingerprint: dict[str, Any] | None = None,
                 device: str | torch.device = "cpu", tensorboard: bool = False) -> None:
        self.device = torch.device(device)
        self.generator = generator.to(self.device).eval().requires_grad_(False)
        self.method = method.to(self.device).train()
        self.terms = [LossTerm.of(item) for item in losses]
        for term in self.terms:
            term.module = term.module.to(self.device)
        if not self.terms:
            raise StylebridgeError("no loss to train with (give --loss NAME:WEIGHT)")
        self.settings = settings
        self.out = Path(out)
        self.run_log = RunLog(self.out, self.samples_dir, tensorboard=tensorboard)
        self.guide = guide
        self.encoder = encoder.to(self.device).eval().requires_grad_(False) if encoder else None
        self.header_extra = dict(header_extra or {})
        self.fingerprint = dict(fingerprint or {})
        needs = required_fields(self.terms)
        self.needs_latents = bool(needs & LATENT_FIELDS)
        if self.needs_latents and self.encoder is None and self.takes_encoder:
            names = [t.key for t in self.terms if t.module.required_fields() & LATENT_FIELDS]
            raise StylebridgeError(
                f"loss {names[0]!r} compares encoder inversions of the images: give --encoder "
                "(DiFa uses e4e, e.g. --encoder e4e:e4e.safetensors) or leave it out with --loss")
        if "clip_guide" in needs and guide is None:
            raise StylebridgeError("the CLIP losses need a ClipGuide (text or image target)")
        check_requirements(self.terms, self.provides(), self.command,
                           listed=self.provides() | CLIP_FIELDS)
        if self.trained_fields is not None:
            check_trainable(self.terms, self.trained_fields, self.trained_label)
        if guide is not None:
            for term in self.terms:
                guide.token_layers |= set(term.module.clip_layers)
        n_layers = generator.n_style_layers
        bad = [i for i in settings.freeze_layers if not 0 <= i < n_layers]
        if bad:
            raise StylebridgeError(f"--freeze-layers {bad[0]}: style layers are 0..{n_layers - 1}")
        frozen = set(settings.freeze_layers)
        # StyleDomain's freeze: the frozen layers' parameters get no gradient but keep
        # their values (they still apply: continuing a domain trains what is saved)
        # (a method that cannot name them is traced; zeroing their change while training,
        # as before, left a shared backbone's frozen layers changed in the saved file)
        frozen_ids = {id(p) for p in frozen_parameters(method, generator, frozen)} \
            if frozen else set()
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
        self.saved_extra: dict[str, Any] = {}  # a resumed state's header (threads, versions)
        #: random parts the trainer does not hold (MindTheGap's reference encoder)
        self.extra_random_parts: list[str] = []

    @property
    def trained_label(self) -> str:
        """What this run trains, as a refusal of a loss that cannot train it says it
        (:attr:`trained_fields`); default: the command."""
        return self.command

    def provides(self) -> frozenset[str]:
        """The LossBatch fields this trainer fills (see the module doc)."""
        out = set(BASE_FIELDS)
        if self.guide is not None:
            out |= {"clip_guide", "text"}
        if self.encoder is not None:
            out |= LATENT_FIELDS
        return frozenset(out)

    @property
    def losses(self) -> list[tuple[str, float, Loss]]:
        """``(key, weight, Loss)`` of every term (the older view of :attr:`terms`)."""
        return [(t.key, t.weight, t.module) for t in self.terms]

    # -- paths -------------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return state_path_for(self.out)

    @property
    def samples_dir(self) -> Path:
        return samples_dir_for(self.out)

    def own_files(self) -> list[Path]:
        """The files this run writes beside ``--out`` (the samples aside): the checkpoint,
        its state and its loss log; a trainer that writes more adds them (MindTheGap's
        reference files)."""
        return [self.out, self.state_path, self.run_log.path]

    @property
    def random_clip(self) -> bool:
        return bool(self.guide is not None and self.guide.random_weights)

    @property
    def random_parts(self) -> list[str]:
        """What this run trains through that holds random weights besides CLIP (the source
        generator, the encoder, a loss's network): named on screen when training starts and
        recorded in the checkpoint (``random_parts``, followed by ``CLIP`` when the CLIP
        models are random), which is then labelled random."""
        from stylebridge.pipelines.photos import is_random

        parts = [name for name, obj in (("generator", self.generator),
                                        ("encoder", self.encoder))
                 if obj is not None and is_random(obj)]
        parts += [p for p in self.extra_random_parts if p not in parts]
        return parts + random_loss_names(self.terms)

    def lr_at(self, step: int) -> float:
        """StyleDomain's LambdaLR: ``start + min(1, step / warmup) * (lr - start)``."""
        s = self.settings
        return linear_warmup_lr(step, s.lr, s.warmup_steps, s.warmup_start_lr)

    # -- one step ----------------------------------------------------------------------------
    def _diverged(self, what: str, value: float | None, detail: str) -> TrainingDivergedError:
        """``loss became NaN at step N; last good checkpoint kept at PATH (detail)``; N is 1-based."""
        where = (f"last good checkpoint kept at {self.last_checkpoint}"
                 if self.last_checkpoint is not None else "no checkpoint was written in this run")
        return TrainingDivergedError(f"{what} became {non_finite_word(value)} at step "
                                     f"{self.step + 1}; {where} ({detail})")

    def _noise(self, batch: int) -> list[Tensor]:
        """Per-layer noise ``[B, 1, H, W]`` drawn from the run's generator (resumable)."""
        buffers = [getattr(self.generator.noises, f"noise_{i}")
                   for i in range(self.generator.num_layers)]
        return [torch.randn(batch, 1, *b.shape[-2:], generator=self.rng).to(b.device)
                for b in buffers]

    # hooks for trainers built on this loop (``train hyperdomain``, ``train mindthegap``):
    # they draw random numbers from ``self.rng`` only, so a resumed run continues exactly
    def render_adapted(self, w_plus: Tensor, noise: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """The adapted images of one training step (with gradients) and their styles."""
        return render(self.generator, w_plus, self.method, noise=noise)

    def extend_batch(self, batch: LossBatch) -> None:
        """Change or add :class:`LossBatch` fields (list added ones in :meth:`provides`, e.g.
        MindTheGap's reference reconstruction); called once per step, after the images are
        rendered and before the losses.  Default: nothing."""

    def training_step(self) -> dict[str, float]:
        """One optimisation step; returns the weighted loss values and ``total``."""
        s = self.settings
        w_plus = sample_wplus(self.generator, s.batch, self.rng, mixing=s.mixing)
        # independent noise for the two branches, as StyleGAN-NADA and StyleDomain draw it:
        # with shared noise a fresh (identity) domain gives ΔI = 0 and the direction loss's
        # first gradient is ~1/eps, which stalls Adam for the whole run
        with torch.no_grad():
            source, source_styles = render(self.generator, w_plus, noise=self._noise(s.batch))
        images, styles = self.render_adapted(w_plus, self._noise(s.batch))
        batch = LossBatch(output=images, source=source, latents=w_plus, styles=styles,
                          styles_source=source_styles, step=self.step, total_steps=s.steps,
                          clip_guide=self.guide,
                          text=[self.guide.target] if self.guide is not None else None)
        self.extend_batch(batch)
        if self.needs_latents:
            assert self.encoder is not None
            n = int(images.shape[0])
            batch.target_latents = check_inversion(
                self.encoder.encode((images + 1.0) / 2.0), self.generator, self.encoder, n).w_plus
            with torch.no_grad():
                batch.source_latents = check_inversion(
                    self.encoder.encode((source + 1.0) / 2.0), self.generator, self.encoder,
                    n).w_plus
        values: dict[str, float] = {}
        total = images.new_zeros(())
        for term, value in evaluate(self.terms, batch, self.step):
            number = float(value.detach())
            if not math.isfinite(number):
                raise self._diverged("loss", number, f"{term.key} = {number}")
            values[term.key] = number * term.weight
            total = total + term.weight * value
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
            "losses": {t.key: {"weight": t.weight, "value": self.last_losses.get(t.key)}
                       for t in self.terms},
            "total_loss": self.last_losses.get("total"),
            "generator_config": json_roundtrip(self.generator.config()),
            # what its numbers depend on besides the settings (docs/training.md)
            "software": software(), "cpu_threads": cpu_threads(self.device),
        })
        if self.guide is not None:
            extra["clip"] = {"models": self.guide.names, "random_weights": self.random_clip}
        if self.random_clip:
            extra["random_weights"] = True  # a domain trained through random CLIP is not real
            extra["notes"] = [*extra.get("notes", []),
                              f"{RANDOM_CLIP_NOTICE}: trained with untrained CLIP models, "
                              "not a real domain"]
        parts = self.random_parts
        if parts:
            extra["notes"] = [*extra.get("notes", []),
                              f"{RANDOM_NOTICE}: trained through random weights "
                              f"({', '.join(parts)}), not a real domain"]
        parts = [*parts, *(["CLIP"] if self.random_clip else [])]  # what `info` names
        if parts:
            extra["random_weights"] = True
            extra["random_parts"] = parts
        return extra

    def _loss_modules(self) -> list[tuple[str, Loss]]:
        return [(f"loss.{j}.", t.module) for j, t in enumerate(self.terms)]

    def _save_if_due(self) -> None:
        if self.saved_step != self.step:
            self.save()

    def save(self) -> Path:
        """Write the training state, then the method checkpoint (each atomically)."""
        tensors: dict[str, Tensor] = {f"method.{k}": v for k, v in self.method.state_dict().items()}
        tensors.update(optimizer_tensors(self.optimizer, scalars_as_tensors=True)[0])
        tensors["rng"] = self.rng.get_state()
        tensors.update(loss_state_tensors(self._loss_modules()))
        save_checkpoint(self.state_path, tensors, kind=STATE_KIND, plugin=self.method.name,
                        config=self.method.config(),
                        extra={"step": self.step, "steps": self.settings.steps,
                               "fingerprint": json_roundtrip(self.fingerprint),
                               "checkpoint": str(self.out),
                               # CPU results depend on it: a resume with another says so
                               "cpu_threads": cpu_threads(self.device),
                               # and the versions: a resume by others says so
                               "software": software_versions(),
                               # the checkpoint's header records them: a resumed run that
                               # writes it again (see resume_and_train) writes the same
                               "last_losses": self.last_losses})
        # the state first: it holds the method weights too, so --resume works even if the
        # process dies before the checkpoint below is written
        return self.write_checkpoint()

    def write_checkpoint(self) -> Path:
        """Write ``--out``, the method checkpoint of the current step (atomically)."""
        save_checkpoint(self.out, self.method.state_dict(), kind="domain_method",
                        plugin=self.method.name, config=self.method.config(),
                        extra=self.checkpoint_extra())
        self.last_checkpoint = self.out
        self.saved_step = self.step
        return self.out

    def _checkpoint_step(self) -> int | None:
        """The step of the checkpoint at ``--out`` (``None``: none, or unreadable)."""
        try:
            step = read_header(self.out).extra.get("step") if self.out.is_file() else None
        except (StylebridgeError, OSError):
            return None
        return step if isinstance(step, int) else None

    def load_state(self, path: str | Path | None = None) -> int:
        """Restore a state written by :meth:`save`; return the step it had reached.  A state
        whose header or tensors are not what :meth:`save` writes is refused in one line
        naming it (``damaged training state: ...``) before anything is restored."""
        path = Path(path) if path is not None else self.state_path
        header, tensors = load_checkpoint(path, kind=STATE_KIND)
        if header.plugin != self.method.name:
            raise CheckpointError(f"holds the training state of a {header.plugin!r} domain, "
                                  f"this run trains {self.method.name!r}", path=path)
        extra = header.extra
        step = header_value(extra, "step", path, 0)
        check_provenance(extra, path)
        saved_losses = header_value(extra, "last_losses", path, {}, required=False) or {}
        for key, value in saved_losses.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise damaged(f"'last_losses.{key}' in its header is not a number", path)
        why = resume_refusal(self, header_value(extra, "fingerprint", path, {}), extra)
        if why is not None:
            raise CheckpointError(why, path=path)
        check_claimed(tensors, ["method.", "optim.", "rng",
                                *(prefix for prefix, _ in self._loss_modules())], path)
        method_state = {k[7:]: v for k, v in tensors.items() if k.startswith("method.")}
        check_tensors(path, f"{DAMAGED}: the method state", self.method.state_dict(),
                      method_state, "method.")
        if "rng" not in tensors:
            raise damaged("it is missing 1 tensor(s): rng", path)
        try:
            torch.Generator().set_state(tensors["rng"].to(torch.uint8))
        except RuntimeError as exc:
            raise damaged(f"its tensor rng is no random-number state ({said(exc)})",
                          path) from None
        self.method.load_state_dict(method_state, strict=True)
        load_optimizer_tensors(self.optimizer, trained_optimizer_tensors(
            tensors, self.params, list(self.method.trainable_parameters())), path=path)
        load_loss_states(self._loss_modules(), tensors, self.device, path=path)
        self.rng.set_state(tensors["rng"].to(torch.uint8))
        self.step = step
        self.saved_extra = dict(extra)
        self.last_losses = {str(k): float(v) for k, v in saved_losses.items()}
        if self._checkpoint_step() == self.step:  # else a kill after the state left it behind
            self.last_checkpoint = self.out
            self.saved_step = self.step
        return self.step

    # -- samples (:mod:`.samples`) -----------------------------------------------------------
    def sample_grid(self) -> Tensor:
        """``[3, H', W']`` in ``[0, 1]``: one row per fixed seed, source | adapted (labelled;
        tiles under 128 px enlarged), and on random weights the red notice under it."""
        return domain_sample_grid(self)

    def samples_notice(self) -> str | None:
        """What a sample picture of a run through random weights (the generator, CLIP...)
        says, under its tiles and in its file (it travels without the run's header)."""
        return domain_samples_notice(self)

    def write_samples(self) -> Path:
        path = write_domain_samples(self)
        self.run_log.image(path, self.step)
        return path

    # -- loop --------------------------------------------------------------------------------
    def resume_and_train(self, outcome: Any, *, resume: bool,
                         progress: ProgressCallback | None = None) -> Any:
        """What every domain-training pipeline ends with: with ``resume``, restore the state
        beside ``out`` (a finished run returns ``outcome`` untouched but for its ``step``; a
        state past ``--steps`` is refused; one ``notice`` says when it does not continue bit
        for bit: another CPU thread count or other versions than the state's
        (:func:`~.state.resume_notice`); no state at all,
        a run killed before its first checkpoint, starts a new run and says so in a ``note``:
        :func:`check_run_out` refused a ``resume`` of a model without a state); then
        :meth:`train`; fills ``outcome.step``, ``.result`` and ``.losses``.  First the
        temporary files a killed run left of this run's files are removed; while it runs no
        other process trains into the same ``out`` (:func:`~stylebridge.pipelines.resume.held`)."""
        command = str(self.header_extra.get("trainer", "train")).removeprefix("stylebridge ")
        with held(self.out, command):  # another run into this --out: one line, not a race
            remove_run_temporaries(self.own_files(), self.samples_dir,
                                   sample_names(self.settings.sample_every, self.settings.steps))
            if resume and not self.state_path.is_file():  # killed before its first checkpoint
                emit(progress, "note", text=f"--resume: no training state at {self.state_path} "
                     "(the run stopped before its first checkpoint); starting a new run")
                resume = False
            if resume:
                outcome.step = self.load_state(self.state_path)
                if outcome.step > self.settings.steps:  # "nothing to do" read as a shorter run
                    raise StylebridgeError(
                        f"is at step {outcome.step}, past --steps {self.settings.steps}: give "
                        f"--steps {outcome.step} or more to resume, or start a new --out",
                        path=self.state_path)
                if outcome.step == self.settings.steps:
                    if self.saved_step != self.step:  # killed between the state and --out
                        self.write_checkpoint()
                    return outcome
                emit(progress, "info", text=f"resuming from step {outcome.step} ({self.state_path})")
                notice = resume_notice(self.saved_extra, self.device)
                if notice is not None:
                    emit(progress, "notice", text=notice[0], detail=notice[1])
            self.run_log.begin(outcome.step if resume else None, progress)
            try:
                outcome.result = self.train(progress=progress)
            finally:
                self.run_log.close()
            outcome.step = outcome.result.step
            outcome.losses = dict(self.last_losses)
            return outcome

    def train(self, *, until: int | None = None,
              progress: ProgressCallback | None = None) -> TrainResult:
        """Run steps ``self.step .. until`` (default ``settings.steps``), saving as configured.

        ``progress`` receives ``start`` (label ``training`` [+ RANDOM CLIP WEIGHTS]),
        ``step`` (text ``loss TOTAL``) and ``end`` events.
        """
        s = self.settings
        stop = s.steps if until is None else min(until, s.steps)
        result = TrainResult(step=self.step, state_path=self.state_path,
                             log_path=self.run_log.path, events=self.run_log.events)
        label = "training" + (f" [{RANDOM_CLIP_NOTICE}]" if self.random_clip else "")
        if self.random_parts:
            emit(progress, "notice", text=f"{RANDOM_NOTICE}: ",
                 detail=f"training through {', '.join(self.random_parts)} with random "
                        "(untrained) weights; the domain will not be a real one")
        emit(progress, "start", step=self.step, total=stop, text=label)
        self.run_log.append({"event": "start", "step": self.step, "resumed": self.step > 0,
                             "steps": s.steps, "device": str(self.device),
                             "losses": [t.describe() for t in self.terms],
                             "random_parts": [*self.random_parts,
                                              *(["CLIP"] if self.random_clip else [])]})
        try:
            with StopRequests() as stops:  # Ctrl-C / SIGTERM: save after the step, then stop
                while self.step < stop:
                    values = self.training_step()
                    result.history.append(values)
                    self.run_log.append({"step": self.step, "total": values["total"],
                                         "lr": self.lr_at(self.step - 1),
                                         "loss": {k: v for k, v in values.items()
                                                  if k != "total"}})
                    emit(progress, "step", step=self.step, total=stop,
                         text=f"{label} loss {values['total']:.4f}")
                    # the samples before the checkpoint: a run killed between the two
                    # resumes from the previous state and draws them again
                    if s.sample_every and self.step % s.sample_every == 0:
                        result.samples.append(self.write_samples())
                    if s.checkpoint_every and self.step % s.checkpoint_every == 0:
                        result.checkpoint = self.save()
                    stops.stop_if_requested(self.step, self.state_path, self._save_if_due)
        finally:
            emit(progress, "end", step=self.step, total=stop)
        if self.saved_step != self.step:
            result.checkpoint = self.save()
        else:
            result.checkpoint = self.out
        self.run_log.append({"event": "end", "step": self.step})
        result.step = self.step
        return result
