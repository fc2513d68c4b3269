"""``stylebridge info REPORT.json`` and ``info FOLDER``: how a report a run wrote was made
(the RANDOM WEIGHTS notice, the versions, each model file with its sha256, the options, the
means, the photo counts), read defensively: a report is a file a user may have edited or
that may not be one at all, so every field is checked for its type, only regular files are
read, and a file that is no report is one line."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from stylebridge.errors import StylebridgeError

#: the keys by which a JSON object (or its ``meta``) reads as a stylebridge report: run
#: records, metrics.json, eval, analyze and reproduce reports all have one of them
REPORT_KEYS = ("software", "random_weights", "per_photo", "input_vs_inversion")
#: the largest report ``info`` reads (a report of 100 000 photos is a few tens of MB)
MAX_REPORT_BYTES = 64 * 2**20
#: a file record's fields shown (what run_record writes)
_SHA = "sha256"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _file(record: Any) -> dict[str, Any] | None:
    """A file record as shown: its path and sha256 when they are texts."""
    if not isinstance(record, Mapping):
        return None
    return {"path": _text(record.get("path")), _SHA: _text(record.get(_SHA))}


def _files(body: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    files: dict[str, dict[str, Any]] = {}
    if _text(body.get("generator_sha256")):
        files["generator file"] = {"path": _text(body.get("generator")),
                                   _SHA: body["generator_sha256"]}
    for key, value in body.items():
        if key.endswith("_file") and (record := _file(value)) is not None:
            files[f"{key.removesuffix('_file')} file"] = record
        elif key.endswith("_files") and isinstance(value, Mapping):
            for name, one in value.items():
                if (record := _file(one)) is not None:
                    files[f"{key.removesuffix('_files')} {name} file"] = record
    domains = body.get("domains")
    for domain in domains if isinstance(domains, list) else []:  # reproduce: domain files
        if isinstance(domain, Mapping) and _text(domain.get("file")):
            files[f"domain {domain.get('name')} file"] = {"path": domain["file"],
                                                          _SHA: _text(domain.get(_SHA))}
    rows = body.get("rows")
    for row in rows if isinstance(rows, list) else []:  # reproduce: each row's checkpoints
        parts = row.get("files") if isinstance(row, Mapping) else None
        for role, one in parts.items() if isinstance(parts, Mapping) else ():
            if (record := _file(one)) is not None:
                files[f"row {row.get('key')} {role} file"] = record
    models = body.get("clip_models")
    for model in models if isinstance(models, list) else []:  # reproduce: CLIP weights
        if isinstance(model, Mapping) and _text(model.get("weights")):
            files[f"clip {model.get('name')} file"] = {"path": model["weights"],
                                                       _SHA: _text(model.get("weights_sha256"))}
    return files


def _plain(value: Any) -> bool:
    """A value shown as an option: a number, a text, a flag, or a short list or mapping
    of them (``strength``, ``skip_layers``, analyze's ``encoders``)."""
    if isinstance(value, (str, int, float, bool)):
        return True
    if isinstance(value, list):
        return len(value) <= 64 and all(isinstance(v, (str, int, float, bool)) for v in value)
    if isinstance(value, Mapping):
        return len(value) <= 64 and all(isinstance(v, (str, int, float, bool))
                                        for v in value.values())
    return False


def _is_random(body: Mapping[str, Any]) -> bool:
    """A report says random weights by ``random_weights: true``, by its ``random_parts``, or
    by its RANDOM WEIGHTS ``notice`` (``generate.json`` has no ``random_weights``)."""
    from stylebridge.core.checkpoint import RANDOM_NOTICE

    parts = body.get("random_parts")
    notice = _text(body.get("notice")) or ""
    return (body.get("random_weights") is True or (isinstance(parts, list) and bool(parts))
            or notice.startswith(RANDOM_NOTICE))


def _means(body: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The means per output (metrics.json; adapt.json and invert.json under ``metrics_``;
    an eval report's ``mean``, pred vs target)."""
    means: dict[str, dict[str, Any]] = {}

    def numbers(values: Any) -> dict[str, Any] | None:
        if not isinstance(values, Mapping):
            return None
        return {str(k): v for k, v in values.items()
                if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))}

    for prefix in ("", "metrics_"):
        if (found := numbers(body.get(f"{prefix}input_vs_inversion"))) is not None:
            means["inversion"] = found
        domains = body.get(f"{prefix}input_vs_domain")
        for name, values in domains.items() if isinstance(domains, Mapping) else ():
            if (found := numbers(values)) is not None:
                means[str(name)] = found

    def named(value: Any) -> str:
        return ", ".join(map(str, value)) if isinstance(value, list) else str(value)

    if (found := numbers(body.get("mean"))) is not None:
        means[f"{named(body.get('pred'))} vs {named(body.get('target'))}"] = found
    return means


def _read(path: Path) -> Any:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise StylebridgeError(f"cannot be read ({exc.strerror or exc})", path=path) from None
    if not stat.S_ISREG(st.st_mode):  # a FIFO would block, /dev/urandom never ends
        raise StylebridgeError("is not a regular file", path=path)
    if st.st_size > MAX_REPORT_BYTES:
        raise StylebridgeError(f"is larger than {MAX_REPORT_BYTES >> 20} MB: not a report "
                               "info reads", path=path)
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except RecursionError:
        raise StylebridgeError("is no JSON report (nested too deeply)", path=path) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise StylebridgeError(f"is no JSON report ({str(exc).splitlines()[0]})",
                               path=path) from None


def report_summary(path: Path) -> dict[str, Any]:
    """What ``info REPORT.json`` shows of a report a run wrote (module docstring); a one-line
    error for a file that is no stylebridge report."""
    data = _read(path)
    meta = data.get("meta") if isinstance(data, dict) else None
    body = {**data, **meta} if isinstance(meta, dict) else data
    if not isinstance(body, dict) or not any(k in body for k in REPORT_KEYS):
        raise StylebridgeError("is a JSON file, not a report a stylebridge run wrote (nor a "
                               "checkpoint)", path=path)
    files = _files(body)
    shown = ("notice", "random_weights", "cwd", "done", "skipped", "random_parts", "pred",
             "target", "software", "clip_models")  # in rows of their own, or counted
    options = {k: v for k, v in body.items()
               if _plain(v) and k not in shown and not k.endswith((_SHA, "_file", "_files"))
               and "input_vs_" not in k and k != "mean"  # the means: rows of their own
               and not (k == "generator" and "generator file" in files)}
    settings = body.get("settings")  # an eval report's options
    if isinstance(settings, Mapping):
        options.update({k: v for k, v in settings.items() if v is None or _plain(v)})
    report = body.get("report") if isinstance(body.get("report"), Mapping) else body
    counts = {k: len(report[k]) for k in ("done", "skipped") if isinstance(report.get(k), list)}
    software = body.get("software")
    parts = body.get("random_parts")
    return {"path": str(path), "report": path.name, "random_weights": _is_random(body),
            "random_parts": [str(p) for p in parts] if isinstance(parts, list) else [],
            "notice": _text(body.get("notice")),
            "software": {str(k): str(v) for k, v in software.items()}
            if isinstance(software, Mapping) else None,
            "cwd": _text(body.get("cwd")), "files": files, "options": options,
            "counts": counts, "means": _means(body)}


def _table(path: Path) -> Table:
    table = Table(show_header=False, title=escape(str(path)))
    table.add_column("field", style="bold")
    table.add_column("value")
    return table


def print_report(info: Mapping[str, Any], console: Console) -> None:
    """One report's summary as a table."""
    from stylebridge.core.checkpoint import RANDOM_NOTICE

    table = _table(Path(info["path"]))
    if info["random_weights"]:
        parts = ", ".join(info["random_parts"])
        table.add_row("weights", f"[bold yellow]{RANDOM_NOTICE}[/bold yellow]: made with "
                                 f"untrained weights{escape(f' ({parts})' if parts else '')}")
    if info["software"]:
        table.add_row("software", escape(", ".join(f"{k} {v}"
                                                   for k, v in info["software"].items())))
    for name, record in info["files"].items():
        digest = record.get(_SHA)
        table.add_row(escape(name), escape(f"{record.get('path')}"
                                           + (f" (sha256 {digest[:12]}…)" if digest else
                                              " (no sha256 recorded)")))
    if info["cwd"]:
        table.add_row("folder", escape(info["cwd"]))
    for key, value in info["options"].items():
        table.add_row(escape(key), escape(json.dumps(value, ensure_ascii=False)))
    for output, values in info["means"].items():
        table.add_row(escape(f"means: {output}"), escape(", ".join(
            f"{k} {v:.4g}" if isinstance(v, (int, float)) else f"{k} n/a"
            for k, v in values.items())))
    if info["counts"]:
        table.add_row("photos", ", ".join(f"{n} {k}" for k, n in info["counts"].items()))
    console.print(table)


def folder_reports(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The summaries of the reports in a run's folder, and one line per JSON file there
    that could not be read as one (named, with why)."""
    found, unread = [], []
    for report in sorted(path.glob("*.json")):
        try:
            found.append(report_summary(report))
        except StylebridgeError as exc:
            if "not a report a stylebridge run wrote" not in str(exc):
                unread.append(str(exc))
    if not found:
        raise StylebridgeError("is a folder holding no report a stylebridge run wrote; give a "
                               "checkpoint, a picture or a report", path=path)
    return found, unread


__all__ = ["MAX_REPORT_BYTES", "REPORT_KEYS", "folder_reports", "print_report",
           "report_summary"]
