"""Official weights fetched from Python, as ``stylebridge weights fetch`` and ``--fetch`` do.

A notebook has no ``--fetch`` flag and no terminal to answer a licence question:

* :func:`fetch_weights` downloads entries by name (``"e4e-ffhq"``, ``"pixar"``) or a named set,
  checked, converted and recorded as the command does, and returns where each is installed;
* :func:`fetching` is the ``ensure_weights`` a pipeline takes
  (``invert(config, ensure_weights=stylebridge.fetching())``): the official weights the run
  names and lacks are fetched before anything loads, instead of the one-line refusal.

Non-commercial licences (FSE, StyleRes, StyleDomain's domains, NVIDIA's generators) are named
and must be accepted with ``accept_licence=True``; nothing is downloaded otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from stylebridge.errors import StylebridgeError
from stylebridge.registry import needed
from stylebridge.registry import weights as weights_mod
from stylebridge.registry.registry import Registry
from stylebridge.registry.weights import Progress, WeightsManager
from stylebridge.registry.weights_checks import LicenceError


def _accepted(manager: WeightsManager, names: Sequence[str], accept_licence: bool) -> None:
    """Refuse, in one line naming every licence, a fetch of non-commercial entries that
    ``accept_licence`` does not accept."""
    gated = manager.licence_gate(names)
    if gated and not accept_licence:
        listed = "; ".join(f"{e.name}: {e.licence}" for e in gated)
        raise LicenceError(f"non-commercial licence{'s' if len(gated) > 1 else ''} ({listed}); "
                           "pass accept_licence=True to accept and download; nothing was "
                           "downloaded")


def fetch_weights(*names: str, set_name: str | None = None, accept_licence: bool = False,
                  progress: Progress | None = None, force: bool = False,
                  manager: WeightsManager | None = None) -> dict[str, Path]:
    """Download the official entries ``names`` (and those of the set ``set_name``: ``demo``
    is what ``stylebridge demo`` uses) that are not installed yet, as ``stylebridge weights
    fetch`` does; returns ``{name: installed file}`` for every one asked for.

    ``progress(done_bytes, total_or_None)`` is called during each download; ``force``
    downloads again (the new file's sha256 becomes the reference). An unknown name, a
    licence not accepted, a download or a check that fails raise one-line
    :class:`~stylebridge.errors.StylebridgeError` (``WeightsError``); entries fetched before
    the failure stay installed."""
    if len(names) == 1 and isinstance(names[0], list | tuple):  # fetch_weights(["a", "b"])
        names = tuple(names[0])
    wrong = [n for n in names if not isinstance(n, str)]
    if wrong:
        from stylebridge.errors import InputTypeError

        raise InputTypeError(f"fetch_weights: expected entry names (str), got "
                             f"{type(wrong[0]).__name__}")
    manager = manager or weights_mod.WeightsManager()  # looked up now (tests replace it)
    wanted = list(dict.fromkeys([*names, *(manager.set_members(set_name) if set_name else [])]))
    if not wanted:
        raise StylebridgeError("fetch_weights: name the entries to fetch (`stylebridge weights "
                               "list`), or a set_name")
    for name in wanted:
        manager.entry(name)  # an unknown name (with a suggestion) before any download
    todo = wanted if force else [n for n in wanted if manager.installed(n) is None]
    if todo:
        _accepted(manager, todo, accept_licence)
    for name in todo:
        manager.fetch(name, progress=progress, accept_licence=True, force=force)
    return {name: manager.installed_file(name) for name in wanted}


def fetching(*, accept_licence: bool = False, progress: Progress | None = None,
             manager: WeightsManager | None = None, registry: Registry | None = None
             ) -> Callable[[list[needed.Request]], None]:
    """The ``ensure_weights`` of a pipeline that fetches what its run lacks: the specs are
    checked first (a typo or a missing file is said before any download), then every
    official entry the run names by name and lacks is downloaded (licences as in
    :func:`fetch_weights`).  A run given its own ``registry=`` (plugins added in Python)
    passes the same one here, so that its plugin names are known."""

    def ensure(requests: list[needed.Request]) -> None:
        needed.check_files(requests)
        needed.check_names(requests, registry)
        own = manager or weights_mod.WeightsManager()
        missing = needed.missing_weights(requests, own, registry=registry)
        if missing:
            fetch_weights(*(m.name for m in missing), accept_licence=accept_licence,
                          progress=progress, manager=own)

    return ensure


__all__ = ["fetch_weights", "fetching"]
