"""`stylebridge invert`: a tiny generator, a tiny test encoder, outputs checked against the API."""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor, nn

from stylebridge.cli.main import main
from stylebridge.core.checkpoint import read_header, save_checkpoint
from stylebridge.core.images import LINE, from_generator_range, load_image, to_uint8
from stylebridge.core.interfaces import Encoder, Inversion, Preprocessing
from stylebridge.core.stylegan2.checkpoint import load_stylegan2, save_stylegan2
from stylebridge.core.synthesis import synthesize
from stylebridge.pipelines.invert import load_inversion, save_inversion
from stylebridge.registry import get_registry, hookimpl, reset_registry

FEATURE_K = 2  # activation replaced by the test encoder's feature (32 × 8 × 8 in tiny_generator)


class PoolEncoder(Encoder):
    """w+ from a 2×2 average pool of the image; a feature for activation 2 from an 8×8 pool."""

    name = "test-pool-feature"

    def __init__(self, n_latent: int = 8, style_dim: int = 32, size: int = 32,
                 channels: int = 32, res: int = 8) -> None:
        super().__init__()
        self._config = {"n_latent": n_latent, "style_dim": style_dim, "size": size,
                        "channels": channels, "res": res}
        self.preprocessing = Preprocessing(size=size)
        self.head = nn.Linear(12, n_latent * style_dim)
        self.feat = nn.Conv2d(3, channels, 1)
        self.res = res

    def config(self) -> dict[str, Any]:
        return dict(self._config)

    def encode(self, images: Tensor) -> Inversion:
        x = self.preprocessing(images)
        pooled = nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)
        w_plus = self.head(pooled).view(x.shape[0], self._config["n_latent"], -1)
        feat = self.feat(nn.functional.adaptive_avg_pool2d(x, self.res))
        return Inversion(w_plus=w_plus, features={FEATURE_K: feat})


class _TestPlugin:
    @staticmethod
    @hookimpl
    def register_encoders(register: Any) -> None:
        register(PoolEncoder)


@pytest.fixture(autouse=True)
def _registry():
    reset_registry()
    get_registry().add_plugin(_TestPlugin, "test-invert")
    yield
    reset_registry()


@pytest.fixture
def models(tmp_path: Path) -> dict[str, Path]:
    from conftest import tiny_generator

    gen = save_stylegan2(tmp_path / "gen.safetensors", tiny_generator(seed=3))
    torch.manual_seed(7)
    enc = PoolEncoder()
    with torch.no_grad():
        enc.head.weight.mul_(4.0)
    ckpt = save_checkpoint(tmp_path / "enc.safetensors", enc.state_dict(), kind="encoder",
                           plugin=PoolEncoder.name, config=enc.config())
    return {"generator": gen, "encoder": ckpt}


def _photo(path: Path, h: int, w: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    base = rng.uniform(0.2, 0.8, 3)
    arr = np.stack([base[c] + 0.2 * np.sin((xx + 3 * c) / (4 + seed)) * np.cos(yy / 5)
                    for c in range(3)], axis=2)
    Image.fromarray((np.clip(arr, 0, 1) * 255).round().astype(np.uint8)).save(path)
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def _expected(models: dict[str, Path], image_path: Path) -> np.ndarray:
    """What the command should write for one image: encoder → synthesize, via the public API."""
    enc = get_registry().load("encoder", models["encoder"])
    gen = load_stylegan2(models["generator"]).generator
    with torch.no_grad():
        inv = enc.encode(load_image(image_path)[None])
        return to_uint8(from_generator_range(synthesize(gen, inv)))[0]


def test_invert_metrics_are_the_inversion_against_the_input(tmp_path: Path, models,
                                                            capsys) -> None:
    """Inputs at the generator's size are their own targets: metrics.json's MSE and PSNR are
    those of the written inversions against them (up to the PNG's 8-bit rounding)."""
    src = tmp_path / "aligned"
    src.mkdir()
    photos = [_photo(src / f"{n}.png", 32, 32, seed) for n, seed in (("a", 1), ("b", 2))]
    out = tmp_path / "out"
    code, text, err = run(capsys, "invert", "--encoder", f"{PoolEncoder.name}:{models['encoder']}",
                          "--generator", f"stylegan2:{models['generator']}", str(src),
                          "--out", str(out), "--no-align", "--device", "cpu",
                          "--metric", "mse", "--metric", "psnr")
    assert code == 0, err
    assert "input vs inversion" in text
    flat = "".join(text.split())  # rich wraps the caption anywhere
    assert f"meansof2photos;eachphoto'sownvalues:{out/'metrics.json'}(per_photo)" in flat
    mses = [float(np.mean((_png(out / f"{p.stem}_inversion.png") / 255.0
                           - _png(p) / 255.0) ** 2)) for p in photos]
    written = json.loads((out / "metrics.json").read_text())
    assert written["metrics"] == ["mse", "psnr"]
    got = written["input_vs_inversion"]
    assert got["mse"] == pytest.approx(np.mean(mses), abs=2e-4)
    assert got["psnr"] == pytest.approx(np.mean([-10 * np.log10(m) for m in mses]), abs=0.05)
    # and per photo, keyed by its file: which photo inverted worse
    assert abs(mses[0] - mses[1]) > 1e-3  # the photos are told apart by their values
    per_photo = written["per_photo"]
    assert list(per_photo) == [str(p) for p in photos]
    for path, mse in zip(photos, mses, strict=True):
        assert per_photo[str(path)]["mse"] == pytest.approx(mse, abs=2e-4)
        assert per_photo[str(path)]["psnr"] == pytest.approx(-10 * np.log10(mse), abs=0.05)


def test_invert_no_align_writes_images_latents_and_grid(tmp_path: Path, models, capsys) -> None:
    src = tmp_path / "aligned"
    src.mkdir()
    a = _photo(src / "a.png", 32, 32, 1)
    b = _photo(src / "b.png", 48, 40, 2)  # not square, not the encoder's size
    out = tmp_path / "out"
    code, _, err = run(capsys, "invert", "--encoder", f"{PoolEncoder.name}:{models['encoder']}",
                       "--generator", f"stylegan2:{models['generator']}", str(src),
                       "--out", str(out), "--no-align", "--save-latents", "--batch", "1",
                       "--device", "cpu")
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == [
        "a_inversion.png", "a_inversion.safetensors", "b_inversion.png",
        "b_inversion.safetensors", "grid.png", "invert.json", "metrics.json"]  # no temporaries
    for img in (a, b):
        got = _png(out / f"{img.stem}_inversion.png")
        assert got.shape == (32, 32, 3)
        want = _expected(models, img)
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    assert not np.array_equal(_png(out / "a_inversion.png"), _png(out / "b_inversion.png"))

    # latents: header, shapes, and a round trip to the same picture
    header = read_header(out / "a_inversion.safetensors")
    assert (header.kind, header.plugin) == ("inversion", PoolEncoder.name)
    assert header.config == {"feature_mode": "replace",
                             "encoder": f"{PoolEncoder.name}:{models['encoder']}",
                             "generator": str(models["generator"]),
                             "modifiers": []}  # none to rebuild (StyleRes lists its K)
    inv, _ = load_inversion(out / "a_inversion.safetensors")
    assert inv.w_plus.shape == (1, 8, 32)
    assert set(inv.features) == {FEATURE_K} and inv.features[FEATURE_K].shape == (1, 32, 8, 8)
    gen = load_stylegan2(models["generator"]).generator
    with torch.no_grad():
        again = to_uint8(from_generator_range(synthesize(gen, inv)))[0]
    np.testing.assert_array_equal(again, _png(out / "a_inversion.png"))

    # grid: label strip (whole 15 px lines, 2 px above and below) + one row per image,
    # input | inversion, 32 px tiles enlarged 4x (nearest: the same pixels) to 128 px so the
    # labels are readable, pad 2, after a column naming each row's photo (a.png, b.png)
    grid = _png(out / "grid.png")
    left, top = grid.shape[1] - (2 * 130 + 2), grid.shape[0] - (2 * 130 + 2)
    assert top % LINE == 4 and 8 <= left <= 170
    assert (grid[top:, :left] < 100).any()                      # the names: dark text on white
    row0 = grid[top + 2:top + 130]

    def big(tile: np.ndarray) -> np.ndarray:
        return tile.repeat(4, axis=0).repeat(4, axis=1)

    np.testing.assert_array_equal(row0[:, left + 2:left + 130], big(_png(a)))
    np.testing.assert_array_equal(row0[:, left + 132:left + 260],
                                  big(_png(out / "a_inversion.png")))


def test_invert_skips_bad_images_exit_3(tmp_path: Path, models, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # short relative paths in the report table
    src = Path("in")
    src.mkdir()
    _photo(src / "good.png", 32, 32, 3)
    (src / "broken.png").write_text("not a png")
    buf = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(buf, format="JPEG")
    (src / "cut.jpg").write_bytes(buf.getvalue()[:200])
    out = tmp_path / "out"
    code, stdout, _ = run(capsys, "invert", "-e", f"{PoolEncoder.name}:{models['encoder']}",
                          "-g", str(models["generator"]), str(src), "--out", str(out),
                          "--no-align", "--batch", "4")
    assert code == 3
    assert "1 done, 2 skipped" in stdout
    assert "in/broken.png" in stdout and "in/cut.jpg" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["good_inversion.png", "grid.png",
                                                     "invert.json", "metrics.json"]
    got = _png(out / "good_inversion.png")
    assert np.abs(got.astype(int) - _expected(models, src / "good.png").astype(int)).max() <= 1


@pytest.mark.skipif(importlib.util.find_spec("dlib") is None, reason="dlib is not installed")
def test_invert_with_alignment_skips_faceless_photos(tmp_path: Path, models, capsys) -> None:
    skdata = pytest.importorskip("skimage.data")
    src = tmp_path / "photos"
    src.mkdir()
    Image.fromarray(skdata.astronaut()).save(src / "astronaut.png")
    Image.fromarray(skdata.chelsea()).save(src / "chelsea.png")
    out = tmp_path / "out"
    code, stdout, _ = run(capsys, "invert", "-e", f"{PoolEncoder.name}:{models['encoder']}",
                          "-g", str(models["generator"]), str(src / "astronaut.png"),
                          str(src / "chelsea.png"), "--out", str(out), "--align-size", "256",
                          "--save-latents")
    assert code == 3
    assert "no face found" in stdout
    assert (out / "astronaut_inversion.png").is_file()
    assert not (out / "chelsea_inversion.png").exists()
    assert read_header(out / "astronaut_inversion.safetensors").extra["aligned"] is True
    # the inversion is of the aligned face, not of the raw photo
    from stylebridge.pipelines.align import align_face

    aligned = align_face(load_image(src / "astronaut.png"), 256).to_tensor()
    enc = get_registry().load("encoder", models["encoder"])
    gen = load_stylegan2(models["generator"]).generator
    with torch.no_grad():
        want = to_uint8(from_generator_range(synthesize(gen, enc.encode(aligned[None]))))[0]
    got = _png(out / "astronaut_inversion.png")
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


def test_wrong_encoder_checkpoints_give_one_line_errors(tmp_path: Path, models, capsys) -> None:
    img = _photo(tmp_path / "x.png", 32, 32, 4)
    out = tmp_path / "out"
    base = ["invert", str(img), "--out", str(out), "--no-align", "-g", str(models["generator"])]
    # a generator checkpoint given as the encoder
    code, _, err = run(capsys, *base, "-e", f"{PoolEncoder.name}:{models['generator']}")
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "of kind 'generator'" in err and "expected kind 'encoder'" in err
    # an encoder checkpoint of another plugin
    code, _, err = run(capsys, *base, "-e", f"tiny-pool:{models['encoder']}")
    assert code == 2
    assert err.count("\n") == 1
    assert f"plugin '{PoolEncoder.name}', expected 'tiny-pool'" in err
    # an encoder whose w+ does not fit the generator (18 × 512 vs 8 × 32)
    wide = PoolEncoder(n_latent=18, style_dim=512)
    ckpt = save_checkpoint(tmp_path / "wide.safetensors", wide.state_dict(), kind="encoder",
                           plugin=PoolEncoder.name, config=wide.config())
    code, _, err = run(capsys, *base, "-e", str(ckpt))
    assert code == 2
    assert err.count("\n") == 1 and "18 rows × 512" in err and "8 × 32" in err
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.skipif(importlib.util.find_spec("stylebridge_example_encoder") is None,
                    reason="the example plugin package is not installed")
def test_invert_with_example_plugin_says_random_weights(tmp_path: Path, models, capsys) -> None:
    img = _photo(tmp_path / "face.png", 40, 40, 5)
    out = tmp_path / "out"
    code, _, err = run(capsys, "invert", str(img), "--out", str(out), "--no-align",
                       "-g", str(models["generator"]),
                       "-e", "tiny-pool:n_latent=8,style_dim=32,input_size=32",
                       "--save-latents")
    assert code == 0, err
    assert "random" in " ".join(err.split())  # the notice: on stderr
    assert _png(out / "face_inversion.png").shape == (32, 32, 3)
    assert read_header(out / "face_inversion.safetensors").extra["random_weights"] is True


def test_save_inversion_rejects_batches_and_load_checks_kind(tmp_path: Path, models) -> None:
    inv = Inversion(w_plus=torch.randn(2, 8, 32))
    with pytest.raises(ValueError, match="batch of 2"):
        save_inversion(tmp_path / "x.safetensors", inv, encoder="e", encoder_spec="e",
                       generator="g")
    from stylebridge.errors import CheckpointError

    with pytest.raises(CheckpointError, match="of kind 'generator'"):
        load_inversion(models["generator"])
    one = Inversion(w_plus=torch.randn(1, 8, 32), features={3: torch.randn(1, 32, 8, 8)},
                    feature_mode="shift", extras={"c1": torch.randn(1, 4, 2, 2)})
    path = save_inversion(tmp_path / "one.safetensors", one, encoder="e", encoder_spec="e:x",
                          generator="g.safetensors")
    back, header = load_inversion(path)
    assert back.feature_mode == "shift" and header.config["encoder"] == "e:x"
    torch.testing.assert_close(back.w_plus, one.w_plus, rtol=0, atol=0)
    torch.testing.assert_close(back.features[3], one.features[3], rtol=0, atol=0)
    torch.testing.assert_close(back.extras["c1"], one.extras["c1"], rtol=0, atol=0)


def _grid_foot(path: Path, rows: int) -> np.ndarray:
    """The last line of the notice under grid.png's tiles (32 px tiles enlarged to 128 px,
    pad 2; the label strip is whole LINE px lines + 4 px, a notice adds its lines + 4 px);
    empty without a notice."""
    arr = _png(path)
    strips = arr.shape[0] - (rows * 130 + 2)
    assert strips % LINE in (4, 8), strips
    return arr[-(LINE + 4):] if strips % LINE == 8 else arr[:0]


def test_invert_grid_has_a_red_random_weights_footer(tmp_path: Path, models, capsys,
                                                     monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "500")
    img = _photo(tmp_path / "x.png", 32, 32, 4)
    gen = load_stylegan2(models["generator"]).generator
    rgen = save_stylegan2(tmp_path / "rgen.safetensors", gen, extra={"random_weights": True})
    base = ["invert", str(img), "--no-align", "--device", "cpu", "-e",
            f"{PoolEncoder.name}:{models['encoder']}"]
    # trained: no footer under the tiles, no notice
    code, stdout, err = run(capsys, *base, "-g", str(models["generator"]),
                            "--out", str(tmp_path / "t"))
    assert code == 0, err
    assert "RANDOM WEIGHTS" not in stdout and "RANDOM WEIGHTS" not in err
    assert _grid_foot(tmp_path / "t" / "grid.png", 1).size == 0
    # random generator: the notice on screen and a red footer that is not cut to a tile
    code, stdout, err = run(capsys, *base, "-g", str(rgen), "--out", str(tmp_path / "r"))
    assert code == 0, err
    assert f"RANDOM WEIGHTS: {rgen} is a random-weight generator" in " ".join(err.split())
    foot = _grid_foot(tmp_path / "r" / "grid.png", 1).astype(int)
    assert foot.shape[0] >= 12
    assert ((foot[..., 0] > 200) & (foot[..., 1] < 80) & (foot[..., 2] < 80)).any()


def test_invert_early_error_leaves_no_output_folder(tmp_path: Path, models, capsys) -> None:
    img = _photo(tmp_path / "x.png", 32, 32, 4)
    out = tmp_path / "out"
    code, _, err = run(capsys, "invert", str(img), "--out", str(out), "--no-align",
                       "-g", str(models["generator"]), "-e", f"{PoolEncoder.name}:n_latent=18")
    # stderr: the built encoder's random-weights notice, then the error alone
    notice, _, error = err.rstrip("\n").rpartition("\n")
    assert " ".join(notice.split()) == (f"RANDOM WEIGHTS: encoder '{PoolEncoder.name}' runs on "
                                        "untrained (random) weights; the results show no "
                                        "trained model")
    assert code == 2 and err.endswith("\n") and error.startswith("error: ") and "18 rows" in error
    assert not out.exists()


def test_invert_result_lists_each_photos_files(tmp_path: Path, models) -> None:
    """From Python the files were known only by convention; the result now names them."""
    from stylebridge.pipelines.invert import InvertConfig, invert

    src = tmp_path / "aligned"
    src.mkdir()
    photos = [_photo(src / f"{n}.png", 32, 32, seed) for n, seed in (("a", 1), ("b", 2))]
    out = tmp_path / "out"
    result = invert(InvertConfig(images=[src], encoder=f"{PoolEncoder.name}:{models['encoder']}",
                                 generator=f"stylegan2:{models['generator']}", out=out,
                                 align=False, device="cpu", save_latents=True))
    assert result.outputs == {str(p): {"inversion": f"{p.stem}_inversion.png",
                                       "latents": f"{p.stem}_inversion.safetensors"}
                              for p in photos}
    assert all((out / name).is_file() for files in result.outputs.values()
               for name in files.values())


def test_an_inversion_file_names_the_content_of_its_generator_and_photo(tmp_path: Path,
                                                                       models) -> None:
    """An inversion file named its generator and photo by path only: another file at that
    path (or none) could not be told from the one it was made with."""
    import hashlib
    import platform

    from stylebridge.core.checkpoint import read_header
    from stylebridge.pipelines.invert import InvertConfig, invert

    photo = _photo(tmp_path / "a.png", 32, 32, 1)
    out = tmp_path / "out"
    invert(InvertConfig(images=[photo], encoder=f"{PoolEncoder.name}:{models['encoder']}",
                        generator=f"stylegan2:{models['generator']}", out=out, align=False,
                        device="cpu", save_latents=True))
    extra = read_header(out / "a_inversion.safetensors").extra
    assert extra["generator_sha256"] == hashlib.sha256(models["generator"].read_bytes()).hexdigest()
    assert extra["source_sha256"] == hashlib.sha256(photo.read_bytes()).hexdigest()
    assert extra["source_path"] == str(photo.resolve())
    assert extra["software"]["python"] == platform.python_version()
    assert extra["software"]["torch"] == str(torch.__version__)


def test_metrics_json_says_what_was_scored(tmp_path: Path, models) -> None:
    """The numbers are the float pictures', not the PNGs' (eval on the PNGs differs in the
    last digits): metrics.json did not say so."""
    import json

    from stylebridge.pipelines.invert import InvertConfig, invert

    photo = _photo(tmp_path / "a.png", 32, 32, 1)
    out = tmp_path / "out"
    invert(InvertConfig(images=[photo], encoder=f"{PoolEncoder.name}:{models['encoder']}",
                        generator=f"stylegan2:{models['generator']}", out=out, align=False,
                        device="cpu"))
    scored = json.loads((out / "metrics.json").read_text())["scored_on"]
    assert scored.startswith("the rendered pictures in float [0, 1], before the PNGs' 8-bit")


def test_info_reads_the_reports_a_run_wrote(tmp_path: Path, models, capsys) -> None:
    """`info metrics.json` / `invert.json` said "is a text file, not a .safetensors
    checkpoint": a reviewer holding the reports could not ask how they were made."""
    import hashlib
    import json

    photo = _photo(tmp_path / "a.png", 32, 32, 1)
    out = tmp_path / "out"
    assert run(capsys, "invert", str(photo), "--no-align", "--device", "cpu", "-g",
               str(models["generator"]), "-e", f"{PoolEncoder.name}:{models['encoder']}",
               "--out", str(out))[0] == 0
    code, text, _ = run(capsys, "info", str(out / "invert.json"), "--json")
    assert code == 0
    info = json.loads(text)
    gen_sha = hashlib.sha256(models["generator"].read_bytes()).hexdigest()
    assert info["files"]["generator file"]["sha256"] == gen_sha
    assert info["files"]["encoder file"]["sha256"] == \
        hashlib.sha256(models["encoder"].read_bytes()).hexdigest()
    assert info["counts"] == {"done": 1, "skipped": 0} and info["random_weights"] is False
    assert info["options"]["encoder"] == f"{PoolEncoder.name}:{models['encoder']}"
    record = json.loads((out / "invert.json").read_text())
    assert info["means"]["inversion"] == record["metrics_input_vs_inversion"]
    code, text, _ = run(capsys, "info", str(out / "metrics.json"))
    said = " ".join(text.split())
    metrics = json.loads((out / "metrics.json").read_text())["input_vs_inversion"]
    assert code == 0 and f"means: inversion │ mse {metrics['mse']:.4g}" in said
    # the run's folder: each report in it
    code, text, _ = run(capsys, "info", str(out), "--json")
    assert code == 0 and [r["report"] for r in json.loads(text)] == ["invert.json",
                                                                       "metrics.json"]
    code, _, err = run(capsys, "info", str(tmp_path / "out" / ".."), "--json")
    assert code == 2 and "is a folder holding no report a stylebridge run wrote" in err
    other = tmp_path / "other.json"
    other.write_text('{"a": 1}')
    code, _, err = run(capsys, "info", str(other))
    assert code == 2 and err == (f"error: {other}: is a JSON file, not a report a stylebridge "
                                 "run wrote (nor a checkpoint)\n")
