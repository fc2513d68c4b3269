"""Which official weights a run needs and does not have yet, found before anything loads.

``stylebridge adapt --encoder fse --method pixar photo.jpg`` on a fresh install needs three
downloads (the FFHQ generator, FSE, StyleDomain's pixar).  Loading stops at the first missing
one, so :func:`missing_weights` looks at every spec first, and :func:`missing_message` says
in one line what to fetch, with one command for all of them.

A request is ``(kind, spec, option)``: ``("encoder", "fse", "--encoder")``.  Only bare names
count: a spec with a checkpoint path, a plugin that runs without weights, and a plugin name
that several entries could serve (``--method stylespace``: which domain?) are left to the
one-line errors of loading, which say what to give.  Losses and metrics
(``("loss", "lpips:0.8", "--loss")``, ``("metric", "id:backend=arcface", "--metric")``) read
their networks' weights through options; their classes say which entries they would need
(:meth:`~stylebridge.core.interfaces.Plugin.unavailable_weights`: ``lpips-alex``,
``arcface-irse50``), so ``train featureshift --loss lpips:0.8 --loss id:0.1`` names both.
CLIP models go by their open_clip names (``("clip", "ViT-B-32", "--clip")``,
:func:`clip_requests`).  A name the weights manager has no entry for (a third-party plugin's
own weights) is no download: the run stops with one line saying which plugin needs it
(:class:`UnknownWeightsError`).
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

from stylebridge.core.interfaces import Plugin
from stylebridge.core.options import coerce_option
from stylebridge.core.stylegan2.checkpoint import PLUGIN as STYLEGAN2
from stylebridge.errors import CheckpointError, SpecError, StylebridgeError
from stylebridge.registry import weights as weights_mod
from stylebridge.registry.registry import Registry, _did_you_mean, accepted_options, get_registry
from stylebridge.registry.spec import parse_loss_spec, parse_plugin_spec
from stylebridge.registry.typed_options import OptionTypeError, typed_options

#: a run's weights requests: ``(kind, spec, option)``, e.g. ``("generator", "stylegan2",
#: "--generator")``
Request = tuple[str, str, str]
#: what a pipeline calls with its requests before loading: :func:`require_weights` raises,
#: the CLI's ``--fetch`` downloads
WeightsCheck = Callable[[list[Request]], None]
#: CLIP models by open_clip name (``("clip", "ViT-B-32", "--clip")``), not plugin specs: the
#: manifest's ``clip`` entries (``clip-vit-b-32``); a name it lists none for is left to loading
CLIP = "clip"


@dataclass(frozen=True)
class Missing:
    """An official weights entry a request needs that is not installed."""

    name: str        # the weights entry (``fse-ffhq``)
    request: str     # what asked for it (``--encoder fse``)
    needs: tuple[str, ...] = ()  # entries a fetch downloads first (``psp-ffhq``)
    noncommercial: bool = False
    #: the request's kind (:data:`CLIP`: the line adds that a file can be given instead)
    kind: str = field(default="", compare=False)


def _entry_for(manager: weights_mod.WeightsManager, kind: str, spec_text: str,
               registry: Registry | None = None) -> str | None:
    """The weights entry that loading ``spec_text`` as ``kind`` reads and that is not
    installed; ``None`` when it is installed, needs none, or is not ours to guess.
    ``registry``: the one the run builds its plugins from (default: the installed plugins)."""
    if kind == CLIP:
        known = manager.candidates(kind, spec_text)
        return known[0].name if known and manager.resolve(kind, spec_text) is None else None
    try:
        spec = parse_plugin_spec(spec_text, what=kind.replace("_", " "))
    except StylebridgeError:
        return None  # loading reports the syntax error
    if spec.path is not None or not spec.name:
        return None
    entry = manager.entries.get(spec.name)
    if entry is not None and entry.kind == kind and entry.plugin != spec.name:
        return None if manager.installed(entry.name) else entry.name
    if manager.resolve(kind, spec.name) is not None:
        return None
    known = manager.candidates(kind, spec.name)
    if kind == "generator":
        # ``--generator stylegan2``: the first listed generator is the default one
        return known[0].name if spec.name == STYLEGAN2 and known else None
    try:
        plugin = (registry or get_registry()).get(kind, spec.name).obj
    except StylebridgeError:
        return None  # an unknown name: loading lists the known ones
    needs_weights = isinstance(plugin, type) and issubclass(plugin, Plugin) \
        and plugin.requires_weights
    return known[0].name if needs_weights and len(known) == 1 else None


#: kinds whose specs hold options (``lpips:0.8:net=vgg``, ``id:backend=arcface``), not a
#: checkpoint of their own: the plugin class says what it would read
#: (:meth:`~stylebridge.core.interfaces.Plugin.unavailable_weights`)
OPTION_KINDS = ("loss", "metric")


def _option_entries(kind: str, spec_text: str,
                    registry: Registry | None = None) -> tuple[str, tuple[str, ...]]:
    """The weights entries a loss (``NAME:WEIGHT[:k=v]``) or metric (``NAME[:PATH][:k=v]``)
    spec would read and cannot find, as its class says, after how messages name the plugin
    (``loss 'x' (from PKG)``); no entries for a spec that does not parse or names an unknown
    plugin (building reports those)."""
    registry = registry or get_registry()
    path: str | None = None
    refused: OptionTypeError | None = None
    try:
        if kind == "loss":
            loss = parse_loss_spec(spec_text)
            name, raw = loss.name, dict(loss.options)
        else:
            spec = parse_plugin_spec(spec_text, what="metric")
            name, raw = spec.name, dict(spec.options)
            path = None if spec.path is None else str(spec.path)
        plugin = registry.get(kind, name).obj if name else None
        try:  # typed by the constructor's hints, as the plugin will be built
            typed = typed_options(kind, name, plugin if isinstance(plugin, type) else None, raw,
                                  where=registry.where(kind, str(name)))
        except OptionTypeError as exc:
            # said below, before any download, unless the plugin's own check of the text
            # (`allow_random=maybe`) says it first, as it did before the hints were read
            refused, typed = exc, {key: coerce_option(value, key) for key, value in raw.items()}
        if path is not None:  # NAME:PATH is the weights file, as given
            typed.setdefault("weights", path)
        config = {key.replace("-", "_"): value for key, value in typed.items()}
    except StylebridgeError:
        return "", ()
    if not (isinstance(plugin, type) and issubclass(plugin, Plugin)):
        return "", ()
    label = f"{kind} {name!r}{registry.where(kind, str(name))}"
    accepted = accepted_options(plugin)  # a typo is said before a download is asked for
    unknown = sorted(set(config) - {"after"} - set(accepted)) if accepted is not None else []
    if unknown:
        raise SpecError(f"{kind} spec {spec_text!r}: unknown option(s) {', '.join(unknown)}"
                        f"{_did_you_mean(unknown[0], accepted or [])} (accepted: "
                        f"{', '.join(accepted or []) or 'none'})")
    try:
        entries = tuple(plugin.unavailable_weights(config))
    except (TypeError, ValueError) as exc:  # a bad option value (allow_random=maybe)
        raise SpecError(f"{kind} spec {spec_text!r}: {exc}") from None
    if refused is not None:  # a value its hint refuses (k=2.5 for k: int): one line
        raise refused
    return label, entries


def missing_weights(requests: Iterable[Request],
                    manager: weights_mod.WeightsManager | None = None,
                    registry: Registry | None = None) -> list[Missing]:
    """The official weights the ``requests`` need and that are not installed, each once, in
    the order asked.

    A loss or metric whose :meth:`~stylebridge.core.interfaces.Plugin.unavailable_weights`
    names weights the weights manager has no entry for (a third-party plugin's own files)
    cannot be helped by a fetch, and building it would fail: that is raised at once, in one
    line (:class:`UnknownWeightsError`), with the official weights the run also lacks."""
    manager = manager or weights_mod.WeightsManager()
    out: dict[str, Missing] = {}
    unknown: dict[str, str] = {}  # weights name -> who needs it (and for which option)
    for kind, spec_text, option in requests:
        if kind in OPTION_KINDS:
            label, names = _option_entries(kind, spec_text, registry)
            for name in names:
                if name not in manager.entries:
                    unknown.setdefault(name, f"{label} needs weights {name!r} ({option} "
                                             f"{spec_text})")
                elif name not in out:
                    out[name] = _missing(manager, name, f"{option} {spec_text}", out)
            continue
        name = _entry_for(manager, kind, spec_text, registry)
        if name is None or name in out:
            continue
        out[name] = _missing(manager, name, f"{option} {spec_text}", out, kind)
    if unknown:
        raise UnknownWeightsError(list(unknown.values()), list(out.values()))
    return list(out.values())


def _missing(manager: weights_mod.WeightsManager, name: str, request: str,
             listed: Mapping[str, Missing], kind: str = "") -> Missing:
    entry = manager.entry(name)
    needs = tuple(dep.name for dep in manager.prerequisites(entry)
                  if manager.installed(dep.name) is None and dep.name not in listed)
    return Missing(name, request, needs, bool(entry.noncommercial), kind)


def missing_message(missing: Sequence[Missing]) -> str:
    """One line: what is missing, for which option, and the one command that fetches all."""
    parts = []
    for m in missing:
        first = f"; fetches {', '.join(m.needs)} first" if m.needs else ""
        parts.append(f"{m.name} (for {m.request}{first})")
    # a fetch downloads an entry's prerequisites itself: they are not listed in the command
    command = "stylebridge weights fetch " + " ".join(m.name for m in missing)
    gated = sum(m.noncommercial for m in missing)
    licence = "" if not gated else (
        " (non-commercial licence, shown before download)" if len(missing) == 1 else
        f" ({'all' if gated == len(missing) else gated} under non-commercial licences, shown "
        "before download)")
    clips = [m.request.rpartition(" ")[2] for m in missing if m.kind == CLIP]
    files = ("" if not clips else f"; or give --clip-weights {clips[0]}=PATH (a CLIP file you "
             "have)" if len(clips) == 1 else "; or give --clip-weights MODEL=PATH (CLIP files "
             "you have)")
    return (f"official weights are not installed: {', '.join(parts)}; run `{command}`{licence}"
            f"{files}")


def clip_requests(names: Iterable[str], given: Container[str] = (), option: str = "--clip", *,
                  allow_random: bool = False) -> list[Request]:
    """The CLIP models ``names`` a run loads (``ViT-B-32``) as requests, less those ``given``
    a weights file (``--clip-weights``); none when ``allow_random`` (a missing one then runs
    on random weights, labelled, as the trainers' ``--allow-random-clip`` says)."""
    if allow_random:
        return []
    return [(CLIP, name, option) for name in dict.fromkeys(names) if name not in given]


def check_files(requests: Iterable[Request]) -> None:
    """A spec that does not parse, or a checkpoint file named in a spec
    (``e4e:e4e.safetensors``) that does not exist, in one line: checked before any download
    (and before the list of missing weights), so a typo is not found after one."""
    for kind, spec_text, option in requests:
        if kind in (*OPTION_KINDS, CLIP):
            continue  # files in options (backbone=, weights=; --clip-weights): read by loading
        spec = parse_plugin_spec(spec_text, what=kind.replace("_", " "))
        if spec.path is not None and not spec.path.exists():
            raise CheckpointError(f"no such file ({option} {spec_text})", path=spec.path)


def check_names(requests: Iterable[Request], registry: Registry | None = None) -> None:
    """Every plugin or weights name the ``requests`` give is known, else the one-line error
    loading would give (``unknown encoder 'e5e'; did you mean 'e4e'?``): checked before the
    list of missing weights, which skipped unknown names, so a typo was answered with other
    downloads (and ``--fetch`` fetched them before the typo was said).  ``registry``: the one
    the run builds its plugins from (default: the installed plugins)."""
    from stylebridge.registry.resolve import GENERATORS, _get_or_suggest_published

    manager = weights_mod.WeightsManager()
    registry = registry or get_registry()
    for kind, spec_text, option in requests:
        if kind == CLIP:
            continue  # an open_clip name: loading the model says an unknown one
        if kind == "loss":
            name: str | None = parse_loss_spec(spec_text).name
        else:
            spec = parse_plugin_spec(spec_text, what=kind.replace("_", " "))
            if spec.path is not None and kind not in OPTION_KINDS:
                continue  # a checkpoint file: its header names the plugin
            name = spec.name
        if not name:
            continue
        entry = manager.entries.get(name)
        if entry is not None and entry.kind == kind:
            continue  # a weights entry's own name (``--method pixar``)
        if kind == "generator":
            if name not in GENERATORS:
                known = [*GENERATORS, *(e.name for e in manager.entries.values()
                                        if e.kind == "generator")]
                raise SpecError(f"{option} {spec_text!r}: unknown generator {name!r}"
                                f"{_did_you_mean(name, known)} (known: {', '.join(known)})")
            continue
        _get_or_suggest_published(registry, kind, name)


def require_weights(requests: Sequence[Request], registry: Registry | None = None) -> None:
    """Raise one line naming every missing official checkpoint of a run, before loading
    (after :func:`check_files` and :func:`check_names`)."""
    check_files(requests)
    check_names(requests, registry)
    missing = missing_weights(requests, registry=registry)
    if missing:  # from Python (the commands say --fetch instead)
        accept = "accept_licence=True" if any(m.noncommercial for m in missing) else ""
        raise MissingWeightsError(missing, f"; or pass ensure_weights=stylebridge.fetching("
                                           f"{accept}) to fetch them")


def checked_registry(requests: list[Request], ensure_weights: WeightsCheck | None = None,
                     registry: Registry | None = None) -> Registry:
    """The registry a run builds its plugins from (``registry``, default: the installed
    plugins), once ``ensure_weights`` has checked the run's ``requests`` (default:
    :func:`require_weights` with that registry): what the photo pipelines call before loading."""
    registry = registry or get_registry()
    (ensure_weights or partial(require_weights, registry=registry))(requests)
    return registry


class MissingWeightsError(StylebridgeError):
    """Official weights a run needs are not installed (:attr:`missing` lists them)."""

    def __init__(self, missing: Sequence[Missing], also: str = "") -> None:
        super().__init__(missing_message(missing) + also)
        self.missing, self.also = list(missing), also  # also: what the line adds (``; or ...``)


class UnknownWeightsError(StylebridgeError):
    """A loss or metric says it needs weights stylebridge's weights manager has no entry for
    (a third-party plugin's own files): no fetch can get them, so the run stops before
    anything loads.  :attr:`missing` lists the official weights the run lacks besides."""

    def __init__(self, needs: Sequence[str], missing: Sequence[Missing] = ()) -> None:
        also = f"; besides, {missing_message(missing)}" if missing else ""
        if len(needs) == 1:
            said = (f"{needs[0]} that stylebridge's weights manager does not know, so "
                    "`stylebridge weights fetch` cannot get it: install it as the plugin's "
                    "package documents")
        else:
            said = (f"{'; '.join(needs)}: stylebridge's weights manager knows none of these, "
                    "so `stylebridge weights fetch` cannot get them: install them as the "
                    "plugins' packages document")
        super().__init__(said + also)
        self.needs, self.missing = list(needs), list(missing)


__all__ = ["CLIP", "OPTION_KINDS", "Missing", "MissingWeightsError", "Request",
           "UnknownWeightsError", "WeightsCheck", "check_files", "check_names", "checked_registry",
           "clip_requests", "missing_message",
           "missing_weights", "require_weights"]
