"""The files a domain-training run writes beside its ``--out`` (``train domain``,
``hyperdomain``, ``mindthegap``): ``DOMAIN.safetensors``, its training state
``DOMAIN.train-state.safetensors`` and the sample grids ``DOMAIN_samples/stepNNNNNN.png``;
the checks before a run writes them (:func:`check_run_out`) and the removal of the temporary
files a killed run left of them (:func:`remove_run_temporaries`).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from stylebridge.core.io import remove_stale_temporaries
from stylebridge.errors import StylebridgeError

STATE_SUFFIX = ".train-state.safetensors"


def state_path_for(out: str | Path) -> Path:
    """``DOMAIN.safetensors`` → ``DOMAIN.train-state.safetensors``."""
    out = Path(out)
    return out.with_name(out.stem + STATE_SUFFIX) if out.suffix else Path(f"{out}{STATE_SUFFIX}")


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file (symlinks, ``..`` and hard links seen through)."""
    try:
        if a.exists() and b.exists():
            return a.samefile(b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _probe(folder: Path) -> None:
    """Create and remove a temporary file in the existing ``folder`` (``OSError`` when it
    cannot be written: permissions, a read-only mount, ``/proc``, also for root)."""
    with tempfile.TemporaryFile(dir=folder, prefix=".stylebridge-probe-"):
        pass


def _reason(exc: OSError) -> str:
    """Why a folder cannot be made or written, as the system says it, in lower case: ``read-only
    file system`` (a read-only mount, also for root), ``permission denied``."""
    from stylebridge.core.images import os_error_reason

    return os_error_reason(exc)


#: the one line for ``--resume --force`` (train domain and its kin, calibrate)
RESUME_AND_FORCE = ("--resume continues the run in --out and --force starts it over: give one "
                    "of them")


def check_out_writable(out: str | Path, *, option: str = "--out", folder: bool = False,
                       files: Sequence[str | Path] = (),
                       folders: Sequence[str | Path] = ()) -> None:
    """One line naming ``option`` before a run does any work, when ``out`` (a file, or with
    ``folder`` the run's output folder) or what the run writes beside it could not be
    written: a file where a folder of the path should be (``existing.txt/run.safetensors``),
    a folder that cannot be written or created (``/sys/run.safetensors``, a read-only
    mount), one of ``files`` (written beside ``out``: the training state) that is a folder,
    or one of ``folders`` (the sample grids' folder) that is a file.  A training run found
    these only when it first saved, after its steps.

    The folders that do not exist yet are created to probe them and removed again: nothing
    is left behind."""
    out = Path(out)
    if folder and out.exists() and not out.is_dir():
        raise StylebridgeError(f"{option} {out}: is a file, not a folder")
    if not folder and out.exists() and not (out.is_file() or out.is_dir()):
        return  # a device or FIFO (/dev/null) is written in place
    near = "in it" if folder else "beside it"
    where = out if folder else out.parent
    missing: list[Path] = []
    existing = where
    while not existing.exists() and existing != existing.parent:  # a dangling link too
        if existing.is_symlink():
            break
        missing.append(existing)
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise StylebridgeError(f"{option} {out}: {existing} is a file, not a folder")
    for path in map(Path, files):
        if path.is_dir():
            raise StylebridgeError(f"{option} {out}: {path}, which the run writes {near}, "
                                   "is a folder")
    for path in map(Path, folders):
        if path.exists() and not path.is_dir():
            raise StylebridgeError(f"{option} {out}: {path}, a folder the run writes {near}, "
                                   "is a file")
    made: list[Path] = []
    try:
        for path in reversed(missing):
            try:
                path.mkdir()
            except OSError as exc:
                raise StylebridgeError(f"{option} {out}: cannot create the folder {path} "
                                       f"({_reason(exc)})") from None
            made.append(path)
        for path in [where, *(Path(f) for f in folders if Path(f).is_dir())]:
            try:
                _probe(path)
            except OSError as exc:
                raise StylebridgeError(f"{option} {out}: cannot write in {path} "
                                       f"({_reason(exc)})") from None
    finally:
        for path in reversed(made):
            with contextlib.suppress(OSError):
                path.rmdir()


def check_run_out(out: str | Path, *, resume: bool, force: bool,
                  inputs: Mapping[str, str | Path | None] | None = None,
                  side_files: Sequence[str | Path] = (), samples: bool = False) -> Path:
    """Refuse to start a run that would overwrite ``out`` or the training state beside it
    (without ``force``: a state without its model is a run killed between writing the two,
    which ``resume`` continues) or resume a model that has no state beside it (a finished
    run, a model from elsewhere); returns the training-state path beside ``out``.  A
    ``resume`` with neither (a run killed before its first checkpoint) passes:
    :meth:`DomainTrainer.resume_and_train` starts a new run and says so.  A caller starting
    over (``force``) deletes a stale state once its own checks have passed.

    Whatever ``force`` says, ``out`` must not be a folder, and no file the run writes
    (``out``, its training state, ``side_files``) may be one of ``inputs``
    (``{"--generator": PATH, ...}``, the option naming each input file).  And all of them
    (with ``samples``, the sample grids' folder too) must be writable
    (:func:`check_out_writable`): a bad ``--out`` is found before the first step, not when
    the run first saves."""
    out, state_path = Path(out), state_path_for(out)
    if resume and force:  # --force was silently ignored: which one was meant?
        raise StylebridgeError(RESUME_AND_FORCE)
    if out.is_dir():
        raise StylebridgeError("is a folder; --out takes a file path (e.g. "
                               "RUN.safetensors)", path=out)
    written = [out, state_path, *(Path(p) for p in side_files)]
    for option, given in (inputs or {}).items():
        if given is None or str(given) == "":
            continue
        for path in written:
            if _same_file(Path(given), path):
                how = "" if path == out else f" (it writes {path.name} beside it)"
                raise StylebridgeError(f"is the {option} input; --out {out} would overwrite "
                                       f"it{how}: choose another --out (--force never "
                                       "overwrites an input)", path=Path(given))
    check_out_writable(out, files=[out, state_path, *side_files],
                       folders=[samples_dir_for(out)] if samples else [])
    if resume and not state_path.is_file() and out.exists():
        # no state beside a model: a finished run, or a model from elsewhere (no state and
        # no model: killed before its first checkpoint, a new run; resume_and_train)
        raise StylebridgeError(f"--resume: {out} holds a model but no training state "
                               f"({state_path.name}): a finished run or a model from "
                               "elsewhere; train it again with --force instead of --resume, "
                               "or give another --out")
    if not resume and out.exists() and not force:
        raise StylebridgeError("already exists (use --resume to continue, --force to start over)",
                               path=out)
    if not resume and state_path.is_file() and not force:
        # a run killed after its first state was written, before its model: starting over
        # would delete the state it can be resumed from
        raise StylebridgeError(f"already exists, the training state of an interrupted run into "
                               f"{out.name} (use --resume to continue it, --force to start "
                               "over)", path=state_path)
    return state_path


def samples_dir_for(out: str | Path) -> Path:
    """``DOMAIN.safetensors`` → ``DOMAIN_samples/`` (the sample grids' folder)."""
    out = Path(out)
    return out.with_name(f"{out.stem}_samples")


def sample_names(every: int, steps: int, pattern: str = "step{:06d}.png") -> list[str]:
    """The file names of the sample grids a run of ``steps`` steps writes every ``every``
    steps (none for ``every`` 0)."""
    return [pattern.format(k) for k in range(every, steps + 1, every)] if every > 0 else []


def remove_run_temporaries(files: Iterable[str | Path], samples_dir: str | Path | None = None,
                           samples: Sequence[str] = ()) -> int:
    """Remove the temporary files (``.NAME.XXXXXXXX.tmp``) that a run killed while writing
    left of exactly the files this run writes: ``files`` (``--out``, its state, side files,
    in whatever folders they are: ``--out`` may be in a folder shared with other runs, whose
    temporaries stay) and the ``samples`` grids in ``samples_dir``.  Returns how many."""
    by_folder: dict[Path, set[str]] = {}
    for file in files:
        file = Path(file)
        by_folder.setdefault(file.parent, set()).add(file.name)
    if samples_dir is not None and samples:
        by_folder.setdefault(Path(samples_dir), set()).update(samples)
    return sum(remove_stale_temporaries(folder, names) for folder, names in by_folder.items())
