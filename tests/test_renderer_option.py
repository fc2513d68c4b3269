"""``adapt`` / ``render --renderer SPEC``: a renderer plugin by name from the command line.

A third-party renderer (``register_renderers``) could only be used from Python
(``Adapter(..., renderer=stylebridge.create("renderer", NAME))``): ``--featureshift`` loads the
built-in FeatureShift file alone (``--featureshift qa-flip``: "no such file").  These tests
register test renderers through the registry and check the values of what the commands write
with ``--renderer``: the flipped images of the plain run, the guide latents a renderer that
``needs_guide`` gets, the records and RANDOM WEIGHTS labels, and the one-line refusals.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from stylebridge.cli.main import main
from stylebridge.core.checkpoint import load_checkpoint, save_checkpoint
from stylebridge.core.images import NOTICE_KEY
from stylebridge.core.interfaces import Inversion, Renderer
from stylebridge.core.synthesis import synthesize
from stylebridge.registry import hookimpl

pytestmark = pytest.mark.usefixtures("no_weights_one_thread")


class QAFlip(Renderer):
    """The generator's own rendering, flipped left to right: no weights at all."""

    name = "qa-flip"

    def render(self, generator, inversion, method=None, *, offset_scale=None, guide=None):
        return synthesize(generator, inversion, method=method, offset_scale=offset_scale).flip(-1)


class QAGain(Renderer):
    """The generator's own rendering times a learnt gain (1 when built): a renderer with a
    weight, so one built by name holds random weights."""

    name = "qa-gain"

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(()))

    def render(self, generator, inversion, method=None, *, offset_scale=None, guide=None):
        return synthesize(generator, inversion, method=method, offset_scale=offset_scale) \
            * self.gain


class QAGuide(Renderer):
    """Renders the guide encoder's latents instead of the inversion's (``needs_guide``); the
    guide it was trained with is read from its checkpoint, as FeatureShift reads it."""

    name = "qa-guide"
    needs_guide = True

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(()))

    def read_extra(self, extra: Any) -> None:
        self.trained_guide = (extra.get("sources") or {}).get("guide")

    def render(self, generator, inversion, method=None, *, offset_scale=None, guide=None):
        assert guide is not None
        return synthesize(generator, Inversion(w_plus=guide), method=method,
                          offset_scale=offset_scale) * self.gain


@hookimpl
def register_renderers(register: Any) -> None:
    for cls in (QAFlip, QAGain, QAGuide):
        register(cls)


@pytest.fixture(scope="module")
def preset(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from stylebridge.pipelines.presets import build_tiny_preset

    return build_tiny_preset(tmp_path_factory.mktemp("tiny") / "preset", n_images=2)


@pytest.fixture
def run(preset: Any, tmp_path: Path, registered: None, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """``run(command, out, *options)``: ``adapt`` (the preset's photos, fse, tiny-pixar) or
    ``render`` (``--generator``, tiny-pixar) into ``tmp_path / out``; (exit code, stderr)."""
    monkeypatch.setenv("COLUMNS", "500")  # rich: no line folded inside a temporary path
    domain = str(preset.domains / "tiny-pixar.safetensors")

    def call(command: str, out: str, *options: str) -> tuple[int, str]:
        common = ["-g", str(preset.generator), "-m", domain, "--device", "cpu",
                  "--compile", "off", "--out", str(tmp_path / out)]
        if command == "adapt":
            argv = ["adapt", "-e", f"fse:{preset.fse}", "--no-align", *common,
                    str(preset.images), *options]
        else:
            argv = ["render", *common, *options]
        code = main(argv)
        return code, capsys.readouterr().err

    yield call


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _outputs(folder: Path) -> dict[str, np.ndarray]:
    pictures = sorted(p for p in folder.glob("photo*.png"))
    assert len(pictures) == 4, pictures  # 2 photos x (inversion, tiny-pixar)
    return {p.name: _png(p) for p in pictures}


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def test_adapt_renders_through_a_registered_renderer_by_name(run: Any, tmp_path: Path) -> None:
    """`adapt --renderer qa-flip`: every output (the inversion and the domain) is the plain
    run's, flipped; adapt.json records the spec and where the renderer's weights came from,
    and a renderer without weights is not labelled RANDOM WEIGHTS (the tiny preset is)."""
    assert run("adapt", "plain")[0] == 0
    code, err = run("adapt", "flip", "--renderer", "qa-flip")
    assert code == 0, err
    plain, flipped = _outputs(tmp_path / "plain"), _outputs(tmp_path / "flip")
    assert plain.keys() == flipped.keys()
    for name, image in plain.items():
        assert np.array_equal(flipped[name], image[:, ::-1]), name
        assert not np.array_equal(flipped[name], image), name  # the flip shows
    record = _json(tmp_path / "flip" / "adapt.json")
    assert record["renderer"] == {"spec": "qa-flip", "plugin": "qa-flip", "provenance": "none",
                                  "weights": "no weights file", "random_weights": False,
                                  "guide": None}
    assert record["renderer_file"] is None and record["featureshift"] is None
    assert _json(tmp_path / "plain" / "adapt.json")["renderer"] is None
    # not mislabelled: the renderer is no random part; the rest of the tiny preset is
    assert record["random_inputs"]["renderer"] is False
    assert "renderer" not in record["random_parts"]
    assert record["random_parts"] == _json(tmp_path / "plain" / "adapt.json")["random_parts"]
    assert "renderer" not in record["notice"] and "renderer" not in err
    picture = Image.open(tmp_path / "flip" / "photo0_tiny-pixar.png")
    assert "renderer" not in picture.info[NOTICE_KEY]


def test_render_renders_saved_inversions_through_a_renderer(run: Any, tmp_path: Path) -> None:
    """`render --renderer qa-flip`: the plain render's images flipped; render.json records it."""
    assert run("adapt", "saved", "--save-latents")[0] == 0
    saved = str(tmp_path / "saved")
    assert run("render", "plain", saved)[0] == 0
    code, err = run("render", "flip", saved, "--renderer", "qa-flip")
    assert code == 0, err
    plain, flipped = _outputs(tmp_path / "plain"), _outputs(tmp_path / "flip")
    for name, image in plain.items():
        assert np.array_equal(flipped[name], image[:, ::-1]), name
    record = _json(tmp_path / "flip" / "render.json")
    assert record["renderer"]["spec"] == "qa-flip"
    assert record["renderer"]["provenance"] == "none"
    assert record["random_inputs"]["renderer"] is False
    assert "renderer" not in record["random_parts"]
    assert _json(tmp_path / "plain" / "render.json")["renderer"] is None


def test_a_renderer_on_random_weights_labels_the_outputs(run: Any, tmp_path: Path) -> None:
    """A renderer with a weight built by name holds random weights: named on screen, in the
    records and in every picture's notice; loaded from its checkpoint, it is not."""
    code, err = run("adapt", "random", "--renderer", "qa-gain", "--save-latents")
    assert code == 0, err
    assert "RANDOM WEIGHTS: renderer has random (untrained) weights" in err
    record = _json(tmp_path / "random" / "adapt.json")
    assert record["random_inputs"]["renderer"] is True and "renderer" in record["random_parts"]
    assert record["renderer"]["provenance"] == "random" and record["renderer"]["random_weights"]
    assert "renderer" in record["notice"]
    for picture in ("photo0_inversion.png", "photo1_tiny-pixar.png", "grid.png"):
        assert "renderer" in Image.open(tmp_path / "random" / picture).info[NOTICE_KEY], picture
    assert "renderer" in _json(tmp_path / "random" / "metrics.json")["random_parts"]
    code, err = run("render", "rendered", str(tmp_path / "random"), "--renderer", "qa-gain")
    assert code == 0, err
    record = _json(tmp_path / "rendered" / "render.json")
    assert "renderer" in record["random_parts"]
    assert "renderer" in Image.open(tmp_path / "rendered" / "photo0_inversion.png").info[NOTICE_KEY]
    # the same renderer from a checkpoint: trained weights, recorded with the file
    ckpt = save_checkpoint(tmp_path / "gain.safetensors", QAGain().state_dict(), kind="renderer",
                           plugin="qa-gain")
    code, err = run("adapt", "trained", "--renderer", f"qa-gain:{ckpt}")
    assert code == 0, err
    record = _json(tmp_path / "trained" / "adapt.json")
    assert record["renderer"]["provenance"] == "checkpoint"
    assert record["renderer_file"]["path"] == str(ckpt.resolve())
    assert record["random_inputs"]["renderer"] is False
    assert "renderer" not in record["random_parts"]
    assert np.array_equal(_png(tmp_path / "trained" / "photo0_inversion.png"),
                          _png(tmp_path / "random" / "photo0_inversion.png"))  # gain 1 both


def test_a_renderer_that_needs_a_guide_gets_the_guide_encoders_latents(
        run: Any, preset: Any, tmp_path: Path) -> None:
    """`-e e4e:A --renderer qa-guide --guide e4e:B`: the renderer gets B's latents of the
    photos, not A's, so its images are B's plain inversion and domain; adapt.json names the
    guide."""
    header, tensors = load_checkpoint(preset.e4e)
    noise = torch.Generator().manual_seed(1)
    other = save_checkpoint(  # e4e B: the preset's e4e, every weight moved a little
        tmp_path / "e4e_b.safetensors",
        {k: v + 0.05 * torch.randn(v.shape, generator=noise) if v.is_floating_point() else v
         for k, v in tensors.items()}, kind=header.kind, plugin=header.plugin,
        config=header.config, extra=header.extra)
    a, b = f"e4e:{preset.e4e}", f"e4e:{other}"
    ckpt = save_checkpoint(tmp_path / "guide.safetensors", QAGuide().state_dict(),
                           kind="renderer", plugin="qa-guide")
    code, err = run("adapt", "guided", "-e", a, "--renderer", str(ckpt), "--guide", b)
    assert code == 0, err
    assert run("adapt", "plain_b", "-e", b)[0] == 0
    assert run("adapt", "plain_a", "-e", a)[0] == 0
    guided = _outputs(tmp_path / "guided")
    for name, image in _outputs(tmp_path / "plain_b").items():
        assert np.abs(guided[name].astype(int) - image.astype(int)).max() <= 1, name
    assert not np.array_equal(guided["photo0_inversion.png"],
                              _png(tmp_path / "plain_a" / "photo0_inversion.png"))
    record = _json(tmp_path / "guided" / "adapt.json")
    assert record["renderer"]["guide"] == b
    assert record["guide_file"]["path"] == str(other.resolve())


def test_renderer_refusals_are_one_line(run: Any, preset: Any, tmp_path: Path) -> None:
    """Both options; an unknown name (with the close one); --guide for a renderer that reads
    none; a renderer that needs its recorded guide, which cannot be loaded (give --guide);
    render of inversions another encoder than the renderer's guide made."""
    fs = str(preset.featureshift_fse)
    both = (f"error: --featureshift and --renderer both choose the renderer: give one "
            f"(--featureshift {fs} is short for --renderer featureshift:{fs})\n")
    assert run("adapt", "a", "--featureshift", fs, "--renderer", "qa-flip") == (2, both)
    assert run("render", "r", str(tmp_path), "--featureshift", fs, "--renderer", "qa-flip") \
        == (2, both)
    code, err = run("adapt", "b", "--renderer", "qa-flp")
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "unknown renderer 'qa-flp'" in err and "'qa-flip'" in err, err
    code, err = run("adapt", "c", "--renderer", "qa-flip", "--guide", f"e4e:{preset.e4e}")
    assert (code, err) == (2, "error: --guide applies with a renderer that reads guide latents "
                              "(FeatureShift does); --renderer qa-flip (qa-flip) reads none: "
                              "nothing would use it\n")
    gone = save_checkpoint(tmp_path / "gone.safetensors", QAGuide().state_dict(),
                           kind="renderer", plugin="qa-guide",
                           extra={"sources": {"guide": "e4e:/nowhere/e4e.safetensors"}})
    code, err = run("adapt", "d", "--renderer", str(gone))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"error: --renderer {gone}: the guide encoder it was trained with, "
                          "'e4e:/nowhere/e4e.safetensors' (recorded in the model), cannot be "
                          "loaded"), err
    assert f"give it with --guide NAME:CKPT (--guide fse:{preset.fse} uses the encoder's own " \
           "latents)" in err
    assert run("adapt", "e", "--renderer", str(gone), "--guide", f"e4e:{preset.e4e}")[0] == 0
    assert run("adapt", "saved", "--save-latents")[0] == 0
    other = save_checkpoint(tmp_path / "other.safetensors", QAGuide().state_dict(),
                            kind="renderer", plugin="qa-guide",
                            extra={"sources": {"guide": f"e4e:{preset.e4e}"}})
    code, err = run("render", "f", str(tmp_path / "saved"), "--renderer", str(other))
    assert (code, err) == (2, f"error: --renderer {other}: the model was trained with the "
                              f"latents of guide encoder e4e:{preset.e4e}, which render has "
                              "no photo to run; use `stylebridge adapt --renderer` on the "
                              "photos\n")
    for out in "abcdf":
        assert not (tmp_path / out).exists()


def test_renderer_featureshift_is_the_featureshift_option(run: Any, preset: Any,
                                                          tmp_path: Path) -> None:
    """`--renderer featureshift:MODEL` renders what `--featureshift MODEL` renders."""
    fs = str(preset.featureshift_fse)
    assert run("adapt", "option", "--featureshift", fs)[0] == 0
    code, err = run("adapt", "spec", "--renderer", f"featureshift:{fs}")
    assert code == 0, err
    option, spec = _outputs(tmp_path / "option"), _outputs(tmp_path / "spec")
    for name, image in option.items():
        assert np.array_equal(spec[name], image), name
    record = _json(tmp_path / "spec" / "adapt.json")
    assert record["renderer"]["plugin"] == "featureshift"
    assert record["renderer"]["guide"] == _json(tmp_path / "option" / "adapt.json")[
        "featureshift"]["guide"]
