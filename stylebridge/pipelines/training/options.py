"""Small parsers shared by the training pipelines (typed values from option strings)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from stylebridge.errors import StylebridgeError


def parse_clip_weights(items: Sequence[str] | None, option: str = "--clip-weights"
                       ) -> dict[str, Path]:
    """``["ViT-B-32=a.safetensors", ...]`` → ``{"ViT-B-32": Path("a.safetensors")}``."""
    out: dict[str, Path] = {}
    for item in items or []:
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise StylebridgeError(f"{option} {item!r}: expected MODEL=PATH")
        out[name.strip()] = Path(path.strip())
    return out
