"""Small parsers shared by the training pipelines (typed values from option strings)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import suppress
from pathlib import Path

from stylebridge.errors import StylebridgeError


def parse_clip_weights(items: Sequence[str] | None, option: str = "--clip-weights"
                       ) -> dict[str, Path]:
    """``["ViT-B-32=a.safetensors", ...]`` → ``{"ViT-B-32": Path("a.safetensors")}``."""
    out: dict[str, Path] = {}
    for item in items or []:
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise StylebridgeError(f"{option} {item!r}: expected MODEL=PATH")
        out[name.strip()] = Path(path.strip())
    return out


def input_files(files: Mapping[str, str | Path | None], *, generator: str | None = None,
                specs: Mapping[str, str | None] | None = None,
                clip_weights: Sequence[str] | None = None,
                losses: Sequence[str] | None = None) -> dict[str, Path]:
    """The files a training run reads, keyed by the option naming each (``--generator``,
    the paths of plugin ``specs`` like ``--encoder e4e:PATH``, ``--clip-weights MODEL``,
    ``--loss lpips backbone`` for every loss option whose value names an existing file),
    for :func:`~stylebridge.pipelines.training.domain.check_run_out`.  A spec that does
    not parse is left out: it is refused, in one line, where it loads."""
    from stylebridge.registry.resolve import generator_path
    from stylebridge.registry.spec import parse_loss_spec, parse_plugin_spec

    out = {option: Path(path) for option, path in files.items() if path}
    if generator:
        with suppress(StylebridgeError):
            out["--generator"] = generator_path(generator)[0]
    for option, text in (specs or {}).items():
        with suppress(StylebridgeError):
            path = parse_plugin_spec(text).path if text else None
            if path is not None:
                out[option] = Path(path)
    with suppress(StylebridgeError):
        for name, path in parse_clip_weights(clip_weights).items():
            out[f"--clip-weights {name}"] = path
    seen: dict[str, int] = {}   # a loss given twice: its terms are keyed NAME, NAME#2, ...
    for text in losses or ():
        with suppress(StylebridgeError):
            spec = parse_loss_spec(text)
            seen[spec.name] = seen.get(spec.name, 0) + 1
            term = spec.name if seen[spec.name] == 1 else f"{spec.name}#{seen[spec.name]}"
            for key, value in spec.options.items():
                if isinstance(value, str) and value.strip() and Path(value.strip()).is_file():
                    out[f"--loss {term} {key}"] = Path(value.strip())
    return out


def check_train_numbers(*, steps: int | None = None, batch: int | None = None,
                        min_batch: int = 1, lr: float | None = None,
                        warmup_steps: int | None = None, mixing: float | None = None,
                        sample_every: int | None = None,
                        checkpoint_every: int | None = None) -> None:
    """One line naming the option and its value, as ``adapt`` says it (``--batch 0: must be
    >= 1``), for the numbers a domain trainer takes: checked before anything is written or
    loaded (:class:`~stylebridge.pipelines.training.domain.TrainSettings` checks them again,
    unnamed, for callers of the Python API).  ``None``: not given (the default applies)."""
    import math

    for option, value, lo in (("--steps", steps, 1), ("--batch", batch, min_batch),
                              ("--warmup-steps", warmup_steps, 0),
                              ("--sample-every", sample_every, 0),
                              ("--checkpoint-every", checkpoint_every, 0)):
        if value is not None and value < lo:
            raise StylebridgeError(f"{option} {value}: must be >= {lo}")
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        raise StylebridgeError(f"--lr {lr}: must be a positive number")
    if mixing is not None and not 0.0 <= mixing <= 1.0:
        raise StylebridgeError(f"--mixing {mixing}: must be in [0, 1]")
