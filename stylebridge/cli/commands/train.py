"""``stylebridge train TARGET``: ``train domain`` and ``train featureshift``.

The ``train`` command dispatches on its first argument through :data:`TRAIN` (a
:class:`~stylebridge.cli.base.TargetGroup`): its targets are the
:class:`~stylebridge.cli.base.Target` objects with ``command="train"`` that plugins register
through the ``register_command_targets`` hook, as :func:`register_command_targets` below
registers the built-in ones (``hyperdomain`` and ``mindthegap`` are defined in
:mod:`.train_hyperdomain` and :mod:`.train_mindthegap`).  Another package adds one without
editing this file::

    from stylebridge.cli.base import Target
    from stylebridge.registry import hookimpl

    @hookimpl
    def register_command_targets(register):
        register(Target("mine", add_arguments, run, help="train my model", command="train"))

(:func:`register_train_target`, a call at import, is the older way, kept for existing
callers.)

The pipelines are :mod:`stylebridge.pipelines.train_domain` and
:mod:`stylebridge.pipelines.featureshift.trainer`; this module turns arguments into their
typed configs, their progress events into a rich progress bar, and prints the result.
"""

from __future__ import annotations

import argparse
import os
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from stylebridge.cli.base import Command, Target, TargetGroup
from stylebridge.cli.commands import train_hyperdomain, train_mindthegap
from stylebridge.cli.commands.weights import add_fetch_arguments, fetch_check
from stylebridge.cli.common import (
    add_clip_weights_arguments,
    add_device_argument,
    add_generator_argument,
    add_run_arguments,
    finite_float,
    print_training_outcome,
    register_clip_config_args,
    seed_int,
    user_path,
    user_path_text,
    user_spec,
)
from stylebridge.cli.options import bar_options, notice_console, status_line
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines import train_domain as td
from stylebridge.pipelines.featureshift.config import (
    ADVERSARIAL_AFTER,
    DOMAIN_INVERSION_SOURCES,
    THESIS_ADVERSARIAL,
    THESIS_LOSSES,
    TrainConfig,
)
from stylebridge.pipelines.featureshift.trainer import train_featureshift
from stylebridge.pipelines.training.progress import ProgressEvent
from stylebridge.registry import hookimpl
from stylebridge.registry.resolve import generator_path

#: ``stylebridge train TARGET``: the targets registered with ``command="train"`` (``domain``,
#: ``featureshift``, ``hyperdomain``, ``mindthegap`` here)
TRAIN = TargetGroup("train")
#: every target offered, by name (setting a name adds one the older way)
TRAIN_TARGETS = TRAIN.targets
TrainTarget = Target
#: the older way to add a target, kept for existing callers: prefer the hook
register_train_target = TRAIN.register


class TrainCommand(Command):
    name = "train"
    help = ("train a model: `train domain` (a domain method from a text prompt or one "
            "reference image), `train hyperdomain` (one network for many prompts), "
            "`train mindthegap` (one reference image), `train featureshift`")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        TRAIN.add_arguments(parser)

    def runs_distributed(self, args: argparse.Namespace) -> bool:
        """``train featureshift`` runs under torchrun (its target's ``distributed``)."""
        return TRAIN.runs_distributed(args)

    def run(self, args: argparse.Namespace, console: Console) -> int:
        return TRAIN.run(args, console)


class RichProgress:
    """A :class:`ProgressEvent` callback drawing a rich progress bar and printing notes.

    ``style="domain"``: a transient bar whose description carries the loss;
    ``style="featureshift"``: a persistent ``featureshift`` bar with the loss and the
    time remaining.
    """

    def __init__(self, console: Console, style: str) -> None:
        self.console = console
        self.style = style
        self.bar: Progress | None = None
        self.task: TaskID | None = None
        self.status: Live | None = None

    def __enter__(self) -> RichProgress:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop_status()
        self._stop_bar()

    def _stop_status(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None

    def _stop_bar(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def __call__(self, event: ProgressEvent) -> None:
        kind = event.kind
        if kind != "status" or not event.text:
            self._stop_status()
        if kind == "status" and event.text:
            self.status = status_line(self.console, event.text)
            self.status.start()
        elif kind == "note":
            notice_console(self.console).print(f"[yellow]note:[/yellow] {escape(event.text)}")
        elif kind == "notice":
            notice_console(self.console).print(f"[bold yellow]{escape(event.text)}[/bold yellow]"
                                               f"{escape(event.detail)}")
        elif kind == "info":
            self.console.print(escape(event.text))
        elif kind == "start":
            self._start_bar(event)
        elif kind == "step" and self.bar is not None and self.task is not None:
            if self.style == "domain":
                self.bar.update(self.task, completed=event.step, description=escape(event.text))
            else:
                self.bar.update(self.task, completed=event.step, info=escape(event.text))
        elif kind == "end":
            self._stop_bar()

    def _start_bar(self, event: ProgressEvent) -> None:
        if self.style == "domain":
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                MofNCompleteColumn(), **bar_options(self.console))
            self.bar.start()
            self.task = self.bar.add_task(escape(event.text), total=event.total,
                                          completed=event.step)
        else:
            self.bar = Progress(TextColumn("[bold]featureshift"), BarColumn(),
                                MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                                TimeRemainingColumn(),
                                **bar_options(self.console, transient=False,
                                              off_terminal=True))
            self.bar.start()
            self.task = self.bar.add_task("train", total=event.total, completed=event.step,
                                          info="")


# ---------------------------------------------------------------------------------------------
# `stylebridge train domain`


def prompt_text(value: str) -> str:
    """A prompt as typed; refused in one line when it holds bytes the locale could not decode
    (``LC_ALL=C`` makes ``ü`` two lone surrogates, which CLIP would be trained on)."""
    if any("\ud800" <= ch <= "\udfff" for ch in value):
        raise argparse.ArgumentTypeError("the prompt is not valid text in this locale: set "
                                         "LANG to a UTF-8 locale")
    return value


def add_domain_arguments(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--text", metavar="PROMPT", type=prompt_text,
                        help="target domain as text (StyleGAN-NADA's direction loss, thesis "
                             "Eq. 4)")
    target.add_argument("--image", type=user_path, metavar="REF.png",
                        help="target domain as one reference image (DiFa)")
    parser.add_argument("--source-text", default=None, metavar="PROMPT", type=prompt_text,
                        help="description of the generator's own domain (default: Human)")
    parser.add_argument("--templates", choices=("imagenet", "none"), default="imagenet",
                        help="prompt templates for text targets (default: the 79 ImageNet ones)")
    parser.add_argument("--method", type=user_spec, default="stylespace",
                        metavar="NAME[:k=v]|DOMAIN.safetensors",
                        help="domain method to train (default stylespace), or a domain "
                             "checkpoint to continue from")
    add_generator_argument(parser)
    parser.add_argument("--out", type=user_path, required=True, metavar="DOMAIN.safetensors",
                        help="the trained domain (refused when it exists, unless --force); its "
                             "training state (DOMAIN.train-state.safetensors, for --resume) "
                             "and the DOMAIN_samples/ grids are written beside it")
    parser.add_argument("--steps", type=int, default=None,
                        help="optimisation steps (default: 250 text, 301 image)")
    parser.add_argument("--loss", type=user_spec, action="append", metavar="NAME:WEIGHT[:k=v]",
                        help="repeatable; replaces the defaults (text: clip_direction:1.0, "
                             "with --indomain + indomain:0.25; image: clip_direction:1.0 "
                             "difa_w:6.0 difa_local:1.0); option after=N starts a term at step N")
    parser.add_argument("--clip", action="append", metavar="MODEL",
                        help="CLIP model, repeatable (default: ViT-B-32 and ViT-B-16)")
    add_clip_weights_arguments(parser, td.RANDOM_CLIP_NOTICE)
    parser.add_argument("--encoder", type=user_spec, default=None, metavar="NAME:CKPT",
                        help="encoder that inverts images for difa_w (DiFa uses e4e)")
    parser.add_argument("--lr", type=finite_float, default=None, help="Adam lr (default 0.05 text, 0.08 image)")
    parser.add_argument("--warmup-steps", type=int, default=None,
                        help="linear lr warm-up from 0.001 (default 0 text, 30 image)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default 4 text, 2 image)")
    parser.add_argument("--mixing", type=finite_float, default=None,
                        help="style-mixing probability (default 0.9 text, 0.0 image)")
    parser.add_argument("--freeze-layers", default=None, metavar="LAYERS",
                        help="style layers kept unchanged, in --skip-layers' grammar (none, "
                             "first, coarse, I,J or I-J, w:N W+ rows, conv:N StyleDomain "
                             "heads, rgb:N; a bare ToRGB index is refused) (default: none; "
                             "coarse with --indomain = StyleDomain's no_coarse)")
    parser.add_argument("--indomain", action="store_true",
                        help="text targets: StyleDomain's in-domain config (td_nada_ffhq_sdelta."
                             "yaml), the thesis' '(indomain)' domains: adds indomain:0.25 and "
                             "freezes the coarse layers (default: the thesis' NADA loss alone, "
                             "every layer trained)")
    parser.add_argument("--source-samples", type=int, default=256,
                        help="source samples averaged for v_source (image targets; default 256)")
    parser.add_argument("--source-truncation", type=finite_float, default=0.8,
                        help="truncation of those samples (default 0.8)")
    add_fetch_arguments(parser)
    add_run_arguments(parser, sample_every=50, checkpoint_every=25)


def domain_config(args: argparse.Namespace) -> td.DomainTrainConfig:
    """The :class:`~stylebridge.pipelines.train_domain.DomainTrainConfig` of ``train domain``
    arguments."""
    register_clip_config_args(args)
    return td.DomainTrainConfig(
        generator=args.generator, out=args.out, text=args.text, image=args.image,
        source_text=args.source_text, templates=args.templates, method=args.method,
        steps=args.steps, losses=list(args.loss) if args.loss else None, clip=args.clip,
        clip_weights=list(args.clip_weights or []), allow_random_clip=args.allow_random_clip,
        encoder=args.encoder, lr=args.lr, warmup_steps=args.warmup_steps, batch=args.batch,
        mixing=args.mixing, freeze_layers=args.freeze_layers, indomain=args.indomain,
        source_samples=args.source_samples, source_truncation=args.source_truncation,
        sample_every=args.sample_every, checkpoint_every=args.checkpoint_every,
        resume=args.resume, force=args.force, seed=args.seed, device=args.device,
        tensorboard=args.tensorboard)


def run_domain(args: argparse.Namespace, console: Console) -> int:
    with RichProgress(console, "domain") as progress:
        outcome = td.train_domain(domain_config(args), progress=progress,
                                  ensure_weights=fetch_check(args, console))
    notice = print_training_outcome(console, outcome, td.RANDOM_CLIP_NOTICE)
    if notice is None:
        return 0
    assert outcome.result is not None
    if outcome.result.samples:
        console.print(f"samples: {escape(str(outcome.samples_dir))}{notice}")
    return 0


# ---------------------------------------------------------------------------------------------
# `stylebridge train featureshift`


def _add_loss_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--loss", type=user_spec, action="append", metavar="NAME:WEIGHT[:k=v]",
                   help="domain-loss term, repeatable; replaces the defaults (the thesis' "
                        f"{' '.join(THESIS_LOSSES)}: give them too to add a term); any "
                        "registered loss plugin; option after=N starts it at step N")
    p.add_argument("--inversion-loss", type=user_spec, action="append", metavar="NAME:WEIGHT[:k=v]",
                   help="inversion-loss term, repeatable; replaces the defaults (the same "
                        "terms as --loss, but for domain_adversarial, which belongs to the "
                        "domain set)")
    p.add_argument("--domain-inversion-loss", type=user_spec, action="append",
                   metavar="NAME:WEIGHT[:k=v]",
                   help="optional domain-inversion term (thesis: lpips:0.2 and id:0.025)")
    p.add_argument("--domain-inversion-source", choices=DOMAIN_INVERSION_SOURCES,
                   default=DOMAIN_INVERSION_SOURCES[0],
                   help="which image the domain-inversion loss compares with the photo; the "
                        "thesis says \"the generated domain adapted image\", read two ways: "
                        "inference (default) = FeatureShift on the photo's own FSE feature with "
                        "Δ, the image inference produces (a third slice of each batch, ~1.5x "
                        "the compute of a joint step); domain-branch = the domain task's output "
                        "on the e4e-inverted image, already rendered for the domain loss (no "
                        "extra compute). inference is the default: it asks the shape "
                        "similarity of the output users get, and is what runs trained before "
                        "this option")
    p.add_argument("--adversarial", type=finite_float, default=THESIS_ADVERSARIAL, metavar="WEIGHT",
                   help="weight of the frozen StyleGAN2 discriminator's term in the inversion "
                        f"loss (default {THESIS_ADVERSARIAL}, the thesis' λ_Adv; 0 = off)")
    p.add_argument("--adversarial-after", type=int, default=None, metavar="N",
                   help="switch the adversarial term on at step N (default "
                        f"{ADVERSARIAL_AFTER}, whatever --pretrain-inversion-steps is: the "
                        "thesis applies it \"only after the sufficient number of training "
                        "iterations\" and gives no number; 10000 is its only training length, "
                        "the pre-training's, so the default run is unchanged and a run with "
                        "--pretrain-inversion-steps 0 does not start it at step 0)")
    p.add_argument("--discriminator", type=user_spec, metavar="CKPT",
                   help="generator checkpoint holding the frozen discriminator (default: "
                        "--generator; one without a discriminator is refused while "
                        "--adversarial > 0)")
    p.add_argument("--domain-discriminator", type=user_spec, metavar="WEIGHT[:k=v,...]",
                   help="train a small StyleGAN2-style domain discriminator alongside (own Adam "
                        "optimiser, saved and resumed with the run; real = the e4e domain "
                        "targets) and add its term to the domain loss with this weight; options "
                        "size=256, channels=64, lr=0.002, beta1=0, beta2=0.99, r1=0 (ours). Off by "
                        "default: the thesis supports it but found no gain")


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The ``train featureshift`` options."""
    d = TrainConfig(data="", generator="", out="")
    p.add_argument("--data", type=user_path_text, required=True, metavar="DATASET",
                   help="from `featureshift build-dataset`")
    p.add_argument("--generator", "-g", type=user_spec, required=True, metavar="[stylegan2:]CKPT",
                   help="the generator the dataset was built with (its digest is checked)")
    p.add_argument("--out", required=True, metavar="RUN", type=user_path_text,
                   help="run folder: state.safetensors, model.safetensors, log.jsonl, samples/")
    _add_loss_arguments(p)
    p.add_argument("--pretrain-inversion-steps", type=int, default=d.pretrain_inversion_steps,
                   metavar="N", help=f"inversion-only steps first (default {d.pretrain_inversion_steps})")
    p.add_argument("--steps", type=int, default=d.steps,
                   help=f"total steps (default {d.steps}, ours: the thesis gives only the "
                        "10 000 pre-training steps)")
    p.add_argument("--batch", type=int, default=d.batch_size,
                   help=f"batch per process (default {d.batch_size}: the thesis' 10 000 "
                        "pre-training iterations = 12 epochs over its 10k images → 12 images "
                        "per iteration; StyleFeatureEditor trains with 8); under torchrun "
                        "N processes see N x --batch images per step (--batch 12/N keeps the "
                        "thesis' 12), and BatchNorm's batch statistics are per process, so 2 "
                        "processes x --batch 2 is not 1 x --batch 4 (see below)")
    p.add_argument("--optimizer", choices=("adam", "adamw"), default=d.optimizer,
                   help=f"default {d.optimizer}, ours (the thesis names none); "
                        "StyleFeatureEditor trains its encoder with Ranger")
    p.add_argument("--lr", type=finite_float, default=d.lr,
                   help=f"learning rate (default {d.lr}, ours; the value cited for StyleFeatureEditor)")
    p.add_argument("--betas", default="0.9,0.999", metavar="B1,B2",
                   help="Adam betas (default 0.9,0.999)")
    p.add_argument("--weight-decay", type=finite_float, default=d.weight_decay,
                   help=f"weight decay (default {d.weight_decay:g}; with adamw, decoupled)")
    p.add_argument("--scheduler", choices=("constant", "cosine"), default=d.scheduler,
                   help=f"learning-rate schedule after the warm-up (default {d.scheduler}; "
                        "cosine reaches 0 at --steps)")
    p.add_argument("--warmup-steps", type=int, default=0, metavar="N",
                   help="linear learning-rate warm-up over N steps: step k (1..N) uses k/N x "
                        "--lr, so the first step uses --lr/N (default 0 = off)")
    p.add_argument("--clip-grad", type=finite_float, default=d.clip_grad, metavar="NORM",
                   help=f"max gradient norm (default {d.clip_grad}, ours; 0 = off)")
    p.add_argument("--amp", choices=("auto", "off", "bf16", "fp16"), default=d.amp,
                   help="mixed precision on CUDA (default auto: bf16 where supported, else "
                        "fp16); off on CPU. "
                        "At the thesis's size on an H200, bf16 cut the GPU time per step by "
                        "about a sixth (`stylebridge docs benchmarks`)")
    p.add_argument("--ema", type=finite_float, default=0.0, metavar="DECAY",
                   help="keep an EMA of the weights with this decay (e.g. 0.999; default 0 = "
                        "off); model.safetensors holds it")
    p.add_argument("--hidden", type=int, help="middle-stage width (default 1.5 × feature channels)")
    p.add_argument("--n-blocks", type=int, default=d.n_blocks,
                   help=f"residual blocks (default {d.n_blocks}: the thesis' three stages of "
                        "two, 1024 -> 768 -> 512 channels)")
    p.add_argument("--residual", action="store_true", help="predict F' - F instead of F'")
    p.add_argument("--init", type=user_path_text, metavar="CKPT",
                   help="start from a featureshift checkpoint")
    p.add_argument("--seed", type=seed_int, default=0,
                   help="seeds the weights, the data order and every draw (default 0)")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, metavar="N",
                   help=f"write state and model every N steps (default {d.checkpoint_every}; "
                        "0 = at the end only)")
    p.add_argument("--log-every", type=int, default=d.log_every, metavar="N",
                   help=f"a log.jsonl record every N steps (default {d.log_every}; 0 = none, "
                        "only the start and end records); a new run moves an earlier run's "
                        "log.jsonl aside to log.N.jsonl")
    p.add_argument("--sample-every", type=int, default=d.sample_every, metavar="N",
                   help=f"a samples/step_N.png grid every N steps (default {d.sample_every}; "
                        "0 = none)")
    p.add_argument("--tensorboard", action="store_true",
                   help="also write every number of log.jsonl and the sample grids as "
                        "TensorBoard events in OUT/tensorboard, to watch the run with "
                        "`tensorboard --logdir OUT` (a resume continues the curves; needs "
                        "`pip install 'stylebridge[tensorboard]'`)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly")
    add_fetch_arguments(p)  # the losses' weights (lpips-alex, arcface-irse50)
    add_device_argument(p)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` of ``train featureshift`` arguments."""
    try:
        b1, b2 = (finite_float(v) for v in args.betas.split(","))
    except (ValueError, argparse.ArgumentTypeError):
        raise StylebridgeError(f"--betas {args.betas!r}: expected two numbers B1,B2") from None
    gen_path, _ = generator_path(args.generator)
    return TrainConfig(
        data=str(args.data), generator=str(gen_path), out=str(args.out),
        losses=list(args.loss) if args.loss else list(THESIS_LOSSES),
        inversion_losses=list(args.inversion_loss) if args.inversion_loss else None,
        domain_inversion_losses=list(args.domain_inversion_loss or []),
        adversarial=args.adversarial, adversarial_after=args.adversarial_after,
        domain_inversion_source=args.domain_inversion_source,
        discriminator=args.discriminator, domain_discriminator=args.domain_discriminator,
        pretrain_inversion_steps=args.pretrain_inversion_steps, steps=args.steps,
        batch_size=args.batch, optimizer=args.optimizer, lr=args.lr, betas=(b1, b2),
        weight_decay=args.weight_decay, scheduler=args.scheduler, warmup_steps=args.warmup_steps,
        clip_grad=args.clip_grad, amp=args.amp, ema=args.ema, hidden=args.hidden,
        n_blocks=args.n_blocks, residual=args.residual, init=args.init, seed=args.seed,
        checkpoint_every=args.checkpoint_every, log_every=args.log_every,
        sample_every=args.sample_every, tensorboard=args.tensorboard, device=args.device,
        resume=args.resume)


def run_featureshift(args: argparse.Namespace, console: Console) -> int:
    cfg = config_from_args(args)  # train_featureshift checks --out before any model loads
    with RichProgress(console, "featureshift") as progress:
        result = train_featureshift(cfg, progress=progress,
                                    ensure_weights=fetch_check(args, console))
    if int(os.environ.get("RANK", "0")) == 0:
        console.print(f"[green]trained[/green] {result.step} steps → "
                      f"{escape(str(result.model_path))} (log {escape(str(result.log_path))})")
    return 0


TRAIN_HELP = "train FeatureShift on a `featureshift build-dataset` dataset (thesis losses and phases)"
TRAIN_EPILOG = ("Multi-GPU: `torchrun --nproc_per_node N -m stylebridge train featureshift ...` "
                "trains with DistributedDataParallel (NCCL on CUDA, gloo on the CPU); --batch is "
                "per process and rank 0 writes the checkpoints, log and samples. FeatureShift's "
                "BatchNorm layers are plain ones (SyncBatchNorm needs CUDA): each process "
                "normalises with its own batch's statistics and DDP copies rank 0's running "
                "statistics to the others before every step, so N processes x --batch B do not "
                "train as one process with --batch N*B, and model.safetensors holds rank 0's "
                "running statistics. Ctrl-C (to torchrun and its processes together) saves "
                "after the step, as without torchrun. The other stylebridge commands run in "
                "one process: torchrun with more than one is refused.")


@hookimpl
def register_commands(register: Any) -> None:
    register(TrainCommand())


@hookimpl
def register_command_targets(register: Any) -> None:
    register(Target("domain", add_domain_arguments, run_domain,
                    help="train a domain method from a text prompt or one reference image",
                    command="train"))
    register(Target("featureshift", add_train_arguments, run_featureshift, help=TRAIN_HELP,
                    epilog=TRAIN_EPILOG, command="train", distributed=True))
    register(train_hyperdomain.TARGET)
    register(train_mindthegap.TARGET)
