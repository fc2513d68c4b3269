"""The text domain ``stylebridge serve`` is making, readable from any page.

A page shows the progress of the work it started itself through Gradio; a page loaded while
that work runs (a reload, another tab) has no part in it.  :class:`TextJob` is the
server's own record of the latest text domain (trained on the spot or rendered by a
hyper-network): what it is, how far it got, and how it ended, so that such a page shows
its progress at once and then its result.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: progress of a request: ``(fraction done in [0, 1], description)``
Progress = Callable[[float, str], None]

_ids = itertools.count(1)


@dataclass
class TextJob:
    """One text domain being made: ``state`` is ``running``, ``done`` (``name``: the domain
    the page now offers) or ``failed`` (``error``: what the request raised)."""

    prompt: str
    trained: bool  # False: rendered by a hyper-network, no training
    owner: str | None = None  # the browser that asked for it (another page does not claim it)
    id: int = field(default_factory=lambda: next(_ids))
    fraction: float = 0.0
    description: str = ""
    state: str = "running"
    name: str | None = None
    error: BaseException | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def report(self, progress: Progress) -> Progress:
        """``progress``, also recorded here."""
        def both(fraction: float, description: str) -> None:
            with self._lock:
                self.fraction, self.description = float(fraction), description
            progress(fraction, description)
        return both

    def finish(self, name: str | None = None, error: BaseException | None = None) -> None:
        with self._lock:
            self.state = "failed" if error is not None else "done"
            self.name, self.error = name, error
            if error is None:
                self.fraction = 1.0

    def snapshot(self) -> tuple[str, float, str]:
        """``(state, fraction, description)``, read together."""
        with self._lock:
            return self.state, self.fraction, self.description

    @property
    def running(self) -> bool:
        return self.snapshot()[0] == "running"


def run_text_job(prompt: str, trained: bool, work: Callable[[Progress], str],
                 progress: Progress, started: Callable[[TextJob], None],
                 owner: str | None = None) -> str:
    """Run ``work(progress)`` (it returns the new domain's name) as a :class:`TextJob`,
    handed to ``started`` before it begins; its end is recorded either way."""
    job = TextJob(prompt=" ".join(prompt.split()), trained=trained, owner=owner)
    started(job)
    try:
        name = work(job.report(progress))
    except BaseException as exc:
        job.finish(error=exc)
        raise
    job.finish(name)
    return name


def clip_setup(cached: Callable[[str, str, Callable[[], Any]], Any], work_dir: Path,
               device: Any) -> tuple[list[str], bool]:
    """CLIP models for text training: the installed official ViT-B/32 + ViT-B/16, else
    two tiny CLIPs with random weights (the result is then labelled RANDOM WEIGHTS);
    ``cached(kind, key, build)``: the back end's model cache."""
    from stylebridge.pipelines.presets import register_tiny_clip_configs
    from stylebridge.pipelines.train_domain import DEFAULT_CLIP, installed_clip_weights

    if all(installed_clip_weights(name) is not None for name in DEFAULT_CLIP):
        from stylebridge.plugins.nets.clip import load_clip

        # held for the life of the page: every text domain trained here then shares them
        # (load_clip returns the held model for the same file and device)
        cached("clip", "official", lambda: [
            load_clip(name, installed_clip_weights(name), device) for name in DEFAULT_CLIP])
        return list(DEFAULT_CLIP), False
    names = cached("clip", "tiny", lambda: register_tiny_clip_configs(work_dir / "tiny-clip"))
    return list(names), True


__all__ = ["Progress", "TextJob", "clip_setup", "run_text_job"]
