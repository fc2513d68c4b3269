"""Domain trainers (``train domain``, ``hyperdomain``, ``mindthegap``): a ``--resume`` refusal
names the first option that differs in one short line; the prompts file's ``Target - Source``
lines are split on a hyphen between spaces, a line with an empty part is refused naming its
line; the RANDOM CLIP WEIGHTS notice tells a random weights file from no file, and a domain
trained through random CLIP lists ``CLIP`` in its ``random_parts``; loss options naming files
are inputs ``--out`` never overwrites; ``train mindthegap`` refuses a loss that cannot train
what its ``--phase`` trains.

Tiny 32 px generator, tiny CLIPs on random weights (tests of the machinery, not of domains).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from conftest import tiny_generator
from torch import Tensor

from stylebridge.cli.main import main
from stylebridge.core.checkpoint import read_header
from stylebridge.core.interfaces import Loss, LossBatch
from stylebridge.core.stylegan2.checkpoint import save_stylegan2
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines import train_domain as td
from stylebridge.pipelines import train_hyperdomain as th
from stylebridge.pipelines import train_mindthegap as mtg
from stylebridge.pipelines.presets import TinyPreset, build_tiny_preset, write_tiny_clips
from stylebridge.pipelines.training.options import input_files
from stylebridge.plugins.domains.mindthegap import MindTheGap
from stylebridge.registry import hookimpl

pytestmark = pytest.mark.usefixtures("no_weights_one_thread")


@pytest.fixture(scope="module")
def preset(tmp_path_factory: pytest.TempPathFactory) -> TinyPreset:
    return build_tiny_preset(tmp_path_factory.mktemp("tiny"), seed=0)



def _generator(tmp_path: Path) -> Path:
    path = tmp_path / "g.safetensors"
    if not path.exists():
        save_stylegan2(path, tiny_generator())
    return path


def _hyper(tmp_path: Path, **kw: Any) -> th.HyperDomainTrainConfig:
    base: dict[str, Any] = dict(
        generator=str(_generator(tmp_path)), out=tmp_path / "net.safetensors",
        prompt_list=["a pixar render - Photo", "zombie"], templates="none", steps=1, batch=2,
        width=16, inner=16, allow_random_clip=True, sample_every=0, checkpoint_every=0,
        device="cpu")
    base.update(kw)
    return th.HyperDomainTrainConfig(**base)


def _mindthegap(preset: TinyPreset, out: Path, **kw: Any) -> mtg.MindTheGapConfig:
    base: dict[str, Any] = dict(
        reference=preset.images / "photo0.png", generator=str(preset.generator), out=out,
        encoder=f"e4e:{preset.e4e}", allow_random_lpips=True, steps=1, batch=2, lr=0.01,
        clip=list(preset.clip_weights),
        clip_weights=[f"{k}={v}" for k, v in preset.clip_weights.items()],
        sample_every=0, checkpoint_every=0, device="cpu")
    base.update(kw)
    return mtg.MindTheGapConfig(**base)


# ---------------------------------------------------------------------------------------------
# 1. --resume with another option: the first option that differs, in a few words


def test_first_difference_narrows_long_values_to_the_part_that_differs() -> None:
    from stylebridge.pipelines.training.state import first_difference

    config = {f"key{i}": i for i in range(20)}
    then = {"method": {"plugin": "m", "config": {**config, "width": 16}}, "lr": 0.1,
            "prompts": [["a", "Photo"], ["b", "Photo"]] * 20}
    now = {"lr": 0.1, "method": {"plugin": "m", "config": {**config, "width": 32}},
           "prompts": then["prompts"]}
    assert first_difference(then, now) == ("method.config.width", "16", "32")
    # a method's config is derived from the options: compared after them
    now2 = {**now, "lr": 0.2}
    assert first_difference(then, now2, last=("method",)) == ("lr", "0.1", "0.2")
    # a longer list: the first member one of them lacks
    now3 = {**then, "prompts": [*then["prompts"], ["c", "Photo"]]}
    assert first_difference(then, now3) == ("prompts[40]", "(none)", '["c", "Photo"]')
    # short values are shown whole; equal readings are the same
    assert first_difference({"batch": 2}, {"batch": 3}) == ("batch", "2", "3")
    assert first_difference({"losses": ["mse:1"]}, {"losses": ["mse:1.0"]},
                            canonical=lambda k, v: [float(s.split(":")[1]) for s in v]) is None
    assert first_difference({"a": 1}, {"a": 1}) is None


def test_hyperdomain_resume_refusal_names_the_option(tmp_path: Path, fake_clips: None) -> None:
    th.train_hyperdomain(_hyper(tmp_path))
    state = tmp_path / "net.train-state.safetensors"
    with pytest.raises(StylebridgeError) as info:
        th.train_hyperdomain(_hyper(tmp_path, steps=2, resume=True, width=32))
    message = str(info.value)
    assert message.startswith(f"{state}: cannot resume with different settings: --width 16 "
                              "then, 32 now; "), message
    assert len(message) < 300 and "backbone_depth" not in message   # not the whole config
    with pytest.raises(StylebridgeError) as info:
        th.train_hyperdomain(_hyper(tmp_path, steps=2, resume=True,
                                    prompt_list=["a pixar render - Photo", "a sketch"]))
    assert ('cannot resume with different settings: --prompts item 2 ["zombie", "Photo"] then, '
            '["a sketch", "Photo"] now; ') in str(info.value)


def test_mindthegap_resume_refusal_names_the_phase(preset: TinyPreset, tmp_path: Path) -> None:
    out = tmp_path / "m.safetensors"
    mtg.train_mindthegap(_mindthegap(preset, out))
    with pytest.raises(StylebridgeError) as info:
        mtg.train_mindthegap(_mindthegap(preset, out, steps=2, resume=True, phase="shape"))
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'm.train-state.safetensors'}: cannot resume with "
                              'different settings: --phase "default" then, "shape" now; '), \
        message
    assert len(message) < 300 and "layers" not in message


# ---------------------------------------------------------------------------------------------
# 2. The prompts file: `Target` or `Target - Source`


def test_prompts_split_on_a_spaced_hyphen_and_bad_lines_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "prompts.txt"
    path.write_text("\ufeffPixar - Photo\nSpider-Man - Human\nSketch\t-\tPhoto\nZombie\n",
                    encoding="utf-8")
    assert th.read_prompts(path) == [("Pixar", "Photo"), ("Spider-Man", "Human"),
                                     ("Sketch", "Photo"), ("Zombie", "Photo")]
    for line, missing in ((" - Photo", "target"), ("Pixar -", "source"), ("-", "target")):
        path.write_text(f"# comment\n{line}\nZombie\n", encoding="utf-8")
        with pytest.raises(StylebridgeError) as info:
            th.read_prompts(path)
        assert str(info.value) == (f"{path}: line 2: {line.strip()!r} has no {missing} "
                                   "(expected 'Target' or 'Target - Source')")
    with pytest.raises(StylebridgeError, match=r"prompt ' - Photo' has no target"):
        th.train_hyperdomain(_hyper(tmp_path, prompt_list=[" - Photo"]))


# ---------------------------------------------------------------------------------------------
# 3. Random CLIP: the notice's words, and random_parts


def _train_text_domain(tmp_path: Path, out: str, name: str, clip_weights: list[str],
                       allow_random: bool) -> tuple[Path, list[str]]:
    events: list[Any] = []
    cfg = td.DomainTrainConfig(
        generator=str(_generator(tmp_path)), out=tmp_path / out, text="a sketch",
        templates="none", steps=1, batch=2, clip=[name], clip_weights=clip_weights,
        allow_random_clip=allow_random, sample_every=0, checkpoint_every=0, device="cpu")
    td.train_domain(cfg, progress=events.append)
    return cfg.out, [e.text + e.detail for e in events if e.kind == "notice"]


def test_random_clip_notice_and_random_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", "400")   # `info`'s table on one line
    files = write_tiny_clips(tmp_path / "clip")
    name = "tiny-vit-p16"
    out, notices = _train_text_domain(tmp_path, "a.safetensors", name,
                                      [f"{name}={files[name]}"], allow_random=False)
    assert notices == [f"RANDOM CLIP WEIGHTS: {name} from {files[name]}, a file of random "
                       "weights; the result is not a real domain (tests only)"]
    header = read_header(out).extra
    # the generator is a real one (no random metadata): CLIP is what makes the domain random
    assert header["random_weights"] is True and header["random_parts"] == ["CLIP"]
    assert main(["info", str(out)]) == 0
    assert "trained on random-weight inputs (CLIP)" in " ".join(capsys.readouterr().out.split())
    out, notices = _train_text_domain(tmp_path, "b.safetensors", name, [], allow_random=True)
    assert notices == [f"RANDOM CLIP WEIGHTS: {name} without weights; the result is not a "
                       "real domain (tests only)"]
    assert read_header(out).extra["random_parts"] == ["CLIP"]


# ---------------------------------------------------------------------------------------------
# 4. Loss options that name files are inputs


def test_loss_option_files_are_inputs(tmp_path: Path) -> None:
    backbone = tmp_path / "vgg.pth"
    backbone.write_bytes(b"weights")
    found = input_files({}, losses=["clip_direction:1", f"lpips:0.8:backbone={backbone}",
                                    f"lpips:0.2:backbone={backbone},allow_random=true",
                                    "lpips:0.1:backbone=missing.pth", "mse:1:after=2"])
    assert found == {"--loss lpips backbone": backbone, "--loss lpips#2 backbone": backbone}


def test_out_never_overwrites_a_loss_option_file(tmp_path: Path, fake_clips: None,
                                                 preset: TinyPreset) -> None:
    out = tmp_path / "d.safetensors"
    out.write_bytes(b"a backbone")
    cfg = td.DomainTrainConfig(generator=str(_generator(tmp_path)), out=out, text="a sketch",
                               losses=["clip_direction:1", f"lpips:0.8:backbone={out}"],
                               force=True, device="cpu")
    with pytest.raises(StylebridgeError) as info:
        td.train_domain(cfg)
    assert str(info.value) == (f"{out}: is the --loss lpips backbone input; --out {out} would "
                               "overwrite it: choose another --out (--force never overwrites "
                               "an input)")
    assert out.read_bytes() == b"a backbone"
    # a file the run writes beside --out counts too (hyperdomain's training state)
    state = tmp_path / "net.train-state.safetensors"
    state.write_bytes(b"kept")
    with pytest.raises(StylebridgeError, match=r"is the --loss lpips backbone input; --out .* "
                                               r"\(it writes net\.train-state\.safetensors"):
        th.train_hyperdomain(_hyper(tmp_path, force=True,
                                    losses=[f"lpips:1:backbone={state}"]))
    assert state.read_bytes() == b"kept"
    # and mindthegap's reference picture
    png = tmp_path / "m_reference.png"
    png.write_bytes(b"a picture")
    with pytest.raises(StylebridgeError, match="is the --loss mtg_ref_lpips backbone input"):
        mtg.train_mindthegap(_mindthegap(preset, tmp_path / "m.safetensors", force=True,
                                         losses=[f"mtg_ref_lpips:10:backbone={png}"]))
    assert png.read_bytes() == b"a picture"


# ---------------------------------------------------------------------------------------------
# 5. train mindthegap: a loss that cannot train what --phase trains


class SourceOnly(Loss):
    """A plugin loss reading the frozen source only: nothing mindthegap trains reaches it."""

    name = "test-source-only"
    requires: ClassVar[frozenset[str]] = frozenset({"source", "clip_guide"})

    def forward(self, batch: LossBatch) -> Tensor:
        return batch.require("source", self.name).square().mean()


@hookimpl
def register_losses(register: Any) -> None:
    register(SourceOnly)


def test_mindthegap_refuses_a_loss_its_phase_cannot_train(preset: TinyPreset, tmp_path: Path,
                                                          registered: None) -> None:
    out = tmp_path / "m.safetensors"
    with pytest.raises(StylebridgeError) as info:
        mtg.train_mindthegap(_mindthegap(preset, out, phase="shape",
                                         losses=["clip_direction:1", "test-source-only:1"]))
    assert str(info.value) == (
        "loss 'test-source-only' (from tests) reads clip_guide, source, none of which train "
        "mindthegap --phase shape changes (output, reference_output, styles): it cannot train it")
    # refused before the reference is inverted: nothing written
    assert not any(tmp_path.glob("m*"))
    # the trainer itself refuses it too (the Python API), naming its phase
    gen = tiny_generator()
    method = MindTheGap.for_generator(gen, layers=[0, 2, 3])
    reference = torch.zeros(1, 3, gen.size, gen.size)
    w_ref = gen.make_wplus(torch.zeros(1, gen.style_dim), input_is_latent=True)
    with pytest.raises(StylebridgeError, match=r"loss 'source-only' reads clip_guide, source, "
                                               r"none of which train mindthegap --phase texture"):
        mtg.MindTheGapTrainer(gen, method, [("source-only", 1.0, SourceOnly())],
                              td.TrainSettings(steps=1), reference=reference, w_ref=w_ref,
                              out=tmp_path / "x.safetensors", phase="texture",
                              guide=object())  # type: ignore[arg-type]
