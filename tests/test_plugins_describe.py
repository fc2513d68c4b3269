"""`stylebridge plugins NAME`: one plugin's spec options, weights and optional capabilities."""

from __future__ import annotations

import json
from typing import ClassVar

import pytest
import torch
from test_cli import _fresh_registry, run  # noqa: F401  (an autouse fixture: a fresh registry)
from test_registry import _plugin

from stylebridge.core.interfaces import Encoder, Inversion, Preprocessing
from stylebridge.core.schema import Field
from stylebridge.registry import get_registry
from stylebridge.registry import registry as registry_mod
from stylebridge.registry.describe import capabilities, describe, options


def _caps(kind: str, name: str) -> dict[str, str]:
    entry = get_registry().get(kind, name)
    return {c["name"]: c["when"] for c in capabilities(entry)}


def test_fse_options_come_with_signature_defaults_and_schema_ranges(capsys) -> None:
    code, out, _ = run(capsys, "plugins", "fse", "--kind", "encoder", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["kind"] == "encoder" and info["class"].endswith(":FSEEncoder")
    rows = {row["name"]: row for row in info["options"]}
    # thesis / FSE defaults: feature mode, activation K=5, 18 w+ rows at 1024 px
    assert rows["mode"]["default"] == "features"
    assert rows["mode"]["allowed"] == "one of latents, features, shift"
    assert rows["layer"]["default"] == 5 and rows["n_latent"]["default"] == 18
    assert rows["resolution"]["default"] == 1024
    assert info["weights"]["requires_weights"] is True
    assert [w["name"] for w in info["weights"]["official"]] == ["fse-ffhq"]
    assert info["weights"]["official"][0]["noncommercial"] is True
    # FSE's feature_layer is a property following `mode`: listed, but not as always there
    assert _caps("encoder", "fse")["feature_layer"] == "depends on the options"


@pytest.mark.parametrize(("kind", "name", "has", "lacks"), [
    ("encoder", "styleres", {"bind_generator", "restore", "check_generator"}, set()),
    ("encoder", "e4e", set(), {"restore", "bind_generator", "feature_layer"}),
    ("domain_method", "hyperdomain", {"text_conditioned"}, set()),
    ("domain_method", "affine_plus", {"weight_deltas", "init_from"}, {"text_conditioned"}),
    ("metric", "fid", {"needs_target", "takes_reference"}, {"state", "with_domain_text"}),
    ("metric", "psnr", {"state"}, {"needs_target", "takes_reference", "with_domain_text"}),
    ("metric", "clip_quality", {"needs_target", "with_domain_text"}, {"takes_reference"}),
    ("calibrator", "alpha", {"fittable", "offset_scale"}, set()),
    ("renderer", "featureshift", {"needs_guide"}, set()),
    ("loss", "corr", {"requires", "required_fields", "bind_trained_fields"}, {"ramp"}),
])
def test_capabilities_follow_what_the_class_implements(kind, name, has, lacks) -> None:
    caps = _caps(kind, name)
    assert has <= set(caps), caps
    assert not lacks & set(caps), caps


def test_a_third_party_plugin_is_described_from_its_class() -> None:
    """A plugin package's encoder: options from its signature (a required one, a schema
    range), a property capability as 'depends on the options', an override as always."""

    class Toy(Encoder):
        name = "toy-describe"
        description = "a toy"
        preprocessing = Preprocessing(size=32)
        config_schema: ClassVar = {"depth": Field("int", 1, 8)}

        def __init__(self, width: int, depth: int = 2) -> None:
            super().__init__()
            self.width, self.depth = width, depth

        @property
        def feature_layer(self) -> int | None:
            return 5 if self.depth > 1 else None

        def restore(self, inversion: Inversion, generator) -> Inversion:
            return inversion

        def encode(self, images: torch.Tensor) -> Inversion:
            raise NotImplementedError

    reg = registry_mod.Registry(entry_points=False, extra_plugins=[_plugin("toy_pkg", Toy)])
    entry = reg.get("encoder", "toy-describe")
    assert options(entry) == [
        {"name": "width", "required": True, "default": None, "allowed": "an integer"},
        {"name": "depth", "required": False, "default": 2, "allowed": "an integer in 1..8"}]
    caps = {c["name"]: c["when"] for c in capabilities(entry)}
    assert caps == {"feature_layer": "depends on the options", "restore": "always"}
    info = describe(entry, lambda kind, plugin: [], lambda name: False)
    assert info["provider"] == "toy_pkg" and info["weights"]["official"] == []


def test_a_module_without_its_own_constructor_takes_no_option(capsys) -> None:
    """nn.Module's (*args, **kwargs) is no option list: `mse:foo=1` names the bad option."""
    from stylebridge.errors import RegistryError

    entry = get_registry().get("loss", "mse")
    assert options(entry) == []
    with pytest.raises(RegistryError, match=r"^loss 'mse': unknown option\(s\) foo "
                                            r"\(accepted: none\)$"):
        get_registry().create("loss", "mse", foo=1)


def test_a_name_in_two_kinds_shows_both_and_kind_picks_one(capsys) -> None:
    code, out, _ = run(capsys, "plugins", "id", "--json")
    assert code == 0
    assert sorted(row["kind"] for row in json.loads(out)) == ["loss", "metric"]
    code, out, _ = run(capsys, "plugins", "id", "--kind", "metric")
    assert code == 0 and out.startswith("metric id: ")
    assert "loss id" not in out


def test_an_official_weights_name_shows_the_plugin_it_loads_into(capsys,
                                                                  monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path))
    code, out, _ = run(capsys, "plugins", "pixar")
    assert code == 0
    first = " ".join(out.split())
    assert first.startswith("'pixar' is official weights (not installed) for the domain "
                            "method plugin 'stylespace'")
    assert "domain method stylespace:" in first


def test_unknown_names_are_one_line_with_a_suggestion(capsys) -> None:
    code, out, err = run(capsys, "plugins", "fsee")
    assert code == 2 and out == ""
    assert err.startswith("error: no plugin named 'fsee'; did you mean 'fse'")
    assert err.count("\n") == 1
    code, _, err = run(capsys, "plugins", "fse", "--kind", "metric")
    assert code == 2 and err.startswith("error: no metric plugin named 'fse'")
    code, _, err = run(capsys, "plugins", "--kind", "loss")
    assert code == 2 and err == ("error: --kind needs a plugin NAME (`stylebridge plugins` "
                                 "lists them all)\n")


def test_the_text_view_reads_at_80_columns(capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run(capsys, "plugins", "styleres")
    assert code == 0
    assert max(len(line) for line in out.splitlines()) <= 80
    text = " ".join(out.split())
    assert "feature_layer 8 an even integer in 2..21" in text  # StyleRes: the 64 px block
    assert "restore: rebuilds the parts of a saved inversion" in text


def test_every_catalogued_capability_is_declared_on_its_interface() -> None:
    """A typo in the catalogue would list a capability no plugin can have."""
    from stylebridge.core.interfaces import Plugin
    from stylebridge.registry.describe import _PLUGIN_CAPABILITIES, CAPABILITIES

    for base, caps in [*CAPABILITIES.items(), (Plugin, _PLUGIN_CAPABILITIES)]:
        for cap in caps:
            assert hasattr(base, cap.attr), (base.__name__, cap.attr)
            assert cap.test in ("override", "flag", "unflag", "value")


def test_a_typo_of_a_published_domain_suggests_it() -> None:
    from stylebridge.errors import RegistryError
    from stylebridge.registry.resolve import create

    with pytest.raises(RegistryError, match=r"^unknown domain method 'pixr': no plugin and no "
                                            r"published domain method has that name; did you "
                                            r"mean 'pixar'"):
        create("domain_method", "pixr")
    with pytest.raises(RegistryError, match=r"^unknown domain method 'nosuchdomain'; did you "
                                            r"mean 'hyperdomain'"):
        create("domain_method", "nosuchdomain")


def test_create_takes_a_path_and_auto_and_says_when_cuda_is_missing(tmp_path) -> None:
    """`stylebridge.create("generator", preset.generator)` (a Path) raised AttributeError;
    `device="auto"` was refused; device="cuda" without a GPU was torch's driver error."""
    import torch
    from conftest import tiny_generator

    from stylebridge.core.stylegan2.checkpoint import save_stylegan2
    from stylebridge.errors import StylebridgeError
    from stylebridge.registry.resolve import create

    path = save_stylegan2(tmp_path / "g.safetensors", tiny_generator())
    gen = create("generator", path, device="auto").obj
    assert gen.n_latent == tiny_generator().n_latent
    auto = "cuda" if torch.cuda.is_available() else "cpu"
    assert {p.device.type for p in gen.parameters()} == {auto}
    if not torch.cuda.is_available():
        with pytest.raises(StylebridgeError, match=r"^--device cuda: no CUDA device is "
                                                   r"available"):
            create("generator", path, device="cuda")
    else:  # a GPU: the generator is built on it, and a device index past the last is refused
        on_gpu = create("generator", path, device="cuda").obj
        assert {p.device.type for p in on_gpu.parameters()} == {"cuda"}
        count = torch.cuda.device_count()
        with pytest.raises(StylebridgeError, match=rf"^--device cuda:{count}: only {count} "
                                                   r"CUDA device\(s\)"):
            create("generator", path, device=f"cuda:{count}")
