"""CLIP models built from two threads at once (the web app loads them in request threads)
get the weights a build alone gives: each build seeds torch's global generator, and two
interleaved builds mixed their seeds (neither got its own random initialisation)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import open_clip
import torch

from stylebridge.pipelines.presets import register_tiny_clip_configs
from stylebridge.plugins.nets import clip


def _weights(seed: int) -> torch.Tensor:
    model = clip._create_model(open_clip, "tiny-vit-p16", False, seed)
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_builds_from_several_threads_are_each_their_own(tmp_path: Path) -> None:
    register_tiny_clip_configs(tmp_path)
    alone = {seed: _weights(seed) for seed in range(4)}
    assert not torch.equal(alone[0], alone[1])
    got: dict[tuple[int, int], torch.Tensor] = {}

    def build(seed: int) -> None:
        for repeat in range(3):
            got[seed, repeat] = _weights(seed)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        threads = [threading.Thread(target=build, args=(seed,)) for seed in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert len(got) == 12
    assert all(torch.equal(w, alone[seed]) for (seed, _), w in got.items())
