"""``stylebridge serve``: the web app (a Gradio page; the back end is
:mod:`stylebridge.pipelines.serve`)."""

from __future__ import annotations

import argparse
import signal
from collections.abc import Iterator
from contextlib import contextmanager
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
from stylebridge.cli.options import notice_console
from stylebridge.errors import StylebridgeError
from stylebridge.registry import hookimpl


class ServeCommand(Command):
    name = "serve"
    help = "a web app: drop a face photo, pick an encoder and domains, see the grid + metrics"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--host", default="127.0.0.1",
                            help="address to listen on (default 127.0.0.1: this machine only). "
                                 "The page has no authentication (a single-user or "
                                 "trusted-LAN tool: every client shares its domains, queue "
                                 "and last 16 runs): on another address anyone "
                                 "who reaches it can upload photos, run models and name "
                                 "checkpoint files of this machine in the encoder field (a "
                                 "notice says so). Requests are answered only when addressed "
                                 "to localhost, 127.0.0.1, [::1] or this address (bound to "
                                 "0.0.0.0 or ::, also any IP address of the machine); a page "
                                 "of another site cannot upload or run (its Origin is refused)")
        parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                            help="also answer requests addressed to the host name NAME (a "
                                 "DNS name of this machine, or the name a reverse proxy "
                                 "passes on); repeatable. Any other name is refused, so that "
                                 "a web page cannot reach the server by pointing its own name "
                                 "at this machine (DNS rebinding)")
        parser.add_argument("--port", type=int, default=7860,
                            help="port (default 7860); one in use is refused before the models "
                                 "load")
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
                            help="where results, downloads and trained domains go, kept "
                                 "when the server stops (default: a new temporary folder, "
                                 "removed when it stops). Only the result files of each run "
                                 "are served to the page, never the rest of this folder; "
                                 "uploaded photos and domain files stay in a temporary upload "
                                 "folder of the server's own, deleted an hour after upload "
                                 "and all at once when it stops")
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
        from stylebridge.pipelines.serve.guard import exposure_notice

        if args.fetch:
            fetch_demo_set(args.accept_licence, console)

        config = ServeConfig(generator=args.generator, domains=list(args.method),
                             calibrate=args.calibrate, featureshift=args.featureshift,
                             device=args.device, seed=args.seed, work_dir=args.work_dir,
                             compile=args.compile, precision=args.precision)
        with _stop_on_signals():  # SIGTERM/SIGHUP stop the server as Ctrl+C does: cleaned up
            console.print("loading models ...")
            backend = ServeBackend(config)
            try:
                if backend.banner:
                    console.print(f"[bold yellow]{escape(backend.banner)}[/bold yellow]")
                for line in backend.start_notes:  # compiling, a slow precision: said once
                    notice_console(console).print(f"[yellow]note:[/yellow] {escape(line)}",
                                                  soft_wrap=True)
                check_port(args.host, args.port)  # again: taken while the models loaded?
                kept = "" if args.work_dir is not None else ", removed when it stops"
                console.print(f"serving on {_url(args.host, args.port)} (Ctrl+C stops; results "
                              f"in {escape(str(backend.work_dir))}{kept})", soft_wrap=True)
                notice = exposure_notice(args.host, args.port)
                if notice is not None:
                    notice_console(console).print(f"[bold yellow]{escape(notice)}[/bold yellow]",
                                                  soft_wrap=True)
                launch(backend, args.host, args.port, allow_hosts=args.allow_host)
            finally:
                backend.close()  # the temporary work dir (launch cleans up too; idempotent)
        return 0


def _url(host: str, port: int) -> str:
    from stylebridge.pipelines.serve.guard import host_name

    name = host_name(host)
    return f"http://[{name}]:{port}" if ":" in name else f"http://{name}:{port}"


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP raise KeyboardInterrupt in the main thread while serving, so that
    the server stops as on Ctrl+C: queued requests are refused, a training stops after its
    step, the running request ends, then the server closes and removes its uploads and
    temporary work dir (exit 0; :mod:`stylebridge.pipelines.serve.lifecycle`).  A second
    signal while it waits stops at once.  The previous handlers come back after."""
    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signals = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
    try:
        previous = {sig: signal.signal(sig, stop) for sig in signals}
    except ValueError:  # not the main thread: leave the handlers alone
        previous = {}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def check_port(host: str, port: int) -> None:
    """One line, naming --port, when the server could not listen on ``host:port``."""
    from stylebridge.pipelines.serve.guard import port_problem

    problem = port_problem(host, port)
    if problem == "already in use":
        raise StylebridgeError(f"--port {port}: already in use on {host} (another server is "
                               "listening there): choose another --port or stop that one")
    if problem is not None:
        raise StylebridgeError(f"--host {host} --port {port}: cannot listen there: {problem}")


def check_serve_options(args: argparse.Namespace) -> None:
    """One line, before any model loads, for a --device, --precision or --work-dir that the
    back end would refuse only once it starts loading, and for a --port in use."""
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
    check_port(args.host, args.port)


@hookimpl
def register_commands(register: Any) -> None:
    register(ServeCommand())
