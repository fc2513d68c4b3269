"""The `tiny-pool` encoder: one plugin module, registered through `register_encoders`."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from stylebridge.core.interfaces import Encoder, Inversion, Preprocessing
from stylebridge.registry import hookimpl


class TinyPoolEncoder(Encoder):
    """Average-pools the image to a grid and maps it linearly to w+ (a toy, for templates)."""

    name = "tiny-pool"

    def __init__(self, n_latent: int = 18, style_dim: int = 512, grid: int = 4,
                 input_size: int = 64) -> None:
        # Reject bad options here, before any tensor is made: stylebridge shows a
        # ValueError/TypeError as one line naming the plugin and this package
        # (`--encoder tiny-pool:n_latent=-1`), where torch would raise a RuntimeError.
        for option, value in (("n_latent", n_latent), ("style_dim", style_dim),
                              ("grid", grid), ("input_size", input_size)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{option} must be an integer, got {value!r}")
            if value < 1:
                raise ValueError(f"{option} must be >= 1, got {value}")
        super().__init__()
        self._config = {"n_latent": n_latent, "style_dim": style_dim, "grid": grid,
                        "input_size": input_size}
        self.preprocessing = Preprocessing(size=input_size)
        self.pool = nn.AdaptiveAvgPool2d(grid)
        self.head = nn.Linear(3 * grid * grid, n_latent * style_dim)
        self.n_latent, self.style_dim = n_latent, style_dim

    def config(self) -> dict[str, Any]:
        return dict(self._config)

    def encode(self, images: Tensor) -> Inversion:
        x = self.pool(self.preprocessing(images)).flatten(1)
        w_plus = self.head(x).view(-1, self.n_latent, self.style_dim)
        return Inversion(w_plus=w_plus)


@hookimpl
def register_encoders(register: Any) -> None:
    register(TinyPoolEncoder)


__all__ = ["TinyPoolEncoder", "register_encoders"]
