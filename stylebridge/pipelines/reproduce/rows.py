"""The rows of ``reproduce thesis-tables``: how each one obtains latents / features."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from stylebridge.core.checkpoint import read_header
from stylebridge.core.interfaces import DomainMethod, Encoder
from stylebridge.core.stylegan2.generator import Generator
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.adapt import Adapter
from stylebridge.pipelines.adapt_inputs import open_featureshift
from stylebridge.pipelines.adapter import attach_encoder
from stylebridge.pipelines.presets import (
    fse_random_config,
    random_e4e,
    random_featureshift,
    random_fse,
)
from stylebridge.pipelines.reproduce.common import FSE_MODES, RANDOM_SOURCE, header_random
from stylebridge.pipelines.run_record import model_file
from stylebridge.registry.resolve import load_plugin
from stylebridge.registry.spec import parse_plugin_spec
from stylebridge.registry.weights import WeightsManager


class RowSkipped(Exception):
    """A row's weights are missing (and random weights were not allowed)."""


@dataclass
class RowSetup:
    """What renders one row: an :class:`Adapter` (``None`` for ``orig``) and its provenance."""

    adapter: Any
    random: bool
    sources: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: ``{role: {"path", "sha256"}}`` of each checkpoint the row loaded (as loaded; none for
    #: random networks)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Sources:
    """The weights given for the rows (``None`` = missing)."""

    e4e: str | None = None
    fse: str | None = None
    featureshift_e4e: Path | None = None
    featureshift_fse: Path | None = None



def encoder_spec(text: str | None, name: str) -> str | None:
    """``--e4e``/``--fse`` value (``[NAME:]CKPT[:k=v]``), or the installed weights, or None."""
    if text:
        spec = parse_plugin_spec(text, what=f"--{name}")
        if spec.path is not None and not spec.path.is_file():
            raise StylebridgeError("no such file", path=spec.path)
        return text
    path = WeightsManager().resolve("encoder", name)
    return None if path is None else f"{name}:{path}"


class RowBuilder:
    """Builds each row's :class:`RowSetup` (loading weights one row at a time)."""

    def __init__(self, generator: Generator, sources: Sources, *, device: torch.device,
                 methods: Mapping[str, DomainMethod], allow_random: bool, seed: int) -> None:
        self.generator, self.sources, self.device = generator, sources, device
        self.methods, self.allow_random, self.seed = dict(methods), allow_random, seed

    def _missing(self, what: str, option: str) -> None:
        if not self.allow_random:
            raise RowSkipped(f"no {what} weights (give {option}; --allow-random computes the row "
                             "on random weights, labelled)")

    def encoder(self, name: str, mode: str | None = None, layer: int | None = None
                ) -> tuple[Encoder, bool, str]:
        """(encoder, random, source) for ``e4e`` or ``fse`` (``mode``/``layer`` overrides)."""
        text = self.sources.e4e if name == "e4e" else self.sources.fse
        if text is None:
            self._missing(name, f"--{name}")
            if name == "e4e":
                return random_e4e(self.generator, self.seed).to(self.device), True, RANDOM_SOURCE
            enc = random_fse(self.generator, mode or "features", self.seed,
                             layer if layer is not None else 5)
            return enc.to(self.device), True, RANDOM_SOURCE
        spec = parse_plugin_spec(text, what=f"--{name}")
        overrides: dict[str, Any] = {}
        if mode is not None:
            overrides["mode"] = mode
        if layer is not None:
            overrides["layer"] = layer
        encoder = load_plugin("encoder", spec, device=self.device, **overrides)
        if not isinstance(encoder, Encoder):
            raise StylebridgeError(f"--{name} {text!r} did not build an encoder")
        random = bool(encoder.random_weights)
        if spec.path is not None:
            random = random or header_random(read_header(spec.path).extra)
        # check_generator's refusal before the row's photos are read; the Adapter binds it
        attach_encoder(encoder, self.generator, bind=False)
        return encoder, random, text

    def featureshift(self, key: str) -> tuple[torch.nn.Module, bool, str, list[str]]:
        path = self.sources.featureshift_e4e if key == "featureshift_e4e" else \
            self.sources.featureshift_fse
        option = "--" + key.replace("_", "-")
        notes: list[str] = []
        if path is None:
            self._missing("FeatureShift", option)
            layer = fse_random_config(self.generator)["layer"]
            if self.sources.fse is not None:
                spec = parse_plugin_spec(self.sources.fse, what="--fse")
                if spec.path is not None:
                    layer = int(read_header(spec.path).config.get("layer", layer))
            model = random_featureshift(self.generator, layer, self.seed).to(self.device)
            return model, True, RANDOM_SOURCE, notes
        model, header, _ = open_featureshift(path, self.device)  # recorded with its sha256
        recorded = header.extra.get("guiding_encoder")
        want = "e4e" if key == "featureshift_e4e" else "fse"
        if isinstance(recorded, Mapping) and recorded.get("name") not in (None, want):
            notes.append(f"{path.name} was trained with guide {recorded.get('name')!r}, used here "
                         f"with {want}")
        return model, header_random(header.extra), str(path), notes

    def _build(self, key: str) -> RowSetup:
        if key == "orig":
            return RowSetup(adapter=None, random=False, sources={"latents": "mapping network"})
        if key == "e4e":
            enc, random, src = self.encoder("e4e")
            return RowSetup(Adapter(enc, self.generator, self.methods), random, {"encoder": src})
        if key in FSE_MODES:
            enc, random, src = self.encoder("fse", mode=FSE_MODES[key])
            return RowSetup(Adapter(enc, self.generator, self.methods), random, {"encoder": src})
        if key in ("featureshift_e4e", "featureshift_fse"):
            # check every weight first, so that a missing one skips the row before loading
            if self.sources.fse is None:
                self._missing("fse", "--fse")
            if key == "featureshift_e4e" and self.sources.e4e is None:
                self._missing("e4e", "--e4e")
            model, fs_random, fs_src, notes = self.featureshift(key)
            enc, random, src = self.encoder("fse", mode="features", layer=model.layer)
            guide = None
            sources = {"encoder": src, "featureshift": fs_src}
            if key == "featureshift_e4e":
                guide, g_random, g_src = self.encoder("e4e")
                random = random or g_random
                sources["guide"] = g_src
            else:
                sources["guide"] = "the FSE latents"
            adapter = Adapter(enc, self.generator, self.methods, renderer=model, guide=guide)
            return RowSetup(adapter, random or fs_random, sources, notes)
        raise StylebridgeError(f"unknown row {key!r}")  # pragma: no cover

    def build(self, key: str) -> RowSetup:
        """The :class:`RowSetup` of row ``key`` (raises :class:`RowSkipped`), with
        :attr:`RowSetup.files` naming each checkpoint it loaded by sha256."""
        setup = self._build(key)
        if setup.adapter is not None:
            parts = {"encoder": setup.adapter.encoder, "guide": setup.adapter.guide,
                     "featureshift": setup.adapter.renderer}
            for role, obj in parts.items():
                if obj is not None and setup.sources.get(role) != RANDOM_SOURCE:
                    record = model_file(obj)
                    if record is not None and record.get("sha256"):
                        setup.files[role] = {"path": record.get("path"),
                                             "sha256": record["sha256"]}
        return setup


def orig_latents(generator: Generator, n: int, *, seed: int, truncation: float = 1.0,
                 batch: int = 4) -> Iterator[Tensor]:
    """The ``orig`` row's w+ ``[b, n_latent, D]`` in batches: z ~ N(0, I) from a CPU
    ``torch.Generator`` seeded with ``seed`` (all N drawn at once, so batching does not
    change them), w = mapping(z), truncated towards ``latent_avg`` when ``truncation < 1``."""
    z = torch.randn(n, generator.style_dim, generator=torch.Generator().manual_seed(seed))
    device = generator.latent_avg.device
    for start in range(0, n, batch):
        with torch.no_grad():
            w_plus = generator.make_wplus(z[start:start + batch].to(device), truncation=truncation)
        yield w_plus

