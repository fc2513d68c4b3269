"""Configurations of the StyleGAN2 generator and discriminator."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from stylebridge.core.schema import (
    CHANNELS,
    SIZE,
    STYLE_DIM,
    ConfigSchemaError,
    Field,
    validate_config,
)


def default_channels(channel_multiplier: int = 2) -> dict[int, int]:
    """Upstream's width per resolution for config-f (``channel_multiplier=2``)."""
    return {
        4: 512, 8: 512, 16: 512, 32: 512,
        64: 256 * channel_multiplier, 128: 128 * channel_multiplier,
        256: 64 * channel_multiplier, 512: 32 * channel_multiplier,
        1024: 16 * channel_multiplier,
    }


def _int_keys(channels: Mapping[Any, int]) -> dict[int, int]:
    return {int(k): int(v) for k, v in channels.items()}


def _check_size(size: int) -> int:
    validate_config({"size": SIZE}, {"size": size})
    return int(size)


#: types and ranges of a generator config (SECURITY.md states them); checked before any layer
#: is built, so a crafted header cannot make the mapping network or a convolution huge
GENERATOR_SCHEMA: Mapping[str, Field] = {
    "size": SIZE,
    "style_dim": STYLE_DIM,
    "n_mlp": Field("int", 1, 32),
    "channel_multiplier": Field("int", 1, 8),
    "blur_kernel": Field("ints", 1, 64, max_len=8),
    "lr_mlp": Field("float", 1e-6, 10.0),
    "channels": CHANNELS,
    "conv_clamp": Field("float", 0.0, 1e6, nullable=True),
}
#: the discriminator's (``stddev_*``: upstream 4 and 1)
DISCRIMINATOR_SCHEMA: Mapping[str, Field] = {
    "size": SIZE,
    "channel_multiplier": Field("int", 1, 8),
    "blur_kernel": Field("ints", 1, 64, max_len=8),
    "channels": CHANNELS,
    "stddev_group": Field("int", 1, 64),
    "stddev_feat": Field("int", 1, 64),
}


def _resolve_channels(size: int, channels: Mapping[Any, int], channel_multiplier: int) -> dict[int, int]:
    """Widths for 4..size px (the given dict, else the config-f defaults), checked complete."""
    chans = _int_keys(channels) if channels else default_channels(channel_multiplier)
    res = [2**i for i in range(2, int(math.log2(size)) + 1)]
    missing = [r for r in res if r not in chans]
    if missing:
        raise ValueError(f"channels has no width for resolution(s) {missing}")
    return {r: chans[r] for r in res}


class _JsonConfig:
    """``to_dict``/``from_dict`` for the frozen config dataclasses (JSON-safe keys)."""

    schema: Mapping[str, Field] = {}

    def _normalise(self) -> None:
        validate_config(self.schema, {f: getattr(self, f) for f in self.__dataclass_fields__})  # type: ignore[attr-defined]
        if len(self.blur_kernel) < 1:  # type: ignore[attr-defined]
            raise ConfigSchemaError("config blur_kernel=[]: expected 1..8 taps")
        object.__setattr__(self, "size", _check_size(self.size))  # type: ignore[attr-defined]
        object.__setattr__(self, "blur_kernel",
                           tuple(int(t) for t in self.blur_kernel))  # type: ignore[attr-defined]
        object.__setattr__(self, "channels", _resolve_channels(
            self.size, self.channels, self.channel_multiplier))  # type: ignore[attr-defined]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)  # type: ignore[call-overload]
        data["blur_kernel"] = list(data["blur_kernel"])
        data["channels"] = {str(k): v for k, v in data["channels"].items()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Any:
        known = set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
        unknown = sorted(set(data) - known)
        if unknown:
            what = cls.__name__.removesuffix("Config").lower()
            raise ValueError(f"unknown {what} config key(s): {', '.join(unknown)}")
        return cls(**dict(data))


@dataclass(frozen=True)
class GeneratorConfig(_JsonConfig):
    """Everything that fixes a generator's architecture (JSON round-trippable)."""

    size: int = 1024
    style_dim: int = 512
    n_mlp: int = 8
    channel_multiplier: int = 2
    blur_kernel: tuple[int, ...] = (1, 3, 3, 1)
    lr_mlp: float = 0.01
    channels: dict[int, int] = field(default_factory=dict)
    conv_clamp: float | None = None

    schema = GENERATOR_SCHEMA

    def __post_init__(self) -> None:
        self._normalise()

    @property
    def log_size(self) -> int:
        return int(math.log2(self.size))

    @property
    def resolutions(self) -> list[int]:
        return [2**i for i in range(2, self.log_size + 1)]

    @property
    def n_latent(self) -> int:
        """Rows of w+ (18 at 1024 px)."""
        return self.log_size * 2 - 2

    @property
    def num_layers(self) -> int:
        """Noise inputs / styled convolutions (17 at 1024 px)."""
        return (self.log_size - 2) * 2 + 1

    @property
    def n_style_layers(self) -> int:
        """Modulated layers incl. ToRGB, i.e. entries of the StyleSpace list (26 at 1024 px)."""
        return self.num_layers + (self.log_size - 1)



@dataclass(frozen=True)
class DiscriminatorConfig(_JsonConfig):
    """Architecture of the residual StyleGAN2 discriminator."""

    size: int = 1024
    channel_multiplier: int = 2
    blur_kernel: tuple[int, ...] = (1, 3, 3, 1)
    channels: dict[int, int] = field(default_factory=dict)
    stddev_group: int = 4
    stddev_feat: int = 1

    schema = DISCRIMINATOR_SCHEMA

    def __post_init__(self) -> None:
        self._normalise()
