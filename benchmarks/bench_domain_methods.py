"""Domain methods side by side: parameters per domain and training time per training step.

Parameters are counted at the architecture given (1024 px by default, built on torch's meta
device: nothing is allocated).  Steps are timed on a generator of ``--size`` px (default 32:
the tiny random preset, a CPU-sized run) with one tiny random CLIP and the text losses
(``clip_direction:1``, ``indomain:0.25``; ``hyperdomain``: its own trainer and losses,
``clip_direction`` + ``tt_direction``, over two prompts, network width 512 as upstream),
every method trained in turn on each repeat (interleaved, medians).  ``mindthegap`` is timed
with the text losses too (its reference losses need an inverted reference image).  Everything here runs on random weights: the numbers are the cost of
the code paths, not of trained models.

    python benchmarks/bench_domain_methods.py --out benchmarks/results/domain_methods_cpu.json
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _timing import interleaved, report

METHODS = {  # name -> (plugin, options at full size; the tiny run uses the defaults)
    "stylespace": ("stylespace", {}),
    "stylespace+torgb": ("stylespace", {"torgb": True}),
    "domain_modulation": ("domain_modulation", {}),
    "affinelight_plus": ("affinelight_plus", {"rank": 5, "weight_offset_layers": [11, 12, 13]}),
    "affine_plus": ("affine_plus", {"weight_offset_layers": [11, 12, 13]}),
    "mindthegap": ("mindthegap", {}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--param-size", type=int, default=1024)
    parser.add_argument("--size", type=int, default=32, help="generator size for the timing")
    parser.add_argument("--steps", type=int, default=5, help="training steps per timed call")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from conftest import tiny_generator
    from test_train_domain import tiny_clip

    from stylebridge.pipelines import train_domain as td
    from stylebridge.plugins.losses.clip import ClipGuide
    from stylebridge.registry import get_registry

    registry = get_registry()
    params: dict[str, int] = {}
    with torch.device("meta"):
        for label, (plugin, options) in METHODS.items():
            method = registry.create("domain_method", plugin, size=args.param_size, **options)
            params[label] = sum(p.numel() for p in method.parameters())

    gen = tiny_generator(size=args.size)
    guide = ClipGuide.from_text([tiny_clip(0, 8, "tiny-a")], "pixar", "human", ["{}"])
    losses = td.build_losses(["clip_direction:1", "indomain:0.25"], registry=registry)
    tmp = Path("/tmp") if Path("/tmp").is_dir() else Path(".")
    runners = {}
    for label, (plugin, options) in METHODS.items():
        if label == "stylespace+torgb":
            options = {"torgb": True}
        elif plugin in ("affine_plus", "affinelight_plus"):
            options = {k: v for k, v in options.items() if k != "weight_offset_layers"}
        spec = plugin + (":" + ",".join(f"{k}={v}" for k, v in options.items()) if options else "")
        method = td.build_domain_method(spec, gen)
        settings = td.TrainSettings(steps=args.steps, batch=args.batch, lr=0.05, freeze_layers=(),
                                    checkpoint_every=0, sample_every=0)

        def run(method=method, settings=settings, label=label) -> None:
            td.DomainTrainer(gen, method, losses, settings, guide=guide,
                             out=tmp / f"bench_domain_{label}.safetensors").train()
        runners[label] = run
    # the hyper-network: one network for many prompts, trained by its own trainer on the same
    # loop (upstream's losses clip_direction + tt_direction, per-sample prompts)
    from stylebridge.pipelines import train_hyperdomain as th
    from stylebridge.plugins.domains.hyperdomain import HyperDomain
    from stylebridge.plugins.losses.hyperdomain import PromptBatchGuide

    with torch.device("meta"):
        params["hyperdomain"] = sum(p.numel() for p in HyperDomain(
            size=args.param_size, embed_dim=512).parameters())
    clip = guide.models[0]
    bank = th.encode_prompts([("pixar", "human"), ("sketch", "human")], [clip], [clip], ["{}"])
    hyper_losses = td.build_losses(list(th.DEFAULT_LOSSES), registry=registry)

    def run_hyper() -> None:
        cfg = gen.config()
        method = HyperDomain(size=cfg["size"], style_dim=cfg["style_dim"],
                             channels=cfg["channels"], prompts=bank.prompts,
                             embed_dim=int(bank.mapper.shape[1]))
        with torch.no_grad():
            method.prompt_embeddings.copy_(bank.mapper)
        settings = td.TrainSettings(steps=args.steps, batch=args.batch, lr=5e-5,
                                    checkpoint_every=0, sample_every=0)
        th.HyperDomainTrainer(gen, method, hyper_losses, settings, bank=bank,
                              guide=PromptBatchGuide([clip], target="2 prompts"),
                              out=tmp / "bench_domain_hyperdomain.safetensors").train()
    runners["hyperdomain"] = run_hyper
    times = interleaved(runners, torch.device("cpu"), repeats=args.repeats, warmup=1)
    ms = {k: 1000 * statistics.median(v) / args.steps for k, v in times.items()}
    base = ms["stylespace"]
    result = {
        "machine": platform.platform(), "torch": torch.__version__, "threads": args.threads,
        "param_size": args.param_size, "timing_size": args.size, "batch": args.batch,
        "steps_per_call": args.steps, "repeats": args.repeats,
        "params_per_domain": params,
        "ms_per_step_median": {k: round(v, 2) for k, v in ms.items()},
        "ms_per_step_all": {k: [round(1000 * t / args.steps, 2) for t in v]
                            for k, v in times.items()},
        "ratios": {f"{k} / stylespace": round(v / base, 3) for k, v in ms.items()},
        "note": "random-weight stand-ins (tiny CLIP, random generator): the cost of the code "
                "paths, not of trained models",
    }
    report(result, args.out)


if __name__ == "__main__":
    main()
