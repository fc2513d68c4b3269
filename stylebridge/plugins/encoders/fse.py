"""FSE, the Feature-Style Encoder (Xu et al., ECCV 2022; InterDigitalInc/FeatureStyleEncoder).

Network (upstream ``fs_encoder_v2`` with ``configs/001.yaml``: 18 styles, ``fs_stride`` 2),
shapes at the official size::

    x [B,3,256,256] ─ conv (ArcFace stem, 3→64) ─ block_1 [B,64,128,128] ─ block_2 [B,128,64,64]
                    ─ block_3 [B,256,32,32] ─ block_4 [B,512,16,16]
    F   = content_layer(block_3 out)         BN(256)→conv3×3 256→512→BN→PReLU
                                             →conv3×3 512→512 stride 2→BN   [B,512,16,16]
    enc = styles.i(cat(avgpool3×3(block_1..4)).flatten())   Linear(960·9=8640 → 512) × 18
    w+  = enc + latent_avg                                              [B,18,512]

The backbone is insightface's ArcFace iresnet50 (:mod:`stylebridge.plugins.nets.iresnet`).
``state_dict()`` keys are exactly the upstream ``143_enc.pth`` keys plus our buffer
``latent_avg`` ``[n_latent, style_dim]``, which upstream lives in the pSp FFHQ
checkpoint (``psp_ffhq_encode.pt['latent_avg']``), not in the FSE file.

**Input.**  Upstream ``test.py`` does ``Resize((1024, 1024))`` (PIL, bilinear) →
``ToTensor`` → ``Normalize(0.5, 0.5)``, then the trainer halves the image twice with
``F.interpolate(scale_factor=0.5, mode="bilinear")`` → 256×256.  Here
:attr:`FSEEncoder.preprocessing` resizes to ``resolution`` (1024) with antialiased
bilinear interpolation and normalises with mean/std 0.5, and :meth:`FSEEncoder.prepare`
then halves the image ``log2(resolution / input_size)`` times with exactly the
upstream call (a 2×2 mean each time).  Differences from upstream: PIL resizes the
8-bit image and rounds the result to 8 bits, we resize in float; and PIL's and
torch's antialiased bilinear filters differ slightly when the input is not
1024×1024.  A 1024×1024 input is processed exactly as upstream.

**Modes** (``mode`` config, the thesis' three uses of FSE, section 4):

* ``latents``: only ``w+`` (no feature, like e4e);
* ``features``: ``w+`` and ``features={K: F}`` with ``feature_mode="replace"``: ``F``
  replaces generator activation ``K`` (``layer``, default 5 = output of
  ``convs[3]``, the second 16×16 conv, 512 channels at 1024 px; see
  :mod:`stylebridge.core.stylegan2.generator`), also after a domain change;
* ``shift``: as ``features`` with ``feature_mode="shift"``: when a domain method
  changes the styles from ``s`` to ``s'``, the synthesiser injects
  ``F + G^K(s') - G^K(s)`` (FSE's editing rule, the thesis' *generator shift*).

The upstream ``G([w], features_in=..., feature_scale=1)`` call uses random noise
(``randomize_noise=True``); :func:`stylebridge.core.synthesis.synthesize` defaults to
the generator's fixed noise buffers.

Licence: the official FSE weights are under the InterDigital *Limited Software
Evaluation License* (evaluation and non-commercial research use only); the
converter prints it and stores it in the checkpoint header (``extra.licence``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylebridge.core.checkpoint import (
    check_state_dict,
    load_checkpoint,
    read_header,
    save_checkpoint,
)
from stylebridge.core.interfaces import (
    ConversionResult,
    Converter,
    Encoder,
    Inversion,
    Preprocessing,
)
from stylebridge.core.stylegan2.config import GeneratorConfig
from stylebridge.core.stylegan2.rosinality import torch_load_safe
from stylebridge.errors import CheckpointError, ConversionError, StylebridgeError
from stylebridge.plugins.nets.iresnet import (
    BN_EPS,
    IRESNET50_LAYERS,
    make_stages,
    stage_channels,
    stem,
)
from stylebridge.registry import hookimpl

MODES = ("latents", "features", "shift")
POOL = 3  # AdaptiveAvgPool2d((3, 3)) before the style heads
SOURCE = "InterDigitalInc/FeatureStyleEncoder"
LICENCE = ("licence: FSE weights are InterDigital's, under the InterDigital Limited Software "
           "Evaluation License (evaluation / non-commercial research use only); the converted "
           "file keeps it")


class FSEConfigError(StylebridgeError, ValueError):
    """An invalid FSE configuration, or an FSE that does not fit a generator."""


class FSEEncoder(Encoder):
    """Feature-Style Encoder: images in ``[0, 1]`` → ``w+`` (+ a feature for activation K).

    The defaults are the official FFHQ model; ``width`` (ArcFace stem channels, 64),
    ``layers`` (blocks per stage, iresnet50 = 3/4/14/3), ``n_latent``, ``style_dim``,
    ``feature_channels``, ``feature_stride`` (stride of the last content conv, upstream
    ``fs_stride``), ``input_size`` (encoder input, 256) and ``resolution`` (the size
    images are first resized to, 1024) exist so tests can build small versions.
    ``F`` is ``[B, feature_channels, s, s]`` with ``s = input_size / (8 · feature_stride)``.
    """

    name = "fse"
    description = "Feature-Style Encoder (w+ and a generator feature at layer K=5; modes latents/features/shift)"
    requires_weights = True

    def __init__(
        self,
        mode: str = "features",
        layer: int = 5,
        *,
        n_latent: int = 18,
        style_dim: int = 512,
        width: int = 64,
        layers: Sequence[int] = IRESNET50_LAYERS,
        feature_channels: int = 512,
        feature_stride: int = 2,
        input_size: int = 256,
        resolution: int = 1024,
    ) -> None:
        super().__init__()
        layers = tuple(int(n) for n in layers)
        _validate(mode, layer, n_latent, style_dim, width, layers, feature_channels,
                  feature_stride, input_size, resolution)
        self.mode = mode
        self.layer = int(layer)
        self.n_latent, self.style_dim = int(n_latent), int(style_dim)
        self.width, self.layers = int(width), layers
        self.feature_channels, self.feature_stride = int(feature_channels), int(feature_stride)
        self.input_size, self.resolution = int(input_size), int(resolution)
        self.n_downscale = (resolution // input_size).bit_length() - 1
        self.preprocessing = Preprocessing(size=self.resolution, mean=(0.5, 0.5, 0.5),
                                           std=(0.5, 0.5, 0.5))

        channels = stage_channels(width)
        self.conv = stem(width)
        self.block_1, self.block_2, self.block_3, self.block_4 = make_stages(width, layers)
        self.content_layer = nn.Sequential(
            nn.BatchNorm2d(channels[2], eps=BN_EPS),
            nn.Conv2d(channels[2], feature_channels, 3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(feature_channels, eps=BN_EPS),
            nn.PReLU(feature_channels),
            nn.Conv2d(feature_channels, feature_channels, 3, stride=feature_stride, padding=1,
                      bias=False),
            nn.BatchNorm2d(feature_channels, eps=BN_EPS),
        )
        self.avg_pool = nn.AdaptiveAvgPool2d((POOL, POOL))
        pooled = sum(channels) * POOL * POOL
        self.styles = nn.ModuleList(nn.Linear(pooled, style_dim) for _ in range(n_latent))
        self.register_buffer("latent_avg", torch.zeros(n_latent, style_dim))

    # -- configuration -------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "layer": self.layer, "n_latent": self.n_latent,
            "style_dim": self.style_dim, "width": self.width, "layers": list(self.layers),
            "feature_channels": self.feature_channels, "feature_stride": self.feature_stride,
            "input_size": self.input_size, "resolution": self.resolution,
        }

    @property
    def feature_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the predicted feature ``F``."""
        side = self.input_size // (8 * self.feature_stride)
        return (self.feature_channels, side, side)

    @property
    def feature_layer(self) -> int | None:
        return self.layer

    def check_generator(self, generator: Any) -> None:
        """Raise :class:`FSEConfigError` (one line) if ``generator`` cannot take this encoder's output."""
        if (generator.n_latent, generator.style_dim) != (self.n_latent, self.style_dim):
            raise FSEConfigError(
                f"fse encoder predicts w+ [{self.n_latent}, {self.style_dim}], the generator takes "
                f"[{generator.n_latent}, {generator.style_dim}]")
        if self.mode == "latents":
            return
        want = tuple(generator.feature_shapes()[self.layer])
        if want != self.feature_shape:
            raise FSEConfigError(
                f"fse feature is {list(self.feature_shape)} but generator activation "
                f"{self.layer} is {list(want)}; choose layer= to match")

    # -- forward -------------------------------------------------------------------------------
    def prepare(self, images: Tensor) -> Tensor:
        """Images ``[B, 3, H, W]`` in ``[0, 1]`` → encoder input ``[B, 3, input_size, input_size]``
        in ``[-1, 1]``: resize to ``resolution``, normalise, halve ``n_downscale`` times
        with upstream's ``F.interpolate(scale_factor=0.5, mode="bilinear")``."""
        x = self.preprocessing(images)
        for _ in range(self.n_downscale):
            x = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
        return x

    def run_network(self, x: Tensor, *, with_features: bool = True) -> tuple[Tensor, Tensor | None]:
        """Upstream ``fs_encoder_v2.forward`` on a prepared input → ``(enc [B, n_latent,
        style_dim], F [B, C, s, s] or None)``; ``enc`` does not include ``latent_avg``."""
        x = self.conv(x)
        x1 = self.block_1(x)
        x2 = self.block_2(x1)
        x3 = self.block_3(x2)
        x4 = self.block_4(x3)
        feature = self.content_layer(x3) if with_features else None
        pooled = torch.cat([self.avg_pool(t) for t in (x1, x2, x3, x4)], dim=1).flatten(1)
        codes = torch.stack([head(pooled) for head in self.styles], dim=1)
        return codes, feature

    def encode(self, images: Tensor) -> Inversion:
        """Aligned faces ``[B, 3, H, W]`` in ``[0, 1]`` → :class:`Inversion` (see the modes above)."""
        with_features = self.mode != "latents"
        codes, feature = self.run_network(self.prepare(images), with_features=with_features)
        w_plus = codes + self.latent_avg.to(codes.dtype)
        if feature is None:
            return Inversion(w_plus=w_plus)
        return Inversion(w_plus=w_plus, features={self.layer: feature},
                         feature_mode="shift" if self.mode == "shift" else "replace")


def _validate(mode: str, layer: int, n_latent: int, style_dim: int, width: int,
              layers: tuple[int, ...], feature_channels: int, feature_stride: int,
              input_size: int, resolution: int) -> None:
    if mode not in MODES:
        raise FSEConfigError(f"fse mode must be one of {', '.join(MODES)}, got {mode!r}")
    if not isinstance(layer, int) or not 0 <= layer < n_latent:
        raise FSEConfigError(f"fse layer must be an activation index 0..{n_latent - 1}, got {layer!r}")
    if min(n_latent, style_dim, width, feature_channels) < 1:
        raise FSEConfigError("fse n_latent, style_dim, width and feature_channels must be >= 1")
    if len(layers) != 4 or min(layers) < 1:
        raise FSEConfigError(f"fse layers must be 4 block counts >= 1, got {list(layers)}")
    if feature_stride not in (1, 2):
        raise FSEConfigError(f"fse feature_stride must be 1 or 2, got {feature_stride!r}")
    if input_size < 8 * feature_stride or input_size % (8 * feature_stride):
        raise FSEConfigError(
            f"fse input_size must be a multiple of {8 * feature_stride}, got {input_size!r}")
    ratio = resolution // input_size if input_size else 0
    if resolution % input_size or ratio < 1 or ratio & (ratio - 1):
        raise FSEConfigError(f"fse resolution ({resolution}) must be input_size ({input_size}) "
                             "times a power of two")


# ---------------------------------------------------------------------------------------------
# Converter


def _looks_like(obj: Mapping[str, Any]) -> str | None:
    """Name the kind of a non-FSE upstream file from its top-level / state-dict keys."""
    keys = {str(k) for k in obj}
    inner = obj.get("state_dict")
    inner_keys = {str(k) for k in inner} if isinstance(inner, Mapping) else set()
    if any(k.startswith("encoder.") for k in keys | inner_keys):
        if any(k.startswith("inverter.") for k in inner_keys):
            return "a StyleFeatureEditor checkpoint (inverter.* keys), not FSE"
        return "an e4e/pSp checkpoint (encoder.* keys), not FSE"
    if "generator_smooth" in keys and "e4e" in keys:
        return "a StyleRes checkpoint ('e4e' / 'generator_smooth'), not FSE"
    if "g_ema" in keys or "style.1.weight" in keys or "G_ema" in keys:
        return "a StyleGAN2 generator checkpoint, not FSE"
    return None


def fse_state_from_file(obj: Any, path: Path, notes: list[str]) -> dict[str, Tensor]:
    """The ``fs_encoder_v2`` state dict of an upstream file (``143_enc.pth`` or ``checkpoint.pth``)."""
    if not isinstance(obj, Mapping):
        raise ConversionError(f"holds a {type(obj).__name__}, expected an FSE state dict", path=path)
    if "enc_state_dict" in obj:
        state = obj["enc_state_dict"]
        if not isinstance(state, Mapping):
            raise ConversionError("'enc_state_dict' is not a state dict", path=path)
        notes.append("training checkpoint: used 'enc_state_dict' (optimiser/scheduler state ignored)")
    else:
        state = obj
    kind = _looks_like(obj) if "conv.0.weight" not in state else None
    if kind is not None:
        raise ConversionError(f"this looks like {kind}", path=path)
    state = {str(k): v for k, v in state.items()}
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
        notes.append("stripped the DataParallel 'module.' prefix")
    bad = [k for k, v in state.items() if not isinstance(v, Tensor)]
    if bad:
        raise ConversionError(f"entry {bad[0]!r} is a {type(state[bad[0]]).__name__}, not a tensor; "
                              "expected a plain FSE state dict", path=path)
    for anchor in ("conv.0.weight", "content_layer.1.weight", "styles.0.weight"):
        if anchor not in state:
            top = ", ".join(sorted(state)[:5]) or "none"
            raise ConversionError(f"is not an FSE encoder state dict (no {anchor!r}; first keys: "
                                  f"{top})", path=path)
    return state


def _count(state: Mapping[str, Tensor], prefix: str) -> int:
    """``1 + `` the largest index ``i`` of keys ``{prefix}.{i}.*`` (0 if there are none)."""
    rx = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.")
    found = [int(m.group(1)) for k in state if (m := rx.match(k))]
    return max(found) + 1 if found else 0


def _int_option(options: Mapping[str, Any], key: str, default: int, path: Path | None) -> int:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConversionError(f"option {key}={value!r} is not an integer", path=path)
    try:
        return int(value)
    except ValueError:
        raise ConversionError(f"option {key}={value!r} is not an integer", path=path) from None


def infer_config(state: Mapping[str, Tensor], *, path: Path | None = None,
                 **options: Any) -> dict[str, Any]:
    """FSE config (architecture from shapes, the rest from ``options``) for a state dict."""
    def shape(key: str) -> tuple[int, ...]:
        return tuple(state[key].shape)

    stem_w, content_w, style_w = (shape(k) for k in ("conv.0.weight", "content_layer.1.weight",
                                                     "styles.0.weight"))
    if len(stem_w) != 4 or len(content_w) != 4 or len(style_w) != 2:
        raise ConversionError("FSE tensors conv.0.weight / content_layer.1.weight / "
                              "styles.0.weight have unexpected ranks", path=path)
    width = stem_w[0]
    layers = [_count(state, f"block_{i}") for i in range(1, 5)]
    if min(layers) < 1:
        raise ConversionError(f"FSE backbone stages have {layers} blocks; every stage needs one",
                              path=path)
    pooled = sum(stage_channels(width)) * POOL * POOL
    if style_w[1] != pooled:
        raise ConversionError(f"FSE tensor styles.0.weight has {style_w[1]} inputs, expected "
                              f"{pooled} for stem width {width}", path=path)
    return {
        "mode": str(options.get("mode", "features")),
        "layer": _int_option(options, "layer", 5, path),
        "n_latent": _count(state, "styles"),
        "style_dim": style_w[0],
        "width": width,
        "layers": layers,
        "feature_channels": content_w[0],
        "feature_stride": _int_option(options, "feature_stride", 2, path),
        "input_size": _int_option(options, "input_size", 256, path),
        "resolution": _int_option(options, "resolution", 1024, path),
    }


def read_latent_avg(path: Path, n_latent: int, style_dim: int) -> tuple[Tensor, str]:
    """``latent_avg`` ``[n_latent, style_dim]`` from a pSp/e4e ``.pt`` (``['latent_avg']``) or a
    stylebridge checkpoint (a generator's ``[D]`` average w repeated, or an encoder's
    ``latent_avg``); returns it with a note saying where it came from."""
    path = Path(path)
    if not path.exists():
        raise ConversionError("no such file (given as latent_avg=)", path=path)
    if path.suffix == ".safetensors":
        try:
            header = read_header(path)
            _, tensors = load_checkpoint(path)
        except CheckpointError as exc:
            raise ConversionError(str(exc).removeprefix(f"{path}: "), path=path) from None
        value = tensors.get("g_ema.latent_avg", tensors.get("latent_avg"))
        what = f"stylebridge {header.kind} checkpoint ({header.plugin})"
        if value is None:
            raise ConversionError(f"is a {what} without a latent_avg tensor", path=path)
        g_cfg = header.config.get("generator") if header.kind == "generator" else None
        if isinstance(g_cfg, Mapping) and "size" in g_cfg:
            g_latent = GeneratorConfig.from_dict(dict(g_cfg)).n_latent
            if g_latent != n_latent:
                raise ConversionError(
                    f"is a {g_cfg['size']}px generator ({g_latent} latent rows); the FSE "
                    f"encoder predicts {n_latent}", path=path)
    else:
        obj = torch_load_safe(path)
        value = obj.get("latent_avg") if isinstance(obj, Mapping) else None
        what = "'latent_avg' entry"
        if value is None:
            raise ConversionError("has no 'latent_avg' entry (expected psp_ffhq_encode.pt or a "
                                  "stylebridge generator checkpoint)", path=path)
    if not isinstance(value, Tensor) or not value.is_floating_point():
        raise ConversionError("'latent_avg' is not a float tensor", path=path)
    value = value.detach().float()
    if value.shape[-1] != style_dim:
        raise ConversionError(f"latent_avg has shape {list(value.shape)}, the FSE encoder needs "
                              f"width {style_dim}", path=path)
    if value.ndim == 1 or (value.ndim == 2 and value.shape[0] == 1):
        value = value.reshape(1, style_dim).repeat(n_latent, 1)
        how = f"repeated {n_latent}×"
    elif value.shape != (n_latent, style_dim):
        raise ConversionError(f"latent_avg has shape {list(value.shape)}, expected "
                              f"[{n_latent}, {style_dim}] or [{style_dim}]", path=path)
    else:
        how = "as stored"
    if not bool(torch.isfinite(value).all()):
        raise ConversionError("latent_avg contains NaN or Inf values", path=path)
    return value.contiguous(), f"latent_avg from {path.name} ({what}, {how})"


OFFICIAL_ARCH = {"n_latent": 18, "style_dim": 512, "width": 64, "layers": list(IRESNET50_LAYERS),
                 "feature_channels": 512}
_OPTIONS = {"latent_avg", "mode", "layer", "feature_stride", "input_size", "resolution"}


class FSEConverter(Converter):
    """Official FSE weights (``143_enc.pth``) + pSp ``latent_avg`` → stylebridge ``fse`` encoder."""

    name = "fse"
    accepted_options = frozenset(_OPTIONS)
    description = "official FSE weights (143_enc.pth) + pSp latent_avg -> fse encoder"
    source = ("FSE 143_enc.pth (plain fs_encoder_v2 state dict) or training checkpoint.pth; "
              "option latent_avg=psp_ffhq_encode.pt (or a stylebridge generator checkpoint)")

    def convert(self, src: Path, dst: Path, **options: Any) -> ConversionResult:
        src, dst = Path(src), Path(dst)
        self.check_options(options, src)
        notes: list[str] = []
        state = fse_state_from_file(torch_load_safe(src), src, notes)
        cfg = infer_config(state, path=src, **options)
        try:
            model = FSEEncoder(**cfg)
        except FSEConfigError as exc:
            raise ConversionError(str(exc), path=src) from None
        expected = {k: v.shape for k, v in model.state_dict().items() if k != "latent_avg"}
        counters = [k for k in expected if k.endswith(".num_batches_tracked")]
        if not any(k in state for k in counters):  # saved by a PyTorch without BN counters
            state.update({k: torch.tensor(0) for k in counters})
            notes.append("no BatchNorm num_batches_tracked counters in the file; set to 0 "
                         "(unused at inference)")
        check_state_dict(src, expected, state, what="FSE encoder", error=ConversionError)
        if options.get("latent_avg") in (None, ""):
            raise ConversionError(
                "FSE files hold no latent_avg: pass the option latent_avg=PATH with the pSp FFHQ "
                "checkpoint (psp_ffhq_encode.pt) or a stylebridge generator checkpoint", path=src)
        latent_avg, note = read_latent_avg(Path(str(options["latent_avg"])), model.n_latent,
                                           model.style_dim)
        notes.append(note)
        differ = {k: cfg[k] for k, v in OFFICIAL_ARCH.items() if cfg[k] != v}
        if differ:
            notes.append("not the official architecture: "
                         + ", ".join(f"{k}={v}" for k, v in differ.items()))
        loaded = {k: (v.float() if v.is_floating_point() else v.long()) for k, v in state.items()}
        loaded["latent_avg"] = latent_avg
        model.load_state_dict(loaded, strict=True)
        notes.append(LICENCE)
        extra = {"source": SOURCE, "source_file": src.name, "notes": notes, "licence": LICENCE}
        save_checkpoint(dst, model.state_dict(), kind="encoder", plugin=FSEEncoder.name,
                        config=model.config(), extra=extra)
        return ConversionResult(path=dst, kind="encoder", plugin=FSEEncoder.name,
                                n_tensors=len(loaded), notes=tuple(notes))


@hookimpl
def register_encoders(register: Any) -> None:
    register(FSEEncoder)


@hookimpl
def register_converters(register: Any) -> None:
    register(FSEConverter())
