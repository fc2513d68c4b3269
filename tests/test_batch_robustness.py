"""Batch commands over 100 files of which 5 are bad: 95 results, a (file, reason) report, exit 3.

``align``, ``invert`` and ``adapt`` read a folder of 95 face photos (crops of scikit-image's
astronaut, shifted, zoomed and mirrored: each a distinct file, 96 px so that dlib's detector
finds the face) plus five bad files from the bad-input corpus (``tests/data/bad``): truncated,
zero bytes, text named ``.png``, a header claiming 100000 × 100000 pixels, and a cat (no
face).  ``eval`` compares 100 predictions (5 of them bad, with truncated JPEG instead of the
cat) against 100 good targets.  Networks are tiny: the 32 px ``tiny_generator`` and the
example encoder ``tiny-pool`` (random weights).  Expected values come from the public API or
from numpy, never from an earlier run.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import load_script, tiny_generator
from PIL import Image, ImageOps

from stylebridge.cli.main import main
from stylebridge.core.batch import EXIT_PARTIAL
from stylebridge.core.checkpoint import save_checkpoint
from stylebridge.core.images import from_generator_range, load_image, to_uint8
from stylebridge.core.stylegan2.checkpoint import load_stylegan2, save_stylegan2
from stylebridge.registry import get_registry, reset_registry

needs_faces = pytest.mark.skipif(
    importlib.util.find_spec("dlib") is None or importlib.util.find_spec("skimage") is None,
    reason="face alignment needs dlib; the face photos come from scikit-image")

make_corpus = load_script(Path(__file__).parent / "data" / "bad" / "make_corpus.py")

N_GOOD = 95
SIZE = 32               # generator, encoder input, aligned crops
# bad file -> what its one-line reason must say
FACE_BAD = {
    "truncated.png": "cannot read image",
    "zero_bytes.png": "is empty (0 bytes)",
    "text_named.png": "is a text file, not an image",
    "huge_dimensions.png": "pixel limit",
    "no_face.png": "no face found",
}
# eval: no face check; a truncated JPEG instead (own stem: eval pairs files by stem)
EVAL_BAD = {**{k: v for k, v in FACE_BAD.items() if k != "no_face.png"},
            "cut.jpg": "cannot read image"}
EVAL_SOURCES = {"cut.jpg": "truncated.jpg"}   # name in pred/ -> name in the bad corpus


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """The default registry (built-ins + the installed example encoder); wide, plain output."""
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "home"))
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    reset_registry()
    yield
    reset_registry()
    torch.set_num_threads(n)


def _face_variants(n: int) -> list[Image.Image]:
    """``n`` distinct 96 px crops of the astronaut photo (dlib finds the face in each)."""
    from skimage import data as skdata

    photo = Image.fromarray(skdata.astronaut())
    out = []
    for side in (250, 270, 290):
        for flip in (False, True):
            for dx in range(-24, 25, 12):
                for dy in range(-16, 17, 8):
                    cx, cy = 220 + dx, 130 + dy
                    img = photo.crop((cx - side // 2, cy - side // 2, cx + side // 2,
                                      cy + side // 2)).resize((96, 96), Image.Resampling.LANCZOS)
                    out.append(ImageOps.mirror(img) if flip else img)
    assert len(out) >= n
    return out[:n]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("batch")
    bad = make_corpus.make_corpus(root / "bad")
    faces = root / "faces"
    faces.mkdir()
    for name in FACE_BAD:
        shutil.copy(bad[name], faces / name)

    # eval: 100 targets; predictions = 95 noisy copies + 5 bad files under the other 5 stems
    rng = np.random.default_rng(1)
    pred, target = root / "pred", root / "target"
    pred.mkdir()
    target.mkdir()
    stems = [f"img{i:03d}" for i in range(N_GOOD)] + [Path(n).stem for n in EVAL_BAD]
    for stem in stems:
        t = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
        Image.fromarray(t).save(target / f"{stem}.png")
        if stem.startswith("img"):
            noise = rng.integers(-20, 21, t.shape)
            Image.fromarray(np.clip(t.astype(int) + noise, 0, 255).astype(np.uint8)).save(
                pred / f"{stem}.png")
    for name in EVAL_BAD:
        shutil.copy(bad[EVAL_SOURCES.get(name, name)], pred / name)

    gen = save_stylegan2(root / "gen.safetensors", tiny_generator(seed=3, size=SIZE))
    return {"root": root, "faces": faces, "pred": pred, "target": target, "generator": gen}


@pytest.fixture(scope="module")
def faces(corpus: dict[str, Path]) -> Path:
    """The folder of 95 face photos and the 5 bad files (``FACE_BAD``)."""
    folder = corpus["faces"]
    for i, img in enumerate(_face_variants(N_GOOD)):
        img.save(folder / f"face{i:03d}.png")
    return folder


@pytest.fixture(scope="module")
def encoder_ckpt(corpus: dict[str, Path]) -> Path:
    reset_registry()
    registry = get_registry()
    if "tiny-pool" not in registry.names("encoder"):
        pytest.skip("the example encoder package (examples/stylebridge-example-encoder) is "
                    "not installed")
    torch.manual_seed(11)
    enc = registry.create("encoder", "tiny-pool", n_latent=8, style_dim=32, input_size=SIZE)
    reset_registry()
    return save_checkpoint(corpus["root"] / "tiny_pool.safetensors", enc.state_dict(),
                           kind="encoder", plugin="tiny-pool", config=enc.config())


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def _check_skipped(skipped: list[dict[str, str]], folder: Path, bad: dict[str, str]) -> None:
    got = {Path(s["file"]).name: s["reason"] for s in skipped}
    assert sorted(got) == sorted(bad)
    for name, reason in got.items():
        assert bad[name] in reason and "\n" not in reason, (name, reason)
    assert all(Path(s["file"]).parent == folder for s in skipped)


def _table_rows(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.count("│") >= 3]


def _aligned(path: Path) -> torch.Tensor:
    from stylebridge.pipelines.align import align_face

    return align_face(load_image(path), SIZE).to_tensor()


GOOD_STEMS = [f"face{i:03d}" for i in range(N_GOOD)]


@needs_faces
def test_align_100_images_5_bad_exit_3(faces: Path, corpus: dict[str, Path], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "aligned"
    code, stdout, err = _run(capsys, "align", faces, "--out", out, "--size", SIZE,
                             "--json")
    assert code == EXIT_PARTIAL == 3, err
    report = json.loads(stdout[stdout.index("{"):])
    assert len(report["done"]) == N_GOOD
    _check_skipped(report["skipped"], faces, FACE_BAD)
    assert sorted(p.name for p in out.iterdir()) == [f"{s}.png" for s in GOOD_STEMS]
    for stem in ("face000", "face047", "face094"):  # the command's crop is the API's crop
        np.testing.assert_array_equal(_png(out / f"{stem}.png"),
                                      to_uint8(_aligned(faces / f"{stem}.png")[None])[0])


@needs_faces
def test_invert_100_images_5_bad_exit_3(faces: Path, corpus: dict[str, Path], encoder_ckpt: Path,
                                        tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(faces.parent)   # short relative paths in the report table
    out = tmp_path / "inv"
    code, stdout, err = _run(capsys, "invert", "faces", "-e", f"tiny-pool:{encoder_ckpt}",
                             "-g", corpus["generator"], "--out", out, "--align-size", SIZE,
                             "--batch", "8", "--device", "cpu")
    assert code == EXIT_PARTIAL, err
    assert f"{N_GOOD} done, 5 skipped" in stdout
    rows = _table_rows(stdout)
    for name, reason in FACE_BAD.items():   # one table row per bad file: file │ reason
        assert sum(f"faces/{name}" in r and reason in r for r in rows) == 1, (name, stdout)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{s}_inversion.png" for s in GOOD_STEMS] + ["grid.png", "invert.json", "metrics.json"])
    enc = get_registry().load("encoder", encoder_ckpt)
    gen = load_stylegan2(corpus["generator"]).generator
    from stylebridge.core.synthesis import synthesize

    for stem in ("face003", "face090"):
        with torch.no_grad():
            want = to_uint8(from_generator_range(synthesize(
                gen, enc.encode(_aligned(faces / f"{stem}.png")[None]))))[0]
        got = _png(out / f"{stem}_inversion.png")
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


@needs_faces
def test_adapt_100_images_5_bad_exit_3(faces: Path, corpus: dict[str, Path], encoder_ckpt: Path,
                                       tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from stylebridge.plugins.domains.stylespace import StyleSpace

    gen = load_stylegan2(corpus["generator"]).generator
    zero = StyleSpace(size=gen.size, style_dim=gen.style_dim,
                      channels={str(r): c for r, c in gen.cfg.channels.items()})
    zero_path = zero.save(tmp_path / "zero.safetensors")
    out = tmp_path / "adapted"
    code, stdout, err = _run(capsys, "adapt", faces, "-e", f"tiny-pool:{encoder_ckpt}",
                             "-g", corpus["generator"], "--method", zero_path, "--out", out,
                             "--align-size", SIZE, "--batch", "8", "--device", "cpu")
    assert code == EXIT_PARTIAL, err
    assert f"{N_GOOD} done, 5 skipped" in stdout
    report = json.loads((out / "adapt.json").read_text())
    assert len(report["done"]) == len(report["outputs"]) == N_GOOD
    _check_skipped(report["skipped"], faces, FACE_BAD)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([f"{s}_{k}.png" for s in GOOD_STEMS for k in ("inversion", "zero")]
                           + ["adapt.json", "grid.png", "metrics.json"])
    for stem in GOOD_STEMS[::7]:   # a zero-offset domain renders exactly the inversion
        inversion = _png(out / f"{stem}_inversion.png")
        np.testing.assert_array_equal(_png(out / f"{stem}_zero.png"), inversion)
    assert len({_png(out / f"{s}_inversion.png").tobytes() for s in GOOD_STEMS[:10]}) == 10


def test_eval_100_pairs_5_bad_exit_3(corpus: dict[str, Path], tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "eval.json"
    code, stdout, err = _run(capsys, "eval", "-m", "mse", "-m", "psnr", "--pred", corpus["pred"],
                             "--target", corpus["target"], "--json", out, "--device", "cpu")
    assert code == EXIT_PARTIAL, err
    assert f"{N_GOOD} done, 5 skipped" in stdout
    result = json.loads(out.read_text())
    assert result["n_images"] == len(result["per_image"]) == N_GOOD
    _check_skipped(result["report"]["skipped"], corpus["pred"], EVAL_BAD)
    assert len(result["report"]["done"]) == N_GOOD

    # expected values straight from the PNG bytes (numpy, float64)
    mse = {}
    for i in range(N_GOOD):
        stem = f"img{i:03d}"
        p = _png(corpus["pred"] / f"{stem}.png").astype(np.float64) / 255
        t = _png(corpus["target"] / f"{stem}.png").astype(np.float64) / 255
        mse[stem] = float(((p - t) ** 2).mean())
    rows = {r["name"]: r for r in result["per_image"]}
    assert sorted(rows) == sorted(mse)
    for stem, value in mse.items():
        assert rows[stem]["mse"] == pytest.approx(value, rel=1e-5)
        assert rows[stem]["psnr"] == pytest.approx(10 * np.log10(1 / value), rel=1e-5)
    assert result["mean"]["mse"] == pytest.approx(np.mean(list(mse.values())), rel=1e-5)
    assert result["mean"]["psnr"] == pytest.approx(
        np.mean([10 * np.log10(1 / v) for v in mse.values()]), rel=1e-5)
