"""``stylebridge reproduce TARGET``: recompute a result of the thesis.

The built-in target is ``thesis-tables`` (CLIP Quality / Diversity, thesis Tables 4.1–4.3;
the pipeline is :mod:`stylebridge.pipelines.reproduce`; the Quality target per table and
the domain groups of Table 4.3 are documented in :mod:`stylebridge.pipelines.reproduce.groups`).  Other plugins add targets
through the ``register_command_targets`` hook, registering a
:class:`~stylebridge.cli.base.Target` with ``command="reproduce"`` (as
:func:`register_command_targets` below does); :func:`register_reproduce_target`, a call at
import, is the older way, kept for existing callers.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.progress import Progress, TaskID

from stylebridge.cli.base import Command, Target, TargetGroup
from stylebridge.cli.commands.weights import add_fetch_arguments, fetch_check
from stylebridge.cli.common import (
    add_device_argument,
    finite_float,
    print_numeric_table,
    print_skipped,
    seed_int,
    user_path,
    user_path_text,
    user_spec,
)
from stylebridge.cli.options import bar_options, notice_console, status_line
from stylebridge.cli.resume_args import units_kept_hint
from stylebridge.core.batch import BatchReport
from stylebridge.core.checkpoint import RANDOM_NOTICE
from stylebridge.core.limits import MAX_BATCH, MAX_SAMPLES
from stylebridge.pipelines.reproduce import (
    DEFAULT_METHOD_STEPS,
    DEFAULT_TEMPLATE,
    JSON_FILE,
    MARKDOWN_FILE,
    RANDOM_SENTENCE,
    ROWS,
    NoUsableInputs,
    TablesProgress,
    ThesisTablesConfig,
    run_thesis_tables,
    table_layouts,
)
from stylebridge.registry import hookimpl

#: ``stylebridge reproduce TARGET``: the targets registered with ``command="reproduce"``
REPRODUCE = TargetGroup("reproduce")
#: every target offered, by name (setting a name adds one the older way)
REPRODUCE_TARGETS = REPRODUCE.targets
#: the older way to add a target, kept for existing callers: prefer the hook
register_reproduce_target = REPRODUCE.register


class ReproduceCommand(Command):
    """``stylebridge reproduce TARGET``: recompute a result of the thesis."""

    name = "reproduce"
    help = "recompute the thesis' results: `reproduce thesis-tables` (Tables 4.1-4.3)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        REPRODUCE.add_arguments(parser)

    def run(self, args: argparse.Namespace, console: Console) -> int:
        return REPRODUCE.run(args, console)


def add_thesis_tables_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=user_path_text, nargs="+", metavar="DIR|FILE",
                        help="aligned face photos for the encoder rows (e.g. FFHQ / CelebA-HQ)")
    parser.add_argument("--domains", type=user_path_text, nargs="+", metavar="DIR|FILE",
                        help="domain checkpoints (folders: their *.safetensors and targets.json)")
    parser.add_argument("--targets", action="append", default=[], type=user_path, metavar="JSON",
                        help="domain file -> text or {\"text\"|\"image\": ...} (overrides headers)")
    parser.add_argument("--generator", "-g", type=user_spec, metavar="[stylegan2:]CKPT",
                        help="the StyleGAN2 the domains and encoders belong to")
    parser.add_argument("--e4e", type=user_spec, metavar="[e4e:]CKPT",
                        help="e4e checkpoint (default: installed weights)")
    parser.add_argument("--fse", type=user_spec, metavar="[fse:]CKPT",
                        help="FSE checkpoint, used in modes latents/features/shift "
                             "(default: installed weights)")
    parser.add_argument("--featureshift-e4e", type=user_path, metavar="MODEL.safetensors",
                        help="FeatureShift trained with the e4e guide")
    parser.add_argument("--featureshift-fse", type=user_path, metavar="MODEL.safetensors",
                        help="FeatureShift trained with the FSE-latents guide")
    parser.add_argument("--clip", action="append", metavar="NAME",
                        help="open_clip model, repeatable (default: ViT-B-16 and ViT-B-32)")
    parser.add_argument("--clip-weights", type=user_spec, action="append", default=[],
                        metavar="NAME=PATH",
                        help="local CLIP weights (.safetensors / state-dict .pt), repeatable")
    parser.add_argument("--clip-config", action="append", default=[], type=user_path,
                        metavar="JSON|DIR", help="extra open_clip architecture configs")
    parser.add_argument("--samples", type=int, metavar="N",
                        help="random samples for the Orig row (default: the number of photos, "
                             f"at most {MAX_SAMPLES:,})")
    parser.add_argument("--truncation", type=finite_float, default=1.0,
                        help="truncation of the Orig samples (default 1 = none)")
    parser.add_argument("--text-template", default=DEFAULT_TEMPLATE, metavar="TEMPLATE",
                        help=f"domain text for Quality, '{{}}' = the text (default "
                             f"{DEFAULT_TEMPLATE!r}, as StyleDomain's evaluation)")
    parser.add_argument("--quality-target", type=user_spec, action="append", default=[],
                        metavar="[TABLE=]text|reference-image",
                        help="what image domains' Quality is measured against, per table "
                             "(4.1, 4.2, 4.3; a bare value sets all). Default: 4.1 and 4.2 text "
                             "(the thesis' ~0.25 image-text range), 4.3 reference-image (its "
                             "0.64-0.77 image-image range); text domains always use their text")
    parser.add_argument("--group-gap-row", default="fse_features",
                        choices=("fse_latents", "fse_features", "fse_shift"),
                        help="FSE row whose Quality gap to E4E latents sorts the domains into "
                             "the thesis' three groups, per kind (default fse_features)")
    parser.add_argument("--group-thresholds", type=finite_float, nargs=2,
                        metavar=("DIFFERENT_ABOVE", "SIMILAR_BELOW"),
                        help="group by fixed gap thresholds instead of thirds per kind (the "
                             "thesis gives none; thirds is our reading); with --group-gap "
                             "absolute they apply to |gap|")
    parser.add_argument("--group-gap", choices=("signed", "absolute"), default="signed",
                        help="sort the domains by the signed gap E4E - FSE (default: "
                             "'different' = FSE furthest behind, the thesis' point) or by its "
                             "size |E4E - FSE| (a domain where FSE scores higher counts too)")
    parser.add_argument("--methods", action="append", metavar="M1,M2,...",
                        help="compare domain methods (stylespace, affine_plus, domain_modulation, "
                             "hyperdomain, mindthegap, or any registered one): group the domains "
                             "by their method and add one table, a row per method; with "
                             "--preset tiny and no --domains, each method's recipe first trains "
                             "one domain per preset prompt for --method-steps steps")
    parser.add_argument("--methods-row", choices=[r.key for r in ROWS], metavar="ROW",
                        help="latent row of the methods table (default e4e if it ran, else orig)")
    parser.add_argument("--method-steps", type=int, default=DEFAULT_METHOD_STEPS, metavar="N",
                        help=f"training steps per domain of the --methods recipes on the tiny "
                             f"preset (default {DEFAULT_METHOD_STEPS})")
    parser.add_argument("--allow-random", action="store_true",
                        help="compute rows (and CLIP models) without weights on random weights, "
                             "labelled RANDOM WEIGHTS")
    parser.add_argument("--preset", choices=("tiny",),
                        help="tiny: build random-weight tiny models into OUT/tiny-preset and use "
                             "them for everything not given (tests the code paths)")
    parser.add_argument("--seed", type=seed_int, default=0,
                        help="seed of samples and random weights (default 0)")
    parser.add_argument("--batch", type=int, default=4, help=f"images per forward pass (default 4, at most {MAX_BATCH})")
    parser.add_argument("--out", type=user_path, default=Path("thesis-tables"), metavar="DIR",
                        help="output folder (default ./thesis-tables)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the rows an interrupted run into --out finished (same options "
                             "and input files; --batch/--device may change; --methods recipes "
                             "train again and must give the same domains, as on the same "
                             "machine and --device)")
    add_fetch_arguments(parser)
    add_device_argument(parser)


def thesis_tables_config(args: argparse.Namespace) -> ThesisTablesConfig:
    """The pipeline's config from the parsed options."""
    return ThesisTablesConfig(
        images=args.images, domains=args.domains, targets=list(args.targets),
        generator=args.generator, e4e=args.e4e, fse=args.fse,
        featureshift_e4e=args.featureshift_e4e, featureshift_fse=args.featureshift_fse,
        clip=args.clip, clip_weights=list(args.clip_weights),
        clip_config=list(args.clip_config), samples=args.samples, truncation=args.truncation,
        text_template=args.text_template, allow_random=args.allow_random, preset=args.preset,
        seed=args.seed, batch=args.batch, out=args.out, device=args.device,
        quality_target=list(args.quality_target), group_gap_row=args.group_gap_row,
        group_thresholds=None if args.group_thresholds is None else tuple(args.group_thresholds),
        group_gap=args.group_gap,
        methods=args.methods, methods_row=args.methods_row, method_steps=args.method_steps,
        resume=args.resume)


class _Display:
    """Turns the pipeline's :class:`TablesProgress` events into terminal output: notices, a
    status line while the CLIP models load, a transient progress bar per row."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.status: Live | None = None
        self.progress: Progress | None = None
        self.task: TaskID | None = None
        #: whether the RANDOM WEIGHTS sentence was said (once a run)
        self.said_random = False

    def __call__(self, event: TablesProgress) -> None:
        console = self.console
        if event.kind == "preset":
            notice_console(console).print(f"[bold red]{RANDOM_NOTICE}[/bold red]: --preset tiny built "
                                          f"random-weight tiny models in {event.path}; the numbers test the "
                                          "code paths only")
        elif event.kind == "train":
            console.print(f"training {escape(event.label)} domains (--methods recipe)")
        elif event.kind == "random" and not self.said_random:
            self.said_random = True
            notice_console(console).print(f"[bold red]{RANDOM_SENTENCE}[/bold red]")
        elif event.kind == "notice":
            notice_console(console).print(f"[yellow]{escape(event.label)}[/yellow]")
        elif event.kind == "row-kept":
            console.print(f"row {escape(event.label)}: kept from the interrupted run")
        elif event.kind == "clips":
            self.status = status_line(console, "loading the CLIP models")
            self.status.start()
        elif event.kind == "clips-done":
            self._stop_status()
        elif event.kind == "row":
            if self.progress is None:
                self.progress = Progress(**bar_options(console))
                self.progress.start()
            self.task = self.progress.add_task(event.label, total=event.total)
        elif event.kind == "advance" and self.progress is not None and self.task is not None:
            self.progress.advance(self.task, event.count)
        elif event.kind == "row-done" and self.progress is not None and self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None

    def _stop_status(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None

    def close(self) -> None:
        self._stop_status()
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def print_tables(console: Console, result: Mapping[str, Any]) -> None:
    """The thesis-layout tables (:func:`table_layouts`) as rich tables that fit the console:
    numbers are never split (:func:`~stylebridge.cli.common.print_numeric_table`)."""
    style = "bold red" if result["random_weights"] else None
    for title, header, body in table_layouts(result):
        print_numeric_table(console, title, header, body, title_style=style)


def print_inputs(console: Console, photos: BatchReport, domains: BatchReport) -> None:
    """How many photos and domain files were used and skipped (counted apart: ``photos``
    also lists the skipped domain files), and the table of the skipped files."""
    n_photos = len(photos.skipped) - len(domains.skipped)
    counts = [f"domains: {len(domains.done)} used, {len(domains.skipped)} skipped"]
    if photos.done or n_photos:  # not when no domain was usable: no photo was read
        counts.insert(0, f"photos: {len(photos.done)} done, {n_photos} skipped")
    console.print("; ".join(counts))
    print_skipped(console, photos)


def thesis_tables_command(args: argparse.Namespace, console: Console) -> int:
    """``stylebridge reproduce thesis-tables`` (see :mod:`stylebridge.pipelines.reproduce`)."""
    display = _Display(console)
    try:
        with units_kept_hint(console, args.out, "rows", "reproduce thesis-tables"):
            try:
                result = run_thesis_tables(thesis_tables_config(args), progress=display,
                                           ensure_weights=fetch_check(args, console))
            finally:
                display.close()
    except NoUsableInputs as exc:
        print_inputs(console, exc.report, exc.domains)
        raise
    data = result.data
    print_tables(console, data)
    for note in data["notes"]:
        style = "bold red" if RANDOM_NOTICE in note else "yellow"
        notice_console(console).print(f"[{style}]note:[/{style}] {note}")
    if result.random_weights and not display.said_random:
        notice_console(console).print(f"[bold red]{RANDOM_SENTENCE}[/bold red]")
    console.print(f"[green]wrote[/green] {escape(str(args.out / MARKDOWN_FILE))} and "
                  f"{escape(str(args.out / JSON_FILE))}")
    print_inputs(console, result.report, result.domains)
    return result.exit_code


@hookimpl
def register_commands(register: Any) -> None:
    register(ReproduceCommand())


@hookimpl
def register_command_targets(register: Any) -> None:
    register(Target("thesis-tables", add_thesis_tables_arguments, thesis_tables_command,
                    help="CLIP Quality / Diversity of Tables 4.1-4.3 (orig, e4e, FSE, "
                         "FeatureShift rows x domains x CLIP models; --methods adds a table "
                         "comparing domain methods)", command="reproduce"))
