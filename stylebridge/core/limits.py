"""The sizes a command accepts, refused up front beyond these limits (SECURITY.md, ``--help``).

A typo such as ``--samples 1e9`` or ``--batch 100000`` must not start hours of work or die in
the allocator: each option is checked, before anything is loaded, with :func:`check_range`.
"""

from __future__ import annotations

from stylebridge.errors import StylebridgeError

#: images (or samples) per forward pass: ``generate``/``invert``/``adapt``/``calibrate``/``eval``/...
MAX_BATCH = 256
#: mapping-network samples for style means (``calibrate``/``analyze latents --samples``; thesis: 3000)
MAX_SAMPLES = 1_000_000
#: square image sizes a command resizes to (``eval --size``, ``align --size``, ``--align-size``)
MAX_IMAGE_SIZE = 4096
#: stored image size of a FeatureShift dataset (``featureshift build-dataset --image-size``)
MAX_DATASET_IMAGE_SIZE = 1024
#: images per FeatureShift dataset shard
MAX_SHARD_SIZE = 4096
#: the largest image read (pixels, 16384 × 16384 = 268,435,456): every command, ``info``
#: included, refuses a larger one in one line before decoding it
#: (``stylebridge.core.images.open_image``; Pillow's own smaller bomb limit is lifted)
MAX_PIXELS = 16384 * 16384
#: a photo whose shorter side is at least twice this is read reduced, by the largest integer
#: factor that keeps its shorter side at least this (exact box averaging, Pillow's
#: ``Image.reduce``; ``stylebridge.core.images.reduce_factor``).  4096 px is the largest size
#: any command resizes to (:data:`MAX_IMAGE_SIZE`), four times the 1024 px that alignment
#: (``--align-size``) and the encoders and generators take, and FFHQ's quad-transform size at
#: 1024 px.  So photos with a shorter side under 8192 px (every phone photo up to 48 MP,
#: full-frame cameras up to 61 MP) are read at full resolution, exactly as before; a 15000 ×
#: 15000 image is read as 5000 × 5000, a ninth of its pixels.
REDUCE_KEEP_SIDE = 4096


def check_range(option: str, value: int, lo: int, hi: int) -> int:
    """``value`` when ``lo <= value <= hi``, else a one-line error naming ``option`` and the
    limit (``--batch 100000: more than the limit of 256``)."""
    if value < lo:
        raise StylebridgeError(f"{option} {value}: must be >= {lo}")
    if value > hi:
        raise StylebridgeError(f"{option} {value}: more than the limit of {hi:,} (see --help; "
                               "stylebridge refuses unbounded work up front)")
    return value


__all__ = ["MAX_BATCH", "MAX_DATASET_IMAGE_SIZE", "MAX_IMAGE_SIZE", "MAX_PIXELS", "MAX_SAMPLES",
           "MAX_SHARD_SIZE", "REDUCE_KEEP_SIDE", "check_range"]
