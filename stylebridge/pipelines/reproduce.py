"""``stylebridge reproduce thesis-tables``: the CLIP Quality / Diversity tables of the thesis
(Tables 4.1–4.3, "Quality and Diversity metrics" and "Improving the gap: Results").

What is measured.  For every *row* (a way to obtain latents / features) and every
domain, a set of images is adapted to the domain and scored with the
``clip_quality`` and ``clip_diversity`` metrics of :mod:`stylebridge.plugins.metrics.builtin`
(HyperDomainNet A.3.3, thesis)::

    Quality   = 1/N Σ_i <E_T(domain text), E_I(image_i)>
    Diversity = 2/(N(N-1)) Σ_{i<j} (1 - <E_I(image_i), E_I(image_j)>)

for each CLIP model (``--clip``, the thesis uses ViT-B-16 and ViT-B-32).  The tables
average the per-domain values over the domains: over all of them (Table 4.1 layout:
Quality and Diversity per CLIP model) and separately over image and text domains
(Tables 4.2 / 4.3 layout: per CLIP model, Image | Text).  Note: Table 4.1's caption says
"all considered Similar Domains", but its printed ViT-B-32 values equal Table 4.2's
Image column, so the thesis' Table 4.1 looks like an image-domain average: compare our
Image column with it (or pass only image domains).

Rows (the thesis' names; StyleSpace offsets applied through
:class:`stylebridge.pipelines.adapt.Adapter` / :func:`stylebridge.core.synthesis.synthesize`):

======================  ===============================================================
``orig``                "Orig": ``--samples`` N stochastically generated images: z ~ N(0, I)
                        (seeded by ``--seed``), w = mapping(z) (``--truncation``, default 1
                        = none, as StyleDomain's evaluation), w+ = w repeated, rendered in
                        the domain; no photos involved
``e4e``                 "E4E latents": e4e inversion of each photo (``--e4e``)
``fse_latents``         "FSE latents": FSE ``mode=latents`` (``--fse``)
``fse_features``        "FSE features": FSE ``mode=features`` (F replaces activation K)
``fse_shift``           "FSE generator shift": FSE ``mode=shift``
``featureshift_e4e``    "FeatureShift on E4E": FSE features + FeatureShift
                        (``--featureshift-e4e``), Δ from the e4e latents (``--e4e``)
``featureshift_fse``    "FeatureShift on FSE": FSE features + FeatureShift
                        (``--featureshift-fse``), Δ from the FSE latents
======================  ===============================================================

A row whose weights are missing is skipped with a note, or, with ``--allow-random``,
computed on random weights of the official architecture (sized to the generator) and
labelled.  ``--e4e`` / ``--fse`` default to the weights installed by ``stylebridge
weights``.  Photos (``--images``) must be aligned faces (``stylebridge align``), as FFHQ;
unreadable files are skipped and reported (exit 3).

Domains (``--domains DIR|FILE ...``): stylebridge domain checkpoints (kind
``domain_method``, e.g. SimilarDomains StyleSpace files converted with ``stylebridge
convert styledomain``, or ``stylebridge train domain`` outputs).  A domain's *target*
for Quality and its *kind* (image / text, for the split tables):

* a targets JSON (``--targets FILE``, and ``targets.json`` inside a ``--domains``
  folder) mapping the domain file (name, stem or path relative to the JSON) to
  ``"a text"`` or ``{"text": ..., "image": PATH, "kind": "image"|"text"}`` (image paths
  relative to the JSON); it takes precedence over the header;
* else the checkpoint header: ``extra.target`` written by ``train domain``
  (``{"text": ...}`` or ``{"image": PATH}``); the converter's ``extra.da_type``
  (``td`` = text, ``im2im*`` = image) gives the kind only.

Quality uses the domain text when there is one (the thesis' formula), formatted with
``--text-template`` (default ``"A {}"``, as StyleDomain's ``EvaluationManager._encode_text``),
else the CLIP embedding of the reference image (``clip_quality:reference=``).  A domain
without a target is skipped and reported.  The kind is ``image`` for domains trained from
an image, ``text`` otherwise.

Outputs (``--out DIR``, written atomically): ``thesis_tables.md`` (the tables and one
per-domain table per CLIP model) and ``thesis_tables.json`` (every value, per domain too,
the sources of each row, notes, skipped files).

Random weights.  ``--preset tiny`` builds a 32 px generator, tiny e4e / FSE / FeatureShift
networks, two StyleSpace domains with text prompts and two tiny CLIP models, all with
random weights (:func:`build_tiny_preset`), and runs the whole pipeline on them in
seconds: it checks the code paths, the numbers mean nothing.  Whenever any network of a
run has random weights (checkpoint header ``random_weights`` / notes, CLIP weights file
metadata, ``--allow-random``) the terminal, the table titles, the markdown and the JSON
say RANDOM WEIGHTS.

Other commands add targets with :func:`register_reproduce_target` (``reproduce NAME``).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from rich.markup import escape
from torch import Tensor

from stylebridge.cli.base import Command
from stylebridge.cli.common import TargetGroup
from stylebridge.core.checkpoint import RANDOM_NOTICE
from stylebridge.core.interfaces import DomainMethod, Encoder
from stylebridge.errors import StylebridgeError
from stylebridge.registry import hookimpl

if TYPE_CHECKING:
    from rich.console import Console

    from stylebridge.core.batch import BatchReport
    from stylebridge.core.stylegan2.generator import Generator

RANDOM_SENTENCE = (f"{RANDOM_NOTICE}: some networks of this run are untrained; the numbers test "
                   "the code paths and are not the thesis' metrics")
DEFAULT_CLIPS = ("ViT-B-16", "ViT-B-32")   # Table 4.1's column order
DEFAULT_TEMPLATE = "A {}"
TARGETS_FILE = "targets.json"
RANDOM_SOURCE = "random weights (--allow-random)"
MARKDOWN_FILE = "thesis_tables.md"
JSON_FILE = "thesis_tables.json"
PRESET_DIR = "tiny-preset"
KINDS = ("image", "text")


@dataclass(frozen=True)
class RowSpec:
    """One row of the tables: key (JSON), the thesis' label, what it needs."""

    key: str
    label: str
    needs: tuple[str, ...]   # option names of the weights it needs


ROWS: tuple[RowSpec, ...] = (
    RowSpec("orig", "Orig", ()),
    RowSpec("e4e", "E4E latents", ("--e4e",)),
    RowSpec("fse_latents", "FSE latents", ("--fse",)),
    RowSpec("fse_features", "FSE features", ("--fse",)),
    RowSpec("fse_shift", "FSE generator shift", ("--fse",)),
    RowSpec("featureshift_e4e", "FeatureShift on E4E", ("--fse", "--e4e", "--featureshift-e4e")),
    RowSpec("featureshift_fse", "FeatureShift on FSE", ("--fse", "--featureshift-fse")),
)
FSE_MODES = {"fse_latents": "latents", "fse_features": "features", "fse_shift": "shift"}


# ---------------------------------------------------------------------------------------------
# `reproduce` targets


#: ``stylebridge reproduce TARGET``.
REPRODUCE = TargetGroup("reproduce")
REPRODUCE_TARGETS = REPRODUCE.targets
register_reproduce_target = REPRODUCE.register


class ReproduceCommand(Command):
    """``stylebridge reproduce TARGET``: recompute a result of the thesis."""

    name = "reproduce"
    help = "recompute the thesis' results: `reproduce thesis-tables` (Tables 4.1-4.3)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        REPRODUCE.add_arguments(parser)

    def run(self, args: argparse.Namespace, console: Console) -> int:
        return REPRODUCE.run(args, console)


# ---------------------------------------------------------------------------------------------
# Random-weight detection


def _header_random(extra: Mapping[str, Any]) -> bool:
    """A stylebridge header that says its weights (or the CLIP that trained them) are random."""
    from stylebridge.core.checkpoint import is_random_weights

    clip = extra.get("clip")
    return is_random_weights(extra) or (isinstance(clip, Mapping) and bool(clip.get("random_weights")))


def _file_random(path: Path) -> bool:
    """A plain ``.safetensors`` weights file whose metadata has ``random_weights: true``."""
    if path.suffix != ".safetensors":
        return False
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except Exception:  # unreadable: load_clip reports it with its own message
        return False
    return str(meta.get("random_weights", "")).lower() in {"1", "true", "yes"}


# ---------------------------------------------------------------------------------------------
# Domains and their targets


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

    def quality_options(self, template: str) -> dict[str, str]:
        """``text=`` (formatted) or ``reference=`` for ``clip_quality``."""
        if self.text is not None:
            return {"text": template.format(self.text)}
        assert self.image is not None
        return {"reference": str(self.image)}

    def describe(self, template: str) -> dict[str, Any]:
        return {"name": self.name, "file": str(self.path), "kind": self.kind,
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
            image = Path(str(value["image"])).expanduser()
            entry["image"] = image if image.is_absolute() else path.parent / image
        if "kind" in value:
            if value["kind"] not in KINDS:
                raise StylebridgeError(f"entry {key!r}: kind must be 'image' or 'text'", path=path)
            entry["kind"] = value["kind"]
        out[str(key)] = entry
    return out


def _lookup_target(targets: Mapping[Path, dict[str, dict[str, Any]]], path: Path
                   ) -> dict[str, Any] | None:
    for json_path, table in targets.items():
        for key in (path.name, path.stem, str(path)):
            if key in table:
                return table[key]
        for key, entry in table.items():
            candidate = Path(key)
            if not candidate.is_absolute():
                candidate = json_path.parent / candidate
            with contextlib.suppress(OSError):
                if candidate.resolve() == path.resolve():
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
            image = Path(str(raw["image"])).expanduser()
            if not image.exists() and not image.is_absolute():
                image = path.parent / image
            target["image"] = image
            target["kind"] = "image"
    da_type = str(extra.get("da_type", ""))
    kind = "text" if da_type == "td" else "image" if da_type.startswith("im2im") else None
    return target, kind


def collect_domains(items: Sequence[str | Path], targets_files: Sequence[Path],
                    report: BatchReport, *, generator: Generator, device: torch.device
                    ) -> list[DomainEntry]:
    """Load every domain checkpoint of ``items`` (folders: their ``*.safetensors``) with its
    Quality target; unusable domains go to ``report``."""
    from stylebridge.core.checkpoint import read_header
    from stylebridge.pipelines.adapt import INVERSION, check_domains
    from stylebridge.plugins.domains.styledomain import KIND, load_domain

    files: list[Path] = []
    jsons = [Path(p) for p in targets_files]
    for item in items:
        path = Path(item)
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir()
                                if p.is_file() and p.suffix == ".safetensors"))
            if (path / TARGETS_FILE).is_file():
                jsons.append(path / TARGETS_FILE)
        elif path.exists():
            files.append(path)
        else:
            raise StylebridgeError("no such file or directory", path=path)
    targets = {p: read_targets(p) for p in jsons}
    out: list[DomainEntry] = []
    names: set[str] = set()
    for path in files:
        try:
            header = read_header(path)
            if header.kind != KIND:
                raise StylebridgeError(f"is a {header.kind!r} checkpoint, not a domain "
                                       f"({KIND})", path=path)
            method = load_domain(str(path), device=device)
            check_domains([method], generator)
        except StylebridgeError as exc:
            report.skip(path, str(exc).removeprefix(f"{path}: "))
            continue
        target, header_kind = _header_target(header.extra, path)
        source = "header"
        sidecar = _lookup_target(targets, path)
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
                               target_source=source, random=_header_random(header.extra)))
    return out


# ---------------------------------------------------------------------------------------------
# CLIP models and the metrics


@dataclass
class ClipChoice:
    """A CLIP model of the table: open_clip name, local weights (or None = random)."""

    name: str
    weights: Path | None
    random: bool


def parse_clip_weights(items: Sequence[str]) -> dict[str, Path]:
    """``NAME=PATH`` items → ``{name: path}``."""
    out: dict[str, Path] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise StylebridgeError(f"--clip-weights {item!r}: expected NAME=PATH, "
                                   "e.g. ViT-B-32=ViT-B-32.safetensors")
        if name.strip() in out:
            raise StylebridgeError(f"--clip-weights gives {name.strip()!r} twice")
        out[name.strip()] = Path(path.strip()).expanduser()
    return out


def register_clip_configs(paths: Sequence[Path]) -> None:
    """Make open_clip know extra architectures (``NAME.json`` files or folders of them)."""
    if not paths:
        return
    import open_clip

    for path in paths:
        if not path.exists():
            raise StylebridgeError("no such file or directory", path=path)
        open_clip.add_model_config(path)


def resolve_clips(names: Sequence[str], weights: Mapping[str, Path], *, allow_random: bool,
                  notes: list[str]) -> list[ClipChoice]:
    """The CLIP models to use; models without weights are dropped (noted) unless ``allow_random``."""
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise StylebridgeError(f"--clip-weights names {unknown}, which are not among --clip "
                               f"{list(names)}")
    out: list[ClipChoice] = []
    for name in dict.fromkeys(names):
        path = weights.get(name)
        if path is not None:
            if not path.is_file():
                raise StylebridgeError("no such file", path=path)
            out.append(ClipChoice(name, path, _file_random(path)))
        elif allow_random:
            out.append(ClipChoice(name, None, True))
        else:
            notes.append(f"CLIP {name} left out: no weights (give --clip-weights {name}=PATH, or "
                         "--allow-random for a labelled random-weight run)")
    if not out:
        raise StylebridgeError("no CLIP model has weights: give --clip-weights NAME=PATH for "
                               f"{', '.join(names)} (or --allow-random to test the code paths)")
    return out


class Scorer:
    """``clip_quality`` and ``clip_diversity`` for every (domain, CLIP model).

    The metric objects come from the registry (:mod:`stylebridge.plugins.metrics.builtin`).  Each
    builds its own CLIP network; all metrics of one CLIP model then share the first one's
    network (the same weights file, or the same seed for random weights, so the networks
    are identical) and the others are freed: 70 domains keep one copy per model in memory.
    """

    def __init__(self, domains: Sequence[DomainEntry], clips: Sequence[ClipChoice], *,
                 template: str, device: torch.device, seed: int = 0,
                 registry: Any = None) -> None:
        from stylebridge.registry import get_registry

        registry = registry or get_registry()
        self.domains = list(domains)
        self.clips = list(clips)
        self.quality: dict[str, dict[str, Any]] = {d.name: {} for d in self.domains}
        self.diversity: dict[str, dict[str, Any]] = {d.name: {} for d in self.domains}

        def build(name: str, **options: Any) -> Any:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                return registry.create("metric", name, **options)

        for clip in self.clips:
            common = {"model": clip.name, "weights": None if clip.weights is None
                      else str(clip.weights), "allow_random": clip.random and clip.weights is None,
                      "device": str(device)}
            base = build("clip_diversity", **common)
            shared = base.clip
            for d in self.domains:
                quality = build("clip_quality", **common, **d.quality_options(template))
                quality.clip = shared
                self.quality[d.name][clip.name] = quality
                diversity = copy.copy(base)
                diversity.reset()
                self.diversity[d.name][clip.name] = diversity

    def reset(self) -> None:
        for table in (self.quality, self.diversity):
            for per_clip in table.values():
                for metric in per_clip.values():
                    metric.reset()

    @torch.no_grad()
    def update(self, domain: str, images01: Tensor) -> None:
        """Score adapted images ``[B, 3, H, W]`` in ``[0, 1]`` of one domain."""
        for clip in self.clips:
            self.quality[domain][clip.name].update(images01)
            self.diversity[domain][clip.name].update(images01)

    def compute(self) -> dict[str, dict[str, dict[str, float]]]:
        """``{domain: {clip: {"quality": q, "diversity": d}}}``."""
        return {d.name: {c.name: {
            "quality": float(self.quality[d.name][c.name].compute()["clip_quality"]),
            "diversity": float(self.diversity[d.name][c.name].compute()["clip_diversity"])}
            for c in self.clips} for d in self.domains}


# ---------------------------------------------------------------------------------------------
# Rows


class RowSkipped(Exception):
    """A row's weights are missing (and random weights were not allowed)."""


@dataclass
class RowSetup:
    """What renders one row: an :class:`Adapter` (``None`` for ``orig``) and its provenance."""

    adapter: Any
    random: bool
    sources: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class Sources:
    """The weights given for the rows (``None`` = missing)."""

    e4e: str | None = None
    fse: str | None = None
    featureshift_e4e: Path | None = None
    featureshift_fse: Path | None = None


@contextlib.contextmanager
def _random_seeded(seed: int) -> Iterator[None]:
    """Seed torch's CPU generator inside the block; the outer random state is restored."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def random_e4e(generator: Generator, seed: int) -> Encoder:
    """An e4e of the official architecture (IR-SE50, 256 px) with random weights, sized to
    ``generator`` and starting at its average w."""
    from stylebridge.plugins.encoders.psp import E4EEncoder

    with _random_seeded(seed):
        enc = E4EEncoder(n_styles=generator.n_latent, style_dim=generator.style_dim)
    with torch.no_grad():
        enc.latent_avg.copy_(generator.latent_avg.detach().cpu().expand_as(enc.latent_avg))
    return enc.eval()


def fse_random_config(generator: Generator, layer: int = 5) -> dict[str, Any]:
    """An FSE config (official widths) whose feature fits ``generator``'s activation ``layer``
    (the last one if the generator has fewer)."""
    layer = min(layer, generator.n_latent - 1)
    channels, side, _ = generator.feature_shapes()[layer]
    stride = 2 if side * 16 <= 256 else 1      # official: 256 px input, stride 2 → 16 px
    input_size = side * 8 * stride
    resolution = input_size
    while resolution * 2 <= max(generator.size, input_size):
        resolution *= 2
    return {"layer": layer, "n_latent": generator.n_latent, "style_dim": generator.style_dim,
            "feature_channels": channels, "feature_stride": stride, "input_size": input_size,
            "resolution": resolution}


def random_fse(generator: Generator, mode: str, seed: int, layer: int = 5) -> Encoder:
    """An FSE (iresnet50) with random weights whose output fits ``generator``."""
    from stylebridge.plugins.encoders.fse import FSEEncoder

    with _random_seeded(seed):
        enc = FSEEncoder(mode=mode, **fse_random_config(generator, layer))
    with torch.no_grad():
        enc.latent_avg.copy_(generator.latent_avg.detach().cpu().expand_as(enc.latent_avg))
    return enc.eval()


def random_featureshift(generator: Generator, layer: int, seed: int) -> torch.nn.Module:
    """A FeatureShift (6 blocks, hidden = 1.5 C as 768 / 512) with random weights at ``layer``."""
    from stylebridge.plugins.renderers.featureshift import FeatureShift

    channels = generator.feature_shapes()[layer][0]
    with _random_seeded(seed):
        return FeatureShift(feature_channels=channels, hidden=max(1, channels * 3 // 2),
                            layer=layer).eval()


def _encoder_spec(text: str | None, name: str) -> str | None:
    """``--e4e``/``--fse`` value (``[NAME:]CKPT[:k=v]``), or the installed weights, or None."""
    if text:
        from stylebridge.registry.spec import parse_plugin_spec

        spec = parse_plugin_spec(text, what=f"--{name}")
        if spec.path is not None and not spec.path.is_file():
            raise StylebridgeError("no such file", path=spec.path)
        return text
    from stylebridge.registry.weights import WeightsManager

    path = WeightsManager().resolve("encoder", name)
    return None if path is None else f"{name}:{path}"


class RowBuilder:
    """Builds each row's :class:`RowSetup` (loading weights one row at a time)."""

    def __init__(self, generator: Generator, sources: Sources, *, device: torch.device,
                 methods: Mapping[str, DomainMethod], allow_random: bool, seed: int) -> None:
        self.generator, self.sources, self.device = generator, sources, device
        self.methods, self.allow_random, self.seed = dict(methods), allow_random, seed

    def _missing(self, what: str, option: str) -> None:
        if not self.allow_random:
            raise RowSkipped(f"no {what} weights (give {option}; --allow-random computes the row "
                             "on random weights, labelled)")

    def encoder(self, name: str, mode: str | None = None, layer: int | None = None
                ) -> tuple[Encoder, bool, str]:
        """(encoder, random, source) for ``e4e`` or ``fse`` (``mode``/``layer`` overrides)."""
        from stylebridge.core.checkpoint import read_header
        from stylebridge.registry.resolve import load_plugin
        from stylebridge.registry.spec import parse_plugin_spec

        text = self.sources.e4e if name == "e4e" else self.sources.fse
        if text is None:
            self._missing(name, f"--{name}")
            if name == "e4e":
                return random_e4e(self.generator, self.seed).to(self.device), True, RANDOM_SOURCE
            enc = random_fse(self.generator, mode or "features", self.seed,
                             layer if layer is not None else 5)
            return enc.to(self.device), True, RANDOM_SOURCE
        spec = parse_plugin_spec(text, what=f"--{name}")
        overrides: dict[str, Any] = {}
        if mode is not None:
            overrides["mode"] = mode
        if layer is not None:
            overrides["layer"] = layer
        encoder = load_plugin("encoder", spec, device=self.device, **overrides)
        if not isinstance(encoder, Encoder):
            raise StylebridgeError(f"--{name} {text!r} did not build an encoder")
        random = bool(getattr(encoder, "random_weights", False))
        if spec.path is not None:
            random = random or _header_random(read_header(spec.path).extra)
        check = getattr(encoder, "check_generator", None)
        if check is not None:
            check(self.generator)
        return encoder, random, text

    def featureshift(self, key: str) -> tuple[torch.nn.Module, bool, str, list[str]]:
        path = self.sources.featureshift_e4e if key == "featureshift_e4e" else \
            self.sources.featureshift_fse
        option = "--" + key.replace("_", "-")
        notes: list[str] = []
        if path is None:
            self._missing("FeatureShift", option)
            layer = fse_random_config(self.generator)["layer"]
            if self.sources.fse is not None:
                from stylebridge.core.checkpoint import read_header
                from stylebridge.registry.spec import parse_plugin_spec

                spec = parse_plugin_spec(self.sources.fse, what="--fse")
                if spec.path is not None:
                    layer = int(read_header(spec.path).config.get("layer", layer))
            model = random_featureshift(self.generator, layer, self.seed).to(self.device)
            return model, True, RANDOM_SOURCE, notes
        from stylebridge.plugins.renderers.featureshift import load_featureshift

        model, header = load_featureshift(path, device=self.device)
        recorded = header.extra.get("guiding_encoder")
        want = "e4e" if key == "featureshift_e4e" else "fse"
        if isinstance(recorded, Mapping) and recorded.get("name") not in (None, want):
            notes.append(f"{path.name} was trained with guide {recorded.get('name')!r}, used here "
                         f"with {want}")
        return model, _header_random(header.extra), str(path), notes

    def build(self, key: str) -> RowSetup:
        """The :class:`RowSetup` of row ``key`` (raises :class:`RowSkipped`)."""
        from stylebridge.pipelines.adapt import Adapter

        if key == "orig":
            return RowSetup(adapter=None, random=False, sources={"latents": "mapping network"})
        if key == "e4e":
            enc, random, src = self.encoder("e4e")
            return RowSetup(Adapter(enc, self.generator, self.methods), random, {"encoder": src})
        if key in FSE_MODES:
            enc, random, src = self.encoder("fse", mode=FSE_MODES[key])
            return RowSetup(Adapter(enc, self.generator, self.methods), random, {"encoder": src})
        if key in ("featureshift_e4e", "featureshift_fse"):
            # check every weight first, so that a missing one skips the row before loading
            if self.sources.fse is None:
                self._missing("fse", "--fse")
            if key == "featureshift_e4e" and self.sources.e4e is None:
                self._missing("e4e", "--e4e")
            model, fs_random, fs_src, notes = self.featureshift(key)
            enc, random, src = self.encoder("fse", mode="features", layer=model.layer)
            guide = None
            sources = {"encoder": src, "featureshift": fs_src}
            if key == "featureshift_e4e":
                guide, g_random, g_src = self.encoder("e4e")
                random = random or g_random
                sources["guide"] = g_src
            else:
                sources["guide"] = "the FSE latents"
            adapter = Adapter(enc, self.generator, self.methods, featureshift=model, guide=guide)
            return RowSetup(adapter, random or fs_random, sources, notes)
        raise StylebridgeError(f"unknown row {key!r}")  # pragma: no cover


def orig_latents(generator: Generator, n: int, *, seed: int, truncation: float = 1.0,
                 batch: int = 4) -> Iterator[Tensor]:
    """The ``orig`` row's w+ ``[b, n_latent, D]`` in batches: z ~ N(0, I) from a CPU
    ``torch.Generator`` seeded with ``seed`` (all N drawn at once, so batching does not
    change them), w = mapping(z), truncated towards ``latent_avg`` when ``truncation < 1``."""
    z = torch.randn(n, generator.style_dim, generator=torch.Generator().manual_seed(seed))
    device = generator.latent_avg.device
    for start in range(0, n, batch):
        with torch.no_grad():
            w_plus = generator.make_wplus(z[start:start + batch].to(device), truncation=truncation)
        yield w_plus


# ---------------------------------------------------------------------------------------------
# Aggregation and output


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else math.nan


def aggregate(per_domain: Mapping[str, Mapping[str, Mapping[str, float]]],
              domains: Sequence[DomainEntry]) -> dict[str, Any]:
    """Averages over domains: ``{"all": {clip: {q, d}}, "image": ..., "text": ...}``
    (``None`` where no domain of that kind was evaluated)."""
    out: dict[str, Any] = {}
    for group in ("all", *KINDS):
        names = [d.name for d in domains if group == "all" or d.kind == group]
        names = [n for n in names if n in per_domain]
        if not names:
            out[group] = None
            continue
        clips = list(per_domain[names[0]])
        out[group] = {c: {m: _mean([per_domain[n][c][m] for n in names])
                          for m in ("quality", "diversity")} for c in clips}
    return out


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.{digits}f}"


def _row_label(row: Mapping[str, Any], run_random: bool) -> str:
    # when the whole run is random the titles say it; otherwise mark the random rows
    return row["label"] + (f" ({RANDOM_NOTICE})" if row.get("random_weights") and not run_random
                           else "")


def table_layouts(result: Mapping[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """The tables as (title, header, rows of cells): Table 4.1's layout (all domains), then
    Tables 4.2/4.3's (Image | Text) per CLIP model."""
    clips = [c["name"] for c in result["clip_models"]]
    rows = [r for r in result["rows"] if r["status"] == "done"]
    random = bool(result["random_weights"])
    mark = f" [{RANDOM_NOTICE}]" if random else ""
    n_dom = len(result["domains"])
    tables = []
    header = ["", *(f"Quality {c}" for c in clips), *(f"Diversity {c}" for c in clips)]
    body = []
    for row in rows:
        avg = row["mean"]["all"] or {}
        body.append([_row_label(row, random),
                     *(_fmt(avg.get(c, {}).get("quality")) for c in clips),
                     *(_fmt(avg.get(c, {}).get("diversity")) for c in clips)])
    tables.append((f"Quality and Diversity averaged over {n_dom} domain(s) "
                   f"(Table 4.1 layout){mark}", header, body))
    counts = {k: sum(1 for d in result["domains"] if d["kind"] == k) for k in KINDS}
    for clip in clips:
        header = ["", "Quality Image", "Quality Text", "Diversity Image", "Diversity Text"]
        body = []
        for row in rows:
            cells = [_row_label(row, random)]
            for metric in ("quality", "diversity"):
                for kind in KINDS:
                    group = row["mean"][kind]
                    cells.append(_fmt(None if group is None else group[clip][metric]))
            body.append(cells)
        tables.append((f"CLIP {clip}: image ({counts['image']}) and text ({counts['text']}) "
                       f"domains (Tables 4.2 / 4.3 layout){mark}", header, body))
    return tables


def per_domain_layouts(result: Mapping[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """One table per CLIP model: rows × domains, cells ``quality / diversity``."""
    clips = [c["name"] for c in result["clip_models"]]
    rows = [r for r in result["rows"] if r["status"] == "done"]
    random = bool(result["random_weights"])
    mark = f" [{RANDOM_NOTICE}]" if random else ""
    names = [d["name"] for d in result["domains"]]
    out = []
    for clip in clips:
        header = ["", *(f"{n} ({d['kind']})" for n, d in zip(names, result["domains"],
                                                           strict=True))]
        body = [[_row_label(row, random),
                 *(f"{_fmt(row['per_domain'][n][clip]['quality'])} / "
                   f"{_fmt(row['per_domain'][n][clip]['diversity'])}" for n in names)]
                for row in rows]
        out.append((f"{clip} per domain, quality / diversity{mark}", header, body))
    return out


def _md_table(header: Sequence[str], body: Sequence[Sequence[str]], *,
              numeric: bool = True) -> str:
    """A markdown table; ``numeric``: right-align every column but the first."""
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    align = "---:" if numeric else "---"
    lines = ["| " + " | ".join(esc(h) for h in header) + " |",
             "|" + "|".join(["---"] + [align] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


def render_markdown(result: Mapping[str, Any]) -> str:
    """The markdown report: notice, the thesis-layout tables, per-domain tables, notes."""
    parts = ["# Thesis Tables 4.1–4.3: CLIP Quality and Diversity"]
    if result["random_weights"]:
        parts.append(f"**{RANDOM_SENTENCE}.**")
    parts.append(f"Domains adapted with their StyleSpace / domain-method offsets; Quality against "
                 f"the domain text (template `{result['text_template']}`) or reference image; "
                 f"{result['n_images']} photo(s), {result['samples']} random sample(s) for Orig; "
                 "values averaged over domains. (The thesis' Table 4.1 values equal its Table "
                 "4.2 Image column: compare them with the Image column here.)")
    for title, header, body in table_layouts(result):
        parts += [f"## {title}", _md_table(header, body)]
    for title, header, body in per_domain_layouts(result):
        parts += [f"## {title}", _md_table(header, body)]
    parts.append("## Domains")
    parts.append(_md_table(["domain", "kind", "Quality target", "from"],
                           [[d["name"], d["kind"],
                             d["text"] if d["text"] is not None else f"image {d['image']}",
                             d["target_source"]] for d in result["domains"]],
                           numeric=False))
    parts.append("## Rows")
    parts.append(_md_table(["row", "status", "weights"],
                           [[r["label"], r["status"] + (f": {r['reason']}" if r.get("reason")
                                                        else ""),
                             "; ".join(f"{k}: {v}" for k, v in r.get("sources", {}).items())]
                            for r in result["rows"]], numeric=False))
    if result["notes"]:
        parts.append("## Notes")
        parts.append("\n".join(f"- {n}" for n in result["notes"]))
    skipped = result["report"]["skipped"]
    if skipped:
        parts.append("## Skipped inputs")
        parts.append(_md_table(["file", "reason"], [[s["file"], s["reason"]] for s in skipped],
                               numeric=False))
    return "\n\n".join(parts) + "\n"


def print_tables(console: Console, result: Mapping[str, Any]) -> None:
    from rich.table import Table

    for title, header, body in table_layouts(result):
        table = Table(title=title, title_style="bold red" if result["random_weights"] else None)
        for i, col in enumerate(header):
            table.add_column(col.replace(" ", "\n", 1) if i else "",
                             justify="right" if i else "left", no_wrap=not i,
                             overflow="fold")
        for row in body:
            table.add_row(*row)
        console.print(table)


def _json_ready(obj: Any) -> Any:
    if isinstance(obj, float):
        return _finite(obj)
    if isinstance(obj, dict):
        return {k: _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_ready(v) for v in obj]
    return obj


# ---------------------------------------------------------------------------------------------
# The tiny random-weight preset


@dataclass
class TinyPreset:
    """Files of the tiny random-weight preset (see :func:`build_tiny_preset`)."""

    root: Path
    generator: Path
    e4e: Path
    fse: Path
    featureshift_e4e: Path
    featureshift_fse: Path
    domains: Path
    images: Path
    clip_config: Path
    clip_weights: dict[str, Path]


TINY_PROMPTS = (("tiny-pixar", "3D render in the style of Pixar"),
                ("tiny-sketch", "Pencil sketch portrait"))
TINY_CLIPS = {   # open_clip model configs: two small ViTs (patch 16 and 8) on 32 px inputs
    "tiny-vit-p16": {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32,
                                                     "head_width": 16, "patch_size": 16},
                     "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 16,
                                  "heads": 2, "layers": 1}},
    "tiny-vit-p8": {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32,
                                                    "head_width": 16, "patch_size": 8},
                    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 16,
                                 "heads": 2, "layers": 1}},
}
TINY_FSE_LAYER = 3   # the tiny generator's second 8 px conv (32 ch): a 64 px FSE input fits it


def _random_extra(what: str) -> dict[str, Any]:
    return {"random_weights": True,
            "notes": [f"RANDOM WEIGHTS: tiny {what} of `reproduce thesis-tables --preset tiny`"]}


def build_tiny_preset(root: str | Path, *, seed: int = 0, n_images: int = 3) -> TinyPreset:
    """Write the tiny random-weight preset under ``root`` (seconds on a CPU).

    A 32 px StyleGAN2 (style_dim 32, 8 latent rows), ``n_images`` photos rendered by it,
    an e4e (IR-SE widths 16–48, 32 px input), an FSE (width 8, 64 px input, feature at
    activation 3 = 32×8×8), two FeatureShift models (3 blocks) at that layer, two StyleSpace
    domains with random offsets and text prompts, and two tiny CLIP models (open_clip
    configs + weights files whose metadata says ``random_weights``).  Every checkpoint's
    header says RANDOM WEIGHTS.
    """
    import open_clip
    from safetensors.torch import save_file

    from stylebridge.core.checkpoint import save_checkpoint
    from stylebridge.core.images import from_generator_range, save_png
    from stylebridge.core.stylegan2 import Generator
    from stylebridge.core.stylegan2.checkpoint import save_stylegan2
    from stylebridge.plugins.domains.styledomain import StyleSpace
    from stylebridge.plugins.encoders.fse import FSEEncoder
    from stylebridge.plugins.encoders.psp import E4EEncoder
    from stylebridge.plugins.renderers.featureshift import FeatureShift, save_featureshift

    root = Path(root)
    for sub in ("images", "domains", "clip"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    with _random_seeded(seed):
        gen = Generator(size=32, style_dim=32, n_mlp=2, channels={4: 32, 8: 32, 16: 32, 32: 16})
        with torch.no_grad():  # non-trivial biases and noise strengths: varied images
            for p in gen.parameters():
                p.add_(0.1 * torch.randn_like(p))
            gen.latent_avg.copy_(gen.mean_latent(512, seed=seed))
        gen.eval()
        paths = {"generator": root / "generator.safetensors"}
        save_stylegan2(paths["generator"], gen, extra=_random_extra("generator"))

        with torch.no_grad():
            z = torch.randn(n_images, gen.style_dim)
            images = from_generator_range(gen(z, randomize_noise=False))
        for i, image in enumerate(images):
            save_png(root / "images" / f"photo{i}.png", image)

        e4e = E4EEncoder(n_styles=gen.n_latent, style_dim=gen.style_dim, input_size=32,
                         widths=(16, 24, 32, 48), units=(1, 1, 1, 1))
        channels, side, _ = gen.feature_shapes()[TINY_FSE_LAYER]
        fse = FSEEncoder("features", TINY_FSE_LAYER, n_latent=gen.n_latent,
                         style_dim=gen.style_dim, width=8, layers=(1, 1, 1, 1),
                         feature_channels=channels, feature_stride=1, input_size=side * 8,
                         resolution=side * 8)
        for name, enc in (("e4e", e4e), ("fse", fse)):
            with torch.no_grad():
                enc.latent_avg.copy_(gen.latent_avg.expand_as(enc.latent_avg))
            _spread_outputs(enc.eval(), images)
            paths[name] = root / f"{name}.safetensors"
            save_checkpoint(paths[name], enc.state_dict(), kind="encoder", plugin=enc.name,
                            config=enc.config(), extra=_random_extra(name))
        for key, guide in (("featureshift_e4e", "e4e"), ("featureshift_fse", "fse")):
            model = FeatureShift(feature_channels=channels, hidden=48, n_blocks=3,
                                 layer=TINY_FSE_LAYER, residual=True)
            paths[key] = root / f"{key}.safetensors"
            save_featureshift(paths[key], model, extra={**_random_extra(f"FeatureShift ({guide})"),
                                                        "guiding_encoder": {"name": guide}})
        for i, (name, prompt) in enumerate(TINY_PROMPTS):
            method = StyleSpace(size=gen.size, style_dim=gen.style_dim, channels=gen.cfg.channels)
            keys = list(method.offsets)
            with torch.no_grad():
                for key in (keys[:3] if i == 0 else keys[-3:]):
                    method.offsets[key].normal_(0.0, 1.5)
            method.save(root / "domains" / f"{name}.safetensors",
                        extra={"target": {"text": prompt}, **_random_extra("domain")})

        from stylebridge.core.io import atomic_path, write_json

        clip_weights: dict[str, Path] = {}
        for name, cfg in TINY_CLIPS.items():
            cfg_path = root / "clip" / f"{name}.json"
            write_json(cfg_path, cfg)
        open_clip.add_model_config(root / "clip")
        for name in TINY_CLIPS:
            model = _quiet(lambda n=name: open_clip.create_model(n, pretrained=None))
            clip_weights[name] = root / "clip" / f"{name}.safetensors"
            with atomic_path(clip_weights[name]) as tmp:
                save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp),
                          metadata={"random_weights": "true", "quick_gelu": "false",
                                    "note": "RANDOM WEIGHTS: tiny CLIP of the reproduce preset"})
    return TinyPreset(root=root, generator=paths["generator"], e4e=paths["e4e"],
                      fse=paths["fse"], featureshift_e4e=paths["featureshift_e4e"],
                      featureshift_fse=paths["featureshift_fse"], domains=root / "domains",
                      images=root / "images", clip_config=root / "clip",
                      clip_weights=clip_weights)


def _spread_outputs(encoder: Encoder, images01: Tensor, target: float = 0.5) -> None:
    """Scale a random tiny encoder's output layers so that its w+ (and feature) differ across
    ``images01`` by about ``target`` (std), as a trained encoder's do; untouched, they are
    almost constant and every encoder row would have a Diversity of ~0."""
    import re

    with torch.no_grad():
        inversion = encoder.encode(images01)
        spread = float((inversion.w_plus - inversion.w_plus.mean(0)).std())
        for name, p in encoder.named_parameters():
            if re.fullmatch(r"(encoder\.)?styles\.\d+(\.linear)?\.weight", name):
                p.mul_(target / max(spread, 1e-8))
        content = getattr(encoder, "content_layer", None)
        for feat in inversion.features.values():
            assert content is not None
            content[-1].weight.mul_(target / max(float((feat - feat.mean(0)).std()), 1e-8))


def _quiet(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` without open_clip's 'no pretrained weights' log line and warnings."""
    import logging
    import warnings

    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn()
    finally:
        logger.setLevel(level)


# ---------------------------------------------------------------------------------------------
# `stylebridge reproduce thesis-tables`


def add_thesis_tables_arguments(parser: argparse.ArgumentParser) -> None:
    from stylebridge.cli.common import add_device_argument

    parser.add_argument("--images", nargs="+", metavar="DIR|FILE",
                        help="aligned face photos for the encoder rows (e.g. FFHQ / CelebA-HQ)")
    parser.add_argument("--domains", nargs="+", metavar="DIR|FILE",
                        help="domain checkpoints (folders: their *.safetensors and targets.json)")
    parser.add_argument("--targets", action="append", default=[], type=Path, metavar="JSON",
                        help="domain file -> text or {\"text\"|\"image\": ...} (overrides headers)")
    parser.add_argument("--generator", "-g", metavar="[stylegan2:]CKPT",
                        help="the StyleGAN2 the domains and encoders belong to")
    parser.add_argument("--e4e", metavar="[e4e:]CKPT",
                        help="e4e checkpoint (default: installed weights)")
    parser.add_argument("--fse", metavar="[fse:]CKPT",
                        help="FSE checkpoint, used in modes latents/features/shift "
                             "(default: installed weights)")
    parser.add_argument("--featureshift-e4e", type=Path, metavar="MODEL.safetensors",
                        help="FeatureShift trained with the e4e guide")
    parser.add_argument("--featureshift-fse", type=Path, metavar="MODEL.safetensors",
                        help="FeatureShift trained with the FSE-latents guide")
    parser.add_argument("--clip", action="append", metavar="NAME",
                        help="open_clip model, repeatable (default: ViT-B-16 and ViT-B-32)")
    parser.add_argument("--clip-weights", action="append", default=[], metavar="NAME=PATH",
                        help="local CLIP weights (.safetensors / state-dict .pt), repeatable")
    parser.add_argument("--clip-config", action="append", default=[], type=Path,
                        metavar="JSON|DIR", help="extra open_clip architecture configs")
    parser.add_argument("--samples", type=int, metavar="N",
                        help="random samples for the Orig row (default: the number of photos)")
    parser.add_argument("--truncation", type=float, default=1.0,
                        help="truncation of the Orig samples (default 1 = none)")
    parser.add_argument("--text-template", default=DEFAULT_TEMPLATE, metavar="TEMPLATE",
                        help=f"domain text for Quality, '{{}}' = the text (default "
                             f"{DEFAULT_TEMPLATE!r}, as StyleDomain's evaluation)")
    parser.add_argument("--allow-random", action="store_true",
                        help="compute rows (and CLIP models) without weights on random weights, "
                             "labelled RANDOM WEIGHTS")
    parser.add_argument("--preset", choices=("tiny",),
                        help="tiny: build random-weight tiny models into OUT/tiny-preset and use "
                             "them for everything not given (tests the code paths)")
    parser.add_argument("--seed", type=int, default=0, help="seed of samples and random weights")
    parser.add_argument("--batch", type=int, default=4, help="images per forward pass (default 4)")
    parser.add_argument("--out", type=Path, default=Path("thesis-tables"), metavar="DIR",
                        help="output folder (default ./thesis-tables)")
    add_device_argument(parser)


def _apply_preset(args: argparse.Namespace, console: Console) -> TinyPreset:
    preset = build_tiny_preset(args.out / PRESET_DIR, seed=args.seed)
    console.print(f"[bold red]{RANDOM_NOTICE}[/bold red]: --preset tiny built random-weight tiny "
                  f"models in {preset.root}; the numbers test the code paths only")
    args.images = args.images or [str(preset.images)]
    args.domains = args.domains or [str(preset.domains)]
    args.generator = args.generator or str(preset.generator)
    args.e4e = args.e4e or str(preset.e4e)
    args.fse = args.fse or str(preset.fse)
    args.featureshift_e4e = args.featureshift_e4e or preset.featureshift_e4e
    args.featureshift_fse = args.featureshift_fse or preset.featureshift_fse
    args.clip_config = [*args.clip_config, preset.clip_config]
    if not args.clip:
        args.clip = list(preset.clip_weights)
        given = {w.partition("=")[0].strip() for w in args.clip_weights}
        args.clip_weights = [*args.clip_weights, *(f"{n}={p}" for n, p in
                                                   preset.clip_weights.items() if n not in given)]
    return preset


def _check_args(args: argparse.Namespace) -> None:
    missing = [opt for opt, value in (("--images", args.images), ("--domains", args.domains),
                                      ("--generator", args.generator)) if not value]
    if missing:
        raise StylebridgeError(f"give {', '.join(missing)} (or --preset tiny for a random-weight "
                               "smoke run)")
    if args.batch < 1:
        raise StylebridgeError(f"--batch {args.batch}: must be >= 1")
    if args.samples is not None and args.samples < 2:
        raise StylebridgeError(f"--samples {args.samples}: Diversity needs at least 2")
    if not 0.0 <= args.truncation <= 1.0:
        raise StylebridgeError(f"--truncation {args.truncation}: must be in [0, 1]")
    if args.text_template.count("{}") != 1:
        raise StylebridgeError(f"--text-template {args.text_template!r}: must contain '{{}}' once")
    for path in (args.featureshift_e4e, args.featureshift_fse):
        if path is not None and not Path(path).is_file():
            raise StylebridgeError("no such file", path=path)
    for item in args.images:
        if not Path(item).exists():
            raise StylebridgeError("no such file or directory", path=item)


def _readable_images(paths: Sequence[Path], report: BatchReport) -> list[Path]:
    """Validation pass: the readable photos (others go to ``report``)."""
    from stylebridge.core.batch import iter_images

    good = []
    for path, _ in iter_images(paths, report):
        report.ok(path)
        good.append(path)
    return good


def _photo_batches(paths: Sequence[Path], size: int, batch: int) -> Iterator[Tensor]:
    """Photos resized to ``size`` × ``size`` (as ``adapt``), ``[b, 3, size, size]`` in [0, 1]."""
    from stylebridge.core.images import load_image, resize_square

    for start in range(0, len(paths), batch):
        yield torch.stack([resize_square(load_image(p), size) for p in paths[start:start + batch]])


def run_thesis_tables(args: argparse.Namespace, console: Console) -> int:
    """``stylebridge reproduce thesis-tables`` (see the module docstring)."""
    from rich.progress import Progress

    from stylebridge.core.batch import BatchReport, expand_inputs
    from stylebridge.core.device import resolve_device
    from stylebridge.core.images import from_generator_range
    from stylebridge.core.interfaces import Inversion
    from stylebridge.core.io import atomic_path, write_json
    from stylebridge.core.synthesis import synthesize
    from stylebridge.pipelines.adapt import load_generator_arg

    if args.preset == "tiny":
        _apply_preset(args, console)
    _check_args(args)
    device = resolve_device(args.device)
    notes: list[str] = []
    register_clip_configs(args.clip_config)
    clips = resolve_clips(args.clip or list(DEFAULT_CLIPS), parse_clip_weights(args.clip_weights),
                          allow_random=args.allow_random, notes=notes)
    sources = Sources(e4e=_encoder_spec(args.e4e, "e4e"), fse=_encoder_spec(args.fse, "fse"),
                      featureshift_e4e=args.featureshift_e4e,
                      featureshift_fse=args.featureshift_fse)
    gen, gen_random, g_path = load_generator_arg(args.generator, device)
    report = BatchReport()
    domains = collect_domains(args.domains, args.targets, report, generator=gen, device=device)
    if not domains:
        report.print(console)
        raise StylebridgeError("no usable domain (see the skipped files above)")
    photos = _readable_images(expand_inputs(args.images), report)
    if len(photos) < 2:
        report.print(console)
        raise StylebridgeError(f"{len(photos)} readable photo(s): Diversity needs at least 2")
    n_samples = args.samples or len(photos)
    shared_random = gen_random or any(c.random for c in clips) or any(d.random for d in domains)
    if shared_random:
        console.print(f"[bold red]{RANDOM_SENTENCE}[/bold red]")

    with console.status("loading the CLIP models"):
        scorer = _quiet(lambda: Scorer(domains, clips, template=args.text_template,
                                       device=device, seed=args.seed))
    builder = RowBuilder(gen, sources, device=device,
                         methods={d.name: d.method for d in domains},
                         allow_random=args.allow_random, seed=args.seed)
    rows: list[dict[str, Any]] = []
    failed = False
    with Progress(console=console, transient=True) as progress:
        for spec in ROWS:
            row: dict[str, Any] = {"key": spec.key, "label": spec.label}
            rows.append(row)
            n_items = n_samples if spec.key == "orig" else len(photos)
            task = progress.add_task(spec.label, total=n_items)
            setup = None
            try:
                setup = builder.build(spec.key)
                scorer.reset()
                if setup.adapter is None:
                    for w_plus in orig_latents(gen, n_samples, seed=args.seed,
                                               truncation=args.truncation, batch=args.batch):
                        inversion = Inversion(w_plus=w_plus)
                        for d in domains:
                            with torch.no_grad():
                                images = synthesize(gen, inversion, method=d.method)
                            scorer.update(d.name, from_generator_range(images))
                        progress.advance(task, int(w_plus.shape[0]))
                else:
                    for batch in _photo_batches(photos, gen.size, args.batch):
                        rendered = setup.adapter.run(batch)
                        for d in domains:
                            scorer.update(d.name, rendered[d.name])
                        progress.advance(task, int(batch.shape[0]))
                per_domain = scorer.compute()
            except RowSkipped as exc:
                row.update(status="skipped", reason=str(exc))
                notes.append(f"row {spec.label!r} skipped: {exc}")
                continue
            except (StylebridgeError, ValueError, RuntimeError) as exc:
                # the other rows still run; the table says which one failed and why
                reason = str(exc) if isinstance(exc, StylebridgeError) else \
                    f"{type(exc).__name__}: {' '.join(str(exc).split())}"
                row.update(status="failed", reason=reason)
                notes.append(f"row {spec.label!r} failed: {reason}")
                failed = True
                continue
            finally:
                progress.remove_task(task)
            row_random = bool(setup.random)
            if row_random and not shared_random:
                notes.append(f"row {spec.label!r}: {RANDOM_NOTICE} ({', '.join(setup.sources.values())})")
            notes.extend(f"row {spec.label!r}: {n}" for n in setup.notes)
            row.update(status="done", random_weights=row_random or shared_random,
                       sources=setup.sources, mean=aggregate(per_domain, domains),
                       per_domain=per_domain)
            del setup

    random = shared_random or any(r.get("random_weights") for r in rows)
    result: dict[str, Any] = {
        "title": "Thesis Tables 4.1-4.3: CLIP Quality and Diversity"
                 + (f" [{RANDOM_NOTICE}]" if random else ""),
        "random_weights": random,
        "notice": RANDOM_SENTENCE if random else None,
        "preset": args.preset,
        "generator": str(g_path), "generator_random_weights": gen_random,
        "clip_models": [{"name": c.name, "weights": None if c.weights is None else str(c.weights),
                         "random_weights": c.random} for c in clips],
        "text_template": args.text_template,
        "n_images": len(photos), "samples": n_samples, "seed": args.seed,
        "truncation": args.truncation,
        "domains": [d.describe(args.text_template) for d in domains],
        "rows": rows, "notes": notes, "report": report.as_dict(),
    }
    result = _json_ready(result)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / JSON_FILE, result)
    with atomic_path(args.out / MARKDOWN_FILE) as tmp:
        tmp.write_text(render_markdown(result), encoding="utf-8")

    print_tables(console, result)
    for note in notes:
        style = "bold red" if RANDOM_NOTICE in note else "yellow"
        console.print(f"[{style}]note:[/{style}] {note}")
    if random:
        console.print(f"[bold red]{RANDOM_SENTENCE}[/bold red]")
    console.print(f"[green]wrote[/green] {escape(str(args.out / MARKDOWN_FILE))} and "
                  f"{escape(str(args.out / JSON_FILE))}")
    report.print(console)
    code = report.exit_code
    if failed and code == 0:
        from stylebridge.core.batch import EXIT_PARTIAL

        code = EXIT_PARTIAL
    return code


register_reproduce_target("thesis-tables", add_thesis_tables_arguments, run_thesis_tables,
                          help="CLIP Quality / Diversity of Tables 4.1-4.3 (orig, e4e, FSE, "
                               "FeatureShift rows x domains x CLIP models)")


@hookimpl
def register_commands(register: Any) -> None:
    register(ReproduceCommand())


__all__ = ["ROWS", "ReproduceCommand", "Scorer", "TinyPreset", "aggregate", "build_tiny_preset",
           "collect_domains", "register_reproduce_target", "render_markdown",
           "run_thesis_tables"]
