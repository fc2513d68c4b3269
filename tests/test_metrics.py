"""Metrics checked against independent references: scikit-image, the lpips package,
pytorch-fid, closed-form Fréchet distances, open_clip, and real face photos (dlib)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylebridge.cli.commands import eval as eval_command
from stylebridge.cli.main import main
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.evaluate import parse_metric_spec
from stylebridge.plugins.converters import fid_inception
from stylebridge.plugins.converters.fid_inception import FIDInceptionConverter
from stylebridge.plugins.metrics import clip as clip_metrics
from stylebridge.plugins.metrics import fid as fid_metrics
from stylebridge.plugins.metrics import id as id_metrics
from stylebridge.plugins.metrics import image as image_metrics
from stylebridge.plugins.metrics import lpips as lpips_metrics
from stylebridge.plugins.metrics.clip import ClipDiversityMetric, ClipQualityMetric
from stylebridge.plugins.metrics.fid import FIDMetric
from stylebridge.plugins.metrics.id import IDMetric
from stylebridge.plugins.metrics.image import MSEMetric, PSNRMetric, SSIMMetric
from stylebridge.plugins.metrics.lpips import LPIPSMetric
from stylebridge.plugins.nets import face_id as _face_id
from stylebridge.plugins.nets import fid as _fid
from stylebridge.registry import Registry, reset_registry
from stylebridge.registry.weights import WeightsManager

skimage_data = pytest.importorskip("skimage.data")


# ---------------------------------------------------------------------------------------------
# helpers


def _t(arr: np.ndarray) -> torch.Tensor:
    """uint8 or float HWC → [1, 3, H, W] in [0, 1] (float64 kept)."""
    x = torch.from_numpy(np.array(arr))  # a writable, contiguous copy
    x = x.double() / 255.0 if x.dtype == torch.uint8 else x.double()
    return x.permute(2, 0, 1).unsqueeze(0)


def _photos() -> list[np.ndarray]:
    """Real photographs, cropped to 256×256 (uint8 RGB)."""
    return [skimage_data.astronaut()[:256, 128:384], skimage_data.coffee()[:256, :256],
            skimage_data.chelsea()[:256, :256]]


def _degraded(img: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noisy = img.astype(np.float64) + rng.normal(0, 12, img.shape)
    blurred = (noisy + np.roll(noisy, 1, axis=0) + np.roll(noisy, 1, axis=1)) / 3.0
    return np.clip(blurred, 0, 255).astype(np.uint8)


def _grace_hopper() -> np.ndarray:
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not path.is_file():
        pytest.skip("matplotlib's sample photo grace_hopper.jpg is not installed")
    return np.asarray(Image.open(path).convert("RGB"))


# ---------------------------------------------------------------------------------------------
# MSE / PSNR / SSIM against scikit-image


def test_pixel_metrics_equal_scikit_image_on_photos() -> None:
    from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

    photos = _photos()
    preds = [_degraded(p, i) for i, p in enumerate(photos)]
    target = torch.cat([_t(p) for p in photos])
    pred = torch.cat([_t(p) for p in preds])
    metrics = {"mse": MSEMetric(), "psnr": PSNRMetric(), "ssim": SSIMMetric(),
               "ssim_g": SSIMMetric(gaussian=True)}
    for m in metrics.values():
        m.update(pred[:2], target[:2])   # two batches: the mean is over images
        m.update(pred[2:], target[2:])
    ref = {"mse": [], "psnr": [], "ssim": [], "ssim_g": []}
    for p, t in zip(preds, photos, strict=True):
        pf, tf = p.astype(np.float64) / 255.0, t.astype(np.float64) / 255.0
        ref["mse"].append(mean_squared_error(tf, pf))
        ref["psnr"].append(peak_signal_noise_ratio(tf, pf, data_range=1.0))
        ref["ssim"].append(structural_similarity(tf, pf, data_range=1.0, channel_axis=-1))
        ref["ssim_g"].append(structural_similarity(tf, pf, data_range=1.0, channel_axis=-1,
                                                   gaussian_weights=True, sigma=1.5,
                                                   use_sample_covariance=False))
    for key, m in metrics.items():
        name = key.removesuffix("_g")
        # both sides are float64: they agree to rounding (measured: MSE/PSNR exactly, SSIM 3e-14)
        assert m.compute()[name] == pytest.approx(float(np.mean(ref[key])), rel=1e-9, abs=1e-12)
        assert m.last[name] == pytest.approx([ref[key][2]], abs=1e-4)  # the last batch, per image
    assert 0.2 < metrics["ssim"].compute()["ssim"] < 0.95  # a real, non-trivial comparison
    assert metrics["ssim_g"].compute()["ssim"] != pytest.approx(metrics["ssim"].compute()["ssim"])


def test_psnr_identical_is_capped_and_shapes_checked() -> None:
    """Identical images: the PSNR of 8-bit quantisation noise, 10 log10(12 · 255²), not inf."""
    x = _t(_photos()[0])
    m = PSNRMetric()
    m.update(x, x)
    assert m.compute()["psnr"] == pytest.approx(10 * np.log10(12 * 255.0 ** 2), abs=1e-9)
    with pytest.raises(ValueError, match="differ in shape"):
        m.update(x, x[:, :, :100])
    with pytest.raises(ValueError, match="needs a target"):
        m.update(x)
    with pytest.raises(StylebridgeError, match="smaller than"):
        SSIMMetric().update(x[:, :, :5, :5], x[:, :, :5, :5])


# ---------------------------------------------------------------------------------------------
# LPIPS against the lpips package


@pytest.fixture()
def alexnet_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, torch.nn.Module]:
    """A torchvision AlexNet with seeded (non-ImageNet) weights, saved as torchvision does."""
    import torchvision

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # no cached file
    torch.manual_seed(3)
    model = torchvision.models.alexnet(weights=None)
    path = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save(model.state_dict(), path)
    return path, model


def test_lpips_equals_lpips_package(alexnet_file, monkeypatch: pytest.MonkeyPatch) -> None:
    import lpips
    import lpips.pretrained_networks as pn

    path, tv_model = alexnet_file
    # the package's own construction, its backbone given the same torchvision weights
    monkeypatch.setattr(pn.tv, "alexnet", lambda *a, **k: tv_model)
    reference = lpips.LPIPS(net="alex", verbose=False).eval()

    photos = _photos()
    target = torch.cat([_t(p) for p in photos]).float()
    pred = torch.cat([_t(_degraded(p, 7 + i)) for i, p in enumerate(photos)]).float()
    metric = LPIPSMetric(net="alex", backbone=str(path))
    metric.update(pred, target)
    with torch.no_grad():
        expected = reference(pred * 2 - 1, target * 2 - 1).reshape(-1)
    assert metric.random_weights is False
    assert metric.last["lpips"] == pytest.approx(expected.tolist(), rel=1e-5, abs=1e-6)
    assert metric.compute()["lpips"] == pytest.approx(float(expected.mean()), rel=1e-5)
    assert float(expected.min()) > 0


def test_lpips_refuses_random_backbone(alexnet_file) -> None:
    with pytest.raises(StylebridgeError, match=r"alexnet-owt-7be5be79\.pth.*allow_random=true"):
        LPIPSMetric(net="alex")
    metric = LPIPSMetric(net="alex", allow_random=True)
    assert metric.random_weights and "RANDOM WEIGHTS" in metric.notes()[0]
    with pytest.raises(StylebridgeError, match=r"features\.0"):
        bad = alexnet_file[0].parent / "bad.pth"
        torch.save({"x": torch.zeros(1)}, bad)
        LPIPSMetric(net="alex", backbone=str(bad))


def test_lpips_finds_torch_hub_cache(alexnet_file, monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = alexnet_file
    hub = path.parent / "hub2"
    (hub / "checkpoints").mkdir(parents=True)
    (hub / "checkpoints" / path.name).write_bytes(path.read_bytes())
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    metric = LPIPSMetric(net="alex")
    assert metric.random_weights is False and metric.backbone_path.parent.parent == hub


def _installed_backbones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                         *names: str) -> WeightsManager:
    """A weights home whose manifest has ``names`` as plain backbone entries (no converter,
    no published hash), as the real lpips-*/fid-inception entries are found by name."""
    from stylebridge.registry.weights import WeightsEntry

    entries = [WeightsEntry(name=n, kind="backbone", plugin=n, filename=f"{n}.pth",
                            licence="test") for n in names]
    home = tmp_path / "weights-home"
    monkeypatch.setattr("stylebridge.registry.weights.WeightsManager",
                        lambda *a, **k: WeightsManager(home, manifest=entries))
    return WeightsManager(home, manifest=entries)


def test_lpips_uses_the_installed_backbone_before_the_hub_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision

    from stylebridge.plugins.losses.recon import LPIPSLoss

    torch.manual_seed(3)  # the trunk only (what LPIPS reads): 10 MB instead of 244
    features = torchvision.models.alexnet(weights=None).features
    path = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    manager = _installed_backbones(tmp_path, monkeypatch, "lpips-alex")
    with pytest.raises(StylebridgeError, match=r"run `stylebridge weights fetch lpips-alex`, or "
                                               r"pass lpips:net=alex,backbone=PATH"):
        LPIPSMetric(net="alex")
    with pytest.raises(StylebridgeError, match=r"fetch lpips-alex`, or pass "
                                               r"lpips:WEIGHT:backbone=PATH"):
        LPIPSLoss(net="alex")
    hub = tmp_path / "hub-other"
    (hub / "checkpoints").mkdir(parents=True)
    (hub / "checkpoints" / path.name).write_bytes(path.read_bytes())
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    installed = manager.register("lpips-alex", path)
    metric = LPIPSMetric(net="alex")
    assert metric.random_weights is False and metric.backbone_path == installed
    loss = LPIPSLoss(net="alex")
    assert loss.random_weights is False
    for ours, given in zip(loss.model.net.state_dict().values(),
                           LPIPSMetric(net="alex", backbone=str(path)).model.net
                           .state_dict().values(), strict=True):
        assert torch.equal(ours, given)


def test_fid_uses_the_installed_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`stylebridge weights fetch fid-inception` is what `eval --metric fid` then reads (it
    used to look only in the torch hub cache)."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty-hub"))
    manager = _installed_backbones(tmp_path, monkeypatch, "fid-inception")
    assert _fid.default_weights_path() is None
    with pytest.raises(StylebridgeError, match=r"run `stylebridge weights fetch fid-inception`"):
        FIDMetric()
    src = tmp_path / "net.pth"
    src.write_bytes(b"any bytes: only where it is found matters here")
    installed = manager.register("fid-inception", src)
    assert _fid.default_weights_path() == installed


# ---------------------------------------------------------------------------------------------
# FID


def _exact_gaussian_set(n: int, d: int, mean: np.ndarray, std: np.ndarray, seed: int) -> np.ndarray:
    """n samples whose *sample* mean and covariance (ddof 1) are exactly ``mean`` and diag(std²)."""
    x = np.random.default_rng(seed).normal(size=(n, d))
    x -= x.mean(0)
    chol = np.linalg.cholesky(np.cov(x, rowvar=False))
    x = np.linalg.solve(chol, x.T).T  # sample covariance I
    return x * std + mean


def test_fid_of_gaussian_sets_equals_closed_form() -> None:
    d, n = 256, 1500
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = rng.uniform(0.2, 2.0, d), rng.uniform(0.2, 2.0, d)
    a = _exact_gaussian_set(n, d, mu1, s1, 1)
    b = _exact_gaussian_set(n, d, mu2, s2, 2)
    stats_a, stats_b = _fid.FeatureStats(d), _fid.FeatureStats(d)
    for i in range(0, n, 128):  # streamed in batches
        stats_a.update(torch.from_numpy(a[i:i + 128]))
        stats_b.update(torch.from_numpy(b[i:i + 128]))
    # Fréchet distance of N(mu1, diag s1²) and N(mu2, diag s2²): |Δμ|² + Σ (s1 - s2)²
    closed = float(((mu1 - mu2) ** 2).sum() + ((s1 - s2) ** 2).sum())
    got = _fid.frechet_distance(stats_a.mean(), stats_a.cov(), stats_b.mean(), stats_b.cov())
    assert got == pytest.approx(closed, rel=1e-6)
    np.testing.assert_allclose(stats_a.cov(), np.cov(a, rowvar=False), atol=1e-9)
    np.testing.assert_allclose(stats_a.mean(), a.mean(0), atol=1e-12)
    assert _fid.frechet_distance(stats_a.mean(), stats_a.cov(), stats_a.mean(),
                                 stats_a.cov()) == pytest.approx(0.0, abs=1e-6 * closed)


def test_frechet_distance_non_commuting_covariances() -> None:
    """Rotated covariances: tr sqrt(Σ1Σ2) against scipy's general matrix square root."""
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(4)
    d = 64
    a, b = rng.normal(size=(d, 2 * d)), rng.normal(size=(d, 3 * d))
    s1, s2 = a @ a.T / (2 * d), b @ b.T / (3 * d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    ref = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(sqrtm(s1 @ s2).real)
    assert _fid.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-8)


def test_frechet_distance_singular_covariance() -> None:
    """Fewer samples than dimensions (as FID of a few images): the eigen fallback."""
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(6)
    d = 48
    a, b = rng.normal(size=(d, 10)), rng.normal(size=(d, 60))
    s1, s2 = a @ a.T / 10, b @ b.T / 60  # s1 has rank 10
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.cholesky(s1)
    ref = np.trace(s1) + np.trace(s2) - 2 * np.trace(sqrtm(s1 @ s2).real)
    assert _fid.frechet_distance(np.zeros(d), s1, np.zeros(d), s2) == pytest.approx(ref, rel=1e-6)
    assert _fid.frechet_distance(np.zeros(d), s1, np.zeros(d), s1) == pytest.approx(0.0, abs=1e-9)


def test_feature_stats_large_offset_is_stable() -> None:
    x = np.random.default_rng(5).normal(size=(3000, 8)) + 1e4  # big mean, unit variance
    stats = _fid.FeatureStats(8)
    for chunk in np.array_split(x, 7):
        stats.update(torch.from_numpy(chunk))
    np.testing.assert_allclose(stats.cov(), np.cov(x, rowvar=False), atol=1e-8)


def test_fid_stats_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    mu, a = rng.normal(size=16), rng.normal(size=(16, 16))
    sigma = a @ a.T
    _fid.save_fid_stats(tmp_path / "s.safetensors", mu, sigma, n=123)
    mu2, sigma2, n = _fid.load_fid_stats(tmp_path / "s.safetensors")
    assert n == 123 and np.array_equal(mu, mu2) and np.array_equal(sigma, sigma2)
    np.savez(tmp_path / "s.npz", mu=mu, sigma=sigma)  # pytorch-fid's --save-stats format
    mu3, sigma3, n3 = _fid.load_fid_stats(tmp_path / "s.npz")
    assert n3 is None and np.array_equal(mu, mu3) and np.array_equal(sigma, sigma3)
    np.savez(tmp_path / "bad.npz", mu=mu)
    with pytest.raises(StylebridgeError, match=r"bad\.npz.*'mu' and 'sigma'"):
        _fid.load_fid_stats(tmp_path / "bad.npz")


def _random_inception(seed: int = 0) -> _fid.FIDInceptionV3:
    torch.manual_seed(seed)
    model = _fid.FIDInceptionV3()
    with torch.no_grad():  # non-trivial batch-norm statistics
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    return model.eval()


def test_fid_inception_layout_matches_torchvision_inception3() -> None:
    """pytorch-fid's file is the state dict of torchvision's Inception3(num_classes=1008, no aux)."""
    import torchvision

    tv = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008,
                                         init_weights=False)
    ours = _fid.FIDInceptionV3()
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
        {k: v.shape for k, v in tv.state_dict().items()}


@pytest.mark.slow  # two Inception-v3 forwards at 299 px on CPU
def test_fid_inception_equals_pytorch_fid(monkeypatch: pytest.MonkeyPatch) -> None:
    inception = pytest.importorskip("pytorch_fid.inception",
                                    reason="pytorch-fid is the reference implementation")
    ours = _random_inception()
    upstream = {k: v for k, v in ours.state_dict().items() if not k.endswith("num_batches_tracked")}
    # pytorch-fid builds its network with its own code and loads "its" file: ours (strict=True)
    monkeypatch.setattr(inception, "load_state_dict_from_url", lambda *a, **k: upstream)
    reference = inception.InceptionV3([3]).eval()
    x = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference(x)[0].flatten(1)
        got = ours(x)
    assert got.shape == (2, 2048)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_fid_inception_converter(tmp_path: Path) -> None:
    model = _random_inception(1)
    upstream = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    src = tmp_path / _fid.UPSTREAM_FILE
    torch.save(upstream, src)
    result = FIDInceptionConverter().convert(src, tmp_path / "fid.safetensors")
    assert result.kind == "backbone" and result.plugin == "fid-inception"
    assert result.n_tensors == len(upstream) and "Apache" in result.notes[0]
    for path in (result.path, src):  # our conversion, and the upstream .pth read directly
        loaded = _fid.load_fid_inception(path).state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in upstream.items())
    del upstream["fc.weight"]
    torch.save(upstream, tmp_path / "broken.pth")
    with pytest.raises(StylebridgeError, match=r"broken\.pth: FID Inception is missing 1 tensor"):
        FIDInceptionConverter().convert(tmp_path / "broken.pth", tmp_path / "x.safetensors")


class _CheapFeatures(torch.nn.Module):
    """Stands in for the Inception network in plumbing tests: a fixed projection to 32-d."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.randn(3 * 4 * 4, 32, generator=torch.Generator().manual_seed(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1) @ self.proj


def test_fid_metric_streams_and_caches_reference(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # no cached weights
    with pytest.raises(StylebridgeError, match=r"pt_inception-2015-12-05-6726825d\.pth"):
        FIDMetric()
    images = torch.rand(80, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    other = images.flip(-1) * 0.5
    ref = tmp_path / "ref.safetensors"
    metric = FIDMetric(ref_stats=str(ref), allow_random=True)
    assert metric.random_weights and metric.notes()[0].startswith("RANDOM WEIGHTS")
    metric.random_weights = False  # the stand-in network below is deterministic, not "random"
    metric.model = _CheapFeatures()
    for i in range(0, 80, 24):  # streamed, uneven batches
        metric.update(other[i:i + 24], images[i:i + 24])
    fid = metric.compute()["fid"]
    assert ref.is_file() and any("cached" in n for n in metric.notes())

    feats_a = _CheapFeatures()(other).double().numpy()
    feats_b = _CheapFeatures()(images).double().numpy()
    expected = _fid.frechet_distance(feats_a.mean(0), np.cov(feats_a, rowvar=False),
                                     feats_b.mean(0), np.cov(feats_b, rowvar=False))
    assert fid == pytest.approx(expected, rel=1e-6) and fid > 1.0

    cached = FIDMetric(ref_stats=str(ref), allow_random=True)
    cached.model = _CheapFeatures()
    cached.update(images, other)  # the set against its own cached statistics; targets unused
    assert cached.compute()["fid"] == pytest.approx(0.0, abs=1e-6 * fid)
    assert any("read from" in n and "80 images" in n and "not used" in n for n in cached.notes())


# ---------------------------------------------------------------------------------------------
# Identity


def test_dlib_identity_on_real_faces() -> None:
    astronaut = skimage_data.astronaut()
    face = _t(astronaut).float()
    mirror = _t(astronaut[:, ::-1]).float()
    crop = _t(astronaut[10:300, 100:340]).float()
    hopper = _t(_grace_hopper()).float()
    metric = IDMetric(backend="dlib", detect="hog")
    sims = {}
    for name, other in (("mirror", mirror), ("crop", crop), ("other", hopper)):
        metric.reset()
        metric.update(face, other)
        sims[name] = metric.compute()["id[dlib]"]
    assert sims["mirror"] > 0.97 and sims["crop"] > 0.97
    assert sims["other"] < min(sims["mirror"], sims["crop"]) - 0.05


def test_dlib_no_face_is_left_out_or_noted() -> None:
    face = _t(skimage_data.astronaut()[:256, 128:384]).float()
    coffee = _t(skimage_data.coffee()[:256, :256]).float()
    strict = IDMetric(backend="dlib", detect="hog")
    strict.update(torch.cat([face, coffee]), torch.cat([face, coffee]))
    assert strict.last["id[dlib]"][0] == pytest.approx(1.0) and np.isnan(strict.last["id[dlib]"][1])
    assert strict.compute()["id[dlib]"] == pytest.approx(1.0)
    assert any("left out" in n for n in strict.notes())
    auto = IDMetric(backend="dlib", detect="auto")
    auto.update(coffee, coffee)
    assert auto.compute()["id[dlib]"] == pytest.approx(1.0) and "whole image" in auto.notes()[0]
    auto.reset()
    assert auto.notes() == []


def test_dlib_models_found_without_importing_the_package() -> None:
    folder = _face_id.dlib_model_dir()
    assert (folder / _face_id.DLIB_RECOGNITION_FILE).is_file()
    assert "face_recognition_models" not in sys.modules


def test_arcface_preprocessing_is_psp_crop() -> None:
    """pSp: x[:, :, 35:223, 32:220] of the 256 px image, AdaptiveAvgPool2d(112), in [-1, 1]."""
    ramp = torch.arange(188, dtype=torch.float32) / 187  # 0 .. 1 across the crop box
    edge = 2 * (0.5 / 187)  # the first/last pooled cell averages 2 pixels of the ramp
    for dim, (lo, hi) in ((3, (32, 220)), (2, (35, 223))):
        img = torch.full((1, 3, 256, 256), 0.5)
        shape = [1, 1, 1, 1]
        shape[dim] = 188
        index = [slice(None)] * 4
        index[dim] = slice(lo, hi)
        img[tuple(index)] = ramp.view(shape).expand_as(img[tuple(index)])
        out = _face_id.arcface_preprocess(img)
        assert out.shape == (1, 3, 112, 112)
        first, last = out.select(dim, 0), out.select(dim, 111)
        torch.testing.assert_close(first, torch.full_like(first, -1 + edge))
        torch.testing.assert_close(last, torch.full_like(last, 1 - edge))
    big = img.repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)  # the same picture at 1024
    torch.testing.assert_close(_face_id.arcface_preprocess(big), out)


def test_arcface_backend(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "no-weights"))
    with pytest.raises(StylebridgeError, match="needs weights"):
        IDMetric(backend="arcface")
    monkeypatch.setitem(sys.modules, "stylebridge.plugins.nets.irse", None)  # not importable
    with pytest.raises(StylebridgeError, match="arcface is not available"):
        IDMetric(backend="arcface", weights="x.safetensors")

    seen = []

    class FakeArcFace(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(x)
            return torch.nn.functional.normalize(x.mean(dim=(2, 3)), dim=1)

    fake = type(sys)("stylebridge.plugins.nets.irse")
    fake.load_arcface_irse50 = lambda path, device: FakeArcFace()
    monkeypatch.setitem(sys.modules, "stylebridge.plugins.nets.irse", fake)
    metric = IDMetric(backend="arcface", weights="x.safetensors")
    a = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    metric.update(a, a)
    assert seen[0].shape == (2, 3, 112, 112) and float(seen[0].min()) >= -1.0
    assert metric.last["id[arcface]"] == pytest.approx([1.0, 1.0])


def test_arcface_backend_with_irse_checkpoint(tmp_path: Path) -> None:
    """A small IR-SE ArcFace in our checkpoint format; reference = pSp's IDLoss steps, inline."""
    backbones = pytest.importorskip("stylebridge.plugins.nets.irse")
    from stylebridge.core.checkpoint import save_checkpoint

    torch.manual_seed(0)
    net = backbones.ArcFaceIRSE50(widths=(16, 16, 32, 32), units=(1, 1, 1, 1)).eval()
    path = save_checkpoint(tmp_path / "arcface.safetensors", net.state_dict(),
                           kind=backbones.ARCFACE_KIND, plugin=backbones.ARCFACE_PLUGIN,
                           config=net.config())
    metric = IDMetric(backend="arcface", weights=str(path))
    a = torch.cat([_t(p) for p in _photos()]).float()
    b = torch.cat([_t(_degraded(p, 3 + i)) for i, p in enumerate(_photos())]).float()
    metric.update(a, b)

    def feats(x: torch.Tensor) -> torch.Tensor:  # pSp: [-1, 1], crop [35:223, 32:220], pool 112
        x = (x * 2 - 1)[:, :, 35:223, 32:220]
        return net(torch.nn.AdaptiveAvgPool2d((112, 112))(x))

    with torch.no_grad():
        expected = (feats(a) * feats(b)).sum(1)
    assert metric.last["id[arcface]"] == pytest.approx(expected.tolist(), abs=1e-5)
    assert not metric.random_weights


# ---------------------------------------------------------------------------------------------
# CLIP


@pytest.fixture(scope="module")
def clip_weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object, object]:
    """ViT-B-32 with seeded weights saved as .safetensors, and open_clip's own model + transform."""
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(11)
    model, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None)
    path = tmp_path_factory.mktemp("clip") / "vitb32.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path, model.eval(), preprocess


def _face_tiles(tmp_path: Path) -> list[Path]:
    """Four 224×224 PNGs cut from real photos."""
    paths = []
    for i, img in enumerate([skimage_data.astronaut()[:224, 150:374], skimage_data.coffee()[:224, :224],
                             skimage_data.chelsea()[:224, :224], skimage_data.rocket()[:224, :224]]):
        paths.append(tmp_path / f"img{i}.png")
        Image.fromarray(img).save(paths[-1])
    return paths


@pytest.mark.slow  # two ViT-B-32 networks on CPU (about 20 s)
def test_clip_metrics_equal_direct_open_clip(clip_weights, tmp_path: Path) -> None:
    import open_clip

    from stylebridge.core.images import load_image

    path, model, preprocess = clip_weights
    files = _face_tiles(tmp_path)
    text = "a portrait in the style of a pixar character"
    with torch.no_grad():
        ref_img = torch.nn.functional.normalize(
            model.encode_image(torch.stack([preprocess(Image.open(f)) for f in files])), dim=-1)
        ref_txt = torch.nn.functional.normalize(
            model.encode_text(open_clip.get_tokenizer("ViT-B-32")([text])), dim=-1)[0]
    images = torch.stack([load_image(f) for f in files])

    quality = ClipQualityMetric(model="ViT-B-32", weights=str(path), text=text)
    diversity = ClipDiversityMetric(model="ViT-B-32", weights=str(path))
    for m in (quality, diversity):
        m.update(images[:3])
        m.update(images[3:])
    q_ref = (ref_img @ ref_txt).double()
    assert quality.random_weights is False and diversity.random_weights is False
    assert quality.compute()["clip_quality"] == pytest.approx(float(q_ref.mean()), abs=1e-4)
    n = len(files)
    pairs = [1 - float(ref_img[i] @ ref_img[j]) for i in range(n) for j in range(i + 1, n)]
    assert diversity.compute()["clip_diversity"] == pytest.approx(float(np.mean(pairs)), abs=1e-4)

    by_image = ClipQualityMetric(model="ViT-B-32", weights=str(path), reference=str(files[0]))
    by_image.update(images)
    expected = (ref_img @ ref_img[0]).double()
    assert by_image.last["clip_quality"] == pytest.approx(expected.tolist(), abs=1e-4)
    assert by_image.last["clip_quality"][0] == pytest.approx(1.0, abs=1e-5)


def test_clip_metrics_refuse_random_weights(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "no-weights"))
    with pytest.raises(StylebridgeError, match=r"run `stylebridge weights fetch clip-vit-b-32`, "
                                               r"or pass clip_quality:model=ViT-B-32,weights=PATH"):
        ClipQualityMetric(text="joker")
    with pytest.raises(StylebridgeError, match="exactly one of text"):
        ClipQualityMetric(weights="w.safetensors")
    metric = ClipDiversityMetric(model="ViT-S-32", allow_random=True)
    assert metric.random_weights and metric.notes()[0].startswith("RANDOM WEIGHTS")
    metric.update(torch.rand(1, 3, 32, 32))
    with pytest.raises(StylebridgeError, match="at least 2 images"):
        metric.compute()


# ---------------------------------------------------------------------------------------------
# Registry, specs and `stylebridge eval`


def test_registered_and_rebuilt_from_config() -> None:
    registry = Registry(builtins=False, entry_points=False, extra_plugins=[
        image_metrics, lpips_metrics, id_metrics, fid_metrics, clip_metrics, fid_inception,
        eval_command])
    assert set(registry.names("metric")) == {"mse", "psnr", "ssim", "lpips", "id", "fid",
                                             "clip_quality", "clip_diversity"}
    assert registry.names("converter") == ["fid-inception"]
    assert registry.names("command") == ["eval"]
    metric = registry.create("metric", "ssim", gaussian=True)
    rebuilt = type(metric)(**metric.config())
    assert rebuilt.gaussian is True and rebuilt.config() == metric.config()


def test_parse_metric_spec() -> None:
    assert parse_metric_spec("psnr").options == {}
    spec = parse_metric_spec("lpips:net=vgg,allow_random=true")
    assert (spec.name, spec.options) == ("lpips", {"net": "vgg", "allow_random": True})
    spec = parse_metric_spec("fid:ref_stats=/data/ffhq.safetensors,allow_random=yes")
    assert spec.options == {"ref_stats": "/data/ffhq.safetensors", "allow_random": True}
    spec = parse_metric_spec("clip_quality:/w/vitb16.safetensors:model=ViT-B-16")
    assert spec.options == {"weights": "/w/vitb16.safetensors", "model": "ViT-B-16"}
    assert parse_metric_spec("fid:net").options == {"weights": "net"}  # NAME:PATH
    with pytest.raises(StylebridgeError, match="malformed option"):
        parse_metric_spec("lpips:net=vgg,size")


@pytest.fixture()
def eval_dirs(tmp_path: Path) -> tuple[Path, Path, dict[str, tuple[np.ndarray, np.ndarray]]]:
    pred, target = tmp_path / "pred", tmp_path / "target"
    pred.mkdir()
    target.mkdir()
    pairs = {}
    for i, img in enumerate(_photos()):
        img = img[:64, :64]
        deg = _degraded(img, i)
        Image.fromarray(img).save(target / f"face{i}.png")
        Image.fromarray(deg).save(pred / f"face{i}.png")
        pairs[f"face{i}"] = (deg, img)
    (pred / "broken.png").write_bytes(b"not an image")      # unreadable
    Image.fromarray(_photos()[0][:64, :64]).save(target / "broken.png")
    Image.fromarray(_photos()[1][:64, :64]).save(target / "lonely.png")  # no prediction
    return pred, target, pairs


def test_eval_command_outputs_and_partial_exit(eval_dirs, tmp_path: Path, capsys) -> None:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    reset_registry()
    pred, target, pairs = eval_dirs
    out_json, out_csv = tmp_path / "r.json", tmp_path / "r.csv"
    code = main(["eval", "--metric", "psnr", "--metric", "ssim", "--metric", "mse",
                 "--pred", str(pred), "--target", str(target), "--batch", "2",
                 "--json", str(out_json), "--csv", str(out_csv)])
    out = capsys.readouterr().out
    assert code == 3  # partial: one unreadable prediction, one target without prediction
    assert "3 done, 2 skipped" in out and "mean" in out
    data = json.loads(out_json.read_text())
    assert data["n_images"] == 3
    skipped = {Path(s["file"]).name: s["reason"] for s in data["report"]["skipped"]}
    assert skipped["broken.png"] == "is a text file, not an image"
    assert "no prediction" in skipped["lonely.png"]
    expected = {name: (peak_signal_noise_ratio(t / 255.0, p / 255.0, data_range=1.0),
                       structural_similarity(t / 255.0, p / 255.0, data_range=1.0, channel_axis=-1))
                for name, (p, t) in pairs.items()}
    for row in data["per_image"]:
        assert row["psnr"] == pytest.approx(expected[row["name"]][0], abs=1e-4)
        assert row["ssim"] == pytest.approx(expected[row["name"]][1], abs=1e-4)
    assert data["mean"]["psnr"] == pytest.approx(np.mean([v[0] for v in expected.values()]), abs=1e-4)
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["name"] for r in rows] == ["face0", "face1", "face2", "mean"]
    assert float(rows[-1]["ssim"]) == pytest.approx(data["mean"]["ssim"], abs=1e-12)


def test_evaluate_from_python_without_the_cli(eval_dirs) -> None:
    """The pipeline alone: a typed config in, a result out, progress through plain callbacks."""
    from skimage.metrics import peak_signal_noise_ratio

    from stylebridge.pipelines.evaluate import EvalConfig, EvalProgress, evaluate

    class Counting(EvalProgress):
        def __init__(self) -> None:
            self.total, self.done, self.stopped = 0, 0, False

        def start(self, total: int) -> None:
            self.total = total

        def advance(self, n: int) -> None:
            self.done += n

        def stop(self) -> None:
            self.stopped = True

    pred, target, pairs = eval_dirs
    progress = Counting()
    result = evaluate(EvalConfig(metrics=["psnr"], pred=[pred], target=[target], batch=2,
                                 device="cpu"), progress=progress)
    assert result.exit_code == 3 and result.written == []   # broken.png, lonely.png skipped
    assert (progress.total, progress.done, progress.stopped) == (4, 3, True)
    expected = {name: peak_signal_noise_ratio(t / 255.0, p / 255.0, data_range=1.0)
                for name, (p, t) in pairs.items()}
    assert {row["name"]: row["psnr"] for row in result.rows} == pytest.approx(expected, abs=1e-4)
    assert result.as_json()["mean"]["psnr"] == pytest.approx(np.mean(list(expected.values())),
                                                            abs=1e-4)


def test_eval_pairs_adapt_outputs_by_suffix(eval_dirs, tmp_path: Path, capsys) -> None:
    """adapt/invert write photo_inversion.png, photo_pixar.png, grid.png: --suffix picks one
    kind and pairs it by the name without the suffix; without it, the error names the fix."""
    from skimage.metrics import peak_signal_noise_ratio

    from stylebridge.pipelines.evaluate import EvalConfig, evaluate

    reset_registry()
    _, target, pairs = eval_dirs
    adapted = tmp_path / "adapted"
    adapted.mkdir()
    for name, (deg, img) in pairs.items():
        Image.fromarray(deg).save(adapted / f"{name}_inversion.png")
        Image.fromarray(255 - img).save(adapted / f"{name}_pixar.png")
    Image.fromarray(pairs["face0"][0]).save(adapted / "grid.png")
    assert main(["eval", "-m", "psnr", "--pred", str(adapted), "--target", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.endswith("error: no image pairs to evaluate (file names of --pred and --target "
                        "must match); the predictions are named <target>_inversion, as invert "
                        "and adapt write them: give --suffix _inversion (found _inversion, "
                        "_pixar)\n")
    result = evaluate(EvalConfig(metrics=["psnr"], pred=[adapted], target=[target],
                                 suffix="_inversion", device="cpu"))
    expected = {name: peak_signal_noise_ratio(t / 255.0, p / 255.0, data_range=1.0)
                for name, (p, t) in pairs.items()}
    assert {row["name"]: row["psnr"] for row in result.rows} == pytest.approx(expected, abs=1e-4)
    assert {row["pred"] for row in result.rows} == {
        str(adapted / f"{n}_inversion.png") for n in pairs}  # no _pixar, no grid.png
    assert main(["eval", "-m", "psnr", "--pred", str(adapted), "--suffix", "_nope",
                 "--target", str(target)]) == 2
    assert capsys.readouterr().err == ("error: --suffix _nope: no file of --pred has a name "
                                       "ending with it\n")


def test_eval_command_errors(eval_dirs, capsys) -> None:
    reset_registry()
    pred, target, _ = eval_dirs
    assert main(["eval", "--metric", "psnr", "--pred", str(pred)]) == 2
    assert "give --target" in capsys.readouterr().err
    assert main(["eval", "--metric", "nope", "--pred", str(pred), "--target", str(target)]) == 2
    assert "unknown metric 'nope'" in capsys.readouterr().err
    assert main(["eval", "--metric", "lpips:net=resnet", "--pred", str(pred),
                 "--target", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: metric 'lpips': config net='resnet': expected one of alex, "
                          "vgg") and err.count("\n") == 1


def test_eval_labels_random_weights_and_duplicates(eval_dirs, tmp_path: Path, capsys,
                                                   monkeypatch) -> None:
    reset_registry()
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    pred, target, _ = eval_dirs
    out_json = tmp_path / "r.json"
    code = main(["eval", "--metric", "lpips:allow_random=true", "--metric", "ssim",
                 "--metric", "ssim:gaussian=true", "--pred", str(pred), "--target", str(target),
                 "--metric", "clip_quality:model=ViT-S-32,allow_random=true",
                 "--domain-text", "a pixar character, 3d render", "--json", str(out_json)])
    notices = capsys.readouterr().err  # the RANDOM notes under the table: on stderr
    assert code == 3 and "RANDOM WEIGHTS" in notices
    data = json.loads(out_json.read_text())
    assert data["metrics"]["lpips:allow_random=true"]["random_weights"] is True
    clip = data["metrics"]["clip_quality:model=ViT-S-32,allow_random=true"]
    assert clip["random_weights"] is True
    assert clip["config"]["text"] == "a pixar character, 3d render"
    assert {"ssim[ssim]", "ssim[ssim:gaussian=true]", "lpips", "clip_quality"} <= set(data["mean"])
    assert all(-1.0 <= row["clip_quality"] <= 1.0 for row in data["per_image"])


def test_eval_runs_a_metric_written_to_the_bare_interface(eval_dirs, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys) -> None:
    """A third-party Metric with only reset/update/compute (the documented interface) works."""
    import types

    from stylebridge.core.interfaces import Metric
    from stylebridge.registry import hookimpl
    from stylebridge.registry import registry as registry_mod

    class MeanAbsDiff(Metric):
        name = "mean-abs-diff"

        def reset(self) -> None:
            self.total, self.n = 0.0, 0

        def update(self, pred, target=None, **context) -> None:
            self.total += float((pred - target).abs().mean(dim=(1, 2, 3)).sum())
            self.n += pred.shape[0]

        def compute(self) -> dict[str, float]:
            return {"mad": self.total / self.n}

    mod = types.ModuleType("bare_metric_pkg")
    mod.register_metrics = hookimpl(lambda register: register(MeanAbsDiff))  # type: ignore[attr-defined]
    monkeypatch.setattr(registry_mod, "_REGISTRY", Registry(extra_plugins=[mod],
                                                            entry_points=False))
    pred, target, pairs = eval_dirs
    out_json = tmp_path / "r.json"
    code = main(["eval", "--metric", "mean-abs-diff", "--pred", str(pred), "--target",
                 str(target), "--json", str(out_json)])
    assert code == 3, capsys.readouterr()   # the unreadable pair is skipped
    data = json.loads(out_json.read_text())
    expected = np.mean([np.abs(p / 255.0 - t / 255.0).mean() for p, t in pairs.values()])
    assert data["mean"]["mad"] == pytest.approx(expected, abs=1e-4)
    assert data["metrics"]["mean-abs-diff"]["random_weights"] is False


def test_eval_pairs_two_explicit_files_whatever_their_names(eval_dirs, tmp_path: Path,
                                                             capsys) -> None:
    from skimage.metrics import peak_signal_noise_ratio

    pred, target, pairs = eval_dirs
    p, _ = pairs["face0"]
    out_json = tmp_path / "r.json"
    assert main(["eval", "--metric", "psnr", "--pred", str(pred / "face0.png"),
                 "--target", str(target / "lonely.png"), "--json", str(out_json)]) == 0
    other = np.asarray(Image.open(target / "lonely.png").convert("RGB"))
    data = json.loads(out_json.read_text())
    assert data["mean"]["psnr"] == pytest.approx(
        peak_signal_noise_ratio(other / 255.0, p / 255.0, data_range=1.0), abs=1e-4)


def test_eval_refuses_an_unwritable_output_before_the_work(eval_dirs, tmp_path: Path,
                                                           capsys) -> None:
    pred, target, _ = eval_dirs
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["eval", "--metric", "psnr", "--pred", str(pred), "--target", str(target),
                 "--json", str(blocker / "r.json")])
    err = capsys.readouterr().err
    assert code == 2 and str(blocker / "r.json") in err and ".tmp" not in err


def test_eval_fid_takes_the_targets_as_an_unpaired_reference_set(tmp_path: Path, capsys) -> None:
    """FID compares two sets: names need not match and nothing is resized to a partner."""
    gen, real = tmp_path / "gen", tmp_path / "real"
    gen.mkdir()
    real.mkdir()
    photos = _photos()
    for i, img in enumerate(photos):
        Image.fromarray(_degraded(img[:96, :96], i)).save(gen / f"g{i}.png")
        Image.fromarray(img[:80, :120]).save(real / f"photo{i}.png")   # other names and sizes
    out_json = tmp_path / "fid.json"
    code = main(["eval", "--metric", "fid:allow_random=true", "--pred", str(gen), "--target",
                 str(real), "--json", str(out_json)])
    out = capsys.readouterr()
    assert code == 0, out.err
    data = json.loads(out_json.read_text())
    assert data["n_images"] == len(photos) and data["report"]["skipped"] == []
    assert data["metrics"]["fid:allow_random=true"]["random_weights"] is True
    assert np.isfinite(data["mean"]["fid"])
    # no reference at all, or a single image, is refused before any image is read
    assert main(["eval", "--metric", "fid:allow_random=true", "--pred", str(gen)]) == 2
    assert "no reference: give --target DIR" in capsys.readouterr().err
    assert main(["eval", "--metric", "fid:allow_random=true", "--pred", str(gen / "g0.png"),
                 "--target", str(real)]) == 2
    assert "needs at least 2 predicted images, got 1" in capsys.readouterr().err


def test_clip_weights_of_another_model_are_a_one_line_error(tmp_path: Path) -> None:
    import warnings

    from safetensors.torch import save_file

    from stylebridge.errors import CheckpointError
    from stylebridge.plugins.nets.clip import ClipActivationWarning, load_clip

    path = tmp_path / "vit-b-16-patch.safetensors"
    save_file({"visual.conv1.weight": torch.zeros(768, 3, 16, 16)}, str(path))   # B/16's patch
    message = r"visual.conv1.weight has shape \[768, 3, 16, 16\], ViT-B-32 needs \[768, 3, 32, 32\]"
    # a plain state dict does not record GELU vs QuickGELU: the user is told which is assumed
    with pytest.warns(ClipActivationWarning, match="loaded with GELU"), \
            pytest.raises(CheckpointError, match=message) as info:
        load_clip("ViT-B-32", weights=path)
    assert str(path) in str(info.value)
    save_file({"visual.conv1.weight": torch.zeros(768, 3, 16, 16)}, str(path),
              metadata={"quick_gelu": "false"})                                # recorded: silent
    with warnings.catch_warnings():
        warnings.simplefilter("error", ClipActivationWarning)
        with pytest.raises(CheckpointError, match=message):
            load_clip("ViT-B-32", weights=path)


def test_eval_json_and_csv_agree_on_identical_images(tmp_path: Path, capsys) -> None:
    """PSNR of identical images is the cap (a number, in JSON and CSV alike), not inf."""
    img = _photos()[0][:64, :64]
    for d in ("p", "t"):
        (tmp_path / d).mkdir()
        Image.fromarray(img).save(tmp_path / d / "same.png")
    out_json, out_csv = tmp_path / "r.json", tmp_path / "r.csv"
    assert main(["eval", "--metric", "psnr", "--pred", str(tmp_path / "p"), "--target",
                 str(tmp_path / "t"), "--json", str(out_json), "--csv", str(out_csv)]) == 0
    data = json.loads(out_json.read_text())
    rows = list(csv.DictReader(out_csv.open()))
    cap = 10 * np.log10(12 * 255.0 ** 2)
    assert data["per_image"][0]["psnr"] == pytest.approx(cap) == float(rows[0]["psnr"])
    assert data["mean"]["psnr"] == pytest.approx(cap) == float(rows[-1]["psnr"])
    # what it takes to run it again: the options that change a number, and the versions
    assert data["settings"] == {"metrics": ["psnr"], "suffix": "", "size": None,
                                "domain_text": None, "batch": 8, "device": "auto"}
    assert data["software"]["torch"] == torch.__version__


def test_clip_metrics_use_the_installed_weights(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """`eval --metric clip_quality` after `weights fetch clip-...`: no weights= needed."""
    from conftest import tiny_clip_entry

    name, path, manager = tiny_clip_entry(tmp_path, monkeypatch)
    manager.register("tiny-clip", path)
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    installed = ClipDiversityMetric(model=name)
    given = ClipDiversityMetric(model=name, weights=str(path))
    for metric in (installed, given):
        metric.update(images)
    assert installed.compute() == given.compute()
