"""Saved inversions through more domains, without the photos: the ``render`` pipeline.

``invert``/``adapt --save-latents`` write each photo's inversion (``<stem>_inversion
.safetensors``, :mod:`stylebridge.pipelines.inversion_file`).  :func:`render` (``stylebridge
render``, :mod:`stylebridge.cli.commands.render`) reads such files and renders them again
and through every ``--method``, with the options ``adapt`` has for that (calibrator, skip
layers, strengths, a FeatureShift): no photo is read, aligned or encoded, so trying ten new
domains on a folder of photos costs ten renders each.  Per file ``<stem>_inversion
.safetensors`` it writes ``<stem>_inversion.png`` and ``<stem>_<domain>.png`` (as ``adapt``),
``grid.png`` (a row per file, named on the left, the first 64: the inversion | each domain) and ``render.json``
(inputs, outputs, skipped files, what ran on random weights).  Nothing is compared with the
photos (``adapt`` does that); ``stylebridge eval`` scores the written files.

The generator defaults to the one the files record, when that file exists (else the installed
FFHQ generator).  The encoder is loaded only where a file needs it: an inversion with
modifiers (StyleRes) is rebuilt by its own encoder (:meth:`Encoder.restore
<stylebridge.core.interfaces.Encoder.restore>`), the spec it was saved with unless
``encoder`` is given.  A FeatureShift needs guiding latents: the files' own, so a model
trained with another guide encoder (its header says which) is refused, and ``adapt`` runs it
from the photos.  ``renderer`` renders through any registered renderer plugin by spec
(``--renderer``; ``featureshift`` is the shorthand for FeatureShift's), under the same rule
for one that reads guide latents; ``render.json`` records its spec and provenance
(``renderer``) and a renderer on random weights labels the outputs.  A file that cannot be
read, is no inversion, or does not fit the generator is skipped and reported.

Calibration.  A saved inversion is the encoder's own, uncalibrated one (``adapt
--save-latents`` saves it before the calibrator runs); with a calibrator, ``render`` applies
its ``calibrate(inversion)`` to each file's inversion before rendering, as ``adapt`` does
(:meth:`Adapter.calibrated <stylebridge.pipelines.adapter.Adapter.calibrated>`), so ``adapt
--calibrate X --save-latents`` then ``render --calibrate X`` draws the same pictures.

An interrupted run continues with ``resume`` (:mod:`stylebridge.pipelines.resume`, as
``adapt``'s): the files of its finished batches are kept, the others rendered, and
``render.json`` and ``grid.png`` come out as one uninterrupted run writes them.  A resume
must be of the same run: the same inversion files (by path, size and modification time),
generator, encoder, domains, calibrator, skip layers, strengths, FeatureShift or renderer and
precision;
``batch``, ``device`` and ``compile`` may change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from stylebridge.core.batch import BatchReport, expand_inputs
from stylebridge.core.checkpoint import RANDOM_NOTICE, CheckpointHeader, read_header
from stylebridge.core.compiled import compile_synthesis
from stylebridge.core.device import resolve_device
from stylebridge.core.images import resize_square, save_png
from stylebridge.core.interfaces import Inversion
from stylebridge.core.io import open_safetensors, remove_stale_temporaries, write_json
from stylebridge.core.labels import labelled_grid
from stylebridge.core.limits import MAX_BATCH, check_range
from stylebridge.core.precision import check_precision, slow_precision_notes
from stylebridge.core.synthesis import check_compatible
from stylebridge.errors import StylebridgeError, user_entry, warn_user
from stylebridge.pipelines.adapt import (
    GRID_MAX_ROWS,
    GRID_TILE,
    ProgressCallback,
    open_domains,
    open_featureshift,
)
from stylebridge.pipelines.adapt_inputs import (
    check_renderer_choice,
    open_renderer,
    renderer_generator_notes,
    renderer_record,
    shifted_layer,
)
from stylebridge.pipelines.adapter import INVERSION, Adapter, check_strengths
from stylebridge.pipelines.featureshift.usage import generator_notes
from stylebridge.pipelines.inversion_file import (
    KIND,
    LATENTS_SUFFIX,
    check_restorable,
    inversion_generator_notes,
    load_inversion,
)
from stylebridge.pipelines.photos import (
    DEFAULT_BATCH,
    check_writable,
    drawn_anew,
    ends_at,
    fold_name,
    generator_file,
    is_random,
    open_encoder,
    open_generator,
    random_file_notice,
    random_parts,
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
from stylebridge.registry.needed import Request, WeightsCheck, require_weights
from stylebridge.registry.resolve import load_plugin

if TYPE_CHECKING:
    from stylebridge.core.interfaces import Encoder


@dataclass(kw_only=True)
@coerce_path_fields
class RenderConfig:
    """What :func:`render` does: inversion files (or folders of ``*_inversion.safetensors``)
    through ``methods``; the other options as ``adapt`` takes them."""

    latents: Sequence[str | Path]
    methods: Sequence[str]
    out: Path
    generator: str | None = None  # default: the files' own, else the installed one
    encoder: str | None = None    # default: the files' own, loaded only where one is needed
    calibrate: str | None = None
    skip_layers: str | Sequence[int] = ""
    featureshift: Path | None = None
    #: a renderer plugin by spec (``NAME[:CKPT][:k=v,...]`` or ``CKPT``), instead of the plain
    #: one; ``featureshift`` is the shorthand for FeatureShift's (give one of the two)
    renderer: str | None = None
    strength: float | Sequence[float] = 1.0
    batch: int = DEFAULT_BATCH
    device: str = "auto"
    compile: str = "auto"
    precision: str = "fp32"
    #: continue the interrupted run in ``out`` (:mod:`stylebridge.pipelines.resume`)
    resume: bool = False


def latent_files(items: Sequence[str | Path]) -> list[Path]:
    """Files as given; a folder gives its ``*_inversion.safetensors`` (sorted)."""
    out: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            out += sorted(p for p in path.iterdir()  # hidden files (._x) are no inversions
                          if p.name.endswith(LATENTS_SUFFIX) and not p.name.startswith("."))
        else:
            out.append(path)
    paths = expand_inputs(out)  # each file once
    if not paths:
        given = ", ".join(str(i) for i in items[:3]) + (", ..." if len(items) > 3 else "")
        raise StylebridgeError(f"no inversion files in {given} (folders are searched for "
                               f"*{LATENTS_SUFFIX}, which invert/adapt --save-latents write)")
    return paths


def stem_of(path: Path) -> str:
    """``photo_inversion.safetensors`` → ``photo`` (outputs are named as ``adapt`` names them)."""
    return path.name.removesuffix(LATENTS_SUFFIX) if path.name.endswith(LATENTS_SUFFIX) \
        else path.stem


@dataclass
class RenderJob:
    """Everything :func:`prepare_render` loaded and checked before an inversion is read."""

    config: RenderConfig
    paths: list[Path]
    headers: dict[Path, CheckpointHeader]
    unreadable: dict[Path, str]
    adapter: Adapter
    generator_path: Path
    encoder_spec: str | None
    featureshift: dict[str, Any] | None = None
    featureshift_random: bool = False
    notes: list[str] = field(default_factory=list)  # what the caller should say first
    journal: Journal | None = None  # opened by prepare_render (what --resume continues)
    renderer: dict[str, Any] | None = None  # the --renderer record (None: not given)

    @property
    def random_inputs(self) -> dict[str, Any]:
        """What runs on random weights: the generator, domains, calibrator, FeatureShift or
        ``--renderer``, the encoder where one is loaded, and the inversions themselves (made on
        random weights: their header says so)."""
        adapter = self.adapter
        out: dict[str, Any] = {"generator": is_random(adapter.generator),
                               "domains": {n: is_random(m) for n, m in adapter.methods.items()},
                               "latents": any(bool(h.extra.get("random_weights"))
                                              for h in self.headers.values())}
        if adapter.encoder is not None:
            out["encoder"] = is_random(adapter.encoder)
        if adapter.calibrator is not None:
            out["calibrator"] = is_random(adapter.calibrator)
        if self.featureshift is not None:
            out["featureshift"] = self.featureshift_random
        if self.renderer is not None:
            out["renderer"] = is_random(adapter.renderer)
        return out

    @property
    def parts(self) -> list[str]:
        return random_parts(self.random_inputs)

    def resume_settings(self) -> dict[str, Any]:
        """What a resumed run must share with the interrupted one, by option."""
        config, adapter = self.config, self.adapter
        return {
            "--generator": file_setting(self.generator_path),
            "--encoder": None if adapter.encoder is None else model_setting(
                str(self.encoder_spec), weights_path(adapter.encoder)),
            **domain_settings(config, adapter),
            "--renderer": None if config.renderer is None else model_setting(
                str(config.renderer), weights_path(adapter.renderer)),
            "--strength": list(adapter.strengths), "--precision": config.precision}


@dataclass
class RenderResult:
    """``summary`` (= ``render.json``), the batch report and ``grid.png`` (``None``: none done)."""

    summary: dict[str, Any]
    report: BatchReport
    grid: Path | None
    n_images: int  # images per file: the inversion and every domain output
    notes: list[str] = field(default_factory=list)
    kept: int = 0  # files an interrupted run had done (``resume``), in ``report.done`` too

    @property
    def exit_code(self) -> int:
        return self.report.exit_code

    @property
    def random_parts(self) -> list[str]:
        """What ran on untrained weights (``summary["random_parts"]``)."""
        return list(self.summary.get("random_parts") or [])


def _headers(paths: Sequence[Path]) -> tuple[dict[Path, CheckpointHeader], dict[Path, str]]:
    headers, unreadable = {}, {}
    for path in paths:
        try:
            header = read_header(path)
        except StylebridgeError as exc:
            unreadable[path] = str(exc).removeprefix(f"{path}: ")
            continue
        if header.kind != KIND:
            unreadable[path] = (f"is a {header.kind!r} checkpoint, not an inversion (invert "
                                "--save-latents writes those)")
        else:
            headers[path] = header
    return headers, unreadable


def _needs_encoder(path: Path, header: CheckpointHeader) -> bool:
    """Whether the inversion in ``path`` needs its encoder to rebuild modifiers (StyleRes'
    gated residual): the activations its header lists, or, in a file written before headers
    listed them (no ``modifiers`` entry), any encoder extra (``extra_*``) it holds: rendering
    such a file without its encoder dropped the residual silently."""
    if "modifiers" in header.config:
        return bool(header.config["modifiers"])
    try:
        with open_safetensors(path) as fh:
            names = fh.keys()  # a safetensors file, not a dict: no tensor is read
        return any(name.startswith("extra_") for name in names)
    except (OSError, ValueError, RuntimeError):  # unreadable: said when its tensors are read
        return False


def _default_generator(headers: dict[Path, CheckpointHeader]) -> tuple[str, list[str]]:
    """The first generator file the inversions record that exists, else the installed one
    (``stylegan2``), with a note naming the recorded files that are gone."""
    gone: list[str] = []
    for header in headers.values():
        recorded = str(header.config.get("generator") or "")
        if recorded and Path(recorded).is_file():
            return recorded, []
        if recorded and recorded not in gone:
            gone.append(recorded)
    notes = [f"the inversions record generator {gone[0]}, which is not there: rendering with "
             "the installed FFHQ generator (--generator chooses another)"] if gone else []
    return "stylegan2", notes


def _same_model(a: str, b: str) -> bool:
    """Whether two encoder specs name one checkpoint file (``fse:/p/fse.safetensors`` and
    ``/p/fse.safetensors``), or are the same text."""
    from stylebridge.registry.spec import parse_plugin_spec

    def file_of(spec: str) -> Path | None:
        if Path(spec).is_file():
            return Path(spec).resolve()
        try:
            path = parse_plugin_spec(spec, what="encoder").path
        except StylebridgeError:
            return None
        return path.resolve() if path is not None and path.is_file() else None

    fa, fb = file_of(a), file_of(b)
    return (fa is not None and fa == fb) or (bool(a) and a == b)


@releases_outputs
def prepare_render(config: RenderConfig, ensure_weights: WeightsCheck | None = None
                   ) -> RenderJob:
    """Read the files' headers and load the generator, domains and (where needed) the
    encoder, with one-line errors, before an inversion is read; open the run's journal in
    ``out`` (the interrupted run's with ``resume``)."""
    check_range("--batch", config.batch, 1, MAX_BATCH)
    check_renderer_choice(config.featureshift, config.renderer)
    parse_layers(config.skip_layers, syntax_only=True)
    check_strengths(config.strength)
    device = resolve_device(config.device)
    check_precision(config.precision, device)
    check_writable(config.out)  # a broken link, a read-only folder: before any model loads
    paths = latent_files(config.latents)
    headers, unreadable = _headers(paths)
    if not headers:
        first = next(iter(unreadable.items()))
        raise StylebridgeError(f"no readable inversion file ({first[0]}: {first[1]})")
    generator, notes = (config.generator, []) if config.generator else _default_generator(headers)
    needing = [h for p, h in headers.items() if _needs_encoder(p, h)]
    encoder_spec = config.encoder or (str(needing[0].config.get("encoder") or needing[0].plugin)
                                      if needing else None)
    requests: list[Request] = [("generator", generator, "--generator")]
    if encoder_spec:
        requests.append(("encoder", encoder_spec, "--encoder"))
    requests += [("domain_method", str(m), "--method") for m in config.methods]
    if config.calibrate:
        requests.append(("calibrator", config.calibrate, "--calibrate"))
    if config.renderer:
        requests.append(("renderer", config.renderer, "--renderer"))
    try:
        (ensure_weights or require_weights)(requests)
    except StylebridgeError as exc:
        raise StylebridgeError("; ".join([*notes, str(exc)])) from None
    gen = open_generator(generator, device)
    gen.set_precision(config.precision)
    notes += inversion_generator_notes(headers, gen)
    encoder: Encoder | None = open_encoder(encoder_spec, device) if encoder_spec else None
    methods = open_domains(config.methods, device)
    calibrator = (load_plugin("calibrator", config.calibrate, device=device)
                  if config.calibrate else None)
    fs_model, fs_info, fs_random = None, None, False
    if config.featureshift is not None:
        fs_model, fs_header, fs_random = open_featureshift(config.featureshift, device)
        guide = fs_header.extra.get("sources", {}).get("guide")
        _refuse_other_guide(f"--featureshift {config.featureshift}", guide, headers,
                            "--featureshift")
        fs_info = {"model": str(config.featureshift), "layer": fs_model.layer,
                   "guide": "the inversions' own latents"}
        notes += generator_notes(config.featureshift, fs_header, gen)
    chosen, renderer_info = None, None
    # a guide reads the inversions' own latents (there is no photo to encode): the adapter
    # must not build the guide encoder a model records
    own: dict[str, Any] = {"guide": None}
    if config.renderer is not None:
        chosen = open_renderer(config.renderer, device)
        guided = chosen.needs_guide
        _refuse_other_guide(f"--renderer {config.renderer}",
                            chosen.trained_guide if guided else None, headers, "--renderer")
        renderer_info = renderer_record(str(config.renderer), chosen,
                                        "the inversions' own latents" if guided else None)
        notes += renderer_generator_notes(str(config.renderer), chosen, gen)
    adapter = Adapter(encoder, gen, methods, calibrator=calibrator,
                      skip_layers=config.skip_layers,
                      renderer=fs_model if chosen is None else chosen,
                      strength=config.strength, **own)
    job = RenderJob(config=config, paths=paths, headers=headers, unreadable=unreadable,
                    adapter=adapter, generator_path=generator_file(gen),
                    encoder_spec=encoder_spec, featureshift=fs_info,
                    featureshift_random=fs_random, notes=[*notes, *adapter.notes],
                    renderer=renderer_info)
    job.journal = Journal.open(
        config.out, "render", settings=job.resume_settings(), inputs=paths, metrics={},
        how={"--batch": config.batch, "--device": str(device), "--compile": config.compile},
        resume=config.resume, unit="inversion", files=True,
        drawn=drawn_anew({"--encoder": encoder, "--calibrate": calibrator, "--renderer": chosen,
                          **{f"--method {name}": m for name, m in methods.items()}}))
    # a compile fall-back is one of the job's notes (the library prints nothing)
    compile_synthesis(gen, config.compile, notice=job.notes.append)
    job.notes += slow_precision_notes(config.precision, device)
    return job


def _refuse_other_guide(option: str, guide: str | None,
                        headers: dict[Path, CheckpointHeader], flag: str) -> None:
    """A renderer trained with the latents of guide encoder ``guide`` (its checkpoint says
    which) cannot run on inversions that another encoder made: those latents need the photos
    (``adapt {flag}``).  ``option``: how the message names the renderer's option."""
    made_by = {str(h.config.get("encoder") or "") for h in headers.values()}
    if guide and not all(_same_model(guide, spec) for spec in made_by):
        # another guide's latents need the photos; the inversions' own encoder is the guide
        raise StylebridgeError(
            f"{option}: the model was trained with the latents of guide encoder {guide}, "
            f"which render has no photo to run; use `stylebridge adapt {flag}` on the photos")


def join_inversions(items: Sequence[Inversion]) -> Inversion:
    """Inversions of the same layout (features, extras, mode) as one batch."""
    first = items[0]
    return Inversion(
        w_plus=torch.cat([i.w_plus for i in items]),
        features={k: torch.cat([i.features[k] for i in items]) for k in first.features},
        feature_mode=first.feature_mode,
        extras={k: torch.cat([i.extras[k] for i in items]) for k in first.extras})


def _layout(inversion: Inversion) -> tuple[Any, ...]:
    return (inversion.feature_mode,
            tuple(sorted((k, tuple(v.shape[1:])) for k, v in inversion.features.items())),
            tuple(sorted((k, tuple(v.shape[1:])) for k, v in inversion.extras.items())))


def run_render(job: RenderJob, progress: ProgressCallback | None = None) -> RenderResult:
    """Render every inversion file of ``job`` and write the outputs (module docstring)."""
    config, adapter = job.config, job.adapter
    gen, device = adapter.generator, adapter.device
    parts = job.parts
    inversion_notice = random_file_notice(parts)
    file_notice = {key: random_file_notice(parts, name)
                   for key, (name, _) in adapter.outputs.items()}
    tile = min(gen.size, GRID_TILE)
    dtype = gen.input.input.dtype  # the latents' dtype whatever each file holds (fp16, fp64)
    layer = shifted_layer(adapter.renderer)  # the feature FeatureShift shifts: each file's
    shifter = "--featureshift" if job.featureshift is not None else "--renderer"
    journal = job.journal or Journal.fresh(config.out, "render", job.paths)
    report, records, grid_rows = journal.report, journal.records, journal.grid_rows
    handled = journal.handled  # --resume: the files done (or skipped) before are kept
    kept_done = {str(p) for p in journal.report.done}  # those claim their output names
    for done, record in records.items():  # the notes of kept files, said again
        for text in record.get("notes") or ():
            report.note(Path(done), text)
    # what a killed run (journal or not) left half-written of this run's files, by name
    keys = [INVERSION, *adapter.outputs]
    remove_stale_temporaries(config.out, [*(f"{stem_of(p)}_{k}.png" for p in job.paths
                                            for k in keys), "grid.png", "render.json"])
    stems: dict[str, Path] = {}
    targets: dict[str, Path] = {}  # the file each claimed output ends at -> its inversion
    inputs = {ends_at(p.parent, p.name): p for p in job.paths}

    def claim(path: Path) -> None:
        stems[fold_name(stem_of(path))] = path
        targets.update((ends_at(config.out, f"{stem_of(path)}_{k}.png"), path) for k in keys)

    notes_of: dict[Path, list[str]] = {}
    pending: list[tuple[Path, Inversion]] = []

    def note(path: Path, text: str) -> None:
        report.note(path, text)
        notes_of.setdefault(path, []).append(report.notes[-1][1])

    def flush() -> None:
        if not pending:
            return
        joined = join_inversions([inv for _, inv in pending]).to(device)
        # as adapt: calibrate(inversion); a renderer that reads guide latents, without a guide
        # encoder, gets the uncalibrated w+ as adapt gives it (Adapter.guide_latents)
        guide = joined.w_plus if adapter.renderer.needs_guide and adapter.guide is None else None
        with torch.no_grad():
            images = adapter.render(adapter.calibrated(joined), guide=guide)
        config.out.mkdir(parents=True, exist_ok=True)
        journal.claim()  # a fresh run: an interrupted run's journal goes before its files
        for i, (path, _) in enumerate(pending):
            files = {}
            for key, batch in images.items():
                dst = config.out / f"{stem_of(path)}_{key}.png"
                save_png(dst, batch[i], notice=file_notice.get(key, inversion_notice))
                files[key] = dst.name
            records[str(path)] = {"files": files, **({"notes": notes_of[path]}
                                                     if path in notes_of else {})}
            if len(grid_rows) < GRID_MAX_ROWS:
                grid_rows.append([resize_square(images[k][i].cpu(), tile) for k in images])
            report.ok(path)
        pending.clear()
        journal.save({})

    total = len(job.paths)
    description = f"rendering {len(adapter.methods)} domain(s)"
    for n, path in enumerate(job.paths):
        if progress is not None:
            progress(n, total, description)
        reason = job.unreadable.get(path) or _name_clash(stems, path, config.out, keys,
                                                         targets, inputs)
        if str(path) in handled:  # kept from the interrupted run: a rendered one's stem is taken
            if reason is None and str(path) in kept_done:
                claim(path)
            continue
        if reason is None:
            try:
                inversion, header = load_inversion(
                    path, dtype=dtype, on_convert=lambda text, p=path: note(p, text))
                if adapter.encoder is not None:
                    check_restorable(path, header, adapter.encoder)
                check_compatible(inversion, gen, "the inversion")
                if layer is not None and layer not in inversion.features:
                    raise StylebridgeError(
                        f"holds no encoder feature at activation {layer}, "
                        f"which {shifter} shifts (save it from fse in mode=features)")
            except StylebridgeError as exc:
                reason = str(exc).removeprefix(f"{path}: ")
        if reason is not None:
            report.skip(path, reason)
            continue
        claim(path)  # read: only now it claims its output names
        if pending and _layout(pending[0][1]) != _layout(inversion):
            flush()
        pending.append((path, inversion))
        if len(pending) >= config.batch:
            flush()
    flush()
    if progress is not None:
        progress(total, total, description)
    notice = f"{RANDOM_NOTICE}: not a trained model ({', '.join(parts)})" if parts else None
    outputs = {done: dict(record["files"]) for done, record in records.items()}
    summary: dict[str, Any] = {  # the generator's absolute path and sha256, the files, versions
        **run_record(config.generator, job.generator_path, generator=adapter.generator,
                     domains=adapter.methods, calibrator=adapter.calibrator,
                     featureshift=adapter.renderer if config.featureshift is not None else None,
                     renderer=adapter.renderer if config.renderer is not None else None),
        "encoder": job.encoder_spec,
        "domains": {name: str(spec) for name, spec in zip(adapter.methods, config.methods,
                                                          strict=True)},
        "calibrator": config.calibrate, "skip_layers": adapter.skip_layers,
        "strength": list(adapter.strengths), "featureshift": job.featureshift,
        "renderer": job.renderer,
        "precision": config.precision, "random_weights": bool(parts),
        "random_inputs": job.random_inputs, "random_parts": parts,
        "outputs": outputs, **report.as_dict()}
    if adapter.notes:  # domains trained on another generator file
        summary["notes"] = list(adapter.notes)
    if notice:
        summary["notice"] = notice
    if report.done:  # a run that made nothing leaves the folder as it was (as invert does)
        config.out.mkdir(parents=True, exist_ok=True)
        write_json(config.out / "render.json", summary)
    grid = None
    if grid_rows:
        domain_random = job.random_inputs["domains"]
        labels = [INVERSION, *(f"{key} [{RANDOM_NOTICE}]" if domain_random[name] else key
                               for key, (name, _) in adapter.outputs.items())]
        grid = config.out / "grid.png"
        rows_of = [Path(p).name.removesuffix(LATENTS_SUFFIX) for p in outputs][:len(grid_rows)]
        save_png(grid, labelled_grid(grid_rows, labels, notice=notice, row_labels=rows_of,
                                     min_tile=128),  # small tiles enlarged: readable labels
                 grid=True, notice=notice)
    journal.finish()
    return RenderResult(summary=summary, report=report, grid=grid,
                        n_images=len(adapter.outputs) + 1,
                        notes=[*job.notes, *journal.notices], kept=journal.kept)


def _name_clash(stems: dict[str, Path], path: Path, out: Path, keys: list[str],
                targets: dict[str, Path], inputs: dict[str, Path]) -> str | None:
    """Two files whose outputs would have the same names (compared case-folded and
    Unicode-composed: one file on macOS), or an output that is a link to another file's
    output (``targets``) or to an inversion file (``inputs``): the second is skipped (a
    file claims its names once it is read: an unreadable one blocks no other)."""
    stem = stem_of(path)
    if fold_name(stem) in stems:
        return f"output name {stem}_* is already used by {stems[fold_name(stem)]}"
    for key in keys:
        name = f"{stem}_{key}.png"
        end = ends_at(out, name)
        if end in targets:
            return (f"output {out / name} is a link to an output of {targets[end]}: one of "
                    "them would be lost")
        if end in inputs:
            return (f"output {out / name} is a link to the inversion file {inputs[end]}: "
                    "writing it would replace that file (remove the link)")
    return None


@user_entry
@releases_outputs
def render(config: RenderConfig, progress: ProgressCallback | None = None, *,
           ensure_weights: WeightsCheck | None = None) -> RenderResult:
    """:func:`prepare_render` (``ensure_weights``: ``stylebridge.fetching()`` fetches missing
    official weights first) then :func:`run_render`.  Called from Python, it warns what the
    command line prints: random weights (:class:`~stylebridge.errors.RandomWeightsWarning`),
    a domain the skip layers leave unchanged, skipped files (``SkippedInputsWarning``)."""
    check_progress(progress, "render", n_args=3, shape=PHOTO_PROGRESS_SHAPE)  # before loading
    job = prepare_render(config, ensure_weights)
    warn_random("render", job.parts)
    for line in job.adapter.unchanged_notes:
        warn_user(line)
    result = run_render(job, progress)
    warn_run_end("render", result.report, unit="file")
    return result


__all__ = ["RenderConfig", "RenderJob", "RenderResult", "join_inversions", "latent_files",
           "prepare_render", "render", "run_render", "stem_of"]
