"""What a domain trainer (``train domain``, ``hyperdomain``, ``mindthegap``) loads by name, as
weights requests (:mod:`stylebridge.registry.needed`) checked together before anything loads,
and the cheap refusals said before them (a ``--clip-weights`` typo, a domain checkpoint
trained for another generator): not after a download.

Which CLIP models the losses need is read from the loss classes (``requires``,
:func:`declared_fields`) before any loss is built: a loss whose options add a CLIP guide its
class does not declare is not known then, and loading its CLIP models says what is missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stylebridge.errors import CheckpointError, StylebridgeError

if TYPE_CHECKING:
    from stylebridge.registry.needed import Request

#: ``(option, names)``: CLIP models and the option that names them (``--clip (default)``)
ClipModels = tuple[str, list[str]]


def clip_models(option: str, given: Sequence[str] | None, default: Sequence[str]) -> ClipModels:
    """The CLIP models ``option`` gives (``given``), else its ``default`` ones, each once."""
    return (option if given else f"{option} (default)", list(dict.fromkeys(given or default)))


def declared_fields(specs: Iterable[str], *, registry: Any = None) -> frozenset[str]:
    """The :class:`~stylebridge.core.interfaces.LossBatch` fields the losses ``specs`` read
    as their classes declare them (``requires``), known before any is built: what the built
    ones' ``required_fields()`` say unless an option changes it (``corr:on=features``).  A
    spec that does not parse or names no loss counts for nothing (building says so)."""
    from stylebridge.registry import get_registry
    from stylebridge.registry.spec import parse_loss_spec

    registry = registry or get_registry()
    out: set[str] = set()
    for text in specs:
        try:
            out |= set(registry.get("loss", parse_loss_spec(text).name).obj.requires)
        except StylebridgeError:
            continue
    return frozenset(out)


def loss_clip_models(losses: Sequence[str], given: Sequence[str] | None,
                     default: Sequence[str]) -> list[ClipModels]:
    """The ``--clip`` models a trainer builds a CLIP guide from: when a loss reads one
    (``clip_guide``), else none."""
    return [clip_models("--clip", given, default)] \
        if "clip_guide" in declared_fields(losses) else []


def refuse_unknown_clip_weights(weights: Mapping[str, Path], names: Sequence[str],
                                models: str = "--clip models") -> None:
    """One line for a ``--clip-weights MODEL=PATH`` whose model is not among ``names``."""
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise StylebridgeError(f"--clip-weights {unknown[0]}=...: {unknown[0]} is not among the "
                               f"{models} ({', '.join(names)})")


def trainer_requests(generator: str, losses: Sequence[str], *, default_losses: bool = False,
                     encoder: str | None = None, clips: Sequence[ClipModels] = (),
                     clip_weights: Mapping[str, Path] | None = None,
                     allow_random_clip: bool = False) -> list[Request]:
    """The generator, the ``encoder``, every loss (``--loss (default)`` when none was given)
    and the CLIP models of ``clips`` without a ``clip_weights`` file (none with
    ``allow_random_clip``: a missing one then runs on random weights), as requests; a
    ``clip_weights`` model among none of ``clips`` is refused first (a typo is not answered
    with a download of the model it was meant for)."""
    from stylebridge.registry.needed import clip_requests

    if clips:
        refuse_unknown_clip_weights(clip_weights or {},
                                    list(dict.fromkeys(n for _, names in clips for n in names)),
                                    " / ".join(o.split()[0] for o, _ in clips) + " models")
    out: list[Request] = [("generator", generator, "--generator")]
    if encoder is not None:
        out.append(("encoder", encoder, "--encoder"))
    out += [("loss", spec, "--loss (default)" if default_losses else "--loss")
            for spec in losses]
    for option, names in clips:
        out += clip_requests(names, clip_weights or {}, option, allow_random=allow_random_clip)
    return out


def describe_generator(config: Mapping[str, Any]) -> str:
    """``32px, style_dim 512``: a generator config as the refusals name it."""
    return f"{config.get('size')}px, style_dim {config.get('style_dim')}"


def refuse_other_generator(path: Path, trained_for: Any, config: Mapping[str, Any],
                           label: str) -> None:
    """A domain checkpoint (``path``) whose header says it was trained for another generator
    config (``trained_for``) than ``config`` (the generator ``label``'s)."""
    from stylebridge.pipelines.training.state import json_roundtrip

    if trained_for is not None and trained_for != json_roundtrip(dict(config)):
        raise CheckpointError(
            f"domain was trained for another generator config ({describe_generator(trained_for)}"
            f"), not {label} ({describe_generator(config)})", path=path)


def check_method_generator(method: str, generator: str) -> None:
    """``--method D.safetensors`` (a domain to continue from) trained for another generator
    config than ``--generator``'s, refused from the two files' headers before any download
    or load; when the generator is a download not installed yet, loading checks it."""
    from stylebridge.core.checkpoint import read_header
    from stylebridge.core.stylegan2.config import GeneratorConfig
    from stylebridge.registry.resolve import generator_path
    from stylebridge.registry.spec import parse_plugin_spec

    try:
        path = parse_plugin_spec(method, what="domain method").path
        if path is None:
            return
        gen_path, _ = generator_path(generator)
        config = GeneratorConfig.from_dict(read_header(gen_path).config["generator"]).to_dict()
        trained_for = read_header(path).extra.get("generator_config")
    except (StylebridgeError, KeyError, TypeError, ValueError):
        return  # loading says what is wrong with either file
    refuse_other_generator(path, trained_for, config, str(gen_path))
