"""Saving and loading StyleGAN2 networks in the stylebridge checkpoint format.

A generator checkpoint has ``kind="generator"``, ``plugin="stylegan2"``, tensors
``g_ema.*`` (the generator, including its ``latent_avg`` buffer) and optionally
``d.*`` (the discriminator), and a header config
``{"generator": {...}, "discriminator": {...} | null}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from stylebridge.core.checkpoint import (
    CheckpointHeader,
    check_implied_shapes,
    check_state_dict,
    load_checkpoint,
    save_checkpoint,
)
from stylebridge.core.device import keep_rng_state
from stylebridge.core.loading import assignable, load_weights
from stylebridge.core.stylegan2.config import DiscriminatorConfig, GeneratorConfig
from stylebridge.core.stylegan2.discriminator import Discriminator
from stylebridge.core.stylegan2.generator import Generator
from stylebridge.errors import CheckpointError

KIND = "generator"
PLUGIN = "stylegan2"


@dataclass
class StyleGAN2Checkpoint:
    """A loaded generator checkpoint."""

    generator: Generator
    discriminator: Discriminator | None
    header: CheckpointHeader
    path: Path


def save_stylegan2(
    path: str | Path,
    generator: Generator,
    discriminator: Discriminator | None = None,
    *,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write generator (+ discriminator) atomically."""
    tensors = {f"g_ema.{k}": v for k, v in generator.state_dict().items()}
    if discriminator is not None:
        tensors.update({f"d.{k}": v for k, v in discriminator.state_dict().items()})
    config = {
        "generator": generator.config(),
        "discriminator": None if discriminator is None else discriminator.config(),
    }
    return save_checkpoint(path, tensors, kind=KIND, plugin=PLUGIN, config=config, extra=extra)


def _split(tensors: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    n = len(prefix)
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix)}


def _real(path: Path, cls: type, config: Any, what: str, keep_rng: bool) -> Any:
    """``cls(**config)`` built on the CPU (random initialisation; ``keep_rng``: the caller's
    random state is left as it was)."""
    try:
        if keep_rng:
            with keep_rng_state():
                return cls(**config)
        return cls(**config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"invalid {what} config in header: {exc}", path=path) from None


def _build(path: Path, cls: type, config: Any, what: str,
           tensors: Mapping[str, torch.Tensor], prefix: str, keep_rng: bool) -> Any:
    """Validate the header's config (types, ranges), check the shapes it implies against the
    file on the meta device: nothing is allocated for a crafted header.  With ``keep_rng``,
    returns that module on ``meta`` for :func:`_fill` to take the tensors by assignment (no
    random initialisation, no second copy); else (or where it cannot) one built on the CPU."""
    if not isinstance(config, dict):
        raise CheckpointError(f"header has no {what} config", path=path)
    config_cls = GeneratorConfig if cls is Generator else DiscriminatorConfig
    try:
        config_cls.from_dict(config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"invalid {what} config in header: {exc}", path=path) from None
    meta = check_implied_shapes(path, lambda: cls(**config), tensors, what=what, prefix=prefix)
    if keep_rng and meta is not None and assignable(meta):
        return meta
    return _real(path, cls, config, what, keep_rng)


def _fill(path: Path, module: Any, config: Any, state: Mapping[str, torch.Tensor],
          what: str) -> Any:
    """Check ``state`` against ``module`` (keys, shapes, dtypes; the values were checked by
    :func:`load_checkpoint`) and load it: the same tensors as a copy into a module built on the
    CPU (:func:`~stylebridge.core.loading.load_weights`)."""
    check_state_dict(path, module.state_dict(), state, what=what, check_finite=False)
    return load_weights(module, state, lambda: _real(path, type(module), config, what, True))


def load_stylegan2(
    path: str | Path,
    *,
    device: str | torch.device = "cpu",
    discriminator: bool = False,
    expect_size: int | None = None,
    keep_rng: bool = False,
) -> StyleGAN2Checkpoint:
    """Load a generator checkpoint; validate config, keys and shapes with one-line errors.

    ``keep_rng=True`` leaves torch's random state as it was: the networks are built on the
    ``meta`` device and take the file's tensors by assignment (no random initialisation, no
    second copy of the weights; the same tensors).  ``False`` (the default, as before) builds
    them on the CPU, drawing their random initialisation from the caller's random stream
    before the weights overwrite it (a caller that seeded first sees its later draws depend
    on that)."""
    path = Path(path)
    header, tensors = load_checkpoint(path, kind=KIND)
    if header.plugin != PLUGIN:
        raise CheckpointError(f"generator plugin {header.plugin!r} is not supported (expected "
                              f"{PLUGIN!r})", path=path)
    g_config = header.config.get("generator")
    gen = _build(path, Generator, g_config, "generator", tensors, "g_ema.", keep_rng)
    if expect_size is not None and gen.size != expect_size:
        raise CheckpointError(
            f"is a {gen.size}px generator with {gen.n_latent} latent rows, expected {expect_size}px",
            path=path)
    gen = _fill(path, gen, g_config, _split(tensors, "g_ema."), "generator")
    disc = None
    if discriminator:
        d_config = header.config.get("discriminator")
        if d_config is None:
            raise CheckpointError("has no discriminator (convert the upstream file with its 'd')",
                                  path=path)
        disc = _build(path, Discriminator, d_config, "discriminator", tensors, "d.", keep_rng)
        disc = _fill(path, disc, d_config, _split(tensors, "d."), "discriminator")
        disc = disc.to(device).eval().requires_grad_(False)
    gen = gen.to(device).eval().requires_grad_(False)
    return StyleGAN2Checkpoint(generator=gen, discriminator=disc, header=header, path=path)
