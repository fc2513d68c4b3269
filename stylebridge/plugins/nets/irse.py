"""IR-SE backbones shared by the pSp-family encoders (pSp, e4e, StyleRes) and the ArcFace ID network.

One implementation of the "IR-SE50" network of TreB1eN/InsightFace_Pytorch, which pSp
and e4e use as their encoder backbone (initialised from ArcFace ``model_ir_se50.pth``)
and as the frozen face-recognition network of their ID loss.  Module and parameter
names follow the upstream layout, so the official tensors load after removing their
wrapper prefix (``encoder.`` in pSp/e4e files, ``e4e.`` in StyleRes files, none in
``model_ir_se50.pth``).

Layout (IR-SE50 defaults; ``widths`` / ``units`` make smaller variants for tests):

* ``input_layer`` = Conv3×3(3→64, stride 1, no bias) → BatchNorm2d → PReLU.
* ``body`` = 24 ``BottleneckIRSE`` units in 4 stages of 3/4/14/3 units with depths
  64/128/256/512; the first unit of every stage has stride 2.  A unit is
  ``res_layer`` = BN → Conv3×3 → PReLU → Conv3×3(stride) → BN → SE(reduction 16)
  plus ``shortcut_layer`` = MaxPool2d(1, stride) when the depth is unchanged, else
  Conv1×1(stride, no bias) → BN.
* :meth:`IRSEBackbone.stages` returns the output of each stage.  At a 256×256 input
  these are ``[64,128,128]``, ``c1 = [128,64,64]`` (body[6]), ``c2 = [256,32,32]``
  (body[20]) and ``c3 = [512,16,16]`` (body[23]), the taps of pSp's feature pyramid.
* :class:`ArcFaceIRSE50` adds the embedding head ``output_layer`` = BatchNorm2d(512) →
  Dropout → Flatten → Linear(512·7·7, 512) → BatchNorm1d(512), and L2-normalises.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylebridge.core.checkpoint import check_implied_shapes, check_state_dict, load_checkpoint
from stylebridge.core.schema import Field, validate_config
from stylebridge.core.stylegan2.rosinality import torch_load_safe
from stylebridge.errors import CheckpointError, ConversionError

IRSE50_WIDTHS: tuple[int, ...] = (64, 128, 256, 512)
IRSE50_UNITS: tuple[int, ...] = (3, 4, 14, 3)

ARCFACE_KIND = "backbone"
ARCFACE_PLUGIN = "arcface-irse50"
ARCFACE_LICENCE = ("licence: the ArcFace IR-SE50 weights (TreB1eN/InsightFace_Pytorch "
                   "model_ir_se50.pth, as distributed with pSp/e4e) are trained on MS-Celeb-1M; "
                   "check their terms before any commercial use")


class SEModule(nn.Module):
    """Squeeze-and-excitation: ``x * sigmoid(fc2(relu(fc1(mean_hw(x)))))`` (1×1 convs, no bias)."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = channels // reduction
        if hidden < 1:
            raise ValueError(f"SE module needs at least {reduction} channels, got {channels}")
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        return x * self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))


class BottleneckIRSE(nn.Module):
    """Improved-residual unit with SE (``bottleneck_IR_SE`` upstream); ``stride`` on the second conv."""

    def __init__(self, in_channels: int, depth: int, stride: int) -> None:
        super().__init__()
        self.shortcut_layer: nn.Module
        if in_channels == depth:
            self.shortcut_layer = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channels, depth, 1, stride, bias=False), nn.BatchNorm2d(depth))
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
            SEModule(depth, 16),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


def _check_arch(widths: Sequence[int], units: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    w = tuple(int(v) for v in widths)
    u = tuple(int(v) for v in units)
    if len(w) != len(u) or not w:
        raise ValueError(f"widths {list(w)} and units {list(u)} must be non-empty and of equal length")
    if any(v < 1 for v in u) or any(v < 16 for v in w):
        raise ValueError(f"every stage needs >= 1 unit and >= 16 channels (got widths {list(w)}, "
                         f"units {list(u)})")
    return w, u


class IRSEBackbone(nn.Module):
    """``input_layer`` + ``body`` of an IR-SE network; :meth:`stages` gives each stage's output.

    ``widths[i]`` / ``units[i]``: depth and number of units of stage ``i``; the input
    layer has ``widths[0]`` channels and every stage halves the resolution.
    """

    def __init__(self, widths: Sequence[int] = IRSE50_WIDTHS, units: Sequence[int] = IRSE50_UNITS,
                 in_channels: int = 3) -> None:
        super().__init__()
        self.widths, self.units = _check_arch(widths, units)
        self.input_layer = nn.Sequential(
            nn.Conv2d(in_channels, self.widths[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(self.widths[0]),
            nn.PReLU(self.widths[0]),
        )
        modules: list[nn.Module] = []
        prev = self.widths[0]
        ends: list[int] = []
        for depth, n in zip(self.widths, self.units, strict=True):
            for i in range(n):
                modules.append(BottleneckIRSE(prev if i == 0 else depth, depth, 2 if i == 0 else 1))
            prev = depth
            ends.append(len(modules) - 1)
        self.body = nn.Sequential(*modules)
        self.stage_ends: tuple[int, ...] = tuple(ends)  # IR-SE50: (2, 6, 20, 23)

    def stages(self, x: Tensor) -> list[Tensor]:
        """``x`` ``[B, 3, H, W]`` (normalised to [-1, 1]) → one tensor per stage, ``H / 2^(i+1)`` px."""
        x = self.input_layer(x)
        outs: list[Tensor] = []
        ends = set(self.stage_ends)
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i in ends:
                outs.append(x)
        return outs


class ArcFaceIRSE50(IRSEBackbone):
    """ArcFace IR-SE50 (TreB1eN / pSp ``Backbone(112, 50, 'ir_se')``): face → unit embedding.

    ``forward``: ``[B, 3, input_size, input_size]`` RGB in ``[-1, 1]`` (pSp's ID loss crops
    the 256 px aligned face to ``[35:223, 32:220]`` and pools it to 112 first) →
    L2-normalised ``[B, embedding_dim]``.  ``drop_ratio`` only matters in train mode
    (pSp's ID loss builds it with 0.6 and keeps it in eval mode).
    """

    def __init__(self, input_size: int = 112, embedding_dim: int = 512, affine: bool = True,
                 drop_ratio: float = 0.6, widths: Sequence[int] = IRSE50_WIDTHS,
                 units: Sequence[int] = IRSE50_UNITS) -> None:
        super().__init__(widths, units)
        stride = 2 ** len(self.widths)
        if input_size % stride:
            raise ValueError(f"input_size must be a multiple of {stride}, got {input_size}")
        self.input_size = int(input_size)
        self.embedding_dim = int(embedding_dim)
        self.affine = bool(affine)
        self.drop_ratio = float(drop_ratio)
        side = self.input_size // stride
        last = self.widths[-1]
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(last),
            nn.Dropout(self.drop_ratio),
            nn.Flatten(),
            nn.Linear(last * side * side, self.embedding_dim),
            nn.BatchNorm1d(self.embedding_dim, affine=self.affine),
        )

    def config(self) -> dict[str, Any]:
        return {"input_size": self.input_size, "embedding_dim": self.embedding_dim,
                "affine": self.affine, "drop_ratio": self.drop_ratio,
                "widths": list(self.widths), "units": list(self.units)}

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != 3 or tuple(x.shape[-2:]) != (self.input_size,) * 2:
            raise ValueError(f"ArcFace expects [B, 3, {self.input_size}, {self.input_size}] in [-1, 1], "
                             f"got {list(x.shape)}")
        feat = self.stages(x)[-1]
        return F.normalize(self.output_layer(feat), dim=1)


# ---------------------------------------------------------------------------------------------
# Reading upstream state dicts


def _fail(error: type[CheckpointError], path: Path | None, what: str, message: str) -> CheckpointError:
    return error(f"{what} {message}", path=path)


def infer_irse_arch(state: Mapping[str, Tensor], *, path: Path | None = None, what: str = "backbone",
                    error: type[CheckpointError] = ConversionError) -> tuple[list[int], list[int]]:
    """``(widths, units)`` of an IR-SE state dict (no prefix), from the unit depths.

    Stages are runs of units of equal depth (so consecutive stages must differ in
    depth, as in IR-SE50); the first stage's depth must equal the input layer's width.
    """
    if "input_layer.0.weight" not in state or "body.0.res_layer.1.weight" not in state:
        raise _fail(error, path, what, "has no IR-SE backbone tensors (input_layer.*, body.*)")
    if "body.0.res_layer.5.fc1.weight" not in state:
        raise _fail(error, path, what, "is an IR backbone without SE modules; only IR-SE is supported")
    rx = re.compile(r"^body\.(\d+)\.res_layer\.1\.weight$")
    ids = sorted(int(m.group(1)) for k in state if (m := rx.match(k)))
    if ids != list(range(len(ids))):
        raise _fail(error, path, what, f"has non-contiguous body units {ids[:8]}")
    depths: list[int] = []
    for i in ids:
        w = state[f"body.{i}.res_layer.1.weight"]
        if w.ndim != 4:
            raise _fail(error, path, what, f"has body.{i}.res_layer.1.weight of shape {list(w.shape)}")
        depths.append(int(w.shape[0]))
    widths: list[int] = []
    units: list[int] = []
    for d in depths:
        if widths and widths[-1] == d:
            units[-1] += 1
        else:
            widths.append(d)
            units.append(1)
    first = int(state["input_layer.0.weight"].shape[0])
    if widths[0] != first:
        raise _fail(error, path, what, f"has an input layer of width {first} but a first stage of "
                    f"depth {widths[0]}; not an IR-SE layout")
    return widths, units


def fill_num_batches_tracked(state: dict[str, Tensor], expected: Mapping[str, Any],
                             notes: list[str] | None = None) -> None:
    """Add zero ``num_batches_tracked`` counters that old files (PyTorch < 0.4.1) lack."""
    added = 0
    for key in expected:
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros((), dtype=torch.long)
            added += 1
    if added and notes is not None:
        notes.append(f"the file has no BatchNorm num_batches_tracked counters; added {added} zeros")


def as_float_state(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Floating tensors as contiguous float32; integer buffers (BN counters) as int64."""
    out: dict[str, Tensor] = {}
    for k, v in state.items():
        t = v.detach()
        out[k] = (t.float() if t.is_floating_point() else t.long()).contiguous()
    return out


def expected_shapes(module_factory: Any) -> dict[str, tuple[int, ...]]:
    """``{key: shape}`` of a module's state dict, built on the meta device (no memory)."""
    with torch.device("meta"):
        module = module_factory()
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def arcface_state_from_upstream(obj: Any, *, path: Path | None = None,
                                notes: list[str] | None = None) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """An upstream ArcFace IR-SE state dict (``model_ir_se50.pth``) → (our state, config).

    Accepts a bare state dict, one wrapped as ``{"state_dict": ...}`` and ``module.``
    prefixes (DataParallel).  Keys and shapes are checked against :class:`ArcFaceIRSE50`
    with one-line :class:`ConversionError` messages.
    """
    what = "ArcFace IR-SE"
    hint = describe_upstream(obj) if isinstance(obj, Mapping) else None
    if hint is not None and "ArcFace" not in hint:
        raise ConversionError(f"{hint}, not an ArcFace IR-SE backbone", path=path)
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj:
        raise ConversionError(f"holds a {type(obj).__name__}, expected an ArcFace IR-SE state dict",
                              path=path)
    state = {str(k): v for k, v in obj.items()}
    if any(not isinstance(v, Tensor) for v in state.values()):
        bad = next(k for k, v in state.items() if not isinstance(v, Tensor))
        raise ConversionError(f"{what} entry {bad!r} is not a tensor", path=path)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
        if notes is not None:
            notes.append("stripped the DataParallel 'module.' prefix")
    hint = describe_upstream(state)
    if hint is not None and "ArcFace" not in hint:
        raise ConversionError(f"{hint}, not an ArcFace IR-SE backbone", path=path)
    widths, units = infer_irse_arch(state, path=path, what=what)
    lin = state.get("output_layer.3.weight")
    if lin is None or lin.ndim != 2:
        raise ConversionError(f"{what} has no embedding head (output_layer.3.weight); a bare "
                              "encoder backbone cannot compute ID embeddings", path=path)
    side2, rem = divmod(int(lin.shape[1]), widths[-1])
    side = round(side2 ** 0.5)
    if rem or side * side != side2:
        raise ConversionError(f"{what} output_layer.3.weight {list(lin.shape)} does not fit "
                              f"{widths[-1]} channels on a square grid", path=path)
    config: dict[str, Any] = {
        "input_size": side * 2 ** len(widths), "embedding_dim": int(lin.shape[0]),
        "affine": "output_layer.4.weight" in state, "drop_ratio": 0.6,
        "widths": widths, "units": units,
    }
    expected = expected_shapes(lambda: ArcFaceIRSE50(**config))
    fill_num_batches_tracked(state, expected, notes)
    check_state_dict(path, expected, state, what=what, error=ConversionError)
    return as_float_state(state), config


def describe_upstream(state: Mapping[str, Any]) -> str | None:
    """A short description of a known upstream layout (for "wrong checkpoint" errors), or None.

    ``state`` is the top-level object of a ``.pt``/``.pth`` file.
    """
    keys = {str(k) for k in state}

    def has(prefix: str, within: set[str] = keys) -> bool:
        return any(k.startswith(prefix) for k in within)

    if {"e4e", "generator_smooth"} <= keys:
        return "is a StyleRes checkpoint (e4e + generator_smooth); use `stylebridge convert styleres`"
    if "enc_state_dict" in keys:
        return ("is an FSE training checkpoint (enc_state_dict); use `stylebridge convert fse`")
    if has("content_layer.") or has("block_1.") or (has("conv.0.") and has("styles.")):
        return ("is an FSE encoder state dict (conv.*, block_1..4.*, content_layer.*); "
                "use `stylebridge convert fse`")
    if "g_ema" in keys or "style.1.weight" in keys:
        return "is a StyleGAN2 generator checkpoint; use `stylebridge convert stylegan2-rosinality`"
    inner = state.get("state_dict")
    if isinstance(inner, Mapping):
        inner_keys = {str(k) for k in inner}
        if has("inverter.", inner_keys):
            return "is a StyleFeatureEditor (SFE) checkpoint (inverter.*)"
        if has("encoder.", inner_keys):
            return "is a pSp/e4e checkpoint (state_dict with encoder.*); use `stylebridge convert e4e` or `psp`"
    if has("input_layer.") and has("body.") and has("output_layer."):
        return "is an ArcFace IR-SE backbone; use `stylebridge convert arcface-irse50`"
    return None


# ---------------------------------------------------------------------------------------------
# Loading


#: types and ranges of an ArcFace checkpoint's header config (checked before building)
ARCFACE_SCHEMA = {
    "input_size": Field("int", 16, 1024), "embedding_dim": Field("int", 1, 4096),
    "affine": Field("bool"), "drop_ratio": Field("float", 0.0, 1.0),
    "widths": Field("ints", 16, 2048, max_len=8), "units": Field("ints", 1, 64, max_len=8),
}


def load_arcface_irse50(path: str | Path, device: str | torch.device = "cpu") -> ArcFaceIRSE50:
    """Load ArcFace IR-SE50 for ID losses/metrics, frozen and in eval mode.

    ``path`` is a stylebridge checkpoint written by ``stylebridge convert arcface-irse50``
    (``.safetensors``) or the upstream ``model_ir_se50.pth`` itself (read with
    ``torch.load(weights_only=True)``).  The module maps ``[B, 3, 112, 112]`` in
    ``[-1, 1]`` to L2-normalised ``[B, 512]`` embeddings; gradients flow to the input.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        header, tensors = load_checkpoint(path, kind=ARCFACE_KIND, plugin=ARCFACE_PLUGIN)
        try:
            validate_config(ARCFACE_SCHEMA, header.config)
        except ValueError as exc:
            raise CheckpointError(f"invalid ArcFace config in header: {exc}", path=path) from None
        check_implied_shapes(path, lambda: ArcFaceIRSE50(**header.config), tensors,
                             what="ArcFace IR-SE")
        try:
            model = ArcFaceIRSE50(**header.config)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"invalid ArcFace config in header: {exc}", path=path) from None
        check_state_dict(path, model.state_dict(), tensors, what="ArcFace IR-SE",
                         check_finite=False)  # load_checkpoint checked the values
        model.load_state_dict(tensors, strict=True)
    else:
        state, config = arcface_state_from_upstream(torch_load_safe(path), path=path)
        with torch.device("meta"):
            model = ArcFaceIRSE50(**config)
        model.load_state_dict(state, strict=True, assign=True)
    return model.to(device).eval().requires_grad_(False)


__all__ = [
    "ARCFACE_KIND",
    "ARCFACE_LICENCE",
    "ARCFACE_PLUGIN",
    "IRSE50_UNITS",
    "IRSE50_WIDTHS",
    "ArcFaceIRSE50",
    "BottleneckIRSE",
    "IRSEBackbone",
    "SEModule",
    "arcface_state_from_upstream",
    "describe_upstream",
    "expected_shapes",
    "fill_num_batches_tracked",
    "infer_irse_arch",
    "load_arcface_irse50",
]
