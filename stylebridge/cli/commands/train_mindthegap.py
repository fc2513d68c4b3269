"""``stylebridge train mindthegap REF.jpg --out RUN.safetensors``: MindTheGap one-shot adaptation.

The pipeline is :mod:`stylebridge.pipelines.train_mindthegap`; this module turns arguments
into its :class:`~stylebridge.pipelines.train_mindthegap.MindTheGapConfig` and prints the
result.  :data:`TARGET` is the ``mindthegap`` target, which :mod:`.train`'s
``register_command_targets`` hook registers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

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
    user_path_text,
    user_spec,
)
from stylebridge.pipelines import train_mindthegap as mtg
from stylebridge.pipelines.training.domain import RANDOM_CLIP_NOTICE

HELP = "MindTheGap: fine-tune the synthesis network from one reference image (a generator delta)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = mtg.MindTheGapConfig(reference=Path(), generator="", out=Path())
    parser.add_argument("reference", type=user_path, metavar="REF.jpg",
                        help="the reference image (an aligned face crop; centre-cropped to a square)")
    add_generator_argument(parser)
    parser.add_argument("--out", type=user_path, required=True, metavar="RUN.safetensors",
                        help="the mindthegap domain (RUN_reference.png and "
                             "RUN_reference.safetensors are written beside it)")
    parser.add_argument("--encoder", type=user_spec, default=None, metavar="NAME:CKPT",
                        help="inverts the reference into W+ (upstream: II2S; e.g. e4e:e4e.safetensors)")
    parser.add_argument("--refine-steps", type=int, default=d.refine_steps, metavar="N",
                        help="then refine that w+ for N Adam steps on L2 + LPIPS to the reference "
                             "(II2S-lite; upstream's II2S runs 1000; default 0; needed without "
                             "--encoder)")
    parser.add_argument("--refine-lr", type=finite_float, default=d.refine_lr,
                        help=f"lr of the refinement (default {d.refine_lr}, II2S's)")
    parser.add_argument("--lpips-backbone", type=user_path_text, default=None, metavar="PATH",
                        help="torchvision vgg16-397923af.pth for the LPIPS terms (default: "
                             "the installed lpips-vgg weights, else the torch hub cache)")
    parser.add_argument("--phase", default=d.phase,
                        choices=("default", "texture", "shape", "no_fine", "shape_expanded"),
                        help="which convs are fine-tuned, as upstream's --phase (default: the "
                             "constant input and every styled conv; never ToRGB or mapping)")
    parser.add_argument("--no-mix", dest="mix", action="store_false",
                        help="render the domain without the reference's fine W+ rows (upstream's "
                             "inference and generate.py take rows 7: from the reference; the "
                             "domain does so unless this is given, or mix=false at adapt time)")
    parser.add_argument("--mix-from", type=int, default=None, metavar="ROW",
                        help="first W+ row taken from the reference (default 7 at 1024 px, "
                             "upstream; round(7*rows/18) for other sizes, ours)")
    parser.add_argument("--steps", type=int, default=d.steps,
                        help=f"fine-tuning steps (default {d.steps}, upstream's --iter)")
    parser.add_argument("--batch", type=int, default=d.batch, help=f"batch (default {d.batch})")
    parser.add_argument("--lr", type=finite_float, default=d.lr,
                        help=f"Adam lr (default {d.lr:g} = upstream's 0.002 x g_reg_ratio 4/5)")
    parser.add_argument("--loss", type=user_spec, action="append", metavar="NAME:WEIGHT[:k=v]",
                        help="repeatable; replaces the defaults (upstream's weights: "
                             "clip_direction:1 mtg_within:0.5 mtg_ref_clip:30 mtg_ref_l2:10 "
                             "mtg_ref_lpips:10)")
    parser.add_argument("--clip", action="append", metavar="MODEL",
                        help="CLIP model, repeatable (default: ViT-B-32 and ViT-B-16)")
    add_clip_weights_arguments(parser, RANDOM_CLIP_NOTICE)
    parser.add_argument("--allow-random-lpips", action="store_true",
                        help="run LPIPS on a random VGG when no backbone is found (tests only)")
    add_fetch_arguments(parser)
    add_run_arguments(parser, sample_every=d.sample_every, checkpoint_every=d.checkpoint_every,
                      seed=d.seed, seed_help=f"default {d.seed} (upstream's)")


def config(args: argparse.Namespace) -> mtg.MindTheGapConfig:
    register_clip_config_args(args)
    return mtg.MindTheGapConfig(
        reference=args.reference, generator=args.generator, out=args.out, encoder=args.encoder,
        refine_steps=args.refine_steps, refine_lr=args.refine_lr,
        lpips_backbone=args.lpips_backbone, allow_random_lpips=args.allow_random_lpips,
        phase=args.phase, mix=args.mix, mix_from=args.mix_from, steps=args.steps, batch=args.batch, lr=args.lr,
        losses=list(args.loss) if args.loss else None, clip=args.clip,
        clip_weights=list(args.clip_weights or []), allow_random_clip=args.allow_random_clip,
        sample_every=args.sample_every, checkpoint_every=args.checkpoint_every,
        resume=args.resume, force=args.force, seed=args.seed, device=args.device,
        tensorboard=args.tensorboard)


def run(args: argparse.Namespace, console: Console) -> int:
    from stylebridge.cli.commands.train import RichProgress

    with RichProgress(console, "domain") as progress:
        outcome = mtg.train_mindthegap(config(args), progress=progress,
                                       ensure_weights=fetch_check(args, console))
    notice = print_training_outcome(console, outcome, RANDOM_CLIP_NOTICE)
    if notice is None:
        return 0
    console.print(f"reference | source | adapted: {escape(str(outcome.reference_png))}{notice}")
    return 0


#: ``stylebridge train mindthegap``
TARGET = Target("mindthegap", add_arguments, run, help=HELP, command="train")
