"""``stylebridge demo``: the whole toolkit on one real photo, in one command (the pipeline is
:mod:`stylebridge.pipelines.demo`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from stylebridge.cli.base import Command
from stylebridge.cli.commands.weights import accept_licences, add_fetch_arguments
from stylebridge.cli.common import add_device_argument, seed_int, user_path, user_spec
from stylebridge.cli.options import licence_notices, note_text, notice_console
from stylebridge.core.checkpoint import RANDOM_NOTICE
from stylebridge.pipelines.demo import (
    DOMAIN_TABLE_TITLE,
    PHOTO_TABLE_TITLE,
    RANDOM_WEIGHTS_NOTICE,
    DemoConfig,
    DemoProgress,
    MetricRows,
    run_demo,
)
from stylebridge.registry import hookimpl


def print_metrics(console: Console, rows: MetricRows, random: bool,
                  title: str = PHOTO_TABLE_TITLE) -> None:
    """One metrics table: a row per variant, a column per metric, headed as adapt and eval
    head it (``psnr (dB) ↑``); the title tagged ``[RANDOM WEIGHTS]`` as theirs are."""
    from stylebridge.pipelines.output_metrics import output_column_header

    title += f" [{RANDOM_NOTICE}]" if random else ""
    table = Table(title=escape(title))
    table.add_column("variant")
    keys = sorted({k for _, values in rows for k in values})
    for key in keys:  # plain text: "id[dlib]" is no rich tag
        table.add_column(escape(output_column_header(key)), justify="right")
    for label, values in rows:
        table.add_row(escape(label), *(f"{values[k]:.4g}" if k in values else "" for k in keys))
    console.print(table)


class DemoCommand(Command):
    name = "demo"
    help = "run the toolkit end to end on a real photo and write a labelled grid + metrics"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--out", type=user_path, default=Path("stylebridge-demo"),
                            metavar="DIR",
                            help="output folder (default: ./stylebridge-demo)")
        parser.add_argument("--image", type=user_path, default=None, metavar="PHOTO",
                            help="a face photo (default: scikit-image's astronaut)")
        parser.add_argument("--method", type=user_spec, action="append", default=[],
                            metavar="DOMAIN",
                            help="real domains to use instead of random offsets: a checkpoint "
                                 "or an installed catalogue name (pixar)")
        parser.add_argument("--seed", type=seed_int, default=0,
                            help="seed of the random-weight preset, domains and samples "
                                 "(default 0)")
        add_fetch_arguments(parser, "first fetch exactly the weights the demo uses "
                                    "(`stylebridge weights fetch --set demo`), then run on "
                                    "them; without network it says why in one line and runs "
                                    "the random-weight preset")
        add_device_argument(parser)

    def run(self, args: argparse.Namespace, console: Console) -> int:
        if args.fetch:
            from stylebridge.registry import weights as weights_mod

            manager = weights_mod.WeightsManager()
            accept_licences(manager, manager.missing_from_set("demo"), args.accept_licence,
                            console)

        notices = notice_console(console)
        said: set[str] = set()  # the RANDOM WEIGHTS line is said once, when it is known

        def show(event: DemoProgress) -> None:
            if event.kind == "fetch-failed":
                notices.print(f"[bold yellow]could not fetch the demo weights:[/bold yellow] "
                              f"{escape(event.output)}", highlight=False)
            elif event.kind == "random-preset":
                said.add(RANDOM_WEIGHTS_NOTICE)
                notices.print(f"[bold yellow]{RANDOM_WEIGHTS_NOTICE}[/bold yellow]")
                notices.print("Official weights are not installed (`stylebridge demo --fetch` "
                              "gets them; see `stylebridge weights list`); using a 64 px "
                              "random-weight preset.")
            elif event.kind == "random-installed":
                said.add(RANDOM_WEIGHTS_NOTICE)
                notices.print(f"[bold yellow]{RANDOM_WEIGHTS_NOTICE}[/bold yellow]")
                notices.print("The installed weights are marked as random weights.")

        config = DemoConfig(out=args.out, image=args.image, methods=list(args.method),
                            seed=args.seed, device=args.device, fetch=args.fetch,
                            accept_licence=True)  # accepted above (flag or prompt) or not needed
        result = run_demo(config, progress=show)
        print_metrics(console, result.photo_rows, result.models_random)
        print_metrics(console, result.domain_rows, result.models_random, title=DOMAIN_TABLE_TITLE)
        for note in result.notes:
            notices.print(escape(note_text(note)))
        console.print(f"wrote {escape(str(result.grid_path))} and demo.json in "
                      f"{result.seconds:.1f}s")
        if result.notice is not None and result.notice not in said:
            notices.print(f"[bold yellow]{escape(result.notice)}[/bold yellow]")
        # official weights under non-commercial licences: said once each, as adapt does
        for text in licence_notices(result.data.get("models", {}).get("generator")):
            notice_console(console).print(f"[yellow]{escape(text)}[/yellow]", soft_wrap=True)
        return 0


@hookimpl
def register_commands(register: Any) -> None:
    register(DemoCommand())
