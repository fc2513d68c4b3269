"""``--precision`` / :meth:`Generator.set_precision`: the synthesis network under autocast.

fp32 stays the reference and the default.  bf16 must be exactly the network run under
``torch.autocast`` (however it is entered), hand float32 back through every entry point, and
stay close to fp32 (the bound the docs state); fp16 is refused on the CPU in one line before
anything is loaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_generator
from PIL import Image
from test_adapt_random import _adapt, _run, files, registered  # noqa: F401  (fixtures)

from stylebridge.core.precision import PRECISIONS, autocast_dtype, check_precision
from stylebridge.errors import StylebridgeError


def _inputs(gen):
    torch.manual_seed(3)
    w = gen.mapping(torch.randn(2, gen.style_dim)).detach()
    noise = [getattr(gen.noises, f"noise_{i}") for i in range(gen.num_layers)]
    return gen.styles(gen.make_wplus([w], input_is_latent=True)), noise


@torch.no_grad()
def test_bf16_is_the_network_under_autocast_with_float32_out():
    gen = tiny_generator(seed=1)
    styles, noise = _inputs(gen)
    ref = gen.synthesis(styles, noise=noise)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        by_hand = gen.synthesis(styles, noise=noise)
    gen.set_precision("bf16")
    got = gen.synthesis(styles, noise=noise)
    assert got.dtype == torch.float32
    assert torch.equal(got, by_hand.float())
    diff = (got - ref).abs()
    assert 0 < diff.mean() < 0.02 and diff.max() < 0.15  # docs: up to about 0.1 on [-1, 1]
    gen.set_precision("fp32")
    assert torch.equal(gen.synthesis(styles, noise=noise), ref)  # fp32 untouched


@torch.no_grad()
def test_every_entry_point_runs_in_the_precision():
    """features_upto + synthesize_from (FSE's shift, FeatureShift) give the whole bf16 image."""
    gen = tiny_generator(seed=2)
    styles, noise = _inputs(gen)
    gen.set_precision("bf16")
    whole = gen.synthesis(styles, noise=noise)
    for k in (1, 3):
        feature, skip = gen.features_upto(styles, k, noise=noise)
        assert feature.dtype == torch.float32 and (skip is None or skip.dtype == torch.float32)
        assert torch.equal(gen.synthesize_from(k, feature, skip, styles, noise=noise), whole)
    gen.set_precision("fp32")
    assert not torch.equal(gen.synthesis(styles, noise=noise), whole)


def test_gradients_flow_in_bf16():
    gen = tiny_generator(seed=3).requires_grad_(False)
    styles, noise = _inputs(gen)
    gen.set_precision("bf16")
    leaves = [s.detach().requires_grad_(True) for s in styles]
    gen.synthesis(leaves, noise=noise).square().mean().backward()
    assert all(s.grad is not None and s.grad.dtype == torch.float32 for s in leaves)
    assert all(torch.isfinite(s.grad).all() for s in leaves)


def test_names_and_devices_are_checked_in_one_line():
    assert PRECISIONS == ("fp32", "bf16", "fp16")
    assert autocast_dtype("fp32") is None and autocast_dtype("fp16") == torch.float16
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, fp16"):
        tiny_generator().set_precision("fp8")
    with pytest.raises(StylebridgeError):  # one line from Python too (was a bare ValueError)
        tiny_generator().set_precision("fp8")
    with pytest.raises(StylebridgeError) as info:
        check_precision("fp16", "cpu")
    assert str(info.value) == ("precision fp16 needs a CUDA device, not cpu; use bf16 on the "
                               "CPU")
    with pytest.raises(StylebridgeError, match=r"^precision: precision must be one of"):
        check_precision("half", "cpu")
    check_precision("bf16", "cpu")
    check_precision("fp16", "cuda")  # the name and device type only: no GPU needed


def _grid(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def test_adapt_precision_from_the_command_line(files: dict[str, Path], tmp_path: Path,  # noqa: F811
                                               capsys: pytest.CaptureFixture[str],
                                               registered: None) -> None:  # noqa: F811
    code, _, err = _adapt(files, capsys, tmp_path / "fp32")
    assert code == 0, err
    code, _, err = _adapt(files, capsys, tmp_path / "bf16", "--precision", "bf16")
    assert code == 0, err
    for precision in ("fp32", "bf16"):  # adapt.json says which the images were made in
        assert json.loads((tmp_path / precision / "adapt.json").read_text())["precision"] == \
            precision
    a, b = _grid(tmp_path / "fp32" / "grid.png"), _grid(tmp_path / "bf16" / "grid.png")
    assert a.shape == b.shape and (a != b).any()
    assert np.abs(a - b).mean() < 4  # a few 8-bit levels

    code, text, err = _adapt(files, capsys, tmp_path / "fp16", "--precision", "fp16")
    assert code != 0
    assert "precision fp16 needs a CUDA device, not cpu" in text + err
    assert "Traceback" not in text + err and not (tmp_path / "fp16").exists()


def test_generate_precision(files: dict[str, Path], tmp_path: Path,  # noqa: F811
                            capsys: pytest.CaptureFixture[str]) -> None:
    outs = {}
    for precision in ("fp32", "bf16"):
        code, _, err = _run(capsys, "generate", "-g", str(files["gen"]), "--seeds", "0-1",
                            "--device", "cpu", "--precision", precision,
                            "--out", str(tmp_path / precision))
        assert code == 0, err
        outs[precision] = _grid(tmp_path / precision / "grid.png")
    assert (outs["fp32"] != outs["bf16"]).any() and np.abs(outs["fp32"] - outs["bf16"]).mean() < 4


def test_bf16_on_a_cpu_without_amx_is_said_to_be_slow(
        files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    """bf16 ran 2.3x fp32 with AMX, 0.7x with AVX512-BF16 alone and less without it (oneDNN
    held to each ISA), silently; a run on a CPU without AMX-BF16 says so where it starts,
    from torch's CPU capabilities; doctor shows it."""
    from types import MappingProxyType

    from stylebridge.core import precision

    def caps(**kw: bool):
        return lambda: MappingProxyType({"avx2": True, "avx512_bf16": True,
                                         "amx_bf16": False, **kw})

    monkeypatch.setattr(torch.cpu, "get_capabilities", caps())
    assert precision.cpu_has_amx_bf16() is False
    note = precision.slow_precision_note("bf16", "cpu")
    assert note is not None and note.startswith("--precision bf16: this CPU has no AMX")
    assert precision.slow_precision_note("fp32", "cpu") is None
    assert precision.slow_precision_note("bf16", "cuda") is None
    code, _, err = _run(capsys, "generate", "-g", str(files["gen"]), "--seeds", "0",
                        "--device", "cpu", "--precision", "bf16", "--out", str(tmp_path / "b"))
    assert code == 0 and "this CPU has no AMX" in " ".join(err.split())
    code, _, err = _run(capsys, "generate", "-g", str(files["gen"]), "--seeds", "0",
                        "--device", "cpu", "--out", str(tmp_path / "f"))
    assert code == 0 and "AMX" not in err
    from stylebridge.pipelines.doctor import _system

    cpu = next(row for row in _system() if row.item == "cpu")
    assert "no AMX-BF16: --precision bf16 is slower than fp32 here" in cpu.value
    monkeypatch.setattr(torch.cpu, "get_capabilities", caps(amx_bf16=True))
    assert precision.cpu_has_amx_bf16() is True
    assert precision.slow_precision_note("bf16", "cpu") is None
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {})   # a torch that cannot tell
    assert precision.cpu_has_amx_bf16() is None
    assert precision.slow_precision_note("bf16", "cpu") is None
