"""Converters for official StyleGAN2 checkpoints → stylebridge generator checkpoints.

* ``stylegan2-rosinality``: rosinality/stylegan2-pytorch ``.pt`` files.
* ``stylegan2-nvlabs``: NVlabs stylegan2-ada-pytorch ``.pkl`` network pickles, read
  with a restricted unpickler that never imports or runs the code they embed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from stylebridge.core.checkpoint import check_state_dict
from stylebridge.core.interfaces import ConversionResult, Converter
from stylebridge.core.stylegan2 import (
    Discriminator,
    DiscriminatorConfig,
    Generator,
    GeneratorConfig,
)
from stylebridge.core.stylegan2.checkpoint import KIND, PLUGIN, save_stylegan2
from stylebridge.core.stylegan2.rosinality import (
    infer_discriminator_config,
    infer_generator_config,
    latent_avg_vector,
    read_rosinality,
)
from stylebridge.errors import ConversionError
from stylebridge.registry import hookimpl

NVIDIA_LICENCE = ("licence: official StyleGAN2 weights (FFHQ etc.) are NVIDIA's, under the NVIDIA "
                  "Source Code License-NC (non-commercial use); the converted file keeps it")


def _expect_size(cfg: GeneratorConfig, options: Mapping[str, Any], src: Path) -> None:
    want = Converter.option(options, "expect_size", int, None, src)
    if want is None:
        return
    want_cfg = GeneratorConfig(size=want)
    if cfg.size != want_cfg.size:
        raise ConversionError(
            f"expected {want_cfg.n_style_layers} style layers for size {want_cfg.size}, found "
            f"{cfg.n_style_layers} (a {cfg.size}px generator)", path=src)


def build_and_save(
    src: Path,
    dst: Path,
    *,
    g_cfg: GeneratorConfig,
    g_state: Mapping[str, Tensor],
    latent_avg: Tensor | None,
    d_cfg: DiscriminatorConfig | None,
    d_state: Mapping[str, Tensor] | None,
    source: str,
    notes: list[str],
) -> ConversionResult:
    """Validate upstream-layout tensors against our modules and write our checkpoint."""
    gen = Generator(**g_cfg.to_dict())
    state = {k: v for k, v in g_state.items()}
    if latent_avg is None:
        state["latent_avg"] = torch.zeros(g_cfg.style_dim)
    else:
        state["latent_avg"] = latent_avg_vector(latent_avg, g_cfg.style_dim, path=src)
    # Noise buffers are optional upstream (older exports); keep ours (random) when absent.
    for name, buf in gen.state_dict().items():
        if name.startswith("noises.") and name not in state:
            state[name] = buf
            if "no stored noise buffers; random ones were drawn" not in notes:
                notes.append("no stored noise buffers; random ones were drawn")
    check_state_dict(src, gen.state_dict(), state,
                     what="generator", error=ConversionError)
    gen.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    if latent_avg is None:
        gen.latent_avg.copy_(gen.mean_latent(4096, seed=0))
        notes.append("no 'latent_avg' in the file; computed the mean of 4096 mapped samples")
    disc = None
    if d_state is not None and d_cfg is not None:
        disc = Discriminator(**d_cfg.to_dict())
        check_state_dict(src, disc.state_dict(), d_state,
                         what="discriminator", error=ConversionError)
        disc.load_state_dict({k: v.float() for k, v in d_state.items()}, strict=True)
    notes.append(NVIDIA_LICENCE)
    save_stylegan2(dst, gen, disc, extra={"source": source, "source_file": src.name,
                                          "notes": notes, "licence": NVIDIA_LICENCE})
    n = len(gen.state_dict()) + (0 if disc is None else len(disc.state_dict()))
    return ConversionResult(path=dst, kind=KIND, plugin=PLUGIN, n_tensors=n, notes=tuple(notes))


class RosinalityConverter(Converter):
    """rosinality/stylegan2-pytorch checkpoint (.pt) → stylebridge generator."""

    name = "stylegan2-rosinality"
    source = "rosinality .pt (g_ema, latent_avg, optional g/d), e.g. stylegan2-ffhq-config-f.pt"
    accepted_options = frozenset({"lr_mlp", "expect_size", "discriminator"})

    def convert(self, src: Path, dst: Path, **options: Any) -> ConversionResult:
        src, dst = Path(src), Path(dst)
        self.check_options(options, src)
        lr_mlp = self.option(options, "lr_mlp", float, 0.01, src)
        want_d = self.option(options, "discriminator", bool, True, src)
        ck = read_rosinality(src)
        with_d = want_d and ck.d is not None
        with _config_errors(src):
            g_cfg = infer_generator_config(ck.g_ema, path=src, lr_mlp=lr_mlp)
            d_cfg = (infer_discriminator_config(ck.d, path=src) if with_d and ck.d is not None
                     else None)
        _expect_size(g_cfg, options, src)
        return build_and_save(src, dst, g_cfg=g_cfg, g_state=ck.g_ema, latent_avg=ck.latent_avg,
                              d_cfg=d_cfg, d_state=ck.d if with_d else None,
                              source="rosinality/stylegan2-pytorch", notes=list(ck.notes))


@contextmanager
def _config_errors(src: Path) -> Iterator[None]:
    """The architecture read from an upstream file, outside the generator schema's ranges (a
    crafted file, or ``-o lr_mlp=nan`` from Python), as a one-line error naming the file."""
    try:
        yield
    except ConversionError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConversionError(f"its network configuration is not usable: {exc}",
                              path=src) from None


class NVlabsConverter(Converter):
    """NVlabs stylegan2-ada-pytorch network pickle (.pkl) → stylebridge generator."""

    name = "stylegan2-nvlabs"
    source = "stylegan2-ada-pytorch .pkl (G_ema, D); embedded code is never run"
    accepted_options = frozenset({"expect_size", "discriminator"})

    def convert(self, src: Path, dst: Path, **options: Any) -> ConversionResult:
        from stylebridge.core.stylegan2.nvlabs import convert_nvlabs_pickle

        src, dst = Path(src), Path(dst)
        self.check_options(options, src)
        with_d = self.option(options, "discriminator", bool, True, src)
        ck = convert_nvlabs_pickle(src, discriminator=with_d)
        with _config_errors(src):
            g_cfg = GeneratorConfig.from_dict(ck.config)
            d_cfg = (DiscriminatorConfig.from_dict(ck.d_config) if ck.d_config is not None
                     else None)
        _expect_size(g_cfg, options, src)
        return build_and_save(src, dst, g_cfg=g_cfg, g_state=ck.g_ema, latent_avg=ck.latent_avg,
                              d_cfg=d_cfg, d_state=ck.d, source="NVlabs/stylegan2-ada-pytorch",
                              notes=list(ck.notes))


@hookimpl
def register_converters(register: Any) -> None:
    register(RosinalityConverter())
    register(NVlabsConverter())
