"""Parsing of ``NAME[:PATH][:k=v]`` plugin specs and ``NAME[:WEIGHT]`` loss specs."""

from __future__ import annotations

from pathlib import Path

import pytest

from stylebridge.core.options import coerce_option
from stylebridge.errors import SpecError
from stylebridge.registry.spec import parse_loss_spec, parse_plugin_spec


@pytest.mark.parametrize(
    ("text", "name", "path", "options"),
    [
        ("e4e", "e4e", None, {}),
        ("e4e:ckpt.safetensors", "e4e", Path("ckpt.safetensors"), {}),
        ("ckpt.safetensors", None, Path("ckpt.safetensors"), {}),
        ("models/fse", None, Path("models/fse"), {}),
        ("stylespace:pixar.safetensors", "stylespace", Path("pixar.safetensors"), {}),
        ("fse:w/fse.safetensors:mode=shift,layer=5", "fse", Path("w/fse.safetensors"),
         {"mode": "shift", "layer": "5"}),
        ("fse:mode=latents", "fse", None, {"mode": "latents"}),
    ],
)
def test_plugin_specs(text, name, path, options) -> None:
    spec = parse_plugin_spec(text)
    assert (spec.name, spec.path, spec.options) == (name, path, options)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        (":x.safetensors", "no name before ':'"),
        ("e4e:", "ends with ':'"),
        ("E4E:x", "invalid name 'E4E'"),
        ("fse:x.safetensors:mode", "malformed option 'mode'"),
        ("fse:x.safetensors:a=1,a=2", "given twice"),
        ("fse:mode=a:x.safetensors", "options must come last"),
    ],
)
def test_malformed_plugin_specs(text, message) -> None:
    with pytest.raises(SpecError, match=message):
        parse_plugin_spec(text)


def test_loss_specs() -> None:
    assert parse_loss_spec("lpips:0.8").weight == pytest.approx(0.8)
    assert parse_loss_spec("corr:1e3").weight == pytest.approx(1000.0)
    spec = parse_loss_spec("lpips:0.8:net=vgg")
    assert (spec.name, spec.options) == ("lpips", {"net": "vgg"})
    with pytest.raises(SpecError, match=r"give the weight, NAME:WEIGHT \(e.g. id:1.0\)"):
        parse_loss_spec("id")
    for bad, msg in [("lpips:x", "not a number"), ("lpips:-1", ">= 0"), ("lpips:nan", "finite"),
                     ("", "empty"), ("Bad:1", "invalid name")]:
        with pytest.raises(SpecError, match=msg):
            parse_loss_spec(bad)


def test_coerce_option() -> None:
    assert coerce_option("5") == 5 and coerce_option("0.5") == 0.5
    assert coerce_option("true") is True and coerce_option("off") is False
    assert coerce_option("shift") == "shift"


def test_option_values_may_be_paths() -> None:
    spec = parse_plugin_spec("fid:ref_stats=/data/ffhq_stats.safetensors,batch=8")
    assert spec.name == "fid" and spec.path is None
    assert spec.options == {"ref_stats": "/data/ffhq_stats.safetensors", "batch": "8"}


def test_an_existing_file_is_a_path_even_without_a_suffix(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fsemodel").write_bytes(b"x")
    spec = parse_plugin_spec("fsemodel")
    assert spec.name is None and spec.path == Path("fsemodel")
    assert parse_plugin_spec("fse").name == "fse"          # no such file: a plugin name
