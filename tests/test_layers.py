"""The layering of issue 15, read from the source (no imports run): cli > pipelines > plugins >
registry > core, with ``stylebridge.errors`` below them all.

Every ``import`` statement counts, at any level: module level, inside functions, under
``TYPE_CHECKING``. ``lint-imports`` (the contracts in ``pyproject.toml``) checks the same rules
on the import graph, including indirect chains; this test needs no extra tool and names the line.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "stylebridge"
MAX_LINES = 600
CLI_LIBRARIES = ("argparse", "rich")
ROOT_ALLOWED = ("core", "registry", "plugins", "pipelines", "cli", "errors", "__version__")
LAYERS = ("core", "registry", "plugins", "pipelines", "cli")
PLUGIN_KINDS = ("encoders", "domains", "losses", "metrics", "calibrators", "renderers",
                "converters", "nets")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, module: str | None = None) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path`` (module ``module``, by default
    from its place under stylebridge/); ``from a import b`` gives both ``a`` and ``a.b`` (``b``
    may be a submodule), but ``from stylebridge import b`` only ``stylebridge.b``; relative
    imports are resolved."""
    module = module or _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name != "stylebridge":
                yield node.lineno, name
            for alias in node.names:
                yield node.lineno, f"{name}.{alias.name}"


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _files(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


def _violations_in(paths: list[Path], module: str | None,
                   forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in paths:
        for line, name in _imports(path, module):
            if any(_within(name, f) for f in forbidden):
                where = path.name if module else path.relative_to(PACKAGE.parent)
                found.append(f"{where}:{line} imports {name}")
    return sorted(set(found))


def _violations(layer: str, forbidden: tuple[str, ...]) -> list[str]:
    return _violations_in(_files(layer), None, forbidden)


def _above(layer: str) -> tuple[str, ...]:
    return tuple(f"stylebridge.{upper}" for upper in LAYERS[LAYERS.index(layer) + 1:])




def test_the_scan_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The scanner itself: nested, relative, TYPE_CHECKING and from-imports are all found."""
    probe = tmp_path / "probe.py"
    probe.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import rich.console\n"
                     "def f():\n    from ..cli import base\n    from stylebridge import pipelines\n"
                     "    from . import io\n")
    names = {name for _, name in _imports(probe, "stylebridge.core.probe")}
    assert {"rich.console", "stylebridge.cli", "stylebridge.cli.base", "stylebridge.pipelines",
            "stylebridge.core", "stylebridge.core.io"} <= names
    assert "stylebridge" not in names
    assert _violations_in([probe], "stylebridge.core.probe", _above("core")) == [
        "probe.py:5 imports stylebridge.cli", "probe.py:5 imports stylebridge.cli.base",
        "probe.py:6 imports stylebridge.pipelines"]


def test_core_imports_nothing_above_it() -> None:
    """core: never registry, plugins, pipelines, cli, argparse or rich."""
    found = _violations("core", _above("core") + CLI_LIBRARIES)
    assert not found, "\n".join(found)


def test_core_imports_only_torch_safetensors_and_the_image_libraries() -> None:
    """core's third-party imports: torch and safetensors everywhere; Pillow (and pillow-heif)
    only for image I/O, numpy only there and in the safe unpickler (upstream pickles hold numpy
    arrays). No plugin library (lpips, open_clip, dlib, gradio, pluggy, ...) reaches core."""
    import sys

    # image_depth: the samples of image files; image_color: their colour profiles (ImageCms);
    # labels: text drawn on pictures (grids, captions)
    image_io = {"images.py", "image_depth.py", "image_color.py", "labels.py"}
    allowed = {"torch": None, "safetensors": None, "numpy": {*image_io, "safe_pickle.py"},
               "PIL": image_io, "pillow_heif": {"images.py"}}
    found = []
    for path in _files("core"):
        for line, name in _imports(path):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top == "stylebridge":
                continue
            where = allowed.get(top, set())
            if where is not None and path.name not in where:
                found.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}")
    assert not found, "\n".join(sorted(set(found)))


def test_registry_imports_only_core_and_errors() -> None:
    """registry: from stylebridge only core, errors and itself; never argparse or rich."""
    allowed = ("stylebridge.core", "stylebridge.errors", "stylebridge.registry")
    found = []
    for path in _files("registry"):
        for line, name in _imports(path):
            if (_within(name, "stylebridge") and name != "stylebridge"
                    and not any(_within(name, a) for a in allowed)) or name == "stylebridge" or any(_within(name, lib) for lib in CLI_LIBRARIES):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}")
    found = sorted(set(found))
    assert not found, "\n".join(found)


def test_plugins_import_neither_pipelines_nor_cli() -> None:
    """plugins: usable from Python with no CLI: never pipelines, cli, argparse or rich."""
    found = _violations("plugins", _above("plugins") + CLI_LIBRARIES)
    assert not found, "\n".join(found)


def test_pipelines_import_no_cli() -> None:
    """pipelines: typed configs in, results out: never cli, argparse or rich."""
    found = _violations("pipelines", _above("pipelines") + CLI_LIBRARIES)
    assert not found, "\n".join(found)


def test_plugin_nets_import_no_other_plugin_kind() -> None:
    """plugins.nets holds shared backbones: it imports no encoder, loss, metric, ... module."""
    others = tuple(f"stylebridge.plugins.{kind}" for kind in PLUGIN_KINDS if kind != "nets")
    found = _violations("plugins/nets", others)
    assert not found, "\n".join(found)


def test_no_layer_imports_the_package_root() -> None:
    """``import stylebridge`` / ``from stylebridge import create_encoder`` would reach every
    layer through the package's lazy exports; layers import the module they need (and may read
    ``stylebridge.__version__``)."""
    found = []
    for layer in LAYERS:
        for path in _files(layer):
            for line, name in _imports(path):
                if name == "stylebridge" or (name.startswith("stylebridge.")
                                             and name.count(".") == 1
                                             and name.split(".")[1] not in ROOT_ALLOWED):
                    found.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}")
    found = sorted(set(found))
    assert not found, "\n".join(found)


def test_no_module_over_600_lines() -> None:
    long = [f"{path.relative_to(PACKAGE.parent)}: {n} lines"
            for path in sorted(PACKAGE.rglob("*.py"))
            if (n := len(path.read_text().splitlines())) > MAX_LINES]
    assert not long, "\n".join(long)
