"""HyperDomainNet's domain modulation (issue 17): ``W' = demod(W·s)·(1 + d)`` per input channel
of every modulated conv, applied after demodulation through a ConvEdit for one synthesis call;
checked by hand on single convs and on a tiny generator, trained with ``train domain``'s loop,
round-tripped through its checkpoint and rendered through ``adapt`` with two encoders."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import one_torch_thread, tiny_generator
from test_train_domain import tiny_clip

from stylebridge.core.interfaces import Inversion
from stylebridge.core.stylegan2.layers import ConvEdit, ModulatedConv2d
from stylebridge.core.synthesis import synthesize
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines import train_domain as td
from stylebridge.plugins.domains.modulation import DomainModulation
from stylebridge.plugins.losses.clip import ClipGuide
from stylebridge.registry import get_registry


@pytest.fixture(autouse=True)
def _one_thread():
    with one_torch_thread():
        yield


def _desc(gen) -> dict:
    return {"size": gen.size, "style_dim": gen.style_dim,
            "channels": {str(r): c for r, c in gen.cfg.channels.items()}}


@pytest.mark.parametrize("fused", [True, False])
def test_input_gain_multiplies_the_demodulated_weight(fused: bool) -> None:
    torch.manual_seed(0)
    conv = ModulatedConv2d(6, 5, 3, 8)
    conv.fused = fused
    x, s = torch.randn(2, 6, 8, 8), torch.randn(2, 6)
    gain = 1 + 0.3 * torch.randn(6)
    # by hand: modulate, demodulate from s alone, then multiply per input channel
    w = conv.scale * conv.weight[0][None] * s.view(2, 1, 6, 1, 1)
    w = w * torch.rsqrt(w.pow(2).sum([2, 3, 4]) + 1e-8).view(2, 5, 1, 1, 1)
    w = w * gain.view(1, 1, 6, 1, 1)
    expected = torch.stack([F.conv2d(x[i:i + 1], w[i], padding=1)[0] for i in range(2)])
    got = conv(x, s, ConvEdit(input_gain=gain))
    torch.testing.assert_close(got, expected, atol=2e-6, rtol=0)
    # not the same as scaling s (that would also change the demodulation)
    assert not torch.allclose(got, conv(x, s * gain), atol=1e-3)


def test_up_sampling_conv_paths_agree() -> None:
    torch.manual_seed(1)
    conv = ModulatedConv2d(4, 3, 3, 8, upsample=True)
    x, s, gain = torch.randn(2, 4, 8, 8), torch.randn(2, 4), 1 + 0.5 * torch.randn(4)
    conv.fused = True
    a = conv(x, s, ConvEdit(input_gain=gain))
    conv.fused = False
    b = conv(x, s, ConvEdit(input_gain=gain))
    torch.testing.assert_close(a, b, atol=2e-6, rtol=0)


def test_the_method_modulates_exactly_the_convs_it_should() -> None:
    gen = tiny_generator(seed=0)
    method = DomainModulation(**_desc(gen))
    convs = gen.conv_style_indices()
    assert method.layers == convs  # every modulated conv, no ToRGB layer
    assert sum(p.numel() for p in method.parameters()) == sum(
        layer.channels for layer in gen.style_layers() if not layer.is_rgb)
    w = gen.make_wplus(torch.randn(2, gen.style_dim, generator=torch.Generator().manual_seed(3)))
    inv = Inversion(w_plus=w)
    with torch.no_grad():
        source = gen.synthesis(gen.styles(w), randomize_noise=False)
        assert torch.equal(synthesize(gen, inv, method=method), source)  # d = 0: the source
        assert not method.has_weight_offsets()
        i = convs[3]  # one conv in the middle
        method.modulation[str(i)].copy_(torch.linspace(-0.5, 0.5, method.layout[i].in_ch))
        assert method.has_weight_offsets()
        out = synthesize(gen, inv, method=method)
        assert not torch.allclose(out, source, atol=1e-4)
        # activations before that conv are untouched, the ones after it change
        styles = gen.styles(w)
        deltas = method.weight_deltas(gen)
        assert sorted(deltas) == convs
        layer_k = {layer.index: k for k, layer in enumerate(
            [sl for sl in gen.style_layers() if not sl.is_rgb], start=1)}
        for k in range(1, gen.n_latent):
            a, _ = gen.features_upto(styles, k, randomize_noise=False)
            b, _ = gen.features_upto(styles, k, randomize_noise=False, weight_deltas=deltas)
            assert torch.equal(a, b) == (k < layer_k[i]), k
        # offset_scale scales the change: 0 on that layer gives the source back, 2 doubles d
        scale = torch.ones(gen.n_style_layers)
        scale[i] = 0.0
        assert torch.equal(synthesize(gen, inv, method=method, offset_scale=scale), source)
        doubled = DomainModulation(**_desc(gen))
        doubled.modulation[str(i)].copy_(2 * method.modulation[str(i)])
        scale[i] = 2.0
        torch.testing.assert_close(synthesize(gen, inv, method=method, offset_scale=scale),
                                   synthesize(gen, inv, method=doubled), atol=1e-6, rtol=0)
        # the styles themselves are the source styles
        assert all(torch.equal(a, b) for a, b in zip(method.styles(gen, w), styles, strict=True))


def test_trains_from_a_text_prompt_round_trips_and_renders_with_two_encoders(
        tmp_path: Path) -> None:
    registry = get_registry()
    gen = tiny_generator()
    before_gen = {k: v.clone() for k, v in gen.state_dict().items()}
    method = td.build_domain_method("domain_modulation", gen)
    guide = ClipGuide.from_text([tiny_clip(0, 8, "tiny-a")], "pixar", "human", ["{}"])
    losses = td.build_losses(["clip_direction:1"], registry=registry)
    out = tmp_path / "dm.safetensors"
    trainer = td.DomainTrainer(gen, method, losses,
                               td.TrainSettings(steps=6, batch=2, lr=0.05, freeze_layers=()),
                               out=out, guide=guide)
    result = trainer.train()
    losses_seen = [r["total"] for r in result.history]
    assert len(losses_seen) == 6 and losses_seen[-1] < losses_seen[0]
    assert all(torch.equal(v, before_gen[k]) for k, v in gen.state_dict().items())
    assert method.has_weight_offsets()
    loaded = registry.load("domain_method", out)
    assert isinstance(loaded, DomainModulation)
    w = gen.make_wplus(torch.randn(2, gen.style_dim, generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():
        a = synthesize(gen, Inversion(w_plus=w), method=loaded)
        b = synthesize(gen, Inversion(w_plus=w), method=method.eval())
    assert torch.equal(a, b)
    # through the Adapter with two encoders (e4e latents, FSE features in shift mode)
    from stylebridge.pipelines.adapt import Adapter
    from stylebridge.pipelines.presets import random_e4e, random_fse

    images = torch.rand(2, 3, gen.size, gen.size, generator=torch.Generator().manual_seed(1))
    for encoder in (random_e4e(gen, seed=0), random_fse(gen, "shift", seed=0, layer=3)):
        outputs = Adapter(encoder, gen, {"dm": loaded}).run(images)
        assert set(outputs) == {"inversion", "dm"}
        assert outputs["dm"].shape == (2, 3, gen.size, gen.size)
        assert not torch.allclose(outputs["dm"], outputs["inversion"], atol=1e-3)


def test_apply_styles_is_the_other_reading_scaling_s_before_demodulation(tmp_path: Path) -> None:
    """The thesis' "domain-modulated styles" read literally: ``s_i' = (1 + d_i)·s_i`` before
    demodulation (``apply=styles``), against the hand-scaled styles through the plain
    generator; it differs from the default (after demodulation) and survives a save/load."""
    gen = tiny_generator(seed=0)
    w = gen.make_wplus(torch.randn(2, gen.style_dim, generator=torch.Generator().manual_seed(4)))
    torch.manual_seed(5)
    after = DomainModulation(**_desc(gen))
    styled = td.build_domain_method("domain_modulation:apply=styles", gen)
    assert isinstance(styled, DomainModulation) and styled.apply_to == "styles"
    with torch.no_grad():
        for key, d in after.modulation.items():
            d.copy_(0.4 * torch.randn_like(d))
            styled.modulation[key].copy_(d)
        by_hand = gen.styles(w)
        for key, d in after.modulation.items():
            by_hand[int(key)] = by_hand[int(key)] * (1 + d)
        expected = gen.synthesis(by_hand, randomize_noise=False)
        got = synthesize(gen, Inversion(w_plus=w), method=styled)
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
        assert styled.weight_deltas(gen) == {} and not styled.has_weight_offsets()
        default = synthesize(gen, Inversion(w_plus=w), method=after)
        assert not torch.allclose(default, got, atol=1e-3)
        # skip a layer: its style stays the source's
        i = gen.conv_style_indices()[2]
        scale = torch.ones(gen.n_style_layers)
        scale[i] = 0.0
        assert torch.equal(styled.styles(gen, w, offset_scale=scale)[i], gen.styles(w)[i])
    out = styled.save(tmp_path / "styled.safetensors")
    loaded = get_registry().load("domain_method", out)
    assert loaded.apply_to == "styles" and after.config().get("apply") is None
    with torch.no_grad():
        assert torch.equal(synthesize(gen, Inversion(w_plus=w), method=loaded), got)
    with pytest.raises(StylebridgeError, match=r"apply='both': expected one of weights, styles"):
        td.build_domain_method("domain_modulation:apply=both", gen)
