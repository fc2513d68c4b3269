"""Evaluate predictions against targets with registered metrics (``stylebridge eval``).

:func:`evaluate` takes an :class:`EvalConfig` (metric specs, prediction and target files or
folders), pairs the files by name, streams size-matched batches through every metric and
returns an :class:`EvalResult`: the means, the per-image values, each metric's config,
random-weights flag and notes, and the :class:`~stylebridge.core.batch.BatchReport` of
skipped files; with ``json`` / ``csv`` it also writes them (atomically; both paths are
checked before any work).  What it has to say while it works (notes, progress) goes to an
:class:`EvalProgress`, whose methods do nothing by default.

Pairing: predictions and targets are paired by file stem; two files named explicitly are a
pair whatever their names (:mod:`stylebridge.pipelines.eval_pairs`, which also reads the pairs
in size-matched batches).  When no requested metric compares pairs (FID, CLIP), the targets
are an unpaired reference *set*, fed to the metrics that take one
(:attr:`~stylebridge.core.interfaces.Metric.takes_reference`).

A pair a metric refuses because of its images (too small for SSIM's window or LPIPS'
network) is skipped with the reason, named in the report, and the run goes on
(:mod:`stylebridge.pipelines.eval_score`); the exit code is then that of a partial batch run.
Pictures that keep a notice in their file (made on random weights) are counted and their
scores labelled (:mod:`stylebridge.pipelines.eval_report`, which also writes the JSON and CSV).

An evaluation that writes ``json``/``csv`` keeps a journal beside that file
(:func:`journal_folder`, :mod:`stylebridge.pipelines.eval_journal`) after each batch:
``resume`` continues an interrupted one with the pairs it scored or skipped, their values and
the metrics' states (:meth:`~stylebridge.core.interfaces.Metric.state`; FID and CLIP
diversity have none).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from stylebridge.core.batch import BatchReport, expand_inputs
from stylebridge.core.device import resolve_device
from stylebridge.core.interfaces import Metric
from stylebridge.core.io import check_outputs_apart, check_writable
from stylebridge.core.limits import MAX_BATCH, MAX_IMAGE_SIZE, check_range
from stylebridge.core.options import coerce_option
from stylebridge.errors import SpecError, StylebridgeError, user_entry
from stylebridge.pipelines.eval_journal import journal_folder, open_journal
from stylebridge.pipelines.eval_pairs import eval_batches, pair_files, suffix_hint
from stylebridge.pipelines.eval_report import (
    EvalResult,
    MetricResult,
    check_replaceable,
    json_number,
    metric_result,
    warn_eval_end,
)
from stylebridge.pipelines.eval_score import Refused, Scorer, claim_columns, metric_label
from stylebridge.pipelines.output_holds import releases_outputs
from stylebridge.pipelines.typed import coerce_path_fields
from stylebridge.plugins.metrics.base import spec_seed
from stylebridge.registry import Registry, get_registry
from stylebridge.registry.needed import Request, WeightsCheck, checked_registry
from stylebridge.registry.spec import parse_plugin_spec
from stylebridge.registry.typed_options import spec_options

# ---------------------------------------------------------------------------------------------
# Metric specs


@dataclass
class MetricRequest:
    """A parsed ``--metric NAME[:PATH][:k=v,...]`` (PATH becomes ``weights``)."""

    text: str
    name: str
    options: dict[str, Any] = field(default_factory=dict)


_TEXT_OPTIONS = frozenset({"weights", "backbone", "ref_stats", "reference", "text", "model"})


def parse_metric_spec(text: str) -> MetricRequest:
    """``psnr``, ``lpips:net=vgg``, ``fid:pt_inception.pth``, ``clip_quality:w.pt:model=ViT-B-16``."""
    spec = parse_plugin_spec(text, what="metric")
    if spec.name is None:
        raise SpecError(f"metric spec {text!r}: expected NAME[:k=v,...], e.g. lpips:net=vgg")
    if spec.path is not None and "weights" in spec.options:
        raise SpecError(f"metric spec {text!r} gives weights twice (PATH and weights=)")
    # typed by the metric's constructor hints; an option without one is guessed, but the
    # text options (paths, prompts) stay text
    typed = spec_options("metric", spec, get_registry(), guess=_guess_option)
    if spec.path is not None:
        typed["weights"] = str(spec.path)
    options = {key.replace("-", "_"): value for key, value in typed.items()}
    return MetricRequest(text=text.strip(), name=spec.name, options=options)


def _guess_option(value: str, key: str) -> Any:
    """An option without a usable type hint: the text of one of :data:`_TEXT_OPTIONS` as
    given, any other guessed from its text (:func:`coerce_option`)."""
    return value if key in _TEXT_OPTIONS else coerce_option(value, key)


# ---------------------------------------------------------------------------------------------
# Config, progress and result


@dataclass
@coerce_path_fields
class EvalConfig:
    """One evaluation: what ``stylebridge eval``'s options say.

    ``metrics``: specs ``NAME[:PATH][:k=v,...]``; ``pred`` / ``target``: files or folders;
    ``domain_text``: the text of ``clip_quality`` unless its spec has ``text=`` or
    ``reference=``; ``size``: resize every image to ``size``×``size`` first (default: the
    targets' size); ``batch``: images per batch; ``json`` / ``csv``: outputs to write;
    ``suffix``: only the predictions whose stem ends with it, paired by the stem without it
    (``_pixar``: ``adapt``'s ``photo_pixar.png`` against the target ``photo.png``).
    """

    metrics: list[str]
    pred: list[str | Path]
    target: list[str | Path] | None = None
    domain_text: str | None = None
    size: int | None = None
    batch: int = 8
    device: str = "auto"
    json: Path | None = None
    csv: Path | None = None
    suffix: str = ""
    #: keep the pairs an interrupted evaluation into the same ``json``/``csv`` scored
    resume: bool = False

    def weight_requests(self) -> list[Request]:
        """What this evaluation builds, as ``(kind, spec, option)``: the official weights its
        metrics read and that are not installed (``lpips-alex``, ``lpips-vgg``,
        ``arcface-irse50``) are named together before any metric is built
        (:func:`~stylebridge.registry.needed.missing_weights`), and ``eval --fetch`` fetches
        them."""
        return [("metric", m, "--metric") for m in self.metrics]


class EvalProgress:
    """What :func:`evaluate` reports while it works; every method does nothing here."""

    def note(self, text: str) -> None:
        """A remark for the user (plain text), e.g. that images were resized."""

    def start(self, total: int) -> None:
        """The ``total`` predictions (pairs) are about to be scored."""

    def advance(self, n: int) -> None:
        """``n`` more predictions were scored."""

    def stop(self) -> None:
        """Every prediction was scored (an unpaired reference set may follow)."""

    def failed(self, report: BatchReport) -> None:
        """Nothing could be evaluated; ``report`` says which files were skipped and why.
        The error is raised right after."""


# ---------------------------------------------------------------------------------------------
# The run


def build_metrics(requests: list[MetricRequest], device: torch.device,
                  domain_text: str | None = None, *,
                  registry: Registry | None = None) -> list[Metric]:
    """The metrics of ``registry`` (default: the installed plugins), reset; ``device=`` is
    passed to a metric that declares
    :attr:`~stylebridge.core.interfaces.Metric.takes_device` (else it is built without it) and
    ``domain_text`` goes to each metric's :meth:`~stylebridge.core.interfaces.Metric.with_domain_text`
    (``clip_quality`` takes it as ``text`` unless it has text or a reference)."""
    registry = registry or get_registry()
    metrics = []
    for req in requests:
        options = dict(req.options)
        cls = registry.get("metric", req.name).obj
        if domain_text:
            options = cls.with_domain_text(options, domain_text)
        if cls.takes_device:
            if "device" in options:  # `psnr:device=cuda` is checked as --device is
                try:
                    options["device"] = str(resolve_device(str(options["device"])))
                except StylebridgeError as exc:
                    raise StylebridgeError(f"--metric {req.text}: "
                                           f"{str(exc).removeprefix('--device ')}") from None
            options.setdefault("device", str(device))
        # a metric on random weights (allow_random=true) draws them from its spec's seed, as
        # every plugin built by name does (the device left out), in a forked random stream
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(spec_seed(req.name, {k: v for k, v in options.items()
                                                   if k != "device"}))
            metric = registry.create("metric", req.name, **options)
        metric.reset()  # the interface's contract: reset, then update per batch, compute
        metrics.append(metric)
    return metrics


def metric_values(metric: Metric, label: str, *,
                  registry: Registry | None = None) -> dict[str, float]:
    """``metric.compute()``, checked: a dict of names to numbers (a plugin metric that returns
    anything else is named in one line instead of failing somewhere downstream, with the
    package ``registry`` says provides it)."""
    values = metric.compute()
    if not isinstance(values, Mapping) or not all(isinstance(k, str) for k in values):
        raise StylebridgeError(f"{metric_label(metric, label, registry)}: compute() returned a "
                               f"{type(values).__name__}; it must return a dict of name -> "
                               "number")
    out: dict[str, float] = {}
    for key, value in values.items():
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            raise StylebridgeError(f"{metric_label(metric, label, registry)}: compute() gave "
                                   f"{key!r} = {str(value)[:60]!r}, not a number") from None
    return out


def _labels(requests: list[MetricRequest]) -> list[str]:
    """Column prefix per metric: the name, or the whole spec when a name repeats."""
    counts: dict[str, int] = {}
    for req in requests:
        counts[req.name] = counts.get(req.name, 0) + 1
    return [req.text if counts[req.name] > 1 else "" for req in requests]


def _refused(refused: Refused, pred: Path, target: Path | None,
             sizes: tuple[tuple[int, int], tuple[int, int] | None]) -> str:
    """The skip reason of a pair a metric refused: the metric's reason and, when the pair
    was scored at its target's size, that target."""
    if refused.lost:  # a metric without state() took the batch: it cannot be skipped
        raise StylebridgeError(f"{refused.reason}; metric {refused.lost!r} keeps no state to "
                               "take the batch back, so the pair cannot be skipped: leave it "
                               "out of --pred", path=pred)
    (pw, ph), target_wh = sizes
    if target is None or target_wh is None or target_wh == (pw, ph):
        return refused.reason
    return (f"{refused.reason} (the prediction, {pw}×{ph} px, is scored at the size of its "
            f"target {target}, {target_wh[0]}×{target_wh[1]} px)")


def check_eval_arguments(config: Any, report: Any, progress: Any) -> None:
    """One-line errors for arguments of the wrong type (a callable as ``report`` failed
    with ``'function' object has no attribute 'ok'`` after the metrics were built)."""
    if not isinstance(config, EvalConfig):
        raise StylebridgeError(f"evaluate: expected an EvalConfig as config, got "
                               f"{type(config).__name__}")
    if report is not None and not isinstance(report, BatchReport):
        raise StylebridgeError(f"evaluate: report must be a BatchReport or None, got "
                               f"{type(report).__name__} (progress goes to progress=, an "
                               "EvalProgress)")
    if progress is not None and not isinstance(progress, EvalProgress):
        raise StylebridgeError(f"evaluate: progress must be an EvalProgress (subclass it and "
                               f"override what you need), got {type(progress).__name__}")


def _check_uses(requests: list[MetricRequest], metrics: list[Any],
                target_files: list[Path] | None, n_pred: int, *, classes: bool = False) -> None:
    """``--target`` for metrics that compare pairs, 2 predictions for one that compares sets:
    checked on the metrics' ``classes`` before any download is asked for (a run without
    ``--target`` is not first sent to fetch weights), and again on the built metrics.  A
    class attribute that is no plain bool (a property) is left to the built metric."""

    def says(metric: Any, attribute: str) -> bool:
        value = getattr(metric, attribute)
        return value is True if classes else bool(value)

    need_target = [r.name for r, m in zip(requests, metrics, strict=True)
                   if says(m, "needs_target")]
    if need_target and target_files is None:
        raise StylebridgeError(f"metric(s) {', '.join(need_target)} compare pairs: "
                               "give --target DIR")
    for req, metric in zip(requests, metrics, strict=True):
        if says(metric, "takes_reference") and n_pred < 2:
            raise StylebridgeError(f"{req.text}: FID compares distributions and needs at "
                                   f"least 2 predicted images, got {n_pred}")


def _metric_classes(requests: list[MetricRequest], registry: Registry) -> list[Any]:
    """The registered class of each request; none when a name is unknown (the weights check
    names it, with a suggestion)."""
    try:
        return [registry.get("metric", req.name).obj for req in requests]
    except StylebridgeError:
        return []


def _fail(report: BatchReport, progress: EvalProgress, message: str) -> StylebridgeError:
    progress.failed(report)
    return StylebridgeError(message)


@user_entry
@releases_outputs
def evaluate(config: EvalConfig, report: BatchReport | None = None,
             progress: EvalProgress | None = None, *,
             registry: Registry | None = None,
             ensure_weights: WeightsCheck | None = None) -> EvalResult:
    """Run the evaluation of ``config`` (see the module docstring); one-line errors for bad
    options, missing files or nothing to evaluate.  Skipped files go to ``report``.
    ``registry``: where the metrics come from (default: the installed plugins).
    ``ensure_weights`` gets :meth:`EvalConfig.weight_requests` after the cheap checks (options,
    input files, report paths) and before any metric is built: by default one error naming
    every official download the metrics lack (:func:`~stylebridge.registry.needed.
    require_weights`); ``eval --fetch`` downloads them, as
    :func:`~stylebridge.pipelines.adapt.prepare_adapt` does."""
    check_eval_arguments(config, report, progress)
    report = BatchReport() if report is None else report
    progress = EvalProgress() if progress is None else progress
    check_range("--batch", config.batch, 1, MAX_BATCH)
    if config.size is not None:
        check_range("--size", config.size, 8, MAX_IMAGE_SIZE)
    requests = [parse_metric_spec(t) for t in config.metrics]
    device = resolve_device(config.device)
    for item in (*config.pred, *(config.target or [])):
        if not Path(item).exists():
            raise StylebridgeError("no such file or directory", path=item)
    pred_files = expand_inputs(config.pred)
    target_files = expand_inputs(config.target) if config.target else None
    if not pred_files:
        raise StylebridgeError(f"--pred {' '.join(map(str, config.pred))}: no image files found")
    if config.suffix:  # the other files of an adapt folder (other domains, grid.png) are not
        pred_files = [p for p in pred_files  # predictions of this evaluation
                      if p.stem.endswith(config.suffix) and p.stem != config.suffix]
        if not pred_files:
            raise StylebridgeError(f"--suffix {config.suffix}: no file of --pred has a name "
                                   "ending with it")
    # a report path that is an input, or both reports one file: refused before the work
    check_outputs_apart({"--json": config.json, "--csv": config.csv},
                        [*config.pred, *(config.target or [])])
    for option, dst in (("--json", config.json), ("--csv", config.csv)):  # before the work
        if dst is not None:
            check_writable(dst)
            check_replaceable(option, dst)
    registry = registry or get_registry()
    classes = _metric_classes(requests, registry)
    if classes:
        _check_uses(requests, classes, target_files, len(pred_files), classes=True)
    # every missing download of every metric named at once, before any is built
    registry = checked_registry(config.weight_requests(), ensure_weights, registry)
    metrics = build_metrics(requests, device, config.domain_text, registry=registry)
    _check_uses(requests, metrics, target_files, len(pred_files))
    prefixes = _labels(requests)

    # no metric compares pairs (FID, CLIP diversity): --target is a reference *set*,
    # read on its own, without matching names or resizing to a partner
    unpaired = target_files is not None and not any(m.needs_target for m in metrics)
    takes_reference = [m for m in metrics if m.takes_reference]
    for metric, req in zip(metrics, requests, strict=True):
        if metric.takes_reference and target_files is None and not metric.has_reference():
            raise StylebridgeError(f"{req.text}: no reference: give --target DIR (the "
                                   "reference images) or fid:ref_stats=PATH")
    if unpaired and not takes_reference:
        progress.note("no requested metric uses --target; ignored")
    single = (len(config.pred) == 1 and config.target is not None and len(config.target) == 1
              and Path(config.pred[0]).is_file() and Path(config.target[0]).is_file())
    if unpaired:
        pairs = pair_files(pred_files, None, report)
    elif single:  # two files named explicitly: a pair, whatever their names
        pairs = [(pred_files[0].stem, pred_files[0], target_files[0])]  # type: ignore[index]
    else:
        pairs = pair_files(pred_files, target_files, report, config.suffix)
    if not pairs:
        hint = "" if config.suffix or not target_files else suffix_hint(pred_files, target_files)
        raise _fail(report, progress, "no image pairs to evaluate (file names of --pred and "
                                      f"--target must match){hint}")

    journal = open_journal(config, pairs, metrics, device, report)
    for line in journal.notices if journal is not None else []:
        progress.note(line)
    if journal is not None and journal.kept:  # as adapt and calibrate say it
        progress.note(f"continuing the interrupted run: {journal.kept} pair(s) done before "
                      "are kept")
    rows: list[dict[str, Any]] = [] if journal is None else [
        r["row"] for r in journal.records.values()]
    paths = {stem: (p, t) for stem, p, t in pairs}
    handled = set() if journal is None else journal.handled
    todo = [pair for pair in pairs if str(pair[1]) not in handled]
    scorer = Scorer(metrics, [r.text for r in requests], prefixes, registry=registry)
    progress.start(len(pairs))
    progress.advance(len(handled & {str(p) for _, p, _ in pairs}))
    try:
        for batch in eval_batches(todo, config, report, progress):
            batch_rows = []
            outcomes = scorer.score(batch.pred, batch.target)
            for stem, notices, sizes, outcome in zip(batch.stems, batch.notices, batch.sizes,
                                                     outcomes, strict=True):
                p_path, t_path = paths[stem]
                if isinstance(outcome, Refused):  # about its images: skipped, named
                    report.skip(p_path, _refused(outcome, p_path, t_path, sizes))
                    continue
                report.ok(p_path)
                (pw, ph), target_wh = sizes  # resized to its target: the row says so
                resized = ({} if config.size or target_wh in (None, (pw, ph)) else
                           {"resized": f"{pw}×{ph} → {target_wh[0]}×{target_wh[1]}"})
                batch_rows.append({"name": stem, "pred": str(p_path),
                                   "target": None if t_path is None else str(t_path),
                                   "pred_notice": notices[0], "target_notice": notices[1],
                                   **resized, **outcome})
            rows.extend(batch_rows)
            if journal is not None:
                journal.claim()
                for row in batch_rows:
                    journal.records[row["pred"]] = {"row": row}
                journal.save({"eval": metrics})
            progress.advance(len(batch.stems))
    finally:
        progress.stop()

    if not rows:
        raise _fail(report, progress, "no pair could be evaluated: every one was skipped "
                                      "(the reasons are listed above)")
    if unpaired and takes_reference:
        n_reference = 0
        references = pair_files(target_files or [], None, report)
        reference_paths = {stem: path for stem, path, _ in references}
        for batch in eval_batches(references, config, report, progress):
            images = batch.pred
            for metric in takes_reference:
                metric.update_reference(images)
            report.done.extend(reference_paths[stem] for stem in batch.stems)
            n_reference += images.shape[0]
        if n_reference == 0:
            raise _fail(report, progress, "no --target image could be read as the reference set")

    results: list[MetricResult] = []
    means: dict[str, float] = {}
    random_cols: set[str] = set()
    owners: dict[str, str] = {}
    for prefix, req, metric in zip(prefixes, requests, metrics, strict=True):
        values = metric_values(metric, req.text, registry=registry)
        labelled = {(f"{k}[{prefix}]" if prefix else k): v for k, v in values.items()}
        claim_columns(owners, labelled, req.text)
        means.update(labelled)
        if metric.random_weights:
            random_cols.update(labelled)
        results.append(metric_result(req.text, labelled, metric))
    per_image_cols = [c for c in means if any(c in r for r in rows)]
    result = EvalResult(config=config, metrics=results, rows=rows, means=means,
                        per_image_columns=per_image_cols, random_columns=random_cols,
                        report=report)
    if config.json is not None:
        result.written.append(result.write_json(config.json))
    if config.csv is not None:
        result.written.append(result.write_csv(config.csv))
    if journal is not None:
        journal.finish()
    warn_eval_end(result)  # from Python: what `eval` prints (random weights, notes, skips)
    return result


__all__ = ["EvalConfig", "EvalProgress", "EvalResult", "MetricRequest", "MetricResult",
           "build_metrics", "claim_columns", "evaluate", "journal_folder", "json_number",
           "metric_values", "pair_files", "parse_metric_spec", "suffix_hint"]
