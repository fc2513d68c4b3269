"""FFHQ face alignment: the maths on a synthetic face, dlib on real photos, `stylebridge align`.

Expected positions come from the FFHQ procedure written out by hand (crop square
of half-size ``s = max(2 |eye_to_eye|, 1.8 |eye_to_mouth|)`` centred at
``eye_avg + 0.1 eye_to_mouth``, mapped onto the output square), never from an
earlier output of our code.  Real photos: scikit-image's astronaut (a face) and
chelsea (a cat: no human face).
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from stylebridge.core.images import load_image
from stylebridge.errors import ImageError
from stylebridge.pipelines.align import (
    NoFaceError,
    align_face,
    align_from_landmarks,
    detect_landmarks,
    ffhq_quad,
    to_rgb_uint8,
)

skdata = pytest.importorskip("skimage.data")

EYES_L, EYES_R = slice(36, 42), slice(42, 48)


def eye_centres(lm: np.ndarray) -> np.ndarray:
    return np.stack([lm[EYES_L].mean(axis=0), lm[EYES_R].mean(axis=0)])


# ---------------------------------------------------------------------------------------------
# The alignment maths, without dlib


def synthetic_landmarks(eye_l, eye_r, mouth_l, mouth_r) -> np.ndarray:
    """68 points whose eye groups average to the given centres (hexagons of radius 3)."""
    lm = np.tile(np.asarray(eye_l, dtype=np.float64), (68, 1))
    hexagon = np.array([[3 * math.cos(a), 3 * math.sin(a)] for a in np.arange(6) * math.pi / 3])
    lm[36:42] = np.asarray(eye_l) + hexagon
    lm[42:48] = np.asarray(eye_r) + hexagon
    lm[48], lm[54] = mouth_l, mouth_r
    return lm


def test_ffhq_quad_upright_face_by_hand() -> None:
    # eyes 100 px apart at y=200, mouth corners 100 px below the eye midpoint
    lm = synthetic_landmarks((250, 200), (350, 200), (270, 300), (330, 300))
    quad = ffhq_quad(lm)
    # x = e2e - rot90(e2m) = (100, 0) - (-100, 0) = (200, 0); |x| -> max(200, 180) = 200
    # c = eye_avg + 0.1 e2m = (300, 210)
    expected = np.array([[100, 10], [100, 410], [500, 410], [500, 10]], dtype=np.float64)
    np.testing.assert_allclose(quad, expected, atol=1e-9)
    # a long face: 1.8 |e2m| wins (|e2m| = 150 -> half-size 270)
    lm = synthetic_landmarks((250, 200), (350, 200), (270, 350), (330, 350))
    quad = ffhq_quad(lm)
    np.testing.assert_allclose(quad[2] - quad[0], [540, 540], atol=1e-9)
    np.testing.assert_allclose(quad.mean(axis=0), [300, 215], atol=1e-9)


def _rotated_face_image(theta_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """A 420×360 picture with coloured dots at the eyes and mouth corners of a tilted face.

    Face frame: eyes at (∓50, 0), mouth corners at (∓30, 100) (eye distance 100,
    eye-to-mouth 100) around (190, 150); the crop square leaves the picture, so
    the padding step runs.
    """
    t = math.radians(theta_deg)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    origin = np.array([190.0, 150.0])
    pts = [origin + rot @ np.array(p, dtype=np.float64)
           for p in ((-50, 0), (50, 0), (-30, 100), (30, 100))]
    yy, xx = np.mgrid[:360, :420]
    bg = 110 + 30 * np.sin(xx / 23.0) * np.cos(yy / 31.0)
    img = Image.fromarray(np.repeat(bg[..., None], 3, axis=2).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 0, 255)]
    for (x, y), col in zip(pts, colours, strict=True):
        draw.ellipse((x - 6, y - 6, x + 6, y + 6), fill=col)
    return np.asarray(img), synthetic_landmarks(*pts)


def _centroid(arr: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    dist = np.abs(arr.astype(np.int32) - np.array(colour)).sum(axis=2)
    ys, xs = np.nonzero(dist < 120)
    assert len(xs) > 3, f"colour {colour} not found in the aligned image"
    return np.array([xs.mean(), ys.mean()])


@pytest.mark.parametrize("theta", [0.0, 23.0, -35.0])
def test_warp_puts_dots_at_ffhq_template(theta: float) -> None:
    size = 256
    image, lm = _rotated_face_image(theta)
    face = align_from_landmarks(image, lm, size, transform_size=1024)
    assert face.image.size == (size, size)
    out = np.asarray(face.image)
    # By hand: s = max(2*100, 1.8*100) = 200, c = eye_avg + (0, 10) in the face frame.
    # Pixel centre of a point at face-frame offset (a, b) from c:
    #   u = size * (a / s + 1) / 2 - 0.5,  v = size * (b / s + 1) / 2 - 0.5
    def expect(a: float, b: float) -> np.ndarray:
        return np.array([size * (a / 200 + 1) / 2 - 0.5, size * (b / 200 + 1) / 2 - 0.5])

    expected = {(255, 0, 0): expect(-50, -10), (0, 255, 0): expect(50, -10),
                (0, 0, 255): expect(-30, 90), (255, 0, 255): expect(30, 90)}
    for colour, want in expected.items():
        np.testing.assert_allclose(_centroid(out, colour), want, atol=1.0)
    # the same maths through the public mapping
    pts = np.stack([lm[36:42].mean(axis=0), lm[42:48].mean(axis=0), lm[48], lm[54]])
    np.testing.assert_allclose(face.to_output(pts), np.stack(list(expected.values())), atol=1e-6)


def test_the_output_is_size_even_when_the_transform_is_smaller(tmp_path: Path) -> None:
    """FFHQ's code only shrinks: ``transform_size`` below ``size`` wrote the smaller crop
    (``align --transform-size 1`` wrote a 1x1 PNG under --size 1024). The Python call now
    gives ``size`` always; ``align`` refuses the option below --size in one line."""
    from stylebridge.cli.main import main

    image, lm = _rotated_face_image(0.0)
    face = align_from_landmarks(image, lm, 64, transform_size=32)
    assert face.image.size == (64, 64)
    src = tmp_path / "a.png"
    Image.fromarray(image).save(src)
    assert main(["align", str(src), "--out", str(tmp_path / "o"), "--size", "64",
                 "--transform-size", "1"]) == 2
    assert not (tmp_path / "o").exists()


def test_padding_fills_outside_the_photo() -> None:
    image, lm = _rotated_face_image(23.0)
    padded = np.asarray(align_from_landmarks(image, lm, 128, transform_size=512).image)
    bare = np.asarray(align_from_landmarks(image, lm, 128, transform_size=512,
                                           enable_padding=False).image)
    # the crop square's top-left corner is outside the photo: black without padding,
    # close to the photo's colours (reflect + blur + fade to median) with it
    assert bare[:6, :6].max() == 0
    assert padded[:6, :6].min() > 60
    assert abs(float(padded[:6, :6].mean()) - float(np.median(image))) < 40


def test_to_rgb_uint8_conversions() -> None:
    gray16 = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000)
    out = to_rgb_uint8(gray16)
    assert out.shape == (3, 4, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 0], np.round(gray16 / 65535 * 255).astype(np.uint8))
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[0, 0, 3] = 255  # opaque red-ish; the others fully transparent -> white
    out = to_rgb_uint8(rgba)
    np.testing.assert_array_equal(out[0, 0], [200, 0, 0])
    np.testing.assert_array_equal(out[1, 1], [255, 255, 255])
    t = torch.tensor([[[0.0, 1.0]], [[0.5, 0.25]], [[1.0, 0.0]]])  # [3, 1, 2]
    np.testing.assert_array_equal(to_rgb_uint8(t), [[[0, 128, 255], [255, 64, 0]]])
    with pytest.raises(ValueError, match=r"expected an image array \[H, W\] or \[H, W, 3\|4\], "
                                         r"got \[4, 4, 2\]"):
        to_rgb_uint8(np.zeros((4, 4, 2)))


# ---------------------------------------------------------------------------------------------
# dlib on real photos

needs_dlib = pytest.mark.skipif(importlib.util.find_spec("dlib") is None,
                                reason="dlib (package dlib-bin) is not installed")


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.ascontiguousarray(skdata.astronaut())


@pytest.fixture(scope="module")
def aligned_1024(astronaut: np.ndarray):
    return align_face(astronaut)


@pytest.fixture(scope="module")
def aligned_256(astronaut: np.ndarray):
    return align_face(astronaut, 256)


@needs_dlib
def test_landmarks_on_the_face(astronaut: np.ndarray) -> None:
    face = detect_landmarks(astronaut)
    assert face is not None
    left, top, right, bottom = face.box
    # Eileen Collins' face is in the upper middle; dlib also fires weakly on the mission
    # patch (y > 330), which must not be chosen
    assert 150 < (left + right) / 2 < 290 and 60 < (top + bottom) / 2 < 190
    inner = face.landmarks[17:]  # brows, nose, eyes, mouth
    assert (inner[:, 0] >= left - 3).all() and (inner[:, 0] <= right + 3).all()
    assert (inner[:, 1] >= top - 3).all() and (inner[:, 1] <= bottom + 3).all()
    eyes = eye_centres(face.landmarks)
    assert eyes[0, 0] < eyes[1, 0]                           # image-left eye first
    assert eyes[:, 1].max() < face.landmarks[33, 1] < face.landmarks[51, 1]  # eyes > nose > lip


@needs_dlib
def test_large_photo_is_detected_downscaled_and_mapped_back(astronaut: np.ndarray) -> None:
    import sys

    small = detect_landmarks(astronaut)
    big = np.asarray(Image.fromarray(astronaut).resize((1536, 1536), Image.Resampling.BICUBIC))
    face = detect_landmarks(big, detect_size=640)  # detection at 640 px, landmarks at 1536
    assert small is not None and face is not None
    # pixel index i at 512 px is centred on 3 i + 1 at 1536 px
    np.testing.assert_allclose(eye_centres(face.landmarks), 3 * eye_centres(small.landmarks) + 1,
                               atol=4.0)
    np.testing.assert_allclose(face.box, 3 * np.asarray(small.box) + 1, atol=30.0)
    # the dlib model files were found by path; the package itself is never imported
    assert "face_recognition_models" not in sys.modules


def _check_template(aligned, size: int, tol_px: float) -> None:
    """Re-detect on the aligned output; compare with the FFHQ geometry."""
    assert aligned.image.size == (size, size)
    again = detect_landmarks(np.asarray(aligned.image))
    assert again is not None
    # 1. eye centres where the alignment maths puts the input's eyes
    expected = aligned.to_output(eye_centres(aligned.landmarks))
    np.testing.assert_allclose(eye_centres(again.landmarks), expected, atol=tol_px)
    # 2. the fixed FFHQ frame: centre point and scale of the crop square
    lm = again.landmarks
    eyes = eye_centres(lm)
    eye_avg = eyes.mean(axis=0)
    e2e = eyes[1] - eyes[0]
    e2m = (lm[48] + lm[54]) / 2 - eye_avg
    centre = eye_avg + 0.1 * e2m
    np.testing.assert_allclose(centre, [size / 2 - 0.5] * 2, atol=2 * tol_px)
    half = max(2 * np.hypot(*e2e), 1.8 * np.hypot(*e2m))
    assert abs(half / (size / 2) - 1) < 0.03
    # 3. the crop's x axis (e2e - rot90(e2m)) is horizontal
    x = e2e - np.array([-e2m[1], e2m[0]])
    assert abs(math.degrees(math.atan2(x[1], x[0]))) < 1.5


@needs_dlib
def test_align_1024_eyes_at_template(aligned_1024) -> None:
    _check_template(aligned_1024, 1024, tol_px=4.0)


@needs_dlib
def test_align_256(aligned_256) -> None:
    _check_template(aligned_256, 256, tol_px=1.5)


@needs_dlib
def test_flipped_photo_gives_mirrored_alignment(astronaut: np.ndarray) -> None:
    size = 512
    plain = align_face(astronaut, size)
    flipped = align_face(np.ascontiguousarray(astronaut[:, ::-1]), size)
    a = detect_landmarks(np.asarray(plain.image))
    b = detect_landmarks(np.asarray(flipped.image))
    assert a is not None and b is not None
    eyes_a = eye_centres(a.landmarks)
    eyes_b = eye_centres(b.landmarks)[::-1]          # the image-left eye is the other eye
    eyes_b[:, 0] = size - 1 - eyes_b[:, 0]           # mirror back
    np.testing.assert_allclose(eyes_b, eyes_a, atol=3.0)
    img_a = np.asarray(plain.image, dtype=np.float64) / 255
    img_b = np.asarray(flipped.image, dtype=np.float64)[:, ::-1] / 255
    assert np.abs(img_a - img_b).mean() < 0.04


@needs_dlib
@pytest.mark.parametrize("kind", ["gray", "rgba", "gray16"])
def test_gray_rgba_16bit_files(tmp_path: Path, astronaut: np.ndarray, aligned_256, kind: str) -> None:
    path = tmp_path / f"{kind}.png"
    gray = (astronaut.astype(np.float64) @ [0.299, 0.587, 0.114])
    if kind == "gray":
        Image.fromarray(gray.round().astype(np.uint8), "L").save(path)
    elif kind == "rgba":
        alpha = np.full(astronaut.shape[:2], 255, np.uint8)
        alpha[400:, :] = 0  # transparent bottom strip, away from the face
        Image.fromarray(np.dstack([astronaut, alpha]), "RGBA").save(path)
    else:
        Image.fromarray((gray / 255 * 65535).round().astype(np.uint16)).save(path)
        assert Image.open(path).mode.startswith("I")
    face = align_face(load_image(path), 256, path=path)
    assert face.image.size == (256, 256) and face.image.mode == "RGB"
    np.testing.assert_allclose(face.to_output(eye_centres(face.landmarks)),
                               aligned_256.to_output(eye_centres(aligned_256.landmarks)), atol=3.0)
    if kind != "rgba":
        arr = np.asarray(face.image)
        assert np.array_equal(arr[..., 0], arr[..., 2])  # still gray after alignment


def _with_orientation(image: Image.Image, path: Path, orientation: int) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(path, exif=exif.tobytes())
    return path


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_pillow_does(tmp_path: Path, astronaut: np.ndarray,
                                                     orientation: int) -> None:
    """Every EXIF orientation turns the pixels as Pillow's own ``ImageOps.exif_transpose``
    (the oracle) does; PNG keeps the pixels exact."""
    from PIL import ImageOps

    picture = Image.fromarray(astronaut[40:200, 100:340])  # not square, not symmetric
    path = _with_orientation(picture, tmp_path / f"o{orientation}.png", orientation)
    with Image.open(path) as img:
        expected = np.asarray(ImageOps.exif_transpose(img).convert("RGB"), dtype=np.float32)
    got = load_image(path).permute(1, 2, 0).numpy() * 255
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-3)
    if orientation in (5, 6, 7, 8):
        assert got.shape[:2] == (240, 160)  # turned a quarter


@needs_dlib
def test_a_sideways_phone_photo_is_aligned_upright(tmp_path: Path, astronaut: np.ndarray,
                                                   aligned_256) -> None:
    """A phone stores a portrait sideways with orientation 6 (turn 90° clockwise to view):
    read upright, its face aligns like the upright photo's."""
    sideways = Image.fromarray(astronaut).transpose(Image.Transpose.ROTATE_90)  # 90° CCW
    path = _with_orientation(sideways, tmp_path / "phone.jpg", 6)
    face = align_face(load_image(path), 256, path=path)
    np.testing.assert_allclose(face.to_output(eye_centres(face.landmarks)),
                               aligned_256.to_output(eye_centres(aligned_256.landmarks)), atol=3.0)


@needs_dlib
def test_no_face_on_a_cat(tmp_path: Path) -> None:
    cat = skdata.chelsea()
    with pytest.raises(NoFaceError) as info:
        align_face(cat, 256)
    assert isinstance(info.value, ImageError)
    assert str(info.value) == "no face found"
    with pytest.raises(NoFaceError, match=r"^cat\.png: no face found$"):
        align_face(cat, 256, path="cat.png")


@needs_dlib
def test_align_command_skips_bad_inputs(tmp_path: Path, astronaut: np.ndarray, capsys) -> None:
    from stylebridge.cli.main import main
    from stylebridge.registry import reset_registry

    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(astronaut).save(src / "astronaut.png")
    Image.fromarray(skdata.chelsea()).save(src / "chelsea.png")
    buf = io.BytesIO()
    Image.fromarray(astronaut).save(buf, format="JPEG", quality=90)
    (src / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    (src / "notes.png").write_text("this is not an image\n")
    out = tmp_path / "out"
    reset_registry()
    try:
        code = main(["align", str(src), "--out", str(out), "--size", "256", "--json",
                     "--landmarks"])
    finally:
        reset_registry()
    report = json.loads(capsys.readouterr().out)
    assert code == 3
    assert report["done"] == [str(src / "astronaut.png")]
    reasons = {Path(s["file"]).name: s["reason"] for s in report["skipped"]}
    assert reasons["chelsea.png"] == "no face found"
    assert reasons["truncated.jpg"].startswith("cannot read image")
    assert reasons["notes.png"] == "is a text file, not an image"
    written = sorted(p.name for p in out.iterdir())
    assert written == ["astronaut.png", "landmarks.json"]  # no temporary files left behind
    with Image.open(out / "astronaut.png") as img:
        assert img.size == (256, 256)
    marks = json.loads((out / "landmarks.json").read_text())
    assert len(marks["faces"][str(src / "astronaut.png")]["landmarks"]) == 68


@needs_dlib
def test_skip_existing_continues_an_interrupted_run(tmp_path: Path, astronaut: np.ndarray,
                                                    capsys) -> None:
    """A photo whose aligned PNG is in --out is kept as it is (a sentinel file stays
    byte-identical); the others are aligned as a fresh run aligns them."""
    from stylebridge.cli.main import main

    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(astronaut).save(src / "a.png")
    Image.fromarray(astronaut[:, ::-1].copy()).save(src / "b.png")  # mirrored: another face
    fresh, out = tmp_path / "fresh", tmp_path / "out"
    assert main(["align", str(src), "--out", str(fresh), "--size", "64"]) == 0
    out.mkdir()
    import io

    buffer = io.BytesIO()   # a crop an interrupted run wrote (complete: writes are atomic)
    Image.new("RGB", (64, 64), (1, 2, 3)).save(buffer, format="PNG")
    sentinel = buffer.getvalue()
    (out / "a.png").write_bytes(sentinel)
    capsys.readouterr()
    code = main(["align", str(src), "--out", str(out), "--size", "64", "--skip-existing",
                 "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["kept"] == [str(src / "a.png")]
    assert report["done"] == [str(src / "b.png")]  # a kept photo is listed under kept only
    assert (out / "a.png").read_bytes() == sentinel                  # not aligned again
    # a missing photo of a kept one's name is reported missing, not kept with it
    missing = tmp_path / "nowhere" / "a.png"
    code = main(["align", str(missing), str(src / "a.png"), "--out", str(out), "--size", "64",
                 "--skip-existing", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["kept"] == [str(src / "a.png")]
    from stylebridge.core.batch import EXIT_PARTIAL

    assert [s["file"] for s in report["skipped"]] == [str(missing)] and code == EXIT_PARTIAL
    assert (out / "b.png").read_bytes() == (fresh / "b.png").read_bytes()
    # without the flag every photo is aligned again; with it, --out must be named and the
    # modes whose outputs an interrupted run leaves incomplete are refused
    assert main(["align", str(src), "--out", str(out), "--size", "64"]) == 0
    assert (out / "a.png").read_bytes() == (fresh / "a.png").read_bytes()
    capsys.readouterr()
    for extra, message in ((["--all-faces"], "works without --all-faces and --landmarks"),
                           (["--landmarks"], "works without --all-faces and --landmarks")):
        assert main(["align", str(src), "--out", str(out), "--skip-existing", *extra]) == 2
        assert message in capsys.readouterr().err
    assert main(["align", str(src), "--skip-existing"]) == 2
    assert "give it as --out DIR" in capsys.readouterr().err
    # an earlier crop at another --size is not this run's: refused, not kept (mixed sizes)
    assert main(["align", str(src), "--out", str(out), "--size", "32", "--skip-existing"]) == 2
    assert (f"--skip-existing: {out / 'a.png'} is 64x64, this run makes 32x32"
            in " ".join(capsys.readouterr().err.split()))
    # --resume, the name the other batch commands use, is the same option
    (out / "a.png").write_bytes(sentinel)
    assert main(["align", str(src), "--out", str(out), "--size", "64", "--resume"]) == 0
    assert (out / "a.png").read_bytes() == sentinel


@needs_dlib
def test_all_faces_of_a_group_photo_largest_first(tmp_path: Path, astronaut: np.ndarray,
                                                  capsys) -> None:
    """Two astronauts, the second at 320/512 scale: `--all-faces` writes both, largest first;
    face 00 is what the default (largest face) writes, face 01's eyes are the small copy's
    eyes scaled into place, and `--min-face` leaves the small one out."""
    from stylebridge.cli.main import main

    photo = Image.fromarray(astronaut)
    canvas = Image.new("RGB", (900, 512), (128, 128, 128))
    canvas.paste(photo, (0, 0))
    canvas.paste(photo.resize((320, 320), Image.Resampling.LANCZOS), (560, 150))
    src = tmp_path / "group.png"
    canvas.save(src)
    assert main(["align", str(src), "--out", str(tmp_path / "one"), "--size", "256"]) == 0
    assert main(["align", str(src), "--out", str(tmp_path / "all"), "--size", "256",
                 "--all-faces", "--landmarks"]) == 0
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == [
        "group_00.png", "group_01.png", "landmarks.json"]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "all" / "group_00.png")),
                          np.asarray(Image.open(tmp_path / "one" / "group.png")))
    faces = json.loads((tmp_path / "all" / "landmarks.json").read_text())["faces"]
    big = eye_centres(np.array(faces[f"{src}#00"]["landmarks"]))
    small = eye_centres(np.array(faces[f"{src}#01"]["landmarks"]))
    np.testing.assert_allclose(small, big * 320 / 512 + [560, 150], atol=3.0)
    side = min(np.subtract(faces[f"{src}#01"]["box"][2:], faces[f"{src}#01"]["box"][:2])) + 1
    assert main(["align", str(src), "--out", str(tmp_path / "big"), "--size", "256",
                 "--all-faces", "--min-face", str(int(side) + 1)]) == 0
    assert sorted(p.name for p in (tmp_path / "big").iterdir()) == ["group_00.png"]
    capsys.readouterr()
    assert main(["align", str(src), "--out", str(tmp_path / "none"), "--all-faces",
                 "--min-face", "2000", "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["skipped"] == [{"file": str(src),
                                  "reason": "no face of at least 2000 pixels found"}]
    assert main(["align", str(src), "--out", str(tmp_path / "x"), "--min-face", "10"]) == 2
    assert capsys.readouterr().err == "error: --min-face applies with --all-faces\n"


@needs_dlib
def test_a_small_face_in_a_phone_sized_photo_is_found_by_looking_closer() -> None:
    """A 4032×3024 photo with a face ~200 px wide: nothing at the 640 px detection copy, so a
    second look at 1280 px; before, `no face found`."""
    from stylebridge.pipelines.align import DEFAULT_DETECT_SIZE, _detect, detect_landmarks

    canvas = Image.new("RGB", (4032, 3024), (120, 130, 140))
    canvas.paste(Image.fromarray(skdata.astronaut()).resize((640, 640)), (1500, 1000))
    rgb = np.asarray(canvas)
    assert _detect(rgb, DEFAULT_DETECT_SIZE, 1)[0] == []  # why the second look is needed
    face = detect_landmarks(rgb)
    assert face is not None
    left, top, right, bottom = face.box
    assert 1500 < left < right < 2140 and 1000 < top < bottom < 1640  # on the pasted face


def test_an_interrupted_align_says_how_to_continue(tmp_path: Path, monkeypatch, capsys) -> None:
    """adapt and generate said how to continue after Ctrl-C; align said only "interrupted"."""
    from stylebridge.cli.commands import align as align_cli
    from stylebridge.cli.main import main

    def interrupted(config, progress=None):
        config.out.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(config.out / "a.png")   # one photo done
        raise KeyboardInterrupt

    monkeypatch.setattr(align_cli, "align", interrupted)
    src = tmp_path / "in.png"
    Image.new("RGB", (8, 8)).save(src)
    out = tmp_path / "out"
    assert main(["align", str(src), "--out", str(out), "--size", "8"]) == 130
    said = " ".join(capsys.readouterr().err.split())
    assert f"continue with `stylebridge align ... --resume --out {out}` (the same --size)" in said


@needs_dlib
def test_a_photo_too_small_for_the_detector_says_so() -> None:
    """A 1x1 photo said only "no face found", as a large photo of a wall does."""
    from stylebridge.pipelines.align import NoFaceError

    with pytest.raises(NoFaceError) as info:
        align_face(np.zeros((1, 1, 3), np.uint8), 64, path="tiny.png")
    assert str(info.value) == ("tiny.png: no face found (the image is only 1x1 pixels: too "
                               "small to hold a face the detector can find)")
    with pytest.raises(NoFaceError) as info:
        align_face(np.full((200, 300, 3), 128, np.uint8), 64, path="wall.png")
    assert str(info.value) == "wall.png: no face found"


def test_alignment_and_the_id_metric_share_one_face_detector() -> None:
    """dlib's HOG detector takes 0.25 s to build: `demo` and `adapt --metric id` built it twice."""
    pytest.importorskip("dlib")
    from stylebridge.pipelines.align import _dlib_models
    from stylebridge.plugins.nets.face_id import _dlib_nets, dlib_model_dir

    assert _dlib_models()[0] is _dlib_nets(str(dlib_model_dir()))[0]


@needs_dlib
def test_skip_existing_aligns_a_replaced_photo_again(tmp_path: Path, astronaut: np.ndarray,
                                                     capsys) -> None:
    """An aligned picture records the sha256 of the photo it was made from: `--skip-existing`
    keeps it while the photo is the same file, aligns the photo again once it was replaced
    (before: the picture of the old photo was kept), and refuses other alignment options."""
    from stylebridge.cli.main import main
    from stylebridge.pipelines.align_batch import SOURCE_KEY

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    Image.fromarray(astronaut).save(src / "a.png")
    Image.fromarray(astronaut[:, ::-1].copy()).save(tmp_path / "mirrored.png")
    assert main(["align", str(src), "--out", str(out), "--size", "64"]) == 0
    import hashlib

    with Image.open(out / "a.png") as first:
        record = json.loads(first.text[SOURCE_KEY])
    assert record == {"photo_sha256": hashlib.sha256((src / "a.png").read_bytes()).hexdigest(),
                      "size": 64, "transform_size": 256, "padding": True}
    before = (out / "a.png").read_bytes()
    capsys.readouterr()
    assert main(["info", str(out / "a.png"), "--json"]) == 0   # what `info` shows of it
    assert json.loads(capsys.readouterr().out)["aligned_from"] == record
    assert main(["info", str(out / "a.png")]) == 0
    shown = capsys.readouterr().out
    assert "aligned from a photo with sha256" in shown and record["photo_sha256"] in shown
    args = ["align", str(src), "--out", str(out), "--size", "64", "--skip-existing", "--json"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kept"] == [str(src / "a.png")] and report["realigned"] == []
    assert (out / "a.png").read_bytes() == before
    (src / "a.png").write_bytes((tmp_path / "mirrored.png").read_bytes())  # replaced
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kept"] == [] and report["realigned"] == [str(src / "a.png")]
    assert report["done"] == [str(src / "a.png")]
    fresh = tmp_path / "fresh"
    assert main(["align", str(src), "--out", str(fresh), "--size", "64"]) == 0
    assert (out / "a.png").read_bytes() == (fresh / "a.png").read_bytes() != before
    capsys.readouterr()
    for extra, said in ((["--no-padding"], "was aligned with padding, this run aligns with "
                                           "--no-padding"),
                        (["--transform-size", "128"], "was aligned with --transform-size 256, "
                                                      "this run aligns with --transform-size 128")):
        assert main([*args, *extra]) == 2
        assert f"--skip-existing: {out / 'a.png'} {said}; give the earlier options" in " ".join(
            capsys.readouterr().err.split())
    # replaced by a picture without a face: skipped, not said to be aligned again
    kept = (out / "a.png").read_bytes()
    Image.new("RGB", (64, 64), (128, 128, 128)).save(src / "a.png")
    assert main(args) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["realigned"] == [] and report["done"] == [] and report["kept"] == []
    assert [s["file"] for s in report["skipped"]] == [str(src / "a.png")]
    assert (out / "a.png").read_bytes() == kept


@needs_dlib
def test_landmarks_of_a_photo_read_reduced_are_in_its_own_pixels(
        tmp_path: Path, astronaut: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """A photo whose shorter side is 8192 px or more is read reduced: landmarks.json gave
    the reduced image's coordinates (half the true values at 8192 px) while `--landmarks`
    says input pixels.  Here the reduction is made to start at 1024 px."""
    from stylebridge.cli.main import main
    from stylebridge.core import images

    photo = tmp_path / "big.png"
    Image.fromarray(astronaut).resize((1024, 1024), Image.Resampling.LANCZOS).save(photo)
    faces = {}
    for name, keep in (("full", images.REDUCE_KEEP_SIDE), ("reduced", 512)):
        monkeypatch.setattr(images, "REDUCE_KEEP_SIDE", keep)
        assert images.reduce_factor(1024, 1024) == (1 if name == "full" else 2)
        assert main(["align", str(photo), "--out", str(tmp_path / name), "--size", "64",
                     "--landmarks"]) == 0
        faces[name] = json.loads((tmp_path / name / "landmarks.json").read_text())["faces"][
            str(photo)]
    full, reduced = (np.array(faces[k]["landmarks"]) for k in ("full", "reduced"))
    # detected on a 512 px reading: the same points within a few of the 1024 px pixels
    assert np.abs(full - reduced).max() < 6 and np.abs(full - reduced).mean() < 2
    assert np.abs(np.array(faces["full"]["quad"]) - np.array(faces["reduced"]["quad"])).max() < 6
    box_full, box_reduced = np.array(faces["full"]["box"]), np.array(faces["reduced"]["box"])
    assert np.abs(box_full - box_reduced).max() < 20   # the detector's box varies more
