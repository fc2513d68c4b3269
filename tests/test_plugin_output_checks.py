"""What a third-party plugin's mistakes do to the photo commands and ``train domain``: an
encoder whose ``check_generator`` refuses the generator is refused by every photo command
before a photo is encoded (only ``adapt`` asked it); an encoder that returns NaN/inf or
float64 latents is refused in one line naming it and its package (it gave black pictures,
"mse n/a" and exit code 0, or torch's "mat1 and mat2 must have the same dtype"); a fresh
domain method whose ``check_generator`` refuses the generator is refused before training
(it trained a domain ``adapt`` then refused)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import tiny_generator
from PIL import Image
from torch import Tensor, nn

import stylebridge.pipelines.train_domain as td
from stylebridge.cli.main import main
from stylebridge.core.checkpoint import save_checkpoint
from stylebridge.core.interfaces import DomainMethod, Encoder, Inversion, Preprocessing
from stylebridge.core.stylegan2.checkpoint import save_stylegan2
from stylebridge.errors import CheckpointError, StylebridgeError
from stylebridge.pipelines.adapter import Adapter, check_inversion
from stylebridge.plugins.domains.stylespace import StyleSpace
from stylebridge.registry import hookimpl

SIZE, SD, N_LATENT = 32, 32, 8
K = 2  # the activation the "feature" modes return a feature at
REFUSAL = "qa-refuser: this encoder refuses every generator"


class OutputEncoder(Encoder):
    """Pools the image to 2×2, maps it linearly to w+; ``mode`` spoils the output: ``nan``
    (NaN w+ for the second image), ``inf-feature`` (an infinite feature at activation K),
    ``float64`` (w+ as float64), ``ok``.  Counts the images it encodes."""

    name = "qa-output"
    encoded = 0

    def __init__(self, mode: str = "ok") -> None:
        super().__init__()
        self.mode = mode
        self.preprocessing = Preprocessing(size=16)
        self.head = nn.Linear(12, N_LATENT * SD)

    def config(self) -> dict[str, Any]:
        return {"mode": self.mode}

    def encode(self, images: Tensor) -> Inversion:
        type(self).encoded += int(images.shape[0])
        x = nn.functional.adaptive_avg_pool2d(self.preprocessing(images), 2).flatten(1)
        w_plus = self.head(x).view(-1, N_LATENT, SD)
        features: dict[int, Tensor] = {}
        if self.mode == "nan":
            w_plus = w_plus.clone()
            w_plus[-1, 3, 5] = float("nan")
        elif self.mode == "float64":
            w_plus = w_plus.double()
        elif self.mode == "inf-feature":
            shape = tiny_generator(size=SIZE, style_dim=SD).feature_shapes()[K]
            feature = torch.zeros(w_plus.shape[0], *shape)
            feature[0, 0, 0, 0] = float("inf")
            features[K] = feature
        return Inversion(w_plus=w_plus, features=features)


class Refuser(OutputEncoder):
    """Refuses every generator (as an encoder made for another generator does)."""

    name = "qa-refuser"

    def check_generator(self, generator: Any) -> None:
        raise CheckpointError(REFUSAL)


class Gain(DomainMethod):
    """CONTRIBUTING.md's style-gain example: ``n_layers`` gains (26 by default, the 1024px
    generator's), refused by ``check_generator`` on a generator with another count."""

    name = "qa-gain"

    def __init__(self, n_layers: int = 26) -> None:
        super().__init__()
        self.n_layers = n_layers
        self.gain = nn.Parameter(torch.zeros(n_layers))

    def config(self) -> dict[str, Any]:
        return {"n_layers": self.n_layers}

    def check_generator(self, generator: Any) -> None:
        if generator.n_style_layers != self.n_layers:
            raise CheckpointError(f"domain {self.label or self.name} has {self.n_layers} style "
                                  f"layers, the generator {generator.n_style_layers}")

    def styles(self, generator: Any, w_plus: Tensor, offset_scale: Any = None) -> list[Tensor]:
        return [s * (1 + self.gain[i]) for i, s in enumerate(generator.styles(w_plus))]


@hookimpl
def register_encoders(register: Any) -> None:
    register(OutputEncoder)
    register(Refuser)


@hookimpl
def register_domain_methods(register: Any) -> None:
    register(Gain)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    gen = tiny_generator(size=SIZE, style_dim=SD)
    out = {"gen": save_stylegan2(tmp_path / "gen.safetensors", gen),
           "domain": StyleSpace(size=SIZE, style_dim=SD,
                                channels={str(r): c for r, c in gen.cfg.channels.items()}
                                ).save(tmp_path / "d.safetensors")}
    torch.manual_seed(0)
    for cls, mode in ((Refuser, "ok"), (OutputEncoder, "nan"), (OutputEncoder, "float64"),
                      (OutputEncoder, "inf-feature"), (OutputEncoder, "ok")):
        enc = cls(mode)
        out[f"{cls.name}-{mode}"] = save_checkpoint(
            tmp_path / f"{cls.name}-{mode}.safetensors", enc.state_dict(), kind="encoder",
            plugin=enc.name, config=enc.config())
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(photos / f"{name}.png")
    out["photos"] = photos
    return out


def _argv(command: str, encoder: str, files: dict[str, Path], out: Path) -> list[str]:
    common = ["--encoder", encoder, "--generator", str(files["gen"]), "--no-align",
              "--device", "cpu"]
    photos = str(files["photos"])
    return {
        "adapt": ["adapt", *common, "--method", str(files["domain"]), "--out", str(out), photos],
        "invert": ["invert", *common, "--out", str(out), photos],
        "calibrate": ["calibrate", "alpha", *common, "--images", photos, "--samples", "8",
                      "--out", str(out.with_suffix(".safetensors"))],
        "analyze-latents": ["analyze", "latents", *common, "--images", photos, "--samples", "8",
                            "--out", str(out)],
        "analyze-shift-norms": ["analyze", "shift-norms", *common, "--images", photos,
                                "--domain", str(files["domain"]), "--out", str(out)],
    }[command]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = main(argv)
    return code, capsys.readouterr().err.strip().splitlines()


PHOTO_COMMANDS = ["adapt", "invert", "calibrate", "analyze-latents", "analyze-shift-norms"]


@pytest.mark.parametrize("command", PHOTO_COMMANDS)
def test_every_photo_command_asks_check_generator_before_encoding(
        command: str, files: dict[str, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str], registered: None) -> None:
    Refuser.encoded = 0
    out = tmp_path / "out"
    code, err = _run(_argv(command, f"qa-refuser:{files['qa-refuser-ok']}", files, out), capsys)
    assert (code, err) == (2, [f"error: {REFUSAL}"])  # adapt's line, word for word
    assert Refuser.encoded == 0
    assert not out.exists() and not out.with_suffix(".safetensors").exists()


BAD_OUTPUT = {
    "nan": "encode() returned NaN or infinite values in w+ for 1 of 2 image(s)",
    "inf-feature": "encode() returned NaN or infinite values in the feature at activation 2 "
                   "for 1 of 2 image(s)",
    "float64": "encode() returned w+ as torch.float64, the generator takes torch.float32 "
               "(return it as .to(torch.float32))",
}


@pytest.mark.parametrize("command", PHOTO_COMMANDS[:4])
@pytest.mark.parametrize("mode", list(BAD_OUTPUT))
def test_nan_inf_or_float64_output_is_refused_naming_the_encoder_and_package(
        command: str, mode: str, files: dict[str, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str], registered: None) -> None:
    out = tmp_path / "out"
    code, err = _run(_argv(command, f"qa-output:{files[f'qa-output-{mode}']}", files, out),
                     capsys)
    assert code == 2
    assert err[-1] == f"error: encoder 'qa-output' (from tests): {BAD_OUTPUT[mode]}"
    assert all(not line.startswith("error") for line in err[:-1])  # one error line
    # no picture, grid, metrics or calibrator was written from the spoilt batch
    assert not out.exists() and not out.with_suffix(".safetensors").exists()


def test_a_good_encoder_still_runs_every_photo_command(files: dict[str, Path], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       registered: None) -> None:
    for command in PHOTO_COMMANDS[:4]:
        out = tmp_path / command
        code, err = _run(_argv(command, f"qa-output:{files['qa-output-ok']}", files, out),
                         capsys)
        assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "invert").glob("*.png")) == [
        "a_inversion.png", "b_inversion.png", "grid.png"]


def test_adapter_api_refuses_bad_output_and_check_inversion_passes_good_output(
        registered: None) -> None:
    gen = tiny_generator(size=SIZE, style_dim=SD)
    domain = StyleSpace(size=SIZE, style_dim=SD,
                        channels={str(r): c for r, c in gen.cfg.channels.items()})
    images = torch.rand(2, 3, 20, 20, generator=torch.Generator().manual_seed(1))
    with pytest.raises(StylebridgeError) as exc:
        Adapter(OutputEncoder("nan"), gen, [domain]).run(images)
    assert str(exc.value) == f"encoder 'qa-output' (from tests): {BAD_OUTPUT['nan']}"
    with pytest.raises(StylebridgeError, match="refuses every generator"):
        Adapter(Refuser(), gen, [domain])

    good = OutputEncoder()
    inversion = good.encode(images)
    assert check_inversion(inversion, gen, good, 2) is inversion
    with pytest.raises(StylebridgeError, match=r"returned 2 inversions for 3 images$"):
        check_inversion(inversion, gen, good, 3)
    # bf16 latents are what an encoder gives under the caller's own torch.autocast
    half = Inversion(w_plus=inversion.w_plus.bfloat16())
    with pytest.raises(StylebridgeError, match=r"returned w\+ as torch\.bfloat16"):
        check_inversion(half, gen, good, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert check_inversion(half, gen, good, 2) is half


def test_a_domain_method_that_refuses_the_generator_is_refused_before_training(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        registered: None) -> None:
    gen = tiny_generator(size=SIZE, style_dim=SD)
    why = ("domain method 'qa-gain' (from tests) does not fit the generator (32px, style_dim "
           "32): domain qa-gain has 26 style layers, the generator 11")
    with pytest.raises(StylebridgeError) as exc:
        td.build_domain_method("qa-gain", gen)
    assert str(exc.value) == why
    assert td.build_domain_method("qa-gain:n_layers=11", gen).n_layers == 11  # it fits

    def no_clip(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("CLIP loaded: the refusal came after the training setup")

    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(td, "build_clip_models", no_clip)
    ckpt = save_stylegan2(tmp_path / "g.safetensors", gen)
    out = tmp_path / "d1.safetensors"
    code, err = _run(["train", "domain", "--method", "qa-gain", "--text", "pixar",
                      "--generator", str(ckpt), "--out", str(out), "--device", "cpu",
                      "--allow-random-clip", "--steps", "1"], capsys)
    assert (code, err) == (2, ["error: " + why.replace("the generator (", f"{ckpt} (", 1)])
    assert not out.exists()
