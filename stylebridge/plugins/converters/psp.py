"""Converters for the official pSp / e4e files and the ArcFace IR-SE50 backbone.

``stylebridge convert e4e|psp|arcface-irse50 SRC DST`` read the official files with
``torch.load(weights_only=True)``: ``e4e_ffhq_encode.pt`` / ``psp_ffhq_encode.pt`` are
``{"state_dict": {encoder.*, decoder.*}, "opts": {...}, "latent_avg": [18, 512]}``;
option ``generator=PATH`` also writes the embedded decoder (rosinality layout) as a
stylebridge generator checkpoint.  pSp and e4e are MIT-licensed; their decoder is
NVIDIA's FFHQ StyleGAN2 (NVIDIA Source Code License-NC).  The encoders are in
:mod:`stylebridge.plugins.encoders.psp`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from stylebridge.core.checkpoint import check_state_dict, save_checkpoint, with_article
from stylebridge.core.interfaces import ConversionResult, Converter
from stylebridge.core.stylegan2 import Generator
from stylebridge.core.stylegan2.rosinality import (
    UpstreamOptions,
    infer_generator_config,
    torch_load_safe,
)
from stylebridge.errors import ConversionError
from stylebridge.plugins.converters.stylegan2 import build_and_save
from stylebridge.plugins.encoders.psp import (
    E4E_LICENCE,
    PSP_LICENCE,
    E4EEncoder,
    IRSEStyleEncoder,
    PSPEncoder,
)
from stylebridge.plugins.nets.irse import (
    ARCFACE_KIND,
    ARCFACE_LICENCE,
    ARCFACE_PLUGIN,
    arcface_state_from_upstream,
    as_float_state,
    describe_upstream,
    expected_shapes,
    fill_num_batches_tracked,
    infer_irse_arch,
)
from stylebridge.registry import hookimpl

# ---------------------------------------------------------------------------------------------
# Reading the official files


def infer_style_net_config(state: Mapping[str, Tensor], *, path: Path | None, what: str) -> dict[str, Any]:
    """Architecture config of an official ``encoder`` state dict (keys without prefix)."""
    widths, units = infer_irse_arch(state, path=path, what=what)
    if len(widths) != 4:
        raise ConversionError(f"{what} has {len(widths)} backbone stages (depths {widths}); the "
                              "pSp/e4e feature pyramid needs 4", path=path)
    rx = re.compile(r"^styles\.(\d+)\.linear\.weight$")
    ids = sorted(int(m.group(1)) for k in state if (m := rx.match(k)))
    if not ids:
        raise ConversionError(f"{what} has no style heads (styles.N.linear.weight)", path=path)
    if ids != list(range(len(ids))):
        raise ConversionError(f"{what} has non-contiguous style heads {ids[:8]}", path=path)
    lin = state["styles.0.linear.weight"]
    if lin.ndim != 2:
        raise ConversionError(f"{what} tensor styles.0.linear.weight has shape {list(lin.shape)}",
                              path=path)
    n_convs = len({m.group(1) for k in state
                   if (m := re.match(r"^styles\.0\.convs\.(\d+)\.weight$", k))})
    if n_convs < 1:
        raise ConversionError(f"{what} style head 0 has no convolutions", path=path)
    return {"n_styles": len(ids), "style_dim": int(lin.shape[0]), "input_size": 16 * 2**n_convs,
            "widths": widths, "units": units}


def latent_avg_rows(value: Any, n_styles: int, style_dim: int, *, path: Path | None) -> Tensor:
    """``latent_avg`` (``[D]``, ``[1, D]`` or ``[n, D]``) → ``[n_styles, style_dim]`` float32."""
    if not isinstance(value, Tensor):
        raise ConversionError(f"'latent_avg' is a {type(value).__name__}, not a tensor", path=path)
    t = value.detach().float()
    if t.ndim == 1:
        t = t.unsqueeze(0)
    if t.ndim != 2 or t.shape[-1] != style_dim or t.shape[0] not in (1, n_styles):
        raise ConversionError(f"'latent_avg' has shape {list(value.shape)}, expected [{style_dim}] "
                              f"or [{n_styles}, {style_dim}]", path=path)
    return t.expand(n_styles, style_dim).contiguous()


def plain_opts(value: Any) -> dict[str, Any]:
    """The ``opts`` entry as a dict (a dict, an ``argparse.Namespace`` — read as
    :data:`~stylebridge.core.stylegan2.rosinality.UpstreamOptions` — or absent)."""
    if isinstance(value, UpstreamOptions):
        return dict(vars(value))
    if isinstance(value, Mapping):
        return dict(value)
    return {}


def _strip(state: Mapping[str, Any], prefix: str) -> dict[str, Tensor]:
    n = len(prefix)
    return {k[n:]: v for k, v in state.items() if isinstance(k, str) and k.startswith(prefix)}


def build_encoder_state(cls: type[IRSEStyleEncoder], enc_state: Mapping[str, Any], latent_avg: Tensor,
                        config: Mapping[str, Any], *, path: Path | None, what: str,
                        notes: list[str], extra_state: Mapping[str, Tensor] | None = None
                        ) -> dict[str, Tensor]:
    """Official encoder tensors (+ extra modules) → our checked state dict for ``cls(**config)``."""
    state: dict[str, Tensor] = {f"encoder.{k}": v for k, v in enc_state.items()}
    state["latent_avg"] = latent_avg
    state.update(extra_state or {})
    bad = next((k for k, v in state.items() if not isinstance(v, Tensor)), None)
    if bad is not None:
        raise ConversionError(f"{what} entry {bad!r} is not a tensor", path=path)
    try:
        expected = expected_shapes(lambda: cls(**config))
    except ValueError as exc:
        raise ConversionError(f"{what} has an unsupported architecture ({exc})", path=path) from None
    fill_num_batches_tracked(state, expected, notes)
    check_state_dict(path, expected, state, what=what, error=ConversionError)
    return as_float_state(state)


def decoder_mean_w(decoder: Mapping[str, Tensor], src: Path, n: int = 10_000) -> Tensor:
    """Mean w ``[style_dim]`` of the embedded rosinality decoder's mapping network."""
    g_cfg = infer_generator_config(decoder, path=src)
    gen = Generator(**g_cfg.to_dict())
    mapping = {k: v for k, v in decoder.items() if k.startswith("style.")}
    missing = gen.style.load_state_dict({k[len("style."):]: v for k, v in mapping.items()},
                                        strict=False).missing_keys
    if missing:
        raise ConversionError(f"decoder mapping network lacks {missing[0]}", path=src)
    with torch.no_grad():
        return gen.mean_latent(n, seed=0).float()


def write_rosinality_generator(src: Path, dst: Path, decoder: Mapping[str, Tensor],
                               latent_avg: Tensor | None, *, source: str, notes: list[str]) -> list[str]:
    """The embedded rosinality ``decoder.*`` generator → a stylebridge generator checkpoint."""
    if not decoder:
        raise ConversionError("has no decoder.* tensors to write as a generator", path=src)
    g_cfg = infer_generator_config(decoder, path=src)
    g_notes: list[str] = []
    vec = None
    if latent_avg is not None:
        rows = latent_avg.reshape(-1, latent_avg.shape[-1]).float()
        vec = rows[0]
        if not torch.allclose(rows, rows[:1].expand_as(rows)):
            vec = rows.mean(0)
            g_notes.append("the rows of 'latent_avg' differ; the generator's latent_avg is their mean")
    result = build_and_save(src, dst, g_cfg=g_cfg, g_state=decoder, latent_avg=vec, d_cfg=None,
                            d_state=None, source=source, notes=g_notes)
    notes.append(f"wrote the embedded {g_cfg.size}px decoder as generator checkpoint {dst}")
    return [f"generator: {n}" for n in result.notes]


class _PSPFamilyConverter(Converter):
    """``{"state_dict": {encoder.*, decoder.*}, "opts", "latent_avg"}`` → our encoder (+ generator)."""

    accepted_options = frozenset({"generator"})
    output_options = frozenset({"generator"})

    encoder_cls: ClassVar[type[IRSEStyleEncoder]]
    encoder_type: ClassVar[str]   # opts["encoder_type"] upstream
    other: ClassVar[dict[str, str]] = {"GradualStyleEncoder": "psp", "Encoder4Editing": "e4e"}
    repo: ClassVar[str]
    licence: ClassVar[str]

    def convert(self, src: Path, dst: Path, **options: Any) -> ConversionResult:
        src, dst = Path(src), Path(dst)
        self.check_options(options, src)
        obj = torch_load_safe(src)
        if not isinstance(obj, Mapping):
            raise ConversionError(f"holds a {type(obj).__name__}, expected the {self.name} dict "
                                  "{state_dict, opts, latent_avg}", path=src)
        # upstream's get_keys() reads ckpt["state_dict"] when present, else the dict itself
        inner = obj.get("state_dict", obj)
        if not isinstance(inner, Mapping) or not any(str(k).startswith("encoder.") for k in inner):
            hint = describe_upstream(obj)
            if hint is not None and "pSp/e4e" not in hint:
                raise ConversionError(f"{hint}; not {with_article(self.name)} checkpoint",
                                      path=src)
            keys = ", ".join(sorted(map(str, obj))[:6])
            raise ConversionError(f"has no 'state_dict' with encoder.* tensors, so it is not "
                                  f"{with_article(self.name)} checkpoint (top-level keys: {keys})",
                                  path=src)
        opts = plain_opts(obj.get("opts"))
        notes: list[str] = []
        self._check_opts(opts, src, notes)
        enc = _strip(inner, "encoder.")
        config = infer_style_net_config(enc, path=src, what=f"{self.name} encoder")
        n, d = config["n_styles"], config["style_dim"]
        raw_avg = obj.get("latent_avg")
        file_avg = None if raw_avg is None else latent_avg_rows(raw_avg, n, d, path=src)
        if opts.get("start_from_latent_avg") is False:
            latent_avg = torch.zeros(n, d)
            notes.append("opts.start_from_latent_avg is False: codes are used as predicted "
                         "(latent_avg = 0)")
        elif file_avg is None:
            # upstream then uses the decoder's mean w (decoder.mean_latent(10000)); we draw
            # the 10000 z from a fixed seed so the conversion is reproducible
            decoder = _strip(inner, "decoder.")
            if not decoder:
                raise ConversionError("has no 'latent_avg' and no decoder.* tensors to compute "
                                      "it from (upstream uses the decoder's mean w)", path=src)
            latent_avg = decoder_mean_w(decoder, src).expand(n, d).clone()
            notes.append("no 'latent_avg' in the file: the embedded decoder's mean w over 10000 "
                         "z samples (seed 0), as upstream's decoder.mean_latent(10000)")
        else:
            latent_avg = file_avg
        state = build_encoder_state(self.encoder_cls, enc, latent_avg, config, path=src,
                                    what=f"{self.name} encoder", notes=notes)
        notes.append(self.licence)
        gen_path = options.get("generator")
        extra_notes: list[str] = []
        if gen_path:
            decoder = _strip(inner, "decoder.")
            extra_notes = write_rosinality_generator(
                src, Path(str(gen_path)), decoder, file_avg,
                source=f"{self.repo} (decoder of {src.name})", notes=notes)
        elif any(str(k).startswith("decoder.") for k in inner):
            notes.append("the file also holds the FFHQ decoder; pass generator=PATH to write it")
        save_checkpoint(dst, state, kind="encoder", plugin=self.name, config=config,
                        extra={"source": self.repo, "source_file": src.name, "notes": notes,
                               "licence": self.licence})
        return ConversionResult(path=dst, kind="encoder", plugin=self.name, n_tensors=len(state),
                                notes=tuple(notes + extra_notes))

    def _check_opts(self, opts: Mapping[str, Any], src: Path, notes: list[str]) -> None:
        etype = opts.get("encoder_type")
        if etype is None:
            notes.append(f"opts has no encoder_type; assumed {self.encoder_type}")
        elif etype != self.encoder_type:
            other = self.other.get(str(etype))
            hint = (f"; use `stylebridge convert {other}`" if other else
                    f" (only {', '.join(self.other)} are supported)")
            raise ConversionError(f"holds a {etype} encoder (opts.encoder_type), not {self.name}'s "
                                  f"{self.encoder_type}{hint}", path=src)
        if opts.get("learn_in_w"):
            raise ConversionError("was trained with learn_in_w=True (a single w); only w+ encoders "
                                  "are supported", path=src)
        nc = opts.get("input_nc")
        if nc is not None and int(nc) != 3:
            raise ConversionError(f"takes {nc}-channel inputs (opts.input_nc); only RGB encoders "
                                  "(face inversion) are supported", path=src)


class PSPConverter(_PSPFamilyConverter):
    """pixel2style2pixel ``psp_ffhq_encode.pt`` → stylebridge ``psp`` encoder (+ generator)."""

    name = "psp"
    description = "pSp psp_ffhq_encode.pt -> psp encoder (generator=PATH also writes its decoder)"
    source = ("pSp .pt {state_dict: encoder.*/decoder.*, opts, latent_avg}, e.g. "
              "psp_ffhq_encode.pt; option generator=PATH writes the decoder too")
    encoder_cls = PSPEncoder
    encoder_type = "GradualStyleEncoder"
    repo = "eladrich/pixel2style2pixel"
    licence = PSP_LICENCE


class E4EConverter(_PSPFamilyConverter):
    """encoder4editing ``e4e_ffhq_encode.pt`` → stylebridge ``e4e`` encoder (+ generator)."""

    name = "e4e"
    description = "e4e e4e_ffhq_encode.pt -> e4e encoder (generator=PATH also writes its decoder)"
    source = ("e4e .pt {state_dict: encoder.*/decoder.*, opts, latent_avg}, e.g. "
              "e4e_ffhq_encode.pt; option generator=PATH writes the decoder too")
    encoder_cls = E4EEncoder
    encoder_type = "Encoder4Editing"
    repo = "omertov/encoder4editing"
    licence = E4E_LICENCE


class ArcFaceConverter(Converter):
    """TreB1eN ArcFace IR-SE50 ``model_ir_se50.pth`` → stylebridge backbone checkpoint (ID loss)."""

    name = ARCFACE_PLUGIN
    description = "ArcFace IR-SE50 model_ir_se50.pth -> backbone checkpoint for ID losses"
    source = "ArcFace IR-SE50 state dict (model_ir_se50.pth, as used by pSp/e4e for the ID loss)"

    def convert(self, src: Path, dst: Path, **options: Any) -> ConversionResult:
        src, dst = Path(src), Path(dst)
        self.check_options(options, src)
        notes: list[str] = []
        state, config = arcface_state_from_upstream(torch_load_safe(src), path=src, notes=notes)
        notes.append(ARCFACE_LICENCE)
        save_checkpoint(dst, state, kind=ARCFACE_KIND, plugin=ARCFACE_PLUGIN, config=config,
                        extra={"source": "TreB1eN/InsightFace_Pytorch", "source_file": src.name,
                               "notes": notes, "licence": ARCFACE_LICENCE})
        return ConversionResult(path=dst, kind=ARCFACE_KIND, plugin=ARCFACE_PLUGIN,
                                n_tensors=len(state), notes=tuple(notes))


@hookimpl
def register_converters(register: Any) -> None:
    register(PSPConverter())
    register(E4EConverter())
    register(ArcFaceConverter())
