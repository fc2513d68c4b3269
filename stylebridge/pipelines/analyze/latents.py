"""``analyze latents`` end to end: load the generator, encoders and domains, collect the
statistics, build the reports and write ``latents.png`` / ``.md`` / ``.json`` (see the
package docstring).  :class:`LatentsConfig` in, :class:`LatentsResult` out; what happens
meanwhile goes to a :class:`LatentsProgress`, whose methods do nothing by default."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from stylebridge.core.batch import BatchReport, require_inputs
from stylebridge.core.checkpoint import RANDOM_NOTICE
from stylebridge.core.device import resolve_device
from stylebridge.core.interfaces import Encoder
from stylebridge.core.io import atomic_path, write_json
from stylebridge.core.limits import MAX_BATCH, MAX_IMAGE_SIZE, MAX_SAMPLES, check_range
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.adapt import (
    check_domains,
    load_domains,
    load_generator_arg,
    photo_batches,
)
from stylebridge.pipelines.adapter import attach_encoder
from stylebridge.pipelines.analyze.markdown import render_comparison_markdown, render_markdown
from stylebridge.pipelines.analyze.plots import (
    plot_comparison,
    plot_distributions,
    plot_layer,
    save_figure,
)
from stylebridge.pipelines.analyze.report import (
    QUANTITIES,
    LayerRef,
    build_report,
    compare_reports,
    layer_refs,
)
from stylebridge.pipelines.analyze.stats import (
    SimilarityAccumulator,
    collect_encoder_stats,
    collect_mapping_stats,
    model_requests,
)
from stylebridge.pipelines.photos import check_out_folder, weights_path
from stylebridge.pipelines.reproduce.journal import open_rows
from stylebridge.pipelines.resume import (
    file_identity,
    file_setting,
    model_setting,
    releases_outputs,
)
from stylebridge.pipelines.run_record import generator_record, model_file, software
from stylebridge.pipelines.typed import coerce_path_fields
from stylebridge.registry.needed import Request, WeightsCheck, require_weights
from stylebridge.registry.resolve import load_encoder


@dataclass
@coerce_path_fields
class LatentsConfig:
    """One ``analyze latents`` run (the command's options).

    ``encoders``: encoder specs (several: compared side by side); ``generator``: a
    ``[stylegan2:]CKPT`` spec; ``images``: photos (files or folders); ``domains``: domain
    checkpoints for Eq. 5; ``samples`` z drawn from ``seed`` for the mapping network;
    ``layers``: ``all`` or ``conv``; ``fit``: ``origin`` or ``intercept``; ``alpha_tol`` /
    ``r2_min``: the pattern thresholds; ``per_layer``: also one PNG per layer.
    """

    encoders: list[str]
    generator: str
    images: list[str | Path]
    out: Path
    domains: list[str] = field(default_factory=list)
    samples: int = 3000
    seed: int = 0
    layers: str = "all"
    fit: str = "origin"
    alpha_tol: float = 0.1
    r2_min: float = 0.5
    per_layer: bool = False
    align: bool = True
    align_size: int = 1024
    batch: int = 4
    device: str = "auto"
    #: keep the encoders an interrupted run into ``out`` finished (their statistics)
    resume: bool = False

    def weight_requests(self) -> list[Request]:
        """The generator, every encoder and every domain, as ``(kind, spec, option)``: the
        official weights named and not installed are reported together
        (:func:`~stylebridge.registry.needed.missing_weights`)."""
        return model_requests(self.generator, self.encoders, self.domains)


class LatentsProgress:
    """What :func:`run_latents` reports while it works; every method does nothing here."""

    def random_inputs(self, random_inputs: Mapping[str, Any], *, encoder: str = "",
                      generator: Path | None = None) -> None:
        """Inputs just loaded, and whether each runs on random (untrained) weights:
        ``{"encoder": bool}`` per encoder, then ``{"generator": bool, "domains": {name: bool}}``."""

    def progress(self, what: str, done: int, total: int) -> None:
        """``done`` of ``total`` items of ``what`` (``encoding photos (e4e)``, ``sampling N z``)."""

    def stop(self) -> None:
        """Every statistic is collected (reports and plots follow)."""

    def note(self, text: str) -> None:
        """A line to show: an interrupted run continued (``resume``) or replaced."""

    def failed(self, report: BatchReport) -> None:
        """An encoder's statistics failed (e.g. no readable photo); ``report`` says which
        photos were skipped.  The error is raised right after."""


@dataclass
class EncoderRun:
    """One encoder of ``analyze latents``: its statistics, photo report and JSON report."""

    label: str
    spec: str
    random: bool
    means: list[Tensor]
    n_images: int
    sims: dict[str, SimilarityAccumulator]
    batch: BatchReport
    result: dict[str, Any] = field(default_factory=dict)
    #: its checkpoint file as loaded (path, size, time, sha256; None: random weights)
    file: dict[str, Any] | None = None


@dataclass
class LatentsResult:
    """What :func:`run_latents` computed and wrote.

    ``runs``: one per encoder (``result`` holds its JSON report); ``layers``: the reported
    style layers; ``domains``: the domain names; ``random``: some input had random weights;
    ``written``: the files and folders written in ``out``; ``comparison``: the side-by-side
    report (several encoders only).
    """

    runs: list[EncoderRun]
    layers: list[LayerRef]
    domains: list[str]
    samples: int
    random: bool
    out: Path
    written: list[str]
    comparison: dict[str, Any] | None = None

    @property
    def exit_code(self) -> int:
        return max(run.batch.exit_code for run in self.runs)


#: the command whose interrupted runs ``resume`` continues
COMMAND = "analyze latents"


def _quantities(report: Mapping[str, Any]) -> dict[str, Any]:
    """The units and better directions of the report's numbers (its ``quantities``)."""
    keys = ["alpha", "r2", "corr_r2"] + (["cos", "adaptability"] if report["domains"] else [])
    return {k: QUANTITIES[k].as_dict() for k in keys}


def _check(config: LatentsConfig) -> None:
    check_range("--batch", config.batch, 1, MAX_BATCH)
    check_range("--align-size", config.align_size, 1, MAX_IMAGE_SIZE)
    check_range("--samples", config.samples, 1, MAX_SAMPLES)
    if config.alpha_tol < 0:
        raise StylebridgeError(f"--alpha-tol {config.alpha_tol}: must be >= 0")
    if not 0.0 <= config.r2_min <= 1.0:  # NaN too: it classified every layer independent
        raise StylebridgeError(f"--r2-min {config.r2_min}: must be in [0, 1] (a squared "
                               "correlation)")
    check_out_folder(config.out, config.images)  # a rerun would read latents.png as a photo


def _encoder_batches(paths: Sequence[Path], report: BatchReport, config: LatentsConfig,
                     enc_size: int, what: str, progress: LatentsProgress,
                     enc_filter: str = "torch-bilinear") -> Iterator[Tensor]:
    """Stacked encoder inputs of the readable photos; each yielded photo is marked done."""
    for chunk in photo_batches(paths, report, enc_size=enc_size, tile=8, batch=config.batch,
                               align=config.align, align_size=config.align_size,
                               enc_filter=enc_filter):
        yield torch.stack(chunk.inputs)
        for p in chunk.paths:
            report.ok(p)
        progress.progress(what, len(report.done) + len(report.skipped), len(paths))


def plot_notice(meta: Mapping[str, Any]) -> str | None:
    """What a plot of random weights keeps in its file (shown on it too)."""
    if not meta.get("random_weights"):
        return None
    return f"{RANDOM_NOTICE}: computed with untrained (random) weights, not real statistics"


def write_report(out: Path, result: dict[str, Any], src_means: Sequence[Tensor],
                 enc_means: Sequence[Tensor], per_layer: bool) -> dict[str, str]:
    """``latents.png`` (+ ``layers/``), ``latents.md`` and ``latents.json`` of one encoder."""
    out.mkdir(parents=True, exist_ok=True)
    files = {"plot": "latents.png", "markdown": "latents.md", "json": "latents.json"}
    notice = plot_notice(result["meta"])
    save_figure(plot_distributions(src_means, enc_means, result), out / files["plot"],
                notice=notice)
    if per_layer:
        for row in result["layers"]:
            i = row["index"]
            save_figure(plot_layer(src_means[i], enc_means[i], row, result["meta"]),
                        out / "layers" / f"layer_{i:02d}.png", notice=notice)
        files["per_layer"] = "layers/"
    result["files"] = files
    with atomic_path(out / files["markdown"]) as tmp:
        tmp.write_text(render_markdown(result), encoding="utf-8", errors="surrogateescape")
    write_json(out / files["json"], result)
    return files


def _load_encoders(config: LatentsConfig, device: torch.device, gen: Any,
                   progress: LatentsProgress) -> list[tuple[str, str, Encoder, bool]]:
    """``(label, spec, encoder, random)`` per spec; a repeated name becomes ``name-2`` ..."""
    encoders: list[tuple[str, str, Encoder, bool]] = []
    for spec in config.encoders:
        encoder, enc_random = load_encoder(spec, device)
        attach_encoder(encoder, gen)  # check_generator's refusal before a photo is read
        label, k = encoder.name, 2
        while label in {e[0] for e in encoders}:
            label, k = f"{encoder.name}-{k}", k + 1
        encoders.append((label, spec, encoder, enc_random))
        progress.random_inputs({"encoder": enc_random}, encoder=encoder.name)
    return encoders


def _settings(config: LatentsConfig, g_path: Path, encoders: Sequence[tuple[str, str, Any, bool]],
              domains: Mapping[str, Any], paths: Sequence[Path]) -> dict[str, Any]:
    """What a resumed run must share with the interrupted one on the encoders' side."""
    return {"--encoder": [model_setting(spec, weights_path(enc)) for _, spec, enc, _ in encoders],
            "--generator": file_setting(g_path),
            "--domain": [model_setting(str(spec), weights_path(m))
                         for spec, m in zip(config.domains, domains.values(), strict=True)],
            "--images": [file_identity(p) for p in paths], "--align": bool(config.align),
            "--align-size": config.align_size if config.align else None}


def _row_of(run: EncoderRun) -> dict[str, Any]:
    """An encoder's statistics as JSON values (floats round-trip exactly)."""
    return {"key": run.label, "n_images": run.n_images,
            "means": [m.tolist() for m in run.means],
            "sims": {name: {"cos": None if acc.cos is None else acc.cos.tolist(),
                            "dot": None if acc.dot is None else acc.dot.tolist(),
                            "count": acc.count} for name, acc in run.sims.items()},
            "report": run.batch.as_dict()}


def _run_from_row(row: Mapping[str, Any], spec: str, random: bool) -> EncoderRun:
    sims = {}
    for name, saved in row["sims"].items():
        acc = SimilarityAccumulator()
        if saved["cos"] is not None:
            acc.cos = torch.tensor(saved["cos"], dtype=torch.float64)
            acc.dot = torch.tensor(saved["dot"], dtype=torch.float64)
        acc.count = int(saved["count"])
        sims[name] = acc
    report = BatchReport(done=[Path(p) for p in row["report"]["done"]],
                         skipped=[(Path(s["file"]), s["reason"])
                                  for s in row["report"]["skipped"]])
    return EncoderRun(row["key"], spec, random,
                      [torch.tensor(m, dtype=torch.float32) for m in row["means"]],
                      int(row["n_images"]), sims, report)


@releases_outputs
def run_latents(config: LatentsConfig, progress: LatentsProgress | None = None, *,
                ensure_weights: WeightsCheck | None = None) -> LatentsResult:
    """``analyze latents``: see the package docstring.  One-line errors for bad options or
    inputs; photos that cannot be read (or aligned) are skipped and reported per encoder.
    ``ensure_weights`` gets :meth:`LatentsConfig.weight_requests` after the cheap checks,
    before anything loads: by default one error naming every official download the run
    lacks; ``analyze latents --fetch`` downloads them."""
    lacking = [] if progress is None else [  # a subclass, or an object with its methods
        m for m in ("random_inputs", "progress", "stop", "note")
        if not callable(getattr(progress, m, None))]
    if lacking:
        from stylebridge.errors import InputTypeError

        raise InputTypeError(f"run_latents: progress must be a LatentsProgress (subclass it "
                             f"and override what you need) or None, got "
                             f"{type(progress).__name__} (no {lacking[0]}())")
    progress = LatentsProgress() if progress is None else progress
    _check(config)
    device = resolve_device(config.device)
    paths = require_inputs(config.images)
    (ensure_weights or require_weights)(config.weight_requests())
    gen, gen_random, g_path = load_generator_arg(config.generator, device)
    refs = layer_refs(gen, config.layers)
    encoders = _load_encoders(config, device, gen, progress)
    domains, domain_random = load_domains(config.domains, device)
    domain_info: dict[str, dict[str, Any]] = {}
    check_domains(domains.values(), gen)
    for (name, method), spec in zip(domains.items(), config.domains, strict=True):
        domain_info[name] = {"spec": spec, "method": method.name,
                             "random_weights": domain_random[name],
                             "weight_offsets_excluded": method.has_weight_offsets()}
    dom_random = any(domain_random.values())
    progress.random_inputs({"generator": gen_random, "domains": domain_random}, generator=g_path)

    journal = open_rows(
        config.out, COMMAND, _settings(config, g_path, encoders, domains, paths),
        resume=config.resume, how={"--batch": config.batch, "--device": str(device)},
        unit="encoder")
    for line in journal.notices:
        progress.note(line)
    runs: list[EncoderRun] = []
    try:
        for label, spec, encoder, enc_random in encoders:
            if label in journal.kept:  # its statistics, from the interrupted run (resume)
                runs.append(_run_from_row(journal.kept[label][0], spec, enc_random))
                runs[-1].file = model_file(encoder)
                progress.note(f"encoder {label}: kept from the interrupted run")
                continue
            enc_size = int(encoder.preprocessing.size or gen.size)
            report = BatchReport()
            what = f"encoding photos ({label})"
            progress.progress(what, 0, len(paths))
            batches = _encoder_batches(paths, report, config, enc_size, what, progress,
                                       encoder.preprocessing.resize)
            try:
                means, n_images, sims = collect_encoder_stats(encoder, gen, batches, domains,
                                                              report)
            except StylebridgeError:
                progress.failed(report)
                raise
            runs.append(EncoderRun(label, spec, enc_random, means, n_images, sims, report,
                                   file=model_file(encoder)))
            journal.record(_row_of(runs[-1]), [])
        what, sampled = f"sampling {config.samples} z", [0]
        progress.progress(what, 0, config.samples)

        def advance(n: int) -> None:
            sampled[0] += n
            progress.progress(what, sampled[0], config.samples)

        src_means, src_sims = collect_mapping_stats(gen, domains, config.samples,
                                                    seed=config.seed, advance=advance)
    finally:
        progress.stop()

    # what else the numbers depend on: the alignment size, the generator's content, versions
    provenance = {"align_size": config.align_size if config.align else None,
                  "generator_sha256": generator_record(None, g_path, gen)["generator_sha256"],
                  "software": software(), "cwd": os.getcwd()}
    for run in runs:
        result = build_report(src_means, run.means, refs, source_sims=src_sims,
                              encoder_sims=run.sims, fit=config.fit, alpha_tol=config.alpha_tol,
                              r2_min=config.r2_min)
        for name, info in domain_info.items():
            result["domains"][name] = {**info, **result["domains"][name]}
        random_inputs = {"encoder": run.random, "generator": gen_random, "domains": dom_random}
        meta = {"encoder": run.spec, "generator": str(g_path), "n_images": run.n_images,
                "samples": config.samples, "seed": config.seed, "layers": config.layers,
                "aligned": bool(config.align), "random_weights": any(random_inputs.values()),
                "random_inputs": random_inputs, "encoder_file": run.file, **provenance}
        if meta["random_weights"]:
            meta["notes"] = ["computed with random weights: not real statistics"]
        run.result = {"meta": meta, **result, "quantities": _quantities(result),
                      **run.batch.as_dict()}

    out = config.out
    random = gen_random or dom_random or any(r.random for r in runs)
    comparison = None
    if len(runs) == 1:
        run = runs[0]
        written = list(write_report(out, run.result, src_means, run.means,
                                    config.per_layer).values())
    else:
        for run in runs:
            write_report(out / run.label, run.result, src_means, run.means, config.per_layer)
        results = {r.label: r.result for r in runs}
        parts = [f"encoder {r.label}" for r in runs if r.random]
        parts += ["generator"] * gen_random + ["domains"] * dom_random
        meta = {"encoders": {r.label: r.spec for r in runs}, "generator": str(g_path),
                "samples": config.samples, "seed": config.seed,
                "n_images": {r.label: r.n_images for r in runs}, "aligned": bool(config.align),
                "random_weights": random, "random_parts": parts,
                "encoder_files": {r.label: r.file for r in runs}, **provenance}
        comparison = {"meta": meta, **compare_reports(results)}
        comparison["quantities"] = _quantities(comparison)
        save_figure(plot_comparison(src_means, {r.label: r.means for r in runs}, results, meta),
                    out / "latents.png", notice=plot_notice(meta))
        with atomic_path(out / "latents.md") as tmp:
            tmp.write_text(render_comparison_markdown(comparison, meta), encoding="utf-8",
                           errors="surrogateescape")
        write_json(out / "latents.json", comparison)
        written = ["latents.png", "latents.md", "latents.json",
                   *(f"{r.label}/" for r in runs)]
    journal.finish()
    return LatentsResult(runs=runs, layers=refs, domains=list(domains), samples=config.samples,
                         random=random, out=out, written=written, comparison=comparison)
