"""``adapt``/``invert --resume`` with metrics on random weights (``allow_random=true``).

A metric on random weights is built from a seed of its spec, so a resumed run holds the same
network and its running sums stay exact: the resume is accepted (it was refused for every
random metric), checked by a digest of the metric's tensors as ``eval`` does
(:mod:`stylebridge.pipelines.metric_weights`).  A metric whose draw differs is refused in one
line naming its ``--metric`` spec; one holding no tensor is still refused, and the Ctrl-C hint
says so instead of offering ``--resume``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import test_adapt as ta
import torch
from test_batch_resume import _adapt_argv, _files, _interrupted, _invert_argv, _journal, files

from stylebridge.cli.main import main
from stylebridge.pipelines import adapt as adapt_module
from stylebridge.pipelines import invert as invert_module
from stylebridge.pipelines.metric_weights import RANDOM_SETTING
from stylebridge.pipelines.resume import JOURNAL_DIR
from stylebridge.plugins.metrics.base import PerImageMetric
from stylebridge.registry import hookimpl

__all__ = ["files"]  # the fixture of test_batch_resume, used as a parameter


class _Projection(PerImageMetric):
    """A plugin metric on random weights: each picture's difference from its photo projected
    on 3 random colour weights, drawn from torch's stream (seeded from the spec)."""

    name = "proj-rm"
    random_weights = True

    def __init__(self, width: int = 3) -> None:
        super().__init__(width=width)
        self.weights = self.draw(width)

    def draw(self, width: int) -> torch.Tensor:
        return torch.randn(width, dtype=torch.float64)

    def score(self, pred: torch.Tensor, target: Any, **context: Any) -> dict[str, torch.Tensor]:
        return {"proj": (pred.double() - target.double()).mean(dim=(2, 3)) @ self.weights}


class _Unseeded(_Projection):
    """The same, its weights drawn from NumPy's own random numbers: another draw every run."""

    name = "unseeded-rm"

    def draw(self, width: int) -> torch.Tensor:
        return torch.from_numpy(np.random.default_rng().standard_normal(width))


class _Tensorless(_Projection):
    """The same, its weights a list of Python floats: nothing to compare on resume."""

    name = "tensorless-rm"

    def __init__(self, width: int = 3) -> None:
        PerImageMetric.__init__(self, width=width)
        self.floats = torch.randn(width).tolist()

    def score(self, pred: torch.Tensor, target: Any, **context: Any) -> dict[str, torch.Tensor]:
        weights = torch.tensor(self.floats, dtype=torch.float64)
        return {"proj": (pred.double() - target.double()).mean(dim=(2, 3)) @ weights}


@hookimpl
def register_metrics(register: Any) -> None:
    for cls in (_Projection, _Unseeded, _Tensorless):
        register(cls)


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The tiny test encoder and this module's metrics registered; no installed weights (a
    metric with ``allow_random=true`` builds a random network)."""
    from stylebridge.registry import get_registry, reset_registry

    monkeypatch.setenv("COLUMNS", "500")  # rich: no line folded inside a long temporary path
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    reset_registry()
    get_registry().add_plugin(ta, "tests")
    get_registry().add_plugin(sys.modules[__name__], "tests-random-metrics")
    yield
    reset_registry()


def _said(capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """What was printed on stdout (the results) and on stderr (the notices), each on one
    line."""
    out, err = capsys.readouterr()
    return " ".join(out.split()), " ".join(err.split())


@pytest.mark.usefixtures("plugins")
def test_adapt_with_random_metrics_resumes_to_the_uninterrupted_files(
        files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    extra = ("--metric", "proj-rm", "--metric", "lpips:allow_random=true")
    ref, out = tmp_path / "ref", tmp_path / "out"
    assert main(_adapt_argv(files, ref, *extra)) == 3  # broken.png skipped
    capsys.readouterr()
    # [a b] [broken c d] [e f] [g], 3 PNGs a photo: the 14th is e's second, in the third batch
    said, notices = _interrupted(monkeypatch, capsys, adapt_module,
                                 _adapt_argv(files, out, *extra), 14)
    assert f"--resume --out {out}" in notices  # the resume hint: on stderr
    assert "would be refused" not in notices and "would be refused" not in said
    state = _journal(out)
    assert state["done"] == 4 and state["drawn"] == []
    assert set(state["settings"][RANDOM_SETTING]) == {"proj-rm", "lpips:allow_random=true"}
    assert main(_adapt_argv(files, out, *extra, "--resume")) == 3
    said, notices = _said(capsys)
    assert "4 photo(s) done before are kept" in notices and "7 done, 1 skipped" in said
    assert not (out / JOURNAL_DIR).exists()
    assert _files(out) == _files(ref)  # every PNG, adapt.json, metrics.json, grid.png
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["per_photo"]) == 7
    assert {"proj", "lpips"} <= set(metrics["input_vs_inversion"])
    assert {"proj", "lpips"} <= set(metrics["input_vs_domain"]["pixar"])
    assert any(n.startswith("RANDOM WEIGHTS") for n in metrics["notes"])


@pytest.mark.usefixtures("plugins")
def test_invert_with_a_random_metric_resumes_to_the_uninterrupted_files(
        files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    extra = ("--metric", "proj-rm:width=3")
    ref, out = tmp_path / "ref", tmp_path / "out"
    assert main(_invert_argv(files, ref, *extra)) == 3
    capsys.readouterr()
    _, notices = _interrupted(monkeypatch, capsys, invert_module,
                              _invert_argv(files, out, *extra), 6)
    assert f"--resume --out {out}" in notices  # the resume hint: on stderr
    assert _journal(out)["done"] == 4
    assert main(_invert_argv(files, out, *extra, "--resume")) == 3
    assert "4 photo(s) done before are kept" in _said(capsys)[1]  # a notice: on stderr
    assert _files(out) == _files(ref)  # inversions, latents, metrics.json, grid.png


@pytest.mark.usefixtures("plugins")
@pytest.mark.parametrize("command", ["adapt", "invert"])
def test_a_random_metric_whose_draw_differs_is_refused_naming_it(
        command: str, files: dict[str, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    argv_of, module, call = ((_adapt_argv, adapt_module, 8) if command == "adapt"
                             else (_invert_argv, invert_module, 6))
    argv = argv_of(files, out, "--metric", "unseeded-rm")
    _interrupted(monkeypatch, capsys, module, argv, call)
    assert main([*argv, "--resume"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("error: --resume: --metric unseeded-rm runs on random weights that "
                          "differ from the interrupted run's")
    assert "run without --resume to start over" in err
    assert (out / JOURNAL_DIR).exists()  # the interrupted run is left as it was


@pytest.mark.usefixtures("plugins")
def test_a_random_metric_without_tensors_is_still_refused_and_the_hint_says_so(
        files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    argv = _adapt_argv(files, out, "--metric", "tensorless-rm")
    said, notices = _interrupted(monkeypatch, capsys, adapt_module, argv, 8)
    assert "--resume --out" not in notices and "--resume --out" not in said
    assert "--metric tensorless-rm ran on random weights" in notices  # the hint: on stderr
    assert "a --resume would be refused" in notices
    assert main([*argv, "--resume"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error: --resume: --metric tensorless-rm run(s) on random weights")


@pytest.mark.usefixtures("plugins")
def test_a_metric_random_then_but_not_now_is_refused_naming_it(
        files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The same spec on trained weights now (its weights installed since): the kept values
    were another network's."""
    out = tmp_path / "out"
    argv = _invert_argv(files, out, "--metric", "proj-rm")
    _interrupted(monkeypatch, capsys, invert_module, argv, 6)
    monkeypatch.setattr(_Projection, "random_weights", False)
    assert main([*argv, "--resume"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error: --resume: --metric proj-rm ran on random weights in the "
                          "interrupted run, not now")
