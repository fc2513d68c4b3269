"""The ``hyperdomainnet`` converter: domain-modulation checkpoints → ``domain_modulation``.

Reads the single-domain ``.pt`` files of MACderRu/HyperDomainNet (``td_*.pt`` / ``im2im_*.pt``
of its published ``checkpoints.zip``, and any ``models_N.pt`` its trainer saves) and of
StyleDomain's SimilarDomains runs with ``patch_key: cin_mult`` (``configs/im2im_difa_hdn.yaml``):
``{model_type: 'parameterization' | 'parametrization', patch_key: 'cin_mult', state_dict:
{heads.conv_k.params_in: [1, 1, C_in, 1, 1]}, sg2_params, da_type[, style_latents]}``.
Upstream (``core/stylegan_patches.py`` ``ChannelINMult``, applied after demodulation in
``offsets_model.py``) renders ``W' = demod(W·s)·(1 + params_in)``, which is exactly our
:class:`~stylebridge.plugins.domains.modulation.DomainModulation` with ``d_i = params_in``
of head ``conv_k`` at the style-layer index of the k-th modulated conv (``conv_0`` = the 4 px
``conv1``, no ToRGB heads).  Any other parameterisation (``cin_delta`` and ``cin_offset`` share
the key layout but not the formula), a hyper-network (``model_type: mapper``), unknown keys or
shapes are refused with one line naming the file.  StyleDomain's DissimilarDomains pickles
(``--use-domain-modulation``) modulate ``s`` before demodulation, a different formula:
``stylebridge convert styledomain`` reads the additive ones.  Pickled code never runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from stylebridge.core.checkpoint import check_state_dict
from stylebridge.core.interfaces import ConversionResult, Converter
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
from stylebridge.plugins.domains.base import KIND
from stylebridge.plugins.domains.modulation import DomainModulation
from stylebridge.registry import hookimpl

#: the parameterisation this converter reads (HyperDomainNet's ``patch_key``)
PATCH_KEY = "cin_mult"
HDN_LICENCE = ("licence: HyperDomainNet's code is MIT; its published domain vectors were trained "
               "on NVIDIA's StyleGAN2 FFHQ weights (NVIDIA Source Code License-NC, "
               "non-commercial)")
_CIN_RX = re.compile(r"^heads\.conv_(\d+)\.params_in$")


def cin_mult_vectors(state: Mapping[str, Any], *, style_dim: int = 512, path: Path | None = None
                     ) -> tuple[dict[str, Any], dict[int, Tensor]]:
    """A ``cin_mult`` state dict → (generator description, style-layer index → ``d`` [C_in]).

    Every key must be ``heads.conv_{k}.params_in`` with shape ``[1, 1, C_in, 1, 1]``, k = 0 …
    n-1 with n odd (17 at 1024 px); the channel widths are read from the shapes.
    """
    unknown = sorted(k for k in map(str, state) if not _CIN_RX.match(k))
    if unknown:
        more = f" (+{len(unknown) - 3} more)" if len(unknown) > 3 else ""
        raise ConversionError(f"has keys that are not cin_mult heads "
                              f"(heads.conv_k.params_in): {', '.join(unknown[:3])}{more}",
                              path=path)
    heads = {int(m.group(1)): k for k in state if (m := _CIN_RX.match(k))}
    if not heads:
        raise ConversionError("has no domain-modulation heads (heads.conv_k.params_in)",
                              path=path)
    n = max(heads) + 1
    missing = sorted(set(range(n)) - set(heads))
    if missing:
        raise ConversionError(f"lacks domain-modulation heads conv_{missing}", path=path)
    widths: list[tuple[str, int]] = []
    for k in range(n):
        value = state[heads[k]]
        if (not isinstance(value, Tensor) or value.ndim != 5
                or [value.shape[i] for i in (0, 1, 3, 4)] != [1, 1, 1, 1]):
            shape = list(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ConversionError(f"head {heads[k]} is {shape}, expected [1, 1, C_in, 1, 1]",
                                  path=path)
        if not value.is_floating_point():
            raise ConversionError(f"head {heads[k]} has dtype {value.dtype}, expected floating "
                                  "point", path=path)
        widths.append((heads[k], int(value.shape[2])))
    desc, conv_idx = conv_heads_layout(widths, style_dim, path)
    return desc, {conv_idx[k]: state[heads[k]].reshape(-1) for k in range(n)}


def _convert(src: Path, dst: Path, options: Mapping[str, Any]) -> ConversionResult:
    ck = torch_load_safe(src)
    state, patch_key = parametrization_state(
        ck, options, src, what="HyperDomainNet",
        hint="cin_mult, cin_delta and cin_offset share the key layout); pass -o "
             "patch_key=cin_mult if it is HyperDomainNet's domain modulation")
    if patch_key != PATCH_KEY:
        hint = (" (StyleSpace: `stylebridge convert styledomain`)" if patch_key == "s_delta"
                else "")
        raise ConversionError(f"holds a {patch_key!r} parameterisation; only domain modulation "
                              f"({PATCH_KEY!r}) can be converted here{hint}", path=src)
    style_dim = int(sg2_params(ck).get(
        "latent_size", Converter.option(options, "style_dim", int, 512, src)))
    desc, vectors = cin_mult_vectors(state, style_dim=style_dim, path=src)
    check_img_size(ck, desc, src)
    method = DomainModulation(**desc)
    tensors = {f"modulation.{i}": d.detach().float().contiguous() for i, d in vectors.items()}
    check_state_dict(src, {k: v.shape for k, v in method.state_dict().items()}, tensors,
                     what="domain_modulation domain", error=ConversionError)
    method.load_state_dict(tensors, strict=True)
    notes: list[str] = []
    extra = parametrization_extra(ck, src, notes)
    take_style_latents(method, extra, src)  # an image domain renders with them (ReferenceRows)
    zero = [i for i, d in vectors.items() if not bool(d.ne(0).any())]
    if zero:
        notes.append(f"style layers {zero} have all-zero vectors (frozen during training)")
    notes.append(HDN_LICENCE)
    extra.update({"source": "HyperDomainNet domain modulation (cin_mult)",
                  "patch_key": patch_key, "notes": notes, "licence": HDN_LICENCE})
    method.save(dst, extra=extra)
    return ConversionResult(path=dst, kind=KIND, plugin=method.name, n_tensors=len(tensors),
                            notes=tuple(notes))


class HyperDomainNetConverter(Converter):
    """HyperDomainNet / SimilarDomains ``cin_mult`` single-domain files → ``domain_modulation``."""

    name = "hyperdomainnet"
    accepted_options = frozenset({"patch_key", "style_dim"})
    source = ("HyperDomainNet single-domain .pt (td_*.pt, im2im_*.pt, models_N.pt) or a "
              "StyleDomain SimilarDomains run with patch_key cin_mult → domain_modulation")

    def convert(self, src: Path, dst: Path, **options: Any) -> ConversionResult:
        src, dst = Path(src), Path(dst)
        self.check_options(options, src)
        if not src.is_file():
            raise ConversionError("no such file" if not src.exists() else "is not a file", path=src)
        return _convert(src, dst, options)


@hookimpl
def register_converters(register: Any) -> None:
    register(HyperDomainNetConverter())
