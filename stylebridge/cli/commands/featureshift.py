"""``stylebridge featureshift build-dataset``: encode images once for FeatureShift training.

The pipeline is :func:`stylebridge.pipelines.featureshift.dataset.build_dataset`; training
is ``stylebridge train featureshift`` (:mod:`stylebridge.cli.commands.train`).
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from stylebridge.cli.base import Command
from stylebridge.cli.commands.weights import add_fetch_arguments, ensure_weights
from stylebridge.cli.common import (
    add_device_argument,
    add_generator_argument,
    user_path,
    user_path_text,
    user_spec,
)
from stylebridge.cli.options import (
    bar_options,
    notice_console,
    print_batch_report,
    print_random_notices,
)
from stylebridge.core.batch import EXIT_FAILED, require_inputs
from stylebridge.core.device import resolve_device
from stylebridge.core.limits import MAX_BATCH, MAX_DATASET_IMAGE_SIZE, MAX_SHARD_SIZE, check_range
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.featureshift.config import split_specs
from stylebridge.pipelines.featureshift.dataset import (
    INDEX,
    NothingEncoded,
    build_dataset,
    random_inputs,
)
from stylebridge.registry import hookimpl
from stylebridge.registry.resolve import load_generator, load_plugin
from stylebridge.registry.spec import absolute_spec, parse_plugin_spec


class FeatureShiftCommand(Command):
    """FeatureShift tools: ``featureshift build-dataset``."""

    name = "featureshift"
    help = "FeatureShift tools: build-dataset (encode images once for training)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
        build_help = ("encode images with FSE and the guiding encoder, store w+, F and "
                      "per-domain Δ/targets in resumable shards")
        p = sub.add_parser("build-dataset", help=build_help,
                           description=build_help + ". Rerunning the same command resumes an "
                           "interrupted build; unreadable images are skipped and reported.")
        p.add_argument("--encoder", type=user_spec, required=True, metavar="SPEC",
                       help="the FSE-like inverter with a feature, e.g. fse:fse.safetensors")
        p.add_argument("--guide", type=user_spec, required=True, metavar="SPEC",
                       help="the guiding encoder, e.g. e4e:e4e.safetensors or "
                            "fse:fse.safetensors:mode=latents")
        add_generator_argument(p)
        p.add_argument("--images", type=user_path_text, required=True, nargs="+",
                       metavar="DIR|FILE",
                       help="FFHQ-aligned face images, files or folders (their image files, "
                            "sorted); photos are aligned first with `stylebridge align`")
        p.add_argument("--domains", "--method", "-m", dest="domains", type=user_spec,
                       required=True, action="append",
                       metavar="D1,D2,...",
                       help="domain checkpoints (comma-separated and/or repeated; --method: "
                            "the name adapt uses)")
        p.add_argument("--out", required=True, type=user_path, metavar="DATASET",
                       help="the dataset folder; the same command again resumes its build")
        p.add_argument("--resume", action="store_true",
                       help="accepted for symmetry with the other batch commands: the same "
                            "command resumes an interrupted build with or without it")
        p.add_argument("--layer", type=int, help="generator activation K (default: the encoder's)")
        p.add_argument("--image-size", type=int, default=256,
                       help="stored image/target size (default 256, where the losses compare; "
                            f"8..{MAX_DATASET_IMAGE_SIZE})")
        p.add_argument("--shard-size", type=int, default=256, help=f"images per shard (default 256, at most {MAX_SHARD_SIZE})")
        p.add_argument("--batch", type=int, default=4, help=f"default 4, at most {MAX_BATCH}")
        p.add_argument("--no-per-domain", action="store_true",
                       help="store no per-domain Δ/targets (the trainer computes them)")
        p.add_argument("--dtype", choices=("float16", "bfloat16", "float32"), default="float16",
                       help="storage type of features and Δ (default float16; latents are "
                            "float32)")
        add_fetch_arguments(p)
        add_device_argument(p)

    def run(self, args: argparse.Namespace, console: Console) -> int:
        check_range("--image-size", args.image_size, 8, MAX_DATASET_IMAGE_SIZE)  # before loading
        check_range("--shard-size", args.shard_size, 1, MAX_SHARD_SIZE)
        check_range("--batch", args.batch, 1, MAX_BATCH)
        inputs = require_inputs(args.images)  # a wrong --images fails before any model loads
        if not any(p.exists() for p in inputs):
            raise StylebridgeError(f"--images {' '.join(args.images)}: no such file or "
                                   "directory")
        device = resolve_device(args.device)
        specs = split_specs(args.domains)
        # every missing official download named at once (or fetched), before anything loads
        ensure_weights(args, [("generator", args.generator, "--generator"),
                              ("encoder", args.encoder, "--encoder"),
                              ("encoder", args.guide, "--guide"),
                              *(("domain_method", s, "--domains") for s in specs)], console)
        generator, provenance = load_generator(args.generator, device)
        gen_path = provenance.path
        encoder = load_plugin("encoder", args.encoder, device=device)
        guide = load_plugin("encoder", args.guide, device=device)
        domains = []
        for text in specs:
            spec = parse_plugin_spec(text, what="domain method")
            method = load_plugin("domain_method", spec, device=device)
            domains.append((spec.path.stem if spec.path is not None else str(spec.name), method))
        print_random_notices(console, random_inputs(generator, encoder, guide, domains),
                             encoder=args.encoder, generator=gen_path)
        n_units = len(inputs) * (1 + (0 if args.no_per_domain else len(domains)))
        try:
            with Progress(
                    TextColumn("[bold]build-dataset"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), **bar_options(console, transient=False)) as progress:
                task = progress.add_task("encode", total=n_units)
                result = build_dataset(
                    inputs, args.out, generator=generator, encoder=encoder, guide=guide,
                    domains=domains, layer=args.layer, image_size=args.image_size,
                    shard_size=args.shard_size, batch_size=args.batch,
                    per_domain=not args.no_per_domain, dtype=args.dtype, device=device,
                    # absolute paths: `adapt --featureshift` reads the guide from the trained
                    # model, run from any folder
                    sources={"encoder": absolute_spec(args.encoder),
                             "guide": absolute_spec(args.guide), "generator": str(gen_path),
                             "domains": [absolute_spec(s) for s in specs]},
                    progress=lambda n: progress.advance(task, n),
                    notice=lambda text: notice_console(console).print(f"[yellow]{escape(text)}[/yellow]"))
        except NothingEncoded as exc:  # the skipped files, then `error: nothing done: ...`
            console.print(f"no image could be encoded: {escape(exc.outcome)}")
            if not exc.report.skipped:
                raise
            print_batch_report(console, exc.report)
            return EXIT_FAILED
        except (KeyboardInterrupt, MemoryError, OSError):  # Ctrl-C, SIGTERM, a full disk
            if (args.out / INDEX).is_file():
                notice_console(console).print(f"[yellow]the finished shards are kept in {escape(str(args.out))}: "
                              "rerun the same command to continue[/yellow]")
            elif args.out.is_dir():  # stopped while copying the domains: nothing to keep yet
                notice_console(console).print(f"[yellow]no shard was finished in {escape(str(args.out))}: "
                              "rerun the same command to start the build again[/yellow]")
            raise
        console.print(f"[green]wrote[/green] {result.n_rows} images in {result.n_shards} shard(s) "
                      f"to {escape(str(result.root))}"
                      + (f" ({result.skipped_files} file(s) of an earlier build kept: shards and "
                         "their domain files)" if result.skipped_files else ""))
        print_batch_report(console, result.report)
        return result.report.exit_code


@hookimpl
def register_commands(register: Any) -> None:
    register(FeatureShiftCommand())


