"""A trained domain's checkpoint says how it was trained: ``extra.train_config``.

Before, two ``train domain`` runs with ``--seed 0`` / ``--seed 1`` (or ``--batch 4`` /
``--batch 2``) wrote headers that differed only in their loss values: the settings were only
in the separate ``.train-state`` file.  Now the header records the whole run (options with
their defaults as applied, absolute paths, the sha256s of the generator and CLIP weights),
``stylebridge info`` shows it, and a checkpoint written without it still loads.  Tiny preset
(random weights), a step or two per run.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from stylebridge.cli.main import main
from stylebridge.core.checkpoint import load_checkpoint, read_header, save_checkpoint
from stylebridge.pipelines import train_domain as td
from stylebridge.pipelines.presets import TINY_CLIPS, TinyPreset, build_tiny_preset
from stylebridge.pipelines.training.state import file_sha256
from stylebridge.registry import get_registry

CLIP = "tiny-vit-p8"


pytestmark = pytest.mark.usefixtures("no_weights_one_thread")


@pytest.fixture(scope="module")
def preset(tmp_path_factory: pytest.TempPathFactory) -> TinyPreset:
    return build_tiny_preset(tmp_path_factory.mktemp("tiny"), seed=0)


def _relative(path: Path) -> str:
    return os.path.relpath(path, Path.cwd())


def _text_cfg(preset: TinyPreset, out: Path, **kw: Any) -> td.DomainTrainConfig:
    """A text run given with paths relative to the working folder."""
    base: dict[str, Any] = dict(
        generator=_relative(preset.generator), out=Path(_relative(out)), text="a pixar render",
        templates="none", steps=2, clip=[CLIP],
        clip_weights=[f"{CLIP}={_relative(preset.clip_weights[CLIP])}"], sample_every=0,
        checkpoint_every=0, device="cpu", force=True)
    base.update(kw)
    return td.DomainTrainConfig(**base)


def test_the_header_records_the_whole_run_and_tells_seeds_and_batches_apart(
        preset: TinyPreset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    runs = {"seed0": {}, "seed1": {"seed": 1}, "batch2": {"batch": 2}}
    configs = {}
    for name, kw in runs.items():
        cfg = _text_cfg(preset, tmp_path / f"{name}.safetensors", **kw)
        td.train_domain(cfg)
        configs[name] = read_header(tmp_path / f"{name}.safetensors").extra["train_config"]

    got = configs["seed0"]
    clip_file = preset.clip_weights[CLIP]
    # the options as given, the defaults the text target left open as applied
    # (TEXT_DEFAULTS: lr 0.05, batch 4, mixing 0.9, no warm-up, every layer trained)
    assert {k: got[k] for k in ("text", "source_text", "templates", "method", "steps", "seed",
                                "batch", "lr", "betas", "mixing", "warmup_steps",
                                "warmup_start_lr", "freeze_layers", "losses", "clip")} == {
        "text": "a pixar render", "source_text": "Human", "templates": "none",
        "method": "stylespace", "steps": 2, "seed": 0, "batch": 4, "lr": 0.05,
        "betas": [0.9, 0.999], "mixing": 0.9, "warmup_steps": 0, "warmup_start_lr": 0.001,
        "freeze_layers": [], "losses": ["clip_direction:1.0"], "clip": [CLIP]}
    assert got["loss_configs"] == {"clip_direction": {"reduction": "sum"}}
    # files: absolute paths and their content
    assert got["generator"] == str(preset.generator.absolute())
    assert got["generator_sha256"] == file_sha256(preset.generator)
    # the architecture too: a model registered by --clip-config is rebuilt from the record
    assert got["clip_weights"] == {CLIP: {"path": str(clip_file.absolute()),
                                          "sha256": file_sha256(clip_file),
                                          "config": TINY_CLIPS[CLIP]}}
    # how the command was started is not what was trained
    assert not {"out", "resume", "force", "device"} & set(got)
    assert json.loads(json.dumps(got)) == got

    # the runs differ in their headers by what differed in the command
    assert {k for k in got if got[k] != configs["seed1"][k]} == {"seed"}
    assert configs["seed1"]["seed"] == 1
    assert {k for k in got if got[k] != configs["batch2"][k]} == {"batch"}
    assert configs["batch2"]["batch"] == 2

    # `stylebridge info` shows it with the rest of the header
    assert main(["info", str(tmp_path / "batch2.safetensors"), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["extra"]["train_config"] == configs["batch2"]


def test_an_image_run_records_its_reference_and_frozen_layers(
        preset: TinyPreset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    image = sorted(preset.images.glob("*.png"))[0]
    cfg = _text_cfg(preset, tmp_path / "img.safetensors", text=None, image=Path(_relative(image)),
                    losses=["clip_direction:1", "difa_local:0.5:layer=0"], source_samples=4,
                    freeze_layers="0,2", warmup_steps=1, steps=1)
    td.train_domain(cfg)
    got = read_header(tmp_path / "img.safetensors").extra["train_config"]
    assert got["image"] == str(image.absolute()) and got["image_sha256"] == file_sha256(image)
    assert got["source_text"] is None and got["text"] is None
    # IMAGE_DEFAULTS where nothing was given: DiFa's lr, batch and mixing
    assert (got["lr"], got["batch"], got["mixing"], got["warmup_steps"]) == (0.08, 2, 0.0, 1)
    assert got["freeze_layers"] == [0, 2]
    assert got["losses"] == ["clip_direction:1", "difa_local:0.5:layer=0"]
    assert got["loss_configs"]["difa_local"]["layer"] == 0
    assert got["source_samples"] == 4


def test_the_same_seeded_run_elsewhere_writes_the_same_tensors_and_train_config(
        preset: TinyPreset, tmp_path: Path) -> None:
    """The record changes no tensor: two runs of one seeded command into other folders give
    equal tensors and equal ``train_config`` (``--out`` is not part of it)."""
    outs = [tmp_path / "a" / "d.safetensors", tmp_path / "b" / "d.safetensors"]
    for out in outs:
        out.parent.mkdir()
        td.train_domain(replace(_text_cfg(preset, out), out=out, batch=2))
    (ha, ta), (hb, tb) = (load_checkpoint(out) for out in outs)
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
    assert any(float(t.abs().max()) > 0 for t in ta.values())
    assert ha.extra["train_config"] == hb.extra["train_config"]


def test_a_domain_checkpoint_without_train_config_still_loads_and_continues(
        preset: TinyPreset, tmp_path: Path) -> None:
    new = tmp_path / "new.safetensors"
    td.train_domain(replace(_text_cfg(preset, new), out=new, batch=2, steps=1))
    header, tensors = load_checkpoint(new)
    old = tmp_path / "old.safetensors"   # as an earlier stylebridge wrote it
    extra = {k: v for k, v in header.extra.items() if k != "train_config"}
    save_checkpoint(old, tensors, kind=header.kind, plugin=header.plugin, config=header.config,
                    extra=extra)
    method = get_registry().load("domain_method", old)
    assert all(torch.equal(method.state_dict()[k], tensors[k]) for k in tensors)
    more = tmp_path / "more.safetensors"   # a run continued from it records its own
    td.train_domain(replace(_text_cfg(preset, more), out=more, method=str(old), batch=2,
                            steps=1))
    assert read_header(more).extra["train_config"]["method"] == str(old.absolute())


def test_hyperdomain_and_mindthegap_record_theirs(preset: TinyPreset, tmp_path: Path) -> None:
    from stylebridge.pipelines.train_hyperdomain import train_tiny_hyperdomain
    from stylebridge.pipelines.train_mindthegap import train_tiny_mindthegap

    hyper = read_header(train_tiny_hyperdomain(preset, tmp_path / "h.safetensors",
                                               ["a pixar render", "a sketch"], steps=1,
                                               seed=3)).extra["train_config"]
    name = sorted(preset.clip_weights)[0]
    assert (hyper["steps"], hyper["batch"], hyper["seed"], hyper["width"]) == (1, 2, 3, 64)
    assert hyper["prompt_pairs"] == [["a pixar render", "Photo"], ["a sketch", "Photo"]]
    assert hyper["mapper_clip"] == hyper["clip"] == [name]
    assert hyper["clip_weights"][name]["sha256"] == file_sha256(preset.clip_weights[name])
    assert hyper["generator_sha256"] == file_sha256(preset.generator)

    image = sorted(preset.images.glob("*.png"))[0]
    gap = read_header(train_tiny_mindthegap(
        preset.generator, image, tmp_path / "m.safetensors", encoder=f"e4e:{preset.e4e}",
        clip_weights=preset.clip_weights, steps=1)).extra["train_config"]
    assert gap["reference"] == str(image.absolute())
    assert gap["reference_sha256"] == file_sha256(image)
    assert gap["encoder"] == f"e4e:{preset.e4e.absolute()}"
    assert (gap["steps"], gap["batch"], gap["seed"]) == (1, 2, 0)
    assert gap["betas"] == [0.0, 0.99 ** (4 / 5)]   # MindTheGap's defaults
    assert isinstance(gap["mix_from"], int)
    assert gap["generator_sha256"] == file_sha256(preset.generator)


def test_paths_in_recorded_specs_are_absolute(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative path anywhere in a spec is recorded absolute; a loss option's
    (`backbone=weights/alex.pth`) stayed relative."""
    from stylebridge.pipelines.training.state import absolute_spec

    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights").mkdir()
    for name in ("alex.pth", "g.safetensors", "clip.safetensors"):
        (tmp_path / "weights" / name).write_bytes(b"x")
    w = tmp_path / "weights"
    assert absolute_spec("weights/g.safetensors") == str(w / "g.safetensors")
    assert absolute_spec("ViT-B-32=weights/clip.safetensors") == \
        f"ViT-B-32={w / 'clip.safetensors'}"
    assert absolute_spec("e4e:weights/g.safetensors:size=256") == \
        f"e4e:{w / 'g.safetensors'}:size=256"
    assert absolute_spec("lpips:0.8:backbone=weights/alex.pth,net=alex") == \
        f"lpips:0.8:backbone={w / 'alex.pth'},net=alex"
    assert absolute_spec(["clip_direction:1.0", "a pixar render", "weights/missing.pth"]) == \
        ["clip_direction:1.0", "a pixar render", "weights/missing.pth"]  # as given
