"""Style statistics of ``analyze latents``: per-channel style means and Eq. 5's similarities,
on the mapping network's side (sampled z) and on an encoder's side (encoded photos)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from stylebridge.core.batch import BatchReport
from stylebridge.core.interfaces import DomainMethod, Encoder
from stylebridge.core.stylegan2.generator import Generator
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.adapter import check_inversion
from stylebridge.plugins.calibrators.alpha import (
    MAPPING_BATCH,
    StyleMeanAccumulator,
    mapping_wplus_batches,
)

SAMPLE_BATCH = MAPPING_BATCH  # as calibrators.mapping_style_means, so both draw the same z


def model_requests(generator: str, encoders: Sequence[str], domains: Sequence[str]
                   ) -> list[tuple[str, str, str]]:
    """What ``analyze latents`` and ``analyze shift-norms`` load, as weights requests
    (:mod:`stylebridge.registry.needed`): the generator, each encoder, each domain."""
    return [("generator", generator, "--generator"),
            *(("encoder", spec, "--encoder") for spec in encoders),
            *(("domain_method", str(spec), "--domain") for spec in domains)]


class SimilarityAccumulator:
    """Running per-layer sums of ``cos(s, s')`` and ``⟨s, s'⟩`` over vectors (float64).

    ``add(styles, domain_styles)`` takes two lists (one ``[B, C_i]`` tensor per
    style layer): the source style vectors ``s`` and the same vectors with the
    domain applied, ``s' = s + Δs``.
    """

    def __init__(self) -> None:
        self.cos: Tensor | None = None
        self.dot: Tensor | None = None
        self.count = 0

    def add(self, styles: Sequence[Tensor], domain_styles: Sequence[Tensor]) -> None:
        if len(styles) != len(domain_styles):
            raise ValueError(f"{len(styles)} style layers but {len(domain_styles)} domain layers")
        cos, dot = [], []
        for s, d in zip(styles, domain_styles, strict=True):
            s, d = s.detach().double().flatten(1), d.detach().double().flatten(1)
            if s.shape != d.shape:
                raise ValueError(f"style shapes differ: {list(s.shape)} vs {list(d.shape)}")
            cos.append(F.cosine_similarity(s, d, dim=1, eps=1e-12).sum().cpu())
            dot.append((s * d).sum().cpu())
        c, t = torch.stack(cos), torch.stack(dot)
        if self.cos is None or self.dot is None:
            self.cos, self.dot = c, t
        else:
            if c.shape != self.cos.shape:
                raise ValueError(f"got {c.numel()} style layers, expected {self.cos.numel()}")
            self.cos, self.dot = self.cos + c, self.dot + t
        self.count += int(styles[0].shape[0])

    def means(self) -> tuple[Tensor, Tensor]:
        """``(mean cos [L], mean dot [L])`` in float64."""
        if self.cos is None or self.dot is None or self.count == 0:
            raise ValueError("no style vectors were accumulated")
        return self.cos / self.count, self.dot / self.count


@torch.no_grad()
def collect_mapping_stats(generator: Generator, domains: Mapping[str, DomainMethod] | None = None,
                          samples: int = 3000, *, seed: int = 0, batch: int = SAMPLE_BATCH,
                          advance: Callable[[int], None] | None = None
                          ) -> tuple[list[Tensor], dict[str, SimilarityAccumulator]]:
    """Mapping-network side: per-channel style means over ``samples`` z and Eq. 5's ``orig`` terms.

    Draws the same z as :func:`stylebridge.plugins.calibrators.alpha.mapping_style_means`
    (both use :func:`~stylebridge.plugins.calibrators.alpha.mapping_wplus_batches`: same seed,
    batches of 500), so the means equal the ones ``calibrate`` stores.
    """
    domains = dict(domains or {})
    means = StyleMeanAccumulator()
    sims = {name: SimilarityAccumulator() for name in domains}
    for w_plus in mapping_wplus_batches(generator, samples, seed=seed, batch=batch):
        styles = generator.styles(w_plus)
        means.add(styles)
        for name, method in domains.items():
            sims[name].add(styles, method.styles(generator, w_plus))
        if advance is not None:
            advance(int(w_plus.shape[0]))
    return means.means(), sims


#: what the photos of each command were for, in its "no readable photo" error
STYLE_MEANS_PURPOSE = "to compute the encoder's style means from"


def no_readable_photo(report: BatchReport | None, purpose: str) -> StylebridgeError:
    """The one error line of a run none of whose photos could be used (``calibrate``,
    ``analyze latents``, ``analyze shift-norms`` alike): the first skipped photo and why,
    and how many more were skipped; the commands print ``report``'s table before it."""
    if report is None or not report.skipped:
        return StylebridgeError(f"no readable photo {purpose}")
    path, reason = report.skipped[0]
    more = len(report.skipped) - 1
    faceless = sum(why.startswith("no face") for _, why in report.skipped)
    head = ("no face found in any photo" if faceless == len(report.skipped)  # readable ones
            else "no usable photo" if faceless else "no readable photo")
    return StylebridgeError(f"{head} {purpose}: {path}: {reason}"
                            + (f" (and {more} more skipped)" if more else "")
                            + ("; if the photos are aligned faces already, add --no-align"
                               if faceless else ""))


@torch.no_grad()
def collect_encoder_stats(encoder: Encoder, generator: Generator, batches: Iterable[Tensor],
                          domains: Mapping[str, DomainMethod] | None = None,
                          report: BatchReport | None = None,
                          ) -> tuple[list[Tensor], int, dict[str, SimilarityAccumulator]]:
    """Encoder side: per-channel means of ``generator.styles(encoder(images).w_plus)`` and
    Eq. 5's ``enc`` terms.  ``batches`` yields images ``[B, 3, H, W]`` in ``[0, 1]``;
    returns the means (one ``[C_i]`` per style layer), the image count and the similarities.
    With no image, the error names the first photo ``report`` (the batches' report) skipped.
    """
    domains = dict(domains or {})
    means = StyleMeanAccumulator()
    sims = {name: SimilarityAccumulator() for name in domains}
    device = generator.input.input.device
    for images in batches:
        # shape, one per image, dtype and NaN (a NaN w+ gave "n/a" tables and exit code 0)
        inversion = check_inversion(encoder.encode(images.to(device)), generator, encoder,
                                    int(images.shape[0]))
        w_plus = inversion.w_plus.detach().to(device)
        styles = generator.styles(w_plus)
        means.add(styles)
        for name, method in domains.items():
            sims[name].add(styles, method.styles(generator, w_plus))
    if means.count == 0:
        raise no_readable_photo(report, STYLE_MEANS_PURPOSE)
    return means.means(), means.count, sims

