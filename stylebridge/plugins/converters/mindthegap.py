"""The ``mindthegap`` converter: a published MindTheGap generator + its base → a ``mindthegap`` delta.

ZPdesu/MindTheGap's README ("Pretrained Models") publishes fine-tuned FFHQ generators
(``titan_erwin``, ``moana``, ``sketch``, ``jojo``, ...) as rosinality-format checkpoints
(``{"g_ema", "g_optim", "latent_avg", "style_latent"}``, written by its ``train.py``) and the
base FFHQ generator they were fine-tuned from (README row "FFHQ").  This converter reads
both with the StyleGAN2 readers of :mod:`stylebridge.core.stylegan2.rosinality` and writes
the difference of every changed parameter as a ``mindthegap`` domain method
(:mod:`stylebridge.plugins.domains.mindthegap`), which renders exactly the fine-tuned
generator on top of the base one and works with every encoder::

    stylebridge convert mindthegap titan_erwin.pt erwin.safetensors -o base=ffhq.pt

``base=`` is the rosinality ``.pt`` of the base generator or its stylebridge conversion
(``.safetensors``).  A pair with different architectures, or a fine-tuned file that changed
the mapping network (which a W+ method cannot carry), is refused with a one-line error.
Noise buffers and ``latent_avg`` are not parameters and are not compared.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from stylebridge.core.checkpoint import check_state_dict, refuse_nonfinite
from stylebridge.core.interfaces import ConversionResult, Converter
from stylebridge.core.stylegan2 import Generator, GeneratorConfig
from stylebridge.core.stylegan2.rosinality import (
    infer_generator_config,
    read_rosinality,
    torch_load_safe,
)
from stylebridge.errors import ConversionError
from stylebridge.plugins.domains.base import KIND, generator_layout
from stylebridge.plugins.domains.mindthegap import MindTheGap, parameter_names
from stylebridge.registry import hookimpl

REPO = "ZPdesu/MindTheGap"
LICENCE = ("licence: ZPdesu/MindTheGap's code is MIT; its generators were fine-tuned from "
           "NVIDIA's StyleGAN2 FFHQ weights (NVIDIA Source Code License-NC, non-commercial)")


def _read_generator(path: Path, what: str) -> tuple[GeneratorConfig, dict[str, Tensor]]:
    """A rosinality ``.pt`` or a stylebridge generator ``.safetensors`` → (config, state)."""
    if path.suffix == ".safetensors":
        from stylebridge.core.stylegan2.checkpoint import load_stylegan2

        gen = load_stylegan2(path).generator
        return gen.cfg, {k: v.detach() for k, v in gen.state_dict().items()}
    ck = read_rosinality(path)
    try:
        cfg = infer_generator_config(ck.g_ema, path=path)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConversionError):
            raise
        raise ConversionError(f"its network configuration is not usable: {exc}", path=path) from None
    return cfg, dict(ck.g_ema)


def _style_latent(path: Path, cfg: GeneratorConfig) -> Tensor | None:
    """The reference's W+ that upstream's ``train.py`` saves as ``style_latent``
    (``[1, n_latent, style_dim]``), or ``None`` (a bare generator, our conversion)."""
    if path.suffix == ".safetensors":
        return None
    obj = torch_load_safe(path)
    latent = obj.get("style_latent") if isinstance(obj, Mapping) else None
    if latent is None:
        return None
    if not isinstance(latent, Tensor) or latent.numel() != cfg.n_latent * cfg.style_dim:
        shape = list(latent.shape) if isinstance(latent, Tensor) else type(latent).__name__
        raise ConversionError(f"'style_latent' is {shape}; a {cfg.size}px generator needs "
                              f"[1, {cfg.n_latent}, {cfg.style_dim}]", path=path)
    refuse_nonfinite(latent, path, what="'style_latent'", error=ConversionError)
    return latent.float().reshape(cfg.n_latent, cfg.style_dim)


def _describe(cfg: GeneratorConfig) -> str:
    return f"{cfg.size}px, style_dim {cfg.style_dim}, {cfg.n_mlp} mapping layers"


class MindTheGapConverter(Converter):
    """MindTheGap fine-tuned generator (.pt) + base generator → ``mindthegap`` delta."""

    name = "mindthegap"
    source = ("ZPdesu/MindTheGap fine-tuned generator (.pt, g_ema) with -o base=the FFHQ "
              "generator it was fine-tuned from")
    accepted_options = frozenset({"base", "atol"})

    def convert(self, src: Path, dst: Path, **options: Any) -> ConversionResult:
        src, dst = Path(src), Path(dst)
        self.check_options(options, src)
        base_opt = self.option(options, "base", str, None, src)
        atol = self.option(options, "atol", float, 0.0, src)
        if not base_opt:
            raise ConversionError("needs -o base=PATH: the generator it was fine-tuned from "
                                  "(MindTheGap's README row 'FFHQ')", path=src)
        base_path = Path(base_opt)
        if not base_path.is_file():
            raise ConversionError(f"-o base={base_path}: no such file", path=src)
        t_cfg, tuned = _read_generator(src, "the fine-tuned generator")
        b_cfg, base = _read_generator(base_path, "the base generator")
        mine = (t_cfg.size, t_cfg.style_dim, t_cfg.n_mlp, dict(t_cfg.channels))
        theirs = (b_cfg.size, b_cfg.style_dim, b_cfg.n_mlp, dict(b_cfg.channels))
        if mine != theirs:
            raise ConversionError(f"is a {_describe(t_cfg)} generator, the base {base_path.name} "
                                  f"is {_describe(b_cfg)} (channels {dict(b_cfg.channels)} vs "
                                  f"{dict(t_cfg.channels)}): not the generator it was fine-tuned "
                                  "from", path=src)
        shapes = {k: p.shape for k, p in Generator(**t_cfg.to_dict()).named_parameters()}
        for path, state, what in ((src, tuned, "fine-tuned generator"),
                                  (base_path, base, "base generator")):
            check_state_dict(path, shapes, {k: v for k, v in state.items() if k in shapes},
                             what=what, error=ConversionError)
        changed = [k for k in shapes
                   if not torch.allclose(tuned[k].float(), base[k].float(), rtol=0, atol=atol)]
        mapping = [k for k in changed if k.startswith("style.")]
        if mapping:
            raise ConversionError(f"changed the mapping network ({mapping[0]}, ...) of its base; a "
                                  "W+ domain delta cannot carry that", path=src)
        method = self._method(t_cfg, changed)
        carried = set(method.generator_parameters())
        missing = sorted(set(changed) - carried)
        if missing:   # cannot happen for a StyleGAN2 layout; kept as a guard
            raise ConversionError(f"changed {missing[0]}, which a mindthegap delta does not "
                                  "carry", path=src)
        method.set_from_generators(base, tuned)
        style_latent = _style_latent(src, t_cfg)
        if style_latent is not None:   # upstream renders with its rows 7: (inference.py)
            method.set_reference_latent(style_latent, mix=True)
        notes = [f"{len(changed)} changed parameter tensor(s) in style layers {method.layers}"
                 + (" and the constant input" if method.use_input else ""),
                 f"base generator: {base_path.name}",
                 f"reference latent ('style_latent') kept: W+ rows {method.mix_from}: are taken "
                 "from it when rendering, as upstream's inference.py (mix=false turns it off)"
                 if style_latent is not None else
                 "no 'style_latent' in the file: renders without reference mixing", LICENCE]
        if not changed:
            notes.insert(0, "the fine-tuned generator equals its base: the delta is zero")
        method.save(dst, extra={"source": REPO, "source_file": src.name,
                                "base_file": base_path.name, "notes": notes,
                                "licence": LICENCE, "generator_config": t_cfg.to_dict()})
        return ConversionResult(path=dst, kind=KIND, plugin=method.name,
                                n_tensors=len(method.state_dict()), notes=tuple(notes))

    @staticmethod
    def _method(cfg: GeneratorConfig, changed: list[str]) -> MindTheGap:
        """A zero delta over exactly the style layers (and the constant input) that changed."""
        owner = {name: layer.index for layer in generator_layout(cfg)
                 for name in parameter_names(layer).values()}
        layers = sorted({owner[k] for k in changed if k in owner})
        return MindTheGap(size=cfg.size, style_dim=cfg.style_dim, channels=cfg.channels,
                          layers=layers, input="input.input" in changed)


@hookimpl
def register_converters(register: Any) -> None:
    register(MindTheGapConverter())
