"""``stylebridge doctor``: each row against what it reports on, read another way."""

from __future__ import annotations

import importlib.metadata
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch

from stylebridge.core.ops import cuda_ops_unusable
from stylebridge.pipelines.doctor import OPTIONAL, diagnose
from stylebridge.registry import get_registry, reset_registry
from stylebridge.registry.weights import WeightsManager


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "home"))
    reset_registry()
    yield tmp_path / "home"
    reset_registry()


def _rows(section: list[Any]) -> dict[str, Any]:
    return {row.item: row for row in section}


def test_the_report_matches_the_installation(home: Path) -> None:
    report = diagnose()
    system = _rows(report.sections["system"])
    assert system["torch"].value == torch.__version__
    assert system["stylebridge"].value == importlib.metadata.version("stylebridge")
    packages = _rows(report.sections["packages"])
    for dist, _, _, install in OPTIONAL:
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            assert packages[dist].status == "missing" and install in packages[dist].hint
        else:
            assert packages[dist].value == version and packages[dist].status == "ok"
    weights = _rows(report.sections["weights"])
    assert weights["cache (STYLEBRIDGE_HOME)"].value == str(home)
    assert weights["installed official weights"].value == "none"
    demo = WeightsManager().sets["demo"]
    assert weights["demo set"].value == "missing " + ", ".join(demo)
    counts = Counter(entry.provider for entry in get_registry().all_entries())
    plugins = _rows(report.sections["plugins"])
    assert {item.removeprefix("plugins from "): int(row.value) for item, row in plugins.items()
            } == dict(counts)
    cuda = _rows(report.sections["cuda"])
    assert cuda["torch built with CUDA"].value == (torch.version.cuda or "no (a CPU build)")
    if not torch.cuda.is_available():
        assert cuda["CUDA ops"].value == "not usable: torch.cuda.is_available() is False"
        assert cuda["GPUs"].value == "none visible"
        assert not any(item.startswith("cuda:") for item in cuda)
    else:  # one row per visible GPU: its name, memory and compute capability
        count = torch.cuda.device_count()
        assert "GPUs" not in cuda
        assert sorted(item for item in cuda if item.startswith("cuda:")) == sorted(
            f"cuda:{i}" for i in range(count))
        for i in range(count):
            name, memory, arch = cuda[f"cuda:{i}"].value.rsplit(", ", 2)
            props = torch.cuda.get_device_properties(i)
            assert name == torch.cuda.get_device_name(i)
            assert memory == f"{round(props.total_memory / 2**30)} GiB"
            assert arch == "sm_{}{}".format(*torch.cuda.get_device_capability(i))
        # not built by diagnose() without build_cuda: buildable, or the precheck's reason
        reason = cuda_ops_unusable()
        assert reason != "torch.cuda.is_available() is False"
        assert cuda["CUDA ops"].value == ("buildable (not built now)" if reason is None
                                          else f"not usable: {reason}")
    assert report.problems == []


def test_a_broken_plugin_package_is_an_error_and_the_exit_code(
        home: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    import stylebridge.registry.registry as registry_mod
    from stylebridge.cli.main import main

    assert main(["doctor", "--json"]) == 0
    clean = json.loads(capsys.readouterr().out)
    assert list(clean) == ["system", "cuda", "packages", "weights", "plugins"]
    # an installed package whose plugin module cannot be imported (as test_registry does it)
    ep = importlib.metadata.EntryPoint(name="broken", value="no_such_module_xyz",
                                       group="stylebridge")
    monkeypatch.setattr(registry_mod.importlib.metadata, "entry_points",
                        lambda group=None: [ep] if group == "stylebridge" else [])
    reset_registry()
    assert main(["doctor", "--json"]) == 1
    rows = json.loads(capsys.readouterr().out)["plugins"]
    broken = [row for row in rows if row["status"] == "error"]
    assert len(broken) == 1 and broken[0]["item"] == "plugin package no_such_module_xyz"
    assert broken[0]["value"].startswith("broken: ModuleNotFoundError")


def test_a_broken_weights_index_is_a_row_and_the_report_goes_on(home: Path, capsys) -> None:
    """`index.json` holding `{bad` made doctor print one error and exit 2, with no report."""
    from stylebridge.cli.main import main

    home.mkdir()
    (home / "index.json").write_text("{bad")
    assert main(["doctor", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert list(report) == ["system", "cuda", "packages", "weights", "plugins"]
    weights = {row["item"]: row for row in report["weights"]}
    broken = weights["weights index"]
    assert broken["status"] == "error"
    assert broken["value"].startswith(f"{home / 'index.json'}: weights index is unreadable ")
    assert weights["installed official weights"]["value"] == "none"
    assert report["plugins"] and [r for r in report["weights"] if r["status"] == "error"] == [
        broken]


def test_doctor_checks_each_index_entry(home: Path, capsys) -> None:
    """Names not in the catalogue were listed as `installed official weights … ok`; so was an
    entry whose converted file is gone; a malformed entry stopped the report."""
    from stylebridge.cli.main import main

    (home / "downloads").mkdir(parents=True)
    upstream = home / "downloads" / "file.pt"
    upstream.write_bytes(b"upstream")
    good = {"raw": str(upstream), "converted": None, "sha256": "0" * 64}
    gone = home / "weights" / "psp-ffhq.safetensors"
    (home / "index.json").write_text(json.dumps({
        "e4e-ffhq": good, "made-up": good, "psp-ffhq": {**good, "converted": str(gone)},
        "fse-ffhq": 3}))
    assert main(["doctor", "--json"]) == 1
    rows = {row["item"]: row for row in json.loads(capsys.readouterr().out)["weights"]}
    assert rows["installed official weights"]["value"] == "e4e-ffhq"
    assert rows["unknown entries in index.json"]["value"] == "made-up"
    assert rows["unknown entries in index.json"]["status"] == "note"
    assert rows["weights psp-ffhq"]["status"] == "error"
    assert rows["weights psp-ffhq"]["value"] == (
        f"converted file {gone} is missing; convert it again with `stylebridge weights "
        f"register psp-ffhq --from {upstream}`")
    assert rows["index.json entry 'fse-ffhq'"]["status"] == "error"
    assert rows["index.json entry 'fse-ffhq'"]["value"].startswith(
        f"{home / 'index.json'}: entry 'fse-ffhq' is 3, not an object; ")
    demo = [n for n in WeightsManager().sets["demo"] if n != "e4e-ffhq"]
    assert rows["demo set"]["value"] == "missing " + ", ".join(demo)


def test_doctor_says_when_the_cache_is_a_file(home: Path) -> None:
    home.parent.mkdir(parents=True, exist_ok=True)
    home.write_text("not a folder")
    cache = _rows(diagnose().sections["weights"])["cache (STYLEBRIDGE_HOME)"]
    assert cache.value == str(home) and cache.status == "error"
    assert cache.hint.startswith("is a file, not a folder: nothing can be installed there")
