"""``--out`` of the domain trainers: never a folder, never one of the run's input files
(``--force`` or not), refused in one line before anything loads; the loss-field message
names what the trainer can fill."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import tiny_generator
from PIL import Image

from stylebridge.cli.main import main
from stylebridge.core.stylegan2.checkpoint import save_stylegan2
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines import train_mindthegap as mtg
from stylebridge.pipelines.training.domain import check_run_out


@pytest.fixture(autouse=True)
def _home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "home"))  # no installed weights


def _error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def _domain_argv(gen: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "domain", "--text", "a pixar render", "--templates", "none",
            "--generator", str(gen), "--out", str(out), "--steps", "2", "--batch", "2",
            "--checkpoint-every", "1", "--sample-every", "0", "--device", "cpu", *extra]


def test_check_run_out_sees_through_links(tmp_path: Path) -> None:
    src = tmp_path / "in.safetensors"
    src.write_bytes(b"input")
    link = tmp_path / "link.safetensors"
    os.symlink(src, link)
    hard = tmp_path / "hard.safetensors"
    os.link(src, hard)
    for out in (src, link, hard, tmp_path / "sub" / ".." / "in.safetensors"):
        with pytest.raises(StylebridgeError, match="is the --generator input"):
            check_run_out(out, resume=False, force=True, inputs={"--generator": src})
    # the training state beside --out counts too
    state = tmp_path / "run.train-state.safetensors"
    state.write_bytes(b"state")
    with pytest.raises(StylebridgeError, match=r"it writes run\.train-state\.safetensors"):
        check_run_out(tmp_path / "run.safetensors", resume=False, force=True,
                      inputs={"--prompts": state})
    assert src.read_bytes() == b"input" and state.read_bytes() == b"state"
    assert check_run_out(tmp_path / "new.safetensors", resume=False, force=False,
                         inputs={"--generator": src, "--image": None}) \
        == tmp_path / "new.train-state.safetensors"


def test_train_domain_never_overwrites_its_generator_or_encoder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gen = save_stylegan2(tmp_path / "g2.safetensors", tiny_generator())
    before = gen.read_bytes()
    line = _error_line(capsys, _domain_argv(gen, gen, "--force"))
    assert "g2.safetensors: is the --generator input" in line, line
    enc = tmp_path / "e.safetensors"
    enc.write_bytes(b"encoder")
    line = _error_line(capsys, _domain_argv(gen, enc, "--force", "--encoder", f"e4e:{enc}"))
    assert "is the --encoder input" in line, line
    assert gen.read_bytes() == before and enc.read_bytes() == b"encoder"
    assert not (tmp_path / "g2.train-state.safetensors").exists()


def test_train_domain_out_folder_is_refused_before_training(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gen = save_stylegan2(tmp_path / "g.safetensors", tiny_generator())
    (tmp_path / "adir").mkdir()
    line = _error_line(capsys, _domain_argv(gen, tmp_path / "adir", "--force",
                                            "--allow-random-clip"))
    assert "adir: is a folder" in line, line
    assert not (tmp_path / "adir.train-state.safetensors").exists()
    assert list((tmp_path / "adir").iterdir()) == []


def test_train_domain_lists_the_clip_fields_it_can_fill(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gen = save_stylegan2(tmp_path / "g.safetensors", tiny_generator())
    line = _error_line(capsys, _domain_argv(gen, tmp_path / "d.safetensors", "--loss", "mse:1"))
    assert "which train domain does not provide" in line, line
    provided = line.split("it provides: ")[1].rstrip(")").split(", ")
    assert {"clip_guide", "text", "output", "styles"} <= set(provided), line


def test_train_mindthegap_never_overwrites_its_reference(tmp_path: Path) -> None:
    gen = save_stylegan2(tmp_path / "g.safetensors", tiny_generator())
    ref = tmp_path / "m_reference.png"
    Image.new("RGB", (8, 8), (200, 10, 10)).save(ref)
    before = ref.read_bytes()
    for out in ("m.safetensors", "m_reference.png"):
        cfg = mtg.MindTheGapConfig(reference=ref, generator=str(gen), out=tmp_path / out,
                                   refine_steps=1, allow_random_lpips=True,
                                   allow_random_clip=True, steps=1, batch=1, force=True,
                                   device="cpu")
        with pytest.raises(StylebridgeError, match="is the reference input"):
            mtg.train_mindthegap(cfg)
    cfg = mtg.MindTheGapConfig(reference=ref, generator=str(gen), out=gen, refine_steps=1,
                               force=True, device="cpu")
    with pytest.raises(StylebridgeError, match="is the --generator input"):
        mtg.train_mindthegap(cfg)
    assert ref.read_bytes() == before
    assert {p.name for p in tmp_path.iterdir()} - {"home"} == {"g.safetensors",
                                                               "m_reference.png"}
