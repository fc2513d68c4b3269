"""FeatureShift training throughput (steps/s): phases and precisions side by side.

Builds a dataset (a random-weight StyleGAN2, random stand-in encoders, StyleSpace domains
with random offsets: nothing here is a trained model, only the code paths are timed), then
times training steps of every (variant, precision) pair, interleaved on every repeat (these
machines are noisy), and reports medians and ratios.  Writes JSON.

    python benchmarks/bench_featureshift.py                         # CPU, tiny preset
    python benchmarks/bench_featureshift.py --threads 1 --out res.json
    python benchmarks/bench_featureshift.py --preset full --device cuda \\
        --precisions fp32,amp --losses thesis --data /tmp/fs-full     # the thesis's size

Presets: ``tiny`` (32 px generator, 32 channels, batch 4) and ``full`` (the thesis's
size: 1024 px config-f generator with 512-d styles and 8 mapping layers, FSE's
512×16×16 feature at layer K = 5, FeatureShift 1024 → 768 → 512, 256 px training
images, batch 8).  Any preset value can be overridden (``--size``, ``--batch``, ...).

Variants (``--variants``):
* ``inversion``: the pre-training phase (inversion loss only, Δ = 0);
* ``joint-stored``: inversion + domain loss with Δ and the e4e domain targets read from
  the dataset (``build-dataset`` default);
* ``joint-on-the-fly``: the same with Δ and targets computed from the stored guiding
  latents each step (``build-dataset --no-per-domain``): two generator passes to
  layer K and one domain render more per step, in exchange for a much smaller dataset.

Precisions (``--precisions``): ``fp32`` and, on CUDA, ``amp`` (bf16 where supported,
else fp16), ``bf16`` or ``fp16`` — the trainer's ``--amp``.

Losses (``--losses``): ``mse`` (MSE 1.0 only: the generator and FeatureShift dominate)
or ``thesis`` (MSE 1.0 + LPIPS 0.8 at 256 and 128 px + ID 0.1, with full-size AlexNet and
IR-SE50 networks on random weights written to the data folder).

``--data DIR`` keeps the generated datasets in DIR and reuses them on the next run (the
dataset builder resumes), so a GPU session spends its minutes on training steps.

More side-by-side axes: ``--ops native,auto,cuda`` (the custom-op backend each step runs
with; ``cuda`` builds the extension first) and ``--layouts nchw,nhwc`` (the generator's
activation layout).  Each (variant, precision) has one trainer, stepped with every setting
in turn.  ``--profile`` adds one profiled step per entry: wall time, the summed device-kernel
time (``device_busy_ms``; on the CPU the aten ops' own time), the kernel count and the top
kernels and aten ops, which says where a step's time goes.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from _timing import interleaved, report, sync
from PIL import Image
from torch import Tensor, nn

from stylebridge.core.checkpoint import save_checkpoint
from stylebridge.core.device import resolve_device
from stylebridge.core.interfaces import Encoder, Inversion, Preprocessing
from stylebridge.core.ops import fused_act as fused_act_module
from stylebridge.core.ops import (
    get_backend,
    set_backend,
    set_fused_epilogue,
    set_upfirdn2d_tiled,
)
from stylebridge.core.ops.fused_act import autocast_like
from stylebridge.core.stylegan2 import Generator
from stylebridge.core.stylegan2 import layers as sg2_layers
from stylebridge.core.stylegan2.checkpoint import save_stylegan2
from stylebridge.pipelines.featureshift import trainer as featureshift
from stylebridge.pipelines.featureshift.dataset import build_dataset
from stylebridge.plugins.domains import stylespace as domains
from stylebridge.plugins.losses import recon as losses_recon
from stylebridge.registry import Registry

LAYER = 5  # FSE's activation: the second 16×16 conv
VARIANTS = ("inversion", "joint-stored", "joint-on-the-fly")
#: generator activation layouts (Generator.channels_last): None = its device default
LAYOUTS: dict[str, bool | None] = {"default": None, "nchw": False, "nhwc": True}
ACTIVATIONS = ("follow", "promote")
PRECISIONS = {"fp32": "off", "amp": "auto", "bf16": "bf16", "fp16": "fp16"}
PRESETS: dict[str, dict[str, Any]] = {
    # channels: generator width up to 16 px (None: config-f, 512); images: dataset size
    "tiny": dict(size=32, channels=32, style_dim=32, n_mlp=2, image_size=32, batch=4,
                 images=16, domains=2, steps=5, repeats=5, warmup=2),
    "full": dict(size=1024, channels=None, style_dim=512, n_mlp=8, image_size=256, batch=8,
                 images=16, domains=2, steps=3, repeats=3, warmup=1),
}


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


def _generator(args: argparse.Namespace) -> Generator:
    torch.manual_seed(0)
    kw: dict[str, Any] = dict(size=args.size, style_dim=args.style_dim, n_mlp=args.n_mlp)
    if args.channels is not None:
        ch = args.channels
        kw["channels"] = {r: (ch if r <= 16 else max(ch // 2, 8))
                          for r in (4, 8, 16, 32, 64, 128, 256, 512, 1024)}
    return Generator(**kw)


def _setup(root: Path, args: argparse.Namespace, device: torch.device,
           variants: list[str]) -> dict[str, Path]:
    """Generator, images and the datasets the variants need (reused when already built)."""
    gen = _generator(args)
    gen_path = root / "gen.safetensors"
    save_stylegan2(gen_path, gen)  # deterministic: rewriting it keeps the datasets valid
    gen = gen.to(device)
    images = []
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    side = args.image_size
    for i in range(args.images):
        path = root / "images" / f"{i:04d}.png"
        pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        if not path.exists():
            Image.fromarray(pixels).save(path)
        images.append(path)
    methods = []
    for d in range(args.domains):
        method = domains.StyleSpace(size=args.size, style_dim=args.style_dim,
                                    channels=gen.cfg.channels)
        g = torch.Generator().manual_seed(100 + d)
        with torch.no_grad():
            for p in method.offsets.values():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        methods.append((f"domain{d}", method.to(device)))
    kw = dict(generator=gen, encoder=_StandIn(gen, True, 1).to(device),
              guide=_StandIn(gen, False, 2).to(device), domains=methods,
              image_size=args.image_size, shard_size=64, batch_size=min(args.batch, 8),
              device=device)
    paths = {"gen": gen_path}
    wanted = {("fly" if v == "joint-on-the-fly" else "stored") for v in variants}
    for kind in sorted(wanted):
        paths[kind] = root / kind
        build_dataset(images, root / kind, per_domain=kind == "stored", **kw)
    return paths


def _thesis_losses(root: Path) -> list[str]:
    """The thesis's loss set with full-size loss networks on random weights (timing only)."""
    import torchvision

    from stylebridge.plugins.nets.irse import ARCFACE_KIND, ARCFACE_PLUGIN, ArcFaceIRSE50

    alex = root / "alexnet-random.pth"
    if not alex.exists():
        torch.manual_seed(0)
        torch.save(torchvision.models.alexnet(weights=None).state_dict(), alex)
    arcface = root / "arcface-irse50-random.safetensors"
    if not arcface.exists():
        torch.manual_seed(0)
        model = ArcFaceIRSE50()
        save_checkpoint(arcface, model.state_dict(), kind=ARCFACE_KIND, plugin=ARCFACE_PLUGIN,
                        config=model.config(), extra={"note": "random weights (benchmark)"})
    return ["mse:1.0", f"lpips:0.8:backbone={alex}", f"id:0.1:weights={arcface}"]


def _trainer(paths: dict[str, Path], variant: str, precision: str, losses: list[str],
             out: Path, args: argparse.Namespace) -> featureshift.FeatureShiftTrainer:
    registry = Registry(builtins=False, entry_points=False,
                        extra_plugins=[domains, losses_recon, featureshift])
    data = paths["fly" if variant == "joint-on-the-fly" else "stored"]
    cfg = featureshift.TrainConfig(
        data=str(data), generator=str(paths["gen"]), out=str(out),
        losses=losses, domain_inversion_losses=[],
        pretrain_inversion_steps=10**9 if variant == "inversion" else 0,
        steps=10**9, batch_size=args.batch, checkpoint_every=0, log_every=0, sample_every=0,
        device=args.device, n_blocks=6, amp=PRECISIONS[precision],
        adversarial=0.0)  # the loss sets measured in RESULTS.md (no frozen discriminator)
    trainer = featureshift.FeatureShiftTrainer(cfg, registry=registry)
    trainer.setup()
    return trainer


def _keep_dtype(t: Tensor, x: Tensor) -> Tensor:
    return t


def _autocast_activations(policy: str) -> None:
    """``follow``: the shipped ``autocast_like``; ``promote``: float32 bias, noise and styles
    promote autocast activations back to float32 (patched in for the comparison only)."""
    fn = autocast_like if policy == "follow" else _keep_dtype
    fused_act_module.autocast_like = fn
    sg2_layers.autocast_like = fn


def _profile(step: Callable[[], None], device: torch.device, top: int = 12) -> dict[str, Any]:
    """One profiled call of ``step``: wall time (profiler overhead included), the summed
    time of all device kernels (busy << wall means launch/CPU-bound: lower precision cannot
    help there) and the kernels and aten ops with the most device time."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda"
                                           else [])
    step()  # the profiled call is not the first of its kind
    sync(device)
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        step()
        sync(device)
        wall = time.perf_counter() - start
    events = prof.key_averages()

    cuda = device.type == "cuda"  # on the CPU: the ops' own CPU time instead

    def self_dev(e: Any) -> float:  # microseconds
        return float(getattr(e, "self_device_time_total" if cuda else "self_cpu_time_total", 0))

    def dev(e: Any) -> float:
        return float(getattr(e, "device_time_total" if cuda else "cpu_time_total", 0))

    def is_kernel(e: Any) -> bool:  # CPU ops also carry their kernels' time: not twice
        if cuda:
            # not user annotations (e.g. the optimizer step's span): their kernels count already
            return (e.device_type == torch.autograd.DeviceType.CUDA
                    and not getattr(e, "is_user_annotation", False))
        return e.key.startswith("aten::")

    kernels = sorted((e for e in events if self_dev(e) > 0 and is_kernel(e)), key=self_dev,
                     reverse=True)
    ops = sorted((e for e in events if e.key.startswith("aten::") and dev(e) > 0), key=dev,
                 reverse=True)
    busy = sum(self_dev(e) for e in kernels) / 1e3
    return {
        "wall_ms": round(wall * 1e3, 1),
        "device_busy_ms": round(busy, 1),
        "kernel_launches": sum(e.count for e in kernels),
        "top_kernels": [{"name": e.key[:100], "calls": e.count,
                         "ms": round(self_dev(e) / 1e3, 2)} for e in kernels[:top]],
        "top_aten_ops_inclusive": [{"name": e.key, "calls": e.count,
                                    "ms": round(dev(e) / 1e3, 2)} for e in ops[:top]],
    }


@contextmanager
def _workdir(path: Path | None) -> Iterator[Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="bench-featureshift-") as tmp:
        yield Path(tmp)


def _csv(text: str, allowed: tuple[str, ...] | dict[str, str], what: str) -> list[str]:
    items = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in items if s not in allowed]
    if bad or not items:
        raise SystemExit(f"bench_featureshift: --{what} {text!r}: expected a comma-separated "
                         f"list of {', '.join(allowed)}")
    return items


FAST_PATHS = ("none", "polyphase", "epilogue", "tiled", "all")


def _fast_paths(generator: Generator, which: str) -> None:
    """Turn issue 20's unmeasured fast paths on (``which`` names one, several joined by ``+``,
    ``all`` or ``none``); the others go back to the defaults."""
    on = set(FAST_PATHS[1:4]) if which == "all" else set(which.split("+"))
    generator.set_upconv("polyphase" if "polyphase" in on else None)
    set_fused_epilogue("on" if "epilogue" in on else None)
    set_upfirdn2d_tiled("tiled" if "tiled" in on else None)


def _fast_path_list(text: str) -> list[str]:
    """``--fast-paths``: names from :data:`FAST_PATHS`, or several joined by ``+``."""
    items = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in items if s not in FAST_PATHS
           and not all(part in FAST_PATHS[1:4] for part in s.split("+"))]
    if bad or not items:
        raise SystemExit(f"bench_featureshift: --fast-paths {text!r}: expected a comma-separated "
                         f"list of {', '.join(FAST_PATHS)} (or of them joined by +)")
    return items


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Presets: " + "; ".join(f"{k}: {v}" for k, v in PRESETS.items()))
    parser.add_argument("--preset", choices=tuple(PRESETS), default="tiny")
    for name, kind in (("size", int), ("channels", int), ("style-dim", int), ("n-mlp", int),
                       ("image-size", int), ("batch", int), ("images", int), ("domains", int),
                       ("steps", int), ("repeats", int), ("warmup", int)):
        parser.add_argument(f"--{name}", type=kind, help="override the preset's value")
    parser.add_argument("--variants", default=None,
                        help=f"comma-separated subset of {', '.join(VARIANTS)} "
                             "(default: all for tiny, joint-stored for full)")
    parser.add_argument("--precisions", default=None,
                        help="comma-separated fp32, amp, bf16, fp16 (default: fp32 on the CPU, "
                             "fp32,amp on CUDA)")
    parser.add_argument("--losses", choices=("mse", "thesis"), default="mse")
    parser.add_argument("--data", type=Path, help="keep (and reuse) the datasets in this folder")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: keep)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ops", default=None,
                        help="comma-separated custom-op backends to time side by side: native, "
                             "auto, cuda (default: $STYLEBRIDGE_OPS as it is; cuda builds the "
                             "extension first and fails if it cannot)")
    parser.add_argument("--layouts", default=None,
                        help="comma-separated generator activation layouts to time side by "
                             "side: default (NHWC on the CPU, NCHW elsewhere), nchw, nhwc")
    parser.add_argument("--amp-activations", default="follow",
                        help="comma-separated, side by side: follow (as shipped: under autocast "
                             "bias, noise and styles follow the activations' dtype) and/or "
                             "promote (the previous behaviour: float32 parameters promote the "
                             "activations back to float32 after every convolution)")
    parser.add_argument("--fast-paths", default=None,
                        help="comma-separated, side by side: none (the defaults), polyphase "
                             "(the up-sampling convolution with the blur folded into the "
                             "weight), epilogue (the fused styled-conv epilogue kernel), tiled "
                             "(the tiled upfirdn2d kernel), all (the three together), or "
                             "several joined by + (polyphase+tiled); the kernels run on CUDA "
                             "only")
    parser.add_argument("--profile", action="store_true",
                        help="after timing, profile one step of each (variant, precision): "
                             "GPU busy time per step and the top kernels (torch.profiler)")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args()
    for key, value in PRESETS[args.preset].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main() -> None:
    args = _parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    variants = _csv(args.variants or ("joint-stored" if args.preset == "full"
                                      else ",".join(VARIANTS)), VARIANTS, "variants")
    precisions = _csv(args.precisions or ("fp32,amp" if device.type == "cuda" else "fp32"),
                      PRECISIONS, "precisions")
    if device.type != "cuda" and precisions != ["fp32"]:
        raise SystemExit("bench_featureshift: mixed precision is CUDA-only; use --precisions fp32 "
                         "on the CPU")

    ops: list[str | None] = [None]
    layouts = _csv(args.layouts, LAYOUTS, "layouts") if args.layouts else ["default"]
    acts = _csv(args.amp_activations, ACTIVATIONS, "amp-activations")
    fast = _fast_path_list(args.fast_paths) if args.fast_paths else ["none"]
    if args.ops:
        ops = list(_csv(args.ops, ("native", "auto", "cuda"), "ops"))
        if "cuda" in ops:
            from stylebridge.core.ops import _cuda

            t0 = time.perf_counter()
            _cuda.build()
            print(f"CUDA ops extension ready in {time.perf_counter() - t0:.1f} s", flush=True)

    with _workdir(args.data) as root:
        t0 = time.perf_counter()
        paths = _setup(root, args, device, variants)
        build_s = time.perf_counter() - t0
        losses = _thesis_losses(root) if args.losses == "thesis" else ["mse:1.0"]
        built = {f"{v}/{p}": _trainer(paths, v, p, losses, root / "runs" / f"{v}-{p}", args)
                 for v in variants for p in precisions}
        # one trainer per (variant, precision), stepped with each setting (ops, layout,
        # autocast activations) in turn
        settings = {"/".join(([str(o)] if len(ops) > 1 else [])
                             + ([la] if len(layouts) > 1 else [])
                             + ([f"{ac}-acts"] if len(acts) > 1 else [])
                             + ([fp] if len(fast) > 1 else [])):
                    (o, LAYOUTS[la], ac, fp)
                    for o in ops for la in layouts for ac in acts for fp in fast}
        trainers = {"/".join(filter(None, (k, tag))): (t, *setting) for k, t in built.items()
                    for tag, setting in settings.items()}
        amp_dtypes = {k: str(t.amp_dtype).replace("torch.", "") if t.amp_dtype else "fp32"
                      for k, t in built.items()}
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        diverged: dict[str, str] = {}

        def runner(key: str, trainer: featureshift.FeatureShiftTrainer, backend: str | None,
                   channels_last: bool | None, activations: str,
                   fast_path: str) -> Callable[[], None]:
            def step() -> None:  # a diverging precision (fp16) must not lose the others
                if key in diverged:
                    return
                set_backend(backend)  # type: ignore[arg-type]
                trainer.generator.channels_last = channels_last
                _fast_paths(trainer.generator, fast_path)
                _autocast_activations(activations)
                try:
                    trainer._train_step()
                except featureshift.TrainingDivergedError as exc:
                    diverged[key] = str(exc)
            return step

        seconds = interleaved({k: runner(k, *to) for k, to in trainers.items()}, device,
                              repeats=args.repeats, warmup=args.warmup, calls=args.steps)
        seconds = {k: v for k, v in seconds.items() if k not in diverged}
        peak = (torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda"
                else None)
        profiles = ({k: _profile(runner(k, *to), device) for k, to in trainers.items()
                     if k not in diverged} if args.profile else None)

    rates = {k: [1.0 / s for s in v] for k, v in seconds.items()}
    med = {k: statistics.median(v) for k, v in rates.items()}
    ratios: dict[str, float] = {}

    def ratio(name: str, a: str, b: str) -> None:
        if a in med and b in med:  # a diverged variant has no timing
            ratios[name] = round(med[a] / med[b], 3)

    tags = list(settings)
    for tag in tags:
        tail, at = (f"/{tag}", f" ({tag})") if tag else ("", "")
        for v in variants:
            for p in precisions[1:]:
                ratio(f"{v}: {p} / {precisions[0]}{at}", f"{v}/{p}{tail}",
                      f"{v}/{precisions[0]}{tail}")
        for p in precisions:
            ratio(f"{p}: joint-stored / inversion{at}", f"joint-stored/{p}{tail}",
                  f"inversion/{p}{tail}")
            ratio(f"{p}: joint-on-the-fly / joint-stored{at}", f"joint-on-the-fly/{p}{tail}",
                  f"joint-stored/{p}{tail}")
    for v in variants:
        for p in precisions:
            for tag in tags[1:]:
                ratio(f"{v}/{p}: {tag} / {tags[0]}", f"{v}/{p}/{tag}", f"{v}/{p}/{tags[0]}")
    result = {
        "benchmark": "featureshift-train-steps",
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "losses": losses if args.losses == "mse" else ["mse:1.0", "lpips:0.8", "id:0.1"],
        "autocast_dtype": amp_dtypes,
        "ops_backend": ops if len(ops) > 1 else get_backend(),
        "layouts": layouts,
        "amp_activations": acts,
        "fast_paths": fast,
        "tf32": {"cudnn": torch.backends.cudnn.allow_tf32,
                 "matmul": torch.backends.cuda.matmul.allow_tf32},
        "diverged": diverged,
        "dataset_build_s": round(build_s, 3),
        "peak_gpu_memory_gib": None if peak is None else round(peak, 2),
        "steps_per_s_median": {k: round(v, 3) for k, v in med.items()},
        "steps_per_s_all": {k: [round(x, 3) for x in v] for k, v in rates.items()},
        "ratios": ratios,
        **({"profile": profiles} if profiles is not None else {}),
        "note": "random-weight stand-ins: throughput of the code paths, not of trained models",
    }
    report(result, args.out)


if __name__ == "__main__":
    main()
