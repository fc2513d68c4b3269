"""The CLIP models of ``reproduce thesis-tables`` and the Quality / Diversity scorer."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from stylebridge.core.checkpoint import file_random
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.reproduce.domains import DomainEntry
from stylebridge.plugins.nets.clip import (
    clip_fetch_hint,
    import_open_clip,
    installed_clip_weights,
)
from stylebridge.registry import get_registry


@dataclass
class ClipChoice:
    """A CLIP model of the table: open_clip name, local weights (or None = random)."""

    name: str
    weights: Path | None
    random: bool


def parse_clip_weights(items: Sequence[str]) -> dict[str, Path]:
    """``NAME=PATH`` items → ``{name: path}``."""
    out: dict[str, Path] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise StylebridgeError(f"--clip-weights {item!r}: expected NAME=PATH, "
                                   "e.g. ViT-B-32=ViT-B-32.safetensors")
        if name.strip() in out:
            raise StylebridgeError(f"--clip-weights gives {name.strip()!r} twice")
        out[name.strip()] = Path(os.path.expanduser(path.strip()))
    return out


def register_clip_configs(paths: Sequence[Path]) -> None:
    """Make open_clip know extra architectures (``NAME.json`` files or folders of them)."""
    if not paths:
        return
    open_clip = import_open_clip()
    for path in paths:
        if not path.exists():
            raise StylebridgeError("no such file or directory", path=path)
        open_clip.add_model_config(path)


def check_clip_weights(names: Sequence[str], weights: Mapping[str, Path]) -> None:
    """One line for a ``--clip-weights`` model that is not among ``--clip``: said before the
    models are looked for, so that a typo is not answered with a download."""
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise StylebridgeError(f"--clip-weights names {unknown}, which are not among --clip "
                               f"{list(names)}")


def resolve_clips(names: Sequence[str], weights: Mapping[str, Path], *, allow_random: bool,
                  notes: list[str]) -> list[ClipChoice]:
    """The CLIP models to use; models without weights are dropped (noted) unless ``allow_random``."""
    check_clip_weights(names, weights)
    out: list[ClipChoice] = []
    for name in dict.fromkeys(names):
        given = weights.get(name)
        path = given or installed_clip_weights(name)
        if path is not None:
            if not path.is_file():
                raise StylebridgeError("no such file", path=path)
            out.append(ClipChoice(name, path, file_random(path)))
        elif allow_random:
            out.append(ClipChoice(name, None, True))
        else:
            notes.append(f"CLIP {name} left out: no weights ({clip_fetch_hint(name)}give "
                         f"--clip-weights {name}=PATH, or --allow-random for a labelled "
                         "random-weight run)")
    if not out:
        hints = "; ".join(f"{name}: {clip_fetch_hint(name)}give --clip-weights {name}=PATH"
                          for name in dict.fromkeys(names))
        raise StylebridgeError(f"no CLIP model has weights ({hints}; or --allow-random to "
                               "test the code paths)")
    return out


class Scorer:
    """``clip_quality`` and ``clip_diversity`` for every (domain, CLIP model).

    The metric objects come from the registry (:mod:`stylebridge.plugins.metrics.clip`).  Each
    builds its own CLIP network; all metrics of one CLIP model then share the first one's
    network (the same weights file, or the same seed for random weights, so the networks
    are identical) and the others are freed: 70 domains keep one copy per model in memory.
    """

    def __init__(self, domains: Sequence[DomainEntry], clips: Sequence[ClipChoice], *,
                 template: str, device: torch.device, seed: int = 0,
                 registry: Any = None) -> None:
        registry = registry or get_registry()
        self.domains = list(domains)
        self.clips = list(clips)
        # quality[domain][clip][target]: one clip_quality per Quality target the domain has
        self.quality: dict[str, dict[str, dict[str, Any]]] = {d.name: {} for d in self.domains}
        self.diversity: dict[str, dict[str, Any]] = {d.name: {} for d in self.domains}

        def build(name: str, **options: Any) -> Any:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                return registry.create("metric", name, **options)

        for clip in self.clips:
            common = {"model": clip.name, "weights": None if clip.weights is None
                      else str(clip.weights), "allow_random": clip.random and clip.weights is None,
                      "device": str(device)}
            base = build("clip_diversity", **common)
            shared = base.clip
            for d in self.domains:
                per_target = {}
                for target, options in d.quality_targets(template).items():
                    quality = build("clip_quality", **common, **options)
                    quality.clip = shared
                    per_target[target] = quality
                self.quality[d.name][clip.name] = per_target
                diversity = copy.copy(base)
                diversity.reset()
                self.diversity[d.name][clip.name] = diversity

    def reset(self) -> None:
        for per_clip in self.diversity.values():
            for metric in per_clip.values():
                metric.reset()
        for per_clip_targets in self.quality.values():
            for per_target in per_clip_targets.values():
                for metric in per_target.values():
                    metric.reset()

    @torch.no_grad()
    def update(self, domain: str, images01: Tensor) -> None:
        """Score adapted images ``[B, 3, H, W]`` in ``[0, 1]`` of one domain."""
        for clip in self.clips:
            for metric in self.quality[domain][clip.name].values():
                metric.update(images01)
            self.diversity[domain][clip.name].update(images01)

    def compute(self) -> dict[str, dict[str, dict[str, float]]]:
        """``{domain: {clip: {"quality", "quality_text", "quality_image", "diversity"}}}``:
        ``quality_text`` / ``quality_image`` against the domain's text / reference image
        (``None`` when it has none), ``quality`` the text one when there is one."""
        out: dict[str, dict[str, dict[str, float | None]]] = {}
        for d in self.domains:
            out[d.name] = {}
            for c in self.clips:
                metrics = self.quality[d.name][c.name]
                q = {t: float(m.compute()["clip_quality"]) for t, m in metrics.items()}
                text, image = q.get("text"), q.get("reference-image")
                out[d.name][c.name] = {
                    "quality": text if text is not None else image,
                    "quality_text": text, "quality_image": image,
                    "diversity": float(self.diversity[d.name][c.name].compute()["clip_diversity"])}
        return out

