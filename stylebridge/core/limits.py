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


def check_range(option: str, value: int, lo: int, hi: int) -> int:
    """``value`` when ``lo <= value <= hi``, else a one-line error naming ``option`` and the
    limit (``--batch 100000: more than the limit of 256``)."""
    if value < lo:
        raise StylebridgeError(f"{option} {value}: must be >= {lo}")
    if value > hi:
        raise StylebridgeError(f"{option} {value}: more than the limit of {hi:,} (see --help; "
                               "stylebridge refuses unbounded work up front)")
    return value


__all__ = ["MAX_BATCH", "MAX_DATASET_IMAGE_SIZE", "MAX_IMAGE_SIZE", "MAX_SAMPLES",
           "MAX_SHARD_SIZE", "check_range"]
