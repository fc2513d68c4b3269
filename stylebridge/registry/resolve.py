"""The one way in: from a spec to a plugin object and where its weights came from.

``create("encoder", "e4e:e4e.safetensors")`` turns a spec (grammar in
:mod:`stylebridge.registry.spec`) into ``(object, provenance)``:

=========================  ==============================================================
``NAME``                   the weights installed by ``stylebridge weights`` for that plugin,
                           else the plugin built from its defaults (refused with a one-line
                           hint when the class sets ``requires_weights``)
``NAME:CKPT``              a checkpoint whose header must name that plugin
``CKPT``                   a checkpoint alone: its header names the plugin
``NAME:CKPT:k=v,...``      options override the checkpoint's config (``NAME:k=v``: no file)
=========================  ==============================================================

The :class:`Provenance` (official / converted from FILE / checkpoint / random / none) is
computed once, here, and recorded beside the object (:func:`provenance_of`).  The
generator resolves the same way: ``create("generator", "stylegan2:ffhq.safetensors")`` or
:func:`load_generator`.  :func:`load_plugin`, :func:`load_encoder`, :func:`load_domain` and
:func:`spec_random` are thin names over :func:`create`.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch

from stylebridge.core.checkpoint import is_random_weights, read_header
from stylebridge.core.device import keep_rng_state, resolve_device
from stylebridge.core.interfaces import DomainMethod, Encoder, Plugin, Preprocessing
from stylebridge.core.io import file_identity
from stylebridge.core.stylegan2.checkpoint import PLUGIN as STYLEGAN2
from stylebridge.core.stylegan2.checkpoint import load_stylegan2
from stylebridge.core.stylegan2.generator import Generator
from stylebridge.errors import RegistryError, SpecError, StylebridgeError
from stylebridge.registry import weights as weights_mod
from stylebridge.registry.file_hashes import remember_loaded
from stylebridge.registry.registry import BUILTIN_PROVIDER, KINDS, Registry, get_registry
from stylebridge.registry.roundtrip import check_round_trip
from stylebridge.registry.spec import PluginSpec, parse_plugin_spec
from stylebridge.registry.typed_options import OptionTypeError, spec_options

__all__ = ["GENERATORS", "Created", "Provenance", "create", "load_domain", "load_encoder",
           "load_generator", "load_plugin", "provenance", "provenance_of", "record_provenance",
           "resolve_checkpoint", "spec_random"]

#: the generator plugins a ``--generator`` spec may name (checkpoint ``plugin`` field)
GENERATORS: tuple[str, ...] = (STYLEGAN2,)

#: kinds whose modules :func:`create` returns frozen (``requires_grad_(False)``, eval mode),
#: as the generator: they run for inference, so ``encoder.encode(images)`` builds no autograd
#: graph over the weights; gradients still flow to inputs that require them (a trainer's loss
#: through a frozen encoder).  Losses and metrics are left as their plugins build them.
INFERENCE_KINDS: tuple[str, ...] = ("encoder", "domain_method", "calibrator", "renderer")

Origin = Literal["official", "converted", "checkpoint", "random", "none"]


@dataclass(frozen=True)
class Provenance:
    """Where an object's weights came from, decided once by :func:`create`.

    ``origin``: ``"official"`` (installed by ``stylebridge weights``), ``"converted"`` (a
    checkpoint converted from the upstream file ``source_file``), ``"checkpoint"`` (one of
    ours, e.g. trained by stylebridge), ``"random"`` (untrained: its header says so, or no
    checkpoint was given or installed and the plugin does not declare otherwise) or
    ``"none"`` (no checkpoint and the plugin declares real weights or needs none).
    """

    origin: Origin
    path: Path | None = None
    source_file: str | None = None
    spec: str = ""
    #: what the file held and was when it was loaded (:func:`record_provenance` fills them):
    #: its sha256 and its :func:`~stylebridge.core.io.file_identity` (a run's record names
    #: them, not a file copied over it since)
    sha256: str | None = field(default=None, compare=False)
    identity: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def random(self) -> bool:
        """Whether the object runs on untrained weights (its outputs are labelled)."""
        return self.origin == "random"

    def describe(self) -> str:
        """One phrase for messages and reports, e.g. ``converted from e4e_ffhq_encode.pt``."""
        where = f" ({self.path})" if self.path is not None else ""
        if self.origin == "official":
            return f"official weights{where}"
        if self.origin == "converted":
            return f"converted from {self.source_file}{where}"
        if self.origin == "checkpoint":
            return f"checkpoint {self.path}"
        if self.origin == "random":
            return f"random weights{where}"
        return "no weights file"


class Created(NamedTuple):
    """What :func:`create` returns: the object and its :class:`Provenance` (unpacks as a pair)."""

    obj: Any
    provenance: Provenance


# object -> its provenance, for callers that hold only the object (weak: no leak)
_PROVENANCE: weakref.WeakKeyDictionary[Any, Provenance] = weakref.WeakKeyDictionary()


#: the attribute that also keeps an object's provenance on the object itself: the record
#: above is keyed by the object, so a ``copy.deepcopy`` (or a pickle) of a random generator
#: lost its RANDOM WEIGHTS label; the attribute travels with the copies
PROVENANCE_ATTR = "_stylebridge_provenance"


def provenance_of(obj: Any) -> Provenance | None:
    """The provenance :func:`create` recorded for ``obj``, or the one a copy of such an
    object carries (``None`` if neither)."""
    try:
        prov = _PROVENANCE.get(obj)
    except TypeError:  # not weak-referenceable / unhashable: only the attribute
        prov = None
    if prov is None:
        try:
            prov = vars(obj).get(PROVENANCE_ATTR)
        except TypeError:  # no __dict__
            return None
    return prov if isinstance(prov, Provenance) else None


def record_provenance(obj: Any, prov: Provenance) -> None:
    """Say where ``obj``'s weights came from, for objects built without :func:`create` (the
    tiny presets' random networks): :func:`provenance_of` and the pipelines' labels read it,
    also from a copy of ``obj``."""
    if prov.path is not None and prov.sha256 is None:  # what the file held when loaded
        prov = replace(prov, identity=file_identity(prov.path),
                       sha256=remember_loaded(prov.path))
    with contextlib.suppress(TypeError):  # not weak-referenceable: the attribute only
        _PROVENANCE[obj] = prov
    with contextlib.suppress(AttributeError, TypeError):  # __slots__: the record only
        object.__setattr__(obj, PROVENANCE_ATTR, prov)  # not nn.Module's: no submodule


_record = record_provenance


def _label(kind: str) -> str:
    return kind.replace("_", " ")


def _parse(kind: str, spec: str | Path | PluginSpec) -> PluginSpec:
    if isinstance(spec, PluginSpec):
        return spec
    if isinstance(spec, Path):  # a checkpoint file given as a Path (what the presets return)
        return PluginSpec(name=None, path=spec, text=str(spec))
    if not isinstance(spec, str):
        raise SpecError(f"{_label(kind)} spec: expected a string or a path, got "
                        f"{type(spec).__name__}")
    return parse_plugin_spec(spec, what=_label(kind))


def holds_tensors(obj: Any) -> bool:
    """Whether ``obj`` holds tensors a checkpoint would fill (a torch module with parameters
    or buffers); ``True`` for an object of another type or none (it may hold weights in
    other ways: it counts as before).  A module without any (a loss comparing pixels, a
    calibrator halving offsets) has no weights, so none are random."""
    if not isinstance(obj, torch.nn.Module):
        return True
    return next(obj.parameters(), None) is not None or next(obj.buffers(), None) is not None


def provenance(kind: str, spec: str | PluginSpec, obj: Any = None, *,
               installed: Path | None = None) -> Provenance:
    """The :class:`Provenance` of the object built from ``spec``.

    ``installed``: the weights-manager file a bare ``NAME`` loaded (looked up when not
    given).  ``obj.random_weights`` (``None``: follows the checkpoint) overrides whether a
    checkpoint-less object counts as random (one that holds no tensors,
    :func:`holds_tensors`, does not); a header that marks random weights always wins.
    """
    spec = _parse(kind, spec)
    path, official = spec.path, False
    if path is None and spec.name is not None:
        path = installed if installed is not None else weights_mod.WeightsManager().resolve(
            kind, spec.name)
        official = path is not None
    declared = obj.random_weights if isinstance(obj, Plugin) else None
    if declared is None and path is None and not holds_tensors(obj):
        declared = False  # nothing a checkpoint would fill: no weights to be random
    random = path is None if declared is None else bool(declared)
    extra = read_header(path).extra if path is not None else {}
    if path is not None and is_random_weights(extra):
        random = True
    text = spec.text or str(spec)
    if random:
        return Provenance("random", path, spec=text)
    if path is None:
        return Provenance("none", spec=text)
    if official:
        return Provenance("official", path, str(extra.get("source_file") or "") or None, text)
    source_file = extra.get("source_file")
    if source_file:
        return Provenance("converted", path, str(source_file), text)
    return Provenance("checkpoint", path, spec=text)


def _catalogue_entry(kind: str, name: str | None) -> Path | None:
    """The installed file of the weights entry called ``name`` of this kind (``pixar``), or
    ``None`` when no entry has that name; an entry that is not installed is a one-line error
    saying how to fetch it. Plugin names are never entry names, so plugins keep their names."""
    manager = weights_mod.WeightsManager()
    entry = manager.entries.get(name or "")
    if entry is None or entry.kind != kind or entry.plugin == name:
        return None
    if manager.installed(entry.name) is None:
        raise StylebridgeError(f"{_label(kind)} {name!r}: {manager.missing_message(entry)}")
    return manager.path(entry.name)


def _needs_weights(kind: str, name: str, provider: str, manager: Any,
                   hint_of_plugin: str | None = None) -> StylebridgeError:
    known = manager.candidates(kind, name)
    how = hint_of_plugin or (
        "convert the official file with `stylebridge convert`" if provider == BUILTIN_PROVIDER
        else f"its weights come with plugin package {provider}")
    if len(known) > 1:   # e.g. a domain method: many published domains, none is "the" one
        shown = ", ".join(e.name for e in known[:3]) + (", ..." if len(known) > 3 else "")
        return StylebridgeError(
            f"{_label(kind)} {name!r} needs weights: give {name}:CHECKPOINT ({how}) or a "
            f"published one by name ({shown}; `stylebridge weights list`)")
    hint = manager.missing_message(known[0]) if known else f"use {name}:CHECKPOINT ({how})"
    return StylebridgeError(f"{_label(kind)} {name!r} needs weights; {hint}")


def _get_or_suggest_published(registry: Registry, kind: str, name: str) -> Any:
    """``registry.get``; an unknown name close to a published weights entry of this kind
    (``--method pixr``) is answered with that entry, not only with plugin names."""
    try:
        return registry.get(kind, name)
    except RegistryError as exc:
        import difflib

        manager = weights_mod.WeightsManager()
        published = sorted(e.name for e in manager.entries.values() if e.kind == kind)
        close = difflib.get_close_matches(name, published, n=3, cutoff=0.6)
        if not close:
            raise
        shown = " or ".join(repr(c) for c in close)
        raise RegistryError(f"unknown {_label(kind)} {name!r}: no plugin and no published "
                            f"{_label(kind)} has that name; did you mean {shown}? "
                            f"(`stylebridge weights list --kind {kind}` lists them)") from exc


def _has_preprocessing(encoder: Encoder) -> bool:
    """Whether an encoder has the ``preprocessing`` its interface requires."""
    try:
        return isinstance(encoder.preprocessing, Preprocessing)
    except AttributeError:
        return False


def create(kind: str, spec: str | Path | PluginSpec, *, device: str | torch.device = "cpu",
           registry: Registry | None = None, **options: Any) -> Created:
    """Build a plugin (or, for ``kind="generator"``, a generator) from a spec.

    Specs: ``NAME``, ``NAME:CKPT``, ``CKPT`` (the header names the plugin) or
    ``NAME:CKPT:k=v`` / ``NAME:k=v``.  With a checkpoint, the header holds the config (a
    given ``NAME`` must agree) and options override its entries.  A bare ``NAME`` loads the
    weights installed by ``stylebridge weights`` for that plugin, else builds the plugin
    from its defaults and options; a class that declares ``requires_weights`` refuses that
    with a one-line hint telling how to fetch or register the official file.  Modules are
    moved to ``device`` in eval mode; those of :data:`INFERENCE_KINDS` (encoders, domain
    methods, calibrators, renderers) and the generator are frozen (``requires_grad_(False)``:
    call ``requires_grad_(True)`` to fine-tune one).  Returns ``(object, provenance)``; the
    provenance is also recorded for :func:`provenance_of`.
    """
    _check_kind(kind)
    device = resolve_device(str(device))  # `auto`, and a missing GPU said in one line
    if kind == "generator":
        if options:
            raise SpecError(f"generator spec {str(spec)!r}: options are not accepted here")
        generator, prov = load_generator(spec, device)
        return Created(generator, prov)
    registry = registry or get_registry()
    spec = _parse(kind, spec)
    if kind == "loss":
        _refuse_loss_weight(spec)
    try:  # typed by the constructor's hints (a value that does not fit: one line, here)
        config = spec_options(kind, spec, registry)
    except OptionTypeError:
        raise
    except SpecError as exc:  # `gain=nan`: say whose option it is
        name = spec.name or (spec.path.name if spec.path is not None else "")
        where = registry.where(kind, spec.name) if spec.name else ""
        raise SpecError(f"{kind.replace('_', ' ')} {name!r}{where}: {exc.message}") from None
    config.update(options)
    installed: Path | None = None
    instance = False  # converters and commands are registered as ready objects: no weights
    if spec.path is not None:
        obj = registry.load(kind, spec.path, name=spec.name, device=str(device), **config)
    elif (listed := _catalogue_entry(kind, spec.name)) is not None:
        # a weights entry's own name (``--method pixar``): its installed file, or how to get it
        installed = listed
        obj = registry.load(kind, installed, device=str(device), **config)
    else:
        assert spec.name is not None
        entry = _get_or_suggest_published(registry, kind, spec.name)
        manager = weights_mod.WeightsManager()
        installed = manager.resolve(kind, spec.name)
        if installed is not None:
            obj = registry.load(kind, installed, name=spec.name, device=str(device), **config)
        elif isinstance(entry.obj, type) and issubclass(entry.obj, Plugin) \
                and entry.obj.requires_weights:
            raise _needs_weights(kind, spec.name, entry.provider, manager,
                                 entry.obj.weights_hint)
        else:
            instance = not isinstance(entry.obj, type)
            with torch.random.fork_rng(devices=[]):  # the caller's random stream is left as is
                torch.manual_seed(_build_seed(kind, spec.name, config))
                obj = registry.create(kind, spec.name, **config)
    if installed is not None or spec.path is not None:  # loaded: its options are overrides
        name = spec.name or getattr(obj, "name", "") or type(obj).__name__
        check_round_trip(kind, f"{_label(kind)} {name!r}{registry.where(kind, name)}", obj,
                         config)
    if kind == "encoder" and not _has_preprocessing(obj):
        # the commands read its size to align and resize photos: say so before any photo is read
        raise RegistryError(f"encoder {spec.name or type(obj).__name__!r} has no "
                            "`preprocessing` (set self.preprocessing = Preprocessing(size=...) "
                            "in __init__; see `stylebridge docs contributing`, An encoder)")
    if isinstance(obj, torch.nn.Module):
        obj = obj.to(device).eval()
        if kind in INFERENCE_KINDS:  # built to run, not to train: no autograd graph
            obj.requires_grad_(False)
    prov = (Provenance("none", spec=spec.text or str(spec)) if instance
            else provenance(kind, spec, obj, installed=installed))
    _record(obj, prov)
    return Created(obj, prov)


def _check_kind(kind: Any) -> None:
    """Refuse an unknown kind in one line that lists every kind :func:`create` builds (the
    generator too, which is no registry plugin), with the close one (``Generator``)."""
    if kind == "generator" or (isinstance(kind, str) and kind in KINDS):
        return
    kinds = ["generator", *KINDS]
    close = (difflib.get_close_matches(kind.strip().lower(), kinds, n=1, cutoff=0.6)
             if isinstance(kind, str) else [])
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise RegistryError(f"unknown kind {kind!r}{hint} (kinds: {', '.join(kinds)})")


def _refuse_loss_weight(spec: PluginSpec) -> None:
    """``create("loss", "l1:0.5")``: the command line's ``--loss NAME:WEIGHT`` given to
    ``create``, whose grammar reads ``0.5`` as a checkpoint path; said in one line."""
    path = spec.path
    if spec.name is None or path is None or path.exists():
        return
    try:
        float(str(path))
    except ValueError:
        return
    options = ",".join(f"{k}={v}" for k, v in spec.options.items()) or "KEY=VALUE,..."
    raise SpecError(f"loss spec {spec.text!r}: {path} is a loss weight, which belongs to the "
                    f"trainer (--loss {spec.text}, or a trainer config's losses); create() "
                    f"builds the loss alone: {spec.name!r} or '{spec.name}:{options}'")


def _build_seed(kind: str, name: str, config: Mapping[str, Any]) -> int:
    """The seed a plugin built from its defaults (no checkpoint) starts from: the same spec
    gives the same random weights in every run (a random-weight smoke run can be compared
    with the last one), another spec other weights."""
    text = json.dumps([kind, name, sorted((k, repr(v)) for k, v in config.items())])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


# ---------------------------------------------------------------------------------------------
# Thin names over create()


def load_plugin(kind: str, spec: str | PluginSpec, *, device: str | torch.device = "cpu",
                registry: Registry | None = None, **overrides: Any) -> Any:
    """The object of :func:`create` alone."""
    return create(kind, spec, device=device, registry=registry, **overrides).obj


def load_encoder(spec_text: str, device: str | torch.device = "cpu", *,
                 registry: Registry | None = None) -> tuple[Encoder, bool]:
    """An encoder from a ``--encoder`` spec (from ``registry``, default the process-wide one),
    and whether it runs on untrained weights."""
    encoder, prov = create("encoder", spec_text, device=device, registry=registry)
    if not isinstance(encoder, Encoder):
        raise StylebridgeError(f"--encoder {spec_text!r} did not build an encoder")
    return encoder, prov.random


def load_domain(spec: str | Path, *, device: str | torch.device = "cpu",
                registry: Registry | None = None, **overrides: Any) -> DomainMethod:
    """A domain method from ``PATH`` or ``NAME:PATH[:k=v]``; loaded from a file, its
    :attr:`~stylebridge.core.interfaces.DomainMethod.label` is the file name."""
    parsed = parse_plugin_spec(str(spec), what="domain method")
    created = create("domain_method", parsed, device=device, registry=registry, **overrides)
    method = created.obj
    if parsed.path is not None and isinstance(method, DomainMethod):
        method.label = parsed.path.name
    elif created.provenance.origin == "official" and isinstance(method, DomainMethod):
        method.label = parsed.name or method.label  # a catalogue name: ``pixar``
    return method


def spec_random(kind: str, spec: str | PluginSpec, obj: Any = None) -> bool:
    """Whether the object built from ``spec`` runs on untrained weights: the provenance
    :func:`create` recorded for ``obj``, else :func:`provenance` of ``spec``."""
    recorded = provenance_of(obj) if obj is not None else None
    return (recorded or provenance(kind, spec, obj)).random


# ---------------------------------------------------------------------------------------------
# Checkpoints named by a spec, and the generator


def resolve_checkpoint(text: str, what: str) -> tuple[str | None, Path]:
    """``[NAME:]PATH`` → (plugin name or None, path), for checkpoints that are no plugin
    object (the generator).

    Without a path, ``NAME`` may name installed weights of this kind (``stylebridge
    weights``): a plugin (``--generator stylegan2`` → the installed FFHQ generator) or a
    weights entry (``--generator stylegan2-ffhq-1024``); otherwise the one-line error says
    how to get them.
    """
    spec = parse_plugin_spec(text, what=what)
    if spec.options:
        raise SpecError(f"{what} spec {text!r}: options are not accepted here")
    if spec.path is not None:
        return spec.name, spec.path
    manager = weights_mod.WeightsManager()
    entry = manager.entries.get(spec.name or "")
    if entry is not None and entry.kind == what:
        if manager.installed(entry.name):
            return entry.plugin, manager.path(entry.name)
        raise SpecError(f"{what} {text!r}: {manager.missing_message(entry)}")
    path = manager.resolve(what, spec.name or "")
    if path is not None:
        return spec.name, path
    known = manager.candidates(what, spec.name or "")
    if known:
        raise SpecError(f"{what} {text!r}: no {what} weights are installed; "
                        f"{manager.missing_message(known[0])}")
    if Path(text).is_dir():
        raise SpecError(f"{what} spec {text!r} is a folder; give a checkpoint file in it")
    raise SpecError(f"{what} spec {text!r} names no checkpoint file (expected [NAME:]PATH)")


def generator_path(spec: str | PluginSpec, *, option: str = "--generator") -> tuple[Path, bool]:
    """The checkpoint file of a generator spec and whether it is installed (official)
    weights; an unknown generator name is refused in one line."""
    text = spec if isinstance(spec, str) else (spec.text or str(spec))
    name, path = resolve_checkpoint(text, "generator")
    if name not in (None, *GENERATORS):
        raise StylebridgeError(f"{option} {text!r}: unknown generator {name!r} "
                               f"(known: {', '.join(GENERATORS)})")
    parsed = parse_plugin_spec(text, what="generator")
    return path, parsed.path is None


def load_generator(spec: str | Path | PluginSpec, device: str | torch.device = "cpu", *,
                   option: str = "--generator") -> tuple[Generator, Provenance]:
    """A generator from ``[stylegan2:]CKPT`` or an installed name (``stylegan2``,
    ``stylegan2-ffhq-1024``), on ``device`` in eval mode and frozen (``requires_grad_(False)``;
    gradients still flow to its inputs), and its :class:`Provenance`.  A ``device`` that is
    not there (``cuda`` without a GPU) is a one-line error, as in :func:`create`."""
    if not isinstance(spec, str | Path | PluginSpec):
        raise SpecError(f"generator spec: expected a string or a path, got "
                        f"{type(spec).__name__}")
    text = str(spec) if isinstance(spec, (str, Path)) else (spec.text or str(spec))
    device = resolve_device(str(device))  # `auto`, and a missing GPU said in one line
    path, official = generator_path(text, option=option)
    with keep_rng_state():  # built on meta, filled by assignment: nothing drawn
        ck = load_stylegan2(path, device=device, keep_rng=True)
    extra = ck.header.extra
    source_file = str(extra.get("source_file") or "") or None
    if is_random_weights(extra):
        prov = Provenance("random", path, spec=text)
    elif official:
        prov = Provenance("official", path, source_file, text)
    elif source_file:
        prov = Provenance("converted", path, source_file, text)
    else:
        prov = Provenance("checkpoint", path, spec=text)
    _record(ck.generator, prov)
    return ck.generator, prov
