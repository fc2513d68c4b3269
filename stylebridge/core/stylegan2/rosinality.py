"""Reading checkpoints of rosinality/stylegan2-pytorch (the layout our modules share).

Accepted files: ``convert_weight.py`` output (``g_ema`` + ``latent_avg`` [+ ``g``,
``d``]), ``train.py`` checkpoints (``g``, ``d``, ``g_ema``, optimisers, an
``argparse.Namespace``), or a bare generator state dict.  Loading always uses
``torch.load(weights_only=True)``; the only class admitted besides tensors is
``argparse.Namespace``, read as a plain attribute holder (:data:`UpstreamOptions`; no code).
"""

from __future__ import annotations

import pickle
import re
import types
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from stylebridge.core.checkpoint import refuse_nonfinite
from stylebridge.core.pickle_scan import weights_only_refusal
from stylebridge.core.read_inputs import note_input
from stylebridge.core.safe_pickle import not_a_pickle, quiet_protocol_warning
from stylebridge.core.sniff import file_kind
from stylebridge.core.stylegan2.config import DiscriminatorConfig, GeneratorConfig
from stylebridge.core.stylegan2.layers import make_kernel
from stylebridge.errors import ConversionError

#: what an upstream training checkpoint's ``argparse.Namespace`` (``opts``) is read as: a plain
#: attribute holder standing in for it, so loading neither imports nor builds argparse objects
UpstreamOptions = types.SimpleNamespace


def _is_torchscript(path: Path) -> bool:
    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as archive:
            return any("/code/" in name for name in archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


CUT_SHORT = "its zip archive is incomplete or damaged, as a download cut short: get it again"


def _zip_readable(path: Path) -> bool:
    """Whether the zip's central directory reads (a file cut short has none)."""
    try:
        with zipfile.ZipFile(path):
            return True
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def _reason(text: str) -> str:
    """torch's message, without its advice to load with ``weights_only=False`` (which would
    run the file's code: never), its "report an enhancement" note or the allocator's jargon."""
    if "weights_only" in text and "likely succeed" in text:
        return "a weights-only load cannot read it"
    if "enforce fail at alloc_cpu" in text or "can't allocate memory" in text:
        return "it asks for more memory than there is: corrupt or crafted"
    text = re.sub(r"\s*\(Could this error message be improved\?.*$", "", text)
    text = text.replace('Expected hasRecord("version") to be true, but got false.',
                        "a zip archive without torch's version record (damaged?)")
    if "failed finding central directory" in text or "failed reading zip archive" in text:
        # miniz's paragraph of advice says one thing: the zip is cut short or damaged
        return CUT_SHORT
    if len(text) > 300:  # cut at a word, and say so
        text = text[:300].rsplit(" ", 1)[0] + " ..."
    return text


def torch_load_safe(path: str | Path) -> Any:
    """``torch.load(weights_only=True)`` with one-line errors naming the file."""
    path = Path(path)
    if not path.exists():
        raise ConversionError("no such file", path=path)
    if path.is_dir():
        raise ConversionError("is a directory, expected a checkpoint file", path=path)
    if path.stat().st_size == 0:
        raise ConversionError("is empty (0 bytes)", path=path)
    if not path.is_file():  # a FIFO would block, a device never ends
        raise ConversionError("is not a regular file (a FIFO, socket or device?)", path=path)
    if _is_torchscript(path):
        raise ConversionError("is a TorchScript archive (torch.jit.save), not a weights "
                              "checkpoint; stylebridge never runs TorchScript code (OpenAI's "
                              "CLIP .pt: `stylebridge convert clip-openai`)", path=path)
    is_zip = file_kind(path)[0] == "zip"
    if is_zip and not _zip_readable(path):  # cut short: no central directory at its end
        raise ConversionError(f"not a readable PyTorch checkpoint ({CUT_SHORT})", path=path)
    # a zip whose directory reads is left to torch, whose own error says what is wrong
    what = None if is_zip else not_a_pickle(path)
    if what is not None:  # torch.save writes a zip archive, or (legacy) a pickle
        raise ConversionError(f"is {what}, not a PyTorch checkpoint", path=path)
    note_input(path)   # `convert` writes no output onto it under another name
    try:
        with torch.serialization.safe_globals([(UpstreamOptions, "argparse.Namespace")]), \
                quiet_protocol_warning():
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unpickling failed"
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            refusal = weights_only_refusal(path)  # the global, read from the opcodes
            if refusal is not None:
                raise refusal from None
            match = re.search(r"GLOBAL ([\w.]+)", str(exc))
            what = match.group(1) if match else "a non-tensor object"
            raise ConversionError(f"refused: the file references {what}, which a weights-only load "
                                  "does not allow (no code was run)", path=path) from None
        raise ConversionError(f"not a readable PyTorch checkpoint ({_reason(first)})",
                              path=path) from None
    except MemoryError:
        raise ConversionError("not a readable PyTorch checkpoint (out of memory while loading: "
                              "a corrupt or crafted file?)", path=path) from None
    except Exception as exc:  # torch raises many types for corrupt files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConversionError(f"not a readable PyTorch checkpoint ({_reason(first)})",
                              path=path) from None
    refuse_nonfinite(obj, path, error=ConversionError)
    return obj


def _count(state: Mapping[str, Tensor], pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in state if (m := rx.match(k))})


def infer_generator_config(state: Mapping[str, Tensor], *, path: Path | None = None,
                           lr_mlp: float = 0.01) -> GeneratorConfig:
    """Architecture of a rosinality-layout generator state dict, from key names and shapes."""
    if "input.input" not in state or "style.1.weight" not in state:
        raise ConversionError("is not a StyleGAN2 generator state dict (no 'input.input' / "
                              "'style.1.weight')", path=path)
    style_dim = int(state["style.1.weight"].shape[0])
    n_mlp = _count(state, r"^style\.(\d+)\.weight$")
    n_rgbs = _count(state, r"^to_rgbs\.(\d+)\.conv\.weight$")
    n_convs = _count(state, r"^convs\.(\d+)\.conv\.weight$")
    size = 2 ** (n_rgbs + 2)
    n_latent = 2 * (n_rgbs + 2) - 2
    if n_convs != 2 * n_rgbs:
        raise ConversionError(f"has {n_convs} styled convs but {n_rgbs} ToRGB layers; expected "
                              f"{2 * n_rgbs} convs for size {size}", path=path)
    n_noise = _count(state, r"^noises\.noise_(\d+)$")
    if n_noise and n_noise != 2 * n_rgbs + 1:
        raise ConversionError(f"expected {2 * n_rgbs + 1} noise buffers for size {size}, found "
                              f"{n_noise}", path=path)
    channels = {4: int(state["input.input"].shape[1])}
    for j in range(n_rgbs):
        channels[2 ** (j + 3)] = int(state[f"convs.{2 * j}.conv.weight"].shape[1])
    blur = state.get("convs.0.conv.blur.kernel")
    if blur is not None and not torch.allclose(blur.float(), make_kernel((1, 3, 3, 1)) * 4):
        raise ConversionError("uses a blur kernel other than [1, 3, 3, 1], which is not supported",
                              path=path)
    cfg = GeneratorConfig(size=size, style_dim=style_dim, n_mlp=n_mlp, channels=channels,
                          lr_mlp=lr_mlp)
    assert cfg.n_latent == n_latent
    return cfg


def infer_discriminator_config(state: Mapping[str, Tensor], *, path: Path | None = None
                               ) -> DiscriminatorConfig:
    """Architecture of a rosinality-layout discriminator state dict."""
    if "convs.0.0.weight" not in state or "final_conv.0.weight" not in state:
        raise ConversionError("is not a StyleGAN2 discriminator state dict", path=path)
    n_blocks = _count(state, r"^convs\.(\d+)\.conv1\.0\.weight$")
    size = 2 ** (n_blocks + 2)
    channels = {size: int(state["convs.0.0.weight"].shape[0])}
    for i in range(1, n_blocks + 1):
        channels[size // 2**i] = int(state[f"convs.{i}.conv2.1.weight"].shape[0])
    return DiscriminatorConfig(size=size, channels=channels)


def latent_avg_vector(value: Any, style_dim: int, *, path: Path | None = None) -> Tensor:
    """``latent_avg`` as ``[style_dim]`` (upstream files hold ``[D]``, ``[1, D]`` or ``[n, D]``)."""
    if not isinstance(value, Tensor):
        raise ConversionError("'latent_avg' is not a tensor", path=path)
    t = value.detach().float()
    if t.shape[-1] != style_dim:
        raise ConversionError(f"'latent_avg' has width {t.shape[-1]}, generator style_dim is "
                              f"{style_dim}", path=path)
    t = t.reshape(-1, style_dim)
    if t.shape[0] > 1 and not torch.allclose(t, t[:1].expand_as(t)):
        raise ConversionError("'latent_avg' rows differ; expected one average w", path=path)
    return t[0].clone()


@dataclass
class RosinalityCheckpoint:
    """The parts of an upstream file, still in the upstream layout."""

    g_ema: dict[str, Tensor]
    d: dict[str, Tensor] | None
    latent_avg: Tensor | None
    notes: list[str]


def read_rosinality(path: Path) -> RosinalityCheckpoint:
    """Open an upstream file and pick out generator, discriminator and ``latent_avg``."""
    obj = torch_load_safe(path)
    notes: list[str] = []
    if isinstance(obj, Mapping) and "style.1.weight" in obj:
        return RosinalityCheckpoint(dict(obj), None, None, ["bare generator state dict"])
    if not isinstance(obj, Mapping):
        raise ConversionError(f"holds a {type(obj).__name__}, expected a dict with 'g_ema'",
                              path=path)
    if "g_ema" in obj:
        g = obj["g_ema"]
    elif "g" in obj:
        g = obj["g"]
        notes.append("no 'g_ema' in the file; used the non-EMA generator 'g'")
    else:
        keys = ", ".join(sorted(map(str, obj))[:6])
        raise ConversionError(f"has no 'g_ema' or 'g' entry (top-level keys: {keys})", path=path)
    if not isinstance(g, Mapping):
        raise ConversionError("'g_ema' is not a state dict", path=path)
    d = obj.get("d")
    if d is not None and not isinstance(d, Mapping):
        raise ConversionError("'d' is not a state dict", path=path)
    return RosinalityCheckpoint(dict(g), None if d is None else dict(d), obj.get("latent_avg"),
                                notes)
