# ruff: noqa: F811  (the `env` fixture of test_featureshift is imported and used as a parameter)
"""FeatureShift's two readings of the thesis' loss wording (QA review): which image the
domain-inversion loss compares with the photo (``--domain-inversion-source``), and when the
frozen discriminator's term starts (``--adversarial-after``, default step 10 000 whatever the
pre-training; states written before keep their start)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from test_featureshift import Env, _one_thread, env, make_registry, tiny_cfg  # noqa: F401

from stylebridge.cli.commands import train as train_cli
from stylebridge.core.checkpoint import load_checkpoint, read_header, save_checkpoint
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.featureshift import trainer as fs
from stylebridge.pipelines.featureshift.render import uint8_to_images
from stylebridge.plugins.losses.recon import resize_images


def _log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _one_pass(env: Env, out: Path, **kw: Any) -> dict[str, Any]:
    """One joint-phase ``_forward`` of a set-up trainer: its values, and the rows it rendered."""
    cfg = tiny_cfg(env, out, pretrain_inversion_steps=0, domain_inversion_losses=["mse:0.2"],
                   **kw)
    trainer = fs.FeatureShiftTrainer(cfg, registry=make_registry())
    trainer.setup()
    seen: dict[str, Any] = {}
    render = trainer._render

    def spy(model: Any, parts: dict[str, Any]) -> Any:
        images, shifted = render(model, parts)
        seen.update(parts=parts, images=images.detach())
        return images, shifted

    trainer._render = spy  # type: ignore[method-assign]
    data = trainer._next_batch()
    total, values = trainer._forward(data, 0)
    assert total is not None and total.requires_grad
    real = uint8_to_images(data["image"])
    return {"values": values, "real": real, "b": data["w_real"].shape[0], **seen}


def _mse(images: torch.Tensor, real: torch.Tensor) -> float:
    return float(F.mse_loss(resize_images(images, real.shape[-1]).float(), real.float()))


# -- the domain-inversion image -----------------------------------------------------------------


def test_domain_branch_compares_the_domain_output_with_the_photo(env: Env, tmp_path: Path
                                                                 ) -> None:
    got = _one_pass(env, tmp_path / "d", domain_inversion_source="domain-branch")
    b, images, real = got["b"], got["images"], got["real"]
    # no third slice: the pass renders the inversion and the domain rows only
    assert got["parts"]["features"].shape[0] == images.shape[0] == 2 * b
    assert "dom_real" not in got["parts"]
    # the loss is the domain rows' output (what the domain loss reads) against the photo
    value = got["values"]["domain-inversion/mse"]
    assert value == pytest.approx(_mse(images[b:2 * b], real), rel=1e-5)
    assert got["values"]["domain/mse"] == pytest.approx(
        _mse(images[b:2 * b], got["parts"]["target"]), rel=1e-5)
    assert value != pytest.approx(_mse(images[:b], real), rel=1e-3)  # not the inversion rows


def test_inference_stays_the_default_with_its_third_slice(env: Env, tmp_path: Path) -> None:
    assert fs.TrainConfig(data="d", generator="g", out="o").domain_inversion_source == "inference"
    got = _one_pass(env, tmp_path / "i")
    b, images, real = got["b"], got["images"], got["real"]
    assert images.shape[0] == 3 * b and "dom_real" in got["parts"]
    value = got["values"]["domain-inversion/mse"]
    assert value == pytest.approx(_mse(images[2 * b:], real), rel=1e-5)
    assert value != pytest.approx(_mse(images[b:2 * b], real), rel=1e-3)


def test_the_source_is_recorded_and_a_resume_with_the_other_is_refused(env: Env, tmp_path: Path
                                                                      ) -> None:
    kw = dict(pretrain_inversion_steps=1, steps=3, checkpoint_every=2,
              domain_inversion_losses=["mse:0.2"], domain_inversion_source="domain-branch")
    registry = make_registry()

    class Stop(Exception):
        pass

    def stop(trainer: fs.FeatureShiftTrainer) -> None:
        if trainer.step == 2:
            raise Stop

    with pytest.raises(Stop):
        fs.train_featureshift(tiny_cfg(env, tmp_path / "run", **kw), registry=registry,
                              on_step=stop)
    state = tmp_path / "run" / "state.safetensors"
    assert read_header(state).extra["train_config"]["domain_inversion_source"] == "domain-branch"
    with pytest.raises(StylebridgeError, match=r"different settings \(--domain-inversion-source"
                                               r"\): --domain-inversion-source domain-branch "
                                               r"then, inference now; resume with the same"):
        fs.train_featureshift(tiny_cfg(env, tmp_path / "run", resume=True, **{
            **kw, "domain_inversion_source": "inference"}), registry=registry)
    result = fs.train_featureshift(tiny_cfg(env, tmp_path / "run", resume=True, **kw),
                                   registry=registry)
    assert result.step == 3
    steps = [r for r in _log(tmp_path / "run" / "log.jsonl") if "total" in r]
    assert ["domain-inversion/mse" in r for r in steps] == [False, True, True]
    model = read_header(tmp_path / "run" / "model.safetensors").extra["train_config"]
    assert model["domain_inversion_source"] == "domain-branch"


def test_the_command_line_option(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    train_cli.add_train_arguments(parser)
    base = ["--data", "d", "--generator", str(tmp_path / "g.safetensors"), "--out", "o"]
    assert train_cli.config_from_args(parser.parse_args(base)).domain_inversion_source == \
        "inference"
    args = parser.parse_args([*base, "--domain-inversion-source", "domain-branch"])
    assert train_cli.config_from_args(args).domain_inversion_source == "domain-branch"
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--domain-inversion-source", "photo"])
    helps = {a.dest: a.help for a in parser._actions}
    text = " ".join(helps["domain_inversion_source"].split())
    assert "inference (default)" in text and "domain-branch =" in text
    assert "10000" in helps["adversarial_after"] and "pretrain-inversion-steps 0" in \
        helps["adversarial_after"]
    with pytest.raises(StylebridgeError, match="--domain-inversion-source 'photo': expected "
                                               "inference or domain-branch"):
        fs.TrainConfig(data="d", generator="g", out="o", domain_inversion_source="photo").validate()


# -- the adversarial start ----------------------------------------------------------------------


def test_adversarial_start_is_a_fixed_10000_steps(env: Env, tmp_path: Path) -> None:
    cfg = fs.TrainConfig(data="d", generator="g", out="o", pretrain_inversion_steps=0)
    assert cfg.adversarial_start() == 10_000
    assert fs.TrainConfig(data="d", generator="g", out="o",
                          pretrain_inversion_steps=50_000).adversarial_start() == 10_000
    assert fs.TrainConfig(data="d", generator="g", out="o", pretrain_inversion_steps=0,
                          adversarial_after=3).adversarial_start() == 3
    # the thesis' 70-domain setting: no pre-training; the term is still absent at the start
    run = tmp_path / "run"
    trainer = fs.FeatureShiftTrainer(tiny_cfg(env, run, pretrain_inversion_steps=0,
                                              steps=10_001, adversarial=0.01),
                                     registry=make_registry())
    trainer.setup()
    (term,) = [t for t in trainer.loss_sets["inversion"] if t.name == "adversarial"]
    assert (term.after, term.active(9_999), term.active(10_000)) == (10_000, False, True)
    # a run that ends before step 10000 does not build the term (nor load a discriminator)
    fs.train_featureshift(tiny_cfg(env, tmp_path / "run2", pretrain_inversion_steps=0, steps=2,
                                   adversarial=0.01), registry=make_registry())
    steps = [r for r in _log(tmp_path / "run2" / "log.jsonl") if "total" in r]
    assert [r["phase"] for r in steps] == ["joint", "joint"]
    assert not any("inversion/adversarial" in r for r in steps)
    config = read_header(tmp_path / "run2" / "state.safetensors").extra["train_config"]
    assert (config["adversarial_after"], config["adversarial_after_default"]) == (None, 10_000)


def _as_written_before(state: Path) -> None:
    """Rewrite a state's header as the code before the two options wrote it: no
    ``adversarial_after_default`` nor ``domain_inversion_source``, ``adversarial_after`` unset."""
    header, tensors = load_checkpoint(state)
    extra = dict(header.extra)
    config = {k: v for k, v in extra["train_config"].items()
              if k not in ("adversarial_after_default", "domain_inversion_source")}
    extra["train_config"] = {**config, "adversarial_after": None}
    save_checkpoint(state, tensors, kind=header.kind, plugin=header.plugin,
                    config=header.config, extra=extra)


def test_a_state_written_before_keeps_its_adversarial_start(env: Env, tmp_path: Path) -> None:
    """A pre-change run with --pretrain-inversion-steps 0 had the term on from step 0: its
    resume continues so, bit for bit as an uninterrupted run with that start."""
    kw = dict(pretrain_inversion_steps=0, steps=4, checkpoint_every=2, adversarial=0.01,
              domain_inversion_losses=["mse:0.2"])
    registry = make_registry()
    fs.train_featureshift(tiny_cfg(env, tmp_path / "a", adversarial_after=0, **kw),
                          registry=registry)

    class Stop(Exception):
        pass

    def stop(trainer: fs.FeatureShiftTrainer) -> None:
        if trainer.step == 2:
            raise Stop

    with pytest.raises(Stop):
        fs.train_featureshift(tiny_cfg(env, tmp_path / "b", adversarial_after=0, **kw),
                              registry=registry, on_step=stop)
    state = tmp_path / "b" / "state.safetensors"
    _as_written_before(state)
    said: list[str] = []
    result = fs.train_featureshift(tiny_cfg(env, tmp_path / "b", resume=True, **kw),
                                   registry=registry, progress=lambda e: said.append(
                                       f"{e.kind}: {e.text}"))
    assert result.step == 4
    assert any(s.startswith("notice: ") and "keeps the start it was begun with, step 0" in s
               for s in said)
    a, b = (load_file(tmp_path / r / "model.safetensors") for r in ("a", "b"))
    assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)
    steps = [r for r in _log(tmp_path / "b" / "log.jsonl") if "total" in r]
    assert all("inversion/adversarial" in r for r in steps) and len(steps) == 4
    # the state it wrote keeps the old reading: a second resume continues the same way
    config = read_header(state).extra["train_config"]
    assert (config["adversarial_after"], config["adversarial_after_default"]) == (None, None)
    assert config["domain_inversion_source"] == "inference"
