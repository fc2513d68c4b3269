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
            "a picture it wrote keeps: the RANDOM WEIGHTS notice, a grid mark, the photo "
            "an aligned one was made from; or how a "
            "report a run wrote was made: versions, files with sha256, options)")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("checkpoint", metavar="[NAME:]CKPT", type=user_spec,
                            help="checkpoint file; with NAME:, also check that it holds that "
                                 "plugin; or a picture a run wrote (.png, .jpg, ...); or a "
                                 "report it wrote (adapt.json, metrics.json, ...), or its "
                                 "folder (every report in it)")
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")

    def run(self, args: argparse.Namespace, console: Console) -> int:
        from stylebridge.core.checkpoint import RANDOM_NOTICE, is_random_weights, load_checkpoint

        picture = Path(args.checkpoint)
        if picture.suffix.lower() in PICTURES and picture.is_file():
            return _png_info(picture, args.json, console)
        if picture.suffix.lower() == ".json" and picture.is_file():
            return _report_info(picture, args.json, console)
        if picture.is_dir():
            return _folder_info(picture, args.json, console)
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
        table = _field_table(args.checkpoint)
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
        table.add_row("config", escape(json.dumps(shortened(header.config), ensure_ascii=False)))
        for key, value in header.extra.items():  # one row each; --json gives them whole
            table.add_row(escape(f"extra.{key}"),
                          escape(json.dumps(shortened(value), ensure_ascii=False)))
        console.print(table)
        return 0


#: a list of more numbers than this is shown by its length and ends (an RNG state)
LONG_LIST = 16


def shortened(value: Any) -> Any:
    """``value`` for the table: a list of more than :data:`LONG_LIST` numbers as
    ``"[624 numbers: 5489, 1301868182, …, 2983976165]"`` (``--json`` keeps every number)."""
    if isinstance(value, dict):
        return {k: shortened(v) for k, v in value.items()}
    if isinstance(value, list):
        if len(value) > LONG_LIST and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                          for v in value):
            return f"[{len(value)} numbers: {value[0]}, {value[1]}, …, {value[-1]}]"
        return [shortened(v) for v in value]
    return value


def _field_table(path: Path) -> Table:
    """The two-column table ``info`` shows a file in, titled with its path."""
    table = Table(show_header=False, title=escape(str(path)))
    table.add_column("field", style="bold")
    table.add_column("value")
    return table


#: pictures `info` reads (what stylebridge writes: PNG; `save_image` also JPEG, WebP, TIFF)
PICTURES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff")


def _png_info(path: Path, as_json: bool, console: Console) -> int:
    """A picture stylebridge wrote: its size and what it keeps in the file (an aligned
    picture's photo, sha256 and options; a grid mark, the
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
            "grid": GRID_KEY in text, "notice": text.get(NOTICE_KEY),
            "aligned_from": _aligned_from(text)}
    if as_json:
        print_json(info)
        return 0
    table = _field_table(path)
    if info["notice"]:
        head, _, rest = str(info["notice"]).partition(":")
        table.add_row("weights", f"[bold yellow]{escape(head)}[/bold yellow]:{escape(rest)}")
    table.add_row("image", f"{width}x{height} {kind}, {escape(samples)}" + (
        ", a grid of a stylebridge run"
        if info["grid"] else ""))
    made = info["aligned_from"]
    if made is not None:
        table.add_row("source", escape(
            f"aligned from a photo with sha256 {made.get('photo_sha256')}; --size {made.get('size')}, "
            f"--transform-size {made.get('transform_size')}, "
            + ("padding" if made.get("padding") else "--no-padding")))
    if not info["notice"] and not info["grid"] and made is None:
        table.add_row("stylebridge", "no notice kept in this file")
    console.print(table)
    return 0


def _aligned_from(text: dict[str, Any]) -> dict[str, Any] | None:
    """What an aligned picture records of its photo (``align``'s ``stylebridge:aligned-from``
    text chunk); ``None`` when it holds none (or not one that reads)."""
    from stylebridge.pipelines.align_batch import SOURCE_KEY

    try:
        record = json.loads(str(text.get(SOURCE_KEY)))
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _report_info(path: Path, as_json: bool, console: Console) -> int:
    """A report a run wrote (``adapt.json``, ``metrics.json``, an eval or analyze report)."""
    from stylebridge.cli.report_info import print_report, report_summary

    info = report_summary(path)
    if as_json:
        print_json(info)
    else:
        print_report(info, console)
    return 0


def _folder_info(path: Path, as_json: bool, console: Console) -> int:
    """A run's folder: the reports it holds, each as ``info REPORT.json`` shows it, and a
    note for each JSON file there that could not be read as one."""
    from stylebridge.cli.options import notice_console
    from stylebridge.cli.report_info import folder_reports, print_report

    found, unread = folder_reports(path)
    if as_json:
        print_json(found)
    else:
        for info in found:
            print_report(info, console)
    for line in unread:
        notice_console(console).print(f"note: skipped {line}", style="yellow", markup=False,
                                      highlight=False)
    return 0


@hookimpl
def register_commands(register: Any) -> None:
    register(InfoCommand())
