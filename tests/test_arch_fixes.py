"""Architecture fixes: errors not blamed on the file, notices without prints, declared
capabilities instead of duck typing or plugin names.

* a MemoryError / CUDA out-of-memory while tensors are read is raised as it is, not as
  "tensor data is unreadable"; a truncated file still is the file's one line;
* the CUDA-ops fall-back is one warning (or one handler line), never a print; compiled
  synthesis' fall-back goes to the pipeline's notice channel (a warning by default);
* ``eval`` passes ``device=`` to a metric that declares ``takes_device``; an EvalProgress
  is checked with ``isinstance``;
* the serve page lists an encoder's declared variants (FSE's generator-shift mode), and a
  bug in an encoder built on ``meta`` is raised, not hidden.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from conftest import tiny_generator
from torch import Tensor, nn

from stylebridge.core import checkpoint as ckpt
from stylebridge.core.checkpoint import (
    check_implied_shapes,
    load_checkpoint,
    read_header,
    save_checkpoint,
)
from stylebridge.core.interfaces import Encoder, Inversion, Preprocessing
from stylebridge.errors import CheckpointError, StylebridgeError
from stylebridge.plugins.metrics.base import BaseMetric
from stylebridge.registry import hookimpl


def _file(tmp_path: Path) -> Path:
    return save_checkpoint(tmp_path / "m.safetensors", {"w": torch.ones(4, 4)},
                           kind="encoder", plugin="x")


# --------------------------------------------------------------------------------------------
# 1. errors not blamed on the file


@pytest.mark.parametrize("error", [MemoryError("no memory"),
                                   torch.cuda.OutOfMemoryError("CUDA out of memory")])
def test_load_raises_memory_errors_as_they_are(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               error: BaseException) -> None:
    path = _file(tmp_path)

    def fail(*args: Any, **kwargs: Any) -> None:
        raise error

    monkeypatch.setattr(ckpt, "read_owned", fail)
    with pytest.raises(type(error)) as info:
        load_checkpoint(path)
    assert not isinstance(info.value, CheckpointError)


def test_load_enomem_is_memory_not_the_file(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    path = _file(tmp_path)

    def fail(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOMEM, "Cannot allocate memory")

    monkeypatch.setattr(ckpt, "read_owned", fail)
    with pytest.raises(MemoryError):
        load_checkpoint(path)


def test_a_device_error_is_not_the_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _file(tmp_path)

    def fail(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(ckpt, "read_owned", fail)
    with pytest.raises(RuntimeError, match="illegal memory access") as info:
        load_checkpoint(path)
    assert not isinstance(info.value, CheckpointError)


def test_a_short_file_is_still_the_files_one_line(tmp_path: Path) -> None:
    path = _file(tmp_path)
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(CheckpointError, match=r"m\.safetensors.*not a readable safetensors"):
        load_checkpoint(path)


def test_short_read_is_tensor_data_unreadable(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path = _file(tmp_path)

    def short(*args: Any, **kwargs: Any) -> None:
        raise OSError("the file ended before tensor w's data")

    monkeypatch.setattr(ckpt, "read_owned", short)
    with pytest.raises(CheckpointError, match=r"tensor data is unreadable .*file ended"):
        load_checkpoint(path)


def test_read_header_memory_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _file(tmp_path)

    def fail(*args: Any, **kwargs: Any) -> None:
        raise MemoryError

    monkeypatch.setattr(ckpt, "open_safetensors", fail)
    with pytest.raises(MemoryError):
        read_header(path)


def test_plain_state_memory_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from safetensors.torch import save_file

    from stylebridge.plugins.nets import state

    path = tmp_path / "plain.safetensors"
    save_file({"w": torch.ones(2)}, str(path))

    def fail(*args: Any, **kwargs: Any) -> None:
        raise MemoryError

    monkeypatch.setattr(state, "load_file", fail)
    with pytest.raises(MemoryError):
        state.read_plain_state(path)
    monkeypatch.undo()
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match=r"plain\.safetensors"):
        state.read_plain_state(path)


class _Buggy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(2))
        self.not_there.append(1)  # type: ignore[attr-defined]  # a bug in the plugin


class _NeedsValues(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(2))
        self.n = int(self.w.sum().item())  # cannot run on meta


def test_implied_shapes_raises_bugs_and_skips_meta_limits() -> None:
    tensors = {"w": torch.ones(2)}
    with pytest.raises(AttributeError, match="not_there"):
        check_implied_shapes(None, _Buggy, tensors)
    assert check_implied_shapes(None, _NeedsValues, tensors) is None

    def oom() -> nn.Module:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(torch.cuda.OutOfMemoryError):
        check_implied_shapes(None, oom, tensors)


# --------------------------------------------------------------------------------------------
# 2. notices, not prints


def test_cuda_ops_notice_is_one_warning_and_no_print(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from stylebridge.core.ops import _cuda

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _cuda.reset()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert _cuda.available() is False
            assert _cuda.available() is False
        lines = [str(w.message) for w in caught
                 if issubclass(w.category, _cuda.CudaOpsUnavailableWarning)]
        assert len(lines) == 1 and lines[0].startswith(_cuda.NOTICE_PREFIX)
        assert _cuda.NOTICE_PREFIX not in capsys.readouterr().err  # said once, as the warning
    finally:
        _cuda.reset()


def test_cuda_ops_notice_handler_gets_the_line_once(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from stylebridge.core.ops import _cuda

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _cuda.reset()
    lines: list[str] = []
    previous = _cuda.set_notice_handler(lines.append)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no warning beside the handler's line
            assert _cuda.available() is False
            assert _cuda.available() is False
        assert lines == [f"{_cuda.NOTICE_PREFIX} (torch.cuda.is_available() is False); "
                         "using the native PyTorch ops"]
        assert capsys.readouterr().err == ""
    finally:
        _cuda.set_notice_handler(previous)
        _cuda.reset()


def _failing_compiler(fn: Any, **kwargs: Any) -> Any:
    def broken(*args: Any, **kw: Any) -> Tensor:
        raise RuntimeError("inductor exploded")
    return broken


def test_compiled_default_notice_is_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    from stylebridge.core.compiled import CompiledSynthesis, CompileFallbackWarning

    gen = tiny_generator(seed=2)
    wrapper = CompiledSynthesis(gen, compiler=_failing_compiler)
    styles = gen.styles(torch.randn(1, gen.n_latent, gen.style_dim))
    with pytest.warns(CompileFallbackWarning, match="inductor exploded"), torch.no_grad():
        wrapper(styles, randomize_noise=False)
    assert capsys.readouterr().err == ""


def test_generate_routes_the_compile_notice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from stylebridge.core.compiled import NOTICE_PREFIX
    from stylebridge.core.stylegan2.checkpoint import save_stylegan2
    from stylebridge.pipelines.generate import GenerateConfig, generate

    path = save_stylegan2(tmp_path / "g.safetensors", tiny_generator(seed=4))
    monkeypatch.setattr(torch, "compile", _failing_compiler)
    lines: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said through notice(), not as a warning
        generate(GenerateConfig(generator=str(path), out=tmp_path / "out", seeds="0",
                                device="cpu", compile="on"), notice=lines.append)
    assert [line for line in lines if line.startswith(NOTICE_PREFIX)] == [
        f"{NOTICE_PREFIX} (RuntimeError: inductor exploded); running eagerly"]
    assert NOTICE_PREFIX not in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# 3. declared capabilities


class DeclaredDeviceMetric(BaseMetric):
    """Takes ``device`` through ``**config`` only: the declaration, not the signature."""

    name = "test-arch-declared-device"
    takes_device: ClassVar[bool] = True

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)

    def reset(self) -> None:
        self.n = 0

    def update(self, pred: Tensor, target: Tensor | None = None, **context: Any) -> None:
        self.n += pred.shape[0]

    def compute(self) -> dict[str, float]:
        return {"n": float(self.n)}


class UndeclaredDeviceMetric(DeclaredDeviceMetric):
    """A ``device`` parameter without the declaration: built without ``device=``."""

    name = "test-arch-undeclared-device"
    takes_device: ClassVar[bool] = False

    def __init__(self, device: str = "unset") -> None:
        super().__init__(where=device)


class BuggyOnMeta(Encoder):
    name = "test-arch-buggy-on-meta"

    def __init__(self) -> None:
        super().__init__()
        self.preprocessing = Preprocessing(size=32)
        self.head = nn.Linear(3, 8 * 32)
        if self.head.weight.is_meta:
            self.head.not_there.append(1)  # a bug that only the meta build reaches

    def config(self) -> dict[str, Any]:
        return {}

    def encode(self, images: Tensor) -> Inversion:
        return Inversion(w_plus=self.head(images.mean((2, 3))).view(-1, 8, 32))


class VariantEncoder(BuggyOnMeta):
    name = "test-arch-variants"
    variants: ClassVar[tuple[tuple[str, str], ...]] = (("the other mode", "mode=other"),)

    def __init__(self, mode: str = "one") -> None:
        nn.Module.__init__(self)
        self.preprocessing = Preprocessing(size=32)
        self.head = nn.Linear(3, 8 * 32)
        self.mode = mode

    def config(self) -> dict[str, Any]:
        return {"mode": self.mode}


@hookimpl
def register_metrics(register: Any) -> None:
    register(DeclaredDeviceMetric)
    register(UndeclaredDeviceMetric)


@hookimpl
def register_encoders(register: Any) -> None:
    register(BuggyOnMeta)
    register(VariantEncoder)


@pytest.mark.usefixtures("registered")
def test_eval_passes_device_by_the_declaration() -> None:
    from stylebridge.pipelines.evaluate import build_metrics, parse_metric_spec

    declared, undeclared, psnr = build_metrics(
        [parse_metric_spec("test-arch-declared-device"),
         parse_metric_spec("test-arch-undeclared-device"), parse_metric_spec("psnr")],
        torch.device("cpu"))
    assert declared.config()["device"] == "cpu"
    assert undeclared.config() == {"where": "unset"}  # still built, without device=
    assert psnr.config()["device"] == "cpu"  # every built-in metric declares it
    from stylebridge.registry import get_registry

    registry = get_registry()
    for name in registry.names("metric"):
        cls = registry.get("metric", name).obj
        if cls.__module__.startswith("stylebridge.plugins."):
            assert cls.takes_device, name


def test_eval_progress_is_checked_by_type(tmp_path: Path) -> None:
    from stylebridge.pipelines.evaluate import EvalConfig, EvalProgress, check_eval_arguments

    class LooksLikeOne:  # every method, but not an EvalProgress
        def note(self, *a: Any) -> None: ...
        def start(self, *a: Any) -> None: ...
        def advance(self, *a: Any) -> None: ...
        def stop(self, *a: Any) -> None: ...
        def failed(self, *a: Any) -> None: ...

    config = EvalConfig(pred=tmp_path, metrics=["psnr"])
    check_eval_arguments(config, None, EvalProgress())
    check_eval_arguments(config, None, None)
    with pytest.raises(StylebridgeError, match=r"progress must be an EvalProgress.*LooksLikeOne"):
        check_eval_arguments(config, None, LooksLikeOne())


@pytest.mark.usefixtures("registered")
def test_serve_lists_declared_variants_and_raises_meta_bugs(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from stylebridge.pipelines.serve import encoders

    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "home"))
    gen = tiny_generator(seed=1)
    with pytest.raises(AttributeError, match="not_there"):
        encoders.fit_problem("test-arch-buggy-on-meta", gen)
    monkeypatch.setattr(encoders, "fit_problem", lambda spec, generator, preset=None: None)
    choices = {c.spec: c.label for c in encoders.registered_choices(gen)}
    assert choices["test-arch-variants:mode=other"].startswith(
        "test-arch-variants, the other mode (")
    assert choices[encoders.FSE_SHIFT].startswith("fse, generator-shift mode (")
    assert not any(spec.startswith("test-arch-buggy-on-meta:") for spec in choices)


def test_fse_declares_its_shift_variant() -> None:
    from stylebridge.pipelines.serve.backend import DEFAULT_GUIDE
    from stylebridge.plugins.encoders.fse import FSEEncoder

    assert ("generator-shift mode", "mode=shift") in FSEEncoder.variants
    assert Encoder.variants == () and DEFAULT_GUIDE == "e4e"
