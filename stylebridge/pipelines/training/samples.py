"""The pictures of the domain trainers (:mod:`stylebridge.pipelines.training.domain`): w+
drawn from a run's random generator (:func:`sample_wplus`, with style mixing), the frozen
generator rendering it with or without a domain (:func:`render`), and the sample grids of a
run (:func:`domain_sample_grid`, :func:`domain_samples_notice`, :func:`write_domain_samples`;
source | adapted, one row per fixed seed).  ``sample_wplus`` and ``render`` are re-exported by
:mod:`stylebridge.pipelines.training.domain`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from stylebridge.core.checkpoint import RANDOM_NOTICE

if TYPE_CHECKING:
    from pathlib import Path

    from stylebridge.core.interfaces import DomainMethod
    from stylebridge.core.stylegan2.generator import Generator
    from stylebridge.pipelines.training.domain import DomainTrainer


def sample_wplus(generator: Generator, n: int, rng: torch.Generator, *,
                 truncation: float = 1.0, mixing: float = 0.0) -> Tensor:
    """z ~ N(0, I) drawn from ``rng`` (a CPU generator) → w+ ``[n, n_latent, style_dim]``.

    With probability ``mixing`` two z are mixed at a random row in ``1 .. n_latent - 1``
    (StyleDomain's ``mixing_noise``).  The result lives on the generator's device.
    """
    device = generator.latent_avg.device
    mix = mixing > 0 and float(torch.rand((), generator=rng)) < mixing
    zs = [torch.randn(n, generator.style_dim, generator=rng)]
    inject = None
    if mix:
        zs.append(torch.randn(n, generator.style_dim, generator=rng))
        inject = int(torch.randint(1, generator.n_latent, (), generator=rng))
    return generator.make_wplus([z.to(device) for z in zs], truncation=truncation,
                                inject_index=inject)


def render(generator: Generator, w_plus: Tensor, method: DomainMethod | None = None,
           offset_scale: Sequence[float] | None = None, *,
           noise: Sequence[Tensor] | None = None) -> tuple[Tensor, list[Tensor]]:
    """Images ``[B, 3, H, W]`` in ``[-1, 1]`` and their styles; ``method=None`` = the source.

    ``noise``: per-layer noise inputs; by default the generator's stored buffers (sample
    grids: source and adapted images then share them).  A method's conv weight offsets
    (:meth:`DomainMethod.weight_deltas`) go to the synthesis as an argument.
    """
    if method is None:
        styles = generator.styles(w_plus)
        return generator.synthesis(styles, noise=noise, randomize_noise=False), styles
    styles = method.styles(generator, w_plus, offset_scale)
    deltas = method.weight_deltas(generator, offset_scale)
    return generator.synthesis(styles, noise=noise, randomize_noise=False,
                               weight_deltas=deltas), styles


def domain_sample_grid(trainer: DomainTrainer) -> Tensor:
    """``[3, H', W']`` in ``[0, 1]``: one row per fixed seed, source | adapted (labelled;
    tiles under 128 px enlarged), and on random weights the red notice under it."""
    from stylebridge.core.images import from_generator_range
    from stylebridge.core.labels import labelled_grid

    s = trainer.settings
    rng = torch.Generator().manual_seed(s.seed + 2)
    was_training = trainer.method.training
    trainer.method.eval()
    with torch.no_grad():
        w_plus = sample_wplus(trainer.generator, s.n_samples, rng, truncation=s.sample_truncation)
        source, _ = render(trainer.generator, w_plus)
        adapted, _ = render(trainer.generator, w_plus, trainer.method)
    trainer.method.train(was_training)
    rows = [list(pair) for pair in zip(from_generator_range(source).cpu(),
                                       from_generator_range(adapted).cpu(), strict=True)]
    notice = trainer.samples_notice()
    return labelled_grid(rows, ["source", f"adapted (step {trainer.step})"], min_tile=128,
                         notice=f"{notice} - not a trained domain" if notice else None)


def domain_samples_notice(trainer: DomainTrainer) -> str | None:
    """What a sample picture of a run through random weights (the generator, CLIP...) says,
    under its tiles and in its file (it travels without the run's header)."""
    parts = [*trainer.random_parts, *(["CLIP"] if trainer.random_clip else [])]
    return (f"{RANDOM_NOTICE}: trained through {', '.join(parts)} with untrained "
            "weights" if parts else None)


def write_domain_samples(trainer: DomainTrainer) -> Path:
    """``DOMAIN_samples/stepNNNNNN.png`` (the trainer's ``samples_dir``): its
    ``sample_grid()``, with its ``samples_notice()`` in the picture and the file."""
    from stylebridge.core.images import save_png

    return save_png(trainer.samples_dir / f"step{trainer.step:06d}.png", trainer.sample_grid(),
                    grid=True, notice=trainer.samples_notice())


__all__ = ["domain_sample_grid", "domain_samples_notice", "render", "sample_wplus",
           "write_domain_samples"]
