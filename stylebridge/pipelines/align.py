"""FFHQ face alignment (dlib 68 landmarks) and the ``align`` pipeline (``stylebridge align``).

Every FFHQ encoder (pSp, e4e, StyleRes, FSE, SFE) expects faces cropped and
rotated the way the FFHQ data set was made (NVlabs/ffhq-dataset
``recreate_aligned_images``; e4e/pSp ``utils/alignment.py`` is the same maths).
:func:`align_face` reproduces that procedure:

1. **Landmarks**: dlib's HOG frontal face detector (upsampling once) finds the
   faces; the *largest* one gets the 68-point ``shape_predictor_68_face_landmarks``.
2. **Oriented crop square** from the eyes and the mouth corners (points 48, 54)::

       eye_to_eye   = eye_right - eye_left
       eye_to_mouth = mouth_avg - eye_avg
       x  = eye_to_eye - rot90(eye_to_mouth)       rot90(v) = (-v_y, v_x)
       x *= max(2 |eye_to_eye|, 1.8 |eye_to_mouth|) / |x|
       y  = rot90(x);   c = eye_avg + 0.1 eye_to_mouth
       quad = [c - x - y, c - x + y, c + x + y, c + x - y]   (TL, BL, BR, TR)

3. **Shrink** (``shrink = floor(qsize / size / 2)``; if > 1 the image is resized
   by ``1/shrink``, antialiased), **crop** to the quad plus a 10 % border,
   **pad** (reflect) where the quad leaves the image, with a blur and a fade to
   the median colour that grow towards the padded edge, then the **quad
   transform** to ``transform_size`` (bilinear) and an antialiased resize to
   ``size``.

The output pixel of an input point ``p`` (pixel-index coordinates) is therefore::

    u = size * ((p - c)·x/|x|² + 1) / 2 - 1/2,   v = size * ((p - c)·y/|y|² + 1) / 2 - 1/2

(:meth:`AlignedFace.to_output`); ``c`` lands in the centre and
``max(2 |eye_to_eye|, 1.8 |eye_to_mouth|)`` becomes ``size / 2``.

Deliberate differences from the reference, none of which changes the maths of
steps 2-3:

* the reference takes the *last* face dlib reports; we take the largest (among
  faces within 80 % of the largest area, the most confident one - a mission
  patch or a poster does not beat a real face of equal size);
* the reference detects on the full image; we detect on a copy whose longer
  side is at most ``detect_size`` (640) pixels and map the box back, then
  predict the landmarks on the full-resolution image (HOG detection cost grows
  with the pixel count; the landmark predictor's does not);
* ``transform_size`` defaults to ``4 × size`` (FFHQ: 4096 for 1024); e4e/pSp's
  ``align_face`` uses ``transform_size = size`` - pass it to reproduce that;
* 16-bit, grayscale, palette and RGBA inputs are converted to 8-bit sRGB first
  (:func:`stylebridge.core.images.load_image` semantics: upright, alpha over white,
  an embedded colour profile converted).

The dlib model files come from the ``face-recognition-models`` package, found by
path (that package's ``__init__`` needs ``pkg_resources``, so it is not imported).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from stylebridge.core.images import load_image, picture_rgb8
from stylebridge.errors import ImageError, InputTypeError, InputValueError, StylebridgeError
from stylebridge.pipelines.photos import output_names
from stylebridge.plugins.nets.face_id import frontal_face_detector

if TYPE_CHECKING:
    import torch

LANDMARKS_MODEL = "shape_predictor_68_face_landmarks.dat"
DEFAULT_SIZE = 1024
DEFAULT_DETECT_SIZE = 640

# 68-point (iBUG 300-W) landmark groups, as in the FFHQ script.
EYE_LEFT = slice(36, 42)    # the eye on the image's left
EYE_RIGHT = slice(42, 48)
MOUTH_LEFT, MOUTH_RIGHT = 48, 54


class NoFaceError(ImageError):
    """No face was found in an image."""

    def __init__(self, message: str = "no face found", *, path: str | Path | None = None) -> None:
        super().__init__(message, path=path)


# ---------------------------------------------------------------------------------------------
# dlib models


def dlib_model_path(filename: str = LANDMARKS_MODEL) -> Path:
    """Path of a model file shipped by the ``face-recognition-models`` package (not imported)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise StylebridgeError("face alignment needs the dlib model files of the "
                               "'face-recognition-models' package (pip install face-recognition-models)")
    for root in spec.submodule_search_locations:
        path = Path(root) / "models" / filename
        if path.is_file():
            return path
    raise StylebridgeError(f"the 'face-recognition-models' package has no models/{filename}")


@functools.lru_cache(maxsize=1)
def _dlib_models() -> tuple[Any, Any]:
    """(HOG frontal face detector, 68-landmark shape predictor), loaded once."""
    try:
        import dlib
    except ImportError:
        raise StylebridgeError("face alignment needs dlib (pip install dlib-bin)") from None
    predictor = dlib.shape_predictor(str(dlib_model_path(LANDMARKS_MODEL)))
    return frontal_face_detector(), predictor  # shared with the id metric


# ---------------------------------------------------------------------------------------------
# Inputs


def to_rgb_uint8(image: Any) -> np.ndarray:
    """PIL image, ``np.ndarray`` or tensor → contiguous ``uint8 [H, W, 3]`` RGB.

    Arrays: ``[H, W]``, ``[H, W, 1|3|4]``; ``uint8``, ``uint16`` (always scaled by
    65535: 0..65535), other integers (by 65535, or 255 when no value is above it) or float
    in ``[0, 1]``.  Tensors: ``[3, H, W]`` / ``[1, 3, H, W]`` in ``[0, 1]`` (the layout of
    :func:`~stylebridge.core.images.load_image`).  Alpha is composited over white.  PIL
    images are read as :func:`~stylebridge.core.images.load_image` reads their file
    (:func:`~stylebridge.core.images.picture_rgb8`: upright by their EXIF orientation, an
    embedded colour profile converted to sRGB, a transparent colour over white).
    """
    if isinstance(image, Image.Image):
        return dlib_array(picture_rgb8(image))
    if not isinstance(image, np.ndarray):  # a torch tensor (not imported at module level)
        if not hasattr(image, "detach"):
            raise InputTypeError(f"expected a picture (a PIL image, a numpy array or a tensor), "
                                 f"got {type(image).__name__}")
        import torch

        t = image.detach().cpu()
        if t.ndim == 4 and t.shape[0] == 1:
            t = t[0]
        if t.ndim != 3 or t.shape[0] not in (1, 3) or t.numel() == 0:
            raise InputValueError(f"expected an image tensor [3, H, W], got {list(t.shape)}")
        if not t.is_floating_point():  # torchvision.io.read_image: uint8 0..255, not [0, 1]
            if t.dtype != torch.uint8:
                raise InputValueError(f"expected a float tensor in [0, 1] or a uint8 one, got "
                                      f"{t.dtype}")
            return dlib_array(t.expand(3, -1, -1).permute(1, 2, 0).numpy())
        # in torch, in place on float32 copies of a band of rows at a time, into one uint8
        # array: a 36 MP photo went through four float64 arrays in numpy (3.9 GB, 13 s), then
        # one float32 copy of the whole photo; the same bytes for images read from 8-bit files
        h, w = t.shape[1:]
        out = np.empty((h, w, 3), dtype=np.uint8)
        rows = max(1, (1 << 22) // max(w, 1))  # ~16 MB of float32 per channel and band
        for top in range(0, h, rows):
            band = t[:, top:top + rows].to(torch.float32, copy=True)
            band = band.clamp_(0, 1).mul_(255.0).round_().to(torch.uint8)
            out[top:top + rows] = band.permute(1, 2, 0).numpy()  # a grey band broadcasts
        return out
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)) or arr.size == 0:
        raise InputValueError(f"expected an image array [H, W] or [H, W, 3|4], got "
                              f"{list(arr.shape)}")
    if arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3:
        return dlib_array(arr)  # already what is asked for: no float copy
    if arr.dtype == np.uint8:
        f = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:  # 16-bit samples: 0..65535, however dark the picture
        f = arr.astype(np.float64) / 65535.0
    elif np.issubdtype(arr.dtype, np.integer):
        f = arr.astype(np.float64) / (65535.0 if arr.max(initial=0) > 255 else 255.0)
    elif np.issubdtype(arr.dtype, np.floating) or arr.dtype == np.bool_:
        f = arr.astype(np.float64)
    else:
        raise InputValueError(f"unsupported image dtype {arr.dtype}")
    if f.ndim == 2:
        f = np.repeat(f[..., None], 3, axis=2)
    if f.shape[2] == 4:
        alpha = f[..., 3:4]
        f = f[..., :3] * alpha + (1.0 - alpha)
    return dlib_array((np.clip(f, 0.0, 1.0) * 255.0).round().astype(np.uint8))


def dlib_array(arr: np.ndarray) -> np.ndarray:
    """``arr`` (``uint8 [H, W, 3]``) with the strides of a fresh C-ordered array, copied only
    where they differ.  numpy counts an array as contiguous whatever the strides of its
    length-1 axes (a 1×1 photo read from a tensor had strides ``(1, 1, 1)``:
    ``np.ascontiguousarray`` kept them) and dlib checks every stride: it raised "the stride of
    the 2nd dimension ... must be 3" and stopped the whole batch."""
    canonical, step = [], arr.itemsize
    for n in reversed(arr.shape):
        canonical.insert(0, step)
        step *= n
    if arr.flags.c_contiguous and arr.strides == tuple(canonical):
        return arr
    return np.array(arr, order="C", copy=True)


def _dlib_call(what: str, function: Any, *args: Any, path: str | Path | None = None) -> Any:
    """``function(*args)`` (a dlib detector or predictor), its ``RuntimeError`` on an image it
    cannot take turned into a one-line :class:`ImageError` naming ``path``: one odd photo is
    skipped, its batch goes on."""
    try:
        return function(*args)
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "RuntimeError"
        raise ImageError(f"{what} failed on this image (dlib: {reason})", path=path) from None


# ---------------------------------------------------------------------------------------------
# Detection


@dataclass(frozen=True)
class FaceLandmarks:
    """The chosen face: detector box ``(left, top, right, bottom)`` and 68 points, input pixels."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray  # [68, 2] float64, (x, y) pixel indices of the input image


def _detect(rgb: np.ndarray, detect_size: int | None, upsample: int,
            path: str | Path | None = None
            ) -> tuple[list[tuple[float, float, float, float]], list[float]]:
    """dlib's HOG boxes (input pixels, ``(left, top, right, bottom)``) and scores; detection
    runs on a copy whose longer side is at most ``detect_size``; an image dlib refuses is an
    :class:`ImageError` naming ``path``."""
    detector, _ = _dlib_models()
    h, w = rgb.shape[:2]
    scale = 1.0
    small = rgb
    if detect_size is not None and max(h, w) > detect_size:
        scale = detect_size / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR,
                                                       reducing_gap=2.0))
        scale = size[0] / w  # the exact horizontal factor
    rects, scores, _ = _dlib_call("face detection", detector.run, dlib_array(small), upsample,
                                  0.0, path=path)
    boxes = [(r.left() / scale, r.top() / scale, (r.right() + 1) / scale - 1,
              (r.bottom() + 1) / scale - 1) for r in rects]
    return boxes, [float(s) for s in scores]


def _detect_or_look_closer(rgb: np.ndarray, detect_size: int | None, upsample: int,
                           path: str | Path | None = None
                           ) -> tuple[list[tuple[float, float, float, float]], list[float]]:
    """:func:`_detect`; when it finds nothing on a copy smaller than the photo, once more at
    twice that size: a face ~300 px wide in a 4032 px phone photo is ~50 px at 640, below
    what the detector sees, and found at 1280.  Photos with a face found at first are
    aligned exactly as before."""
    boxes, scores = _detect(rgb, detect_size, upsample, path)
    if not boxes and detect_size is not None and max(rgb.shape[:2]) > detect_size:
        boxes, scores = _detect(rgb, 2 * detect_size, upsample, path)
    return boxes, scores


def _landmarks(rgb: np.ndarray, box: tuple[float, float, float, float], score: float,
               path: str | Path | None = None) -> FaceLandmarks:
    """The 68 landmarks, predicted on the full-resolution image inside ``box``."""
    import dlib

    _, predictor = _dlib_models()
    full = dlib.rectangle(round(box[0]), round(box[1]), round(box[2]), round(box[3]))
    shape = _dlib_call("face landmarks", predictor, dlib_array(rgb), full, path=path)
    pts = np.array([[shape.part(i).x, shape.part(i).y] for i in range(shape.num_parts)],
                   dtype=np.float64)
    return FaceLandmarks(box=box, score=score, landmarks=pts)


def _area(box: tuple[float, float, float, float]) -> float:
    return (box[2] - box[0] + 1) * (box[3] - box[1] + 1)


def detect_landmarks(image: Any, *, detect_size: int | None = DEFAULT_DETECT_SIZE,
                     upsample: int = 1, path: str | Path | None = None) -> FaceLandmarks | None:
    """Find the largest face and its 68 landmarks; ``None`` when there is none.

    Among the boxes at least 0.8 times the largest one's area the most confident wins.
    Detection runs on a copy whose longer side is at most ``detect_size`` (``None``: the
    full image); the box is mapped back and the landmarks are predicted on the
    full-resolution image.  An image dlib refuses is an :class:`ImageError` naming ``path``.
    """
    rgb = to_rgb_uint8(image)
    boxes, scores = _detect_or_look_closer(rgb, detect_size, upsample, path)
    if not boxes:
        return None
    areas = [_area(b) for b in boxes]
    biggest = max(areas)
    best = max((i for i in range(len(boxes)) if areas[i] >= 0.8 * biggest), key=lambda i: scores[i])
    return _landmarks(rgb, boxes[best], scores[best], path)


def detect_faces(image: Any, *, detect_size: int | None = DEFAULT_DETECT_SIZE, upsample: int = 1,
                 min_size: float = 0.0, path: str | Path | None = None) -> list[FaceLandmarks]:
    """Every face whose box is at least ``min_size`` input pixels on its shorter side, with
    its 68 landmarks, largest first (as FFHQ's own script, which aligned every face)."""
    rgb = to_rgb_uint8(image)
    boxes, scores = _detect_or_look_closer(rgb, detect_size, upsample, path)
    keep = [i for i, b in enumerate(boxes) if min(b[2] - b[0], b[3] - b[1]) + 1 >= min_size]
    keep.sort(key=lambda i: (-_area(boxes[i]), -scores[i]))
    return [_landmarks(rgb, boxes[i], scores[i], path) for i in keep]


# ---------------------------------------------------------------------------------------------
# FFHQ alignment maths


def ffhq_quad(landmarks: np.ndarray) -> np.ndarray:
    """The FFHQ oriented crop square ``[4, 2]`` (TL, BL, BR, TR) from 68 landmarks ``[68, 2]``."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"expected 68 landmarks [68, 2], got {list(lm.shape)}")
    eye_left = lm[EYE_LEFT].mean(axis=0)
    eye_right = lm[EYE_RIGHT].mean(axis=0)
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    mouth_avg = (lm[MOUTH_LEFT] + lm[MOUTH_RIGHT]) * 0.5
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    norm = np.hypot(*x)
    if not norm > 0:
        raise ValueError("degenerate landmarks: eyes and mouth coincide")
    x = x / norm * max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def quad_to_output(quad: np.ndarray, points: np.ndarray, size: int) -> np.ndarray:
    """Map input pixel coordinates ``[N, 2]`` into the ``size``-pixel aligned image.

    Exact for the quad transform and the final resize (pixel centres at
    ``i + 1/2``); the reference's integer shrink adds at most half a shrunk pixel.
    """
    quad = np.asarray(quad, dtype=np.float64)
    c = quad.mean(axis=0)
    x = (quad[3] - quad[0]) / 2.0
    y = (quad[1] - quad[0]) / 2.0
    p = np.asarray(points, dtype=np.float64) - c
    u = size * ((p @ x) / (x @ x) + 1.0) / 2.0 - 0.5
    v = size * ((p @ y) / (y @ y) + 1.0) / 2.0 - 0.5
    return np.stack([u, v], axis=-1)


def warp_quad(rgb: np.ndarray, quad: np.ndarray, size: int, *, transform_size: int | None = None,
              enable_padding: bool = True) -> Image.Image:
    """FFHQ steps shrink → crop → pad (reflect + blur + fade) → quad transform → resize.

    ``rgb`` is ``uint8 [H, W, 3]``; ``quad`` the ``[4, 2]`` crop square in its
    pixel coordinates.  Returns a ``size × size`` RGB image.
    """
    transform_size = transform_size or 4 * size
    img = Image.fromarray(rgb)
    quad = np.array(quad, dtype=np.float64)
    qsize = np.hypot(*(quad[3] - quad[0]))

    # Shrink.
    shrink = int(np.floor(qsize / size * 0.5))
    if shrink > 1:
        rsize = (int(np.rint(float(img.size[0]) / shrink)), int(np.rint(float(img.size[1]) / shrink)))
        img = img.resize(rsize, Image.Resampling.LANCZOS)
        quad /= shrink
        qsize /= shrink

    # Crop.
    border = max(int(np.rint(qsize * 0.1)), 3)
    crop = (int(np.floor(min(quad[:, 0]))), int(np.floor(min(quad[:, 1]))),
            int(np.ceil(max(quad[:, 0]))), int(np.ceil(max(quad[:, 1]))))
    crop = (max(crop[0] - border, 0), max(crop[1] - border, 0),
            min(crop[2] + border, img.size[0]), min(crop[3] + border, img.size[1]))
    if crop[2] - crop[0] < img.size[0] or crop[3] - crop[1] < img.size[1]:
        img = img.crop(crop)
        quad -= crop[0:2]

    # Pad.
    pad = (int(np.floor(min(quad[:, 0]))), int(np.floor(min(quad[:, 1]))),
           int(np.ceil(max(quad[:, 0]))), int(np.ceil(max(quad[:, 1]))))
    pad = (max(-pad[0] + border, 0), max(-pad[1] + border, 0),
           max(pad[2] - img.size[0] + border, 0), max(pad[3] - img.size[1] + border, 0))
    if enable_padding and max(pad) > border - 4:
        import scipy.ndimage

        pad = np.maximum(pad, max(int(np.rint(qsize * 0.3)), 1))
        arr = np.pad(np.float32(img), ((pad[1], pad[3]), (pad[0], pad[2]), (0, 0)), "reflect")
        h, w, _ = arr.shape
        yy, xx, _ = np.ogrid[:h, :w, :1]
        mask = np.maximum(1.0 - np.minimum(np.float32(xx) / pad[0], np.float32(w - 1 - xx) / pad[2]),
                          1.0 - np.minimum(np.float32(yy) / pad[1], np.float32(h - 1 - yy) / pad[3]))
        blur = qsize * 0.02
        arr += (scipy.ndimage.gaussian_filter(arr, [blur, blur, 0]) - arr) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
        arr += (np.median(arr, axis=(0, 1)) - arr) * np.clip(mask, 0.0, 1.0)
        img = Image.fromarray(np.uint8(np.clip(np.rint(arr), 0, 255)), "RGB")
        quad += pad[:2]

    # Transform.
    img = img.transform((transform_size, transform_size), Image.Transform.QUAD,
                        tuple((quad + 0.5).flatten()), Image.Resampling.BILINEAR)
    if size != transform_size:  # (FFHQ's code only shrinks: a smaller transform stayed small)
        img = img.resize((size, size), Image.Resampling.LANCZOS)
    return img


@dataclass(frozen=True)
class AlignedFace:
    """An FFHQ-aligned face.

    ``image``: RGB ``size × size``; ``landmarks``: the 68 points ``[68, 2]`` and
    ``quad``: the crop square ``[4, 2]`` (TL, BL, BR, TR), both in the *input*
    image's pixel coordinates; ``box``: the detector's box there.
    """

    image: Image.Image
    landmarks: np.ndarray
    quad: np.ndarray
    box: tuple[float, float, float, float] | None = None

    @property
    def size(self) -> int:
        return self.image.size[0]

    def to_output(self, points: np.ndarray) -> np.ndarray:
        """Input pixel coordinates ``[N, 2]`` → coordinates in :attr:`image`."""
        return quad_to_output(self.quad, points, self.size)

    def to_tensor(self) -> torch.Tensor:
        """The aligned image as ``[3, size, size]`` float in ``[0, 1]``."""
        import torch

        arr = np.asarray(self.image, dtype=np.uint8)
        return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


def align_from_landmarks(image: Any, landmarks: np.ndarray, size: int = DEFAULT_SIZE, *,
                         transform_size: int | None = None,
                         enable_padding: bool = True) -> AlignedFace:
    """FFHQ-align ``image`` given its 68 landmarks (no detection)."""
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    rgb = to_rgb_uint8(image)
    lm = np.asarray(landmarks, dtype=np.float64)
    quad = ffhq_quad(lm)
    out = warp_quad(rgb, quad, size, transform_size=transform_size, enable_padding=enable_padding)
    return AlignedFace(image=out, landmarks=lm, quad=quad)


def align_face(image: Any, size: int = DEFAULT_SIZE, *, transform_size: int | None = None,
               enable_padding: bool = True, detect_size: int | None = DEFAULT_DETECT_SIZE,
               path: str | Path | None = None) -> AlignedFace:
    """Detect the largest face and FFHQ-align it to ``size × size``.

    ``image``: PIL image, ``np.ndarray`` (``uint8``/``uint16``/float, gray, RGB or
    RGBA), tensor ``[3, H, W]`` in ``[0, 1]``, or an image file's path (read upright by
    :func:`~stylebridge.core.images.load_image`).  Raises :class:`NoFaceError`
    ("no face found", naming ``path`` when given).
    """
    if isinstance(image, str | os.PathLike):  # a file: read as every command reads it
        path = image if path is None else path
        image = load_image(image)
    with _photo_fits(image, path):
        rgb = to_rgb_uint8(image)
        face = detect_landmarks(rgb, detect_size=detect_size, path=path)
        if face is None:
            raise NoFaceError(_no_face_text("no face found", rgb), path=path)
        aligned = align_from_landmarks(rgb, face.landmarks, size, transform_size=transform_size,
                                       enable_padding=enable_padding)
    return AlignedFace(image=aligned.image, landmarks=aligned.landmarks, quad=aligned.quad,
                       box=face.box)


def _no_face_text(text: str, rgb: np.ndarray) -> str:
    """``text``, and why when the picture is smaller than the detector's smallest face
    (dlib's HOG window is 80 px, 40 px once the image is upsampled)."""
    h, w = rgb.shape[:2]
    return text + (f" (the image is only {w}x{h} pixels: too small to hold a face the detector "
                   "can find)" if min(h, w) < 40 else "")


def align_faces(image: Any, size: int = DEFAULT_SIZE, *, transform_size: int | None = None,
                enable_padding: bool = True, detect_size: int | None = DEFAULT_DETECT_SIZE,
                min_size: float = 0.0, path: str | Path | None = None) -> list[AlignedFace]:
    """:func:`align_face` for every face (:func:`detect_faces`: largest first, boxes at least
    ``min_size`` pixels); :class:`NoFaceError` when there is none."""
    with _photo_fits(image, path):
        rgb = to_rgb_uint8(image)
        faces = detect_faces(rgb, detect_size=detect_size, min_size=min_size, path=path)
        if not faces:
            raise NoFaceError(_no_face_text("no face found" if not min_size else
                                            f"no face of at least {min_size:g} pixels found",
                                            rgb), path=path)
        out = []
        for face in faces:
            aligned = align_from_landmarks(rgb, face.landmarks, size,
                                           transform_size=transform_size,
                                           enable_padding=enable_padding)
            out.append(AlignedFace(image=aligned.image, landmarks=aligned.landmarks,
                                   quad=aligned.quad, box=face.box))
    return out


@contextlib.contextmanager
def _photo_fits(image: Any, path: str | Path | None) -> Iterator[None]:
    """Out of memory while aligning one photo is that photo's :class:`ImageError` (a batch
    skips it and goes on), naming its size."""
    try:
        yield
    except MemoryError:
        if isinstance(image, Image.Image):
            w, h = image.size
        elif isinstance(image, np.ndarray):
            h, w = image.shape[:2]
        else:  # a tensor [3, H, W]
            h, w = tuple(getattr(image, "shape", (0, 0)))[-2:]
        what = f"this {w}×{h} image" if w and h else "this image"
        raise ImageError(f"out of memory aligning {what} (a smaller copy of it would fit)",
                         path=path) from None


# ---------------------------------------------------------------------------------------------
# The align pipeline (``stylebridge align``): :mod:`stylebridge.pipelines.align_batch`, its names
# importable from here as before


def __getattr__(name: str) -> Any:
    if name in ("AlignConfig", "AlignResult", "align"):
        from stylebridge.pipelines import align_batch

        return getattr(align_batch, name)
    if name in ("check_positive", "output_names"):  # moved to photos (shared by the batches)
        from stylebridge.pipelines import photos

        return getattr(photos, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AlignedFace",
    "FaceLandmarks",
    "NoFaceError",
    "align_face",
    "align_faces",
    "align_from_landmarks",
    "detect_faces",
    "detect_landmarks",
    "dlib_array",
    "dlib_model_path",
    "ffhq_quad",
    "output_names",
    "quad_to_output",
    "to_rgb_uint8",
    "warp_quad",
]
