"""Which encoders ``stylebridge serve`` offers: those that can work with the served generator.

Every registered encoder (and FSE's generator-shift mode) is labelled by where its weights
come from.  One that cannot run without weights that are not installed, or whose config (the
installed checkpoint's header, the tiny preset's, else its defaults) gives latents or features
the generator cannot take, gets the one line a run would fail with (:attr:`EncoderChoice.problem`):
the page does not offer it and says why.  The config is checked as a run checks it,
:meth:`~stylebridge.core.interfaces.Encoder.check_generator`
(:func:`~stylebridge.pipelines.adapter.attach_encoder`) and the shapes and dtype of one
encoding (:func:`~stylebridge.pipelines.adapter.check_inversion`), on an encoder built on the
``meta`` device: no memory, no weights read.  A check that cannot run on ``meta`` (an encoder doing
arithmetic on values) leaves the encoder offered: the run itself still says what is wrong.

Options typed in the field (``e4e:n_styles=...``) are checked against the plugin's schema
(:attr:`~stylebridge.core.interfaces.Plugin.config_schema`) and the encoder they build is
measured on ``meta`` (:func:`check_size`) before anything real is allocated, both in the
field's check and in a run (:func:`build_encoder`): one over :data:`MAX_ENCODER_BYTES` is
refused in one line.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch

from stylebridge.core.checkpoint import FILE_ERRORS, RANDOM_NOTICE, read_header
from stylebridge.core.interfaces import Encoder
from stylebridge.core.stylegan2.generator import Generator
from stylebridge.core.synthesis import check_compatible
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.adapter import attach_encoder, check_inversion
from stylebridge.registry import Registry, get_registry
from stylebridge.registry.resolve import load_encoder
from stylebridge.registry.spec import PluginSpec, parse_plugin_spec
from stylebridge.registry.typed_options import spec_options, typed_options
from stylebridge.registry.weights import WeightsManager

#: the variant of FSE the page lists beside it
FSE_SHIFT = "fse:mode=shift"
#: the most bytes of weights (parameters and buffers) an encoder built for the page may
#: hold: about three times the largest real encoder (StyleRes, IR-SE50 and its feature
#: branch: 1.35 GiB in float32; pSp/e4e 1.0 GiB, FSE 0.4 GiB)
MAX_ENCODER_BYTES = 4 * 2**30


@dataclass(frozen=True)
class EncoderChoice:
    """One entry of the encoder list: its label, its spec and, when it cannot work with the
    served generator, why not (one line; ``None``: it can)."""

    label: str
    spec: str
    problem: str | None = None


def preset_config(base: Encoder, spec: PluginSpec) -> dict[str, Any]:
    """The config of the tiny preset's encoder ``base`` with the options of ``spec``; an
    unknown option, or a value its plugin's schema refuses (``n_styles=0``,
    ``input_size=3``), in one line, as the registry says it for a checkpoint's plugin."""
    options = typed_options("encoder", spec.name, type(base), spec.options)  # by its hints
    unknown = sorted(set(options) - set(base.config()))
    if unknown:
        raise StylebridgeError(f"encoder {spec.name!r}: unknown option(s) {', '.join(unknown)} "
                               f"(accepted: {', '.join(sorted(base.config()))})")
    config = {**base.config(), **options}
    try:
        type(base).check_config(config)  # types and ranges, before anything is built
    except ValueError as exc:  # ConfigSchemaError or a plugin's cross-key check
        raise StylebridgeError(f"encoder {spec.name!r}: {_one_line(exc)}") from None
    return config


def _one_line(exc: BaseException, limit: int = 300) -> str:
    """``exc`` as one line of at most ``limit`` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def _few(names: Sequence[str], shown: int = 3) -> str:
    """``a, b, c and 12 more``: a long list of tensor names kept to one short line."""
    rest = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {rest} more" if rest > 0 else "")


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


def encoder_bytes(encoder: Any) -> int:
    """The bytes of ``encoder``'s parameters and buffers (read from shapes: an encoder built
    on the ``meta`` device is measured without memory)."""
    if not isinstance(encoder, torch.nn.Module):
        return 0
    return sum(t.numel() * t.element_size()
               for t in itertools.chain(encoder.parameters(), encoder.buffers()))


def check_size(encoder: Any, what: str) -> None:
    """Refuse, in one line, an encoder holding more than :data:`MAX_ENCODER_BYTES` of
    weights (measured on ``meta``, before a real one is built)."""
    size = encoder_bytes(encoder)
    if size > MAX_ENCODER_BYTES:
        raise StylebridgeError(
            f"{what}: these options build {_gib(size)} of weights, above the web page's limit "
            f"of {_gib(MAX_ENCODER_BYTES)} per encoder (the largest real encoder, StyleRes, "
            "holds 1.4 GiB)")


def _check_preset_shapes(encoder: Encoder, base: Encoder, what: str) -> None:
    """The tiny preset's weights are copied into an encoder built with options: refuse
    options that change their shapes in one short line (not PyTorch's list of every key)."""
    want = {k: tuple(v.shape) for k, v in base.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in encoder.state_dict().items()}
    differ = sorted(k for k in want.keys() | got.keys() if want.get(k) != got.get(k))
    if differ:
        raise StylebridgeError(
            f"{what}: these options change {len(differ)} of the tiny preset's weight tensors "
            f"({_few(differ)}), so its weights cannot be used; keep the options that change "
            "shapes at the preset's values")


def _construct(cls: type, name: str, config: Mapping[str, Any]) -> Encoder:
    """``cls(**config)``, a constructor's refusal in one line (as the registry says it)."""
    try:
        return cls(**config)
    except StylebridgeError:
        raise
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise StylebridgeError(f"cannot build encoder {name!r} from its options: "
                               f"{type(exc).__name__}: {_one_line(exc)}") from None


def _on_meta(build: Callable[[], Encoder]) -> Encoder:
    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")
        return build()


def measure(spec: str, preset: Mapping[str, Encoder] | None = None, *,
            registry: Registry | None = None) -> Encoder | None:
    """Build the encoder of ``spec`` on ``meta`` (no memory, no weights read) and refuse in
    one line what it would be refused for before anything is allocated: a bad option, over
    :data:`MAX_ENCODER_BYTES`, the tiny preset's weights not fitting.  The meta encoder, or
    ``None`` when it cannot be built on ``meta`` (then it is built as before)."""
    spec = spec.strip()
    build, base = _meta_build(spec, preset or {}, registry or get_registry())
    try:
        encoder = _on_meta(build)
    except StylebridgeError:
        raise
    except Exception as exc:
        if not _cannot_tell_on_meta(exc):
            raise
        return None
    check_size(encoder, f"encoder {spec!r}")
    if base is not None:
        _check_preset_shapes(encoder, base, f"encoder {spec!r}")
    return encoder


def build_encoder(spec: str, preset: Mapping[str, Encoder], device: torch.device | str
                  ) -> tuple[Encoder, bool]:
    """The encoder of ``spec`` for a run, and whether its weights are random: the tiny
    preset's (``preset``, with options: its weights in an encoder of those options), else
    :func:`~stylebridge.registry.resolve.load_encoder`, the CLI's.  Measured on ``meta``
    first (:func:`measure`): nothing real is allocated for what is refused."""
    parsed = parse_plugin_spec(spec, what="encoder")
    base = preset.get(parsed.name or "") if parsed.path is None else None
    if base is not None and not parsed.options:
        return base.to(device).eval(), True
    measure(spec, preset)
    if base is None:
        return load_encoder(spec, device)
    encoder = _construct(type(base), spec, preset_config(base, parsed))
    encoder.load_state_dict(base.state_dict())
    return encoder.to(device).eval(), True


def _meta_build(spec: str, preset: Mapping[str, Encoder], registry: Registry
                ) -> tuple[Callable[[], Encoder], Encoder | None]:
    """How to build the encoder of ``spec`` with the config a run would use (weights aside),
    from ``registry``, and the tiny preset's encoder it takes its weights from (``None``: not
    the preset's); a one-line error for what a run would refuse before building it (weights
    needed and not installed, an unknown name or option, a value out of its schema's range,
    an unreadable checkpoint)."""
    parsed = parse_plugin_spec(spec, what="encoder")
    if parsed.path is None and parsed.name in preset:
        base = preset[parsed.name]
        config = preset_config(base, parsed)
        return (lambda: _construct(type(base), spec, config)), base
    options = spec_options("encoder", parsed, registry)  # typed by its class's hints
    manager = WeightsManager()
    path = parsed.path
    listed = manager.entries.get(parsed.name or "")
    if path is None and listed is not None and listed.kind == "encoder" \
            and listed.plugin != parsed.name:  # a weights entry's name (psp-ffhq)
        if not manager.installed(listed.name):
            load_encoder(spec)  # refused before anything is built: how to fetch it
        path = manager.path(listed.name)
    elif path is None:
        assert parsed.name is not None
        entry = registry.get("encoder", parsed.name)  # an unknown name: the registry's line
        path = manager.resolve("encoder", parsed.name)
        if path is None and isinstance(entry.obj, type) and entry.obj.requires_weights:
            load_encoder(spec)  # refused before anything is built: the run's own line
    if path is None:
        name, config = parsed.name, options
    else:
        header = read_header(path)
        name, config = header.plugin, {**header.config, **options}
    assert name is not None
    return (lambda: registry.create("encoder", name, **config)), None


def _cannot_tell_on_meta(exc: Exception) -> bool:
    """Whether ``exc``, raised building or checking an encoder on ``meta``, says it cannot
    be told there (an op without a meta kernel, a value read or a copy to NumPy, a file it
    reads unreadable): the run will tell.  Memory running out and anything else (a bug in
    the plugin) are raised."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return False
    if isinstance(exc, (RuntimeError, *FILE_ERRORS)):
        return True
    return isinstance(exc, TypeError) and "meta" in str(exc)


def fit_problem(spec: str, generator: Generator, preset: Mapping[str, Encoder] | None = None,
                *, registry: Registry | None = None) -> str | None:
    """Why the encoder of ``spec`` cannot work with ``generator`` (the one-line error a run
    would end with), or ``None`` when it can or when that cannot be told without running it.
    ``preset``: encoders used for their names instead of the registry (the tiny preset's);
    ``registry``: where the encoders come from (default: the installed plugins)."""
    what = f"encoder {spec.strip()!r}"
    try:  # a bad option, too many bytes of weights: said before the (meta) encoding
        encoder = measure(spec, preset, registry=registry)
        if encoder is None:
            return None  # not buildable on meta: the run will tell
        with warnings.catch_warnings(), torch.device("meta"):
            warnings.simplefilter("ignore")
            size = int(encoder.preprocessing.size or generator.size)
            probe = encoder.encode(torch.zeros(1, 3, size, size))
    except StylebridgeError as exc:  # a bad option: what building it says
        return str(exc)
    except Exception as exc:
        if not _cannot_tell_on_meta(exc):
            raise
        return None  # not encodable on meta: the run will tell
    try:
        attach_encoder(encoder, generator, bind=False)  # its check_generator, as a run's
        check_compatible(probe, generator, what)  # the shapes, named by the spec typed
        # the rest of the run's check (check_inversion): the dtype is known on meta; NaN/inf
        # are not (values): that part raises a non-StylebridgeError, and the run will tell
        check_inversion(probe, generator, encoder, 1)
    except StylebridgeError as exc:
        return str(exc)
    except Exception as exc:
        if not _cannot_tell_on_meta(exc):
            raise
        return None  # a check that needs real values: the run will tell
    return None


def registered_choices(generator: Generator, preset: Mapping[str, Encoder] | None = None,
                       *, registry: Registry | None = None) -> list[EncoderChoice]:
    """Every encoder of ``registry`` (default: the installed plugins) and the variants it
    declares (FSE's generator-shift mode, :attr:`~stylebridge.core.interfaces.Encoder.variants`),
    its label saying where its weights come from, and whether it can work with ``generator``
    (:func:`fit_problem`).  ``preset``: the tiny preset's encoders, used for those names
    (random weights)."""
    preset = preset or {}
    manager = WeightsManager()
    # no registry given: fit_problem is called as before and reads the installed plugins itself
    fit = fit_problem if registry is None else partial(fit_problem, registry=registry)
    registry = registry or get_registry()
    choices: list[EncoderChoice] = []
    for name in registry.names("encoder"):
        try:
            installed = manager.resolve("encoder", name) is not None
        except StylebridgeError:  # installed unconverted: fit_problem says how to convert
            installed = False
        if installed:
            how = "installed weights"
        elif name in preset:
            how = f"{RANDOM_NOTICE}: tiny preset"
        else:
            entry = registry.get("encoder", name)
            needs = isinstance(entry.obj, type) and entry.obj.requires_weights
            how = ("needs weights: stylebridge weights" if needs
                   else f"{RANDOM_NOTICE}: default config")
        specs = [(f"{name} ({how})", name)]
        cls = registry.get("encoder", name).obj
        if isinstance(cls, type) and issubclass(cls, Encoder):  # a factory declares none
            specs += [(f"{name}, {label} ({how})", f"{name}:{options}")
                      for label, options in cls.variants]
        for label, spec in specs:
            choices.append(EncoderChoice(label, spec, fit(spec, generator, preset)))
    return choices


__all__ = ["FSE_SHIFT", "MAX_ENCODER_BYTES", "EncoderChoice", "build_encoder", "check_size",
           "encoder_bytes", "fit_problem", "measure", "preset_config", "registered_choices"]
