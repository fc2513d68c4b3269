"""``id``: identity cosine similarity of face embeddings (:mod:`stylebridge.plugins.nets.face_id`).

Backends:

* ``arcface``: the ArcFace IR-SE50 of pSp, "the ID metric from pSp" that the thesis reports
  (cosine of embeddings of pSp's 112 px face crop).  Weights: ``weights=PATH``, else the
  installed official weights ``arcface-irse50`` (``stylebridge weights fetch
  arcface-irse50``, or ``weights register arcface-irse50 --from model_ir_se50.pth``).
* ``dlib``: dlib's face-recognition ResNet, shipped by ``face-recognition-models``.  Its
  descriptors are trained for a Euclidean threshold, not for cosine: values crowd near 1
  (unrelated faces ~0.85) and are not comparable with the thesis's (pSp) ID numbers.
* ``auto`` (default): ``arcface`` when ``weights=`` is given or ``arcface-irse50`` is
  installed, else ``dlib`` with a notice (:meth:`IDMetric.notes`).

The value is reported under a key that names the backend, ``id[arcface]`` or ``id[dlib]``,
so that numbers from the two are never put in one column by accident.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, ClassVar

from torch import Tensor

from stylebridge.core.interfaces import Note
from stylebridge.core.schema import Field
from stylebridge.errors import StylebridgeError
from stylebridge.plugins.metrics.base import PerImageMetric
from stylebridge.plugins.nets.face_id import (
    ARCFACE_WEIGHTS,
    DETECT_MODES,
    ArcFaceEmbedder,
    DlibFaceEmbedder,
    FaceEmbedder,
    installed_arcface_weights,
    unavailable_arcface,
)
from stylebridge.registry import hookimpl

BACKENDS = ("auto", "arcface", "dlib")


def metric_key(backend: str) -> str:
    """The result key of the ``id`` metric with ``backend`` (``id[arcface]``, ``id[dlib]``)."""
    return f"id[{backend}]"


class IDMetric(PerImageMetric):
    """Identity similarity: cosine of face embeddings of pred and target (higher = same person).

    ``backend``: ``auto`` (ArcFace IR-SE50 when its weights are available, else dlib),
    ``arcface`` or ``dlib`` (see the module docstring).  After construction ``backend`` is
    the one in use and :attr:`key` the result key (``id[arcface]`` / ``id[dlib]``).
    """

    name = "id"
    takes_device: ClassVar[bool] = True  # eval passes --device
    direction = "higher"
    unit = "cos"
    scale = "cosine similarity of face embeddings, -1..1, 1 = the same face"
    same_size = False  # each image's face is found on its own
    #: the allowed values (checked before anything is built; `stylebridge plugins id` shows
    #: them); ``detect`` is dlib's face finding (auto: HOG, else the whole image)
    config_schema: ClassVar[Mapping[str, Field]] = {
        "backend": Field("str", choices=BACKENDS), "detect": Field("str", choices=DETECT_MODES)}

    @classmethod
    def unavailable_weights(cls, config: Mapping[str, Any]) -> tuple[str, ...]:
        """ArcFace's entry only for ``backend=arcface`` (``auto`` falls back to dlib)."""
        return unavailable_arcface(config) if config.get("backend") == "arcface" else ()

    def __init__(self, backend: str = "auto", weights: str | None = None, detect: str = "auto",
                 device: str = "cpu") -> None:
        self.embedder: FaceEmbedder | None = None  # reset() runs before it is built
        self.fallback_notice: str | None = None
        super().__init__(backend=backend, weights=weights, detect=detect, device=device)
        if backend not in BACKENDS:
            raise StylebridgeError(f"id: backend={backend!r}; expected one of {', '.join(BACKENDS)}")
        if backend == "auto":
            if weights is None:
                found = installed_arcface_weights()
                weights = None if found is None else str(found)
            if weights is not None:
                backend = "arcface"
            else:
                backend = "dlib"
                self.fallback_notice = Note(
                    f"id uses dlib's face descriptor because the ArcFace IR-SE50 weights "
                    f"({ARCFACE_WEIGHTS}) are not installed; its values ({metric_key('dlib')}) "
                    f"are not comparable with the thesis's pSp ID metric: install them with "
                    f"`stylebridge weights fetch {ARCFACE_WEIGHTS}`",
                    web=f"identity is measured with dlib's face descriptor because this server "
                        f"has no ArcFace IR-SE50 weights: its values crowd near 1 (unrelated "
                        f"faces score about 0.85) and cannot be compared with the thesis's ID "
                        f"numbers; whoever runs the server can add the weights (`stylebridge "
                        f"weights fetch {ARCFACE_WEIGHTS}`) and restart it")
        self.backend = backend
        self.weights = weights
        self.key = metric_key(backend)
        if backend == "dlib":
            if weights is not None:
                raise StylebridgeError("id: backend=dlib uses the face-recognition-models files; "
                                       "weights= is for backend=arcface")
            self.embedder = DlibFaceEmbedder(detect=detect)
        else:
            self.embedder = ArcFaceEmbedder(weights, self.device)

    def fresh(self) -> IDMetric | None:
        """The same face networks (dlib's, or ArcFace's, read-only), its own running values and
        its own count of images without a face; a subclass is built anew."""
        if type(self) is not IDMetric:
            return None
        twin = copy.copy(self)
        twin.embedder = copy.copy(self.embedder)
        twin.reset()
        return twin

    def files(self) -> dict[str, str]:
        """ArcFace's weights (``backend=arcface``, also when ``auto`` found them); dlib's
        descriptor files belong to the installed face-recognition-models package."""
        return {} if self.weights is None else {"weights": str(self.weights)}

    def score(self, pred: Tensor, target: Tensor | None, **context: Any) -> dict[str, Tensor]:
        assert target is not None and self.embedder is not None
        a, _ = self.embedder.embed(pred)
        b, _ = self.embedder.embed(target)
        return {self.key: (a * b).sum(dim=1)}  # NaN where a face was not found

    def reset(self) -> None:
        super().reset()
        if self.embedder is not None:
            self.embedder.n_fallback = 0

    def state(self) -> dict[str, Any]:
        """Also the count of images whose face was not found (its note)."""
        fallback = self.embedder.n_fallback if self.embedder is not None else 0
        return {**super().state(), "no_face": fallback}

    def load_state(self, state: Mapping[str, Any]) -> None:
        super().load_state(state)
        if self.embedder is not None:
            self.embedder.n_fallback = int(state.get("no_face", 0))

    def notes(self) -> list[str]:
        notes = super().notes()
        if self.fallback_notice:
            notes.insert(0, self.fallback_notice)
        fallback = self.embedder.n_fallback if self.embedder is not None else 0
        if fallback:
            found = f"no face was detected in {fallback} image(s)"
            notes.append(Note(f"{found}; the whole image was taken as the face box, "
                              "id:detect=hog leaves them out",
                              web=f"{found}: its identity value compares the whole pictures, "
                                  "not faces, so it says little about the person"))
        return notes


@hookimpl
def register_metrics(register: Any) -> None:
    register(IDMetric)
