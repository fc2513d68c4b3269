"""Samples of a generator, and of its domains: the ``generate`` pipeline.

Each seed draws its own z (and, with ``noise="random"``, its own noise maps) from a torch
generator seeded by that seed alone, so an image does not depend on the other seeds of its
batch; another ``batch`` computes it in other groupings, which agree to floating-point
rounding (a pixel may differ by 1/255).  ``seed0007.png`` is the generator's sample; with domain ``methods``
(checkpoints or installed names, as ``adapt --method`` takes them) the same w+ and noise are
also rendered through every domain, ``seed0007_pixar.png`` (``pixar@0.5`` at a
:attr:`GenerateConfig.strength` other than 1): the stochastic setting in which the domain
methods are trained and the thesis' Quality / Diversity are measured.  ``grid.png``: the
samples, each labelled with its seed, or with domains a row per seed (source | each domain, labelled), of the first
:data:`GRID_MAX_SAMPLES` seeds.  Inputs on random weights are named in a red notice under the
grid and in :attr:`GenerateResult.random_parts`.  ``generate.json``, the run record: every
option that changes a pixel (seeds, truncation, noise, precision, domains and strengths), the
generator's absolute path and sha256, the domains' files and the versions
(:mod:`stylebridge.pipelines.run_record`), and each seed's files.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from stylebridge.core.checkpoint import RANDOM_NOTICE
from stylebridge.core.compiled import compile_synthesis
from stylebridge.core.device import resolve_device
from stylebridge.core.images import from_generator_range, load_image, save_png
from stylebridge.core.interfaces import Inversion
from stylebridge.core.io import remove_stale_temporaries, write_json
from stylebridge.core.labels import labelled_grid
from stylebridge.core.limits import MAX_BATCH, check_range
from stylebridge.core.precision import check_precision, slow_precision_notes
from stylebridge.core.synthesis import synthesize
from stylebridge.errors import SpecError, StylebridgeError, user_entry
from stylebridge.pipelines.adapt import check_domains, load_domains, random_parts
from stylebridge.pipelines.adapter import (
    check_strengths,
    domain_generator_notes,
    strength_outputs,
)
from stylebridge.pipelines.photos import (
    check_writable,
    random_file_notice,
    warn_random,
    weights_path,
)
from stylebridge.pipelines.resume import Journal, file_setting, model_setting, releases_outputs
from stylebridge.pipelines.run_record import run_record
from stylebridge.pipelines.training.progress import PHOTO_PROGRESS_SHAPE, check_progress
from stylebridge.pipelines.typed import coerce_path_fields
from stylebridge.registry.needed import Request, WeightsCheck, require_weights
from stylebridge.registry.resolve import load_generator

_SEEDS_RE = re.compile(r"^\d+(-\d+)?$")
# torch's CPU generator (mt19937) keeps only the low 32 bits of a seed for its draws (seeds 0 and
# 2**32 give the same numbers), so larger seeds would silently repeat images
MAX_SEED = 2**32 - 1
MAX_SEEDS = 100_000
SOURCE = "source"  # the generator's own sample, the first grid column with domains
GRID_MAX_SAMPLES = 64  # grid.png shows the first 64 seeds; every seed is written as a PNG
GRID_MIN_TILE = 128  # grid.png tiles smaller than this are enlarged (nearest): readable labels


def parse_seeds(text: str) -> list[int]:
    """``"0-7"``, ``"1,5,9"``, ``"0-3,10"`` → list of seeds (each in ``0..MAX_SEED``)."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not _SEEDS_RE.match(part):
            raise SpecError(f"--seeds {text!r}: expected e.g. 0-7 or 1,5,9")
        lo, _, hi = part.partition("-")
        a, b = int(lo), int(hi or lo)
        if b < a:
            raise SpecError(f"--seeds {text!r}: range {part} is empty")
        if b > MAX_SEED:
            raise SpecError(f"--seeds {text!r}: seed {b} is out of range (seeds must be in "
                            f"0..{MAX_SEED})")
        if len(seeds) + (b - a + 1) > MAX_SEEDS:  # checked before the range is expanded
            raise SpecError(f"--seeds {text!r}: more than {MAX_SEEDS:,} seeds is too many")
        seeds.extend(range(a, b + 1))
    return list(dict.fromkeys(seeds))  # a seed given twice (1,1 or 0-3,2) is one image


def sample_name(seed: int, key: str) -> str:
    """The file of one seed's sample (``key`` :data:`SOURCE`) or domain output ``key``."""
    return f"seed{seed:04d}{'' if key == SOURCE else f'_{key}'}.png"


def seed_inputs(seed: int, style_dim: int, noise_shapes: list[tuple[int, ...]] | None,
                ) -> tuple[Tensor, list[Tensor] | None]:
    """The z ``[style_dim]`` of one seed and, with ``noise_shapes``, its noise maps
    ``[1, *shape[1:]]``: all drawn from a generator seeded by this seed alone, so an image
    does not depend on the other seeds of its batch (z first, as without noise)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(style_dim, generator=g)
    if noise_shapes is None:
        return z, None
    return z, [torch.randn(1, *shape[1:], generator=g) for shape in noise_shapes]


@dataclass
@coerce_path_fields
class GenerateConfig:
    """What :func:`generate` does (one field per ``stylebridge generate`` option)."""

    generator: str = "stylegan2"
    out: Path = Path("samples")
    seeds: str | Sequence[int] = "0-7"
    truncation: float = 1.0              # psi in [0, 1]; 1 = none, 0 = the average w
    noise: str = "const"                 # const: stored buffers; random: drawn from each seed
    batch: int = 4
    device: str = "auto"
    compile: str = "auto"
    precision: str = "fp32"
    methods: Sequence[str] = ()          # domains: each sample is also rendered through them
    strength: float | Sequence[float] = 1.0
    resume: bool = False                 # keep the seeds an interrupted run into out finished

    def seed_list(self) -> list[int]:
        if isinstance(self.seeds, str):
            return parse_seeds(self.seeds)
        seeds = list(dict.fromkeys(int(s) for s in self.seeds))  # each seed once
        if not seeds or any(not 0 <= s <= MAX_SEED for s in seeds):
            raise SpecError(f"seeds must be 1 to {MAX_SEEDS:,} values in 0..{MAX_SEED}")
        return seeds

    def weight_requests(self) -> list[Request]:
        """What this run loads by name, as ``(kind, spec, option)``: the generator and every
        domain; the official weights among them that are not installed are named together
        before anything loads, and ``generate --fetch`` fetches them."""
        return [("generator", self.generator, "--generator"),
                *(("domain_method", str(m), "--method") for m in self.methods)]

    def check(self) -> list[int]:
        """The cheap checks, before anything loads; the seeds."""
        if not 0.0 <= self.truncation <= 1.0:
            raise StylebridgeError(f"--truncation {self.truncation}: must be in [0, 1]")
        if self.noise not in ("const", "random"):
            raise StylebridgeError(f"--noise {self.noise!r}: expected const or random")
        check_range("--batch", self.batch, 1, MAX_BATCH)
        if check_strengths(self.strength) != (1.0,) and not self.methods:
            raise StylebridgeError("--strength applies with --method (a domain to scale)")
        check_writable(self.out)
        return self.seed_list()


@dataclass
class GenerateResult:
    """What :func:`generate` wrote: per seed ``{output: file}`` (``source`` and each domain
    output), ``grid.png``, and the inputs on random weights."""

    files: dict[int, dict[str, Path]]
    grid: Path
    outputs: list[str]
    generator_path: Path
    random_inputs: dict[str, Any] = field(default_factory=dict)  # generator, domains by name
    random_parts: list[str] = field(default_factory=list)
    notice: str | None = None
    #: domains trained on another generator file (also said through ``notice(line)``)
    notes: list[str] = field(default_factory=list)


@user_entry
@releases_outputs
def generate(config: GenerateConfig,
             progress: Callable[[int, int | None, str], None] | None = None,
             notice: Callable[[str], None] | None = None, *,
             ensure_weights: WeightsCheck | None = None) -> GenerateResult:
    """Sample every seed of ``config`` (and render it through every domain); write the PNGs,
    ``grid.png`` and ``generate.json`` (the run record: seeds, truncation, noise, precision,
    domains, strengths, the generator's absolute path and sha256, the versions).
    ``progress(done, total, text)``;
    ``notice(line)``: what to say before the samples (an interrupted run continued with
    ``resume``, or one that a fresh run replaces, a domain trained on another generator
    file: :attr:`GenerateResult.notes`) and a ``--compile`` fall-back to eager.

    After each batch a journal in ``out`` (:mod:`stylebridge.pipelines.resume`) records the
    seeds done and the grid's rows; ``resume`` keeps them and samples the others, and the
    files come out as one uninterrupted run writes them.  The journal is removed at the end.
    ``ensure_weights`` gets :meth:`GenerateConfig.weight_requests` after the cheap checks,
    before anything loads: by default one error naming every official download the run
    lacks; ``generate --fetch`` downloads them.  Called from Python, a run on untrained
    weights says so once, as a :class:`~stylebridge.errors.RandomWeightsWarning`."""
    check_progress(progress, "generate", n_args=3, shape=PHOTO_PROGRESS_SHAPE)
    seeds = config.check()
    device = resolve_device(config.device)
    check_precision(config.precision, device)
    (ensure_weights or require_weights)(config.weight_requests())  # every missing download at once
    gen, provenance = load_generator(config.generator, device)
    gen.set_precision(config.precision)
    compile_synthesis(gen, config.compile, notice=notice)  # a fall-back: said by notice()
    for line in slow_precision_notes(config.precision, device) if notice is not None else ():
        notice(line)
    domains, domain_random = load_domains(config.methods, device)
    check_domains(domains.values(), gen)
    notes = domain_generator_notes(domains.values(), gen)
    strengths = check_strengths(config.strength)
    outputs = strength_outputs(domains, strengths, taken=(SOURCE,))
    random_inputs: dict[str, Any] = {"generator": provenance.random, "domains": domain_random}
    parts = random_parts(random_inputs)
    warn_random("generate", parts)
    noise_shapes = None
    if config.noise == "random":
        noise_shapes = gen.noise_shapes()
    file_notice = {SOURCE: random_file_notice(parts), **{
        key: random_file_notice(parts, name) for key, (name, _) in outputs.items()}}
    journal = Journal.open(
        config.out, "generate", unit="seed", inputs=[str(s) for s in seeds], metrics={},
        resume=config.resume, how={"--batch": config.batch, "--device": str(device),
                                   "--compile": config.compile},
        settings={"--generator": file_setting(provenance.path),
                  "--truncation": config.truncation, "--noise": config.noise,
                  "--method": [model_setting(str(spec), weights_path(method)) for spec, method
                               in zip(config.methods, domains.values(), strict=True)],
                  "--strength": list(strengths), "--precision": config.precision},
        drawn=[f"--method {n}" for n, m in domains.items()
               if domain_random[n] and weights_path(m) is None])
    if progress is not None:
        progress(len(journal.report.done), len(seeds), "generating")
    lines = [*notes, *journal.notices]
    if journal.kept:
        lines.append(f"continuing the interrupted run in {config.out}: {journal.kept} seed(s) "
                     "done before are kept")
    if config.truncation == 0.0 and config.noise == "const" and len(seeds) > 1:
        lines.append("--truncation 0 renders the average w for every seed: with --noise const "
                     "the samples are the same image (--noise random varies the noise alone)")
    for line in lines:
        if notice is not None:
            notice(line)
    config.out.mkdir(parents=True, exist_ok=True)
    # what a killed run (journal or not) left half-written of this run's files, and only
    # those (a file of another name in --out is not this run's)
    remove_stale_temporaries(config.out, [
        *(sample_name(seed, key) for seed in seeds for key in (SOURCE, *outputs)),
        "grid.png", "generate.json"])
    handled = journal.handled  # --resume: the seeds done before are kept (a set, built once)
    todo = [s for s in seeds if str(s) not in handled]
    files = {int(s): {k: config.out / name for k, name in r["files"].items()}
             for s, r in journal.records.items()}
    # the grid's rows of kept seeds are their PNGs (exact: the grid is 8-bit too)
    rows = [[load_image(p) for p in f.values()] for f in list(files.values())[:GRID_MAX_SAMPLES]]
    with torch.no_grad():
        for i in range(0, len(todo), config.batch):
            chunk = todo[i:i + config.batch]
            drawn = [seed_inputs(s, gen.style_dim, noise_shapes) for s in chunk]
            z = torch.stack([d[0] for d in drawn]).to(device)
            noise = None
            if noise_shapes is not None:
                noise = [torch.cat([d[1][k] for d in drawn]).to(device)  # type: ignore[index]
                         for k in range(len(noise_shapes))]
            w_plus = gen.make_wplus([z], truncation=config.truncation)
            images = {SOURCE: gen.synthesis(gen.styles(w_plus), noise=noise,
                                            randomize_noise=False)}
            for key, (name, k) in outputs.items():
                scale = None if k == 1.0 else torch.full((gen.n_style_layers,), k)
                images[key] = synthesize(gen, Inversion(w_plus=w_plus), method=domains[name],
                                         offset_scale=scale, noise=noise)
            cpu = {key: from_generator_range(v).cpu() for key, v in images.items()}
            journal.claim()
            for j, seed in enumerate(chunk):
                files[seed] = {}
                for key, batch in cpu.items():
                    files[seed][key] = save_png(config.out / sample_name(seed, key), batch[j],
                                                notice=file_notice[key])
                if len(rows) < GRID_MAX_SAMPLES:  # the grid is a preview: memory stays flat
                    rows.append([batch[j] for batch in cpu.values()])
                journal.report.ok(Path(str(seed)))
                journal.records[str(seed)] = {"files": {k: p.name
                                                        for k, p in files[seed].items()}}
            journal.save({})
            if progress is not None:
                progress(len(journal.report.done), len(seeds), "generating")
    notice = None
    if parts == ["generator"]:
        notice = f"{RANDOM_NOTICE}: random-weight generator, not a trained model"
    elif parts:
        notice = f"{RANDOM_NOTICE}: not a trained model ({', '.join(parts)})"
    grid_path = config.out / "grid.png"
    save_png(grid_path, _grid(rows, list(outputs), domain_random, outputs, notice,
                              [f"seed {seed}" for seed in files][:len(rows)]),
             grid=True, notice=notice)
    # the run record: every option that changes a pixel (not --batch, --device, --compile:
    # floating-point rounding), the generator's absolute path and sha256, the domains'
    # files, the versions (pipelines/run_record.py)
    write_json(config.out / "generate.json", {
        **run_record(config.generator, provenance.path, generator=gen, domains=domains),
        "seeds": seeds, "truncation": config.truncation,
        "noise": config.noise, "precision": config.precision,
        "domains": dict(zip(domains, config.methods, strict=True)),
        "strength": list(strengths), "random_weights": bool(parts),
        "random_inputs": random_inputs, "random_parts": parts, "notice": notice,
        **({"notes": notes} if notes else {}),
        "files": {str(s): {k: p.name for k, p in f.items()} for s, f in files.items()}})
    journal.finish()
    return GenerateResult(files=files, grid=grid_path, outputs=[SOURCE, *outputs],
                          generator_path=provenance.path, random_inputs=random_inputs,
                          random_parts=parts, notice=notice, notes=notes)


def _grid(rows: list[list[Tensor]], keys: list[str], domain_random: dict[str, bool],
          outputs: dict[str, tuple[str, float]], notice: str | None,
          row_labels: list[str]) -> Tensor:
    """The samples as a square-ish grid, each tile labelled with its seed; with domains a
    labelled row per seed.  Tiles under 128 px are enlarged so the labels stay readable."""
    images = [row[0] for row in rows]
    if keys:
        labels = ["sample", *(f"{key} [{RANDOM_NOTICE}]" if domain_random[outputs[key][0]]
                              else key for key in keys)]
        return labelled_grid(rows, labels, notice=notice, row_labels=row_labels,
                             min_tile=GRID_MIN_TILE)
    ncol = min(len(images), max(1, math.ceil(math.sqrt(len(images)))))
    return labelled_grid([images], [""] * ncol, notice=notice, tile_labels=row_labels,
                         min_tile=GRID_MIN_TILE)


__all__ = ["MAX_SEED", "MAX_SEEDS", "GenerateConfig", "GenerateResult", "generate",
           "parse_seeds", "seed_inputs"]
