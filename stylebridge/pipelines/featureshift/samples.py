"""The sample grids of a FeatureShift run: ``OUT/samples/step_N.png``, one row per sample:
the photo | its inversion (Δ = 0) | the e4e domain target | FeatureShift on the e4e-inverted
image | FeatureShift on the photo (the inference path); labelled columns, each row named by
its photo and domain (``photo0.png → pixar``), and the RANDOM WEIGHTS notice under the grid
and in the file when the run trains on random parts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from stylebridge.core.checkpoint import RANDOM_NOTICE
from stylebridge.core.images import save_png
from stylebridge.core.labels import labelled_grid
from stylebridge.pipelines.featureshift.render import uint8_to_images
from stylebridge.plugins.losses.recon import resize_images

if TYPE_CHECKING:
    from stylebridge.pipelines.featureshift.trainer import FeatureShiftTrainer

#: the columns of OUT/samples/step_N.png
SAMPLE_COLUMNS = ("photo", "inversion (Δ = 0)", "e4e domain target", "on the e4e inversion",
                  "on the photo (inference)")


@torch.no_grad()
def write_samples(trainer: FeatureShiftTrainer) -> Path | None:
    """``OUT/samples/step_N.png``; one row per sample: real | inversion (Δ = 0) |
    e4e domain target | FeatureShift on the e4e-inverted image | FeatureShift on the real
    image (the inference path).  Eval mode (EMA weights when on); changes no state."""
    if not trainer.dist.main or trainer.cfg.n_samples < 1:
        return None
    n = min(trainer.cfg.n_samples, len(trainer.data))
    entries, j, row = [], 0, 0
    while len(entries) < n:
        if row >= trainer.data.shard_rows[j]:
            j, row = j + 1, 0
            continue
        entries.append([j, row, len(entries) % trainer.data.n_domains])
        row += 1
    data = {k: v.to(trainer.device) for k, v in trainer.data.read(torch.tensor(entries)).items()}
    model = trainer.ema if trainer.ema is not None else trainer.model
    was_training = model.training
    model.eval()
    try:
        parts = trainer._compose(data, domain=True, adapted=True)
        images, _ = trainer._render(model, parts)
    finally:
        model.train(was_training)
    size = trainer.data.image_size
    columns = [uint8_to_images(data["image"]), images[:n], parts["target"],
               images[n:2 * n], images[2 * n:]]
    rows = [[((resize_images(c[i:i + 1].float(), size) + 1) / 2).clamp(0, 1)[0].cpu()
             for c in columns] for i in range(n)]
    # a picture shown on its own says what it was trained on (under it and in the file)
    notice = (f"{RANDOM_NOTICE}: trained on {', '.join(trainer.random_parts)} with untrained "
              "weights" if trainer.random_parts else None)
    # each row names its photo and the domain it is shifted to
    names = {j: trainer.data.names(j) for j in {j for j, _, _ in entries}}
    row_labels = [f"{Path(names[j][r]).name if r < len(names[j]) else f'row {r}'} → "
                  f"{trainer.data.domains[d].get('name', f'domain {d}')}" for j, r, d in entries]
    grid = labelled_grid(rows, SAMPLE_COLUMNS, notice=notice, min_tile=96, label_lines=2,
                         row_labels=row_labels)
    path = trainer.out / "samples" / f"step_{trainer.step:07d}.png"
    save_png(path, grid, grid=True, notice=notice)
    return path
