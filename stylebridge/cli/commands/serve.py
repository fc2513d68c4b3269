"""``stylebridge serve``: the web app (a Gradio page; the back end is
:mod:`stylebridge.pipelines.serve`)."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.markup import escape

from stylebridge.cli.base import Command
from stylebridge.cli.commands.weights import add_fetch_arguments, fetch_demo_set
from stylebridge.cli.common import (
    add_compile_argument,
    add_device_argument,
    add_precision_argument,
    seed_int,
    user_path,
    user_spec,
)
from stylebridge.errors import StylebridgeError
from stylebridge.registry import hookimpl


class ServeCommand(Command):
    name = "serve"
    help = "a web app: drop a face photo, pick an encoder and domains, see the grid + metrics"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--host", default="127.0.0.1",
                            help="address to listen on (default 127.0.0.1: this machine only; "
                                 "on another address anyone who reaches it can run models and "
                                 "name checkpoint files of this machine in the encoder field)")
        parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
        parser.add_argument("--generator", type=user_spec, default=None, metavar="SPEC",
                            help="[stylegan2:]CKPT or an installed name (default: the installed "
                                 "official generator, else the demo's 64 px random-weight "
                                 "preset, labelled RANDOM WEIGHTS on the page)")
        parser.add_argument("--method", type=user_spec, action="append", default=[],
                            metavar="DOMAIN",
                            help="a domain checkpoint offered in the page (repeatable; installed "
                                 "domains are offered too, and more can be uploaded)")
        parser.add_argument("--calibrate", type=user_spec, default=None, metavar="alpha:FILE",
                            help="the alpha calibrator used when the page turns alpha "
                                 "calibration on (default: fitted on 16 generator samples)")
        parser.add_argument("--featureshift", type=user_path, default=None,
                            metavar="RUN.safetensors",
                            help="a trained FeatureShift model (default: an untrained one, "
                                 "labelled RANDOM WEIGHTS)")
        parser.add_argument("--work-dir", type=user_path, default=None, metavar="DIR",
                            help="where results, downloads and trained domains go "
                                 "(default: a new temporary folder)")
        parser.add_argument("--seed", type=seed_int, default=0,
                            help="seed of the random preset (default 0)")
        add_fetch_arguments(parser, "first fetch the weights the demo uses (`stylebridge "
                                    "weights fetch --set demo`: FFHQ generator, e4e, pSp, FSE, "
                                    "pixar, joker), then serve them; without network it says "
                                    "why in one line and serves what is installed")
        add_device_argument(parser)
        add_compile_argument(parser)
        add_precision_argument(parser)

    def run(self, args: argparse.Namespace, console: Console) -> int:
        if not 0 < args.port < 65536:
            raise StylebridgeError(f"--port {args.port}: must be in 1..65535")
        try:
            import gradio  # noqa: F401
        except ImportError:
            raise StylebridgeError("stylebridge serve needs gradio: "
                                   "pip install 'stylebridge[serve]'") from None
        check_serve_options(args)  # before a fetch or "loading models ..."
        from stylebridge.pipelines.serve import ServeBackend, ServeConfig
        from stylebridge.pipelines.serve.app import launch

        if args.fetch:
            fetch_demo_set(args.accept_licence, console)

        config = ServeConfig(generator=args.generator, domains=list(args.method),
                             calibrate=args.calibrate, featureshift=args.featureshift,
                             device=args.device, seed=args.seed, work_dir=args.work_dir,
                             compile=args.compile, precision=args.precision)
        console.print("loading models ...")
        backend = ServeBackend(config)
        if backend.banner:
            console.print(f"[bold yellow]{escape(backend.banner)}[/bold yellow]")
        console.print(f"serving on http://{args.host}:{args.port} (Ctrl+C stops; results in "
                      f"{escape(str(backend.work_dir))})", soft_wrap=True)
        launch(backend, args.host, args.port)
        return 0


def check_serve_options(args: argparse.Namespace) -> None:
    """One line, before any model loads, for a --device, --precision or --work-dir that the
    back end would refuse only once it starts loading."""
    from stylebridge.core.device import resolve_device
    from stylebridge.core.precision import check_precision
    from stylebridge.pipelines.training.outputs import check_out_writable

    device = resolve_device(args.device)
    try:
        check_precision(args.precision, device)
    except StylebridgeError as exc:
        message = str(exc).removeprefix("precision: ").removeprefix("precision fp16 ")
        raise StylebridgeError(f"--precision {args.precision}: {message}") from None
    if args.work_dir is not None:
        check_out_writable(args.work_dir, option="--work-dir", folder=True)


@hookimpl
def register_commands(register: Any) -> None:
    register(ServeCommand())
