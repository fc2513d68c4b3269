"""``stylebridge convert fid-inception``: pytorch-fid's Inception weights → our checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stylebridge.core.checkpoint import save_checkpoint
from stylebridge.core.interfaces import ConversionResult, Converter
from stylebridge.core.stylegan2.rosinality import torch_load_safe
from stylebridge.errors import ConversionError
from stylebridge.registry import hookimpl


class FIDInceptionConverter(Converter):
    """pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` → our checkpoint (kind ``backbone``)."""

    name = "fid-inception"
    source = "pytorch-fid pt_inception-2015-12-05-6726825d.pth (the TF-FID Inception-v3)"

    def convert(self, src: Path, dst: Path, **options: Any) -> ConversionResult:
        from stylebridge.plugins.nets import fid as _fid  # torchvision: imported when used

        src, dst = Path(src), Path(dst)
        if options:
            raise ConversionError(f"fid-inception takes no options, got {sorted(options)}",
                                  path=src)
        state = _fid.upstream_state_dict(torch_load_safe(src), src)
        save_checkpoint(dst, state, kind=_fid.NETWORK_KIND, plugin=_fid.NETWORK_PLUGIN,
                        config={}, extra={"source": src.name})
        return ConversionResult(path=dst, kind=_fid.NETWORK_KIND, plugin=_fid.NETWORK_PLUGIN,
                                n_tensors=len(state), notes=(_fid.LICENCE,))


@hookimpl
def register_converters(register: Any) -> None:
    register(FIDInceptionConverter())
