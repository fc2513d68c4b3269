"""The reconstruction losses mse / lpips / id / adversarial (stylebridge.plugins.losses.recon)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from conftest import one_torch_thread

from stylebridge.core.interfaces import LossBatch
from stylebridge.errors import StylebridgeError
from stylebridge.plugins.losses import recon as losses_recon
from stylebridge.plugins.losses.recon import (
    AdversarialLoss,
    IDLoss,
    LPIPSLoss,
    MSELoss,
    _parse_resolutions,
    resize_images,
)
from stylebridge.registry import Registry


def tiny_gan() -> tuple[torch.nn.Module, torch.nn.Module]:
    """The conftest 32 px generator and a small 32 px discriminator with non-zero weights."""
    from conftest import tiny_generator

    from stylebridge.core.stylegan2 import Discriminator

    gen = tiny_generator(seed=0)
    torch.manual_seed(3)
    disc = Discriminator(size=32, channels={4: 8, 8: 8, 16: 8, 32: 8})
    with torch.no_grad():
        for p in disc.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return gen, disc.eval()


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Any:
    """Tiny tensors: one intra-op thread (two threads on shared, loaded cores spin for ages)."""
    with one_torch_thread():
        yield


def _images(seed: int, n: int = 2, size: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def test_losses_are_registered_by_name() -> None:
    registry = Registry(builtins=False, entry_points=False, extra_plugins=[losses_recon])
    assert registry.names("loss") == ["adversarial", "id", "lpips", "mse"]
    assert isinstance(registry.create("loss", "mse"), MSELoss)


def test_mse_resizes_the_reconstruction_by_area_averaging() -> None:
    recon, target = _images(0, size=64), _images(1, size=32)
    value = MSELoss()(LossBatch(target=target, output=recon))
    pooled = recon.reshape(2, 3, 32, 2, 32, 2).mean(dim=(3, 5))  # 2×2 box average
    assert value.item() == pytest.approx(((pooled - target) ** 2).mean().item(), rel=1e-5)
    same = MSELoss()(LossBatch(target=target, output=target.clone()))
    assert same.item() == 0.0


def test_mse_names_a_missing_field() -> None:
    with pytest.raises(ValueError, match="'mse' needs 'target'"):
        MSELoss()(LossBatch(output=_images(0)))


def test_resize_images_identity_and_bilinear() -> None:
    x = _images(2, size=24)
    assert resize_images(x, 24) is x
    assert resize_images(x, 16).shape[-2:] == (16, 16)   # non-integer factor: bilinear
    assert resize_images(x, 48).shape[-2:] == (48, 48)   # up-scaling


def test_parse_resolutions() -> None:
    assert _parse_resolutions("256+128") == (256, 128)
    assert _parse_resolutions("256/128") == (256, 128)
    assert _parse_resolutions([64, 32]) == (64, 32)
    assert _parse_resolutions(256) == (256,)
    for bad in ("", "abc", "8"):
        with pytest.raises(StylebridgeError, match="resolutions"):
            _parse_resolutions(bad)


# ---------------------------------------------------------------------------------------------
# LPIPS


@pytest.fixture(scope="module")
def alexnet_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A torchvision-layout AlexNet state dict (random values; built locally, nothing downloaded)."""
    import torchvision

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tv") / "alexnet-owt-7be5be79.pth"
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
    return path


def test_lpips_refuses_a_random_backbone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # empty hub cache
    with pytest.raises(StylebridgeError, match="allow_random=true"):
        LPIPSLoss()


def test_lpips_backbone_that_is_no_file_names_the_option(tmp_path: Path) -> None:
    """`lpips:backbone=none` (the spec's "none" is a file name there) said only
    "none: no such file", naming neither the plugin nor the option."""
    from stylebridge.registry.resolve import create

    with pytest.raises(StylebridgeError, match=r"^none: no such file \(the LPIPS backbone, "
                                               r"backbone= / --lpips-backbone: torchvision's "
                                               r"alexnet-owt-7be5be79"):
        create("loss", "lpips:backbone=none")
    with pytest.raises(StylebridgeError, match=r"vgg16-397923af\.pth"):
        LPIPSLoss(net="vgg", backbone=str(tmp_path / "missing.pth"))
    with pytest.raises(StylebridgeError, match=r": is not a file \(the LPIPS backbone"):
        LPIPSLoss(backbone=str(tmp_path))  # a folder


@pytest.fixture(scope="module")
def lpips_loss(alexnet_file: Path) -> LPIPSLoss:
    return LPIPSLoss(backbone=str(alexnet_file), resolutions="64+32")


def test_lpips_loads_local_backbone_and_package_heads(alexnet_file: Path, lpips_loss: LPIPSLoss
                                                      ) -> None:
    import lpips

    loss = lpips_loss
    assert not loss.random_weights
    state = torch.load(alexnet_file, weights_only=True)
    assert torch.equal(loss.model.net.slice1[0].weight, state["features.0.weight"])
    assert torch.equal(getattr(loss.model.net.slice5, "10").weight, state["features.10.weight"])
    heads = torch.load(Path(lpips.__file__).parent / "weights/v0.1/alex.pth", weights_only=True,
                       map_location="cpu")
    assert torch.equal(loss.model.lin0.model[1].weight, heads["lin0.model.1.weight"])
    assert not any(p.requires_grad for p in loss.parameters())
    assert loss.config()["resolutions"] == [64, 32]


def test_lpips_sums_over_resolutions_and_is_zero_on_equal_images(lpips_loss: LPIPSLoss) -> None:
    loss = lpips_loss
    a, b = _images(3, size=64), _images(4, size=64)
    value = loss(LossBatch(target=b, output=a))
    at64 = loss.model(a, b).mean()
    at32 = loss.model(a.reshape(2, 3, 32, 2, 32, 2).mean(dim=(3, 5)),
                      b.reshape(2, 3, 32, 2, 32, 2).mean(dim=(3, 5))).mean()
    assert value.item() == pytest.approx((at64 + at32).item(), rel=1e-5)
    assert value.item() > 0
    assert loss(LossBatch(target=a, output=a.clone())).item() == pytest.approx(0, abs=1e-7)
    recon = a.clone().requires_grad_(True)
    loss(LossBatch(target=b, output=recon)).backward()
    assert recon.grad is not None and recon.grad.abs().sum() > 0


def test_lpips_rejects_an_unknown_net() -> None:
    with pytest.raises(StylebridgeError, match="net='resnet'"):
        LPIPSLoss(net="resnet", allow_random=True)


# ---------------------------------------------------------------------------------------------
# ID


@pytest.fixture(scope="module")
def arcface_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from stylebridge.core.checkpoint import save_checkpoint
    from stylebridge.plugins.nets.irse import ARCFACE_KIND, ARCFACE_PLUGIN, ArcFaceIRSE50

    torch.manual_seed(1)
    model = ArcFaceIRSE50(widths=(16, 16, 32, 32), units=(1, 1, 1, 1)).eval()
    with torch.no_grad():  # non-trivial BN statistics
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("arc") / "arcface.safetensors"
    save_checkpoint(path, model.state_dict(), kind=ARCFACE_KIND, plugin=ARCFACE_PLUGIN,
                    config=model.config())
    return path


def _psp_crop(x: torch.Tensor) -> torch.Tensor:
    """pSp's IDLoss input: a 256 px image, rows 35:223, cols 32:220, pooled to 112."""
    return F.adaptive_avg_pool2d(x[:, :, 35:223, 32:220], (112, 112))


def test_id_loss_is_one_minus_cosine_on_psp_crop(arcface_file: Path) -> None:
    loss = IDLoss(weights=str(arcface_file))
    assert not loss.random_weights
    a, b = _images(5, size=256), _images(6, size=256)
    value = loss(LossBatch(target=b, output=a))
    ea = F.normalize(loss.model(_psp_crop(a)), dim=-1)
    eb = F.normalize(loss.model(_psp_crop(b)), dim=-1)
    expected = (1 - (ea * eb).sum(-1)).mean()
    assert value.item() == pytest.approx(expected.item(), rel=1e-4, abs=1e-6)
    assert 0 < value.item() <= 2
    assert loss(LossBatch(target=a, output=a.clone())).item() == pytest.approx(0, abs=1e-5)


def test_id_loss_gradients_reach_only_the_reconstruction(arcface_file: Path) -> None:
    loss = IDLoss(weights=str(arcface_file))
    recon = _images(7, size=256).requires_grad_(True)
    target = _images(8, size=256).requires_grad_(True)
    loss(LossBatch(target=target, output=recon)).backward()
    assert recon.grad is not None and recon.grad.abs().sum() > 0
    assert target.grad is None


def test_id_loss_refuses_random_weights() -> None:
    with pytest.raises(StylebridgeError, match="allow_random=true"):
        IDLoss()
    assert IDLoss(allow_random=True).random_weights


# ---------------------------------------------------------------------------------------------
# Adversarial


@pytest.fixture(scope="module")
def gan_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from stylebridge.core.stylegan2.checkpoint import save_stylegan2

    gen, disc = tiny_gan()
    path = tmp_path_factory.mktemp("gan") / "gan.safetensors"
    save_stylegan2(path, gen, disc)
    return path


def test_adversarial_is_softplus_of_minus_d(gan_file: Path) -> None:
    loss = AdversarialLoss(discriminator=str(gan_file))
    x = _images(9, n=4, size=32)
    expected = F.softplus(-loss.model(x)).mean()
    assert loss(LossBatch(output=x)).item() == pytest.approx(expected.item(), rel=1e-6)
    # a 64 px reconstruction is area-resized to the discriminator's 32 px
    big = F.interpolate(x, scale_factor=2, mode="nearest")
    assert loss(LossBatch(output=big)).item() == pytest.approx(expected.item(), rel=1e-5)
    assert not any(p.requires_grad for p in loss.parameters())
    recon = x.clone().requires_grad_(True)
    loss(LossBatch(output=recon)).backward()
    assert recon.grad is not None and recon.grad.abs().sum() > 0


def test_adversarial_runs_batches_not_divisible_by_the_stddev_group(gan_file: Path) -> None:
    loss = AdversarialLoss(discriminator=str(gan_file))
    x = _images(10, n=6, size=32)  # group 4: chunks of 4 and 2
    expected = torch.cat([loss.model(x[:4]), loss.model(x[4:])])
    assert torch.allclose(loss.logits(x), expected)


def test_adversarial_needs_a_discriminator(tmp_path: Path) -> None:
    with pytest.raises(StylebridgeError, match="discriminator=PATH"):
        AdversarialLoss()
    from stylebridge.core.stylegan2.checkpoint import save_stylegan2

    gen, _ = tiny_gan()
    path = tmp_path / "g_only.safetensors"
    save_stylegan2(path, gen)
    with pytest.raises(StylebridgeError, match="has no discriminator"):
        AdversarialLoss(discriminator=str(path))


@pytest.mark.parametrize("value", ["nope", "true:net=vgg", 2])
def test_allow_random_takes_only_booleans(value: Any) -> None:
    """`allow_random=nope` must not enable a random-weight loss network (bool("nope") is True)."""
    for cls in (LPIPSLoss, IDLoss):
        with pytest.raises(ValueError, match=r"allow_random=.*expected true or false"):
            cls(allow_random=value)
    assert IDLoss(allow_random="yes").random_weights
