"""StyleGAN2 APIs (style space, features, discriminator) and the rosinality converter."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest
import torch
from conftest import tiny_generator
from torch.testing import assert_close

from stylebridge.core.stylegan2 import Discriminator, Generator, GeneratorConfig
from stylebridge.core.stylegan2.checkpoint import load_stylegan2, save_stylegan2
from stylebridge.errors import CheckpointError, ConversionError
from stylebridge.plugins.converters.stylegan2 import RosinalityConverter


@pytest.fixture(scope="module")
def gen() -> Generator:
    return tiny_generator(seed=3)


def _wplus(gen: Generator, batch: int = 2, seed: int = 0) -> torch.Tensor:
    z = torch.randn(batch * gen.n_latent, gen.style_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return gen.mapping(z).view(batch, gen.n_latent, gen.style_dim)


def test_layer_tables_are_consistent(gen: Generator) -> None:
    layers = gen.style_layers()
    assert len(layers) == gen.n_style_layers == 11  # 32 px: 2 + 3 stages * 3
    assert [layer.latent_index for layer in layers] == [0, 1, 1, 2, 3, 3, 4, 5, 5, 6, 7]
    assert [layer.is_rgb for layer in layers].count(True) == 4
    assert gen.conv_style_indices() == [0, 2, 3, 5, 6, 8, 9]
    shapes = gen.feature_shapes()
    assert sorted(shapes) == list(range(gen.n_latent))
    with torch.no_grad():
        styles = gen.styles(_wplus(gen))
        for k, shape in shapes.items():
            feat, _ = gen.features_upto(styles, k, randomize_noise=False)
            assert tuple(feat.shape[1:]) == shape, k
        for layer, s in zip(layers, styles, strict=True):
            assert s.shape == (2, layer.channels)


def test_resume_from_every_activation_reproduces_the_image(gen: Generator) -> None:
    with torch.no_grad():
        styles = gen.styles(_wplus(gen))
        image = gen.synthesis(styles, randomize_noise=False)
        for k in range(gen.n_latent):
            feat, skip = gen.features_upto(styles, k, randomize_noise=False)
            again = gen.synthesize_from(k, feat, skip, styles, randomize_noise=False)
            assert_close(again, image, atol=1e-6, rtol=0)
            same = gen.synthesis(styles, randomize_noise=False, features={k: feat})
            assert_close(same, image, atol=1e-6, rtol=0)


def test_feature_replacement_keeps_the_w_path_rgb_skip(gen: Generator) -> None:
    """Replacing activation K changes what follows, not the RGB skip computed up to K."""
    k = 5  # second conv of the 16 px stage: its ToRGB reads the w-path activation
    with torch.no_grad():
        styles = gen.styles(_wplus(gen))
        feat, skip = gen.features_upto(styles, k, randomize_noise=False)
        other = torch.randn_like(feat)
        replaced = gen.synthesis(styles, randomize_noise=False, features={k: other})
        manual = gen.synthesize_from(k, other, skip, styles, randomize_noise=False)
        assert_close(replaced, manual, atol=1e-6, rtol=0)
        base = gen.synthesis(styles, randomize_noise=False)
        assert (replaced - base).abs().max() > 1e-2
        half = gen.synthesis(styles, randomize_noise=False, features={k: other}, feature_scale=0.5)
        expected_half = gen.synthesize_from(k, torch.lerp(feat, other, 0.5), skip, styles,
                                            randomize_noise=False)
        assert_close(half, expected_half, atol=1e-6, rtol=0)
        with pytest.raises(ValueError, match="needs the RGB skip"):
            gen.synthesize_from(k, feat, None, styles, randomize_noise=False)


def test_style_offsets_change_the_image_and_zero_offsets_do_not(gen: Generator) -> None:
    with torch.no_grad():
        styles = gen.styles(_wplus(gen))
        base = gen.synthesis(styles, randomize_noise=False)
        zero = gen.synthesis([s + 0.0 * torch.ones_like(s) for s in styles], randomize_noise=False)
        assert torch.equal(zero, base)
        for i in (0, 1, gen.n_style_layers - 1):  # first conv, first ToRGB, last ToRGB
            shifted = [s.clone() for s in styles]
            shifted[i] += 0.5
            assert (gen.synthesis(shifted, randomize_noise=False) - base).abs().max() > 1e-3, i
        with pytest.raises(ValueError, match="expected 11 style vectors"):
            gen.synthesis(styles[:-1])


def test_w_and_wplus_inputs_agree(gen: Generator) -> None:
    w = _wplus(gen, batch=2)[:, 0]
    with torch.no_grad():
        a = gen([w], input_is_latent=True, randomize_noise=False)
        b = gen([w.unsqueeze(1).repeat(1, gen.n_latent, 1)], input_is_latent=True,
                randomize_noise=False)
    assert_close(a, b, atol=0, rtol=0)


def test_gradients_reach_wplus_and_injected_feature(gen: Generator) -> None:
    wplus = _wplus(gen).requires_grad_(True)
    styles = gen.styles(wplus)
    feat, _ = gen.features_upto(styles, 3, randomize_noise=False)
    feat = feat.detach().requires_grad_(True)
    image = gen.synthesis(styles, randomize_noise=False, features={3: feat})
    image.square().mean().backward()
    assert wplus.grad is not None and wplus.grad.abs().sum() > 0
    assert feat.grad is not None and feat.grad.abs().sum() > 0
    # rows 0..2 feed only layers before activation 3 and the RGB skips up to it
    assert wplus.grad[:, 3:].abs().sum() > 0


def test_generator_config_round_trip_and_validation() -> None:
    cfg = GeneratorConfig(size=64, style_dim=64, n_mlp=4, channels={4: 64, 8: 64, 16: 64, 32: 32, 64: 16})
    again = GeneratorConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    assert GeneratorConfig().n_latent == 18 and GeneratorConfig().n_style_layers == 26
    with pytest.raises(ValueError, match="power of two"):
        GeneratorConfig(size=100)
    with pytest.raises(ValueError, match="no width for resolution"):
        GeneratorConfig(size=64, channels={4: 8})
    with pytest.raises(ValueError, match="unknown generator config key"):
        GeneratorConfig.from_dict({"size": 64, "sise": 1})


def test_discriminator_batch_must_divide_the_stddev_group() -> None:
    disc = Discriminator(size=16, channels={4: 8, 8: 8, 16: 8})
    assert disc(torch.randn(4, 3, 16, 16)).shape == (4, 1)
    assert disc(torch.randn(3, 3, 16, 16)).shape == (3, 1)  # group = min(batch, 4)
    with pytest.raises(ValueError, match="not divisible"):
        disc(torch.randn(6, 3, 16, 16))
    with pytest.raises(ValueError, match="expects 16×16"):
        disc(torch.randn(4, 3, 32, 32))


def test_our_checkpoint_round_trip(tmp_path: Path, gen: Generator) -> None:
    disc = Discriminator(size=32, channels={4: 8, 8: 8, 16: 8, 32: 8})
    path = save_stylegan2(tmp_path / "g.safetensors", gen, disc)
    ck = load_stylegan2(path, discriminator=True)
    for k, v in gen.state_dict().items():
        assert torch.equal(ck.generator.state_dict()[k], v)
    images = torch.randn(2, 3, 32, 32)
    assert_close(ck.discriminator(images), disc.eval()(images))
    with pytest.raises(CheckpointError, match="is a 32px generator with 8 latent rows, expected 1024px"):
        load_stylegan2(path, expect_size=1024)


# -- the rosinality converter -------------------------------------------------------------------

def _fixture_ckpt(sg2_fixture) -> dict:
    ck = sg2_fixture["ckpt"]
    return {"g_ema": {k: v.clone() for k, v in ck["g_ema"].items()},
            "d": {k: v.clone() for k, v in ck["d"].items()},
            "latent_avg": ck["latent_avg"].clone()}


def _convert(tmp_path: Path, obj, **options):
    src = tmp_path / "src.pt"
    torch.save(obj, src)
    return RosinalityConverter().convert(src, tmp_path / "dst.safetensors", **options)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda o: o["g_ema"].pop("convs.3.conv.weight"), "styled convs but"),
        (lambda o: o["g_ema"].pop("convs.3.noise.weight"), "generator is missing 1 tensor(s): convs.3.noise.weight"),
        (lambda o: o["g_ema"].__setitem__("extra.weight", torch.zeros(1)), "unexpected tensor(s): extra.weight"),
        (lambda o: o["g_ema"].__setitem__("convs.1.activate.bias", torch.zeros(3)),
         "convs.1.activate.bias has shape [3], expected [64]"),
        (lambda o: o["g_ema"].pop("noises.noise_8"), "expected 9 noise buffers for size 64, found 8"),
        (lambda o: o["g_ema"]["style.1.weight"].fill_(float("nan")), "style.1.weight contains NaN"),
        (lambda o: o["d"].pop("final_conv.0.weight"), "not a StyleGAN2 discriminator"),
        (lambda o: o.__setitem__("latent_avg", torch.zeros(32)), "'latent_avg' has width 32"),
        (lambda o: o.pop("g_ema"), "no 'g_ema' or 'g' entry"),
    ],
    ids=["conv-count", "missing", "extra", "shape", "noise", "nan", "disc", "latent-avg", "no-g"],
)
def test_converter_rejects_inconsistent_checkpoints(tmp_path, sg2_fixture, mutate, message) -> None:
    obj = _fixture_ckpt(sg2_fixture)
    if message == "no 'g_ema' or 'g' entry":
        obj.pop("d")
    mutate(obj)
    with pytest.raises(ConversionError) as info:
        _convert(tmp_path, obj)
    assert message in str(info.value) and "src.pt" in str(info.value)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "dst.safetensors").exists()


def test_converter_expected_size_message(tmp_path, sg2_fixture) -> None:
    with pytest.raises(ConversionError, match="expected 26 style layers for size 1024, found 14"):
        _convert(tmp_path, _fixture_ckpt(sg2_fixture), expect_size=1024)


def test_converter_rejects_non_stylegan_and_broken_files(tmp_path) -> None:
    conv = RosinalityConverter()
    cases = {
        "empty.pt": b"",
        "text.pt": b"this is not a checkpoint\n",
        "photo.pt": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",  # a JPEG's first bytes
    }
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "ours.pt"))  # a safetensors file
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    torch.save({"model": {"fc.weight": torch.zeros(2, 2)}}, tmp_path / "other.pt")
    good = tmp_path / "good.pt"
    torch.save({"g_ema": {"x": torch.zeros(1000)}}, good)
    (tmp_path / "trunc.pt").write_bytes(good.read_bytes()[:-300])
    expected = {"empty.pt": "is empty", "text.pt": "is a text file, not a PyTorch checkpoint",
                "other.pt": "no 'g_ema' or 'g' entry", "trunc.pt": "not a readable PyTorch checkpoint",
                "photo.pt": "is a JPEG image, not a PyTorch checkpoint",
                "ours.pt": "is a safetensors file .already converted"}
    for name, msg in expected.items():
        with pytest.raises(ConversionError, match=msg):
            conv.convert(tmp_path / name, tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))

    def __init__(self, marker: Path) -> None:
        self.marker = marker


def test_converter_never_runs_code_from_a_pt_file(tmp_path) -> None:
    marker = tmp_path / "MARKER"
    torch.save({"g_ema": {}, "payload": _Evil(marker)}, tmp_path / "evil.pt")
    with pytest.raises(ConversionError, match=r"refuses to load: the pickle references `posix.system`"):
        RosinalityConverter().convert(tmp_path / "evil.pt", tmp_path / "out.safetensors")
    assert not marker.exists()


def test_converter_reads_train_checkpoints_without_latent_avg(tmp_path, sg2_fixture) -> None:
    obj = _fixture_ckpt(sg2_fixture)
    obj.pop("latent_avg")
    obj["g"] = obj["g_ema"]
    obj["args"] = argparse.Namespace(size=64, batch=4)
    result = _convert(tmp_path, obj, discriminator=False)
    assert any("latent_avg" in note for note in result.notes)
    ck = load_stylegan2(result.path)
    assert ck.header.config["discriminator"] is None
    with torch.no_grad():
        expected = ck.generator.mean_latent(4096, seed=0)
    assert_close(ck.generator.latent_avg, expected)
    # the estimate is close to the fixture's own 4096-sample average
    assert (ck.generator.latent_avg - sg2_fixture["expected"]["latent_avg"]).abs().max() < 0.1


def test_converter_accepts_the_official_ffhq_layout(tmp_path, sg2_fixture) -> None:
    """A file with exactly the FFHQ-1024 config-f keys and shapes converts and loads."""
    manifest = json.loads((sg2_fixture["dir"] / "rosinality_ffhq1024_keys.json").read_text())
    g = {k: torch.zeros(shape) for k, (shape, _) in manifest["g_ema"].items()}
    for k in g:
        if k.endswith("blur.kernel") or k.endswith("upsample.kernel"):
            g[k] = sg2_fixture["ckpt"]["g_ema"]["convs.0.conv.blur.kernel"].clone()
    g["style.1.weight"][0, 0] = 1.0
    result = _convert(tmp_path, {"g_ema": g, "latent_avg": torch.zeros(512)}, expect_size=1024)
    ck = load_stylegan2(result.path)
    assert ck.generator.size == 1024 and ck.generator.n_latent == 18
    assert ck.generator.n_style_layers == 26
    assert ck.generator.cfg.channels == {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256,
                                         256: 128, 512: 64, 1024: 32}
    assert ck.generator.state_dict()["style.1.weight"][0, 0] == 1.0


def test_converter_options_are_checked_and_typed(tmp_path) -> None:
    """`convert -o`: a misspelled option is an error, values are parsed strictly."""
    import pytest

    from stylebridge.errors import ConversionError
    from stylebridge.plugins.converters.stylegan2 import NVlabsConverter, RosinalityConverter

    src = tmp_path / "g.pt"
    src.write_bytes(b"not read: the options are checked first")
    for conv, options, message in (
            (RosinalityConverter(), {"expect_sise": 1024}, r"unknown converter option\(s\) "
                                                           r"expect_sise for stylegan2-rosinality"),
            (RosinalityConverter(), {"lr_mlp": "abc"}, r"option lr_mlp='abc': expected float"),
            (RosinalityConverter(), {"discriminator": "maybe"}, "option discriminator='maybe'"),
            (NVlabsConverter(), {"foo": 1}, r"unknown converter option\(s\) foo")):
        with pytest.raises(ConversionError, match=message) as info:
            conv.convert(src, tmp_path / "out.safetensors", **options)
        assert str(src) in str(info.value)
    assert not (tmp_path / "out.safetensors").exists()


@pytest.mark.parametrize("batch", [1, 3])  # grouped and shared-weight modulation
def test_autocast_keeps_activations_in_its_dtype(batch: int) -> None:
    """Under bf16 autocast the bias, noise and styles follow the activations: every styled
    conv returns bf16 (no promotion back to float32 between layers), the image stays close
    to the float32 one and the parameters' gradients stay float32."""
    from stylebridge.core.stylegan2.layers import StyledConv, ToRGB

    model = tiny_generator(seed=3)
    wplus = _wplus(model, batch=batch, seed=4)
    with torch.no_grad():
        ref = model([wplus], input_is_latent=True, randomize_noise=False)
    dtypes: list[torch.dtype] = []
    skips: list[torch.dtype] = []
    for m in model.modules():
        if isinstance(m, StyledConv):
            m.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
        if isinstance(m, ToRGB) and hasattr(m, "upsample"):
            m.upsample.register_forward_hook(lambda m, i, o: skips.append(o.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        image = model([wplus], input_is_latent=True, randomize_noise=False)
    image.float().square().mean().backward()
    assert dtypes and set(dtypes) == {torch.bfloat16}
    assert image.dtype == torch.float32 and set(skips) == {torch.float32}  # RGB skip: float32
    err = (image.detach() - ref).abs()
    assert float(err.max()) < 0.15 and float(err.mean()) < 0.02, (err.max(), err.mean())
    grads = {n: p.grad for n, p in model.named_parameters()}
    for name in ("convs.0.activate.bias", "convs.0.noise.weight", "convs.0.conv.weight"):
        grad = grads[name]
        assert grad is not None and grad.dtype == torch.float32 and grad.abs().sum() > 0, name


def test_minibatch_stddev_of_identical_half_precision_samples_has_finite_gradients() -> None:
    """A group of identical samples has variance 0; the 1e-8 that keeps sqrt differentiable
    there must not vanish in fp16 (the statistic is taken in float32)."""
    disc = Discriminator(size=8, channels={4: 8, 8: 8})
    x = torch.randn(1, 8, 4, 4).repeat(4, 1, 1, 1).half().requires_grad_(True)
    y = disc.minibatch_stddev(x)
    assert y.dtype == torch.float16 and y.shape == (4, 9, 4, 4)
    y.float().sum().backward()
    assert x.grad is not None and bool(x.grad.isfinite().all())
