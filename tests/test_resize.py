"""Per-encoder input resize filters against PIL (issue 16, item 7).

The reference is PIL itself, on a real photo: scikit-image's astronaut brought to 1024 px
with PIL, then 1024 → 256 with PIL's bilinear (pSp/e4e: torchvision ``Resize`` on a PIL
image) and PIL's default bicubic (StyleRes: ``image.resize((256, 256))``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from stylebridge.core.interfaces import Preprocessing
from stylebridge.core.resize import RESIZE_FILTERS, pil_weights, resize

skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def astronaut_1024() -> Image.Image:
    return Image.fromarray(skimage_data.astronaut()).resize((1024, 1024), Image.Resampling.BICUBIC)


def _tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 255.0


@pytest.mark.parametrize(("name", "pil_filter"), [
    ("pil-bilinear", Image.Resampling.BILINEAR),
    ("pil-bicubic", Image.Resampling.BICUBIC),
])
def test_pil_filters_match_pil_on_the_astronaut(astronaut_1024, name, pil_filter):
    ref = _tensor(astronaut_1024.resize((256, 256), pil_filter))
    out = resize(_tensor(astronaut_1024), 256, name)
    diff = (out - ref).abs()
    assert diff.mean().item() < 1e-3
    assert (diff < 0.5 / 255).float().mean().item() > 0.99  # same 8-bit value almost everywhere
    # without the 8-bit roundings the float filter is still PIL's on average
    floaty = resize(_tensor(astronaut_1024), 256, name, quantize=False)
    assert (floaty - ref).abs().mean().item() < 1e-3
    assert (floaty - ref).abs().max().item() < 4 / 255  # PIL clips/rounds between passes


def test_bicubic_is_not_bilinear(astronaut_1024):
    """The filters differ by more than the tolerance, so the test above can tell them apart."""
    ref = _tensor(astronaut_1024.resize((256, 256), Image.Resampling.BICUBIC))
    wrong = resize(_tensor(astronaut_1024), 256, "pil-bilinear")
    assert (wrong - ref).abs().mean().item() > 1e-3


def test_torch_bilinear_is_the_old_transform(astronaut_1024):
    x = _tensor(astronaut_1024)
    want = F.interpolate(x, size=(256, 256), mode="bilinear", align_corners=False, antialias=True)
    assert torch.equal(resize(x, 256, "torch-bilinear"), want)


def test_pil_filter_on_non_square_and_upsampling():
    img = Image.fromarray(skimage_data.astronaut()[:300, :200])
    for name, f in (("pil-bilinear", Image.Resampling.BILINEAR),
                    ("pil-bicubic", Image.Resampling.BICUBIC)):
        for size in ((64, 96), (400, 333)):
            ref = _tensor(img.resize((size[1], size[0]), f))
            out = resize(_tensor(img), size, name)
            assert out.shape == ref.shape
            assert (out - ref).abs().mean().item() < 1e-3


def test_gradient_flows_through_the_rounding():
    """Both 8-bit roundings are straight-through: the gradient is the one of the same resize
    without rounding (the transposed filter), not zero nor anything in between."""
    g = torch.Generator().manual_seed(0)
    # values in 0.25‥0.75: the float bicubic's clamp to 0‥255 stays inactive
    x = (0.25 + 0.5 * torch.rand(1, 3, 32, 24, generator=g, dtype=torch.float64)).requires_grad_()
    upstream = torch.randn(1, 3, 8, 12, generator=g, dtype=torch.float64)
    out = resize(x, (8, 12), "pil-bicubic")
    (grad,) = torch.autograd.grad(out, x, upstream)
    unrounded = resize(x, (8, 12), "pil-bicubic", quantize=False)
    assert unrounded.min() > 0.0 and unrounded.max() < 1.0
    assert (out - unrounded).abs().max() > 0.1 / 255   # the roundings did change the values
    (float_grad,) = torch.autograd.grad(unrounded, x, upstream)
    # the float filter's coefficients differ from PIL's 22-bit ones by < 2^-22
    torch.testing.assert_close(grad, float_grad, rtol=0.0, atol=1e-5)
    # exactly the transposed linear map of the (fixed-point) coefficients both passes used
    wv, wh = pil_weights(32, 8, "pil-bicubic"), pil_weights(24, 12, "pil-bicubic")
    torch.testing.assert_close(grad, wv.T @ upstream @ wh, rtol=1e-12, atol=1e-12)


def test_preprocessing_rejects_unknown_filter():
    with pytest.raises(ValueError, match="unknown resize filter"):
        Preprocessing(size=8, resize="lanczos")
    assert set(RESIZE_FILTERS) == {"pil-bilinear", "pil-bicubic", "torch-bilinear"}


def _encoders():
    from stylebridge.plugins.encoders.fse import FSEEncoder
    from stylebridge.plugins.encoders.psp import E4EEncoder, PSPEncoder
    from stylebridge.plugins.encoders.styleres import StyleResEncoder
    return PSPEncoder, E4EEncoder, StyleResEncoder, FSEEncoder


def test_each_encoder_declares_its_upstream_filter():
    """pSp/e4e: torchvision Resize on PIL (bilinear); StyleRes: PIL default (bicubic); FSE:
    PIL bilinear to 1024 then its own ×0.5 steps."""
    psp, e4e, styleres, fse = _encoders()
    assert psp.resize_filter == e4e.resize_filter == "pil-bilinear"
    assert styleres.resize_filter == "pil-bicubic"
    enc = fse(mode="latents", layer=3, n_latent=4, style_dim=8, width=8, layers=(1, 1, 1, 1),
              feature_channels=8, input_size=32, resolution=128)
    assert enc.preprocessing.resize == "pil-bilinear" and "resize" not in enc.config()
    other = fse(**{**enc.config(), "resize": "torch-bilinear"})
    assert other.config()["resize"] == "torch-bilinear"


def test_fse_input_path_is_upstreams(astronaut_1024):
    """FSE upstream: PIL ``Resize((1024, 1024))`` → ToTensor → Normalize(0.5) → two
    ``F.interpolate(scale_factor=0.5, mode="bilinear")``; computed here independently."""
    fse = _encoders()[3]
    enc = fse(mode="latents", layer=3, n_latent=4, style_dim=8, width=8, layers=(1, 1, 1, 1),
              feature_channels=8, input_size=256, resolution=1024)
    small = astronaut_1024.resize((700, 700), Image.Resampling.BICUBIC)
    x = _tensor(small.resize((1024, 1024), Image.Resampling.BILINEAR)) * 2 - 1
    for _ in range(2):
        x = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
    got = enc.prepare(_tensor(small))
    assert got.shape == (1, 3, 256, 256)
    assert (got - x).abs().max().item() < 1e-5


TINY_IRSE = {"n_styles": 8, "style_dim": 32, "input_size": 32, "widths": [16, 24, 32, 48],
             "units": [1, 2, 1, 1]}


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_encoder_instances_feed_the_upstream_input(astronaut_1024):
    """Each encoder's own preprocessing of the 1024 px photo equals upstream's PIL path:
    pSp/e4e ``Resize`` (bilinear) → ToTensor → Normalize(0.5); StyleRes ``image.resize``
    (bicubic) → ``(x - 127.5) / 127.5``."""
    psp, e4e, styleres, _ = _encoders()
    size = TINY_IRSE["input_size"]
    bilinear = _tensor(astronaut_1024.resize((size, size), Image.Resampling.BILINEAR)) * 2 - 1
    bicubic = _tensor(astronaut_1024.resize((size, size), Image.Resampling.BICUBIC)) * 2 - 1
    x = _tensor(astronaut_1024)
    for enc, want in ((psp(**TINY_IRSE), bilinear), (e4e(**TINY_IRSE), bilinear),
                      (styleres(**TINY_IRSE, feature_layer=2, feature_channels=32, hidden=16),
                       bicubic)):
        got = enc.preprocessing(x)
        assert (got - want).abs().max().item() < 1e-5, enc.name
        assert "resize" not in enc.config()
    other = styleres(**TINY_IRSE, feature_layer=2, feature_channels=32, hidden=16,
                     resize="pil-bilinear")
    assert other.config()["resize"] == "pil-bilinear"
    assert type(other)(**other.config()).preprocessing.resize == "pil-bilinear"
