"""Tests for the custom ops (:mod:`stylebridge.core.ops`).

* native fused bias + leaky ReLU and upfirdn2d against independent references,
  with gradcheck / gradgradcheck;
* the formula the CUDA backward of upfirdn2d uses, checked with native ops;
* the lazy CUDA loader: nothing compiled at import, a broken toolchain falls back
  with one notice;
* ``gpu``: CUDA vs native parity (skipped without a CUDA device);
* ``slow``: compiles the extension with nvcc (only with ``STYLEBRIDGE_TEST_BUILD=1``)
  and checks the compiled kernels' element code through its CPU path (for the tiled
  upfirdn2d kernel: the CUDA grid emulated block by block, load phase then compute phase).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from torch import Tensor

from stylebridge.core.ops import _cuda, set_backend
from stylebridge.core.ops.fused_act import fused_leaky_relu_native
from stylebridge.core.ops.upfirdn2d import upfirdn2d_native
from stylebridge.errors import StylebridgeError

REPO = Path(__file__).resolve().parents[1]
SQRT2 = math.sqrt(2.0)
HAS_CUDA = torch.cuda.is_available()
requires_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")

# (up (x, y), down (x, y), pad (x0, x1, y0, y1), kernel (h, w))
UPFIRDN_CASES: list[tuple[tuple[int, int], tuple[int, int], tuple[int, int, int, int],
                          tuple[int, int]]] = [
    ((1, 1), (1, 1), (2, 1, 2, 1), (4, 4)),      # blur
    ((2, 2), (1, 1), (2, 1, 2, 1), (4, 4)),      # upsample x2
    ((1, 1), (2, 2), (1, 1, 1, 1), (4, 4)),      # downsample x2
    ((2, 2), (2, 2), (1, 2, 1, 2), (4, 4)),      # up then down
    ((2, 1), (1, 2), (1, 0, 2, 1), (3, 4)),      # non-square up/down and kernel
    ((3, 2), (2, 1), (-1, 2, 0, -2), (5, 3)),    # negative pads (crops)
    ((2, 2), (2, 2), (-2, -1, 1, -1), (4, 4)),   # negative pads with resampling
    ((1, 3), (3, 1), (0, 0, 3, -1), (2, 5)),     # asymmetric everything
    ((1, 1), (1, 1), (0, 0, 0, 0), (1, 1)),      # 1x1 kernel
    ((1, 1), (3, 2), (-1, -1, 0, 1), (2, 2)),    # down 3 with crop
]
CASE_IDS = [f"up{u}-down{d}-pad{p}-k{k}".replace(" ", "") for u, d, p, k in UPFIRDN_CASES]


# every test starts with the default switches and an untried extension
pytestmark = pytest.mark.usefixtures("clean_ops_state")


def _subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("STYLEBRIDGE_HOME", None)
    env.pop("STYLEBRIDGE_OPS", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def _run_python(code: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


# --------------------------------------------------------------------------- #
# (a) native fused bias + leaky ReLU
# --------------------------------------------------------------------------- #


def fused_leaky_relu_formula(x: Tensor, bias: Tensor | None, slope: float, scale: float,
                             clamp: float | None) -> Tensor:
    """The op written out element-wise, independently of the implementation."""
    z = x if bias is None else x + bias.reshape(1, -1, *([1] * (x.ndim - 2)))
    y = torch.where(z > 0, z, z * slope) * scale
    if clamp is not None:
        y = torch.minimum(torch.maximum(y, torch.full_like(y, -clamp)), torch.full_like(y, clamp))
    return y


@pytest.mark.parametrize("shape", [(3, 4), (2, 4, 5, 6), (2, 4, 3)])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("clamp", [None, 0.7])
@pytest.mark.parametrize("slope,scale", [(0.2, SQRT2), (0.0, 1.0), (0.5, 3.0)])
def test_native_fused_leaky_relu_matches_formula(shape: tuple[int, ...], with_bias: bool,
                                                 clamp: float | None, slope: float,
                                                 scale: float) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen)
    bias = torch.randn(shape[1], generator=gen) if with_bias else None
    expected = fused_leaky_relu_formula(x, bias, slope, scale, clamp)
    # no-grad (in-place) path
    torch.testing.assert_close(fused_leaky_relu_native(x, bias, slope, scale, clamp), expected)
    # autograd path
    xg = x.clone().requires_grad_(True)
    out = fused_leaky_relu_native(xg, bias, slope, scale, clamp)
    torch.testing.assert_close(out, expected)
    assert out.requires_grad


@pytest.mark.parametrize("clamp", [None, 0.9])
def test_native_fused_leaky_relu_gradcheck(clamp: float | None) -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 4, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(3, generator=gen, dtype=torch.float64, requires_grad=True)

    def fn(x: Tensor, bias: Tensor) -> Tensor:
        return fused_leaky_relu_native(x, bias, 0.2, SQRT2, clamp)

    assert torch.autograd.gradcheck(fn, (x, bias))
    assert torch.autograd.gradgradcheck(fn, (x, bias))


# --------------------------------------------------------------------------- #
# (b) native upfirdn2d
# --------------------------------------------------------------------------- #


def upfirdn2d_reference(x: Tensor, kernel: Tensor, up: tuple[int, int], down: tuple[int, int],
                        pad: Sequence[int]) -> Tensor:
    """Slow, literal upfirdn2d: explicit zero insertion, padding/cropping and a direct sum."""
    up_x, up_y = up
    down_x, down_y = down
    px0, px1, py0, py1 = pad
    n, c, h, w = x.shape
    kh, kw = kernel.shape
    upsampled = x.new_zeros(n, c, h * up_y, w * up_x)
    upsampled[:, :, ::up_y, ::up_x] = x
    height, width = h * up_y + py0 + py1, w * up_x + px0 + px1
    padded = x.new_zeros(n, c, height, width)
    for i in range(height):
        src_i = i - py0
        if not 0 <= src_i < h * up_y:
            continue
        for j in range(width):
            src_j = j - px0
            if 0 <= src_j < w * up_x:
                padded[:, :, i, j] = upsampled[:, :, src_i, src_j]
    out_h, out_w = (height - kh) // down_y + 1, (width - kw) // down_x + 1
    out = x.new_zeros(n, c, out_h, out_w)
    for oy in range(out_h):
        for ox in range(out_w):
            acc = x.new_zeros(n, c)
            for ty in range(kh):
                for tx in range(kw):
                    # true convolution: tap t meets kernel element K-1-t
                    acc += padded[:, :, oy * down_y + ty, ox * down_x + tx] * kernel[kh - 1 - ty,
                                                                                    kw - 1 - tx]
            out[:, :, oy, ox] = acc
    return out


def _case_tensors(kernel_hw: tuple[int, int], dtype: torch.dtype = torch.float64,
                  shape: tuple[int, int, int, int] = (2, 3, 5, 6),
                  seed: int = 0) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=dtype)
    kernel = torch.randn(kernel_hw, generator=gen, dtype=dtype)  # not symmetric: catches flips
    return x, kernel


@pytest.mark.parametrize("up,down,pad,kernel_hw", UPFIRDN_CASES, ids=CASE_IDS)
def test_native_upfirdn2d_matches_reference(up: tuple[int, int], down: tuple[int, int],
                                            pad: tuple[int, int, int, int],
                                            kernel_hw: tuple[int, int]) -> None:
    x, kernel = _case_tensors(kernel_hw)
    expected = upfirdn2d_reference(x, kernel, up, down, pad)
    actual = upfirdn2d_native(x, kernel, up, down, pad)
    assert actual.shape == expected.shape
    for axis, (size, u, d, p0, p1, k) in enumerate(
            [(x.shape[2], up[1], down[1], pad[2], pad[3], kernel_hw[0]),
             (x.shape[3], up[0], down[0], pad[0], pad[1], kernel_hw[1])]):
        assert actual.shape[2 + axis] == _cuda.upfirdn2d_output_size(size, k, u, d, p0, p1)
    torch.testing.assert_close(actual, expected)


def test_native_upfirdn2d_scalar_and_two_pad_forms() -> None:
    x, kernel = _case_tensors((4, 4))
    torch.testing.assert_close(upfirdn2d_native(x, kernel, up=2, down=1, pad=(2, 1)),
                               upfirdn2d_reference(x, kernel, (2, 2), (1, 1), (2, 1, 2, 1)))


@pytest.mark.parametrize("case", [UPFIRDN_CASES[i] for i in (1, 2, 5, 7)],
                         ids=[CASE_IDS[i] for i in (1, 2, 5, 7)])
def test_native_upfirdn2d_gradcheck(case: tuple) -> None:
    up, down, pad, kernel_hw = case
    x, kernel = _case_tensors(kernel_hw, shape=(1, 2, 4, 5))
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: upfirdn2d_native(t, kernel, up, down, pad), (x,))


# --------------------------------------------------------------------------- #
# (c) the backward formula used by the CUDA autograd function
# --------------------------------------------------------------------------- #


def _valid(in_hw: tuple[int, int], case: tuple) -> bool:
    (up_x, up_y), _, (px0, px1, py0, py1), (kh, kw) = case
    return in_hw[0] * up_y + py0 + py1 >= kh and in_hw[1] * up_x + px0 + px1 >= kw


BACKWARD_CASES = [(in_hw, *case) for in_hw in [(5, 6), (8, 8), (7, 4), (3, 9)]
                  for case in UPFIRDN_CASES if _valid(in_hw, case)]


@pytest.mark.parametrize("in_hw,up,down,pad,kernel_hw", BACKWARD_CASES)
def test_upfirdn2d_backward_is_upfirdn2d_with_derived_pad(
        in_hw: tuple[int, int], up: tuple[int, int], down: tuple[int, int],
        pad: tuple[int, int, int, int], kernel_hw: tuple[int, int]) -> None:
    x, kernel = _case_tensors(kernel_hw, shape=(2, 2, *in_hw), seed=3)
    x.requires_grad_(True)
    y = upfirdn2d_native(x, kernel, up, down, pad)
    grad_y = torch.randn(y.shape, generator=torch.Generator().manual_seed(4), dtype=y.dtype)
    (expected,) = torch.autograd.grad(y, x, grad_y)
    grad_pad = _cuda.upfirdn2d_backward_pad(in_hw, kernel_hw, up, down, pad)
    actual = upfirdn2d_native(grad_y, torch.flip(kernel, [0, 1]), up=down, down=up, pad=grad_pad)
    assert actual.shape == x.shape
    torch.testing.assert_close(actual, expected)


# --------------------------------------------------------------------------- #
# (d) importing compiles nothing; (e) a broken toolchain falls back
# --------------------------------------------------------------------------- #


def test_import_compiles_nothing() -> None:
    code = """
        import sys
        import torch.utils.cpp_extension as cpp_extension

        def refuse(*args, **kwargs):
            raise AssertionError("torch.utils.cpp_extension was asked to compile")

        cpp_extension.load = refuse
        cpp_extension.load_inline = refuse

        import torch
        import stylebridge
        import stylebridge.core.ops
        from stylebridge.core.ops import fused_leaky_relu, upfirdn2d
        import stylebridge.core.ops._cuda  # importing the loader builds nothing either

        x = torch.randn(1, 2, 4, 4)
        y = fused_leaky_relu(x, torch.zeros(2))
        z = upfirdn2d(y, torch.ones(2, 2) / 4, up=2, down=1, pad=(1, 0))
        assert z.shape == (1, 2, 8, 8), z.shape
        assert stylebridge.core.ops._cuda.build_error() is None  # never tried
        print("OK")
    """
    result = _run_python(code, _subprocess_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("OK")


def _fake_toolchain(root: Path) -> Path:
    """A CUDA_HOME whose nvcc, and a PATH whose compilers and ninja, all fail."""
    bindir = root / "bin"
    bindir.mkdir(parents=True)
    for name in ("nvcc", "c++", "g++", "gcc", "cc", "ninja"):
        script = bindir / name
        script.write_text("#!/bin/sh\necho \"fake $0: refusing\" >&2\nexit 1\n")
        script.chmod(0o755)
    (root / "include").mkdir()
    (root / "include" / "cuda_runtime.h").write_text("#error fake toolkit\n")
    return bindir


def test_broken_toolchain_falls_back_with_one_notice(tmp_path: Path) -> None:
    bindir = _fake_toolchain(tmp_path / "cuda")
    ext_dir = tmp_path / "torch_extensions"
    env = _subprocess_env(
        CXX="/bin/false", CC="/bin/false", CUDA_HOME=str(tmp_path / "cuda"),
        PATH=os.pathsep.join([str(bindir), os.environ.get("PATH", "")]),
        TORCH_EXTENSIONS_DIR=str(ext_dir), TORCH_CUDA_ARCH_LIST="9.0",
    )
    code = """
        import json, warnings
        import torch
        torch.cuda.is_available = lambda: True  # pretend, so the build is attempted

        from stylebridge.core.ops import _cuda
        from stylebridge.core.ops.fused_act import fused_leaky_relu_native
        from stylebridge.errors import StylebridgeError

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            first = _cuda.available(required=False)
            second = _cuda.available(required=False)
        try:
            _cuda.available(required=True)
            raised = None
        except StylebridgeError as exc:
            raised = str(exc)
        y = fused_leaky_relu_native(torch.tensor([[-1.0, 2.0]]), None, 0.5, 2.0, None)
        print(json.dumps({
            "first": first, "second": second, "error": _cuda.build_error(), "raised": raised,
            "warnings": [str(w.message) for w in caught
                         if issubclass(w.category, _cuda.CudaOpsUnavailableWarning)],
            "native": y.tolist(),
        }))
    """
    result = _run_python(code, env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["first"] is False and report["second"] is False
    error = report["error"]
    assert isinstance(error, str) and error and "\n" not in error
    assert report["raised"] is not None and error in report["raised"]
    # from Python the notice is one warning, not also a line on stderr (it was said twice)
    assert report["warnings"] == [f"{_cuda.NOTICE_PREFIX} ({error}); using the native PyTorch ops"]
    assert _cuda.NOTICE_PREFIX not in result.stderr, result.stderr
    assert report["native"] == [[-1.0, 4.0]]
    assert not list(ext_dir.rglob("*.so"))
    assert "CUDA headers" not in error and "nvcc not found" not in error  # the build was tried


def test_available_without_cuda_notices_once(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def refuse(**kwargs: object) -> None:
        raise AssertionError("must not build without CUDA")

    monkeypatch.setattr(_cuda, "build", refuse)
    with pytest.warns(_cuda.CudaOpsUnavailableWarning, match="is_available"):
        assert _cuda.available() is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _cuda.available() is False  # no second warning
    assert _cuda.NOTICE_PREFIX not in capsys.readouterr().err  # the warning alone
    assert _cuda.build_error() == "torch.cuda.is_available() is False"
    with pytest.raises(StylebridgeError, match="is_available"):
        _cuda.available(required=True)
    # the command line's handler gets the line once, instead of the warning
    _cuda.reset()
    lines: list[str] = []
    previous = _cuda.set_notice_handler(lines.append)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no warning when a handler takes the notice
            assert _cuda.available() is False and _cuda.available() is False
    finally:
        _cuda.set_notice_handler(previous)
    assert lines == [f"{_cuda.NOTICE_PREFIX} (torch.cuda.is_available() is False); using the "
                     "native PyTorch ops"]


def test_one_line_reason_and_build_directory(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    exc = RuntimeError("Error building extension 'x': [1/3] nvcc ...\nfoo.cu(3): error: bad\nmore")
    reason = _cuda._one_line(exc)
    assert "\n" not in reason and reason.startswith("RuntimeError: Error building")
    assert "error: bad" in reason
    monkeypatch.delenv("STYLEBRIDGE_HOME", raising=False)
    assert _cuda.build_directory() is None
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path))
    directory = _cuda.build_directory()
    assert directory is not None and Path(directory).is_relative_to(tmp_path / "torch_extensions")


# --------------------------------------------------------------------------- #
# (f) CUDA vs native (needs a GPU)
# --------------------------------------------------------------------------- #

LOW_PRECISION = {torch.float16: 1e-2, torch.bfloat16: 6e-2}


@pytest.mark.gpu
@requires_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("clamp", [None, 0.5])
@pytest.mark.parametrize("shape", [(4, 8, 5, 7), (6, 16), "channels_last"])
def test_cuda_fused_leaky_relu_matches_native(dtype: torch.dtype, clamp: float | None,
                                              shape: tuple[int, ...] | str) -> None:
    assert _cuda.available(required=True)
    channels_last = shape == "channels_last"
    shape = (4, 8, 5, 7) if channels_last else shape
    gen = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(shape, device="cuda", generator=gen).to(dtype)
    if channels_last:  # kept: the output (and x's gradient) stay channels-last
        x = x.contiguous(memory_format=torch.channels_last)
    bias = torch.randn(shape[1], device="cuda", generator=gen).to(dtype)
    x_ref = x.detach().float().clone().requires_grad_(True)
    b_ref = bias.detach().float().clone().requires_grad_(True)
    x_cu = x.detach().clone().requires_grad_(True)
    b_cu = bias.detach().clone().requires_grad_(True)
    y_ref = fused_leaky_relu_native(x_ref, b_ref, 0.2, SQRT2, clamp)
    y_cu = _cuda.fused_leaky_relu(x_cu, b_cu, 0.2, SQRT2, clamp)
    assert y_cu.dtype == dtype and y_cu.shape == y_ref.shape
    if channels_last:
        assert y_cu.is_contiguous(memory_format=torch.channels_last)
    tol = LOW_PRECISION.get(dtype, 1e-5)
    torch.testing.assert_close(y_cu.float(), y_ref.detach(), atol=tol, rtol=tol)
    grad = torch.randn(shape, device="cuda", generator=gen)
    y_ref.backward(grad)
    y_cu.backward(grad.to(dtype))
    gx_ref = x_ref.grad
    if clamp is not None and dtype in LOW_PRECISION:
        # rounding may decide "clamped or not" differently right at the bound
        keep = (y_ref.detach().abs() - clamp).abs() > 1e-2
        gx_ref = torch.where(keep, gx_ref, x_cu.grad.float())
    torch.testing.assert_close(x_cu.grad.float(), gx_ref, atol=tol, rtol=tol)
    torch.testing.assert_close(b_cu.grad.float(), b_ref.grad, atol=tol * 20, rtol=tol * 2)


@pytest.mark.gpu
@requires_cuda
@pytest.mark.parametrize("clamp", [None, 0.9])
def test_cuda_fused_leaky_relu_gradcheck_float64(clamp: float | None) -> None:
    assert _cuda.available(required=True)
    gen = torch.Generator(device="cuda").manual_seed(1)
    x = torch.randn(2, 3, 4, 4, device="cuda", generator=gen, dtype=torch.float64,
                    requires_grad=True)
    bias = torch.randn(3, device="cuda", generator=gen, dtype=torch.float64, requires_grad=True)

    def fn(x: Tensor, bias: Tensor) -> Tensor:
        return _cuda.fused_leaky_relu(x, bias, 0.2, SQRT2, clamp)

    assert torch.autograd.gradcheck(fn, (x, bias))
    assert torch.autograd.gradgradcheck(fn, (x, bias))


@pytest.mark.gpu
@requires_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("up,down,pad,kernel_hw", UPFIRDN_CASES, ids=CASE_IDS)
def test_cuda_upfirdn2d_matches_native(dtype: torch.dtype, up: tuple[int, int],
                                       down: tuple[int, int], pad: tuple[int, int, int, int],
                                       kernel_hw: tuple[int, int]) -> None:
    assert _cuda.available(required=True)
    x64, kernel64 = _case_tensors(kernel_hw, shape=(2, 3, 9, 11))
    kernel = kernel64.float().cuda() / kernel64.abs().sum().item()
    x_ref = x64.float().cuda().requires_grad_(True)
    x_cu = x64.cuda().to(dtype).requires_grad_(True)
    y_ref = upfirdn2d_native(x_ref, kernel, up, down, pad)
    y_cu = _cuda.upfirdn2d(x_cu, kernel, up, down, pad)
    assert y_cu.dtype == dtype and y_cu.shape == y_ref.shape
    tol = LOW_PRECISION.get(dtype, 1e-5)
    torch.testing.assert_close(y_cu.float(), y_ref.detach(), atol=tol, rtol=tol)
    grad = torch.randn_like(y_ref)
    y_ref.backward(grad)
    y_cu.backward(grad.to(dtype))
    torch.testing.assert_close(x_cu.grad.float(), x_ref.grad, atol=tol, rtol=tol)


@pytest.mark.gpu
@requires_cuda
@pytest.mark.parametrize("case", [UPFIRDN_CASES[i] for i in (1, 2, 5, 7)],
                         ids=[CASE_IDS[i] for i in (1, 2, 5, 7)])
def test_cuda_upfirdn2d_gradcheck_float64(case: tuple) -> None:
    assert _cuda.available(required=True)
    up, down, pad, kernel_hw = case
    x, kernel = _case_tensors(kernel_hw, shape=(1, 2, 4, 5))
    x, kernel = x.cuda().requires_grad_(True), kernel.cuda()

    def fn(t: Tensor) -> Tensor:
        return _cuda.upfirdn2d(t, kernel, up, down, pad)

    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


@pytest.mark.gpu
@requires_cuda
def test_cuda_backend_dispatch_matches_native() -> None:
    from stylebridge.core.ops import fused_leaky_relu, upfirdn2d

    set_backend("cuda")
    x = torch.randn(2, 4, 8, 8, device="cuda")
    bias = torch.randn(4, device="cuda")
    kernel = torch.tensor([1.0, 3.0, 3.0, 1.0], device="cuda")
    kernel = torch.outer(kernel, kernel) / 64
    torch.testing.assert_close(fused_leaky_relu(x, bias), fused_leaky_relu_native(x, bias))
    torch.testing.assert_close(upfirdn2d(x, kernel, up=2, pad=(2, 1)),
                               upfirdn2d_native(x, kernel, up=2, pad=(2, 1)))
    assert _cuda.build_error() is None


# --------------------------------------------------------------------------- #
# (g) compile the extension for real (minutes; no GPU needed)
# --------------------------------------------------------------------------- #

BUILD_CHECK = REPO / "tests" / "ops_build_check.py"


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("STYLEBRIDGE_TEST_BUILD") != "1",
                    reason="compiles the CUDA extension (minutes); set STYLEBRIDGE_TEST_BUILD=1")
def test_build_cuda_extension_with_nvcc(tmp_path: Path) -> None:
    extra = {"STYLEBRIDGE_HOME": str(tmp_path), "TORCH_CUDA_ARCH_LIST":
             os.environ.get("TORCH_CUDA_ARCH_LIST") or "9.0"}
    if not os.environ.get("CUDA_HOME") and Path("/usr/local/cuda/bin/nvcc").is_file():
        extra["CUDA_HOME"] = "/usr/local/cuda"
    env = _subprocess_env(**extra)
    result = subprocess.run(
        [sys.executable, str(BUILD_CHECK), json.dumps(UPFIRDN_CASES)],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-8000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(report["module"]).is_relative_to(tmp_path)
    print(f"\nstylebridge_ops built in {report['build_seconds']:.1f} s "
          f"(TORCH_CUDA_ARCH_LIST={extra['TORCH_CUDA_ARCH_LIST']})")


@pytest.mark.parametrize(("up", "down", "kernel_used"),
                         [(2, 1, True), (1, 2, True), (1, 1, False)])
def test_auto_dispatch_uses_the_kernel_for_resampling_only(monkeypatch: pytest.MonkeyPatch,
                                                           up: int, down: int,
                                                           kernel_used: bool) -> None:
    """STYLEBRIDGE_OPS=auto: the CUDA kernel for up- and down-sampling (measured faster on
    an H200, forward + backward), PyTorch's depthwise convolution for plain filtering."""
    import importlib

    module = importlib.import_module("stylebridge.core.ops.upfirdn2d")
    calls: list[tuple] = []
    monkeypatch.setattr(module, "use_cuda", lambda is_cuda: True)
    monkeypatch.setattr(_cuda, "upfirdn2d", lambda *a: calls.append(a) or a[0])
    set_backend("auto")
    try:
        x = torch.randn(1, 2, 8, 8)
        kernel = torch.ones(4, 4) / 16
        module.upfirdn2d(x, kernel, up=up, down=down, pad=(1, 1))
    finally:
        set_backend(None)
    assert bool(calls) is kernel_used


def test_autocast_like_follows_only_lower_precision_activations_under_autocast() -> None:
    from stylebridge.core.ops import autocast_like

    bias, x16 = torch.zeros(3), torch.zeros(2, 3, dtype=torch.bfloat16)
    assert autocast_like(bias, x16).dtype == torch.float32  # autocast off: unchanged
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert autocast_like(bias, x16).dtype == torch.bfloat16
        assert autocast_like(bias, torch.zeros(2, 3)).dtype == torch.float32
        assert autocast_like(bias.double(), x16).dtype == torch.float64
    meta = torch.empty(2, 3, device="meta", dtype=torch.bfloat16)  # no autocast for meta
    assert autocast_like(torch.empty(3, device="meta"), meta).dtype == torch.float32
