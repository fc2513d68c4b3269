"""``stylebridge analyze``: the command line of :mod:`stylebridge.pipelines.analyze`.

Both targets name every official download they lack (generator, encoders, domains) in one
error before anything loads, or fetch them first with ``--fetch``, as ``adapt`` does."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from stylebridge.cli.base import Command
from stylebridge.cli.commands.weights import add_fetch_arguments, fetch_check
from stylebridge.cli.common import (
    finite_float,
    numeric_tables,
    print_numeric_table,
    user_path,
    user_path_text,
    user_spec,
)
from stylebridge.cli.options import (
    ConsoleBars,
    add_fit_argument,
    add_photo_arguments,
    add_style_means_arguments,
    notice_console,
    print_batch_report,
    print_random_notices,
)
from stylebridge.cli.resume_args import units_kept_hint
from stylebridge.core.checkpoint import RANDOM_NOTICE
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines import analyze as _analyze
from stylebridge.pipelines.analyze import (
    LAYER_SETS,
    LatentsConfig,
    LatentsProgress,
    LatentsResult,
    run_latents,
)
from stylebridge.pipelines.analyze import shift as _shift
from stylebridge.pipelines.analyze.markdown import (
    GROUP_HEADER,
    GROUP_MEANING,
    NOT_1024,
    fmt,
    group_cell,
    position_lines,
)
from stylebridge.pipelines.analyze.report import QUANTITIES
from stylebridge.pipelines.analyze.shift import (
    ShiftNormsConfig,
    prepare_shift_norms,
    run_shift_norms,
)
from stylebridge.registry import hookimpl


def _add_latents_arguments(p: argparse.ArgumentParser) -> None:
    add_style_means_arguments(p)
    p.add_argument("--out", type=user_path, required=True, metavar="DIR",
                   help="output folder: latents.png, latents.md, latents.json (with several "
                        "encoders: one subfolder each and their comparison)")
    p.add_argument("--domain", "-d", "--method", "-m", dest="domain", type=user_spec,
                   action="append", default=[],
                   metavar="[NAME:]DOMAIN.safetensors",
                   help="domain checkpoint for the Eq. 5 adaptability table, repeatable (--method: "
                        "the name adapt uses)")
    p.add_argument("--layers", choices=LAYER_SETS, default="all",
                   help="all style layers (default, incl. ToRGB) or only the modulated convs")
    add_fit_argument(p, "; both fits are drawn and tabled either way")
    p.add_argument("--alpha-tol", type=finite_float, default=0.1,
                   help="|alpha - 1| up to which a correlated layer counts as calibrated "
                        "(default 0.1)")
    p.add_argument("--r2-min", type=finite_float, default=0.5,
                   help="squared correlation below which a layer counts as independent "
                        "(default 0.5)")
    p.add_argument("--per-layer", action="store_true", help="also write one PNG per layer")
    p.add_argument("--resume", action="store_true",
                   help="keep the encoders an interrupted run into --out finished (same photos, "
                        "encoders, generator, domains)")
    add_fetch_arguments(p)
    add_photo_arguments(p, several_encoders=True)


class _ConsoleProgress(ConsoleBars, LatentsProgress):
    """Random-weights notices as bold yellow lines; one transient progress bar per step."""

    def random_inputs(self, random_inputs: Mapping[str, Any], *, encoder: str = "",
                      generator: Path | None = None) -> None:
        print_random_notices(self.console, random_inputs, encoder=encoder, generator=generator)

    def progress(self, what: str, done: int, total: int) -> None:
        self.update(what, done, total)

    def note(self, text: str) -> None:
        notice_console(self.console).print(f"[yellow]{escape(text)}[/yellow]")


def print_latents(console: Console, result: LatentsResult) -> None:
    """The α table (per encoder: α, pattern, each domain's Eq. 5 adaptability), a legend and
    what was written; the table fits the console (numbers and names are never split).  For a
    1024-px generator each layer's thesis group (W+ / conv reading) follows the first
    pattern when that column adds no part to the table, else two summary lines list them."""
    runs = result.runs
    n_text = ", ".join(f"{r.n_images} photos" + (f" ({r.label})" if len(runs) > 1 else "")
                       for r in runs)
    q = {k: v.header for k, v in QUANTITIES.items()}
    first = runs[0].result
    grouped = first.get("thesis_positions") is not None
    header, groups = ["layer", "name"], ["", ""]
    at = -1  # the thesis group column
    for k, run in enumerate(runs):
        tag = f" {run.label}" if len(runs) > 1 else ""
        header.append(f"{q['alpha']}{tag}")
        if len(runs) == 1:
            header += [q["r2"], q["corr_r2"]]
        header.append(f"pattern{tag}")
        if grouped and k == 0:
            at = len(header)
            header.append(GROUP_HEADER)
        header += [f"{q['adaptability']} {d}{tag}" for d in result.domains]
        groups += [run.label] * (len(header) - len(groups))
    rows = []
    for k, ref in enumerate(result.layers):
        cells = [str(ref.index), ref.name]
        for e, run in enumerate(runs):
            row = run.result["layers"][k]
            cells.append(fmt(row["alpha"]))
            if len(runs) == 1:
                cells += [fmt(row["r2"], ".3f"), fmt(row["corr_r2"], ".3f")]
            cells.append(row["pattern"])
            if grouped and e == 0:
                cells.append(group_cell(row.get("thesis_group")))
            cells += [fmt(run.result["domains"][d]["layers"][k]["adaptability"], "+.3f")
                      for d in result.domains]
        rows.append(cells)
    title = (f"alpha per style layer ({n_text}, {result.samples} samples)"
             + (f" [{RANDOM_NOTICE}]" if result.random else ""))
    tables = numeric_tables(title, header, rows, width=console.width, labels=2, groups=groups)
    column = grouped
    if grouped:  # the column only where it costs no extra part; else the summary lines
        def drop(cells: list[Any]) -> list[Any]:
            return cells[:at] + cells[at + 1:]

        narrow = numeric_tables(title, drop(header), [drop(r) for r in rows],
                                width=console.width, labels=2, groups=drop(groups))
        if len(narrow) < len(tables):
            tables, column = narrow, False
    for table in tables:
        console.print(table)
    keys = ("alpha", "r2", "corr_r2") if len(runs) == 1 else ("alpha",)
    for key in (*keys, *(("adaptability",) if result.domains else ())):
        console.print(Text(f"{q[key]}: {QUANTITIES[key].meaning}", style="dim"))
    if column:
        console.print(Text(f"{GROUP_HEADER}: {GROUP_MEANING}", style="dim"))
    elif grouped:
        for line in position_lines(first["thesis_positions"]):
            console.print(Text(line))
    elif "thesis_positions" in first:  # not a 1024-px generator
        console.print(Text(NOT_1024, style="dim"))
    console.print(f"[green]wrote[/green] {escape(', '.join(result.written))} to "
                  f"{escape(str(result.out))}")


def run_latents_command(args: argparse.Namespace, console: Console) -> int:
    """``stylebridge analyze latents``: see :mod:`stylebridge.pipelines.analyze`."""
    config = LatentsConfig(
        encoders=args.encoder if isinstance(args.encoder, list) else [args.encoder],
        generator=args.generator, images=list(args.images), out=args.out,
        domains=list(args.domain), samples=args.samples, seed=args.seed, layers=args.layers,
        fit=args.fit, alpha_tol=args.alpha_tol, r2_min=args.r2_min, per_layer=args.per_layer,
        align=args.align, align_size=args.align_size, batch=args.batch, device=args.device,
        resume=args.resume)
    progress = _ConsoleProgress(console)
    with units_kept_hint(console, args.out, "encoders", "analyze latents"):
        try:
            result = run_latents(config, progress, ensure_weights=fetch_check(args, console))
        finally:
            progress.stop()
    print_latents(console, result)
    print_batch_report(console, result.runs[0].batch)  # every encoder reads the same photos: one report
    return result.exit_code


def _add_shift_norms_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--images", type=user_path_text, nargs="+", required=True, metavar="PATH",
                   help="photos (files or folders)")
    p.add_argument("--domain", "-d", "--method", "-m", dest="domain", type=user_spec,
                   action="append", required=True,
                   metavar="[NAME:]DOMAIN.safetensors|DOMAIN",
                   help="domain checkpoint, or an installed catalogue domain by name (-d pixar: "
                        "`stylebridge weights list --kind domain`); repeatable (--method: "
                        "the name adapt uses)")
    p.add_argument("--out", type=user_path, required=True, metavar="DIR",
                   help="output folder: shift_norms.json and shift_norms.md")
    add_fetch_arguments(p)
    add_photo_arguments(p)


def _first_paragraph(doc: str | None) -> str | None:
    """A module docstring's first paragraph, as ``--help`` prints it (no reST quotes)."""
    return doc.split("\n\n")[0].replace("``", "") if doc else None


def run_shift_norms_command(args: argparse.Namespace, console: Console) -> int:
    """``stylebridge analyze shift-norms``: see :mod:`stylebridge.pipelines.analyze.shift`."""
    job = prepare_shift_norms(ShiftNormsConfig(
        encoder=args.encoder, generator=args.generator, images=list(args.images),
        domains=list(args.domain), out=args.out, align=args.align, align_size=args.align_size,
        batch=args.batch, device=args.device), ensure_weights=fetch_check(args, console))
    # as `analyze latents` and `calibrate`: what runs on random weights, then the photos
    print_random_notices(console, job.random_inputs, encoder=job.encoder.name,
                         generator=job.generator_path)
    try:
        result = run_shift_norms(job)
    except StylebridgeError:  # e.g. no readable photo: the skipped ones, then the one line
        print_batch_report(console, job.report, error_follows=True)
        raise
    data = result.data
    title = f"‖F‖ vs ‖G^K(w~) - G^K(w)‖ at activation {data['layer']} ({data['n_images']} photos)"
    if data["random_weights"]:
        title += f" [{RANDOM_NOTICE}]"
    print_numeric_table(console, title, ["domain", "mean ‖F‖", "mean shift", "ratio ‖F‖ / shift",
                                         "median ratio"],
                        [[name, *(fmt(r[k]) for k in ("feature_norm", "shift_norm", "ratio",
                                                      "ratio_median"))]
                         for name, r in data["domains"].items()])
    paths = [str(args.out / name) for name in result.written]  # each whole, as reproduce says
    console.print("[green]wrote[/green] "
                  + escape(" and ".join([", ".join(paths[:-1]), paths[-1]] if len(paths) > 1
                                        else paths)))
    print_batch_report(console, result.report)
    return result.exit_code


class AnalyzeCommand(Command):
    """Analysis tools: ``analyze latents``, ``analyze shift-norms``."""

    name = "analyze"
    help = ("analysis tools: latents (encoder vs mapping-network style distributions, Eq. 5), "
            "shift-norms (FSE ‖F‖ vs generator shift)")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="target", metavar="TARGET", required=True)
        doc = _analyze.__doc__
        p = sub.add_parser("latents", help="per-layer style means of an encoder vs the mapping "
                           "network (thesis Fig. 4.9), alpha per layer and Eq. 5 adaptability",
                           description=_first_paragraph(doc))
        _add_latents_arguments(p)
        p = sub.add_parser("shift-norms", help="FSE: ‖F‖ vs ‖G^K(w~) - G^K(w)‖ per domain (the "
                           "thesis finds the shift ~100x smaller)",
                           description=_first_paragraph(_shift.__doc__))
        _add_shift_norms_arguments(p)

    def run(self, args: argparse.Namespace, console: Console) -> int:
        if args.target == "latents":
            return run_latents_command(args, console)
        if args.target == "shift-norms":
            return run_shift_norms_command(args, console)
        raise StylebridgeError(f"unknown analyze target {args.target!r}")


@hookimpl
def register_commands(register: Any) -> None:
    register(AnalyzeCommand())
