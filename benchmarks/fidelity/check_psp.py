"""pSp (eladrich/pixel2style2pixel): upstream ``pSp(opts)`` loading a training checkpoint of a
``GradualStyleEncoder(50, 'ir_se')`` vs ``stylebridge convert psp`` + ``stylebridge.create``.

Same procedure as ``check_e4e.py`` (which see), with pixel2style2pixel's own ``pSp`` class.
Run patch: ``models.stylegan2.op`` -> ``native_ops`` (upstream compiles CUDA code on import).
"""

from __future__ import annotations

from pathlib import Path

from check_e4e import check_encoder
from common import Recorder, main

REPO = "eladrich/pixel2style2pixel"


def check(upstream: Path, work: Path, rec: Recorder) -> None:
    check_encoder(upstream, work, rec, REPO, "GradualStyleEncoder", "psp")


if __name__ == "__main__":
    main("psp", check)
