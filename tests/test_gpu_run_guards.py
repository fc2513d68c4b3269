"""The GPU run's guards against a new kernel that fails its first launch.

``benchmarks/gpu_smoke.py`` launches each new kernel alone before the run relies on it;
``gpu_speed.sh`` then leaves a failing kernel out of ``bench_gpu_speed.py`` (``--exclude``),
of the FeatureShift step (``--fast-paths none,polyphase+...``) and of the ``bench_ops.py``
rows, and the summary says so.  No GPU here: the smoke check is fed a wrong "kernel" on the
CPU (an activation off by 0.1 %) and must fail it; the variant lists are built for a CUDA
device without running them.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import load_script

from stylebridge.core.ops import fused_epilogue, upfirdn2d_tiled
from stylebridge.core.stylegan2 import Generator

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))  # the scripts import their shared _timing helpers
smoke = load_script(BENCH / "gpu_smoke.py")
speed = load_script(BENCH / "bench_gpu_speed.py")
featureshift = load_script(BENCH / "bench_featureshift.py")
summary = load_script(BENCH / "summarize_gpu_speed.py")

pytestmark = pytest.mark.usefixtures("clean_ops_state")


def test_smoke_passes_the_same_network():
    result = smoke.check("epilogue", torch.device("cpu"))
    assert result["ok"], result["problems"]
    assert result["fp32_image_max_abs_diff"] == 0.0 and result["fp32_grad_max_rel_diff"] == 0.0
    assert result["fp32_channels_last_max_abs_diff"] < 1e-5  # CPU default is NHWC already
    assert result["bf16_finite"] and 0 < result["bf16_image_max_abs_diff"] < 0.5


def test_smoke_fails_a_kernel_that_is_off_by_a_little(monkeypatch):
    """A "kernel" whose activation is 0.1 % too large (with and without gradients, in place
    or not): image, gradient and channels-last image all flagged."""
    real_chosen = smoke.chosen
    leaky, leaky_ = F.leaky_relu, F.leaky_relu_

    @contextlib.contextmanager
    def wrong_kernel(path, backend=None) -> Iterator[None]:
        with real_chosen(path, backend):
            if path is None:
                yield
                return
            monkeypatch.setattr(F, "leaky_relu", lambda x, *a, **k: leaky(x, *a, **k) * 1.001)
            monkeypatch.setattr(F, "leaky_relu_", lambda x, *a, **k: leaky_(x, *a, **k).mul_(1.001))
            try:
                yield
            finally:
                monkeypatch.setattr(F, "leaky_relu", leaky)
                monkeypatch.setattr(F, "leaky_relu_", leaky_)

    monkeypatch.setattr(smoke, "chosen", wrong_kernel)
    result = smoke.check("tiled", torch.device("cpu"))
    assert not result["ok"]
    assert result["fp32_image_max_abs_diff"] > smoke.BOUND
    assert any(p.startswith("fp32 image differs") for p in result["problems"])
    assert any(p.startswith("fp32 gradient differs") for p in result["problems"])
    assert any(p.startswith("fp32 channels-last image differs") for p in result["problems"])


def test_smoke_command_line_reports_a_forced_failure(tmp_path):
    out = tmp_path / "s.json"
    proc = subprocess.run([sys.executable, str(BENCH / "gpu_smoke.py"), "--path", "tiled",
                           "--device", "cpu", "--out", str(out)],
                          env={**os.environ, "STYLEBRIDGE_SMOKE_FAIL": "tiled"},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    data = json.loads(out.read_text())
    assert data["ok"] is False and "STYLEBRIDGE_SMOKE_FAIL" in data["error"]


def test_excluded_kernel_variants_are_left_out_with_a_reason():
    torch.manual_seed(0)
    gen = Generator(size=8, style_dim=8, n_mlp=1, channels={4: 8, 8: 8}).eval()
    w = gen.mapping(torch.randn(1, 8)).detach()
    errors: dict[str, str] = {}
    kept = speed.our_variants(gen, w, torch.device("cuda"), [], errors, exclude=("tiled",))
    assert {"ours_tiled_fp32", "ours_tiled_bf16"} & set(kept) == set()
    assert "ours_epilogue_fp32" in kept and "ours_nhwc_polyphase_epilogue_bf16" in kept
    assert errors["ours_tiled_bf16"].startswith("left out: the tiled kernel failed")
    errors = {}
    kept = speed.our_variants(gen, w, torch.device("cuda"), [], errors, exclude=("epilogue",))
    assert not any("epilogue" in name for name in kept)
    assert {"ours_tiled_fp32", "ours_polyphase_bf16", "ours_nhwc_bf16"} <= set(kept)
    assert len(errors) == 4  # epilogue fp32/bf16, polyphase+epilogue, nhwc+polyphase+epilogue


def test_featureshift_fast_paths_join_with_plus():
    assert featureshift._fast_path_list("none,polyphase+tiled") == ["none", "polyphase+tiled"]
    with pytest.raises(SystemExit, match="joined by"):
        featureshift._fast_path_list("none,poly+tiled")
    torch.manual_seed(0)
    gen = Generator(size=8, style_dim=8, n_mlp=1, channels={4: 8, 8: 8})
    featureshift._fast_paths(gen, "polyphase+epilogue")
    ups = [m for m in gen.modules() if getattr(m, "upsample", False) is True]
    assert ups and all(m.upconv == "polyphase" for m in ups)
    assert fused_epilogue() == "on" and upfirdn2d_tiled() == "auto"
    featureshift._fast_paths(gen, "none")
    assert all(m.upconv is None for m in ups) and fused_epilogue() == "auto"


def test_summary_names_an_excluded_kernel():
    text = summary.summarize({"machine": {}, "excluded_kernels": ["tiled"], "throughput": []})
    assert "**Left out:** tiled: the first launch failed" in text
    assert "TILED_UPFIRDN2D_MEASURED_FASTER = True (core/ops/backend.py): no (not measured" in text
