"""Converter ``clip-openai``: OpenAI's original CLIP ``.pt`` (TorchScript) → ``.safetensors``.

The archive's weights are read without running its TorchScript code
(:mod:`stylebridge.core.torchscript`); the output is an open_clip state dict with
``quick_gelu=true`` in its metadata, which :func:`stylebridge.plugins.nets.clip.load_clip`
honours.  ``load_clip`` also reads the original ``.pt`` directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stylebridge.core.interfaces import ConversionResult, Converter
from stylebridge.errors import ConversionError
from stylebridge.registry import hookimpl

OPENAI_LICENCE = "licence: OpenAI CLIP weights, MIT"


class ClipOpenAIConverter(Converter):
    """OpenAI CLIP ViT-B-32.pt / ViT-B-16.pt (TorchScript) → open_clip .safetensors."""

    name = "clip-openai"
    source = "OpenAI's original CLIP .pt (TorchScript archive); its code is never run"

    def convert(self, src: Path, dst: Path, **options: Any) -> ConversionResult:
        from stylebridge.core.tensorfile import save_tensors
        from stylebridge.core.torchscript import read_torchscript_state_dict
        from stylebridge.plugins.nets.clip import is_torchscript

        src, dst = Path(src), Path(dst)
        self.check_options(options, src)
        if not src.is_file():
            raise ConversionError("no such file", path=src)
        if not is_torchscript(src):
            raise ConversionError("is not a TorchScript archive (OpenAI's CLIP .pt files are)",
                                  path=src)
        state = read_torchscript_state_dict(src)
        for key in ("visual.conv1.weight", "token_embedding.weight", "text_projection"):
            if key not in state:
                raise ConversionError(f"does not hold a CLIP model (no {key})", path=src)
        state = {k: v.contiguous() for k, v in state.items() if k != "attn_mask"}
        save_tensors(dst, state, {"quick_gelu": "true", "source": src.name,
                                  "licence": OPENAI_LICENCE})  # deterministic, any file name
        return ConversionResult(path=dst, kind="clip", plugin="open_clip", n_tensors=len(state),
                                notes=("OpenAI models use QuickGELU: load with "
                                       "stylebridge's load_clip (it reads the metadata)",
                                       OPENAI_LICENCE))


@hookimpl
def register_converters(register: Any) -> None:
    register(ClipOpenAIConverter())
