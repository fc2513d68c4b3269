"""The compiled synthesis path (:mod:`stylebridge.core.compiled`) and the custom ops'
``torch.library`` registrations (fake implementations and autograd, checked without building
the extension).

* mode choice (``auto``/``on``/``off``) and one-line errors for bad modes;
* the fall-back: a compile or capture failure prints one line and the call (and every later
  one) returns the eager result; bad input raises its own error without a notice;
* ``--compile`` on the commands, forced to fail: one line on stderr, images as eager;
* ``slow``: the real ``torch.compile`` on the tiny 32 px generator agrees with eager within
  the fp32 tolerance of ``tests/test_ops.py``;
* the custom ops' fake implementations give the native op's output shapes, and their
  registered autograd traces a backward made of the same ops (no CUDA build needed).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import tiny_generator
from torch.testing import assert_close

from stylebridge.core import compiled
from stylebridge.core.compiled import (
    NOTICE_PREFIX,
    CompiledSynthesis,
    compile_synthesis,
    is_compiled,
    wants_compile,
)
from stylebridge.errors import StylebridgeError

FP32_TOL = {"atol": 1e-4, "rtol": 1e-4}  # the fp32 agreement bound of issue 20 / test_ops


def _styles(gen, batch: int = 2, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return gen.styles(torch.randn(batch, gen.n_latent, gen.style_dim, generator=g))


def _failing_compiler(message: str):
    def compiler(fn, **kwargs):
        def broken(*args, **kw):
            raise RuntimeError(message + "\nsecond line of the compiler's report")
        return broken
    return compiler


def test_modes(monkeypatch: pytest.MonkeyPatch) -> None:
    assert wants_compile("on", "cpu") and not wants_compile("off", "cpu")
    monkeypatch.setitem(compiled.MEASURED_FASTER, "cpu", True)
    assert wants_compile("auto", "cpu") and not wants_compile("auto", "meta")
    monkeypatch.setitem(compiled.MEASURED_FASTER, "cpu", False)
    assert not wants_compile("auto", torch.device("cpu"))
    with pytest.raises(StylebridgeError, match="compile: 'fast' is not one of auto, on, off"):
        wants_compile("fast", "cpu")
    assert compiled.torch_compile_mode("cuda:0") == "reduce-overhead"
    assert compiled.torch_compile_mode("cpu") == "default"


def test_capture_failure_falls_back_to_eager_with_one_line() -> None:
    gen = tiny_generator(seed=2)
    styles = _styles(gen)
    with torch.no_grad():
        expected = gen.synthesis(styles, randomize_noise=False)
    lines: list[str] = []
    wrapper = CompiledSynthesis(gen, notice=lines.append,
                                compiler=_failing_compiler("graph capture failed"))
    assert wrapper.compiled
    with torch.no_grad():
        first = wrapper(styles, randomize_noise=False)
        second = wrapper(styles, randomize_noise=False)
    assert torch.equal(first, expected) and torch.equal(second, expected)
    assert lines == [f"{NOTICE_PREFIX} (RuntimeError: graph capture failed); running eagerly"]
    assert not wrapper.compiled and wrapper.fallback_reason == "RuntimeError: graph capture failed"


def test_compiler_refusing_at_wrap_time_falls_back_once() -> None:
    gen = tiny_generator(seed=2)

    def refuse(fn, **kwargs):
        raise RuntimeError("Windows not yet supported for torch.compile")

    lines: list[str] = []
    wrapper = CompiledSynthesis(gen, notice=lines.append, compiler=refuse)
    assert not wrapper.compiled and len(lines) == 1 and "Windows not yet" in lines[0]
    styles = _styles(gen, batch=1)
    with torch.no_grad():
        assert torch.equal(wrapper(styles, randomize_noise=False),
                           type(gen).synthesis(gen, styles, randomize_noise=False))
    assert len(lines) == 1


def test_bad_input_raises_its_own_error_without_a_notice() -> None:
    gen = tiny_generator(seed=2)
    lines: list[str] = []
    wrapper = CompiledSynthesis(gen, notice=lines.append, compiler=_failing_compiler("x"))
    with pytest.raises(ValueError, match="expected 11 style vectors"):
        wrapper(_styles(gen)[:-1])
    assert lines == [] and wrapper.compiled


def test_compile_synthesis_patches_the_instance_only(monkeypatch: pytest.MonkeyPatch) -> None:
    gen, other = tiny_generator(seed=3), tiny_generator(seed=3)
    monkeypatch.setattr(torch, "compile", _failing_compiler("no backend"))
    lines: list[str] = []
    assert compile_synthesis(gen, "on", notice=lines.append)
    assert is_compiled(gen) and not is_compiled(other)
    z = torch.randn(1, gen.style_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # Generator.forward goes through the instance's synthesis
        image = gen(z, randomize_noise=False)
        expected = other(z, randomize_noise=False)
    assert torch.equal(image, expected) and not is_compiled(gen)
    assert len(lines) == 2 and lines[0] == compiled.compiling_note("cpu")  # + the fall-back
    assert not compile_synthesis(gen, "off") and "synthesis" not in gen.__dict__


def test_generate_compile_failure_prints_one_line(capsys, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from stylebridge.cli.main import main
    from stylebridge.core.stylegan2.checkpoint import save_stylegan2
    from stylebridge.registry import reset_registry

    ckpt = save_stylegan2(tmp_path / "g.safetensors", tiny_generator(seed=4))
    reset_registry()
    try:
        code = main(["generate", "-g", str(ckpt), "--seeds", "0-1", "--out", str(tmp_path / "off"),
                     "--device", "cpu", "--compile", "off"])
        assert code == 0
        capsys.readouterr()
        monkeypatch.setattr(torch, "compile", _failing_compiler("inductor exploded"))
        monkeypatch.setenv("COLUMNS", "300")  # the notice is the command's (rich) line
        code = main(["generate", "-g", str(ckpt), "--seeds", "0-1", "--out", str(tmp_path / "on"),
                     "--device", "cpu", "--compile", "on"])
        out, err = capsys.readouterr()
        assert code == 0
        assert [line for line in (out + err).splitlines() if NOTICE_PREFIX in line] == [
            f"{NOTICE_PREFIX} (RuntimeError: inductor exploded); running eagerly"]  # once
        for name in ("seed0000.png", "seed0001.png", "grid.png"):
            assert (tmp_path / "on" / name).read_bytes() == (tmp_path / "off" / name).read_bytes()
        code = main(["generate", "-g", str(ckpt), "--out", str(tmp_path / "x"), "--compile", "yes"])
    except SystemExit as exc:  # argparse rejects a bad choice with exit code 2
        assert exc.code == 2
        assert "--compile: invalid choice: 'yes'" in capsys.readouterr().err
    else:
        pytest.fail("--compile yes was accepted")
    finally:
        reset_registry()


@pytest.mark.slow
def test_compiled_synthesis_matches_eager_on_cpu() -> None:
    """The real torch.compile (inductor's C++ backend) on the 32 px generator: minutes of
    compile time on a 2-core machine, hence slow."""
    pytest.importorskip("torch._inductor")
    gen = tiny_generator(seed=5)
    styles = _styles(gen, batch=2, seed=6)
    noise = [torch.randn_like(getattr(gen.noises, f"noise_{i}")) for i in range(gen.num_layers)]
    with torch.no_grad():
        expected = gen.synthesis(styles, noise=noise)
        lines: list[str] = []
        assert compile_synthesis(gen, "on", notice=lines.append)
        got = gen.synthesis(styles, noise=noise)
    assert lines == [compiled.compiling_note("cpu")] and is_compiled(gen)  # no fall-back
    assert_close(got, expected, **FP32_TOL)


# --------------------------------------------------------------------------------------------
# the custom ops' registrations, without the compiled extension


UPFIRDN_SHAPES = [  # (x shape, kernel shape, up (x, y), down (x, y), pad (x0, x1, y0, y1))
    ((2, 3, 8, 8), (4, 4), (2, 2), (1, 1), (2, 1, 2, 1)),
    ((2, 3, 8, 8), (4, 4), (1, 1), (2, 2), (1, 1, 1, 1)),
    ((1, 2, 7, 9), (3, 4), (2, 1), (1, 2), (1, 0, 2, 1)),
    ((1, 2, 7, 9), (5, 3), (3, 2), (2, 1), (-1, 2, 0, -2)),
    ((1, 1, 5, 6), (4, 4), (1, 1), (1, 1), (2, 1, 2, 1)),
]


@pytest.mark.parametrize("xs,ks,up,down,pad", UPFIRDN_SHAPES)
def test_upfirdn2d_fake_gives_the_native_shape(xs, ks, up, down, pad) -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    from stylebridge.core.ops import _cuda  # noqa: F401  (registers the ops)
    from stylebridge.core.ops.upfirdn2d import upfirdn2d_native

    expected = upfirdn2d_native(torch.randn(xs), torch.randn(ks), up, down, pad).shape
    with FakeTensorMode():
        out = torch.ops.stylebridge.upfirdn2d(torch.empty(xs), torch.empty(ks), *up, *down, *pad)
    assert tuple(out.shape) == tuple(expected) and out.dtype == torch.float32


def test_fused_bias_act_fake_keeps_shape_and_dtype() -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    from stylebridge.core.ops import _cuda  # noqa: F401

    with FakeTensorMode():
        x = torch.empty(2, 5, 3, 4, dtype=torch.bfloat16).contiguous(
            memory_format=torch.channels_last)
        y = torch.ops.stylebridge.fused_bias_act(x, torch.empty(5, dtype=torch.bfloat16), 0.2,
                                                 1.4, None)
        g = torch.ops.stylebridge.fused_bias_act_grad(y.contiguous(), y, 0.2, 1.4, 0.5)
        flat = torch.ops.stylebridge.fused_bias_act(x.contiguous(), None, 0.2, 1.4, None)
    # the kernels keep a channels-last input's layout (the gradient takes y's); the fakes say so
    for t in (y, g):
        assert t.shape == (2, 5, 3, 4) and t.dtype == torch.bfloat16
        assert t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()
    assert flat.is_contiguous()


def test_registered_autograd_traces_backward_with_the_same_ops() -> None:
    """make_fx with fake tensors runs the registered forward, backward and double backward
    through the fake implementations: the graph holds only our ops (no Python fallback)."""
    from torch.fx.experimental.proxy_tensor import make_fx

    from stylebridge.core.ops import _cuda  # noqa: F401

    def fn(x, b, k):
        y = torch.ops.stylebridge.fused_bias_act(x, b, 0.2, 2.0, None)
        z = torch.ops.stylebridge.upfirdn2d(y, k, 2, 2, 1, 1, 2, 1, 2, 1)
        (gx,) = torch.autograd.grad(z.square().sum(), x, create_graph=True)
        (ggx,) = torch.autograd.grad(gx.sum(), x)
        return z, gx, ggx

    x = torch.randn(1, 3, 4, 4, requires_grad=True)
    graph = make_fx(fn, tracing_mode="fake")(x, torch.randn(3), torch.randn(4, 4))
    targets = [str(n.target) for n in graph.graph.nodes if n.op == "call_function"]
    assert targets.count("stylebridge.upfirdn2d.default") >= 3  # forward, backward, double
    assert targets.count("stylebridge.fused_bias_act.default") == 1
    assert targets.count("stylebridge.fused_bias_act_grad.default") >= 2
    shapes = {tuple(n.meta["val"].shape) for n in graph.graph.nodes if n.op == "output"
              for n in n.args[0]}
    assert shapes == {(1, 3, 8, 8), (1, 3, 4, 4)}


def test_op_dispatch_traces_without_graph_breaks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The backend choice (a lock, an environment lookup, a one-time build) is evaluated once
    while tracing, so dynamo takes the dispatching ops whole (fullgraph=True fails on a
    break); the CUDA-tensor branch is exercised with the extension reported unavailable."""
    from stylebridge.core.ops import _cuda, backend, fused_leaky_relu, upfirdn2d

    monkeypatch.setattr(_cuda, "_precheck", lambda: "no CUDA in this test")
    _cuda.reset()  # available() takes its lock and notifies once: nothing dynamo can trace
    kernel = torch.outer(torch.tensor([1.0, 3.0, 3.0, 1.0]), torch.tensor([1.0, 3.0, 3.0, 1.0]))

    def fn(x: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        assert not backend.use_cuda(True)  # what a CUDA tensor would ask
        y = fused_leaky_relu(x, b)
        return upfirdn2d(upfirdn2d(y, kernel / 16, pad=(2, 1)), kernel / 4, up=2, pad=(2, 1))

    x, b = torch.randn(1, 3, 6, 6), torch.randn(3)
    torch._dynamo.reset()
    with pytest.warns(_cuda.CudaOpsUnavailableWarning):
        got = torch.compile(fn, fullgraph=True, backend="eager")(x, b)
    assert_close(got, fn(x, b), atol=0, rtol=0)
    _cuda.reset()


def test_constant_mark_is_the_one_torch_sets() -> None:
    """``backend.constant_under_compile`` stands in for ``torch.compiler.
    assume_constant_result`` (which imports ``torch._dynamo``, ~0.8 s at every CLI start): it
    must leave exactly the marks torch's decorator leaves; the test above shows dynamo honours
    them (fullgraph=True fails on the lock they hide)."""
    from stylebridge.core.ops import backend

    def ours() -> bool:
        return True

    def torchs() -> bool:
        return True

    assert backend.constant_under_compile(ours) is ours
    assert torch.compiler.assume_constant_result(torchs) is torchs
    assert vars(ours) == vars(torchs) != {}


def test_a_run_says_where_it_starts_that_it_compiles(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first call of each batch shape compiles (12-26 s per shape on the CPU, measured)
    and nothing said so: a run's notice channel gets one line when the wrapper is in place;
    a call from Python without a channel warns of nothing (only of a fall-back)."""
    import warnings

    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: fn)   # compiles "instantly"
    gen = tiny_generator(seed=3)
    lines: list[str] = []
    assert compile_synthesis(gen, "on", notice=lines.append)
    assert lines == [compiled.compiling_note("cpu")]
    assert lines[0].startswith("--compile: the synthesis network is compiled at its first "
                               "call for each batch shape (tens of seconds each on a CPU")
    assert "StyleRes" in lines[0] and "seconds each;" in compiled.compiling_note("cuda")
    lines.clear()
    assert not compile_synthesis(gen, "off", notice=lines.append) and lines == []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert compile_synthesis(tiny_generator(seed=3), "on")
    assert caught == []


def test_the_fall_back_warning_points_at_the_callers_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """It pointed at a line of core/compiled.py when torch.compile itself refused."""
    def refuse(fn, **kwargs):
        raise RuntimeError("Windows not yet supported for torch.compile")

    monkeypatch.setattr(torch, "compile", refuse)
    with pytest.warns(compiled.CompileFallbackWarning) as caught:
        compile_synthesis(tiny_generator(seed=3), "on")
    assert [Path(w.filename).name for w in caught] == ["test_compiled.py"]


def test_serve_says_what_compiling_costs_once_not_in_every_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiling note went into every run's notes on the page; it is said once, where
    the server starts (`start_notes`), and a fall-back still goes to the runs' notes."""
    pytest.importorskip("gradio")
    from stylebridge.pipelines.serve import ServeBackend, ServeConfig

    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "no-weights"))  # the random preset
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: fn)
    backend = ServeBackend(ServeConfig(device="cpu", work_dir=tmp_path / "work", compile="on"))
    try:
        assert backend.start_notes == [compiled.compiling_note("cpu")]
        assert backend.notices == []
    finally:
        backend.close()
    monkeypatch.setattr(torch, "compile", _failing_compiler("inductor exploded"))
    backend = ServeBackend(ServeConfig(device="cpu", work_dir=tmp_path / "work2", compile="on"))
    try:
        z = torch.randn(1, backend.generator.style_dim)
        with torch.no_grad():
            backend.generator(z)
        assert backend.notices == [f"{NOTICE_PREFIX} (RuntimeError: inductor exploded); "
                                   "running eagerly"]
    finally:
        backend.close()
