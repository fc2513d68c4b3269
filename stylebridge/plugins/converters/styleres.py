"""The ``styleres`` converter: hamzapehlivan/StyleRes ``styleres_ffhq.pth`` → a ``styleres`` encoder.

The file holds the e4e encoder (``e4e``), ``latent_avg`` and StyleRes' generator
(``generator_smooth``, NVlabs naming) with its feature modules in
``synthesis.b64.modify_feature_*``, which become part of the encoder here; option
``generator=PATH`` also writes the generator.  The encoder is in
:mod:`stylebridge.plugins.encoders.styleres`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from stylebridge.core.checkpoint import save_checkpoint
from stylebridge.core.interfaces import ConversionResult, Converter
from stylebridge.core.stylegan2.config import GeneratorConfig
from stylebridge.core.stylegan2.nvlabs import convert_nvlabs_generator
from stylebridge.core.stylegan2.rosinality import torch_load_safe
from stylebridge.errors import ConversionError
from stylebridge.plugins.converters.psp import (
    build_encoder_state,
    infer_style_net_config,
    latent_avg_rows,
)
from stylebridge.plugins.converters.stylegan2 import build_and_save
from stylebridge.plugins.encoders.styleres import (
    STYLERES_LICENCE,
    UPSTREAM_CONV_CLAMP,
    StyleResEncoder,
)
from stylebridge.plugins.nets.irse import describe_upstream
from stylebridge.registry import hookimpl

_MODULE_RX = re.compile(r"^synthesis\.b(\d+)\.(modify_feature_(?:alignment|extraction|gates))\.(.+)$")


class StyleResConverter(Converter):
    """hamzapehlivan/StyleRes ``styleres_ffhq.pth`` → stylebridge ``styleres`` encoder (+ generator)."""

    name = "styleres"
    accepted_options = frozenset({"generator"})
    output_options = frozenset({"generator"})
    description = ("StyleRes styleres_ffhq.pth -> styleres encoder (generator=PATH also writes its "
                   "generator); non-commercial licence")
    source = ("StyleRes .pth {e4e, latent_avg, generator_smooth (NVlabs naming + "
              "synthesis.b64.modify_feature_*)}; option generator=PATH writes its generator too; "
              "NVIDIA Source Code License (non-commercial)")

    def convert(self, src: Path, dst: Path, **options: Any) -> ConversionResult:
        src, dst = Path(src), Path(dst)
        self.check_options(options, src)
        obj = torch_load_safe(src)
        if not isinstance(obj, Mapping) or not {"e4e", "generator_smooth"} <= set(obj):
            hint = describe_upstream(obj) if isinstance(obj, Mapping) else None
            if hint is not None and "StyleRes" not in hint:
                raise ConversionError(f"{hint}; not a StyleRes checkpoint", path=src)
            keys = ", ".join(sorted(map(str, obj))[:6]) if isinstance(obj, Mapping) else type(obj).__name__
            raise ConversionError("is not a StyleRes checkpoint (expected top-level 'e4e', "
                                  f"'latent_avg', 'generator_smooth'; found {keys})", path=src)
        enc, gen = obj["e4e"], obj["generator_smooth"]
        if not isinstance(enc, Mapping) or not isinstance(gen, Mapping):
            raise ConversionError("'e4e' and 'generator_smooth' must be state dicts", path=src)
        notes: list[str] = []
        config = infer_style_net_config(enc, path=src, what="StyleRes e4e encoder")

        modules: dict[str, Tensor] = {}
        base: dict[str, Tensor] = {}
        resolutions: set[int] = set()
        for key, value in gen.items():
            m = _MODULE_RX.match(str(key))
            if m:
                resolutions.add(int(m.group(1)))
                modules[f"{m.group(2)}.{m.group(3)}"] = value
            else:
                base[str(key)] = value
        if not modules:
            raise ConversionError("generator_smooth has no StyleRes feature modules "
                                  "(synthesis.b64.modify_feature_*)", path=src)
        if len(resolutions) != 1:
            raise ConversionError(f"generator_smooth has feature modules at several resolutions "
                                  f"{sorted(resolutions)}", path=src)
        res = resolutions.pop()
        if res < 8 or res & (res - 1):
            raise ConversionError(f"feature modules sit at {res}x{res}, not a power of two >= 8",
                                  path=src)
        k = 2 * res.bit_length() - 6  # first conv of the res x res stage: 64 -> 8
        g_state, g_config, w_avg = convert_nvlabs_generator(
            base, {"synthesis_kwargs": {"conv_clamp": UPSTREAM_CONV_CLAMP}}, path=src)
        first = modules.get("modify_feature_alignment.first_layer.weight")
        if not isinstance(first, Tensor) or first.ndim != 4:
            raise ConversionError("generator_smooth lacks a 4-D synthesis.b64.modify_feature_"
                                  "alignment.first_layer.weight", path=src)
        config.update(feature_layer=k, feature_channels=int(g_config["channels"][res]),
                      hidden=int(first.shape[0]))
        if config["input_size"] // 4 != res:
            raise ConversionError(f"encoder features are {config['input_size'] // 4}px but the "
                                  f"feature modules sit at {res}x{res}", path=src)
        if "latent_avg" not in obj:
            raise ConversionError("has no 'latent_avg' (StyleRes adds it to every code)", path=src)
        latent_avg = latent_avg_rows(obj["latent_avg"], config["n_styles"], config["style_dim"],
                                     path=src)
        state = build_encoder_state(StyleResEncoder, enc, latent_avg, config, path=src,
                                    what="StyleRes checkpoint", notes=notes, extra_state=modules)
        notes.append(f"the feature modules act at generator activation K={k} ({res}x{res}, "
                     f"upstream synthesis.b{res}.conv0)")
        notes.append(STYLERES_LICENCE)
        extra_notes: list[str] = []
        gen_path = options.get("generator")
        if gen_path:
            g_notes = [f"StyleRes renders with conv_clamp={UPSTREAM_CONV_CLAMP:g} "
                       "(its SynthesisBlock default); kept in the generator config",
                       STYLERES_LICENCE]
            result = build_and_save(src, Path(str(gen_path)),
                                    g_cfg=GeneratorConfig.from_dict(g_config), g_state=g_state,
                                    latent_avg=w_avg, d_cfg=None, d_state=None,
                                    source=f"hamzapehlivan/StyleRes (generator_smooth of {src.name})",
                                    notes=g_notes)
            notes.append(f"wrote StyleRes' generator as generator checkpoint {gen_path}")
            extra_notes = [f"generator: {n}" for n in result.notes]
        else:
            notes.append("the feature modules were trained with this file's generator_smooth; pass "
                         "generator=PATH to write it")
        save_checkpoint(dst, state, kind="encoder", plugin=self.name, config=config,
                        extra={"source": "hamzapehlivan/StyleRes", "source_file": src.name,
                               "notes": notes, "licence": STYLERES_LICENCE})
        return ConversionResult(path=dst, kind="encoder", plugin=self.name, n_tensors=len(state),
                                notes=tuple(notes + extra_notes))


@hookimpl
def register_converters(register: Any) -> None:
    register(StyleResConverter())
