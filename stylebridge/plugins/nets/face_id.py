"""Face-identity embeddings for the ``id`` metric: dlib's ResNet and ArcFace IR-SE50.

* ``dlib``: dlib's ``dlib_face_recognition_resnet_model_v1`` (128-d descriptors)
  with its 5-point landmark model, both shipped by the ``face-recognition-models``
  package.  The files are located through ``importlib.util.find_spec`` without
  importing that package (its ``__init__`` needs ``pkg_resources``).  A face is
  found with dlib's HOG detector (``detect="hog"``), taken to fill the whole
  image (``detect="whole"``, for tight face crops), or HOG with the whole image
  as fallback (``detect="auto"``).  dlib aligns the face itself from the landmarks.
* ``arcface``: the IR-SE50 ArcFace of pSp/e4e (``model_ir_se50.pth``, converted),
  built by ``stylebridge.plugins.nets.irse.load_arcface_irse50``.  Input as in
  pSp's ``IDLoss``: the image at 256×256, rows 35:223 and columns 32:220 (a
  188×188 box), adaptive-average-pooled to 112×112, in ``[-1, 1]``.

Both return L2-normalised embeddings, so that the identity similarity of two
images is the dot product (cosine similarity).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from stylebridge.core.images import to_uint8
from stylebridge.core.options import as_bool
from stylebridge.errors import StylebridgeError

DLIB_RECOGNITION_FILE = "dlib_face_recognition_resnet_model_v1.dat"
DLIB_LANDMARKS_FILE = "shape_predictor_5_face_landmarks.dat"
DETECT_MODES = ("auto", "hog", "whole")

# pSp criteria/id_loss.py: x[:, :, 35:223, 32:220] of a 256×256 image, then AdaptiveAvgPool2d(112).
ARCFACE_PRE_SIZE = 256
ARCFACE_CROP_ROWS = (35, 223)
ARCFACE_CROP_COLS = (32, 220)
ARCFACE_SIZE = 112
ARCFACE_WEIGHTS = "arcface-irse50"  # the weights manifest entry (registry/weights_manifest.json)


def installed_arcface_weights() -> Path | None:
    """The installed ``arcface-irse50`` file under the weights home (``$STYLEBRIDGE_HOME``),
    or ``None`` when it is not installed."""
    from stylebridge.plugins.nets.state import installed_weights

    return installed_weights(ARCFACE_WEIGHTS)


def unavailable_arcface(config: Mapping[str, Any]) -> tuple[str, ...]:
    """``("arcface-irse50",)`` when a loss or metric built with ``config`` reads ArcFace
    IR-SE50 from the installed entry (no ``weights`` file named, random weights not allowed)
    and it is not installed (:meth:`~stylebridge.core.interfaces.Plugin.unavailable_weights`)."""
    # a bad allow_random= is named here, not taken for "no" and answered with a download hint
    if config.get("weights") is not None or as_bool(config.get("allow_random", False),
                                                    "allow_random"):
        return ()
    return () if installed_arcface_weights() is not None else (ARCFACE_WEIGHTS,)


def dlib_model_dir() -> Path:
    """The ``models`` folder of the installed ``face-recognition-models`` package (not imported)."""
    spec = importlib.util.find_spec("face_recognition_models")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        folder = Path(location) / "models"
        if (folder / DLIB_RECOGNITION_FILE).is_file() and (folder / DLIB_LANDMARKS_FILE).is_file():
            return folder
    raise StylebridgeError(
        "the dlib face-recognition models were not found: install the 'face-recognition-models' "
        f"package (it ships {DLIB_RECOGNITION_FILE} and {DLIB_LANDMARKS_FILE})")


class FaceEmbedder(ABC):
    """Images ``[B, 3, H, W]`` in ``[0, 1]`` → L2-normalised face embeddings (float64)."""

    #: images since the last reset in which no face was detected and the whole image was
    #: taken as the face box (dlib's ``detect="auto"``); always 0 for an embedder that does
    #: not detect faces.  The ``id`` metric resets it and reports it.
    n_fallback: int = 0

    @abstractmethod
    def embed(self, images01: Tensor) -> tuple[Tensor, Tensor]:
        """``(embeddings [B, D], found [B] bool)``; rows without a face are NaN."""


class DlibFaceEmbedder(FaceEmbedder):
    """Images ``[B, 3, H, W]`` in ``[0, 1]`` → L2-normalised 128-d dlib descriptors (float64).

    ``embed`` returns ``(embeddings [B, 128], found [B] bool)``; a row whose face
    was not found (``detect="hog"``) is NaN.
    """

    def __init__(self, detect: str = "auto", upsample: int = 1) -> None:
        if detect not in DETECT_MODES:
            raise StylebridgeError(f"id: detect={detect!r}; expected one of {', '.join(DETECT_MODES)}")
        import dlib

        self.detect = detect
        self.upsample = int(upsample)
        detector, self._landmarks, self._recognizer = _dlib_nets(str(dlib_model_dir()))
        self._detector = detector if detect != "whole" else None
        self._dlib = dlib
        self.n_fallback = 0  # images where no face was detected and the whole image was used

    def _box(self, image: np.ndarray) -> Any:
        if self._detector is not None:
            boxes, scores, _ = self._detector.run(image, self.upsample, 0.0)
            if len(boxes):
                return boxes[int(np.argmax(scores))]  # the most confident face
            if self.detect == "hog":
                return None
            self.n_fallback += 1
        h, w = image.shape[:2]
        return self._dlib.rectangle(0, 0, w - 1, h - 1)

    def embed(self, images01: Tensor) -> tuple[Tensor, Tensor]:
        arrays = to_uint8(images01)
        out = torch.full((len(arrays), 128), float("nan"), dtype=torch.float64)
        found = torch.zeros(len(arrays), dtype=torch.bool)
        for i, image in enumerate(arrays):
            image = np.ascontiguousarray(image)
            desc, fell_back = self._descriptor(image)
            self.n_fallback += fell_back
            if desc is not None:
                out[i] = torch.from_numpy(desc)
                found[i] = True
        return out, found

    def _descriptor(self, image: np.ndarray) -> tuple[np.ndarray | None, bool]:
        """The unit descriptor of one ``uint8 [H, W, 3]`` image (``None``: no face) and whether
        the whole image stood in for a face.  The same pixels give the same answer, so it is
        remembered (the photo every output of a run is compared with is read once)."""
        key = (self.detect, self.upsample, image.shape,
               hashlib.blake2b(image.tobytes(), digest_size=16).digest())
        with _SEEN_LOCK:
            if key in _SEEN:
                _SEEN.move_to_end(key)
                return _SEEN[key]
        before = self.n_fallback
        box = self._box(image)
        fell_back = self.n_fallback > before
        self.n_fallback = before  # counted by embed, for remembered images too
        desc = None
        if box is not None:
            shape = self._landmarks(image, box)
            raw = np.asarray(self._recognizer.compute_face_descriptor(image, shape), np.float64)
            desc = raw / np.linalg.norm(raw)
        with _SEEN_LOCK:
            _SEEN[key] = (desc, fell_back)
            while len(_SEEN) > SEEN_MAX:
                _SEEN.popitem(last=False)
        return desc, fell_back


#: dlib descriptors of recent images (by their pixels): deterministic, so reused
SEEN_MAX = 512
_SEEN: OrderedDict[tuple[Any, ...], tuple[np.ndarray | None, bool]] = OrderedDict()
_SEEN_LOCK = threading.Lock()


@functools.cache
def frontal_face_detector() -> Any:
    """dlib's HOG frontal face detector (0.25 s to build), one per process: face alignment
    and the ``id`` metric share it (read-only)."""
    import dlib

    return dlib.get_frontal_face_detector()


@functools.lru_cache(maxsize=2)
def _dlib_nets(folder: str) -> tuple[Any, Any, Any]:
    """dlib's HOG detector, 5-point landmark model and face ResNet, loaded once per process
    (0.4 s each time before): every ``id`` metric and loss shares them, read-only."""
    import dlib

    return (frontal_face_detector(),
            dlib.shape_predictor(str(Path(folder) / DLIB_LANDMARKS_FILE)),
            dlib.face_recognition_model_v1(str(Path(folder) / DLIB_RECOGNITION_FILE)))


def arcface_preprocess(images01: Tensor) -> Tensor:
    """``[B, 3, H, W]`` in ``[0, 1]`` → ``[B, 3, 112, 112]`` in ``[-1, 1]`` (pSp's IDLoss crop).

    Non-256 inputs are first area-resized to 256×256 (pSp face-pools its 1024 px
    output to 256 with an adaptive average pool, which area resizing equals).
    """
    if images01.ndim != 4 or images01.shape[1] != 3:
        raise ValueError(f"expected images [B, 3, H, W], got {list(images01.shape)}")
    x = images01.float() * 2.0 - 1.0
    if x.shape[-2:] != (ARCFACE_PRE_SIZE, ARCFACE_PRE_SIZE):
        x = F.interpolate(x, size=(ARCFACE_PRE_SIZE, ARCFACE_PRE_SIZE), mode="area")
    (r0, r1), (c0, c1) = ARCFACE_CROP_ROWS, ARCFACE_CROP_COLS
    x = x[:, :, r0:r1, c0:c1]
    return F.adaptive_avg_pool2d(x, (ARCFACE_SIZE, ARCFACE_SIZE))


class ArcFaceEmbedder(FaceEmbedder):
    """Images in ``[0, 1]`` → L2-normalised 512-d ArcFace IR-SE50 embeddings (float64)."""

    def __init__(self, weights: str | Path | None, device: str | torch.device = "cpu") -> None:
        if weights is None:
            raise StylebridgeError(
                "id:backend=arcface needs weights: id:backend=arcface,weights=PATH (pSp's "
                "model_ir_se50.pth, or its `stylebridge convert arcface-irse50` conversion); "
                "or use backend=dlib")
        try:
            from stylebridge.plugins.nets.irse import load_arcface_irse50
        except ImportError as exc:
            raise StylebridgeError(
                f"id:backend=arcface is not available in this build ({exc}); use backend=dlib"
            ) from None
        self.device = torch.device(device)
        self.model = load_arcface_irse50(weights, self.device)

    @torch.no_grad()
    def embed(self, images01: Tensor) -> tuple[Tensor, Tensor]:
        emb = self.model(arcface_preprocess(images01.to(self.device)))
        emb = F.normalize(emb.double(), dim=-1).cpu()
        return emb, torch.ones(emb.shape[0], dtype=torch.bool)
