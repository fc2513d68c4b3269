"""The ``invert`` pipeline: photos → encoder → StyleGAN2 reconstructions (+ saved latents).

:func:`invert` (``stylebridge invert``, :mod:`stylebridge.cli.commands.invert`) takes an
:class:`InvertConfig` and returns an :class:`InvertResult`.  Per input image ``<stem>`` it
writes into ``out``:

* ``<stem>_inversion.png``: the generator's rendering of the inversion;
* with ``--save-latents``, ``<stem>_inversion.safetensors``: a stylebridge
  checkpoint of ``kind="inversion"``, ``plugin=<encoder name>`` (see
  :func:`save_inversion` / :func:`load_inversion`);

and ``grid.png`` (one row per image, the first 64, named on the left: input | inversion),
``metrics.json`` (``metrics``, default MSE and PSNR, of the inversion against the input: the
means and, under ``per_photo``, each photo's own values) and ``invert.json``, the run record
as ``adapt.json`` (encoder spec and checkpoint file, generator path and sha256, alignment,
precision, versions: :mod:`stylebridge.pipelines.run_record`; each photo's files, the
skipped ones).  Both reports are written only when a photo was inverted.  Faces are FFHQ-aligned
first (``align``, the default; :mod:`stylebridge.pipelines.align`, at
``align_size`` pixels, then the encoder's own preprocessing resizes); use
``align=False`` for images that are already aligned.  Unreadable images and
photos without a face are skipped and reported in the result's batch report
(the CLI's exit code is 3 when some inputs were skipped and 2 when all were).  An
interrupted run continues with ``resume`` (:mod:`stylebridge.pipelines.resume`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from stylebridge.core.batch import BatchReport, iter_images, require_inputs
from stylebridge.core.checkpoint import RANDOM_NOTICE
from stylebridge.core.compiled import compile_synthesis
from stylebridge.core.device import resolve_device
from stylebridge.core.images import from_generator_range, resize_square, save_png
from stylebridge.core.interfaces import Encoder
from stylebridge.core.io import remove_stale_temporaries, write_json
from stylebridge.core.labels import labelled_grid
from stylebridge.core.precision import check_precision, slow_precision_notes
from stylebridge.core.synthesis import check_compatible, synthesize
from stylebridge.errors import ImageError, user_entry
from stylebridge.pipelines import output_metrics as om
from stylebridge.pipelines.adapt import INVERSION as INVERSION_KEY
from stylebridge.pipelines.adapt import ProgressCallback, random_parts
from stylebridge.pipelines.adapter import attach_encoder, check_inversion
from stylebridge.pipelines.align import align_face
from stylebridge.pipelines.inversion_file import (
    LATENTS_SUFFIX,
    load_inversion,
    save_inversion,
    select_inversion,
)
from stylebridge.pipelines.metric_weights import metric_setting
from stylebridge.pipelines.photos import (
    PhotoOptions,
    drawn_anew,
    generator_file,
    is_random,
    open_encoder,
    open_generator,
    output_names,
    random_file_notice,
    run_files,
    small_crop_notice,
    warn_random,
    warn_run_end,
    weights_path,
)
from stylebridge.pipelines.resume import Journal, file_setting, model_setting, releases_outputs
from stylebridge.pipelines.run_record import run_record
from stylebridge.pipelines.training.progress import PHOTO_PROGRESS_SHAPE, check_progress
from stylebridge.pipelines.typed import coerce_path_fields
from stylebridge.registry.needed import Request, WeightsCheck, checked_registry
from stylebridge.registry.spec import parse_plugin_spec

if TYPE_CHECKING:
    from stylebridge.core.stylegan2.generator import Generator

IMAGE_SUFFIX = "_inversion.png"
GRID_TILE = 256  # largest tile edge in grid.png
GRID_MAX_ROWS = 64  # grid.png shows the first 64 photos (as adapt's)
REPORTS = ("metrics.json", "invert.json", "grid.png")  # what a run writes besides its photos'


# ---------------------------------------------------------------------------------------------
# The invert pipeline


@dataclass
@coerce_path_fields
class InvertConfig(PhotoOptions):
    """What :func:`invert` does: encoder and generator specs as the CLI takes them; the photo
    options (``images``, ``align``, ``align_size``, ``batch``, ``device``, keywords only) are
    :class:`~stylebridge.pipelines.photos.PhotoOptions`."""

    encoder: str
    generator: str
    out: Path
    save_latents: bool = False
    compile: str = "auto"  # the synthesis network through torch.compile: auto/on/off
    precision: str = "fp32"  # the synthesis network's dtype: fp32 (reference), bf16, fp16
    #: ``eval`` metric specs of the inversion against the input photo (``metrics.json``)
    metrics: Sequence[str] = om.DEFAULT_METRICS
    #: continue the interrupted run in ``out`` (:mod:`stylebridge.pipelines.resume`)
    resume: bool = False

    def weight_requests(self) -> list[Request]:
        """What this run loads, as ``(kind, spec, option)`` (see ``AdaptConfig``)."""
        return [("generator", self.generator, "--generator"),
                ("encoder", self.encoder, "--encoder"),
                *(("metric", m, "--metric") for m in self.metrics)]


@dataclass
class InvertJob:
    """Everything :func:`prepare_invert` loaded and checked, before any photo is read."""

    config: InvertConfig
    paths: list[Path]
    encoder: Encoder
    encoder_name: str
    encoder_spec: str
    generator: Generator
    generator_path: Path
    metrics: om.OutputMetrics = field(default_factory=dict)  # {"inversion": [...]}
    journal: Journal | None = None  # opened by prepare_invert (what --resume continues)
    registry: Any = None  # where prepare_invert took the metrics from (their packages)

    @property
    def random_inputs(self) -> dict[str, bool]:
        """Whether the encoder and the generator run on random weights (their provenance)."""
        return {"encoder": is_random(self.encoder), "generator": is_random(self.generator)}

    @property
    def parts(self) -> list[str]:
        return random_parts(self.random_inputs)

    def resume_settings(self) -> dict[str, Any]:
        """What a resumed run must share with the interrupted one, by option."""
        config = self.config
        return {"--encoder": model_setting(config.encoder, weights_path(self.encoder)),
                "--generator": file_setting(self.generator_path),
                "--metric": list(config.metrics), "--precision": config.precision,
                "--align": bool(config.align),
                "--align-size": config.align_size if config.align else None,
                "--save-latents": bool(config.save_latents)}

    def record(self, outputs: dict[str, dict[str, str]], report: BatchReport,
               values: dict[str, float | None] | None) -> dict[str, Any]:
        """``invert.json``: what was run, on which files, what came out (as ``adapt.json``)."""
        config, parts = self.config, self.parts
        summary: dict[str, Any] = {
            "encoder": config.encoder,  # + the generator's absolute path and sha256, files:
            **run_record(config.generator, self.generator_path, generator=self.generator,
                         encoder=self.encoder),
            "aligned": bool(config.align),
            "align_size": config.align_size if config.align else None,
            "precision": config.precision, "metrics": list(config.metrics),
            "save_latents": bool(config.save_latents), "random_weights": bool(parts),
            "random_inputs": self.random_inputs, "random_parts": parts, "outputs": outputs,
            **report.as_dict(), "metrics_input_vs_inversion": values or {}}
        if parts:
            summary["notice"] = f"{RANDOM_NOTICE}: not a trained model ({', '.join(parts)})"
        return summary


@dataclass
class InvertResult:
    """The batch report and the grid (``None`` when no photo was inverted)."""

    report: BatchReport
    grid: Path | None
    metrics: dict[str, float | None] | None = None  # input vs inversion; None: no photo done
    metric_notes: list[str] = field(default_factory=list)
    kept: int = 0  # photos an interrupted run had done (``resume``), in ``report.done`` too
    #: what ran on random (untrained) weights (``["encoder", "generator"]``), as metrics.json
    #: says; empty for trained models
    random_parts: list[str] = field(default_factory=list)
    #: per done photo, its files in ``out`` (``{"inversion": "a_inversion.png", "latents":
    #: ...}``), as ``AdaptResult.summary["outputs"]`` lists adapt's
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    #: the run record (= ``invert.json``, written when a photo was inverted)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return self.report.exit_code


@dataclass
class _Item:
    path: Path
    enc_input: Tensor   # [3, P, P] in [0, 1]
    tile: Tensor        # [3, T, T] in [0, 1] (grid tile of what the encoder saw)
    target: Tensor      # [3, S, S] in [0, 1]: the input at the generator's size (metrics)


@releases_outputs
def prepare_invert(config: InvertConfig, ensure_weights: WeightsCheck | None = None, *,
                   registry: Any = None) -> InvertJob:
    """Load and check encoder and generator (one-line errors) before a photo is read;
    ``ensure_weights`` and ``registry`` as in :func:`~stylebridge.pipelines.adapt.prepare_adapt`."""
    config.check_photos()
    config.check_out(config.out)
    device = resolve_device(config.device)
    check_precision(config.precision, device)
    spec = parse_plugin_spec(config.encoder, what="encoder")
    paths = require_inputs(config.images)
    om.check_output_metrics(config.metrics, registry)  # before any download is asked for
    # every missing download named at once
    registry = checked_registry(config.weight_requests(), ensure_weights, registry)
    gen = open_generator(config.generator, device)
    gen.set_precision(config.precision)
    # check_generator's refusal (as adapt's) before a photo is read, then bind
    encoder = attach_encoder(open_encoder(config.encoder, device, registry), gen)
    job = InvertJob(config=config, paths=paths, encoder=encoder,
                    encoder_name=encoder.name or spec.name or "encoder", encoder_spec=spec.text,
                    generator=gen, generator_path=generator_file(gen),
                    metrics=om.build_output_metrics(config.metrics, [INVERSION_KEY],
                                                    registry=registry), registry=registry)
    # a metric on random weights resumes when it holds the same ones (their digest), one
    # that read files when they are the same; a random one without a tensor to compare is
    # drawn anew: its resume is refused
    random_setting, drawn_metrics = metric_setting(config.metrics,
                                                          list(job.metrics.values()))
    job.journal = Journal.open(config.out, "invert",
                               settings={**job.resume_settings(), **random_setting},
                               how={"--batch": config.batch, "--device": str(device),
                                    "--compile": config.compile},
                               inputs=paths, metrics=job.metrics, resume=config.resume,
                               drawn=drawn_anew({"--encoder": encoder}) + drawn_metrics)
    job.journal.notices += small_crop_notice(config, encoder, gen.size)
    # a compile fall-back is one of the run's notices (the library prints nothing)
    compile_synthesis(gen, config.compile, notice=job.journal.notices.append)
    job.journal.notices += slow_precision_notes(config.precision, device)
    return job


def run_invert(job: InvertJob, progress: ProgressCallback | None = None) -> InvertResult:
    """Invert every photo of ``job`` and write the outputs (see the module docstring)."""
    config, gen, encoder, enc_name = job.config, job.generator, job.encoder, job.encoder_name
    device = gen.input.input.device
    parts = job.parts
    file_notice = random_file_notice(parts)
    random = bool(parts)
    enc_size = int(encoder.preprocessing.size
                   or (config.align_size if config.align else gen.size))
    tile = min(gen.size, GRID_TILE)
    ends = [IMAGE_SUFFIX] + [LATENTS_SUFFIX] * bool(config.save_latents)
    names, clashes = output_names(job.paths, "", ends=ends, folder=config.out)
    remove_stale_temporaries(config.out, run_files(names, ends, REPORTS))  # a killed run's
    journal = job.journal or Journal.fresh(config.out, "invert", job.paths)
    todo = journal.begin(job.paths, names, clashes)  # --resume: done photos are kept
    report = journal.report
    total = len(job.paths) - len(clashes)
    # the output folder is made when the first batch has passed the encoder/generator
    # check, so that an early error leaves no empty folder behind
    grid_rows = journal.grid_rows
    pending: list[_Item] = []
    metrics = job.metrics
    records = journal.records  # per done photo: {"values": ...}

    def flush() -> None:
        if not pending:
            return
        batch = torch.stack([it.enc_input for it in pending]).to(device)
        with torch.no_grad():
            inversion = check_inversion(encoder.encode(batch), gen, encoder, len(pending))
            inversion = inversion.detach()
            images = from_generator_range(synthesize(gen, inversion)).cpu()
        om.update_output_metrics(metrics, {INVERSION_KEY: images},
                              torch.stack([it.target for it in pending]))
        config.out.mkdir(parents=True, exist_ok=True)
        journal.claim()
        for i, item in enumerate(pending):
            stem = names[item.path]
            out01 = images[i]
            records[str(item.path)] = {
                "files": {"inversion": f"{stem}{IMAGE_SUFFIX}",
                          **({"latents": f"{stem}{LATENTS_SUFFIX}"} if config.save_latents
                             else {})},
                "values": om.last_output_values(metrics, i)[INVERSION_KEY]}
            save_png(config.out / f"{stem}{IMAGE_SUFFIX}", out01, notice=file_notice)
            if config.save_latents:
                save_inversion(config.out / f"{stem}{LATENTS_SUFFIX}", select_inversion(inversion, i),
                               encoder=enc_name, encoder_spec=job.encoder_spec,
                               generator=job.generator_path,
                               modifiers=sorted(inversion.modifiers),
                               extra={"source": str(item.path), "aligned": bool(config.align),
                                      "align_size": config.align_size if config.align else None,
                                      "random_weights": random})
            if len(grid_rows) < GRID_MAX_ROWS:
                grid_rows.append([item.tile, resize_square(out01, tile)])
            report.ok(item.path)
        pending.clear()
        journal.save(metrics)

    description = f"inverting with {enc_name}"
    if progress is not None:
        progress(len(report.done) + len(report.skipped) - len(clashes), total, description)
    for path, image in iter_images(todo, report):
        if config.align:
            try:
                image = align_face(image, config.align_size, path=path).to_tensor()
            except ImageError as exc:  # NoFaceError included
                report.skip(path, str(exc).removeprefix(f"{path}: "))
                image = None
        if image is not None:
            pending.append(_Item(path, resize_square(image, enc_size, encoder.preprocessing.resize),
                                  resize_square(image, tile), resize_square(image, gen.size)))
            if len(pending) >= config.batch:
                flush()
        if progress is not None:
            progress(len(report.done) + len(report.skipped) + len(pending) - len(clashes),
                     total, description)
    flush()
    if progress is not None:
        progress(total, total, description)
    per_photo = {path: record["values"] for path, record in records.items()}

    grid = None
    if grid_rows:
        labels = ["input (aligned)" if config.align else "input",
                  f"inversion: {enc_name}" + (f" [{RANDOM_NOTICE}]" if random else "")]
        # the column label is cut to the tile width: the red footer carries the notice
        notice = f"{RANDOM_NOTICE}: not a trained model ({', '.join(parts)})" if random else None
        grid = config.out / "grid.png"
        rows_of = [Path(p).name for p in records][:len(grid_rows)]  # in done order
        save_png(grid, labelled_grid(grid_rows, labels, notice=notice, row_labels=rows_of,
                                     min_tile=128),  # small tiles enlarged: readable labels
                 grid=True, notice=notice)
    values = (om.compute_output_metrics(metrics, registry=job.registry)[INVERSION_KEY]
              if report.done else None)
    notes = om.output_metric_notes(metrics)
    outputs = {path: dict(record["files"]) for path, record in records.items()}
    summary = job.record(outputs, report, values)
    # a run that made nothing leaves the folder as it was: an earlier run's reports stay
    if values is not None:
        write_json(config.out / "metrics.json", {"input_vs_inversion": values,
                                                 "per_photo": per_photo,
                                                 "metrics": list(config.metrics),
                                                 "scored_on": om.SCORED_ON,
                                                 "notes": notes, "random_weights": random,
                                                 "random_parts": parts})
        write_json(config.out / "invert.json", summary)
    journal.finish()
    return InvertResult(report=report, grid=grid, metrics=values, metric_notes=notes,
                        random_parts=list(parts), kept=journal.kept, outputs=outputs,
                        summary=summary)


@user_entry
@releases_outputs
def invert(config: InvertConfig, progress: ProgressCallback | None = None, *,
           registry: Any = None, ensure_weights: WeightsCheck | None = None) -> InvertResult:
    """:func:`prepare_invert` (plugins from ``registry``; ``ensure_weights``:
    ``stylebridge.fetching()`` fetches missing official weights first) then
    :func:`run_invert`.  Called from Python, it warns what the command line prints: random
    weights (:class:`~stylebridge.errors.RandomWeightsWarning`), skipped photos
    (``SkippedInputsWarning``), the metrics' notes."""
    check_progress(progress, "invert", n_args=3, shape=PHOTO_PROGRESS_SHAPE)  # before loading
    job = prepare_invert(config, ensure_weights, registry=registry)
    warn_random("invert", job.parts)
    result = run_invert(job, progress)
    warn_run_end("invert", result.report, result.metric_notes if result.metrics is not None
                 else [], unit="photo")
    return result


__all__ = ["InvertConfig", "InvertJob", "InvertResult", "check_compatible", "invert",
           "load_inversion", "prepare_invert", "run_invert", "save_inversion"]
