"""What the ``adapt`` pipeline reads, shared with the pipelines built on the same pieces
(``render``, ``calibrate``, ``generate``, ``demo``, ``serve``, ``analyze``, ``reproduce``):
the generator, domain and FeatureShift files, opened with one-line errors
(:func:`load_generator_arg`, :func:`open_domains`, :func:`load_domains`,
:func:`open_featureshift`; a domain's output name, :func:`domain_name`), and the photos,
read (and aligned) in batches (:func:`photo_batches`, :func:`encoder_batches`).  All are
re-exported by :mod:`stylebridge.pipelines.adapt`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from stylebridge.core.batch import BatchReport, iter_images
from stylebridge.core.checkpoint import is_random_weights, read_header
from stylebridge.core.images import resize_square
from stylebridge.core.interfaces import DomainMethod, Renderer
from stylebridge.errors import CheckpointError, ImageError, StylebridgeError
from stylebridge.pipelines.adapter import INVERSION, other_generator
from stylebridge.pipelines.align import align_face
from stylebridge.pipelines.featureshift.usage import state_file_error
from stylebridge.pipelines.file_names import capped_name, unique_name
from stylebridge.pipelines.photos import is_random, weights_path
from stylebridge.registry.resolve import (
    load_domain,
    load_generator,
    load_plugin,
    provenance_of,
    spec_random,
)
from stylebridge.registry.spec import parse_plugin_spec

if TYPE_CHECKING:
    from stylebridge.core.checkpoint import CheckpointHeader
    from stylebridge.core.stylegan2.generator import Generator
    from stylebridge.plugins.renderers.featureshift import FeatureShift


# ---------------------------------------------------------------------------------------------
# Loading pieces shared by the pipelines


def load_generator_arg(spec: str, device: torch.device) -> tuple[Generator, bool, Path]:
    """``[stylegan2:]CKPT`` (or installed weights) → (generator, random weights?, path).
    The photo pipelines use :func:`~stylebridge.pipelines.photos.open_generator` and read
    both from the generator's recorded provenance."""
    generator, provenance = load_generator(spec, device)
    return generator, provenance.random, provenance.path


def domain_name(spec_text: str, method: DomainMethod, index: int) -> str:
    """A domain's output name: its checkpoint's file stem (safe characters only; a long one,
    a hyperdomain's ``text=`` prompt, cut to 80 bytes with a digest: :func:`capped_name`)."""
    spec = parse_plugin_spec(spec_text, what="domain method")
    name = spec.path.stem if spec.path is not None else (spec.name or method.name)
    if method.text_conditioned and spec.options.get("text"):  # hyperdomain: one file, many texts
        name = f"{name}_{str(spec.options['text']).strip(chr(34) + chr(39))}"
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name).strip("._")
    return capped_name(safe, name) if safe else f"domain{index}"


def open_domains(specs: Sequence[str], device: torch.device, registry: Any = None
                 ) -> dict[str, DomainMethod]:
    """``--method``/``--domain`` checkpoints (one-line errors for a missing file or a wrong
    kind), by unique name (the file stem: ``stylespace:joker.safetensors`` → ``joker``;
    unique case-folded, ``Joker`` → ``Joker-2``); whether each holds random weights is
    recorded beside it (:func:`~stylebridge.pipelines.photos.is_random`)."""
    domains: dict[str, DomainMethod] = {}
    for i, spec in enumerate(specs):
        method = load_domain(spec, device=device, registry=registry)
        domains[unique_name(domain_name(spec, method, i), domains, (INVERSION,))] = method
    return domains


def load_domains(specs: Sequence[str], device: torch.device, registry: Any = None
                 ) -> tuple[dict[str, DomainMethod], dict[str, bool]]:
    """:func:`open_domains`, and which of them hold random (untrained) weights."""
    domains = open_domains(specs, device, registry)
    random = {name: spec_random("domain_method", spec, method)
              for (name, method), spec in zip(domains.items(), specs, strict=True)}
    return domains, random


def open_featureshift(path: Path, device: torch.device) -> tuple[FeatureShift, CheckpointHeader,
                                                                   bool]:
    """A trained FeatureShift (``--featureshift``): the model, its header (its ``sources``
    name the guide encoder it was trained with) and whether it holds random weights."""
    from stylebridge.plugins.renderers.featureshift import load_featureshift
    from stylebridge.registry.resolve import Provenance, record_provenance

    try:
        model, header = load_featureshift(path, device=device)
    except CheckpointError:
        refused = state_file_error(path)  # `train featureshift`'s RUN/state.safetensors
        if refused is not None:
            raise refused from None
        raise
    random = is_random_weights(header.extra)
    # where it came from, as create() records it (run records name what was loaded)
    record_provenance(model, Provenance("random" if random else "checkpoint", Path(path),
                                        spec=str(path)))
    return model, header, random


def check_renderer_choice(featureshift: Path | None, renderer: str | None) -> None:
    """One line when both ``--featureshift`` and ``--renderer`` are given: each chooses the
    renderer every output goes through."""
    if featureshift is not None and renderer:
        raise StylebridgeError(f"--featureshift and --renderer both choose the renderer: give "
                               f"one (--featureshift {featureshift} is short for --renderer "
                               f"featureshift:{featureshift})")


def open_renderer(spec: str, device: torch.device, registry: Any = None) -> Renderer:
    """A ``--renderer`` spec (``NAME[:CKPT][:k=v,...]`` or ``CKPT``), built by the registry's
    one path (:func:`~stylebridge.registry.resolve.create`, kind ``renderer``, from
    ``registry``): an unknown name is answered with the close ones, and the renderer's
    provenance is recorded beside it (:func:`~stylebridge.pipelines.photos.is_random`)."""
    renderer = load_plugin("renderer", spec, device=device, registry=registry)
    if not isinstance(renderer, Renderer):
        raise StylebridgeError(f"--renderer {spec!r} did not build a renderer")
    return renderer


def renderer_record(spec: str, renderer: Renderer, guide: str | None) -> dict[str, Any]:
    """What ``adapt.json`` / ``render.json`` say of a ``--renderer`` (``"renderer"``): the
    spec as given, the plugin, where its weights came from (``provenance``: official,
    converted, checkpoint, random or none, and in words) and what guides it (``None``: it
    reads no guide latents)."""
    prov = provenance_of(renderer)
    return {"spec": str(spec), "plugin": renderer.name,
            "provenance": prov.origin if prov is not None else None,
            "weights": prov.describe() if prov is not None else None,
            "random_weights": is_random(renderer), "guide": guide}


def renderer_generator_notes(spec: str, renderer: Renderer, generator: Generator) -> list[str]:
    """One line when the ``--renderer`` checkpoint records the sha256 of the generator file it
    was trained on (as FeatureShift's does) and ``generator`` was loaded from another file
    (:func:`~stylebridge.pipelines.adapter.other_generator`); else none."""
    path = weights_path(renderer)
    if path is None:
        return []
    where = other_generator(read_header(path).extra, generator, file_key="generator_file")
    if where is None:
        return []
    return [f"--renderer {spec} was trained on generator {where}: what it learnt on that "
            "generator's features may not fit this one"]


def shifted_layer(renderer: Renderer | None) -> int | None:
    """The generator layer K whose encoder feature a FeatureShift renderer (from
    ``--featureshift`` or ``--renderer``) replaces; ``None`` for any other renderer."""
    from stylebridge.plugins.renderers.featureshift import FeatureShift

    return int(renderer.layer) if isinstance(renderer, FeatureShift) else None


# ---------------------------------------------------------------------------------------------
# Photos in batches


@dataclass
class _Pending:
    paths: list[Path] = field(default_factory=list)
    inputs: list[Tensor] = field(default_factory=list)   # encoder-sized
    tiles: list[Tensor] = field(default_factory=list)    # grid-sized
    targets: list[Tensor] = field(default_factory=list)  # generator-sized (metrics)


def photo_batches(paths: Sequence[Path], report: BatchReport, *, enc_size: int, tile: int,
                  batch: int, align: bool, align_size: int, target: int = 0,
                  enc_filter: str = "torch-bilinear") -> Iterator[_Pending]:
    """Readable (and, with ``align``, aligned) photos in batches; failures go to ``report``.
    Encoder inputs are resized with ``enc_filter`` (the encoder's ``preprocessing.resize``)."""
    pending = _Pending()
    for path, image in iter_images(paths, report):
        if align:
            try:
                image = align_face(image, align_size, path=path).to_tensor()
            except ImageError as exc:  # NoFaceError included
                report.skip(path, str(exc).removeprefix(f"{path}: "))
                continue
        else:
            h, w = image.shape[-2:]
            if abs(h - w) > 0.02 * max(h, w):
                report.note(path, f"is {w}×{h}, not square: without --align it is squeezed "
                                  "to a square")
            elif max(h, w) < enc_size // 2:
                report.note(path, f"is {w}×{h}: without --align it is enlarged to the "
                                  f"encoder's {enc_size}×{enc_size}")
        pending.paths.append(path)
        pending.inputs.append(resize_square(image, enc_size, enc_filter))
        pending.tiles.append(resize_square(image, tile))
        if target:
            pending.targets.append(resize_square(image, target))
        if len(pending.paths) >= batch:
            yield pending
            pending = _Pending()
    if pending.paths:
        yield pending


def encoder_batches(paths: Sequence[Path], report: BatchReport, *, enc_size: int, batch: int,
                    align: bool, align_size: int,
                    on_batch: Callable[[], None] | None = None,
                    enc_filter: str = "torch-bilinear") -> Iterator[Tensor]:
    """Stacked encoder inputs of the readable photos; each yielded photo is marked done in
    ``report``, then ``on_batch`` runs."""
    for chunk in photo_batches(paths, report, enc_size=enc_size, tile=8, batch=batch,
                               align=align, align_size=align_size, enc_filter=enc_filter):
        yield torch.stack(chunk.inputs)
        for p in chunk.paths:
            report.ok(p)
        if on_batch is not None:
            on_batch()


__all__ = ["check_renderer_choice", "domain_name", "encoder_batches", "load_domains",
           "load_generator_arg", "open_domains", "open_featureshift", "open_renderer",
           "photo_batches", "renderer_generator_notes", "renderer_record", "shifted_layer"]
