"""Domain adaptation of real photos: the :class:`Adapter` pipeline, ``stylebridge adapt`` and
``stylebridge calibrate``.

Pipeline (thesis, chapter 4): encode each photo **once** with an encoder,
optionally correct the encoder/domain mismatch (a :class:`Calibrator`, e.g.
alpha-rescaling: per-layer offset scales ``1/α_i``; ``skip_layers``: no change
on the listed style layers, the thesis' "indomain" remedy for the first
layer), then render the inversion through every domain method::

    adapter = Adapter(encoder, generator, {"pixar": pixar, "joker": joker},
                      calibrator=alpha, skip_layers=[0])
    images = adapter.run(images01)   # {"inversion": [B,3,S,S], "pixar": ..., "joker": ...}

``stylebridge adapt --encoder E --generator G --method NAME:DOMAIN.safetensors
[--method ...] [--calibrate alpha:STATS] [--skip-layers 0,1] [--align/--no-align]
IMAGES... --out DIR`` writes per photo ``<stem>_inversion.png`` and
``<stem>_<domain>.png`` (the domain name is the checkpoint's file stem),
``grid.png`` (rows: input | inversion | each domain, labelled), ``adapt.json``
(inputs, outputs, offset scales, skipped files) and ``metrics.json`` (MSE and PSNR,
input vs inversion).  Inputs on random
(untrained) weights (encoder, generator, domains, calibrator, FeatureShift, guide)
are named in the terminal, in a red notice under ``grid.png`` and in both JSON
files (``random_weights``, ``random_inputs``, ``random_parts``).  Unreadable
images (and, with ``--align``, photos without a face) are skipped and reported;
exit code 3 when some inputs were skipped, 2 when all were.

Skip layers are style-layer indices (:mod:`stylebridge.core.stylegan2.generator`:
0 = ``conv1``, 1 = ``to_rgb1``, then ``2+3j``/``3+3j`` convs and ``4+3j`` ToRGB of
stage ``j``).  The thesis' remedy for FSE ("without first-layer offsets") is
``--skip-layers 0``; StyleDomain's ``no_coarse`` training flag (heads conv_0 …
conv_5, 4–32 px) corresponds to ``--skip-layers 0,2,3,5,6,8``.

``stylebridge calibrate alpha --encoder E --generator G --images DIR --out
STATS.safetensors [--samples 3000]`` fits the alpha-rescaling statistics (see
:mod:`stylebridge.plugins.calibrators.alpha`).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from stylebridge.cli.base import Command
from stylebridge.core.checkpoint import RANDOM_NOTICE, is_random_weights
from stylebridge.core.images import labelled_grid, resize_square
from stylebridge.core.interfaces import Calibrator, DomainMethod, Encoder, Inversion
from stylebridge.core.synthesis import check_compatible
from stylebridge.errors import ImageError, StylebridgeError
from stylebridge.plugins.calibrators.alpha import parse_layers, skip_scale
from stylebridge.registry import hookimpl
from stylebridge.registry.resolve import load_encoder, spec_random

if TYPE_CHECKING:
    from rich.console import Console

    from stylebridge.core.batch import BatchReport
    from stylebridge.core.stylegan2.generator import Generator

INVERSION = "inversion"
GUIDE_KEY = "guide_w_plus"  # Inversion.extras entry holding the FeatureShift guide's latents
GRID_TILE = 256          # largest tile edge in grid.png
GRID_MAX_ROWS = 64       # grid.png shows the first 64 photos


# ---------------------------------------------------------------------------------------------
# Python API


def _method_label(method: DomainMethod) -> str:
    return str(getattr(method, "label", "") or method.name or "domain")


class Adapter:
    """Encoder + generator + domain methods (+ calibrator): photos → adapted images.

    ``methods``: ``{name: method}`` or a sequence (named by each method's
    ``label``/``name``, made unique).  ``skip_layers``: style-layer indices whose
    domain change is switched off (scale 0), on top of the calibrator's scales.
    Every method is checked against the generator when the adapter is built.
    :attr:`encoded_images` counts the images passed to the encoder.
    """

    def __init__(self, encoder: Encoder, generator: Generator,
                 methods: Mapping[str, DomainMethod] | Sequence[DomainMethod],
                 calibrator: Calibrator | None = None,
                 skip_layers: Sequence[int] | str = (),
                 featureshift: torch.nn.Module | None = None,
                 guide: Encoder | None = None) -> None:
        self.encoder, self.generator, self.calibrator = encoder, generator, calibrator
        # FeatureShift (thesis step 4): the encoder (FSE, features) gives F and w_F, the guide
        # (e4e, or None = the encoder's own latents) gives the latents whose domain change
        # at layer K becomes Δ; domains then render through FeatureShift(F, Δ).
        self.featureshift, self.guide = featureshift, guide
        encoder.bind_generator(generator)
        if featureshift is not None:
            from stylebridge.plugins.renderers.featureshift import check_featureshift

            check_featureshift(featureshift, generator, encoder)  # type: ignore[arg-type]
        if guide is not None:
            guide.bind_generator(generator)
        if isinstance(methods, Mapping):
            items = list(methods.items())
        else:
            items = [(_method_label(m), m) for m in methods]
        self.methods: dict[str, DomainMethod] = {}
        for name, method in items:
            unique, k = str(name), 2
            while unique in self.methods or unique == INVERSION:
                unique, k = f"{name}-{k}", k + 1
            self.methods[unique] = method
        check_domains(self.methods.values(), generator)
        self.skip_layers = parse_layers(skip_layers)
        n = generator.n_style_layers
        base = None if calibrator is None else calibrator.offset_scale(n)
        self.offset_scale: Tensor | None = skip_scale(n, self.skip_layers, base)
        self.encoded_images = 0

    @property
    def device(self) -> torch.device:
        return self.generator.input.input.device

    @torch.no_grad()
    def encode(self, images01: Tensor) -> Inversion:
        """Images ``[B, 3, H, W]`` in ``[0, 1]`` → (calibrated) inversion on the generator's device."""
        if images01.ndim != 4 or images01.shape[1] != 3:
            raise ValueError(f"expected images [B, 3, H, W] in [0, 1], got {list(images01.shape)}")
        inversion = self.encoder.encode(images01.to(self.device))
        self.encoded_images += int(images01.shape[0])
        check_compatible(inversion, self.generator, f"encoder {self.encoder.name!r}")
        if inversion.batch_size != images01.shape[0]:
            raise StylebridgeError(f"encoder {self.encoder.name!r} returned {inversion.batch_size} "
                                   f"inversions for {images01.shape[0]} images")
        inversion = inversion.detach().to(self.device)
        if self.featureshift is not None:
            guide_w = (inversion.w_plus if self.guide is None
                       else self.guide.encode(images01.to(self.device)).w_plus.detach())
            inversion.extras[GUIDE_KEY] = guide_w
        if self.calibrator is not None:
            inversion = self.calibrator.apply(inversion)
        return inversion

    @torch.no_grad()
    def render(self, inversion: Inversion) -> dict[str, Tensor]:
        """The inversion without and with every domain → ``{name: [B, 3, S, S]}`` in ``[0, 1]``."""
        from stylebridge.core.images import from_generator_range
        from stylebridge.core.synthesis import synthesize

        out = {INVERSION: from_generator_range(synthesize(self.generator, inversion))}
        for name, method in self.methods.items():
            if self.featureshift is not None:
                from stylebridge.plugins.renderers.featureshift import apply_featureshift

                images = apply_featureshift(self.generator, self.featureshift, inversion,
                                            inversion.extras[GUIDE_KEY], method,
                                            offset_scale=self.offset_scale)
            else:
                images = synthesize(self.generator, inversion, method=method,
                                    offset_scale=self.offset_scale)
            out[name] = from_generator_range(images)
        return out

    def run(self, images01: Tensor) -> dict[str, Tensor]:

        """Encode once, render the inversion and every domain (images in ``[0, 1]``)."""
        return self.render(self.encode(images01))


# ---------------------------------------------------------------------------------------------
# Shared CLI pieces


def load_generator_arg(spec: str, device: torch.device) -> tuple[Generator, bool, Path]:
    from stylebridge.cli.common import checkpoint_spec
    from stylebridge.core.stylegan2.checkpoint import load_stylegan2

    name, path = checkpoint_spec(spec, "generator")
    if name not in (None, "stylegan2"):
        raise StylebridgeError(f"--generator {spec!r}: unknown generator {name!r} (known: stylegan2)")
    ck = load_stylegan2(path, device=device)
    return ck.generator, is_random_weights(ck.header.extra), path


def check_domains(methods: Iterable[DomainMethod], generator: Generator) -> None:
    """One-line error for a domain trained for another generator (``check_generator``)."""
    for method in methods:
        check = getattr(method, "check_generator", None)
        if check is not None:
            check(generator)


def load_domains(specs: Sequence[str], device: torch.device
                 ) -> tuple[dict[str, DomainMethod], dict[str, bool]]:
    """``--method``/``--domain`` checkpoints (one-line errors for a missing file or a wrong
    kind), by unique name (the file stem: ``stylespace:joker.safetensors`` → ``joker``), and
    which of them hold random (untrained) weights."""
    from stylebridge.plugins.domains.styledomain import load_domain

    domains: dict[str, DomainMethod] = {}
    random: dict[str, bool] = {}
    for i, spec in enumerate(specs):
        method = load_domain(spec, device=device)
        name = domain_name(spec, method, i)
        unique, k = name, 2
        while unique in domains or unique == INVERSION:
            unique, k = f"{name}-{k}", k + 1
        domains[unique] = method
        random[unique] = spec_random("domain_method", spec, method)
    return domains, random


def random_parts(random_inputs: Mapping[str, Any]) -> list[str]:
    """``{"encoder": True, "domains": {"joker": True}, ...}`` → ``["encoder", "domain joker"]``."""
    parts: list[str] = []
    for key, value in random_inputs.items():
        if isinstance(value, Mapping):
            parts += [f"{key.removesuffix('s')} {name}" for name, rnd in value.items() if rnd]
        elif value:
            parts.append(key)
    return parts


@dataclass
class _Pending:
    paths: list[Path] = field(default_factory=list)
    inputs: list[Tensor] = field(default_factory=list)   # encoder-sized
    tiles: list[Tensor] = field(default_factory=list)    # grid-sized
    targets: list[Tensor] = field(default_factory=list)  # generator-sized (metrics)


def photo_batches(paths: Sequence[Path], report: BatchReport, *, enc_size: int, tile: int,
             batch: int, align: bool, align_size: int, target: int = 0) -> Iterator[_Pending]:
    """Readable (and, with ``align``, aligned) photos in batches; failures go to ``report``."""
    from stylebridge.core.batch import iter_images

    pending = _Pending()
    for path, image in iter_images(paths, report):
        if align:
            from stylebridge.pipelines.align import align_face

            try:
                image = align_face(image, align_size, path=path).to_tensor()
            except ImageError as exc:  # NoFaceError included
                report.skip(path, str(exc).removeprefix(f"{path}: "))
                continue
        pending.paths.append(path)
        pending.inputs.append(resize_square(image, enc_size))
        pending.tiles.append(resize_square(image, tile))
        if target:
            pending.targets.append(resize_square(image, target))
        if len(pending.paths) >= batch:
            yield pending
            pending = _Pending()
    if pending.paths:
        yield pending


# ---------------------------------------------------------------------------------------------
# stylebridge adapt


def domain_name(spec_text: str, method: DomainMethod, index: int) -> str:
    from stylebridge.registry.spec import parse_plugin_spec

    spec = parse_plugin_spec(spec_text, what="domain method")
    name = spec.path.stem if spec.path is not None else (spec.name or method.name)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name).strip("._")
    return safe or f"domain{index}"


def _metrics(names: Sequence[str]) -> dict[str, Any]:
    """Built-in metrics (input vs inversion), reset and ready."""
    from stylebridge.registry import get_registry

    registry = get_registry()
    out = {}
    for name in names:
        metric = registry.create("metric", name)
        metric.reset()
        out[name] = metric
    return out


class AdaptCommand(Command):
    """Encode photos once and render them in one or more new domains."""

    name = "adapt"
    help = "encode photos once and render them through domain methods (StyleSpace, Affine+...)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from stylebridge.cli.common import add_images_argument
        from stylebridge.cli.options import add_photo_arguments

        add_images_argument(parser)
        parser.add_argument("--method", "-m", action="append", required=True,
                            metavar="[NAME:]DOMAIN.safetensors",
                            help="domain checkpoint, repeatable; its file stem names the outputs")
        parser.add_argument("--calibrate", metavar="NAME:STATS",
                            help="calibrator, e.g. alpha:alpha_e4e.safetensors (stylebridge calibrate)")
        parser.add_argument("--skip-layers", default="", metavar="0,1",
                            help="style layers that get no domain change (e.g. 0 = conv1)")
        parser.add_argument("--featureshift", type=Path, metavar="MODEL.safetensors",
                            help="render domains through a trained FeatureShift (encoder: fse "
                                 "with mode=features)")
        parser.add_argument("--guide", metavar="NAME[:CKPT]",
                            help="FeatureShift's guiding encoder (default: the one recorded in "
                                 "the model, else the encoder's own latents)")
        parser.add_argument("--out", type=Path, required=True, metavar="DIR")
        add_photo_arguments(parser)

    def run(self, args: argparse.Namespace, console: Console) -> int:
        from rich.markup import escape
        from rich.progress import Progress
        from rich.table import Table

        from stylebridge.cli.options import check_photo_arguments, print_random_notices
        from stylebridge.core.batch import BatchReport, require_inputs
        from stylebridge.core.device import resolve_device
        from stylebridge.core.images import save_png
        from stylebridge.core.io import write_json
        from stylebridge.pipelines.align import output_names
        from stylebridge.registry.resolve import load_plugin

        check_photo_arguments(args)
        skip = parse_layers(args.skip_layers)
        device = resolve_device(args.device)
        paths = require_inputs(args.images)
        gen, gen_random, g_path = load_generator_arg(args.generator, device)
        encoder, enc_random = load_encoder(args.encoder, device)
        # which inputs run on random (untrained) weights: every one is labelled, in the
        # terminal, on grid.png and in adapt.json / metrics.json
        random_inputs: dict[str, Any] = {"encoder": enc_random, "generator": gen_random}
        methods, domain_random = load_domains(args.method, device)
        random_inputs["domains"] = domain_random
        calibrator = None
        if args.calibrate:
            calibrator = load_plugin("calibrator", args.calibrate, device=device)
            random_inputs["calibrator"] = spec_random("calibrator", args.calibrate, calibrator)
        featureshift = guide = None
        if args.featureshift is not None:
            from stylebridge.plugins.renderers.featureshift import load_featureshift

            featureshift, fs_header = load_featureshift(args.featureshift, device=device)
            random_inputs["featureshift"] = is_random_weights(fs_header.extra)
            guide_spec = args.guide or fs_header.extra.get("sources", {}).get("guide")
            if guide_spec and guide_spec != args.encoder:
                guide, random_inputs["guide"] = load_encoder(str(guide_spec), device)
        adapter = Adapter(encoder, gen, methods, calibrator=calibrator, skip_layers=skip,
                          featureshift=featureshift, guide=guide)
        parts = random_parts(random_inputs)
        random = bool(parts)
        print_random_notices(console, random_inputs, encoder=encoder.name, generator=g_path)

        prep = getattr(encoder, "preprocessing", None)
        enc_size = int(getattr(prep, "size", 0) or gen.size)
        tile = min(gen.size, GRID_TILE)
        names, clashes = output_names(paths, "")
        report = BatchReport()
        for p, reason in clashes.items():
            report.skip(p, reason)
        todo = [p for p in paths if p in names]
        # the output folder is made once the first batch has passed the encoder/generator
        # check (or, with no readable photo, for the report): an early error leaves no folder
        metrics = _metrics(("mse", "psnr"))
        grid_rows: list[list[Tensor]] = []
        outputs: dict[str, dict[str, str]] = {}
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task(f"adapting with {len(methods)} domain(s)", total=len(todo))
            for chunk in photo_batches(todo, report, enc_size=enc_size, tile=tile, batch=args.batch,
                                  align=args.align, align_size=args.align_size,
                                  target=gen.size):
                images = adapter.run(torch.stack(chunk.inputs))
                rendered = {k: v.cpu() for k, v in images.items()}
                args.out.mkdir(parents=True, exist_ok=True)
                for metric in metrics.values():
                    metric.update(rendered[INVERSION], torch.stack(chunk.targets))
                for i, path in enumerate(chunk.paths):
                    stem = names[path]
                    files = {}
                    for key, batch in rendered.items():
                        dst = args.out / f"{stem}_{key}.png"
                        save_png(dst, batch[i])
                        files[key] = dst.name
                    outputs[str(path)] = files
                    if len(grid_rows) < GRID_MAX_ROWS:
                        grid_rows.append([chunk.tiles[i]] + [resize_square(rendered[k][i], tile)
                                                             for k in rendered])
                    report.ok(path)
                progress.update(task, completed=len(report.done) + len(report.skipped)
                                - len(clashes))
        scale = adapter.offset_scale
        summary: dict[str, Any] = {
            "encoder": args.encoder, "generator": str(g_path),
            "domains": {name: str(spec) for name, spec in zip(methods, args.method, strict=True)},
            "calibrator": args.calibrate, "skip_layers": skip,
            "featureshift": None if featureshift is None else {
                "model": str(args.featureshift), "layer": featureshift.layer,
                "guide": str(guide_spec) if guide is not None else f"{args.encoder} (latents)"},
            "offset_scale": None if scale is None else [float(v) for v in scale],
            "aligned": bool(args.align), "random_weights": random,
            "random_inputs": random_inputs, "random_parts": parts,
            "outputs": outputs, **report.as_dict()}
        notice = f"{RANDOM_NOTICE}: not a trained model ({', '.join(parts)})" if random else None
        if random:
            summary["notice"] = notice
        args.out.mkdir(parents=True, exist_ok=True)
        if metrics:
            values: dict[str, Any] = {}
            for metric in metrics.values():
                values.update({k: float(v) if math.isfinite(float(v)) else None
                               for k, v in metric.compute().items()})
            summary["metrics_input_vs_inversion"] = values
            write_json(args.out / "metrics.json", {"input_vs_inversion": values,
                                                   "random_weights": random,
                                                   "random_inputs": random_inputs,
                                                   "random_parts": parts})
        write_json(args.out / "adapt.json", summary)
        if grid_rows:
            labels = ["input (aligned)" if args.align else "input",
                      f"inversion: {encoder.name}",
                      *(f"{name} [{RANDOM_NOTICE}]" if domain_random[name] else name
                        for name in methods)]
            save_png(args.out / "grid.png", labelled_grid(grid_rows, labels, notice=notice))
            console.print(f"[green]wrote[/green] {len(report.done)} photo(s) × "
                          f"{len(methods) + 1} images and grid.png to {escape(str(args.out))}")
        if metrics and report.done:
            table = Table(title="input vs inversion"
                          + (escape(f" [{RANDOM_NOTICE}]") if random else ""))
            table.add_column("metric")
            table.add_column("value", justify="right")
            for key, value in summary["metrics_input_vs_inversion"].items():
                table.add_row(key, "n/a" if value is None else f"{value:.4g}")
            console.print(table)
        report.print(console)
        return report.exit_code


# ---------------------------------------------------------------------------------------------
# stylebridge calibrate


class CalibrateCommand(Command):
    """Fit a calibrator (alpha-rescaling) from an encoder's styles on photos."""

    name = "calibrate"
    help = "fit calibration statistics, e.g. alpha-rescaling of domain offsets for an encoder"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from stylebridge.cli.options import add_photo_arguments, add_style_means_arguments

        parser.add_argument("calibrator", metavar="NAME", help="calibrator to fit, e.g. alpha")
        parser.add_argument("--out", type=Path, required=True, metavar="STATS.safetensors")
        add_style_means_arguments(parser)
        parser.add_argument("--skip-layers", default="", metavar="0,1",
                            help="style layers whose offsets are always switched off (e.g. 0)")
        parser.add_argument("--fit", choices=("origin", "intercept"), default="origin",
                            help="least squares through the origin (default) or with intercept")
        parser.add_argument("--power", type=float, default=-1.0,
                            help="offset scale = alpha ** power (default -1, i.e. 1/alpha)")
        parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")
        add_photo_arguments(parser)

    def run(self, args: argparse.Namespace, console: Console) -> int:
        from rich.markup import escape
        from rich.progress import Progress
        from rich.table import Table

        from stylebridge.cli.options import (
            check_photo_arguments,
            encoder_inputs,
            print_random_notices,
        )
        from stylebridge.core.batch import BatchReport, require_inputs
        from stylebridge.core.device import resolve_device
        from stylebridge.plugins.calibrators.alpha import encoder_style_means, mapping_style_means
        from stylebridge.registry import get_registry

        check_photo_arguments(args)
        if args.samples < 1:
            raise StylebridgeError(f"--samples {args.samples}: must be >= 1")
        if args.out.exists() and not args.force:
            raise StylebridgeError("already exists (use --force to overwrite)", path=args.out)
        cls = get_registry().get("calibrator", args.calibrator).obj
        if not hasattr(cls, "from_style_means"):
            raise StylebridgeError(f"calibrator {args.calibrator!r} cannot be fitted by "
                                   "`stylebridge calibrate`")
        skip = parse_layers(args.skip_layers)
        device = resolve_device(args.device)
        paths = require_inputs(args.images)
        gen, gen_random, g_path = load_generator_arg(args.generator, device)
        skip_scale(gen.n_style_layers, skip)  # range check before the long part
        encoder, enc_random = load_encoder(args.encoder, device)
        random_inputs = {"encoder": enc_random, "generator": gen_random}
        random = enc_random or gen_random
        print_random_notices(console, random_inputs, encoder=encoder.name, generator=g_path)
        prep = getattr(encoder, "preprocessing", None)
        enc_size = int(getattr(prep, "size", 0) or gen.size)
        report = BatchReport()

        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("encoding photos", total=len(paths))

            batches = encoder_inputs(paths, report, args, enc_size,
                                     lambda: progress.update(task, completed=len(report.done)
                                                             + len(report.skipped)))
            try:
                enc_means, n_images = encoder_style_means(encoder, gen, batches)
            except StylebridgeError:
                report.print(console)
                raise
            progress.update(task, description=f"sampling {args.samples} z", completed=0,
                            total=None)
            src_means = mapping_style_means(gen, args.samples, seed=args.seed)
        calib = cls.from_style_means(src_means, enc_means, skip_layers=skip, fit=args.fit,
                                     power=args.power)
        extra = {"encoder": args.encoder, "generator": g_path.name, "n_images": n_images,
                 "samples": args.samples, "seed": args.seed, "aligned": bool(args.align),
                 "random_weights": random, "random_inputs": random_inputs}
        if random:
            parts = ", ".join(random_parts(random_inputs))
            extra["notes"] = [f"computed with random weights ({parts}): not real statistics"]
        calib.save(args.out, extra=extra)

        table = Table(title=f"alpha per style layer ({n_images} photos, {args.samples} samples)"
                      + (escape(f" [{RANDOM_NOTICE}]") if random else ""))
        for col in ("layer", "name", "alpha", "offset scale", "R²"):
            table.add_column(col, justify="right" if col != "name" else "left")
        scale = calib.offset_scale(gen.n_style_layers)
        for layer in gen.style_layers():
            i = layer.index
            table.add_row(str(i), layer.name, f"{float(calib.alpha[i]):.4g}", f"{float(scale[i]):.4g}",
                          f"{float(calib.r2[i]):.3f}")
        console.print(table)
        bad = calib.unreliable_layers()
        if bad:
            console.print(f"[yellow]layers {escape(str(bad))} have alpha <= {calib.min_alpha} "
                          "(or undefined): they get no domain offset[/yellow]")
        console.print(f"[green]wrote[/green] {escape(str(args.out))}"
                      + (f" [bold yellow]{escape(f'[{RANDOM_NOTICE}]')}[/bold yellow]"
                         if random else ""))
        report.print(console)
        return report.exit_code


@hookimpl
def register_commands(register: Any) -> None:
    register(AdaptCommand())
    register(CalibrateCommand())


__all__ = ["AdaptCommand", "Adapter", "CalibrateCommand"]
