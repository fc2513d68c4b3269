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
            "a picture it wrote keeps: the RANDOM WEIGHTS notice, a grid mark; or how a "
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
    table = _field_table(path)
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


#: the keys by which a JSON file reads as a stylebridge report (run records, metrics.json,
#: eval, analyze and reproduce reports all have one of them)
REPORT_KEYS = ("software", "random_weights", "per_photo", "input_vs_inversion", "meta")
#: the largest report ``info`` reads (a report of 100 000 photos is a few tens of MB)
MAX_REPORT_BYTES = 256 * 2**20


def report_summary(path: Path) -> dict[str, Any]:
    """What ``info REPORT.json`` shows of a report a run wrote: the random-weights notice,
    the versions, each model file with its sha256, the options (top-level values) and the
    counts; a one-line error for a file that is no stylebridge report."""
    from stylebridge.errors import StylebridgeError

    if path.stat().st_size > MAX_REPORT_BYTES:
        raise StylebridgeError(f"is larger than {MAX_REPORT_BYTES >> 20} MB: not a report "
                               "info reads", path=path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise StylebridgeError(f"is no JSON report ({str(exc).splitlines()[0]})",
                               path=path) from None
    meta = data.get("meta") if isinstance(data, dict) else None
    body = {**data, **meta} if isinstance(meta, dict) else data
    if not isinstance(body, dict) or not any(k in body for k in REPORT_KEYS):
        raise StylebridgeError("is a JSON file, not a report a stylebridge run wrote (nor a "
                               "checkpoint)", path=path)
    files = {}
    for key, value in body.items():
        if key == "generator_sha256" and isinstance(value, str):
            files["generator file"] = {"path": body.get("generator"), "sha256": value}
        elif key.endswith("_file") and isinstance(value, dict):
            files[f"{key.removesuffix('_file')} file"] = value
        elif key.endswith("_files") and isinstance(value, dict):
            files.update({f"{key.removesuffix('_files')} {name} file": record
                          for name, record in value.items() if isinstance(record, dict)})
    for model in body.get("clip_models") or []:  # reproduce: each CLIP model's weights
        if isinstance(model, dict) and model.get("weights"):
            files[f"clip {model.get('name')} file"] = {"path": model["weights"],
                                                       "sha256": model.get("weights_sha256")}

    def scalar(value: Any) -> bool:
        return isinstance(value, (str, int, float, bool)) or (
            isinstance(value, list) and all(isinstance(v, (str, int, float, bool))
                                            for v in value))

    options = {k: v for k, v in body.items()
               if scalar(v) and not k.endswith("sha256") and k not in
               ("notice", "random_weights", "cwd", "done", "skipped", "random_parts")
               and not (k == "generator" and "generator file" in files)}
    counts = {k: len(body[k]) for k in ("done", "skipped") if isinstance(body.get(k), list)}
    means = {}  # metrics.json (adapt.json, invert.json: metrics_...): the means per output
    for prefix in ("", "metrics_"):
        if isinstance(body.get(f"{prefix}input_vs_inversion"), dict):
            means["inversion"] = body[f"{prefix}input_vs_inversion"]
        if isinstance(body.get(f"{prefix}input_vs_domain"), dict):
            means.update({k: v for k, v in body[f"{prefix}input_vs_domain"].items()
                          if isinstance(v, dict)})
    def named(value: Any) -> str:
        return ", ".join(map(str, value)) if isinstance(value, list) else str(value)

    if isinstance(body.get("mean"), dict):  # an eval report: pred vs target
        means[f"{named(body.get('pred'))} vs {named(body.get('target'))}"] = body["mean"]
    report = body.get("report")
    if not counts and isinstance(report, dict):  # eval, analyze: the batch report
        counts = {k: len(report[k]) for k in ("done", "skipped") if isinstance(report.get(k), list)}
    if isinstance(body.get("settings"), dict):
        options.update({k: v for k, v in body["settings"].items()
                        if isinstance(v, (str, int, float, bool, list)) or v is None})
    return {"path": str(path), "report": path.name,
            "random_weights": bool(body.get("random_weights")),
            "random_parts": body.get("random_parts") or [], "notice": body.get("notice"),
            "software": body.get("software"), "cwd": body.get("cwd"), "files": files,
            "options": options, "counts": counts, "means": means}


def _report_info(path: Path, as_json: bool, console: Console) -> int:
    """A report a run wrote (``adapt.json``, ``metrics.json``, an eval or analyze report)."""
    info = report_summary(path)
    if as_json:
        print_json(info)
        return 0
    from stylebridge.core.checkpoint import RANDOM_NOTICE

    table = _field_table(path)
    if info["random_weights"]:
        parts = ", ".join(map(str, info["random_parts"]))
        table.add_row("weights", f"[bold yellow]{RANDOM_NOTICE}[/bold yellow]: made with "
                                 f"untrained weights{escape(f' ({parts})' if parts else '')}")
    if info["software"]:
        table.add_row("software", escape(", ".join(f"{k} {v}"
                                                   for k, v in info["software"].items())))
    for name, record in info["files"].items():
        digest = record.get("sha256")
        table.add_row(escape(name), escape(f"{record.get('path')}"
                                           + (f" (sha256 {digest[:12]}…)" if digest else
                                              " (no sha256 recorded)")))
    if info["cwd"]:
        table.add_row("folder", escape(str(info["cwd"])))
    for key, value in info["options"].items():
        table.add_row(escape(key), escape(json.dumps(value, ensure_ascii=False)))
    for output, values in info["means"].items():
        table.add_row(escape(f"means: {output}"), escape(", ".join(
            f"{k} {v:.4g}" if isinstance(v, (int, float)) else f"{k} n/a"
            for k, v in values.items())))
    if info["counts"]:
        table.add_row("photos", ", ".join(f"{n} {k}" for k, n in info["counts"].items()))
    console.print(table)
    return 0


def _folder_info(path: Path, as_json: bool, console: Console) -> int:
    """A run's folder: the reports it holds (``adapt.json``, ``metrics.json``, ...), each as
    ``info REPORT.json`` shows it."""
    from stylebridge.errors import StylebridgeError

    found = []
    for report in sorted(path.glob("*.json")):
        try:
            found.append(report_summary(report))
        except (StylebridgeError, OSError):
            continue  # another JSON file
    if not found:
        raise StylebridgeError("is a folder holding no report a stylebridge run wrote; give a "
                               "checkpoint, a picture or a report", path=path)
    if as_json:
        print_json(found)
        return 0
    for info in found:
        _report_info(Path(info["path"]), False, console)
    return 0


@hookimpl
def register_commands(register: Any) -> None:
    register(InfoCommand())
