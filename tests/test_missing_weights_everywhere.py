"""``calibrate``, ``analyze latents``/``shift-norms``, ``reproduce thesis-tables``,
``generate`` and ``train domain``/``hyperdomain``/``mindthegap`` on a fresh install: every
official download a run loads by name (generator, encoders, domains, losses, CLIP models)
is named in one line before anything loads (``registry.needed``, as ``adapt``/``eval`` do),
after the cheap checks, and ``--fetch`` / ``--accept-licence`` get them (against a local
HTTP server on 127.0.0.1).

Before: each command stopped at the first missing download (the generator, then the encoder,
then each domain; CLIP in a message of its own) and had no ``--fetch``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from test_eval_missing_weights import NOT_INSTALLED, _help
from test_needed_weights import _gets, empty_home, served  # noqa: F401  (fixtures)
from test_weights_sources import _Server

from stylebridge.cli.commands import analyze, reproduce, train, train_hyperdomain
from stylebridge.cli.commands import train_mindthegap as mtg_cli
from stylebridge.cli.commands.adapt import AdaptCommand
from stylebridge.cli.commands.calibrate import CalibrateCommand
from stylebridge.cli.commands.generate import GenerateCommand
from stylebridge.cli.main import main
from stylebridge.errors import StylebridgeError
from stylebridge.registry.needed import Missing, MissingWeightsError

FETCH = "; or add --fetch to this command\n"
GEN = "stylegan2-ffhq-1024 (for --generator stylegan2)"
FSE = "fse-ffhq (for --encoder fse; fetches psp-ffhq first)"
GATED = " (all under non-commercial licences, shown before download)"


@pytest.fixture
def fresh(empty_home: Path, tmp_path: Path,  # noqa: F811  (the imported fixture)
          monkeypatch: pytest.MonkeyPatch) -> Path:
    """No weights installed (weights and torch hub caches empty); two photos in ./photos."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.chdir(tmp_path)
    photos = tmp_path / "photos"
    photos.mkdir()
    for stem in ("a", "b"):
        Image.new("RGB", (16, 16), (40, 80, 120)).save(photos / f"{stem}.png")
    return photos


def _refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The one line ``main`` printed when it refused ``argv`` (exit 2, nothing on stdout)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert (code, out, err.count("\n")) == (2, "", 1), (code, out, err)
    return err


# ---------------------------------------------------------------------------------------------
# one line naming every download, on the real manifest


def test_calibrate_and_analyze_name_generator_encoders_and_domains_at_once(
        fresh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: `stylegan2-ffhq-1024` alone; once fetched, the encoder; then each domain."""
    assert _refused(capsys, "calibrate", "alpha", "--encoder", "fse", "--images", str(fresh),
                    "--out", "c.safetensors") == (
        f"{NOT_INSTALLED}{GEN}, {FSE}; run `stylebridge weights fetch stylegan2-ffhq-1024 "
        f"fse-ffhq`{GATED}{FETCH}")
    assert _refused(capsys, "analyze", "latents", "-e", "e4e", "-e", "fse", "--images",
                    str(fresh), "--out", "o", "-d", "pixar", "-m", "joker") == (
        f"{NOT_INSTALLED}{GEN}, e4e-ffhq (for --encoder e4e), {FSE}, pixar (for --domain "
        "pixar), joker (for --domain joker); run `stylebridge weights fetch "
        f"stylegan2-ffhq-1024 e4e-ffhq fse-ffhq pixar joker`{GATED}{FETCH}")
    assert _refused(capsys, "analyze", "shift-norms", "-e", "fse", "--images", str(fresh),
                    "--out", "o", "-d", "pixar") == (
        f"{NOT_INSTALLED}{GEN}, {FSE}, pixar (for --domain pixar); run `stylebridge weights "
        f"fetch stylegan2-ffhq-1024 fse-ffhq pixar`{GATED}{FETCH}")
    assert not Path("c.safetensors").exists() and not Path("o").exists()


def test_reproduce_names_generator_encoders_and_clip_models_at_once(
        fresh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: the CLIP models in a message of their own, the generator next, the e4e and FSE
    rows then skipped (or, given by name, failed) one note each."""
    Path("domains").mkdir()
    Path("domains/d.safetensors").write_bytes(b"not read before the downloads")
    argv = ["reproduce", "thesis-tables", "--images", str(fresh), "--domains", "domains",
            "--generator", "stylegan2", "--out", "rt"]
    assert _refused(capsys, *argv) == (
        f"{NOT_INSTALLED}{GEN}, e4e-ffhq (for --e4e (default) e4e), fse-ffhq (for --fse "
        "(default) fse; fetches psp-ffhq first), clip-vit-b-16 (for --clip (default) ViT-B-16), "
        "clip-vit-b-32 (for --clip (default) ViT-B-32); run `stylebridge weights fetch "
        "stylegan2-ffhq-1024 e4e-ffhq fse-ffhq clip-vit-b-16 clip-vit-b-32` (3 under "
        f"non-commercial licences, shown before download); or give --clip-weights MODEL=PATH (CLIP files you have){FETCH}")
    # --allow-random: the defaults missing run on random weights; what is named is still named
    assert _refused(capsys, *argv, "--allow-random", "--e4e", "e4e", "--clip", "ViT-B-32") == (
        f"{NOT_INSTALLED}{GEN}, e4e-ffhq (for --e4e e4e); run `stylebridge weights fetch "
        f"stylegan2-ffhq-1024 e4e-ffhq`{GATED}{FETCH}")
    assert not Path("rt").exists()



def test_generate_names_generator_and_domains_at_once(
        fresh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: `stylegan2-ffhq-1024` alone; once fetched, each domain; and no --fetch."""
    assert _refused(capsys, "generate", "-m", "pixar", "--method", "joker", "--out", "s") == (
        f"{NOT_INSTALLED}{GEN}, pixar (for --method pixar), joker (for --method joker); run "
        f"`stylebridge weights fetch stylegan2-ffhq-1024 pixar joker`{GATED}{FETCH}")
    assert not Path("s").exists()


def test_build_dataset_names_generator_encoders_and_domains_at_once(
        fresh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: `stylegan2-ffhq-1024` alone, then each encoder and domain; and no --fetch."""
    assert _refused(capsys, "featureshift", "build-dataset", "--images", str(fresh),
                    "--encoder", "fse", "--guide", "e4e", "--domains", "pixar,joker",
                    "--out", "ds") == (
        f"{NOT_INSTALLED}{GEN}, {FSE}, e4e-ffhq (for --guide "
        "e4e), pixar (for --domains pixar), joker (for --domains joker); run `stylebridge "
        f"weights fetch stylegan2-ffhq-1024 fse-ffhq e4e-ffhq pixar joker`{GATED}{FETCH}")
    assert not Path("ds").exists()
    with pytest.raises(SystemExit):
        main(["featureshift", "build-dataset", "--help"])
    assert "--fetch" in capsys.readouterr().out

def test_domain_trainers_name_generator_losses_encoder_and_clip_at_once(
        fresh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: the generator alone; then the losses; then the encoder; then each CLIP model."""
    assert _refused(capsys, "train", "domain", "--text", "a sketch", "--out", "d.safetensors",
                    "--encoder", "e4e", "--loss", "clip_direction:1", "--loss", "lpips:1") == (
        f"{NOT_INSTALLED}{GEN}, e4e-ffhq (for --encoder e4e), lpips-alex (for --loss lpips:1), "
        "clip-vit-b-32 (for --clip (default) ViT-B-32), clip-vit-b-16 (for --clip (default) "
        "ViT-B-16); run `stylebridge weights fetch stylegan2-ffhq-1024 e4e-ffhq lpips-alex "
        "clip-vit-b-32 clip-vit-b-16` (2 under non-commercial licences, shown before "
        f"download); or give --clip-weights MODEL=PATH (CLIP files you have){FETCH}")
    Path("prompts.txt").write_text("Pixar\nSketch - Photo\n")
    assert _refused(capsys, "train", "hyperdomain", "--prompts", "prompts.txt", "--out",
                    "h.safetensors", "--clip", "ViT-B-16", "--loss", "lpips:1") == (
        f"{NOT_INSTALLED}{GEN}, lpips-alex (for --loss lpips:1), clip-vit-b-32 (for "
        "--mapper-clip (default) ViT-B-32), clip-vit-b-16 (for --clip ViT-B-16); run "
        "`stylebridge weights fetch stylegan2-ffhq-1024 lpips-alex clip-vit-b-32 clip-vit-b-16` "
        f"(1 under non-commercial licences, shown before download); or give --clip-weights MODEL=PATH (CLIP files you have){FETCH}")
    photo = str(fresh / "a.png")
    assert _refused(capsys, "train", "mindthegap", photo, "--out", "m.safetensors",
                    "--encoder", "e4e") == (
        f"{NOT_INSTALLED}{GEN}, e4e-ffhq (for --encoder e4e), lpips-vgg (for --loss (default) "
        "mtg_ref_lpips:10), clip-vit-b-32 (for --clip (default) ViT-B-32), clip-vit-b-16 (for "
        "--clip (default) ViT-B-16); run `stylebridge weights fetch stylegan2-ffhq-1024 "
        "e4e-ffhq lpips-vgg clip-vit-b-32 clip-vit-b-16` (2 under non-commercial licences, "
        "shown before download); or give --clip-weights MODEL=PATH (CLIP files you have); or add --fetch to this command; or give "
        "--lpips-backbone "
        "PATH (torchvision's vgg16-397923af.pth) for lpips-vgg\n")
    # the refinement's LPIPS is named too; random CLIP weights allowed: no CLIP download
    assert _refused(capsys, "train", "mindthegap", photo, "--out", "m.safetensors",
                    "--refine-steps", "3", "--loss", "mtg_ref_l2:1", "--allow-random-clip") == (
        f"{NOT_INSTALLED}{GEN}, lpips-vgg (for --refine-steps 3: mtg_ref_lpips:1); run "
        "`stylebridge weights fetch stylegan2-ffhq-1024 lpips-vgg` (1 under non-commercial "
        "licences, shown before download); or add --fetch to this command; or give "
        "--lpips-backbone PATH (torchvision's vgg16-397923af.pth) for lpips-vgg\n")
    assert not [p.name for p in Path().glob("*.safetensors")]


def test_the_cheap_checks_come_before_the_downloads(
        fresh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A typo, a missing input or a missing option is said first, not after a fetch."""
    Path("domains").mkdir()
    Path("domains/d.safetensors").write_bytes(b"x")
    cases = [
        (["calibrate", "alpha", "--encoder", "fse", "--images", "typo", "--out", "c.st"],
         "typo: no such file or directory"),
        (["analyze", "latents", "-e", "e5e", "--images", str(fresh), "--out", "o"],
         "unknown encoder 'e5e'; did you mean 'e4e'?"),
        (["analyze", "shift-norms", "-e", "fse", "--images", str(fresh), "--out", "o",
          "-d", "pixr"], "unknown domain method 'pixr'"),
        (["reproduce", "thesis-tables", "--images", str(fresh), "--domains", "domains",
          "--generator", "stylegan2", "--clip", "ViT-B-32", "--clip-weights", "ViT-B-23=x"],
         "--clip-weights names ['ViT-B-23'], which are not among --clip ['ViT-B-32']"),
        (["train", "domain", "--image", str(fresh / "a.png"), "--out", "d.safetensors"],
         "loss 'difa_w' compares encoder inversions of the images: give --encoder"),
        (["train", "domain", "--text", "x", "--out", "d.safetensors", "--clip-weights",
          "ViT-B-61=x"], "--clip-weights ViT-B-61=...: ViT-B-61 is not among the --clip "
                         "models (ViT-B-32, ViT-B-16)"),
        (["train", "mindthegap", str(fresh / "a.png"), "--out", "m.safetensors"],
         "give --encoder NAME:CKPT to invert the reference, or --refine-steps N"),
        (["train", "domain", "--text", "x", "--out", "d.safetensors", "--encoder", "e4e",
          "--accept-licence"], "--accept-licence applies with --fetch"),
    ]
    for argv, said in cases:
        err = _refused(capsys, *argv)
        assert err.startswith("error: ") and said in err and "not installed" not in err, err


def test_every_command_offers_fetch_as_adapt_does() -> None:
    adapt = _help(AdaptCommand())
    assert set(adapt) == {"--fetch", "--accept-licence"}
    for add in (analyze._add_latents_arguments, analyze._add_shift_norms_arguments,
                reproduce.add_thesis_tables_arguments, train.add_domain_arguments,
                train.add_train_arguments,
                train_hyperdomain.add_arguments, mtg_cli.add_arguments):
        parser = argparse.ArgumentParser()
        add(parser)
        got = {a.option_strings[0]: a.help for a in parser._actions
               if a.option_strings and a.option_strings[0] in adapt}
        assert got == adapt, add
    assert _help(CalibrateCommand()) == adapt
    assert _help(GenerateCommand()) == adapt


# ---------------------------------------------------------------------------------------------
# the pipelines: one check, with every request, before anything loads


def test_the_pipelines_pass_every_request_to_one_check(fresh: Path) -> None:
    from stylebridge.pipelines import train_domain as td
    from stylebridge.pipelines import train_hyperdomain as th
    from stylebridge.pipelines import train_mindthegap as mtg
    from stylebridge.pipelines.analyze.shift import ShiftNormsConfig, prepare_shift_norms
    from stylebridge.pipelines.calibrate import CalibrateConfig, prepare_calibrate

    asked: list[Any] = []

    def check(requests: Any) -> None:
        asked.append(list(requests))
        raise StylebridgeError("checked")

    cfg = td.DomainTrainConfig(generator="stylegan2", out=Path("d.safetensors"), text="x",
                               encoder="e4e", losses=["clip_direction:1", "lpips:1"])
    with pytest.raises(MissingWeightsError) as caught:
        td.train_domain(cfg)  # the library call: require_weights by default
    assert caught.value.missing == [
        Missing("stylegan2-ffhq-1024", "--generator stylegan2", (), True),
        Missing("e4e-ffhq", "--encoder e4e", (), True),
        Missing("lpips-alex", "--loss lpips:1"),
        Missing("clip-vit-b-32", "--clip (default) ViT-B-32"),
        Missing("clip-vit-b-16", "--clip (default) ViT-B-16")]
    runs = [
        lambda: td.train_domain(cfg, ensure_weights=check),
        lambda: th.train_hyperdomain(th.HyperDomainTrainConfig(
            generator="g.safetensors", out=Path("h.safetensors"), prompt_list=["Pixar"],
            clip_weights=["ViT-B-32=c.safetensors"]), ensure_weights=check),
        lambda: mtg.train_mindthegap(mtg.MindTheGapConfig(
            reference=fresh / "a.png", generator="stylegan2", out=Path("m.safetensors"),
            encoder="fse", refine_steps=2, allow_random_clip=True), ensure_weights=check),
        lambda: prepare_calibrate(CalibrateConfig(
            calibrator="alpha", encoder="fse", generator="stylegan2", out=Path("c.safetensors"),
            images=[fresh]), ensure_weights=check),
        lambda: prepare_shift_norms(ShiftNormsConfig(
            encoder="fse", generator="stylegan2", images=[fresh], domains=["pixar", "joker"],
            out=Path("o")), ensure_weights=check),
    ]
    for run in runs:
        with pytest.raises(StylebridgeError, match=r"^checked$"):
            run()
    assert asked == [
        [("generator", "stylegan2", "--generator"), ("encoder", "e4e", "--encoder"),
         ("loss", "clip_direction:1", "--loss"), ("loss", "lpips:1", "--loss"),
         ("clip", "ViT-B-32", "--clip (default)"), ("clip", "ViT-B-16", "--clip (default)")],
        [("generator", "g.safetensors", "--generator"),
         ("loss", "clip_direction:1.0", "--loss (default)"),
         ("loss", "tt_direction:0.4", "--loss (default)")],  # ViT-B-32 has a weights file
        [("generator", "stylegan2", "--generator"), ("encoder", "fse", "--encoder"),
         ("loss", "clip_direction:1.0", "--loss (default)"),
         ("loss", "mtg_within:0.5", "--loss (default)"),
         ("loss", "mtg_ref_clip:30", "--loss (default)"),
         ("loss", "mtg_ref_l2:10", "--loss (default)"),
         ("loss", "mtg_ref_lpips:10", "--loss (default)"),
         ("loss", "mtg_ref_lpips:1", "--refine-steps 2:")],
        [("generator", "stylegan2", "--generator"), ("encoder", "fse", "--encoder")],
        [("generator", "stylegan2", "--generator"), ("encoder", "fse", "--encoder"),
         ("domain_method", "pixar", "--domain"), ("domain_method", "joker", "--domain")],
    ]


# ---------------------------------------------------------------------------------------------
# --fetch against a local server (the manifest of test_needed_weights' `served`)


def test_calibrate_fetch_downloads_generator_and_encoder_then_fits(
        served: tuple[_Server, Path],  # noqa: F811  (the imported fixture)
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server, photos = served
    argv = ["calibrate", "alpha", "--encoder", "tiny-enc", "--images", str(photos), "--out",
            "c.safetensors", "--no-align", "--samples", "8", "--device", "cpu"]
    assert _refused(capsys, *argv) == (
        f"{NOT_INSTALLED}tiny-gen (for --generator stylegan2), tiny-enc (for --encoder "
        f"tiny-enc); run `stylebridge weights fetch tiny-gen tiny-enc`{FETCH}")
    assert _gets(server) == []
    assert main([*argv, "--fetch"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for name in ("tiny-gen", "tiny-enc"):
        assert f"installed {name} → {tmp_path / 'home'}" in out
    assert _gets(server) == ["/enc.safetensors", "/gen.safetensors"]
    assert "wrote c.safetensors" in out and Path("c.safetensors").is_file()


def test_analyze_fetch_asks_for_the_domain_licence_then_downloads_all(
        served: tuple[_Server, Path],  # noqa: F811  (the imported fixture)
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server, photos = served
    argv = ["analyze", "latents", "-e", "tiny-enc", "-d", "toon", "--images", str(photos),
            "--out", "o", "--no-align", "--samples", "8", "--device", "cpu", "--fetch"]
    # not on a terminal: the domain's non-commercial licence needs --accept-licence first
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert "licence of toon: test licence" in err and out == ""
    assert err.endswith("error: toon is under a non-commercial licence (shown above); pass "
                        "--accept-licence to accept it and download\n")
    assert _gets(server) == [] and not Path("o").exists()
    assert main([*argv, "--accept-licence"]) == 0
    assert _gets(server) == ["/enc.safetensors", "/gen.safetensors", "/toon.safetensors"]
    data = json.loads(Path("o/latents.json").read_text())
    assert list(data["domains"]) == ["toon"] and data["meta"]["n_images"] == 2


def test_every_pipeline_takes_ensure_weights_none_as_the_default(
        fresh: Path) -> None:
    """`generate(cfg, ensure_weights=None)` raised `TypeError: 'NoneType' object is not
    callable`: some pipelines defaulted to `require_weights`, others to `None`."""
    import inspect

    from stylebridge.pipelines import (
        adapt,
        calibrate,
        evaluate,
        generate,
        invert,
        render,
        train_domain,
        train_hyperdomain,
        train_mindthegap,
    )
    from stylebridge.pipelines.analyze import latents, shift
    from stylebridge.pipelines.featureshift.trainer import train_featureshift
    from stylebridge.pipelines.reproduce import tables

    functions = [adapt.prepare_adapt, invert.prepare_invert, render.prepare_render,
                 adapt.adapt, invert.invert, render.render, train_featureshift,
                 evaluate.evaluate, calibrate.calibrate, calibrate.prepare_calibrate,
                 generate.generate, latents.run_latents, shift.prepare_shift_norms,
                 tables.run_thesis_tables, train_domain.train_domain,
                 train_hyperdomain.train_hyperdomain, train_mindthegap.train_mindthegap]
    for function in functions:
        assert inspect.signature(function).parameters["ensure_weights"].default is None, function
    with pytest.raises(MissingWeightsError) as caught:
        generate.generate(generate.GenerateConfig(methods=["pixar"], out=Path("s")),
                          ensure_weights=None)
    assert [m.name for m in caught.value.missing] == ["stylegan2-ffhq-1024", "pixar"]
    assert not Path("s").exists()
