"""Converting NVlabs StyleGAN2-ADA networks to the rosinality layout.

Input: state dicts in NVlabs naming, as :func:`stylebridge.core.safe_pickle.module_state_dict`
returns them for a network pickle (stylegan2-ada-pytorch ``training/networks.py``,
or stylegan3's ``networks_stylegan2.py``, which has the same parameters), plus
the recorded ``init_kwargs`` when there are any.  Output: state dicts whose keys
and shapes are exactly those of rosinality's ``Generator`` / ``Discriminator``
(the FFHQ-1024 manifest in ``shared/fixtures/stylegan2``), including the
noise and FIR-kernel buffers.

Why plain copies suffice (read from NVlabs ``training/networks.py``,
``torch_utils/ops/conv2d_resample.py``, ``upfirdn2d.py``; rosinality ``model.py``)
---------------------------------------------------------------------------------

* ``FullyConnectedLayer`` stores ``weight = randn / lr_multiplier`` and the bias
  unscaled, and applies ``weight_gain = lr_multiplier / sqrt(in)`` and
  ``bias_gain = lr_multiplier`` at run time.  rosinality's ``EqualLinear`` stores
  ``randn / lr_mul`` and applies ``scale = lr_mul / sqrt(in)`` and ``bias * lr_mul``:
  the same numbers, provided ``lr_mlp`` equals the mapping ``lr_multiplier``
  (taken from ``init_kwargs``, default 0.01).  The affine layers (``bias_init=1``,
  lr 1) are rosinality's ``modulation`` layers (``bias_init=1``).
* ``SynthesisLayer`` applies no weight gain, rosinality's ``ModulatedConv2d``
  multiplies by ``1/sqrt(fan_in)``; demodulation divides any constant factor
  out again (only the ``1e-8`` inside the rsqrt sees it), so the weight is copied.
* Up-sampling conv, the "flip question": NVlabs ``SynthesisLayer(up=2)`` calls
  ``modulated_conv2d(flip_weight=False)``; ``conv2d_resample``'s ``up > 1`` branch
  then runs ``conv_transpose2d(stride=2, padding=0)`` with ``flip_weight=True``
  (i.e. the weight is *not* flipped) followed by ``upfirdn2d(f, pad=[1,1,1,1],
  gain=4)``.  rosinality runs ``conv_transpose2d(stride=2, padding=0)`` with the
  unflipped weight and then ``Blur(pad=(1,1), kernel*4)``.  Same operation: no
  flip.  (Consistently, both projects flip the TensorFlow weight when they
  import TF pickles.)  Checked numerically against NVlabs' code, see the tests.
* ``ToRGBLayer`` scales the *styles* by ``1/sqrt(in)`` (no demodulation);
  rosinality scales the weight by ``1/sqrt(in)``: the same product.
* Noise: NVlabs adds ``noise_const * noise_strength`` after the convolution and
  before bias + leaky ReLU (gain √2); rosinality's ``NoiseInjection`` adds
  ``weight * noise`` before ``FusedLeakyReLU(bias)``.  ``noise_strength`` (shape
  ``[]``) → ``noise.weight`` (``[1]``); ``noise_const`` ``[R, R]`` →
  ``noises.noise_K`` ``[1, 1, R, R]``.  A generator built with ``use_noise=False``
  gets zero noise strengths and zero noise buffers (exactly equivalent).
* Skip branch: ``upfirdn2d.upsample2d(img, f)`` pads (2, 1) with gain 4, as
  rosinality's ``Upsample`` (kernel × 4, pad (2, 1)).
* NVlabs' ``resample_filter`` buffers are dropped; rosinality's kernel buffers
  are produced: ``outer(k, k) / sum * 4`` for ``convs.{2i}.conv.blur.kernel``
  and ``to_rgbs.{i}.upsample.kernel``; ``outer(k, k) / sum`` (no gain) for the
  discriminator's ``convs.k.conv2.0.kernel`` and ``convs.k.skip.0.kernel``.
* ``conv_clamp`` (e.g. 256 in the ADA ``ffhq.pkl``) clamps activations in
  NVlabs' forward pass; rosinality has no clamp.  It is reported in the config.

Discriminator (``architecture='resnet'``, ``c_dim=0`` only):

* ``Conv2dLayer`` stores raw weights and applies ``1/sqrt(in*k*k)`` at run time,
  as ``EqualConv2d``; its bias is added before the leaky ReLU, as
  ``FusedLeakyReLU``'s bias (rosinality ``convs.k.conv1.1.bias`` …).
* ``conv1`` (``down=2``): ``upfirdn2d(f, pad=(2,2))`` then a stride-2 conv with
  ``flip_weight=True`` (correlation, like ``F.conv2d``) — rosinality's
  ``Blur(pad=(2,2))`` + ``EqualConv2d(stride=2)``.  ``skip`` (1×1, ``down=2``):
  ``upfirdn2d(f, down=2, pad=(1,1))`` then the 1×1 conv — ``Blur(pad=(1,1))`` +
  stride-2 1×1 conv.  NVlabs' ``gain=sqrt(0.5)`` on both branches equals
  rosinality's ``(out + skip) / sqrt(2)``.  No flips.
* Epilogue: minibatch-stddev with ``mbstd_group_size`` / ``mbstd_num_channels``
  (rosinality ``stddev_group`` / ``stddev_feat``, the same formula), ``conv`` →
  ``final_conv``, ``fc`` → ``final_linear.0`` (lrelu), ``out`` → ``final_linear.1``;
  all with lr multiplier 1, as ``EqualLinear``.  ``mbstd_group_size=None`` means
  "the whole minibatch" in NVlabs' code, which the rosinality layout cannot
  express; it is converted to 4 (the value TF StyleGAN2 used; NVlabs'
  ``legacy.py`` writes ``None`` for TF pickles whose kwargs omitted it) and noted.

The small helpers both converters share (checked tensors, FIR taps, the error context) live
in :mod:`stylebridge.core.stylegan2.nvlabs_state`, re-exported here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from stylebridge.core.safe_pickle import (
    PersistentObject,
    load_nvlabs_pickle,
    module_state_dict,
)
from stylebridge.core.stylegan2.nvlabs_state import (  # noqa: F401  (re-exported)
    DEFAULT_TAPS,
    _block_resolutions,
    _check_activation,
    _check_state,
    _check_unused,
    _Ctx,
    _kw,
    _make_kernel,
    _resolve_taps,
    _take,
    _taps_from_filter,
)

__all__ = [
    "NvlabsCheckpoint",
    "convert_nvlabs_discriminator",
    "convert_nvlabs_generator",
    "convert_nvlabs_pickle",
]

# ---------------------------------------------------------------------------
# Generator


def convert_nvlabs_generator(
    state: Mapping[str, Tensor],
    init_kwargs: Mapping[str, Any] | None = None,
    *,
    path: str | Path | None = None,
) -> tuple[dict[str, Tensor], dict[str, Any], Tensor | None]:
    """NVlabs ``Generator`` state dict → (rosinality ``g_ema`` state, config, ``latent_avg``).

    ``state`` uses NVlabs names (``mapping.fc0.weight``, ``synthesis.b4.const`` …).
    ``init_kwargs`` (the ``_init_kwargs`` NVlabs records) are used where they
    carry information the shapes do not (``mapping_kwargs.lr_multiplier``,
    ``synthesis_kwargs.conv_clamp`` / ``architecture`` / ``resample_filter``,
    ``c_dim``); without them the NVlabs defaults apply (lr 0.01, no clamp,
    ``'skip'``, ``[1,3,3,1]``).

    The mapping (no value changes besides reshapes; see the module docstring):
    ``mapping.fcN.*`` → ``style.{N+1}.*``; ``mapping.w_avg`` → ``latent_avg``;
    ``synthesis.b4.const`` → ``input.input`` (unsqueezed); ``b4.conv1`` →
    ``conv1``; ``b4.torgb`` → ``to_rgb1``; for block ``b{R}``, ``i = log2(R) - 3``:
    ``conv0`` → ``convs.{2i}``, ``conv1`` → ``convs.{2i+1}``, ``torgb`` →
    ``to_rgbs.{i}``, noise buffers → ``noises.noise_{2i+1}`` / ``noise_{2i+2}``.
    Per layer: ``weight`` → ``conv.weight`` (unsqueeze 0), ``affine.*`` →
    ``conv.modulation.*``, ``noise_strength`` → ``noise.weight`` [1], ``bias`` →
    ``activate.bias`` (ToRGB: ``bias`` [1,3,1,1]).

    The config is ``{"size", "style_dim", "n_mlp", "channels", "lr_mlp",
    "blur_kernel", "conv_clamp"}``.  ``latent_avg`` is ``[style_dim]`` or ``None``
    when the network tracks no average.  Returned tensors may share memory with
    ``state``.  Anything that is not an unconditional StyleGAN2 ``'skip'``
    generator with 3 colour channels raises a one-line :class:`ConversionError`.
    """
    ctx = _Ctx(path, "generator")
    state = _check_state(state, ctx)
    kw = init_kwargs if isinstance(init_kwargs, Mapping) else {}

    if any(re.match(r"^synthesis\.(L\d+_|input\.)", k) for k in state):
        raise ctx.error("is a StyleGAN3 generator (synthesis.input / synthesis.L*_ layers); only "
                        "StyleGAN2 generators can be converted")
    if "synthesis.b4.const" not in state or "mapping.fc0.weight" not in state:
        raise ctx.error("is not an NVlabs StyleGAN2 generator (no 'synthesis.b4.const' / "
                        "'mapping.fc0.weight')")
    c_dim = int(_kw(kw, "c_dim", default=0) or 0)
    if c_dim > 0 or "mapping.embed.weight" in state:
        shown = c_dim if c_dim > 0 else int(state["mapping.embed.weight"].shape[1])
        raise ctx.error(f"is class-conditional (c_dim={shown}); only unconditional "
                        "generators can be converted")
    arch = _kw(kw, "synthesis_kwargs", "architecture", default="skip")
    if arch != "skip":
        raise ctx.error(f"has synthesis architecture {arch!r}; only 'skip' (config-f) "
                        "can be converted")
    _check_activation(kw, [("mapping_kwargs", "activation"), ("synthesis_kwargs", "activation")],
                      ctx)
    img_channels = int(_kw(kw, "img_channels", default=3))
    if img_channels != 3:
        raise ctx.error(f"has img_channels={img_channels}; only RGB (3) is supported")

    resolutions = _block_resolutions(state, r"^synthesis\.b(\d+)\.", ctx)
    size = resolutions[-1]
    want_res = _kw(kw, "img_resolution")
    if want_res is not None and int(want_res) != size:
        raise ctx.error(f"has init_kwargs img_resolution={want_res} but blocks up to {size}")
    for r in resolutions:
        if f"synthesis.b{r}.skip.weight" in state:
            raise ctx.error("has residual synthesis blocks (architecture 'resnet'); only 'skip' "
                            "can be converted")
        if f"synthesis.b{r}.torgb.weight" not in state:
            raise ctx.error(f"has no ToRGB at {r}x{r} (architecture 'orig'?); only 'skip' "
                            "can be converted")

    used: set[str] = set()
    mapping: dict[str, Tensor] = {}

    # Mapping network.
    n_mlp = len({m.group(1) for k in state if (m := re.match(r"^mapping\.fc(\d+)\.weight$", k))})
    fc0 = state["mapping.fc0.weight"]
    if fc0.ndim != 2:
        raise ctx.error(f"has 'mapping.fc0.weight' of shape {list(fc0.shape)}, expected 2-D")
    style_dim = int(fc0.shape[0])
    if int(fc0.shape[1]) != style_dim:
        raise ctx.error(f"has z_dim={int(fc0.shape[1])} != w_dim={style_dim}; the rosinality "
                        "layout needs equal latent sizes")
    for name in ("z_dim", "w_dim"):
        value = _kw(kw, name)
        if value is not None and int(value) != style_dim:
            raise ctx.error(f"has init_kwargs {name}={value} but mapping layers of "
                            f"width {style_dim}")
    for i in range(n_mlp):
        mapping[f"style.{i + 1}.weight"] = _take(state, f"mapping.fc{i}.weight",
                                                 [style_dim, style_dim], used, ctx)
        mapping[f"style.{i + 1}.bias"] = _take(state, f"mapping.fc{i}.bias", [style_dim],
                                               used, ctx)
    latent_avg = (_take(state, "mapping.w_avg", [style_dim], used, ctx)
                  if "mapping.w_avg" in state else None)
    lr_mlp = float(_kw(kw, "mapping_kwargs", "lr_multiplier", default=0.01))
    conv_clamp = _kw(kw, "synthesis_kwargs", "conv_clamp")

    # Channel widths.
    const = state["synthesis.b4.const"]
    if const.ndim != 3 or list(const.shape[1:]) != [4, 4]:
        raise ctx.error(f"has 'synthesis.b4.const' of shape {list(const.shape)}, expected [C, 4, 4]")
    channels = {4: int(const.shape[0])}
    for r in resolutions[1:]:
        w = state.get(f"synthesis.b{r}.conv1.weight")
        if w is None or w.ndim != 4:
            raise ctx.error(f"lacks a 4-D 'synthesis.b{r}.conv1.weight'")
        channels[r] = int(w.shape[0])

    filter_keys = [k for k in state if k.endswith("resample_filter")]
    taps = _resolve_taps(state, filter_keys,
                         _kw(kw, "synthesis_kwargs", "resample_filter"), ctx)
    up_kernel = _make_kernel(taps, gain=4.0)

    head: dict[str, Tensor] = {}
    convs: dict[str, Tensor] = {}
    rgbs: dict[str, Tensor] = {}
    noises: dict[str, Tensor] = {}

    def styled(dst: dict[str, Tensor], prefix: str, target: str, cin: int, cout: int,
               res: int, noise_idx: int) -> None:
        dst[f"{target}.conv.weight"] = _take(state, f"{prefix}.weight", [cout, cin, 3, 3],
                                             used, ctx).unsqueeze(0)
        if prefix.endswith(".conv0"):  # the up-sampling conv carries rosinality's Blur
            dst[f"{target}.conv.blur.kernel"] = up_kernel.clone()
        dst[f"{target}.conv.modulation.weight"] = _take(state, f"{prefix}.affine.weight",
                                                        [cin, style_dim], used, ctx)
        dst[f"{target}.conv.modulation.bias"] = _take(state, f"{prefix}.affine.bias", [cin],
                                                      used, ctx)
        has_strength = f"{prefix}.noise_strength" in state
        if has_strength != (f"{prefix}.noise_const" in state):
            raise ctx.error(f"has only one of noise_strength / noise_const in {prefix}")
        if has_strength:
            dst[f"{target}.noise.weight"] = _take(state, f"{prefix}.noise_strength", [], used,
                                                  ctx).reshape(1)
            noises[f"noises.noise_{noise_idx}"] = _take(
                state, f"{prefix}.noise_const", [res, res], used, ctx).reshape(1, 1, res, res)
        else:  # use_noise=False: zero strength is exactly "no noise"
            dst[f"{target}.noise.weight"] = torch.zeros(1)
            noises[f"noises.noise_{noise_idx}"] = torch.zeros(1, 1, res, res)
        dst[f"{target}.activate.bias"] = _take(state, f"{prefix}.bias", [cout], used, ctx)

    def to_rgb(dst: dict[str, Tensor], prefix: str, target: str, cin: int) -> None:
        dst[f"{target}.bias"] = _take(state, f"{prefix}.bias", [3], used, ctx).reshape(1, 3, 1, 1)
        if target != "to_rgb1":  # every ToRGB but the first up-samples the skip image
            dst[f"{target}.upsample.kernel"] = up_kernel.clone()
        dst[f"{target}.conv.weight"] = _take(state, f"{prefix}.weight", [3, cin, 1, 1],
                                             used, ctx).unsqueeze(0)
        dst[f"{target}.conv.modulation.weight"] = _take(state, f"{prefix}.affine.weight",
                                                        [cin, style_dim], used, ctx)
        dst[f"{target}.conv.modulation.bias"] = _take(state, f"{prefix}.affine.bias", [cin],
                                                      used, ctx)

    c4 = channels[4]
    head["input.input"] = _take(state, "synthesis.b4.const", [c4, 4, 4], used, ctx).unsqueeze(0)
    styled(head, "synthesis.b4.conv1", "conv1", c4, c4, 4, 0)
    to_rgb(head, "synthesis.b4.torgb", "to_rgb1", c4)
    for i, r in enumerate(resolutions[1:]):
        cin, cout = channels[r // 2], channels[r]
        styled(convs, f"synthesis.b{r}.conv0", f"convs.{2 * i}", cin, cout, r, 2 * i + 1)
        styled(convs, f"synthesis.b{r}.conv1", f"convs.{2 * i + 1}", cout, cout, r, 2 * i + 2)
        to_rgb(rgbs, f"synthesis.b{r}.torgb", f"to_rgbs.{i}", cout)
    _check_unused(state, used, ctx, "not a StyleGAN2 config-f generator")

    # rosinality's registration order: style, input, conv1, to_rgb1, convs, to_rgbs, noises
    result = {**mapping, **head, **convs, **rgbs, **noises}
    config: dict[str, Any] = {
        "size": size,
        "style_dim": style_dim,
        "n_mlp": n_mlp,
        "channels": channels,
        "lr_mlp": lr_mlp,
        "blur_kernel": list(taps),
        "conv_clamp": None if conv_clamp is None else float(conv_clamp),
    }
    return result, config, latent_avg


# ---------------------------------------------------------------------------
# Discriminator


def convert_nvlabs_discriminator(
    state: Mapping[str, Tensor],
    init_kwargs: Mapping[str, Any] | None = None,
    *,
    path: str | Path | None = None,
    notes: list[str] | None = None,
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """NVlabs residual ``Discriminator`` state dict → (rosinality ``d`` state, config).

    ``b{size}.fromrgb`` → ``convs.0.0.weight`` / ``convs.0.1.bias``; block ``b{R}``
    is ``convs.k`` with ``k = log2(size / R) + 1``: ``conv0`` → ``conv1.0.weight`` /
    ``conv1.1.bias``, ``conv1`` → ``conv2.1.weight`` / ``conv2.2.bias``, ``skip`` →
    ``skip.1.weight``, plus the FIR buffers ``conv2.0.kernel`` and
    ``skip.0.kernel`` (``outer(k, k) / sum``, no gain).  ``b4.conv`` →
    ``final_conv.0.weight`` / ``final_conv.1.bias``, ``b4.fc`` → ``final_linear.0``,
    ``b4.out`` → ``final_linear.1``.  Values are copied unchanged (see the module
    docstring).

    The config is ``{"size", "channels", "stddev_group", "stddev_feat",
    "blur_kernel"}``.  Conditional discriminators (``c_dim > 0``, a ``mapping``
    network, ``cmap_dim`` outputs) and architectures other than ``'resnet'`` are
    refused with a one-line :class:`ConversionError`.  ``notes`` (if given)
    receives human-readable remarks about lossy choices.
    """
    ctx = _Ctx(path, "discriminator")
    state = _check_state(state, ctx)
    kw = init_kwargs if isinstance(init_kwargs, Mapping) else {}

    c_dim = int(_kw(kw, "c_dim", default=0) or 0)
    if c_dim > 0 or any(k.startswith("mapping.") for k in state):
        raise ctx.error(f"is class-conditional (c_dim={c_dim or '>0'}); only unconditional "
                        "discriminators can be converted")
    if "b4.out.weight" not in state or "b4.conv.weight" not in state:
        raise ctx.error("is not an NVlabs StyleGAN2 discriminator (no 'b4.conv' / 'b4.out')")
    if int(state["b4.out.weight"].shape[0]) != 1:
        raise ctx.error(f"has {int(state['b4.out.weight'].shape[0])} outputs (a projection "
                        "discriminator?); only unconditional ones can be converted")
    arch = _kw(kw, "architecture", default="resnet")
    if arch != "resnet":
        raise ctx.error(f"has architecture {arch!r}; only 'resnet' can be converted")
    _check_activation(kw, [("block_kwargs", "activation"), ("epilogue_kwargs", "activation")],
                      ctx)
    img_channels = int(_kw(kw, "img_channels", default=3))
    if img_channels != 3:
        raise ctx.error(f"has img_channels={img_channels}; only RGB (3) is supported")

    resolutions = _block_resolutions(state, r"^b(\d+)\.", ctx)
    size = resolutions[-1]
    if size < 8:
        raise ctx.error(f"has input resolution {size}; at least 8 is needed")
    want_res = _kw(kw, "img_resolution")
    if want_res is not None and int(want_res) != size:
        raise ctx.error(f"has init_kwargs img_resolution={want_res} but blocks up to {size}")
    for r in resolutions:
        if r != size and f"b{r}.fromrgb.weight" in state:
            raise ctx.error(f"has a FromRGB at {r}x{r} (architecture 'skip'); only 'resnet' "
                            "can be converted")
        if r > 4 and f"b{r}.skip.weight" not in state:
            raise ctx.error(f"has no residual skip at {r}x{r} (architecture 'orig'?); only "
                            "'resnet' can be converted")

    channels: dict[int, int] = {}
    for r in resolutions[1:]:
        w = state.get(f"b{r}.conv0.weight")
        if w is None or w.ndim != 4:
            raise ctx.error(f"lacks a 4-D 'b{r}.conv0.weight'")
        channels[r] = int(w.shape[0])
    channels[4] = int(state["b4.conv.weight"].shape[0])

    filter_keys = [k for k in state if k.endswith("resample_filter")]
    taps = _resolve_taps(state, filter_keys, _kw(kw, "block_kwargs", "resample_filter"), ctx)
    kernel = _make_kernel(taps)

    used: set[str] = set()
    out: dict[str, Tensor] = {}
    top = channels[size]
    out["convs.0.0.weight"] = _take(state, f"b{size}.fromrgb.weight", [top, 3, 1, 1], used, ctx)
    out["convs.0.1.bias"] = _take(state, f"b{size}.fromrgb.bias", [top], used, ctx)
    for k, r in enumerate(reversed(resolutions[1:]), start=1):
        cin, cout = channels[r], channels[r // 2]
        p, t = f"b{r}", f"convs.{k}"
        out[f"{t}.conv1.0.weight"] = _take(state, f"{p}.conv0.weight", [cin, cin, 3, 3], used, ctx)
        out[f"{t}.conv1.1.bias"] = _take(state, f"{p}.conv0.bias", [cin], used, ctx)
        out[f"{t}.conv2.0.kernel"] = kernel.clone()
        out[f"{t}.conv2.1.weight"] = _take(state, f"{p}.conv1.weight", [cout, cin, 3, 3], used,
                                           ctx)
        out[f"{t}.conv2.2.bias"] = _take(state, f"{p}.conv1.bias", [cout], used, ctx)
        out[f"{t}.skip.0.kernel"] = kernel.clone()
        out[f"{t}.skip.1.weight"] = _take(state, f"{p}.skip.weight", [cout, cin, 1, 1], used, ctx)

    c4 = channels[4]
    conv_w = state["b4.conv.weight"]
    stddev_feat = int(conv_w.shape[1]) - c4
    if stddev_feat < 1:
        raise ctx.error("has no minibatch-stddev channel (mbstd_num_channels=0); the rosinality "
                        "layout always has one")
    want_feat = _kw(kw, "epilogue_kwargs", "mbstd_num_channels")
    if want_feat is not None and int(want_feat) != stddev_feat:
        raise ctx.error(f"has init_kwargs mbstd_num_channels={want_feat} but 'b4.conv.weight' "
                        f"has {stddev_feat} extra input channel(s)")
    if c4 % stddev_feat:
        raise ctx.error(f"has mbstd_num_channels={stddev_feat}, which does not divide its {c4} channels")
    group = _kw(kw, "epilogue_kwargs", "mbstd_group_size")
    if group is None:
        if isinstance(_kw(kw, "epilogue_kwargs"), Mapping) and notes is not None:
            notes.append("discriminator mbstd_group_size=None (whole minibatch) converted to 4")
        group = 4
    out["final_conv.0.weight"] = _take(state, "b4.conv.weight", [c4, c4 + stddev_feat, 3, 3],
                                       used, ctx)
    out["final_conv.1.bias"] = _take(state, "b4.conv.bias", [c4], used, ctx)
    out["final_linear.0.weight"] = _take(state, "b4.fc.weight", [c4, c4 * 16], used, ctx)
    out["final_linear.0.bias"] = _take(state, "b4.fc.bias", [c4], used, ctx)
    out["final_linear.1.weight"] = _take(state, "b4.out.weight", [1, c4], used, ctx)
    out["final_linear.1.bias"] = _take(state, "b4.out.bias", [1], used, ctx)
    _check_unused(state, used, ctx, "not a StyleGAN2 residual discriminator")

    config: dict[str, Any] = {
        "size": size,
        "channels": dict(sorted(channels.items())),
        "stddev_group": int(group),
        "stddev_feat": stddev_feat,
        "blur_kernel": list(taps),
    }
    return out, config


# ---------------------------------------------------------------------------
# Whole pickle


@dataclass
class NvlabsCheckpoint:
    """An NVlabs network pickle, converted to the rosinality layout."""

    g_ema: dict[str, Tensor]
    config: dict[str, Any]
    latent_avg: Tensor | None
    g: dict[str, Tensor] | None = None
    d: dict[str, Tensor] | None = None
    d_config: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def _net(data: Mapping[str, Any], key: str) -> PersistentObject | None:
    value = data.get(key)
    return value if isinstance(value, PersistentObject) else None


def convert_nvlabs_pickle(path: str | Path, *, discriminator: bool = True) -> NvlabsCheckpoint:
    """Load an NVlabs ``.pkl`` safely (no code runs) and convert ``G_ema`` (+ ``G``, ``D``)."""
    path = Path(path)
    data = load_nvlabs_pickle(path)
    g_ema_obj = _net(data, "G_ema")
    assert g_ema_obj is not None  # load_nvlabs_pickle guarantees it
    notes: list[str] = []
    g_ema, config, latent_avg = convert_nvlabs_generator(
        module_state_dict(g_ema_obj), g_ema_obj.init_kwargs, path=path)
    if config["conv_clamp"] is not None:
        notes.append(f"generator conv_clamp={config['conv_clamp']:g} (activations are clamped "
                     "in NVlabs' forward pass)")
    if latent_avg is None:
        notes.append("the generator tracks no w average (mapping.w_avg); latent_avg is None")
    g = None
    g_obj = _net(data, "G")
    if g_obj is not None:
        g, _, _ = convert_nvlabs_generator(module_state_dict(g_obj), g_obj.init_kwargs, path=path)
    d = d_config = None
    d_obj = _net(data, "D")
    if discriminator and d_obj is not None:
        d, d_config = convert_nvlabs_discriminator(module_state_dict(d_obj), d_obj.init_kwargs,
                                                   path=path, notes=notes)
    return NvlabsCheckpoint(g_ema=g_ema, config=config, latent_avg=latent_avg, g=g, d=d,
                            d_config=d_config, notes=notes)
