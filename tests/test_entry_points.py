"""Built-in plugins register through stylebridge's own entry points, one per plugin module,
exactly as a third-party package does (issue 15): every module that implements a hook has
its line in pyproject.toml, every line names such a module, and the registry imports no
plugin package itself."""

from __future__ import annotations

import ast
import importlib.metadata
import tomllib
from pathlib import Path

import pytest
import torch

from stylebridge.registry import hookspecs
from stylebridge.registry.registry import builtin_entry_points

ROOT = Path(__file__).resolve().parents[1]
HOOKS = {name for name in vars(hookspecs) if name.startswith("register_")}


def _hook_modules() -> set[str]:
    """Modules under stylebridge/ with a top-level ``@hookimpl def register_*`` (AST scan)."""
    found = set()
    for path in (ROOT / "stylebridge").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(isinstance(node, ast.FunctionDef) and node.name in HOOKS
               and any(ast.unparse(d).endswith("hookimpl") for d in node.decorator_list)
               for node in tree.body):
            found.add(".".join(path.relative_to(ROOT).with_suffix("").parts))
    return found


def _declared() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return data["project"]["entry-points"]["stylebridge"]


def test_every_hook_module_has_exactly_one_entry_point_line() -> None:
    declared = _declared()
    assert sorted(declared.values()) == sorted(set(declared.values()))  # one line per module
    missing = sorted(_hook_modules() - set(declared.values()))
    stale = sorted(set(declared.values()) - _hook_modules())
    assert not missing, f"add to [project.entry-points.stylebridge]: {missing}"
    assert not stale, f"entry points without a hook module: {stale}"
    assert all(name == value.removeprefix("stylebridge.") for name, value in declared.items())


def test_the_installed_metadata_matches_pyproject() -> None:
    installed = {ep.name: ep.value for ep in builtin_entry_points()}
    if installed != _declared():
        pytest.fail("the installed stylebridge metadata is stale: run `pip install -e .`")


def test_the_registry_finds_builtins_only_through_entry_points() -> None:
    source = (ROOT / "stylebridge" / "registry" / "registry.py").read_text(encoding="utf-8")
    imported = {alias.name for node in ast.walk(ast.parse(source))
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(ast.parse(source))
                 if isinstance(node, ast.ImportFrom)}
    assert not {m for m in imported if m.startswith(("stylebridge.plugins", "stylebridge.cli",
                                                     "stylebridge.pipelines"))}
    assert "pkgutil" not in imported and "walk_packages" not in source


def test_builtins_are_loaded_before_third_party_packages() -> None:
    from stylebridge.registry import Registry

    reg = Registry(entry_points=False)
    providers = {e.provider for e in reg.all_entries()}
    assert providers == {"stylebridge"}
    assert {"e4e", "fse", "psp", "styleres"} <= set(reg.names("encoder"))
    assert "adapt" in reg.names("command")
    third = {ep.dist.name for ep in importlib.metadata.entry_points(group="stylebridge")
             if ep.dist is not None and ep.dist.name != "stylebridge"}
    if third:  # e.g. the example package: loaded after the built-ins, named as provider
        full = Registry()
        assert {e.provider for e in full.all_entries()} >= {"stylebridge", *third}


def test_stylebridge_create_is_the_one_way_in(tmp_path: Path) -> None:
    import stylebridge
    from stylebridge.core.checkpoint import save_checkpoint
    from stylebridge.core.stylegan2.checkpoint import save_stylegan2
    from stylebridge.registry import get_registry

    enc = get_registry().create("encoder", "e4e", n_styles=6, style_dim=32, input_size=64)
    ckpt = save_checkpoint(tmp_path / "e4e.safetensors", enc.state_dict(), kind="encoder",
                           plugin="e4e", config=enc.config(), extra={"random_weights": True})
    loaded = stylebridge.create("encoder", str(ckpt))
    assert type(loaded).__name__ == "E4EEncoder" and not loaded.training
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(),
                                                  enc.state_dict().values(), strict=True))
    prov = stylebridge.provenance_of(loaded)
    assert prov.origin == "random" and prov.path == ckpt
    from conftest import tiny_generator

    gen = tiny_generator(seed=0)
    gpath = tmp_path / "g.safetensors"
    save_stylegan2(gpath, gen)
    g = stylebridge.create("generator", f"stylegan2:{gpath}")
    assert stylebridge.provenance_of(g).origin in {"checkpoint", "random"}
    with pytest.raises(stylebridge.StylebridgeError, match="unknown generator 'biggan'"):
        stylebridge.create("generator", f"biggan:{gpath}")


def test_a_featureshift_checkpoint_is_created_as_a_renderer(tmp_path: Path) -> None:
    """FeatureShift is a renderer whose checkpoints keep their own header kind
    (``checkpoint_kind``); its ``check_header`` refuses the other Δ sign convention."""
    import stylebridge
    from stylebridge.core.checkpoint import save_checkpoint
    from stylebridge.plugins.renderers.featureshift import FeatureShift, save_featureshift

    torch.manual_seed(0)
    model = FeatureShift(feature_channels=8, hidden=8, n_blocks=3, layer=3)
    path = save_featureshift(tmp_path / "fs.safetensors", model)
    loaded = stylebridge.create("renderer", str(path))
    assert isinstance(loaded, FeatureShift) and not loaded.training
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(),
                                                  model.state_dict().values(), strict=True))
    bad = save_checkpoint(tmp_path / "bad.safetensors", model.state_dict(), kind="featureshift",
                          plugin="featureshift", config=model.config(),
                          extra={"delta_sign": "domain_minus_source"})
    with pytest.raises(stylebridge.StylebridgeError, match="Δ sign convention"):
        stylebridge.create("renderer", str(bad))
    with pytest.raises(stylebridge.StylebridgeError, match="is a checkpoint of kind 'featureshift'"):
        stylebridge.create("encoder", str(path))
