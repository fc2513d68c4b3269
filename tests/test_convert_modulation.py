"""The ``hyperdomainnet`` converter (issue 17): HyperDomainNet / SimilarDomains ``cin_mult``
single-domain files → ``domain_modulation``.

Synthetic upstream-layout files are built on a tiny generator; the converted domain must render
exactly what upstream's formula gives, computed here independently: ``demod(W·s)·(1 + d)``
per input channel is the same as scaling the conv's *input* channels by ``1 + d`` (the conv is
linear in both), so the reference render hooks the k-th modulated conv of a plain copy of the
generator (upstream's ``conv_0`` = ``conv1``, ``conv_k`` = ``convs[k-1]``) and multiplies its
input by ``1 + params_in`` of head ``conv_k``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import one_torch_thread, tiny_generator
from test_weights_sources import server as server  # the local HTTP server fixture
from torch.testing import assert_close

from stylebridge.cli.main import main
from stylebridge.core.checkpoint import read_header
from stylebridge.core.interfaces import Inversion
from stylebridge.core.synthesis import synthesize
from stylebridge.errors import ConversionError
from stylebridge.plugins.converters.hyperdomainnet import HyperDomainNetConverter, cin_mult_vectors
from stylebridge.plugins.converters.styledomain import StyleDomainConverter
from stylebridge.plugins.domains.modulation import DomainModulation
from stylebridge.registry.resolve import load_domain

SIZE, SD = 32, 32


@pytest.fixture(autouse=True)
def _one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def gen() -> Any:
    return tiny_generator(seed=0, size=SIZE, style_dim=SD)


def _upstream_convs(gen: Any) -> list[Any]:
    """Upstream's head order: conv_0 = conv1, conv_k = convs[k-1] (rosinality layout)."""
    return [gen.conv1.conv, *[c.conv for c in gen.convs]]


def _hdn_file(path: Path, gen: Any, *, seed: int = 0, patch_key: str = "cin_mult",
              model_type: str = "parameterization", **extra: Any) -> list[torch.Tensor]:
    """A HyperDomainNet ``models_N.pt`` (common.get_trainable_model_state + ckpt_info) for
    ``gen``; returns the per-head vectors in upstream order."""
    g = torch.Generator().manual_seed(seed)
    state, vectors = {}, []
    for k, conv in enumerate(_upstream_convs(gen)):
        c_in = conv.weight.shape[2]  # our weight is [1, out, in, k, k]
        d = 0.4 * torch.randn(1, 1, c_in, 1, 1, generator=g)
        state[f"heads.conv_{k}.params_in"] = d
        vectors.append(d.reshape(-1))
    ck = {"model_type": model_type, "patch_key": patch_key, "state_dict": state,
          "sg2_params": {"img_size": gen.size, "latent_size": gen.style_dim, "map_layers": 2,
                         "channel_multiplier": 2, "device": "cuda:0",
                         "checkpoint_path": "pretrained/StyleGAN2/stylegan2-ffhq-config-f.pt"},
          "da_type": "td", **extra}
    torch.save(ck, path)
    return vectors


def _upstream_render(gen: Any, w: torch.Tensor, vectors: list[torch.Tensor]) -> torch.Tensor:
    ref = copy.deepcopy(gen)
    handles = [conv.register_forward_pre_hook(
        lambda _m, args, d=d: (args[0] * (1 + d).view(1, -1, 1, 1), *args[1:]))
        for conv, d in zip(_upstream_convs(ref), vectors, strict=True)]
    try:
        with torch.no_grad():
            return ref.synthesis(ref.styles(w), randomize_noise=False)
    finally:
        for h in handles:
            h.remove()


def test_converted_domain_renders_upstreams_formula(gen: Any, tmp_path: Path) -> None:
    src = tmp_path / "td_pixar.pt"
    vectors = _hdn_file(src, gen)
    dst = tmp_path / "pixar.safetensors"
    result = HyperDomainNetConverter().convert(src, dst)
    assert result.plugin == "domain_modulation" and result.n_tensors == 7
    method = load_domain(dst)
    assert isinstance(method, DomainModulation)
    assert method.generator_config.channels == gen.cfg.channels
    # head conv_k sits at the k-th non-ToRGB style layer: 0, 2, 3, 5, 6, 8, 9 at 32 px
    assert method.layers == [0, 2, 3, 5, 6, 8, 9]
    for k, i in enumerate([0, 2, 3, 5, 6, 8, 9]):
        assert torch.equal(method.modulation[str(i)].detach(), vectors[k])
    w = gen.make_wplus(torch.randn(2, SD, generator=torch.Generator().manual_seed(3)))
    with torch.no_grad():
        ours = synthesize(gen, Inversion(w_plus=w), method=method)
        source = gen.synthesis(gen.styles(w), randomize_noise=False)
    expected = _upstream_render(gen, w, vectors)
    assert_close(ours, expected, atol=2e-5, rtol=0)
    assert (ours - source).abs().max() > 1e-2  # the domain does change the image
    extra = read_header(dst).extra
    assert extra["patch_key"] == "cin_mult" and extra["da_type"] == "td"
    assert "device" not in extra["sg2_params"] and extra["source_file"] == "td_pixar.pt"


def test_similar_domains_spelling_bare_state_and_im2im(gen: Any, tmp_path: Path) -> None:
    # StyleDomain's SimilarDomains writes model_type 'parametrization' (HyperDomainNet:
    # 'parameterization'); an im2im file keeps its style latents (rows 7..) in the header
    src = tmp_path / "models_300.pt"
    latents = torch.randn(1, gen.n_latent - 7, SD)
    vectors = _hdn_file(src, gen, seed=1, model_type="parametrization", da_type="im2im",
                        style_latents=latents)
    result = HyperDomainNetConverter().convert(src, tmp_path / "a.safetensors")
    assert any("rendered mixed in, as upstream's inference does" in n for n in result.notes)
    extra = read_header(tmp_path / "a.safetensors").extra
    assert_close(torch.tensor(extra["style_latents"]), latents)
    # a bare BaseParametrization state dict converts once the parameterisation is named
    state = torch.load(src, weights_only=True)["state_dict"]
    torch.save(state, src)
    with pytest.raises(ConversionError, match="pass -o patch_key=cin_mult"):
        HyperDomainNetConverter().convert(src, tmp_path / "b.safetensors")
    HyperDomainNetConverter().convert(src, tmp_path / "b.safetensors", patch_key="cin_mult")
    method = load_domain(tmp_path / "b.safetensors")
    assert torch.equal(method.modulation["9"].detach(), vectors[6])


def test_full_size_layout_is_hyperdomainnets_6048_vector() -> None:
    # upstream get_stylegan_conv_dimensions(1024): input widths of conv_0 … conv_16
    widths = [512] * 10 + [256, 256, 128, 128, 64, 64, 32]
    state = {f"heads.conv_{k}.params_in": torch.empty(1, 1, c, 1, 1, device="meta")
             for k, c in enumerate(widths)}
    desc, vectors = cin_mult_vectors(state)
    assert desc["size"] == 1024 and sum(widths) == 6048  # "6 thousand-dimensional" (README)
    expected_idx = [0] + [i for j in range(8) for i in (2 + 3 * j, 3 + 3 * j)]
    assert sorted(vectors) == expected_idx
    assert [vectors[i].numel() for i in expected_idx] == widths


def _one_line(exc: pytest.ExceptionInfo, src: Path) -> None:
    assert "\n" not in str(exc.value) and str(src) in str(exc.value)


@pytest.mark.parametrize(("change", "message"), [
    (lambda ck: ck.update(patch_key="cin_delta"), r"holds a 'cin_delta' parameterisation"),
    (lambda ck: ck.update(patch_key="s_delta"), r"convert styledomain"),
    (lambda ck: ck.update(model_type="mapper"), r"model_type 'mapper'"),
    (lambda ck: ck["state_dict"].update({"heads.conv_0.params_kernel": torch.zeros(1, 1, 1, 3, 3)}),
     r"not cin_mult heads \(heads.conv_k.params_in\): heads.conv_0.params_kernel"),
    (lambda ck: ck["state_dict"].update({"heads.conv_2.params_in": torch.zeros(1, 32)}),
     r"head heads.conv_2.params_in is \[1, 32\], expected \[1, 1, C_in, 1, 1\]"),
    (lambda ck: ck["state_dict"].pop("heads.conv_3.params_in"), r"lacks domain-modulation heads conv_\[3\]"),
    (lambda ck: ck["state_dict"].pop("heads.conv_6.params_in"), r"has 6 per-conv heads"),
    (lambda ck: ck["state_dict"].update({"heads.conv_1.params_in": torch.zeros(1, 1, 8, 1, 1)}),
     r"head heads.conv_1.params_in has 8 channels, but the 4px layer before it has 32"),
    (lambda ck: ck["sg2_params"].update(img_size=1024), r"img_size=1024"),
    (lambda ck: ck["state_dict"].update(
        {"heads.conv_0.params_in": torch.zeros(1, 1, 32, 1, 1, dtype=torch.int64)}),
     r"dtype torch.int64"),
])
def test_refusals_are_one_line_naming_the_file(gen: Any, tmp_path: Path, change: Any,
                                               message: str) -> None:
    src = tmp_path / "td_x.pt"
    _hdn_file(src, gen)
    ck = torch.load(src, weights_only=True)
    change(ck)
    torch.save(ck, src)
    dst = tmp_path / "x.safetensors"
    with pytest.raises(ConversionError, match=message) as exc:
        HyperDomainNetConverter().convert(src, dst)
    _one_line(exc, src)
    assert not dst.exists()


def test_other_files_are_refused(gen: Any, tmp_path: Path) -> None:
    src = tmp_path / "list.pt"
    torch.save([1, 2], src)
    with pytest.raises(ConversionError, match="holds a list, expected the HyperDomainNet dict"):
        HyperDomainNetConverter().convert(src, tmp_path / "x.safetensors")
    torch.save({"g_ema": {}}, src)
    with pytest.raises(ConversionError, match=r"is not a HyperDomainNet checkpoint \(top-level"):
        HyperDomainNetConverter().convert(src, tmp_path / "x.safetensors")
    with pytest.raises(ConversionError, match="unknown converter option"):
        HyperDomainNetConverter().convert(src, tmp_path / "x.safetensors", method="x")
    # the StyleSpace converter points a cin_mult file here
    _hdn_file(src, gen)
    with pytest.raises(ConversionError, match="convert hyperdomainnet"):
        StyleDomainConverter().convert(src, tmp_path / "x.safetensors")


def test_cli_convert(gen: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, dst = tmp_path / "td_anime.pt", tmp_path / "anime.safetensors"
    vectors = _hdn_file(src, gen, seed=5)
    assert main(["convert", "hyperdomainnet", str(src), str(dst)]) == 0
    capsys.readouterr()
    assert torch.equal(load_domain(dst).modulation["0"].detach(), vectors[0])
    ck = torch.load(src, weights_only=True)
    ck["patch_key"] = "csep_mult"
    torch.save(ck, src)
    bad = tmp_path / "bad.safetensors"
    assert main(["convert", "hyperdomainnet", str(src), str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {src}: holds a 'csep_mult'") and err.count("\n") == 1
    assert not bad.exists()


def test_shipped_catalogue_fetches_a_hyperdomainnet_domain_from_the_zip(
        gen: Any, tmp_path: Path, server: Any) -> None:
    """The manifest's HyperDomainNet entries, their Dropbox URL played by a local server: one
    zip download, the member copied out, converted, loadable by name."""
    import dataclasses
    import io
    import zipfile

    from stylebridge.registry.weights import WeightsError, WeightsManager, load_manifest

    shipped = {e.name: e for e in load_manifest()}
    archive = shipped["hdn-checkpoints"]
    assert archive.all_sources[0]["url"] == ("https://www.dropbox.com/s/r8816i09t9n94hy/"
                                             "checkpoints.zip?dl=0")   # upstream's download.py
    names = [n for n, e in shipped.items() if e.converter == "hyperdomainnet"]
    assert len(names) == 16 and all(shipped[n].plugin == "domain_modulation" for n in names)
    src = tmp_path / "td_pixar.pt"
    vectors = _hdn_file(src, gen, seed=7)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.write(src, "checkpoints/td_checkpoints/td_pixar.pt")
        zf.writestr("checkpoints/mapper_20_td.pt", b"not read")
    server.files["/checkpoints.zip"] = buffer.getvalue()
    local = dataclasses.replace(archive, sources=({"type": "url",
                                                   "url": f"{server.url}/checkpoints.zip"},))
    manager = WeightsManager(tmp_path / "home", manifest=[local, shipped["hdn-pixar"],
                                                          shipped["hdn-joker"]])
    path = manager.fetch("hdn-pixar", accept_licence=True)
    assert [p for _, p, _ in server.log] == ["/checkpoints.zip"]
    method = load_domain(str(path))
    assert isinstance(method, DomainModulation)
    assert torch.equal(method.modulation["2"].detach(), vectors[1])
    with pytest.raises(WeightsError, match=r"has no 'td_joker\.pt'"):
        manager.fetch("hdn-joker", accept_licence=True)
