"""The ``fse`` converter: official Feature-Style Encoder weights → a stylebridge ``fse`` encoder.

Reads ``143_enc.pth`` (a plain ``fs_encoder_v2`` state dict) or a training
``checkpoint.pth`` (``enc_state_dict``), infers the architecture from the shapes and
takes ``latent_avg`` from the pSp FFHQ checkpoint or a stylebridge generator checkpoint
(option ``latent_avg=PATH``), since the FSE files hold none.  The encoder is in
:mod:`stylebridge.plugins.encoders.fse`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from stylebridge.core.checkpoint import (
    check_state_dict,
    load_checkpoint,
    read_header,
    save_checkpoint,
)
from stylebridge.core.interfaces import ConversionResult, Converter
from stylebridge.core.stylegan2.config import GeneratorConfig
from stylebridge.core.stylegan2.rosinality import torch_load_safe
from stylebridge.errors import CheckpointError, ConversionError
from stylebridge.plugins.encoders.fse import LICENCE, POOL, SOURCE, FSEConfigError, FSEEncoder
from stylebridge.plugins.nets.iresnet import IRESNET50_LAYERS, stage_channels
from stylebridge.registry import hookimpl


def _looks_like(obj: Mapping[str, Any]) -> str | None:
    """Name the kind of a non-FSE upstream file from its top-level / state-dict keys."""
    keys = {str(k) for k in obj}
    inner = obj.get("state_dict")
    inner_keys = {str(k) for k in inner} if isinstance(inner, Mapping) else set()
    if any(k.startswith("encoder.") for k in keys | inner_keys):
        if any(k.startswith("inverter.") for k in inner_keys):
            return "a StyleFeatureEditor checkpoint (inverter.* keys), not FSE"
        return "an e4e/pSp checkpoint (encoder.* keys), not FSE"
    if "generator_smooth" in keys and "e4e" in keys:
        return "a StyleRes checkpoint ('e4e' / 'generator_smooth'), not FSE"
    if "g_ema" in keys or "style.1.weight" in keys or "G_ema" in keys:
        return "a StyleGAN2 generator checkpoint, not FSE"
    return None


def fse_state_from_file(obj: Any, path: Path, notes: list[str]) -> dict[str, Tensor]:
    """The ``fs_encoder_v2`` state dict of an upstream file (``143_enc.pth`` or ``checkpoint.pth``)."""
    if not isinstance(obj, Mapping):
        raise ConversionError(f"holds a {type(obj).__name__}, expected an FSE state dict", path=path)
    if "enc_state_dict" in obj:
        state = obj["enc_state_dict"]
        if not isinstance(state, Mapping):
            raise ConversionError("'enc_state_dict' is not a state dict", path=path)
        notes.append("training checkpoint: used 'enc_state_dict' (optimiser/scheduler state ignored)")
    else:
        state = obj
    kind = _looks_like(obj) if "conv.0.weight" not in state else None
    if kind is not None:
        raise ConversionError(f"this looks like {kind}", path=path)
    state = {str(k): v for k, v in state.items()}
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
        notes.append("stripped the DataParallel 'module.' prefix")
    bad = [k for k, v in state.items() if not isinstance(v, Tensor)]
    if bad:
        raise ConversionError(f"entry {bad[0]!r} is a {type(state[bad[0]]).__name__}, not a tensor; "
                              "expected a plain FSE state dict", path=path)
    for anchor in ("conv.0.weight", "content_layer.1.weight", "styles.0.weight"):
        if anchor not in state:
            top = ", ".join(sorted(state)[:5]) or "none"
            raise ConversionError(f"is not an FSE encoder state dict (no {anchor!r}; first keys: "
                                  f"{top})", path=path)
    return state


def _count(state: Mapping[str, Tensor], prefix: str) -> int:
    """``1 + `` the largest index ``i`` of keys ``{prefix}.{i}.*`` (0 if there are none)."""
    rx = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.")
    found = [int(m.group(1)) for k in state if (m := rx.match(k))]
    return max(found) + 1 if found else 0


def _int_option(options: Mapping[str, Any], key: str, default: int, path: Path | None) -> int:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConversionError(f"option {key}={value!r} is not an integer", path=path)
    try:
        return int(value)
    except ValueError:
        raise ConversionError(f"option {key}={value!r} is not an integer", path=path) from None


def infer_config(state: Mapping[str, Tensor], *, path: Path | None = None,
                 **options: Any) -> dict[str, Any]:
    """FSE config (architecture from shapes, the rest from ``options``) for a state dict."""
    def shape(key: str) -> tuple[int, ...]:
        return tuple(state[key].shape)

    stem_w, content_w, style_w = (shape(k) for k in ("conv.0.weight", "content_layer.1.weight",
                                                     "styles.0.weight"))
    if len(stem_w) != 4 or len(content_w) != 4 or len(style_w) != 2:
        raise ConversionError("FSE tensors conv.0.weight / content_layer.1.weight / "
                              "styles.0.weight have unexpected ranks", path=path)
    width = stem_w[0]
    layers = [_count(state, f"block_{i}") for i in range(1, 5)]
    if min(layers) < 1:
        raise ConversionError(f"FSE backbone stages have {layers} blocks; every stage needs one",
                              path=path)
    pooled = sum(stage_channels(width)) * POOL * POOL
    if style_w[1] != pooled:
        raise ConversionError(f"FSE tensor styles.0.weight has {style_w[1]} inputs, expected "
                              f"{pooled} for stem width {width}", path=path)
    return {
        "mode": str(options.get("mode", "features")),
        "layer": _int_option(options, "layer", 5, path),
        "n_latent": _count(state, "styles"),
        "style_dim": style_w[0],
        "width": width,
        "layers": layers,
        "feature_channels": content_w[0],
        "feature_stride": _int_option(options, "feature_stride", 2, path),
        "input_size": _int_option(options, "input_size", 256, path),
        "resolution": _int_option(options, "resolution", 1024, path),
    }


def read_latent_avg(path: Path, n_latent: int, style_dim: int) -> tuple[Tensor, str]:
    """``latent_avg`` ``[n_latent, style_dim]`` from a pSp/e4e ``.pt`` (``['latent_avg']``) or a
    stylebridge checkpoint (a generator's ``[D]`` average w repeated, or an encoder's
    ``latent_avg``); returns it with a note saying where it came from."""
    path = Path(path)
    if not path.exists():
        raise ConversionError("no such file (given as latent_avg=)", path=path)
    if path.suffix == ".safetensors":
        try:
            header = read_header(path)
            _, tensors = load_checkpoint(path)
        except CheckpointError as exc:
            raise ConversionError(str(exc).removeprefix(f"{path}: "), path=path) from None
        value = tensors.get("g_ema.latent_avg", tensors.get("latent_avg"))
        what = f"stylebridge {header.kind} checkpoint ({header.plugin})"
        if value is None:
            raise ConversionError(f"is a {what} without a latent_avg tensor", path=path)
        g_cfg = header.config.get("generator") if header.kind == "generator" else None
        if isinstance(g_cfg, Mapping) and "size" in g_cfg:
            g_latent = GeneratorConfig.from_dict(dict(g_cfg)).n_latent
            if g_latent != n_latent:
                raise ConversionError(
                    f"is a {g_cfg['size']}px generator ({g_latent} latent rows); the FSE "
                    f"encoder predicts {n_latent}", path=path)
    else:
        obj = torch_load_safe(path)
        value = obj.get("latent_avg") if isinstance(obj, Mapping) else None
        what = "'latent_avg' entry"
        if value is None:
            raise ConversionError("has no 'latent_avg' entry (expected psp_ffhq_encode.pt or a "
                                  "stylebridge generator checkpoint)", path=path)
    if not isinstance(value, Tensor) or not value.is_floating_point():
        raise ConversionError("'latent_avg' is not a float tensor", path=path)
    value = value.detach().float()
    if value.shape[-1] != style_dim:
        raise ConversionError(f"latent_avg has shape {list(value.shape)}, the FSE encoder needs "
                              f"width {style_dim}", path=path)
    if value.ndim == 1 or (value.ndim == 2 and value.shape[0] == 1):
        value = value.reshape(1, style_dim).repeat(n_latent, 1)
        how = f"repeated {n_latent}×"
    elif value.shape != (n_latent, style_dim):
        raise ConversionError(f"latent_avg has shape {list(value.shape)}, expected "
                              f"[{n_latent}, {style_dim}] or [{style_dim}]", path=path)
    else:
        how = "as stored"
    if not bool(torch.isfinite(value).all()):
        raise ConversionError("latent_avg contains NaN or Inf values", path=path)
    return value.contiguous(), f"latent_avg from {path.name} ({what}, {how})"


OFFICIAL_ARCH = {"n_latent": 18, "style_dim": 512, "width": 64, "layers": list(IRESNET50_LAYERS),
                 "feature_channels": 512}
_OPTIONS = {"latent_avg", "mode", "layer", "feature_stride", "input_size", "resolution"}


class FSEConverter(Converter):
    """Official FSE weights (``143_enc.pth``) + pSp ``latent_avg`` → stylebridge ``fse`` encoder."""

    name = "fse"
    accepted_options = frozenset(_OPTIONS)
    description = "official FSE weights (143_enc.pth) + pSp latent_avg -> fse encoder"
    source = ("FSE 143_enc.pth (plain fs_encoder_v2 state dict) or training checkpoint.pth; "
              "option latent_avg=psp_ffhq_encode.pt (or a stylebridge generator checkpoint)")

    def convert(self, src: Path, dst: Path, **options: Any) -> ConversionResult:
        src, dst = Path(src), Path(dst)
        self.check_options(options, src)
        notes: list[str] = []
        state = fse_state_from_file(torch_load_safe(src), src, notes)
        cfg = infer_config(state, path=src, **options)
        try:
            model = FSEEncoder(**cfg)
        except FSEConfigError as exc:
            raise ConversionError(str(exc), path=src) from None
        expected = {k: v.shape for k, v in model.state_dict().items() if k != "latent_avg"}
        counters = [k for k in expected if k.endswith(".num_batches_tracked")]
        if not any(k in state for k in counters):  # saved by a PyTorch without BN counters
            state.update({k: torch.tensor(0) for k in counters})
            notes.append("no BatchNorm num_batches_tracked counters in the file; set to 0 "
                         "(unused at inference)")
        check_state_dict(src, expected, state, what="FSE encoder", error=ConversionError)
        if options.get("latent_avg") in (None, ""):
            raise ConversionError(
                "FSE files hold no latent_avg: pass the option latent_avg=PATH with the pSp FFHQ "
                "checkpoint (psp_ffhq_encode.pt) or a stylebridge generator checkpoint", path=src)
        latent_avg, note = read_latent_avg(Path(str(options["latent_avg"])), model.n_latent,
                                           model.style_dim)
        notes.append(note)
        differ = {k: cfg[k] for k, v in OFFICIAL_ARCH.items() if cfg[k] != v}
        if differ:
            notes.append("not the official architecture: "
                         + ", ".join(f"{k}={v}" for k, v in differ.items()))
        loaded = {k: (v.float() if v.is_floating_point() else v.long()) for k, v in state.items()}
        loaded["latent_avg"] = latent_avg
        model.load_state_dict(loaded, strict=True)
        notes.append(LICENCE)
        extra = {"source": SOURCE, "source_file": src.name, "notes": notes, "licence": LICENCE}
        save_checkpoint(dst, model.state_dict(), kind="encoder", plugin=FSEEncoder.name,
                        config=model.config(), extra=extra)
        return ConversionResult(path=dst, kind="encoder", plugin=FSEEncoder.name,
                                n_tensors=len(loaded), notes=tuple(notes))


@hookimpl
def register_converters(register: Any) -> None:
    register(FSEConverter())
