"""``stylebridge invert``: photos → encoder → StyleGAN2 reconstructions (+ saved latents).

Per input image ``<stem>`` the command writes into ``--out``:

* ``<stem>_inversion.png``: the generator's rendering of the inversion;
* with ``--save-latents``, ``<stem>_inversion.safetensors``: a stylebridge
  checkpoint of ``kind="inversion"``, ``plugin=<encoder name>`` (see
  :func:`save_inversion` / :func:`load_inversion`);

and ``grid.png`` (one row per image: input | inversion).  Faces are FFHQ-aligned
first (``--align``, the default; :mod:`stylebridge.pipelines.align`, at
``--align-size`` pixels, then the encoder's own preprocessing resizes); use
``--no-align`` for images that are already aligned.  Unreadable images and
photos without a face are skipped and reported; the exit code is 3 when some
inputs were skipped and 2 when all were.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stylebridge.cli.base import Command
from stylebridge.core.checkpoint import RANDOM_NOTICE
from stylebridge.core.images import labelled_grid, resize_square
from stylebridge.core.synthesis import check_compatible
from stylebridge.errors import CheckpointError, ImageError, StylebridgeError
from stylebridge.registry import hookimpl
from stylebridge.registry.resolve import load_encoder

if TYPE_CHECKING:
    import torch
    from rich.console import Console
    from torch import Tensor

    from stylebridge.core.checkpoint import CheckpointHeader
    from stylebridge.core.interfaces import Inversion

KIND = "inversion"
IMAGE_SUFFIX = "_inversion.png"
LATENTS_SUFFIX = "_inversion.safetensors"
GRID_TILE = 256  # largest tile edge in grid.png


# ---------------------------------------------------------------------------------------------
# Inversion files


def save_inversion(path: str | Path, inversion: Inversion, *, encoder: str, encoder_spec: str,
                   generator: str | Path, extra: Mapping[str, Any] | None = None) -> Path:
    """Write one inversion (batch 1) as a stylebridge checkpoint, atomically.

    Tensors: ``w_plus`` ``[1, n_latent, style_dim]``, ``feature_<K>`` ``[1, C, H, W]``
    per injected activation K, ``extra_<name>`` per encoder extra.  Header:
    ``kind="inversion"``, ``plugin=encoder``, config ``{"feature_mode", "encoder"
    (the spec text), "generator" (its checkpoint path)}``.
    """
    from stylebridge.core.checkpoint import save_checkpoint

    if inversion.batch_size != 1:
        raise ValueError(f"save_inversion writes one inversion, got a batch of {inversion.batch_size}")
    tensors = {"w_plus": inversion.w_plus}
    tensors.update({f"feature_{k}": v for k, v in sorted(inversion.features.items())})
    tensors.update({f"extra_{k}": v for k, v in sorted(inversion.extras.items())})
    config = {"feature_mode": inversion.feature_mode, "encoder": str(encoder_spec),
              "generator": str(generator)}
    return save_checkpoint(path, tensors, kind=KIND, plugin=encoder, config=config,
                           extra=dict(extra or {}))


def load_inversion(path: str | Path, *, device: str | torch.device = "cpu",
                   ) -> tuple[Inversion, CheckpointHeader]:
    """Read a file written by :func:`save_inversion` → (:class:`Inversion`, header)."""
    from stylebridge.core.checkpoint import load_checkpoint
    from stylebridge.core.interfaces import Inversion

    header, tensors = load_checkpoint(path, kind=KIND, device=device)
    if "w_plus" not in tensors:
        raise CheckpointError("inversion file has no 'w_plus' tensor", path=path)
    mode = header.config.get("feature_mode", "replace")
    if mode not in ("replace", "shift"):
        raise CheckpointError(f"inversion file has an unknown feature_mode {mode!r}", path=path)
    features: dict[int, Tensor] = {}
    extras: dict[str, Tensor] = {}
    for name, tensor in tensors.items():
        if name == "w_plus":
            continue
        if name.startswith("feature_") and name.removeprefix("feature_").isdigit():
            features[int(name.removeprefix("feature_"))] = tensor
        elif name.startswith("extra_"):
            extras[name.removeprefix("extra_")] = tensor
        else:
            raise CheckpointError(f"inversion file has an unexpected tensor {name!r}", path=path)
    try:
        inversion = Inversion(w_plus=tensors["w_plus"], features=features, feature_mode=mode,
                              extras=extras)
    except ValueError as exc:
        raise CheckpointError(f"inversion file is inconsistent: {exc}", path=path) from None
    return inversion, header


# ---------------------------------------------------------------------------------------------
# Helpers


@dataclass
class _Item:
    path: Path
    enc_input: Tensor   # [3, P, P] in [0, 1]
    tile: Tensor        # [3, T, T] in [0, 1] (grid tile of what the encoder saw)


# ---------------------------------------------------------------------------------------------
# Command


class InvertCommand(Command):
    """Invert face photos with an encoder and render them with a StyleGAN2 generator."""

    name = "invert"
    help = "encode face photos with an encoder and render them with a StyleGAN2 generator"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from stylebridge.cli.common import add_images_argument
        from stylebridge.cli.options import add_photo_arguments

        add_images_argument(parser)
        parser.add_argument("--out", type=Path, required=True, metavar="DIR")
        parser.add_argument("--save-latents", action="store_true",
                            help="also write <stem>_inversion.safetensors (w+ and features)")
        add_photo_arguments(parser)

    def run(self, args: argparse.Namespace, console: Console) -> int:
        import torch
        from rich.markup import escape
        from rich.progress import Progress

        from stylebridge.cli.options import check_photo_arguments, print_random_notices
        from stylebridge.core.batch import BatchReport, iter_images, require_inputs
        from stylebridge.core.device import resolve_device
        from stylebridge.core.images import save_png
        from stylebridge.pipelines.adapt import load_generator_arg, random_parts
        from stylebridge.pipelines.align import align_face, output_names
        from stylebridge.registry.spec import parse_plugin_spec

        check_photo_arguments(args)
        device = resolve_device(args.device)
        spec = parse_plugin_spec(args.encoder, what="encoder")
        paths = require_inputs(args.images)
        gen, gen_random, g_path = load_generator_arg(args.generator, device)
        encoder, enc_random = load_encoder(args.encoder, device)
        encoder.bind_generator(gen)
        enc_name = getattr(encoder, "name", "") or spec.name or "encoder"
        random_inputs = {"encoder": enc_random, "generator": gen_random}
        parts = random_parts(random_inputs)
        random = bool(parts)
        print_random_notices(console, random_inputs, encoder=enc_name, generator=g_path)
        prep = getattr(encoder, "preprocessing", None)
        enc_size = int(getattr(prep, "size", 0) or (args.align_size if args.align else gen.size))
        tile = min(gen.size, GRID_TILE)

        names, clashes = output_names(paths, "")
        report = BatchReport()
        for p, reason in clashes.items():
            report.skip(p, reason)
        todo = [p for p in paths if p in names]
        # the output folder is made when the first batch has passed the encoder/generator
        # check, so that an early error leaves no empty folder behind
        grid_rows: list[tuple[Tensor, Tensor]] = []
        pending: list[_Item] = []

        def flush() -> None:
            if not pending:
                return
            batch = torch.stack([it.enc_input for it in pending]).to(device)
            with torch.no_grad():
                inversion = encoder.encode(batch)
                check_compatible(inversion, gen, f"encoder {enc_name!r}")
                if inversion.batch_size != len(pending):
                    raise StylebridgeError(f"encoder {enc_name!r} returned {inversion.batch_size} "
                                           f"inversions for {len(pending)} images")
                inversion = inversion.detach()
                images = synth(inversion)
            args.out.mkdir(parents=True, exist_ok=True)
            for i, item in enumerate(pending):
                stem = names[item.path]
                out01 = images[i]
                save_png(args.out / f"{stem}{IMAGE_SUFFIX}", out01)
                if args.save_latents:
                    single = _select(inversion, i)
                    save_inversion(args.out / f"{stem}{LATENTS_SUFFIX}", single, encoder=enc_name,
                                   encoder_spec=spec.text, generator=g_path,
                                   extra={"source": str(item.path), "aligned": bool(args.align),
                                          "align_size": args.align_size if args.align else None,
                                          "random_weights": random})
                grid_rows.append((item.tile, resize_square(out01, tile)))
                report.ok(item.path)
            pending.clear()

        def synth(inversion: Inversion) -> Tensor:
            from stylebridge.core.images import from_generator_range
            from stylebridge.core.synthesis import synthesize

            return from_generator_range(synthesize(gen, inversion)).cpu()

        with Progress(console=console, transient=True) as progress:
            task = progress.add_task(f"inverting with {escape(enc_name)}", total=len(todo))
            for path, image in iter_images(todo, report):
                if args.align:
                    try:
                        image = align_face(image, args.align_size, path=path).to_tensor()
                    except ImageError as exc:  # NoFaceError included
                        report.skip(path, str(exc).removeprefix(f"{path}: "))
                        image = None
                if image is not None:
                    pending.append(_Item(path, resize_square(image, enc_size),
                                         resize_square(image, tile)))
                    if len(pending) >= args.batch:
                        flush()
                progress.update(task, completed=len(report.done) + len(report.skipped)
                                + len(pending) - len(clashes))
            flush()
            progress.update(task, completed=len(todo))

        if grid_rows:
            labels = ["input (aligned)" if args.align else "input",
                      f"inversion: {enc_name}" + (f" [{RANDOM_NOTICE}]" if random else "")]
            # the column label is cut to the tile width: the red footer carries the notice
            notice = (f"{RANDOM_NOTICE}: not a trained model ({', '.join(parts)})"
                      if random else None)
            save_png(args.out / "grid.png", labelled_grid(grid_rows, labels, notice=notice))
            console.print(f"[green]wrote[/green] {len(report.done)} inversion(s) and grid.png to "
                          f"{escape(str(args.out))}")
        report.print(console)
        return report.exit_code


def _select(inversion: Inversion, i: int) -> Inversion:
    from stylebridge.core.interfaces import Inversion

    return Inversion(w_plus=inversion.w_plus[i:i + 1],
                     features={k: v[i:i + 1] for k, v in inversion.features.items()},
                     feature_mode=inversion.feature_mode,
                     extras={k: v[i:i + 1] if v.ndim and v.shape[0] == inversion.batch_size else v
                             for k, v in inversion.extras.items()})


@hookimpl
def register_commands(register: Any) -> None:
    register(InvertCommand())


__all__ = ["InvertCommand", "check_compatible", "load_inversion", "save_inversion"]
