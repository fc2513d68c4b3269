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
        # options split by ':' are answered with the spec written with ','
        ("tiny-pool:n_latent=10:style_dim=64",
         r"separate options with ',', not ':' \(tiny-pool:n_latent=10,style_dim=64\)"),
        ("fse:x.safetensors:mode=shift:layer=5",
         r"separate options with ',', not ':' \(fse:x.safetensors:mode=shift,layer=5\)"),
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


# -- paths with ':' (issue 19, item 7): existing files first, then the grammar --------------------
def test_existing_paths_with_colons_are_read_as_files(tmp_path, monkeypatch) -> None:
    from stylebridge.registry.spec import parse_plugin_spec

    folder = tmp_path / "c:olon"
    folder.mkdir()
    ckpt = folder / "e4e.safetensors"
    ckpt.write_bytes(b"x")
    named = tmp_path / "fse:odd.safetensors"
    named.write_bytes(b"x")
    alone = parse_plugin_spec(str(ckpt))
    assert (alone.name, alone.path, alone.options) == (None, ckpt, {})
    with_name = parse_plugin_spec(f"e4e:{ckpt}")
    assert (with_name.name, with_name.path) == ("e4e", ckpt)
    with_opts = parse_plugin_spec(f"fse:{ckpt}:mode=shift,layer=5")
    assert (with_opts.name, with_opts.path, with_opts.options) == (
        "fse", ckpt, {"mode": "shift", "layer": "5"})
    monkeypatch.chdir(tmp_path)
    whole = parse_plugin_spec("fse:odd.safetensors")  # an existing file named like NAME:PATH
    assert (whole.name, whole.path) == (None, Path("fse:odd.safetensors"))
    escaped = parse_plugin_spec("./e4e:missing.safetensors")  # the documented escape
    assert (escaped.name, escaped.path) == (None, Path("e4e:missing.safetensors"))
    # without files the grammar is unchanged
    plain = parse_plugin_spec("e4e:missing.safetensors:mode=x")
    assert (plain.name, plain.path, plain.options) == ("e4e", Path("missing.safetensors"),
                                                       {"mode": "x"})


def test_generator_in_a_folder_with_a_colon_through_the_cli(tmp_path, capsys) -> None:
    import torch

    from stylebridge.cli.main import main
    from stylebridge.core.stylegan2 import Generator
    from stylebridge.core.stylegan2.checkpoint import save_stylegan2

    folder = tmp_path / "c:olon"
    folder.mkdir()
    torch.manual_seed(0)
    save_stylegan2(folder / "gen.safetensors", Generator(size=8, style_dim=8, n_mlp=1,
                                                         channels={4: 4, 8: 4}))
    for spec in (str(folder / "gen.safetensors"), f"stylegan2:{folder / 'gen.safetensors'}"):
        out = tmp_path / f"out{len(spec)}"
        assert main(["generate", "-g", spec, "--seeds", "0", "--out", str(out)]) == 0, \
            capsys.readouterr().err
        assert (out / "seed0000.png").is_file()


def test_a_quoted_option_value_may_hold_commas() -> None:
    spec = parse_plugin_spec('hyperdomain:net.safetensors:text="a sketch, in pencil",alpha=2')
    assert spec.name == "hyperdomain" and str(spec.path) == "net.safetensors"
    assert spec.options == {"text": "a sketch, in pencil", "alpha": "2"}
    assert parse_plugin_spec('fse:mode="shift"').options == {"mode": "shift"}
    with pytest.raises(SpecError, match="unbalanced double quote"):
        parse_plugin_spec('hyperdomain:net.safetensors:text="a sketch, in pencil')


def test_a_folder_that_is_no_name_is_read_as_a_path(tmp_path: Path, monkeypatch) -> None:
    """`.` and `..` cannot be plugin names: they are paths, so the loader can say "is a
    directory" instead of "invalid name"; a folder named like a plugin does not shadow it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "e4e").mkdir()
    assert parse_plugin_spec(".").path == Path(".") and parse_plugin_spec(".").name is None
    assert parse_plugin_spec("..").path == Path("..")
    assert parse_plugin_spec("e4e").name == "e4e" and parse_plugin_spec("e4e").path is None
    with pytest.raises(SpecError, match=r"invalid name '\.nothere'"):
        parse_plugin_spec(".nothere")


def test_an_existing_checkpoint_may_take_options_without_a_name(tmp_path, monkeypatch) -> None:
    """`dom.safetensors:strength=abc` read as a file named `dom.safetensors:strength=abc` and
    said `no such file`; the header names the plugin, so the options may follow the file."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dom.safetensors").write_bytes(b"x")
    spec = parse_plugin_spec("dom.safetensors:mode=shift,layer=5")
    assert (spec.name, spec.path, spec.options) == (None, Path("dom.safetensors"),
                                                    {"mode": "shift", "layer": "5"})
    # no such file: not a checkpoint with options (the name grammar decides, as before)
    assert parse_plugin_spec("other.safetensors:mode=shift").path is None


def test_loss_spec_typos_are_named() -> None:
    """`MSE:1` said only "invalid name"; `mse:1_0` trained at weight 10 (Python's float
    reads the underscore)."""
    from stylebridge.errors import SpecError
    from stylebridge.registry.spec import parse_loss_spec

    with pytest.raises(SpecError, match=r"invalid name 'MSE' \(names are lower-case: 'mse'\)"):
        parse_loss_spec("MSE:1")
    with pytest.raises(SpecError, match=r"weight '1_0' is not a number"):
        parse_loss_spec("mse:1_0")
    assert parse_loss_spec("corr:1e3").weight == 1000.0


@pytest.mark.parametrize("text,name,path,options", [
    ("fse:C:/w/fse.pt:mode=shift", "fse", "C:/w/fse.pt", {"mode": "shift"}),
    ("fse:C:\\w\\fse.pt", "fse", "C:\\w\\fse.pt", {}),
    ("C:/w/fse.pt", None, "C:/w/fse.pt", {}),
    ("C:\\w\\fse.pt:alpha=0.5", None, "C:\\w\\fse.pt", {"alpha": "0.5"}),
    ("c:\\w\\fse.pt", None, "c:\\w\\fse.pt", {}),
    ("lpips:backbone=C:\\w\\alex.pth,net=alex", "lpips", None,
     {"backbone": "C:\\w\\alex.pth", "net": "alex"}),
    ("c:/x", "c", "/x", {}),  # a lower-case one-letter plugin with an absolute path (not nt)
])
def test_windows_drives_keep_their_colon(text, name, path, options, monkeypatch) -> None:
    """A missing Windows path was cut at its drive's ':' (`error: C: no such file`,
    `invalid name 'C'`, `malformed option '\\w\\fse.pt'`): the drive stays in the path."""
    import stylebridge.registry.spec as spec_mod

    monkeypatch.setattr(spec_mod.os, "name", "posix")
    spec = parse_plugin_spec(text)
    assert (spec.name, spec.path, spec.options) == \
        (name, Path(path) if path else None, options)


def test_windows_expands_a_home_before_a_backslash(monkeypatch) -> None:
    """Windows shells leave `~` to the program: `e4e:~\\e4e.safetensors` is the home there,
    while on POSIX a backslash is a file name's character and the `~` stays."""
    from stylebridge.registry.spec import _home_pattern

    monkeypatch.setenv("HOME", "/home/u")
    assert _home_pattern(True).sub(r"\1/home/u", "e4e:~\\e4e.safetensors") == \
        "e4e:/home/u\\e4e.safetensors"
    assert _home_pattern(False).sub(r"\1/home/u", "e4e:~\\e4e.safetensors") == \
        "e4e:~\\e4e.safetensors"
    assert _home_pattern(False).sub(r"\1/home/u", "e4e:~/e4e.safetensors") == \
        "e4e:/home/u/e4e.safetensors"


@pytest.mark.parametrize("written,options", [
    ("e4e:./w/e4e.safetensors", ""), ("e4e:./w/e4e.safetensors:size=256", ":size=256"),
    ("e4e:w//e4e.safetensors", ""), ("e4e:w/./e4e.safetensors:size=256", ":size=256"),
])
def test_absolute_spec_rewrites_the_path_as_written(written, options, tmp_path,
                                                    monkeypatch) -> None:
    """`./w/e4e.safetensors` prints as `w/e4e.safetensors`, so replacing that text garbled
    the spec (`e4e:.//tmp/...`, a relative path): a recorded guide no longer loaded."""
    from stylebridge.registry.spec import absolute_spec

    monkeypatch.chdir(tmp_path)
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "e4e.safetensors").write_bytes(b"x")
    assert absolute_spec(written) == f"e4e:{tmp_path / 'w' / 'e4e.safetensors'}{options}"


def test_absolute_spec_of_a_file_named_like_its_plugin(tmp_path, monkeypatch) -> None:
    """`e4e:e4e` (a checkpoint without a suffix named as its plugin): the path after the
    name is made absolute, not the name (which gave `/tmp/.../e4e:e4e`)."""
    from stylebridge.registry.spec import absolute_spec

    monkeypatch.chdir(tmp_path)
    (tmp_path / "e4e").write_bytes(b"x")
    assert absolute_spec("e4e:e4e") == f"e4e:{tmp_path / 'e4e'}"
    assert absolute_spec("e4e:missing.pt") == "e4e:missing.pt"
