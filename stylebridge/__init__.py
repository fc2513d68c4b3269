"""stylebridge: StyleGAN2 encoders and domain adaptation as composable plugins.

Importing this package is cheap: it compiles nothing, downloads nothing and
builds no model.  Entry points:

* :func:`create` — any plugin (or the generator) from a spec, with its provenance
  (:func:`provenance_of`); :func:`create_encoder` — an encoder by name and checkpoint;
* :func:`stylebridge.registry.get_registry` — every plugin by kind and name;
* :mod:`stylebridge.core.checkpoint` — our safetensors checkpoint format;
* :mod:`stylebridge.core.stylegan2` — the StyleGAN2 generator and discriminator;
* :mod:`stylebridge.registry.resolve` — plugins from specs;
* :mod:`stylebridge.core.synthesis` — synthesis of inversions (the plain renderer);
* :class:`stylebridge.Adapter` — encode once, render several domains through a renderer;
* :func:`load_photo` / :func:`save_image` / :func:`to_pil` — a photo file in, as ``adapt``
  prepares it (upright, FFHQ-aligned), and a picture out (to a file, or a PIL image to show);
* :func:`fetch_weights` / :func:`fetching` — official weights downloaded by name, or by the
  pipeline that needs them (``ensure_weights=``).

Anything on untrained (random) weights says so on screen: :func:`create`, :func:`create_encoder`,
:class:`Adapter` and the pipelines ``adapt``, ``invert``, ``generate``, ``render`` warn once per
call (:class:`RandomWeightsWarning`, its message starting ``RANDOM WEIGHTS``); skipped inputs
(:class:`SkippedInputsWarning`) and other notes are :class:`StylebridgeWarning` too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stylebridge.errors import (
    RandomWeightsWarning,
    SkippedInputsWarning,
    StylebridgeError,
    StylebridgeWarning,
    user_entry,
    warn_user,
)

__version__ = "0.1.0"


def _warn_random(kind: str, spec: Any, obj: Any, provenance: Any) -> None:
    """The :class:`RandomWeightsWarning` of :func:`create` / :func:`create_encoder` for an
    object on untrained weights, naming it and its file (a module without any parameter or
    buffer, the ``mse`` loss, has no weights to be random)."""
    import itertools

    import torch

    if provenance is not None and provenance.random:
        if isinstance(obj, torch.nn.Module) and next(
                itertools.chain(obj.parameters(), obj.buffers()), None) is None:
            return
        from stylebridge.core.checkpoint import RANDOM_NOTICE

        path = provenance.path
        where = f" (file {path})" if path is not None and path.name not in str(spec) else ""
        warn_user(f"{RANDOM_NOTICE}: {kind} {str(spec)!r} runs on untrained (random) weights"
                  f"{where}: its results show no trained model", RandomWeightsWarning)


@user_entry
def create(kind: str, spec: str, *, device: str = "cpu", **options: Any) -> Any:
    """The one way in: ``create("encoder", "fse:fse.safetensors:mode=shift")`` → the object.

    ``kind`` is a plugin kind (``encoder``, ``domain_method``, ``loss``, ``metric``,
    ``calibrator``, ``renderer``, ``converter``, ``command``) or ``generator``; ``spec`` is
    ``NAME``, ``NAME:CKPT``, ``CKPT`` (the header names the plugin) or ``NAME:CKPT:k=v,...``.
    A bare name loads the weights installed by ``stylebridge weights``.  Where the weights
    came from (official, converted from a file, random) is recorded once, on the object too:
    :func:`provenance_of` reads it, also of a ``copy.deepcopy`` of it.  Random weights are
    said once, as a :class:`RandomWeightsWarning`.
    """
    from stylebridge.registry.resolve import create as _create

    obj, provenance = _create(kind, spec, device=device, **options)
    _warn_random(kind, spec, obj, provenance)
    return obj


def provenance_of(obj: Any) -> Any:
    """The :class:`~stylebridge.registry.resolve.Provenance` :func:`create` recorded for
    ``obj`` or the object it was copied from (``origin``: official / converted / checkpoint
    / random / none), or ``None``."""
    from stylebridge.registry.resolve import provenance_of as _provenance_of

    return _provenance_of(obj)


@user_entry
def create_encoder(name: str, checkpoint: str | Path | None = None, *, device: str = "cpu",
                   **config: Any) -> Any:
    """``create_encoder("fse", checkpoint="fse.safetensors", mode="shift")`` → an Encoder.

    Without ``checkpoint`` the encoder is built from its defaults and ``config``
    (plugins that need weights refuse that with a hint).  Random weights are said once, as a
    :class:`RandomWeightsWarning`.
    """
    from stylebridge.registry.resolve import load_plugin, provenance_of
    from stylebridge.registry.spec import PluginSpec

    spec = PluginSpec(name=name, path=None if checkpoint is None else Path(checkpoint))
    encoder = load_plugin("encoder", spec, device=device, **config)
    _warn_random("encoder", name if checkpoint is None else f"{name}:{checkpoint}", encoder,
                 provenance_of(encoder))
    return encoder


def fetch_weights(*names: str, set_name: str | None = None, accept_licence: bool = False,
                  **options: Any) -> dict[str, Path]:
    """Download official weights by name, as ``stylebridge weights fetch`` does:
    ``fetch_weights("e4e-ffhq", "fse-ffhq", accept_licence=True)`` → ``{name: file}``; a bare
    name in :func:`create` then loads them.  Non-commercial licences are named and need
    ``accept_licence=True``.  Options: ``progress(done, total)``, ``force``
    (:func:`stylebridge.registry.fetching.fetch_weights`)."""
    from stylebridge.registry.fetching import fetch_weights as _fetch

    return _fetch(*names, set_name=set_name, accept_licence=accept_licence, **options)


def fetching(*, accept_licence: bool = False, **options: Any) -> Any:
    """The ``ensure_weights`` that fetches what a pipeline's run lacks before it loads
    anything: ``invert(config, ensure_weights=stylebridge.fetching(accept_licence=True))``,
    as ``--fetch --accept-licence`` does on the command line."""
    from stylebridge.registry.fetching import fetching as _fetching

    return _fetching(accept_licence=accept_licence, **options)


def load_photo(path: Any, *, align: bool = True, size: int = 1024,
               transform_size: int | None = None) -> Any:
    """A photo file → ``[1, 3, size, size]`` in ``[0, 1]``, as ``stylebridge adapt`` prepares
    it: read upright (EXIF orientation; HEIC with ``pillow-heif``), then the largest face
    FFHQ-aligned with dlib's 68 landmarks (``transform_size``: see ``stylebridge align
    --help``).  ``align=False``: the whole image resized to ``size × size``, for photos that
    are aligned already.  One-line :class:`StylebridgeError` naming the file for an unreadable
    image or a photo without a face.  Encoders resize their input themselves.

    ``path`` may also be a picture in memory: a PIL image (its EXIF orientation applied, its
    embedded colour profile converted to sRGB, 16-bit samples by the depth its file
    declared), a numpy array ``[H, W(, 3|4)]`` (``uint16``: 0..65535) or a tensor ``[3, H,
    W]`` in ``[0, 1]`` (a uint8 one, as ``torchvision.io.read_image`` gives, in 0..255), read
    at 8 bits as a file would be."""
    import os

    from stylebridge.core.images import load_image, resize_square
    from stylebridge.errors import InputTypeError
    from stylebridge.pipelines.align import align_face
    from stylebridge.pipelines.photos import check_positive

    check_positive(size, "size")
    if transform_size is not None:
        if not align:  # it would be ignored
            raise StylebridgeError("load_photo: transform_size applies with align=True")
        check_positive(transform_size, "transform_size")
        if transform_size < size:
            raise StylebridgeError(f"load_photo: transform_size {transform_size} is below size "
                                   f"{size}: the crop would be upscaled")
    if isinstance(path, str | os.PathLike):
        image = load_image(path)
    elif any(c.__name__ in ("Image", "ndarray", "Tensor") for c in type(path).__mro__):
        image = _picture(path)
        path = None
    else:
        raise InputTypeError(f"load_photo: expected a photo file (str or Path) or a picture (PIL "
                             f"image, numpy array, tensor), got {type(path).__name__}")
    if align:
        image = align_face(image, size, transform_size=transform_size, path=path).to_tensor()
    else:
        image = resize_square(image, size)
    return image[None]


def _picture(picture: Any) -> Any:
    """A picture in memory → ``[3, H, W]`` float in ``[0, 1]``, upright, at 8 bits (as
    :func:`load_photo` reads a file; a PIL image is turned upright by ``to_rgb_uint8``, which
    still knows its file's declared depth then)."""
    import torch

    from stylebridge.errors import InputTypeError, InputValueError
    from stylebridge.pipelines.align import to_rgb_uint8

    try:
        rgb = to_rgb_uint8(picture)
    except (InputTypeError, InputValueError) as exc:  # named by the call it came through
        raise type(exc)(f"load_photo: {exc.message}") from None
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1).float().div_(255.0)


#: what :func:`save_image` writes, by the file's suffix (PNG is lossless and the default)
IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP",
                 ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP"}


def save_image(image01: Any, path: str | Path, *, notice: str | None = None) -> Path:
    """Write one picture ``[3, H, W]`` or ``[1, 3, H, W]`` in ``[0, 1]`` (an :class:`Adapter`
    output), atomically (no half-written file on a crash), in the format of the suffix (PNG,
    JPEG at quality 95, WebP, TIFF, BMP); returns ``path``.  A generator's own output is in
    ``[-1, 1]``: convert it with ``stylebridge.core.images.from_generator_range`` first.
    ``notice`` (``Adapter.notice``: ``RANDOM WEIGHTS: ...`` when it runs on untrained weights)
    is kept in the file: PNG text (``stylebridge info`` shows it), EXIF ImageDescription in
    JPEG, WebP and TIFF (an ASCII field: other characters are written as ``\\uXXXX``
    escapes, readable where ``?`` was written before); BMP keeps none and is refused with
    one.  NaN or Inf values are refused (they were written as black pixels).  The file is
    untagged 8-bit sRGB (no colour profile)."""
    import os

    from stylebridge.core.images import save_png, to_uint8
    from stylebridge.core.io import atomic_path

    if not isinstance(path, str | os.PathLike):
        from stylebridge.errors import InputTypeError

        raise InputTypeError(f"save_image: expected a file path (str or Path), got "
                             f"{type(path).__name__}")
    path = Path(path)
    fmt = IMAGE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise StylebridgeError(f"save_image {path}: unknown image suffix (use one of "
                               f"{', '.join(IMAGE_FORMATS)})")
    if notice and fmt == "BMP":
        raise StylebridgeError(f"save_image {path}: a BMP keeps no notice; save it as .png")
    _check_picture(image01, f"save_image {path}", "; nothing was written", batch=False)
    if fmt == "PNG":
        return save_png(path, image01, notice=notice)
    from PIL import Image

    batch = image01 if image01.ndim == 4 else image01.unsqueeze(0)
    options: dict[str, Any] = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    if notice:
        exif = Image.Exif()
        # ImageDescription is ASCII (Pillow wrote "?" for anything else): escaped, readable
        exif[0x010E] = notice.encode("ascii", "backslashreplace").decode("ascii")
        options["exif"] = exif
    with atomic_path(path) as tmp:
        Image.fromarray(to_uint8(batch)[0]).save(tmp, format=fmt, **options)
    return path


def _check_picture(image01: Any, what: str, unwritten: str = "", *, batch: bool) -> None:
    """One-line :class:`StylebridgeError` (``what``: the call, ``save_image PATH``) unless
    ``image01`` is a float tensor ``[3, H, W]`` or ``[1, 3, H, W]`` (``batch``: ``[B, 3, H,
    W]``) with finite values in ``[0, 1]`` (2 % of slack)."""
    import math

    import torch

    if not isinstance(image01, torch.Tensor) or not image01.is_floating_point():
        raise StylebridgeError(f"{what}: expected a float tensor in [0, 1], got "
                               f"{getattr(image01, 'dtype', type(image01).__name__)}")
    if not batch and image01.ndim == 4 and image01.shape[0] != 1:
        raise StylebridgeError(f"save_image writes one picture; got a batch of "
                               f"{image01.shape[0]}: save image01[i] for each")
    if image01.ndim not in (3, 4) or image01.shape[-3] != 3 or image01.numel() == 0:
        raise StylebridgeError(f"{what}: expected an RGB picture [3, H, W]"
                               f"{' or a batch [B, 3, H, W]' if batch else ''}, got shape "
                               f"{list(image01.shape)}")
    lo, hi = (float(v) for v in torch.aminmax(image01.detach().float()))
    if not (math.isfinite(lo) and math.isfinite(hi)):  # was written as black, silently
        bad = int((~torch.isfinite(image01.detach())).sum())
        raise StylebridgeError(f"{what}: the picture has {bad} NaN or Inf value(s){unwritten}")
    if lo < -0.02 or hi > 1.02:  # a [-1, 1] generator output lost its dark half, silently
        raise StylebridgeError(f"{what}: values span [{lo:.3g}, {hi:.3g}], expected "
                               "[0, 1] (a generator's [-1, 1] output: from_generator_range(x))")


def to_pil(image01: Any) -> Any:
    """A picture ``[3, H, W]`` or ``[1, 3, H, W]`` in ``[0, 1]`` (an :class:`Adapter` output)
    → a ``PIL.Image.Image`` (RGB, 8 bits, rounded as :func:`save_image` writes it), to show
    in a notebook; a batch ``[B, 3, H, W]`` with ``B > 1`` → a list of them.  What
    :func:`save_image` refuses (not a float tensor, another shape, NaN, values outside
    ``[0, 1]``) is refused here in the same one line."""
    from PIL import Image

    from stylebridge.core.images import to_uint8

    _check_picture(image01, "to_pil", batch=True)
    batch = image01 if image01.ndim == 4 else image01.unsqueeze(0)
    images = [Image.fromarray(array) for array in to_uint8(batch)]
    return images if image01.ndim == 4 and image01.shape[0] > 1 else images[0]


def __getattr__(name: str) -> Any:
    """Lazy exports: ``stylebridge.Adapter`` (encode once, render several domains)."""
    if name == "Adapter":
        from stylebridge.pipelines.adapt import Adapter

        return Adapter
    raise AttributeError(f"module 'stylebridge' has no attribute {name!r}")


__all__ = ["Adapter", "RandomWeightsWarning", "SkippedInputsWarning", "StylebridgeError",
           "StylebridgeWarning", "__version__", "create", "create_encoder", "fetch_weights",
           "fetching", "load_photo", "provenance_of", "save_image", "to_pil"]


def __dir__() -> list[str]:
    """The lazy exports too (``Adapter``), for tab completion."""
    return sorted(set(globals()) | set(__all__))
