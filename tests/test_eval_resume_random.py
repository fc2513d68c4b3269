"""`eval --resume` with metrics on random weights, the CLIP metrics' random seed, and the table
of skipped files at 80 columns.

* A metric on random weights (``allow_random=true``) is built from a seed of its spec, so a
  resumed run holds the same network and its numbers are an uninterrupted run's: the resume is
  accepted (it was refused for every random metric), checked by a digest of the metric's
  tensors; a metric whose draw is not reproducible is still refused, named.
* ``clip_quality``/``clip_diversity`` draw their random CLIP from their spec (they used seed 0,
  the CLIP that ``train --allow-random-clip`` trains against by default).
* ``print_batch_report`` lays out its table as the other commands' tables: no file name cut.

Expected values come from outside the code under test where there is a closed form (MSE of the
pictures' pixels, LPIPS 0 for identical pictures) and from the metric built directly otherwise.
"""

from __future__ import annotations

import json
import re
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from rich.console import Console

from stylebridge.cli.main import main
from stylebridge.cli.options import print_batch_report
from stylebridge.core.batch import BatchReport
from stylebridge.core.images import load_image
from stylebridge.pipelines.eval_journal import weights_digest
from stylebridge.plugins.metrics.base import PerImageMetric
from stylebridge.registry import Registry, hookimpl
from stylebridge.registry import registry as registry_mod

N_PAIRS = 6  # in batches of 2: the interrupted run keeps the first batch


@pytest.fixture()
def no_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No installed weights, no torch hub cache: `allow_random=true` builds random networks."""
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))


def _pictures(tmp_path: Path) -> tuple[Path, Path]:
    """Noise pictures (64 px, the smallest LPIPS' AlexNet takes comfortably); pair p0 is the
    same picture on both sides."""
    rng = np.random.default_rng(5)
    pred, target = tmp_path / "pred", tmp_path / "target"
    pred.mkdir()
    target.mkdir()
    for i in range(N_PAIRS):
        a = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        b = a if i == 0 else np.clip(a.astype(int) + rng.integers(-60, 61, a.shape), 0, 255)
        Image.fromarray(a).save(pred / f"p{i}.png")
        Image.fromarray(b.astype(np.uint8)).save(target / f"p{i}.png")
    return pred, target


def _interrupt_at(monkeypatch: pytest.MonkeyPatch, cls: type, call: int) -> list[int]:
    """``cls.update`` raises KeyboardInterrupt at its ``call``-th call; the calls, counted."""
    real, calls = cls.update, [0]

    def update(self: Any, *args: Any, **kwargs: Any) -> None:
        calls[0] += 1
        if calls[0] == call:
            raise KeyboardInterrupt
        real(self, *args, **kwargs)

    monkeypatch.setattr(cls, "update", update)
    return calls


def _same_files(out: Path, ref: Path) -> None:
    for name in ("r.json", "r.csv"):
        assert (out / name).read_text().replace(str(out), "X") == \
            (ref / name).read_text().replace(str(ref), "X"), name


# ---------------------------------------------------------------------------------------------
# item 1: a random metric seeded by its spec resumes, exactly


@pytest.mark.usefixtures("no_weights")
def test_an_interrupted_eval_with_a_random_lpips_resumes_to_the_uninterrupted_numbers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Before: `error: --resume: --metric lpips run(s) on random weights built without a
    checkpoint file, which a new run may draw anew ...`, exit 2, although the random LPIPS is
    seeded by its spec; Ctrl-C also said a --resume would be refused."""
    pytest.importorskip("lpips")
    from stylebridge.plugins.metrics.lpips import LPIPSMetric

    pred, target = _pictures(tmp_path)
    spec = "lpips:allow_random=true"

    def argv(out: Path, *extra: str) -> list[str]:
        return ["eval", "-m", spec, "-m", "mse", "--pred", str(pred), "--target", str(target),
                "--batch", "2", "--json", str(out / "r.json"), "--csv", str(out / "r.csv"),
                "--show", "0", *extra]

    ref, out = tmp_path / "ref", tmp_path / "out"
    ref.mkdir()
    out.mkdir()
    assert main(argv(ref)) == 0
    with monkeypatch.context() as m:
        _interrupt_at(m, LPIPSMetric, 2)         # the first batch (p0, p1) is journalled
        assert main(argv(out)) == 130
    stdout, said = (" ".join(text.split()) for text in capsys.readouterr())
    assert "continue with `stylebridge eval ... --resume`" in said  # the hint: on stderr
    assert "would be refused" not in said and "would be refused" not in stdout
    with monkeypatch.context() as m:
        calls = _interrupt_at(m, LPIPSMetric, 0)   # counts, never interrupts
        assert main(argv(out, "--resume")) == 0
    assert calls[0] == 2                          # p2-p3 and p4-p5: the kept batch not redone
    said = " ".join(capsys.readouterr().out.split())
    assert "6 done, 0 skipped" in said
    _same_files(out, ref)

    # the numbers are real ones: LPIPS of the same random network built directly, 0 for the
    # identical pair; MSE from the pixels
    data = json.loads((out / "r.json").read_text())
    rows = {r["name"]: r for r in data["per_image"]}
    direct = LPIPSMetric(allow_random=True)
    for i in range(N_PAIRS):
        p, t = (load_image(d / f"p{i}.png").unsqueeze(0) for d in (pred, target))
        direct.update(p, t)
        assert rows[f"p{i}"]["lpips"] == pytest.approx(direct.last["lpips"][0], abs=1e-6)
        pixels = [np.asarray(Image.open(d / f"p{i}.png"), np.float64) / 255
                  for d in (pred, target)]
        assert rows[f"p{i}"]["mse"] == pytest.approx(np.mean((pixels[0] - pixels[1]) ** 2),
                                                     rel=1e-6)
    assert rows["p0"]["lpips"] == 0.0 and rows["p1"]["lpips"] > 0.01
    assert data["mean"]["lpips"] == pytest.approx(np.mean([r["lpips"] for r in rows.values()]),
                                                  rel=1e-12)


def _with_plugin(monkeypatch: pytest.MonkeyPatch, *classes: type) -> None:
    mod = types.ModuleType("eval_resume_random_test_pkg")
    mod.register_metrics = hookimpl(  # type: ignore[attr-defined]
        lambda register: [register(cls) for cls in classes] and None)
    monkeypatch.setattr(registry_mod, "_REGISTRY", Registry(extra_plugins=[mod],
                                                            entry_points=False))


class _Projection(PerImageMetric):
    """A plugin metric on random weights: each picture's pixels projected on 3 random colour
    weights; the weights drawn from torch's stream (seeded by eval from the spec)."""

    name = "proj-test"
    needs_target = False
    random_weights = True

    def __init__(self, width: int = 3) -> None:
        super().__init__(width=width)
        self.weights = self.draw(width)

    def draw(self, width: int) -> torch.Tensor:
        return torch.randn(width, dtype=torch.float64)

    def score(self, pred: torch.Tensor, target: Any, **context: Any) -> dict[str, torch.Tensor]:
        return {"proj": pred.double().mean(dim=(2, 3)) @ self.weights}


class _Unseeded(_Projection):
    """The same, its weights drawn from NumPy's own random numbers: another draw every run."""

    name = "unseeded-test"

    def draw(self, width: int) -> torch.Tensor:
        return torch.from_numpy(np.random.default_rng().standard_normal(width))


class _Tensorless(_Projection):
    """The same, its weights a list of Python floats: nothing to compare on resume."""

    name = "tensorless-test"

    def __init__(self, width: int = 3) -> None:
        PerImageMetric.__init__(self, width=width)
        self.floats = torch.randn(width).tolist()

    def score(self, pred: torch.Tensor, target: Any, **context: Any) -> dict[str, torch.Tensor]:
        weights = torch.tensor(self.floats, dtype=torch.float64)
        return {"proj": pred.double().mean(dim=(2, 3)) @ weights}


def _plugin_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cls: type,
                capsys: pytest.CaptureFixture[str]) -> tuple[list[str], str]:
    """An eval of ``cls`` interrupted after its first batch: its argv and what it said (its
    notices, the resume hint among them: on stderr)."""
    pred, _ = _pictures(tmp_path)
    _with_plugin(monkeypatch, cls)
    out = tmp_path / "out"
    out.mkdir()
    argv = ["eval", "-m", cls.name, "--pred", str(pred), "--batch", "2",
            "--json", str(out / "r.json"), "--csv", str(out / "r.csv"), "--show", "0"]
    with monkeypatch.context() as m:
        _interrupt_at(m, cls, 2)
        assert main(argv) == 130
    return argv, " ".join(capsys.readouterr().err.split())


def test_a_random_plugin_metric_drawn_from_torch_resumes_exactly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A plugin that draws from torch's stream in __init__ (as CONTRIBUTING asks) gets the
    same weights from eval's spec seed: its resume is accepted and exact."""
    argv, _ = _plugin_run(tmp_path, monkeypatch, _Projection, capsys)
    assert main([*argv, "--resume"]) == 0
    ref = tmp_path / "ref"
    ref.mkdir()
    assert main([a.replace(str(tmp_path / "out"), str(ref)) for a in argv]) == 0
    _same_files(tmp_path / "out", ref)
    data = json.loads((ref / "r.json").read_text())
    from stylebridge.plugins.metrics.base import spec_seed

    with torch.random.fork_rng(devices=[]):  # the weights eval draws: the spec's seed
        torch.manual_seed(spec_seed("proj-test", {}))
        weights = torch.randn(3, dtype=torch.float64)
    for row in data["per_image"]:
        pixels = np.asarray(Image.open(row["pred"]), np.float64) / 255
        assert row["proj"] == pytest.approx(float(pixels.mean(axis=(0, 1)) @ weights.numpy()),
                                            rel=1e-6)


def test_a_random_metric_that_draws_other_weights_on_resume_is_refused_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    argv, _ = _plugin_run(tmp_path, monkeypatch, _Unseeded, capsys)
    assert main([*argv, "--resume"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("error: --resume: --metric unseeded-test runs on random weights that "
                          "differ from the interrupted evaluation's")
    assert "run without --resume to start over" in err


def test_a_random_metric_without_tensors_is_still_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing to compare: refused as every random metric was (and Ctrl-C says so)."""
    argv, said = _plugin_run(tmp_path, monkeypatch, _Tensorless, capsys)
    assert "--metric tensorless-test ran on random weights" in said
    assert "a --resume would be refused" in said
    assert main([*argv, "--resume"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error: --resume: --metric tensorless-test run(s) on random weights")


# ---------------------------------------------------------------------------------------------
# item 2: the CLIP metrics' random network is drawn from their spec


def test_random_clip_metrics_are_seeded_by_their_spec(tmp_path: Path) -> None:
    """Before: both metrics drew from seed 0 whatever their spec: the same random CLIP as
    `train --allow-random-clip` with its default --seed 0 (a domain scored by the network it
    was trained against)."""
    pytest.importorskip("open_clip")
    from stylebridge.pipelines.presets import register_tiny_clip_configs
    from stylebridge.plugins.metrics.clip import ClipDiversityMetric, ClipQualityMetric
    from stylebridge.plugins.nets.clip import load_clip

    [model, other] = register_tiny_clip_configs(tmp_path / "clip")

    def weights(metric: Any) -> dict[str, torch.Tensor]:
        return metric.clip.model.state_dict()

    def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
        return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    torch.manual_seed(1)
    first = ClipQualityMetric(model=model, text="a pixar face", allow_random=True)
    torch.manual_seed(2)
    again = ClipQualityMetric(model=model, text="a pixar face", allow_random=True)
    domain = ClipQualityMetric(model=model, text="a pencil sketch", allow_random=True)
    diversity = ClipDiversityMetric(model=model, allow_random=True)
    trained = load_clip(model, seed=0)                     # train's default --seed
    assert first.random_weights and diversity.random_weights
    assert same(weights(first), weights(again))            # the same spec: the same draw
    assert same(weights(first), weights(domain))           # one network for every domain text
    assert not same(weights(first), weights(diversity))    # another metric: another draw
    assert not same(weights(first), trained.model.state_dict())
    # what eval's journal compares on --resume: the same for the same spec, reaching the CLIP
    # inside the metric (metric.clip.model)
    assert weights_digest(first) == weights_digest(again) != weights_digest(diversity)
    first.clip.model.visual.conv1.weight.data[0, 0, 0, 0] += 1
    assert weights_digest(first) != weights_digest(again)
    assert not same(weights(diversity), trained.model.state_dict())
    second = ClipDiversityMetric(model=other, allow_random=True)
    assert not same(weights(second), load_clip(other, seed=0).model.state_dict())


# ---------------------------------------------------------------------------------------------
# item 3: the table of skipped files at 80 columns


REASON = ("lpips:allow_random=true: cannot score images of 16×16 px (Given input size: "
          "(192x1x1). Output size is too small)")


def _printed(report: BatchReport, width: int = 80) -> tuple[str, list[str]]:
    console = Console(record=True, width=width, force_terminal=False)
    print_batch_report(console, report, error_follows=True)
    text = console.export_text()
    return text, text.splitlines()


def test_skipped_files_keep_their_names_whole_at_80_columns() -> None:
    """Before: a rich table that cut a 42-character name to
    `/data/experiments/adapted/photo_000…`."""
    report = BatchReport()
    report.ok(Path("a.png"))
    name = "/data/experiments/adapted/photo_0001_x.png"
    report.skip(Path(name), REASON)
    report.skip(Path("b[x].png"), "no face [found]")
    text, lines = _printed(report)
    assert "…" not in text
    assert max(map(len, lines)) <= 80
    assert any(re.search(rf"[│|] {re.escape(name)} +[│|]", line) for line in lines)
    assert "b[x].png" in text and "no face [found]" in text
    words = " ".join(re.sub(r"[│┃|]", " ", line.split(name)[-1]) for line in lines).split()
    for word in REASON.split():                             # the reason's words, each whole
        assert word in words, word


def test_a_name_wider_than_the_terminal_is_listed_whole(
        capsys: pytest.CaptureFixture[str]) -> None:
    report = BatchReport()
    name = "/data/experiments/2026-12-05/adapted_outputs/" + "photo_0001_pixar" * 3 + ".png"
    report.skip(Path(name), REASON)
    report.skip(Path("b.png"), "no face found")
    console = Console(record=True, width=80, force_terminal=False)
    print_batch_report(console, report)
    lines = console.export_text().splitlines()
    assert lines[:3] == ["0 done, 2 skipped", "skipped:", f"  {name}"]
    assert lines[3].startswith("    lpips:allow_random=true: cannot score images of 16×16 px")
    assert all(len(line) <= 80 for line in lines[3:])
    assert "  b.png" in lines and "    no face found" in lines
    err = capsys.readouterr().err
    assert err == f"error: nothing done: {name}: {REASON} (and 1 more, listed above)\n"


def test_reproduce_lists_skipped_names_whole_too(capsys: pytest.CaptureFixture[str]) -> None:
    """``print_skipped`` (reproduce's photo report) is the same code: it cut wide names. Its
    notes are notices: on stderr."""
    from stylebridge.cli.common import print_skipped

    report = BatchReport()
    name = "/data/experiments/2026-12-05/adapted_outputs/" + "photo_0001_pixar" * 3 + ".png"
    report.skip(Path(name), REASON)
    for i in range(7):
        report.note(Path(f"n{i}.png"), "was small")
    console = Console(record=True, width=80, force_terminal=False)
    assert print_skipped(console, report) == "listed above"
    lines = console.export_text().splitlines()
    notes = capsys.readouterr().err.splitlines()
    assert notes[:5] == [f"note: n{i}.png was small" for i in range(5)]
    assert notes[5:] == ["note: and 2 more such files"]
    assert lines[:2] == ["skipped:", f"  {name}"]
    short = BatchReport()
    short.skip(Path("b.png"), "no face found")
    console = Console(record=True, width=80, force_terminal=False)
    assert print_skipped(console, short) == "in the table above"
    assert "b.png" in console.export_text() and "skipped:" not in console.export_text()
