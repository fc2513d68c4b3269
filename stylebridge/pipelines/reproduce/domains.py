"""The domains of ``reproduce thesis-tables`` and their CLIP Quality targets."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from stylebridge.core.batch import BatchReport
from stylebridge.core.checkpoint import read_header
from stylebridge.core.interfaces import DomainMethod
from stylebridge.core.stylegan2.generator import Generator
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.adapt import INVERSION, check_domains
from stylebridge.pipelines.reproduce.common import KINDS, TARGETS_FILE, header_random
from stylebridge.plugins.domains.base import KIND
from stylebridge.registry.resolve import load_domain


@dataclass
class DomainEntry:
    """A domain of the evaluation: its method and its CLIP Quality target."""

    name: str                  # unique, the file stem
    path: Path
    method: DomainMethod
    kind: str                  # "image" | "text"
    text: str | None = None
    image: Path | None = None
    target_source: str = "header"
    random: bool = False
    #: the domain method's registered name (the checkpoint header's ``plugin``)
    plugin: str = ""
    #: wall-clock seconds its training took, when known (``--methods`` recipes)
    train_seconds: float | None = None
    #: parameters per domain when the method's own ``parameters()`` do not say it (a
    #: hyper-network's domain); ``None`` = count them (:meth:`n_parameters`)
    params: int | None = None

    def n_parameters(self) -> int:
        """Parameters this domain stores (``params``, else the method's parameters)."""
        if self.params is not None:
            return int(self.params)
        return sum(p.numel() for p in self.method.parameters())

    def quality_options(self, template: str) -> dict[str, str]:
        """``text=`` (formatted) or ``reference=`` for ``clip_quality``."""
        if self.text is not None:
            return {"text": template.format(self.text)}
        assert self.image is not None
        return {"reference": str(self.image)}

    def quality_targets(self, template: str) -> dict[str, dict[str, str]]:
        """Every Quality target the domain has: ``{"text": {"text": ...}, "reference-image":
        {"reference": PATH}}`` (those it has); the tables pick one per table
        (:mod:`stylebridge.pipelines.reproduce.groups`)."""
        out: dict[str, dict[str, str]] = {}
        if self.text is not None:
            out["text"] = {"text": template.format(self.text)}
        if self.image is not None and Path(self.image).is_file():
            out["reference-image"] = {"reference": str(self.image)}
        return out or {"text" if self.text is not None else "reference-image":
                       self.quality_options(template)}

    def describe(self, template: str) -> dict[str, Any]:
        from stylebridge.pipelines.run_record import model_file

        record = model_file(self.method)  # the file as loaded (None: not loaded from one)
        return {"name": self.name, "file": str(self.path),
                "sha256": None if record is None else record.get("sha256"), "kind": self.kind,
                "text": self.text, "image": None if self.image is None else str(self.image),
                "quality_target": self.quality_options(template),
                "target_source": self.target_source, "random_weights": self.random}


def read_targets(path: Path) -> dict[str, dict[str, Any]]:
    """A targets JSON → ``{key: {"text"?, "image"? (resolved), "kind"?}}``; one-line errors."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StylebridgeError("no such file", path=path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StylebridgeError(f"not a readable JSON file ({exc})", path=path) from None
    if not isinstance(data, dict):
        raise StylebridgeError("must map domain files to a text or {\"text\"|\"image\": ...}",
                               path=path)
    out: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        if isinstance(value, str):
            value = {"text": value}
        if not isinstance(value, dict) or not ({"text", "image"} & set(value)):
            raise StylebridgeError(f"entry {key!r} must be a text or an object with \"text\" "
                                   "and/or \"image\"", path=path)
        unknown = set(value) - {"text", "image", "kind"}
        if unknown:
            raise StylebridgeError(f"entry {key!r} has unknown field(s) {sorted(unknown)}",
                                   path=path)
        entry: dict[str, Any] = {}
        if value.get("text") is not None:
            entry["text"] = str(value["text"])
        if value.get("image") is not None:
            image = Path(os.path.expanduser(str(value["image"])))
            entry["image"] = image if image.is_absolute() else path.parent / image
        if "kind" in value:
            if value["kind"] not in KINDS:
                raise StylebridgeError(f"entry {key!r}: kind must be 'image' or 'text'", path=path)
            entry["kind"] = value["kind"]
        out[str(key)] = entry
    return out


def _lookup_target(targets: Mapping[Path, dict[str, dict[str, Any]]], path: Path,
                   used: set[tuple[Path, str]] | None = None) -> dict[str, Any] | None:
    """The entry of ``path`` in the targets JSONs (``used`` collects ``(json, key)``)."""
    for json_path, table in targets.items():
        for key in (path.name, path.stem, str(path)):
            if key in table:
                if used is not None:
                    used.add((json_path, key))
                return table[key]
        for key, entry in table.items():
            candidate = Path(key)
            if not candidate.is_absolute():
                candidate = json_path.parent / candidate
            with contextlib.suppress(OSError):
                if candidate.resolve() == path.resolve():
                    if used is not None:
                        used.add((json_path, key))
                    return entry
    return None


def _header_target(extra: Mapping[str, Any], path: Path) -> tuple[dict[str, Any], str | None]:
    """(target from ``extra.target``, kind from ``extra.da_type``) of a domain header."""
    target: dict[str, Any] = {}
    raw = extra.get("target")
    if isinstance(raw, Mapping):
        if raw.get("text"):
            target["text"] = str(raw["text"])
        elif raw.get("image"):
            image = Path(os.path.expanduser(str(raw["image"])))
            if not image.exists() and not image.is_absolute():
                image = path.parent / image
            target["image"] = image
            target["kind"] = "image"
    da_type = str(extra.get("da_type", ""))
    kind = "text" if da_type == "td" else "image" if da_type.startswith("im2im") else None
    return target, kind


def domain_files(items: Sequence[str | Path]) -> list[Path]:
    """The domain checkpoints ``--domains`` names: files as given, a folder's
    ``*.safetensors`` (sorted; not hidden ``._x`` resource forks).  One-line errors for a
    path that does not exist and for no checkpoint at all (an empty folder), before any
    model loads."""
    files: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir()
                                if p.is_file() and p.suffix == ".safetensors"
                                and not p.name.startswith(".")))
        elif path.exists():
            files.append(path)
        else:
            raise StylebridgeError("no such file or directory", path=path)
    if not files:
        given = ", ".join(str(item) for item in items[:3]) + (", ..." if len(items) > 3 else "")
        raise StylebridgeError(f"no domain checkpoints in {given or 'the arguments'} (folders "
                               "are searched for *.safetensors files)")
    return files


def collect_domains(items: Sequence[str | Path], targets_files: Sequence[Path],
                    report: BatchReport, *, generator: Generator, device: torch.device
                    ) -> list[DomainEntry]:
    """Load every domain checkpoint of ``items`` (folders: their ``*.safetensors``) with its
    Quality target; unusable domains go to ``report``."""
    files = domain_files(items)
    jsons = [Path(p) for p in targets_files]
    jsons += [Path(p) / TARGETS_FILE for p in items if (Path(p) / TARGETS_FILE).is_file()]
    targets = {p: read_targets(p) for p in jsons}
    out: list[DomainEntry] = []
    names: set[str] = set()
    used: set[tuple[Path, str]] = set()
    for path in files:
        try:
            header, method = load_checked_domain(path, generator=generator, device=device)
        except StylebridgeError as exc:
            report.skip(path, str(exc).removeprefix(f"{path}: "))
            continue
        target, header_kind = _header_target(header.extra, path)
        source = "header"
        sidecar = _lookup_target(targets, path, used)
        if sidecar is not None:
            target, source = dict(sidecar), "targets JSON"
        if not target.get("text") and target.get("image") is None:
            report.skip(path, "no Quality target: the header records no text or image; map the "
                              f"file to one in a targets JSON (--targets, or {TARGETS_FILE} "
                              "beside the domains)")
            continue
        image = target.get("image")
        if image is not None and not target.get("text") and not Path(image).is_file():
            report.skip(path, f"reference image {image} not found (fix it in a targets JSON)")
            continue
        kind = target.get("kind") or header_kind or ("image" if image is not None else "text")
        name, k = path.stem, 2
        while name in names or name == INVERSION:  # "inversion" is the Adapter's own key
            name, k = f"{path.stem}-{k}", k + 1
        names.add(name)
        method.label = name
        out.append(DomainEntry(name=name, path=path, method=method.eval(), kind=kind,
                               text=target.get("text"),
                               image=None if image is None else Path(image),
                               target_source=source, random=header_random(header.extra),
                               plugin=header.plugin))
    for json_path, table in targets.items():  # a typo in a key must not pass unnoticed
        for key in sorted(set(table) - {k for j, k in used if j == json_path}):
            report.note(json_path, f"entry {key!r} names no domain of this run (given: "
                                   f"{', '.join(p.name for p in files[:5])}"
                                   f"{', ...' if len(files) > 5 else ''})")
    return out


def load_checked_domain(path: Path, *, generator: Generator, device: torch.device,
                        spec: str | None = None) -> tuple[Any, DomainMethod]:
    """(header, method) of a domain checkpoint that fits ``generator``; one-line errors.
    ``spec`` (``NAME:PATH[:k=v]``) loads ``path`` with options, as the plugin ``NAME`` reads
    it (a hyper-network file need not be a ``domain_method`` checkpoint); default: the path."""
    header = read_header(path)
    if spec is None and header.kind != KIND:
        raise StylebridgeError(f"is a {header.kind!r} checkpoint, not a domain ({KIND})",
                               path=path)
    method = load_domain(spec or str(path), device=device)
    check_domains([method], generator)
    return header, method

