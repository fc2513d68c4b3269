"""A trained domain records the sha256 of the generator file it was trained on; applied to
another generator file (adapt, generate, render, the Adapter, the web app's runs) it is said
in one line, a MindTheGap domain (a weight difference) in stronger words.  Domains without
the record (older files, converted ones) load with no note.  Tiny 32 px preset, one step."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from conftest import one_torch_thread

from stylebridge.cli.main import main
from stylebridge.core.checkpoint import load_checkpoint, read_header, save_checkpoint
from stylebridge.core.interfaces import Inversion
from stylebridge.core.stylegan2.checkpoint import load_stylegan2, save_stylegan2
from stylebridge.pipelines import adapter as adapter_mod
from stylebridge.pipelines import train_domain as td
from stylebridge.pipelines import train_mindthegap as mtg
from stylebridge.pipelines.adapt import AdaptConfig, prepare_adapt
from stylebridge.pipelines.adapter import Adapter, domain_generator_notes
from stylebridge.pipelines.generate import GenerateConfig, generate
from stylebridge.pipelines.inversion_file import save_inversion
from stylebridge.pipelines.presets import TinyPreset, build_tiny_preset
from stylebridge.pipelines.render import RenderConfig, prepare_render, run_render
from stylebridge.pipelines.train_hyperdomain import train_tiny_hyperdomain
from stylebridge.pipelines.training.state import file_sha256
from stylebridge.registry.resolve import load_domain, load_generator, load_plugin

NOTE = "was trained on generator sha256"


@dataclass
class Files:
    preset: TinyPreset
    other: Path      # a generator of the same config, other weights
    domain: Path     # train domain (stylespace)
    mtg: Path        # train mindthegap
    hyper: Path      # train hyperdomain
    old: Path        # the domain with its header as older versions wrote it (no sha256)
    sha: str         # of the preset's generator file


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    root = tmp_path_factory.mktemp("identity")
    preset = build_tiny_preset(root / "tiny", seed=0)
    gen = load_stylegan2(preset.generator).generator
    with torch.no_grad():
        for p in gen.parameters():
            p.add_(0.01)
    (root / "other").mkdir()
    other = save_stylegan2(root / "other" / "other.safetensors", gen,
                           extra={"random_weights": True})
    clip = sorted(preset.clip_weights)[0]
    domain = root / "pixar.safetensors"
    td.train_domain(td.DomainTrainConfig(
        generator=str(preset.generator), out=domain, text="a pixar render", templates="none",
        steps=1, batch=2, clip=[clip], clip_weights=[f"{clip}={preset.clip_weights[clip]}"],
        allow_random_clip=True, sample_every=0, checkpoint_every=0, device="cpu"))
    gap = root / "gap.safetensors"
    mtg.train_mindthegap(mtg.MindTheGapConfig(
        reference=preset.images / "photo0.png", generator=str(preset.generator), out=gap,
        encoder=f"e4e:{preset.e4e}", steps=1, batch=2, losses=["mtg_ref_l2:1"],
        sample_every=0, checkpoint_every=0, device="cpu"))
    hyper = train_tiny_hyperdomain(preset, root / "hyper.safetensors", ["a - b"], steps=1)
    header, tensors = load_checkpoint(domain)
    old = root / "old.safetensors"
    save_checkpoint(old, tensors, kind=header.kind, plugin=header.plugin, config=header.config,
                    extra={k: v for k, v in header.extra.items() if k != "generator_sha256"})
    return Files(preset, other, domain, gap, hyper, old, file_sha256(preset.generator))


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, " ".join((out + err).split())   # rich wraps long lines


def test_every_trainer_records_the_generator_sha256(files: Files) -> None:
    for path, trainer in ((files.domain, "domain"), (files.mtg, "mindthegap"),
                          (files.hyper, "hyperdomain")):
        extra = read_header(path).extra
        assert extra["trainer"] == f"stylebridge train {trainer}"
        assert extra["generator_sha256"] == files.sha
        assert extra["generator"] == str(files.preset.generator)   # still there


def test_generate_cli_notes_another_generator_only(files: Files, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    base = ["generate", "--seeds", "0", "--device", "cpu", "--compile", "off"]
    code, out = _cli(capsys, *base, "-g", str(files.other), "-m", str(files.domain),
                     "--out", str(tmp_path / "a"))
    assert code == 0, out
    assert (f"domain pixar.safetensors {NOTE} {files.sha[:8]}… (generator.safetensors), not "
            f"on the one loaded (other.safetensors, sha256 {file_sha256(files.other)[:8]}…): "
            "its edits may not mean the same") in out
    assert json.loads((tmp_path / "a" / "generate.json").read_text())["notes"]
    # the generator it was trained on: nothing to say; an older domain file: nothing either
    for gen, domain, name in ((files.preset.generator, files.domain, "b"),
                              (files.other, files.old, "c")):
        code, out = _cli(capsys, *base, "-g", str(gen), "-m", str(domain),
                         "--out", str(tmp_path / name))
        assert code == 0, out
        assert NOTE not in out
        assert "notes" not in json.loads((tmp_path / name / "generate.json").read_text())


def test_mindthegap_on_another_generator_is_said_as_a_weight_difference(
        files: Files, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _cli(capsys, "generate", "--seeds", "0", "--device", "cpu", "--compile", "off",
                     "-g", str(files.other), "-m", str(files.mtg), "--out", str(tmp_path / "g"))
    assert code == 0, out
    assert f"domain gap.safetensors {NOTE} {files.sha[:8]}…" in out
    assert "it is a weight difference against that generator (MindTheGap)" in out


def test_adapt_and_render_cli_say_it(files: Files, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    photo = files.preset.images / "photo0.png"
    base = ["adapt", "-e", f"e4e:{files.preset.e4e}", "--no-align", "--device", "cpu",
            "--compile", "off", str(photo)]
    code, out = _cli(capsys, *base, "-g", str(files.other), "-m", str(files.domain),
                     "--out", str(tmp_path / "a"), "--save-latents")
    assert code == 0, out
    assert f"domain pixar.safetensors {NOTE} {files.sha[:8]}…" in out
    assert json.loads((tmp_path / "a" / "adapt.json").read_text())["notes"]
    code, out = _cli(capsys, *base, "-g", str(files.preset.generator), "-m", str(files.domain),
                     "--out", str(tmp_path / "b"))
    assert code == 0, out
    assert NOTE not in out
    assert "notes" not in json.loads((tmp_path / "b" / "adapt.json").read_text())
    # render: the generator defaults to the one the inversion records (the other one)
    latents = tmp_path / "a" / "photo0_inversion.safetensors"
    code, out = _cli(capsys, "render", str(latents), "-m", str(files.domain), "--device", "cpu",
                     "--compile", "off", "--out", str(tmp_path / "r"))
    assert code == 0, out
    assert f"domain pixar.safetensors {NOTE} {files.sha[:8]}…" in out
    code, out = _cli(capsys, "render", str(latents), "-m", str(files.domain), "-g",
                     str(files.preset.generator), "--device", "cpu", "--compile", "off",
                     "--out", str(tmp_path / "s"))
    assert code == 0, out
    assert NOTE not in out


def test_python_api_and_pipelines(files: Files, tmp_path: Path) -> None:
    other, _ = load_generator(str(files.other))
    same, _ = load_generator(str(files.preset.generator))
    encoder = load_plugin("encoder", f"e4e:{files.preset.e4e}")
    domain, old = load_domain(str(files.domain)), load_domain(str(files.old))
    notes = Adapter(encoder, other, {"pixar": domain, "old": old}).notes
    assert len(notes) == 1 and notes[0].startswith(f"domain pixar.safetensors {NOTE}")
    assert "\n" not in notes[0]
    assert Adapter(encoder, same, [domain, old]).notes == []
    result = generate(GenerateConfig(generator=str(files.other), out=tmp_path / "g",
                                     seeds="0", methods=[str(files.domain)], device="cpu",
                                     compile="off"))
    assert result.notes == notes
    photo = files.preset.images / "photo0.png"
    job = prepare_adapt(AdaptConfig(images=[photo], align=False, device="cpu",
                                    encoder=f"e4e:{files.preset.e4e}",
                                    generator=str(files.other), methods=[str(files.domain)],
                                    out=tmp_path / "a", compile="off"))
    assert job.adapter.notes == notes and notes[0] in job.journal.notices
    w = other.make_wplus(torch.randn(1, other.style_dim, generator=torch.Generator()
                                     .manual_seed(0)))
    latents = save_inversion(tmp_path / "x_inversion.safetensors", Inversion(w_plus=w),
                             encoder="e4e", encoder_spec=f"e4e:{files.preset.e4e}",
                             generator=files.other)
    for gen, expect in ((files.other, notes), (files.preset.generator, [])):
        job = prepare_render(RenderConfig(latents=[latents], methods=[str(files.domain)],
                                          out=tmp_path / "r", generator=str(gen),
                                          device="cpu", compile="off"))
        assert job.adapter.notes == expect and set(expect) <= set(job.notes)
        if expect:
            assert run_render(job).notes == job.notes


def test_generator_is_hashed_once_when_loaded(files: Files, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Hashed once, when it is loaded (run records name what was loaded, not a file copied
    over it since): the notes hash nothing more, however many domains ask."""
    from stylebridge.registry import file_hashes

    calls: list[Path] = []
    real = file_hashes.file_sha256

    def counting(path: str | Path) -> str:
        calls.append(Path(path))
        return real(path)

    monkeypatch.setenv(file_hashes.CACHE_ENV, "off")  # no hash cached on disk
    monkeypatch.setattr(file_hashes, "file_sha256", counting)
    monkeypatch.setattr(file_hashes, "_KNOWN", {})
    monkeypatch.setattr(file_hashes, "_LOADED", {})
    monkeypatch.setattr(adapter_mod, "_SHA256", {})
    other, _ = load_generator(str(files.other))
    assert calls == [files.other]
    assert domain_generator_notes([load_domain(str(files.old))], other) == []
    domain = load_domain(str(files.domain))
    first = domain_generator_notes([domain], other)
    second = domain_generator_notes([domain], other)
    assert first == second and len(first) == 1
    assert calls == [files.other, files.old, files.domain]  # each file once, when loaded
