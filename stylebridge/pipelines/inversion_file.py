"""Inversion files: one encoder inversion per file, a stylebridge checkpoint of kind
``inversion`` that ``invert --save-latents`` and ``adapt --save-latents`` write
(``<stem>_inversion.safetensors``) and :func:`load_inversion` reads back, e.g. to render it
through more domains later without running the encoder on the photo again::

    inversion, header = load_inversion("inverted/photo_inversion.safetensors")
    images = Adapter(encoder, gen, {"joker": joker}).render(inversion)

A file holds tensors, not functions.  An inversion with :attr:`Inversion.modifiers
<stylebridge.core.inversion.Inversion.modifiers>` (StyleRes: the gated residual at activation
K) is saved with the tensors they are made from (its extras) and the header lists the
activations (``config["modifiers"]``); reading it back, its own encoder rebuilds them
(:meth:`Encoder.restore <stylebridge.core.interfaces.Encoder.restore>`, which
:meth:`Adapter.render <stylebridge.pipelines.adapter.Adapter.render>` calls), and
:func:`check_restorable` refuses another encoder in one line.  Rendered without them, the
picture would silently lose StyleRes's detail.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from stylebridge.core.checkpoint import CheckpointHeader, load_checkpoint, save_checkpoint
from stylebridge.core.interfaces import Encoder, Inversion
from stylebridge.errors import CheckpointError
from stylebridge.registry.spec import absolute_spec

KIND = "inversion"
LATENTS_SUFFIX = "_inversion.safetensors"  # <stem> + this, beside <stem>_inversion.png


def save_inversion(path: str | Path, inversion: Inversion, *, encoder: str, encoder_spec: str,
                   generator: str | Path, extra: Mapping[str, Any] | None = None,
                   modifiers: Sequence[int] | None = None) -> Path:
    """Write one inversion (batch 1) as a stylebridge checkpoint, atomically.

    Tensors: ``w_plus`` ``[1, n_latent, style_dim]``, ``feature_<K>`` ``[1, C, H, W]``
    per injected activation K, ``extra_<name>`` per encoder extra.  Header:
    ``kind="inversion"``, ``plugin=encoder``, config ``{"feature_mode", "encoder"
    (the spec text), "generator" (its checkpoint path), "modifiers" (the activations K
    whose modifiers the encoder rebuilds on reading)}``.  ``modifiers``: those activations
    when ``inversion`` was taken from a batch whose modifiers it lost
    (:func:`select_inversion`); default: its own.
    """
    if inversion.batch_size != 1:
        raise ValueError(f"save_inversion writes one inversion, got a batch of {inversion.batch_size}")
    tensors = {"w_plus": inversion.w_plus}
    tensors.update({f"feature_{k}": v for k, v in sorted(inversion.features.items())})
    tensors.update({f"extra_{k}": v for k, v in sorted(inversion.extras.items())})
    layers = sorted({int(k) for k in (inversion.modifiers if modifiers is None else modifiers)})
    config = {"feature_mode": inversion.feature_mode, "encoder": absolute_spec(encoder_spec),
              "generator": absolute_spec(generator), "modifiers": layers}
    return save_checkpoint(path, tensors, kind=KIND, plugin=encoder, config=config,
                           extra={**dict(extra or {}), **file_provenance(generator, extra)})


def file_provenance(generator: str | Path, extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """What ties an inversion file to what made it: ``generator_sha256`` (the file's content:
    rendered through another generator, ``render`` says so, as for a domain), ``software``,
    and, when ``extra["source"]`` names a photo file, ``source_path`` (absolute) and
    ``source_sha256`` (the photo's content)."""
    from stylebridge.pipelines.adapter import generator_sha256
    from stylebridge.pipelines.run_record import absolute, software
    from stylebridge.pipelines.training.state import file_sha256

    out: dict[str, Any] = {"software": software()}
    if Path(generator).is_file():
        out["generator_sha256"] = generator_sha256(generator)
    source = (extra or {}).get("source")
    if isinstance(source, str) and Path(source).is_file():
        out["source_path"] = absolute(source)
        out["source_sha256"] = file_sha256(source)
    return out


def inversion_generator_notes(headers: Mapping[Path, CheckpointHeader],
                              generator: Any) -> list[str]:
    """One line per generator file the inversion files record by sha256
    (``generator_sha256``, written since it was added) other than the one ``generator`` was
    loaded from (:func:`~stylebridge.pipelines.adapter.other_generator`): their latents were
    fitted through that generator.  Files recording none (older ones): no line."""
    from stylebridge.pipelines.adapter import other_generator

    by_generator: dict[str, list[Path]] = {}
    for path, header in headers.items():
        extra = {**header.extra, "generator": header.config.get("generator")}
        said = other_generator(extra, generator)
        if said is not None:
            by_generator.setdefault(said, []).append(Path(path))
    notes = []
    for said, paths in by_generator.items():
        if len(paths) > 1:
            what = (f"the inversions {paths[0].name} and {len(paths) - 1} more were made on "
                    f"generator {said}: their latents were")
        else:
            what = f"the inversion {paths[0].name} was made on generator {said}: its latents were"
        notes.append(f"{what} fitted through that generator and may render otherwise "
                     "through this one")
    return notes


def as_dtype(tensors: Mapping[str, Tensor], dtype: torch.dtype | None, path: str | Path,
             on_convert: Callable[[str], None] | None = None) -> dict[str, Tensor]:
    """An inversion file's tensors in ``dtype`` (``None``: as stored).  Latents and
    features are real numbers: an integer, bool or complex ``w_plus`` or ``feature_K`` is
    refused in one line naming the file and the tensor (an int64 ``w_plus`` is no inversion
    that was saved, and rendering it would fail inside the generator or, batched with float
    neighbours, pass silently); an encoder's ``extra_*`` tensors are its own business: only
    the floating ones are converted.  float16/bfloat16 → float32 is exact; a conversion that
    rounds (float64 → float32) is said through ``on_convert``."""
    out: dict[str, Tensor] = {}
    for name, tensor in tensors.items():
        if not tensor.is_floating_point() and name.startswith("extra_"):
            out[name] = tensor
            continue
        if not tensor.is_floating_point():
            raise CheckpointError(f"inversion file's {name!r} is {_dtype_name(tensor.dtype)}, "
                                  "not floating point (an inversion holds real-valued latents "
                                  "and features)", path=path)
        if dtype is not None and tensor.dtype != dtype:
            if on_convert is not None and torch.finfo(tensor.dtype).bits > torch.finfo(dtype).bits:
                on_convert(f"its {name} is {_dtype_name(tensor.dtype)}: rounded to "
                           f"{_dtype_name(dtype)}, the generator's dtype")
            tensor = tensor.to(dtype)
        out[name] = tensor
    return out


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def load_inversion(path: str | Path, *, device: str | torch.device = "cpu",
                   dtype: torch.dtype | None = torch.float32,
                   on_convert: Callable[[str], None] | None = None,
                   ) -> tuple[Inversion, CheckpointHeader]:
    """Read a file written by :func:`save_inversion` → (:class:`Inversion`, header).

    Every tensor comes back in ``dtype`` (default float32, the generator's; ``None`` keeps
    the stored dtype), whatever the file holds (a float16 file renders alone as it does in a
    folder of float32 ones); integer, bool and complex tensors are refused
    (:func:`as_dtype`, which also says, through ``on_convert``, when a conversion rounds)."""
    header, tensors = load_checkpoint(path, kind=KIND, device=device)
    if "w_plus" not in tensors:
        raise CheckpointError("inversion file has no 'w_plus' tensor", path=path)
    tensors = as_dtype(tensors, dtype, path, on_convert)
    mode = header.config.get("feature_mode", "replace")
    if mode not in ("replace", "shift"):
        raise CheckpointError(f"inversion file has an unknown feature_mode {mode!r}", path=path)
    features: dict[int, Tensor] = {}
    extras: dict[str, Tensor] = {}
    for name, tensor in tensors.items():
        if name == "w_plus":
            continue
        if name.startswith("feature_") and name.removeprefix("feature_").isdigit():
            features[int(name.removeprefix("feature_"))] = tensor
        elif name.startswith("extra_"):
            extras[name.removeprefix("extra_")] = tensor
        else:
            raise CheckpointError(f"inversion file has an unexpected tensor {name!r}", path=path)
    try:
        inversion = Inversion(w_plus=tensors["w_plus"], features=features, feature_mode=mode,
                              extras=extras)
    except ValueError as exc:
        raise CheckpointError(f"inversion file is inconsistent: {exc}", path=path) from None
    return inversion, header


def check_restorable(path: str | Path, header: CheckpointHeader, encoder: Encoder) -> None:
    """One-line error when the inversion in ``path`` had modifiers (its header says which
    activations) and ``encoder``, which would rebuild them, is not the one that made it."""
    layers = header.config.get("modifiers") or []
    if layers and encoder.name != header.plugin:
        raise CheckpointError(
            f"is an inversion of {header.plugin!r}, which rebuilds its change at activation(s) "
            f"{', '.join(map(str, layers))} when it is rendered: give --encoder "
            f"{header.config.get('encoder') or header.plugin} (the one it was saved with), not "
            f"{encoder.name!r}", path=path)


def select_inversion(inversion: Inversion, i: int) -> Inversion:
    """Sample ``i`` of a batched inversion, as a batch of one.  Its modifiers (functions of
    the whole batch) are left out: pass ``modifiers=sorted(inversion.modifiers)`` to
    :func:`save_inversion`, and the encoder rebuilds them on reading."""
    return Inversion(w_plus=inversion.w_plus[i:i + 1],
                     features={k: v[i:i + 1] for k, v in inversion.features.items()},
                     feature_mode=inversion.feature_mode,
                     extras={k: v[i:i + 1] if v.ndim and v.shape[0] == inversion.batch_size else v
                             for k, v in inversion.extras.items()})


__all__ = ["KIND", "LATENTS_SUFFIX", "as_dtype", "check_restorable", "load_inversion",
           "save_inversion", "select_inversion"]
