"""The example third-party package (examples/stylebridge-example-encoder), installed as users
install it, through the real ``stylebridge`` command: its command ``example-info`` and its
encoder ``tiny-pool`` inside ``adapt``, on a tiny random generator.

Skips when the package is not pip-installed (``.ci/run`` installs it), or when the installed
copy predates the ``example-info`` entry point (reinstall it).
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, one_torch_thread, tiny_generator
from PIL import Image
from safetensors.torch import load_file

from stylebridge.core.checkpoint import save_checkpoint
from stylebridge.core.images import from_generator_range, load_image, to_uint8
from stylebridge.core.stylegan2.checkpoint import save_stylegan2
from stylebridge.core.synthesis import synthesize
from stylebridge.errors import RegistryError

DIST = "stylebridge-example-encoder"
EXAMPLE = REPO / "examples" / DIST
INSTALL = f"pip install -e ./examples/{DIST}"
SIZE, STYLE_DIM, GRID = 32, 32, 2
TIMEOUT = 180  # seconds per command on a loaded 2-core machine


def _installed_entry_points() -> set[str]:
    try:
        dist = importlib.metadata.distribution(DIST)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{DIST} is not installed (.ci/run installs it: {INSTALL})")
    return {ep.value for ep in dist.entry_points if ep.group == "stylebridge"}


@pytest.fixture(scope="module")
def installed() -> None:
    values = _installed_entry_points()
    if "stylebridge_example_encoder.info" not in values:
        pytest.skip(f"the installed {DIST} predates its example-info command "
                    f"(entry points {sorted(values)}); reinstall it: {INSTALL}")


def _stylebridge(*args: object, home: Path) -> subprocess.CompletedProcess[str]:
    """``stylebridge ARGS`` in a fresh process (real entry-point discovery)."""
    env = {**os.environ, "STYLEBRIDGE_HOME": str(home), "OMP_NUM_THREADS": "1",
           "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "stylebridge", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=TIMEOUT, check=False)


@pytest.fixture(scope="module")
def files(installed: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from stylebridge_example_encoder.encoder import TinyPoolEncoder

    root = tmp_path_factory.mktemp("example")
    gen = tiny_generator(seed=3, size=SIZE, style_dim=STYLE_DIM)
    torch.manual_seed(5)
    enc = TinyPoolEncoder(n_latent=gen.n_latent, style_dim=STYLE_DIM, grid=GRID,
                          input_size=SIZE)
    photos = root / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for stem in ("a", "b"):
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(
            photos / f"{stem}.png")
    return {
        "root": root,
        "generator": save_stylegan2(root / "gen.safetensors", gen),
        "encoder": save_checkpoint(root / "tiny_pool.safetensors", enc.state_dict(),
                                   kind="encoder", plugin="tiny-pool", config=enc.config()),
        "photos": photos,
    }


def test_plugins_lists_both_plugins_of_the_package(files: dict[str, Path]) -> None:
    result = _stylebridge("plugins", "--json", home=files["root"] / "home")
    assert result.returncode == 0, result.stderr
    listing = json.dumps(json.loads(result.stdout))
    assert "tiny-pool" in listing and "example-info" in listing
    assert DIST in listing and '"failed": []' in listing.replace("\n", "")


def test_example_info_describes_a_tiny_pool_checkpoint(files: dict[str, Path]) -> None:
    result = _stylebridge("example-info", files["encoder"], "--json", home=files["root"] / "home")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    n_latent = 2 * int(math.log2(SIZE)) - 2   # w+ rows of a 32 px StyleGAN2: 8
    assert info["plugin"] == "tiny-pool"
    assert info["config"] == {"n_latent": n_latent, "style_dim": STYLE_DIM, "grid": GRID,
                              "input_size": SIZE}
    assert info["input"] == [3, SIZE, SIZE] and info["w_plus"] == [n_latent, STYLE_DIM]
    assert info["tensors"] == {"head.weight": [n_latent * STYLE_DIM, 3 * GRID * GRID],
                               "head.bias": [n_latent * STYLE_DIM]}
    assert info["parameters"] == n_latent * STYLE_DIM * (3 * GRID * GRID + 1)
    assert info["random_weights"] is False

    table = _stylebridge("example-info", files["encoder"], home=files["root"] / "home")
    assert table.returncode == 0, table.stderr
    assert f"{info['parameters']:,} parameters" in table.stdout and "head.weight" in table.stdout


def test_example_info_refuses_another_checkpoint_in_one_line(files: dict[str, Path]) -> None:
    result = _stylebridge("example-info", files["generator"], home=files["root"] / "home")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(files["generator"]) in lines[0]
    assert "tiny-pool" in lines[0]


def test_adapt_with_the_example_encoder(files: dict[str, Path]) -> None:
    """``adapt --encoder tiny-pool:CKPT``: the third-party encoder through the whole command;
    the inversion written is the generator's image of the encoder's w+ for that photo."""
    from stylebridge.core.stylegan2.checkpoint import load_stylegan2
    from stylebridge.plugins.domains.stylespace import StyleSpace

    gen = load_stylegan2(files["generator"]).generator
    zero = StyleSpace(size=gen.size, style_dim=gen.style_dim,
                      channels={str(r): c for r, c in gen.cfg.channels.items()})
    zero_path = zero.save(files["root"] / "zero.safetensors")
    out = files["root"] / "adapted"
    result = _stylebridge("adapt", "--encoder", f"tiny-pool:{files['encoder']}",
                          "--generator", files["generator"], "--method", zero_path, "--no-align",
                          "--device", "cpu", files["photos"], "--out", out,
                          home=files["root"] / "home")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{s}_{k}.png" for s in ("a", "b") for k in ("inversion", "zero")]
        + ["adapt.json", "grid.png", "metrics.json"])

    from stylebridge_example_encoder.encoder import TinyPoolEncoder

    state = {k: v.clone() for k, v in load_file(files["encoder"]).items()}
    enc = TinyPoolEncoder(n_latent=gen.n_latent, style_dim=STYLE_DIM, grid=GRID, input_size=SIZE)
    enc.load_state_dict(state)
    for stem in ("a", "b"):
        with torch.no_grad(), one_torch_thread():
            image = load_image(files["photos"] / f"{stem}.png")[None]
            want = to_uint8(from_generator_range(synthesize(gen.eval(), enc.eval().encode(image))))[0]
        with Image.open(out / f"{stem}_inversion.png") as img:
            got = np.asarray(img.convert("RGB"))
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1, stem
        with Image.open(out / f"{stem}_zero.png") as img:
            np.testing.assert_array_equal(np.asarray(img.convert("RGB")), got)


@pytest.fixture(scope="module")
def fs_data(files: dict[str, Path]) -> Path:
    """A tiny FeatureShift dataset (2 photos, one domain) on the module's 32 px generator,
    built with the toy encoders of the kill/resume tests."""
    from test_kill_resume import _FSE, _Guide

    from stylebridge.core.stylegan2.checkpoint import load_stylegan2
    from stylebridge.pipelines.featureshift.dataset import build_dataset
    from stylebridge.plugins.domains.stylespace import StyleSpace

    gen = load_stylegan2(files["generator"]).generator
    domain = StyleSpace(size=gen.size, style_dim=gen.style_dim,
                        channels={str(r): c for r, c in gen.cfg.channels.items()})
    with torch.no_grad():
        for p in domain.offsets.values():
            p.copy_(0.5 * torch.randn(p.shape, generator=torch.Generator().manual_seed(4)))
    data = files["root"] / "fs_data"
    with one_torch_thread():
        build_dataset(sorted(files["photos"].iterdir()), data, generator=gen, encoder=_FSE(),
                      guide=_Guide(), domains=[("dom", domain)], image_size=SIZE, shard_size=4,
                      batch_size=2, per_domain=True, dtype="float32")
    return data


def test_train_featureshift_with_the_example_loss(files: dict[str, Path], fs_data: Path) -> None:
    """``--loss charbonnier:1.0`` (a third-party loss) next to a built-in one, in both phases."""
    out = files["root"] / "fs_run"
    result = _stylebridge("train", "featureshift", "--data", fs_data,
                          "--generator", files["generator"], "--loss", "charbonnier:1.0",
                          "--loss", "mse:0.5", "--inversion-loss", "charbonnier:1.0",
                          "--pretrain-inversion-steps", "1", "--steps", "3", "--batch", "2",
                          "--hidden", "24", "--n-blocks", "3", "--sample-every", "0",
                          "--log-every", "1", "--device", "cpu", "--adversarial", "0",
                          "--out", out, home=files["root"] / "home")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if "step" in r and any("charbonnier" in k for k in r)]
    assert [r["step"] for r in steps] == [1, 2, 3]
    for record in steps:
        values = [v for k, v in record.items() if "charbonnier" in k]
        assert values and all(isinstance(v, float) and math.isfinite(v) and v > 0
                              for v in values)
    assert (out / "model.safetensors").is_file()


def test_train_domain_refuses_the_example_loss_before_training(files: dict[str, Path]) -> None:
    """``train domain`` has no paired target: the loss's declared ``requires`` is checked
    when the trainer is built, in one line naming the loss and the field."""
    out = files["root"] / "domain_run"
    result = _stylebridge("train", "domain", "--method", "stylespace", "--text", "a sketch",
                          "--generator", files["generator"], "--loss", "charbonnier:1.0",
                          "--steps", "2", "--allow-random-clip", "--device", "cpu",
                          "--out", out / "d.safetensors", home=files["root"] / "home")
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert ("loss 'charbonnier' (from stylebridge-example-encoder) needs the batch field "
            "'target'") in lines[0]
    assert not (out / "d.safetensors").exists()


def test_the_example_loss_by_itself(installed: None) -> None:
    from stylebridge.core.interfaces import LossBatch
    from stylebridge.registry import get_registry

    loss = get_registry().create("loss", "charbonnier", eps=0.5)
    out = torch.zeros(1, 3, 4, 4)
    assert float(loss(LossBatch(output=out, target=out))) == 0.0
    target = torch.full((1, 3, 2, 2), 1.5)  # smaller target: output is resized to it
    expected = math.sqrt(1.5**2 + 0.25) - 0.5
    assert math.isclose(float(loss(LossBatch(output=out, target=target))), expected,
                        rel_tol=1e-6)
    with pytest.raises(RegistryError, match="eps must be a finite number > 0"):  # its own check
        get_registry().create("loss", "charbonnier", eps=-1.0)
    # NaN never reaches a plugin: the registry refuses every non-finite float first
    with pytest.raises(RegistryError, match="config eps=nan: expected a finite number"):
        get_registry().create("loss", "charbonnier", eps=float("nan"))
