"""Results shown in a notebook: `stylebridge.to_pil` turns an Adapter output into PIL images
(and refuses what `save_image` refuses, in the same one line); importing open_clip in a notebook
kernel without ipywidgets no longer prints tqdm's "IProgress not found" warning."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import stylebridge
from stylebridge.errors import StylebridgeError


def pixels(image: Image.Image) -> list[list[int]]:
    return np.asarray(image).reshape(-1, 3).tolist()


def test_to_pil_gives_the_pixels_save_image_writes(tmp_path) -> None:
    picture = torch.tensor([0.0, 0.5, 1.0, 0.2, 0.998, 0.0011]).view(3, 1, 2)
    image = stylebridge.to_pil(picture)
    assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (2, 1)
    assert pixels(image) == [[0, 255, 254], [128, 51, 0]]
    assert pixels(stylebridge.to_pil(picture[None])) == pixels(image)
    stylebridge.save_image(picture, tmp_path / "p.png")
    with Image.open(tmp_path / "p.png") as saved:
        assert pixels(saved.convert("RGB")) == pixels(image)
    pair = stylebridge.to_pil(torch.stack([picture, 1 - picture]))
    assert isinstance(pair, list) and len(pair) == 2
    assert pixels(pair[1]) == [[255, 0, 1], [128, 204, 255]]
    assert "to_pil" in stylebridge.__all__ and "to_pil" in dir(stylebridge)


@pytest.mark.parametrize(("value", "said"), [
    (torch.zeros(3, 4, 4, dtype=torch.uint8), "to_pil: expected a float tensor in [0, 1], got "
                                             "torch.uint8"),
    (torch.zeros(4, 4, 4), "to_pil: expected an RGB picture [3, H, W] or a batch [B, 3, H, W], "
                           "got shape [4, 4, 4]"),
    (torch.zeros(1, 1, 3, 4, 4), "to_pil: expected an RGB picture [3, H, W] or a batch "
                                 "[B, 3, H, W], got shape [1, 1, 3, 4, 4]"),
    (torch.zeros(0, 3, 4, 4), "to_pil: expected an RGB picture [3, H, W] or a batch "
                              "[B, 3, H, W], got shape [0, 3, 4, 4]"),
    (torch.full((3, 2, 2), -1.0), "to_pil: values span [-1, -1], expected [0, 1] (a "
                                  "generator's [-1, 1] output: from_generator_range(x))"),
    (torch.tensor([float("nan"), 0.5, 0.5]).view(3, 1, 1),
     "to_pil: the picture has 1 NaN or Inf value(s)"),
    ([[0.5]], "to_pil: expected a float tensor in [0, 1], got list"),
])
def test_to_pil_refuses_in_one_line_what_save_image_refuses(value, said: str, tmp_path) -> None:
    with pytest.raises(StylebridgeError) as info:
        stylebridge.to_pil(value)
    assert str(info.value) == said
    with pytest.raises(StylebridgeError) as saved:  # the same check, named by its call
        stylebridge.save_image(value, tmp_path / "x.png")
    if "batch" not in said:
        assert str(saved.value) == said.replace("to_pil", f"save_image {tmp_path / 'x.png'}", 1) \
            + ("; nothing was written" if "NaN" in said else "")


def test_open_clip_imports_without_tqdms_notebook_warning() -> None:
    pytest.importorskip("open_clip")
    # a notebook kernel as tqdm.autonotebook recognises one (JupyterLite's marker module), in
    # a fresh interpreter: tqdm.auto is imported for the first time by open_clip's import
    script = (
        "import sys, types, warnings\n"
        "sys.modules['IPython.utils._process_emscripten'] = types.ModuleType('marker')\n"
        "warnings.simplefilter('always')\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    from stylebridge.plugins.nets.clip import import_open_clip\n"
        "    import_open_clip()\n"
        "assert 'tqdm.autonotebook' in sys.modules\n"
        "print([f'{w.category.__name__}: {w.message}' for w in caught])\n"
        "import warnings as w2\n"
        "with w2.catch_warnings(record=True) as later:\n"
        "    w2.simplefilter('always')\n"
        "    from tqdm import TqdmWarning\n"
        "    w2.warn('IProgress not found (another)', TqdmWarning)\n"
        "print(len(later))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    listed, later = done.stdout.strip().splitlines()[-2:]
    assert "IProgress" not in listed and "TqdmWarning" not in listed
    assert later == "1"  # the filter ended with the import: nothing else of the caller's quieted
