"""The inputs of ``stylebridge eval`` (:mod:`stylebridge.pipelines.evaluate`): prediction
and target files paired by stem (:func:`pair_files`; :func:`suffix_hint`, the ``--suffix``
that would pair ``invert``'s and ``adapt``'s outputs), then read in size-matched batches
(:func:`eval_batches`: a prediction resized to its target's size or to ``--size``, each
file's kept notice and size as read).  ``pair_files`` and ``suffix_hint`` are re-exported by
:mod:`stylebridge.pipelines.evaluate`."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from stylebridge.core.batch import BatchReport
from stylebridge.core.images import load_image
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.eval_report import RESIZE_FILTER, read_notice

if TYPE_CHECKING:
    from stylebridge.pipelines.evaluate import EvalConfig, EvalProgress


# ---------------------------------------------------------------------------------------------
# File pairing


def pair_files(pred: list[Path], target: list[Path] | None, report: BatchReport,
               suffix: str = "") -> list[tuple[str, Path, Path | None]]:
    """Pair prediction and target files by stem (a prediction's stem without ``suffix``:
    ``photo_pixar`` → ``photo``), Unicode-composed (``café`` typed composed and decomposed,
    as macOS and Linux tools write it, is one name); unpaired or ambiguous files go to
    ``report``."""

    def by_stem(paths: list[Path], cut: str = "") -> dict[str, Path]:
        table: dict[str, list[Path]] = {}
        for p in paths:
            stem = p.stem[:len(p.stem) - len(cut)]
            table.setdefault(unicodedata.normalize("NFC", stem), []).append(p)
        out: dict[str, Path] = {}
        for stem, group in table.items():
            if len(group) > 1:
                for p in group:
                    report.skip(p, f"{len(group)} files share the name {stem!r} "
                                   f"({', '.join(q.name for q in group)})")
            else:
                out[stem] = group[0]
        return out

    preds = by_stem(pred, suffix)
    if target is None:
        return [(stem, p, None) for stem, p in preds.items()]
    targets = by_stem(target)
    pairs = []
    for stem, p in preds.items():
        if stem in targets:
            pairs.append((stem, p, targets[stem]))
        else:
            report.skip(p, f"no target image named {stem}.*")  # by the stem without suffix
    for stem, t in targets.items():
        if stem not in preds:
            report.skip(t, f"no prediction named {stem}.*")
    return pairs


def suffix_hint(pred: list[Path], target: list[Path]) -> str:
    """When predictions are named ``<target stem>_<what>`` (what ``invert`` and ``adapt``
    write: ``photo_inversion.png``, ``photo_pixar.png``), the ``--suffix`` that pairs them."""
    stems = sorted({t.stem for t in target}, key=len, reverse=True)  # longest match first
    found: dict[str, None] = {}
    for p in pred:
        for stem in stems:
            if p.stem.startswith(stem + "_"):
                found[p.stem[len(stem):]] = None
                break
    if not found:
        return ""
    shown = sorted(found)
    return (f"; the predictions are named <target>{shown[0]}, as invert and adapt write them: "
            f"give --suffix {shown[0]} (found {', '.join(shown[:6])}"
            f"{', ...' if len(shown) > 6 else ''})")


# ---------------------------------------------------------------------------------------------
# Size-matched batches


def _resize(img: Tensor, hw: tuple[int, int]) -> Tensor:
    if tuple(img.shape[-2:]) == hw:
        return img
    return F.interpolate(img.unsqueeze(0), size=hw, mode="bilinear", align_corners=False,
                         antialias=True)[0].clamp_(0, 1)


@dataclass
class _Batch:
    """Size-matched images of some pairs, with what their files say: ``notices`` (pred,
    target) kept in the files (:func:`~stylebridge.pipelines.eval_report.read_notice`) and
    ``sizes`` the images' (W, H) as read (pred, target)."""

    stems: list[str] = field(default_factory=list)
    preds: list[Tensor] = field(default_factory=list)
    targets: list[Tensor] = field(default_factory=list)
    notices: list[tuple[str | None, str | None]] = field(default_factory=list)
    sizes: list[tuple[tuple[int, int], tuple[int, int] | None]] = field(default_factory=list)

    @property
    def pred(self) -> Tensor:
        return torch.stack(self.preds)

    @property
    def target(self) -> Tensor | None:
        return torch.stack(self.targets) if self.targets else None


def _wh(image: Tensor) -> tuple[int, int]:
    return int(image.shape[-1]), int(image.shape[-2])


def eval_batches(pairs: list[tuple[str, Path, Path | None]], config: EvalConfig,
                 report: BatchReport, progress: EvalProgress) -> Iterator[_Batch]:
    """Loaded, size-matched batches; unreadable pairs go to ``report``."""
    batch = _Batch()
    noted = False
    for stem, p_path, t_path in pairs:
        try:
            pred = load_image(p_path)
        except StylebridgeError as exc:
            report.skip(p_path, str(exc).removeprefix(f"{p_path}: "))
            continue
        target = None
        if t_path is not None:
            try:
                target = load_image(t_path)
            except StylebridgeError as exc:
                report.skip(t_path, str(exc).removeprefix(f"{t_path}: "))
                continue
        sizes = (_wh(pred), None if target is None else _wh(target))
        if config.size:
            pred = _resize(pred, (config.size, config.size))
            target = None if target is None else _resize(target, (config.size, config.size))
        elif target is not None and target.shape != pred.shape:
            if not noted:
                progress.note(f"predictions whose size differs from their target are resized "
                              f"to it with {RESIZE_FILTER} (first: {p_path.name}, "
                              f"{pred.shape[-1]}×{pred.shape[-2]} → "
                              f"{target.shape[-1]}×{target.shape[-2]}; the report's notes "
                              "list them)")
                noted = True
            pred = _resize(pred, tuple(target.shape[-2:]))
        if batch.preds and (pred.shape != batch.preds[0].shape or len(batch.preds) >= config.batch):
            yield batch
            batch = _Batch()
        batch.stems.append(stem)
        batch.preds.append(pred)
        if target is not None:
            batch.targets.append(target)
        batch.notices.append((read_notice(p_path),
                              None if t_path is None else read_notice(t_path)))
        batch.sizes.append(sizes)
    if batch.preds:
        yield batch


__all__ = ["eval_batches", "pair_files", "suffix_hint"]
