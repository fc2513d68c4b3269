"""Defect 1 of the image-input review: a 1×1 photo crashed face alignment and aborted its batch.

A 1×1 image read from a tensor became a ``uint8 [1, 1, 3]`` array with the strides of a
permuted ``[3, 1, 1]`` tensor, ``(1, 1, 1)``; numpy counts it as contiguous (the strides of
length-1 axes do not matter to numpy), ``np.ascontiguousarray`` kept it, and dlib refused it
with ``RuntimeError: The stride of the 2nd dimension ... must be 3``: ``invert``/``align`` over
a folder stopped with no output, ``demo --image`` and the web app's photo upload failed.  Now the
array dlib gets always has C strides, and any ``RuntimeError`` of dlib on an odd image is a
per-file :class:`ImageError` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylebridge.cli.main import main
from stylebridge.errors import ImageError
from stylebridge.pipelines import align as alignment


def test_arrays_for_dlib_have_c_strides() -> None:
    """Every array ``to_rgb_uint8`` gives (what the detector and predictor get) has the
    strides of a fresh ``uint8 [H, W, 3]`` array, ``(3 W, 3, 1)``: the 1×1 one included; and
    the tensor conversion, now in bands of rows (no float copy of a whole photo), still gives
    ``round(clamp(x, 0, 1) * 255)`` with grey copied to 3 channels."""
    for h, w in [(1, 1), (1, 5), (5, 1), (2, 2), (3, 7)]:
        for image in (torch.rand(3, h, w), torch.rand(1, 3, h, w), torch.rand(1, h, w),
                      np.zeros((h, w, 3), np.uint8)[..., ::-1], Image.new("RGB", (w, h))):
            rgb = alignment.to_rgb_uint8(image)
            assert rgb.shape == (h, w, 3) and rgb.dtype == np.uint8
            assert rgb.strides == (3 * w, 3, 1), ((h, w), type(image).__name__, rgb.strides)
    t = torch.linspace(-0.5, 1.5, 5 * 7).reshape(1, 5, 7)
    expected = np.clip(np.linspace(-0.5, 1.5, 35, dtype=np.float32), 0, 1) * np.float32(255)
    expected = np.repeat(np.round(expected).astype(np.uint8).reshape(5, 7, 1), 3, axis=2)
    np.testing.assert_array_equal(alignment.to_rgb_uint8(t), expected)


def test_a_dlib_runtime_error_is_a_one_line_error_naming_the_file(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever dlib refuses (here: any image) is an ImageError naming the file, so that a
    batch skips that photo; no dlib needed for this check."""

    class Refusing:
        def run(self, *args: object) -> None:
            raise RuntimeError("Unsupported image type, must be 8bit gray or RGB image.\nmore")

    monkeypatch.setattr(alignment, "_dlib_models", lambda: (Refusing(), None))
    with pytest.raises(ImageError) as info:
        alignment.align_face(torch.rand(3, 50, 60), 64, path="odd.png")
    assert str(info.value) == ("odd.png: face detection failed on this image (dlib: "
                               "Unsupported image type, must be 8bit gray or RGB image.)")
    with pytest.raises(ImageError, match=r"^odd\.png: face detection failed"):
        alignment.align_faces(torch.rand(3, 50, 60), 64, path="odd.png")


def _write_tiny_photos(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (1, 1), (100, 120, 130)).save(folder / "tiny.png")
    return folder / "tiny.png"


def test_a_1x1_photo_is_no_face_not_a_crash(tmp_path: Path) -> None:
    pytest.importorskip("dlib")
    import stylebridge
    from stylebridge.core.images import load_image

    tiny = _write_tiny_photos(tmp_path)
    with pytest.raises(ImageError, match=r"tiny\.png: no face found \(the image is only 1x1"):
        alignment.align_face(load_image(tiny), 64, path=tiny)
    with pytest.raises(ImageError, match=r"tiny\.png: no face found"):
        stylebridge.load_photo(tiny, size=64)  # what `demo --image` and the web app call


def test_align_and_invert_skip_a_1x1_photo_and_go_on(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("dlib")
    skdata = pytest.importorskip("skimage.data")
    from stylebridge.pipelines.presets import build_tiny_preset

    photos = tmp_path / "photos"
    _write_tiny_photos(photos)
    Image.fromarray(skdata.astronaut()).save(photos / "face.png")
    code = main(["align", str(photos), "--out", str(tmp_path / "aligned"), "--size", "64"])
    out = capsys.readouterr().out
    assert code == 3, out
    assert (tmp_path / "aligned" / "face.png").is_file()
    assert "1 done, 1 skipped" in out and "tiny.png" in out and "1x1 pixels" in out

    preset = build_tiny_preset(tmp_path / "preset", n_images=2)
    code = main(["invert", "-e", f"e4e:{preset.e4e}", "-g", str(preset.generator),
                 str(photos), "--out", str(tmp_path / "inverted"), "--align-size", "64"])
    out = capsys.readouterr().out
    assert code == 3, out
    assert (tmp_path / "inverted" / "face_inversion.png").is_file()
    assert "1 done, 1 skipped" in out and "tiny.png" in out
