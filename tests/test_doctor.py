"""``stylebridge doctor``: each row against what it reports on, read another way."""

from __future__ import annotations

import importlib.metadata
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch

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
    if not torch.cuda.is_available():
        assert cuda["CUDA ops"].value == "not usable: torch.cuda.is_available() is False"
        assert cuda["GPUs"].value == "none visible"
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
