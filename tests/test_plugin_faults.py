"""A third-party plugin that returns the wrong thing is named in one line, and two metrics
that report the same key are refused instead of one silently overwriting the other."""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import tiny_generator
from PIL import Image

from stylebridge.cli.base import Command
from stylebridge.cli.main import main
from stylebridge.core.interfaces import Loss, LossBatch, Metric
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
    said = " ".join(capsys.readouterr().err.split())  # a notice: on stderr
    assert code == 0
    assert ("FeatureShift replaces the feature at layer K, so the encoder's mode=shift has no "
            "effect on the domain outputs") in said


# ---------------------------------------------------------------------------------------------
# Installed packages (simulated entry points, as in test_registry): problems are attributed to
# the entry point that caused them, wrong return values are named with the package, and a name
# two packages claim is said to be contested wherever it is used


def _installed(monkeypatch: pytest.MonkeyPatch, *packages: tuple[types.ModuleType, dict[str, str]]
               ) -> registry_mod.Registry:
    """Declare each package's entry points (``{entry point: attribute of the module}``) and
    make the process-wide registry one that discovers them (restored after the test)."""
    import importlib.metadata
    import sys

    eps = []
    for module, points in packages:
        monkeypatch.setitem(sys.modules, module.__name__, module)
        eps += [importlib.metadata.EntryPoint(name=name, value=f"{module.__name__}:{attr}",
                                              group="stylebridge") for name, attr in points.items()]
    monkeypatch.setattr(registry_mod.importlib.metadata, "entry_points",
                        lambda group=None: eps if group == "stylebridge" else [])
    registry = registry_mod.Registry()
    monkeypatch.setattr(registry_mod, "_REGISTRY", registry)
    return registry


def _hooks(**hooks: Any) -> types.SimpleNamespace:
    """A plugin object (what one entry point names) with these ``@hookimpl`` hooks."""
    return types.SimpleNamespace(**{name: hookimpl(fn) for name, fn in hooks.items()})


def _package(name: str, **plugins: types.SimpleNamespace) -> types.ModuleType:
    module = types.ModuleType(name)
    for attr, plugin in plugins.items():
        setattr(module, attr, plugin)
    return module


class _Shared(Metric):
    name = "shared-test"

    def reset(self) -> None: ...

    def update(self, pred, target=None, **context) -> None: ...

    def compute(self) -> Any:
        return {}


class _Own(_Shared):
    name = "own-test"


class _NotACommand:
    name = "notcmd-test"


def test_problems_name_the_entry_point_that_registered_the_name(monkeypatch, capsys) -> None:
    """Before: the package's first entry point (``aaa``) was named for what ``zzz`` did."""
    from stylebridge.registry import Entry

    multi = _package("qa_multi", fine=_hooks(register_metrics=lambda register: register(_Own)),
                     late=_hooks(register_metrics=lambda register: register(_Shared),
                                 register_commands=lambda register: register(_NotACommand())))
    other = _package("qa_other", plug=_hooks(register_metrics=lambda register: register(_Shared)))
    reg = _installed(monkeypatch, (multi, {"aaa": "fine", "zzz": "late"}), (other, {"b": "plug"}))
    assert reg.get("metric", "own-test").entry_point == "aaa"  # recorded on the entry
    assert Entry(kind="metric", name="x", obj=_Own, provider="p").entry_point is None
    assert main(["plugins"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    clash = ("metric 'shared-test' is registered by 'qa_multi' and 'qa_other': neither is used "
             "(uninstall one, or rename it)")
    assert f"plugin qa_multi (zzz): {clash}" in out and f"plugin qa_other (b): {clash}" in out
    assert ("plugin qa_multi (zzz): command 'notcmd-test': registered a _NotACommand, not a "
            "stylebridge.cli.base.Command instance (ignored)") in out
    assert "(aaa)" not in out and "failed to load" not in out  # qa_multi's own-test loaded
    assert "own-test" in out
    with pytest.raises(StylebridgeError, match=r"; note: plugin package\(s\) qa_multi, qa_other "
                                               r"reported problems, see `stylebridge plugins`$"):
        reg.get("metric", "nothing-test")


def test_one_package_registering_a_name_from_two_entry_points_is_told_once_per_point(
        monkeypatch) -> None:
    twice = _package("qa_twice", a=_hooks(register_metrics=lambda register: register(_Shared)),
                     b=_hooks(register_metrics=lambda register: register(_Shared)))
    reg = _installed(monkeypatch, (twice, {"first": "a", "second": "b"}))
    assert "shared-test" not in reg.names("metric")
    why = ("metric 'shared-test' is registered twice by 'qa_twice' (by two of its entry points): "
           "neither is used (rename one of them)")
    assert [(f.entry_point, f.error) for f in reg.failures] == [("first", why), ("second", why)]
    assert reg.contested("metric", "shared-test") == ["qa_twice"]


class _BadLoss(Loss):
    """Returns what it is told to."""

    name = "badloss"
    requires = frozenset({"output"})

    def __init__(self, value: str = "vector") -> None:
        super().__init__()
        self.value = value

    def forward(self, batch: LossBatch) -> Any:
        out = batch.require("output", self.name)
        return {"vector": lambda: out.mean(dim=(1, 2, 3)).repeat(3)[:3],
                "float": lambda: 0.5, "int": lambda: torch.tensor(3),
                "one": lambda: out.mean().reshape(1), "none": lambda: None}[self.value]()


class _TargetLoss(_BadLoss):
    name = "targetloss"
    requires = frozenset({"target", "reference"})


def _loss_package(monkeypatch) -> registry_mod.Registry:
    def register_losses(register) -> None:
        register(_BadLoss)
        register(_TargetLoss)

    return _installed(monkeypatch, (_package("qa_bad", plug=_hooks(
        register_losses=register_losses)), {"losses": "plug"}))


@pytest.mark.parametrize(("value", "got"), [
    ("vector", "a tensor of shape [3], not a scalar"),
    ("float", "a float, not a scalar tensor"),
    ("int", "a tensor of dtype torch.int64, not a floating-point scalar"),
    ("none", "a NoneType, not a scalar tensor"),
])
def test_a_loss_returning_no_scalar_tensor_is_named_with_its_package(monkeypatch, value,
                                                                     got) -> None:
    """Before: `ValueError: only one element tensors ...` or `AttributeError: 'float' object
    has no attribute 'requires_grad'` from the trainer, exit 1, the package unnamed."""
    from stylebridge.pipelines.featureshift.losses import evaluate_set
    from stylebridge.pipelines.training.losses import build_loss_terms, evaluate

    reg = _loss_package(monkeypatch)
    terms = build_loss_terms([f"badloss:1:value={value}"], registry=reg)
    batch = LossBatch(output=torch.rand(2, 3, 8, 8, requires_grad=True))
    message = f"^loss 'badloss' \\(from qa_bad\\): forward\\(\\) returned {re.escape(got)}$"
    with pytest.raises(StylebridgeError, match=message):  # train domain's path
        evaluate(terms, batch, step=0)
    with pytest.raises(StylebridgeError, match=message):  # train featureshift's path
        evaluate_set(terms, batch, 0, "inversion", {})


def test_a_one_element_loss_value_is_accepted(monkeypatch) -> None:
    from stylebridge.pipelines.featureshift.losses import evaluate_set
    from stylebridge.pipelines.training.losses import build_loss_terms

    terms = build_loss_terms(["badloss:2:value=one"], registry=_loss_package(monkeypatch))
    output = torch.rand(2, 3, 8, 8, requires_grad=True)
    values: dict[str, float] = {}
    total = evaluate_set(terms, LossBatch(output=output), 0, "inversion", values)
    assert total is not None and total.requires_grad
    assert values == {"inversion/badloss": pytest.approx(float(output.mean().detach()))}


def test_a_builtin_loss_is_named_without_a_package(monkeypatch) -> None:
    from stylebridge.pipelines.training.losses import LossTerm, check_loss_value

    term = LossTerm(key="mse", name="mse", weight=1.0, module=_BadLoss())
    monkeypatch.setattr(registry_mod, "_REGISTRY", registry_mod.Registry(entry_points=False))
    with pytest.raises(StylebridgeError, match=r"^loss 'mse': forward\(\) returned a float"):
        check_loss_value(term, 1.0)


def test_loss_field_checks_name_the_package(monkeypatch) -> None:
    from stylebridge.pipelines.training.losses import (
        build_loss_terms,
        check_requirements,
        check_trainable,
    )

    terms = build_loss_terms(["targetloss:1"], registry=_loss_package(monkeypatch))
    with pytest.raises(StylebridgeError, match=r"^loss 'targetloss' \(from qa_bad\) reads "
                                               r"reference, target, none of which FeatureShift "
                                               r"changes"):
        check_trainable(terms, frozenset({"output", "features"}), "FeatureShift")
    with pytest.raises(StylebridgeError, match=r"^loss 'targetloss' \(from qa_bad\) needs the "
                                               r"batch field 'reference', which train domain "
                                               r"does not provide"):
        check_requirements(terms, {"output", "target"}, "train domain")


class _RunReturns(Command):
    name = "runstr"
    help = "returns what it is told to"
    result: Any = "ok"

    def add_arguments(self, parser) -> None:
        pass

    def run(self, args, console) -> Any:
        return self.result


def test_a_command_whose_run_returns_no_int_is_named(monkeypatch, capsys) -> None:
    """Before: `error: ValueError: invalid literal for int() with base 10: 'ok'`, exit 1."""
    none = type("RunNone", (_RunReturns,), {"name": "runnone", "result": None})
    three = type("RunThree", (_RunReturns,), {"name": "runthree", "result": 3})

    def register_commands(register) -> None:
        for cls in (_RunReturns, none, three):
            register(cls())

    _installed(monkeypatch, (_package("qa_bad", plug=_hooks(
        register_commands=register_commands)), {"cmds": "plug"}))
    assert main(["runstr"]) == 2
    assert capsys.readouterr().err == ("error: command 'runstr' (from qa_bad): run() returned "
                                       "'ok', not an int exit code\n")
    assert main(["runnone"]) == 0 and main(["runthree"]) == 3  # None is read as 0, as before
    assert capsys.readouterr().err == ""


def test_a_contested_name_is_said_to_be_contested_everywhere(monkeypatch, capsys) -> None:
    """Before: `mycmd` gave argparse's "invalid choice" and `plugins myloss` "no plugin named
    'myloss'; did you mean ..." although both packages register them."""
    class MyCmd(_RunReturns):
        name = "mycmd"

    class MyLoss(_BadLoss):
        name = "myloss"

    def plugin() -> types.SimpleNamespace:
        return _hooks(register_commands=lambda register: register(MyCmd()),
                      register_losses=lambda register: register(MyLoss))

    reg = _installed(monkeypatch, (_package("qa_one", plug=plugin()), {"p": "plug"}),
                     (_package("qa_two", plug=plugin()), {"p": "plug"}))
    assert reg.contested("command", "mycmd") == ["qa_one", "qa_two"]
    assert reg.contested("loss", "myloss") == ["qa_one", "qa_two"]
    assert reg.contested("loss", "mse") is None and reg.contested("loss", "nothing") is None
    said = "is registered by 'qa_one' and 'qa_two': neither is used; uninstall one of them"
    assert main(["mycmd", "--flag"]) == 2
    assert capsys.readouterr().err.startswith(f"error: command 'mycmd' {said}")
    assert main(["plugins", "myloss"]) == 2
    assert capsys.readouterr().err.startswith(f"error: loss 'myloss' {said}")
    assert main(["plugins", "--kind", "loss", "myloss"]) == 2
    assert capsys.readouterr().err.startswith(f"error: loss 'myloss' {said}")
    with pytest.raises(SystemExit) as info:  # an unknown word is still argparse's (one line)
        main(["nosuchcmd"])
    assert info.value.code == 2 and "invalid choice: 'nosuchcmd'" in capsys.readouterr().err


def test_a_provider_name_taken_by_another_plugin_is_one_short_line() -> None:
    """pluggy's own text listed every registered plugin (631 characters after our cut, 7 KB
    before it)."""
    registry = registry_mod.Registry()

    def register_losses(register: Any) -> None:
        pass

    first, second = types.ModuleType("first_mod"), types.ModuleType("second_mod")
    first.register_losses = hookimpl(register_losses)
    second.register_losses = hookimpl(register_losses)
    registry.add_plugin(first, "mine")
    registry.add_plugin(first, "mine")  # the same object again: nothing to do
    with pytest.raises(StylebridgeError) as info:
        registry.add_plugin(second, "mine")
    assert str(info.value) == ("plugin 'mine': the name is taken by another plugin (first_mod); "
                               "give this one another provider name")
    registry.add_plugin(second, "mine2")
