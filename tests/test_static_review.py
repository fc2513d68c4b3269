"""Defects a static review (mypy, vulture) found: plugins that are ``nn.Module``s keep
``Module.apply(fn)`` (a domain method's option and the calibrator hook once hid it: a parent's
``apply(init)`` crashed or skipped them), a malformed header, the package's exports."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from stylebridge.core.interfaces import Calibrator, Inversion
from stylebridge.plugins.calibrators.alpha import AlphaCalibrator
from stylebridge.plugins.domains.modulation import DomainModulation


def _visited(module: nn.Module) -> list[str]:
    seen: list[str] = []
    module.apply(lambda m: seen.append(type(m).__name__))
    return seen


def test_domain_modulation_keeps_module_apply() -> None:
    method = DomainModulation(size=32, style_dim=8, channels={4: 8, 8: 8, 16: 8, 32: 8},
                              apply="styles")
    assert method.apply_to == "styles" and method.config()["apply"] == "styles"
    seen = _visited(nn.Sequential(method))
    assert seen[-2:] == ["DomainModulation", "Sequential"]


def test_a_calibrator_is_visited_by_module_apply_and_calibrates_through_calibrate() -> None:
    means = [torch.zeros(8), torch.ones(8)]
    alpha = AlphaCalibrator.from_style_means(means, [torch.ones(8), torch.ones(8)])
    assert _visited(nn.Sequential(alpha))[-2:] == ["AlphaCalibrator", "Sequential"]
    inv = Inversion(w_plus=torch.zeros(1, 4, 8))
    assert alpha.calibrate(inv) is inv
    assert alpha.apply(inv) is inv  # the hook's old name, given an inversion


def test_a_calibrator_written_for_the_old_hook_name_still_works() -> None:
    with pytest.warns(DeprecationWarning, match="name its hook calibrate"):
        class Old(Calibrator):
            name = "old-style"

            def apply(self, inversion: Inversion) -> Inversion:  # type: ignore[override]
                return Inversion(w_plus=inversion.w_plus + 1)

    old = Old()
    inv = Inversion(w_plus=torch.zeros(1, 4, 8))
    assert float(old.calibrate(inv).w_plus.sum()) == 32.0
    assert float(old.apply(inv).w_plus.sum()) == 32.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _visited(nn.Sequential(old)) == ["Old", "Sequential"]


# -- small findings of the same static review ---------------------------------------------------


def test_a_safetensors_header_with_a_list_for_dtype_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    import json
    import struct

    from stylebridge.registry.weights_files import safetensors_problem

    header = json.dumps({"t": {"dtype": ["F32"], "shape": [1], "data_offsets": [0, 4]}}).encode()
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 4)
    assert safetensors_problem(path) == "has a malformed safetensors entry for tensor 't'"


def test_the_package_exports_its_documented_entry_points() -> None:
    import stylebridge

    assert {"fetch_weights", "fetching", "Adapter"} <= set(stylebridge.__all__) & set(dir(stylebridge))


def test_an_old_style_hook_calling_super_apply_reaches_its_parents_calibration() -> None:
    # written for the old name, on top of a real calibrator: super().apply(inversion) was its
    # parent's calibration, and must not come back to the hook itself (it recursed forever)
    means = [torch.zeros(8), torch.ones(8)]
    with pytest.warns(DeprecationWarning):
        class Shifted(AlphaCalibrator):
            def apply(self, inversion: Inversion) -> Inversion:  # type: ignore[override]
                inversion = super().apply(inversion)
                return Inversion(w_plus=inversion.w_plus + 1)

        class Twice(Shifted):
            def apply(self, inversion: Inversion) -> Inversion:  # type: ignore[override]
                return Inversion(w_plus=super().apply(inversion).w_plus * 2)

        class Plain(Calibrator):
            name = "plain-old"

            def apply(self, inversion: Inversion) -> Inversion:  # type: ignore[override]
                return Inversion(w_plus=super().apply(inversion).w_plus - 3)

    fitted = AlphaCalibrator.from_style_means(means, [torch.ones(8), torch.ones(8)])
    inv = Inversion(w_plus=torch.full((1, 4, 8), 2.0))
    expected = fitted.calibrate(inv).w_plus + 1
    shifted = Shifted(**fitted.config())
    shifted.load_state_dict(fitted.state_dict())
    assert torch.equal(shifted.calibrate(inv).w_plus, expected)
    assert torch.equal(shifted.apply(inv).w_plus, expected)
    twice = Twice(**fitted.config())
    twice.load_state_dict(fitted.state_dict())
    assert torch.equal(twice.calibrate(inv).w_plus, expected * 2)
    assert float(Plain().calibrate(inv).w_plus.mean()) == -1.0


def test_the_old_hook_deprecation_names_the_class_statement() -> None:
    # at the user's class line (Python shows a DeprecationWarning there in __main__ and in
    # test runs), not inside abc's __new__, where it was filtered out unseen
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        line = sys._getframe().f_lineno + 2

        class Old(Calibrator):
            name = "old-at-line"

            def apply(self, inversion: Inversion) -> Inversion:  # type: ignore[override]
                return inversion

    assert len(seen) == 1 and seen[0].filename == __file__
    assert seen[0].lineno == line and Old.name == "old-at-line"


@pytest.mark.parametrize("module", ["stylebridge.core.converter", "stylebridge.core.plugin",
                                    "stylebridge.core.interfaces"])
def test_each_interface_module_can_be_imported_first(module: str) -> None:
    import subprocess

    code = (f"import {module}; from stylebridge.core.interfaces import Converter, Plugin; "
            "from stylebridge.core.converter import Converter as C; assert C is Converter")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-400:]
