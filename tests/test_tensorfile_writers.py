"""Files written with several safetensors metadata keys are byte-identical run after run.

``safetensors.torch.save_file`` orders the ``__metadata__`` keys through a hash map, so the
tiny preset's CLIP files (3 keys) and a converted checkpoint stamped by the weights manager
came out with other bytes, and another sha256 (which resumed trainings and ``reproduce``
compare), each time.  They are written by :func:`stylebridge.core.tensorfile.save_tensors`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file


def _metadata_keys(path: Path) -> list[str]:
    raw = path.read_bytes()
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
    return list(header["__metadata__"])


def test_the_tiny_clip_files_are_the_same_bytes_for_the_same_seed(tmp_path: Path) -> None:
    pytest.importorskip("open_clip")
    from stylebridge.pipelines.presets import write_tiny_clips

    written = []
    for i in range(4):
        torch.manual_seed(0)
        files = write_tiny_clips(tmp_path / f"run{i}")
        written.append({name: path.read_bytes() for name, path in files.items()})
        for path in files.values():
            assert _metadata_keys(path) == ["note", "quick_gelu", "random_weights"]
    assert all(w == written[0] for w in written[1:])
    for name, path in write_tiny_clips(tmp_path / "check").items():  # still a CLIP state dict
        assert any(k.startswith("visual.") for k in load_file(str(path))), name


def test_a_stamped_checkpoint_is_the_same_bytes_every_time(tmp_path: Path) -> None:
    from stylebridge.core.checkpoint import METADATA_KEY, save_checkpoint
    from stylebridge.registry.weights_files import stamp_header

    info = {"entry": "e", "licence": "MIT", "source": "https://example.invalid/x"}
    tensors = {"b": torch.arange(6, dtype=torch.float32).reshape(2, 3),
               "a": torch.tensor([1, 2], dtype=torch.int64)}
    out = []
    for i in range(4):
        path = save_checkpoint(tmp_path / f"c{i}.safetensors", tensors, kind="encoder",
                               plugin="x", config={})
        stamp_header(path, info)
        out.append(path.read_bytes())
        loaded = load_file(str(path))
        assert torch.equal(loaded["b"], tensors["b"]) and torch.equal(loaded["a"], tensors["a"])
        raw = json.loads(out[-1][8:8 + int.from_bytes(out[-1][:8], "little")])
        assert json.loads(raw["__metadata__"][METADATA_KEY])["extra"]["weights"] == info
    assert all(o == out[0] for o in out[1:])
