"""``stylebridge demo``: the whole toolkit on one real photo, in one command.

Stages: load a photo (``--image``, or scikit-image's astronaut) → FFHQ-align it with
dlib's real 68-landmark model → invert it with two encoders (e4e; FSE in features and
generator-shift modes) → adapt to two domains → the alpha-calibrated variant → FeatureShift
→ metrics (MSE, PSNR, SSIM and dlib's real face-recognition ID similarity between the
aligned photo and each inversion) → a labelled grid and a metrics table.

With the official weights installed (``stylebridge weights``: a StyleGAN2 FFHQ generator,
e4e and FSE) the demo uses them.  Otherwise it builds a small **random-weight** preset and
says so in the terminal, in every label of the grid and in ``demo.json``: it then shows
that every stage runs, not what trained models produce.  Domains are random StyleSpace
offsets unless ``--method DOMAIN.safetensors`` names real ones.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from torch import Tensor

from stylebridge.cli.base import Command
from stylebridge.core.checkpoint import RANDOM_NOTICE
from stylebridge.core.interfaces import DomainMethod, Encoder
from stylebridge.errors import StylebridgeError

RANDOM_WEIGHTS_NOTICE = f"{RANDOM_NOTICE} - demo of the code paths, not a trained model"
FEATURESHIFT_ROW = "FeatureShift on e4e"
UNTRAINED_FEATURESHIFT = "untrained FeatureShift"
ALIGN_SIZE = 256


@dataclass
class DemoModels:
    """Everything the demo runs; ``random`` says whether the weights are untrained."""

    generator: Any
    e4e: Encoder
    fse: Encoder
    domains: dict[str, DomainMethod]
    random: bool
    sources: dict[str, str] = field(default_factory=dict)


def _tiny_preset(seed: int) -> DemoModels:
    """A 64 px generator and matching tiny encoders with random weights (labelled as such)."""
    from stylebridge.core.stylegan2 import Generator
    from stylebridge.plugins.encoders.fse import FSEEncoder
    from stylebridge.plugins.encoders.psp import E4EEncoder

    torch.manual_seed(seed)
    channels = {4: 64, 8: 64, 16: 48, 32: 32, 64: 24}
    gen = Generator(size=64, style_dim=64, n_mlp=4, channels=channels).eval()
    with torch.no_grad():
        gen.latent_avg.copy_(gen.mean_latent(1024, seed=seed))
    e4e = E4EEncoder(n_styles=gen.n_latent, style_dim=gen.style_dim, input_size=64,
                     widths=(16, 24, 32, 48), units=(1, 1, 1, 1)).eval()
    layer = 5  # second 16 px conv: the FSE layer's role in the tiny generator
    c, res, _ = gen.feature_shapes()[layer]
    fse_input = 128  # the iresnet's third stage runs at input / 8 = 16 px = activation 5
    fse = FSEEncoder("features", layer, n_latent=gen.n_latent, style_dim=gen.style_dim, width=8,
                     layers=(1, 1, 1, 1), feature_channels=c, feature_stride=fse_input // 8 // res,
                     input_size=fse_input, resolution=fse_input).eval()
    with torch.no_grad():  # start both encoders at the generator's average w, as upstream does
        e4e.latent_avg.copy_(gen.latent_avg.expand_as(e4e.latent_avg))
        fse.latent_avg.copy_(gen.latent_avg.expand_as(fse.latent_avg))
        # untrained, FSE's feature is far larger than the generator's activation and saturates
        # every image; scale its last BatchNorm so F has the activation's spread, as training would
        probe = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(seed))
        feat = fse.encode(probe).features[layer]
        ref, _ = gen.features_upto(gen.styles(gen.make_wplus(torch.randn(4, gen.style_dim))),
                                   layer, randomize_noise=False)
        last_bn = fse.content_layer[-1]
        last_bn.weight.mul_(ref.std() / feat.std())
        last_bn.bias.zero_()
    return DemoModels(gen, e4e, fse, {}, random=True,
                      sources={"generator": "random 64 px preset", "e4e": "random tiny e4e",
                               "fse": "random tiny FSE"})


def _official(device: torch.device) -> DemoModels | None:
    """The installed official weights, when generator, e4e and FSE are all there."""
    from stylebridge.core.checkpoint import is_random_weights, read_header
    from stylebridge.core.stylegan2.checkpoint import load_stylegan2
    from stylebridge.registry.resolve import load_plugin
    from stylebridge.registry.weights import WeightsManager

    manager = WeightsManager()
    g_path = manager.resolve("generator", "stylegan2")
    e_path = manager.resolve("encoder", "e4e")
    f_path = manager.resolve("encoder", "fse")
    if g_path is None or e_path is None or f_path is None:
        return None
    gen = load_stylegan2(g_path, device=device).generator
    e4e = load_plugin("encoder", f"e4e:{e_path}", device=device)
    fse = load_plugin("encoder", f"fse:{f_path}:mode=features", device=device)
    # a file registered in place of the official one may still be marked as random weights
    random = any(is_random_weights(read_header(p).extra) for p in (g_path, e_path, f_path))
    return DemoModels(gen, e4e, fse, {}, random=random,
                      sources={"generator": str(g_path), "e4e": str(e_path), "fse": str(f_path)})


def _random_domains(gen: Any, seed: int) -> dict[str, DomainMethod]:
    """Two StyleSpace domains with random offsets on the coarse and the colour layers."""
    from stylebridge.plugins.domains.styledomain import StyleSpace

    g = torch.Generator().manual_seed(seed + 1)
    domains: dict[str, DomainMethod] = {}
    for name, layers in (("random domain A", (0, 2, 3)), ("random domain B", (-3, -2, -1))):
        method = StyleSpace(size=gen.size, style_dim=gen.style_dim,
                            channels=gen.cfg.channels).to(gen.latent_avg.device)
        keys = list(method.offsets)
        with torch.no_grad():
            for k in (keys[i] for i in layers):
                off = method.offsets[k]
                off.copy_(torch.randn(off.shape, generator=g) * 1.5)
        method.label = name
        domains[name] = method.eval()
    return domains


def _demo_image(path: Path | None) -> tuple[Tensor, str]:
    from stylebridge.core.images import load_image

    if path is not None:
        return load_image(path), str(path)
    from skimage import data as skdata

    arr = skdata.astronaut()
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255, "skimage.data.astronaut()"


DOMAIN_TABLE_TITLE = "domain outputs, mean over the domains"


class DemoCommand(Command):
    name = "demo"
    help = "run the toolkit end to end on a real photo and write a labelled grid + metrics"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--out", type=Path, default=Path("stylebridge-demo"), metavar="DIR",
                            help="output folder (default: ./stylebridge-demo)")
        parser.add_argument("--image", type=Path, default=None, metavar="PHOTO",
                            help="a face photo (default: scikit-image's astronaut)")
        parser.add_argument("--method", action="append", default=[], metavar="DOMAIN.safetensors",
                            help="real domain checkpoints to use instead of random offsets")
        from stylebridge.cli.common import add_device_argument

        parser.add_argument("--seed", type=int, default=0,
                            help="seed of the random-weight preset, domains and samples "
                                 "(default 0)")
        add_device_argument(parser)

    def run(self, args: argparse.Namespace, console: Console) -> int:
        from rich.markup import escape

        from stylebridge.core.device import resolve_device
        from stylebridge.core.images import labelled_grid, save_png
        from stylebridge.core.io import write_json
        from stylebridge.pipelines.adapt import Adapter, check_domains, load_domains
        from stylebridge.pipelines.align import align_face
        from stylebridge.plugins.calibrators.alpha import (
            AlphaCalibrator,
            encoder_style_means,
            mapping_style_means,
        )
        from stylebridge.plugins.renderers.featureshift import FeatureShift

        start = time.perf_counter()
        device = resolve_device(args.device)
        stages: list[tuple[str, str]] = []

        # everything is loaded and checked before the photo is aligned or a file written
        image, source = _demo_image(args.image)
        domains, domain_random = load_domains(args.method, device)
        models = _official(device)
        if models is None:
            console.print(f"[bold yellow]{RANDOM_WEIGHTS_NOTICE}[/bold yellow]")
            console.print("Official weights are not installed (see `stylebridge weights list`); "
                          "using a 64 px random-weight preset.")
            models = _tiny_preset(args.seed)
        elif models.random:
            console.print(f"[bold yellow]{RANDOM_WEIGHTS_NOTICE}[/bold yellow]")
            console.print("The installed weights are marked as random weights.")
        gen = models.generator.to(device)
        e4e, fse = models.e4e.to(device), models.fse.to(device)
        if domains:
            check_domains(domains.values(), gen)
        else:
            domains = _random_domains(gen, args.seed)
            domain_random = dict.fromkeys(domains, True)  # random offsets: no trained domain
        fse_shift = type(fse)(**{**fse.config(), "mode": "shift"}).to(device).eval()
        fse_shift.load_state_dict(fse.state_dict())
        tag = f" [{RANDOM_NOTICE}]" if models.random else ""

        face = align_face(image, size=ALIGN_SIZE, path=args.image)
        aligned = torch.from_numpy(np.asarray(face.image, dtype=np.uint8).copy())
        aligned = aligned.permute(2, 0, 1).float() / 255
        args.out.mkdir(parents=True, exist_ok=True)
        save_png(args.out / "aligned.png", aligned)
        stages.append(("align (dlib 68 landmarks, FFHQ procedure)", str(args.out / "aligned.png")))

        # alpha-rescaling: encoder vs mapping-network style means (thesis); the calibration
        # images here are 16 generator samples (the thesis uses 3000 FFHQ photos)
        with torch.no_grad():
            z = torch.randn(16, gen.style_dim, generator=torch.Generator().manual_seed(args.seed))
            samples = (gen([z.to(device)], randomize_noise=False) + 1) / 2
            source_means = mapping_style_means(gen, 1024, seed=args.seed)
            enc_means, _ = encoder_style_means(e4e, gen, [samples.clamp(0, 1)])
        alpha = AlphaCalibrator.from_style_means(source_means, enc_means)
        a = alpha.alpha
        stages.append(("alpha calibration (e4e)", f"{a.numel()} layers, alpha "
                                                  f"{float(a.min()):.2f}..{float(a.max()):.2f}"))

        k = fse.layer
        c_k = gen.feature_shapes()[k][0]
        torch.manual_seed(args.seed)
        # no FeatureShift weights are installed: the demo's FeatureShift is always a fresh,
        # untrained network, so its row says so even with the official generator and encoders
        featureshift = FeatureShift(feature_channels=c_k, hidden=max(8, c_k * 3 // 2),
                                    layer=k, residual=True).to(device).eval()
        fs_random = True
        fs_row = (f"{FEATURESHIFT_ROW} ({RANDOM_NOTICE}: {UNTRAINED_FEATURESHIFT})" if fs_random
                  else FEATURESHIFT_ROW)
        variants: list[tuple[str, Adapter]] = [
            ("e4e", Adapter(e4e, gen, domains)),
            ("e4e + alpha", Adapter(e4e, gen, domains, calibrator=alpha)),
            ("FSE features", Adapter(fse, gen, domains)),
            ("FSE shift", Adapter(fse_shift, gen, domains)),
            ("FSE shift, no offsets on layer 0", Adapter(fse_shift, gen, domains, skip_layers=[0])),
            (fs_row, Adapter(fse, gen, domains, featureshift=featureshift, guide=e4e)),
        ]
        random_inputs: dict[str, Any] = {
            "generator": models.random, "e4e": models.random, "fse": models.random,
            "featureshift": fs_random, "domains": domain_random}
        random_rows = [label for label, _ in variants
                       if models.random or (fs_random and label == fs_row)]
        random = models.random or fs_random or any(domain_random.values())
        photo = aligned.unsqueeze(0).to(device)
        target = torch.nn.functional.interpolate(photo, size=(gen.size, gen.size), mode="area")
        metrics = self._metrics()
        rows, table_rows, domain_rows = [], [], []
        for label, adapter in variants:
            outputs = adapter.run(photo)
            rows.append([target[0].cpu(), *(outputs[name][0].cpu() for name in outputs)])
            values: dict[str, float] = {}
            for mname, metric in metrics.items():
                metric.reset()
                metric.update(outputs["inversion"], target)
                values.update({f"{mname}:{key}" if key != mname else mname: float(v)
                               for key, v in metric.compute().items()})
            table_rows.append((label, values))
            domain_rows.append((label, self._domain_metrics(metrics, outputs, target, domains)))
            stages.append((f"invert + adapt: {label}", f"{len(outputs) - 1} domains"))
        labels = ["aligned photo", "inversion", *domains]
        columns = [labels[0], f"inversion{tag}",
                   *(f"{name}{tag}" if models.random or not domain_random[name]
                     else f"{name} [{RANDOM_NOTICE}]" for name in domains)]
        if models.random:
            notice: str | None = RANDOM_WEIGHTS_NOTICE
        elif random:
            parts = [f"row '{FEATURESHIFT_ROW}' uses an {UNTRAINED_FEATURESHIFT}"] * fs_random
            if not args.method:
                parts += ["the domains are random StyleSpace offsets"]
            else:
                parts += [f"domain {name} has random weights"
                          for name, rnd in domain_random.items() if rnd]
            notice = f"{RANDOM_NOTICE}: {'; '.join(parts)} - not a trained model"
        else:
            notice = None
        grid = labelled_grid(rows, columns, notice=notice,
                             row_labels=[label for label, _ in variants], min_tile=128,
                             label_lines=2)
        save_png(args.out / "demo_grid.png", grid)
        self._print(console, table_rows, models.random)
        self._print(console, domain_rows, models.random, title=DOMAIN_TABLE_TITLE)
        elapsed = time.perf_counter() - start
        write_json(args.out / "demo.json", {
            "random_weights": random, "notice": notice,
            "random_inputs": random_inputs, "random_rows": random_rows,
            "photo": source, "models": models.sources, "domains": list(domains),
            "rows": [label for label, _ in variants], "columns": labels,
            "metrics_photo_vs_inversion": {label: values for label, values in table_rows},
            "metrics_domains": {label: values for label, values in domain_rows},
            "metrics_domains_description": DOMAIN_TABLE_TITLE,
            "stages": [{"stage": s, "output": o} for s, o in stages],
            "seconds": round(elapsed, 2),
        })
        console.print(f"wrote {escape(str(args.out / 'demo_grid.png'))} and demo.json in "
                      f"{elapsed:.1f}s")
        if notice is not None:
            console.print(f"[bold yellow]{escape(notice)}[/bold yellow]")
        return 0

    @staticmethod
    def _metrics() -> dict[str, Any]:
        from stylebridge.registry import get_registry

        registry = get_registry()
        out = {name: registry.create("metric", name) for name in ("mse", "psnr", "ssim")}
        with contextlib.suppress(StylebridgeError):  # dlib's models missing: skip ID only
            out["id"] = registry.create("metric", "id", backend="dlib")
        return out

    @staticmethod
    def _domain_metrics(metrics: dict[str, Any], outputs: dict[str, Tensor], target: Tensor,
                        domains: dict[str, Any]) -> dict[str, float]:
        """Means over the domains: how much each domain changed the inversion (MSE) and how
        much of the photo's identity survived (ID similarity, when dlib's models exist)."""
        values: dict[str, float] = {}
        pairs = {"mse": ("inversion", "change (mse vs inversion)"),
                 "id": ("photo", "identity (id vs photo)")}
        for mname, (against, column) in pairs.items():
            metric = metrics.get(mname)
            if metric is None or not domains:
                continue
            metric.reset()
            for name in domains:
                metric.update(outputs[name], target if against == "photo" else outputs["inversion"])
            values[column] = float(metric.compute()[mname])
        return values

    @staticmethod
    def _print(console: Console, rows: list[tuple[str, dict[str, float]]], random: bool,
               title: str = "photo vs inversion") -> None:
        title += " (RANDOM WEIGHTS)" if random else ""
        table = Table(title=title)
        table.add_column("variant")
        keys = sorted({k for _, values in rows for k in values})
        for key in keys:
            table.add_column(key, justify="right")
        for label, values in rows:
            table.add_row(label, *(f"{values[k]:.4g}" if k in values else "" for k in keys))
        console.print(table)
