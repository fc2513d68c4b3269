"""``stylebridge eval`` on a fresh install: every official download its metrics read is named in
one line before any metric is built (``registry.needed``, as ``adapt``/``invert`` do), and
``--fetch`` / ``--accept-licence`` get them (against a local HTTP server on 127.0.0.1)."""

from __future__ import annotations

import argparse
import hashlib
import json
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from PIL import Image
from test_weights_sources import _Server

from stylebridge.cli.commands.adapt import AdaptCommand
from stylebridge.cli.commands.eval import EvalCommand
from stylebridge.cli.main import main
from stylebridge.errors import StylebridgeError
from stylebridge.plugins.metrics.base import PerImageMetric
from stylebridge.registry import hookimpl
from stylebridge.registry import registry as registry_mod
from stylebridge.registry import weights as weights_mod
from stylebridge.registry.needed import Missing, MissingWeightsError
from stylebridge.registry.weights import WeightsEntry, WeightsManager

NOT_INSTALLED = "error: official weights are not installed: "


def _pictures(root: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    pred, target = root / "pred", root / "target"
    for folder in (pred, target):
        folder.mkdir()
        for stem in ("a", "b"):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
                folder / f"{stem}.png")
    return pred, target


@pytest.fixture
def fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """No weights installed (an empty weights cache and torch hub cache) and two pairs."""
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("COLUMNS", "500")
    monkeypatch.chdir(tmp_path)
    return _pictures(tmp_path)


def _eval(pred: Path, target: Path, *args: str) -> list[str]:
    return ["eval", *args, "--pred", str(pred), "--target", str(target), "--device", "cpu"]


def test_eval_names_every_download_of_every_metric_in_one_line(
        fresh: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """Before: `eval -m lpips -m lpips:net=vgg` named lpips-alex only (the first metric built
    refused), so a fresh install met its downloads one failed run at a time."""
    pred, target = fresh
    assert main(_eval(pred, target, "-m", "lpips", "-m", "lpips:net=vgg", "--json",
                      "m.json")) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == (
        f"{NOT_INSTALLED}lpips-alex (for --metric lpips), lpips-vgg (for --metric "
        "lpips:net=vgg); run `stylebridge weights fetch lpips-alex lpips-vgg`; or add --fetch "
        "to this command\n")
    assert not Path("m.json").exists()
    # the README's example (id with ArcFace, as the thesis measures it): both at once
    assert main(_eval(pred, target, "--metric", "psnr", "--metric", "ssim", "--metric",
                      "lpips", "--metric", "id:backend=arcface")) == 2
    assert capsys.readouterr().err == (
        f"{NOT_INSTALLED}lpips-alex (for --metric lpips), arcface-irse50 (for --metric "
        "id:backend=arcface); run `stylebridge weights fetch lpips-alex arcface-irse50`; or add "
        "--fetch to this command\n")


def test_clip_and_fid_downloads_are_named_with_the_others(
        fresh: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """Before: `eval -m lpips -m clip_quality:text=x` named lpips-alex alone (clip_quality and
    fid said nothing of their weights until built)."""
    pred, target = fresh
    assert main(_eval(pred, target, "-m", "lpips", "-m", "clip_quality:text=x")) == 2
    assert capsys.readouterr().err == (
        f"{NOT_INSTALLED}lpips-alex (for --metric lpips), clip-vit-b-32 (for --metric "
        "clip_quality:text=x); run `stylebridge weights fetch lpips-alex clip-vit-b-32`; or add "
        "--fetch to this command\n")
    assert main(_eval(pred, target, "-m", "fid", "-m", "clip_diversity:model=ViT-B-16")) == 2
    assert capsys.readouterr().err == (
        f"{NOT_INSTALLED}fid-inception (for --metric fid), clip-vit-b-16 (for --metric "
        "clip_diversity:model=ViT-B-16); run `stylebridge weights fetch fid-inception "
        "clip-vit-b-16`; or add --fetch to this command\n")
    # random weights allowed: no download
    assert main(_eval(pred, target, "-m", "fid:allow_random=true", "-m",
                      "clip_diversity:allow_random=true", "-m", "lpips")) == 2
    assert capsys.readouterr().err.endswith("fetch lpips-alex`; or add --fetch to this command\n")


def test_a_typo_or_a_missing_target_is_said_before_the_downloads(
        fresh: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    pred, target = fresh
    # no --target: said first, not after the user fetched lpips-alex
    assert main(["eval", "-m", "psnr", "-m", "lpips", "--pred", str(pred)]) == 2
    assert capsys.readouterr().err == ("error: metric(s) psnr, lpips compare pairs: give "
                                       "--target DIR\n")
    assert main(["eval", "-m", "fid", "--pred", str(pred / "a.png"), "--target",
                 str(target)]) == 2
    assert capsys.readouterr().err == ("error: fid: FID compares distributions and needs at "
                                       "least 2 predicted images, got 1\n")
    cases = [(["-m", "lpips", "-m", "lpipz"], "unknown metric 'lpipz'; did you mean 'lpips'?"),
             (["-m", "lpips:nett=vgg", "-m", "lpips:net=vgg"],
              "metric spec 'lpips:nett=vgg': unknown option(s) nett; did you mean 'net'?")]
    for args, message in cases:
        assert main(_eval(pred, target, *args)) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
        assert "not installed" not in err


def test_evaluate_asks_before_building_any_metric(fresh: tuple[Path, Path]) -> None:
    from stylebridge.pipelines.evaluate import EvalConfig, evaluate

    pred, target = fresh
    config = EvalConfig(metrics=["psnr", "lpips", "lpips:net=vgg"], pred=[pred],
                        target=[target], device="cpu")
    with pytest.raises(MissingWeightsError) as caught:
        evaluate(config)  # the library call: require_weights by default
    assert caught.value.missing == [Missing("lpips-alex", "--metric lpips"),
                                    Missing("lpips-vgg", "--metric lpips:net=vgg")]
    asked: list[Any] = []

    def check(requests: Any) -> None:
        asked.append(list(requests))
        raise StylebridgeError("checked")

    with pytest.raises(StylebridgeError, match=r"^checked$"):
        evaluate(config, ensure_weights=check)
    assert asked == [[("metric", "psnr", "--metric"), ("metric", "lpips", "--metric"),
                      ("metric", "lpips:net=vgg", "--metric")]]


def _help(command: Any) -> dict[str, str | None]:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return {a.option_strings[0]: a.help for a in parser._actions
            if a.option_strings and a.option_strings[0] in ("--fetch", "--accept-licence")}


def test_eval_offers_fetch_as_adapt_does(fresh: tuple[Path, Path],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    adapt = _help(AdaptCommand())
    assert set(adapt) == {"--fetch", "--accept-licence"} and _help(EvalCommand()) == adapt
    pred, target = fresh
    assert main(_eval(pred, target, "-m", "psnr", "--accept-licence")) == 2
    assert capsys.readouterr().err == (
        "error: --accept-licence applies with --fetch (it accepts the licences of what --fetch "
        "downloads)\n")


# ---------------------------------------------------------------------------------------------
# --fetch against a local server


class _NetMetric(PerImageMetric):
    """Reads the official entry ``tiny-net`` (its first byte is the score)."""

    name = "netted-test"
    takes_device: ClassVar[bool] = True

    @classmethod
    def unavailable_weights(cls, config: Mapping[str, Any]) -> tuple[str, ...]:
        return () if weights_mod.WeightsManager().installed("tiny-net") else ("tiny-net",)

    def __init__(self, device: str = "cpu") -> None:
        super().__init__(device=device)
        manager = weights_mod.WeightsManager()  # the test's manifest
        if manager.installed("tiny-net") is None:
            raise StylebridgeError("netted-test: tiny-net is not installed")
        self.value = float(manager.installed_file("tiny-net").read_bytes()[0])

    def score(self, pred: torch.Tensor, target: torch.Tensor | None,
              **context: Any) -> dict[str, torch.Tensor]:
        return {"netted": torch.full((pred.shape[0],), self.value)}


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[_Server, Path]]:
    """``tiny-net`` (non-commercial) served on 127.0.0.1, read by the metric ``netted-test``."""
    server = _Server()
    data = bytes([42]) + b"tiny network"
    server.files["/net.bin"] = data
    manifest = [WeightsEntry(name="tiny-net", kind="backbone", plugin="tiny-net",
                             filename="net.bin", url=f"{server.url}/net.bin", size=len(data),
                             sha256=hashlib.sha256(data).hexdigest(), licence="test licence",
                             noncommercial=True)]
    home = tmp_path / "home"
    monkeypatch.setattr("stylebridge.registry.weights.WeightsManager",
                        lambda *a, **k: WeightsManager(home, manifest=manifest))
    monkeypatch.setenv("COLUMNS", "500")
    monkeypatch.chdir(tmp_path)
    plugin = types.ModuleType("netted_pkg")

    @hookimpl
    def register_metrics(register: Any) -> None:
        register(_NetMetric)

    plugin.register_metrics = register_metrics  # type: ignore[attr-defined]
    monkeypatch.setattr(registry_mod, "_REGISTRY",
                        registry_mod.Registry(entry_points=False, extra_plugins=[plugin]))
    yield server, home
    monkeypatch.setattr(registry_mod, "_REGISTRY", None)
    server.close()


def test_fetch_downloads_what_the_metrics_lack_then_evaluates(
        served: tuple[_Server, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    server, home = served
    pred, target = _pictures(tmp_path)
    argv = _eval(pred, target, "-m", "psnr", "-m", "netted-test", "--json", "m.json")
    assert main(argv) == 2  # without --fetch: named, nothing downloaded
    assert capsys.readouterr().err == (
        f"{NOT_INSTALLED}tiny-net (for --metric netted-test); run `stylebridge weights fetch "
        "tiny-net` (non-commercial licence, shown before download); or add --fetch to this "
        "command\n")
    # not on a terminal: the non-commercial licence needs --accept-licence; nothing fetched
    assert main([*argv, "--fetch"]) == 2
    out, err = capsys.readouterr()
    assert "licence of tiny-net: test licence" in err and out == ""
    assert err.endswith("error: tiny-net is under a non-commercial licence (shown above); pass "
                        "--accept-licence to accept it and download\n")
    assert not [p for m, p, _ in server.log if m == "GET"] and not Path("m.json").exists()

    assert main([*argv, "--fetch", "--accept-licence"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"installed tiny-net → {home}" in out
    assert [p for m, p, _ in server.log if m == "GET"] == ["/net.bin"]
    means = json.loads(Path("m.json").read_text())["mean"]
    assert means["netted"] == 42.0 and "psnr" in means
