"""A domain trainer's ``--resume`` refusal names the command-line option that differs, its
values as ``train featureshift`` shows them (``--lr 0.05 then, 0.1 now``), narrowed to the
member of a dict or list that differs (``--source-text``, not the whole ``target``).

Before: ``the run used target={"source_text": "Human", ...}, this command has target=...``
and ``the run used lr=0.05, this command has lr=0.1`` (field names, whole dicts).

Tiny preset, tiny CLIPs on random weights (the machinery, not domains).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_domain_trainer_fixes import _hyper, _mindthegap

from stylebridge.cli.main import main
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines import train_domain as td
from stylebridge.pipelines import train_hyperdomain as th
from stylebridge.pipelines import train_mindthegap as mtg
from stylebridge.pipelines.presets import TinyPreset, build_tiny_preset

pytestmark = pytest.mark.usefixtures("no_weights_one_thread")

ADVICE = "; give the interrupted run's options, or start over with --force (or another --out)"


@pytest.fixture(scope="module")
def preset(tmp_path_factory: pytest.TempPathFactory) -> TinyPreset:
    return build_tiny_preset(tmp_path_factory.mktemp("tiny"), seed=0)


def _domain_cfg(preset: TinyPreset, out: Path, **kw: Any) -> td.DomainTrainConfig:
    base: dict[str, Any] = dict(
        generator=str(preset.generator), out=out, text="a sketch", templates="imagenet",
        steps=1, batch=2, clip=["a"], allow_random_clip=True, sample_every=0,
        checkpoint_every=1, device="cpu")
    base.update(kw)
    return td.DomainTrainConfig(**base)


def _refused(train: Any, cfg: Any) -> str:
    with pytest.raises(StylebridgeError) as info:
        train(cfg)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_option_labels_name_the_option_and_the_member() -> None:
    from stylebridge.pipelines.training.fingerprint import RESUME_OPTIONS, option_label

    assert option_label("lr", RESUME_OPTIONS) == "--lr"
    assert option_label("target.source_text", RESUME_OPTIONS) == "--source-text"
    assert option_label("clip_weights.ViT-B-32", RESUME_OPTIONS) == "--clip-weights ViT-B-32"
    assert option_label("prompts[2]", {"prompts": "--prompts"}) == "--prompts item 3"
    # no option gives it (the Python API's field, a method's config): its name
    assert option_label("betas", RESUME_OPTIONS) == "betas"
    assert option_label("method.config.rank", RESUME_OPTIONS) == "method.config.rank"


def test_train_domain_names_source_text_text_and_lr(preset: TinyPreset, tmp_path: Path,
                                                    fake_clips: None) -> None:
    out = tmp_path / "d.safetensors"
    td.train_domain(_domain_cfg(preset, out))
    state = tmp_path / "d.train-state.safetensors"
    again = dict(steps=2, resume=True)
    assert _refused(td.train_domain, _domain_cfg(preset, out, source_text="Person", **again)) \
        == (f'{state}: cannot resume with different settings: --source-text "Human" then, '
            f'"Person" now{ADVICE}')
    said = _refused(td.train_domain, _domain_cfg(preset, out, text="a pencil sketch", **again))
    assert said == (f'{state}: cannot resume with different settings: --text "a sketch" then, '
                    f'"a pencil sketch" now{ADVICE}')
    said = _refused(td.train_domain, _domain_cfg(preset, out, templates="none", **again))
    assert said.endswith(f': --templates "imagenet" then, "none" now{ADVICE}'), said
    said = _refused(td.train_domain, _domain_cfg(preset, out, lr=0.1, **again))
    assert said == f"{state}: cannot resume with different settings: --lr 0.05 then, 0.1 now{ADVICE}"
    assert "target" not in said
    # the same options resume
    assert td.train_domain(_domain_cfg(preset, out, **again)).step == 2


def test_train_domain_cli_names_the_option(preset: TinyPreset, tmp_path: Path,
                                           fake_clips: None,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "d.safetensors"
    args = ["train", "domain", "--text", "a sketch", "--generator", str(preset.generator),
            "--out", str(out), "--batch", "2", "--clip", "a", "--allow-random-clip",
            "--sample-every", "0", "--device", "cpu"]
    assert main([*args, "--steps", "1"]) == 0
    capsys.readouterr()
    code = main([*args, "--steps", "2", "--resume", "--source-text", "Person"])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2
    assert error.endswith(': cannot resume with different settings: --source-text "Human" then, '
                          f'"Person" now{ADVICE}'), error


def test_hyperdomain_names_lr_and_an_inverted_flag(tmp_path: Path, fake_clips: None) -> None:
    th.train_hyperdomain(_hyper(tmp_path, lr=0.01))
    state = tmp_path / "net.train-state.safetensors"
    said = _refused(th.train_hyperdomain, _hyper(tmp_path, lr=0.02, steps=2, resume=True))
    assert said == f"{state}: cannot resume with different settings: --lr 0.01 then, 0.02 now{ADVICE}"
    said = _refused(th.train_hyperdomain,
                    _hyper(tmp_path, lr=0.01, convex=False, steps=2, resume=True))
    assert said.endswith(": convex (--no-convex) true then, false now" + ADVICE), said


def test_mindthegap_names_its_options_and_keeps_a_field_without_one(
        preset: TinyPreset, tmp_path: Path) -> None:
    out = tmp_path / "m.safetensors"
    mtg.train_mindthegap(_mindthegap(preset, out))
    state = tmp_path / "m.train-state.safetensors"
    again = dict(steps=2, resume=True)
    said = _refused(mtg.train_mindthegap, _mindthegap(preset, out, lr=0.02, **again))
    assert said == f"{state}: cannot resume with different settings: --lr 0.01 then, 0.02 now{ADVICE}"
    # options the domain's config holds: narrowed to the one that differs
    said = _refused(mtg.train_mindthegap, _mindthegap(preset, out, mix_from=2, **again))
    assert said.endswith(": --mix-from 3 then, 2 now" + ADVICE), said
    said = _refused(mtg.train_mindthegap, _mindthegap(preset, out, mix=False, **again))
    assert said.endswith(": mix (--no-mix) true then, false now" + ADVICE), said
    said = _refused(mtg.train_mindthegap, _mindthegap(preset, out, betas=(0.5, 0.99), **again))
    assert said.endswith(f": betas {json.dumps(list(mtg.DEFAULT_BETAS))} then, [0.5, 0.99] now"
                         + ADVICE), said


def test_train_domain_resumes_a_moved_reference_image(preset: TinyPreset, tmp_path: Path,
                                                      fake_clips: None) -> None:
    """``--image`` is compared by its sha256: the same picture copied elsewhere resumes (it
    was refused: ``--image "/a/photo0.png" then, "/b/copy.png" now``); other pixels under the
    same path are refused by the sha256."""
    import shutil

    out = tmp_path / "d.safetensors"
    image = dict(text=None, templates="none", image=preset.images / "photo0.png",
                 losses=["clip_direction:1"])
    td.train_domain(_domain_cfg(preset, out, **image))
    moved = tmp_path / "moved" / "copy.png"
    moved.parent.mkdir()
    shutil.copyfile(preset.images / "photo0.png", moved)
    again = dict(image, steps=2, resume=True, image=moved)
    assert td.train_domain(_domain_cfg(preset, out, **again)).step == 2
    shutil.copyfile(preset.images / "photo1.png", moved)
    said = _refused(td.train_domain, _domain_cfg(preset, out, **dict(again, steps=3)))
    assert said.startswith(f"{tmp_path / 'd.train-state.safetensors'}: cannot resume with "
                           'different settings: --image (sha256) "'), said
