"""``reproduce thesis-tables`` as a pipeline: a :class:`ThesisTablesConfig` in, the tables
(:class:`ThesisTablesResult`, ``thesis_tables.json`` and ``thesis_tables.md``) out.

Progress and notices go to an optional plain callback that receives
:class:`TablesProgress` events; the CLI (``stylebridge.cli.commands.reproduce``) turns them
into terminal output.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from stylebridge.core.batch import EXIT_PARTIAL, BatchReport, iter_images, require_inputs
from stylebridge.core.checkpoint import RANDOM_NOTICE
from stylebridge.core.device import resolve_device
from stylebridge.core.images import from_generator_range, load_image, resize_square
from stylebridge.core.interfaces import Inversion
from stylebridge.core.io import atomic_path, write_json
from stylebridge.core.limits import MAX_BATCH, MAX_SAMPLES, check_range
from stylebridge.core.synthesis import synthesize
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.adapt import load_generator_arg
from stylebridge.pipelines.output_holds import releases_outputs
from stylebridge.pipelines.presets import (
    TINY_CLIPS,
    TINY_PROMPTS,
    TinyPreset,
    build_tiny_preset,
    quiet,
)
from stylebridge.pipelines.reproduce.clips import (
    Scorer,
    check_clip_weights,
    parse_clip_weights,
    register_clip_configs,
    resolve_clips,
)
from stylebridge.pipelines.reproduce.common import (
    DEFAULT_CLIPS,
    DEFAULT_TEMPLATE,
    JSON_FILE,
    MARKDOWN_FILE,
    PRESET_DIR,
    QUANTITIES,
    RANDOM_SENTENCE,
    ROWS,
)
from stylebridge.pipelines.reproduce.domains import collect_domains, domain_files, read_targets
from stylebridge.pipelines.reproduce.groups import (
    DEFAULT_GAP_ROW,
    GAP_READINGS,
    GAP_ROWS,
    group_domains,
    other_scale,
    parse_quality_targets,
    pick_group_clip,
    table_values,
)
from stylebridge.pipelines.reproduce.journal import (
    TRAINED,
    check_resume,
    open_rows,
    run_settings,
    thread_how,
    trained_identity,
)
from stylebridge.pipelines.reproduce.methods import (
    DEFAULT_METHOD_STEPS,
    MAX_METHOD_STEPS,
    METHODS_DIR,
    RecipeInputs,
    compare_methods,
    methods_domains,
    parse_methods,
    pick_methods_row,
    trained_domains,
)
from stylebridge.pipelines.reproduce.report import aggregate, json_ready, render_markdown
from stylebridge.pipelines.reproduce.rows import (
    RowBuilder,
    RowSkipped,
    Sources,
    encoder_spec,
    orig_latents,
)
from stylebridge.pipelines.run_record import generator_record, software
from stylebridge.pipelines.training.progress import check_progress
from stylebridge.pipelines.typed import coerce_path_fields
from stylebridge.registry import get_registry
from stylebridge.registry.file_hashes import content_sha256
from stylebridge.registry.needed import Request, WeightsCheck, clip_requests, require_weights


@dataclass
@coerce_path_fields
class ThesisTablesConfig:
    """The inputs of ``reproduce thesis-tables`` (one field per CLI option; see the package
    docstring of :mod:`stylebridge.pipelines.reproduce`)."""

    images: list[str] | None = None
    domains: list[str] | None = None
    targets: list[Path] = field(default_factory=list)
    generator: str | None = None
    e4e: str | None = None
    fse: str | None = None
    featureshift_e4e: Path | None = None
    featureshift_fse: Path | None = None
    clip: list[str] | None = None
    clip_weights: list[str] = field(default_factory=list)
    clip_config: list[Path] = field(default_factory=list)
    samples: int | None = None
    truncation: float = 1.0
    text_template: str = DEFAULT_TEMPLATE
    allow_random: bool = False
    preset: str | None = None
    seed: int = 0
    batch: int = 4
    out: Path = Path("thesis-tables")
    device: str = "auto"
    #: ``[TABLE=]text|reference-image`` items (default per table: 4.1/4.2 text, 4.3
    #: reference-image; :mod:`stylebridge.pipelines.reproduce.groups`)
    quality_target: list[str] = field(default_factory=list)
    #: the FSE row whose Quality gap to E4E groups the domains (Table 4.3's "different")
    group_gap_row: str = DEFAULT_GAP_ROW
    #: ``(different_above, similar_below)`` gap thresholds instead of thirds per kind
    group_thresholds: tuple[float, float] | None = None
    #: ``signed`` (default: FSE behind E4E) or ``absolute`` (``|gap|``) sorts the groups
    group_gap: str = "signed"
    #: compare these domain methods (:mod:`stylebridge.pipelines.reproduce.methods`)
    methods: list[str] | None = None
    #: the latent row of the methods comparison (default e4e if it ran, else orig)
    methods_row: str | None = None
    #: training steps per domain of the methods' recipes (``--preset tiny``)
    method_steps: int = DEFAULT_METHOD_STEPS
    #: keep the rows an interrupted run into ``out`` finished (:mod:`.journal`)
    resume: bool = False

    def weight_requests(self) -> list[Request]:
        """What this run loads by name, as ``(kind, spec, option)``: the generator, e4e and
        FSE (when not given, the installed ones: named too, unless ``allow_random``
        computes their rows on random weights instead) and the CLIP models without a
        ``clip_weights`` file (unless ``allow_random``).  The official weights named and not
        installed are reported together, and ``--fetch`` fetches them."""
        out: list[Request] = [("generator", self.generator, "--generator")] \
            if self.generator else []
        for name, given in (("e4e", self.e4e), ("fse", self.fse)):
            if given or not self.allow_random:
                out.append(("encoder", given or name, f"--{name}" + ("" if given else
                                                                     " (default)")))
        return out + clip_requests(self.clip or DEFAULT_CLIPS,
                                   parse_clip_weights(self.clip_weights),
                                   "--clip" if self.clip else "--clip (default)",
                                   allow_random=self.allow_random)


@dataclass(frozen=True)
class TablesProgress:
    """A progress event of :func:`run_thesis_tables`.

    ``kind``: ``"preset"`` (the tiny preset was built in ``path``), ``"random"`` (some shared
    network has random weights), ``"clips"`` / ``"clips-done"`` (loading the CLIP models),
    ``"row"`` (row ``label`` starts, ``total`` images), ``"advance"`` (``count`` more images of
    the current row), ``"row-done"`` (the current row ended: done, skipped or failed),
    ``"train"`` (``--methods``: the recipe of method ``label`` starts training),
    ``"row-kept"`` (row ``label`` is taken from the interrupted run, ``--resume``),
    ``"notice"`` (a line to show, in ``label``).
    """

    kind: str
    label: str = ""
    total: int = 0
    count: int = 0
    path: Path | None = None


ProgressCallback = Callable[[TablesProgress], None]


#: the command whose interrupted runs ``--resume`` continues (:mod:`.journal`)
COMMAND = "reproduce thesis-tables"


class NoUsableInputs(StylebridgeError):
    """No usable domain, or fewer than two readable photos; ``report`` lists the skipped
    files (the CLI prints it before the error), ``domains`` which domains were used or
    skipped."""

    def __init__(self, message: str, report: BatchReport,
                 domains: BatchReport | None = None) -> None:
        super().__init__(message)
        self.report = report
        self.domains = domains if domains is not None else BatchReport()


@dataclass
class ThesisTablesResult:
    """What :func:`run_thesis_tables` computed and wrote.

    ``data``: the content of ``thesis_tables.json`` (every value, per domain too); ``report``:
    the photos done, the photos and domain files skipped; ``domains``: the domain files used
    (``done``) and skipped; ``failed``: some row raised (the other rows ran);
    :attr:`exit_code`: 0, or 3 when inputs were skipped or a row failed.
    """

    data: dict[str, Any]
    report: BatchReport
    failed: bool
    json_path: Path
    markdown_path: Path
    domains: BatchReport = field(default_factory=BatchReport)

    @property
    def random_weights(self) -> bool:
        return bool(self.data["random_weights"])

    @property
    def notes(self) -> list[str]:
        return list(self.data["notes"])

    @property
    def exit_code(self) -> int:
        code = self.report.exit_code
        return EXIT_PARTIAL if self.failed and code == 0 else code


def apply_preset(config: ThesisTablesConfig) -> tuple[ThesisTablesConfig, TinyPreset]:
    """Build the tiny preset in ``OUT/tiny-preset``; the config with every input it does not
    give taken from the preset."""
    preset = build_tiny_preset(config.out / PRESET_DIR, seed=config.seed)
    changes: dict[str, Any] = {
        "images": config.images or [str(preset.images)],
        "domains": config.domains or [str(preset.domains)],
        "generator": config.generator or str(preset.generator),
        "e4e": config.e4e or str(preset.e4e),
        "fse": config.fse or str(preset.fse),
        "featureshift_e4e": config.featureshift_e4e or preset.featureshift_e4e,
        "featureshift_fse": config.featureshift_fse or preset.featureshift_fse,
        "clip_config": [*config.clip_config, preset.clip_config],
    }
    if not config.clip:
        changes["clip"] = list(preset.clip_weights)
        given = {w.partition("=")[0].strip() for w in config.clip_weights}
        changes["clip_weights"] = [*config.clip_weights,
                                   *(f"{n}={p}" for n, p in preset.clip_weights.items()
                                     if n not in given)]
    return replace(config, **changes), preset


def check_config(config: ThesisTablesConfig, *, domains: bool = True) -> None:
    """One-line errors for missing or out-of-range options (named as on the command line)."""
    missing = [opt for opt, value in (("--images", config.images), ("--domains", config.domains),
                                      ("--generator", config.generator)) if not value]
    if missing:
        raise StylebridgeError(f"give {', '.join(missing)} (or --preset tiny for a random-weight "
                               "smoke run)")
    if domains:  # not when the --methods recipes train the run's domains
        domain_files(config.domains or [])
    check_options(config)
    require_inputs(config.images)  # "no input images in DIR", as the other commands say


def check_options(config: ThesisTablesConfig) -> None:
    """One-line errors for out-of-range values and missing --featureshift-* files: checked
    before the tiny preset is built."""
    check_range("--batch", config.batch, 1, MAX_BATCH)
    if config.samples is not None and config.samples < 2:
        raise StylebridgeError(f"--samples {config.samples}: Diversity needs at least 2")
    if config.samples is not None:
        check_range("--samples", config.samples, 2, MAX_SAMPLES)
    if not 0.0 <= config.truncation <= 1.0:
        raise StylebridgeError(f"--truncation {config.truncation}: must be in [0, 1]")
    parse_quality_targets(config.quality_target)
    if config.group_gap_row not in GAP_ROWS:
        raise StylebridgeError(f"--group-gap-row {config.group_gap_row!r}: expected one of "
                               f"{', '.join(GAP_ROWS)}")
    if config.group_gap not in GAP_READINGS:
        raise StylebridgeError(f"--group-gap {config.group_gap!r}: expected one of "
                               f"{', '.join(GAP_READINGS)}")
    if config.group_thresholds is not None and not (
            config.group_thresholds[0] >= config.group_thresholds[1]):
        raise StylebridgeError(f"--group-thresholds {list(config.group_thresholds)}: the "
                               "'different' threshold must be >= the 'similar' one")
    if config.methods_row is not None and config.methods_row not in {r.key for r in ROWS}:
        raise StylebridgeError(f"--methods-row {config.methods_row!r}: expected one of "
                               f"{', '.join(r.key for r in ROWS)}")
    check_range("--method-steps", config.method_steps, 1, MAX_METHOD_STEPS)
    if config.text_template.count("{}") != 1:
        raise StylebridgeError(f"--text-template {config.text_template!r}: must contain '{{}}' "
                               "once")
    for path in (config.featureshift_e4e, config.featureshift_fse):
        if path is not None and not Path(path).is_file():
            raise StylebridgeError("no such file", path=path)
    weights = parse_clip_weights(config.clip_weights)  # NAME=PATH, each a file, of --clip
    check_clip_weights(config.clip or (list(TINY_CLIPS) if config.preset == "tiny"
                                       else DEFAULT_CLIPS), weights)
    for path in weights.values():
        if not path.is_file():
            raise StylebridgeError("no such file", path=path)
    for targets in config.targets:  # missing, unreadable or malformed: one line, now
        read_targets(Path(targets))


def readable_images(paths: Sequence[Path], report: BatchReport) -> list[Path]:
    """Validation pass: the readable photos (others go to ``report``)."""
    good = []
    for path, _ in iter_images(paths, report):
        report.ok(path)
        good.append(path)
    return good


def photo_batches(paths: Sequence[Path], size: int, batch: int) -> Iterator[Tensor]:
    """Photos resized to ``size`` × ``size`` (as ``adapt``), ``[b, 3, size, size]`` in [0, 1]."""
    for start in range(0, len(paths), batch):
        yield torch.stack([resize_square(load_image(p), size) for p in paths[start:start + batch]])


@releases_outputs
def run_thesis_tables(config: ThesisTablesConfig, progress: ProgressCallback | None = None,
                      *, ensure_weights: WeightsCheck | None = None) -> ThesisTablesResult:
    """Compute the thesis' CLIP Quality / Diversity tables and write them to ``config.out``.

    Every row of :data:`ROWS` × every domain × every CLIP model: images adapted to the domain
    and scored with ``clip_quality`` / ``clip_diversity`` (HyperDomainNet A.3.3), averaged
    over all domains and over image / text domains (thesis Tables 4.1–4.3).  A row whose
    weights are missing is skipped (or built on random weights with ``allow_random``), a row
    that raises is reported as failed; the others still run.  ``ensure_weights`` gets
    :meth:`ThesisTablesConfig.weight_requests` after the cheap checks, before anything loads:
    by default one error naming every official download the run lacks; ``--fetch``
    downloads them.
    """
    check_progress(progress, "run_thesis_tables", shape="progress= is called with one "
                   "TablesProgress (kind, label, ...)")

    def emit(kind: str, **fields: Any) -> None:
        if progress is not None:
            progress(TablesProgress(kind, **fields))

    methods = None
    if config.methods is not None:
        methods = parse_methods(config.methods, get_registry().names("domain_method"))
    train_methods = methods is not None and config.preset == "tiny" and not config.domains
    if config.images:  # an empty or absent folder: said before the preset is built
        require_inputs(config.images)
    if config.domains:
        domain_files(config.domains)
    check_options(config)  # before the preset writes anything
    device = resolve_device(config.device)
    preset: TinyPreset | None = None
    if config.preset == "tiny":
        config, preset = apply_preset(config)
        emit("preset", path=preset.root)
    check_config(config, domains=not train_methods)
    assert config.images is not None and config.domains is not None
    assert config.generator is not None
    settings = run_settings(config)
    check_resume(config.out, COMMAND, settings, resume=config.resume)  # before any training
    notes: list[str] = []
    register_clip_configs(config.clip_config)
    check_clip_weights(config.clip or DEFAULT_CLIPS, parse_clip_weights(config.clip_weights))
    (ensure_weights or require_weights)(config.weight_requests())  # every download at once, before any loads
    clips = resolve_clips(config.clip or list(DEFAULT_CLIPS),
                          parse_clip_weights(config.clip_weights),
                          allow_random=config.allow_random, notes=notes)
    sources = Sources(e4e=encoder_spec(config.e4e, "e4e"), fse=encoder_spec(config.fse, "fse"),
                      featureshift_e4e=config.featureshift_e4e,
                      featureshift_fse=config.featureshift_fse)
    gen, gen_random, g_path = load_generator_arg(config.generator, device)
    # the files' contents as they are read now (the record is written at the end)
    clip_sha256 = {c.name: content_sha256(c.weights) for c in clips}
    report = BatchReport()   # photos done; photos and domain files skipped
    used = BatchReport()     # domain files used and skipped
    skipped_methods: dict[str, str] = {}
    if train_methods:
        assert methods is not None and preset is not None
        assert config.clip is not None
        weights = parse_clip_weights(config.clip_weights)
        inputs = RecipeInputs(
            generator=preset.generator, out_dir=preset.root / METHODS_DIR,
            prompts=TINY_PROMPTS, reference_image=sorted(preset.images.glob("*.png"))[0],
            clip=tuple(config.clip),
            clip_weights={n: weights[n] for n in config.clip if n in weights},
            encoder=f"e4e:{preset.e4e}", steps=config.method_steps, seed=config.seed,
            device=str(device))
        domains, skipped_methods = trained_domains(methods, inputs, gen, device, notes,
                                                   lambda m: emit("train", label=m))
        # a resumed run keeps its rows only if it trained the same domains (:mod:`.journal`)
        settings[TRAINED] = trained_identity(domains)
        if not domains:
            raise NoUsableInputs("no domain to evaluate: none of the --methods has a training "
                                 f"recipe ({', '.join(skipped_methods)})", report, used)
    else:
        found = collect_domains(config.domains, config.targets, used, generator=gen,
                                device=device)
        report.skipped += used.skipped
        report.notes += used.notes
        domains = found if methods is None else methods_domains(found, methods, notes)
        if found and not domains:
            raise NoUsableInputs(f"no domain of the --methods ({', '.join(methods or [])}) "
                                 "among --domains (they are "
                                 f"{', '.join(sorted({d.plugin for d in found}))})",
                                 report, used)
        if not domains:
            raise NoUsableInputs(f"no usable domain: the {len(used.skipped)} domain "
                                 "checkpoint(s) given were all skipped (see the table above)",
                                 report, used)
    used.done[:] = [d.path for d in domains]
    photos = readable_images(require_inputs(config.images), report)
    if len(photos) < 2:
        raise NoUsableInputs(f"{len(photos)} readable photo(s) in {', '.join(map(str, config.images))}: "
                             "Diversity needs at least 2", report, used)
    journal = open_rows(config.out, COMMAND, settings, resume=config.resume,
                        how={"--batch": config.batch, "--device": str(device),
                             **thread_how(device)}, unit="row")
    for notice in journal.notices:
        emit("notice", label=notice)
    n_samples = config.samples or len(photos)
    shared_random = gen_random or any(c.random for c in clips) or any(d.random for d in domains)
    if shared_random:
        emit("random")

    emit("clips")
    scorer = quiet(lambda: Scorer(domains, clips, template=config.text_template,
                                  device=device, seed=config.seed))
    emit("clips-done")
    builder = RowBuilder(gen, sources, device=device,
                         methods={d.name: d.method for d in domains},
                         allow_random=config.allow_random, seed=config.seed)
    rows: list[dict[str, Any]] = []
    failed = False
    for spec in ROWS:
        if spec.key in journal.kept:  # finished by the interrupted run (--resume)
            kept_row, kept_notes = journal.kept[spec.key]
            rows.append(kept_row)
            notes.extend(kept_notes)
            if kept_row.get("status") == "done" and "files" not in kept_row:
                notes.append(f"row {spec.label!r}: kept from a journal of an earlier "
                             "stylebridge, which named no checkpoint files by sha256 (files)")
            emit("row-kept", label=spec.label)
            continue
        row: dict[str, Any] = {"key": spec.key, "label": spec.label}
        rows.append(row)
        notes_before = len(notes)
        emit("row", label=spec.label, total=n_samples if spec.key == "orig" else len(photos))
        setup = None
        try:
            setup = builder.build(spec.key)
            scorer.reset()
            if setup.adapter is None:
                for w_plus in orig_latents(gen, n_samples, seed=config.seed,
                                           truncation=config.truncation, batch=config.batch):
                    inversion = Inversion(w_plus=w_plus)
                    for d in domains:
                        with torch.no_grad():
                            images = synthesize(gen, inversion, method=d.method)
                        scorer.update(d.name, from_generator_range(images))
                    emit("advance", label=spec.label, count=int(w_plus.shape[0]))
            else:
                for batch in photo_batches(photos, gen.size, config.batch):
                    rendered = setup.adapter.run(batch)
                    for d in domains:
                        scorer.update(d.name, rendered[d.name])
                    emit("advance", label=spec.label, count=int(batch.shape[0]))
            per_domain = scorer.compute()
        except RowSkipped as exc:
            row.update(status="skipped", reason=str(exc))
            notes.append(f"row {spec.label!r} skipped: {exc}")
            continue
        except (StylebridgeError, ValueError, RuntimeError) as exc:
            # the other rows still run; the table says which one failed and why
            reason = str(exc) if isinstance(exc, StylebridgeError) else \
                f"{type(exc).__name__}: {' '.join(str(exc).split())}"
            row.update(status="failed", reason=reason)
            notes.append(f"row {spec.label!r} failed: {reason}")
            failed = True
            continue
        finally:
            emit("row-done", label=spec.label)
        row_random = bool(setup.random)
        if row_random and not shared_random:
            notes.append(f"row {spec.label!r}: {RANDOM_NOTICE} "
                         f"({', '.join(setup.sources.values())})")
        notes.extend(f"row {spec.label!r}: {n}" for n in setup.notes)
        row.update(status="done", random_weights=row_random or shared_random,
                   sources=setup.sources, files=setup.files, mean=aggregate(per_domain, domains),
                   per_domain=per_domain)
        journal.record(row, notes[notes_before:])
        del setup

    targets = parse_quality_targets(config.quality_target)
    kinds = {d.name: d.kind for d in domains}
    done = {r["key"]: r for r in rows if r.get("status") == "done"}
    group_clip = pick_group_clip([c.name for c in clips])
    groups: dict[str, Any] | None = None
    if "e4e" in done and config.group_gap_row in done:
        groups = group_domains(done["e4e"]["per_domain"],
                               done[config.group_gap_row]["per_domain"], kinds,
                               clip=group_clip, target=targets["4.2"],
                               thresholds=config.group_thresholds, gap=config.group_gap)
    else:
        notes.append(f"no domain groups and no Table 4.3 layout: they need the rows 'e4e' and "
                     f"{config.group_gap_row!r}")
    for row in done.values():
        row["tables"] = table_values(row["per_domain"], kinds, targets, groups)
    for table, target in sorted(targets.items()):  # two cosine scales in one mean: say so
        mixed = sorted({n for r in done.values()
                        for n in other_scale(r["per_domain"], kinds, target)})
        if mixed:
            notes.append(f"Table {table}: {', '.join(mixed)} had no {target} Quality target "
                         "and were scored against the other one, on another cosine scale "
                         "(image-image ~0.7, image-text ~0.25), inside the same means")
    random = shared_random or any(r.get("random_weights") for r in rows)
    data: dict[str, Any] = {
        "title": "Thesis Tables 4.1-4.3: CLIP Quality and Diversity"
                 + (f" [{RANDOM_NOTICE}]" if random else ""),
        "random_weights": random,
        "notice": RANDOM_SENTENCE if random else None,
        "preset": config.preset,
        "generator": str(g_path), "generator_random_weights": gen_random,
        # the files by content, and where the relative paths above are read from
        "generator_sha256": generator_record(None, g_path, gen)["generator_sha256"],
        "cwd": os.getcwd(),
        "clip_models": [{"name": c.name, "weights": None if c.weights is None else str(c.weights),
                         "weights_sha256": clip_sha256.get(c.name),
                         "random_weights": c.random} for c in clips],
        "text_template": config.text_template,
        "quantities": {k: q.as_dict() for k, q in QUANTITIES.items()},
        "quality_targets": targets,
        "groups": None if groups is None else {
            "clip": group_clip, "gap_row": config.group_gap_row, "target": targets["4.2"],
            "rule": ("thirds per kind" if config.group_thresholds is None else
                     f"thresholds {list(config.group_thresholds)}"),
            "gap": config.group_gap,
            "domains": groups},
        "n_images": len(photos), "samples": n_samples, "seed": config.seed,
        "truncation": config.truncation, "software": software(),
        "domains": [d.describe(config.text_template) for d in domains],
        "rows": rows, "notes": notes,
        "report": {**report.as_dict(), "counts": {
            "photos": {"done": len(report.done),
                       "skipped": len(report.skipped) - len(used.skipped)},
            "domains": {"done": len(used.done), "skipped": len(used.skipped)}}},
    }
    if methods is not None:
        key = pick_methods_row(config.methods_row, list(done))
        if key is None:
            notes.append(f"methods comparison: the row {config.methods_row or 'e4e/orig'!r} "
                         "did not run")
        data["methods"] = {
            "row": key, "row_label": next((r.label for r in ROWS if r.key == key), None),
            "quality_target": targets["4.1"], "trained": train_methods,
            "methods": compare_methods(methods, domains, done.get(key) if key else None,
                                       target=targets["4.1"], skipped=skipped_methods)}
    data = json_ready(data)
    config.out.mkdir(parents=True, exist_ok=True)
    write_json(config.out / JSON_FILE, data)
    with atomic_path(config.out / MARKDOWN_FILE) as tmp:
        # a photo named in bytes that are not UTF-8 is written as its own bytes
        tmp.write_text(render_markdown(data), encoding="utf-8", errors="surrogateescape")
    journal.finish()
    return ThesisTablesResult(data=data, report=report, failed=failed,
                              json_path=config.out / JSON_FILE,
                              markdown_path=config.out / MARKDOWN_FILE, domains=used)
