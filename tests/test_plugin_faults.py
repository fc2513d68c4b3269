"""A third-party plugin that returns the wrong thing is named in one line, and two metrics
that report the same key are refused instead of one silently overwriting the other."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import tiny_generator
from PIL import Image

from stylebridge.cli.main import main
from stylebridge.core.interfaces import Metric
from stylebridge.core.synthesis import check_compatible
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.evaluate import claim_columns, metric_values
from stylebridge.registry import hookimpl
from stylebridge.registry import registry as registry_mod


class _Fixed(Metric):
    """Reports what it is told to, for the checks below."""

    name = "fixed-test"

    def __init__(self, result: Any = None) -> None:
        self.result = result

    def reset(self) -> None:
        pass

    def update(self, pred, target=None, **context) -> None:
        self.last = {"psnr": [123.0] * pred.shape[0]}

    def compute(self) -> Any:
        return self.result


@pytest.mark.parametrize(("result", "message"), [
    (0.5, "metric 'fixed-test': compute() returned a float; it must return a dict of name -> "
          "number"),
    ({"x": "hello"}, "metric 'fixed-test': compute() gave 'x' = 'hello', not a number"),
    ({1: 2.0}, "metric 'fixed-test': compute() returned a dict; it must return a dict"),
])
def test_compute_results_are_checked(result, message) -> None:
    with pytest.raises(StylebridgeError, match=f"^{message}".replace("(", r"\(").replace(
            ")", r"\)").replace("?", r"\?")):
        metric_values(_Fixed(result), "fixed-test")


def test_numbers_of_any_kind_are_floats() -> None:
    values = metric_values(_Fixed({"a": torch.tensor(2.5), "b": np.float32(1.5), "c": 3}), "f")
    assert values == {"a": 2.5, "b": 1.5, "c": 3.0}
    assert all(type(v) is float for v in values.values())


def test_a_key_reported_twice_is_refused_naming_both_metrics() -> None:
    owners: dict[str, str] = {}
    claim_columns(owners, ["psnr"], "psnr")
    claim_columns(owners, ["psnr"], "psnr")  # the same metric again (next batch): fine
    with pytest.raises(StylebridgeError, match=r"^metrics 'psnr' and 'fixed-test' both report "
                                               r"'psnr': one would overwrite"):
        claim_columns(owners, ["mse", "psnr"], "fixed-test")


def test_an_encoder_returning_a_bare_tensor_is_named() -> None:
    gen = tiny_generator()
    with pytest.raises(StylebridgeError, match=r"^encoder 'toy': encode\(\) returned a Tensor, "
                                               r"not a stylebridge.core.inversion.Inversion"):
        check_compatible(torch.zeros(1, gen.n_latent, gen.style_dim), gen, "encoder 'toy'")


def test_eval_refuses_a_plugin_metric_that_shadows_psnr(tmp_path: Path, monkeypatch,
                                                         capsys) -> None:
    """Before: one `psnr` column holding the plugin's 123 for every row, the real PSNR lost."""
    plugin = types.ModuleType("shadow_pkg")

    @hookimpl
    def register_metrics(register) -> None:
        register(_Fixed)

    plugin.register_metrics = register_metrics
    monkeypatch.setattr(registry_mod, "_REGISTRY",
                        registry_mod.Registry(entry_points=False, extra_plugins=[plugin]))
    rng = np.random.default_rng(0)
    for folder in ("pred", "target"):
        (tmp_path / folder).mkdir()
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
            tmp_path / folder / "a.png")
    try:
        code = main(["eval", "-m", "psnr", "-m", "fixed-test", "--pred", str(tmp_path / "pred"),
                     "--target", str(tmp_path / "target")])
    finally:
        monkeypatch.setattr(registry_mod, "_REGISTRY", None)
    err = capsys.readouterr().err
    assert code == 2
    assert err == ("error: metrics 'psnr' and 'fixed-test' both report 'psnr': one would "
                   "overwrite the other's numbers; drop one of them\n")


def test_an_encoder_without_preprocessing_is_refused_when_built() -> None:
    from stylebridge.core.interfaces import Encoder, Inversion
    from stylebridge.errors import RegistryError
    from stylebridge.registry.resolve import create

    class NoPre(Encoder):
        name = "nopre-test"

        def encode(self, images):
            return Inversion(w_plus=torch.zeros(images.shape[0], 2, 4))

    from test_registry import _plugin

    reg = registry_mod.Registry(entry_points=False, extra_plugins=[_plugin("nopre_pkg", NoPre)])
    with pytest.raises(RegistryError, match=r"^encoder 'nopre-test' has no `preprocessing` "
                                            r"\(set self.preprocessing = Preprocessing"):
        create("encoder", "nopre-test", registry=reg)


@pytest.mark.parametrize(("spec", "message"), [
    ("psnr:device=xyz", "--metric psnr:device=xyz: 'xyz': expected auto, cpu or cuda[:N]"),
    ("psnr:device=cuda", "--metric psnr:device=cuda: cuda: no CUDA device"),
])
def test_a_metric_device_option_is_checked_like_device(spec, message) -> None:
    """Before: torch's `Found no NVIDIA driver ...` or its list of device types."""
    from stylebridge.pipelines.evaluate import build_metrics, parse_metric_spec

    if "cuda" in spec and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(StylebridgeError, match="^" + message.replace("[", r"\[").replace(
            "]", r"\]")):
        build_metrics([parse_metric_spec(spec)], torch.device("cpu"))


def test_options_that_would_be_ignored_are_refused(tmp_path: Path, capsys) -> None:
    """`--guide` without `--featureshift` and `--accept-licence` without `--fetch` did
    nothing, silently (a missing guide file was even reported first)."""
    photo = tmp_path / "p.png"
    Image.new("RGB", (16, 16)).save(photo)
    base = ["adapt", "--encoder", "e4e", "--method", "stylespace", str(photo), "--out",
            str(tmp_path / "o")]
    assert main([*base, "--guide", "e4e:missing.safetensors"]) == 2
    assert capsys.readouterr().err == (
        "error: --guide applies with --featureshift (it is FeatureShift's guiding encoder); "
        "without it nothing would use it\n")
    assert main([*base, "--accept-licence"]) == 2
    assert capsys.readouterr().err == ("error: --accept-licence applies with --fetch (it "
                                       "accepts the licences of what --fetch downloads)\n")
    assert not (tmp_path / "o").exists()


def test_a_method_returning_the_wrong_number_of_styles_is_named() -> None:
    from stylebridge.core.interfaces import DomainMethod, Inversion
    from stylebridge.core.synthesis import synthesize

    class Few(DomainMethod):
        name = "few-test"

        def styles(self, generator, w_plus, offset_scale=None):
            return generator.styles(w_plus)[:3]

    gen = tiny_generator()
    inv = Inversion(w_plus=torch.zeros(1, gen.n_latent, gen.style_dim))
    with pytest.raises(StylebridgeError, match=rf"^domain method 'few-test': styles\(\) returned "
                                               rf"3 style vectors, the generator has "
                                               rf"{gen.n_style_layers} style layers$"):
        synthesize(gen, inv, method=Few())


def _tiny_adapter():
    from test_adapt import TinyEncoder

    from stylebridge.pipelines.adapter import Adapter

    return Adapter(TinyEncoder(), tiny_generator(), {})


@pytest.mark.parametrize(("images", "message"), [
    (torch.full((1, 3, 16, 16), 200, dtype=torch.uint8),
     r"^Adapter input: expected a float tensor in \[0, 1\], got torch.uint8 \(8-bit photos: "
     r"x.float\(\) / 255\)$"),
    (torch.full((1, 3, 16, 16), 200.0), r"^Adapter input: values span \[200, 200\], expected "
                                        r"\[0, 1\] \(0..255 images: x / 255"),
    (torch.full((1, 3, 16, 16), -0.9), r"^Adapter input: values span \[-0.9, -0.9\]"),
    (torch.zeros(3, 16, 16), r"^Adapter input: expected images \[B, 3, H, W\] with B >= 1, got "
                             r"shape \[3, 16, 16\]$"),
    (torch.zeros(0, 3, 16, 16), r"with B >= 1, got shape \[0, 3, 16, 16\]$"),
    (np.zeros((1, 16, 16, 3), np.float32), r"^Adapter input: expected a torch tensor"),
])
def test_adapter_input_is_checked_in_one_line(images, message) -> None:
    """A uint8 photo gave all-NaN inversions silently; 0..255 or [-1, 1] images nonsense."""
    with pytest.raises(StylebridgeError, match=message):
        _tiny_adapter().run(images)


def test_encoders_refuse_integer_images_and_accept_float64() -> None:
    from test_adapt import TinyEncoder

    with pytest.raises(StylebridgeError, match=r"^encoder input: expected a float tensor"):
        TinyEncoder().encode(torch.zeros(1, 3, 16, 16, dtype=torch.uint8))
    out = TinyEncoder().encode(torch.rand(1, 3, 16, 16, dtype=torch.float64))
    assert out.w_plus.dtype == torch.float32 and torch.isfinite(out.w_plus).all()


def test_adapter_arguments_of_the_wrong_kind_are_named() -> None:
    from test_adapt import TinyEncoder

    from stylebridge.pipelines.adapter import Adapter

    gen = tiny_generator()
    with pytest.raises(StylebridgeError, match=r"^Adapter calibrator: expected a Calibrator, "
                                               r"got a str \(build one with stylebridge.create"):
        Adapter(TinyEncoder(), gen, {}, calibrator="alpha")
    with pytest.raises(StylebridgeError, match=r"^Adapter methods: expected DomainMethod "
                                               r"objects, got a str"):
        Adapter(TinyEncoder(), gen, {"p": "x.safetensors"})
    with pytest.raises(StylebridgeError, match=r"^--strength '0.5': give numbers"):
        Adapter(TinyEncoder(), gen, {}, strength="0.5")


@pytest.mark.slow  # builds the tiny preset (~4 s)
def test_adapt_says_featureshift_makes_the_shift_mode_moot(tmp_path: Path, capsys) -> None:
    from stylebridge.pipelines.presets import build_tiny_preset

    preset = build_tiny_preset(tmp_path / "preset", n_images=2)
    code = main(["adapt", "--encoder", f"{preset.fse}:mode=shift", "--generator",
                 str(preset.generator), "--method", str(sorted(preset.domains.glob("*.safetensors"))[0]),
                 "--featureshift", str(preset.featureshift_fse), "--no-align",
                 str(sorted(preset.images.iterdir())[0]), "--out",
                 str(tmp_path / "out")])
    said = " ".join(capsys.readouterr().out.split())
    assert code == 0
    assert ("FeatureShift replaces the feature at layer K, so the encoder's mode=shift has no "
            "effect on the domain outputs") in said
