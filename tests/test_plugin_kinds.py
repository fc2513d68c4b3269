"""Plugins of the kinds other than encoders, as a third-party author writes them (a QA round
wrote one of each from the docs): a module without parameters or buffers has no weights, so a
bare name is not "random weights"; `plugins NAME` says what a class declares about weights and
lists a calibrator's `calibrate` hook."""

from __future__ import annotations

import types
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from test_cli import _fresh_registry, run  # noqa: F401  (an autouse fixture: a fresh registry)

from stylebridge.core.interfaces import Calibrator, Inversion, Loss, LossBatch, Metric
from stylebridge.registry import get_registry, hookimpl
from stylebridge.registry.describe import capabilities
from stylebridge.registry.resolve import load_plugin, provenance_of


class PixelL1(Loss):
    """Mean absolute difference of output and target: no weights at all."""

    name = "qa-l1"

    def forward(self, batch: LossBatch) -> torch.Tensor:
        assert batch.output is not None and batch.target is not None
        return (batch.output - batch.target).abs().mean()


class LearnedL1(PixelL1):
    """The same with a learned per-channel weight: weights, untrained without a checkpoint."""

    name = "qa-learned-l1"

    def __init__(self) -> None:
        super().__init__()
        self.gain = torch.nn.Parameter(torch.ones(3))


class DeclaredRandom(PixelL1):
    name = "qa-declared-random"
    random_weights = True


class Halve(Calibrator):
    """Halves every layer's offset."""

    name = "qa-halve"

    def offset_scale(self, n_layers: int) -> torch.Tensor:
        return torch.full((n_layers,), 0.5)


class Shift(Calibrator):
    name = "qa-shift"

    def calibrate(self, inversion: Inversion) -> Inversion:
        return inversion


with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)

    class OldShift(Calibrator):
        name = "qa-old-shift"

        def apply(self, inversion: Inversion) -> Inversion:  # type: ignore[override]
            return inversion


class NoWeights(Halve):
    name = "qa-no-weights"
    random_weights = False


def _add() -> None:
    mod = types.ModuleType("qa_pkg")

    @hookimpl
    def register_losses(register: Any) -> None:
        for cls in (PixelL1, LearnedL1, DeclaredRandom):
            register(cls)

    @hookimpl
    def register_calibrators(register: Any) -> None:
        for cls in (Halve, Shift, OldShift, NoWeights):
            register(cls)

    mod.register_losses = register_losses  # type: ignore[attr-defined]
    mod.register_calibrators = register_calibrators  # type: ignore[attr-defined]
    get_registry().add_plugin(mod, "qa-pkg")


def _install(hook: str, cls: type, package: str) -> None:
    """``cls`` registered through ``hook`` by a package called ``package``."""
    mod = types.ModuleType(package.replace("-", "_"))

    def register_one(register: Any) -> None:
        register(cls)

    register_one.__name__ = hook
    setattr(mod, hook, hookimpl(register_one))
    get_registry().add_plugin(mod, package)


@pytest.mark.parametrize(("kind", "name", "origin"), [
    ("loss", "qa-l1", "none"),             # was "random": `adapt` said RANDOM WEIGHTS
    ("calibrator", "qa-halve", "none"),
    ("loss", "qa-learned-l1", "random"),   # a parameter and no checkpoint: untrained
    ("loss", "qa-declared-random", "random"),
])
def test_only_a_plugin_holding_tensors_is_random_without_a_checkpoint(kind: str, name: str,
                                                                       origin: str) -> None:
    _add()
    obj = load_plugin(kind, name)
    prov = provenance_of(obj)
    assert prov is not None and prov.origin == origin
    assert prov.random is (origin == "random")


def test_a_calibrators_hook_is_listed_new_name_or_old() -> None:
    _add()
    reg = get_registry()
    caps = {name: {c["name"] for c in capabilities(reg.get("calibrator", name))}
            for name in ("qa-halve", "qa-shift", "qa-old-shift")}
    assert "calibrate" not in caps["qa-halve"] and "offset_scale" in caps["qa-halve"]
    assert "calibrate" in caps["qa-shift"] and "calibrate" in caps["qa-old-shift"]


def test_plugins_says_what_the_class_declares_about_weights(capsys) -> None:
    _add()
    said = {}
    for name in ("qa-no-weights", "qa-halve"):
        code, out, _ = run(capsys, "plugins", name, "--kind", "calibrator")
        assert code == 0
        said[name] = " ".join(out.split())
    assert "weights: needs none: a bare name builds it as it is (it declares random_weights " \
           "= False)" in said["qa-no-weights"]
    assert "builds random weights (if it holds any parameters or buffers)" in said["qa-halve"]


def test_a_class_registered_under_another_name_is_refused() -> None:
    """`register(cls, name="alias")` was accepted, but the objects kept the class's name and
    their checkpoints named a plugin that is not registered ("needs the calibrator plugin
    'qa-halve', which is not installed")."""
    from stylebridge.errors import RegistryError
    from stylebridge.registry.registry import Registry

    mod = types.ModuleType("qa_alias")

    @hookimpl
    def register_calibrators(register: Any) -> None:
        register(Halve, name="halver")

    mod.register_calibrators = register_calibrators  # type: ignore[attr-defined]
    with pytest.raises(RegistryError) as info:
        Registry(builtins=False, entry_points=False, extra_plugins=[mod]).names("calibrator")
    assert str(info.value) == (
        "plugin 'qa_alias' registered calibrator Halve as 'halver', but its objects and "
        "checkpoints are named 'qa-halve' (the class's name): set name = 'halver' on the "
        "class and register it without name=")


def test_adapt_says_why_a_metric_of_images_alone_is_refused() -> None:
    """`adapt --metric` of a metric that needs no target (clip_quality, a per-image
    brightness score) said "it compares sets of images", which is FID's reason."""
    from stylebridge.errors import StylebridgeError
    from stylebridge.pipelines.output_metrics import check_output_metrics

    said = {}
    for name in ("clip_quality", "fid"):
        with pytest.raises(StylebridgeError) as info:
            check_output_metrics([name])
        said[name] = str(info.value)
    assert said["clip_quality"] == ("--metric clip_quality: it scores images alone, not a "
                                    "picture with its photo; use `stylebridge eval` on the "
                                    "written files")
    assert said["fid"].startswith("--metric fid: it compares sets of images, not a picture")


def test_a_method_overriding_weight_deltas_only_declares_weight_offsets() -> None:
    """`has_weight_offsets()` stayed False for such a class: `adapt` applied its deltas, but
    train featureshift (and a batch mixing domains) rendered the domain without them, and
    only `stylebridge plugins NAME` warned."""
    from stylebridge.core.interfaces import DomainMethod

    class OnlyDeltas(DomainMethod):
        name = "qa-only-deltas"

        def styles(self, generator: Any, w_plus: torch.Tensor,
                   offset_scale: Any = None) -> list[torch.Tensor]:
            return generator.styles(w_plus)

        def weight_deltas(self, generator: Any, offset_scale: Any = None) -> dict[int, Any]:
            return {0: torch.ones(1)}

    class Declares(OnlyDeltas):
        def has_weight_offsets(self) -> bool:
            return False  # its own answer stands

    class Inherits(OnlyDeltas):
        pass

    class StylesOnly(DomainMethod):
        def styles(self, generator: Any, w_plus: torch.Tensor,
                   offset_scale: Any = None) -> list[torch.Tensor]:
            return generator.styles(w_plus)

    from stylebridge.plugins.domains.stylespace import StyleSpace

    class MoreThanStyles(StyleSpace):  # a built-in's subclass: StyleSpace answers False
        name = "qa-more"

        def weight_deltas(self, generator: Any, offset_scale: Any = None) -> dict[int, Any]:
            return {0: torch.ones(1)}

    assert MoreThanStyles.has_weight_offsets is not StyleSpace.has_weight_offsets
    assert OnlyDeltas().has_weight_offsets() is True
    assert Inherits().has_weight_offsets() is True
    assert Declares().has_weight_offsets() is False
    assert StylesOnly().has_weight_offsets() is False


def test_a_plugin_without_a_description_says_how_to_give_one(capsys) -> None:
    """A class without a docstring showed an empty cell in `stylebridge plugins` (the docs'
    own StyleGain example has none)."""
    from stylebridge.cli.commands.plugins import NO_DESCRIPTION

    class Bare(Halve):
        name = "qa-bare"

    _install("register_calibrators", Bare, "qa-bare")
    code, out, _ = run(capsys, "plugins")
    assert code == 0 and "qa-bare" in out
    assert "(no description: give the class" in " ".join(out.split())
    code, out, _ = run(capsys, "plugins", "qa-bare")
    assert code == 0 and f"calibrator qa-bare from qa-bare: {NO_DESCRIPTION}" in " ".join(out.split())


class MeanBrightnessGap(Metric):
    """Mean brightness difference (means only: no per-image values)."""

    name = "qa-gap"

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._sum, self._n = 0.0, 0

    def update(self, pred: torch.Tensor, target: torch.Tensor | None = None,
               **context: Any) -> None:
        assert target is not None
        self._sum += float((pred.mean() - target.mean()).abs()) * pred.shape[0]
        self._n += pred.shape[0]

    def compute(self) -> dict[str, float]:
        return {"gap": self._sum / max(self._n, 1)}


@pytest.mark.slow  # the tiny preset and adapt (~4 s)
def test_adapt_says_which_metrics_have_per_photo_values(tmp_path: Path, capsys) -> None:
    """`adapt` said "each photo's own values: metrics.json (per_photo)" also for a metric that
    keeps none (no `last`): per_photo held nothing of it."""
    from stylebridge.pipelines.presets import build_tiny_preset

    _install("register_metrics", MeanBrightnessGap, "qa-gap")
    preset = build_tiny_preset(tmp_path / "preset")
    out = tmp_path / "ad"
    code, text, err = run(capsys, "adapt", "-e", f"e4e:{preset.e4e}", "-g", str(preset.generator),
                          "-m", str(sorted(preset.domains.glob("*.safetensors"))[0]),
                          "--no-align", "--metric", "mse", "--metric", "qa-gap",
                          str(preset.images), "--out", str(out))
    assert code == 0, err
    assert (f"means of 3 photos; each photo's own values of mse: {out / 'metrics.json'} "
            "(per_photo); gap: means only") in " ".join(text.split())


def test_a_metric_whose_per_photo_values_are_all_null_still_has_them(tmp_path: Path) -> None:
    """id with no face found keeps a null per photo: the line said "id[dlib]: means only"."""
    import json

    from stylebridge.cli.commands.adapt import _per_photo_keys

    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"per_photo": {
        "a.png": {"inversion": {"id[dlib]": None, "mse": 0.1}, "pixar": {"id[dlib]": None}},
        "b.png": {"inversion": {"id[dlib]": None, "mse": 0.2}}}}))
    assert _per_photo_keys(path) == {"id[dlib]", "mse"}
    path.write_text(json.dumps({"per_photo": {"a.png": {"psnr": None}}}))  # invert's records
    assert _per_photo_keys(path) == {"psnr"}
