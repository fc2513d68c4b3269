"""IR-SE50 family: pSp, e4e, StyleRes, ArcFace — manifests, conversion, forward semantics, training.

Reference forwards here are written from the upstream descriptions (``functional`` code
on the raw upstream-layout tensors, or hooks on the generator's own modules), not with
the classes under test, so that they check the wiring independently.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from conftest import fixture_file, one_torch_thread, tiny_generator
from torch import Tensor
from torch.testing import assert_close

import stylebridge
from stylebridge.cli.main import main
from stylebridge.core.checkpoint import read_header
from stylebridge.core.images import from_generator_range
from stylebridge.core.interfaces import Inversion
from stylebridge.core.stylegan2 import Generator
from stylebridge.core.stylegan2.checkpoint import load_stylegan2
from stylebridge.core.stylegan2.nvlabs import convert_nvlabs_generator
from stylebridge.core.synthesis import synthesize
from stylebridge.errors import ConversionError, StylebridgeError
from stylebridge.plugins.converters.psp import ArcFaceConverter, E4EConverter, PSPConverter
from stylebridge.plugins.converters.styleres import StyleResConverter
from stylebridge.plugins.encoders.psp import E4EEncoder, PSPEncoder
from stylebridge.plugins.encoders.styleres import (
    EXTRA_ALIGNED,
    EXTRA_ENCODER,
    StyleResEncoder,
    StyleResLicenceWarning,
)
from stylebridge.plugins.nets.irse import ArcFaceIRSE50, expected_shapes, load_arcface_irse50
from stylebridge.registry import get_registry, reset_registry

# Tiny variants: 4 stages of distinct depths (so converters can infer them), 32 px input,
# 8 styles of width 32 (the tiny generator's n_latent / style_dim).
TINY: dict[str, Any] = {"n_styles": 8, "style_dim": 32, "input_size": 32,
                        "widths": [16, 24, 32, 48], "units": [1, 2, 1, 1]}
TINY_RES: dict[str, Any] = {**TINY, "feature_layer": 2, "feature_channels": 32, "hidden": 16}


def _manifest(name: str) -> dict[str, tuple[int, ...]]:
    path = fixture_file("encoders", name)
    return {k: tuple(v[0]) for k, v in json.loads(path.read_text())["keys"].items()}


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    reset_registry()
    yield
    reset_registry()


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Small models run much faster single-threaded on a shared 2-core machine."""
    with one_torch_thread():
        yield


def _one_line(exc: BaseException, path: Path) -> str:
    text = str(exc)
    assert "\n" not in text
    assert str(path) in text
    return text


# ---------------------------------------------------------------------------------------------
# Upstream-layout state dicts (random values) and independent reference forwards


def _randomised(state: Mapping[str, Tensor], seed: int, gain: float = 1.5) -> dict[str, Tensor]:
    """Non-trivial values for every tensor (BN statistics included); weights ~ gain / sqrt(fan_in)."""
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, Tensor] = {}
    for k, v in state.items():
        if not v.is_floating_point():
            out[k] = torch.tensor(3, dtype=v.dtype)
        elif k.endswith("running_var"):
            out[k] = torch.rand(v.shape, generator=gen) + 0.5
        elif k.endswith("running_mean") or k.endswith(".bias"):
            out[k] = 0.1 * torch.randn(v.shape, generator=gen)
        elif v.ndim == 1:  # BN / PReLU weights
            out[k] = 1.0 + 0.1 * torch.randn(v.shape, generator=gen)
        else:
            fan_in = max(1, v[0].numel())
            out[k] = torch.randn(v.shape, generator=gen) * (gain / math.sqrt(fan_in))
    return out


def upstream_encoder_state(seed: int = 0, config: Mapping[str, Any] = TINY) -> dict[str, Tensor]:
    """A GradualStyleEncoder / Encoder4Editing state dict (no prefix) for ``config``."""
    shapes = expected_shapes(lambda: E4EEncoder(**config))
    template = {k[len("encoder."):]: torch.zeros(s, dtype=torch.long if "num_batches" in k else
                                                 torch.float32)
                for k, s in shapes.items() if k.startswith("encoder.")}
    return _randomised(template, seed)


def _bn(x: Tensor, sd: Mapping[str, Tensor], p: str) -> Tensor:
    return F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd.get(f"{p}.weight"),
                        sd.get(f"{p}.bias"), False, 0.0, 1e-5)


def _ref_unit(x: Tensor, sd: Mapping[str, Tensor], p: str, stride: int) -> Tensor:
    if f"{p}.shortcut_layer.0.weight" in sd:
        short = _bn(F.conv2d(x, sd[f"{p}.shortcut_layer.0.weight"], stride=stride), sd,
                    f"{p}.shortcut_layer.1")
    else:
        short = x[:, :, ::stride, ::stride]
    r = _bn(x, sd, f"{p}.res_layer.0")
    r = F.conv2d(r, sd[f"{p}.res_layer.1.weight"], padding=1)
    r = F.prelu(r, sd[f"{p}.res_layer.2.weight"])
    r = F.conv2d(r, sd[f"{p}.res_layer.3.weight"], stride=stride, padding=1)
    r = _bn(r, sd, f"{p}.res_layer.4")
    se = F.relu(F.conv2d(r.mean((2, 3), keepdim=True), sd[f"{p}.res_layer.5.fc1.weight"]))
    return r * torch.sigmoid(F.conv2d(se, sd[f"{p}.res_layer.5.fc2.weight"])) + short


def ref_backbone(sd: Mapping[str, Tensor], x: Tensor, units: list[int]) -> list[Tensor]:
    x = F.prelu(_bn(F.conv2d(x, sd["input_layer.0.weight"], padding=1), sd, "input_layer.1"),
                sd["input_layer.2.weight"])
    taps, i = [], 0
    for n in units:
        for j in range(n):
            x = _ref_unit(x, sd, f"body.{i}", 2 if j == 0 else 1)
            i += 1
        taps.append(x)
    return taps


def ref_encoder(sd: Mapping[str, Tensor], x: Tensor, mode: str, n_styles: int,
                units: list[int]) -> tuple[Tensor, Tensor]:
    """Upstream GradualStyleEncoder (psp) / Encoder4Editing (e4e) forward → (codes, c1)."""
    _, c1, c2, c3 = ref_backbone(sd, x, units)

    def up_add(a: Tensor, b: Tensor) -> Tensor:
        return F.interpolate(a, size=b.shape[-2:], mode="bilinear", align_corners=True) + b

    p2 = up_add(c3, F.conv2d(c2, sd["latlayer1.weight"], sd["latlayer1.bias"]))
    p1 = up_add(p2, F.conv2d(c1, sd["latlayer2.weight"], sd["latlayer2.bias"]))

    def style(i: int, f: Tensor) -> Tensor:
        k = 0
        while f"styles.{i}.convs.{k}.weight" in sd:
            f = F.leaky_relu(F.conv2d(f, sd[f"styles.{i}.convs.{k}.weight"],
                                      sd[f"styles.{i}.convs.{k}.bias"], stride=2, padding=1), 0.01)
            k += 2
        w = sd[f"styles.{i}.linear.weight"]
        return F.linear(f.flatten(1), w / math.sqrt(w.shape[1]), sd[f"styles.{i}.linear.bias"])

    feats = [c3 if i < 3 else p2 if i < 7 else p1 for i in range(n_styles)]
    if mode == "psp":
        codes = [style(i, f) for i, f in enumerate(feats)]
    else:
        w0 = style(0, feats[0])
        codes = [w0] + [w0 + style(i, feats[i]) for i in range(1, n_styles)]
    return torch.stack(codes, 1), c1


def ros_to_nv(g: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Our (rosinality-layout) generator state → NVlabs names (StyleRes' generator_smooth)."""
    from test_nvlabs import ros_to_nv_generator

    return ros_to_nv_generator({k: v for k, v in g.items() if k != "latent_avg"}, g["latent_avg"])


def _images(n: int = 2, size: int = 32, seed: int = 5) -> Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _psp_file(tmp_path: Path, mode: str, *, seed: int = 0, name: str | None = None,
              enc: dict[str, Tensor] | None = None, **overrides: Any) -> tuple[Path, dict[str, Any]]:
    """An upstream pSp/e4e ``.pt`` (tiny): {state_dict: encoder.* + decoder.*, opts, latent_avg}."""
    gen = tiny_generator(seed=seed + 1)
    enc = upstream_encoder_state(seed) if enc is None else enc
    state = {f"encoder.{k}": v for k, v in enc.items()}
    dec = {k: v for k, v in gen.state_dict().items() if k != "latent_avg"}
    state.update({f"decoder.{k}": v for k, v in dec.items()})
    latent_avg = (0.3 * torch.randn(1, TINY["style_dim"])).repeat(TINY["n_styles"], 1)
    obj: dict[str, Any] = {
        "state_dict": state,
        "opts": {"encoder_type": "Encoder4Editing" if mode == "e4e" else "GradualStyleEncoder",
                 "start_from_latent_avg": True, "input_nc": 3, "stylegan_size": 32,
                 "checkpoint_path": None, "lpips_lambda": 0.8},
        "latent_avg": latent_avg,
    }
    obj.update(overrides)
    path = tmp_path / (name or f"{mode}_tiny.pt")
    torch.save(obj, path)
    return path, {"enc": enc, "gen": gen, "latent_avg": latent_avg, "obj": obj}


def _styleres_file(tmp_path: Path, seed: int = 0) -> tuple[Path, dict[str, Any]]:
    gen = tiny_generator(seed=seed + 2, conv_clamp=256)  # StyleRes' generator clamps at 256
    with torch.no_grad():
        gen.latent_avg.copy_(gen.mean_latent(256))
    enc = upstream_encoder_state(seed)
    shapes = expected_shapes(lambda: StyleResEncoder(**TINY_RES))
    mods = _randomised({k: torch.zeros(s) for k, s in shapes.items() if k.startswith("modify_")},
                       seed + 3, gain=0.7)
    g_nv = ros_to_nv(gen.state_dict())
    g_nv.update({f"synthesis.b8.{k}": v for k, v in mods.items()})  # K = 2 is b8.conv0
    latent_avg = 0.3 * torch.randn(TINY["n_styles"], TINY["style_dim"])
    path = tmp_path / "styleres_tiny.pth"
    torch.save({"e4e": enc, "latent_avg": latent_avg, "generator_smooth": g_nv}, path)
    return path, {"enc": enc, "gen": gen, "mods": mods, "latent_avg": latent_avg}


# ---------------------------------------------------------------------------------------------
# (1) manifests: our modules have exactly the official keys and shapes (meta device, no memory)


@pytest.mark.parametrize("manifest, cls", [("e4e_ffhq_encode_keys.json", E4EEncoder),
                                           ("psp_ffhq_encode_keys.json", PSPEncoder)])
def test_psp_family_state_dict_matches_manifest(manifest: str, cls: type) -> None:
    keys = _manifest(manifest)
    official = {k[len("encoder."):]: s for k, s in keys.items() if k.startswith("encoder.")}
    ours = expected_shapes(cls)
    assert ours.pop("latent_avg") == (18, 512)
    assert {k[len("encoder."):]: s for k, s in ours.items()} == official
    assert len(official) == 621
    n_params = sum(math.prod(s) for k, s in official.items() if not re.search(r"running_|num_batches", k))
    assert n_params == 267_136_704
    # the embedded decoder is our generator's layout: generator=PATH conversions fit
    decoder = {k[len("decoder."):]: s for k, s in keys.items() if k.startswith("decoder.")}
    with torch.device("meta"):
        gen = Generator(size=1024)
    assert {k: tuple(v.shape) for k, v in gen.state_dict().items() if k != "latent_avg"} == decoder


def test_styleres_state_dict_matches_manifest() -> None:
    keys = _manifest("styleres_ffhq_keys.json")
    mapped: dict[str, tuple[int, ...]] = {}
    base: dict[str, Tensor] = {}
    for k, s in keys.items():
        if k.startswith("e4e."):
            mapped["encoder." + k[4:]] = s
        elif k == "latent_avg":
            mapped[k] = s
        elif m := re.match(r"^generator_smooth\.synthesis\.b64\.(modify_feature_\w+\..+)$", k):
            mapped[m.group(1)] = s
        else:
            base[k[len("generator_smooth."):]] = torch.empty(s, device="meta")
    assert expected_shapes(StyleResEncoder) == mapped
    mods = [k for k in mapped if k.startswith("modify_")]
    assert sum(math.prod(mapped[k]) for k in mods) == 53_030_912 + 14_421_504 + 25_963_019
    # the rest of generator_smooth converts with the core NVlabs converter to our 1024 generator,
    # and its 64x64 stage puts the modules at activation K = 8 (b64.conv0 = convs[6], w[7])
    g_state, g_cfg, w_avg = convert_nvlabs_generator(base, {"synthesis_kwargs": {"conv_clamp": 256}})
    with torch.device("meta"):
        gen = Generator(**g_cfg)
    assert {k: tuple(v.shape) for k, v in g_state.items()} == {
        k: tuple(v.shape) for k, v in gen.state_dict().items() if k != "latent_avg"}
    assert w_avg is not None and tuple(w_avg.shape) == (512,)
    assert gen.feature_shapes()[8] == (512, 64, 64)
    layer = next(s for s in gen.style_layers() if s.name == "convs.6.conv")
    assert (layer.latent_index, layer.resolution) == (7, 64)


def test_arcface_state_dict_matches_upstream_backbone() -> None:
    keys = _manifest("e4e_ffhq_encode_keys.json")
    body = {k[len("encoder."):]: s for k, s in keys.items()
            if re.match(r"^encoder\.(input_layer|body)\.", k)}
    ours = expected_shapes(ArcFaceIRSE50)
    assert {k: s for k, s in ours.items() if not k.startswith("output_layer.")} == body
    bn = ["weight", "bias", "running_mean", "running_var"]
    head = {**{f"output_layer.0.{n}": (512,) for n in bn}, "output_layer.0.num_batches_tracked": (),
            "output_layer.3.weight": (512, 512 * 7 * 7), "output_layer.3.bias": (512,),
            **{f"output_layer.4.{n}": (512,) for n in bn}, "output_layer.4.num_batches_tracked": ()}
    assert {k: s for k, s in ours.items() if k.startswith("output_layer.")} == head


# ---------------------------------------------------------------------------------------------
# (1b) convert → load → forward on tiny upstream-layout files, against the reference forward


@pytest.mark.parametrize("mode", ["e4e", "psp"])
def test_convert_load_forward_psp_family(tmp_path: Path, mode: str) -> None:
    src, parts = _psp_file(tmp_path, mode)
    conv = E4EConverter() if mode == "e4e" else PSPConverter()
    dst, gdst = tmp_path / f"{mode}.safetensors", tmp_path / "gen.safetensors"
    result = conv.convert(src, dst, generator=str(gdst))
    assert (result.kind, result.plugin) == ("encoder", mode)
    assert any("MIT" in n for n in result.notes) and any("NVIDIA" in n for n in result.notes)
    header = read_header(dst)
    assert header.config == {**TINY} and "MIT" in header.extra["licence"]

    enc = stylebridge.create_encoder(mode, checkpoint=dst)
    assert type(enc).__name__ == ("E4EEncoder" if mode == "e4e" else "PSPEncoder")
    images = _images()
    with torch.no_grad():
        inv = enc.encode(images)
        codes, _ = ref_encoder(parts["enc"], images * 2 - 1, mode, 8, TINY["units"])
    assert_close(inv.w_plus, codes + parts["latent_avg"], rtol=1e-4, atol=1e-4)

    gen = load_stylegan2(gdst).generator
    w = torch.randn(2, 8, 32)
    with torch.no_grad():
        assert_close(gen.synthesis(gen.styles(w), randomize_noise=False),
                     parts["gen"].synthesis(parts["gen"].styles(w), randomize_noise=False))
    assert_close(gen.latent_avg, parts["latent_avg"][0])


def test_convert_notes_and_options(tmp_path: Path) -> None:
    src, parts = _psp_file(tmp_path, "e4e", opts={"encoder_type": "Encoder4Editing",
                                                  "start_from_latent_avg": False})
    result = E4EConverter().convert(src, tmp_path / "a.safetensors")
    assert any("start_from_latent_avg is False" in n for n in result.notes)
    assert any("generator=PATH" in n for n in result.notes)
    enc = stylebridge.create_encoder("e4e", checkpoint=tmp_path / "a.safetensors")
    assert torch.count_nonzero(enc.latent_avg) == 0
    # the generator's truncation centre is still the file's latent_avg
    E4EConverter().convert(src, tmp_path / "a2.safetensors", generator=str(tmp_path / "g.safetensors"))
    assert_close(load_stylegan2(tmp_path / "g.safetensors").generator.latent_avg,
                 parts["latent_avg"][0])
    with pytest.raises(ConversionError) as info:
        E4EConverter().convert(src, tmp_path / "b.safetensors", expect_size=1024)
    assert "unknown converter option" in _one_line(info.value, src)
    # upstream's get_keys() also accepts a flat dict; old files store opts as a Namespace
    _, parts = _psp_file(tmp_path, "e4e")
    flat = tmp_path / "flat.pt"
    torch.save({**parts["obj"]["state_dict"], "latent_avg": parts["latent_avg"],
                "opts": argparse.Namespace(encoder_type="Encoder4Editing")}, flat)
    E4EConverter().convert(flat, tmp_path / "c.safetensors")
    enc = stylebridge.create_encoder("e4e", checkpoint=tmp_path / "c.safetensors")
    assert_close(enc.latent_avg, parts["latent_avg"])


def test_convert_load_forward_styleres(tmp_path: Path) -> None:
    src, parts = _styleres_file(tmp_path)
    dst, gdst = tmp_path / "styleres.safetensors", tmp_path / "gen.safetensors"
    result = StyleResConverter().convert(src, dst, generator=str(gdst))
    assert any("non-commercial" in n for n in result.notes)
    assert any("K=2" in n for n in result.notes)
    header = read_header(dst)
    assert header.config == TINY_RES
    assert "non-commercial" in header.extra["licence"]
    assert "non-commercial" in read_header(gdst).extra["licence"]

    StyleResEncoder._licence_noted = False
    with pytest.warns(StyleResLicenceWarning, match="non-commercial"):
        enc = stylebridge.create_encoder("styleres", checkpoint=dst)
    gen = load_stylegan2(gdst).generator
    assert gen.cfg.conv_clamp == 256
    ref_gen = parts["gen"]
    images = _images()
    with torch.no_grad():
        inv = enc.encode(images, generator=gen)
        x = images * 2 - 1
        codes, c1 = ref_encoder(parts["enc"], x, "e4e", 8, TINY["units"])
        w = codes + parts["latent_avg"]
        ref_image = _ref_styleres(ref_gen, parts["mods"], c1, w, ref_gen.styles(w))
        assert_close(inv.w_plus, w, rtol=1e-4, atol=1e-4)
        assert_close(inv.extras[EXTRA_ENCODER], c1, rtol=1e-4, atol=1e-4)
        assert set(inv.modifiers) == {2} and inv.features == {}
        assert_close(enc.synthesize(gen, inv), ref_image, rtol=1e-4, atol=1e-4)
        # the modifier renders the same through the core pipeline
        assert_close(synthesize(gen, inv), ref_image, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------
# StyleRes' gated residual: reference through hooks on the generator's own conv modules


def _modules_from(mods: Mapping[str, Tensor]) -> Any:
    enc = StyleResEncoder(**TINY_RES)
    enc.load_state_dict({**enc.state_dict(), **mods})
    return enc.modify_feature_alignment, enc.modify_feature_extraction, enc.modify_feature_gates


def _ref_styleres(gen: Generator, mods: Mapping[str, Tensor], c1: Tensor, w: Tensor,
                  styles: list[Tensor]) -> Tensor:
    """Upstream StyleRes: F at b8.conv0 under w; then modify b8.conv0's output under ``styles``."""
    align, extract, gates = _modules_from(mods)
    conv0 = gen.convs[0]  # 8x8 stage, first conv = upstream synthesis.b8.conv0 (activation K=2)
    seen: dict[str, Tensor] = {}
    handle = conv0.register_forward_hook(lambda m, i, o: seen.__setitem__("F", o))
    gen.synthesis(gen.styles(w), randomize_noise=False)
    handle.remove()
    y = extract(align(c1, seen["F"]))

    def modify(m: Any, i: Any, x: Tensor) -> Tensor:
        delta, gate = gates(x, y)
        return x * (1 - gate) + (x + delta) * gate

    handle = conv0.register_forward_hook(modify)
    try:
        return gen.synthesis(styles, randomize_noise=False)
    finally:
        handle.remove()


def test_styleres_gate_recomputed_on_edited_path() -> None:
    torch.manual_seed(0)
    gen = tiny_generator(seed=3)
    enc = StyleResEncoder(**TINY_RES).eval()
    mods = _randomised({k: v for k, v in enc.state_dict().items() if k.startswith("modify_")}, 7,
                      gain=0.7)
    enc.load_state_dict({**enc.state_dict(), **mods})
    images = _images(seed=9)
    with torch.no_grad():
        inv = enc.encode(images, generator=gen)
        styles = gen.styles(inv.w_plus)
        edited = [s.clone() for s in styles]
        edited[2] = edited[2] + 0.5        # convs[0], which computes activation K = 2
        edited[6] = edited[6] + 0.5        # a later layer
        got = enc.synthesize(gen, inv, edited)
        want = _ref_styleres(gen, mods, inv.extras[EXTRA_ENCODER], inv.w_plus, edited)
        assert_close(got, want, rtol=1e-4, atol=1e-4)
        # the core pipeline recomputes the gate on the edited path through the modifier
        assert_close(gen.synthesis(edited, modifiers=inv.modifiers, randomize_noise=False), want,
                     rtol=1e-4, atol=1e-4)
        # a plain "replace" of the source activation is a different image: the gate matters
        x_src, _ = gen.features_upto(styles, 2, randomize_noise=False)
        naive = gen.synthesis(edited, features={2: inv.modifiers[2](x_src)},
                              randomize_noise=False)
        assert (naive - want).abs().max() > 1e-2
        # Y depends on the image only: the same with or without the stored extras
        no_y = Inversion(w_plus=inv.w_plus, extras={EXTRA_ENCODER: inv.extras[EXTRA_ENCODER]})
        assert_close(enc.synthesize(gen, no_y, edited), got)
        # residual form: x' - x = gate * dF, gate in (0, 1)
        x, _ = gen.features_upto(styles, 2, randomize_noise=False)
        out, gate = enc.modify(x, inv.extras[EXTRA_ALIGNED])
        delta, gate2 = enc.modify_feature_gates(x, inv.extras[EXTRA_ALIGNED])
        assert gate.shape == (2, 1, 8, 8) and bool(((gate > 0) & (gate < 1)).all())
        assert_close(out - x, gate2 * delta, rtol=1e-4, atol=1e-5)
        assert_close(inv.modifiers[2](x), out)


def test_styleres_needs_matching_generator() -> None:
    enc = StyleResEncoder(**TINY_RES)
    wrong = tiny_generator(channels={r: 16 for r in (4, 8, 16, 32)})
    with pytest.raises(StylebridgeError, match="activation 2"):
        enc.bind_generator(wrong)
    plain = enc.encode(_images())  # no generator: w+ and the encoder feature only
    assert plain.modifiers == {} and set(plain.extras) == {EXTRA_ENCODER}
    enc.bind_generator(tiny_generator())
    assert set(enc.encode(_images()).modifiers) == {2}
    assert "_generator" not in "".join(enc.state_dict())


def test_a_saved_styleres_inversion_renders_with_its_gated_residual(tmp_path: Path) -> None:
    """``--save-latents`` keeps StyleRes's tensors, not its modifier (a function): read back,
    the encoder rebuilds it, so a domain renders as from the photo.  Without it the picture
    differs by far more than float error (it used to, silently)."""
    from stylebridge.pipelines.adapter import Adapter
    from stylebridge.pipelines.inversion_file import (
        check_restorable,
        load_inversion,
        save_inversion,
        select_inversion,
    )
    from stylebridge.plugins.domains.stylespace import StyleSpace

    gen = tiny_generator(seed=3)
    enc = StyleResEncoder(**TINY_RES).eval()
    mods = _randomised({k: v for k, v in enc.state_dict().items() if k.startswith("modify_")}, 7,
                      gain=0.7)
    enc.load_state_dict({**enc.state_dict(), **mods})
    domain = StyleSpace(size=gen.size, style_dim=gen.style_dim,
                        channels={str(r): c for r, c in gen.cfg.channels.items()})
    with torch.no_grad():
        for offset in domain.offsets.values():
            offset.add_(0.5)
    adapter = Adapter(enc, gen, {"d": domain})
    with torch.no_grad():
        inv = enc.encode(_images(seed=9), generator=gen)
        want = adapter.render(inv)
        paths = [save_inversion(tmp_path / f"{i}.safetensors", select_inversion(inv, i),
                                encoder="styleres", encoder_spec="styleres:x.safetensors",
                                generator="g", modifiers=sorted(inv.modifiers))
                 for i in range(2)]
        for i, path in enumerate(paths):
            back, header = load_inversion(path)
            assert header.config["modifiers"] == [2] and back.modifiers == {}
            check_restorable(path, header, enc)
            got = adapter.render(back)
            for key in ("inversion", "d"):
                assert_close(got[key], want[key][i:i + 1], rtol=1e-5, atol=1e-5)
            lost = synthesize(gen, back)  # rendered without the residual
            assert (from_generator_range(lost) - want["inversion"][i:i + 1]).abs().max() > 0.05
        with pytest.raises(StylebridgeError, match=(
                r"is an inversion of 'styleres', which rebuilds its change at activation\(s\) 2 "
                r"when it is rendered: give --encoder styleres:x.safetensors")):
            check_restorable(path, header, E4EEncoder(**TINY))


# ---------------------------------------------------------------------------------------------
# (1c) ArcFace


def test_arcface_convert_and_load(tmp_path: Path) -> None:
    cfg = {"input_size": 32, "embedding_dim": 8, "widths": [16, 24, 32, 48], "units": [1, 2, 1, 1]}
    raw = _randomised({k: torch.zeros(s, dtype=torch.long if "num_batches" in k else torch.float32)
                       for k, s in expected_shapes(lambda: ArcFaceIRSE50(**cfg)).items()}, 11)
    # an old-style file: DataParallel prefix, no num_batches_tracked counters
    legacy = {f"module.{k}": v for k, v in raw.items() if not k.endswith("num_batches_tracked")}
    src = tmp_path / "model_ir_se50.pth"
    torch.save(legacy, src)
    dst = tmp_path / "arcface.safetensors"
    result = ArcFaceConverter().convert(src, dst)
    assert result.plugin == "arcface-irse50" and any("num_batches_tracked" in n for n in result.notes)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    taps = ref_backbone(raw, x, cfg["units"])
    h = _bn(taps[-1], raw, "output_layer.0").flatten(1)
    h = _bn(F.linear(h, raw["output_layer.3.weight"], raw["output_layer.3.bias"]), raw, "output_layer.4")
    want = h / h.norm(dim=1, keepdim=True)
    for path in (dst, src):
        model = load_arcface_irse50(path)
        assert not model.training and not any(p.requires_grad for p in model.parameters())
        emb = model(x)
        assert emb.shape == (3, 8)
        assert_close(emb.norm(dim=1), torch.ones(3))
        assert_close(emb, want, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match=r"\[B, 3, 32, 32\]"):
        model(torch.zeros(1, 3, 64, 64))
    # an encoder state dict has no embedding head
    enc_src = tmp_path / "enc.pth"
    torch.save(upstream_encoder_state(), enc_src)
    with pytest.raises(ConversionError) as info:
        ArcFaceConverter().convert(enc_src, tmp_path / "x.safetensors")
    assert "embedding head" in _one_line(info.value, enc_src)


# ---------------------------------------------------------------------------------------------
# (2) shapes and statistics


@pytest.mark.parametrize("cls", [E4EEncoder, PSPEncoder, StyleResEncoder])
def test_official_size_shapes_on_meta(cls: type) -> None:
    with torch.device("meta"):
        enc = cls()
        inv = enc.encode(torch.empty(2, 3, 256, 256))
        assert inv.w_plus.shape == (2, 18, 512)
        if cls is StyleResEncoder:
            assert inv.extras[EXTRA_ENCODER].shape == (2, 128, 64, 64)
            gen = Generator(size=1024)
            full = enc.encode(torch.empty(1, 3, 256, 256), generator=gen)
            assert full.modifiers[8](torch.empty(1, 512, 64, 64)).shape == (1, 512, 64, 64)
            assert full.extras[EXTRA_ALIGNED].shape == (1, 512, 64, 64)
    assert enc.preprocessing.size == 256 and enc.preprocessing.mean == (0.5, 0.5, 0.5)
    assert cls.requires_weights


def test_e4e_and_psp_code_structure() -> None:
    torch.manual_seed(0)
    e4e, psp = E4EEncoder(**TINY).eval(), PSPEncoder(**TINY).eval()
    psp.load_state_dict(e4e.state_dict())  # interchangeable weight layouts
    avg = torch.randn(8, 32)
    e4e.latent_avg.copy_(avg)
    psp.latent_avg.copy_(avg)
    images = _images(4, size=48)  # any input size: resized to 32 by the preprocessing
    with torch.no_grad():
        a, b = e4e.encode(images).w_plus, psp.encode(images).w_plus
        assert a.shape == b.shape == (4, 8, 32) and bool(torch.isfinite(a).all())
        # e4e: w_i = w_0 + delta_i with delta_i = psp's style i; psp: w_i independent
        assert_close(a[:, 0], b[:, 0])
        assert_close(a[:, 1:] - (a[:, :1] - avg[:1]), b[:, 1:], rtol=1e-4, atol=1e-4)
        # per-image (eval mode): batch composition does not change a code
        assert_close(e4e.encode(images[1:2]).w_plus, a[1:2], rtol=1e-4, atol=1e-5)
        # with all style heads' linear layers zeroed the inversion is the average latent
        for s in e4e.encoder.styles:
            s.linear.weight.zero_()
            s.linear.bias.zero_()
        assert_close(e4e.encode(images).w_plus, avg.expand(4, -1, -1))
        assert a.std() > 0.05  # non-degenerate codes from random weights


def test_registry_and_requires_weights() -> None:
    reg = get_registry()
    assert {"psp", "e4e", "styleres"} <= set(reg.names("encoder"))
    assert {"psp", "e4e", "styleres", "arcface-irse50"} <= set(reg.names("converter"))
    with pytest.raises(StylebridgeError, match="needs weights"):
        stylebridge.create_encoder("e4e")
    enc = reg.create("encoder", "styleres", **TINY_RES)
    assert type(enc)(**enc.config()).config() == TINY_RES


# ---------------------------------------------------------------------------------------------
# (3) optimisation: gradients flow image → encoder → generator


OPT = {"n_styles": 8, "style_dim": 32, "input_size": 32, "widths": [16, 16, 32, 32],
       "units": [1, 1, 1, 1]}


def _training_set(gen: Generator, n: int = 4) -> tuple[Tensor, Tensor]:
    torch.manual_seed(0)
    with torch.no_grad():
        w = gen.make_wplus(torch.randn(n, gen.style_dim))
        images = gen.synthesis(gen.styles(w), randomize_noise=False)
    return images, ((images + 1) / 2).clamp(0, 1)


@pytest.mark.parametrize("cls", [E4EEncoder, PSPEncoder])
def test_training_reduces_reconstruction_error(cls: type) -> None:
    gen = tiny_generator().requires_grad_(False)
    images, targets = _training_set(gen)
    torch.manual_seed(1)
    enc = cls(**OPT)
    enc.latent_avg.copy_(gen.mean_latent(1000).expand(8, -1))

    def mse() -> Tensor:
        w = enc.encode(targets).w_plus
        return F.mse_loss(gen.synthesis(gen.styles(w), randomize_noise=False), images)

    with torch.no_grad():
        enc.eval()
        before = mse().item()
        average = F.mse_loss(gen.synthesis(gen.styles(enc.latent_avg.expand(4, -1, -1)),
                                           randomize_noise=False), images).item()
    enc.train()
    opt = torch.optim.Adam(enc.parameters(), lr=5e-3)
    for _ in range(100):
        loss = mse()
        opt.zero_grad()
        loss.backward()
        opt.step()
    enc.eval()
    with torch.no_grad():
        after = mse().item()
    assert after < before / 5 and after < average / 5, (before, average, after)


def test_training_styleres_feature_path() -> None:
    """Only the feature modules train; w+ is frozen at the average: all gain is the K=2 path."""
    gen = tiny_generator().requires_grad_(False)
    images, targets = _training_set(gen)
    torch.manual_seed(1)
    enc = StyleResEncoder(**OPT, feature_layer=2, feature_channels=32, hidden=16).eval()
    enc.latent_avg.copy_(gen.mean_latent(1000).expand(8, -1))
    with torch.no_grad():
        for s in enc.encoder.styles:
            s.linear.weight.zero_()
            s.linear.bias.zero_()
    enc.encoder.requires_grad_(False)
    params = [p for n, p in enc.named_parameters() if n.startswith("modify_feature_")]
    assert params and all(p.requires_grad for p in params)

    def mse() -> Tensor:
        return F.mse_loss(enc.synthesize(gen, enc.encode(targets, generator=gen)), images)

    with torch.no_grad():
        w_only = F.mse_loss(gen.synthesis(gen.styles(enc.encode(targets).w_plus),
                                          randomize_noise=False), images).item()
    opt = torch.optim.Adam(params, lr=1e-3)
    for step in range(100):
        loss = mse()
        opt.zero_grad()
        loss.backward()
        if step == 0:
            for name in ("modify_feature_alignment", "modify_feature_extraction",
                         "modify_feature_gates"):
                grads = [p.grad for n, p in enc.named_parameters() if n.startswith(name)]
                assert any(g is not None and g.abs().sum() > 0 for g in grads), name
        opt.step()
    with torch.no_grad():
        after = mse().item()
    assert after < w_only / 5, (w_only, after)


# ---------------------------------------------------------------------------------------------
# (4) wrong / corrupt / malicious files: one-line errors naming the file


def _fse_file(tmp_path: Path) -> Path:
    keys = _manifest("fse_ffhq_keys.json")
    path = tmp_path / "143_enc.pth"
    torch.save({k: torch.zeros(1) for k in keys}, path)
    return path


@pytest.mark.parametrize("conv", [E4EConverter(), PSPConverter(), StyleResConverter(),
                                  ArcFaceConverter()], ids=lambda c: c.name)
def test_fse_file_is_named_as_such(tmp_path: Path, conv: Any) -> None:
    src = _fse_file(tmp_path)
    with pytest.raises(ConversionError) as info:
        conv.convert(src, tmp_path / "out.safetensors")
    text = _one_line(info.value, src)
    assert "FSE" in text and "convert fse" in text
    assert not (tmp_path / "out.safetensors").exists()


def test_cli_convert_wrong_file_one_line(tmp_path: Path, capsys: Any) -> None:
    src = _fse_file(tmp_path)
    code = main(["convert", "e4e", str(src), str(tmp_path / "out.safetensors")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "\n" not in err and "FSE" in err


def test_cross_family_files(tmp_path: Path) -> None:
    psp, _ = _psp_file(tmp_path, "psp")
    with pytest.raises(ConversionError) as info:
        E4EConverter().convert(psp, tmp_path / "o.safetensors")
    text = _one_line(info.value, psp)
    assert "GradualStyleEncoder" in text and "convert psp" in text
    e4e, _ = _psp_file(tmp_path, "e4e")
    with pytest.raises(ConversionError) as info:
        StyleResConverter().convert(e4e, tmp_path / "o.safetensors")
    assert "convert e4e" in _one_line(info.value, e4e)
    sres, _ = _styleres_file(tmp_path)
    with pytest.raises(ConversionError) as info:
        E4EConverter().convert(sres, tmp_path / "o.safetensors")
    assert "StyleRes" in _one_line(info.value, sres)
    with pytest.raises(ConversionError) as info:
        ArcFaceConverter().convert(e4e, tmp_path / "o.safetensors")
    assert "pSp/e4e" in _one_line(info.value, e4e)
    gen_file = tmp_path / "g.pt"
    torch.save({"g_ema": tiny_generator().state_dict()}, gen_file)
    with pytest.raises(ConversionError) as info:
        PSPConverter().convert(gen_file, tmp_path / "o.safetensors")
    assert "stylegan2-rosinality" in _one_line(info.value, gen_file)


def _broken(enc: dict[str, Tensor], case: str) -> dict[str, Tensor]:
    enc = dict(enc)
    if case == "missing":
        del enc["body.1.res_layer.3.weight"]
    elif case == "shape":
        enc["latlayer2.weight"] = torch.zeros(48, 24, 3, 3)
    elif case == "nan":
        enc["styles.5.linear.weight"] = enc["styles.5.linear.weight"].clone()
        enc["styles.5.linear.weight"][0, 0] = float("nan")
    return enc


@pytest.mark.parametrize("case, expect", [("missing", "missing 1 tensor(s): encoder.body.1.res_layer.3"),
                                          ("shape", "encoder.latlayer2.weight has shape [48, 24, 3, 3]"),
                                          ("nan", "encoder.styles.5.linear.weight contains NaN")])
def test_bad_tensors(tmp_path: Path, case: str, expect: str) -> None:
    src, _ = _psp_file(tmp_path, "e4e", enc=_broken(upstream_encoder_state(), case))
    with pytest.raises(ConversionError) as info:
        E4EConverter().convert(src, tmp_path / "o.safetensors")
    assert expect in _one_line(info.value, src)


def test_bad_latent_avg_and_opts(tmp_path: Path) -> None:
    src, _ = _psp_file(tmp_path, "e4e", latent_avg=torch.zeros(5, 32))
    with pytest.raises(ConversionError) as info:
        E4EConverter().convert(src, tmp_path / "o.safetensors")
    assert "'latent_avg' has shape [5, 32]" in _one_line(info.value, src)
    src, _ = _psp_file(tmp_path, "psp", opts={"encoder_type": "GradualStyleEncoder", "input_nc": 1})
    with pytest.raises(ConversionError) as info:
        PSPConverter().convert(src, tmp_path / "o.safetensors")
    assert "1-channel" in _one_line(info.value, src)


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("conv", [E4EConverter(), StyleResConverter(), ArcFaceConverter()],
                         ids=lambda c: c.name)
def test_malicious_and_corrupt_files(tmp_path: Path, conv: Any) -> None:
    marker = tmp_path / "MARKER"
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": {"encoder.x": _Evil(marker)}, "latent_avg": torch.zeros(1)}, evil)
    with pytest.raises(ConversionError) as info:
        conv.convert(evil, tmp_path / "o.safetensors")
    assert "refuses to load: the pickle references `posix.system`" in _one_line(info.value, evil)
    assert not marker.exists()
    good, _ = _psp_file(tmp_path, "e4e")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ConversionError) as info:
        conv.convert(corrupt, tmp_path / "o.safetensors")
    assert "not a readable PyTorch checkpoint" in _one_line(info.value, corrupt)
    with pytest.raises(ConversionError) as info:
        conv.convert(tmp_path / "absent.pt", tmp_path / "o.safetensors")
    assert "no such file" in _one_line(info.value, tmp_path / "absent.pt")


def test_e4e_without_latent_avg_uses_the_decoders_mean_w(tmp_path: Path) -> None:
    """Upstream e4e falls back to decoder.mean_latent(10000) when the file has no latent_avg."""
    src, parts = _psp_file(tmp_path, "e4e")
    obj = dict(parts["obj"])
    del obj["latent_avg"]
    torch.save(obj, src)
    result = E4EConverter().convert(src, tmp_path / "e4e.safetensors")
    assert any("mean w over 10000" in n for n in result.notes)
    enc = stylebridge.create_encoder("e4e", checkpoint=tmp_path / "e4e.safetensors")
    with torch.no_grad():
        z = torch.randn(10_000, TINY["style_dim"], generator=torch.Generator().manual_seed(0))
        want = parts["gen"].mapping(z).mean(0)          # the decoder the file was made from
    assert_close(enc.latent_avg, want.expand_as(enc.latent_avg), atol=1e-5, rtol=1e-5)
    # no latent_avg and no decoder: nothing to fall back on
    obj["state_dict"] = {k: v for k, v in obj["state_dict"].items() if k.startswith("encoder.")}
    torch.save(obj, src)
    with pytest.raises(ConversionError, match="no 'latent_avg' and no decoder"):
        E4EConverter().convert(src, tmp_path / "e4e2.safetensors")


def test_cli_convert_never_overwrites_with_its_generator_option(tmp_path: Path,
                                                               capsys: Any) -> None:
    """`-o generator=PATH` once replaced an existing file without --force, the upstream SRC
    itself included, and could name DST: refused in one line, nothing written; --force
    overwrites a plain existing file (never SRC)."""
    import hashlib

    src, _ = _psp_file(tmp_path, "e4e")
    other = tmp_path / "victim.pt"
    other.write_bytes(b"someone's file")

    def digest(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    before = {p: digest(p) for p in (src, other)}
    dst = tmp_path / "enc.safetensors"
    for gen, why in ((other, "-o generator already exists (use --force"),
                     (src, "-o generator is the same file as SRC"),
                     (dst, "-o generator is the same file as DST"),
                     (tmp_path, "-o generator is a folder")):
        code = main(["convert", "e4e", str(src), str(dst), "-o", f"generator={gen}"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and why in err, err
        assert not dst.exists()
    assert {p: digest(p) for p in (src, other)} == before
    code = main(["convert", "e4e", str(src), str(dst), "-o", f"generator={src}", "--force"])
    assert code == 2 and "same file as SRC" in capsys.readouterr().err
    assert digest(src) == before[src]
    assert main(["convert", "e4e", str(src), str(dst), "-o", f"generator={other}",
                 "--force"]) == 0
    assert load_stylegan2(other).generator.size == 32 and read_header(dst).plugin == "e4e"
