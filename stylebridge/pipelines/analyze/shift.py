"""``analyze shift-norms``: ‖F‖ versus ‖G^K(w̃) − G^K(w)‖ per domain (thesis, FSE results).

The thesis: "Comparison between L2-norms of FSE predicted feature map F and
G^K(w̃) − G^K(w) showed that the value of the latter one is 100 times less", which is
why FSE's generator-shift mode changes the adapted image so little under StyleSpace.

For each photo the encoder (FSE in ``features`` or ``shift`` mode) gives ``w+`` and the
feature ``F`` at activation ``K``; for each domain ``D``:

* ``feature_norm``: ‖F‖₂ over the whole ``[C, H, W]`` map;
* ``shift_norm``: ‖G^K(s_D) − G^K(s)‖₂ with ``s`` the styles of ``w+`` and ``s_D`` the
  domain's (``D.styles``, with its conv weight offsets when it has any): exactly the
  correction :func:`stylebridge.core.synthesis.synthesize` adds in ``shift`` mode (fixed
  noise buffers);
* ``ratio`` = mean ``feature_norm`` / mean ``shift_norm`` over the photos (the thesis'
  "100 times"), and ``ratio_median`` of the per-photo ratios.

Outputs (``OUT``, atomic): ``shift_norms.json`` and ``shift_norms.md``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from stylebridge.core.batch import BatchReport, require_inputs
from stylebridge.core.checkpoint import RANDOM_NOTICE
from stylebridge.core.device import resolve_device
from stylebridge.core.interfaces import DomainMethod, Encoder, Inversion
from stylebridge.core.io import atomic_path, write_json
from stylebridge.core.stylegan2.generator import Generator
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.adapt import (
    check_domains,
    encoder_batches,
    load_domains,
    load_generator_arg,
)
from stylebridge.pipelines.adapter import attach_encoder, check_inversion
from stylebridge.pipelines.analyze.stats import model_requests, no_readable_photo
from stylebridge.pipelines.photos import check_out_folder
from stylebridge.pipelines.run_record import run_record
from stylebridge.pipelines.typed import coerce_path_fields
from stylebridge.registry.needed import WeightsCheck, require_weights
from stylebridge.registry.resolve import load_encoder

JSON_FILE = "shift_norms.json"
MARKDOWN_FILE = "shift_norms.md"


#: what an encoder without a feature map F is told (``shift-norms`` measures ‖F‖)
NO_FEATURE = "predicts no feature map F (use FSE with mode=features or mode=shift)"

class ShiftNormAccumulator:
    """Per-photo ‖F‖ and ‖G^K(s_D) − G^K(s)‖ for every domain, from inversions."""

    def __init__(self, generator: Generator, domains: Mapping[str, DomainMethod],
                 layer: int | None = None) -> None:
        self.generator, self.domains, self.layer = generator, dict(domains), layer
        self.feature: list[float] = []
        self.shift: dict[str, list[float]] = {name: [] for name in self.domains}

    @torch.no_grad()
    def add(self, inversion: Inversion) -> None:
        if not inversion.features:
            raise StylebridgeError(f"the encoder {NO_FEATURE}")
        k = self.layer if self.layer is not None else min(inversion.features)
        if k not in inversion.features:
            raise StylebridgeError(f"the encoder predicts no feature at activation {k}")
        if self.layer is None:
            self.layer = k
        gen = self.generator
        self.feature += inversion.features[k].flatten(1).double().norm(dim=1).tolist()
        old, _ = gen.features_upto(gen.styles(inversion.w_plus), k, randomize_noise=False)
        for name, method in self.domains.items():
            styles = method.styles(gen, inversion.w_plus)
            new, _ = gen.features_upto(styles, k, randomize_noise=False,
                                       weight_deltas=method.weight_deltas(gen))
            self.shift[name] += (new - old).flatten(1).double().norm(dim=1).tolist()

    def result(self) -> dict[str, dict[str, Any]]:
        """``{domain: {"feature_norm", "shift_norm", "ratio", "ratio_median", "n"}}``."""
        out: dict[str, dict[str, Any]] = {}
        f_mean = statistics.fmean(self.feature) if self.feature else math.nan
        for name, shifts in self.shift.items():
            s_mean = statistics.fmean(shifts) if shifts else math.nan
            per = [f / s for f, s in zip(self.feature, shifts, strict=True) if s > 0]
            out[name] = {"feature_norm": f_mean, "shift_norm": s_mean,
                         # None: the domain does not change activation K at all
                         "ratio": f_mean / s_mean if s_mean > 0 else None,
                         "ratio_median": statistics.median(per) if per else None,
                         "n": len(shifts)}
        return out


def shift_norms(generator: Generator, inversions: Iterable[Inversion],
                domains: Mapping[str, DomainMethod], layer: int | None = None
                ) -> dict[str, dict[str, Any]]:
    """The per-domain norms and ratio over ``inversions`` (see the module docstring)."""
    acc = ShiftNormAccumulator(generator, domains, layer)
    for inversion in inversions:
        acc.add(inversion)
    return acc.result()


@dataclass
@coerce_path_fields
class ShiftNormsConfig:
    """One ``analyze shift-norms`` run: an FSE encoder spec (``fse`` = installed weights,
    mode ``features``), the generator, photos and domain checkpoints."""

    encoder: str
    generator: str
    images: list[str | Path]
    domains: list[str]
    out: Path
    align: bool = True
    align_size: int = 1024
    batch: int = 4
    device: str = "auto"


@dataclass
class ShiftNormsResult:
    data: dict[str, Any]
    report: BatchReport
    written: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return self.report.exit_code


@dataclass
class ShiftNormsJob:
    """Everything :func:`prepare_shift_norms` loaded and checked before a photo is read;
    ``report`` collects the photos :func:`run_shift_norms` skips (filled in when it raises
    because none was left)."""

    config: ShiftNormsConfig
    paths: list[Path]
    generator: Generator
    generator_path: Path
    encoder: Encoder
    domains: dict[str, DomainMethod]
    random_inputs: dict[str, Any]
    report: BatchReport = field(default_factory=BatchReport)

    @property
    def random(self) -> bool:
        r = self.random_inputs
        return bool(r["encoder"] or r["generator"] or any(r["domains"].values()))


def _fmt(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.4g}"


def render_markdown(data: Mapping[str, Any]) -> str:
    lines = ["# ‖F‖ versus ‖G^K(w̃) − G^K(w)‖ per domain"]
    if data["random_weights"]:
        lines.append(f"**{RANDOM_NOTICE}**: some networks are untrained; not the thesis' "
                     "numbers.")
    lines.append(f"Encoder `{data['encoder']}`, activation K = {data['layer']}, "
                 f"{data['n_images']} photo(s). The thesis observes a ratio of about 100.")
    lines += ["", "| domain | mean ‖F‖ | mean ‖G^K(w̃) − G^K(w)‖ | ratio | median ratio |",
              "|---|---:|---:|---:|---:|"]
    for name, r in data["domains"].items():
        cells = [_fmt(r[k]) for k in ("feature_norm", "shift_norm", "ratio", "ratio_median")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def prepare_shift_norms(config: ShiftNormsConfig, *,
                        ensure_weights: WeightsCheck | None = None) -> ShiftNormsJob:
    """Check the options and ``--out`` and load the generator, encoder and domains (one-line
    errors), before a photo is read.  ``ensure_weights`` gets their requests after the cheap
    checks, before any loads: by default one error naming every official download they
    lack; ``analyze shift-norms --fetch`` downloads them."""
    if config.batch < 1:
        raise StylebridgeError(f"--batch {config.batch}: must be >= 1")
    if not config.domains:
        raise StylebridgeError("give at least one --domain")
    device = resolve_device(config.device)
    paths = require_inputs(config.images)
    check_out_folder(config.out, config.images)  # writable, and no input folder
    (ensure_weights or require_weights)(model_requests(config.generator, [config.encoder], config.domains))
    gen, gen_random, g_path = load_generator_arg(config.generator, device)
    encoder, enc_random = load_encoder(config.encoder, device)
    attach_encoder(encoder, gen)  # check_generator's refusal before a photo is read
    if encoder.feature_layer is None:  # it declares no F: said before a photo is read
        raise StylebridgeError(f"--encoder {config.encoder}: {NO_FEATURE}")
    domains, domain_random = load_domains(config.domains, device)
    check_domains(domains.values(), gen)
    return ShiftNormsJob(config=config, paths=paths, generator=gen, generator_path=g_path,
                         encoder=encoder, domains=domains,
                         random_inputs={"encoder": enc_random, "generator": gen_random,
                                        "domains": domain_random})


def run_shift_norms(job: ShiftNormsJob | ShiftNormsConfig) -> ShiftNormsResult:
    """Encode the photos, measure the norms per domain, write ``shift_norms.json`` / ``.md``
    (a config is prepared first: :func:`prepare_shift_norms`).  With no photo left to
    measure, the error names the first skipped one and ``job.report`` lists them all."""
    if isinstance(job, ShiftNormsConfig):
        job = prepare_shift_norms(job)
    config, gen, encoder, report = job.config, job.generator, job.encoder, job.report
    device = gen.input.input.device
    acc = ShiftNormAccumulator(gen, job.domains, encoder.feature_layer)
    enc_size = int(encoder.preprocessing.size or gen.size)
    with torch.no_grad():
        for batch in encoder_batches(job.paths, report, enc_size=enc_size, batch=config.batch,
                                     align=config.align, align_size=config.align_size,
                                     enc_filter=encoder.preprocessing.resize):
            acc.add(check_inversion(encoder.encode(batch.to(device)), gen, encoder,
                                    int(batch.shape[0])))
    if not acc.feature:
        raise no_readable_photo(report, "to measure the norms on")
    random, domain_random, g_path = job.random, job.random_inputs["domains"], job.generator_path
    data = {"encoder": config.encoder, "generator": str(g_path), "layer": acc.layer,
            "n_images": len(acc.feature), "random_weights": random,
            "domains": {n: {**r, "random_weights": domain_random[n]}
                        for n, r in acc.result().items()},
            # how the photos were read (aligned or not changes every norm), and what made it
            "aligned": bool(config.align),
            "align_size": config.align_size if config.align else None,
            **{k: v for k, v in run_record(None, g_path, generator=gen, encoder=encoder,
                                           domains=job.domains).items()
               if k not in ("generator", "generator_spec")},
            **report.as_dict()}
    config.out.mkdir(parents=True, exist_ok=True)
    write_json(config.out / JSON_FILE, data)
    with atomic_path(config.out / MARKDOWN_FILE) as tmp:
        tmp.write_text(render_markdown(data), encoding="utf-8", errors="surrogateescape")
    return ShiftNormsResult(data=data, report=report, written=[JSON_FILE, MARKDOWN_FILE])
