"""``adapt``/``invert`` score each output with its own metric instance, built once per spec.

A metric with a network (LPIPS' AlexNet/VGG, ArcFace) was built once per output: three
LPIPS networks for the inversion and two domains (seconds each on a CPU).  The first output's
instance is built from its spec and the others are its ``Metric.fresh()`` twins: one network,
separate running values.  Expected values come from metrics built directly, one per output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from stylebridge.pipelines.output_metrics import (
    build_output_metrics,
    compute_output_metrics,
    update_output_metrics,
)
from stylebridge.plugins.metrics.base import PerImageMetric
from stylebridge.registry import Registry, hookimpl
from stylebridge.registry import registry as registry_mod

OUTPUTS = ["inversion", "pixar", "joker"]


@pytest.fixture()
def no_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))


def _batches(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {name: torch.rand(2, 3, 64, 64, generator=g) for name in ["photo", *OUTPUTS]}


@pytest.mark.usefixtures("no_weights")
def test_lpips_is_built_once_and_each_output_keeps_its_own_values() -> None:
    pytest.importorskip("lpips")
    from stylebridge.plugins.metrics.lpips import LPIPSMetric

    metrics = build_output_metrics(["lpips:allow_random=true", "mse"], OUTPUTS)
    nets = [group[0].model for group in metrics.values()]
    assert all(net is nets[0] for net in nets)  # one network
    assert len({id(group[0]) for group in metrics.values()}) == 3  # three instances
    assert len({id(group[1]) for group in metrics.values()}) == 3

    direct = {name: LPIPSMetric(allow_random=True) for name in OUTPUTS}  # one each, by hand
    for seed in (1, 2):
        b = _batches(seed)
        update_output_metrics(metrics, {k: b[k] for k in OUTPUTS}, b["photo"])
        for name in OUTPUTS:
            direct[name].update(b[name], b["photo"])
            assert metrics[name][0].last["lpips"] == direct[name].last["lpips"]
    values = compute_output_metrics(metrics)
    for name in OUTPUTS:
        assert values[name]["lpips"] == direct[name].compute()["lpips"]
        b1, b2 = _batches(1), _batches(2)
        mse = np.mean([float(((b[name] - b["photo"]) ** 2).mean()) for b in (b1, b2)])
        assert values[name]["mse"] == pytest.approx(mse, rel=1e-6)
    assert len({values[n]["lpips"] for n in OUTPUTS}) == 3  # not one accumulator


def test_id_twins_share_dlib_and_count_faceless_images_apart() -> None:
    pytest.importorskip("dlib")
    metrics = build_output_metrics(["id:backend=dlib"], OUTPUTS)
    embedders = [group[0].embedder for group in metrics.values()]
    assert len({id(e) for e in embedders}) == 3  # each counts its own faceless images
    assert all(e._recognizer is embedders[0]._recognizer for e in embedders)
    b = _batches(3)  # noise: dlib finds no face, the whole image stands in (detect=auto)
    update_output_metrics({"pixar": metrics["pixar"]}, {"pixar": b["pixar"]}, b["photo"])
    assert metrics["pixar"][0].embedder.n_fallback == 4  # 2 outputs + 2 photos
    assert metrics["inversion"][0].embedder.n_fallback == 0
    assert not any("no face" in n for n in metrics["joker"][0].notes())
    assert any("no face was detected in 4 image(s)" in n for n in metrics["pixar"][0].notes())


class _Plain(PerImageMetric):
    """A plugin metric that offers no twin: built once per output, as before."""

    name = "plain-twins-test"

    def score(self, pred: torch.Tensor, target: Any, **context: Any) -> dict[str, torch.Tensor]:
        return {"plain": (pred - target).abs().mean(dim=(1, 2, 3))}


def test_a_metric_without_a_twin_is_built_per_output(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    mod = types.ModuleType("output_twins_test_pkg")
    mod.register_metrics = hookimpl(lambda register: register(_Plain))  # type: ignore[attr-defined]
    monkeypatch.setattr(registry_mod, "_REGISTRY", Registry(extra_plugins=[mod],
                                                            entry_points=False))
    built: list[Any] = []
    real = _Plain.__init__

    def counting(self: Any, **config: Any) -> None:
        built.append(self)
        real(self, **config)

    monkeypatch.setattr(_Plain, "__init__", counting)
    metrics = build_output_metrics(["plain-twins-test"], OUTPUTS)
    assert len(built) == 3 and [g[0] for g in metrics.values()] == built


def test_two_variants_of_one_metric_are_refused_and_a_repeated_spec_counted_once() -> None:
    """`adapt --metric ssim --metric ssim:gaussian=true` made one `ssim` column holding the
    gaussian value (both report `ssim`, and the guard compared metric names): refused before
    any network is built; `-m mse -m mse` is one metric."""
    from stylebridge.errors import StylebridgeError

    with pytest.raises(StylebridgeError, match=r"^--metric ssim and --metric "
                       r"ssim:gaussian=true are both 'ssim', whose column one would overwrite"):
        build_output_metrics(["ssim", "ssim:gaussian=true"], OUTPUTS)
    metrics = build_output_metrics(["mse", "mse"], OUTPUTS)
    assert [len(group) for group in metrics.values()] == [1, 1, 1]
    batch = _batches(0)
    update_output_metrics(metrics, {name: batch[name] for name in OUTPUTS}, batch["photo"])
    means = compute_output_metrics(metrics)
    for name in OUTPUTS:
        expected = float(((batch[name].double() - batch["photo"].double()) ** 2).mean())
        assert means[name]["mse"] == pytest.approx(expected, rel=1e-6)
