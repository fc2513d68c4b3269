"""Crafted checkpoints from strangers (issue 19, items 2, 3 and 5): a FIFO or device given as a
checkpoint, an oversized or deeply nested header, and NaN/Inf weights are refused in one line
naming the file, before anything is built."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from stylebridge.core.checkpoint import (
    MAX_HEADER_BYTES,
    MAX_HEADER_DEPTH,
    load_checkpoint,
    read_header,
    save_checkpoint,
)
from stylebridge.errors import CheckpointError


def _raw(path: Path, header: str, tensors: dict[str, torch.Tensor] | None = None) -> Path:
    save_file(tensors or {"x": torch.zeros(2)}, str(path), metadata={"stylebridge": header})
    return path


def _header(**extra: object) -> str:
    return json.dumps({"format": "stylebridge", "version": 1, "kind": "encoder",
                       "plugin": "e4e", "config": {}, **extra})


def test_a_fifo_is_refused_up_front(tmp_path: Path) -> None:
    fifo = tmp_path / "gen.safetensors"
    os.mkfifo(fifo)
    with pytest.raises(CheckpointError, match="is not a regular file") as exc:
        read_header(fifo)  # would block forever if it were opened
    assert str(fifo) in str(exc.value)


def test_cli_refuses_a_fifo_generator_in_one_line(tmp_path: Path) -> None:
    fifo = tmp_path / "gen.safetensors"
    os.mkfifo(fifo)
    proc = subprocess.run([sys.executable, "-m", "stylebridge", "generate", "-g", str(fifo),
                           "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
    assert str(fifo) in proc.stderr and "not a regular file" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_deeply_nested_header_is_refused(tmp_path: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    path = _raw(tmp_path / "deep.safetensors", _header()[:-1] + f', "extra": {{"x": {deep}}}}}')
    with pytest.raises(CheckpointError, match=f"nested more than {MAX_HEADER_DEPTH} levels"):
        read_header(path)
    shallow = {"a": 1}
    for _ in range(MAX_HEADER_DEPTH - 3):  # just inside the limit: accepted
        shallow = {"a": shallow}
    ok = _raw(tmp_path / "ok.safetensors", _header(extra=shallow))
    assert read_header(ok).plugin == "e4e"


def test_an_oversized_header_is_refused(tmp_path: Path) -> None:
    path = _raw(tmp_path / "big.safetensors", _header(extra={"pad": "x" * MAX_HEADER_BYTES}))
    with pytest.raises(CheckpointError, match="more than the 4,194,304 accepted") as exc:
        read_header(path)
    assert str(path) in str(exc.value)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_refused_by_every_loader(tmp_path: Path, bad: float) -> None:
    w = torch.ones(3, 4)
    w[1, 2] = bad
    path = save_checkpoint(tmp_path / "m.safetensors", {"ok": torch.ones(2), "layer.weight": w},
                           kind="domain_method", plugin="stylespace", config={})
    with pytest.raises(CheckpointError, match=r"tensor layer\.weight contains NaN or Inf") as exc:
        load_checkpoint(path)
    assert str(path) in str(exc.value)
    ints = save_checkpoint(tmp_path / "i.safetensors", {"steps": torch.tensor([2**40])},
                           kind="domain_method", plugin="stylespace", config={})
    assert load_checkpoint(ints)[1]["steps"].item() == 2**40  # integers are not floats


def test_cli_refuses_a_domain_with_nan_weights_in_one_line(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "d.safetensors", {"offsets.0": torch.tensor([float("nan")])},
                           kind="domain_method", plugin="stylespace", config={})
    proc = subprocess.run([sys.executable, "-m", "stylebridge", "info", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == f"error: {path}: tensor offsets.0 contains NaN or Inf values\n"
