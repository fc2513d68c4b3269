"""``stylebridge generate --method``: samples rendered through domains (the stochastic setting
of the domain methods), checked against the StyleSpace formula by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import random_stylespace, tiny_generator
from PIL import Image
from torch.testing import assert_close

from stylebridge.core.batch import expand_inputs
from stylebridge.core.images import from_generator_range, load_image
from stylebridge.core.stylegan2.checkpoint import save_stylegan2
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.generate import GenerateConfig, generate, seed_inputs

SIZE, SD = 32, 32


def _stylespace(gen: Any, seed: int) -> Any:
    return random_stylespace(gen, seed, 0.5)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("generate")
    gen = tiny_generator(seed=3, size=SIZE, style_dim=SD)
    pixar = _stylespace(gen, 1)
    return {"gen": save_stylegan2(root / "gen.safetensors", gen), "module": gen,
            "pixar": pixar.save(root / "pixar.safetensors"), "pixar_module": pixar,
            "joker": _stylespace(gen, 2).save(root / "joker.safetensors",
                                              extra={"random_weights": True}),
            "big": _stylespace(tiny_generator(seed=0, size=64, style_dim=SD), 1).save(
                root / "big.safetensors")}


def _png01(image: torch.Tensor) -> torch.Tensor:
    """What a PNG of ``image`` (in [0, 1]) reads back as: 8-bit levels."""
    return torch.round(image.clamp(0, 1) * 255) / 255


def test_samples_through_a_domain_are_s_plus_delta_s(files: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = generate(GenerateConfig(generator=str(files["gen"]), out=out, seeds="4-6",
                                     truncation=0.7, batch=2, device="cpu",
                                     methods=[str(files["pixar"])], strength=(0.0, 1.0, 0.5)))
    assert result.outputs == ["source", "pixar@0", "pixar", "pixar@0.5"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["grid.png", "generate.json"]
        + [f"seed{s:04d}{k}.png" for s in (4, 5, 6) for k in ("", "_pixar@0", "_pixar",
                                                                "_pixar@0.5")])
    gen, pixar = files["module"], files["pixar_module"]
    offsets = {int(k): v.detach() for k, v in pixar.offsets.items()}
    with torch.no_grad():
        for seed in (4, 5, 6):
            z, _ = seed_inputs(seed, SD, None)
            w = gen.truncate(gen.mapping(z[None]), 0.7)
            w_plus = w[:, None].expand(-1, gen.n_latent, -1)
            for key, k in (("pixar", 1.0), ("pixar@0.5", 0.5)):
                styles = gen.styles(w_plus)
                for i, off in offsets.items():
                    styles[i] = styles[i] + k * off
                by_hand = from_generator_range(gen.synthesis(styles, randomize_noise=False))[0]
                assert_close(load_image(out / f"seed{seed:04d}_{key}.png"), _png01(by_hand),
                             atol=1 / 255 + 1e-6, rtol=0)
            # strength 0 is the generator's own sample, to the bit
            assert torch.equal(load_image(out / f"seed{seed:04d}_pixar@0.png"),
                               load_image(out / f"seed{seed:04d}.png"))
    info = json.loads((out / "generate.json").read_text())
    assert info["seeds"] == [4, 5, 6] and info["strength"] == [0.0, 1.0, 0.5]
    assert info["files"]["5"]["pixar@0.5"] == "seed0005_pixar@0.5.png"
    grid = load_image(out / "grid.png")
    # "seed N" | sample | three strengths, 2 px gaps; 32 px tiles enlarged to 128 px
    assert 8 <= grid.shape[-1] - (4 * 128 + 5 * 2) <= 160
    assert grid.shape[-2] > 3 * SIZE + 4 * 2   # three rows under a label strip
    assert result.random_parts == [] and result.notice is None


def test_random_noise_is_shared_by_the_sample_and_its_domains(files: dict[str, Any],
                                                              tmp_path: Path) -> None:
    out = tmp_path / "out"
    generate(GenerateConfig(generator=str(files["gen"]), out=out, seeds="0,9", noise="random",
                            device="cpu", methods=[str(files["pixar"])], strength=(0.0, 1.0)))
    for seed in (0, 9):
        assert torch.equal(load_image(out / f"seed{seed:04d}_pixar@0.png"),
                           load_image(out / f"seed{seed:04d}.png"))
    # the samples themselves are what generate wrote before --method existed
    plain = tmp_path / "plain"
    generate(GenerateConfig(generator=str(files["gen"]), out=plain, seeds="0,9", noise="random",
                            device="cpu"))
    for seed in (0, 9):
        assert torch.equal(load_image(out / f"seed{seed:04d}.png"),
                           load_image(plain / f"seed{seed:04d}.png"))
    assert sorted(p.name for p in plain.iterdir()) == ["generate.json", "grid.png", "seed0000.png",
                                                       "seed0009.png"]
    # the folder given back as photos (adapt gen/): the faces, not the grid of them
    assert [p.name for p in expand_inputs([plain])] == ["seed0000.png", "seed0009.png"]


def test_cli_labels_random_domains_and_refuses_a_mismatch(files: dict[str, Any], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    from stylebridge.cli.main import main

    base = ["generate", "-g", str(files["gen"]), "--seeds", "0-1", "--device", "cpu"]
    assert main([*base, "-m", str(files["pixar"]), "-m", str(files["joker"]),
                 "--out", str(tmp_path / "two")]) == 0
    text, notices = (" ".join(part.split()) for part in capsys.readouterr())
    assert "RANDOM WEIGHTS: domain joker has random (untrained) weights" in notices  # stderr
    assert "wrote 6 images" in text and text.endswith("[RANDOM WEIGHTS]")
    info = json.loads((tmp_path / "two" / "generate.json").read_text())
    assert info["random_parts"] == ["domain joker"] and "domain joker" in info["notice"]
    # as adapt.json and invert.json say it (generate.json had random_parts only)
    assert info["random_weights"] is True
    assert info["random_inputs"] == {"generator": False,
                                     "domains": {"pixar": False, "joker": True}}
    # each picture keeps what it was made with: only joker's outputs are random
    kept = {png.name: Image.open(png).info.get("stylebridge-notice")
            for png in (tmp_path / "two").glob("seed0000*.png")}
    assert kept == {"seed0000.png": None, "seed0000_pixar.png": None,
                    "seed0000_joker.png": "RANDOM WEIGHTS: made with untrained (random) "
                                          "weights (domain joker)"}
    assert main([*base, "-m", str(files["big"]), "--out", str(tmp_path / "bad")]) == 2
    assert capsys.readouterr().err.startswith("error: domain big.safetensors was trained for a "
                                              "64px generator")
    assert not (tmp_path / "bad").exists()  # refused before any file
    with pytest.raises(StylebridgeError, match="--strength applies with --method"):
        generate(GenerateConfig(generator=str(files["gen"]), out=tmp_path / "y", device="cpu",
                                strength=0.5))
    assert not (tmp_path / "y").exists()
    with pytest.raises(StylebridgeError, match="given twice"):
        generate(GenerateConfig(generator=str(files["gen"]), out=tmp_path / "x", device="cpu",
                                methods=[str(files["pixar"])], strength=(1.0, 1.0)))


def test_the_grid_previews_the_first_seeds_only(files: dict[str, Any], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import stylebridge.pipelines.generate as gen_mod

    monkeypatch.setattr(gen_mod, "GRID_MAX_SAMPLES", 2)
    result = generate(GenerateConfig(generator=str(files["gen"]), out=tmp_path / "o",
                                     seeds="0-4", device="cpu", methods=[str(files["pixar"])]))
    assert sorted(result.files) == [0, 1, 2, 3, 4]  # every seed written
    grid = load_image(result.grid)
    assert grid.shape[-2] < 3 * 128  # two rows (of 128 px tiles) under the label strip


def test_a_seed_given_twice_is_one_image() -> None:
    """``--seeds 1,1,1`` said "wrote 1 images" under a grid of three identical tiles: each seed
    is drawn once, in the order first given (a list from Python too)."""
    from stylebridge.pipelines.generate import parse_seeds

    assert parse_seeds("1,1,1") == [1]
    assert parse_seeds("3,0-4,2") == [3, 0, 1, 2, 4]
    assert GenerateConfig(seeds=[5, 5, 2, 5]).seed_list() == [5, 2]
