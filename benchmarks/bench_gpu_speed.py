"""Synthesis speed of every fast path, side by side with rosinality and NVlabs (issue 20).

One process, on one device:

1. **agreement** (``--check-size``, default 256 px config-f, batch 2, TF32 off): every fast
   path of ours against the fp32 eager network on the native ops: CUDA ops fp32, the
   polyphase up-sampling convolution fp32, the fused styled-conv epilogue fp32, the tiled
   upfirdn2d fp32, compiled fp32 (``reduce-overhead`` = CUDA graphs on
   CUDA), bf16 and fp16 autocast (plain and polyphase), compiled bf16.
   fp32 paths must agree within 1e-4 (max |diff|, images in [-1, 1]; of the compiled ones
   only fp32 is compiled here); bf16/fp16 report their
   max and mean |diff| (stated, not a pass/fail bound);
2. **throughput** (``--size``, default 1024 px config-f, ``--batches``, default 1 8 32):
   images/s from w of ours (fp32, bf16 autocast, each also with the polyphase up-sampling
   convolution and with the fused epilogue, with the tiled upfirdn2d kernel, bf16
   channels-last; compiled fp32, bf16, bf16
   polyphase, bf16 on native ops), rosinality
   fp32 with its CUDA ops, NVlabs stylegan2-ada fp32 and fp16 (top 4 resolutions) with its
   plugins, interleaved, medians of ``--repeats`` x ``--calls`` calls.  Random weights (speed
   does not depend on the values); rosinality runs our weights (its output is compared).

A variant that fails (a peer's plugin does not build, a compile error, a kernel that raises)
is recorded with a one-line reason and the rest goes on; ``--exclude epilogue tiled`` leaves
out the variants of a kernel whose first launch failed in ``gpu_smoke.py`` (a bad launch can
spoil the process's CUDA context, which no ``except`` recovers).  ``--dry-run`` runs everything on the CPU at a tiny
size in seconds (peers included when ``--peers`` is given, on their CPU paths), to check the
script before a GPU session.  Writes JSON with the machine, driver and versions.

    python benchmarks/bench_gpu_speed.py --peers /tmp/peers --out speed_h200.json
    python benchmarks/bench_gpu_speed.py --dry-run --peers /tmp/peers --out /tmp/dry.json
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import json
import platform
import statistics
import subprocess
import sys
import time
import traceback
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from _timing import interleaved, sync

from stylebridge.core.compiled import CompiledSynthesis
from stylebridge.core.io import write_json
from stylebridge.core.ops import (
    _cuda,
    get_backend,
    set_backend,
    set_fused_epilogue,
    set_upfirdn2d_tiled,
)
from stylebridge.core.stylegan2 import Generator

START = time.perf_counter()
TINY = {"size": 32, "style_dim": 32, "n_mlp": 2}  # config-f channels (512), as rosinality builds


def one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    return text[:300]


def machine(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda,
                            "python": platform.python_version(), "platform": platform.platform(),
                            "cpu": platform.processor() or platform.machine(),
                            "threads": torch.get_num_threads()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    capability=f"{props.major}.{props.minor}", cudnn=torch.backends.cudnn.version())
        with contextlib.suppress(Exception):
            info["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
    return info


def make_generator(size: int, tiny: bool, device: torch.device, seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    gen = Generator(**TINY) if tiny else Generator(size=size)
    with torch.no_grad():  # non-trivial biases and noise strengths
        for name, p in gen.named_parameters():
            if name.endswith("bias") or "noise" in name:
                p.add_(0.1 * torch.randn_like(p))
    return gen.to(device).eval()


@contextlib.contextmanager
def ops_backend(name: str | None) -> Iterator[None]:
    old = get_backend()
    set_backend(name)  # type: ignore[arg-type]
    try:
        yield
    finally:
        set_backend(old)


COMPILED_CHOICES = ("fp32", "bf16", "bf16-polyphase", "bf16-native")


KERNELS = ("epilogue", "tiled")  # the kernels gpu_smoke.py checks before this script runs


def our_variants(gen: Generator, w: torch.Tensor, device: torch.device,
                 compiled_tags: list[str], errors: dict[str, str], budget: float = 0,
                 exclude: tuple[str, ...] = ()) -> dict[str, Callable[[], torch.Tensor]]:
    """Our paths (CUDA ops as ``STYLEBRIDGE_OPS=auto`` picks them), each ``() -> image``:
    eager fp32/bf16(/fp16), the same with the polyphase up-sampling convolution, and the
    compiled ``compiled_tags`` (``fp32``, ``bf16``; ``bf16-polyphase``; ``bf16-native``: the
    native ops, so inductor fuses the elementwise work itself).  Each compiled flavour runs on
    its own copy of the generator, told apart by dynamo's guards (see below).  Past
    ``budget`` seconds since the start (0: no limit) no further variant is compiled (each
    costs a minute or more at 1024 px).  The variants that use a kernel in ``exclude`` (its
    first launch failed in ``gpu_smoke.py``) are left out, with the reason in ``errors``."""
    noise = [getattr(gen.noises, f"noise_{i}") for i in range(gen.num_layers)]
    with torch.no_grad():
        styles = gen.styles(w)
    amp = torch.bfloat16
    poly = copy.deepcopy(gen)
    poly.set_upconv("polyphase")

    def eager(model: Generator, dtype: torch.dtype | None = None, epilogue: bool = False,
              tiled: bool = False) -> Callable[[], torch.Tensor]:
        def fn() -> torch.Tensor:
            with (torch.autocast(device.type, dtype=dtype or torch.float32,
                                 enabled=dtype is not None),
                  fused_epilogue_on() if epilogue else contextlib.nullcontext(),
                  tiled_upfirdn2d_on() if tiled else contextlib.nullcontext()):
                return model.synthesis(styles, noise=noise)
        return fn

    variants = {"ours_fp32": eager(gen), "ours_bf16": eager(gen, amp),
                "ours_polyphase_fp32": eager(poly), "ours_polyphase_bf16": eager(poly, amp)}
    if device.type == "cuda":
        variants["ours_fp16"] = eager(gen, torch.float16)
        # the fused styled-conv epilogue (its kernel runs on CUDA tensors only)
        variants.update(ours_epilogue_fp32=eager(gen, epilogue=True),
                        ours_epilogue_bf16=eager(gen, amp, epilogue=True),
                        ours_polyphase_epilogue_bf16=eager(poly, amp, epilogue=True))
        # the tiled upfirdn2d kernel (the blur after every transposed up-sampling conv, the
        # RGB skips' up-sampling)
        variants.update(ours_tiled_fp32=eager(gen, tiled=True),
                        ours_tiled_bf16=eager(gen, amp, tiled=True))
        # channels-last activations (NCHW is the CUDA default; cuDNN may prefer NHWC in bf16)
        nhwc = copy.deepcopy(gen)
        nhwc.channels_last = True
        variants["ours_nhwc_bf16"] = eager(nhwc, amp)
        # all three together: no blur pass, one epilogue pass, no layout conversions
        nhwc_poly = copy.deepcopy(poly)
        nhwc_poly.channels_last = True
        variants["ours_nhwc_polyphase_epilogue_bf16"] = eager(nhwc_poly, amp, epilogue=True)
    for kernel in exclude:
        for name in [n for n in variants if kernel in n]:
            del variants[name]
            errors[name] = f"left out: the {kernel} kernel failed its first launch (gpu_smoke.py)"
    for tag in compiled_tags:
        precision, _, flavour = tag.partition("-")
        name = f"ours_compiled_{precision}" + (f"_{flavour}" if flavour else "")
        if budget and time.perf_counter() - START > budget:
            errors[name] = f"left out: past the {budget:.0f} s budget"
            continue
        dtype = {"fp32": None, "bf16": amp}[precision]
        model = gen
        if flavour == "polyphase":
            model = poly
        elif flavour == "native":
            # dynamo's guards do not tell two copies of a generator apart, and the op choice
            # is a constant of the graph: the copy's explicit (default) order is guarded, so
            # it gets its own graph, traced with the native ops
            model = copy.deepcopy(gen)
            model.set_upconv("transpose")
        notices: list[str] = []
        wrapper = CompiledSynthesis(model, device=device, notice=notices.append)
        backend = "native" if flavour == "native" else None

        def run(wrapper: CompiledSynthesis = wrapper, dtype: torch.dtype | None = dtype,
                backend: str | None = backend) -> torch.Tensor:
            with (torch.autocast(device.type, dtype=dtype or torch.float32,
                                 enabled=dtype is not None),
                  ops_backend(backend) if backend else contextlib.nullcontext()):
                return wrapper(styles, noise=noise)
        start = time.perf_counter()
        with torch.no_grad():
            run()  # compile (and capture) now, not inside the timing
            run()
        sync(device)
        if notices or not wrapper.compiled:
            errors[name] = notices[0] if notices else "not compiled"
            continue
        errors[f"{name}_compile_seconds"] = f"{time.perf_counter() - start:.1f}"
        variants[name] = run
    return variants


def agreement(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Every fast path of ours vs the fp32 eager network on native ops."""
    gen = make_generator(args.check_size, args.dry_run, device, seed=1)
    g = torch.Generator(device="cpu").manual_seed(2)
    w = gen.mapping(torch.randn(2, gen.style_dim, generator=g).to(device)).detach()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    with torch.no_grad(), ops_backend("native"):
        noise = [getattr(gen.noises, f"noise_{i}") for i in range(gen.num_layers)]
        ref = gen.synthesis(gen.styles(w), noise=noise).float()
    errors: dict[str, str] = {}
    results: dict[str, Any] = {}
    with torch.no_grad():
        # the fp32 bound is checked compiled; the bf16 flavours' differences are in the
        # throughput rows (max_abs_diff_vs_ours_fp32): one compile here, not one per flavour
        compiled = [tag for tag in args.compiled if tag == "fp32"]
        variants = our_variants(gen, w, device, compiled, errors, exclude=tuple(args.exclude))
        for name, fn in variants.items():
            try:
                out = fn().float()
            except Exception as exc:  # recorded; the other variants still run
                errors[name] = one_line(exc)
                traceback.print_exc()
                continue
            diff = (out - ref).abs()
            row = {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean())}
            if "fp32" in name:
                row["bound"] = 1e-4
                row["ok"] = row["max_abs_diff"] <= 1e-4
            results[name] = row
    torch.backends.cuda.matmul.allow_tf32 = True  # back to what the throughput runs use
    torch.backends.cudnn.allow_tf32 = True
    return {"size": gen.size, "batch": 2, "tf32": False, "reference": "ours fp32, native ops",
            "variants": results, "notes": errors,
            "ok": all(r.get("ok", True) for r in results.values())}


@contextlib.contextmanager
def fused_epilogue_on() -> Iterator[None]:
    """``STYLEBRIDGE_EPILOGUE=on`` inside (the fused kernel on CUDA tensors); after it the
    environment decides again (this script sets no other override)."""
    set_fused_epilogue("on")
    try:
        yield
    finally:
        set_fused_epilogue(None)


@contextlib.contextmanager
def tiled_upfirdn2d_on() -> Iterator[None]:
    """``STYLEBRIDGE_UPFIRDN2D=tiled`` inside; after it the environment decides again."""
    set_upfirdn2d_tiled("tiled")
    try:
        yield
    finally:
        set_upfirdn2d_tiled(None)


# ---------------------------------------------------------------------------------------------
# peers (checkouts kept outside this repository; see gpu_speed.sh)


def load_rosinality(path: Path, gen: Generator, device: torch.device
                    ) -> tuple[torch.nn.Module, bool]:
    """rosinality's Generator with ``gen``'s weights; on CUDA its ops build at import."""
    import torch.utils.cpp_extension as cpp_ext

    original_load = cpp_ext.load
    if device.type != "cuda":  # its op/ modules build CUDA code at import; only on a GPU
        cpp_ext.load = lambda *a, **k: None
    sys.path.insert(0, str(path))
    try:
        model = importlib.import_module("model")
    finally:
        sys.path.remove(str(path))
        cpp_ext.load = original_load
    cfg = gen.cfg
    ref = model.Generator(cfg.size, cfg.style_dim, cfg.n_mlp,
                          channel_multiplier=cfg.channel_multiplier)
    state = {k: v for k, v in gen.state_dict().items() if k != "latent_avg"}
    ref.load_state_dict(state, strict=True)
    return ref.to(device).eval(), device.type == "cuda"


def load_nvlabs(path: Path, size: int, tiny: bool, device: torch.device, fp16_res: int
                ) -> tuple[torch.nn.Module, dict[str, bool]]:
    """NVlabs stylegan2-ada-pytorch's Generator (random weights), its plugins built."""
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
    try:
        import requests  # noqa: F401  (dnnlib imports it for URL downloads, unused here)
    except ImportError:
        sys.modules["requests"] = types.ModuleType("requests")
    networks = importlib.import_module("training.networks")
    ops = {name: importlib.import_module(f"torch_utils.ops.{name}")
           for name in ("bias_act", "upfirdn2d")}
    kwargs: dict[str, Any] = {"channel_base": 32768 if not tiny else 512, "channel_max": 512,
                              "num_fp16_res": fp16_res, "conv_clamp": 256 if fp16_res else None}
    torch.manual_seed(0)
    gen = networks.Generator(z_dim=512 if not tiny else 32, c_dim=0,
                             w_dim=512 if not tiny else 32, img_resolution=size, img_channels=3,
                             mapping_kwargs={"num_layers": 8 if not tiny else 2},
                             synthesis_kwargs=kwargs).to(device).eval()
    plugins = {}
    if device.type == "cuda":
        plugins = {name: bool(mod._init()) for name, mod in ops.items()}
    return gen, plugins


def peer_variants(args: argparse.Namespace, gen: Generator, w: torch.Tensor,
                  device: torch.device, errors: dict[str, str], info: dict[str, Any]
                  ) -> dict[str, Callable[[], torch.Tensor]]:
    variants: dict[str, Callable[[], torch.Tensor]] = {}
    noise = [getattr(gen.noises, f"noise_{i}") for i in range(gen.num_layers)]
    if args.peers is None:
        return variants
    rosi_dir, nv_dir = args.peers / "rosinality", args.peers / "nvlabs"
    if rosi_dir.is_dir():
        try:
            ref, cuda_ops = load_rosinality(rosi_dir, gen, device)
            info["rosinality_cuda_ops"] = cuda_ops
            variants["rosinality_fp32"] = lambda: ref([w], input_is_latent=True, noise=noise)[0]
        except Exception as exc:
            errors["rosinality_fp32"] = one_line(exc)
            traceback.print_exc()
    if nv_dir.is_dir():
        for name, fp16_res in (("nvlabs_fp32", 0), ("nvlabs_fp16_top4", 4)):
            try:
                nv, plugins = load_nvlabs(nv_dir, gen.size, args.dry_run, device, fp16_res)
                info[f"{name}_plugins"] = plugins
                ws = w[:, None, :].expand(-1, nv.num_ws, -1)[..., :nv.w_dim].contiguous()

                def run(nv: torch.nn.Module = nv, ws: torch.Tensor = ws,
                        fp16_res: int = fp16_res) -> torch.Tensor:
                    return nv.synthesis(ws, noise_mode="const", force_fp32=not fp16_res)
                with torch.no_grad():
                    run()
                variants[name] = run
            except Exception as exc:
                errors[name] = one_line(exc)
                traceback.print_exc()
    return variants


def throughput(args: argparse.Namespace, device: torch.device,
               emit: Callable[[dict[str, Any]], object]) -> None:
    """One row per batch size, handed to ``emit`` as soon as it is measured."""
    gen = make_generator(args.size, args.dry_run, device)
    for batch in args.batches:
        errors: dict[str, str] = {}
        info: dict[str, Any] = {}
        g = torch.Generator(device="cpu").manual_seed(batch)
        with torch.no_grad():
            w = gen.mapping(torch.randn(batch, gen.style_dim, generator=g).to(device))
            compiled = args.compiled_for.get(batch, args.compiled)
            variants = our_variants(gen, w, device, compiled, errors, args.budget,
                                    exclude=tuple(args.exclude))
            variants.update(peer_variants(args, gen, w, device, errors, info))
            outputs = {}
            for name, fn in list(variants.items()):  # warm-up; a failing variant is dropped
                try:
                    outputs[name] = fn()
                except Exception as exc:
                    errors[name] = one_line(exc)
                    traceback.print_exc()
                    del variants[name]
            times = interleaved(variants, device, repeats=args.repeats, warmup=args.warmup,
                                calls=args.calls)
        med = {k: statistics.median(v) for k, v in times.items()}
        ref = outputs["ours_fp32"].float()
        row = {"size": gen.size, "batch": batch,
               "images_per_s": {k: batch / v for k, v in med.items()},
               "seconds_median": med, "seconds_all": times,
               "max_abs_diff_vs_ours_fp32": {
                   k: float((o.float() - ref).abs().max()) for k, o in outputs.items()
                   if k.startswith(("ours", "rosinality")) and k != "ours_fp32"},
               "failed_or_notes": errors, "peers": info}
        emit(row)
        print(json.dumps({"batch": batch, "images_per_s": {
            k: round(v, 2) for k, v in row["images_per_s"].items()}, "notes": errors}),
            flush=True)
        del variants, outputs
        if device.type == "cuda":
            torch.cuda.empty_cache()


def parse_compiled_for(parser: argparse.ArgumentParser, items: list[str]
                       ) -> dict[int, list[str]]:
    """``["32=bf16", "1=bf16,fp32", "8="]`` -> ``{32: ["bf16"], 1: ["bf16", "fp32"], 8: []}``."""
    out: dict[int, list[str]] = {}
    for item in items:
        batch, sep, tags = item.partition("=")
        chosen = [t for t in tags.split(",") if t]
        if not sep or not batch.isdigit() or any(t not in COMPILED_CHOICES for t in chosen):
            parser.error(f"--compiled-for {item!r}: want BATCH=TAG[,TAG] with tags from "
                         f"{', '.join(COMPILED_CHOICES)}")
        out[int(batch)] = chosen
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--check-size", type=int, default=256)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--compiled", nargs="*", choices=COMPILED_CHOICES,
                        default=["fp32", "bf16"],
                        help="compiled variants (each compiles once per batch size): "
                             "bf16-polyphase = the polyphase up-sampling convolution, "
                             "bf16-native = native ops (inductor fuses the elementwise work)")
    parser.add_argument("--compiled-for", nargs="*", default=[], metavar="BATCH=TAGS",
                        help="per batch size, the compiled variants instead of --compiled "
                             "(comma-separated, may be empty): 32=bf16 1=bf16,fp32 8=")
    parser.add_argument("--budget", type=float, default=0,
                        help="seconds after which batches are measured without the compiled "
                             "variants (0: no limit)")
    parser.add_argument("--peers", type=Path, default=None,
                        help="folder with rosinality/ and nvlabs/ checkouts (outside the repo)")
    parser.add_argument("--skip", choices=("agreement", "throughput"), action="append",
                        default=[])
    parser.add_argument("--exclude", nargs="*", choices=KERNELS, default=[],
                        help="leave out the variants that use these kernels (gpu_speed.sh: "
                             "the ones whose first launch failed in gpu_smoke.py)")
    parser.add_argument("--dry-run", action="store_true",
                        help="tiny generator, CPU, batches 1 2, one repeat: checks the script")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.compiled_for = parse_compiled_for(parser, args.compiled_for)
    if args.dry_run:
        args.device = args.device or "cpu"
        args.size = args.check_size = TINY["size"]
        args.batches, args.repeats, args.calls, args.warmup = [1, 2], 1, 1, 0
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    # every (variant, batch) is its own graph: keep dynamo from silently going eager
    torch._dynamo.config.cache_size_limit = 64
    result: dict[str, Any] = {"machine": machine(device), "ops_backend": get_backend(),
                              "dry_run": args.dry_run, "argv": sys.argv[1:],
                              "excluded_kernels": list(args.exclude)}

    def save() -> None:
        from torch._dynamo.utils import counters

        result["dynamo_counters"] = {k: dict(v) for k, v in counters.items()
                                     if k in ("stats", "graph_break", "recompiles")}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_json(args.out, result)
    if device.type == "cuda":
        start = time.perf_counter()
        result["cuda_ops"] = _cuda.available()
        result["cuda_ops_build_seconds"] = round(time.perf_counter() - start, 1)
        result["cuda_ops_error"] = _cuda.build_error()
    if "agreement" not in args.skip:
        result["agreement"] = agreement(args, device)
        print(json.dumps({"agreement": result["agreement"]}, indent=1), flush=True)
        save()
    if "throughput" not in args.skip:
        result["throughput"] = []
        throughput(args, device, lambda row: (result["throughput"].append(row), save()))
    save()
    print(f"wrote {args.out}")
    sys.exit(0 if result.get("agreement", {}).get("ok", True) else 1)


if __name__ == "__main__":
    main()
