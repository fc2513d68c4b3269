"""``stylebridge adapt``: encode photos once and render them in one or more new domains.

``stylebridge adapt --encoder E [--generator G] --method NAME:DOMAIN.safetensors [--method ...]
[--calibrate alpha:STATS] [--skip-layers coarse] [--featureshift RUN.safetensors | --renderer
NAME[:CKPT][:k=v,...]] [--guide E2] [--align/--no-align] [--fetch] IMAGES... [--out DIR]``:
the :mod:`stylebridge.pipelines.adapt` pipeline (outputs described there).  The generator
defaults to the installed FFHQ one, the output folder to ``./adapted`` (``-2``... when it
holds files); official weights the run names
and lacks are listed in one error, or fetched first with ``--fetch``.  Inputs on random
(untrained) weights are also named in the terminal; exit code 3 when some inputs were skipped,
2 when all were.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from stylebridge.cli.base import Command
from stylebridge.cli.commands.weights import add_fetch_arguments, ensure_weights
from stylebridge.cli.common import (
    add_compile_argument,
    add_images_argument,
    add_out_argument,
    add_precision_argument,
    finite_floats,
    user_path,
    user_spec,
)
from stylebridge.cli.options import (
    add_photo_arguments,
    add_skip_layers_argument,
    grid_words,
    notice_console,
    print_batch_report,
    print_random_notices,
    progress_bar,
)
from stylebridge.cli.photo_args import photo_options
from stylebridge.cli.resume_args import add_resume_argument, resumable, resume_out
from stylebridge.core.checkpoint import RANDOM_NOTICE
from stylebridge.pipelines.adapt import AdaptConfig, prepare_adapt, run_adapt
from stylebridge.pipelines.adapter import MAX_STRENGTH
from stylebridge.pipelines.output_metrics import DEFAULT_METRICS, output_column_header
from stylebridge.registry import hookimpl


def add_metric_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """``--metric NAME[:k=v]`` of ``adapt`` and ``invert``."""
    parser.add_argument("--metric", type=user_spec, action="append", default=None,
                        metavar="NAME[:k=v]",
                        help=f"a metric of {what} against the input photo, as `eval` takes it; "
                             "repeatable (default: mse, psnr); ssim, lpips, and id (how much "
                             "identity survived; dlib: ~0.5 s per 1024 px output on 2 cores, "
                             "plus 0.45 s once per photo)")


def print_output_metrics(console: Console, inversion: dict[str, float | None],
                         domains: dict[str, dict[str, float | None]], *, random: bool,
                         n_photos: int = 1, out: Path | None = None) -> None:
    """One table: a row per output (the inversion, then each domain), a column per metric
    key, every value against the input photo; over several photos their means, and a line
    saying where each photo's own values are (``metrics.json`` in ``out``)."""
    keys = list(dict.fromkeys([*inversion, *(k for v in domains.values() for k in v)]))
    title = "input vs inversion" + (" and each domain" if domains else "")
    table = Table(title=title + (escape(f" [{RANDOM_NOTICE}]") if random else ""))
    table.add_column("output")
    for key in keys:
        table.add_column(escape(output_column_header(key)), justify="right")
    for name, values in (("inversion", inversion), *domains.items()):
        cells = [values.get(k) for k in keys]
        table.add_row(escape(name), *("n/a" if v is None else f"{v:.4g}" for v in cells))
    console.print(table)
    if n_photos > 1 and out is not None:
        own = _per_photo_keys(out / "metrics.json")
        if own is None or set(keys) <= own:
            where = f"each photo's own values: {out / 'metrics.json'} (per_photo)"
        elif own:  # a metric that keeps no per-image values gives its mean only
            means = ", ".join(k for k in keys if k not in own)
            where = (f"each photo's own values of {', '.join(k for k in keys if k in own)}: "
                     f"{out / 'metrics.json'} (per_photo); {means}: means only")
        else:
            where = "the metrics keep no per-photo values"
        console.print(escape(f"means of {n_photos} photos; {where}"), style="dim")


def _per_photo_keys(path: Path) -> set[str] | None:
    """The metric keys ``metrics.json`` holds per photo, null or not (a metric without
    per-image values, ``Metric.last``, has none there); ``None`` when the file cannot be
    read."""
    import json

    try:
        per_photo = json.loads(path.read_text(encoding="utf-8")).get("per_photo") or {}
    except (OSError, ValueError, AttributeError):
        return None
    keys: set[str] = set()
    for values in per_photo.values():  # adapt: {output: {key: value}}; invert: {key: value}
        if not isinstance(values, dict):
            continue
        for key, value in values.items():  # a null is a value too (id: no face found)
            if isinstance(value, dict):
                keys.update(value)
            else:
                keys.add(key)
    return keys


def add_domain_arguments(parser: argparse.ArgumentParser, featureshift_help: str,
                         guide_help: str = "") -> None:
    """What ``adapt`` and ``render`` do to an inversion: ``--method`` (repeatable),
    ``--calibrate``, ``--skip-layers``, ``--featureshift``, ``--renderer`` (``guide_help``:
    what guides a renderer that reads guide latents) and ``--strength``."""
    parser.add_argument("--method", "-m", type=user_spec, action="append", required=True,
                        metavar="[NAME:]DOMAIN.safetensors|DOMAIN",
                        help="domain checkpoint, or an installed catalogue domain by name "
                             "(pixar: `stylebridge weights list --kind domain`); repeatable; "
                             "the file stem or name names the outputs")
    parser.add_argument("--calibrate", type=user_spec, metavar="NAME:STATS",
                        help="calibrator, e.g. alpha:alpha_e4e.safetensors (stylebridge "
                             "calibrate); its calibrate(inversion) runs before rendering: "
                             "adapt --save-latents saves the uncalibrated inversion, and "
                             "render --calibrate applies it to each file as adapt did")
    add_skip_layers_argument(parser, "style layers that get no domain change")
    parser.add_argument("--featureshift", type=user_path, metavar="MODEL.safetensors",
                        help=featureshift_help)
    parser.add_argument("--renderer", type=user_spec, metavar="NAME[:CKPT][:k=v,...]|CKPT",
                        help="render every output (the inversion too) through this renderer "
                             "plugin instead of the plain one (`stylebridge plugins` lists the "
                             "installed renderers, `stylebridge plugins NAME` their options); "
                             "--featureshift MODEL is short for --renderer featureshift:MODEL: "
                             "give one of the two" + (f"; {guide_help}" if guide_help else ""))
    parser.add_argument("--strength", type=finite_floats, default=[1.0], metavar="K[,K...]",
                        help="how much of each domain's change: 1 = as trained (default), "
                             "0 = no change (the inversion; with --featureshift FeatureShift's "
                             "own rendering at Δ = 0), 0.5 half-way, 1.5 beyond; several "
                             "values render each domain once per value (outputs NAME@K, and NAME at 1; the "
                             f"calibrator's and skip layers' scales still apply; |K| <= "
                             f"{MAX_STRENGTH:g})")


class AdaptCommand(Command):
    """Encode photos once and render them in one or more new domains."""

    name = "adapt"
    help = "encode photos once and render them through domain methods (StyleSpace, Affine+...)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_images_argument(parser)
        add_domain_arguments(parser, "render domains through a trained FeatureShift (encoder: "
                                     "fse with mode=features)",
                             "one that reads guide latents (FeatureShift) is guided as "
                             "--guide says")
        parser.add_argument("--guide", type=user_spec, metavar="NAME[:CKPT]",
                            help="the guiding encoder of --featureshift, or of a --renderer "
                                 "that reads guide latents (default: the one recorded in "
                                 "the model; a model that records none, or --guide equal to "
                                 "--encoder, uses the encoder's own latents)")
        parser.add_argument("--save-latents", action="store_true",
                            help="also write <stem>_inversion.safetensors (the encoder's w+ and "
                                 "features, before calibration), to render more domains later "
                                 "without encoding the photos again (`stylebridge render`)")
        add_metric_argument(parser, "each output (the inversion and every domain)")
        add_out_argument(parser, "adapted")
        add_fetch_arguments(parser)
        add_photo_arguments(parser)
        add_resume_argument(parser)
        add_compile_argument(parser)
        add_precision_argument(parser)

    def run(self, args: argparse.Namespace, console: Console) -> int:
        out = resume_out(args, "adapted", console, "adapt")
        config = AdaptConfig(**photo_options(args), encoder=args.encoder,
                             generator=args.generator, methods=args.method, out=out,
                             calibrate=args.calibrate, skip_layers=args.skip_layers,
                             featureshift=args.featureshift, guide=args.guide,
                             renderer=args.renderer,
                             compile=args.compile, precision=args.precision,
                             metrics=tuple(args.metric or DEFAULT_METRICS),
                             strength=args.strength, save_latents=args.save_latents,
                             resume=args.resume)
        job = prepare_adapt(config, lambda requests: ensure_weights(args, requests, console))
        print_random_notices(console, job.random_inputs, encoder=job.adapter.encoder.name,
                             generator=job.generator_path)
        with resumable(console, job.journal, "adapt", out), progress_bar(console) as progress:
            result = run_adapt(job, progress)
        report = result.report
        zeroed = result.summary.get("calibrator_zeroed_layers") or []
        if zeroed:
            notice_console(console).print(f"[yellow]the calibrator gives style layers {escape(str(zeroed))} no "
                          "domain offset (alpha near 0 or undefined there; see `stylebridge "
                          "analyze latents`)[/yellow]")
        if result.grid is not None:
            console.print(f"[green]wrote[/green] {len(report.done)} photo(s) × "
                          f"{result.n_images} images and {grid_words(len(report.done))} to "
                          f"{escape(str(out))}")
        if result.metrics is not None:
            print_output_metrics(console, result.metrics, result.domain_metrics or {},
                                 random=bool(job.parts), n_photos=len(report.done), out=out)
            for note in result.metric_notes:  # a note, as every command says one: on stderr
                notice_console(console).print(f"[yellow]note:[/yellow] {escape(note)}")
        print_batch_report(console, report, listed_in=str(out / "adapt.json"))
        return result.exit_code


@hookimpl
def register_commands(register: Any) -> None:
    register(AdaptCommand())


__all__ = ["AdaptCommand", "add_domain_arguments", "add_metric_argument",
           "print_output_metrics"]
