"""StyleDomain's / HyperDomainNet's image domains (``da_type`` ``im2im``) render with the style
image's W+ rows ``7:`` in place of the input's, as upstream's ``Inferencer`` does
(``_mtg_mixing_noise``: ``rows[7:] = mx_n·style + (1 − mx_n)·w``); the expected values here
are that formula applied by hand to W+ before the source generator's own ``styles``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import tiny_generator
from test_convert_modulation import _hdn_file
from test_domains import _similar_file
from torch.testing import assert_close

from stylebridge.core.inversion import Inversion
from stylebridge.core.synthesis import synthesize
from stylebridge.errors import CheckpointError, ConversionError
from stylebridge.plugins.converters.hyperdomainnet import HyperDomainNetConverter
from stylebridge.plugins.converters.styledomain import StyleDomainConverter
from stylebridge.registry.resolve import create, load_domain

SIZE, SD = 32, 32


@pytest.fixture(scope="module")
def gen() -> Any:
    return tiny_generator(seed=0, size=SIZE, style_dim=SD)


@pytest.fixture(scope="module")
def w_plus(gen: Any) -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    return gen.make_wplus(torch.randn(2, SD, generator=g)) + 0.1 * torch.randn(
        2, gen.n_latent, SD, generator=g)


def _upstream_mix(w_plus: torch.Tensor, rows: torch.Tensor, power: float = 1.0) -> torch.Tensor:
    out = w_plus.clone()
    first = out.shape[1] - rows.shape[-2]
    out[:, first:] = power * rows.reshape(-1, out.shape[-1]) + (1 - power) * out[:, first:]
    return out


@pytest.fixture()
def image_domain(gen: Any, tmp_path: Path) -> tuple[Path, dict[int, torch.Tensor], torch.Tensor]:
    rows = torch.randn(1, gen.n_latent - 5, SD, generator=torch.Generator().manual_seed(8))
    src = tmp_path / "models_300.pt"
    offsets = _similar_file(src, gen, da_type="im2im", style_latents=rows)
    dst = tmp_path / "anastasia.safetensors"
    result = StyleDomainConverter().convert(src, dst)
    assert any("rendered mixed in" in note for note in result.notes)
    return dst, offsets, rows


def test_an_image_domain_mixes_the_style_rows_scaled_with_the_domain(
        gen: Any, w_plus: torch.Tensor, image_domain: Any) -> None:
    path, offsets, rows = image_domain
    method = load_domain(path)
    assert method.mix and method.mix_from == 5
    for power in (1.0, 0.5):
        scale = torch.full((gen.n_style_layers,), power)
        with torch.no_grad():
            got = method.styles(gen, w_plus, offset_scale=None if power == 1 else scale)
            source = gen.styles(_upstream_mix(w_plus, rows, power))
        for i, s in enumerate(source):
            expected = s + power * offsets[i] if i in offsets else s
            assert_close(got[i], expected, atol=1e-5, rtol=0)
    with torch.no_grad():  # rows below mix_from are the photo's: those styles untouched
        plain = gen.styles(w_plus)
        out = method.styles(gen, w_plus)
    for layer in method.layout:
        own = plain[layer.index] + offsets.get(layer.index, 0)
        if layer.row < 5:
            assert_close(out[layer.index], own, atol=1e-6, rtol=0)
        else:
            assert not torch.allclose(out[layer.index], own, atol=1e-3)


def test_mix_false_renders_the_offsets_alone(gen: Any, w_plus: torch.Tensor,
                                             image_domain: Any) -> None:
    path, offsets, _ = image_domain
    method = create("domain_method", f"stylespace:{path}:mix=false").obj
    assert not method.mix
    with torch.no_grad():
        got, plain = method.styles(gen, w_plus), gen.styles(w_plus)
    for i, s in enumerate(plain):
        assert_close(got[i], s + offsets[i] if i in offsets else s, atol=1e-6, rtol=0)


def test_the_rows_survive_a_save_and_a_text_domain_is_unchanged(
        gen: Any, w_plus: torch.Tensor, image_domain: Any, tmp_path: Path) -> None:
    path, _, rows = image_domain
    method = load_domain(path)
    again = load_domain(method.save(tmp_path / "copy.safetensors"))
    assert torch.equal(again.reference_latent, method.reference_latent)
    assert torch.equal(again.reference_latent[again.mix_from:], rows[0])
    with torch.no_grad():
        a = synthesize(gen, Inversion(w_plus=w_plus), method=method)
        b = synthesize(gen, Inversion(w_plus=w_plus), method=again)
    assert torch.equal(a, b)
    text = tmp_path / "td.pt"
    _similar_file(text, gen)  # da_type td, no style_latents
    StyleDomainConverter().convert(text, tmp_path / "td.safetensors")
    assert load_domain(tmp_path / "td.safetensors").reference_latent is None


def test_rows_that_do_not_fit_the_generator_are_refused(gen: Any, tmp_path: Path) -> None:
    src = tmp_path / "models_300.pt"
    _similar_file(src, gen, da_type="im2im", style_latents=torch.randn(1, 11, SD))
    with pytest.raises(ConversionError, match=r"style_latents \(header\) hold 11 W\+ rows; a "
                                              r"32px generator has 8$") as info:
        StyleDomainConverter().convert(src, tmp_path / "x.safetensors")
    assert str(src) in str(info.value)
    ok = tmp_path / "ok.pt"
    _similar_file(ok, gen, da_type="im2im", style_latents=torch.randn(1, 3, SD))
    dst = StyleDomainConverter().convert(ok, tmp_path / "ok.safetensors").path
    from stylebridge.core.checkpoint import load_checkpoint, read_header, save_checkpoint

    header = read_header(dst)  # a hand-edited header: named by file at load
    extra = {**header.extra, "style_latents": [[float("nan")] * SD] * 3}
    tensors = load_checkpoint(dst)[1]
    bad = save_checkpoint(tmp_path / "bad.safetensors", tensors, kind=header.kind,
                          plugin=header.plugin, config=header.config, extra=extra)
    with pytest.raises(CheckpointError, match=r"bad\.safetensors: style_latents \(header\) "
                                              r"hold NaN or Inf values$"):
        load_domain(bad)


def test_a_hyperdomainnet_image_domain_mixes_too(gen: Any, w_plus: torch.Tensor,
                                                 tmp_path: Path) -> None:
    rows = torch.randn(1, gen.n_latent - 7, SD, generator=torch.Generator().manual_seed(9))
    src = tmp_path / "im2im_mermaid.pt"
    _hdn_file(src, gen, seed=2, da_type="im2im", style_latents=rows)
    HyperDomainNetConverter().convert(src, tmp_path / "m.safetensors")
    method = load_domain(tmp_path / "m.safetensors")
    plain = create("domain_method", f"domain_modulation:{tmp_path / 'm.safetensors'}:mix=false").obj
    with torch.no_grad():
        got = synthesize(gen, Inversion(w_plus=w_plus), method=method)
        expected = synthesize(gen, Inversion(w_plus=_upstream_mix(w_plus, rows)), method=plain)
    assert_close(got, expected, atol=1e-5, rtol=0)
    assert not torch.allclose(got, synthesize(gen, Inversion(w_plus=w_plus), method=plain), atol=1e-3)
