"""``stylebridge align``: FFHQ-align face photos (dlib 68 landmarks), the
:mod:`stylebridge.pipelines.align` pipeline; exit code 3 when some inputs were skipped, 2
when all were."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.markup import escape

from stylebridge.cli.base import Command
from stylebridge.cli.common import add_images_argument, add_out_argument, out_dir, print_json
from stylebridge.cli.options import (
    notice_console,
    print_batch_report,
    progress_bar,
    refuse_closed_stdout,
)
from stylebridge.core.limits import MAX_IMAGE_SIZE, check_range
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.align import DEFAULT_SIZE, AlignConfig, align
from stylebridge.registry import hookimpl


class AlignCommand(Command):
    """FFHQ-align face photos (dlib 68 landmarks) for the FFHQ encoders."""

    name = "align"
    help = "FFHQ-align face photos (dlib 68 landmarks), as pSp/e4e/FSE expect"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_images_argument(parser)
        add_out_argument(parser, "aligned")  # <stem>.png per face
        parser.add_argument("--size", type=int, default=DEFAULT_SIZE,
                            help=f"output size in pixels (default {DEFAULT_SIZE}, at most {MAX_IMAGE_SIZE})")
        parser.add_argument("--transform-size", type=int, default=None, metavar="N",
                            help="supersampling size of the quad transform (default 4×size, "
                                 "FFHQ's 4096 at 1024; e4e/pSp use N = size; at most "
                                 f"{4 * MAX_IMAGE_SIZE})")
        parser.add_argument("--no-padding", action="store_true",
                            help="no blur-padding where the crop leaves the photo")
        parser.add_argument("--all-faces", action="store_true",
                            help="every face of a photo, largest first: <stem>_00.png, "
                                 "<stem>_01.png... (default: the largest face, <stem>.png)")
        parser.add_argument("--min-face", type=int, default=0, metavar="PX",
                            help="with --all-faces: leave out faces whose detector box is "
                                 "smaller than PX input pixels on its shorter side (default 0)")
        parser.add_argument("--landmarks", action="store_true",
                            help="also write landmarks.json (68 points, quad, detector box "
                                 "[left, top, right, bottom]; in the upright input photo's "
                                 "pixels, also for a huge photo read reduced)")
        parser.add_argument("--skip-existing", "--resume", action=_TypedFlag, nargs=0,
                            default=False, dest="skip_existing",
                            help="continue an interrupted run in --out: photos whose <stem>.png "
                                 "is there are kept, not aligned again (a photo replaced since "
                                 "its picture was made is aligned again; not with --all-faces "
                                 "or --landmarks; --resume, as adapt/invert/generate call it, "
                                 "is the same)")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def run(self, args: argparse.Namespace, console: Console) -> int:
        check_range("--size", args.size, 1, MAX_IMAGE_SIZE)
        if args.transform_size is not None:
            check_range("--transform-size", args.transform_size, 1, 4 * MAX_IMAGE_SIZE)
        flag = getattr(args, "skip_existing_option", "--skip-existing")
        if args.skip_existing and args.out is None:
            raise StylebridgeError(f"{flag} continues a folder: give it as --out DIR")
        if args.json:
            refuse_closed_stdout("--json")  # before the work, whose report would be lost
        config = AlignConfig(images=args.images, out=out_dir(args.out, "aligned"), size=args.size,
                             transform_size=args.transform_size, padding=not args.no_padding,
                             landmarks=args.landmarks, all_faces=args.all_faces,
                             min_face=args.min_face, skip_existing=args.skip_existing,
                             skip_existing_option=flag)
        try:
            with progress_bar(console) as progress:
                result = align(config, progress)
        except (KeyboardInterrupt, MemoryError, OSError) as exc:
            hint = continue_hint(config, ctrl_c=isinstance(exc, KeyboardInterrupt))
            if hint:  # a notice: on stderr, as every batch command's
                notice_console(console).print(escape(hint), style="yellow")
            raise
        if args.json:
            report = result.report.as_dict()  # kept photos: under "kept" only, not "done"
            kept = [str(p) for p in result.kept]
            print_json({**report, "done": [p for p in report["done"] if p not in set(kept)],
                        "kept": kept, "realigned": [str(p) for p in result.realigned]})
        else:
            if result.faces:  # where they went: the default --out moves on to aligned-2, -3...
                n = len(result.faces)
                console.print(f"[green]wrote[/green] {n} aligned face{'s' if n != 1 else ''} → "
                              f"{escape(str(config.out))}", highlight=False)
            if result.kept:
                console.print(escape(f"{len(result.kept)} photo(s) already aligned in "
                                     f"{config.out}: kept"))
            if result.realigned:
                console.print(escape(f"{len(result.realigned)} photo(s) replaced since their "
                                     f"picture in {config.out} was made: aligned again"))
            print_batch_report(console, result.report)
        return result.exit_code


class _TypedFlag(argparse.Action):
    """A ``store_true`` flag that also records which of its names was typed
    (``args.<dest>_option``), so that errors say ``--resume`` to whoever typed that."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, True)
        setattr(namespace, f"{self.dest}_option", option_string or self.option_strings[0])


def continue_hint(config: AlignConfig, *, ctrl_c: bool = True) -> str | None:
    """What to run after an interrupted ``align`` (Ctrl-C, a full disk, out of memory): its
    files are the record, so ``--skip-existing`` (``--resume``) keeps the photos aligned so
    far, except with ``--all-faces`` or ``--landmarks``.  When no photo was aligned yet: the
    same command again after a Ctrl-C, nothing after a full disk (``ctrl_c`` false)."""
    out = config.out
    if not (out.is_dir() and any(out.glob("*.png"))):
        return (f"no photo was aligned into {out} yet: run the same command again"
                if ctrl_c else None)
    if config.all_faces or config.landmarks:
        return (f"the faces aligned so far are in {out}, but --skip-existing (--resume) cannot "
                "continue a run with --all-faces or --landmarks: run the same command again")
    return (f"the photos aligned so far are kept in {out} (by --skip-existing, also called "
            f"--resume): continue with `stylebridge align ... --resume --out {out}` (the same "
            "--size)")


@hookimpl
def register_commands(register: Any) -> None:
    register(AlignCommand())


__all__ = ["AlignCommand", "continue_hint"]
