"""What ``stylebridge serve`` passes around: the uploaded :class:`Photo`, a :class:`RunRequest`
(one click on "run"), its :class:`RunResult`, the upload check and output file names."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image
from torch import Tensor

from stylebridge.core.images import heif_support, unreadable_reason
from stylebridge.errors import ImageError, StylebridgeError

MAX_PIXELS = 40_000_000     # photos above 40 megapixels are refused (server memory)


@dataclass
class Photo:
    """An uploaded photo: the image ``[3, H, W]``, its FFHQ-aligned crop and its name."""

    image: Tensor
    aligned: Tensor
    name: str

    @property
    def stem(self) -> str:
        """A file stem for what is written from it: the file's stem, or for the preloaded
        ``skimage.data.astronaut()`` its last word (``astronaut``, not ``skimage.data``)."""
        if self.name.endswith("()"):
            return self.name[:-2].rsplit(".", 1)[-1] or "photo"
        return Path(self.name).stem

    def aligned_pil(self) -> Image.Image:
        arr = (self.aligned.permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()
        return Image.fromarray(arr)


@dataclass
class RunRequest:
    """One click on "Run": the encoder spec, the chosen domains and the correction options."""

    encoder: str
    domains: list[str]
    skip_layers: str = ""
    alpha: bool = False
    featureshift: bool = False
    strength: float = 1.0  # how much of each domain's change (Adapter's ``strength``)


@dataclass
class RunResult:
    """What a run produced: ``images`` (``inversion`` and every domain, ``[3, S, S]``),
    the labelled ``grid``, the metrics table (``columns``, rows of ``(name, values)``) and
    its ``notes`` (e.g. no face found in an output), the inputs on random weights, and the
    files offered for download."""

    images: dict[str, Tensor]
    grid: Tensor
    columns: list[str]
    rows: list[tuple[str, dict[str, float]]]
    notes: list[str]
    random_parts: list[str]
    notice: str | None
    grid_path: Path
    images_zip: Path
    latents_path: Path
    #: ``licence of NAME (FILE): ...`` per checkpoint the run used whose licence is
    #: non-commercial (the generator, encoders, domains, FeatureShift)
    licences: list[str] = field(default_factory=list)
    #: every setting of the run in one line (:func:`.summary.settings_line`)
    settings: str = ""
    #: the run's id among the server's last runs (:class:`.summary.RunHistory`)
    run_id: str = ""

    def table(self) -> list[list[Any]]:
        """The metrics as rows ``[name, value per column]`` (``None`` where not computed)."""
        return [[name, *(round(values[c], 4) if c in values else None for c in self.columns)]
                for name, values in self.rows]


def licence_lines(paths: Iterable[Path | str | None]) -> list[str]:
    """The non-commercial licence line of each checkpoint file among ``paths`` (once each,
    in order), read from its header as the command line says them."""
    from stylebridge.core.checkpoint import read_header
    from stylebridge.registry.licences import noncommercial_notice

    lines: list[str] = []
    for path in dict.fromkeys(Path(p) for p in paths if p is not None):
        try:
            notice = noncommercial_notice(path, read_header(path).extra)
        except (StylebridgeError, OSError):
            continue  # loading it said what is wrong
        if notice is not None and notice not in lines:
            lines.append(notice)
    return lines


def check_photo_file(path: str | Path, max_pixels: int = MAX_PIXELS) -> None:
    """Refuse a file that is no image or is larger than ``max_pixels`` before decoding it
    (PIL reads only the header here); one-line :class:`ImageError` naming the file."""
    path = Path(path)
    heif_support()
    try:
        with Image.open(path) as img:
            width, height = img.size
    except Image.DecompressionBombError:  # PIL refuses the header of a giant image itself
        raise ImageError(f"image is larger than the web app's {max_pixels / 1e6:g} megapixel "
                         "limit", path=path.name) from None
    except (OSError, ValueError, SyntaxError):
        why = unreadable_reason(path, "is not an image file (PNG, JPEG, WebP, HEIC... expected)")
        raise ImageError(why, path=path.name) from None
    if width * height > max_pixels:
        raise ImageError(f"image is {width}×{height} ({width * height / 1e6:.0f} megapixels), "
                         f"larger than the web app's {max_pixels / 1e6:g} megapixel limit",
                         path=path.name)


def _safe(name: str, limit: int = 80) -> str:
    """A file stem from an output name: letters, digits, ``-_.``; a long one (a 500-character
    prompt, or one in a script of multi-byte letters) is cut and keeps a short digest, so it
    stays under the file system's 255 bytes and two long names stay apart."""
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name).strip("._") or "x"
    if len(stem.encode("utf-8")) <= limit:
        return stem
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:10]
    cut = stem
    while len(cut.encode("utf-8")) > limit - 11:
        cut = cut[:-1]
    return f"{cut}-{digest}"


__all__ = ["MAX_PIXELS", "Photo", "RunRequest", "RunResult", "check_photo_file"]
