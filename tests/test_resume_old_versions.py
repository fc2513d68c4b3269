# ruff: noqa: F811  (the `env` fixture of test_featureshift is imported and used as a parameter)
"""Files written by earlier stylebridge versions, used with this one.

The domain trainers' ``--resume`` read a setting an old train-state lacks as the value that
version behaved with (or leave it uncompared when nothing can be known): before, a state
written before ``generator_sha256``/``clip_weights`` (``train domain``) or ``phase`` (``train
mindthegap``) were recorded, or with ``train hyperdomain``'s CLIP weights as
``"random"``/``"file"``, was refused as ``X=(none)`` with advice that could not work; a default
that changed is named with the option that gives the old one.  Every train state records the
stylebridge and torch versions, and a resume of a state of other versions (or of none) says,
once, that it continues not necessarily bit for bit.  The eval journal of an earlier version
and the reproduce journal that did not record its CPU threads say only what works.

The old files are made as the old code wrote them: a state of this version with its header
(and optimiser layout) rewritten.  Tiny preset, tiny CLIPs on random weights.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from test_featureshift import Env, env, make_registry, tiny_cfg  # noqa: F401  (fixtures)

from stylebridge import __version__
from stylebridge.core.checkpoint import load_checkpoint, read_header, save_checkpoint
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines import train_domain as td
from stylebridge.pipelines import train_hyperdomain as th
from stylebridge.pipelines import train_mindthegap as mtg
from stylebridge.pipelines.featureshift import trainer as fs
from stylebridge.pipelines.presets import TinyPreset, build_tiny_preset
from stylebridge.pipelines.reproduce import journal as J
from stylebridge.pipelines.training import domain as dom
from stylebridge.pipelines.training.progress import ProgressEvent
from stylebridge.registry.resolve import load_generator

pytestmark = pytest.mark.usefixtures("no_weights_one_thread")

EARLIER = "resuming a state of an earlier stylebridge (it records no version)"
NOT_BIT_FOR_BIT = ": it continues, but not necessarily bit for bit"


@pytest.fixture(scope="module")
def preset(tmp_path_factory: pytest.TempPathFactory) -> TinyPreset:
    return build_tiny_preset(tmp_path_factory.mktemp("tiny"), seed=0)


def _rewrite(path: Path, kind: str, edit: Callable[[dict[str, Any], dict[str, Any]], None]
             ) -> None:
    """Write the state at ``path`` again with ``edit(extra, tensors)`` applied."""
    header, tensors = load_checkpoint(path, kind=kind)
    extra = json.loads(json.dumps(header.extra))
    edit(extra, tensors)
    save_checkpoint(path, tensors, kind=header.kind, plugin=header.plugin, config=header.config,
                    extra=extra)


def _version_notices(events: list[ProgressEvent]) -> list[str]:
    return [e.text + (e.detail or "") for e in events
            if e.kind == "notice" and (e.text or "").startswith("resuming a state")]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)[1]


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# -- train domain: a state of 39cb7e1 (no file digests, text default = --indomain) ----------


def _domain(preset: TinyPreset, out: Path, steps: int, *, resume: bool,
            events: list[ProgressEvent] | None = None, **kw: Any) -> Any:
    return td.train_domain(td.DomainTrainConfig(
        generator=str(preset.generator), out=out, text="a pixar render", templates="none",
        steps=steps, batch=2, clip=["a"], allow_random_clip=True, sample_every=0,
        checkpoint_every=1, device="cpu", resume=resume, force=not resume, **kw),
        progress=None if events is None else events.append)


def _as_39cb7e1(preset: TinyPreset, state: Path) -> None:
    """The state as 39cb7e1 wrote it: no generator/CLIP digests in the fingerprint, no
    threads, losses or versions, and an optimiser entry for every trainable parameter (the
    frozen layers' change was held at zero then: their entries stayed zero)."""
    generator = load_generator(str(preset.generator), "cpu")[0]
    method = td.build_domain_method("stylespace", generator)
    frozen = set(read_header(state).extra["fingerprint"]["freeze_layers"])
    every = [p for p in method.parameters() if p.requires_grad]
    held = {id(p) for p in method.layer_parameters(frozen)}
    assert held and len(held) < len(every)

    def edit(extra: dict[str, Any], tensors: dict[str, Any]) -> None:
        for key in ("generator_sha256", "clip_weights"):
            del extra["fingerprint"][key]
        for key in ("software", "cpu_threads", "last_losses"):
            extra.pop(key, None)
        trained = {k: tensors.pop(k) for k in [k for k in tensors if k.startswith("optim.")]}
        j = 0
        for i, p in enumerate(every):
            if id(p) in held:
                tensors.update({f"optim.{i}.step": trained["optim.0.step"].clone(),
                                f"optim.{i}.exp_avg": torch.zeros_like(p),
                                f"optim.{i}.exp_avg_sq": torch.zeros_like(p)})
            else:
                tensors.update({f"optim.{i}.{name}": trained[f"optim.{j}.{name}"]
                                for name in ("step", "exp_avg", "exp_avg_sq")})
                j += 1

    _rewrite(state, dom.STATE_KIND, edit)


def test_a_domain_state_of_before_the_file_digests_resumes_and_says_it_is_not_exact(
        preset: TinyPreset, tmp_path: Path, fake_clips: None) -> None:
    """Before: `cannot resume: the run used generator_sha256=(none), this command has
    generator_sha256="c4b1…"; give the interrupted run's options` (no option gives it)."""
    ref = tmp_path / "ref"
    _domain(preset, ref / "d.safetensors", 2, resume=False, indomain=True)
    old = _copy(ref, tmp_path / "old")
    _as_39cb7e1(preset, td.state_path_for(old / "d.safetensors"))

    events: list[ProgressEvent] = []   # this version's state: nothing said of versions
    assert _domain(preset, ref / "d.safetensors", 3, resume=True, events=events,
                   indomain=True).step == 3
    assert _version_notices(events) == []
    events.clear()
    assert _domain(preset, old / "d.safetensors", 3, resume=True, events=events,
                   indomain=True).step == 3
    notices = _version_notices(events)
    assert len(notices) == 1 and notices[0].startswith(EARLIER + NOT_BIT_FOR_BIT), notices
    # the old optimiser layout: the frozen layers' entries dropped, the rest as this version's
    assert _weights(old / "d.safetensors").keys() == _weights(ref / "d.safetensors").keys()
    for key, value in _weights(ref / "d.safetensors").items():
        assert torch.equal(_weights(old / "d.safetensors")[key], value), key
    # resumed by this version, the states record it
    for run in (ref, old):
        assert read_header(td.state_path_for(run / "d.safetensors")).extra["software"] == {
            "stylebridge": __version__, "torch": str(torch.__version__)}


def test_a_text_run_begun_under_the_old_default_is_told_to_give_indomain(
        preset: TinyPreset, tmp_path: Path, fake_clips: None) -> None:
    """Before: `the run used generator_sha256=(none)`; given the digests, `losses=[...] ...;
    give the interrupted run's options` (the run was given none: its default changed)."""
    out = tmp_path / "d.safetensors"
    _domain(preset, out, 2, resume=False, indomain=True)
    state = td.state_path_for(out)
    _as_39cb7e1(preset, state)
    with pytest.raises(StylebridgeError) as info:
        _domain(preset, out, 3, resume=True)
    said = str(info.value)
    assert said == (
        f"{state}: cannot resume with different settings: --loss [\"clip_direction:1.0\", "
        "\"indomain:0.25\"] then, [\"clip_direction:1.0\"] now; that was the "
        "default when the run began (an earlier stylebridge): give --indomain to resume it, "
        "or start over with --force (or another --out)")
    # with the losses given, the frozen layers are the default that changed
    with pytest.raises(StylebridgeError, match=r"--freeze-layers \[0, .*\] then, \[\] now; "
                       r"that was the default when the run began \(an "
                       r"earlier stylebridge\): give --freeze-layers coarse to resume it"):
        _domain(preset, out, 3, resume=True, losses=["clip_direction:1", "indomain:0.25"])
    # a setting the state lacks and nothing says what it was: no advice that cannot work
    _rewrite(state, dom.STATE_KIND, lambda extra, _: extra["fingerprint"].pop("seed"))
    with pytest.raises(StylebridgeError) as info:
        _domain(preset, out, 3, resume=True, indomain=True)
    said = str(info.value)
    assert said == (f"{state}: cannot resume: the state records no --seed (an earlier "
                    "stylebridge wrote it, before that setting was kept) and what the run used "
                    "cannot be known; start over with --force (or another --out)")


# -- train mindthegap: a state of before --phase was recorded (85ef785) ---------------------


def _mindthegap(preset: TinyPreset, out: Path, steps: int, *, resume: bool,
                **kw: Any) -> Any:
    return mtg.train_mindthegap(mtg.MindTheGapConfig(
        reference=preset.images / "photo0.png", generator=str(preset.generator), out=out,
        encoder=f"e4e:{preset.e4e}", losses=["clip_direction:1", "mtg_ref_l2:10"], clip=["a"],
        allow_random_clip=True, steps=steps, batch=2, lr=0.01, sample_every=0,
        checkpoint_every=1, device="cpu", resume=resume, force=not resume, **kw))


def test_a_mindthegap_state_of_before_the_phase_was_recorded_resumes_with_its_phase(
        preset: TinyPreset, tmp_path: Path, fake_clips: None) -> None:
    """Before: `the run used phase=(none), this command has phase="default"`, also with
    --phase default, the only phase such a run could have had with its layers."""
    ref = tmp_path / "ref"
    _mindthegap(preset, ref / "m.safetensors", 2, resume=False)
    old = _copy(ref, tmp_path / "old")
    state = td.state_path_for(old / "m.safetensors")

    def edit(extra: dict[str, Any], _: Any) -> None:
        del extra["fingerprint"]["phase"]
        extra.pop("software", None)

    _rewrite(state, dom.STATE_KIND, edit)
    with pytest.raises(StylebridgeError) as info:   # another phase: named as an option
        _mindthegap(preset, old / "m.safetensors", 3, resume=True, phase="shape")
    assert str(info.value).startswith(f"{state}: cannot resume with different settings: "
                                      "--phase \"default\" then, \"shape\" now; "), str(info.value)
    for run in (ref, old):
        assert _mindthegap(preset, run / "m.safetensors", 3, resume=True,
                           phase="default").step == 3
    for key, value in _weights(ref / "m.safetensors").items():
        assert torch.equal(_weights(old / "m.safetensors")[key], value), key


# -- train hyperdomain: CLIP weights recorded as "random"/"file" (before cc6519f) -----------


def _hyper(preset: TinyPreset, out: Path, steps: int, *, resume: bool) -> Any:
    clip = sorted(preset.clip_weights)[0]
    return th.train_hyperdomain(th.HyperDomainTrainConfig(
        generator=str(preset.generator), out=out, prompt_list=["a pixar render", "zombie"],
        templates="none", steps=steps, batch=2, width=16, inner=16, clip=[clip],
        mapper_clip=[clip], clip_weights=[f"{clip}={preset.clip_weights[clip]}"],
        sample_every=0, checkpoint_every=1, device="cpu", resume=resume, force=not resume))


def test_a_hyperdomain_state_with_the_earlier_clip_record_resumes(
        preset: TinyPreset, tmp_path: Path) -> None:
    """Before: `the run used clip_weights={"tiny-vit-p16": "random"}, this command has
    {"tiny-vit-p16": "4284…"}` for the same file of random weights."""
    out = tmp_path / "net.safetensors"
    _hyper(preset, out, 2, resume=False)
    state = td.state_path_for(out)
    clip = sorted(preset.clip_weights)[0]

    def as_written(record: str) -> Callable[[dict[str, Any], Any], None]:
        def edit(extra: dict[str, Any], _: Any) -> None:
            extra["fingerprint"]["clip_weights"] = {clip: record}
            for key in ("software", "cpu_threads", "last_losses"):
                extra.pop(key, None)
        return edit

    saved = state.read_bytes()
    _rewrite(state, dom.STATE_KIND, as_written("file"))   # real weights then, random now
    with pytest.raises(StylebridgeError, match=rf"--clip-weights {{\"{clip}\": \"file\"}} "
                       rf"then, {{\"{clip}\": \"[0-9a-f]{{12}}…\"}} now; give the interrupted "
                       r"run's options"):
        _hyper(preset, out, 3, resume=True)
    state.write_bytes(saved)
    _rewrite(state, dom.STATE_KIND, as_written("random"))   # the file's random weights
    assert _hyper(preset, out, 3, resume=True).step == 3


# -- train featureshift: the versions recorded, a state of none said so ---------------------


def test_a_featureshift_state_records_its_versions_and_one_of_others_says_so_once(
        env: Env, tmp_path: Path) -> None:
    """Before: a 39cb7e1 state resumed silently, 6.7e-6 off the old uninterrupted run."""
    out = tmp_path / "run"
    fs.train_featureshift(tiny_cfg(env, out, steps=2, pretrain_inversion_steps=1),
                          registry=make_registry())
    state = out / "state.safetensors"
    assert read_header(state).extra.get("software") == {"stylebridge": __version__,
                                                        "torch": str(torch.__version__)}
    for software, words in ((None, EARLIER),
                            ({"stylebridge": "0.0.9", "torch": str(torch.__version__)},
                             f"resuming a state written by stylebridge 0.0.9 (this is "
                             f"stylebridge {__version__})"),
                            ({"stylebridge": __version__, "torch": "2.0.0"},
                             f"resuming a state written with torch 2.0.0 (this run has torch "
                             f"{torch.__version__})")):
        def edit(extra: dict[str, Any], _: Any, software: Any = software) -> None:
            extra["software"] = software

        _rewrite(state, "featureshift_state", edit)
        events: list[ProgressEvent] = []
        steps = read_header(state).extra["step"] + 1
        fs.train_featureshift(tiny_cfg(env, out, steps=steps, pretrain_inversion_steps=1,
                                       resume=True),
                              registry=make_registry(), progress=events.append)
        notices = _version_notices(events)
        assert len(notices) == 1 and notices[0].startswith(words + NOT_BIT_FOR_BIT), notices
    events = []   # written by this version: nothing said
    fs.train_featureshift(tiny_cfg(env, out, steps=steps + 1, pretrain_inversion_steps=1,
                                   resume=True),
                          registry=make_registry(), progress=events.append)
    assert _version_notices(events) == []


# -- the journals --------------------------------------------------------------------------


def test_an_eval_journal_of_an_earlier_version_offers_only_what_works(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Before: `... lists its pairs in another form (an earlier stylebridge); give the files
    of the interrupted evaluation, or run without --resume` (no files can help)."""
    import numpy as np
    from PIL import Image

    from stylebridge.cli.main import main
    from stylebridge.plugins.metrics.image import MSEMetric

    pred, target = tmp_path / "pred", tmp_path / "target"
    for folder, level in ((pred, 100), (target, 90)):
        folder.mkdir()
        for i in range(4):
            Image.fromarray(np.full((16, 16, 3), level + i, np.uint8)).save(folder / f"p{i}.png")
    real, calls = MSEMetric.update, [0]

    def update(self: Any, *args: Any, **kwargs: Any) -> None:
        calls[0] += 1
        if calls[0] == 2:
            raise KeyboardInterrupt
        real(self, *args, **kwargs)

    args = ["eval", "-m", "mse", "--pred", str(pred), "--target", str(target), "--batch", "2",
            "--json", str(tmp_path / "r.json")]
    with monkeypatch.context() as m:
        m.setattr(MSEMetric, "update", update)
        assert main(args) == 130
    inputs = next(tmp_path.glob(".stylebridge-run-r.json/inputs.json"))
    # as ccae0b8 wrote it: the prediction paths alone
    inputs.write_text(json.dumps([str(p) for p in sorted(pred.iterdir())]), encoding="utf-8")
    capsys.readouterr()
    assert main([*args, "--resume"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err == ("error: --resume: the interrupted evaluation's journal lists its pairs in "
                   "another form (an earlier stylebridge wrote it), which this version cannot "
                   "continue; run without --resume to start over (another --json/--csv keeps "
                   "the interrupted run's journal)")


def test_a_reproduce_journal_that_did_not_record_threads_is_not_read_as_none(
        tmp_path: Path) -> None:
    """Before: `--resume: CPU threads 2 (was none): ... not bit for bit`, as if the earlier
    part had run without threads."""
    out = tmp_path / "tables"
    settings = {"--seed": 0}
    old = J.open_rows(out, "reproduce thesis-tables", settings, resume=False, unit="row",
                      how={"--batch": 4, "--device": "cpu"})   # as 7d1acea kept it
    old.record({"key": "orig", "values": [1.0]}, [])
    now = {"--batch": 4, "--device": "cpu", J.CPU_THREADS: 2}
    journal = J.open_rows(out, "reproduce thesis-tables", settings, resume=True, unit="row",
                          how=now)
    assert list(journal.kept) == ["orig"]
    assert journal.notices == ["--resume: CPU threads 2 (not recorded by the earlier "
                               "stylebridge that began the run): the remaining rows agree with "
                               "an uninterrupted run's within floating-point rounding, not "
                               "necessarily bit for bit"]
    journal.record({"key": "e4e", "values": [2.0]}, [])
    assert journal.how == now   # kept from this part on
    # a part on a GPU records no threads: another device, said as before
    gpu = J.open_rows(tmp_path / "gpu", "reproduce thesis-tables", settings, resume=False,
                      unit="row", how={"--batch": 4, "--device": "cuda"})
    gpu.record({"key": "orig", "values": [1.0]}, [])
    again = J.open_rows(tmp_path / "gpu", "reproduce thesis-tables", settings, resume=True,
                        unit="row", how=now)
    assert again.notices == ["--resume: --device cpu (was cuda), CPU threads 2 (was none): the "
                             "remaining rows agree with an uninterrupted run's within "
                             "floating-point rounding, not bit for bit"]
