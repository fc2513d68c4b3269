"""A :class:`~stylebridge.registry.Registry` given to a pipeline is the one everything of the
run comes from: a plugin only it holds (``Registry(extra_plugins=[...])``) is found by
evaluate, adapt's and invert's metrics, calibrate, the weights checks, the serve encoder list
and the demo's metrics, and the process-wide default registry (which lacks it) answers with
the usual unknown-plugin error."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest
import torch

from stylebridge.core.images import save_png
from stylebridge.core.interfaces import Converter, Encoder, Inversion, Preprocessing
from stylebridge.errors import RegistryError, StylebridgeError
from stylebridge.plugins.calibrators.alpha import AlphaCalibrator
from stylebridge.plugins.metrics.image import MSEMetric
from stylebridge.registry import Registry, hookimpl

pytestmark = pytest.mark.usefixtures("no_weights_one_thread")

PROVIDER = "thread_test_pkg"


class GapMetric(MSEMetric):
    """Mean absolute difference (a metric only the custom registry has)."""

    name = "thread_gap"
    direction = "lower"
    unit = "px"

    def score(self, pred: torch.Tensor, target: torch.Tensor | None,
              **context: Any) -> dict[str, torch.Tensor]:
        assert target is not None
        return {"thread_gap": (pred - target).abs().flatten(1).mean(1)}


class BadMetric(GapMetric):
    """Returns a list from compute(): its error names the package that provides it."""

    name = "thread_bad"

    def compute(self) -> Any:
        return [1.0]


class ThreadAlpha(AlphaCalibrator):
    """Alpha-rescaling under another name (a calibrator only the custom registry has)."""

    name = "thread-alpha"


class NeedyEncoder(Encoder):
    """An encoder that needs weights (a weights entry names it)."""

    name = "thread-needy"
    requires_weights = True

    def __init__(self) -> None:
        super().__init__()
        self.preprocessing = Preprocessing(size=8)

    def encode(self, images: torch.Tensor) -> Inversion:
        raise NotImplementedError


class FitEncoder(Encoder):
    """Latents of the tiny preset's shape (``n_latent``/``style_dim`` set by the test)."""

    name = "thread-fit"
    n_latent_default = 8
    style_dim_default = 32
    size_default = 32

    def __init__(self) -> None:
        super().__init__()
        self.preprocessing = Preprocessing(size=self.size_default)
        self.w = torch.nn.Parameter(torch.zeros(self.n_latent_default, self.style_dim_default))

    def encode(self, images: torch.Tensor) -> Inversion:
        return Inversion(w_plus=self.w.expand(images.shape[0], -1, -1))


class SizedConverter(Converter):
    name = "thread-conv"
    accepted_options = frozenset({"expect_size"})

    def convert(self, src: Path, dst: Path, **options: Any) -> Any:
        raise NotImplementedError


def _plugin_module() -> types.ModuleType:
    mod = types.ModuleType(PROVIDER)

    @hookimpl
    def register_metrics(register: Any) -> None:
        register(GapMetric)
        register(BadMetric)

    @hookimpl
    def register_calibrators(register: Any) -> None:
        register(ThreadAlpha)

    @hookimpl
    def register_encoders(register: Any) -> None:
        register(NeedyEncoder)
        register(FitEncoder)

    @hookimpl
    def register_converters(register: Any) -> None:
        register(SizedConverter())

    mod.register_metrics = register_metrics  # type: ignore[attr-defined]
    mod.register_calibrators = register_calibrators  # type: ignore[attr-defined]
    mod.register_encoders = register_encoders  # type: ignore[attr-defined]
    mod.register_converters = register_converters  # type: ignore[attr-defined]
    return mod


@pytest.fixture(scope="module")
def custom() -> Registry:
    return Registry(entry_points=False, extra_plugins=[_plugin_module()])


@pytest.fixture(scope="module")
def preset(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from stylebridge.pipelines.presets import build_tiny_preset

    return build_tiny_preset(tmp_path_factory.mktemp("tiny"), n_images=2)


def _unknown(kind: str, name: str) -> str:
    return f"unknown {kind} '{name}'"


# ---------------------------------------------------------------------------------------------
# evaluate


def _pairs(root: Path) -> tuple[Path, Path]:
    pred, target = root / "pred", root / "target"
    g = torch.Generator().manual_seed(0)
    for folder in (pred, target):
        folder.mkdir()
        for i in range(2):
            save_png(folder / f"p{i}.png", torch.rand(3, 16, 16, generator=g))
    return pred, target


def test_evaluate_takes_its_metrics_from_the_registry_it_is_given(
        custom: Registry, tmp_path: Path) -> None:
    from stylebridge.pipelines.evaluate import EvalConfig, evaluate

    pred, target = _pairs(tmp_path)
    config = EvalConfig(metrics=["thread_gap", "mse"], pred=[pred], target=[target],
                        device="cpu")
    result = evaluate(config, registry=custom)
    assert set(result.means) == {"thread_gap", "mse"} and len(result.rows) == 2
    with pytest.raises(RegistryError, match=_unknown("metric", "thread_gap")):
        evaluate(config)  # the process-wide registry has no such metric


def test_evaluate_names_the_package_of_the_given_registry(custom: Registry,
                                                          tmp_path: Path) -> None:
    from stylebridge.pipelines.evaluate import EvalConfig, evaluate

    pred, target = _pairs(tmp_path)
    with pytest.raises(StylebridgeError, match=rf"^metric 'thread_bad' \(from {PROVIDER}\): "
                                               "compute\\(\\) returned a list"):
        evaluate(EvalConfig(metrics=["thread_bad"], pred=[pred], target=[target],
                            device="cpu"), registry=custom)


def test_output_metrics_read_the_given_registry(custom: Registry) -> None:
    from stylebridge.pipelines.output_metrics import (
        build_output_metrics,
        compute_output_metrics,
        output_column_header,
        update_output_metrics,
    )

    metrics = build_output_metrics(["thread_gap"], ["inversion", "d"], registry=custom)
    assert all(isinstance(group[0], GapMetric) for group in metrics.values())
    images = torch.full((1, 3, 8, 8), 0.5)
    update_output_metrics(metrics, {"inversion": images, "d": images}, images * 0)
    assert compute_output_metrics(metrics, registry=custom) == {
        "inversion": {"thread_gap": 0.5}, "d": {"thread_gap": 0.5}}
    assert output_column_header("thread_gap", registry=custom) == "thread_gap (px) ↓"
    assert output_column_header("thread_gap") == "thread_gap"  # not a metric there
    with pytest.raises(RegistryError, match=_unknown("metric", "thread_gap")):
        build_output_metrics(["thread_gap"], ["inversion"])


# ---------------------------------------------------------------------------------------------
# adapt, invert and calibrate on the tiny preset


def _photo_options(preset: Any) -> dict[str, Any]:
    return {"images": [preset.images], "encoder": f"e4e:{preset.e4e}",
            "generator": str(preset.generator), "device": "cpu", "align": False}


def test_adapt_metrics_come_from_the_given_registry(custom: Registry, preset: Any,
                                                    tmp_path: Path) -> None:
    from stylebridge.pipelines.adapt import AdaptConfig, adapt

    config = AdaptConfig(**_photo_options(preset), out=tmp_path / "ad", compile="off",
                         methods=[str(preset.domains / "tiny-pixar.safetensors")],
                         metrics=["mse", "thread_gap"])
    result = adapt(config, registry=custom)
    assert result.metrics is not None and set(result.metrics) == {"mse", "thread_gap"}
    assert result.domain_metrics is not None
    assert set(result.domain_metrics["tiny-pixar"]) == {"mse", "thread_gap"}
    with pytest.raises(RegistryError, match=_unknown("metric", "thread_gap")):
        adapt(AdaptConfig(**_photo_options(preset), out=tmp_path / "ad2", compile="off",
                          methods=[str(preset.domains / "tiny-pixar.safetensors")],
                          metrics=["mse", "thread_gap"]))


def test_invert_metrics_come_from_the_given_registry(custom: Registry, preset: Any,
                                                     tmp_path: Path) -> None:
    from stylebridge.pipelines.invert import InvertConfig, invert

    result = invert(InvertConfig(**_photo_options(preset), out=tmp_path / "inv",
                                 compile="off", metrics=["thread_gap"]), registry=custom)
    assert result.metrics is not None and set(result.metrics) == {"thread_gap"}
    with pytest.raises(RegistryError, match=_unknown("metric", "thread_gap")):
        invert(InvertConfig(**_photo_options(preset), out=tmp_path / "inv2", compile="off",
                            metrics=["thread_gap"]))


def test_calibrate_fits_the_calibrator_of_the_given_registry(custom: Registry, preset: Any,
                                                             tmp_path: Path) -> None:
    from stylebridge.pipelines.calibrate import CalibrateConfig, calibrate

    def config(name: str) -> CalibrateConfig:
        return CalibrateConfig(**_photo_options(preset), calibrator="thread-alpha",
                               out=tmp_path / name, samples=16)

    result = calibrate(config("a.safetensors"), registry=custom)
    assert isinstance(result.calibrator, ThreadAlpha) and result.n_images == 2
    with pytest.raises(RegistryError, match=_unknown("calibrator", "thread-alpha")):
        calibrate(config("b.safetensors"))


# ---------------------------------------------------------------------------------------------
# weights checks, serve's encoder list, the demo's metrics


def test_missing_weights_asks_the_given_registry_whether_a_plugin_needs_weights(
        custom: Registry, tmp_path: Path) -> None:
    from stylebridge.registry.needed import missing_weights
    from stylebridge.registry.weights import WeightsEntry, WeightsManager

    manager = WeightsManager(home=tmp_path / "home", manifest=[WeightsEntry(
        name="thread-needy-ffhq", kind="encoder", plugin="thread-needy", filename="n.pt")])
    requests = [("encoder", "thread-needy", "--encoder")]
    assert [m.name for m in missing_weights(requests, manager, registry=custom)] == [
        "thread-needy-ffhq"]
    assert missing_weights(requests, manager) == []  # unknown there: loading says so


def test_known_size_option_reads_the_converter_of_the_given_registry(
        custom: Registry, tmp_path: Path) -> None:
    from stylebridge.registry.weights import WeightsEntry, WeightsManager
    from stylebridge.registry.weights_checks import known_size_option

    entry = WeightsEntry(name="stylegan2-ffhq-1024", kind="generator", plugin="stylegan2",
                         filename="f.pkl", converter="thread-conv")
    assert known_size_option(entry, custom) == {"expect_size": 1024}
    manager = WeightsManager(home=tmp_path / "home", manifest=[entry], registry=custom)
    assert manager._convert_options(entry) == {"expect_size": 1024}
    with pytest.raises(RegistryError, match=_unknown("converter", "thread-conv")):
        known_size_option(entry)


def test_serve_lists_and_checks_the_encoders_of_the_given_registry(custom: Registry,
                                                                   preset: Any) -> None:
    from stylebridge.pipelines.photos import open_generator
    from stylebridge.pipelines.serve.encoders import fit_problem, registered_choices

    gen = open_generator(str(preset.generator), torch.device("cpu"))
    FitEncoder.n_latent_default, FitEncoder.style_dim_default = gen.n_latent, gen.style_dim
    FitEncoder.size_default = gen.size
    assert fit_problem("thread-fit", gen, registry=custom) is None
    assert str(fit_problem("thread-fit", gen)).startswith(_unknown("encoder", "thread-fit"))
    specs = {choice.spec: choice for choice in registered_choices(gen, registry=custom)}
    assert "thread-fit" in specs and specs["thread-fit"].problem is None
    assert "thread-fit" not in {choice.spec for choice in registered_choices(gen)}


def test_demo_metrics_come_from_the_given_registry() -> None:
    from stylebridge.pipelines.demo import photo_metrics

    mod = types.ModuleType("thread_demo_pkg")

    @hookimpl
    def register_metrics(register: Any) -> None:
        for name in ("mse", "psnr", "ssim"):
            register(type(f"Thread_{name}", (GapMetric,), {"name": name}))

    mod.register_metrics = register_metrics  # type: ignore[attr-defined]
    only = Registry(builtins=False, entry_points=False, extra_plugins=[mod])
    metrics = photo_metrics(only)
    assert set(metrics) == {"mse", "psnr", "ssim"}  # no id metric there
    assert all(isinstance(m, GapMetric) for m in metrics.values())
    assert not any(isinstance(m, GapMetric) for m in photo_metrics().values())


def test_invert_and_adapt_take_the_encoder_from_the_given_registry(custom: Registry, preset: Any,
                                                                   tmp_path: Path) -> None:
    from stylebridge.pipelines.adapt import AdaptConfig, adapt
    from stylebridge.pipelines.invert import InvertConfig, invert

    options = {**_photo_options(preset), "encoder": "thread-fit", "compile": "off"}
    result = invert(InvertConfig(**options, out=tmp_path / "inv"), registry=custom)
    assert len(result.report.done) == 2 and not result.report.skipped
    adapted = adapt(AdaptConfig(**options, out=tmp_path / "ad",
                                methods=[str(preset.domains / "tiny-pixar.safetensors")]),
                    registry=custom)
    assert len(adapted.report.done) == 2
    with pytest.raises(RegistryError, match=_unknown("encoder", "thread-fit")):
        invert(InvertConfig(**options, out=tmp_path / "inv2"))
