"""One FeatureShift training pass: the stacked rows of a batch, the guide features and the
three loss sets on the rendered images (the :class:`~.trainer.FeatureShiftTrainer` methods
``_compose``, ``_guide_features`` and ``_forward`` call these).

Rows, in order: *inversion* (the photo's FSE feature, Δ = 0, its source styles), in the
joint phase *domain* (the e4e-inverted image's feature with Δ and the domain styles of its
w), and with ``domain_inversion_source="inference"`` and a domain-inversion term *adapted*
(the photo's feature with Δ and the domain styles of its w: the inference path).

The domain-inversion loss compares "the generated domain adapted image" with the photo
(thesis, "Improving the gap"); which image that is, is :attr:`TrainConfig.
domain_inversion_source` (``--domain-inversion-source``):

* ``inference`` (default): the adapted rows, a third slice of each batch (about 1.5× the
  compute of a joint step).  The default because it is the image the model produces at
  inference, on the photo's own feature, so "initially similar in terms of face shape" is
  asked of the output users get; and runs before the option existed trained so;
* ``domain-branch``: the domain rows' output (FeatureShift on the e4e-inverted image's
  feature), the domain task's "generated domain adapted image", which the step renders for
  the domain loss anyway; no third slice.  Its loss batch is the domain rows' (latents,
  styles, features, Δ) with the photo as the image target.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from stylebridge.core.interfaces import LossBatch
from stylebridge.pipelines.featureshift.losses import evaluate_set
from stylebridge.pipelines.featureshift.render import domain_styles, uint8_to_images

if TYPE_CHECKING:
    from stylebridge.pipelines.featureshift.trainer import FeatureShiftTrainer


def adapted_rows(trainer: FeatureShiftTrainer, joint: bool) -> bool:
    """Whether a pass renders the adapted (inference-path) rows for the domain-inversion
    loss: in the joint phase, with a domain-inversion term and the ``inference`` reading."""
    return (joint and bool(trainer.loss_sets["domain_inversion"])
            and trainer.cfg.domain_inversion_source == "inference")


@torch.no_grad()
def compose(trainer: FeatureShiftTrainer, data: dict[str, Tensor], *, domain: bool,
            adapted: bool) -> dict[str, Any]:
    """The stacked inputs of one pass: inversion rows, then domain rows, then adapted rows.

    Inversion: real image's FSE feature with Δ = 0 and its source styles; domain: the
    feature of the e4e-inverted image with Δ and the domain styles of its w; adapted
    (inference path): the real image's feature with Δ and the domain styles of its w.
    """
    gen, b = trainer.generator, data["w_real"].shape[0]
    out: dict[str, Any] = {"src_real": gen.styles(data["w_real"])}
    feats, deltas = [data["f_real"]], [torch.zeros_like(data["f_real"])]
    styles, keys = [out["src_real"]], [torch.full((b,), -1, device=trainer.device)]
    if domain:
        out["delta"], out["target"] = trainer._domain_inputs(data)
        out["dom_inv"] = domain_styles(gen, trainer.methods, data["w_inv"], data["domain"])
        out["src_inv"] = gen.styles(data["w_inv"])
        feats.append(data["f_inv"])
        deltas.append(out["delta"])
        styles.append(out["dom_inv"])
        keys.append(data["domain"])
    if domain and adapted:
        out["dom_real"] = domain_styles(gen, trainer.methods, data["w_real"], data["domain"])
        feats.append(data["f_real"])
        deltas.append(out["delta"])
        styles.append(out["dom_real"])
        keys.append(data["domain"])
    out["features"], out["deltas"] = torch.cat(feats), torch.cat(deltas)
    out["styles"] = [torch.cat(parts) for parts in zip(*styles, strict=True)]
    out["keys"] = torch.cat(keys)
    return out


@torch.no_grad()
def guide_features(trainer: FeatureShiftTrainer, data: dict[str, Tensor],
                   parts: dict[str, Any], joint: bool) -> dict[str, Tensor]:
    """``features_guide`` when a loss reads it: the generator's feature at layer K from
    the guide's latents, ``G^K(s(w_E))`` (``"source"``, inversion set), and with the
    domain, ``G^K(s_d(w_E)) = G^K(s(w_E)) − Δ`` (``"domain"``, the domain sets)."""
    wanted = {name for name, terms in trainer.loss_sets.items()
              if any("features_guide" in t.module.required_fields() for t in terms)}
    if not wanted or (not joint and "inversion" not in wanted):
        return {}
    gen = trainer.generator
    source, _ = gen.features_upto(gen.styles(data["w_guide"]), trainer.layer,
                                  randomize_noise=False)
    out = {"source": source.float()}
    if joint:
        out["domain"] = (source - parts["delta"].to(source.dtype)).float()
    return out


def forward(trainer: FeatureShiftTrainer, data: dict[str, Tensor], step: int
            ) -> tuple[Tensor | None, dict[str, float]]:
    """Loss of one batch ``(total, unweighted values)``: one FeatureShift and one generator
    pass over the stacked rows (see the module doc)."""
    t, b = trainer, data["w_real"].shape[0]
    joint = t.phase(step) == "joint"
    use_dinv = joint and bool(t.loss_sets["domain_inversion"])
    adapted = adapted_rows(t, joint)
    parts = t._compose(data, domain=joint, adapted=adapted)
    images, shifted = t._render(t.ddp, parts)
    real = uint8_to_images(data["image"])
    values: dict[str, float] = {}
    common = {"step": step, "total_steps": t.cfg.steps}
    guide = t._guide_features(data, parts, joint)
    totals: list[Tensor | None] = [evaluate_set(t.loss_sets["inversion"], LossBatch(
        output=images[:b], target=real, latents=data["w_real"], styles=parts["src_real"],
        styles_source=parts["src_real"], features=shifted[:b],
        features_target=data["f_real"], features_guide=guide.get("source"),
        phase="inversion", **common), step, "inversion", values)]
    if joint:
        domain = {"delta": parts["delta"], "domain": data["domain"],
                  "features_guide": guide.get("domain"), **common}
        totals.append(evaluate_set(t.loss_sets["domain"], LossBatch(
            output=images[b:2 * b], target=parts["target"], latents=data["w_inv"],
            styles=parts["dom_inv"], styles_source=parts["src_inv"],
            features=shifted[b:2 * b], features_target=data["f_inv"], phase="domain",
            **domain), step, "domain", values))
    if use_dinv and adapted:  # the inference path: the third slice, on the photo's feature
        totals.append(evaluate_set(t.loss_sets["domain_inversion"], LossBatch(
            output=images[2 * b:], target=real, latents=data["w_real"],
            styles=parts["dom_real"], styles_source=parts["src_real"],
            features=shifted[2 * b:], features_target=data["f_real"],
            phase="domain_inversion", **domain), step, "domain-inversion", values))
    elif use_dinv:  # the domain branch's own output, against the photo
        totals.append(evaluate_set(t.loss_sets["domain_inversion"], LossBatch(
            output=images[b:2 * b], target=real, latents=data["w_inv"],
            styles=parts["dom_inv"], styles_source=parts["src_inv"],
            features=shifted[b:2 * b], features_target=data["f_inv"],
            phase="domain_inversion", **domain), step, "domain-inversion", values))
    active = [v for v in totals if v is not None]
    return (torch.stack(active).sum() if active else None), values
