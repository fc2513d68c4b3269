"""Fit a calibrator (alpha-rescaling) from an encoder's styles on photos: the ``calibrate``
pipeline (``stylebridge calibrate``, :mod:`stylebridge.cli.commands.calibrate`).

Alpha-rescaling (thesis, chapter 4; :mod:`stylebridge.plugins.calibrators.alpha`): the
per-channel style means of the encoder's inversions of real photos are regressed, layer by
layer, on the style means of ``samples`` mapping-network samples, ``s̄_enc,i ≈ α_i s̄_map,i``;
a domain's offset on layer ``i`` is then scaled by ``α_i ** power`` (``1/α_i`` by default).
:class:`CalibrateConfig` in, :class:`CalibrateResult` out (the fitted calibrator, saved to
``out``; its header records the run: encoder spec and file, the generator's absolute path
and sha256, the versions, :mod:`stylebridge.pipelines.run_record`).  After each batch of
photos the running style sums are journaled beside ``out``
(:mod:`stylebridge.pipelines.resume`); ``resume`` continues an interrupted fit from them (the
options that only shape the fit, ``samples``, ``seed``, ``fit``, ``power``, ``skip_layers``,
may change: the mapping side and the fit are computed at the end).

Any registered calibrator that declares ``fittable`` is fitted the same way: its
``from_style_means`` gets the two sides' means and the options it declares in ``fit_options``
(the others are refused when given), its ``save`` writes ``out``, and its ``fit_report`` (or
its offset scale and unreliable layers) is what the command prints; an exception in a third
party's calibrator is one line naming the plugin and its package.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from stylebridge.core.batch import BatchReport, expand_inputs, require_inputs
from stylebridge.core.device import resolve_device
from stylebridge.core.interfaces import Calibrator, FitReport
from stylebridge.core.io import DISK_FULL, check_outputs_apart
from stylebridge.core.limits import MAX_SAMPLES, check_range
from stylebridge.errors import StylebridgeError, user_entry
from stylebridge.pipelines.adapt import ProgressCallback, encoder_batches, random_parts
from stylebridge.pipelines.adapter import attach_encoder, check_inversion
from stylebridge.pipelines.analyze.stats import STYLE_MEANS_PURPOSE, no_readable_photo
from stylebridge.pipelines.photos import (
    PhotoOptions,
    drawn_anew,
    generator_file,
    is_random,
    open_encoder,
    open_generator,
    warn_random,
    warn_skipped,
    weights_path,
)
from stylebridge.pipelines.resume import (
    JOURNAL_DIR,
    Journal,
    file_setting,
    model_setting,
    releases_outputs,
)
from stylebridge.pipelines.run_record import run_record
from stylebridge.pipelines.training.outputs import check_out_writable
from stylebridge.pipelines.training.progress import PHOTO_PROGRESS_SHAPE, check_progress
from stylebridge.pipelines.typed import coerce_path_fields
from stylebridge.plugins.calibrators.alpha import (
    StyleMeanAccumulator,
    mapping_style_means,
    parse_layers,
    skip_scale,
)
from stylebridge.registry import get_registry
from stylebridge.registry.needed import WeightsCheck, checked_registry

if TYPE_CHECKING:
    from collections.abc import Iterable

    from torch import Tensor

    from stylebridge.core.interfaces import Encoder, FitReport
    from stylebridge.core.stylegan2.generator import Generator


@dataclass
@coerce_path_fields
class CalibrateConfig(PhotoOptions):
    """What :func:`calibrate` fits: calibrator name, encoder and generator specs, photos (the
    photo options ``images``, ``align``, ``align_size``, ``batch``, ``device``, keywords only,
    are :class:`~stylebridge.pipelines.photos.PhotoOptions`)."""

    calibrator: str
    encoder: str
    generator: str
    out: Path
    samples: int = 3000
    seed: int = 0
    skip_layers: str | list[int] = ""
    fit: str = "origin"
    power: float = -1.0
    force: bool = False
    #: keep the photos an interrupted run into the same ``out`` encoded (their style sums)
    resume: bool = False


@dataclass
class CalibrateJob:
    """Everything :func:`prepare_calibrate` loaded and checked before the long part."""

    config: CalibrateConfig
    cls: type
    skip: list[int]
    paths: list[Path]
    generator: Generator
    generator_path: Path
    encoder: Encoder
    report: BatchReport = field(default_factory=BatchReport)
    journal: Journal | None = None  # the resume journal, beside ``out``
    #: how one-line errors name the calibrator: ``calibrator 'NAME' (from PKG)``
    label: str = ""
    #: the third-party package that registered it (``None``: one of stylebridge's)
    provider: str | None = None

    @property
    def random_inputs(self) -> dict[str, bool]:
        """Whether the encoder and the generator run on random weights (their provenance)."""
        return {"encoder": is_random(self.encoder), "generator": is_random(self.generator)}

    @property
    def random(self) -> bool:
        return any(self.random_inputs.values())


#: up to this many photos a calibrator's header lists them (beyond, their list's sha256)
LISTED_PHOTOS = 2000


def photos_record(done: Sequence[str]) -> dict[str, Any]:
    """Which photos a calibrator was fitted on, in its header: their count, the sha256 of
    their list (one path as given per line, in the order they were read), that of their
    contents (the sha256 of each file, one per line, in that order: the same photos under
    other names or paths give the same) and, up to :data:`LISTED_PHOTOS`, the list itself."""
    from stylebridge.pipelines.training.state import file_sha256

    paths = [str(p) for p in done]

    def content(path: str) -> str:
        try:
            return file_sha256(path)
        except OSError:
            return "unreadable"

    digest = hashlib.sha256("\n".join(paths).encode("utf-8", "surrogateescape")).hexdigest()
    contents = hashlib.sha256("\n".join(content(p) for p in paths).encode()).hexdigest()
    return {"count": len(paths), "list_sha256": digest, "contents_sha256": contents,
            **({"paths": paths} if len(paths) <= LISTED_PHOTOS else {})}


@dataclass
class CalibrateResult:
    """The fitted (and saved) calibrator, the number of photos it saw, the batch report."""

    calibrator: Calibrator
    n_images: int
    report: BatchReport
    random: bool
    #: what was random (``["encoder"]``), as the other pipelines' results name it
    random_parts: list[str] = field(default_factory=list)
    #: the calibrator's own table (``Calibrator.fit_report``), ``None`` if it has none
    fit_report: FitReport | None = None
    #: its offset scale of each style layer (``None``: it sets none) and the layers it
    #: switches off (``unreliable_layers``): the summary of a calibrator without a table
    offset_scale: list[float] | None = None
    unreliable_layers: list[int] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return self.report.exit_code


#: calibrate's options that a calibrator takes only when it declares them in ``fit_options``
#: (alpha takes all three): field → (option, default)
FIT_OPTIONS: dict[str, tuple[str, Any]] = {
    "skip_layers": ("--skip-layers", ""), "fit": ("--fit", "origin"), "power": ("--power", -1.0)}


def _refuse_fit_options(cls: type[Calibrator], label: str, config: CalibrateConfig,
                        explicit: Collection[str]) -> None:
    """One line naming the options of :data:`FIT_OPTIONS` given (on the command line:
    ``explicit``; from Python: away from their defaults) that ``cls`` does not declare."""
    given = [flag for key, (flag, default) in FIT_OPTIONS.items()
             if key not in cls.fit_options and (key in explicit or (
                 bool(config.skip_layers) if key == "skip_layers" else
                 getattr(config, key) != default))]
    if given:
        takes = [flag for key, (flag, _) in FIT_OPTIONS.items() if key in cls.fit_options]
        raise StylebridgeError(
            f"{label} does not take {' or '.join(given)}"
            + (f" (it takes {' and '.join(takes)} only)" if takes else "")
            + f"; leave {'it' if len(given) == 1 else 'them'} out")


@contextmanager
def _plugin_call(job: CalibrateJob, what: str) -> Iterator[None]:
    """An exception raised in a third party's calibrator (its ``what``) as one line naming the
    plugin and its package, not a bare ``AttributeError``; stylebridge's own calibrators,
    memory and a full disk raise as they are."""
    try:
        yield
    except StylebridgeError as exc:
        if job.provider is None:
            raise
        error = StylebridgeError(f"{job.label}: {what}: {exc}")
        error.exit_code = exc.exit_code
        raise error from exc
    except MemoryError:
        raise
    except Exception as exc:
        if job.provider is None or type(exc).__name__ == "OutOfMemoryError" or (
                isinstance(exc, OSError) and exc.errno in DISK_FULL):
            raise
        text = " ".join(str(exc).split())
        raise StylebridgeError(f"{job.label}: {what} raised {type(exc).__name__}"
                               + (f": {text}" if text else "")) from exc


def _spec_files(config: CalibrateConfig) -> list[Path]:
    """The checkpoint files the encoder and generator specs name (files that exist)."""
    from stylebridge.registry.spec import parse_plugin_spec

    out = []
    for spec in (config.encoder, config.generator):
        if Path(str(spec)).is_file():
            out.append(Path(str(spec)))
            continue
        try:
            path = parse_plugin_spec(str(spec)).path
        except StylebridgeError:
            continue
        if path is not None and path.is_file():
            out.append(path)
    return out


@releases_outputs
def prepare_calibrate(config: CalibrateConfig, *, registry: Any = None,
                      ensure_weights: WeightsCheck | None = None,
                      explicit: Collection[str] = ()) -> CalibrateJob:
    """Check the options and load generator and encoder (one-line errors); the calibrator
    comes from ``registry`` (default: the installed plugins).  ``ensure_weights`` gets the
    generator and encoder requests after the cheap checks, before either loads: by default
    one error naming every official download they lack; ``calibrate --fetch`` downloads
    them (:func:`~stylebridge.pipelines.adapt.prepare_adapt`).  A calibrator that is not
    ``fittable``, or is given options of :data:`FIT_OPTIONS` it does not declare (those
    away from their defaults, and the fields named in ``explicit``: what the command line
    gave), is refused before anything loads."""
    config.check_photos()
    check_range("--samples", config.samples, 1, MAX_SAMPLES)
    # --force overwrites an earlier calibration, never what this one reads: the photos (a
    # folder's image files, not whatever else it holds) and the checkpoints
    check_outputs_apart({"--out": config.out},
                        [*expand_inputs(config.images), *_spec_files(config)])
    if config.out.exists() and not config.force:
        raise StylebridgeError("already exists (use --force to overwrite)", path=config.out)
    # --out and the resume journal beside it writable, named as --out: found only after the
    # first batch of photos, naming the journal folder, before
    check_out_writable(config.out, files=[config.out],
                       folders=[config.out.parent / f"{JOURNAL_DIR}-{config.out.name}"])
    registry = registry or get_registry()
    cls = registry.get("calibrator", config.calibrator).obj
    label = f"calibrator {config.calibrator!r}{registry.where('calibrator', config.calibrator)}"
    if not cls.fittable:
        raise StylebridgeError(f"{label} cannot be fitted by `stylebridge calibrate`")
    _refuse_fit_options(cls, label, config, explicit)
    try:  # --fit bogus / --power nan: before the photos are encoded, not after
        cls.check_config({key: getattr(config, key) for key in ("fit", "power")
                          if key in cls.fit_options})
    except ValueError as exc:
        raise StylebridgeError(f"{label}: {exc}") from None
    skip = parse_layers(config.skip_layers, syntax_only=True)
    device = resolve_device(config.device)
    paths = require_inputs(config.images)
    registry = checked_registry([("generator", config.generator, "--generator"),
                                 ("encoder", config.encoder, "--encoder")],
                                ensure_weights, registry)
    gen = open_generator(config.generator, device)
    skip = parse_layers(config.skip_layers, n_layers=gen.n_style_layers)
    skip_scale(gen.n_style_layers, skip)  # range check before the long part
    # check_generator's refusal (as adapt's) before a photo is read; calibrate reads w+ only,
    # so the encoder is not bound (StyleRes would compute its features for nothing)
    encoder = attach_encoder(open_encoder(config.encoder, device, registry), gen, bind=False)
    journal = Journal.open(
        config.out.parent, "calibrate", name=config.out.name, inputs=paths, metrics={},
        resume=config.resume, how={"--batch": config.batch, "--device": str(device)},
        settings={"--calibrator": config.calibrator,
                  "--encoder": model_setting(config.encoder, weights_path(encoder)),
                  "--generator": file_setting(generator_file(gen)),
                  "--align": bool(config.align),
                  "--align-size": config.align_size if config.align else None},
        drawn=drawn_anew({"--encoder": encoder}))
    return CalibrateJob(config=config, cls=cls, skip=skip, paths=paths, generator=gen,
                        generator_path=generator_file(gen), encoder=encoder,
                        report=journal.report, journal=journal, label=label,
                        provider=registry.provider_of("calibrator", config.calibrator))


def run_calibrate(job: CalibrateJob, progress: ProgressCallback | None = None) -> CalibrateResult:
    """Encoder style means over the photos, mapping style means, fit, save to ``config.out``.

    Unreadable photos go to ``job.report``; when none is left the error is raised with the
    report filled in."""
    config, gen, report = job.config, job.generator, job.report
    enc_size = int(job.encoder.preprocessing.size or gen.size)
    journal = job.journal or Journal.fresh(config.out.parent, "calibrate", job.paths)
    acc = StyleMeanAccumulator()
    if journal.extra:  # the sums of the photos an interrupted run encoded (--resume)
        acc.load_state(journal.extra)

    def update() -> None:
        journal.extra = acc.state()
        journal.save({})
        if progress is not None:
            progress(len(report.done) + len(report.skipped), len(job.paths), "encoding photos")

    if progress is not None:
        progress(len(report.done) + len(report.skipped), len(job.paths), "encoding photos")
    handled = journal.handled  # a set, built once
    todo = [p for p in job.paths if str(p) not in handled]
    batches = encoder_batches(todo, report, enc_size=enc_size, **config.batching,
                              on_batch=update, enc_filter=job.encoder.preprocessing.resize)
    enc_means, n_images = _encoder_style_means(job.encoder, gen, batches, acc, report)
    if progress is not None:
        progress(0, None, f"sampling {config.samples} z")
    src_means = mapping_style_means(gen, config.samples, seed=config.seed)
    options = {"skip_layers": job.skip, "fit": config.fit, "power": config.power}
    with _plugin_call(job, "from_style_means"):
        calib = job.cls.from_style_means(src_means, enc_means, **{
            key: value for key, value in options.items() if key in job.cls.fit_options})
    if not isinstance(calib, Calibrator):
        raise StylebridgeError(f"{job.label}: from_style_means returned a "
                               f"{type(calib).__name__}, not a Calibrator")
    summary = _summary(job, calib)
    random_inputs = job.random_inputs
    random = any(random_inputs.values())
    extra: dict[str, Any] = {
        "encoder": config.encoder,  # + its file, the generator's absolute path and sha256,
        # the versions (pipelines/run_record.py)
        **run_record(config.generator, job.generator_path, generator=job.generator,
                     encoder=job.encoder),
        "n_images": n_images, "photos": photos_record(report.done),
        "samples": config.samples, "seed": config.seed,
        "aligned": bool(config.align), "align_size": config.align_size if config.align else None,
        "random_weights": random, "random_inputs": random_inputs}
    if random:
        parts = ", ".join(random_parts(random_inputs))
        extra["notes"] = [f"computed with random weights ({parts}): not real statistics"]
    with _plugin_call(job, "save"):
        calib.save(config.out, extra=extra)
    if not config.out.is_file():
        raise StylebridgeError(f"{job.label}: save wrote no file", path=config.out)
    journal.finish()
    return CalibrateResult(calibrator=calib, n_images=n_images, report=report, random=random,
                           random_parts=random_parts(random_inputs), **summary)


def _summary(job: CalibrateJob, calib: Calibrator) -> dict[str, Any]:
    """The fitted calibrator's table (``fit_report``), offset scale and unreliable layers,
    asked before it is saved (a third party's error leaves the journal to ``--resume``)."""
    n = job.generator.n_style_layers
    with _plugin_call(job, "fit_report"):
        table = calib.fit_report(job.generator)
    if table is not None and not isinstance(table, FitReport):
        raise StylebridgeError(f"{job.label}: fit_report returned a {type(table).__name__}, "
                               "not a FitReport (or None)")
    with _plugin_call(job, "offset_scale"):
        scale = calib.offset_scale(n)
        values = None if scale is None else \
            torch.as_tensor(scale).detach().float().cpu().flatten().tolist()
    if values is not None and len(values) != n:
        raise StylebridgeError(f"{job.label}: offset_scale({n}) gave {len(values)} values, "
                               f"this generator has {n} style layers")
    with _plugin_call(job, "unreliable_layers"):
        unreliable = [int(i) for i in calib.unreliable_layers()]
    return {"fit_report": table, "offset_scale": values, "unreliable_layers": unreliable}


@torch.no_grad()
def _encoder_style_means(encoder: Encoder, generator: Generator, batches: Iterable[Tensor],
                         acc: StyleMeanAccumulator, report: BatchReport
                         ) -> tuple[list[Tensor], int]:
    """:func:`~stylebridge.plugins.calibrators.alpha.encoder_style_means` with every batch's
    inversion checked first (:func:`check_inversion`: shape, one per image, dtype, NaN): a
    NaN ``w+`` fitted an all-NaN calibrator with exit code 0."""
    device = generator.input.input.device
    for images in batches:
        inversion = check_inversion(encoder.encode(images.to(device)), generator, encoder,
                                    int(images.shape[0]))
        acc.add(generator.styles(inversion.w_plus.to(device)))
    if acc.count == 0:
        raise no_readable_photo(report, STYLE_MEANS_PURPOSE)
    return acc.means(), acc.count


@user_entry
@releases_outputs
def calibrate(config: CalibrateConfig, progress: ProgressCallback | None = None, *,
              registry: Any = None, ensure_weights: WeightsCheck | None = None
              ) -> CalibrateResult:
    """:func:`prepare_calibrate` (plugins from ``registry``) then :func:`run_calibrate`.
    Called from Python, it warns what the command line prints: random weights
    (:class:`~stylebridge.errors.RandomWeightsWarning`: the statistics are then not real)
    and skipped photos (``SkippedInputsWarning``)."""
    check_progress(progress, "calibrate", n_args=3, shape=PHOTO_PROGRESS_SHAPE)  # before loading
    job = prepare_calibrate(config, registry=registry, ensure_weights=ensure_weights)
    warn_random("calibrate", random_parts(job.random_inputs))
    result = run_calibrate(job, progress)
    warn_skipped("calibrate", result.report, unit="photo")
    return result


__all__ = ["CalibrateConfig", "CalibrateJob", "CalibrateResult", "calibrate",
           "prepare_calibrate", "run_calibrate"]
