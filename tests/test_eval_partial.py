"""`stylebridge eval` on awkward inputs: pairs a metric refuses (too small for SSIM's window or
LPIPS' network) are skipped and named while the rest finishes, resumably; a bug still stops the
run; the batch is put back before the pairs are scored one by one.

Expected values come from closed forms of constant images, not from the code under test: for
grey levels ``a`` and ``b`` (in [0, 1]) MSE is ``(a - b)²`` and SSIM ``(2ab + C1) / (a² + b² +
C1)`` with ``C1 = 0.01²`` (both variances and the covariance are 0).
"""

from __future__ import annotations

import csv
import json
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from stylebridge.cli.main import main
from stylebridge.errors import StylebridgeError
from stylebridge.plugins.metrics.image import MSEMetric, SSIMMetric
from stylebridge.registry import Registry, hookimpl
from stylebridge.registry import registry as registry_mod

C1 = 0.01 ** 2


def _grey(path: Path, level: int, size: int | tuple[int, int] = 16) -> None:
    h, w = (size, size) if isinstance(size, int) else size
    Image.fromarray(np.full((h, w, 3), level, np.uint8)).save(path)


def _ssim_const(a: float, b: float) -> float:
    return (2 * a * b + C1) / (a * a + b * b + C1)


def _strict_json(path: Path) -> Any:
    """JSON as a strict reader takes it: NaN / Infinity tokens are refused."""
    def refuse(token: str) -> None:
        raise AssertionError(f"{path} holds {token}, which is not JSON")
    return json.loads(path.read_text(), parse_constant=refuse)


def _folders(tmp_path: Path, levels: dict[str, tuple[int, int]]) -> tuple[Path, Path]:
    pred, target = tmp_path / "pred", tmp_path / "target"
    pred.mkdir(exist_ok=True)
    target.mkdir(exist_ok=True)
    for name, (p, t) in levels.items():
        _grey(pred / f"{name}.png", p)
        _grey(target / f"{name}.png", t)
    return pred, target


def _with_plugin(monkeypatch: pytest.MonkeyPatch, *classes: type) -> None:
    mod = types.ModuleType("eval_partial_test_pkg")
    mod.register_metrics = hookimpl(  # type: ignore[attr-defined]
        lambda register: [register(cls) for cls in classes] and None)
    monkeypatch.setattr(registry_mod, "_REGISTRY", Registry(extra_plugins=[mod],
                                                            entry_points=False))


# ---------------------------------------------------------------------------------------------
# issue 1: a pair a metric refuses is skipped, named, and the run finishes (and resumes)


GOOD = {f"img{i:02d}": (100 + i + 5, 100 + i) for i in range(13)}   # pred 5 levels brighter


def test_a_target_too_small_for_ssim_is_skipped_and_the_rest_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: `error: ssim: images of 2×2 px are smaller than the 7×7 window`, exit 2, no
    JSON, no file named."""
    pred, target = _folders(tmp_path, GOOD)
    _grey(pred / "a_tiny.png", 0)               # black, 16 px: scored at its target's 2×2 px
    _grey(target / "a_tiny.png", 255, 2)
    out_json, out_csv = tmp_path / "r.json", tmp_path / "r.csv"
    code = main(["eval", "-m", "mse", "-m", "ssim", "--pred", str(pred), "--target",
                 str(target), "--json", str(out_json), "--csv", str(out_csv)])
    out = capsys.readouterr().out
    assert code == 3                                      # EXIT_PARTIAL
    assert "13 done, 1 skipped" in out
    data = _strict_json(out_json)
    assert data["n_images"] == 13
    [skipped] = data["report"]["skipped"]
    assert skipped["file"] == str(pred / "a_tiny.png")
    assert skipped["reason"].startswith("ssim: images of 2×2 px are smaller than the 7×7 window")
    assert str(target / "a_tiny.png") in skipped["reason"]
    # the refused pair left no trace in any metric: mse took it before ssim refused it
    assert data["mean"]["mse"] == pytest.approx((5 / 255) ** 2, rel=1e-6)
    expected_ssim = np.mean([_ssim_const(p / 255, t / 255) for p, t in GOOD.values()])
    assert data["mean"]["ssim"] == pytest.approx(expected_ssim, abs=1e-7)
    assert [r["name"] for r in csv.DictReader(out_csv.open())][-1] == "mean"


def test_an_interrupted_run_with_a_refused_pair_resumes_to_the_same_report(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Before: the journal kept the finished pairs, and --resume stopped at the same pair."""
    pred, target = _folders(tmp_path, GOOD)
    _grey(pred / "a_tiny.png", 0)
    _grey(target / "a_tiny.png", 255, 2)

    def argv(out: Path, *extra: str) -> list[str]:
        return ["eval", "-m", "mse", "-m", "ssim", "--pred", str(pred), "--target", str(target),
                "--batch", "8", "--json", str(out / "r.json"), "--csv", str(out / "r.csv"),
                *extra]

    ref, out = tmp_path / "ref", tmp_path / "out"
    ref.mkdir()
    out.mkdir()
    assert main(argv(ref)) == 3
    real, calls = SSIMMetric.update, [0]

    def update(self: Any, *args: Any, **kwargs: Any) -> None:
        calls[0] += 1
        if calls[0] == 3:  # a_tiny (refused), img00-07, then the batch img08-12: interrupted
            raise KeyboardInterrupt
        real(self, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(SSIMMetric, "update", update)
        assert main(argv(out)) == 130
    capsys.readouterr()
    assert main(argv(out, "--resume")) == 3
    said = " ".join(capsys.readouterr().out.split())
    assert "13 done, 1 skipped" in said
    for name in ("r.json", "r.csv"):
        assert (out / name).read_text().replace(str(out), "X") == \
            (ref / name).read_text().replace(str(ref), "X")


def test_an_image_too_small_for_lpips_is_skipped_with_the_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Before: `error: RuntimeError: Given input size: (192x1x1)... Output size is too small`,
    exit 1, no JSON."""
    pytest.importorskip("lpips")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    levels = {"big0": (110, 100), "big1": (120, 100)}
    pred, target = tmp_path / "pred", tmp_path / "target"
    pred.mkdir()
    target.mkdir()
    for name, (p, t) in levels.items():
        _grey(pred / f"{name}.png", p, 64)
        _grey(target / f"{name}.png", t, 64)
    _grey(pred / "small.png", 30)
    _grey(target / "small.png", 200)
    out_json = tmp_path / "r.json"
    code = main(["eval", "-m", "lpips:allow_random=true", "-m", "mse", "--pred", str(pred),
                 "--target", str(target), "--json", str(out_json)])
    assert code == 3, capsys.readouterr()
    data = _strict_json(out_json)
    [skipped] = data["report"]["skipped"]
    assert skipped["file"] == str(pred / "small.png")
    assert skipped["reason"].startswith("lpips:allow_random=true: cannot score images of "
                                        "16×16 px (")
    assert "too small" in skipped["reason"]
    assert data["mean"]["mse"] == pytest.approx(((10 / 255) ** 2 + (20 / 255) ** 2) / 2,
                                                rel=1e-6)


def _bright_metric() -> type:
    """A plugin metric that refuses images brighter than 0.9 (StylebridgeError) and reports
    the mean level of the rest."""
    from stylebridge.plugins.metrics.base import PerImageMetric

    class TooBright(PerImageMetric):
        name = "level-test"

        def __init__(self) -> None:
            super().__init__()

        def score(self, pred, target, **context):
            level = pred.double().mean(dim=(1, 2, 3))
            if bool((level > 0.9).any()):
                raise StylebridgeError("level-test: an image brighter than 0.9")
            return {"level": level}

    return TooBright


def test_one_refused_image_in_a_batch_leaves_the_others_scored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch is put back (mse had taken it) and scored image by image: only the refused
    pair is skipped."""
    from stylebridge.pipelines.evaluate import EvalConfig, evaluate

    _with_plugin(monkeypatch, _bright_metric())
    levels = {"a": (60, 50), "b": (250, 240), "c": (90, 50), "d": (20, 50)}
    pred, target = _folders(tmp_path, levels)
    result = evaluate(EvalConfig(metrics=["mse", "level-test"], pred=[pred], target=[target],
                                 batch=4, device="cpu"))
    assert result.exit_code == 3
    assert [(p.name, r) for p, r in result.report.skipped] == [
        ("b.png", "level-test: an image brighter than 0.9")]
    assert [row["name"] for row in result.rows] == ["a", "c", "d"]
    assert result.means["mse"] == pytest.approx(
        np.mean([(10 / 255) ** 2, (40 / 255) ** 2, (30 / 255) ** 2]), rel=1e-6)
    assert result.means["level"] == pytest.approx(np.mean([60, 90, 20]) / 255, rel=1e-6)


def test_a_bug_in_a_metric_is_not_skipped(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from stylebridge.core.interfaces import Metric
    from stylebridge.pipelines.evaluate import EvalConfig, evaluate

    class Buggy(Metric):
        name = "buggy-test"

        def reset(self) -> None:
            self.n = 0

        def update(self, pred, target=None, **context) -> None:
            self.n += pred.shape[0]
            self.n += {}["missing"]  # the bug: a KeyError

        def compute(self) -> dict[str, float]:
            return {"buggy": 0.0}

    _with_plugin(monkeypatch, Buggy)
    pred, target = _folders(tmp_path, {"a": (10, 20)})
    with pytest.raises(KeyError):
        evaluate(EvalConfig(metrics=["mse", "buggy-test"], pred=[pred], target=[target],
                            device="cpu"))


# ---------------------------------------------------------------------------------------------
# issue 6: a refused --resume says what differs, names the file, and offers what eval has


@pytest.fixture()
def interrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path, Path]:
    pred, target = _folders(tmp_path, {f"p{i}": (100 + i, 90) for i in range(4)})
    real, calls = MSEMetric.update, [0]

    def update(self: Any, *args: Any, **kwargs: Any) -> None:
        calls[0] += 1
        if calls[0] == 2:
            raise KeyboardInterrupt
        real(self, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(MSEMetric, "update", update)
        assert main(["eval", "-m", "mse", "--pred", str(pred), "--target", str(target),
                     "--batch", "2", "--json", str(tmp_path / "r.json")]) == 130
    capsys.readouterr()
    return pred, target, tmp_path / "r.json"


def _resume(pred: Path, target: Path, out: Path, *extra: str) -> list[str]:
    return ["eval", "-m", "mse", *extra, "--pred", str(pred), "--target", str(target),
            "--batch", "2", "--json", str(out), "--resume"]


def test_resume_with_another_metric_offers_what_eval_has(
        interrupted: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """Before: `... or another --out to start a new run`; eval has no --out."""
    pred, target, out = interrupted
    assert main(_resume(pred, target, out, "-m", "psnr")) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error: --resume: --metric differs (mse then, mse, psnr now); give "
                          "the options of the interrupted evaluation")
    assert "run without --resume to start over" in err and "--out" not in err


def test_resume_after_a_file_changed_names_it(interrupted: tuple[Path, Path, Path],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Before: `--pred/--target files differs (<sha256> then, <sha256> now)`."""
    pred, target, out = interrupted
    _grey(target / "p3.png", 10)
    assert main(_resume(pred, target, out)) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"--resume: --target {target / 'p3.png'} has changed since the interrupted " \
           "evaluation" in err
    assert "--out" not in err
    _grey(target / "p3.png", 90)        # the same pixels, but written again: still refused
    _grey(pred / "p4.png", 5)
    _grey(target / "p4.png", 5)
    assert main(_resume(pred, target, out)) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"a new prediction, {pred / 'p4.png'}" in err


def test_a_file_that_is_not_an_eval_report_is_never_replaced(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--json notes.json` given by mistake overwrote the user's file without a word (the
    other commands refuse an existing output): refused before any work; an earlier report,
    an empty file and a new path are written."""
    pred, target = _folders(tmp_path, {"a": (10, 20), "b": (30, 30)})
    notes, table = tmp_path / "notes.json", tmp_path / "table.csv"
    notes.write_text('{"my": "precious notes"}')
    table.write_text("a,b\n1,2\n")
    for option, path, kind in (("--json", notes, "JSON"), ("--csv", table, "CSV")):
        before = path.read_bytes()
        code = main(["eval", "-m", "mse", "--pred", str(pred), "--target", str(target),
                     option, str(path)])
        err = capsys.readouterr().err
        assert code == 2 and path.read_bytes() == before
        assert err == (f"error: {option} {path}: the file exists and is not an eval {kind} "
                       "report, which would replace it: give another path (or remove it "
                       "first)\n")
    # a report saved again by a spreadsheet (a BOM, CRLF) is still a report: replaced
    saved = tmp_path / "saved.csv"
    saved.write_bytes(b"\xef\xbb\xbfname,pred,target,mse\r\na,a.png,a.png,0.1\r\n")
    assert main(["eval", "-m", "mse", "--pred", str(pred), "--target", str(target),
                 "--csv", str(saved)]) == 0
    assert saved.read_text().startswith("name,pred,target,mse")
    # --resume to standard output: nothing there to continue from
    capsys.readouterr()
    assert main(["eval", "-m", "mse", "--pred", str(pred), "--target", str(target),
                 "--json", "-", "--resume"]) == 2
    assert capsys.readouterr().err.endswith("--resume continues the evaluation that writes "
                                            "--json or --csv to a file: give the same one "
                                            "(standard output keeps nothing to continue "
                                            "from)\n")
    report, rows = tmp_path / "r.json", tmp_path / "r.csv"
    rows.touch()  # an empty file: nothing to lose
    for _ in range(2):  # the second run replaces the first one's reports
        assert main(["eval", "-m", "mse", "--pred", str(pred), "--target", str(target),
                     "--json", str(report), "--csv", str(rows)]) == 0
    assert json.loads(report.read_text())["mean"]["mse"] > 0
    assert rows.read_text().startswith("name,pred,target,mse")
    # --resume where no run was writing that report names the report, not its folder ('.')
    capsys.readouterr()
    assert main(["eval", "-m", "mse", "--pred", str(pred), "--target", str(target),
                 "--json", str(tmp_path / "new.json"), "--resume"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert (f"--resume: no interrupted eval run was writing {tmp_path / 'new.json'}; starting "
            "from the first pair") in err


def test_a_large_json_file_is_checked_by_its_first_key_not_parsed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stylebridge.errors import StylebridgeError
    from stylebridge.pipelines import eval_report

    monkeypatch.setattr(eval_report, "MAX_READ", 64)  # larger than this: not parsed
    report, other = tmp_path / "big.json", tmp_path / "other.json"
    report.write_text('{\n  "pred": [' + ", ".join(['"x.png"'] * 40) + "]\n}\n")
    other.write_text('{\n  "mine": [' + ", ".join(['"note"'] * 40) + "]\n}\n")
    assert report.stat().st_size > 64
    eval_report.check_replaceable("--json", report)  # an eval report's first key: replaced
    with pytest.raises(StylebridgeError, match="is not an eval JSON report"):
        eval_report.check_replaceable("--json", other)
