"""``stylebridge info``: a stylebridge checkpoint's header, tensor and parameter counts."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from stylebridge.cli.base import Command
from stylebridge.cli.common import print_json, user_spec
from stylebridge.registry import hookimpl
from stylebridge.registry.resolve import resolve_checkpoint


class InfoCommand(Command):
    name = "info"
    help = ("show a stylebridge checkpoint's header, tensor and parameter counts (or what "
            "a picture it wrote keeps: the RANDOM WEIGHTS notice, a grid mark)")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("checkpoint", metavar="[NAME:]CKPT", type=user_spec,
                            help="checkpoint file; with NAME:, also check that it holds that "
                                 "plugin; or a picture a run wrote (.png, .jpg, ...)")
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")

    def run(self, args: argparse.Namespace, console: Console) -> int:
        from stylebridge.core.checkpoint import RANDOM_NOTICE, is_random_weights, load_checkpoint

        picture = Path(args.checkpoint)
        if picture.suffix.lower() in PICTURES and picture.is_file():
            return _png_info(picture, args.json, console)
        name, path = resolve_checkpoint(args.checkpoint, "checkpoint")
        args.checkpoint = path
        header, tensors = load_checkpoint(path, plugin=name)
        dtypes: dict[str, int] = {}
        for t in tensors.values():
            dtypes[str(t.dtype).removeprefix("torch.")] = dtypes.get(
                str(t.dtype).removeprefix("torch."), 0) + t.numel()
        info = {
            "path": str(args.checkpoint),
            "bytes": args.checkpoint.stat().st_size,
            "format_version": header.version,
            "kind": header.kind,
            "plugin": header.plugin,
            "config": header.config,
            "extra": header.extra,
            "n_tensors": len(tensors),
            "n_parameters": sum(t.numel() for t in tensors.values()),
            "dtypes": dtypes,
            "random_weights": is_random_weights(header.extra),
        }
        if args.json:
            print_json(info)
            return 0
        table = Table(show_header=False, title=escape(str(args.checkpoint)))
        table.add_column("field", style="bold")
        table.add_column("value")
        if info["random_weights"]:  # the header says untrained: first, where it is seen
            parts = header.extra.get("random_parts")
            what = (f"trained on random-weight inputs ({escape(', '.join(map(str, parts)))}), so "
                    "not a real model" if isinstance(parts, list) and parts
                    else "untrained, not a trained model")
            table.add_row("weights", f"[bold yellow]{RANDOM_NOTICE}[/bold yellow]: {what}")
        for key in ("kind", "plugin", "format_version", "n_tensors", "n_parameters", "bytes"):
            value = info[key]
            table.add_row(key, f"{value:,}" if isinstance(value, int) else escape(str(value)))
        table.add_row("dtypes", ", ".join(f"{k}: {v:,}" for k, v in dtypes.items()))
        table.add_row("config", escape(json.dumps(header.config)))
        if header.extra:
            table.add_row("extra", escape(json.dumps(header.extra)))
        console.print(table)
        return 0


#: pictures `info` reads (what stylebridge writes: PNG; `save_image` also JPEG, WebP, TIFF)
PICTURES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff")


def _png_info(path: Path, as_json: bool, console: Console) -> int:
    """A picture stylebridge wrote: its size and what it keeps in the file (a grid mark, the
    RANDOM WEIGHTS notice of a run on untrained weights: PNG text, else EXIF
    ImageDescription)."""
    from stylebridge.core.image_depth import describe_samples
    from stylebridge.core.images import GRID_KEY, NOTICE_KEY, image_error, open_image

    # what every command reads images with: the same pixel limit (one line naming the file,
    # no DecompressionBombError) and the same reasons for a file that is no image ("is empty
    # (0 bytes)", "is an MP4/QuickTime video, not an image")
    try:
        with open_image(path) as image:
            width, height, text = image.width, image.height, dict(image.info)
            kind = image.format or path.suffix[1:].upper()  # a JPEG named .png says JPEG
            samples = describe_samples(image, list(image.tile))  # how every command reads it
            # save_image(notice=) in JPEG/WebP/TIFF; a PNG keeps it as text (read above), and
            # its getexif() would decode the whole image to look for a late eXIf chunk
            described = None if kind == "PNG" else image.getexif().get(0x010E)
            if NOTICE_KEY not in text and isinstance(described, str):
                text[NOTICE_KEY] = described
    except (OSError, ValueError, SyntaxError) as exc:
        raise image_error(path, exc) from None
    info = {"path": str(path), "width": width, "height": height, "samples": samples,
            "grid": GRID_KEY in text, "notice": text.get(NOTICE_KEY)}
    if as_json:
        print_json(info)
        return 0
    table = Table(show_header=False, title=escape(str(path)))
    table.add_column("field", style="bold")
    table.add_column("value")
    if info["notice"]:
        head, _, rest = str(info["notice"]).partition(":")
        table.add_row("weights", f"[bold yellow]{escape(head)}[/bold yellow]:{escape(rest)}")
    table.add_row("image", f"{width}x{height} {kind}, {escape(samples)}" + (
        ", a grid of a stylebridge run"
        if info["grid"] else ""))
    if not info["notice"] and not info["grid"]:
        table.add_row("stylebridge", "no notice kept in this file")
    console.print(table)
    return 0


@hookimpl
def register_commands(register: Any) -> None:
    register(InfoCommand())
