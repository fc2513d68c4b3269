"""FeatureShift training throughput (steps/s) on a tiny configuration.

Builds a tiny dataset in a temporary folder (a small random-weight StyleGAN2, random
stand-in encoders, StyleSpace domains with random offsets: nothing here is a trained
model, only the code paths are timed), then times training steps of three variants
side by side, interleaved on every repeat (these machines are noisy), and reports
medians and ratios.  Writes JSON.

    python benchmarks/bench_featureshift.py                    # CPU, 32 px, batch 4
    python benchmarks/bench_featureshift.py --size 64 --batch 8 --threads 1 --out res.json
    python benchmarks/bench_featureshift.py --device cuda --size 256 --channels 128

Variants:
* ``inversion``: the pre-training phase (inversion loss only, Δ = 0);
* ``joint-stored``: inversion + domain loss with Δ and the e4e domain targets read from
  the dataset (``build-dataset`` default);
* ``joint-on-the-fly``: the same with Δ and targets computed from the stored guiding
  latents each step (``build-dataset --no-per-domain``): two generator passes to
  layer K and one domain render more per step, in exchange for a much smaller dataset.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from stylebridge.core.interfaces import Encoder, Inversion, Preprocessing
from stylebridge.core.stylegan2 import Generator
from stylebridge.core.stylegan2.checkpoint import save_stylegan2
from stylebridge.plugins import domains, featureshift, losses_recon
from stylebridge.plugins._featureshift_data import build_dataset
from stylebridge.registry import Registry

LAYER = 5  # FSE's activation: the second 16×16 conv


class _StandIn(Encoder):
    """Random stand-in encoder: w+ (and, with ``feature=True``, a layer-5 feature)."""

    name = "bench-stand-in"

    def __init__(self, gen: Generator, feature: bool, seed: int) -> None:
        super().__init__()
        self.preprocessing = Preprocessing(size=16)
        self.n_latent, self.style_dim = gen.n_latent, gen.style_dim
        self.feature_shape = gen.feature_shapes()[LAYER] if feature else None
        g = torch.Generator().manual_seed(seed)
        self.proj = nn.Parameter(torch.randn(48, self.n_latent * self.style_dim, generator=g) * 0.3)
        c = self.feature_shape[0] if self.feature_shape else 1
        self.feat = nn.Parameter(torch.randn(c, 3, 1, 1, generator=g) * 0.3)

    def encode(self, images: Tensor) -> Inversion:
        x = self.preprocessing(images)
        w = (F.adaptive_avg_pool2d(x, 4).flatten(1) @ self.proj).view(-1, self.n_latent,
                                                                     self.style_dim)
        if self.feature_shape is None:
            return Inversion(w_plus=w)
        feat = F.conv2d(F.adaptive_avg_pool2d(x, self.feature_shape[1:]), self.feat)
        return Inversion(w_plus=w, features={LAYER: feat})


def _setup(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(0)
    ch = args.channels
    gen = Generator(size=args.size, style_dim=args.style_dim, n_mlp=2,
                    channels={r: (ch if r <= 16 else max(ch // 2, 8)) for r in
                              (4, 8, 16, 32, 64, 128, 256, 512, 1024)})
    gen_path = root / "gen.safetensors"
    save_stylegan2(gen_path, gen)
    (root / "images").mkdir()
    rng = np.random.default_rng(0)
    images = []
    for i in range(args.images):
        path = root / "images" / f"{i:04d}.png"
        Image.fromarray(rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)).save(path)
        images.append(path)
    methods = []
    for d in range(args.domains):
        method = domains.StyleSpace(size=args.size, style_dim=args.style_dim,
                                    channels=gen.cfg.channels)
        g = torch.Generator().manual_seed(100 + d)
        with torch.no_grad():
            for p in method.offsets.values():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        methods.append((f"domain{d}", method))
    kw = dict(generator=gen, encoder=_StandIn(gen, True, 1), guide=_StandIn(gen, False, 2),
              domains=methods, image_size=min(args.size, 256), shard_size=64, batch_size=8)
    build_dataset(images, root / "stored", per_domain=True, **kw)
    build_dataset(images, root / "fly", per_domain=False, **kw)
    return {"gen": gen_path, "stored": root / "stored", "fly": root / "fly"}


def _trainer(paths: dict[str, Any], data: str, out: Path, pretrain: int,
             args: argparse.Namespace) -> featureshift.FeatureShiftTrainer:
    registry = Registry(builtins=False, entry_points=False,
                        extra_plugins=[domains, losses_recon, featureshift])
    cfg = featureshift.TrainConfig(
        data=str(paths[data]), generator=str(paths["gen"]), out=str(out),
        losses=["mse:1.0"], domain_inversion_losses=[], pretrain_inversion_steps=pretrain,
        steps=10**9, batch_size=args.batch, checkpoint_every=0, log_every=0, sample_every=0,
        device=args.device, n_blocks=6, amp=args.amp)
    trainer = featureshift.FeatureShiftTrainer(cfg, registry=registry)
    trainer.setup()
    return trainer


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32, help="generator resolution (default 32)")
    parser.add_argument("--channels", type=int, default=32, help="generator width up to 16 px")
    parser.add_argument("--style-dim", type=int, default=32)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--domains", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: keep)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", default="auto", choices=("auto", "off", "bf16", "fp16"),
                        help="mixed precision on CUDA (auto = bf16 where supported)")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="bench-featureshift-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        paths = _setup(root, args)
        build_s = time.perf_counter() - t0
        variants = {
            "inversion": _trainer(paths, "stored", root / "r1", 10**9, args),
            "joint-stored": _trainer(paths, "stored", root / "r2", 0, args),
            "joint-on-the-fly": _trainer(paths, "fly", root / "r3", 0, args),
        }
        device = next(iter(variants.values())).device
        for trainer in variants.values():
            for _ in range(args.warmup):
                trainer._train_step()
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.repeats):
            for name, trainer in variants.items():
                _sync(device)
                start = time.perf_counter()
                for _ in range(args.steps):
                    trainer._train_step()
                _sync(device)
                times[name].append(args.steps / (time.perf_counter() - start))

    med = {name: statistics.median(v) for name, v in times.items()}
    result = {
        "benchmark": "featureshift-train-steps",
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "dataset_build_s": round(build_s, 3),
        "steps_per_s_median": {k: round(v, 3) for k, v in med.items()},
        "steps_per_s_all": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "ratios": {
            "joint-stored / inversion": round(med["joint-stored"] / med["inversion"], 3),
            "joint-on-the-fly / joint-stored": round(med["joint-on-the-fly"]
                                                     / med["joint-stored"], 3),
        },
        "note": "random-weight stand-ins: throughput of the code paths, not of trained models",
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
