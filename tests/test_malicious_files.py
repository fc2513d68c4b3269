"""Every registered converter refuses crafted malicious files; their payload never runs.

The payload of each file would create a marker file if any code in it were executed
(``os.system``).  Upstream formats are covered: a ``torch.save`` checkpoint (``.pt``), a
plain pickle (``.pkl``, NVlabs / StyleDomain) and a TorchScript archive (OpenAI CLIP).
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from stylebridge.errors import StylebridgeError
from stylebridge.registry import Registry

CONVERTERS = Registry(entry_points=False).names("converter")
pytestmark = pytest.mark.filterwarnings("ignore:Detected pickle protocol")


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _files(tmp_path: Path, marker: Path) -> dict[str, Path]:
    payload = _Payload(marker)
    pt = tmp_path / "evil.pt"
    torch.save({"g_ema": {"style.1.weight": torch.zeros(2, 2)}, "x": payload}, pt)
    pkl = tmp_path / "evil.pkl"
    pkl.write_bytes(pickle.dumps({"G_ema": payload, "D": None}))
    archive = tmp_path / "evil_jit.pt"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("evil/data.pkl", pickle.dumps(payload))
        zf.writestr("evil/code/__torch__/m.py", "")
    return {"pt": pt, "pkl": pkl, "torchscript": archive}


@pytest.mark.parametrize("converter", CONVERTERS)
@pytest.mark.parametrize("fmt", ["pt", "pkl", "torchscript"])
def test_converter_refuses_malicious_file(tmp_path: Path, converter: str, fmt: str) -> None:
    marker = tmp_path / "MARKER"
    src = _files(tmp_path, marker)[fmt]
    conv = Registry(entry_points=False).get("converter", converter).obj
    options = {"latent_avg": str(src)} if converter == "fse" else {}
    with pytest.raises(StylebridgeError) as info:
        conv.convert(src, tmp_path / "out.safetensors", **options)
    assert "\n" not in str(info.value) and str(src) in str(info.value)
    assert not marker.exists(), f"{converter} ran code from a {fmt} file"
    assert not (tmp_path / "out.safetensors").exists()
