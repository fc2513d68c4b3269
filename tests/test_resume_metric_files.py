"""``--resume`` notices a metric whose files changed since the interrupted run.

A metric built from files (``lpips``'s ImageNet backbone, a CLIP checkpoint and
``clip_quality``'s reference image, FID's Inception weights and cached statistics, ArcFace's
weights, a plugin's ``weights=``) says which through
:meth:`~stylebridge.core.interfaces.Metric.files`; ``adapt``, ``invert`` and ``eval`` record
their path, size and modification time in the journal, as they do for checkpoints, and a
resume that finds one replaced is refused in one line naming the ``--metric`` and the file.
Before, the spec alone was compared: a resumed run mixed values of two networks.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import test_adapt as ta
import torch
from PIL import Image
from test_batch_resume import _adapt_argv, _files, _interrupted, _invert_argv, _journal, files
from test_eval_resume_random import _interrupt_at

from stylebridge.cli.main import main
from stylebridge.pipelines import adapt as adapt_module
from stylebridge.pipelines import invert as invert_module
from stylebridge.pipelines.metric_weights import (
    METRIC_FILES_SETTING,
    check_metric_settings,
    metric_setting,
)
from stylebridge.pipelines.resume import JOURNAL_DIR
from stylebridge.plugins.metrics.base import PerImageMetric
from stylebridge.registry import hookimpl

__all__ = ["files"]  # the fixture of test_batch_resume, used as a parameter


class _FileWeights(PerImageMetric):
    """A plugin metric whose 3 colour weights are read from ``weights=FILE`` (a text file)."""

    name = "filew-rm"

    def __init__(self, weights: str) -> None:
        super().__init__(weights=weights)
        self.path = weights
        self.weights = torch.tensor([float(x) for x in Path(weights).read_text().split()],
                                    dtype=torch.float64)

    def files(self) -> dict[str, str]:
        return {"weights": self.path}

    def score(self, pred: torch.Tensor, target: Any, **context: Any) -> dict[str, torch.Tensor]:
        return {"w": (pred.double() - target.double()).mean(dim=(2, 3)) @ self.weights}


@hookimpl
def register_metrics(register: Any) -> None:
    register(_FileWeights)


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from stylebridge.registry import get_registry, reset_registry

    monkeypatch.setenv("COLUMNS", "500")  # rich: no line folded inside a long temporary path
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    reset_registry()
    get_registry().add_plugin(ta, "tests")
    get_registry().add_plugin(sys.modules[__name__], "tests-metric-files")
    yield
    reset_registry()


def _replace(path: Path, text: str) -> None:
    """Write ``text`` into ``path`` and move its modification time on (coarse file systems)."""
    before = path.stat().st_mtime_ns
    path.write_text(text)
    os.utime(path, ns=(before + 2_000_000_000, before + 2_000_000_000))


@pytest.mark.usefixtures("plugins")
@pytest.mark.parametrize("command", ["adapt", "invert"])
def test_a_metric_file_replaced_since_the_interrupted_run_is_refused_naming_it(
        command: str, files: dict[str, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    weights = tmp_path / "w.txt"
    weights.write_text("0.2 0.3 0.5")
    out = tmp_path / "out"
    argv_of, module, call = ((_adapt_argv, adapt_module, 8) if command == "adapt"
                             else (_invert_argv, invert_module, 6))
    spec = f"filew-rm:weights={weights}"
    argv = argv_of(files, out, "--metric", spec)
    _interrupted(monkeypatch, capsys, module, argv, call)
    recorded = _journal(out)["settings"][METRIC_FILES_SETTING][spec]["weights"]
    assert recorded["path"] == str(weights.resolve()) and recorded["size"] == 11

    _replace(weights, "0.9 0.05 0.05")
    assert main([*argv, "--resume"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: --resume: --metric {spec}: its weights file "
                          f"{weights.resolve()} has changed since the interrupted run")
    assert "run without --resume to start over" in err
    assert (out / JOURNAL_DIR).is_dir()  # refused: the interrupted run's work is kept


@pytest.mark.usefixtures("plugins")
def test_an_unchanged_metric_file_resumes_to_the_uninterrupted_files(
        files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    weights = tmp_path / "w.txt"
    weights.write_text("0.2 0.3 0.5")
    extra = ("--metric", f"filew-rm:weights={weights}")
    ref, out = tmp_path / "ref", tmp_path / "out"
    assert main(_invert_argv(files, ref, *extra)) == 3  # broken.png skipped
    capsys.readouterr()
    _interrupted(monkeypatch, capsys, invert_module, _invert_argv(files, out, *extra), 6)
    assert main(_invert_argv(files, out, *extra, "--resume")) == 3
    assert _files(out) == _files(ref)
    values = json.loads((out / "metrics.json").read_text())
    assert "w" in json.dumps(values)


@pytest.mark.usefixtures("plugins")
def test_a_journal_of_an_earlier_stylebridge_without_metric_files_still_resumes(
        files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    weights = tmp_path / "w.txt"
    weights.write_text("0.2 0.3 0.5")
    out = tmp_path / "out"
    argv = _invert_argv(files, out, "--metric", f"filew-rm:weights={weights}")
    _interrupted(monkeypatch, capsys, invert_module, argv, 6)
    state_file = out / JOURNAL_DIR / "state.json"
    state = json.loads(state_file.read_text())
    del state["settings"][METRIC_FILES_SETTING]
    state_file.write_text(json.dumps(state))
    assert main([*argv, "--resume"]) == 3
    assert "4 photo(s) done before are kept" in " ".join(capsys.readouterr().err.split())


def test_metric_settings_name_a_file_given_anew_and_one_given_no_more() -> None:
    def setting(read: dict[str, Any]) -> dict[str, Any]:
        return {METRIC_FILES_SETTING: {"m": read}} if read else {}

    a = {"weights": {"path": "/w/a.pth", "size": 3, "mtime_ns": 1}}
    b = {"weights": {"path": "/w/b.pth", "size": 3, "mtime_ns": 1}}
    go_on = "start over"
    check_metric_settings(setting(a), setting(a), run="run", go_on=go_on)  # the same: accepted
    with pytest.raises(Exception, match=r"^--resume: --metric m: its weights file differs "
                                        r"\(/w/a.pth then, /w/b.pth now\)"):
        check_metric_settings(setting(a), setting(b), run="run", go_on=go_on)
    with pytest.raises(Exception, match=r"its weights file differs \(/w/a.pth then, none now\)"):
        check_metric_settings(setting(a), {METRIC_FILES_SETTING: {}}, run="run", go_on=go_on)
    with pytest.raises(Exception, match=r"its weights file differs \(none then, /w/b.pth now\)"):
        check_metric_settings({METRIC_FILES_SETTING: {}}, setting(b), run="evaluation",
                              go_on=go_on)


# ---------------------------------------------------------------------------------------------
# the built-in metrics say which files they read


def _alexnet_features(path: Path, seed: int) -> Path:
    """A torchvision AlexNet ``features.*`` state dict (all LPIPS' trunk reads), seeded."""
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(seed)
    features = torchvision.models.alexnet(weights=None).features.state_dict()
    torch.save({f"features.{k}": v for k, v in features.items()}, path)
    return path


@pytest.mark.usefixtures("plugins")
def test_lpips_records_its_backbone_and_eval_refuses_another_on_resume(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("lpips")
    from stylebridge.plugins.metrics.lpips import LPIPSMetric

    backbone = _alexnet_features(tmp_path / "alexnet.pth", seed=1)
    metric = LPIPSMetric(backbone=str(backbone))
    assert metric.files() == {"backbone": str(backbone)}
    assert LPIPSMetric(allow_random=True).files() == {}  # nothing read
    from stylebridge.plugins.metrics.image import MSEMetric

    setting, drawn = metric_setting([f"lpips:backbone={backbone}", "mse"],
                                    [[metric, MSEMetric()]])
    assert drawn == []
    assert setting == {METRIC_FILES_SETTING: {f"lpips:backbone={backbone}": {"backbone": {
        "path": str(backbone.resolve()), "size": backbone.stat().st_size,
        "mtime_ns": backbone.stat().st_mtime_ns}}}}

    # eval: interrupted after its first batch, the backbone replaced by another network
    rng = np.random.default_rng(3)
    pred, target = tmp_path / "pred", tmp_path / "target"
    for d in (pred, target):
        d.mkdir()
    for i in range(4):
        for d in (pred, target):
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(d / f"{i}.png")
    out = tmp_path / "out"
    out.mkdir()
    spec = f"lpips:backbone={backbone}"
    argv = ["eval", "-m", spec, "--pred", str(pred), "--target", str(target), "--batch", "2",
            "--json", str(out / "r.json"), "--show", "0"]
    with monkeypatch.context() as m:
        _interrupt_at(m, LPIPSMetric, 2)  # the first batch is journalled
        assert main(argv) == 130
    capsys.readouterr()
    before = backbone.stat().st_mtime_ns
    _alexnet_features(backbone, seed=2)
    os.utime(backbone, ns=(before + 2_000_000_000, before + 2_000_000_000))
    assert main([*argv, "--resume"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: --resume: --metric {spec}: its backbone file "
                          f"{backbone.resolve()} has changed since the interrupted evaluation")
    assert not (out / "r.json").exists()
