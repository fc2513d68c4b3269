"""Issue 19, items 8 and 9: the test-only random CLIP is seeded and open_clip's notice silenced."""

from __future__ import annotations

import logging

import pytest
import torch


@pytest.mark.slow
def test_random_clip_build_is_seeded_and_quiet(caplog) -> None:
    from stylebridge.pipelines.train_domain import build_clip_models

    before = torch.random.get_rng_state()
    with caplog.at_level(logging.WARNING):
        a, = build_clip_models(["ViT-B-32"], {}, allow_random=True, seed=3)
        b, = build_clip_models(["ViT-B-32"], {}, allow_random=True, seed=3)
        c, = build_clip_models(["ViT-B-32"], {}, allow_random=True, seed=4)
    assert a.random_weights and b.random_weights
    sa, sb, sc = (m.model.state_dict() for m in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)          # same seed: the same model
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if sa[k].is_floating_point())
    assert torch.equal(torch.random.get_rng_state(), before)   # the global RNG is untouched
    assert not any("No pretrained weights" in r.getMessage() for r in caplog.records)
