"""TorchScript archives (OpenAI's CLIP .pt): weights are read without running their code."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

from stylebridge.core.torchscript import read_torchscript_state_dict
from stylebridge.errors import ConversionError

TINY_OPENAI = {"embed_dim": 32, "quick_gelu": True,
               "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16,
                              "patch_size": 16},
               "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 16, "heads": 2,
                            "layers": 1}}


def _traced(module: torch.nn.Module, inputs: tuple, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(module, inputs, strict=False, check_trace=False), str(path))
    return path


def test_state_dict_of_a_traced_module(tmp_path: Path) -> None:
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4),
                            torch.nn.BatchNorm1d(4)).eval()
    with torch.no_grad():
        m[2].running_mean.uniform_()
    path = _traced(m, (torch.randn(2, 3),), tmp_path / "m.pt")
    state = read_torchscript_state_dict(path)
    ref = m.state_dict()
    assert list(state) == list(ref)
    assert all(torch.equal(state[k], ref[k]) and state[k].dtype == ref[k].dtype for k in ref)


def _tiny_openai_clip(tmp_path: Path) -> torch.nn.Module:
    """Register the ``tiny-openai`` open_clip config and build it with seeded random weights."""
    import open_clip

    cfg_dir = tmp_path / "cfg"
    cfg_dir.mkdir()
    (cfg_dir / "tiny-openai.json").write_text(json.dumps(TINY_OPENAI))
    open_clip.add_model_config(cfg_dir)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return open_clip.create_model("tiny-openai", pretrained=None).eval()


def test_openai_style_clip_archive_loads_into_open_clip(tmp_path: Path, monkeypatch) -> None:
    import open_clip

    from stylebridge.plugins.converters.clip_openai import ClipOpenAIConverter
    from stylebridge.plugins.nets.clip import load_clip

    ref = _tiny_openai_clip(tmp_path)
    image = torch.rand(2, 3, 32, 32)
    text = open_clip.get_tokenizer("tiny-openai")(["a photo", "a painting"])
    archive = _traced(ref, (image, text), tmp_path / "tiny.pt")
    # the archive is loaded without torch.jit
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: pytest.fail("torch.jit.load was used"))
    with torch.no_grad():
        want = ref.encode_image(image), ref.encode_text(text)
        direct = load_clip("tiny-openai", weights=archive)
        assert not direct.random_weights
        got = direct.model.encode_image(image), direct.model.encode_text(text)
        torch.testing.assert_close(got[0], want[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(got[1], want[1], atol=1e-5, rtol=1e-5)
        result = ClipOpenAIConverter().convert(archive, tmp_path / "tiny.safetensors")
        converted = load_clip("tiny-openai", weights=result.path)
        torch.testing.assert_close(converted.model.encode_image(image), want[0], atol=1e-5,
                                   rtol=1e-5)


@pytest.mark.filterwarnings("ignore::stylebridge.plugins.nets.clip.ClipActivationWarning")
def test_clip_weights_from_a_weights_only_pt_and_bad_files(tmp_path: Path) -> None:
    """Plain CLIP weights go through the same reader as LPIPS's backbones
    (``metrics._read_plain_state``): a ``state_dict`` wrapper and ``module.`` prefixes are
    removed, and bad files are one-line :class:`CheckpointError` naming the file."""
    from stylebridge.errors import CheckpointError
    from stylebridge.plugins.nets.clip import load_clip

    ref = _tiny_openai_clip(tmp_path)
    pt = tmp_path / "tiny.pt"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in ref.state_dict().items()}},
               pt)
    image = torch.rand(2, 3, 32, 32)
    clip = load_clip("tiny-openai", weights=pt)
    assert not clip.random_weights
    with torch.no_grad():
        torch.testing.assert_close(clip.model.encode_image(image), ref.encode_image(image))
    bad = tmp_path / "bad.pt"
    torch.save({"state_dict": {"visual.proj": 1}}, bad)
    for path, message in ((bad, "does not hold a CLIP state dict of tensors"),
                          (tmp_path / "absent.pt", "no such file"),
                          (tmp_path, "is not a file")):
        with pytest.raises(CheckpointError) as info:
            load_clip("tiny-openai", weights=path)
        assert str(info.value) == f"{path}: {message}"


def test_bad_archives_are_refused(tmp_path: Path) -> None:
    import pickle
    import zipfile

    text = tmp_path / "x.pt"
    text.write_text("not a zip")
    with pytest.raises(ConversionError, match="not a TorchScript archive"):
        read_torchscript_state_dict(text)
    marker = tmp_path / "MARKER"

    class Evil:
        def __reduce__(self):
            import os
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pt"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("evil/data.pkl", pickle.dumps(Evil()))
        zf.writestr("evil/code/__torch__/m.py", "")
    with pytest.raises(ConversionError, match="refuses to load"):
        read_torchscript_state_dict(evil)
    assert not marker.exists()
