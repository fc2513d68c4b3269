"""A DissimilarDomains AffineLight+ snapshot whose affine layers keep upstream's
``(self.get_parameter, name)`` pairs (issue 19, item 10): the restricted unpickler rebuilds
those bound methods as data (its own ``getattr``, placeholders only), and the snapshot converts
and renders exactly as the same snapshot without them.  (Upstream's class layout is built
without NVlabs code, as in test_nvlabs; the pairs reference layers pickled before them.)"""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from conftest import tiny_generator
from test_domains import SD, SIZE, affinelight_nv
from test_nvlabs import _Persistent, g_init_kwargs, nv_tree, nvlabs_stand_in_modules

from stylebridge.core.interfaces import Inversion
from stylebridge.core.synthesis import synthesize
from stylebridge.plugins.converters.styledomain import StyleDomainConverter
from stylebridge.registry.resolve import load_domain


class _AffineLayer(_Persistent):
    """An upstream FullyConnectedLayer as pickled: ``get_parameter`` pickles as a bound method."""

    def get_parameter(self, name: str) -> Any:  # pragma: no cover - never called
        raise AssertionError("never called")


def _affines(tree: _Persistent) -> list[_Persistent]:
    out, stack = [], [tree]
    while stack:
        node = stack.pop()
        for key, child in node.meta["state"]["_modules"].items():
            if key == "affine":
                out.append(child)
            stack.append(child)
    return out


def _snapshot(path: Path, nv: dict[str, torch.Tensor], gen: Any, with_pairs: bool) -> Path:
    kw = g_init_kwargs(size=gen.size, style_dim=gen.style_dim, n_mlp=2,
                       use_domain_modulation=True,
                       domain_modulation_parametrization="affine_out_in_2_2_additive",
                       generator_requires_grad_parts=["synt_affine_weights_offset",
                                                      "tRGB_affine_weights_offset"])
    marker = path.with_suffix(".marker")
    with nvlabs_stand_in_modules():
        g_ema = nv_tree(nv, "Generator", marker, kw)
        if with_pairs:
            pairs = []
            for affine in _affines(g_ema):
                affine.__class__ = _AffineLayer
                for t in range(2):
                    pairs.append((affine.get_parameter, f"weights_offset_in_{t}"))
                    pairs.append((affine.get_parameter, f"weights_offset_out_{t}"))
            # after `_modules` in the state: each layer is pickled (memoised) before its pairs
            g_ema.meta["state"]["weights_offset_getters"] = pairs
        data = pickle.dumps({"G": None, "D": None, "G_ema": g_ema, "augment_pipe": None},
                            protocol=4)
    path.write_bytes(data)
    if with_pairs:
        assert b"getattr" in data
    return path


def test_affinelight_snapshot_with_bound_method_pairs_converts_and_renders(
        tmp_path: Path) -> None:
    gen = tiny_generator(seed=0, size=SIZE, style_dim=SD)
    assert gen.size == SIZE
    nv, us, vs = affinelight_nv(gen, torch.Generator().manual_seed(5))
    with_pairs = _snapshot(tmp_path / "pairs.pkl", nv, gen, with_pairs=True)
    plain = _snapshot(tmp_path / "plain.pkl", nv, gen, with_pairs=False)
    a, b = tmp_path / "pairs.safetensors", tmp_path / "plain.safetensors"
    assert StyleDomainConverter().convert(with_pairs, a).plugin == "affinelight_plus"
    assert StyleDomainConverter().convert(plain, b).plugin == "affinelight_plus"
    method, reference = load_domain(a), load_domain(b)
    assert method.rank == 4
    for (ka, va), (kb, vb) in zip(method.state_dict().items(), reference.state_dict().items(),
                                  strict=True):
        assert ka == kb and torch.equal(va, vb)
    w = gen.make_wplus(torch.randn(2, SD, generator=torch.Generator().manual_seed(1)))
    with torch.no_grad():
        src = gen.styles(w)
        out = method.styles(gen, w)
        for layer in gen.style_layers():  # the upstream formula, by hand: sum of terms / terms
            i = layer.index
            delta = (us[i, 0] @ vs[i, 0] + us[i, 1] @ vs[i, 1]) / 2
            expected = src[i] + F.linear(w[:, layer.latent_index], delta / math.sqrt(SD))
            torch.testing.assert_close(out[i], expected, atol=1e-5, rtol=1e-5)
        image = synthesize(gen, Inversion(w_plus=w), method=method)
    assert image.shape == (2, 3, SIZE, SIZE) and bool(torch.isfinite(image).all())
    assert not (tmp_path / "pairs.marker").exists()  # no pickled code ran
