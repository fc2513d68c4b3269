"""Synthesis of inversions: feature modes with and without a domain change."""

from __future__ import annotations

import torch
from conftest import tiny_generator
from torch.testing import assert_close

from stylebridge.core.interfaces import DomainMethod, Inversion
from stylebridge.core.synthesis import synthesize
from stylebridge.registry.resolve import load_plugin


class _Offset(DomainMethod):
    name = "test-offset"

    def __init__(self, layer: int, value: float) -> None:
        super().__init__()
        self.layer, self.value = layer, value

    def styles(self, generator, w_plus, offset_scale=None):
        styles = generator.styles(w_plus)
        scale = 1.0 if offset_scale is None else float(offset_scale[self.layer])
        styles[self.layer] = styles[self.layer] + self.value * scale
        return styles


def _inversion(gen, k: int, mode: str) -> tuple[Inversion, torch.Tensor]:
    z = torch.randn(2, gen.style_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        w_plus = gen.make_wplus([z])
        feat, _ = gen.features_upto(gen.styles(w_plus), k, randomize_noise=False)
    other = feat + 0.3 * torch.randn(feat.shape, generator=torch.Generator().manual_seed(2))
    return Inversion(w_plus=w_plus, features={k: other}, feature_mode=mode), feat


def test_shift_equals_replace_without_domain_change() -> None:
    gen = tiny_generator(seed=4)
    inv_r, _ = _inversion(gen, 3, "replace")
    inv_s = Inversion(w_plus=inv_r.w_plus, features=inv_r.features, feature_mode="shift")
    with torch.no_grad():
        a = synthesize(gen, inv_r)
        b = synthesize(gen, inv_s)
        c = synthesize(gen, inv_s, method=_Offset(layer=6, value=0.0))
    assert_close(a, b, atol=0, rtol=0)
    assert_close(a, c, atol=1e-6, rtol=0)


def test_shift_mode_adds_the_domain_delta_at_layer_k() -> None:
    gen = tiny_generator(seed=4)
    k = 3
    inv, _ = _inversion(gen, k, "shift")
    method = _Offset(layer=1, value=0.7)  # to_rgb1 and conv1 precede activation 3
    method2 = _Offset(layer=0, value=0.7)
    with torch.no_grad():
        for m in (method, method2):
            src = gen.styles(inv.w_plus)
            dst = m.styles(gen, inv.w_plus)
            new, _ = gen.features_upto(dst, k, randomize_noise=False)
            old, _ = gen.features_upto(src, k, randomize_noise=False)
            expected = gen.synthesis(dst, randomize_noise=False,
                                     features={k: inv.features[k] + (new - old)})
            assert_close(synthesize(gen, inv, method=m), expected, atol=1e-6, rtol=0)
        replaced = synthesize(gen, Inversion(inv.w_plus, inv.features, "replace"), method=method2)
        shifted = synthesize(gen, inv, method=method2)
    assert (replaced - shifted).abs().max() > 1e-3  # conv1's offset reaches G^3 only via shift


def test_offset_scale_zero_reproduces_the_inversion() -> None:
    gen = tiny_generator(seed=4)
    inv, _ = _inversion(gen, 5, "replace")
    scale = torch.ones(gen.n_style_layers)
    scale[6] = 0.0
    with torch.no_grad():
        assert_close(synthesize(gen, inv, method=_Offset(6, 2.0), offset_scale=scale),
                     synthesize(gen, inv), atol=0, rtol=0)


def test_load_plugin_by_name_and_from_checkpoint(tmp_path) -> None:
    import importlib.util

    import pytest

    from stylebridge.core.checkpoint import save_checkpoint
    from stylebridge.errors import CheckpointError, RegistryError

    if importlib.util.find_spec("stylebridge_example_encoder") is None:
        pytest.skip("example plugin not installed (.ci/run installs it)")
    enc = load_plugin("encoder", "tiny-pool:n_latent=4,style_dim=8")
    assert enc.encode(torch.rand(1, 3, 32, 32)).w_plus.shape == (1, 4, 8)
    path = save_checkpoint(tmp_path / "e.safetensors", enc.state_dict(), kind="encoder",
                           plugin="tiny-pool", config=enc.config())
    again = load_plugin("encoder", str(path))
    assert all(torch.equal(a, b) for a, b in zip(enc.state_dict().values(),
                                                  again.state_dict().values(), strict=True))
    with pytest.raises(CheckpointError, match="expected 'e4e'"):
        load_plugin("encoder", f"e4e:{path}")
    with pytest.raises(RegistryError, match="unknown encoder"):
        load_plugin("encoder", "nope")


def test_modifiers_follow_the_domain_path() -> None:
    """A modifier (StyleRes-style) acts on the rendered path's own activation K."""
    gen = tiny_generator(seed=4)
    k = 3
    z = torch.randn(2, gen.style_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        w_plus = gen.make_wplus([z])
    inv = Inversion(w_plus=w_plus, modifiers={k: lambda x: 0.5 * x + 0.1})
    method = _Offset(layer=0, value=0.7)
    with torch.no_grad():
        got = synthesize(gen, inv, method=method)
        styles = method.styles(gen, w_plus)
        feat, skip = gen.features_upto(styles, k, randomize_noise=False)
        want = gen.synthesize_from(k, 0.5 * feat + 0.1, skip, styles, randomize_noise=False)
        plain = synthesize(gen, Inversion(w_plus=w_plus), method=method)
    assert_close(got, want, atol=1e-6, rtol=0)
    assert (got - plain).abs().max() > 1e-3


# ---------------------------------------------------------------------------------------------
# Renderers


def test_plain_renderer_is_synthesize_bit_for_bit() -> None:
    from stylebridge.core.interfaces import Renderer
    from stylebridge.core.synthesis import PlainRenderer

    gen = tiny_generator(seed=4)
    renderer = PlainRenderer()
    assert isinstance(renderer, Renderer) and not renderer.needs_guide
    scale = torch.ones(gen.n_style_layers)
    scale[6] = 0.5
    for mode in ("replace", "shift"):
        inv, _ = _inversion(gen, 3, mode)
        method = _Offset(layer=1, value=0.7)
        with torch.no_grad():
            assert torch.equal(renderer.render(gen, inv), synthesize(gen, inv))
            assert torch.equal(renderer.render(gen, inv, method),
                               synthesize(gen, inv, method=method))
            assert torch.equal(renderer.render(gen, inv, _Offset(6, 2.0), offset_scale=scale),
                               synthesize(gen, inv, method=_Offset(6, 2.0), offset_scale=scale))


def test_renderers_are_registered_and_a_third_party_renderer_is_found_by_name() -> None:
    import types

    from stylebridge.core.interfaces import Renderer
    from stylebridge.core.synthesis import PlainRenderer
    from stylebridge.plugins.renderers.featureshift import FeatureShift
    from stylebridge.registry import Registry, hookimpl

    class Negative(Renderer):
        """A third-party renderer: the plain image, negated."""

        name = "test-negative"

        def render(self, generator, inversion, method=None, *, offset_scale=None, guide=None):
            return -synthesize(generator, inversion, method=method, offset_scale=offset_scale)

    @hookimpl
    def register_renderers(register):
        register(Negative)

    module = types.ModuleType("third_party_renderer")
    module.register_renderers = register_renderers  # type: ignore[attr-defined]
    registry = Registry(entry_points=False, extra_plugins=[module])
    assert registry.get("renderer", "plain").obj is PlainRenderer
    assert registry.get("renderer", "featureshift").obj is FeatureShift
    entry = registry.get("renderer", "test-negative")
    assert entry.obj is Negative and entry.provider == "third_party_renderer"
    renderer = registry.create("renderer", "test-negative")
    gen = tiny_generator(seed=4)
    inv, _ = _inversion(gen, 3, "replace")
    with torch.no_grad():
        assert torch.equal(renderer.render(gen, inv), -synthesize(gen, inv))
    fs = registry.create("renderer", "featureshift", feature_channels=32, hidden=8, layer=3)
    assert isinstance(fs, FeatureShift) and fs.needs_guide and fs.layer == 3
