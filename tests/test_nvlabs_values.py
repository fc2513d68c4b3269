"""Parity with NVlabs' own forward pass: a pickle written by stylegan2-ada-pytorch's code,
converted with our ``stylegan2-nvlabs`` converter, must give the images NVlabs' code gave.

``tests/test_nvlabs.py`` builds NVlabs-*like* pickles itself and converts them back (a round trip
that pins names and shapes); this file checks the *values* against the reference implementation.

Fixture (``tests/data/stylegan2/nvlabs_tiny32*``; details and checksums in
``nvlabs_tiny32_config.json``), made once by ``tests/data/stylegan2/make_nvlabs_tiny32.py``, which
imports NVlabs' modules from a checkout given on its command line and holds no NVlabs code:

* NVlabs/stylegan2-ada-pytorch at ``d72cc7d041b42ec8e806021a205ed9349f87c6a4`` (2023-09-22),
  unmodified (no patches were needed on python 3.11.7, torch 2.14.1+cu130, numpy 2.4.6), CPU
  only, float32, 2 threads.  Only NVlabs' pure-PyTorch reference ops ran (``_bias_act_ref`` 94
  calls, ``_upfirdn2d_ref`` 42, the CUDA plugin loaders and the custom conv op never).
* ``Generator(z_dim=w_dim=32, img_resolution=32, mapping num_layers=2, channel_base=256,
  channel_max=32, num_fp16_res=0, conv_clamp=None)`` (channels 4:32 8:32 16:16 32:8, 8 ws) and
  the default residual ``Discriminator`` (``mbstd_group_size=4``), built after
  ``torch.manual_seed(0)``; ``G_ema = deepcopy(G)``; every parameter then ``+= 0.1 * randn``
  (seeds 1 G_ema, 2 D, 3 G) so biases and noise strengths are non-zero and G differs from
  G_ema; ``mapping.w_avg`` = mean of 4096 mapped z (seed 4).
* ``nvlabs_tiny32.pkl``: the snapshot dict of ``training/training_loop.py`` (``G``, ``D``,
  ``G_ema``, ``augment_pipe=None``, ``training_set_kwargs``), written by ``pickle.dump``: real
  ``torch_utils.persistence`` objects, ``dnnlib.util.EasyDict`` init kwargs, numpy scalars; our
  loader reads it without running code.  Their ``module_src`` (NVlabs' ``training/networks.py``,
  NVIDIA Source Code License) was then replaced by a one-line placeholder, every other byte
  kept: the repository carries none of NVlabs' code (``upstream_pickle_sha256`` in the config is
  the file as ``pickle.dump`` wrote it).
* ``nvlabs_tiny32_expected.safetensors``: outputs of the networks after
  ``legacy.load_network_pkl`` of that pickle (before the placeholder): z (seed 10), z2 (11), a w+ (12), ``w``,
  ``w_trunc07``, images for psi 1 and 0.7 (``noise_mode='const'``), for the w+, for
  ``style_mixing.py``-style mixing at row 3, with ``noise_mode='none'``, of the non-EMA ``G``,
  and the discriminator's score of ``image``.

Tolerances as for the rosinality fixture: latents ``atol=rtol=1e-5``, images ``atol=rtol=1e-4``,
``d_score`` ``atol=1e-5, rtol=1e-4`` (measured: w bit-exact; images within 6.7e-6 absolute, at
most 1e-6 of the largest value (up to 11.4), both up-conv orders; D within 3.3e-7).  Deliberately
broken converters (transposed 3x3 kernels, flipped up-conv weight, transposed noise, reversed
mapping layers, transposed D weights) were off by 0.26 to 4.9.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import fixture_file
from safetensors.torch import load_file
from torch.testing import assert_close

from stylebridge.core.safe_pickle import PersistentObject, load_nvlabs_pickle
from stylebridge.core.stylegan2.checkpoint import load_stylegan2
from stylebridge.core.stylegan2.nvlabs import convert_nvlabs_pickle
from stylebridge.plugins.converters.stylegan2 import NVlabsConverter

LATENT_TOL = {"atol": 1e-5, "rtol": 1e-5}
IMG_TOL = {"atol": 1e-4, "rtol": 1e-4}
D_TOL = {"atol": 1e-5, "rtol": 1e-4}
UPCONV = ["transpose", "polyphase"]


@pytest.fixture(scope="module")
def nv() -> dict[str, Any]:
    pkl = fixture_file("stylegan2", "nvlabs_tiny32.pkl")
    cfg = json.loads(fixture_file("stylegan2", "nvlabs_tiny32_config.json").read_text())
    # clone: safetensors tensors are not 64-byte aligned (tests/data/README.md)
    exp = {k: v.clone() for k, v in
           load_file(fixture_file("stylegan2", "nvlabs_tiny32_expected.safetensors")).items()}
    return {"pkl": pkl, "cfg": cfg, "exp": exp}


@pytest.fixture(scope="module")
def nets(nv: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The fixture pickle through the user path: converter → our file → ``load_stylegan2``."""
    dst = tmp_path_factory.mktemp("nvlabs_values") / "tiny32.safetensors"
    NVlabsConverter().convert(Path(nv["pkl"]), dst)
    return load_stylegan2(dst, discriminator=True)


@pytest.fixture
def gen(nets: Any, request: pytest.FixtureRequest) -> Any:
    order = getattr(request, "param", None)
    nets.generator.set_upconv(order)
    yield nets.generator
    nets.generator.set_upconv(None)


def test_nvlabs_values_fixture_is_the_recorded_nvlabs_snapshot(nv: dict[str, Any]) -> None:
    cfg = nv["cfg"]
    data = Path(nv["pkl"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == cfg["pickle_sha256"]
    top = load_nvlabs_pickle(nv["pkl"])
    assert set(top) == {"training_set_kwargs", "G", "D", "G_ema", "augment_pipe"}
    assert top["augment_pipe"] is None
    for key, cls in (("G", "Generator"), ("G_ema", "Generator"), ("D", "Discriminator")):
        obj = top[key]
        assert isinstance(obj, PersistentObject) and obj.class_name == cls
        assert obj.module_src == cfg["module_src_replaced_by"]  # no NVlabs code is carried
    kw = top["G_ema"].init_kwargs
    assert kw["z_dim"] == kw["w_dim"] == 32 and kw["img_resolution"] == 32
    assert kw["synthesis_kwargs"]["channel_base"] == 256
    assert cfg["reference_op_calls_while_recording"] == {"bias_act_ref": 94, "upfirdn2d_ref": 42}


def test_nvlabs_values_converted_config(nv: dict[str, Any], nets: Any) -> None:
    g, cfg, exp = nets.generator, nv["cfg"], nv["exp"]
    assert g.size == 32 and g.style_dim == 32 and g.n_latent == cfg["num_ws"]
    assert g.cfg.channels == {int(k): v for k, v in cfg["channels"].items()}
    assert sum(p.numel() for p in g.parameters()) == cfg["n_params"]["G_ema"]
    assert sum(p.numel() for p in nets.discriminator.parameters()) == cfg["n_params"]["D"]
    assert_close(g.latent_avg, exp["w_avg"], atol=0, rtol=0)


def test_nvlabs_values_mapping(nv: dict[str, Any], nets: Any) -> None:
    g, exp = nets.generator, nv["exp"]
    with torch.no_grad():
        assert_close(g.mapping(exp["z"]), exp["w"], **LATENT_TOL)
        assert_close(g.mapping(exp["z2"]), exp["w2"], **LATENT_TOL)
        assert_close(g.truncate(g.mapping(exp["z"]), 0.7), exp["w_trunc07"], **LATENT_TOL)
        wplus = g.make_wplus(exp["z"], truncation=0.7)
    assert wplus.shape == (2, 8, 32)
    assert_close(wplus, exp["w_trunc07"][:, None].expand(-1, 8, -1), **LATENT_TOL)


@pytest.mark.parametrize("gen", UPCONV, indirect=True)
@pytest.mark.parametrize("case", ["image", "image_trunc07", "image_wplus", "image_mix",
                                  "image_nonoise"])
def test_nvlabs_values_images(nv: dict[str, Any], gen: Any, case: str) -> None:
    exp = nv["exp"]
    with torch.no_grad():
        if case == "image":
            image = gen([exp["z"]], randomize_noise=False)
        elif case == "image_trunc07":  # centre: latent_avg (NVlabs w_avg)
            image = gen([exp["z"]], truncation=0.7, randomize_noise=False)
        elif case == "image_wplus":
            image = gen([exp["wplus"]], input_is_latent=True, randomize_noise=False)
        elif case == "image_mix":
            image = gen([exp["z"], exp["z2"]], inject_index=3, randomize_noise=False)
        else:  # noise_mode='none' ≡ zero noise
            image = gen([exp["z"]], noise=[torch.zeros(s) for s in gen.noise_shapes()])
    assert_close(image, exp[case], **IMG_TOL)


def test_nvlabs_values_non_ema_generator(nv: dict[str, Any], nets: Any) -> None:
    """The pickle's ``G`` (converted but not saved by the CLI) gives NVlabs' ``G`` image."""
    exp = nv["exp"]
    result = convert_nvlabs_pickle(nv["pkl"])
    assert result.g is not None
    g = copy.deepcopy(nets.generator)
    g.load_state_dict({**result.g, "latent_avg": g.latent_avg})  # G's w_avg is not returned
    with torch.no_grad():
        image = g([exp["z"]], randomize_noise=False)
    assert_close(image, exp["image_G"], **IMG_TOL)


def test_nvlabs_values_discriminator(nv: dict[str, Any], nets: Any) -> None:
    exp = nv["exp"]
    with torch.no_grad():
        score = nets.discriminator(exp["image"])
    assert_close(score, exp["d_score"], **D_TOL)


def test_nvlabs_values_cases_are_distinct(nv: dict[str, Any]) -> None:
    """Each expected image differs from the others by far more than the tolerance, so a
    converter that dropped the noise, mixed up G and G_ema or ignored w_avg would fail."""
    exp = nv["exp"]
    names = ["image", "image_trunc07", "image_wplus", "image_mix", "image_nonoise", "image_G"]
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert (exp[a] - exp[b]).abs().max() > 0.1, (a, b)
