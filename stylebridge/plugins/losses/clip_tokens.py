"""CLIP encodings with intermediate tokens, for the CLIP losses of :mod:`stylebridge.plugins.losses.clip`.

:func:`clip_encode` (an image batch's L2-normalised embedding plus the patch tokens after
chosen visual-transformer blocks, :class:`EncodedImages`), :func:`clip_depth` and
:func:`check_clip_layers` (a loss's CLIP layer checked against each model's depth before
anything loads), and :func:`center_square`.  A helper module: it implements no hook and
registers no plugin (the losses and their ``register_losses`` stay in ``clip.py``, which
re-exports every name here).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from torch import Tensor

from stylebridge.core.interfaces import Loss
from stylebridge.errors import StylebridgeError
from stylebridge.plugins.nets.clip import ClipModel, import_open_clip


@dataclass
class EncodedImages:
    """CLIP encodings of a batch.

    ``embedding``: ``[B, D]``, L2-normalised.  ``tokens[layer]``: ``[B, N, C]`` output
    of visual transformer block ``layer`` (0-based) without the class token, not
    normalised.
    """

    embedding: Tensor
    tokens: dict[int, Tensor] = field(default_factory=dict)


def _vit(clip: ClipModel) -> Any:
    """The CLIP model's visual tower if it is open_clip's ``VisionTransformer`` (whose blocks'
    tokens ``difa_local`` reads), else ``None`` (e.g. a ModifiedResNet)."""
    import_open_clip()  # the package first, the caller's environment kept
    from open_clip.transformer import VisionTransformer

    visual = clip.model.visual
    return visual if isinstance(visual, VisionTransformer) else None


def clip_depth(name: str) -> int | None:
    """The number of transformer blocks of CLIP model ``name``'s image tower, read from its
    open_clip config (nothing is built or loaded); ``None`` when open_clip does not know the
    name or the tower is no vision transformer (:func:`load_clip` / :func:`clip_encode`
    then say so)."""
    open_clip = import_open_clip()
    cfg = open_clip.get_model_config(name) or {}
    layers = (cfg.get("vision_cfg") or {}).get("layers")
    return layers if isinstance(layers, int) and not isinstance(layers, bool) else None


class LossTermLike(Protocol):
    """A trainer's weighted loss as :func:`check_clip_layers` reads it (the training
    pipelines' ``LossTerm``; ``after``: the step it starts at, 0 from the first)."""

    name: str
    weight: float
    module: Loss
    after: int
    options: dict[str, Any]


def _term_spec(term: LossTermLike, layer: int | None = None) -> str:
    """A loss term as its spec, ``NAME:WEIGHT[:k=v,...]`` (with ``layer=`` replaced)."""
    options = {k: v for k, v in term.options.items() if not (layer is not None and k == "layer")}
    if term.after:
        options["after"] = term.after
    if layer is not None:
        options["layer"] = layer
    opts = ",".join(f"{k}={v}" for k, v in options.items())
    return f"{term.name}:{float(term.weight)!r}" + (f":{opts}" if opts else "")


def check_clip_layers(terms: Sequence[LossTermLike], clip_names: Sequence[str]) -> None:
    """One line, before any CLIP model (or the photos' encoder) is loaded, when a loss term
    (:class:`LossTermLike`: its module's :attr:`~Loss.clip_layers`) reads a CLIP block that a
    model in ``clip_names`` does not have: ``difa_local``'s default, block 3 (StyleDomain's
    ``clip_layer: 3`` for ViT-B, which has 12), failed after every model had loaded on a
    shallower CLIP (the tiny preset's has 1), naming no option.  The hint is the whole loss
    list (``--loss`` replaces the default one) with a ``layer=`` that fits."""
    depths = {name: clip_depth(name) for name in clip_names}
    for term in terms:
        for layer in term.module.clip_layers:
            for name, depth in depths.items():
                if depth is None or 0 <= layer < depth:
                    continue
                fit = max(0, min(layer, depth - 1))
                specs = [_term_spec(t, fit if t is term else None) for t in terms]
                raise StylebridgeError(
                    f"loss {term.name!r} reads CLIP layer {layer}, but {name} has {depth} "
                    f"transformer block(s) (layers 0..{depth - 1}): give the losses as "
                    f"{' '.join(specs)} (one --loss each, or losses=[...] from Python)")


def clip_encode(clip: ClipModel, images01: Tensor, layers: Iterable[int] = ()) -> EncodedImages:
    """Encode ``[B, 3, H, W]`` images in ``[0, 1]``; also capture the tokens after ``layers``.

    Gradients flow to ``images01`` (the CLIP weights are frozen by ``load_clip``).
    """
    layers = sorted(set(layers))
    vit = _vit(clip) if layers else None
    if layers and vit is None:
        raise StylebridgeError(f"CLIP model {clip.name!r} is not a vision transformer: its "
                               "intermediate tokens (difa_local) are not available")
    captured: dict[int, Tensor] = {}
    handles = []
    if vit is not None:
        blocks = vit.transformer.resblocks
        bad = [layer for layer in layers if not 0 <= layer < len(blocks)]
        if bad:
            raise StylebridgeError(f"CLIP layer {bad[0]} is out of range for {clip.name} "
                                   f"(0..{len(blocks) - 1}): give the loss a layer= in that "
                                   "range, e.g. difa_local:1.0:layer=0")
        # open_clip version probe (not a plugin capability): recent releases run the
        # transformer batch-first and say so; releases without the attribute run it
        # sequence-first
        batch_first = bool(getattr(vit.transformer, "batch_first", False))
        skip = 1  # the class token, which every open_clip VisionTransformer prepends

        def make_hook(layer: int) -> Any:
            def hook(module: Any, inputs: Any, output: Tensor) -> None:
                out = output if batch_first else output.transpose(0, 1)
                captured[layer] = out[:, skip:]
            return hook

        handles = [blocks[layer].register_forward_hook(make_hook(layer)) for layer in layers]
    try:
        embedding = clip.encode_images(images01)
    finally:
        for handle in handles:
            handle.remove()
    return EncodedImages(embedding=embedding, tokens=captured)


def center_square(images: Tensor) -> Tensor:
    """Central square crop of ``[..., H, W]`` (CLIP's CenterCrop after a shorter-side resize)."""
    h, w = images.shape[-2:]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return images[..., top:top + s, left:left + s]
