"""benchmarks/fidelity: the suite's own plumbing, without any upstream code (the suite itself
needs the pinned upstream repositories and is not run here; docs/fidelity.md)."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "benchmarks" / "fidelity"
RESULTS = ROOT / "benchmarks" / "results" / "fidelity.json"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"fidelity_{name}", SUITE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


run = load("run")
summary = load("summarize")
native_ops = load("native_ops")


def pins() -> dict[str, str]:
    text = (SUITE / "prepare.sh").read_text()
    block = text.split("PINS=(", 1)[1].split(")", 1)[0]
    found = re.findall(r'"([\w.-]+/[\w.-]+) (\S+)"', block)
    assert found, "no pins in prepare.sh"
    return dict(found)


def test_every_check_module_is_listed_and_named_alike() -> None:
    files = {p.stem.removeprefix("check_") for p in SUITE.glob("check_*.py")}
    assert files == set(run.CHECKS)
    for name in run.CHECKS:
        text = run.module_path(name).read_text()
        assert re.search(rf'main\("{name}", check\)', text), name


def test_prepare_pins_a_full_commit_for_every_repository() -> None:
    pinned = pins()
    for repo, commit in pinned.items():
        assert re.fullmatch(r"[0-9a-f]{40}", commit), (repo, commit)
    used = {repo for repos in run.CHECKS.values() for repo in repos}
    assert used <= set(pinned), used - set(pinned)
    for path in SUITE.glob("check_*.py"):  # the repositories the modules name
        for repo in re.findall(r'^(?:REPO|FSE|SD) = "([^"]+)"', path.read_text(), re.M):
            assert repo in pinned, (path.name, repo)


def test_run_help_lists_the_checks() -> None:
    proc = subprocess.run([sys.executable, str(SUITE / "run.py"), "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "--upstream" in proc.stdout and "--only" in proc.stdout
    for name in run.CHECKS:
        assert name in proc.stdout


def test_run_refuses_an_unknown_check(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        run.main(["--upstream", str(tmp_path), "--out", str(tmp_path / "r.json"),
                  "--only", "no-such-check"])


def synthetic() -> dict:
    rec = {"module": "m", "repo": "owner/name", "commit": "a" * 40, "compares": "image",
           "size": "64 px", "reference_max_abs": 2.0, "seconds": 1.5}
    return {
        "created": "2026-01-01 00:00 UTC", "total_seconds": 12.0,
        "machine": {"torch": "2.0", "python": "3.11", "cpu_count": 2, "machine": "x86_64",
                    "torch_threads": 2},
        "modules": [{"name": "m", "error": None}, {"name": "broken", "error": "Traceback"}],
        "checks": [
            {**rec, "name": "good", "max_abs_diff": 1e-5, "tolerance": 2e-4, "passed": True},
            {**rec, "name": "bad", "max_abs_diff": 0.5, "tolerance": 2e-4, "passed": False},
            {**rec, "name": "approx", "max_abs_diff": 0.0, "tolerance": None,
             "passed": None, "commit": f"{'b' * 40} + {'c' * 40}"},
        ],
    }


def test_summary_table_rows() -> None:
    text = summary.summarize(synthetic())
    assert "3 comparisons, 1 failed, 1 informational, 1 module errors (broken)" in text
    rows = [ln for ln in text.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
    assert len(rows) == 3
    good, bad, approx = rows
    assert good == ("| good | owner/name @ aaaaaaa | image | 64 px | 1.00e-05 | 2.00e+00 "
                    "| 2.00e-04 | pass | 1.5 |")
    assert "| **FAIL** |" in bad and "5.00e-01" in bad
    assert "@ bbbbbbb + ccccccc" in approx and "| 0 |" in approx
    assert approx.endswith("| — | info | 1.5 |")


def test_write_between_markers(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(f"# t\n\nbefore\n{summary.BEGIN}\nold table\n{summary.END}\nafter\n")
    table = summary.summarize(synthetic())
    summary.write_between_markers(doc, table)
    text = doc.read_text()
    assert text.startswith("# t\n\nbefore\n") and text.endswith(f"{summary.END}\nafter\n")
    assert "old table" not in text and summary.table_in(doc) == table
    (tmp_path / "none.md").write_text("no markers\n")
    with pytest.raises(SystemExit):
        summary.write_between_markers(tmp_path / "none.md", table)


def test_recorded_results_are_what_the_docs_show() -> None:
    result = json.loads(RESULTS.read_text())
    keys = {"name", "repo", "commit", "compares", "size", "max_abs_diff", "reference_max_abs",
            "tolerance", "passed", "seconds"}
    assert result["checks"] and result["machine"]["torch"]
    pinned = pins()
    for check in result["checks"]:
        assert keys <= set(check), keys - set(check)
        for repo, commit in zip(check["repo"].split(" + "), check["commit"].split(" + "),
                                strict=True):
            assert pinned[repo] == commit, (check["name"], repo)
        if check["passed"] is not None:
            assert check["passed"] == (check["max_abs_diff"] <= check["tolerance"])
    assert result["passed"] == (not any(c["passed"] is False for c in result["checks"])
                                and not any(m["error"] for m in result["modules"]))
    assert {c["module"] for c in result["checks"]} == set(run.CHECKS)
    table = summary.summarize(result)
    assert summary.table_in(ROOT / "docs" / "fidelity.md") == table
    assert summary.table_in(ROOT / "benchmarks" / "RESULTS.md") == table


def test_ci_does_not_run_the_suite() -> None:
    assert "fidelity" not in (ROOT / ".ci" / "run").read_text()


def test_native_upfirdn2d_is_the_textbook_operation() -> None:
    """Against an independent reference: zero insertion, padding, ``scipy`` convolution,
    subsampling."""
    signal = pytest.importorskip("scipy.signal")
    import numpy as np
    gen = torch.Generator().manual_seed(0)
    kernel = torch.rand(4, 4, generator=gen, dtype=torch.float64)
    for up, down, pad in [(2, 1, (2, 1)), (1, 2, (1, 1)), (1, 1, (1, 2, 0, 3)),
                          (2, 1, (-1, 3)), ((2, 1), 1, (1, 2))]:
        x = torch.rand(2, 3, 7, 6, generator=gen, dtype=torch.float64)
        ours = native_ops.upfirdn2d(x, kernel, up=up, down=down, pad=pad)
        ux, uy = (up, up) if isinstance(up, int) else up
        p = pad if len(pad) == 4 else (pad[0], pad[1], pad[0], pad[1])
        for n in range(2):
            for c in range(3):
                z = np.zeros((7 * uy, 6 * ux))
                z[::uy, ::ux] = x[n, c].numpy()
                z = np.pad(z, ((max(p[2], 0), max(p[3], 0)), (max(p[0], 0), max(p[1], 0))))
                z = z[max(-p[2], 0): z.shape[0] - max(-p[3], 0),
                      max(-p[0], 0): z.shape[1] - max(-p[1], 0)]
                ref = signal.convolve2d(z, kernel.numpy(), mode="valid")[::down, ::down]
                np.testing.assert_allclose(ours[n, c].numpy(), ref, atol=1e-12)


def test_native_fused_leaky_relu() -> None:
    x = torch.tensor([[[[-1.0, 2.0]], [[3.0, -4.0]]]])  # [1, 2, 1, 2]
    bias = torch.tensor([0.5, -3.5])
    out = native_ops.fused_leaky_relu(x, bias, 0.2, 2.0)
    expected = torch.tensor([[[[-0.2, 5.0]], [[-0.2, -3.0]]]])
    torch.testing.assert_close(out, expected)
    act = native_ops.FusedLeakyReLU(2, 0.1, 1.0)  # the old positional signature
    assert act.negative_slope == 0.1 and act.scale == 1.0 and act.bias.shape == (2,)
    assert native_ops.FusedLeakyReLU(2, bias=False).bias is None
