"""benchmarks/bench_cpu_versions.py: it times the version it names, and reads each script's JSON.

The script compares two versions of stylebridge by importing each from its own exported tree;
if a worker silently imported the installed copy instead, both columns would time the same
code and every ratio would read 1.0.  The JSON readers are checked on hand-written input in the
layout bench_featureshift.py, bench_domain_methods.py and bench_encoder_fse.py write.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import load_script

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "bench_cpu_versions.py"
versions = load_script(SCRIPT)


def test_reads_featureshift_steps_per_second_as_ms():
    data = {"steps_per_s_median": {"inversion/fp32": 4.0, "joint-stored/fp32": 0.5}}
    assert versions._read_script_result("featureshift", data) == {
        "featureshift step inversion/fp32": 250.0, "featureshift step joint-stored/fp32": 2000.0}


def test_reads_domain_methods_ms_per_step():
    data = {"ms_per_step_median": {"stylespace": 12.5, "hyperdomain": 40.0}}
    assert versions._read_script_result("domain_methods", data) == {
        "train-domain step stylespace": 12.5, "train-domain step hyperdomain": 40.0}


def test_reads_fse_images_per_second_per_batch():
    data = {"results": [{"batch": 1, "images_per_s": {"encode/latents": 5.0}},
                        {"batch": 8, "images_per_s": {"encode/latents": 8.0}}]}
    assert versions._read_script_result("fse_encoder", data) == {
        "fse encode/latents b1": 200.0, "fse encode/latents b8": 125.0}


def test_worker_refuses_a_tree_without_stylebridge(tmp_path):
    """A tree that lacks the package must not fall through to the installed copy."""
    (tmp_path / "benchmarks").mkdir()
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--worker", "synthesis", "--tree", str(tmp_path),
         "--out", str(tmp_path / "o.pt"), "--weights", str(tmp_path / "w.pt")],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert f"not from {tmp_path.resolve()}" in proc.stderr
    assert "RESULT" not in proc.stdout


def test_export_unpacks_the_commit(tmp_path):
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    folder, commit = versions._export("HEAD", tmp_path)
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    assert commit == head
    assert (folder / "stylebridge" / "__init__.py").read_bytes() == subprocess.run(
        ["git", "-C", str(REPO), "show", "HEAD:stylebridge/__init__.py"], check=True,
        capture_output=True).stdout


def test_unknown_workload_is_one_line_error():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--workloads", "synthesis,bogus"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "unknown workload(s) bogus" in proc.stderr
