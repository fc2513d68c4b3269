"""``id``: identity cosine similarity of face embeddings (:mod:`stylebridge.plugins.nets.face_id`).

``backend=dlib`` (dlib's face-recognition ResNet, shipped by ``face-recognition-models``) or
``backend=arcface`` (IR-SE50 as in pSp, ``weights=PATH``).  dlib's descriptors are trained
for a Euclidean threshold, not for cosine: its values crowd near 1 (unrelated images ~0.85)
and are not comparable with pSp-family ID numbers (CurricularFace / ArcFace): compare dlib
values only with each other.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from stylebridge.errors import StylebridgeError
from stylebridge.plugins.metrics.base import PerImageMetric
from stylebridge.plugins.nets.face_id import ArcFaceEmbedder, DlibFaceEmbedder, FaceEmbedder
from stylebridge.registry import hookimpl


class IDMetric(PerImageMetric):
    """Identity similarity: cosine of face embeddings of pred and target (higher = same person)."""

    name = "id"
    same_size = False  # each image's face is found on its own

    def __init__(self, backend: str = "dlib", weights: str | None = None, detect: str = "auto",
                 device: str = "cpu") -> None:
        self.embedder: FaceEmbedder | None = None  # reset() runs before it is built
        super().__init__(backend=backend, weights=weights, detect=detect, device=device)
        self.backend = backend
        if backend == "dlib":
            if weights is not None:
                raise StylebridgeError("id: backend=dlib uses the face-recognition-models files; "
                                       "weights= is for backend=arcface")
            self.embedder = DlibFaceEmbedder(detect=detect)
        elif backend == "arcface":
            self.embedder = ArcFaceEmbedder(weights, self.device)
        else:
            raise StylebridgeError(f"id: backend={backend!r}; expected dlib or arcface")

    def score(self, pred: Tensor, target: Tensor | None, **context: Any) -> dict[str, Tensor]:
        assert target is not None and self.embedder is not None
        a, _ = self.embedder.embed(pred)
        b, _ = self.embedder.embed(target)
        return {"id": (a * b).sum(dim=1)}  # NaN where a face was not found

    def reset(self) -> None:
        super().reset()
        if self.embedder is not None:
            self.embedder.n_fallback = 0

    def notes(self) -> list[str]:
        notes = super().notes()
        fallback = self.embedder.n_fallback if self.embedder is not None else 0
        if fallback:
            notes.append(f"no face was detected in {fallback} image(s); the whole image was "
                         "taken as the face box (use id:detect=hog to leave them out)")
        return notes


@hookimpl
def register_metrics(register: Any) -> None:
    register(IDMetric)
