"""Parity with the reference implementation's outputs (tests/data/stylegan2, from ../shared).

Every test here has ``parity`` in its name: ``pytest -k parity`` runs exactly them.
Tolerances are the fixture README's.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch.testing import assert_close

from stylebridge.core.stylegan2.checkpoint import load_stylegan2

IMG_TOL = {"atol": 1e-4, "rtol": 1e-4}
LATENT_TOL = {"atol": 1e-5, "rtol": 1e-5}


@pytest.fixture(scope="module")
def nets(converted_tiny):
    ck = load_stylegan2(converted_tiny, discriminator=True)
    return ck.generator, ck.discriminator


def test_parity_converted_config_matches_fixture(sg2_fixture, nets):
    gen, disc = nets
    cfg = sg2_fixture["config"]
    assert gen.size == cfg["size"] and gen.style_dim == cfg["style_dim"]
    assert gen.n_latent == cfg["n_latent"] and gen.num_layers == cfg["num_layers"]
    assert gen.n_style_layers == cfg["n_modulation_calls"]
    assert gen.cfg.channels == {int(k): v for k, v in cfg["channels"].items()}
    assert sum(p.numel() for p in gen.parameters()) == cfg["n_params"]["g_ema"]
    assert sum(p.numel() for p in disc.parameters()) == cfg["n_params"]["d"]
    assert_close(gen.latent_avg, sg2_fixture["expected"]["latent_avg"], atol=0, rtol=0)


def test_parity_mapping(sg2_fixture, nets):
    gen, _ = nets
    exp = sg2_fixture["expected"]
    with torch.no_grad():
        assert_close(gen.mapping(exp["z"]), exp["w"], **LATENT_TOL)
        assert_close(gen.mapping(exp["z2"]), exp["w2"], **LATENT_TOL)


def test_parity_image_and_latents(sg2_fixture, nets):
    gen, _ = nets
    exp = sg2_fixture["expected"]
    with torch.no_grad():
        image, latents = gen([exp["z"]], randomize_noise=False, return_latents=True)
    assert_close(latents, exp["latent_image"], **LATENT_TOL)
    assert_close(image, exp["image"], **IMG_TOL)


@pytest.mark.parametrize("order", ["grouped", "shared"])
def test_parity_image_both_modulation_orders(sg2_fixture, nets, order):
    gen, _ = nets
    exp = sg2_fixture["expected"]
    convs = [m for m in gen.modules() if hasattr(m, "fused")]
    try:
        for m in convs:
            m.fused = order == "grouped"
        with torch.no_grad():
            image = gen([exp["z"]], randomize_noise=False)
    finally:
        for m in convs:
            m.fused = None
    assert_close(image, exp["image"], **IMG_TOL)


def test_parity_style_vectors_in_call_order(sg2_fixture, nets):
    gen, _ = nets
    exp = sg2_fixture["expected"]
    cfg = sg2_fixture["config"]
    layers = gen.style_layers()
    assert [f"{layer.name}.modulation" for layer in layers] == cfg["style_call_modules"]
    assert [layer.latent_index for layer in layers] == cfg["style_call_latent_index"]
    with torch.no_grad():
        styles = gen.styles(exp["latent_image"])
    assert len(styles) == 14
    for i, s in enumerate(styles):
        assert_close(s, exp[f"style_call_{i:02d}"], **LATENT_TOL)


def test_parity_intermediate_features_and_rgb_skips(sg2_fixture, nets):
    gen, _ = nets
    exp = sg2_fixture["expected"]
    with torch.no_grad():
        styles = gen.styles(exp["latent_image"])
        for k in range(1, gen.n_latent):
            feat, skip = gen.features_upto(styles, k, randomize_noise=False)
            name = "feature_conv1" if k == 1 else f"feature_convs_{k - 2:02d}"
            assert_close(feat, exp[name], **IMG_TOL)
            if k == 1:
                assert_close(skip, exp["rgb_to_rgb1"], **IMG_TOL)
            elif k % 2 == 1:  # ToRGB of stage j reads activation 2j+3
                assert_close(skip, exp[f"rgb_to_rgbs_{(k - 3) // 2:02d}"], **IMG_TOL)


def test_parity_truncation(sg2_fixture, nets):
    gen, _ = nets
    exp = sg2_fixture["expected"]
    with torch.no_grad():
        explicit = gen([exp["z"]], truncation=0.7, truncation_latent=exp["latent_avg"],
                       randomize_noise=False)
        default_center = gen([exp["z"]], truncation=0.7, randomize_noise=False)
    assert_close(explicit, exp["image_trunc07"], **IMG_TOL)
    assert_close(default_center, exp["image_trunc07"], **IMG_TOL)


def test_parity_wplus_input(sg2_fixture, nets):
    gen, _ = nets
    exp = sg2_fixture["expected"]
    with torch.no_grad():
        image = gen([exp["wplus"]], input_is_latent=True, randomize_noise=False)
    assert_close(image, exp["image_wplus"], **IMG_TOL)


def test_parity_style_mixing(sg2_fixture, nets):
    gen, _ = nets
    exp = sg2_fixture["expected"]
    with torch.no_grad():
        image, latents = gen([exp["z"], exp["z2"]], inject_index=3, randomize_noise=False,
                             return_latents=True)
    assert_close(latents, exp["latent_mix"], **LATENT_TOL)
    assert_close(image, exp["image_mix"], **IMG_TOL)


def test_parity_explicit_noise_list(sg2_fixture, nets):
    gen, _ = nets
    exp = sg2_fixture["expected"]
    g_state = sg2_fixture["ckpt"]["g_ema"]
    noise = [g_state[f"noises.noise_{i}"] for i in range(gen.num_layers)]
    with torch.no_grad():
        image = gen([exp["z"]], noise=noise)
        random_noise = gen([exp["z"]], randomize_noise=True)
    assert_close(image, exp["image"], **IMG_TOL)
    assert (random_noise - exp["image"]).abs().max() > 1e-2  # noise matters


def test_parity_discriminator_score(sg2_fixture, nets):
    _, disc = nets
    exp = sg2_fixture["expected"]
    with torch.no_grad():
        score = disc(exp["image"])
    assert_close(score, exp["d_score"], atol=1e-5, rtol=1e-4)


def test_parity_state_dict_round_trip_through_our_format(sg2_fixture, nets, tmp_path):
    """Our checkpoint holds exactly the upstream tensors (plus latent_avg)."""
    gen, disc = nets
    ckpt = sg2_fixture["ckpt"]
    ours = gen.state_dict()
    assert set(ours) - {"latent_avg"} == set(ckpt["g_ema"])
    for k, v in ckpt["g_ema"].items():
        assert torch.equal(ours[k], v), k
    for k, v in ckpt["d"].items():
        assert torch.equal(disc.state_dict()[k], v), k


def test_parity_full_size_manifest_layout(sg2_fixture):
    """Our 1024px modules have exactly the official FFHQ config-f keys and shapes."""
    from stylebridge.core.stylegan2 import Discriminator, Generator

    manifest = json.loads((sg2_fixture["dir"] / "rosinality_ffhq1024_keys.json").read_text())
    with torch.device("meta"):
        gen, disc = Generator(size=1024), Discriminator(size=1024)
    g_shapes = {k: list(v.shape) for k, v in gen.state_dict().items() if k != "latent_avg"}
    assert g_shapes == {k: v[0] for k, v in manifest["g_ema"].items()}
    assert {k: list(v.shape) for k, v in disc.state_dict().items()} == {
        k: v[0] for k, v in manifest["d"].items()}
    assert sum(p.numel() for p in gen.parameters()) == manifest["n_params"]["g_ema"]
    assert sum(p.numel() for p in disc.parameters()) == manifest["n_params"]["d"]
    assert gen.n_latent == manifest["n_latent"] and gen.num_layers == manifest["num_layers"]
    assert gen.n_style_layers == 26 and len(gen.conv_style_indices()) == 17
