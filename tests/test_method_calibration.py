"""``--calibrate alpha`` and ``--skip-layers`` on the multiplicative and generator-delta
methods of issue 17, through the Adapter.

What alpha means for them: the calibrator gives layer ``i`` the scale ``1/α_i``, which
multiplies the *change* the domain makes to that layer: for ``domain_modulation`` and
``hyperdomain`` the vector ``d_i`` in ``W' = demod(W·s)·(1 + d_i)`` (so the gain becomes
``1 + d_i/α_i``, not ``(1 + d_i)/α_i``), for ``mindthegap`` the stored difference of that
layer's parameters.  Each check compares the Adapter's render with a method built by hand
whose change is already scaled, so it fails if the scale is applied anywhere else."""

from __future__ import annotations

import pytest
import torch
from conftest import one_torch_thread, tiny_generator

from stylebridge.core.images import from_generator_range
from stylebridge.core.interfaces import Inversion
from stylebridge.core.synthesis import synthesize
from stylebridge.pipelines.adapt import Adapter
from stylebridge.pipelines.presets import random_e4e
from stylebridge.plugins.calibrators.alpha import AlphaCalibrator
from stylebridge.plugins.domains.mindthegap import MindTheGap
from stylebridge.plugins.domains.modulation import DomainModulation


@pytest.fixture(autouse=True)
def _one_thread():
    with one_torch_thread():
        yield


def _desc(gen) -> dict:
    return {"size": gen.size, "style_dim": gen.style_dim,
            "channels": {str(r): c for r, c in gen.cfg.channels.items()}}


def _calibrator(gen, alphas: list[float]) -> AlphaCalibrator:
    """Encoder means = α_i × mapping means, per layer: the origin fit recovers α_i."""
    rng = torch.Generator().manual_seed(5)
    source = [torch.rand(layer.channels, generator=rng) + 0.5 for layer in gen.style_layers()]
    encoder = [a * m for a, m in zip(alphas, source, strict=True)]
    calib = AlphaCalibrator.from_style_means(source, encoder)
    torch.testing.assert_close(calib.alpha, torch.tensor(alphas))
    return calib


def _random_like(method: torch.nn.Module, seed: int) -> None:
    rng = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in method.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=rng))


def _scaled_copy(method, cls, gen, scale: torch.Tensor):
    """The same method with every parameter of style layer i multiplied by scale[i]."""
    copy = cls(**_desc(gen))
    copy.load_state_dict(method.state_dict())
    with torch.no_grad():
        for i in range(gen.n_style_layers):
            for p in copy.layer_parameters([i]):
                p.mul_(float(scale[i]))
    return copy


@pytest.mark.parametrize("cls", [DomainModulation, MindTheGap])
def test_alpha_and_skip_layers_scale_the_change_of_each_layer(cls) -> None:
    gen = tiny_generator(seed=0)
    method = cls(**_desc(gen))
    _random_like(method, 1)
    n = gen.n_style_layers
    alphas = [0.5 + 0.25 * (i % 4) for i in range(n)]
    calib = _calibrator(gen, alphas)
    encoder = random_e4e(gen, seed=0)
    images = torch.rand(2, 3, gen.size, gen.size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        inv = encoder.encode(images)
        scale = torch.tensor([1.0 / a for a in alphas])
        scale[[0, 2]] = 0.0   # --skip-layers 0,2 on top of the calibrator
        outputs = Adapter(encoder, gen, {"d": method}, calibrator=calib,
                          skip_layers=[0, 2]).run(images)
        by_hand = from_generator_range(synthesize(gen, Inversion(w_plus=inv.w_plus),
                                                  method=_scaled_copy(method, cls, gen, scale)))
        plain = from_generator_range(synthesize(gen, Inversion(w_plus=inv.w_plus),
                                                method=method))
    torch.testing.assert_close(outputs["d"], by_hand, atol=2e-5, rtol=0)
    assert not torch.allclose(outputs["d"], plain, atol=1e-3)   # the scale did something


@pytest.mark.parametrize("cls", [DomainModulation, MindTheGap])
def test_strength_scales_the_change_like_a_uniform_alpha(cls) -> None:
    """`--strength k` is the scale k on every layer: the change of each layer times k
    (checked against a method whose parameters are scaled by hand), 0 = the inversion."""
    gen = tiny_generator(seed=0)
    method = cls(**_desc(gen))
    _random_like(method, 3)
    encoder = random_e4e(gen, seed=0)
    images = torch.rand(2, 3, gen.size, gen.size, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        out = Adapter(encoder, gen, {"d": method}, strength=(0.0, 0.4)).run(images)
        inv = encoder.encode(images)
        k = torch.full((gen.n_style_layers,), 0.4)
        by_hand = from_generator_range(synthesize(gen, Inversion(w_plus=inv.w_plus),
                                                  method=_scaled_copy(method, cls, gen, k)))
    torch.testing.assert_close(out["d@0.4"], by_hand, atol=2e-5, rtol=0)
    torch.testing.assert_close(out["d@0"], out["inversion"], atol=2e-6, rtol=0)
    assert not torch.allclose(out["d@0.4"], out["inversion"], atol=1e-3)
