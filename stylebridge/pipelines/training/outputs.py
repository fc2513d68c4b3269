"""The files a domain-training run writes beside its ``--out`` (``train domain``,
``hyperdomain``, ``mindthegap``): ``DOMAIN.safetensors``, its training state
``DOMAIN.train-state.safetensors`` and the sample grids ``DOMAIN_samples/stepNNNNNN.png``;
the checks before a run writes them (:func:`check_run_out`) and the removal of the temporary
files a killed run left of them (:func:`remove_run_temporaries`).
"""

from __future__ import annotations

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


def check_run_out(out: str | Path, *, resume: bool, force: bool,
                  inputs: Mapping[str, str | Path | None] | None = None,
                  side_files: Sequence[str | Path] = ()) -> Path:
    """Refuse to start a run that would overwrite ``out`` (without ``force``) or resume one
    that left no state; returns the training-state path beside ``out``.  A caller starting
    over deletes a stale state (``not resume``) once its own checks have passed.

    Whatever ``force`` says, ``out`` must not be a folder, and no file the run writes
    (``out``, its training state, ``side_files``) may be one of ``inputs``
    (``{"--generator": PATH, ...}``, the option naming each input file)."""
    out, state_path = Path(out), state_path_for(out)
    if resume and force:  # --force was silently ignored: which one was meant?
        raise StylebridgeError("--resume continues the run in --out and --force starts it "
                               "over: give one of them")
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
    if resume and not state_path.is_file():
        raise StylebridgeError(f"--resume: no training state at {state_path}")
    if not resume and out.exists() and not force:
        raise StylebridgeError("already exists (use --resume to continue, --force to start over)",
                               path=out)
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
