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
