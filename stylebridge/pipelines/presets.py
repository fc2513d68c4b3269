"""The random-weight presets: the one place that builds untrained stand-in networks.

Two kinds of stand-ins, both labelled RANDOM WEIGHTS wherever they are used:

* the **tiny preset** (:func:`build_tiny_models`): a small StyleGAN2 and tiny e4e / FSE
  encoders that run in seconds on a CPU.  ``stylebridge demo`` uses :data:`DEMO_TINY`
  (64 px) when no official weights are installed, ``stylebridge reproduce thesis-tables
  --preset tiny`` uses :data:`REPRODUCE_TINY` (32 px) and writes it to files with
  :func:`build_tiny_preset` (plus FeatureShift models, StyleSpace domains and tiny CLIPs);
* **official-architecture** networks with random weights sized to a given generator
  (:func:`random_e4e`, :func:`random_fse`, :func:`random_featureshift`), for the rows of
  ``reproduce --allow-random`` whose weights are missing.

Everything is drawn from torch's CPU generator seeded by ``seed`` inside
:func:`random_seeded`, so a preset depends on its seed only and leaves the caller's random
state as it was.
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from stylebridge.core.checkpoint import save_checkpoint
from stylebridge.core.images import from_generator_range, save_png
from stylebridge.core.interfaces import Encoder
from stylebridge.core.io import write_json
from stylebridge.core.stylegan2 import Generator
from stylebridge.core.stylegan2.checkpoint import save_stylegan2
from stylebridge.core.tensorfile import save_tensors
from stylebridge.plugins.domains.stylespace import StyleSpace
from stylebridge.plugins.encoders.fse import FSEEncoder
from stylebridge.plugins.encoders.psp import E4EEncoder
from stylebridge.plugins.nets.clip import import_open_clip, quiet_open_clip
from stylebridge.plugins.renderers.featureshift import FeatureShift, save_featureshift
from stylebridge.registry.resolve import Provenance, record_provenance


@contextlib.contextmanager
def random_seeded(seed: int) -> Iterator[None]:
    """Seed torch's CPU generator inside the block; the outer random state is restored."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def quiet(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` without open_clip's 'no pretrained weights' log line and warnings, and
    without open_clip's module-level logging configuring the caller's root logger
    (:func:`~stylebridge.plugins.nets.clip.quiet_open_clip`)."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with quiet_open_clip(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn()
    finally:
        logger.setLevel(level)


# ---------------------------------------------------------------------------------------------
# The tiny preset: generator + e4e + FSE


@dataclass(frozen=True)
class TinySpec:
    """The shape of a tiny preset and how its untrained encoders are calibrated.

    ``perturb``: std of the noise added to every generator parameter (non-trivial biases and
    noise strengths give varied images); ``n_images``: generator samples drawn after the
    generator (the photos of ``reproduce``'s preset, also its calibration images);
    ``calibration``: ``"feature_std"`` scales FSE's last BatchNorm so that its feature has the
    spread of the generator's activation (:func:`match_feature_std`), ``"spread"`` scales the
    encoders' output layers so that their outputs vary across images (:func:`spread_outputs`).
    """

    size: int
    style_dim: int
    n_mlp: int
    channels: dict[int, int] = field(default_factory=dict)
    perturb: float = 0.0
    mean_samples: int = 1024
    fse_layer: int = 5
    n_images: int = 0
    calibration: str = "feature_std"
    e4e_widths: tuple[int, ...] = (16, 24, 32, 48)
    fse_width: int = 8


#: ``stylebridge demo`` without official weights: 64 px, FSE at the second 16 px conv.
DEMO_TINY = TinySpec(size=64, style_dim=64, n_mlp=4,
                     channels={4: 64, 8: 64, 16: 48, 32: 32, 64: 24},
                     mean_samples=1024, fse_layer=5, calibration="feature_std")
#: ``reproduce thesis-tables --preset tiny``: 32 px, FSE at the second 8 px conv (32 ch).
REPRODUCE_TINY = TinySpec(size=32, style_dim=32, n_mlp=2, channels={4: 32, 8: 32, 16: 32, 32: 16},
                          perturb=0.1, mean_samples=512, fse_layer=3, n_images=3,
                          calibration="spread")


@dataclass
class TinyModels:
    """A tiny preset's networks (all random weights, eval mode) and its sample images."""

    generator: Generator
    e4e: Encoder
    fse: FSEEncoder
    images: Tensor | None = None   # [n_images, 3, size, size] in [0, 1], or None


def start_at_average(encoder: Encoder, generator: Generator) -> None:
    """Start an encoder at the generator's average w (its ``latent_avg``), as upstream does."""
    with torch.no_grad():
        encoder.latent_avg.copy_(
            generator.latent_avg.detach().to(encoder.latent_avg.device)
            .expand_as(encoder.latent_avg))


def match_feature_std(fse: FSEEncoder, generator: Generator, seed: int) -> None:
    """Untrained, FSE's feature is far larger than the generator's activation and saturates
    every image: scale its last BatchNorm so that F has the activation's spread, as training
    would (probe images from a generator seeded by ``seed``; w from torch's CPU generator)."""
    layer = fse.layer
    with torch.no_grad():
        probe = torch.rand(4, 3, generator.size, generator.size,
                           generator=torch.Generator().manual_seed(seed))
        feat = fse.encode(probe).features[layer]
        ref, _ = generator.features_upto(
            generator.styles(generator.make_wplus(torch.randn(4, generator.style_dim))),
            layer, randomize_noise=False)
        last_bn = fse.content_layer[-1]
        last_bn.weight.mul_(ref.std() / feat.std())
        last_bn.bias.zero_()


def spread_outputs(encoder: Encoder, images01: Tensor, target: float = 0.5) -> None:
    """Scale a random tiny encoder's output layers so that its w+ (and feature) differ across
    ``images01`` by about ``target`` (std), as a trained encoder's do; untouched, they are
    almost constant and every encoder row would have a Diversity of ~0."""
    with torch.no_grad():
        inversion = encoder.encode(images01)
        spread = float((inversion.w_plus - inversion.w_plus.mean(0)).std())
        for name, p in encoder.named_parameters():
            if re.fullmatch(r"(encoder\.)?styles\.\d+(\.linear)?\.weight", name):
                p.mul_(target / max(spread, 1e-8))
        if isinstance(encoder, FSEEncoder):
            for feat in inversion.features.values():
                encoder.content_layer[-1].weight.mul_(
                    target / max(float((feat - feat.mean(0)).std()), 1e-8))


def tiny_generator(spec: TinySpec, seed: int) -> Generator:
    """The preset's StyleGAN2 (draws from torch's current CPU generator; ``seed`` seeds the
    w average)."""

    gen = Generator(size=spec.size, style_dim=spec.style_dim, n_mlp=spec.n_mlp,
                    channels=dict(spec.channels))
    with torch.no_grad():
        if spec.perturb:
            for p in gen.parameters():
                p.add_(spec.perturb * torch.randn_like(p))
        gen.latent_avg.copy_(gen.mean_latent(spec.mean_samples, seed=seed))
    return gen.eval()


def build_tiny_models(spec: TinySpec, seed: int = 0) -> TinyModels:
    """The tiny preset's generator, e4e and FSE (``features`` mode) with random weights.

    e4e: IR-SE widths ``spec.e4e_widths``, one unit per stage, input = generator size.
    FSE: iresnet of width ``spec.fse_width``, feature at activation ``spec.fse_layer``
    (``C×s×s``), input ``8 s`` px (its third stage runs at input / 8 = the activation's side).
    Both start at the generator's average w and are calibrated as ``spec.calibration`` says.
    """
    with random_seeded(seed):
        return draw_tiny_models(spec, seed)


def draw_tiny_models(spec: TinySpec, seed: int = 0) -> TinyModels:
    """:func:`build_tiny_models` drawing from torch's current CPU random state (callers that
    draw more networks from the same stream, as :func:`build_tiny_preset`, seed it)."""

    gen = tiny_generator(spec, seed)
    images = None
    if spec.n_images:
        with torch.no_grad():
            z = torch.randn(spec.n_images, gen.style_dim)
            images = from_generator_range(gen(z, randomize_noise=False))
    e4e = E4EEncoder(n_styles=gen.n_latent, style_dim=gen.style_dim, input_size=gen.size,
                     widths=spec.e4e_widths, units=(1,) * len(spec.e4e_widths)).eval()
    channels, side, _ = gen.feature_shapes()[spec.fse_layer]
    fse = FSEEncoder("features", spec.fse_layer, n_latent=gen.n_latent,
                     style_dim=gen.style_dim, width=spec.fse_width, layers=(1, 1, 1, 1),
                     feature_channels=channels, feature_stride=1, input_size=side * 8,
                     resolution=side * 8).eval()
    start_at_average(e4e, gen)
    start_at_average(fse, gen)
    if spec.calibration == "feature_std":
        match_feature_std(fse, gen, seed)
    elif spec.calibration == "spread":
        if images is None or len(images) < 2:  # one image has no spread: 0.5 / 1e-8 would
            raise ValueError("calibration 'spread' needs n_images >= 2")  # blow w+ up to 1e7
        spread_outputs(e4e, images)
        spread_outputs(fse, images)
    else:
        raise ValueError(f"unknown calibration {spec.calibration!r}")
    # built here, not loaded: say they are random where pipelines look (is_random), so that
    # datasets, runs and reports made with them are labelled (the files written from them
    # say so in their headers)
    e4e.random_weights = fse.random_weights = True
    record_provenance(gen, Provenance("random", spec="tiny preset (random weights)"))
    return TinyModels(gen, e4e, fse, images)


# ---------------------------------------------------------------------------------------------
# Official architectures with random weights, sized to a generator


def random_e4e(generator: Generator, seed: int) -> Encoder:
    """An e4e of the official architecture (IR-SE50, 256 px) with random weights, sized to
    ``generator`` and starting at its average w."""

    with random_seeded(seed):
        enc = E4EEncoder(n_styles=generator.n_latent, style_dim=generator.style_dim)
    start_at_average(enc, generator)
    return enc.eval()


def fse_random_config(generator: Generator, layer: int = 5) -> dict[str, Any]:
    """An FSE config (official widths) whose feature fits ``generator``'s activation ``layer``
    (the last one if the generator has fewer)."""
    layer = min(layer, generator.n_latent - 1)
    channels, side, _ = generator.feature_shapes()[layer]
    stride = 2 if side * 16 <= 256 else 1      # official: 256 px input, stride 2 → 16 px
    input_size = side * 8 * stride
    resolution = input_size
    while resolution * 2 <= max(generator.size, input_size):
        resolution *= 2
    return {"layer": layer, "n_latent": generator.n_latent, "style_dim": generator.style_dim,
            "feature_channels": channels, "feature_stride": stride, "input_size": input_size,
            "resolution": resolution}


def random_fse(generator: Generator, mode: str, seed: int, layer: int = 5) -> Encoder:
    """An FSE (iresnet50) with random weights whose output fits ``generator``."""
    with random_seeded(seed):
        enc = FSEEncoder(mode=mode, **fse_random_config(generator, layer))
    start_at_average(enc, generator)
    return enc.eval()


def random_featureshift(generator: Generator, layer: int, seed: int) -> torch.nn.Module:
    """A FeatureShift (6 blocks, hidden = 1.5 C as 768 / 512) with random weights at ``layer``."""

    channels = generator.feature_shapes()[layer][0]
    with random_seeded(seed):
        return FeatureShift(feature_channels=channels, hidden=max(1, channels * 3 // 2),
                            layer=layer).eval()


# ---------------------------------------------------------------------------------------------
# `reproduce thesis-tables --preset tiny`: the tiny preset written to files


@dataclass
class TinyPreset:
    """Files of the tiny random-weight preset (see :func:`build_tiny_preset`)."""

    root: Path
    generator: Path
    e4e: Path
    fse: Path
    featureshift_e4e: Path
    featureshift_fse: Path
    domains: Path
    images: Path
    clip_config: Path
    clip_weights: dict[str, Path]


TINY_PROMPTS = (("tiny-pixar", "3D render in the style of Pixar"),
                ("tiny-sketch", "Pencil sketch portrait"))
TINY_CLIPS = {   # open_clip model configs: two small ViTs (patch 16 and 8) on 32 px inputs
    "tiny-vit-p16": {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32,
                                                     "head_width": 16, "patch_size": 16},
                     "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 16,
                                  "heads": 2, "layers": 1}},
    "tiny-vit-p8": {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32,
                                                    "head_width": 16, "patch_size": 8},
                    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 16,
                                 "heads": 2, "layers": 1}},
}
#: the tiny generator's second 8 px conv (32 ch): a 64 px FSE input fits it
TINY_FSE_LAYER = REPRODUCE_TINY.fse_layer


def _random_extra(what: str) -> dict[str, Any]:
    return {"random_weights": True,
            "notes": [f"RANDOM WEIGHTS: tiny {what} of `reproduce thesis-tables --preset tiny`"]}


def register_tiny_clip_configs(folder: Path) -> list[str]:
    """Write the open_clip configs of :data:`TINY_CLIPS` under ``folder`` and register them
    with open_clip (``load_clip(name)`` then builds them, with random weights); their names."""
    open_clip = import_open_clip()
    folder.mkdir(parents=True, exist_ok=True)
    for name, cfg in TINY_CLIPS.items():
        write_json(folder / f"{name}.json", cfg)
    open_clip.add_model_config(folder)
    return list(TINY_CLIPS)


def write_tiny_clips(folder: Path) -> dict[str, Path]:
    """The two tiny CLIPs of :data:`TINY_CLIPS` with random weights (drawn from torch's
    current CPU random state): their open_clip configs and weights files (metadata
    ``random_weights``) under ``folder``, configs registered with open_clip.  Returns
    ``{model name: weights file}``."""
    open_clip = import_open_clip()
    register_tiny_clip_configs(folder)
    clip_weights: dict[str, Path] = {}
    for name in TINY_CLIPS:
        model = quiet(lambda n=name: open_clip.create_model(n, pretrained=None))
        clip_weights[name] = folder / f"{name}.safetensors"
        # byte-identical for the same seed (its sha256 is what resumed runs compare)
        save_tensors(clip_weights[name], dict(model.state_dict()),
                     {"random_weights": "true", "quick_gelu": "false",
                      "note": "RANDOM WEIGHTS: tiny CLIP of the reproduce preset"})
    return clip_weights


def build_tiny_preset(root: str | Path, *, seed: int = 0, n_images: int = 3) -> TinyPreset:
    """Write the tiny random-weight preset under ``root`` (seconds on a CPU).

    :data:`REPRODUCE_TINY`: a 32 px StyleGAN2 (style_dim 32, 8 latent rows), ``n_images``
    photos rendered by it, an e4e (IR-SE widths 16–48, 32 px input), an FSE (width 8, 64 px
    input, feature at activation 3 = 32×8×8), then two FeatureShift models (3 blocks) at that
    layer, two StyleSpace domains with random offsets and text prompts, and two tiny CLIP
    models (open_clip configs + weights files whose metadata says ``random_weights``).  Every
    checkpoint's header says RANDOM WEIGHTS.
    """
    if n_images < 2:  # checked before any folder is made (draw_tiny_models checks it too)
        raise ValueError("calibration 'spread' needs n_images >= 2")
    root = Path(root)
    for sub in ("images", "domains", "clip"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    spec = replace(REPRODUCE_TINY, n_images=n_images)
    with random_seeded(seed):
        models = draw_tiny_models(spec, seed)
        gen = models.generator
        paths = {"generator": root / "generator.safetensors"}
        save_stylegan2(paths["generator"], gen, extra=_random_extra("generator"))
        assert models.images is not None
        for i, image in enumerate(models.images):
            save_png(root / "images" / f"photo{i}.png", image)
        for name, enc in (("e4e", models.e4e), ("fse", models.fse)):
            paths[name] = root / f"{name}.safetensors"
            save_checkpoint(paths[name], enc.state_dict(), kind="encoder", plugin=enc.name,
                            config=enc.config(), extra=_random_extra(name))
        channels = gen.feature_shapes()[spec.fse_layer][0]
        for key, guide in (("featureshift_e4e", "e4e"), ("featureshift_fse", "fse")):
            model = FeatureShift(feature_channels=channels, hidden=48, n_blocks=3,
                                 layer=spec.fse_layer, residual=True)
            paths[key] = root / f"{key}.safetensors"
            # recorded as `featureshift build-dataset` records it (sources.guide, absolute):
            # Adapter(renderer=...) and `adapt` build that guide when none is given; `render`
            # takes the model whose guide made its inversions (FSE's here), not e4e's
            save_featureshift(paths[key], model, extra={**_random_extra(f"FeatureShift ({guide})"),
                                                        "guiding_encoder": {"name": guide},
                                                        "sources": {"guide": str(
                                                            paths[guide].resolve())}})
        for i, (name, prompt) in enumerate(TINY_PROMPTS):
            method = StyleSpace(size=gen.size, style_dim=gen.style_dim, channels=gen.cfg.channels)
            keys = list(method.offsets)
            with torch.no_grad():
                for key in (keys[:3] if i == 0 else keys[-3:]):
                    method.offsets[key].normal_(0.0, 1.5)
            method.save(root / "domains" / f"{name}.safetensors",
                        extra={"target": {"text": prompt}, **_random_extra("domain")})

        clip_weights = write_tiny_clips(root / "clip")
    return TinyPreset(root=root, generator=paths["generator"], e4e=paths["e4e"],
                      fse=paths["fse"], featureshift_e4e=paths["featureshift_e4e"],
                      featureshift_fse=paths["featureshift_fse"], domains=root / "domains",
                      images=root / "images", clip_config=root / "clip",
                      clip_weights=clip_weights)
