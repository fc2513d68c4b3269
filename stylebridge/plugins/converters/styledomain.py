"""The ``styledomain`` converter: StyleDomain checkpoints → stylebridge domain methods.

Reads SimilarDomains' StyleSpace ``.pt`` files (``s_delta``) into ``stylespace`` and
DissimilarDomains' StyleGAN2-ADA pickles into ``stylespace`` / ``affine_plus`` /
``affinelight_plus`` (pickled code never runs).  Index convention and the ToRGB scale:
:mod:`stylebridge.plugins.domains.base`.
"""

from __future__ import annotations

import math
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from stylebridge.core.checkpoint import check_state_dict
from stylebridge.core.interfaces import ConversionResult, Converter
from stylebridge.core.safe_pickle import PersistentObject, load_nvlabs_pickle, module_state_dict
from stylebridge.core.stylegan2.nvlabs import convert_nvlabs_generator
from stylebridge.core.stylegan2.rosinality import torch_load_safe
from stylebridge.errors import ConversionError
from stylebridge.plugins.converters.parametrization import (
    check_img_size,
    conv_heads_layout,
    parametrization_extra,
    parametrization_state,
    sg2_params,
    take_style_latents,
)
from stylebridge.plugins.domains.affine import AffineLightPlus, AffinePlus
from stylebridge.plugins.domains.base import (
    KIND,
    LayerShape,
    StyleDomainMethod,
    generator_layout,
    make_generator_config,
)
from stylebridge.plugins.domains.stylespace import StyleSpace
from stylebridge.registry import hookimpl

SIMILAR_LICENCE = ("licence: StyleDomain's SimilarDomains ships no licence for its trained offsets "
                   "(check with the authors before redistributing); they were trained on NVIDIA's "
                   "StyleGAN2 FFHQ weights (NVIDIA Source Code License-NC, non-commercial)")
DISSIMILAR_LICENCE = ("licence: StyleDomain's DissimilarDomains is under the NVIDIA Source Code "
                      "License for StyleGAN2-ADA (non-commercial use); the converted file keeps it")


#: the domain methods this converter writes, by registered name
METHODS: dict[str, type[StyleDomainMethod]] = {
    cls.name: cls for cls in (StyleSpace, AffinePlus, AffineLightPlus)}


# ---------------------------------------------------------------------------------------------
# Converter: SimilarDomains (.pt, s_delta)

_HEAD_RX = re.compile(r"^heads\.conv_(\d+)\.params_in$")
_NV_HEAD_RX = re.compile(r"^heads\.b(\d+)\.(conv0|conv1)$")


def _head_width(value: Any, key: str, path: Path | None) -> int:
    if not isinstance(value, Tensor) or value.ndim != 2 or value.shape[0] != 1:
        shape = list(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ConversionError(f"head {key} is {shape}, expected [1, C]", path=path)
    if not value.is_floating_point():
        raise ConversionError(f"head {key} has dtype {value.dtype}, expected floating point",
                              path=path)
    return int(value.shape[1])


def similar_domains_offsets(state: Mapping[str, Any], *, style_dim: int = 512,
                            path: Path | None = None) -> tuple[dict[str, Any], dict[int, Tensor]]:
    """SimilarDomains ``s_delta`` state dict → (generator description, style index → Δ [C]).

    Two layouts: ``BaseParametrization`` (``heads.conv_{k}.params_in`` [1, C],
    k = 0 … 16; conv_0 = ``conv1``, conv_k = ``convs[k-1]``) and
    ``SG2NvidiaSDeltaOffsets`` (``heads.b4.conv1``, ``heads.b{R}.conv0|conv1``).
    The channel widths are read from the shapes (each head is the *input*
    width of its conv); works on meta tensors.
    """
    keys = list(state)
    conv = {int(m.group(1)): k for k in keys if (m := _HEAD_RX.match(k))}
    nv = {(int(m.group(1)), m.group(2)): k for k in keys if (m := _NV_HEAD_RX.match(k))}
    if conv and nv:
        raise ConversionError("mixes heads.conv_* and heads.b* StyleSpace heads", path=path)
    used = set(conv.values()) | set(nv.values())
    unexpected = sorted(set(keys) - used)
    if unexpected:
        shown = ", ".join(unexpected[:3]) + (f" (+{len(unexpected) - 3} more)" if len(unexpected) > 3 else "")
        raise ConversionError(f"has tensors that are not s_delta heads: {shown}", path=path)
    # widths of the conv layers in execution order (conv1, convs[0], convs[1], ...)
    widths: list[tuple[str, int]] = []
    if conv:
        n = len(conv)
        if sorted(conv) != list(range(n)):
            missing = sorted(set(range(max(conv) + 1)) - set(conv))
            raise ConversionError(f"lacks StyleSpace heads conv_{missing}", path=path)
        widths = [(conv[k], _head_width(state[conv[k]], conv[k], path)) for k in range(n)]
    elif nv:
        res = sorted({r for r, _ in nv})
        expected = [2 ** i for i in range(2, res[-1].bit_length())]
        want = {(4, "conv1")} | {(r, c) for r in expected[1:] for c in ("conv0", "conv1")}
        if set(nv) != want:
            missing = [f"b{r}.{c}" for r, c in sorted(want - set(nv))]
            extra = [f"b{r}.{c}" for r, c in sorted(set(nv) - want)]
            what = f"lacks heads {missing[:4]}" if missing else f"has unexpected heads {extra[:4]}"
            raise ConversionError(f"is not a StyleGAN2 StyleSpace layout: {what}", path=path)
        widths = [(nv[(4, "conv1")], _head_width(state[nv[(4, "conv1")]], "b4.conv1", path))]
        for r in expected[1:]:
            for c in ("conv0", "conv1"):
                widths.append((nv[(r, c)], _head_width(state[nv[(r, c)]], f"b{r}.{c}", path)))
    else:
        raise ConversionError("has no StyleSpace heads (heads.conv_{k}.params_in)", path=path)
    desc, conv_idx = conv_heads_layout(widths, style_dim, path)
    offsets = {conv_idx[k]: state[key].reshape(-1) for k, (key, _) in enumerate(widths)}
    return desc, offsets


def _convert_similar(src: Path, dst: Path, options: Mapping[str, Any]) -> ConversionResult:
    ck = torch_load_safe(src)
    notes: list[str] = []
    state, patch_key = parametrization_state(
        ck, options, src, what="SimilarDomains",
        hint="s_delta and s_mod share the key layout); pass -o patch_key=s_delta if it is StyleSpace")
    if patch_key != "s_delta":
        hint = (" (domain modulation: `stylebridge convert hyperdomainnet`)"
                if patch_key == "cin_mult" else "")
        raise ConversionError(f"holds a {patch_key!r} parameterisation; only StyleSpace ('s_delta') "
                              f"can be converted here{hint}", path=src)
    sg2 = sg2_params(ck)
    style_dim = int(sg2.get("latent_size", Converter.option(options, "style_dim", int, 512, src)))
    desc, offsets = similar_domains_offsets(state, style_dim=style_dim, path=src)
    check_img_size(ck, desc, src)
    method = StyleSpace(**desc, torgb=False)
    tensors = {f"offsets.{i}": t.detach().float() for i, t in offsets.items()}
    check_state_dict(src, {k: v.shape for k, v in method.state_dict().items()}, tensors,
                     what="StyleSpace domain", error=ConversionError)
    method.load_state_dict(tensors, strict=True)
    extra: dict[str, Any] = {"source": "AIRI-Institute/StyleDomain SimilarDomains",
                             **parametrization_extra(ck, src, notes), "patch_key": patch_key}
    take_style_latents(method, extra, src)  # an image domain renders with them (ReferenceRows)
    zero = [i for i, t in offsets.items() if not bool(t.ne(0).any())]
    if zero:
        notes.append(f"style layers {zero} have all-zero offsets (frozen during training, e.g. "
                     "no_coarse)")
    notes.append(SIMILAR_LICENCE)
    extra["notes"] = notes
    extra["licence"] = SIMILAR_LICENCE
    method.save(dst, extra=extra)
    return ConversionResult(path=dst, kind=KIND, plugin=method.name, n_tensors=len(tensors),
                            notes=tuple(notes))


# ---------------------------------------------------------------------------------------------
# Converter: DissimilarDomains (StyleGAN2-ADA pickles)

_NV_LAYER_RX = re.compile(r"^synthesis\.b(\d+)\.(conv0|conv1|torgb)\.(.+)$")
_S_SUFFIX = re.compile(r"^(offset|offset_mask|ones)$")
_W_SUFFIX = re.compile(r"^(weights_offset|ones_weights|weights_offset_(in|out)_\d+)$")
_A_SUFFIX = re.compile(r"^affine\.(ones_weights|weights_offset_(in|out)_\d+)$")
_AFFINE_RANK_RX = re.compile(r"^affine_out_in_(\d+)_(\d+)_additive$")
S_PARAMETRIZATIONS = ("multiplicative", "additive", "multiplicative_w_space", "additive_w_space")


@dataclass
class Parametrization:
    """How one DissimilarDomains layer applies its domain tensors (``None`` = not used)."""

    s: str | None = None
    weights: str | None = None
    affine: str | None = None

    @classmethod
    def from_list(cls, names: Sequence[str]) -> Parametrization:
        out = cls()
        for name in names:
            if name in S_PARAMETRIZATIONS:
                out.s = name
            elif name.startswith("affine_"):
                out.affine = name
            elif name:
                out.weights = name
        return out


def _nv_style_index(res: int, layer: str, path: Path | None) -> int:
    if res == 4:
        if layer == "conv0":
            raise ConversionError("has a b4.conv0 layer, which StyleGAN2 does not", path=path)
        return 0 if layer == "conv1" else 1
    j = int(math.log2(res)) - 3
    return 2 + 3 * j + {"conv0": 0, "conv1": 1, "torgb": 2}[layer]


@dataclass
class DissimilarDomain:
    """What :func:`dissimilar_domains_tensors` found: a method, its config and tensors."""

    method: str
    config: dict[str, Any]
    tensors: dict[str, Tensor]
    notes: list[str]
    parametrizations: dict[str, str]


def _layer_parametrizations(g: Any, default: Parametrization) -> dict[tuple[int, str], Parametrization]:
    """Per-layer parametrisation strings recorded in the pickled layer state (if any)."""
    out: dict[tuple[int, str], Parametrization] = {}
    if not isinstance(g, PersistentObject):
        return out
    synthesis = g.submodules().get("synthesis")
    if not isinstance(synthesis, PersistentObject):
        return out
    for bname, block in synthesis.submodules().items():
        m = re.match(r"^b(\d+)$", str(bname))
        if not m or not isinstance(block, PersistentObject):
            continue
        for lname, layer in block.submodules().items():
            if lname not in ("conv0", "conv1", "torgb") or not isinstance(layer, PersistentObject):
                continue
            p = Parametrization(default.s, default.weights, default.affine)
            st = layer.state
            if "domain_modulation_parametrization" in st or "use_domain_modulation" in st:
                p.s = st.get("domain_modulation_parametrization")
                p.weights = st.get("weights_domain_modulation_parametrization")
                affine = layer.submodules().get("affine")
                if isinstance(affine, PersistentObject):
                    p.affine = affine.state.get("affine_weights_domain_modulation_parametrization")
            out[(int(m.group(1)), str(lname))] = p
    return out


def _global_parametrization(init_kwargs: Mapping[str, Any]) -> tuple[Parametrization, list[str]]:
    synth = init_kwargs.get("synthesis_kwargs") if isinstance(init_kwargs, Mapping) else None
    synth = synth if isinstance(synth, Mapping) else {}
    parts = synth.get("generator_requires_grad_parts") or []
    parts = [str(p) for p in parts] if isinstance(parts, list | tuple) else [str(parts)]
    if not synth.get("use_domain_modulation", False):
        return Parametrization(), parts
    names = str(synth.get("domain_modulation_parametrization") or "multiplicative").split(",")
    return Parametrization.from_list([n.strip() for n in names]), parts


def dissimilar_domains_tensors(
    state: Mapping[str, Tensor],
    init_kwargs: Mapping[str, Any] | None = None,
    layer_params: Mapping[tuple[int, str], Parametrization] | None = None,
    *,
    method: str | None = None,
    path: Path | None = None,
) -> DissimilarDomain:
    """A DissimilarDomains ``G_ema`` state dict (NVlabs names) → one of our domain methods.

    Detection: ``*.offset`` tensors → ``stylespace`` (parametrisation
    ``additive`` only; offsets × ``offset_mask``; ToRGB offsets × sqrt(C_in)
    because NVlabs adds them after the ToRGB gain); ``*.affine.weights_offset_*``
    → ``affinelight_plus`` (``affine_out_in_K_T_additive``; the T rank-K terms
    are stacked into rank K·T with ``U`` divided by T); otherwise conv
    ``weights_offset`` or ``synt_affine``/``tRGB_affine`` in the recorded
    ``generator_requires_grad_parts`` → ``affine_plus`` (the pickle's affine
    layers are the tuned ones).  Conv weight offsets (``*_additive``;
    ``[out, in, 1, 1]`` or low-rank ``out_in_K…`` pairs) become
    ``weight_offsets``.  Works on meta tensors (shape checks of full-size
    layouts).  Parametrisations come from ``layer_params`` (the pickled layer
    state) or the recorded ``synthesis_kwargs``.
    """
    kw = dict(init_kwargs or {})
    default, parts = _global_parametrization(kw)
    layer_params = dict(layer_params or {})
    domain: dict[tuple[int, str], dict[str, Tensor]] = {}
    base: dict[str, Tensor] = {}
    for key, value in state.items():
        m = _NV_LAYER_RX.match(key)
        if m and (_S_SUFFIX.match(m.group(3)) or _W_SUFFIX.match(m.group(3))
                  or _A_SUFFIX.match(m.group(3))):
            domain.setdefault((int(m.group(1)), m.group(2)), {})[m.group(3)] = value
        else:
            base[key] = value
    _, g_config, _ = convert_nvlabs_generator(base, kw, path=path)
    cfg = make_generator_config(g_config["size"], g_config["style_dim"], g_config["channels"])
    layout = generator_layout(cfg)
    desc = {"size": cfg.size, "style_dim": cfg.style_dim,
            "channels": {str(r): c for r, c in cfg.channels.items()}}

    def param(loc: tuple[int, str]) -> Parametrization:
        return layer_params.get(loc, default)

    has_s = any("offset" in d for d in domain.values())
    has_a = any(any(k.startswith("affine.weights_offset_") for k in d) for d in domain.values())
    has_w = any(any(k == "weights_offset" or k.startswith("weights_offset_") for k in d)
                for d in domain.values())
    tuned_affine = any(p in ("synt_affine", "tRGB_affine", "all") for p in parts)
    if has_s and has_a:
        raise ConversionError("combines StyleSpace offsets with low-rank affine offsets, which no "
                              "single domain method here holds", path=path)
    detected = ("stylespace" if has_s else "affinelight_plus" if has_a
                else "affine_plus" if (has_w or tuned_affine) else None)
    notes: list[str] = []
    if method is not None and method not in METHODS:
        raise ConversionError(f"unknown method {method!r} (known: {', '.join(METHODS)})", path=path)
    if detected is None:
        if method != "affine_plus":
            raise ConversionError(
                "has no StyleDomain parameters (no offset / weights_offset / "
                "affine.weights_offset_* tensors); if its affine layers were fine-tuned, convert "
                "with -o method=affine_plus", path=path)
        detected = "affine_plus"
    elif method is not None and method != detected:
        raise ConversionError(f"holds a {detected} domain, not {method}", path=path)

    tensors: dict[str, Tensor] = {}
    used_params: dict[str, str] = {}
    config: dict[str, Any] = dict(desc)

    def index_of(loc: tuple[int, str]) -> int:
        return _nv_style_index(loc[0], loc[1], path)

    # conv weight offsets (any method)
    weight_layers: list[int] = []
    for loc, items in sorted(domain.items()):
        keys = [k for k in items if k == "weights_offset" or k.startswith("weights_offset_")]
        if not keys:
            continue
        name = param(loc).weights
        label = f"b{loc[0]}.{loc[1]}"
        if name is None:
            raise ConversionError(f"{label} has weight offsets but the pickle does not say how they "
                                  "are applied (no weights parametrisation recorded)", path=path)
        if not name.endswith("additive") or name.startswith("out+in"):
            raise ConversionError(f"{label} uses weight parametrisation {name!r}; only additive "
                                  "ones (e.g. 'out_in_additive') can be converted", path=path)
        layer = layout[index_of(loc)]
        full = (layer.out_ch, layer.in_ch, 1, 1)
        if "weights_offset" in items:
            off = items["weights_offset"]
            if off.ndim != 4 or tuple(off.shape[2:]) != (1, 1) or any(
                    s not in (1, f) for s, f in zip(off.shape[:2], full[:2], strict=True)):
                raise ConversionError(f"{label}.weights_offset has shape {list(off.shape)}; only "
                                      f"offsets broadcastable to {list(full)} (no spatial part) "
                                      "can be converted", path=path)
            offset = off.float().expand(full)
        else:
            ins = sorted(k for k in items if k.startswith("weights_offset_in_"))
            outs = sorted(k for k in items if k.startswith("weights_offset_out_"))
            if len(ins) != len(outs) or not ins:
                raise ConversionError(f"{label} has unpaired low-rank weight offsets", path=path)
            offset = sum(items[o].float() @ items[i].float()
                         for o, i in zip(outs, ins, strict=True)) / len(ins)
            offset = offset.reshape(*offset.shape, 1, 1)
            if tuple(offset.shape) != full:
                raise ConversionError(f"{label} low-rank weight offsets give {list(offset.shape)}, "
                                      f"expected {list(full)}", path=path)
        tensors[f"weight_offsets.{layer.index}"] = offset.contiguous()
        weight_layers.append(layer.index)
        used_params[f"{label}.weights"] = name
    config["weight_offset_layers"] = sorted(weight_layers)
    if weight_layers:
        notes.append(f"conv weight offsets on style layers {sorted(weight_layers)}: render with "
                     "method.weight_deltas(generator) (every stylebridge renderer does)")

    if detected == "stylespace":
        torgb = False
        for loc, items in sorted(domain.items()):
            if "offset" not in items:
                continue
            name = param(loc).s
            label = f"b{loc[0]}.{loc[1]}"
            if name != "additive":
                raise ConversionError(
                    f"{label} uses StyleSpace parametrisation {name!r}; only 'additive' "
                    "(s + offset) is an additive StyleSpace domain", path=path)
            layer = layout[index_of(loc)]
            off = items["offset"].float()
            if tuple(off.shape) != (1, layer.in_ch):
                raise ConversionError(f"{label}.offset has shape {list(off.shape)}, expected "
                                      f"[1, {layer.in_ch}]", path=path)
            if "offset_mask" in items:
                off = off * items["offset_mask"].float()
            if layer.is_rgb:  # NVlabs: s = affine(w) / sqrt(C_in) + offset (see stylebridge.plugins.domains.base)
                off = off * math.sqrt(layer.in_ch * layer.kernel ** 2)
                torgb = True
            tensors[f"offsets.{layer.index}"] = off.reshape(-1)
            used_params[f"{label}.s"] = name
        for layer in layout:  # layers the pickle gives no offset: zero
            if (torgb or not layer.is_rgb) and f"offsets.{layer.index}" not in tensors:
                tensors[f"offsets.{layer.index}"] = torch.zeros(layer.in_ch, device=_device(state))
        config["torgb"] = torgb
    elif detected == "affinelight_plus":
        layers, ranks = [], set()
        for loc, items in sorted(domain.items()):
            ins = sorted((k for k in items if k.startswith("affine.weights_offset_in_")),
                         key=lambda k: int(k.rsplit("_", 1)[1]))
            outs = sorted((k for k in items if k.startswith("affine.weights_offset_out_")),
                          key=lambda k: int(k.rsplit("_", 1)[1]))
            if not ins:
                continue
            label = f"b{loc[0]}.{loc[1]}"
            name = param(loc).affine
            if name is None or not _AFFINE_RANK_RX.match(name):
                raise ConversionError(f"{label} uses affine parametrisation {name!r}; only "
                                      "'affine_out_in_K_T_additive' can be converted", path=path)
            if len(ins) != len(outs):
                raise ConversionError(f"{label} has unpaired low-rank affine offsets", path=path)
            layer = layout[index_of(loc)]
            v = torch.cat([items[k].float() for k in ins], dim=0)          # [K*T, style_dim]
            u = torch.cat([items[k].float() for k in outs], dim=1) / len(outs)  # [C, K*T]
            if v.shape[1] != cfg.style_dim or u.shape[0] != layer.in_ch or u.shape[1] != v.shape[0]:
                raise ConversionError(f"{label} low-rank affine offsets have shapes "
                                      f"{list(u.shape)} @ {list(v.shape)}, expected "
                                      f"[{layer.in_ch}, r] @ [r, {cfg.style_dim}]", path=path)
            tensors[f"affine_in.{layer.index}"] = v
            tensors[f"affine_out.{layer.index}"] = u
            layers.append(layer.index)
            ranks.add(int(v.shape[0]))
            used_params[f"{label}.affine"] = name
        if len(ranks) != 1:
            raise ConversionError(f"has low-rank affine offsets of different ranks {sorted(ranks)}",
                                  path=path)
        config["layers"] = sorted(layers)
        config["rank"] = ranks.pop()
    else:  # affine_plus
        layers = []
        for layer in layout:
            res, lname = _nv_name(layer)
            prefix = f"synthesis.b{res}.{lname}.affine"
            tensors[f"affine_weight.{layer.index}"] = base[f"{prefix}.weight"].float()
            tensors[f"affine_bias.{layer.index}"] = base[f"{prefix}.bias"].float()
            layers.append(layer.index)
        config["layers"] = layers
        notes.append("Affine+: the affine layers of this pickle's G_ema are taken as the tuned "
                     "ones; the source affines come from the generator you render with")
        if not has_w and not tuned_affine:
            notes.append("the pickle records no sign of fine-tuned affine layers; converted as "
                         "asked (method=affine_plus)")
    return DissimilarDomain(detected, config, tensors, notes, used_params)


def _device(state: Mapping[str, Tensor]) -> torch.device:
    for value in state.values():
        return value.device
    return torch.device("cpu")


def _nv_name(layer: LayerShape) -> tuple[int, str]:
    """Our style layer → NVlabs (resolution, conv0|conv1|torgb)."""
    if layer.index < 2:
        return 4, ("conv1", "torgb")[layer.index]
    j, k = divmod(layer.index - 2, 3)
    return 2 ** (j + 3), ("conv0", "conv1", "torgb")[k]


def expected_shapes(method: str, config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of ``method`` built from ``config`` (on the meta device)."""
    with torch.device("meta"):
        obj = METHODS[method](**config)
    return {k: tuple(v.shape) for k, v in obj.state_dict().items()}


def _convert_dissimilar(src: Path, dst: Path, options: Mapping[str, Any]) -> ConversionResult:
    data = load_nvlabs_pickle(src)
    g = data["G_ema"]
    state = module_state_dict(g)
    kw = g.init_kwargs
    default, _ = _global_parametrization(kw)
    found = dissimilar_domains_tensors(state, kw, _layer_parametrizations(g, default),
                                       method=options.get("method"), path=src)
    method = METHODS[found.method](**found.config)
    check_state_dict(src, {k: v.shape for k, v in method.state_dict().items()}, found.tensors,
                     what=f"{found.method} domain", error=ConversionError)
    method.load_state_dict({k: v.contiguous() for k, v in found.tensors.items()}, strict=True)
    notes = [*found.notes, DISSIMILAR_LICENCE]
    extra = {"source": "AIRI-Institute/StyleDomain DissimilarDomains", "source_file": src.name,
             "parametrizations": found.parametrizations, "notes": notes,
             "licence": DISSIMILAR_LICENCE}
    method.save(dst, extra=extra)
    return ConversionResult(path=dst, kind=KIND, plugin=method.name,
                            n_tensors=len(found.tensors), notes=tuple(notes))


class StyleDomainConverter(Converter):
    """StyleDomain checkpoints → stylebridge domain methods (stylespace / affine_plus / affinelight_plus)."""

    name = "styledomain"
    accepted_options = frozenset({"patch_key", "style_dim", "method"})
    source = ("StyleDomain: SimilarDomains StyleSpace .pt (s_delta) or a DissimilarDomains "
              "StyleGAN2-ADA .pkl (StyleSpace / Affine+ / AffineLight+); pickled code never runs")

    def convert(self, src: Path, dst: Path, **options: Any) -> ConversionResult:
        src, dst = Path(src), Path(dst)
        self.check_options(options, src)
        if not src.is_file():
            raise ConversionError("no such file" if not src.exists() else "is not a file", path=src)
        if zipfile.is_zipfile(src) or src.suffix.lower() in (".pt", ".pth"):
            return _convert_similar(src, dst, options)
        return _convert_dissimilar(src, dst, options)



@hookimpl
def register_converters(register: Any) -> None:
    register(StyleDomainConverter())
