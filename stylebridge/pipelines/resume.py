"""Exact resume of the batch commands: ``adapt``/``invert``/``generate --resume --out DIR``.

A batch run over a large folder writes, after each batch of photos, a small journal into its
output folder (``DIR/.stylebridge-run/``, written atomically): the batch report so far
(photos done, photos skipped and why), each done photo's record (its output files and its
own metric values), every metric's running state (:meth:`Metric.state
<stylebridge.core.interfaces.Metric.state>`: sums and counts, the ID metric's no-face
count) and the rows of ``grid.png`` as lossless PNG strips.  A run that was killed (Ctrl-C,
``kill -9``, a full disk, out of memory) is continued with ``--resume``: the photos of the
batches it finished are kept, the rest are read, encoded and rendered, and ``metrics.json``,
the run record and ``grid.png`` come out as one uninterrupted run writes them (tested file
by file).  Photos of the batch that was cut short are done again; their files are overwritten.

A resume must be of the same run: the same command, photos (the same list, each the same
file), encoder, generator, domains, calibrator, metrics, precision, alignment and so on;
photos, checkpoint files (and the files a metric read, :meth:`Metric.files
<stylebridge.core.interfaces.Metric.files>`) are recognised by absolute path, size and
modification time (an earlier stylebridge's journal records no photo's: it resumes, with a
notice), however the paths are spelled (:mod:`~stylebridge.pipelines.resume_paths`).
Anything else is refused in one line naming the option or photo that differs, and so is the
resume of a run with a model on random weights built without a checkpoint file (a new run may
draw other weights), and so is a resume whose kept outputs were deleted or written over since
(:mod:`.kept_outputs`).  A metric on
random weights (``allow_random=true``) is drawn from its spec's seed: its resume is accepted
when it holds the same tensors as the interrupted run's (a digest,
:mod:`stylebridge.pipelines.metric_weights`), refused naming it otherwise.  ``--batch``,
``--device`` and ``--compile`` may change (a run that ran out of memory continues with a
smaller batch); when any part of the run computed with other values, the notice says that the
values agree with an uninterrupted run's within floating-point rounding, not bit for bit.
The journal is removed when the run completes; a fresh run into the folder removes it when it
writes its first output.  ``generate`` uses the same journal with seeds for photos (no
metrics; its grid rows are read back from the kept seeds' PNGs).

Every run into a folder (journal or not) first removes the temporary files a killed run left
(``.seed0042.png.x7k2m9qa.tmp``) of the files it writes, by name.  While a run holds its
journal no other process runs into the same folder: a second one is refused in one line
naming the first (:func:`hold_out`, :mod:`stylebridge.core.locks`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from stylebridge.core.batch import BatchReport
from stylebridge.core.images import load_image, save_png
from stylebridge.core.interfaces import Metric
from stylebridge.core.io import (
    file_identity,
    remove_folder,
    remove_stale_folders,
    remove_stale_temporaries,
    write_json,
)
from stylebridge.core.locks import OutputLock
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.kept_outputs import check_kept, written
from stylebridge.pipelines.metric_weights import METRIC_SETTINGS, check_metric_settings
from stylebridge.pipelines.output_holds import held, hold_out, releases_outputs
from stylebridge.pipelines.resume_paths import Respelling, input_change, input_keys
from stylebridge.pipelines.row_journal import JOURNAL_DIR, ROWS_FILE, RowJournal
from stylebridge.pipelines.run_settings import (
    differs,
    file_setting,
    how_changes,
    model_setting,
    rounding,
)

#: the metrics of a run by output (``pipelines.output_metrics.OutputMetrics``)
OutputMetrics = Mapping[str, Sequence[Metric]]

STATE_FILE = "state.json"
LOG_FILE = "log.jsonl"
INPUTS_FILE = "inputs.json"
#: each input file's identity (path, size, modification time), in the order of ``inputs.json``
IDENTITIES_FILE = "identities.json"
FORMAT = 1
#: options that may differ on resume: how the run computes, not what it computes
HOW_OPTIONS = ("--batch", "--device", "--compile")


#: what a finished batch run (adapt, invert, generate) leaves in its folder besides its pictures
REPORT_FILE = "metrics.json"


#: the option that names a command's photos where it is not the positional IMAGES
IMAGES_OPTION = {"calibrate": "--images", "analyze": "--images", "render": "INVERSION"}


@dataclass
class Journal:
    """The state of one batch run, saved after each batch (see the module docstring).

    ``report``, ``records`` (per done photo, in the order they were done) and ``grid_rows``
    start as the interrupted run left them (empty for a fresh run); the pipeline adds to them
    and calls :meth:`save` after each batch and :meth:`finish` at the end.  ``kept`` is the
    number of photos done by earlier runs; ``notices`` what a caller should say before the run
    starts.

    On disk (``DIR/.stylebridge-run/``): ``log.jsonl``, one line per photo done or skipped,
    appended; ``state.json`` (atomic), the small part: the run's settings, the metrics'
    states, and how many bytes of the log are complete, so that a line cut short by a kill
    is dropped; ``inputs.json`` (the photo list, written once); ``row_NNNNN.png``, the rows of
    ``grid.png``; ``identities.json`` (each photo's path, size and modification time, written
    once; its digest is in the state).  What a save writes grows with the batch, not with the
    run."""

    folder: Path
    command: str
    settings: dict[str, Any]
    how: dict[str, Any]
    inputs: list[str]
    report: BatchReport = field(default_factory=BatchReport)
    records: dict[str, Any] = field(default_factory=dict)
    grid_rows: list[list[Tensor]] = field(default_factory=list)
    kept: int = 0
    resumed: bool = False
    notices: list[str] = field(default_factory=list)
    unit: str = "photo"  # what an input is, in messages ("seed" for generate)
    #: options on random weights built without a file: a --resume of this run is refused
    drawn: list[str] = field(default_factory=list)
    #: a pipeline's own running state (JSON values), saved and restored with the rest
    #: (``calibrate``: its style-mean sums)
    extra: dict[str, Any] = field(default_factory=dict)
    #: per input, its :func:`file_identity` when the run started (``None``: not files)
    identities: list[Any] | None = None
    #: every distinct ``how`` of the parts of this run that saved work (this one's once saved)
    hows: list[dict[str, Any]] = field(default_factory=list)
    #: an input -> what names its files however spelled, and its paths (:meth:`open`)
    key_of: Callable[[str], str] | None = field(default=None, repr=False)
    paths_of: Callable[[str], Sequence[str | None]] | None = field(default=None, repr=False)
    #: this run's inputs spelled otherwise than in the journal, which keeps its spelling
    _spelling: Respelling | None = field(default=None, repr=False)
    _then_digest: str | None = None
    _identities_saved: bool = False
    _rows_saved: int = 0
    _done_saved: int = 0
    _skipped_saved: int = 0
    _log_bytes: int | None = None  # None: the folder is not yet this run's
    _lock: OutputLock | None = field(default=None, repr=False, compare=False)

    @functools.cached_property
    def inputs_digest(self) -> str:
        """sha256 of the input list (computed once: a save must not grow with the run)."""
        return _digest(self.inputs)

    @functools.cached_property
    def identities_digest(self) -> str | None:
        """sha256 of :attr:`identities` (``None`` when the inputs are not files)."""
        if self.identities is None:
            return None
        return _digest([json.dumps(i, sort_keys=True) for i in self.identities])

    @property
    def saved(self) -> bool:
        """Whether a journal is on disk (a later ``--resume`` has something to continue)."""
        return (self.folder / STATE_FILE).is_file()

    @property
    def handled(self) -> set[str]:
        """Inputs the journal already holds an outcome for (done or skipped)."""
        return {str(p) for p in self.report.done} | {str(p) for p, _ in self.report.skipped}

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def fresh(cls, out: Path, command: str, inputs: Sequence[Path | str]) -> Journal:
        """A journal for a run that was not prepared with one (no settings to compare)."""
        return cls(folder=Path(out) / JOURNAL_DIR, command=command, settings={}, how={},
                   inputs=[str(p) for p in inputs],
                   identities=[file_identity(p) for p in inputs], _lock=hold_out(out, command))

    def begin(self, paths: Sequence[Path], names: Mapping[Path, str],
              clashes: Mapping[Path, str]) -> list[Path]:
        """The photos this run still has to do, in order: those with an output name
        (``names``) that the journal holds no outcome for.  A fresh run first reports the
        ``clashes`` (inputs whose output names collide) as skipped; a resumed run has them."""
        if not self.resumed:
            for path, reason in clashes.items():
                self.report.skip(path, reason)
        handled = self.handled
        return [p for p in paths if p in names and str(p) not in handled]

    @classmethod
    def open(cls, out: Path, command: str, *, settings: Mapping[str, Any],
             how: Mapping[str, Any], inputs: Sequence[Path | str], metrics: OutputMetrics,
             resume: bool, drawn: Sequence[str] = (), unit: str = "photo",
             name: str = "", files: bool | None = None,
             key_of: Callable[[str], str] | None = None,
             paths_of: Callable[[str], Sequence[str | None]] | None = None) -> Journal:
        """The journal of a run into ``out``: the interrupted run's with ``resume`` (its
        metric states loaded into ``metrics``), else a fresh one (an old journal there is
        replaced at the first save); one-line errors when the run in ``out`` is another one
        or its journal cannot be read.  ``drawn`` names the options whose models run on
        random weights built without a checkpoint file: every run draws them anew, so a
        resume of such a run is refused.  ``name``: a journal of its own in ``out`` (``eval``
        writes its files beside other runs' outputs).  ``files`` (default: ``unit`` is
        ``photo``): the inputs are files, recorded by :func:`file_identity` now, and a resume
        takes them by absolute path however spelled (``key_of``/``paths_of``: for inputs that
        are no paths, :mod:`~stylebridge.pipelines.resume_paths`).  A killed run's temporaries
        are removed here in the journal's folder (and of ``name``); the pipelines remove those
        of their own outputs in ``out``, by name."""
        folder = Path(out) / (f"{JOURNAL_DIR}-{name}" if name else JOURNAL_DIR)
        journal = cls(folder=folder, command=command, settings=dict(settings), how=dict(how),
                      inputs=[str(p) for p in inputs], unit=unit, drawn=list(drawn),
                      key_of=key_of, paths_of=paths_of,
                      _lock=hold_out(out, command, name))  # before anything is read
        if (unit == "photo") if files is None else files:
            journal.identities = [file_identity(p) for p in inputs]
        remove_stale_folders(out, folder.name)  # a journal whose removal was killed
        state_file = folder / STATE_FILE
        found = state_file.is_file()
        if found:  # a killed run's half-written journal files (`.state.json.x7k2m9qa.tmp`)
            remove_stale_temporaries(folder)
            if name:
                remove_stale_temporaries(out, name)
        # a finished run's report (generate writes no metrics.json: its grid.png says a run
        # was there); eval's named journals share a folder with other runs' files
        reports = [] if name else [f for f in (REPORT_FILE, "grid.png")
                                   if (Path(out) / f).is_file()]
        if not resume:
            if found:
                then = _state_command(state_file) or command
                journal.notices.append(
                    f"{out} holds an interrupted {then} run "
                    f"({cls._count_done(state_file, unit)}); starting over"
                    + (" (--resume continues it)" if then == command else ""))
            elif reports:  # about to be replaced by this run's
                journal.notices.append(
                    f"{out} holds the report of an earlier run ({', '.join(reports)}): this "
                    f"run replaces {'them' if len(reports) > 1 else 'it'} and any picture of "
                    "the same name; the earlier run's other pictures stay, but no report will "
                    "name them (a new --out keeps both)")
            return journal
        if not found and reports:  # finished, not interrupted: a resume would start over
            raise StylebridgeError(
                f"--resume: {out} holds a finished run ({', '.join(reports)}), not an "
                "interrupted one: nothing to continue; run without --resume to replace its "
                "report (and its pictures of the same names), or give another --out")
        if not found:  # eval's journal is named after its report, in a shared folder
            what = (f"no interrupted {command} run was writing {Path(out) / name}" if name
                    else f"{out} holds no interrupted {command} run")
            journal.notices.append(f"--resume: {what}; starting from the first {unit}")
            return journal
        if drawn:
            raise StylebridgeError(
                f"--resume: {', '.join(drawn)} run(s) on random weights built without a "
                f"checkpoint file, which a new run may draw anew: the interrupted run's {unit}s "
                "could come from other weights; run without --resume")
        journal._load(state_file, metrics)
        locked = [f for f in (folder, state_file, folder / LOG_FILE)
                  if f.exists() and not os.access(f, os.W_OK)]
        if locked:  # found after one more batch, and the advice (--resume) failed the same way
            raise StylebridgeError(f"--resume: the journal in {out} cannot be written ({locked[0]}"
                                   ": permission denied); make it writable, or run without "
                                   "--resume to start over")
        return journal

    @staticmethod
    def _count_done(state_file: Path, unit: str) -> str:
        try:
            state = json.loads(state_file.read_text(encoding="utf-8"))
            return f"{int(state['done'])} of {int(state['inputs']['count'])} {unit}s done"
        except (OSError, ValueError, KeyError, TypeError):
            return "its journal is unreadable"

    def _load(self, state_file: Path, metrics: OutputMetrics) -> None:
        where = self.folder.parent
        try:
            state = json.loads(state_file.read_text(encoding="utf-8"))
            if state.get("format") != FORMAT:
                raise ValueError(f"format {state.get('format')!r}")
            command, settings, how = state["command"], state["settings"], state["how"]
            n_inputs, digest = int(state["inputs"]["count"]), str(state["inputs"]["sha256"])
            identities = state["inputs"].get("identities")  # none: an earlier stylebridge's
            hows = [dict(h) for h in state.get("hows") or [how]]
            metric_states, n_rows = state["metrics"], int(state["grid_rows"])
            extra = dict(state.get("extra") or {})
            log_bytes = int(state["log_bytes"])
            with open(self.folder / LOG_FILE, "rb") as fh:
                log = fh.read(log_bytes)
            if len(log) != log_bytes:
                raise ValueError(f"{LOG_FILE} is shorter than recorded")
            events = [json.loads(line) for line in log.decode("utf-8").splitlines()]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StylebridgeError(f"--resume: the journal in {where} cannot be read ({exc}); "
                                   "run without --resume to start over") from None
        if command != self.command:
            raise StylebridgeError(f"--resume: {where} holds an interrupted {command} run, not "
                                   f"{self.command}; use another --out")
        if (n_inputs, digest) != (len(self.inputs), self.inputs_digest) or (
                self.identities is not None and identities not in (None, self.identities_digest)):
            change = self._first_change(identities is not None, n_inputs)
            if change:
                counts = (f"{n_inputs} then and now" if n_inputs == len(self.inputs)
                          else f"{n_inputs} then, {len(self.inputs)} now")
                raise StylebridgeError(
                    f"--resume: the interrupted run in {where} had other {self.unit}s "
                    f"({counts}{change}); give the same "
                    f"{'--seeds' if self.unit == 'seed' else IMAGES_OPTION.get(self.command, 'IMAGES')}, "
                    "or another --out to start a new run")
            self._then_digest = digest  # the same files spelled otherwise: kept as it was
            events = [self._spelling.now(e) for e in events] if self._spelling else events
        self._check_identities(identities)
        why = differs({k: v for k, v in settings.items() if k not in METRIC_SETTINGS},
                      {k: v for k, v in self.settings.items() if k not in METRIC_SETTINGS})
        if why is not None:
            raise StylebridgeError(f"--resume: {why}; give the options of the interrupted run "
                                   "in " + f"{where}, or another --out to start a new run")
        # a metric on random weights continues when it holds the same ones (their digest),
        # one that read files when they have not changed
        check_metric_settings(settings, self.settings, run="run",
                             go_on="run without --resume to start over (another --out keeps "
                                   "the interrupted run)")
        if metric_states is None:
            raise StylebridgeError(f"--resume: a metric of the interrupted run in {where} keeps "
                                   "no state to continue from; run without --resume")
        for output, group in metrics.items():
            for metric, saved in zip(group, metric_states[output], strict=True):
                metric.load_state(saved)
        for event in events:
            if "done" in event:
                self.report.ok(Path(event["done"]))
                self.records[event["done"]] = event["record"]
            else:
                self.report.skip(Path(event["skipped"]), event["reason"])
        # a kept output deleted or written over since cannot be kept
        check_kept(where, self.records, {e["done"]: e.get("written") for e in events
                                         if "done" in e})
        try:
            self.grid_rows = [self._read_row(i) for i in range(n_rows)]
        except StylebridgeError as exc:  # a row file lost or damaged
            raise StylebridgeError(f"--resume: the journal in {where} is incomplete ({exc}); "
                                   "run without --resume to start over") from None
        self._rows_saved = n_rows
        self._done_saved, self._skipped_saved = len(self.report.done), len(self.report.skipped)
        self._log_bytes = log_bytes
        self.kept = len(self.report.done)
        self.extra = extra
        self.resumed = True
        self.hows = hows
        changed = how_changes(hows, {k: self.how.get(k) for k in HOW_OPTIONS})
        if changed and self.kept:
            self.notices.append(f"--resume: {changed}: the {self.unit}s' values agree with an "
                                f"uninterrupted run's within {rounding(self.settings)}, not "
                                "bit for bit")

    def _check_identities(self, then: Any) -> None:
        """Refuse, naming the first one, an input file replaced or written again since the
        interrupted run (its :func:`file_identity`); a journal of an earlier stylebridge
        records none: said in a notice, and recorded from now on."""
        if self.identities is None:
            return
        where = self.folder.parent
        if then is None:
            self.notices.append(
                f"--resume: the journal in {where} (written by an earlier stylebridge) records "
                f"no sizes and times of its {self.unit}s: a {self.unit} replaced since under "
                "the same name is not noticed")
            return
        self._identities_saved = True
        if then == self.identities_digest:
            return
        try:
            recorded = json.loads((self.folder / IDENTITIES_FILE).read_text(encoding="utf-8"))
            changed = next((path for path, old, new in zip(self.inputs, recorded,
                                                            self.identities, strict=True)
                            if old != new), None)
        except (OSError, ValueError, TypeError) as exc:
            raise StylebridgeError(f"--resume: the journal in {where} is incomplete "
                                   f"({IDENTITIES_FILE}: {exc}); run without --resume to "
                                   "start over") from None
        raise StylebridgeError(
            f"--resume: {self.unit} {changed or '(one of them)'} has changed since the "
            f"interrupted run in {where} (by path, size and modification time); run without "
            "--resume to start over (another --out keeps the interrupted run)")

    def _first_change(self, recorded: bool = False, count: int | None = None) -> str:
        """Which input is new or gone since the interrupted run (``inputs.json``), compared
        by the files they name (:func:`~stylebridge.pipelines.resume_paths.input_keys`), in
        a few words; empty when they are the same in the same order, only spelled otherwise
        (then kept: :attr:`_spelling`).  ``recorded``: the journal has ``identities.json``."""
        try:
            then = json.loads((self.folder / INPUTS_FILE).read_text(encoding="utf-8"))
            if not isinstance(then, list) or count not in (None, len(then)):
                raise ValueError("another number of inputs than its state")
            then = [str(t) for t in then]
            old = (json.loads((self.folder / IDENTITIES_FILE).read_text(encoding="utf-8"))
                   if recorded and self.key_of is None and self.identities is not None else None)
            keys = input_keys(then, self.inputs, self.key_of, old, self.identities)
        except (OSError, ValueError, TypeError, KeyError, IndexError) as exc:
            return f"; its list of them cannot be read ({exc})"
        change = input_change(then, keys[0], self.inputs, keys[1], self.paths_of)
        if not change:
            self._spelling = Respelling.of(then, self.inputs, self.paths_of)
        return change

    def _row_file(self, index: int) -> Path:
        return self.folder / f"row_{index:05d}.png"

    def _read_row(self, index: int) -> list[Tensor]:
        strip = load_image(self._row_file(index))  # an ImageError names a lost file
        return list(strip.split(strip.shape[1], dim=2))  # square tiles, side by side

    def adopt(self, report: BatchReport) -> None:
        """Keep the run's outcomes in ``report`` (which may already hold skips of this run
        that do not depend on progress, e.g. ``eval``'s unpaired files): the interrupted run's
        logged entries come first, each once; the rest is logged at the next save."""
        done, skipped = list(self.report.done), list(self.report.skipped)
        report.skipped[:] = skipped + [s for s in report.skipped if s not in skipped]
        report.done[:] = done + [d for d in report.done if d not in done]
        self.report = report
        self._done_saved, self._skipped_saved = len(done), len(skipped)

    # -- saving --------------------------------------------------------------------------

    def claim(self) -> None:
        """Call before writing the first output: a fresh run removes the journal of an
        interrupted run in the same folder now, since its outputs are about to be
        overwritten (a later ``--resume`` must not take them as that run's)."""
        if self._log_bytes is None and not self.resumed and self.folder.exists():
            remove_folder(self.folder)

    def save(self, metrics: OutputMetrics) -> None:
        """Record the batches done since the last save: the log lines and new grid rows
        first, then the state (atomic), which says how much of them is complete; a kill at
        any moment leaves either the previous journal or this one."""
        if self._log_bytes is None:  # first save of a fresh run: replace an old journal
            if self.folder.exists():
                remove_folder(self.folder)
            self.folder.mkdir(parents=True)
            write_json(self.folder / INPUTS_FILE, self.inputs)
            self._log_bytes = 0
        if self.identities is not None and not self._identities_saved:
            write_json(self.folder / IDENTITIES_FILE, self.identities)  # before the state
            self._identities_saved = True
        if self.how not in self.hows:
            self.hows.append(dict(self.how))
        lines = [{"done": str(p), "record": rec, "written": written(self.folder.parent, rec)}
                 for p in self.report.done[self._done_saved:]
                 for rec in [self.records.get(str(p), {})]]
        lines += [{"skipped": str(p), "reason": r}
                  for p, r in self.report.skipped[self._skipped_saved:]]
        if self._spelling is not None:  # the journal keeps the interrupted run's spelling
            lines = [self._spelling.then(line) for line in lines]
        data = "".join(json.dumps(line) + "\n" for line in lines).encode("utf-8")
        log = self.folder / LOG_FILE
        try:
            with open(log, "ab") as fh:
                fh.truncate(self._log_bytes)  # drop what a killed run appended past its state
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:  # a full disk: name the file (the state still says what is whole)
            raise OSError(exc.errno, exc.strerror, str(log)) from None
        for index in range(self._rows_saved, len(self.grid_rows)):
            save_png(self._row_file(index), torch.cat(list(self.grid_rows[index]), dim=2))
        states: dict[str, list[Any]] | None = {
            output: [metric.state() for metric in group] for output, group in metrics.items()}
        if any(s is None for group in states.values() for s in group):
            states = None  # a metric that cannot resume: --resume will say so
        write_json(self.folder / STATE_FILE, {
            "format": FORMAT, "command": self.command, "settings": self.settings,
            "how": self.how, "hows": self.hows,
            "inputs": {"count": len(self.inputs),
                       "sha256": self._then_digest or self.inputs_digest,
                       **({"identities": self.identities_digest}
                          if self.identities is not None else {})},
            "done": len(self.report.done), "log_bytes": self._log_bytes + len(data),
            "metrics": states, "grid_rows": len(self.grid_rows), "extra": self.extra,
            "drawn": self.drawn})
        self._log_bytes += len(data)
        self._rows_saved = len(self.grid_rows)
        self._done_saved, self._skipped_saved = len(self.report.done), len(self.report.skipped)

    def finish(self) -> None:
        """The run is complete: remove the journal (also an older run's it replaced)."""
        remove_folder(self.folder)
        if self._lock is not None:
            self._lock.release()


def _digest(inputs: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(inputs).encode("utf-8", "surrogateescape")).hexdigest()


def interrupted_run(out: Path) -> str | None:
    """The command of the interrupted run whose journal ``out`` holds (``None``: none)."""
    return _state_command(Path(out) / JOURNAL_DIR / STATE_FILE)


def _state_command(state_file: Path) -> str | None:
    try:
        return str(json.loads(state_file.read_text(encoding="utf-8"))["command"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def drawn_in(state_folder: Path) -> list[str]:
    """The options an interrupted run's journal (in ``state_folder``) records as random
    weights built without a file: its ``--resume`` would be refused."""
    try:
        drawn = json.loads((Path(state_folder) / STATE_FILE).read_text(encoding="utf-8"))["drawn"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [str(d) for d in drawn] if isinstance(drawn, list) else []


def resume_hint(command: str, out: Path, drawn: Sequence[str] = (), *,
                where: str | None = None) -> str:
    """What to run after an interrupted batch run (``drawn``: why a ``--resume`` would be
    refused; ``where``: how to name the output, default ``--out OUT``)."""
    where = f"--out {out}" if where is None else where
    if drawn:
        return (f"{', '.join(drawn)} ran on random weights built without a checkpoint file, "
                "which a new run draws anew: a --resume would be refused; rerun without "
                f"--resume (or give {'them' if len(drawn) > 1 else 'it'} a checkpoint file)")
    return (f"the work of every finished batch is kept for {out}: continue with "
            f"`stylebridge {command} ... --resume {where}` (the same options)")


__all__ = ["FORMAT", "HOW_OPTIONS", "JOURNAL_DIR", "ROWS_FILE", "Journal", "RowJournal", "differs",
           "drawn_in", "file_identity", "file_setting", "held", "hold_out", "interrupted_run", "model_setting",
           "releases_outputs", "resume_hint"]
