"""Domain adaptation of real photos: the ``adapt`` pipeline over photo files.

The :class:`~stylebridge.pipelines.adapter.Adapter` (encode once; calibrator, skip layers,
strength; any renderer) lives in :mod:`stylebridge.pipelines.adapter` and is re-exported here,
as are the model loaders and photo batches other pipelines share
(:mod:`stylebridge.pipelines.adapt_inputs`).
:func:`adapt` (``stylebridge adapt``, :mod:`stylebridge.cli.commands.adapt`) runs it over
photo files (:class:`AdaptConfig` in, :class:`AdaptResult` out) and writes per photo
``<stem>_inversion.png`` and ``<stem>_<domain>.png`` (the domain name is the checkpoint's
file stem; ``<stem>_<domain>@<k>.png`` at a strength ``k`` other than 1), ``grid.png``
(a row per photo, named on the left: input | inversion | each output, labelled), ``adapt.json``
(options, checkpoint files, versions: :mod:`~stylebridge.pipelines.run_record`; outputs,
skipped files) and ``metrics.json`` (``AdaptConfig.metrics``,
default MSE and PSNR, of the inversion and of every domain against the input photo: the
means, and each photo's own values under ``per_photo``).  Every output goes through one
renderer: the plain one, a trained FeatureShift (``featureshift``) or any registered renderer plugin by
spec (``renderer``, ``--renderer``; ``adapt.json`` records its spec and provenance under
``renderer``).  Inputs on random (untrained) weights (encoder, generator, domains, calibrator,
FeatureShift or renderer, guide) are named in a red notice under ``grid.png`` and in both JSON
files (``random_weights``, ``random_inputs``, ``random_parts``).  Unreadable images (and, with
``align``, photos without a face) are skipped and reported in the result's
:class:`~stylebridge.core.batch.BatchReport`.  An interrupted run continues with
``resume`` (:mod:`stylebridge.pipelines.resume`).

Skip layers are style-layer indices (:mod:`stylebridge.core.stylegan2.generator`:
0 = ``conv1``, 1 = ``to_rgb1``, then ``2+3j``/``3+3j`` convs and ``4+3j`` ToRGB of
stage ``j``) or a named set (:func:`~stylebridge.plugins.calibrators.alpha.parse_layers`).
The thesis' remedy for FSE is what *in-domain* adaptation does ("indomain adaptation does not
shift first layer latents"): StyleDomain's in-domain configs train with ``no_coarse`` (heads
conv_0 … conv_5, 4–32 px), i.e. ``skip_layers="coarse"`` = ``[0, 2, 3, 5, 6, 8]``;
``"first"`` = ``[0]`` (conv1 only) is the narrower variant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from stylebridge.core.batch import BatchReport, require_inputs
from stylebridge.core.checkpoint import RANDOM_NOTICE
from stylebridge.core.compiled import compile_synthesis
from stylebridge.core.device import resolve_device
from stylebridge.core.images import resize_square, save_png
from stylebridge.core.interfaces import Encoder, Renderer
from stylebridge.core.io import remove_stale_temporaries, write_json
from stylebridge.core.labels import labelled_grid
from stylebridge.core.precision import check_precision, slow_precision_notes
from stylebridge.errors import StylebridgeError, user_entry, warn_user
from stylebridge.pipelines.adapt_inputs import (
    check_renderer_choice,
    domain_name,
    encoder_batches,
    load_domains,
    load_generator_arg,
    open_domains,
    open_featureshift,
    open_renderer,
    photo_batches,
    renderer_generator_notes,
    renderer_record,
    shifted_layer,
)
from stylebridge.pipelines.adapter import INVERSION, Adapter, check_domains, check_strengths
from stylebridge.pipelines.featureshift.usage import generator_notes
from stylebridge.pipelines.inversion_file import (
    LATENTS_SUFFIX,
    save_inversion,
    select_inversion,
)
from stylebridge.pipelines.metric_weights import metric_setting
from stylebridge.pipelines.output_metrics import (
    DEFAULT_METRICS,
    SCORED_ON,
    OutputMetrics,
    build_output_metrics,
    check_output_metrics,
    compute_output_metrics,
    last_output_values,
    output_metric_notes,
    update_output_metrics,
)
from stylebridge.pipelines.photos import (
    PhotoOptions,
    check_photo_options,
    drawn_anew,
    generator_file,
    is_random,
    open_encoder,
    open_generator,
    output_names,
    random_file_notice,
    random_parts,
    run_files,
    small_crop_notice,
    warn_random,
    warn_run_end,
    weights_path,
)
from stylebridge.pipelines.resume import Journal, file_setting, model_setting, releases_outputs
from stylebridge.pipelines.run_record import run_record
from stylebridge.pipelines.run_settings import domain_settings
from stylebridge.pipelines.training.progress import PHOTO_PROGRESS_SHAPE, check_progress
from stylebridge.pipelines.typed import coerce_path_fields
from stylebridge.plugins.calibrators.alpha import parse_layers
from stylebridge.registry.needed import Request, WeightsCheck, checked_registry
from stylebridge.registry.resolve import load_plugin

GRID_TILE = 256          # largest tile edge in grid.png
GRID_MAX_ROWS = 64       # grid.png shows the first 64 photos
REPORTS = ("metrics.json", "adapt.json", "grid.png")  # what a run writes besides its photos'

#: progress of a pipeline: ``(completed, total or None, description)``, plain text
ProgressCallback = Callable[[int, "int | None", str], None]


def _no_progress(completed: int, total: int | None, description: str) -> None:
    """The default progress callback: report nothing."""


# ---------------------------------------------------------------------------------------------
# The adapt pipeline


@dataclass
@coerce_path_fields
class AdaptConfig(PhotoOptions):
    """What :func:`adapt` does: specs as the CLI takes them (``NAME[:CKPT]`` etc.); the
    photo options (``images``, ``align``, ``align_size``, ``batch``, ``device``, keywords
    only) are :class:`~stylebridge.pipelines.photos.PhotoOptions`."""

    encoder: str
    generator: str
    methods: Sequence[str]
    out: Path
    calibrate: str | None = None
    skip_layers: str | Sequence[int] = ""
    featureshift: Path | None = None
    guide: str | None = None
    compile: str = "auto"  # the synthesis network through torch.compile: auto/on/off
    precision: str = "fp32"  # the synthesis network's dtype: fp32 (reference), bf16, fp16
    #: ``eval`` metric specs, each output (inversion, every domain) against the input photo
    metrics: Sequence[str] = DEFAULT_METRICS
    #: how much of each domain's change: 1 = as trained; several values render each domain
    #: once per value (:class:`~stylebridge.pipelines.adapter.Adapter`)
    strength: float | Sequence[float] = 1.0
    #: also write each photo's (uncalibrated) inversion, ``<stem>_inversion.safetensors``
    save_latents: bool = False
    #: continue the interrupted run in ``out`` (:mod:`stylebridge.pipelines.resume`)
    resume: bool = False
    #: a renderer plugin by spec (``NAME[:CKPT][:k=v,...]`` or ``CKPT``) every output goes
    #: through, instead of the plain one; ``featureshift`` is the shorthand for FeatureShift's
    #: (give one of the two).  One that reads guide latents takes ``guide``'s, else those of
    #: the guide it records, else the encoder's own
    renderer: str | None = None

    def weight_requests(self) -> list[Request]:
        """What this run loads, as ``(kind, spec, option)``: official weights named here
        and not installed are reported together (:func:`~stylebridge.registry.needed.
        missing_weights`), and ``adapt --fetch`` fetches them."""
        out: list[Request] = [("generator", self.generator, "--generator"),
                              ("encoder", self.encoder, "--encoder")]
        out += [("domain_method", str(m), "--method") for m in self.methods]
        if self.calibrate:
            out.append(("calibrator", self.calibrate, "--calibrate"))
        if self.renderer:
            out.append(("renderer", self.renderer, "--renderer"))
        if self.guide:
            out.append(("encoder", self.guide, "--guide"))
        out += [("metric", m, "--metric") for m in self.metrics]  # lpips-alex, arcface-irse50
        return out


@dataclass
class AdaptJob:
    """Everything :func:`prepare_adapt` loaded and checked, before any photo is read.

    Which inputs run on random weights is read from the loaded objects (their recorded
    provenance, a ``--renderer``'s too); only the FeatureShift model, read from its file by
    :func:`~stylebridge.plugins.renderers.featureshift.load_featureshift`, carries it here
    (``featureshift_random``, from its header).  ``renderer``: what ``adapt.json`` records
    of a ``--renderer`` (:func:`~stylebridge.pipelines.adapt_inputs.renderer_record`)."""

    config: AdaptConfig
    paths: list[Path]
    adapter: Adapter
    generator_path: Path
    featureshift: dict[str, Any] | None = None
    featureshift_random: bool = False
    metrics: OutputMetrics = field(default_factory=dict)  # per output, built by prepare_adapt
    journal: Journal | None = None  # opened by prepare_adapt (what --resume continues)
    registry: Any = None  # where prepare_adapt took every plugin from (the metrics' packages)
    renderer: dict[str, Any] | None = None  # the --renderer record (None: not given)

    @property
    def domain_random(self) -> dict[str, bool]:
        """Domain name → whether it holds random (untrained) weights."""
        return {name: is_random(method) for name, method in self.adapter.methods.items()}

    @property
    def random_inputs(self) -> dict[str, Any]:
        """Which inputs run on random weights: ``encoder``, ``generator``, ``domains`` (by
        name), and ``calibrator``, ``featureshift``, ``renderer``, ``guide`` when used
        (``adapt.json``)."""
        adapter = self.adapter
        out: dict[str, Any] = {"encoder": is_random(adapter.encoder),
                               "generator": is_random(adapter.generator),
                               "domains": self.domain_random}
        if adapter.calibrator is not None:
            out["calibrator"] = is_random(adapter.calibrator)
        if self.featureshift is not None:
            out["featureshift"] = self.featureshift_random
        if self.renderer is not None:
            out["renderer"] = is_random(adapter.renderer)
        if adapter.guide is not None:
            out["guide"] = is_random(adapter.guide)
        return out

    @property
    def parts(self) -> list[str]:
        return random_parts(self.random_inputs)

    def resume_settings(self) -> dict[str, Any]:
        """What a resumed run must share with the interrupted one, by option."""
        config, adapter = self.config, self.adapter
        return {
            "--encoder": model_setting(config.encoder, weights_path(adapter.encoder)),
            "--generator": file_setting(self.generator_path),
            **domain_settings(config, adapter),
            "--renderer": None if config.renderer is None else model_setting(
                str(config.renderer), weights_path(adapter.renderer)),
            "--guide": None if adapter.guide is None else model_setting(
                str((self.featureshift or self.renderer or {}).get("guide")),
                weights_path(adapter.guide)),
            "--strength": list(adapter.strengths), "--metric": list(config.metrics),
            "--precision": config.precision, "--align": bool(config.align),
            "--align-size": config.align_size if config.align else None,
            "--save-latents": bool(config.save_latents)}


@dataclass
class AdaptResult:
    """What :func:`run_adapt` wrote: ``summary`` (= ``adapt.json``), the batch report,
    input-vs-inversion metrics (``None`` when no photo was done) and whether ``grid.png``
    was written."""

    summary: dict[str, Any]
    report: BatchReport
    metrics: dict[str, float | None] | None
    grid: Path | None
    n_images: int  # images per photo: the inversion and every domain
    domain_metrics: dict[str, dict[str, float | None]] | None = None  # input vs each domain
    metric_notes: list[str] = field(default_factory=list)  # which ID backend, random weights
    kept: int = 0  # photos an interrupted run had done (``resume``), in ``report.done`` too

    @property
    def exit_code(self) -> int:
        return self.report.exit_code

    @property
    def random_parts(self) -> list[str]:
        """What ran on untrained weights (``summary["random_parts"]``), as
        :class:`~stylebridge.pipelines.invert.InvertResult` names it."""
        return list(self.summary.get("random_parts") or [])


@releases_outputs
def prepare_adapt(config: AdaptConfig, ensure_weights: WeightsCheck | None = None, *,
                  registry: Any = None) -> AdaptJob:
    """Load and check every input (one-line errors) before a photo is read or a file written.

    ``ensure_weights`` gets :meth:`AdaptConfig.weight_requests` after the cheap checks (photo
    options, layers, device, input files) and before anything loads: by default one error
    naming every official checkpoint that is not installed; ``adapt --fetch`` downloads them.
    ``registry``: where the plugins come from (default: the installed plugins)."""
    config.check_photos()
    config.check_out(config.out)
    check_renderer_choice(config.featureshift, config.renderer)
    if config.guide and config.featureshift is None and config.renderer is None:
        raise StylebridgeError("--guide applies with --featureshift (it is FeatureShift's "
                               "guiding encoder); without it nothing would use it")
    parse_layers(config.skip_layers, syntax_only=True)  # syntax check before anything is loaded
    check_strengths(config.strength)
    device = resolve_device(config.device)
    check_precision(config.precision, device)
    paths = require_inputs(config.images)
    check_output_metrics(config.metrics, registry)  # fid (sets), two variants: before downloads
    registry = checked_registry(config.weight_requests(), ensure_weights, registry)
    chosen: Renderer | None = None  # --renderer, built first: a --guide it reads not is refused
    if config.renderer is not None:  # before the generator, encoder and domains load
        chosen = open_renderer(config.renderer, device, registry)
        if config.guide and not chosen.needs_guide:
            raise StylebridgeError(f"--guide applies with a renderer that reads guide latents "
                                   f"(FeatureShift does); --renderer {config.renderer} "
                                   f"({chosen.name}) reads none: nothing would use it")
    gen = open_generator(config.generator, device)
    gen.set_precision(config.precision)
    parse_layers(config.skip_layers, n_layers=gen.n_style_layers)  # before the models load
    # every input on random (untrained) weights is labelled, on grid.png and in adapt.json /
    # metrics.json: AdaptJob.random_inputs reads that from the loaded objects
    encoder = open_encoder(config.encoder, device, registry)
    methods = open_domains(config.methods, device, registry)
    calibrator = None
    if config.calibrate:
        calibrator = load_plugin("calibrator", config.calibrate, device=device, registry=registry)
    renderer: Renderer | None = chosen
    fs_info = None
    fs_random = False
    fs_notes: list[str] = []
    guide_spec = None  # --guide, else the guide encoder the renderer records
    option = ""  # how a message names the renderer's option
    if config.featureshift is not None:
        model, fs_header, fs_random = open_featureshift(config.featureshift, device)
        fs_notes = generator_notes(config.featureshift, fs_header, gen)
        renderer = model
        guide_spec = config.guide or fs_header.extra.get("sources", {}).get("guide")
        option = f"--featureshift {config.featureshift}"
    elif chosen is not None:
        fs_notes = renderer_generator_notes(str(config.renderer), chosen, gen)
        guide_spec = config.guide or (chosen.trained_guide if chosen.needs_guide else None)
        option = f"--renderer {config.renderer}"
    guide = _open_guide(config, guide_spec, option, device, registry)
    guided = f"{config.encoder} (latents)" if guide is None else str(guide_spec)
    if config.featureshift is not None:
        fs_info = {"model": str(config.featureshift), "layer": model.layer, "guide": guided}
    adapter = Adapter(encoder, gen, methods, calibrator=calibrator, skip_layers=config.skip_layers,
                      renderer=renderer, guide=guide, strength=config.strength)
    metrics = build_output_metrics(config.metrics, [INVERSION, *adapter.outputs],
                                   registry=registry)
    job = AdaptJob(config=config, paths=paths, adapter=adapter,
                   generator_path=generator_file(gen), featureshift=fs_info,
                   featureshift_random=fs_random, metrics=metrics, registry=registry,
                   renderer=None if chosen is None else renderer_record(
                       str(config.renderer), chosen, guided if chosen.needs_guide else None))
    # a metric on random weights resumes when it holds the same ones (their digest), one
    # that read files when they are the same; a random one without a tensor to compare is
    # drawn anew: its resume is refused
    random_setting, drawn_metrics = metric_setting(config.metrics, list(metrics.values()))
    job.journal = Journal.open(config.out, "adapt",
                               settings={**job.resume_settings(), **random_setting},
                               how={"--batch": config.batch, "--device": str(device),
                                    "--compile": config.compile},
                               inputs=paths, metrics=metrics, resume=config.resume,
                               drawn=drawn_anew({"--encoder": encoder, "--guide": guide,
                                                 "--calibrate": calibrator,
                                                 "--renderer": chosen,
                                                 **{f"--method {name}": method
                                                    for name, method in methods.items()}})
                               + drawn_metrics)
    compile_synthesis(gen, config.compile, notice=job.journal.notices.append)  # a fall-back
    job.journal.notices += slow_precision_notes(config.precision, device)
    job.journal.notices += adapter.notes  # a domain trained on another generator file
    job.journal.notices += fs_notes  # a FeatureShift model (renderer) trained on another one
    job.journal.notices += small_crop_notice(config, encoder, gen.size)
    shifting = shifted_layer(adapter.renderer) is not None  # FeatureShift, by either option
    if shifting and 0.0 in adapter.strengths:  # as the web app says
        said = (f"--renderer {config.renderer}" if config.featureshift is None
                else "--featureshift")
        job.journal.notices.append(f"with {said}, strength 0 (Δ = 0) is FeatureShift's "
                                   "own rendering of the photo, F'(F, 0), not the encoder's "
                                   "inversion (the inversion column)")
    if shifting and encoder.config().get("mode") == "shift":
        job.journal.notices.append("FeatureShift replaces the feature at layer K, so the "
                                   "encoder's mode=shift has no effect on the domain outputs "
                                   "(they equal those of mode=features)")
    return job


def _open_guide(config: AdaptConfig, spec: str | None, option: str, device: torch.device,
                registry: Any) -> Encoder | None:
    """The guide encoder of a renderer that reads guide latents (``spec``: ``--guide``, else
    the one the renderer's checkpoint records); ``None`` when there is none or it is the
    encoder itself (its own latents guide).  A recorded one that cannot be loaded is said to
    come from the model (``option``: ``--featureshift PATH`` / ``--renderer SPEC``), with how
    to give one."""
    if not spec or spec == config.encoder:
        return None
    try:
        return open_encoder(str(spec), device, registry)
    except StylebridgeError as exc:
        if config.guide:
            raise
        # the spec came from the model, not from this command line: say so
        raise StylebridgeError(
            f"{option}: the guide encoder it was trained with, {spec!r} (recorded in the "
            f"model), cannot be loaded: {' '.join(str(exc).split())}; give it with --guide "
            f"NAME:CKPT (--guide {config.encoder} uses the encoder's own latents)") from None


def run_adapt(job: AdaptJob, progress: ProgressCallback | None = None) -> AdaptResult:
    """Adapt every photo of ``job`` and write the outputs (see the module docstring)."""
    config, adapter = job.config, job.adapter
    progress = progress or _no_progress
    gen, encoder, methods = adapter.generator, adapter.encoder, adapter.methods
    domain_of = {key: name for key, (name, _) in adapter.outputs.items()}
    random_inputs = job.random_inputs
    parts = random_parts(random_inputs)
    file_notice = {key: random_file_notice(parts, domain_of.get(key))
                   for key in (INVERSION, *adapter.outputs)}
    random = bool(parts)
    enc_size = int(encoder.preprocessing.size or gen.size)
    tile = min(gen.size, GRID_TILE)
    keys = [f"_{key}" for key in (INVERSION, *adapter.outputs)]
    ends = [f"{key}.png" for key in keys] + [LATENTS_SUFFIX] * bool(config.save_latents)
    names, clashes = output_names(job.paths, "", keys=keys, ends=ends, folder=config.out)
    remove_stale_temporaries(config.out, run_files(names, ends, REPORTS))  # a killed run's
    journal = job.journal or Journal.fresh(config.out, "adapt", job.paths)
    todo = journal.begin(job.paths, names, clashes)  # --resume: done photos are kept
    report = journal.report
    total = len(job.paths) - len(clashes)
    # the output folder is made once the first batch has passed the encoder/generator
    # check (or, with no readable photo, for the report): an early error leaves no folder
    metrics = job.metrics
    grid_rows = journal.grid_rows
    records = journal.records  # per done photo: {"files": ..., "values": ...}
    description = f"adapting with {len(methods)} domain(s)" + (
        f" at {len(adapter.strengths)} strengths" if len(adapter.strengths) > 1 else "")
    progress(len(report.done) + len(report.skipped) - len(clashes), total, description)
    for chunk in photo_batches(todo, report, enc_size=enc_size, tile=tile, **config.batching,
                               target=gen.size, enc_filter=encoder.preprocessing.resize):
        inversion, images = adapter.invert_and_render(torch.stack(chunk.inputs))
        rendered = {k: v.cpu() for k, v in images.items()}
        config.out.mkdir(parents=True, exist_ok=True)
        journal.claim()
        update_output_metrics(metrics, rendered, torch.stack(chunk.targets))
        for i, path in enumerate(chunk.paths):
            stem = names[path]
            files = {}
            for key, batch in rendered.items():
                dst = config.out / f"{stem}_{key}.png"
                save_png(dst, batch[i], notice=file_notice[key])
                files[key] = dst.name
            if config.save_latents:
                files["latents"] = save_inversion(
                    config.out / f"{stem}{LATENTS_SUFFIX}", select_inversion(inversion, i),
                    encoder=encoder.name, encoder_spec=config.encoder,
                    generator=job.generator_path, modifiers=sorted(inversion.modifiers),
                    extra={"source": str(path), "aligned": bool(config.align),
                           "align_size": config.align_size if config.align else None,
                           "random_weights": random}).name
            records[str(path)] = {"files": files, "values": last_output_values(metrics, i)}
            if len(grid_rows) < GRID_MAX_ROWS:
                grid_rows.append([chunk.tiles[i]] + [resize_square(rendered[k][i], tile)
                                                     for k in rendered])
            report.ok(path)
        journal.save(metrics)
        progress(len(report.done) + len(report.skipped) - len(clashes), total, description)
    outputs = {path: record["files"] for path, record in records.items()}
    per_photo = {path: record["values"] for path, record in records.items()}
    scale = adapter.offset_scale
    summary: dict[str, Any] = {
        "encoder": config.encoder,  # + the generator's absolute path, sha256, files, versions:
        **run_record(config.generator, job.generator_path, generator=adapter.generator,
                     encoder=encoder, domains=methods, calibrator=adapter.calibrator,
                     featureshift=adapter.renderer if config.featureshift is not None else None,
                     renderer=adapter.renderer if config.renderer is not None else None,
                     guide=adapter.guide),
        "domains": {name: str(spec) for name, spec in zip(methods, config.methods, strict=True)},
        "calibrator": config.calibrate, "skip_layers": adapter.skip_layers,
        "strength": list(adapter.strengths),
        "featureshift": job.featureshift, "renderer": job.renderer,
        "offset_scale": None if scale is None else [float(v) for v in scale],
        "calibrator_zeroed_layers": adapter.calibrator_zeroed_layers,
        "aligned": bool(config.align), "precision": config.precision,
        "align_size": config.align_size if config.align else None,
        "random_weights": random, "random_inputs": random_inputs, "random_parts": parts,
        "outputs": outputs, **report.as_dict()}
    if adapter.notes:  # domains trained on another generator file
        summary["notes"] = list(adapter.notes)
    notice = f"{RANDOM_NOTICE}: not a trained model ({', '.join(parts)})" if random else None
    if random:
        summary["notice"] = notice
    # a run that made nothing leaves the folder as it was: an earlier run's report is not
    # replaced by an empty one (the batch report says what went wrong)
    write_reports = bool(report.done)
    per_output = compute_output_metrics(metrics, registry=job.registry) if report.done else {}
    values = per_output.get(INVERSION, {})
    domain_values = {key: per_output[key] for key in adapter.outputs if key in per_output}
    notes = output_metric_notes(metrics)
    summary["metrics_input_vs_inversion"] = values
    summary["metrics_input_vs_domain"] = domain_values
    if write_reports:
        config.out.mkdir(parents=True, exist_ok=True)
        write_json(config.out / "metrics.json", {"input_vs_inversion": values,
                                                 "input_vs_domain": domain_values,
                                                 "per_photo": per_photo,
                                                 "metrics": list(config.metrics),
                                                 "scored_on": SCORED_ON,
                                                 "notes": notes, "random_weights": random,
                                                 "random_inputs": random_inputs,
                                                 "random_parts": parts})
        write_json(config.out / "adapt.json", summary)
    grid = None
    if grid_rows:
        labels = ["input (aligned)" if config.align else "input",
                  f"inversion: {encoder.name}",
                  *(f"{key} [{RANDOM_NOTICE}]" if random_inputs["domains"][domain_of[key]]
                    else key for key in adapter.outputs)]
        grid = config.out / "grid.png"
        rows_of = [Path(p).name for p in records][:len(grid_rows)]  # in done order
        save_png(grid, labelled_grid(grid_rows, labels, notice=notice, row_labels=rows_of,
                                     min_tile=128),  # small tiles enlarged: readable labels
                 grid=True, notice=notice)
    journal.finish()
    return AdaptResult(summary=summary, report=report, metrics=values if report.done else None,
                       grid=grid, n_images=len(adapter.outputs) + 1,
                       domain_metrics=domain_values if report.done else None,
                       metric_notes=notes, kept=journal.kept)


@user_entry
@releases_outputs
def adapt(config: AdaptConfig, progress: ProgressCallback | None = None, *,
          registry: Any = None, ensure_weights: WeightsCheck | None = None) -> AdaptResult:
    """:func:`prepare_adapt` (plugins from ``registry``; ``ensure_weights``:
    ``stylebridge.fetching()`` fetches missing official weights first) then
    :func:`run_adapt`.  Called from Python, it warns what the command line prints: random
    weights (:class:`~stylebridge.errors.RandomWeightsWarning`), a domain the skip layers
    leave unchanged, skipped photos (``SkippedInputsWarning``), the metrics' notes."""
    check_progress(progress, "adapt", n_args=3, shape=PHOTO_PROGRESS_SHAPE)  # before loading
    job = prepare_adapt(config, ensure_weights, registry=registry)
    warn_random("adapt", job.parts)
    for line in job.adapter.unchanged_notes:
        warn_user(line)
    result = run_adapt(job, progress)
    warn_run_end("adapt", result.report, result.metric_notes if result.metrics is not None
                 else [], unit="photo")
    return result


__all__ = ["INVERSION", "AdaptConfig", "AdaptJob", "AdaptResult", "Adapter", "ProgressCallback",
           "adapt", "check_domains", "check_photo_options", "check_strengths", "domain_name",
           "encoder_batches", "load_domains", "load_generator_arg", "open_domains",
           "open_featureshift", "photo_batches", "prepare_adapt", "random_parts", "run_adapt"]
