"""The photo options of ``invert``, ``adapt`` and ``calibrate`` as their configs take them.

The arguments themselves are added by :func:`stylebridge.cli.options.add_photo_arguments`
(``--encoder``, ``--generator``, ``--align``, ``--align-size``, ``--batch``, ``--device``)
and the images by the command; :func:`photo_options` reads them back, checked, as the
keyword arguments of :class:`~stylebridge.pipelines.photos.PhotoOptions`.
"""

from __future__ import annotations

import argparse
from typing import Any

from stylebridge.cli.options import check_photo_arguments


def photo_options(args: argparse.Namespace) -> dict[str, Any]:
    """``images``, ``align``, ``align_size``, ``batch`` and ``device`` of ``args``, after the
    one-line checks of ``--batch`` / ``--align-size``: ``AdaptConfig(**photo_options(args),
    ...)``."""
    check_photo_arguments(args)
    return {"images": args.images, "align": args.align, "align_size": args.align_size,
            "batch": args.batch, "device": args.device}


__all__ = ["photo_options"]
