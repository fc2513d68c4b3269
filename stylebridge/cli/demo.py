"""``stylebridge demo``: show the toolkit working end to end on this machine.

Until official weights are in the cache (see the weights manager, a later
milestone) the demo builds a small *random-weight* StyleGAN2 and says so on
screen and in the picture's caption: it exercises the code paths (mapping,
truncation, style mixing, a StyleSpace offset, feature injection at layer K,
the converter and checkpoint format), not the quality of a trained model.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from stylebridge.core.interfaces import Command

RANDOM_WEIGHTS_NOTICE = "RANDOM WEIGHTS - demo of the code paths, not a trained model"


class DemoCommand(Command):
    name = "demo"
    help = "run the toolkit end to end on a small preset and write a labelled grid"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--out", type=Path, default=Path("stylebridge-demo"), metavar="DIR",
                            help="output folder (default: ./stylebridge-demo)")
        parser.add_argument("--size", type=int, default=128, choices=(64, 128, 256),
                            help="image size of the random-weight preset (default 128)")
        parser.add_argument("--seed", type=int, default=0)

    def run(self, args: argparse.Namespace, console: Console) -> int:
        import torch

        from stylebridge.core.images import caption, from_generator_range, make_grid, save_png
        from stylebridge.core.io import write_json
        from stylebridge.core.stylegan2 import Generator
        from stylebridge.core.stylegan2.checkpoint import load_stylegan2, save_stylegan2

        start = time.perf_counter()
        console.print(f"[bold yellow]{RANDOM_WEIGHTS_NOTICE}[/bold yellow]")
        console.print("No official StyleGAN2 weights are installed; building a "
                      f"{args.size}px preset with random weights (seed {args.seed}).")
        torch.manual_seed(args.seed)
        gen = Generator(size=args.size, style_dim=128, n_mlp=4,
                        channels={r: 128 if r <= 32 else 64 for r in (4, 8, 16, 32, 64, 128, 256)})
        with torch.no_grad():
            gen.latent_avg.copy_(gen.mean_latent(1024, seed=args.seed))
        args.out.mkdir(parents=True, exist_ok=True)
        ckpt = save_stylegan2(args.out / "generator.safetensors", gen,
                              extra={"notes": [RANDOM_WEIGHTS_NOTICE]})
        gen = load_stylegan2(ckpt).generator  # exercise our own format
        g = torch.Generator().manual_seed(args.seed)
        z = torch.randn(2, gen.style_dim, generator=g)
        rows: list[tuple[str, Any]] = []
        with torch.no_grad():
            w_plus = gen.make_wplus([z])
            styles = gen.styles(w_plus)
            rows.append(("sample", gen.synthesis(styles, randomize_noise=False)))
            rows.append(("truncation 0.5", gen([z], truncation=0.5, randomize_noise=False)))
            z2 = torch.randn(2, gen.style_dim, generator=g)
            rows.append(("style mixing at row 4",
                         gen([z, z2], inject_index=4, randomize_noise=False)))
            offset = [s.clone() for s in styles]
            for i in gen.conv_style_indices()[:3]:
                offset[i] = offset[i] + 1.0 * torch.randn(offset[i].shape[1], generator=g)
            rows.append(("StyleSpace offset, 3 coarse layers",
                         gen.synthesis(offset, randomize_noise=False)))
            k = 5
            feat, _ = gen.features_upto(styles, k, randomize_noise=False)
            rows.append((f"feature at K={k} replaced by a blend",
                         gen.synthesis(styles, randomize_noise=False,
                                       features={k: feat.flip(0)}, feature_scale=0.5)))
        tiles = []
        for label, images in rows:
            for i, img in enumerate(from_generator_range(images)):
                tiles.append(caption(img, f"{label} #{i} [random weights]"))
        grid = make_grid(tiles, ncol=2)
        save_png(args.out / "demo_grid.png", grid)
        elapsed = time.perf_counter() - start
        table = Table(title="stylebridge demo (random weights)")
        table.add_column("stage")
        table.add_column("output")
        table.add_row("generator checkpoint", str(ckpt))
        for label, _ in rows:
            table.add_row(label, "2 tiles")
        table.add_row("grid", str(args.out / "demo_grid.png"))
        console.print(table)
        write_json(args.out / "demo.json", {
            "random_weights": True, "notice": RANDOM_WEIGHTS_NOTICE, "size": args.size,
            "stages": [label for label, _ in rows], "seconds": round(elapsed, 2),
        })
        console.print(f"done in {elapsed:.1f}s; [bold yellow]{RANDOM_WEIGHTS_NOTICE}[/bold yellow]")
        return 0
