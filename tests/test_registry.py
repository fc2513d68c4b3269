"""The pluggy registry: built-ins via hooks, entry-point discovery, conflicts, lookup errors."""

from __future__ import annotations

import importlib.metadata
import tomllib
import types
from pathlib import Path
from typing import Any

import pytest
import torch

from stylebridge.core.interfaces import Converter, Encoder, Inversion, Preprocessing
from stylebridge.errors import CheckpointError, RegistryError, SpecError, StylebridgeError
from stylebridge.registry import KINDS, Registry, hookimpl
from stylebridge.registry import registry as registry_mod

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "stylebridge-example-encoder"


class _ToyEncoder(Encoder):
    name = "toy"

    def __init__(self, n_latent: int = 4, style_dim: int = 8) -> None:
        super().__init__()
        self.preprocessing = Preprocessing(size=8)
        self.n_latent, self.style_dim = n_latent, style_dim
        self.w = torch.nn.Parameter(torch.zeros(n_latent, style_dim))

    def config(self) -> dict[str, Any]:
        return {"n_latent": self.n_latent, "style_dim": self.style_dim}

    def encode(self, images: torch.Tensor) -> Inversion:
        return Inversion(w_plus=self.w.expand(images.shape[0], -1, -1))


def _plugin(name: str, *classes: type) -> types.ModuleType:
    mod = types.ModuleType(name)

    @hookimpl
    def register_encoders(register):
        for cls in classes:
            register(cls)

    mod.register_encoders = register_encoders  # type: ignore[attr-defined]
    return mod


def test_builtins_register_through_hooks() -> None:
    reg = Registry(entry_points=False)
    assert {"stylegan2-rosinality", "stylegan2-nvlabs"} <= set(reg.names("converter"))
    assert {"plugins", "info", "convert", "generate"} <= set(reg.names("command"))
    for entry in reg.all_entries():
        assert entry.provider == "stylebridge"
    # every built-in kind is a hook of the plugin manager, and only those
    hooks = {name for name in dir(reg.plugin_manager.hook) if name.startswith("register_")}
    assert hooks == {spec[0] for spec in KINDS.values()}


def test_extra_plugin_is_created_by_name() -> None:
    reg = Registry(builtins=False, entry_points=False, extra_plugins=[_plugin("toy_pkg", _ToyEncoder)])
    entry = reg.get("encoder", "toy")
    assert entry.provider == "toy_pkg"
    enc = reg.create("encoder", "toy", n_latent=3, style_dim=5)
    inv = enc.encode(torch.zeros(2, 3, 8, 8))
    assert inv.w_plus.shape == (2, 3, 5)


def test_duplicate_names_name_both_providers() -> None:
    reg = Registry(builtins=False, entry_points=False,
                   extra_plugins=[_plugin("pkg_one", _ToyEncoder), _plugin("pkg_two", _ToyEncoder)])
    with pytest.raises(RegistryError, match="'toy' is registered twice: by 'pkg_one' and by 'pkg_two'"):
        reg.names("encoder")


def test_one_package_registering_a_name_twice_is_named_once() -> None:
    reg = Registry(builtins=False, entry_points=False,
                   extra_plugins=[_plugin("pkg_one", _ToyEncoder, _ToyEncoder)])
    with pytest.raises(RegistryError) as info:
        reg.names("encoder")
    assert str(info.value) == "encoder 'toy' is registered twice by 'pkg_one'"


def test_unknown_name_suggests_close_matches() -> None:
    reg = Registry(entry_points=False)
    with pytest.raises(RegistryError) as info:
        reg.get("converter", "stylegan2-rosinaliti")
    msg = str(info.value)
    assert "did you mean 'stylegan2-rosinality'" in msg and "known:" in msg
    empty = Registry(builtins=False, entry_points=False)
    with pytest.raises(RegistryError, match="unknown encoder 'zzz' \\(known: none are installed\\)"):
        empty.get("encoder", "zzz")
    with pytest.raises(RegistryError, match="unknown plugin kind"):
        reg.get("widget", "x")


def test_wrong_type_and_bad_name_are_rejected() -> None:
    class NotAnEncoder:
        name = "nope"

    reg = Registry(builtins=False, entry_points=False, extra_plugins=[_plugin("bad", NotAnEncoder)])
    with pytest.raises(RegistryError, match="must be a subclass of Encoder"):
        reg.names("encoder")

    class BadName(_ToyEncoder):
        name = "Bad Name"

    reg = Registry(builtins=False, entry_points=False, extra_plugins=[_plugin("bad", BadName)])
    with pytest.raises(RegistryError, match="invalid name 'Bad Name'"):
        reg.names("encoder")


def test_converter_instances_register() -> None:
    class Conv(Converter):
        name = "noop-conv"

        def convert(self, src, dst, **options):  # pragma: no cover - not called
            raise NotImplementedError

    mod = types.ModuleType("conv_pkg")

    @hookimpl
    def register_converters(register):
        register(Conv())

    mod.register_converters = register_converters  # type: ignore[attr-defined]
    reg = Registry(builtins=False, entry_points=False, extra_plugins=[mod])
    assert reg.names("converter") == ["noop-conv"]
    assert reg.create("converter", "noop-conv") is reg.get("converter", "noop-conv").obj


def _example_entry_points() -> list[importlib.metadata.EntryPoint]:
    meta = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())
    eps = meta["project"]["entry-points"]["stylebridge"]
    return [importlib.metadata.EntryPoint(name=k, value=v, group="stylebridge") for k, v in eps.items()]


@pytest.fixture
def example_registry(monkeypatch: pytest.MonkeyPatch) -> Registry:
    """A registry that discovers the example package from examples/ through its declared
    entry point (not a pip-installed copy, which may be older than the source)."""
    import sys

    module = "stylebridge_example_encoder"
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))
    for name in (module, f"{module}.encoder", f"{module}.info"):
        monkeypatch.setitem(sys.modules, name, None)  # restored (or removed) after the test
        monkeypatch.delitem(sys.modules, name)        # so the import below reads examples/
    eps = _example_entry_points()
    monkeypatch.setattr(registry_mod.importlib.metadata, "entry_points",
                        lambda group=None: eps if group == "stylebridge" else [])
    reg = Registry()
    assert Path(sys.modules[module].__file__).is_relative_to(EXAMPLE / "src")
    return reg


def test_entry_point_discovery_of_the_example_plugin(example_registry: Registry) -> None:
    """The example package's declared entry point, loaded through the registry's discovery."""
    reg = example_registry
    entry = reg.get("encoder", "tiny-pool")
    # no distribution behind the entry point here: the provider is the entry point's module
    assert entry.provider == "stylebridge_example_encoder.encoder"
    assert not reg.failures
    enc = reg.create("encoder", "tiny-pool", n_latent=6, style_dim=16, input_size=32)
    images = torch.rand(2, 3, 50, 40)
    assert enc.encode(images).w_plus.shape == (2, 6, 16)


@pytest.mark.parametrize(("options", "message"), [
    ({"n_latent": -1}, "ValueError: n_latent must be >= 1, got -1"),
    ({"style_dim": 0}, "ValueError: style_dim must be >= 1, got 0"),
    ({"grid": 0}, "ValueError: grid must be >= 1, got 0"),
    ({"input_size": -64}, "ValueError: input_size must be >= 1, got -64"),
    ({"n_latent": 2.5}, "TypeError: n_latent must be an integer, got 2.5"),
    ({"style_dim": "wide"}, "TypeError: style_dim must be an integer, got 'wide'"),
    ({"grid": True}, "TypeError: grid must be an integer, got True"),
])
def test_example_plugin_rejects_bad_options(example_registry: Registry, options: dict[str, Any],
                                            message: str) -> None:
    """Bad options are a one-line error naming the plugin and its package, not a torch
    RuntimeError."""
    with pytest.raises(RegistryError) as exc:
        example_registry.create("encoder", "tiny-pool", **options)
    assert str(exc.value) == ("cannot build encoder 'tiny-pool' (from "
                              f"stylebridge_example_encoder.encoder) from its options: {message}")


def test_example_plugin_spec_with_a_negative_option_is_one_line(
        example_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--encoder tiny-pool:n_latent=-1``: the spec path of every command."""
    from stylebridge.registry.resolve import load_plugin

    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "no-weights"))
    with pytest.raises(RegistryError, match=r"^cannot build encoder 'tiny-pool' .*: "
                       r"ValueError: n_latent must be >= 1, got -1$"):
        load_plugin("encoder", "tiny-pool:n_latent=-1", registry=example_registry)
    enc = load_plugin("encoder", "tiny-pool:n_latent=2,style_dim=4", registry=example_registry)
    assert enc.config() == {"n_latent": 2, "style_dim": 4, "grid": 4, "input_size": 64}


def test_broken_entry_point_is_reported_not_fatal(monkeypatch) -> None:
    ep = importlib.metadata.EntryPoint(name="broken", value="no_such_module_xyz", group="stylebridge")
    monkeypatch.setattr(registry_mod.importlib.metadata, "entry_points",
                        lambda group=None: [ep] if group == "stylebridge" else [])
    reg = Registry()
    assert "stylegan2-rosinality" in reg.names("converter")
    assert len(reg.failures) == 1 and "ModuleNotFoundError" in reg.failures[0].error


def test_installed_example_plugin_is_discovered_for_real() -> None:
    """When the example package is pip-installed (CI does it), real discovery finds it."""
    try:
        importlib.metadata.distribution("stylebridge-example-encoder")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("stylebridge-example-encoder is not installed (.ci/run installs it)")
    reg = Registry()
    assert reg.get("encoder", "tiny-pool").provider == "stylebridge-example-encoder"


def test_save_and_load_plugin_object_from_checkpoint(tmp_path: Path) -> None:
    from stylebridge.core.checkpoint import save_checkpoint

    reg = Registry(builtins=False, entry_points=False, extra_plugins=[_plugin("toy_pkg", _ToyEncoder)])
    enc = reg.create("encoder", "toy", n_latent=2, style_dim=3)
    with torch.no_grad():
        enc.w.copy_(torch.arange(6.0).view(2, 3))
    path = save_checkpoint(tmp_path / "toy.safetensors", enc.state_dict(), kind="encoder",
                           plugin=enc.name, config=enc.config())
    again = reg.load("encoder", path)
    assert isinstance(again, _ToyEncoder) and torch.equal(again.w, enc.w)
    with pytest.raises(CheckpointError, match="needs the encoder plugin 'toy', which is not "
                       "installed"):
        Registry(builtins=False, entry_points=False).load("encoder", path)


# ---------------------------------------------------------------------------------------------
# A faulty installed package is isolated: reported, its hook dropped, everything else works


def _install(monkeypatch: pytest.MonkeyPatch, *modules: types.ModuleType) -> None:
    """Make ``modules`` importable and declare each as an entry point of the group."""
    import sys

    eps = []
    for mod in modules:
        monkeypatch.setitem(sys.modules, mod.__name__, mod)
        eps.append(importlib.metadata.EntryPoint(name=mod.__name__, value=mod.__name__,
                                                 group="stylebridge"))
    monkeypatch.setattr(registry_mod.importlib.metadata, "entry_points",
                        lambda group=None: eps if group == "stylebridge" else [])


def _module(name: str, **hooks: Any) -> types.ModuleType:
    mod = types.ModuleType(name)
    for attr, fn in hooks.items():
        setattr(mod, attr, hookimpl(fn))
    return mod


class _E4EClash(_ToyEncoder):
    name = "e4e"


class _BadName(_ToyEncoder):
    name = "Bad Name"


def _raising(register):
    raise RuntimeError("exploded on purpose")


def test_faulty_installed_packages_are_isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    good = _plugin("good_pkg", _ToyEncoder)
    raising = _module("raising_pkg", register_encoders=_raising)
    signature = _module("signature_pkg", register_calibrators=lambda reg: None)
    clash = _plugin("clash_pkg", _E4EClash)
    partial = _plugin("partial_pkg", type("Fine", (_ToyEncoder,), {"name": "fine"}), _BadName)
    typo = _module("typo_pkg", register_calibrator=lambda register: None,
                   register_losses=lambda register: None)
    _install(monkeypatch, good, raising, signature, clash, partial, typo)
    reg = Registry()
    names = reg.names("encoder")
    assert "toy" in names and "e4e" in names and "fine" not in names  # partial: all or nothing
    assert reg.get("encoder", "e4e").provider == "stylebridge"
    assert "stylegan2-rosinality" in reg.names("converter")
    errors = {f.provider: f.error for f in reg.failures}
    assert set(errors) == {"raising_pkg", "signature_pkg", "clash_pkg", "partial_pkg", "typo_pkg"}
    assert "register_encoders failed" in errors["raising_pkg"]
    assert "RuntimeError: exploded on purpose" in errors["raising_pkg"]
    assert errors["signature_pkg"].startswith("not loaded:") and "reg" in errors["signature_pkg"]
    assert errors["clash_pkg"] == ("encoder 'e4e' is a built-in name: this registration is "
                                   "ignored (rename it)")
    assert "invalid name 'Bad Name'" in errors["partial_pkg"]
    assert "did you mean 'register_calibrators'" in errors["typo_pkg"]
    # an unknown name points at the packages that reported problems (clash_pkg loaded; only
    # its clashing name was dropped, so "failed to load" would not be true of it)
    with pytest.raises(RegistryError, match="reported problems, see `stylebridge plugins`") as info:
        reg.get("encoder", "fine")
    assert "clash_pkg" in str(info.value) and "raising_pkg" in str(info.value)
    assert "failed to load" not in str(info.value)


class _Shared(_ToyEncoder):
    name = "shared"


class _Other(_ToyEncoder):
    name = "other"


class _Abstract(Encoder):
    name = "abstract-enc"


@pytest.mark.parametrize("order", [("pkg_a", "pkg_b"), ("pkg_b", "pkg_a")])
def test_a_name_two_installed_packages_claim_is_used_by_neither(monkeypatch, order) -> None:
    """Which package would win depends on the install order: neither does, both are told,
    and each keeps its other names."""
    mods = {"pkg_a": _plugin("pkg_a", _Shared, _ToyEncoder),
            "pkg_b": _plugin("pkg_b", _Shared, _Other)}
    _install(monkeypatch, *(mods[name] for name in order))
    reg = Registry()
    assert {"toy", "other"} <= set(reg.names("encoder")) and "shared" not in reg.names("encoder")
    errors = {f.provider: f.error for f in reg.failures}
    both = " and ".join(repr(p) for p in order)
    assert errors == {p: f"encoder 'shared' is registered by {both}: neither is used "
                         "(uninstall one, or rename it)" for p in order}
    with pytest.raises(RegistryError, match=rf"^encoder 'shared' is registered by {both}: "
                                            "neither is used; uninstall one of them"):
        reg.get("encoder", "shared")


def test_import_time_exit_missing_marker_and_abstract_class_are_reported(monkeypatch) -> None:
    import sys

    exiting = types.ModuleType("exiting_pkg")
    unmarked = types.ModuleType("unmarked_pkg")

    def register_metrics(register):  # no @hookimpl
        raise AssertionError("pluggy never calls an unmarked function")

    unmarked.register_metrics = register_metrics
    abstract = _plugin("abstract_pkg", _Abstract)
    _install(monkeypatch, exiting, unmarked, abstract)
    real_load = importlib.metadata.EntryPoint.load

    def load(ep):
        if ep.value == "exiting_pkg":
            sys.exit("this plugin needs CUDA")
        return real_load(ep)

    monkeypatch.setattr(importlib.metadata.EntryPoint, "load", load)
    reg = Registry()
    assert "abstract-enc" not in reg.names("encoder") and "e4e" in reg.names("encoder")
    errors = {f.provider: f.error for f in reg.failures}
    assert errors["exiting_pkg"] == "SystemExit: this plugin needs CUDA"
    assert errors["unmarked_pkg"] == (
        "function 'register_metrics' has no @hookimpl marker (from stylebridge.registry import "
        "hookimpl), so pluggy does not call it (ignored)")
    assert errors["abstract_pkg"] == (
        "register_encoders failed, its encoders are not available: RegistryError: plugin "
        "'abstract_pkg' registered encoder _Abstract, which does not implement encode (an "
        "abstract class)")


def test_hook_failures_name_the_kind_in_plural(monkeypatch) -> None:
    _install(monkeypatch, _module("losses_pkg", register_losses=_raising))
    reg = Registry()
    reg.names("loss")  # hooks run when the plugins are first listed
    errors = {f.provider: f.error for f in reg.failures}
    assert errors["losses_pkg"].startswith("register_losses failed, its losses are not available")


def test_cli_keeps_working_with_a_broken_package(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from stylebridge.cli.main import main

    _install(monkeypatch, _module("raising_pkg", register_encoders=_raising))
    monkeypatch.setattr(registry_mod, "_REGISTRY", None)
    assert main(["plugins", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [f["provider"] for f in data["failed"]] == ["raising_pkg"]
    assert "e4e" in {e["name"] for e in data["encoder"]}
    monkeypatch.setattr(registry_mod, "_REGISTRY", None)


def test_explicit_plugins_still_fail_loudly() -> None:
    """extra_plugins (tests, embedding code) are the caller's code: faults raise at once."""
    with pytest.raises(RegistryError, match="not a stylebridge hook; did you mean "
                                            "'register_calibrators'"):
        Registry(builtins=False, entry_points=False,
                 extra_plugins=[_module("typo", register_calibrator=lambda register: None)])
    with pytest.raises(RegistryError, match="hook signature does not match"):
        Registry(builtins=False, entry_points=False,
                 extra_plugins=[_module("sig", register_calibrators=lambda reg: None)])
    reg = Registry(builtins=False, entry_points=False, extra_plugins=[_module(
        "raising", register_encoders=_raising)])
    with pytest.raises(RuntimeError, match="exploded"):
        reg.names("encoder")


def test_constructor_value_errors_name_the_plugin_and_package() -> None:
    class Picky(_ToyEncoder):
        name = "picky"

        def __init__(self, mode: str = "a") -> None:
            if mode not in ("a", "b"):
                raise ValueError(f"mode must be a or b, got {mode!r}")
            super().__init__()

    reg = Registry(builtins=False, entry_points=False, extra_plugins=[_plugin("picky_pkg", Picky)])
    with pytest.raises(RegistryError, match=r"cannot build encoder 'picky' \(from picky_pkg\) "
                                            r"from its options: ValueError: mode must be a or b"):
        reg.create("encoder", "picky", mode="zzz")


def test_an_unknown_option_lists_the_accepted_ones() -> None:
    reg = Registry(builtins=False, entry_points=False, extra_plugins=[_plugin("toy_pkg", _ToyEncoder)])
    with pytest.raises(RegistryError, match=r"encoder 'toy' \(from toy_pkg\): unknown option\(s\) "
                                            r"n_latnet; did you mean 'n_latent'\? \(accepted: "
                                            r"n_latent, style_dim\)"):
        reg.create("encoder", "toy", n_latnet=3)


def test_an_option_for_a_plugin_without_options_is_named_unknown() -> None:
    class Bare(_ToyEncoder):
        name = "bare"

        def __init__(self) -> None:
            super().__init__()

    reg = Registry(builtins=False, entry_points=False, extra_plugins=[_plugin("bare_pkg", Bare)])
    with pytest.raises(RegistryError, match=r"encoder 'bare' \(from bare_pkg\): unknown option\(s\) "
                                            r"size \(accepted: none\)"):
        reg.create("encoder", "bare", size=3)


# ---------------------------------------------------------------------------------------------
# resolve.create: the one way from a spec to an object and its provenance


class _NeedsWeights(_ToyEncoder):
    name = "needy"
    requires_weights = True


def _toy_registry() -> Registry:
    return Registry(builtins=False, entry_points=False,
                    extra_plugins=[_plugin("toy_pkg", _ToyEncoder, _NeedsWeights)])


def _toy_checkpoint(path: Path, **extra: Any) -> tuple[Path, _ToyEncoder]:
    from stylebridge.core.checkpoint import save_checkpoint

    enc = _ToyEncoder(n_latent=2, style_dim=3)
    with torch.no_grad():
        enc.w.copy_(torch.arange(6.0).view(2, 3))
    save_checkpoint(path, enc.state_dict(), kind="encoder", plugin="toy", config=enc.config(),
                    extra=extra or None)
    return path, enc


def test_create_takes_the_four_spec_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stylebridge.registry.resolve import Provenance, create, provenance_of, spec_random

    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "no-weights"))
    reg = _toy_registry()
    path, enc = _toy_checkpoint(tmp_path / "toy.safetensors")

    # NAME: built from its defaults, no checkpoint -> random weights
    obj, prov = create("encoder", "toy", registry=reg)
    assert isinstance(obj, _ToyEncoder) and obj.config() == {"n_latent": 4, "style_dim": 8}
    assert prov == Provenance("random", None, spec="toy") and prov.random
    assert provenance_of(obj) is prov and spec_random("encoder", "toy", obj)
    assert not obj.training  # modules come back in eval mode

    # CKPT: the header names the plugin
    obj, prov = create("encoder", str(path), registry=reg)
    assert isinstance(obj, _ToyEncoder) and torch.equal(obj.w, enc.w)
    assert prov.origin == "checkpoint" and prov.path == path and not prov.random
    assert prov.describe() == f"checkpoint {path}"

    # NAME:CKPT (the name must agree with the header)
    obj, prov = create("encoder", f"toy:{path}", registry=reg)
    assert torch.equal(obj.w, enc.w) and prov.origin == "checkpoint"
    with pytest.raises(CheckpointError):
        create("encoder", f"needy:{path}", registry=reg)

    # NAME:CKPT:k=v -- options override the header's config (here: a shape that no longer fits)
    with pytest.raises(CheckpointError, match=r"encoder 'toy' tensor w has shape \[2, 3\], expected \[5, 3\] by its config"):
        create("encoder", f"toy:{path}:n_latent=5", registry=reg)
    obj, _ = create("encoder", f"toy:{path}:style_dim=3", registry=reg)
    assert obj.config() == {"n_latent": 2, "style_dim": 3}
    # NAME:k=v: no file, options build it
    obj, prov = create("encoder", "toy:n_latent=3", registry=reg)
    assert obj.config() == {"n_latent": 3, "style_dim": 8} and prov.random
    # Registry.resolve is the same entry
    obj, prov = reg.resolve("encoder", str(path))
    assert torch.equal(obj.w, enc.w) and prov.origin == "checkpoint"


def test_create_provenance_follows_the_checkpoint_header(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from stylebridge.registry.resolve import create, spec_random

    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "no-weights"))
    reg = _toy_registry()
    rand, _ = _toy_checkpoint(tmp_path / "rand.safetensors", random_weights=True)
    obj, prov = create("encoder", str(rand), registry=reg)
    assert prov.random and prov.origin == "random" and prov.path == rand
    assert spec_random("encoder", str(rand), obj)
    conv, _ = _toy_checkpoint(tmp_path / "conv.safetensors", source_file="upstream.pt")
    obj, prov = create("encoder", str(conv), registry=reg)
    assert prov.origin == "converted" and prov.source_file == "upstream.pt" and not prov.random
    assert prov.describe() == f"converted from upstream.pt ({conv})"
    assert not spec_random("encoder", str(conv), obj)
    # a plugin that declares real weights is not random without a checkpoint
    fresh = _ToyEncoder()
    fresh.random_weights = False
    assert not spec_random("encoder", "toy", fresh)


def test_create_official_weights_and_the_missing_weights_hint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stylebridge.errors import StylebridgeError
    from stylebridge.registry.resolve import create
    from stylebridge.registry.weights import WeightsEntry, WeightsManager

    reg = _toy_registry()
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "no-weights"))
    with pytest.raises(StylebridgeError) as info:
        create("encoder", "needy", registry=reg)
    text = str(info.value)
    assert text == ("encoder 'needy' needs weights; use needy:CHECKPOINT (its weights come with "
                    "plugin package toy_pkg)")
    assert "\n" not in text

    # a bare name loads the installed weights, which are "official"
    path, enc = _toy_checkpoint(tmp_path / "toy.safetensors", source_file="toy_upstream.pt")
    entry = WeightsEntry(name="toy-w", kind="encoder", plugin="toy", filename="toy.safetensors")
    home = tmp_path / "home"
    WeightsManager(home, manifest=[entry]).register("toy-w", path)
    monkeypatch.setattr("stylebridge.registry.weights.WeightsManager",
                        lambda *a, **k: WeightsManager(home, manifest=[entry]))
    obj, prov = create("encoder", "toy", registry=reg)
    assert torch.equal(obj.w, enc.w)
    assert prov.origin == "official" and prov.source_file == "toy_upstream.pt" and not prov.random


def test_create_resolves_the_generator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import tiny_generator

    from stylebridge.core.stylegan2.checkpoint import save_stylegan2
    from stylebridge.errors import SpecError, StylebridgeError
    from stylebridge.registry.resolve import create, load_generator

    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "no-weights"))
    gen = tiny_generator()
    path = save_stylegan2(tmp_path / "g.safetensors", gen, extra={"source_file": "ffhq.pkl"})
    for spec in (str(path), f"stylegan2:{path}"):
        loaded, prov = create("generator", spec)
        assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(),
                                                      gen.state_dict().values(), strict=True))
        assert prov.origin == "converted" and prov.path == path and not prov.random
    rand = save_stylegan2(tmp_path / "r.safetensors", gen, extra={"random_weights": True})
    _, prov = load_generator(str(rand))
    assert prov.random
    with pytest.raises(StylebridgeError) as info:
        load_generator(f"stylegan3:{path}")
    assert str(info.value) == (f"--generator 'stylegan3:{path}': unknown generator 'stylegan3' "
                               "(known: stylegan2)")
    with pytest.raises(SpecError, match="names no checkpoint file"):
        create("generator", "nothing-installed")
    with pytest.raises(SpecError, match="no generator weights are installed"):
        create("generator", "stylegan2")


def test_create_gives_instance_plugins_no_weights_provenance() -> None:
    from stylebridge.registry.resolve import create

    conv, prov = create("converter", "stylegan2-rosinality", registry=Registry(entry_points=False))
    assert isinstance(conv, Converter) and prov.origin == "none" and not prov.random


def test_needs_weights_hints_say_how_to_make_them(tmp_path, monkeypatch) -> None:
    """A bare name of a plugin that needs weights: alpha says to fit one with `calibrate`; a
    domain method, which has many published domains, lists some by name instead of picking
    one as if it were the method's weights."""
    from stylebridge.registry.resolve import create

    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path))   # nothing installed
    with pytest.raises(StylebridgeError) as info:
        create("calibrator", "alpha")
    assert str(info.value) == ("calibrator 'alpha' needs weights; use alpha:CHECKPOINT (fit one "
                               "for your encoder and generator with `stylebridge calibrate`)")
    with pytest.raises(StylebridgeError) as info:
        create("domain_method", "stylespace")
    text = str(info.value)
    assert text.startswith("domain method 'stylespace' needs weights: give stylespace:CHECKPOINT "
                           "(train one with `stylebridge train domain` or convert an official "
                           "domain with `stylebridge convert`) or a published one by name (")
    assert "pixar" in text and text.endswith("`stylebridge weights list`)") and "\n" not in text


class _RandomInit(_ToyEncoder):
    """Initialised from torch's global random stream, as most networks are."""

    name = "toy-random"

    def __init__(self, n_latent: int = 4, style_dim: int = 8) -> None:
        super().__init__(n_latent, style_dim)
        self.w = torch.nn.Parameter(torch.randn(n_latent, style_dim))


def test_a_plugin_built_from_its_defaults_gets_the_same_random_weights_each_time() -> None:
    """``create`` by name without a checkpoint seeds from the spec: a random-weight run can be
    compared with the last one; the caller's random stream is left where it was."""
    from stylebridge.registry.resolve import create

    reg = Registry(builtins=False, entry_points=False,
                   extra_plugins=[_plugin("toy_pkg", _RandomInit)])
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = create("encoder", "toy-random", registry=reg).obj
    assert torch.equal(torch.rand(3), expected_next)  # the global stream untouched
    torch.manual_seed(7)  # whatever the caller's state, the same spec gives the same weights
    b = create("encoder", "toy-random", registry=reg).obj
    c = create("encoder", "toy-random:style_dim=8,n_latent=4", registry=reg).obj
    d = create("encoder", "toy-random:n_latent=5", registry=reg).obj
    assert torch.equal(a.w, b.w) and a.w.std() > 0.5
    assert not torch.equal(a.w, c.w)  # options written out are another spec: other weights
    assert d.w.shape == (5, 8) and not torch.equal(d.w[:4], a.w)


def test_an_exception_inside_an_installed_plugin_names_its_package(monkeypatch, capsys) -> None:
    """A command line error raised by a third-party plugin's code says which package to
    report it to (file and line), while stylebridge's own errors stay as they are."""
    from stylebridge.cli.main import main

    source = '''
from stylebridge.cli.base import Command
from stylebridge.registry import hookimpl


class Boom(Command):
    name = "boom-test"
    help = "raises"

    def add_arguments(self, parser):
        pass

    def run(self, args, console):
        return helper()


def helper():
    raise RuntimeError("command exploded")


@hookimpl
def register_commands(register):
    register(Boom())
'''
    mod = types.ModuleType("boom_pkg.commands")
    mod.__file__ = "/somewhere/boom_pkg/commands.py"
    exec(compile(source, mod.__file__, "exec"), mod.__dict__)
    _install(monkeypatch, mod)
    monkeypatch.setattr(registry_mod, "_REGISTRY", None)
    try:
        assert main(["boom-test"]) == 1
        err = capsys.readouterr().err
        assert err == ("error: RuntimeError: command exploded (raised in plugin package "
                       "boom_pkg.commands (commands.py:18); rerun with --debug for the "
                       "traceback)\n")
    finally:
        monkeypatch.setattr(registry_mod, "_REGISTRY", None)


def test_a_nan_option_names_the_plugin_and_its_package() -> None:
    """``toy:n_latent=nan`` / ``--loss mse:1:w=nan``: the one-line refusal says whose option it
    is (before: "option n_latent=nan: expected a finite number" and nothing else)."""
    from stylebridge.pipelines.training.losses import build_loss_terms
    from stylebridge.registry.resolve import create

    reg = Registry(builtins=False, entry_points=False, extra_plugins=[_plugin("toy_pkg", _ToyEncoder)])
    with pytest.raises(SpecError) as info:
        create("encoder", "toy:n_latent=nan", registry=reg)
    assert str(info.value) == ("encoder 'toy' (from toy_pkg): option n_latent=nan: expected a "
                               "finite number (NaN and Inf are refused)")
    with pytest.raises(StylebridgeError) as info:
        build_loss_terms(["mse:1:w=inf"], registry=Registry(entry_points=False))
    assert str(info.value) == ("--loss 'mse:1:w=inf': option w=inf: expected a finite number "
                               "(NaN and Inf are refused)")


def test_a_spec_of_the_wrong_type_is_one_line() -> None:
    """`create("generator", 3)` was "'int' object has no attribute 'text'"."""
    import stylebridge

    for kind in ("generator", "encoder"):
        with pytest.raises(SpecError, match=r"spec: expected a string or a path, got int"):
            stylebridge.create(kind, 3)
