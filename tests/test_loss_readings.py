"""Both readings of two thesis losses: Eq. 3 (``difa_w``, ``reduction=mean|sum``) and L_corr
(``corr``, ``over=samples|channels``).  Expected values are computed by hand or with plain
loops here, independently of the implementations; the defaults must keep their old numbers."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import Tensor

from stylebridge.core.interfaces import LossBatch
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.training.losses import build_loss_terms
from stylebridge.plugins.losses.clip import DifaSccLoss
from stylebridge.plugins.losses.corr import CorrLoss
from stylebridge.registry.registry import accepted_options

# ---------------------------------------------------------------------------------------------
# difa_w (Eq. 3)


def _difa_batch(target: Tensor, source: Tensor) -> LossBatch:
    # window=1 and step == total: Δw is this batch's mean difference and the ramp is 1
    return LossBatch(target_latents=target, source_latents=source, step=5, total_steps=5)


def test_difa_w_sum_is_eq3_as_written_hand_value() -> None:
    """[2 samples, 2 rows, 2 channels], source 0.  Δw (flattened) = mean target = [2, 1, 1, 0];
    α = 0.5 keeps the 2 smallest |Δw|: entry 3 (0) and entry 1 (1, lower index than entry 2).
    Sample 0: |-2| + |0.5| = 2.5, sample 1: |4| + |-0.5| = 4.5.  sum (‖·‖₁ per sample,
    averaged over the batch) = 3.5; mean (DiFa's F.l1_loss over 2·4 entries) = 7 / 8."""
    target = torch.tensor([[[1.0, -2.0], [3.0, 0.5]], [[3.0, 4.0], [-1.0, -0.5]]])
    source = torch.zeros_like(target)
    summed = DifaSccLoss(alpha=0.5, window=1, keep_rows=2, reduction="sum")
    assert float(summed(_difa_batch(target, source))) == pytest.approx(3.5)
    default = DifaSccLoss(alpha=0.5, window=1, keep_rows=2)
    assert default.reduction == "mean"
    assert float(default(_difa_batch(target, source))) == pytest.approx(0.875)


def _difa_by_loops(target: Tensor, source: Tensor, alpha: float, rows: int, reduction: str) -> float:
    b, n = target.shape[0], rows * target.shape[2]
    t = [[float(target[i, r, c]) for r in range(rows) for c in range(target.shape[2])] for i in range(b)]
    s = [[float(source[i, r, c]) for r in range(rows) for c in range(source.shape[2])] for i in range(b)]
    delta = [sum(t[i][k] for i in range(b)) / b - sum(s[i][k] for i in range(b)) / b for k in range(n)]
    keep = set(sorted(range(n), key=lambda k: (abs(delta[k]), k))[: int(alpha * n)])
    per_sample = [sum(abs(t[i][k] - s[i][k]) for k in keep) for i in range(b)]
    if reduction == "sum":
        return sum(per_sample) / b
    return sum(per_sample) / (b * n)


def test_difa_w_both_readings_match_loops_and_keep_rows_covers_all_rows() -> None:
    g = torch.Generator().manual_seed(3)
    target, source = torch.randn(3, 5, 4, generator=g), torch.randn(3, 5, 4, generator=g)
    for rows, keep_rows in ((2, 2), (5, 18), (5, 40)):  # 18 or more: every row of w+
        for reduction in ("mean", "sum"):
            loss = DifaSccLoss(alpha=0.6, window=1, keep_rows=keep_rows, reduction=reduction)
            got = float(loss(_difa_batch(target, source)))
            assert got == pytest.approx(_difa_by_loops(target, source, 0.6, rows, reduction), rel=1e-5)
    # the default is DiFa's code: exactly the old F.l1_loss numbers (mean of masked |Δ|)
    default = DifaSccLoss(window=1)
    assert float(default(_difa_batch(target, source))) == pytest.approx(
        _difa_by_loops(target, source, 0.6, 5, "mean"), rel=1e-6)
    # sum = mean × entries per sample
    a = DifaSccLoss(window=1, keep_rows=18, reduction="sum")(_difa_batch(target, source))
    m = DifaSccLoss(window=1, keep_rows=18)(_difa_batch(target, source))
    assert float(a) == pytest.approx(float(m) * 5 * 4, rel=1e-6)


def test_difa_w_reduction_option_is_exposed_and_checked() -> None:
    assert "reduction" in (accepted_options(DifaSccLoss) or [])
    assert DifaSccLoss.config_schema["reduction"].describe() == "one of mean, sum"
    loss = DifaSccLoss(reduction="sum")
    assert loss.config()["reduction"] == "sum"
    assert type(loss)(**loss.config()).reduction == "sum"
    (term,) = build_loss_terms(["difa_w:6:reduction=sum"])
    assert term.weight == 6.0 and term.module.reduction == "sum"
    (term,) = build_loss_terms(["difa_w:6"])
    assert term.module.config() == {"alpha": 0.6, "window": 50, "keep_rows": 7, "reduction": "mean",
                                    "ramp": True}
    with pytest.raises(ValueError, match=r"reduction must be 'mean' \(DiFa's code\) or 'sum'"):
        DifaSccLoss(reduction="l1")
    with pytest.raises(StylebridgeError, match="reduction='l1': expected one of mean, sum"):
        build_loss_terms(["difa_w:6:reduction=l1"])


def test_difa_w_ramp_false_weighs_every_step_as_eq3_has_no_ramp() -> None:
    """Eq. 3 has no ramp; DiFa's code weighs the loss 0 for the first `window` steps and
    (step − window)/(total − window) after.  `ramp=false`: the unramped loss at every step."""
    g = torch.Generator().manual_seed(5)
    target, source = torch.randn(2, 3, 4, generator=g), torch.randn(2, 3, 4, generator=g)
    unramped = _difa_by_loops(target, source, 0.6, 3, "sum")
    early = {"target_latents": target, "source_latents": source, "step": 3, "total_steps": 301}
    (term,) = build_loss_terms(["difa_w:6:keep_rows=18,reduction=sum,ramp=false,window=1"])
    assert term.module.config()["ramp"] is False
    assert float(term.module(LossBatch(**early))) == pytest.approx(unramped, rel=1e-6)
    ramped = DifaSccLoss(window=1, keep_rows=18, reduction="sum")  # DiFa: (3 − 1)/(301 − 1)
    assert float(ramped(LossBatch(**early))) == pytest.approx(unramped * 2 / 300, rel=1e-6)
    with pytest.raises(StylebridgeError, match="ramp"):
        build_loss_terms(["difa_w:6:ramp=maybe"])


# ---------------------------------------------------------------------------------------------
# corr (L_corr)


def _gram_loss_by_loops(vectors_new: list[list[float]], vectors_old: list[list[float]],
                        cosine: bool = False) -> tuple[float, int]:
    """Σ_{i≠j} (v_i·v_j new − v_i·v_j old)², and the number of ordered pairs."""
    def dot(u: list[float], v: list[float]) -> float:
        return sum(x * y for x, y in zip(u, v, strict=True))

    def unit(v: list[float]) -> list[float]:
        norm = math.sqrt(dot(v, v))
        return [x / norm for x in v] if cosine else v

    new, old = [unit(v) for v in vectors_new], [unit(v) for v in vectors_old]
    pairs = [(i, j) for i, j in itertools.product(range(len(new)), repeat=2) if i != j]
    return sum((dot(new[i], new[j]) - dot(old[i], old[j])) ** 2 for i, j in pairs), len(pairs)


def _channels_of_styles(s: Tensor) -> list[list[float]]:
    return [[float(s[b, c]) for b in range(s.shape[0])] for c in range(s.shape[1])]


def _samples_of_styles(s: Tensor) -> list[list[float]]:
    return [[float(s[b, c]) for c in range(s.shape[1])] for b in range(s.shape[0])]


def _channels_of_features(f: Tensor) -> list[list[float]]:
    """Channel c: its values over the batch and every position."""
    b, c, h, w = f.shape
    return [[float(f[i, k, y, x]) for i in range(b) for y in range(h) for x in range(w)] for k in range(c)]


OLD = [torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 2.0, 0.0], [0.0, 1.0, 1.0]])]
NEW = [torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[2.0, 0.0, 1.0], [1.0, 1.0, 1.0]])]


def test_corr_over_channels_hand_value() -> None:
    """Layer A: channels old [1,0],[0,1] (G_01 = 0), new [1,3],[2,4] (G_01 = 14) → 2·14² = 392.
    Layer B: channels old [1,0],[2,1],[0,1] → G_01, G_02, G_12 = 2, 0, 1; new [2,1],[0,1],[1,1]
    → 1, 3, 1; differences −1, 3, 0 → 2·(1 + 9) = 20.  Total 412 over 2 + 6 ordered pairs.
    The samples reading of the same batch: layer A 2·(11 − 0)², layer B 2·(3 − 2)² = 244."""
    batch = LossBatch(styles=NEW, styles_source=OLD)
    assert float(CorrLoss(over="channels")(batch)) == 412.0
    assert float(CorrLoss(over="channels", reduction="mean")(batch)) == 412.0 / 8
    assert float(CorrLoss()(batch)) == 244.0 == float(CorrLoss(over="samples")(batch))
    # cosine: layer A cos(new) = 14/√200, cos(old) = 0 → 2·196/200; layer B by loops
    cos_b, _ = _gram_loss_by_loops(_channels_of_styles(NEW[1]), _channels_of_styles(OLD[1]), cosine=True)
    got = float(CorrLoss(over="channels", norm="cosine")(batch))
    assert got == pytest.approx(2 * 196 / 200 + cos_b, rel=1e-6)
    # a batch of one has channel pairs: [1, 2] vs [1, 0] → G_01 2 vs 0 → 2·2² = 8
    one = LossBatch(styles=[torch.tensor([[1.0, 2.0]])], styles_source=[torch.tensor([[1.0, 0.0]])])
    assert float(CorrLoss(over="channels")(one)) == 8.0
    assert float(CorrLoss()(one)) == 0.0


def test_corr_over_channels_matches_loops_on_random_styles() -> None:
    g = torch.Generator().manual_seed(5)
    new = [torch.randn(3, c, generator=g) for c in (4, 6)]
    old = [torch.randn(3, c, generator=g) for c in (4, 6)]
    batch = LossBatch(styles=new, styles_source=old)
    for norm in ("none", "cosine"):
        parts = [_gram_loss_by_loops(_channels_of_styles(n), _channels_of_styles(o), norm == "cosine")
                 for n, o in zip(new, old, strict=True)]
        total, pairs = sum(p[0] for p in parts), sum(p[1] for p in parts)
        assert pairs == 4 * 3 + 6 * 5
        assert float(CorrLoss(over="channels", norm=norm)(batch)) == pytest.approx(total, rel=1e-5)
        assert float(CorrLoss(over="channels", norm=norm, reduction="mean")(batch)) == pytest.approx(
            total / pairs, rel=1e-5)
        # the channel Gram matrix written independently: G = Σ_b s_b s_bᵀ
        if norm == "none":
            ein = sum(float(((torch.einsum("bi,bj->ij", n, n) - torch.einsum("bi,bj->ij", o, o))
                             * (1 - torch.eye(n.shape[1]))).pow(2).sum())
                      for n, o in zip(new, old, strict=True))
            assert float(CorrLoss(over="channels")(batch)) == pytest.approx(ein, rel=1e-5)


def test_corr_over_channels_on_features() -> None:
    """Channel c's vector: its values over batch and positions.  Old: b0 ch0 [1,0] ch1 [0,1],
    b1 ch0 [2,1] ch1 [1,0] → G_01 = 0 + 2 = 2; new: b0 [1,1]/[1,0], b1 [0,1]/[3,2] → 1 + 2 = 3;
    2 ordered pairs of (3 − 2)² = 2."""
    old = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]], [[[2.0, 1.0]], [[1.0, 0.0]]]])
    new = torch.tensor([[[[1.0, 1.0]], [[1.0, 0.0]]], [[[0.0, 1.0]], [[3.0, 2.0]]]])
    raw = CorrLoss(on="features", over="channels", norm="none", reduction="sum")
    assert float(raw(LossBatch(features=new, features_target=old))) == 2.0
    g = torch.Generator().manual_seed(9)
    f_new, f_old = torch.randn(3, 4, 2, 3, generator=g), torch.randn(3, 4, 2, 3, generator=g)
    batch = LossBatch(features=f_new, features_target=f_old)
    total, pairs = _gram_loss_by_loops(_channels_of_features(f_new), _channels_of_features(f_old), True)
    loss = CorrLoss(over="channels")
    loss.bind_trained_fields(frozenset({"output", "features"}))  # as in train featureshift
    assert loss.config() == {"reduction": "mean", "on": "features", "norm": "cosine", "over": "channels"}
    assert float(loss(batch)) == pytest.approx(total / pairs, rel=1e-5)
    assert float(loss(LossBatch(features=50.0 * f_new, features_target=f_old))) == pytest.approx(
        total / pairs, rel=1e-5)  # scale-free, as the samples reading with these defaults
    # styles are the case H = W = 1
    styles = CorrLoss(over="channels", norm="none", reduction="sum")
    as_map = CorrLoss(on="features", over="channels", norm="none", reduction="sum")
    s_new, s_old = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
    assert float(styles(LossBatch(styles=[s_new], styles_source=[s_old]))) == pytest.approx(float(
        as_map(LossBatch(features=s_new[:, :, None, None], features_target=s_old[:, :, None, None]))))
    with pytest.raises(ValueError, match="expected equal"):
        as_map(LossBatch(features=f_new, features_target=f_old.flatten(2)))


def test_corr_defaults_unchanged() -> None:
    """over=samples is the default; its numbers are the old ones (Gram over the batch), on
    styles (none, sum) and on features (cosine, mean), bit for bit."""
    g = torch.Generator().manual_seed(11)
    new = [torch.randn(4, c, generator=g) for c in (3, 8)]
    old = [torch.randn(4, c, generator=g) for c in (3, 8)]
    batch = LossBatch(styles=new, styles_source=old)
    expected = sum(_gram_loss_by_loops(_samples_of_styles(n), _samples_of_styles(o))[0]
                   for n, o in zip(new, old, strict=True))
    assert float(CorrLoss()(batch)) == pytest.approx(expected, rel=1e-5)
    off = ~torch.eye(4, dtype=torch.bool)
    old_formula = sum(((n @ n.T - o @ o.T).pow(2).masked_select(off).sum() for n, o in zip(new, old, strict=True)),
                      torch.tensor(0.0))
    assert torch.equal(CorrLoss()(batch), old_formula)
    assert torch.equal(CorrLoss(over="samples")(batch), CorrLoss()(batch))
    assert CorrLoss().config() == {"reduction": "sum", "on": "styles", "norm": "none"}
    f_new, f_old = torch.randn(3, 2, 2, 2, generator=g), torch.randn(3, 2, 2, 2, generator=g)
    fb = LossBatch(features=f_new, features_target=f_old)
    feat = CorrLoss(on="features")
    total, pairs = _gram_loss_by_loops(_samples_of_styles(f_new.flatten(1)),
                                       _samples_of_styles(f_old.flatten(1)), cosine=True)
    assert float(feat(fb)) == pytest.approx(total / pairs, rel=1e-5)
    a, b = torch.nn.functional.normalize(f_new.flatten(1), dim=1), torch.nn.functional.normalize(
        f_old.flatten(1), dim=1)
    o3 = ~torch.eye(3, dtype=torch.bool)
    assert torch.equal(feat(fb), (a @ a.T - b @ b.T).pow(2).masked_select(o3).sum() / 6)


def test_corr_over_option_is_exposed_and_checked() -> None:
    assert "over" in (accepted_options(CorrLoss) or [])
    loss = CorrLoss(over="channels", norm="cosine")
    assert type(loss)(**loss.config()).config() == loss.config()
    (term,) = build_loss_terms(["corr:1e3:over=channels"])
    assert term.module.over == "channels" and term.weight == 1e3
    with pytest.raises(ValueError, match=r"over must be 'samples'.*or 'channels'"):
        CorrLoss(over="layers")
    # gradients flow, and the minimum is at Δs = 0
    offset = torch.zeros(3, requires_grad=True)
    s_old = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 1.0]])
    value = CorrLoss(over="channels")(LossBatch(styles=[s_old + offset], styles_source=[s_old]))
    value.backward()
    assert float(value.detach()) == 0.0 and torch.equal(offset.grad, torch.zeros(3))
