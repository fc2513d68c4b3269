"""StyleDomain methods (stylespace, affine_plus, affinelight_plus), their converter, the
``corr`` loss and the alpha calibrator's fit.

Expected values are computed by hand in the tests (formulas of the thesis / StyleDomain
code), never by running our own code earlier.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from conftest import fixture_file, tiny_generator
from torch.testing import assert_close

from stylebridge.core.interfaces import LossBatch
from stylebridge.core.stylegan2.config import GeneratorConfig, default_channels
from stylebridge.core.synthesis import synthesize
from stylebridge.errors import CheckpointError, ConversionError, StylebridgeError
from stylebridge.plugins.calibrators.alpha import AlphaCalibrator, fit_alpha, skip_scale
from stylebridge.plugins.converters.styledomain import (
    StyleDomainConverter,
    dissimilar_domains_tensors,
    expected_shapes,
    similar_domains_offsets,
)
from stylebridge.plugins.domains.affine import AffineLightPlus, AffinePlus
from stylebridge.plugins.domains.base import DomainMismatchError
from stylebridge.plugins.domains.stylespace import StyleSpace
from stylebridge.plugins.losses.corr import CorrLoss
from stylebridge.registry.resolve import load_domain, load_plugin

SIZE, SD = 32, 32


def _desc(gen: Any) -> dict[str, Any]:
    return {"size": gen.size, "style_dim": gen.style_dim,
            "channels": {str(r): c for r, c in gen.cfg.channels.items()}}


@pytest.fixture(scope="module")
def gen() -> Any:
    return tiny_generator(seed=0, size=SIZE, style_dim=SD)


@pytest.fixture(scope="module")
def w_plus(gen: Any) -> torch.Tensor:
    z = torch.randn(2, SD, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        return gen.make_wplus(z) + 0.1 * torch.randn(2, gen.n_latent, SD,
                                                     generator=torch.Generator().manual_seed(4))


def _random_offsets(method: StyleSpace, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in method.offsets.values():
            p.copy_(torch.randn(p.shape, generator=g))


# ---------------------------------------------------------------------------------------------
# layout


@pytest.mark.parametrize("size", [32, 64])
def test_generator_layout_matches_the_generator(size: int) -> None:
    from stylebridge.plugins.domains.base import generator_layout

    g = tiny_generator(seed=0, size=size, style_dim=16)
    layout = generator_layout(g.cfg)
    assert len(layout) == g.n_style_layers
    for ours, theirs in zip(layout, g.style_layers(), strict=True):
        assert (ours.index, ours.name, ours.row, ours.in_ch, ours.is_rgb) == (
            theirs.index, theirs.name, theirs.latent_index, theirs.channels, theirs.is_rgb)
        weight = g.get_submodule(ours.name).weight  # [1, out, in, k, k]
        assert tuple(weight.shape[1:]) == (ours.out_ch, ours.in_ch, ours.kernel, ours.kernel)


# ---------------------------------------------------------------------------------------------
# stylespace


def test_stylespace_layers_match_styledomain_s_delta_at_1024() -> None:
    """17 conv offsets at 1024 px (no ToRGB), in the manifest's head → s-index order."""
    with torch.device("meta"):
        method = StyleSpace(size=1024)
        with_rgb = StyleSpace(size=1024, torgb=True)
    manifest = json.loads(fixture_file("encoders", "styledomain_stylespace_sdelta_ffhq1024_keys.json")
                          .read_text())
    assert len(method.offsets) == 17 and len(with_rgb.offsets) == 26
    assert sum(p.numel() for p in method.offsets.values()) == 6048
    mapping = manifest["head_to_s_index(26 s-vectors incl. ToRGB)"]
    widths = [c_in for c_in, _ in manifest["conv_dimensions_(c_in,c_out)"]]
    assert method.layers == [mapping[f"conv_{k}"] for k in range(17)]
    assert [method.offsets[str(i)].shape[0] for i in method.layers] == widths
    # ADA StyleSpace incl. ToRGB: 9,088 params at 1024 (NOTES §6b)
    assert sum(p.numel() for p in with_rgb.offsets.values()) == 9088


def test_stylespace_zero_offsets_reproduce_the_source(gen: Any, w_plus: torch.Tensor) -> None:
    method = StyleSpace(**_desc(gen))
    with torch.no_grad():
        src = gen.styles(w_plus)
        for a, b in zip(method.styles(gen, w_plus), src, strict=True):
            assert torch.equal(a, b)
        from stylebridge.core.interfaces import Inversion

        inv = Inversion(w_plus=w_plus)
        assert torch.equal(synthesize(gen, inv, method=method), synthesize(gen, inv))


def test_stylespace_offsets_and_scales_by_hand(gen: Any, w_plus: torch.Tensor) -> None:
    method = StyleSpace(**_desc(gen), torgb=True)
    _random_offsets(method)
    scale = torch.linspace(0.0, 2.0, gen.n_style_layers)
    with torch.no_grad():
        src = gen.styles(w_plus)
        out = method.styles(gen, w_plus, scale)
    for i in range(gen.n_style_layers):
        expected = src[i] + scale[i] * method.offsets[str(i)]
        assert_close(out[i], expected, atol=1e-6, rtol=0)
    conv_only = StyleSpace(**_desc(gen))
    assert conv_only.layers == gen.conv_style_indices()
    with pytest.raises(ValueError, match="one entry per style layer"):
        method.styles(gen, w_plus, [1.0, 2.0])


def test_checkpoint_roundtrip_and_generator_mismatch(gen: Any, w_plus: torch.Tensor,
                                                     tmp_path: Path) -> None:
    method = StyleSpace(**_desc(gen))
    _random_offsets(method, seed=7)
    path = method.save(tmp_path / "pixar.safetensors", extra={"note": "test"})
    loaded = load_plugin("domain_method", f"stylespace:{path}")
    assert isinstance(loaded, StyleSpace) and loaded.config() == method.config()
    for k, v in method.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    other = tiny_generator(seed=1, size=64, style_dim=SD)
    domain = load_domain(path)
    with pytest.raises(DomainMismatchError) as exc:
        domain.styles(other, other.make_wplus(torch.randn(1, SD)))
    assert str(exc.value) == ("domain pixar.safetensors was trained for a 32px generator "
                              "(11 style layers), this generator is 64px (14)")
    narrow = tiny_generator(seed=1, size=SIZE, style_dim=16)
    with pytest.raises(DomainMismatchError, match=r"with style_dim 32, this generator has "
                                                  r"style_dim 16$"):
        domain.check_generator(narrow)
    with pytest.raises(CheckpointError, match="is a checkpoint of kind 'domain_method'"):
        load_plugin("encoder", str(path))


# ---------------------------------------------------------------------------------------------
# affine_plus / affinelight_plus


def test_for_generator_builds_fresh_methods_that_fit(gen: Any, w_plus: torch.Tensor) -> None:
    """``train domain`` starts from ``cls.for_generator(G, **options)``."""
    src = gen.styles(w_plus)
    space = StyleSpace.for_generator(gen, torgb=True)
    assert space.config() == {**_desc(gen), "weight_offset_layers": [], "torgb": True}
    affine = AffinePlus.for_generator(gen, layers="3+4")
    light = AffineLightPlus.for_generator(gen, rank=2)
    assert affine.layers == [3, 4] and light.rank == 2
    with torch.no_grad():
        for method in (space, affine, light):  # untrained = the identity domain, bit-exact
            for a, b in zip(method.styles(gen, w_plus), src, strict=True):
                assert torch.equal(a, b)



def test_affine_plus_interpolates_between_source_and_tuned_affine(gen: Any,
                                                                  w_plus: torch.Tensor) -> None:
    method = AffinePlus(**_desc(gen))
    with pytest.raises(CheckpointError, match="no tuned affine weights"):
        method.styles(gen, w_plus)
    method.init_from(gen)
    with torch.no_grad():
        src = gen.styles(w_plus)
        for a, b in zip(method.styles(gen, w_plus), src, strict=True):
            assert torch.equal(a, b)  # identity domain, bit-exact
        i = 5  # convs.2 (8px... reads w+ row 3)
        layer = gen.style_layers()[i]
        method.affine_weight[str(i)].add_(torch.randn(method.affine_weight[str(i)].shape,
                                                      generator=torch.Generator().manual_seed(2)))
        method.affine_bias[str(i)].add_(1.5)
        w = w_plus[:, layer.latent_index]
        tuned = w @ (method.affine_weight[str(i)] / math.sqrt(SD)).T + method.affine_bias[str(i)]
        out = method.styles(gen, w_plus)
        assert_close(out[i], tuned, atol=1e-5, rtol=1e-5)
        half = torch.ones(gen.n_style_layers)
        half[i] = 0.25
        out = method.styles(gen, w_plus, half)
        assert_close(out[i], src[i] + 0.25 * (tuned - src[i]), atol=1e-5, rtol=1e-5)
        zero = torch.zeros(gen.n_style_layers)
        assert torch.equal(method.styles(gen, w_plus, zero)[i], src[i])
    with torch.device("meta"):
        full = AffinePlus(size=1024, weight_offset_layers=[11, 12, 13])  # b64 conv0/conv1/torgb
    # DissimilarDomains' Affine+ trains 5,187,968 parameters at 1024 (manifest)
    assert sum(p.numel() for p in full.parameters()) == 5_187_968


def test_affinelight_plus_low_rank_offset_by_hand(gen: Any, w_plus: torch.Tensor) -> None:
    method = AffineLightPlus(**_desc(gen), rank=3)
    with torch.no_grad():
        src = gen.styles(w_plus)
        for a, b in zip(method.styles(gen, w_plus), src, strict=True):
            assert torch.equal(a, b)  # U = 0 at init
        i = 1  # to_rgb1, row 1
        u = torch.randn(method.affine_out[str(i)].shape, generator=torch.Generator().manual_seed(5))
        method.affine_out[str(i)].copy_(u)
        v = method.affine_in[str(i)]
        assert_close(v.norm(dim=1), torch.ones(3))  # DissimilarDomains' init: unit rows
        w = w_plus[:, 1]
        expected = src[i] + 0.5 * (w @ ((u @ v) / math.sqrt(SD)).T)
        scale = torch.full((gen.n_style_layers,), 0.5)
        assert_close(method.styles(gen, w_plus, scale)[i], expected, atol=1e-5, rtol=1e-5)
    with torch.device("meta"):
        full = AffineLightPlus(size=1024, rank=5, weight_offset_layers=[11, 12, 13])
    assert sum(p.numel() for p in full.parameters()) == 637_824  # manifest's trainable count


def test_weight_offsets_reach_synthesis_as_arguments(gen: Any, w_plus: torch.Tensor) -> None:
    i = 6  # convs.3 (16px second conv)
    method = StyleSpace(**_desc(gen), weight_offset_layers=[i])
    layer = gen.style_layers()[i]
    mod = gen.get_submodule(layer.name)
    original = mod.weight
    before = original.detach().clone()
    off = torch.randn(method.weight_offsets[str(i)].shape, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        method.weight_offsets[str(i)].copy_(off)
    from stylebridge.core.interfaces import Inversion

    inv = Inversion(w_plus=w_plus)
    scale = torch.ones(gen.n_style_layers)
    scale[i] = 0.5
    with torch.no_grad():
        got = synthesize(gen, inv, method=method, offset_scale=scale)
    # the generator's own parameters are never touched
    assert mod.weight is original and torch.equal(mod.weight, before)
    assert [n for n, _ in mod.named_parameters()] == ["weight", "modulation.weight",
                                                      "modulation.bias"]
    # by hand: a copy of the generator whose conv weight is W + 0.5 * O (O broadcast over 3x3)
    ref = tiny_generator(seed=0, size=SIZE, style_dim=SD)
    with torch.no_grad():
        ref.get_submodule(layer.name).weight.add_(0.5 * off.unsqueeze(0))
        expected = ref.synthesis(ref.styles(w_plus), randomize_noise=False)
    assert_close(got, expected, atol=1e-5, rtol=0)
    deltas = method.weight_deltas(gen, scale)
    assert sorted(deltas) == [i]
    assert_close(deltas[i], 0.5 * off.unsqueeze(0), atol=0, rtol=0)
    # gradients reach the offsets through the delta argument
    image = gen.synthesis(method.styles(gen, w_plus), randomize_noise=False,
                          weight_deltas=method.weight_deltas(gen))
    image.square().mean().backward()
    assert method.weight_offsets[str(i)].grad is not None
    assert float(method.weight_offsets[str(i)].grad.abs().sum()) > 0
    assert original.grad is None or float(original.grad.abs().sum()) > 0  # W itself is a leaf
    gen.zero_grad(set_to_none=True)
    # two domains with weight offsets on the same layer render from one generator, interleaved
    other = StyleSpace(**_desc(gen), weight_offset_layers=[i])
    with torch.no_grad():
        other.weight_offsets[str(i)].copy_(-off)
        a = synthesize(gen, inv, method=method, offset_scale=scale)
        b = synthesize(gen, inv, method=other, offset_scale=scale)
        plain = synthesize(gen, inv, method=StyleSpace(**_desc(gen)), offset_scale=scale)
    assert torch.equal(a, got)
    assert not torch.allclose(a, b, atol=1e-3) and not torch.allclose(a, plain, atol=1e-3)
    assert torch.equal(mod.weight, before)
    with pytest.raises(ValueError, match="style layer"):
        gen.synthesis(gen.styles(w_plus), weight_deltas={gen.n_style_layers: off})


# ---------------------------------------------------------------------------------------------
# converter: SimilarDomains .pt


def _similar_file(path: Path, gen: Any, *, nvidia: bool = False, **extra: Any) -> dict[int, torch.Tensor]:
    """A SimilarDomains models_<step>.pt for the tiny generator; returns style index → Δ."""
    g = torch.Generator().manual_seed(11)
    layers = [layer for layer in gen.style_layers() if not layer.is_rgb]
    state: dict[str, torch.Tensor] = {}
    by_index: dict[int, torch.Tensor] = {}
    for k, layer in enumerate(layers):
        value = torch.randn(1, layer.channels, generator=g)
        if nvidia:
            res = 4 if k == 0 else 2 ** ((k - 1) // 2 + 3)
            name = "conv1" if k == 0 else ("conv0", "conv1")[(k - 1) % 2]
            state[f"heads.b{res}.{name}"] = value
        else:
            state[f"heads.conv_{k}.params_in"] = value
        by_index[layer.index] = value[0]
    ckpt = {"model_type": "parametrization", "patch_key": "s_delta", "state_dict": state,
            "adaptive": False, "da_type": "td",
            "sg2_params": {"img_size": gen.size, "latent_size": gen.style_dim, "map_layers": 2,
                           "channel_multiplier": 2, "device": "cuda:0", "checkpoint_path": "x.pt"},
            **extra}
    torch.save(ckpt, path)
    return by_index


@pytest.mark.parametrize("nvidia", [False, True])
def test_convert_similar_domains(gen: Any, w_plus: torch.Tensor, tmp_path: Path,
                                 nvidia: bool) -> None:
    src = tmp_path / "models_300.pt"
    latents = torch.randn(1, gen.n_latent - 7, SD)  # upstream's rows 7.. (11 at 1024 px)
    offsets = _similar_file(src, gen, nvidia=nvidia, da_type="im2im", style_latents=latents)
    dst = tmp_path / "domain.safetensors"
    result = StyleDomainConverter().convert(src, dst)
    assert result.plugin == "stylespace" and result.n_tensors == 7
    method = load_domain(dst)
    assert isinstance(method, StyleSpace) and not method.torgb
    assert method.generator_config.channels == gen.cfg.channels
    mixed_w = w_plus.clone()
    mixed_w[:, 7:] = latents[0]  # upstream's _mtg_mixing_noise (mx_n = 1)
    with torch.no_grad():
        src_styles = gen.styles(mixed_w)
        out = method.styles(gen, w_plus)
    for i in range(gen.n_style_layers):  # conv_k → conv_style_indices()[k]; ToRGB untouched
        expected = src_styles[i] + offsets[i] if i in offsets else src_styles[i]
        assert_close(out[i], expected, atol=1e-6, rtol=0)
    from stylebridge.core.checkpoint import read_header

    extra = read_header(dst).extra
    assert extra["da_type"] == "im2im" and extra["patch_key"] == "s_delta"
    assert_close(torch.tensor(extra["style_latents"]), latents)
    assert "device" not in extra["sg2_params"]


def test_convert_similar_domains_refusals(gen: Any, tmp_path: Path) -> None:
    src = tmp_path / "models.pt"
    _similar_file(src, gen, patch_key="s_mod")
    with pytest.raises(ConversionError, match=r"holds a 's_mod' parameterisation; only StyleSpace"):
        StyleDomainConverter().convert(src, tmp_path / "x.safetensors")
    ck = torch.load(src, weights_only=True)
    del ck["state_dict"]["heads.conv_3.params_in"]
    ck["patch_key"] = "s_delta"
    torch.save(ck, src)
    with pytest.raises(ConversionError, match=r"lacks StyleSpace heads conv_\[3\]") as exc:
        StyleDomainConverter().convert(src, tmp_path / "x.safetensors")
    assert "\n" not in str(exc.value) and str(src) in str(exc.value)
    torch.save(ck["state_dict"], src)  # bare state dict: s_delta and s_mod look alike
    with pytest.raises(ConversionError, match="pass -o patch_key=s_delta"):
        StyleDomainConverter().convert(src, tmp_path / "x.safetensors")


def test_similar_domains_full_size_layout_from_manifest() -> None:
    manifest_path = fixture_file("encoders", "styledomain_stylespace_sdelta_ffhq1024_keys.json")
    manifest = json.loads(manifest_path.read_text())
    state = {k: torch.empty(shape, device="meta") for k, (shape, _) in manifest["keys"].items()}
    desc, offsets = similar_domains_offsets(state, style_dim=512)
    assert desc["size"] == 1024
    assert GeneratorConfig(size=1024).channels == {int(r): c for r, c in desc["channels"].items()}
    assert desc["channels"] == {str(r): c for r, c in default_channels(2).items()}
    mapping = manifest["head_to_s_index(26 s-vectors incl. ToRGB)"]
    assert sorted(offsets) == sorted(mapping.values())
    shapes = expected_shapes("stylespace", desc)
    assert {f"offsets.{i}": tuple(t.shape) for i, t in offsets.items()} == shapes


# ---------------------------------------------------------------------------------------------
# converter: DissimilarDomains pickles (built without NVlabs code, see test_nvlabs)


def _nv(gen: Any) -> dict[str, torch.Tensor]:
    from test_nvlabs import ros_to_nv_generator

    return ros_to_nv_generator(gen.state_dict(), gen.latent_avg)


def _write(path: Path, nv: dict[str, torch.Tensor], gen: Any, parametrization: str,
           parts: list[str]) -> Path:
    from test_nvlabs import g_init_kwargs, write_nvlabs_pickle

    kw = g_init_kwargs(size=gen.size, style_dim=gen.style_dim, n_mlp=2,
                       use_domain_modulation=True, domain_modulation_parametrization=parametrization,
                       generator_requires_grad_parts=parts)
    return write_nvlabs_pickle(path, nv, None, path.with_suffix(".marker"), g_kwargs=kw)


def affinelight_nv(gen: Any, g: torch.Generator
                   ) -> tuple[dict[str, torch.Tensor], dict[Any, torch.Tensor],
                              dict[Any, torch.Tensor]]:
    """NVlabs tensors of ``gen`` with DissimilarDomains' ``affine_out_in_2_2_additive`` terms on
    every affine: ``(nv, us, vs)`` with ``us[i, t]`` [C_i, 2] and ``vs[i, t]`` [2, style_dim]."""
    nv = _nv(gen)
    us, vs = {}, {}
    for layer in gen.style_layers():
        p = _nv_prefix(layer.index)
        for t in range(2):
            vs[layer.index, t] = torch.randn(2, gen.style_dim, generator=g)
            us[layer.index, t] = torch.randn(layer.channels, 2, generator=g)
            nv[f"{p}.affine.weights_offset_in_{t}"] = vs[layer.index, t]
            nv[f"{p}.affine.weights_offset_out_{t}"] = us[layer.index, t]
        nv[f"{p}.affine.ones_weights"] = torch.ones(layer.channels, gen.style_dim)
    return nv, us, vs


def _nv_prefix(index: int) -> str:
    if index < 2:
        return f"synthesis.b4.{('conv1', 'torgb')[index]}"
    j, k = divmod(index - 2, 3)
    return f"synthesis.b{2 ** (j + 3)}.{('conv0', 'conv1', 'torgb')[k]}"


def test_convert_dissimilar_stylespace(gen: Any, w_plus: torch.Tensor, tmp_path: Path) -> None:
    nv = _nv(gen)
    g = torch.Generator().manual_seed(21)
    raw = {}
    for layer in gen.style_layers():
        p = _nv_prefix(layer.index)
        raw[layer.index] = torch.randn(1, layer.channels, generator=g)
        nv[f"{p}.offset"] = raw[layer.index]
        nv[f"{p}.offset_mask"] = torch.ones(1, layer.channels)
    nv[f"{_nv_prefix(3)}.offset_mask"][0, :4] = 0.0
    pkl = _write(tmp_path / "ss.pkl", nv, gen, "additive", ["synt_offset", "tRGB_offset"])
    dst = tmp_path / "ss.safetensors"
    result = StyleDomainConverter().convert(pkl, dst)
    assert result.plugin == "stylespace"
    method = load_domain(dst)
    assert method.torgb
    with torch.no_grad():
        src = gen.styles(w_plus)
        out = method.styles(gen, w_plus)
    for layer in gen.style_layers():
        i, c = layer.index, layer.channels
        off = raw[i][0].clone()
        if i == 3:
            off[:4] = 0.0
        if layer.is_rgb:
            # NVlabs ToRGB: s_nv = affine(w)/sqrt(C) + offset; ours scales the weight by
            # 1/sqrt(C) instead, so the effective modulations must agree:
            assert_close(out[i] / math.sqrt(c), src[i] / math.sqrt(c) + off, atol=1e-5, rtol=1e-5)
        else:
            assert_close(out[i], src[i] + off, atol=1e-6, rtol=0)
    assert not (tmp_path / "ss.marker").exists()  # no pickled code ran


def test_convert_dissimilar_affine_plus_and_light(gen: Any, w_plus: torch.Tensor,
                                                  tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(31)
    # Affine+: tuned affines + conv weight offsets on block b16 (b64 at 1024)
    nv = _nv(gen)
    tuned = {}
    for layer in gen.style_layers():
        p = _nv_prefix(layer.index)
        nv[f"{p}.affine.weight"] = nv[f"{p}.affine.weight"] + 0.3 * torch.randn(
            nv[f"{p}.affine.weight"].shape, generator=g)
        tuned[layer.index] = (nv[f"{p}.affine.weight"], nv[f"{p}.affine.bias"])
    woff = {}
    for i in (5, 6, 7):  # b16 conv0, conv1, torgb
        w = nv[f"{_nv_prefix(i)}.weight"]
        woff[i] = torch.randn(w.shape[0], w.shape[1], 1, 1, generator=g)
        nv[f"{_nv_prefix(i)}.weights_offset"] = woff[i]
        nv[f"{_nv_prefix(i)}.ones_weights"] = torch.ones_like(woff[i])
    pkl = _write(tmp_path / "ap.pkl", nv, gen, "out_in_additive",
                 ["synt_affine", "tRGB_affine", "synt_weights_offset.b16", "tRGB_weights_offset.b16"])
    dst = tmp_path / "ap.safetensors"
    assert StyleDomainConverter().convert(pkl, dst).plugin == "affine_plus"
    method = load_domain(dst)
    assert method.weight_offset_layers == [5, 6, 7]
    with torch.no_grad():
        out = method.styles(gen, w_plus)
        for layer in gen.style_layers():
            weight, bias = tuned[layer.index]
            w = w_plus[:, layer.latent_index]
            assert_close(out[layer.index], w @ (weight / math.sqrt(SD)).T + bias, atol=1e-5,
                         rtol=1e-5)
        for i in (5, 6, 7):
            assert torch.equal(method.weight_offsets[str(i)], woff[i])

    # AffineLight+: rank-2 terms, two of them (affine_out_in_2_2_additive) → rank 4, U / 2
    nv, us, vs = affinelight_nv(gen, g)
    pkl = _write(tmp_path / "al.pkl", nv, gen, "affine_out_in_2_2_additive",
                 ["synt_affine_weights_offset", "tRGB_affine_weights_offset"])
    dst = tmp_path / "al.safetensors"
    assert StyleDomainConverter().convert(pkl, dst).plugin == "affinelight_plus"
    method = load_domain(dst)
    assert method.rank == 4 and method.weight_offset_layers == []
    with torch.no_grad():
        src = gen.styles(w_plus)
        out = method.styles(gen, w_plus)
        for layer in gen.style_layers():
            i = layer.index
            delta = (us[i, 0] @ vs[i, 0] + us[i, 1] @ vs[i, 1]) / 2  # NVlabs: sum / terms
            w = w_plus[:, layer.latent_index]
            assert_close(out[i], src[i] + F.linear(w, delta / math.sqrt(SD)), atol=1e-5, rtol=1e-5)


def test_convert_dissimilar_refusals(gen: Any, tmp_path: Path) -> None:
    nv = _nv(gen)
    for layer in gen.style_layers():
        nv[f"{_nv_prefix(layer.index)}.offset"] = torch.zeros(1, layer.channels)
    pkl = _write(tmp_path / "mult.pkl", nv, gen, "multiplicative", ["synt_offset"])
    with pytest.raises(ConversionError, match="uses StyleSpace parametrisation 'multiplicative'"):
        StyleDomainConverter().convert(pkl, tmp_path / "x.safetensors")
    plain = _write(tmp_path / "plain.pkl", _nv(gen), gen, "additive", ["all_but_affine"])
    with pytest.raises(ConversionError, match="has no StyleDomain parameters") as exc:
        StyleDomainConverter().convert(plain, tmp_path / "x.safetensors")
    assert str(exc.value).startswith(str(plain)) and "\n" not in str(exc.value)
    # asked explicitly: the affine layers are taken as Affine+'s tuned ones
    result = StyleDomainConverter().convert(plain, tmp_path / "y.safetensors", method="affine_plus")
    assert result.plugin == "affine_plus"


@pytest.mark.parametrize("manifest_name, method, trainable", [
    ("styledomain_affine_plus_ffhq1024_keys.json", "affine_plus", 5_187_968),
    ("styledomain_affinelight_plus_ffhq1024_keys.json", "affinelight_plus", 637_824),
    ("styledomain_stylespace_ada_ffhq1024_keys.json", "stylespace", 9_088),
])
def test_dissimilar_full_size_layouts_from_manifests(manifest_name: str, method: str,
                                                     trainable: int) -> None:
    path = fixture_file("encoders", manifest_name)
    manifest = json.loads(path.read_text())
    state = {k: torch.empty(shape, device="meta") for k, (shape, _) in manifest["keys"].items()}
    cli = manifest["checkpoint_layout"]["cli"]
    parametrization = cli.split("--domain-modulation-parametrization ")[1].split()[0]
    parts = cli.split("--generator-requires-grad-parts ")[1].split()[0].split(",")
    kw = {"z_dim": 512, "w_dim": 512, "c_dim": 0, "img_resolution": 1024, "img_channels": 3,
          "mapping_kwargs": {"num_layers": 8},
          "synthesis_kwargs": {"use_domain_modulation": True, "architecture": "skip",
                               "domain_modulation_parametrization": parametrization,
                               "generator_requires_grad_parts": parts}}
    found = dissimilar_domains_tensors(state, kw)
    assert found.method == method
    assert found.config["size"] == 1024
    shapes = expected_shapes(method, found.config)
    assert {k: tuple(v.shape) for k, v in found.tensors.items()} == shapes
    # the converted parameters are exactly the ones StyleDomain trains
    assert sum(math.prod(s) for s in shapes.values()) == trainable == manifest["n_trainable_params"]
    if method != "stylespace":
        assert found.config["weight_offset_layers"] == [11, 12, 13]  # b64 conv0/conv1/torgb


# ---------------------------------------------------------------------------------------------
# corr loss


def test_corr_loss_hand_value() -> None:
    # layer A (B=2, C=2): old Gram off-diagonal 1·0+0·1 = 0, new [1,1]·[0,1] = 1 → 2·(1-0)² = 2
    # layer B (B=2, C=3): old [1,2,0]·[0,1,1] = 2, new [2,0,1]·[1,1,1] = 3 → 2·(3-2)² = 2
    old = [torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 2.0, 0.0], [0.0, 1.0, 1.0]])]
    new = [torch.tensor([[1.0, 1.0], [0.0, 1.0]]), torch.tensor([[2.0, 0.0, 1.0], [1.0, 1.0, 1.0]])]
    batch = LossBatch(styles=new, styles_source=old)
    assert float(CorrLoss()(batch)) == 4.0
    assert float(CorrLoss(reduction="mean")(batch)) == 1.0  # 4 / (2 layers × 2 ordered pairs)
    # B = 3, one layer, C = 1: old s = [1, 2, 3], new s = [1, 2, 4]
    # pairs (i,j): old products 2, 3, 6; new 2, 4, 8 → diffs 0, 1, 2 → 2·(0 + 1 + 4) = 10
    batch = LossBatch(styles=[torch.tensor([[1.0], [2.0], [4.0]])],
                      styles_source=[torch.tensor([[1.0], [2.0], [3.0]])])
    assert float(CorrLoss()(batch)) == 10.0
    # the diagonal (|s_i|²) is not part of the loss; a single sample has no pairs
    one = LossBatch(styles=[torch.tensor([[5.0, 5.0]])], styles_source=[torch.tensor([[1.0, 0.0]])])
    assert float(CorrLoss()(one)) == 0.0
    with pytest.raises(ValueError, match="needs 'styles_source'"):
        CorrLoss()(LossBatch(styles=new))


def test_corr_loss_cosine_reading_hand_value_and_scale_free() -> None:
    """norm=cosine compares cos(s_i, s_j): old [1,0]·[0,1] → 0, new [1,1]/√2·[0,1] → 1/√2;
    2 ordered pairs → 2·(1/√2)² = 1; scaling every vector changes nothing."""
    old = [torch.tensor([[1.0, 0.0], [0.0, 1.0]])]
    new = [torch.tensor([[1.0, 1.0], [0.0, 1.0]])]
    loss = CorrLoss(norm="cosine")
    assert float(loss(LossBatch(styles=new, styles_source=old))) == pytest.approx(1.0)
    scaled = LossBatch(styles=[1000.0 * new[0]], styles_source=[0.01 * old[0]])
    assert float(loss(scaled)) == pytest.approx(1.0)
    assert float(CorrLoss()(scaled)) > 1e5  # the formula as written grows with the scale
    assert loss.config() == {"reduction": "sum", "on": "styles", "norm": "cosine"}
    with pytest.raises(ValueError, match="norm must be 'none' or 'cosine'"):
        CorrLoss(norm="l2")


def test_corr_defaults_are_the_thesis_on_styles_and_scale_free_on_features() -> None:
    """Styles: the formula as written (sum of raw Gram differences). Features, where the thesis
    gives no form: cosine and mean by default; norm=none,reduction=sum still gives the formula
    as written there."""
    assert CorrLoss().config() == {"reduction": "sum", "on": "styles", "norm": "none"}
    on_features = CorrLoss()
    on_features.bind_trained_fields(frozenset({"output", "features"}))
    assert on_features.config() == {"reduction": "mean", "on": "features", "norm": "cosine"}
    # two samples' maps [1, 2, 1] flattened: old [1,0] and [0,1] (cos 0), new [1,1] and
    # [0,1] (cos 1/√2): 2 ordered pairs of (1/√2)² → mean 0.5; raw: 2·(1 - 0)² = 2
    old = torch.tensor([[[[1.0, 0.0]]], [[[0.0, 1.0]]]])
    new = torch.tensor([[[[1.0, 1.0]]], [[[0.0, 1.0]]]])
    batch = LossBatch(features=100.0 * new, features_target=old)
    assert float(on_features(batch)) == pytest.approx(0.5)  # the scale of F' does not matter
    raw = CorrLoss(on="features", norm="none", reduction="sum")
    assert float(raw(LossBatch(features=new, features_target=old))) == pytest.approx(2.0)
    assert float(raw(batch)) == pytest.approx(2 * (100.0**2) ** 2)  # and here it does
    assert CorrLoss(on="features", norm="none").config()["reduction"] == "mean"


def test_corr_loss_gradient_and_registry() -> None:
    loss = load_plugin("loss", "corr")
    assert isinstance(loss, CorrLoss)
    offset = torch.zeros(3, requires_grad=True)
    s_old = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    value = loss(LossBatch(styles=[s_old + offset], styles_source=[s_old]))
    value.backward()
    assert float(value.detach()) == 0.0 and offset.grad is not None
    assert torch.equal(offset.grad, torch.zeros(3))  # minimum at Δs = 0


def test_corr_subject_follows_the_trainer_only_when_not_given() -> None:
    """Without on=, a trainer that changes the features but no styles (train featureshift)
    makes corr read the features; a trainer that changes styles, or an explicit on=, keeps
    it; the recorded config says what was used."""
    features_only = frozenset({"output", "features"})
    loss = CorrLoss()
    loss.bind_trained_fields(features_only)
    assert loss.on == "features" and loss.config()["on"] == "features"
    assert loss.required_fields() == {"features", "features_target"}
    kept = CorrLoss()
    kept.bind_trained_fields(frozenset({"output", "styles"}))
    assert kept.on == "styles" and kept.required_fields() == {"styles", "styles_source"}
    explicit = CorrLoss(on="styles")
    explicit.bind_trained_fields(features_only)
    assert explicit.on == "styles"


# ---------------------------------------------------------------------------------------------
# alpha fit


def test_alpha_fit_recovers_known_alphas() -> None:
    g = torch.Generator().manual_seed(0)
    alphas = [0.5, 1.0, 2.0, 3.7]
    source = [torch.randn(c, generator=g) for c in (16, 8, 32, 4)]
    encoder = [a * x for a, x in zip(alphas, source, strict=True)]
    fit = fit_alpha(source, encoder)
    assert_close(fit.alpha, torch.tensor(alphas), atol=1e-6, rtol=1e-6)
    assert_close(fit.r2, torch.ones(4), atol=1e-6, rtol=0)
    # with an intercept b the through-origin fit is biased; the intercept fit recovers both
    shifted = [a * x + 0.3 for a, x in zip(alphas, source, strict=True)]
    fit_b = fit_alpha(source, shifted, fit="intercept")
    assert_close(fit_b.alpha, torch.tensor(alphas), atol=1e-5, rtol=1e-5)
    assert_close(fit_b.intercept, torch.full((4,), 0.3), atol=1e-5, rtol=1e-5)
    # through the origin by hand: Σxy / Σxx
    x, y = source[0], shifted[0]
    assert_close(fit_alpha([x], [y]).alpha[0], (x * y).sum() / (x * x).sum())


def test_alpha_calibrator_offset_scale() -> None:
    g = torch.Generator().manual_seed(1)
    source = [torch.rand(8, generator=g) + 0.5 for _ in range(5)]
    alphas = [2.0, 0.5, 1.0, -1.0, 4.0]  # layer 3: negative → unreliable → no offset
    calib = AlphaCalibrator.from_style_means(source, [a * x for a, x in zip(alphas, source,
                                                                          strict=True)])
    assert_close(calib.offset_scale(5), torch.tensor([0.5, 2.0, 1.0, 0.0, 0.25]))
    assert calib.unreliable_layers() == [3]
    skipped = AlphaCalibrator.from_style_means(source, [a * x for a, x in zip(alphas, source,
                                                                            strict=True)],
                                               skip_layers="0,rgb:4", power=1.0)
    assert_close(skipped.offset_scale(5), torch.tensor([0.0, 0.5, 1.0, 0.0, 0.0]))
    with pytest.raises(StylebridgeError,
                       match="alpha statistics have 5 style layers, this generator has 26"):
        calib.offset_scale(26)
    assert skip_scale(5, []) is None
    assert_close(skip_scale(5, [1]), torch.tensor([1.0, 0.0, 1.0, 1.0, 1.0]))


def test_affine_plus_trains_the_64px_block_by_default() -> None:
    """StyleDomain's Affine+ = the affine layers + the 64 px block's weights (b64)."""
    from stylebridge.core.stylegan2 import Generator
    from stylebridge.plugins.domains.base import block_layers

    gen = Generator(size=64, style_dim=16, n_mlp=1, channels={r: 8 for r in (4, 8, 16, 32, 64)})
    names = {layer.index: layer.name for layer in gen.style_layers()}
    assert block_layers(1024, 64) == [11, 12, 13] == block_layers(64, 64)
    assert [names[i] for i in block_layers(64, 64)] == ["convs.6.conv", "convs.7.conv",
                                                        "to_rgbs.3.conv"]
    kw = dict(size=64, style_dim=16, channels=gen.cfg.channels)
    for cls in (AffinePlus, AffineLightPlus):
        assert cls(**kw).weight_offset_layers == [11, 12, 13]
        assert cls(**kw, weight_offset_layers=()).weight_offset_layers == []
        assert cls(**kw, weight_offset_layers="12+13").weight_offset_layers == [12, 13]
        assert cls(**kw, layers=2).layers == [2]
    assert AffinePlus(size=32, style_dim=16,
                      channels={r: 8 for r in (4, 8, 16, 32)}).weight_offset_layers == []
    with pytest.raises(ValueError, match="style-layer indices like 11\\+12\\+13"):
        AffinePlus(**kw, weight_offset_layers="11,12")
