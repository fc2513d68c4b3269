"""Issue 19, item 4: every error names the file and the cause, in one bounded line."""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import pytest
import torch

from stylebridge.cli.main import main, oom_advice
from stylebridge.errors import MAX_MESSAGE, StylebridgeError


def _torchscript(path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(torch.nn.Linear(2, 2)).save(str(path))
    return path


@pytest.mark.parametrize("converter", ["stylegan2-rosinality", "psp", "fse", "styleres"])
def test_torchscript_to_a_state_dict_converter_is_named_without_torch_advice(
        tmp_path, capsys, converter) -> None:
    src = _torchscript(tmp_path / "model.pt")
    dst = tmp_path / "out.safetensors"
    code = main(["convert", converter, str(src), str(dst)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: {src}: is a TorchScript archive")
    assert err.count("\n") == 1  # no torch UserWarning about dispatching to torch.jit.load
    assert "weights_only=False" not in err and "likely succeed" not in err
    assert not dst.exists()


def test_damaged_zip_is_named(tmp_path, capsys) -> None:
    src = tmp_path / "damaged.pt"
    with zipfile.ZipFile(src, "w") as archive:
        archive.writestr("a/data.pkl", b"x" * 64)
    data = bytearray(src.read_bytes())
    data[-30:] = b"\0" * 30  # the central directory is gone: BadZipFile for zipfile readers
    src.write_bytes(bytes(data))
    code = main(["convert", "clip-openai", str(src), str(tmp_path / "o.safetensors")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: {src}: ") and err.count("\n") == 1, err
    assert "BadZipFile" not in err.split(":", 2)[1]  # the file comes first, not the exception


def test_a_torch_file_cut_short_is_said_in_plain_words(tmp_path, capsys) -> None:
    """A half-downloaded .pt gave miniz's paragraph, cut at 300 characters mid-word."""
    import torch

    full = tmp_path / "full.pt"
    torch.save({"g_ema": {"w": torch.zeros(4096)}}, full)
    data = full.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[:len(data) // 2])
    code = main(["convert", "stylegan2-rosinality", str(cut), str(tmp_path / "o.safetensors")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "zip archive is incomplete or damaged, as a download cut short: get it again" in err
    assert "miniz" not in err and not err.rstrip().endswith(", o)")


def test_long_messages_keep_both_ends() -> None:
    text = "start " + "x" * 8500 + " end"
    message = str(StylebridgeError(text, path="f.safetensors"))
    assert len(message) < MAX_MESSAGE + 100
    assert message.startswith("f.safetensors: start ") and message.endswith(" end")
    assert "characters cut" in message


@pytest.mark.parametrize(("argv", "options"), [
    (["generate", "-g", "x"], "--batch"), (["eval"], "--batch or --size"),
    (["--debug", "align"], "--size or --transform-size"),
    (["featureshift", "build-dataset"], "--batch, --image-size or --shard-size"),
    (["calibrate"], "--batch, --align-size or --samples")])
def test_out_of_memory_names_the_option_to_lower(argv, options) -> None:
    assert oom_advice(argv) == f"try a smaller {options}"


@pytest.mark.parametrize(("exc", "message"), [
    (RuntimeError("[enforce fail at alloc_cpu.cpp:127] data. DefaultCPUAllocator: not enough "
                  "memory: you tried to allocate 1099511627776 bytes."),
     "error: out of memory; try a smaller --batch\n"),
    (MemoryError(), "error: out of memory; try a smaller --batch\n"),
    (RecursionError("maximum recursion depth exceeded"),
     "error: an input is nested too deeply to read (a crafted or corrupt file?)\n"),
])
def test_allocator_and_recursion_failures_are_one_line(capsys, monkeypatch, exc, message) -> None:
    from stylebridge.cli.commands import plugins as commands

    def fail(self, args, console):
        raise exc

    monkeypatch.setattr(commands.PluginsCommand, "run", fail)
    code = main(["plugins"])
    assert code == 2 and capsys.readouterr().err == message


def test_an_unexpected_error_is_bounded(capsys, monkeypatch) -> None:
    from stylebridge.cli.commands import plugins as commands

    def fail(self, args, console):
        raise ValueError("y" * 8500)

    monkeypatch.setattr(commands.PluginsCommand, "run", fail)
    code = main(["plugins"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and len(err) < 600 and "characters cut" in err


def test_wording_of_files_that_are_not_what_was_asked(tmp_path, capsys, monkeypatch) -> None:
    """QA wording: a folder is called a folder; stylebridge's own header-less files (a tiny
    CLIP, a dataset shard) are not sent to `convert`; `a`/`an` before a kind."""
    from stylebridge.cli.main import main
    from stylebridge.core.checkpoint import read_header, with_article
    from stylebridge.errors import CheckpointError
    from stylebridge.pipelines.presets import build_tiny_preset

    preset = build_tiny_preset(tmp_path / "preset", n_images=2)
    clip = sorted((preset.root / "clip").glob("*.safetensors"))[0]
    with pytest.raises(CheckpointError, match=r"is a plain weights file .*not a stylebridge "
                                              r"checkpoint"):
        read_header(clip)
    monkeypatch.chdir(preset.root)  # a bare folder name read as a spec: said to be a folder
    assert main(["info", "images"]) == 2
    assert ("images: is a folder holding no report a stylebridge run wrote; give a checkpoint, "
            "a picture or a report") in capsys.readouterr().err
    assert main(["convert", "clip-openai", str(preset.root / "images"),
                 str(tmp_path / "o.safetensors")]) == 2
    assert "is a folder; give the upstream checkpoint file" in capsys.readouterr().err
    assert (with_article("encoder"), with_article("generator"), with_article("psp"),
            with_article("e4e")) == ("an encoder", "a generator", "a psp", "an e4e")
    assert main(["info", f"fse:{preset.e4e}"]) == 2
    assert "holds an encoder of plugin 'e4e'" in capsys.readouterr().err
