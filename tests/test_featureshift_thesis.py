# ruff: noqa: F811  (the `env` fixture of test_featureshift is imported and used as a parameter)
"""FeatureShift as the thesis trains it (issue 16): the adversarial default and its start, the
batch, the trainable domain discriminator (trained, resumed exactly) and ``feature_reg``."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import tiny_generator
from safetensors.torch import load_file
from test_featureshift import Env, _one_thread, env, tiny_cfg  # noqa: F401  (fixtures)

from stylebridge.cli.commands import featureshift as fs_cli
from stylebridge.cli.commands import train as train_cli
from stylebridge.core.interfaces import LossBatch
from stylebridge.core.stylegan2.checkpoint import save_stylegan2
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.featureshift import trainer as fs
from stylebridge.plugins.losses import corr as losses_corr
from stylebridge.plugins.losses import domain_disc, feature_reg
from stylebridge.plugins.losses import recon as losses_recon
from stylebridge.registry import Registry


def registry() -> Registry:
    mods: list[Any] = [losses_recon, losses_corr, feature_reg, domain_disc, fs_cli,
                       sys.modules["test_featureshift"]]
    return Registry(builtins=False, entry_points=False, extra_plugins=mods)


def _log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- defaults --------------------------------------------------------------------------------


def test_defaults_are_the_thesis_values() -> None:
    cfg = fs.TrainConfig(data="d", generator="g", out="o")
    # "Adversarial loss with λ_Adv = 0.01 ... applied only after the sufficient number of
    # training iterations": on, from the end of the inversion-only pre-training
    assert cfg.adversarial == 0.01
    assert cfg.pretrain_inversion_steps == 10_000 and cfg.adversarial_start() == 10_000
    assert replace(cfg, adversarial_after=7).adversarial_start() == 7
    # "the first 10000 iterations which equals to 12 epochs over our dataset" of 10k images
    assert cfg.batch_size == 12 * 10_000 // 10_000
    # ours, documented as such: Adam, lr 1e-4, clipping 1.0; the domain discriminator off
    assert (cfg.optimizer, cfg.lr, cfg.clip_grad) == ("adam", 1e-4, 1.0)
    assert cfg.domain_discriminator is None
    # the command line has the same defaults
    parser = argparse.ArgumentParser()
    train_cli.add_train_arguments(parser)
    args = parser.parse_args(["--data", "d", "--generator", "g.safetensors", "--out", "o"])
    assert (args.adversarial, args.adversarial_after, args.batch) == (0.01, None, 12)
    assert args.domain_discriminator is None


def test_adversarial_switches_on_at_adversarial_after(env: Env, tmp_path: Path) -> None:
    cfg = tiny_cfg(env, tmp_path / "run", data=str(env.data32), steps=4,
                   pretrain_inversion_steps=2, adversarial=0.01, adversarial_after=2)
    fs.train_featureshift(cfg, registry=registry())
    log = _log(tmp_path / "run" / "log.jsonl")
    inv = log[0]["losses"]["inversion"]
    assert [(t["name"], t["weight"]) for t in inv] == [("mse", 1.0), ("adversarial", 0.01)]
    steps = [r for r in log if "total" in r]
    assert [r["phase"] for r in steps] == ["inversion", "inversion", "joint", "joint"]
    assert ["inversion/adversarial" in r for r in steps] == [False, False, True, True]


def test_a_generator_without_discriminator_is_refused_while_adversarial_is_on(
        env: Env, tmp_path: Path) -> None:
    bare = tmp_path / "bare.safetensors"
    save_stylegan2(bare, tiny_generator(seed=0))
    cfg = tiny_cfg(env, tmp_path / "run", adversarial=0.01, adversarial_after=3,
                   discriminator=str(bare))
    with pytest.raises(StylebridgeError, match=r"holds no StyleGAN2 discriminator.*--adversarial 0"):
        fs.train_featureshift(cfg, registry=registry())


def test_a_run_that_ends_before_the_adversarial_term_needs_no_discriminator(
        env: Env, tmp_path: Path) -> None:
    # the thesis' default: the term starts at step 10000, so a 6-step run never uses it
    bare = tmp_path / "bare.safetensors"
    save_stylegan2(bare, tiny_generator(seed=0))
    notes: list[str] = []
    cfg = tiny_cfg(env, tmp_path / "run", adversarial=0.01, discriminator=str(bare))
    fs.train_featureshift(cfg, registry=registry(),
                          progress=lambda e: notes.append(e.text or "") if e.kind == "note" else None)
    log = _log(tmp_path / "run" / "log.jsonl")
    assert [t["name"] for t in log[0]["losses"]["inversion"]] == ["mse"]
    assert len([r for r in log if "total" in r]) == 6
    assert any("--adversarial starts at step 10000" in n and "(--steps 6)" in n
               and "not loaded" in n for n in notes), notes
    # a --discriminator that is not there is said now, not by the longer resume that loads it
    missing = tmp_path / "no-such-discriminator.safetensors"
    cfg = tiny_cfg(env, tmp_path / "run2", adversarial=0.01, discriminator=str(missing))
    with pytest.raises(StylebridgeError, match=r"no-such-discriminator\.safetensors: "):
        fs.train_featureshift(cfg, registry=registry())
    assert not (tmp_path / "run2" / "log.jsonl").exists()


# -- feature_reg -----------------------------------------------------------------------------


def test_feature_reg_value_by_hand() -> None:
    pred = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]], [[[0.0, 0.0], [0.0, 1.0]]]])
    target = torch.tensor([[[[0.0, 2.0], [1.0, 4.0]]], [[[0.0, 0.0], [0.0, 0.0]]]])
    # squared differences: sample 0: 1, 0, 4, 0 (sum 5); sample 1: 0, 0, 0, 1 (sum 1)
    batch = LossBatch(features=pred, features_target=target)
    assert float(feature_reg.FeatureRegLoss()(batch)) == pytest.approx(6 / 8)
    assert float(feature_reg.FeatureRegLoss(reduction="sum")(batch)) == pytest.approx(3.0)
    with pytest.raises(StylebridgeError, match="differ in shape"):
        feature_reg.FeatureRegLoss()(LossBatch(features=pred, features_target=target[:1, :, :1]))


def test_feature_reg_trains_featureshift(env: Env, tmp_path: Path) -> None:
    cfg = tiny_cfg(env, tmp_path / "run", steps=8, pretrain_inversion_steps=8,
                   inversion_losses=["feature_reg:1.0"])
    fs.train_featureshift(cfg, registry=registry())
    values = [r["inversion/feature_reg"] for r in _log(tmp_path / "run" / "log.jsonl")
              if "total" in r]
    assert len(values) == 8 and all(v > 0 for v in values)
    assert values[-1] < 0.5 * values[0]   # F' is pulled towards FSE's F


def test_feature_reg_e4e_target_is_the_guides_generator_feature(
        env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Thesis: "regularization on E4E intermediate feature maps both for the domain adaptation
    and for inversion task".  target=e4e compares F' with G^K(s(w_E)) in the inversion set and
    G^K(s_d(w_E)) in the domain set, w_E the guide's latents; each computed here directly."""
    from stylebridge.core.synthesis import method_styles

    pred = torch.ones(2, 1, 2, 2)
    guide = torch.zeros(2, 1, 2, 2)
    loss = feature_reg.FeatureRegLoss(target="e4e")
    assert loss.required_fields() == {"features", "features_guide"}
    assert float(loss(LossBatch(features=pred, features_guide=guide,
                                features_target=pred))) == pytest.approx(1.0)
    with pytest.raises(StylebridgeError, match="target='w'"):
        feature_reg.FeatureRegLoss(target="w")

    batches: list[dict[str, torch.Tensor]] = []
    seen: list[tuple[str, torch.Tensor]] = []
    next_batch, forward = fs.FeatureShiftTrainer._next_batch, feature_reg.FeatureRegLoss.forward

    def record_batch(self: Any) -> dict[str, torch.Tensor]:
        batches.append(next_batch(self))
        return batches[-1]

    def record_loss(self: Any, batch: LossBatch) -> torch.Tensor:
        seen.append((str(batch.phase), batch.features_guide.clone()))
        return forward(self, batch)

    monkeypatch.setattr(fs.FeatureShiftTrainer, "_next_batch", record_batch)
    monkeypatch.setattr(feature_reg.FeatureRegLoss, "forward", record_loss)
    trainers: list[Any] = []
    cfg = tiny_cfg(env, tmp_path / "run", data=str(env.data32), steps=2,
                   pretrain_inversion_steps=1, losses=["mse:1.0", "feature_reg:1.0:target=e4e"],
                   inversion_losses=["mse:1.0", "feature_reg:1.0:target=e4e"])
    fs.train_featureshift(cfg, registry=registry(), on_step=trainers.append)
    assert [phase for phase, _ in seen] == ["inversion", "inversion", "domain"]
    trainer = trainers[0]
    gen, layer = trainer.generator, trainer.layer
    with torch.no_grad():
        for step, data in enumerate(batches):
            w = data["w_guide"]
            source = gen.features_upto(gen.styles(w), layer, randomize_noise=False)[0]
            torch.testing.assert_close(seen[step][1], source, atol=1e-5, rtol=1e-5)
        data = batches[1]
        rows = []
        for i, d in enumerate(data["domain"].tolist()):
            method = trainer.methods[d]
            w = data["w_guide"][i:i + 1]
            rows.append(gen.features_upto(method_styles(method, gen, w), layer,
                                          randomize_noise=False,
                                          weight_deltas=method.weight_deltas(gen))[0])
        torch.testing.assert_close(seen[2][1], torch.cat(rows), atol=1e-5, rtol=1e-5)
    log = [r for r in _log(tmp_path / "run" / "log.jsonl") if "total" in r]
    assert "domain/feature_reg" in log[1] and log[1]["domain/feature_reg"] > 0


def test_a_state_from_before_feature_reg_had_target_resumes(env: Env, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """A loss that gained an option (feature_reg's target=) since a state was written: at its
    default the run trains the same and resumes; set otherwise, the resume is refused."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    cfg = dict(steps=2, pretrain_inversion_steps=2, checkpoint_every=1,
               inversion_losses=["mse:1.0", "feature_reg:1.0"])
    fs.train_featureshift(tiny_cfg(env, tmp_path / "run", **cfg), registry=registry())
    state = tmp_path / "run" / "state.safetensors"
    with safe_open(str(state), "pt") as fh:
        meta = fh.metadata()
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    header = json.loads(meta["stylebridge"])
    assert header["extra"]["loss_configs"]["inversion"]["feature_reg"].pop("target") == "fse"
    save_file(tensors, str(state), metadata={**meta, "stylebridge": json.dumps(header)})
    # the same spec text resolving to a non-default value: refused, the term named
    monkeypatch.setattr(feature_reg.FeatureRegLoss, "config",
                        lambda self: {"reduction": self.reduction, "target": "e4e"})
    with pytest.raises(StylebridgeError, match=r"other loss settings \(inversion/feature_reg"):
        fs.train_featureshift(tiny_cfg(env, tmp_path / "run", **{**cfg, "steps": 3,
                                                                  "resume": True}),
                              registry=registry())
    monkeypatch.undo()
    result = fs.train_featureshift(tiny_cfg(env, tmp_path / "run", **{**cfg, "steps": 3,
                                                                       "resume": True}),
                                   registry=registry())
    assert result.step == 3


# -- the trainable domain discriminator ------------------------------------------------------


def _disc(trainer: fs.FeatureShiftTrainer) -> domain_disc.DomainDiscriminatorLoss:
    (loss,) = [t.module for t in trainer.loss_sets["domain"]
               if isinstance(t.module, domain_disc.DomainDiscriminatorLoss)]
    return loss


def test_domain_discriminator_trains_and_resumes_exactly(env: Env, tmp_path: Path) -> None:
    spec = "0.1:size=32,channels=8"
    snapshots: list[dict[str, torch.Tensor]] = []

    def snap(trainer: fs.FeatureShiftTrainer) -> None:
        snapshots.append({k: v.clone() for k, v in _disc(trainer).model.state_dict().items()})

    base = dict(steps=5, pretrain_inversion_steps=2, domain_discriminator=spec, adversarial=0.0)
    fs.train_featureshift(tiny_cfg(env, tmp_path / "ref", **base), registry=registry(),
                          on_step=snap)
    same = [all(torch.equal(a[k], b[k]) for k in a) for a, b in itertools.pairwise(snapshots)]
    # steps 1-2 are inversion-only (no domain loss, no discriminator step); 3-5 train it
    assert same == [True, False, False, False]
    log = _log(tmp_path / "ref" / "log.jsonl")
    assert [t["name"] for t in log[0]["losses"]["domain"]] == ["mse", "domain_adversarial"]
    assert all("domain/domain_adversarial" in r for r in log if r.get("phase") == "joint")

    # 3 steps, then --resume to 5: the same discriminator, optimiser and FeatureShift
    fs.train_featureshift(tiny_cfg(env, tmp_path / "run", **{**base, "steps": 3}),
                          registry=registry())
    fs.train_featureshift(tiny_cfg(env, tmp_path / "run", **base, resume=True),
                          registry=registry())
    ref, run = (load_file(tmp_path / name / "state.safetensors") for name in ("ref", "run"))
    d_keys = [k for k in ref if ".d." in k or (k.startswith("loss.domain") and ".optim." in k)]
    assert any(".d." in k for k in d_keys) and any(".optim." in k for k in d_keys)
    assert sorted(ref) == sorted(run)
    for k in ref:
        assert torch.equal(ref[k], run[k]), k
    final = {k.split(".d.", 1)[1]: v for k, v in ref.items() if ".d." in k}
    assert all(torch.equal(final[k], snapshots[-1][k]) for k in snapshots[-1])
    assert not all(torch.equal(final[k], snapshots[0][k]) for k in snapshots[0])

    # the same term given the other way on resume: `--loss domain_adversarial:W` is
    # `--domain-discriminator W` (it was refused as "different settings")
    spelled = {**base, "domain_discriminator": None,
               "losses": ["mse:1", f"domain_adversarial:{spec}"]}
    fs.train_featureshift(tiny_cfg(env, tmp_path / "alt", **{**base, "steps": 3}),
                          registry=registry())
    fs.train_featureshift(tiny_cfg(env, tmp_path / "alt", **spelled, resume=True),
                          registry=registry())
    alt = load_file(tmp_path / "alt" / "state.safetensors")
    assert sorted(alt) == sorted(ref) and all(torch.equal(ref[k], alt[k]) for k in ref)
    with pytest.raises(StylebridgeError, match=r"different settings \(--loss\)"):
        fs.train_featureshift(tiny_cfg(env, tmp_path / "alt", resume=True, steps=6, **{
            k: v for k, v in spelled.items() if k != "steps"} | {
            "losses": ["mse:1", "domain_adversarial:0.2:size=32,channels=8"]}),
            registry=registry())


def test_a_domain_discriminator_given_with_loss_stays_in_the_domain_set(env: Env,
                                                                        tmp_path: Path) -> None:
    """`--loss domain_adversarial:W` without --inversion-loss: the inversion set copies the
    other --loss terms only (a copy would train a second discriminator on the photos)."""
    trainer = fs.FeatureShiftTrainer(tiny_cfg(
        env, tmp_path / "x", losses=["mse:1.0", "domain_adversarial:0.1:size=32,channels=8"],
        adversarial=0.0), registry=registry())
    trainer.setup()
    assert [t.name for t in trainer.loss_sets["domain"]] == ["mse", "domain_adversarial"]
    assert [t.name for t in trainer.loss_sets["inversion"]] == ["mse"]


def test_cli_options_reach_the_config(env: Env) -> None:
    parser = argparse.ArgumentParser()
    train_cli.add_train_arguments(parser)
    args = parser.parse_args(["--data", str(env.data), "--generator", str(env.gen_path),
                              "--out", "o", "--domain-discriminator", "0.05:size=32",
                              "--adversarial-after", "3", "--inversion-loss", "feature_reg:0.5"])
    cfg = train_cli.config_from_args(args)
    assert cfg.domain_discriminator == "0.05:size=32" and cfg.adversarial_start() == 3
    assert cfg.inversion_losses == ["feature_reg:0.5"]
    with pytest.raises(StylebridgeError, match="--domain-discriminator"):
        replace(cfg, domain_discriminator="lots").validate()


def test_settings_that_never_act_in_the_run_are_said_before_it(env: Env, tmp_path: Path) -> None:
    """A term with after= past the end, a pre-training or warm-up as long as the run: notes,
    not a run that silently trains less than asked."""
    from stylebridge.pipelines.featureshift.losses import build_loss_sets, schedule_notes

    cfg = tiny_cfg(env, tmp_path / "x", steps=4, pretrain_inversion_steps=2, warmup_steps=4,
                   adversarial=0.0, losses=["mse:1.0", "mse:1.0:after=100"])
    sets = build_loss_sets(cfg, registry=registry(), device=torch.device("cpu"))
    assert schedule_notes(cfg, sets) == [
        "--warmup-steps 4 is not below --steps 4: the learning rate never reaches --lr",
        "--loss mse#2 never starts: after=100 is not before the run's end (--steps 4)",
        "--inversion-loss mse#2 never starts: after=100 is not before the run's end "
        "(--steps 4)"]
    cfg = tiny_cfg(env, tmp_path / "x", steps=4, pretrain_inversion_steps=6, adversarial=0.0)
    sets = build_loss_sets(cfg, registry=registry(), device=torch.device("cpu"))
    assert schedule_notes(cfg, sets) == [
        "the run ends within the inversion-only pre-training (--pretrain-inversion-steps 6, "
        "--steps 4): no domain training"]


def test_an_unknown_loss_names_the_option_it_came_from(env: Env, tmp_path: Path) -> None:
    from stylebridge.errors import StylebridgeError
    from stylebridge.pipelines.featureshift.losses import build_loss_sets

    cfg = tiny_cfg(env, tmp_path / "x", adversarial=0.0, inversion_losses=["bogus:1"])
    with pytest.raises(StylebridgeError, match=r"^--inversion-loss 'bogus:1': unknown loss "
                                               r"'bogus'"):
        build_loss_sets(cfg, registry=registry(), device=torch.device("cpu"))


def test_loss_sets_that_cannot_train_are_refused_or_said_before_the_run(
        env: Env, tmp_path: Path) -> None:
    """QA: a weight-0 loss was dropped without a word (a run with no domain training exited
    0); `--loss mse:0` alone started the run, wrote log.jsonl, then failed at step 0; the
    domain discriminator in an inversion set learned the photos; tiny LPIPS sizes crashed."""
    from stylebridge.pipelines.featureshift.losses import build_loss_sets
    from stylebridge.pipelines.training.losses import build_loss_terms, idle_term_notes

    terms = build_loss_terms(["mse:1", "mse:0"], registry=registry())
    assert idle_term_notes(terms, 10) == ["--loss mse#2 has weight 0: it never trains anything"]
    cfg = tiny_cfg(env, tmp_path / "run", losses=["mse:0"], inversion_losses=["mse:0"])
    with pytest.raises(StylebridgeError, match=r"no loss is active at step 0 "
                                               r"\(--inversion-loss mse: weight 0\)"):
        fs.train_featureshift(cfg, registry=registry())
    assert not (tmp_path / "run" / "log.jsonl").exists()
    copied = tiny_cfg(env, tmp_path / "copied", losses=["mse:0"])   # the set --loss gives
    with pytest.raises(StylebridgeError, match=r"\(--loss mse: weight 0\)"):
        fs.train_featureshift(copied, registry=registry())
    late = tiny_cfg(env, tmp_path / "late", inversion_losses=["mse:1:after=2"])
    with pytest.raises(StylebridgeError, match=r"no loss is active at step 0 "
                                               r"\(--inversion-loss mse: after=2\)"):
        fs.train_featureshift(late, registry=registry())
    wrong = tiny_cfg(env, tmp_path / "w", inversion_losses=[
        "mse:1", "domain_adversarial:0.01:size=32"])
    with pytest.raises(StylebridgeError, match="--inversion-loss domain_adversarial: the "
                                               "trainable domain discriminator"):
        build_loss_sets(wrong, registry=registry(), device=torch.device("cpu"))
    with pytest.raises(StylebridgeError, match=r"expected sizes in 32\.\.1024"):
        losses_recon.LPIPSLoss(resolutions="16", allow_random=True)
    with pytest.raises(StylebridgeError, match=r"expected sizes in 32\.\.1024"):
        losses_recon.LPIPSLoss(resolutions="5000", allow_random=True)


def test_an_out_of_range_seed_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from stylebridge.cli.main import main

    for value in ("-1", "4294967296", "x"):
        with pytest.raises(SystemExit) as exit_info:
            main(["train", "featureshift", "--data", "d", "-g", "g.safetensors", "--out", "o",
                  "--seed", value])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert "--seed" in err and "Traceback" not in err and "ValueError" not in err


def test_a_random_discriminator_is_named_among_the_random_parts(tmp_path: Path) -> None:
    """`--adversarial` with a discriminator file whose header says random weights trained
    without a word about it; each term's log record carries its key (`mse#2`)."""
    from stylebridge.core.stylegan2 import Discriminator
    from stylebridge.pipelines.training.losses import build_loss_terms, random_loss_names

    torch.manual_seed(0)
    disc = Discriminator(size=32, channels={4: 8, 8: 8, 16: 8, 32: 8})
    random_file = tmp_path / "random_gd.safetensors"
    save_stylegan2(random_file, tiny_generator(seed=0), disc, extra={"random_weights": True})
    real_file = tmp_path / "gd.safetensors"
    save_stylegan2(real_file, tiny_generator(seed=0), disc)
    terms = build_loss_terms([f"adversarial:0.01:discriminator={random_file}", "mse:1",
                              "mse:0.5"], registry=registry())
    assert random_loss_names(terms) == ["loss adversarial"]
    assert [t.describe()["key"] for t in terms] == ["adversarial", "mse", "mse#2"]
    real = build_loss_terms([f"adversarial:0.01:discriminator={real_file}"], registry=registry())
    assert random_loss_names(real) == []


def test_amp_on_the_cpu_is_said_not_silently_dropped(env: Env, tmp_path: Path) -> None:
    """`--amp fp16` on the CPU trained in fp32 without a word (help said so, the run did not)."""
    said: list[str] = []
    fs.train_featureshift(tiny_cfg(env, tmp_path / "run", steps=1, amp="bf16"),
                          registry=registry(),
                          progress=lambda event: said.append(event.text or ""))
    assert "--amp bf16 applies on CUDA only: this cpu run is fp32" in said


def test_a_resumed_run_that_reaches_the_adversarial_start_builds_the_term(
        env: Env, tmp_path: Path) -> None:
    kw = dict(data=str(env.data32), pretrain_inversion_steps=2, adversarial=0.01,
              adversarial_after=6, checkpoint_every=2)
    fs.train_featureshift(tiny_cfg(env, tmp_path / "run", steps=4, **kw), registry=registry())
    fs.train_featureshift(tiny_cfg(env, tmp_path / "run", steps=8, resume=True, **kw),
                          registry=registry())
    steps = [r for r in _log(tmp_path / "run" / "log.jsonl") if "total" in r]
    assert ["inversion/adversarial" in r for r in steps] == [False] * 6 + [True] * 2
    # exactly as a run of 8 steps from the start
    fs.train_featureshift(tiny_cfg(env, tmp_path / "whole", steps=8, **kw), registry=registry())
    a, b = (load_file(tmp_path / r / "model.safetensors") for r in ("run", "whole"))
    assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)
