"""The plugin examples in CONTRIBUTING.md run: each Python block there is a module a reader
copies into a package, so each is executed, registered and used here as the commands use it."""

from __future__ import annotations

import re
import types
from pathlib import Path

import pytest
import torch
from conftest import tiny_generator

from stylebridge.core.interfaces import Inversion, LossBatch
from stylebridge.registry import Registry

DOC = Path(__file__).resolve().parents[1] / "CONTRIBUTING.md"


def _example(heading: str) -> types.ModuleType:
    """The first ```python block under ``### heading``, executed as a module."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split(f"\n### {heading}\n", 1)[1].split("\n### ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, heading
    module = types.ModuleType(f"contributing_{heading.split()[-1]}")
    exec(compile(code.group(1), f"CONTRIBUTING.md ({heading})", "exec"), module.__dict__)
    return module


@pytest.fixture(scope="module")
def registry() -> Registry:
    modules = [_example(h) for h in ("An encoder", "A domain method", "A loss", "A metric")]
    return Registry(builtins=False, entry_points=False, extra_plugins=modules)


def test_the_encoder_example_encodes(registry: Registry) -> None:
    enc = registry.create("encoder", "my-encoder", n_latent=4, style_dim=8, input_size=32)
    assert enc.preprocessing.size == 32
    inv = enc.encode(torch.rand(2, 3, 50, 50))
    assert isinstance(inv, Inversion) and inv.w_plus.shape == (2, 4, 8)


def test_the_domain_example_changes_styles_only_where_scaled(registry: Registry) -> None:
    gen = tiny_generator()
    method = registry.create("domain_method", "style-gain", n_layers=gen.n_style_layers)
    method.check_generator(gen)
    with torch.no_grad():
        method.gain.fill_(0.5)
    w = torch.randn(1, gen.n_latent, gen.style_dim)
    plain = gen.styles(w)
    scale = [0.0] * gen.n_style_layers
    scale[1] = 1.0
    adapted = method.styles(gen, w, offset_scale=scale)
    torch.testing.assert_close(adapted[0], plain[0])
    torch.testing.assert_close(adapted[1], plain[1] * 1.5)


def test_the_loss_example_takes_a_target_of_another_size(registry: Registry) -> None:
    """train featureshift gives `target` at the dataset's --image-size, `output` at the
    generator's: the example must compare them (it used to fail with a size mismatch)."""
    loss = registry.create("loss", "l1")
    output = torch.zeros(1, 3, 32, 32)
    target = torch.full((1, 3, 256, 256), 0.25)
    value = loss(LossBatch(output=output, target=target))
    assert value.ndim == 0 and float(value) == pytest.approx(0.25)


def test_the_metric_example_resumes_exactly(registry: Registry) -> None:
    metric = registry.create("metric", "mae")
    metric.update(torch.zeros(2, 3, 4, 4), torch.full((2, 3, 4, 4), 0.1))
    again = registry.create("metric", "mae")
    again.load_state(metric.state())
    assert again.compute() == metric.compute()
    assert metric.compute()["mae"] == pytest.approx(0.1)
    assert metric.last["mae"] == pytest.approx([0.1, 0.1])


def test_the_renderer_example_mirrors_the_plain_rendering() -> None:
    from stylebridge.core.synthesis import synthesize
    from stylebridge.registry.resolve import load_plugin, provenance_of

    reg = Registry(builtins=False, entry_points=False, extra_plugins=[_example("A renderer")])
    gen = tiny_generator()
    inversion = Inversion(w_plus=gen.make_wplus(torch.randn(2, gen.style_dim,
                                                            generator=torch.Generator().manual_seed(0))))
    mirror = load_plugin("renderer", "mirror", registry=reg)
    with torch.no_grad():
        assert torch.equal(mirror.render(gen, inversion), synthesize(gen, inversion).flip(-1))
    prov = provenance_of(mirror)
    assert prov is not None and not prov.random  # no weights: never "random weights"


def test_the_converter_example_writes_a_loadable_domain(tmp_path: Path) -> None:
    import json

    from stylebridge.errors import ConversionError

    reg = Registry(builtins=False, entry_points=False,
                   extra_plugins=[_example("A domain method"), _example("A converter")])
    converter = reg.get("converter", "gain-json").obj
    src = tmp_path / "gains.json"
    src.write_text(json.dumps([0.5, -1.0, 2.0]))
    result = converter.convert(src, tmp_path / "g.safetensors", scale=0.5)
    assert (result.kind, result.plugin, result.n_tensors) == ("domain_method", "style-gain", 1)
    method = reg.load("domain_method", result.path)
    assert method.n_layers == 3 and method.gain.tolist() == [0.25, -0.5, 1.0]
    with pytest.raises(ConversionError, match="unknown converter option"):
        converter.convert(src, tmp_path / "h.safetensors", scael=2)
    src.write_text('{"gains": 1}')
    with pytest.raises(ConversionError, match="expected a JSON list of numbers"):
        converter.convert(src, tmp_path / "h.safetensors")
