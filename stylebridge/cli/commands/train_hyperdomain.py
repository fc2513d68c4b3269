"""``stylebridge train hyperdomain``: arguments → :class:`HyperDomainTrainConfig`, progress bar.

The pipeline is :mod:`stylebridge.pipelines.train_hyperdomain`; :data:`TARGET` is this
target, which :mod:`.train`'s ``register_command_targets`` hook registers.
"""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.markup import escape

from stylebridge.cli.base import Target
from stylebridge.cli.commands.weights import add_fetch_arguments, fetch_check
from stylebridge.cli.common import (
    add_clip_weights_arguments,
    add_generator_argument,
    add_run_arguments,
    finite_float,
    print_training_outcome,
    register_clip_config_args,
    user_path,
    user_spec,
)
from stylebridge.pipelines import train_hyperdomain as th
from stylebridge.pipelines.training.domain import RANDOM_CLIP_NOTICE

HELP = "train HyperDomainNet's hyper-network (text -> domain modulation) over a list of prompts"


def _off_or_float(text: str) -> float | None:
    return None if text.strip().lower() in ("off", "none", "0") else finite_float(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prompts", type=user_path, required=True, metavar="prompts.txt",
                        help="one target domain per line: 'Target' or 'Target - Source' "
                             "(upstream's domain_list format); # comments")
    add_generator_argument(parser)
    parser.add_argument("--out", type=user_path, required=True, metavar="NET.safetensors",
                        help="the trained hyper-network (refused when it exists, unless "
                             "--force); its training state (NET.train-state.safetensors, for "
                             "--resume) and the NET_samples/ grids are written beside it")
    parser.add_argument("--source-text", default=th.DEFAULT_SOURCE, metavar="PROMPT",
                        help="source domain of lines without ' - Source' (default: Photo)")
    parser.add_argument("--templates", choices=("imagenet", "none"), default="imagenet",
                        help="templates of the loss text embeddings (default: the 79 ImageNet ones)")
    parser.add_argument("--steps", type=int, default=th.STEPS,
                        help=f"optimisation steps (default {th.STEPS}, td_multiple.yaml)")
    parser.add_argument("--batch", type=int, default=th.BATCH,
                        help=f"samples (and prompts) per step (default {th.BATCH})")
    parser.add_argument("--lr", type=finite_float, default=th.LR,
                        help=f"Adam lr (default {th.LR})")
    parser.add_argument("--mixing", type=finite_float, default=th.MIXING,
                        help=f"style-mixing probability (default {th.MIXING})")
    parser.add_argument("--loss", type=user_spec, action="append", metavar="NAME:WEIGHT[:k=v]",
                        help="repeatable; replaces the defaults "
                             f"({' '.join(th.DEFAULT_LOSSES)}): to add the in-domain term, "
                             "give them too (--loss clip_direction:1.0 --loss tt_direction:0.4 "
                             "--loss indomain:1.5)")
    parser.add_argument("--clip", action="append", metavar="MODEL",
                        help="CLIP model of the losses, repeatable (default: ViT-B-32; upstream "
                             "drops ViT-B-16 when resampling)")
    parser.add_argument("--mapper-clip", action="append", metavar="MODEL",
                        help="CLIP model whose text embedding the network reads (default ViT-B-32)")
    add_clip_weights_arguments(parser, RANDOM_CLIP_NOTICE)
    parser.add_argument("--no-convex", dest="convex", action="store_false",
                        help="do not mix the batch's prompts (upstream convex_hull: on)")
    parser.add_argument("--resample", type=_off_or_float, default=th.RESAMPLE_COS,
                        metavar="COS|off", help="resample target text embeddings at cosine >= "
                                                f"COS (default {th.RESAMPLE_COS})")
    parser.add_argument("--crop", type=_off_or_float, default=th.CROP, metavar="FRACTION|off",
                        help=f"random crop CLIP sees, as a fraction of the side (default {th.CROP})")
    parser.add_argument("--width", type=int, default=512, help="network width (default 512)")
    parser.add_argument("--inner", type=int, default=512,
                        help="inner width of its residual blocks (default 512)")
    parser.add_argument("--backbone-depth", type=int, default=4, help="default 4")
    parser.add_argument("--head-depth", type=int, default=2, help="default 2")
    add_fetch_arguments(parser)
    add_run_arguments(parser, sample_every=500, checkpoint_every=250,
                      sample_help="source | adapted grid of the first prompt every N steps")


def config(args: argparse.Namespace) -> th.HyperDomainTrainConfig:
    register_clip_config_args(args)
    return th.HyperDomainTrainConfig(
        generator=args.generator, out=args.out, prompts=args.prompts,
        source_text=args.source_text, templates=args.templates, steps=args.steps,
        batch=args.batch, lr=args.lr, mixing=args.mixing,
        losses=list(args.loss) if args.loss else None, clip=args.clip,
        mapper_clip=args.mapper_clip, clip_weights=list(args.clip_weights or []),
        allow_random_clip=args.allow_random_clip, convex=args.convex, resample=args.resample,
        crop=args.crop, width=args.width, inner=args.inner, backbone_depth=args.backbone_depth,
        head_depth=args.head_depth, sample_every=args.sample_every,
        checkpoint_every=args.checkpoint_every, resume=args.resume, force=args.force,
        seed=args.seed, device=args.device,
        tensorboard=args.tensorboard)


def run(args: argparse.Namespace, console: Console) -> int:
    from stylebridge.cli.commands.train import RichProgress

    with RichProgress(console, "domain") as progress:
        outcome = th.train_hyperdomain(config(args), progress=progress,
                                       ensure_weights=fetch_check(args, console))
    notice = print_training_outcome(console, outcome, RANDOM_CLIP_NOTICE,
                                    f"{len(outcome.prompts)} prompts, ")
    if notice is None:
        return 0
    out = escape(str(outcome.out))
    console.print(f"render: --method 'hyperdomain:{out}:text=\"PROMPT\"' (the double quotes "
                  "let PROMPT hold commas)")
    return 0


#: ``stylebridge train hyperdomain``
TARGET = Target("hyperdomain", add_arguments, run, help=HELP, command="train")
