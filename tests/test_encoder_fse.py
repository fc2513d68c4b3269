"""FSE encoder: architecture vs the upstream manifest, converter, modes, training, bad input.

Expected values come from the upstream key/shape manifest
(``shared/fixtures/encoders/fse_ffhq_keys.json``) and from a functional
re-implementation of upstream ``fs_encoder_v2.forward`` written below with plain
``torch.nn.functional`` calls, never from earlier runs of our code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import fixture_file, one_torch_thread, tiny_generator
from torch.testing import assert_close

from stylebridge.core.checkpoint import read_header
from stylebridge.core.interfaces import DomainMethod
from stylebridge.core.stylegan2 import Generator
from stylebridge.core.stylegan2.checkpoint import save_stylegan2
from stylebridge.core.synthesis import synthesize
from stylebridge.errors import ConversionError, StylebridgeError
from stylebridge.plugins.converters.fse import FSEConverter, infer_config
from stylebridge.plugins.encoders import fse
from stylebridge.plugins.encoders.fse import FSEConfigError, FSEEncoder
from stylebridge.plugins.nets import iresnet as _iresnet
from stylebridge.registry import Registry
from stylebridge.registry.resolve import load_plugin

# reduced width, official depth (3/4/14/3) and 18 styles: key names identical to upstream
SMALL = {"width": 4, "feature_channels": 8, "style_dim": 16}


def _manifest() -> dict:
    return json.loads(fixture_file("encoders", "fse_ffhq_keys.json").read_text())


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: intra-op threads only add contention on a shared 2-core machine."""
    with one_torch_thread():
        yield


def _registry() -> Registry:
    return Registry(builtins=False, entry_points=False, extra_plugins=[fse])


# ---------------------------------------------------------------------------------------------
# (1) architecture = the upstream manifest


def test_default_architecture_matches_the_upstream_manifest() -> None:
    manifest = _manifest()
    with torch.device("meta"):
        enc = FSEEncoder()
    state = {k: [list(v.shape), str(v.dtype).removeprefix("torch.")]
             for k, v in enc.state_dict().items()}
    assert state.pop("latent_avg") == [[18, 512], "float32"]  # our only extra tensor
    assert state == manifest["keys"]
    assert len(state) == manifest["n_keys"] == 517
    assert sum(p.numel() for p in enc.parameters()) == manifest["encoder_params"] == 113_920_704
    n_elements = sum(v.numel() for k, v in enc.state_dict().items() if k != "latent_avg")
    assert n_elements == manifest["n_elements"]
    # forward shapes at the official size (upstream: w [1,18,512], F [1,512,16,16])
    with torch.device("meta"):
        x = torch.empty(2, 3, 1024, 1024)
        assert list(enc.prepare(x).shape[1:]) == manifest["encoder_input_shape"][1:]
        inv = enc.encode(x)
    assert list(inv.w_plus.shape) == [2, *manifest["w_shape"][1:]]
    assert list(inv.features[5].shape) == [2, *manifest["feature_shape"][1:]]
    assert inv.feature_mode == "replace"


def test_layer_5_is_the_second_16px_conv_of_the_1024px_generator() -> None:
    manifest = _manifest()
    with torch.device("meta"):
        gen = Generator(size=1024)
        enc, enc6 = FSEEncoder(), FSEEncoder(layer=6)
    outs = manifest["generator_outs_shapes(index: return_features list)"]
    assert [list(gen.feature_shapes()[k]) for k in range(18)] == [s[1:] for s in outs]
    assert gen.feature_shapes()[enc.layer] == enc.feature_shape == (512, 16, 16)
    enc.check_generator(gen)
    with pytest.raises(FSEConfigError, match="activation 6 is"):
        enc6.check_generator(gen)


def test_converter_infers_the_official_config_from_full_size_shapes() -> None:
    manifest = _manifest()
    with torch.device("meta"):
        state = {k: torch.empty(shape, dtype=getattr(torch, dt))
                 for k, (shape, dt) in manifest["keys"].items()}
    assert infer_config(state) == {
        "mode": "features", "layer": 5, "n_latent": 18, "style_dim": 512, "width": 64,
        "layers": [3, 4, 14, 3], "feature_channels": 512, "feature_stride": 2,
        "input_size": 256, "resolution": 1024}


# ---------------------------------------------------------------------------------------------
# (2) conversion of an official-layout file, checked against a functional re-implementation


def _fake_official_state(seed: int = 0, **cfg) -> dict[str, torch.Tensor]:
    """Values for every key of an FSE of config ``cfg``, drawn independently of our init."""
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in FSEEncoder(**cfg).state_dict().items() if k != "latent_avg"}
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1234)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=g)
        elif key.endswith(("running_mean", ".bias")):
            state[key] = 0.1 * torch.randn(shape, generator=g)
        elif len(shape) >= 2:  # conv / linear weights
            fan_in = torch.Size(shape[1:]).numel()
            state[key] = torch.randn(shape, generator=g) / fan_in**0.5
        elif key.endswith("prelu.weight") or key in {"conv.2.weight", "content_layer.3.weight"}:
            state[key] = 0.25 + 0.05 * torch.randn(shape, generator=g)
        else:  # BN weight
            state[key] = 1.0 + 0.1 * torch.randn(shape, generator=g)
    return state


def _bn(x, sd, p):
    return F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"],
                        sd[f"{p}.bias"], training=False, eps=1e-5)


def _block(x, sd, p, stride):
    out = F.conv2d(_bn(x, sd, f"{p}.bn1"), sd[f"{p}.conv1.weight"], padding=1)
    out = F.prelu(_bn(out, sd, f"{p}.bn2"), sd[f"{p}.prelu.weight"])
    out = _bn(F.conv2d(out, sd[f"{p}.conv2.weight"], stride=stride, padding=1), sd, f"{p}.bn3")
    if f"{p}.downsample.0.weight" in sd:
        x = _bn(F.conv2d(x, sd[f"{p}.downsample.0.weight"], stride=stride), sd, f"{p}.downsample.1")
    return out + x


def _reference_fse(sd, x256, n_styles=18):
    """Upstream fs_encoder_v2.forward (stride (2,2)) on a normalised 256 px input."""
    x = F.prelu(_bn(F.conv2d(x256, sd["conv.0.weight"], padding=1), sd, "conv.1"), sd["conv.2.weight"])
    pooled, content = [], None
    for stage in range(1, 5):
        j = 0
        while f"block_{stage}.{j}.bn1.weight" in sd:
            x = _block(x, sd, f"block_{stage}.{j}", 2 if j == 0 else 1)
            j += 1
        if stage == 3:
            c = F.conv2d(_bn(x, sd, "content_layer.0"), sd["content_layer.1.weight"], padding=1)
            c = F.prelu(_bn(c, sd, "content_layer.2"), sd["content_layer.3.weight"])
            content = _bn(F.conv2d(c, sd["content_layer.4.weight"], stride=2, padding=1), sd,
                          "content_layer.5")
        pooled.append(F.adaptive_avg_pool2d(x, (3, 3)))
    flat = torch.cat(pooled, 1).flatten(1)
    codes = torch.stack([F.linear(flat, sd[f"styles.{i}.weight"], sd[f"styles.{i}.bias"])
                         for i in range(n_styles)], 1)
    return codes, content


def _fake_psp(path: Path, latent_avg: torch.Tensor) -> Path:
    """A pSp-layout file: {'state_dict': encoder.*/decoder.*, 'opts': dict, 'latent_avg'}."""
    torch.save({"state_dict": {"encoder.input_layer.0.weight": torch.zeros(4, 3, 3, 3),
                               "decoder.style.1.weight": torch.zeros(4, 4)},
                "opts": {"encoder_type": "GradualStyleEncoder", "output_size": 1024},
                "latent_avg": latent_avg}, path)
    return path


def test_official_layout_round_trip_matches_the_reference_forward(tmp_path: Path) -> None:
    manifest = _manifest()
    state = _fake_official_state(**SMALL)
    assert list(state) == list(manifest["keys"])  # same names, reduced widths
    src = tmp_path / "143_enc.pth"
    torch.save(state, src)
    latent_avg = torch.randn(18, 16, generator=torch.Generator().manual_seed(5))
    psp = _fake_psp(tmp_path / "psp_ffhq_encode.pt", latent_avg)
    result = FSEConverter().convert(src, tmp_path / "fse.safetensors", latent_avg=str(psp))
    assert result.kind == "encoder" and result.plugin == "fse" and result.n_tensors == 518
    assert any("InterDigital Limited Software Evaluation License" in n for n in result.notes)
    assert "not the official architecture: style_dim=16, width=4, feature_channels=8" in result.notes
    header = read_header(result.path)
    assert "non-commercial" in header.extra["licence"]
    assert header.config == {**FSEEncoder(**SMALL).config(), "layers": [3, 4, 14, 3]}

    enc = load_plugin("encoder", str(result.path), registry=_registry())
    loaded = enc.state_dict()
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key
    assert torch.equal(loaded["latent_avg"], latent_avg)

    images = torch.rand(2, 3, 1024, 1024, generator=torch.Generator().manual_seed(6))
    x256 = F.avg_pool2d((images - 0.5) / 0.5, 4)  # Normalize(0.5) + two bilinear 2x halvings
    assert_close(enc.prepare(images), x256, atol=1e-6, rtol=0)
    double = {k: v.double() if v.is_floating_point() else v for k, v in state.items()}
    codes, content = _reference_fse(double, x256.double())  # float64 reference
    with torch.no_grad():
        inv = enc.encode(images)
    for ours, ref in ((inv.w_plus, codes + latent_avg.double()), (inv.features[5], content)):
        assert_close(ours.double(), ref, atol=1e-5 * float(ref.abs().max()), rtol=1e-5)
    assert inv.feature_mode == "replace"

    # options override the stored mode/layer at load time
    shift = load_plugin("encoder", f"fse:{result.path}:mode=shift", registry=_registry())
    with torch.no_grad():
        inv_s = shift.encode(images)
    assert inv_s.feature_mode == "shift"
    assert_close(inv_s.features[5], inv.features[5], atol=0, rtol=0)


def test_training_checkpoint_and_generator_latent_avg(tmp_path: Path) -> None:
    cfg = {"n_latent": 8, "style_dim": 32, "width": 4, "layers": (1, 2, 1, 1),
           "feature_channels": 8}
    state = _fake_official_state(seed=1, **cfg)
    src = tmp_path / "checkpoint.pth"
    torch.save({"n_epoch": 3, "enc_state_dict": state,
                "enc_opt_state_dict": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0]}]},
                "enc_scheduler_state_dict": {"step_size": 10, "gamma": 0.1, "last_epoch": 3}}, src)
    gen = tiny_generator(seed=2)  # 32 px: 8 latent rows, style_dim 32
    gen.latent_avg.copy_(torch.linspace(-1, 1, 32))
    gpath = save_stylegan2(tmp_path / "g.safetensors", gen)
    result = FSEConverter().convert(src, tmp_path / "fse.safetensors", latent_avg=gpath,
                                    mode="latents", layer=3)
    assert any("enc_state_dict" in n for n in result.notes)
    enc = load_plugin("encoder", str(result.path), registry=_registry())
    assert enc.config()["layers"] == [1, 2, 1, 1] and enc.mode == "latents" and enc.layer == 3
    # latents mode returns no F: it declares none (shift-norms, FeatureShift, the web app ask)
    assert enc.feature_layer is None and enc.encode(torch.rand(1, 3, 64, 64)).features == {}
    assert torch.equal(enc.latent_avg, torch.linspace(-1, 1, 32).expand(8, 32))
    assert torch.equal(enc.state_dict()["block_2.1.conv2.weight"], state["block_2.1.conv2.weight"])
    # files from a PyTorch without BatchNorm counters convert, with a note
    old = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save(old, tmp_path / "old.pth")
    result = FSEConverter().convert(tmp_path / "old.pth", tmp_path / "old.safetensors",
                                    latent_avg=gpath)
    assert any("num_batches_tracked" in n for n in result.notes)
    again = load_plugin("encoder", str(result.path), registry=_registry())
    assert int(again.state_dict()["block_1.0.bn1.num_batches_tracked"]) == 0
    # a generator with another number of latent rows is refused
    big = save_stylegan2(tmp_path / "g64.safetensors", tiny_generator(size=64))
    with pytest.raises(ConversionError, match=r"g64.safetensors: is a 64px generator \(10 latent"):
        FSEConverter().convert(src, tmp_path / "x.safetensors", latent_avg=big)


def test_insightface_backbone_names_map_to_fse_names() -> None:
    manifest = _manifest()
    arcface = {"conv1.weight": 0, "bn1.running_var": 1, "prelu.weight": 2,
               "layer3.13.bn3.weight": 3, "layer1.0.downsample.1.bias": 4,
               "bn2.weight": 5, "fc.weight": 6, "features.weight": 7}
    mapped = _iresnet.insightface_to_fse(arcface)
    assert mapped == {"conv.0.weight": 0, "conv.1.running_var": 1, "conv.2.weight": 2,
                      "block_3.13.bn3.weight": 3, "block_1.0.downsample.1.bias": 4}
    assert set(mapped) <= set(manifest["keys"])
    with pytest.raises(KeyError):
        _iresnet.insightface_to_fse({"weird.weight": 0})


# ---------------------------------------------------------------------------------------------
# (3) the three modes


class _ConvOffset(DomainMethod):
    """Adds ``value`` to style layer ``layer`` (0 = conv1, the first StyleSpace layer)."""

    name = "test-conv-offset"

    def __init__(self, value: float, layer: int = 0) -> None:
        super().__init__()
        self.value, self.layer = value, layer

    def styles(self, generator, w_plus, offset_scale=None):
        styles = generator.styles(w_plus)
        styles[self.layer] = styles[self.layer] + self.value
        return styles


TINY = {"n_latent": 8, "style_dim": 32, "width": 8, "layers": (1, 1, 1, 1),
        "feature_channels": 32, "feature_stride": 1, "input_size": 64, "resolution": 64}


def _tiny_encoders(gen, layer: int = 3) -> dict[str, FSEEncoder]:
    torch.manual_seed(3)
    base = FSEEncoder(mode="features", layer=layer, **TINY)
    with torch.no_grad():
        base.latent_avg.copy_(gen.mean_latent(512).expand(8, -1))
    out = {}
    for mode in fse.MODES:
        enc = FSEEncoder(mode=mode, layer=layer, **TINY)
        enc.load_state_dict(base.state_dict())
        out[mode] = enc.eval()
    return out


def test_modes_outputs_and_generator_shift() -> None:
    gen = tiny_generator(seed=1)
    encs = _tiny_encoders(gen)
    images = torch.rand(3, 3, 48, 48, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        inv = {m: e.encode(images) for m, e in encs.items()}
        enc = encs["features"]
        enc.check_generator(gen)
        assert inv["latents"].features == {}
        assert inv["features"].feature_mode == "replace" and inv["shift"].feature_mode == "shift"
        for m in fse.MODES:
            assert inv[m].w_plus.shape == (3, 8, 32)
            assert_close(inv[m].w_plus, inv["latents"].w_plus, atol=0, rtol=0)
        assert inv["features"].features[3].shape == (3, 32, 8, 8) == (3, *gen.feature_shapes()[3])
        assert_close(inv["shift"].features[3], inv["features"].features[3], atol=0, rtol=0)

        feats = synthesize(gen, inv["features"])
        assert (feats - synthesize(gen, inv["latents"])).abs().max() > 1e-2  # F is used
        zero = _ConvOffset(0.0)
        assert_close(synthesize(gen, inv["shift"], method=zero), feats, atol=1e-6, rtol=0)
        assert_close(synthesize(gen, inv["shift"]), feats, atol=0, rtol=0)

        move = _ConvOffset(0.5)
        shifted = synthesize(gen, inv["shift"], method=move)
        replaced = synthesize(gen, inv["features"], method=move)
        assert (shifted - replaced).abs().max() > 1e-2
        # replace mode keeps F; shift mode adds G^3(s') - G^3(s)
        src, dst = gen.styles(inv["shift"].w_plus), move.styles(gen, inv["shift"].w_plus)
        delta = (gen.features_upto(dst, 3, randomize_noise=False)[0]
                 - gen.features_upto(src, 3, randomize_noise=False)[0])
        assert delta.abs().max() > 1e-2
        f = inv["shift"].features[3]
        assert_close(shifted, gen.synthesis(dst, randomize_noise=False, features={3: f + delta}),
                     atol=1e-5, rtol=0)
        assert_close(replaced, gen.synthesis(dst, randomize_noise=False, features={3: f}),
                     atol=1e-5, rtol=0)


def test_config_round_trip_and_validation() -> None:
    enc = FSEEncoder(mode="shift", layer=3, **TINY)
    again = FSEEncoder(**json.loads(json.dumps(enc.config())))
    assert again.config() == enc.config()
    assert enc.feature_shape == (32, 8, 8)
    bad = [({"mode": "edit"}, "mode must be one of"), ({"layer": 18}, "layer must be"),
           ({"input_size": 100}, "multiple of 16"), ({"resolution": 768}, "power of two"),
           ({"feature_stride": 3}, "feature_stride"), ({"layers": (3, 4, 14)}, "4 block counts")]
    for kwargs, msg in bad:
        with pytest.raises(FSEConfigError, match=msg):
            FSEEncoder(**kwargs)
    with pytest.raises(StylebridgeError, match="needs weights"):
        load_plugin("encoder", "fse", registry=_registry())
    gen = tiny_generator(size=64)
    with pytest.raises(FSEConfigError, match=r"w\+ \[8, 32\].*\[10, 32\]"):
        enc.check_generator(gen)


# ---------------------------------------------------------------------------------------------
# (4) optimisation: FSE learns to reconstruct a tiny generator's images via feature replacement


@pytest.mark.slow  # 250 training steps (~10 s on CPU)
def test_training_through_feature_replacement_reduces_reconstruction_error() -> None:
    torch.manual_seed(0)
    gen = tiny_generator(seed=0).requires_grad_(False)
    enc = FSEEncoder(mode="features", layer=3, **TINY)  # F replaces G^3: 32 ch, 8x8
    enc.check_generator(gen)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        gen.latent_avg.copy_(gen.mean_latent(1024))
        enc.latent_avg.copy_(gen.latent_avg.expand(8, -1))
        w = gen.make_wplus([torch.randn(64, 32, generator=g)], truncation=0.7)
        target = gen.synthesis(gen.styles(w), randomize_noise=False)  # [-1, 1]
    images = ((target + 1) / 2).clamp(0, 1)

    def mse() -> float:
        enc.eval()
        with torch.no_grad():
            return float(((synthesize(gen, enc.encode(images)) - target) ** 2).mean())

    before = mse()
    opt = torch.optim.Adam(enc.parameters(), lr=1e-3)
    enc.train()
    for _ in range(250):
        idx = torch.randint(0, 64, (8,), generator=g)
        loss = ((synthesize(gen, enc.encode(images[idx])) - target[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = mse()
    assert before > 0.3
    assert after < before / 5, (before, after)


# ---------------------------------------------------------------------------------------------
# (5) bad input: one-line errors naming the file


def _one_line(exc: pytest.ExceptionInfo, path: Path) -> None:
    text = str(exc.value)
    assert "\n" not in text and text.startswith(str(path)), text


def _small_src(tmp_path: Path) -> Path:
    src = tmp_path / "143_enc.pth"
    torch.save(_fake_official_state(seed=2, **SMALL), src)
    return src


def test_wrong_checkpoints_are_refused(tmp_path: Path) -> None:
    dst = tmp_path / "out.safetensors"
    psp = _fake_psp(tmp_path / "psp.pt", torch.zeros(18, 16))
    conv = FSEConverter()
    with pytest.raises(ConversionError, match=r"looks like an e4e/pSp checkpoint \(encoder\.\* keys\), not FSE") as exc:
        conv.convert(psp, dst, latent_avg=psp)
    _one_line(exc, psp)
    torch.save({"g_ema": {"style.1.weight": torch.zeros(2, 2)}, "latent_avg": torch.zeros(2)},
               tmp_path / "sg2.pt")
    with pytest.raises(ConversionError, match="StyleGAN2 generator checkpoint, not FSE"):
        conv.convert(tmp_path / "sg2.pt", dst, latent_avg=psp)
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pt")
    with pytest.raises(ConversionError, match="not an FSE encoder state dict"):
        conv.convert(tmp_path / "other.pt", dst, latent_avg=psp)

    src = _small_src(tmp_path)
    good = torch.load(src, weights_only=True)
    cases = {
        "missing": ({k: v for k, v in good.items() if k != "block_3.5.conv1.weight"},
                    "missing 1 tensor.*block_3.5.conv1.weight"),
        "shape": ({**good, "styles.3.bias": torch.zeros(17)},
                  r"tensor styles.3.bias has shape \[17\], expected \[16\]"),
        "nan": ({**good, "block_4.2.conv2.weight": good["block_4.2.conv2.weight"] * float("nan")},
                "block_4.2.conv2.weight contains NaN"),
        "extra": ({**good, "styles.18.weight": torch.zeros(16, 135)}, "missing 1 tensor.*styles.18.bias"),
    }
    for name, (state, msg) in cases.items():
        path = tmp_path / f"{name}.pth"
        torch.save(state, path)
        with pytest.raises(ConversionError, match=msg) as exc:
            conv.convert(path, dst, latent_avg=psp)
        _one_line(exc, path)
    assert not dst.exists()


def test_truncated_and_malicious_files_and_latent_avg_errors(tmp_path: Path) -> None:
    dst = tmp_path / "out.safetensors"
    conv = FSEConverter()
    src = _small_src(tmp_path)
    psp = _fake_psp(tmp_path / "psp.pt", torch.zeros(18, 16))

    trunc = tmp_path / "trunc.pth"
    trunc.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(ConversionError, match="not a readable PyTorch checkpoint") as exc:
        conv.convert(trunc, dst, latent_avg=psp)
    _one_line(exc, trunc)

    marker = tmp_path / "MARKER"
    evil = tmp_path / "evil.pth"
    torch.save({"conv.0.weight": torch.zeros(1), "payload": _Evil(marker)}, evil)
    with pytest.raises(ConversionError, match=r"refuses to load: the pickle references `posix.system`") as exc:
        conv.convert(evil, dst, latent_avg=psp)
    _one_line(exc, evil)
    assert not marker.exists()
    with pytest.raises(ConversionError, match="refuses to load") as exc:  # malicious latent_avg
        conv.convert(src, dst, latent_avg=evil)
    _one_line(exc, evil)
    assert not marker.exists()

    with pytest.raises(ConversionError, match="pass the option latent_avg=PATH") as exc:
        conv.convert(src, dst)
    _one_line(exc, src)
    torch.save({"state_dict": {}}, tmp_path / "no_avg.pt")
    with pytest.raises(ConversionError, match="has no 'latent_avg' entry") as exc:
        conv.convert(src, dst, latent_avg=tmp_path / "no_avg.pt")
    _one_line(exc, tmp_path / "no_avg.pt")
    wrong = _fake_psp(tmp_path / "wrong.pt", torch.zeros(14, 16))
    with pytest.raises(ConversionError, match=r"shape \[14, 16\], expected \[18, 16\]") as exc:
        conv.convert(src, dst, latent_avg=wrong)
    _one_line(exc, wrong)
    with pytest.raises(ConversionError, match="no such file") as exc:
        conv.convert(src, dst, latent_avg=tmp_path / "absent.pt")
    with pytest.raises(ConversionError, match=r"unknown converter option.* for fse"):
        conv.convert(src, dst, latent_avg=psp, latentavg=psp)
    with pytest.raises(ConversionError, match="mode must be one of") as exc:
        conv.convert(src, dst, latent_avg=psp, mode="edit")
    _one_line(exc, src)
    assert not dst.exists()


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))
