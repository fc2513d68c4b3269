"""``stylebridge calibrate NAME`` fits any fittable calibrator, not only the built-in alpha:
a third party's calibrator written as the interface asks (``fittable``, ``from_style_means``)
is saved through ``Calibrator.save``, summarised without an alpha table, refused the
alpha-only options (``--fit``, ``--power``, ``--skip-layers``) it does not declare in
``fit_options``, and an exception in its code is one line naming it and its package.

The calibrators and the encoder here are registered from this module (``registered``: the
package ``tests``).  The encoder gives every photo the same w+, so the encoder side of the
fit is known exactly: the styles of that w+."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from torch import Tensor

from stylebridge.cli.main import main
from stylebridge.core.checkpoint import load_checkpoint
from stylebridge.core.interfaces import Calibrator, Encoder, FitReport, Inversion, Preprocessing
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.presets import TinyPreset, build_tiny_preset
from stylebridge.registry import hookimpl

N_LATENT, STYLE_DIM = 8, 32  # the tiny preset's generator
SAMPLES = 8


def fixed_w(n_latent: int = N_LATENT, style_dim: int = STYLE_DIM) -> Tensor:
    """The w+ :class:`QaConst` gives every photo."""
    return torch.linspace(-1.0, 1.0, n_latent * style_dim).view(n_latent, style_dim) * 0.5


class QaConst(Encoder):
    """The same w+ (:func:`fixed_w`) for every photo: the encoder's style means are known."""

    name = "qa-const"

    def __init__(self, n_latent: int = N_LATENT, style_dim: int = STYLE_DIM) -> None:
        super().__init__()
        self.n_latent, self.style_dim = n_latent, style_dim
        self.preprocessing = Preprocessing(size=16)

    def config(self) -> dict[str, Any]:
        return {"n_latent": self.n_latent, "style_dim": self.style_dim}

    def encode(self, images: Tensor) -> Inversion:
        w = fixed_w(self.n_latent, self.style_dim).to(images)
        return Inversion(w_plus=w.expand(images.shape[0], -1, -1).clone())


class QaRatio(Calibrator):
    """Offset scale of layer i = ‖encoder mean_i‖ / ‖mapping mean_i‖; the layers in ``off``
    (layer 0 when fitted) get none and are reported.  Written as the interface asks:
    ``fittable`` and ``from_style_means``, no ``save``, no ``fit_report``, no fit options."""

    name = "qa-ratio"
    fittable = True

    def __init__(self, n_layers: int = 0, off: Sequence[int] = ()) -> None:
        super().__init__()
        self.n_layers, self.off = int(n_layers), [int(i) for i in off]
        self.register_buffer("ratio", torch.ones(self.n_layers))

    def config(self) -> dict[str, Any]:
        return {"n_layers": self.n_layers, "off": list(self.off)}

    @classmethod
    def from_style_means(cls, source_means: Sequence[Tensor], encoder_means: Sequence[Tensor],
                         **config: Any) -> QaRatio:
        calib = cls(n_layers=len(source_means), off=[0], **config)
        with torch.no_grad():
            for i, (x, y) in enumerate(zip(source_means, encoder_means, strict=True)):
                calib.ratio[i] = y.double().norm() / x.double().norm()
        return calib

    def offset_scale(self, n_layers: int) -> Tensor:
        scale = self.ratio.detach().float().cpu().clone()
        scale[self.off] = 0.0
        return scale

    def unreliable_layers(self) -> list[int]:
        return list(self.off)


class QaTable(QaRatio):
    """:class:`QaRatio` with a table of its own (``fit_report``) and ``--skip-layers``."""

    name = "qa-table"
    fit_options: ClassVar[frozenset[str]] = frozenset({"skip_layers"})

    @classmethod
    def from_style_means(cls, source_means: Sequence[Tensor], encoder_means: Sequence[Tensor],
                         **config: Any) -> QaRatio:
        skip = config.pop("skip_layers")
        calib = super().from_style_means(source_means, encoder_means, **config)
        calib.off = sorted({0, *skip})
        return calib

    def fit_report(self, generator: Any) -> FitReport:
        return FitReport("ratio per style layer", ["layer", "ratio"],
                         [[str(i), f"{float(r):.3f}"] for i, r in enumerate(self.ratio)],
                         labels=1, notes=["ratio: encoder / mapping norm"],
                         warnings=[f"switched off: {self.off}"])


class QaNone(QaRatio):
    """Sets no offset scale (``None``) and switches no layer off."""

    name = "qa-none"

    def offset_scale(self, n_layers: int) -> None:
        return None

    def unreliable_layers(self) -> list[int]:
        return []


class QaPlain(Calibrator):
    """A calibrator that cannot be fitted (no ``fittable``)."""

    name = "qa-plain"


class QaBrokenFit(QaRatio):
    """``from_style_means`` with a bug."""

    name = "qa-broken-fit"

    @classmethod
    def from_style_means(cls, source_means: Sequence[Tensor], encoder_means: Sequence[Tensor],
                         **config: Any) -> QaRatio:
        return cls.no_such_helper(source_means)  # type: ignore[attr-defined]


class QaBrokenSave(QaRatio):
    """A ``save`` of its own that fails."""

    name = "qa-broken-save"

    def save(self, path: Any, *, extra: Any = None) -> Path:
        raise KeyError("no slot for the header")


class QaDictReport(QaRatio):
    """A ``fit_report`` that returns the wrong type."""

    name = "qa-dict-report"

    def fit_report(self, generator: Any) -> Any:
        return {"title": "mine"}


@hookimpl
def register_encoders(register: Any) -> None:
    register(QaConst)


@hookimpl
def register_calibrators(register: Any) -> None:
    for cls in (QaRatio, QaTable, QaNone, QaPlain, QaBrokenFit, QaBrokenSave, QaDictReport):
        register(cls)


@pytest.fixture(scope="module")
def preset(tmp_path_factory: pytest.TempPathFactory) -> TinyPreset:
    return build_tiny_preset(tmp_path_factory.mktemp("preset") / "preset")


def _calibrate(preset: TinyPreset, name: str, out: Path, *extra: str,
               generator: str | None = None) -> int:
    return main(["calibrate", name, "-e", "qa-const", "-g",
                 generator or str(preset.generator), "--images", str(preset.images),
                 "--no-align", "--samples", str(SAMPLES), "--device", "cpu", "--out", str(out),
                 *extra])


def _expected_scale(preset: TinyPreset) -> Tensor:
    """QaRatio's offset scale, by hand: the norms of the encoder's style means (the styles of
    the fixed w+) over those of the mapping network's (``SAMPLES`` z of seed 0)."""
    from stylebridge.plugins.calibrators.alpha import mapping_style_means
    from stylebridge.registry.resolve import load_generator

    gen, _ = load_generator(str(preset.generator), "cpu")
    with torch.no_grad():
        enc = [s[0] for s in gen.styles(fixed_w()[None])]
        src = mapping_style_means(gen, SAMPLES, seed=0)
    scale = torch.stack([e.double().norm() / s.double().norm() for s, e in zip(src, enc, strict=True)])
    scale = scale.float()
    scale[0] = 0.0
    return scale


def test_a_third_party_calibrator_is_fitted_saved_and_loads_back(
        preset: TinyPreset, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        registered: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    out = tmp_path / "ratio.safetensors"
    assert _calibrate(preset, "qa-ratio", out) == 0
    stdout, stderr = capsys.readouterr()
    expected = _expected_scale(preset)
    # the generic summary: its offset scale per style layer, its unreliable layers
    text = " ".join(stdout.split())
    assert f"qa-ratio offset scale per style layer (3 photos, {SAMPLES} samples)" in text
    assert "offset scale ×: what each layer's domain offset is multiplied by (0 = switched " \
           "off)" in text
    assert "│ 1 │ to_rgb1.conv │" in text and f"│ {float(expected[1]):.4g} │" in text
    assert "alpha" not in stdout
    assert "layers [0] get no domain offset: calibrator 'qa-ratio' (from tests) switches " \
           "them off" in " ".join(stderr.split())
    assert f"wrote {out}" in text

    # the file: the generic checkpoint (state_dict + name + config, kind calibrator, extra)
    header, tensors = load_checkpoint(out, kind="calibrator", plugin="qa-ratio")
    assert header.config == {"n_layers": 11, "off": [0]}
    assert header.extra["n_images"] == 3 and header.extra["samples"] == SAMPLES
    assert set(tensors) == {"ratio"}

    # back by the registry, and through adapt --calibrate FILE
    from stylebridge.registry.resolve import load_plugin

    loaded = load_plugin("calibrator", str(out))
    assert type(loaded) is QaRatio
    torch.testing.assert_close(loaded.offset_scale(11), expected, rtol=1e-5, atol=1e-6)
    adapted = tmp_path / "adapted"
    assert main(["adapt", "-e", f"e4e:{preset.e4e}", "-g", str(preset.generator), "-m",
                 str(preset.domains / "tiny-pixar.safetensors"), "--calibrate", str(out),
                 "--no-align", "--device", "cpu", str(preset.images / "photo0.png"),
                 "--out", str(adapted)]) == 0
    record = json.loads((adapted / "adapt.json").read_text())
    torch.testing.assert_close(torch.tensor(record["offset_scale"]), expected, rtol=1e-5,
                               atol=1e-6)
    assert record["calibrator_zeroed_layers"] == [0]


def test_a_calibrators_own_table_and_one_without_a_scale(
        preset: TinyPreset, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        registered: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    # fit_report: its table, notes and warnings; --skip-layers, which it declares, reaches it
    out = tmp_path / "table.safetensors"
    assert _calibrate(preset, "qa-table", out, "--skip-layers", "2") == 0
    stdout, stderr = capsys.readouterr()
    text = " ".join(stdout.split())
    assert f"ratio per style layer (3 photos, {SAMPLES} samples)" in text
    assert "ratio: encoder / mapping norm" in text and "offset scale per" not in text
    assert "switched off: [0, 2]" in stderr and "get no domain offset" not in stderr
    assert load_checkpoint(out, kind="calibrator", plugin="qa-table")[0].config["off"] == [0, 2]

    # no offset scale: one line
    out = tmp_path / "none.safetensors"
    assert _calibrate(preset, "qa-none", out) == 0
    stdout, stderr = capsys.readouterr()
    assert f"qa-none: no per-layer offset scale (3 photos, {SAMPLES} samples)" in \
           " ".join(stdout.split())
    assert "no domain offset" not in stderr
    assert out.is_file()


@pytest.mark.parametrize(("name", "options", "said"), [
    ("qa-plain", [], "error: calibrator 'qa-plain' (from tests) cannot be fitted by "
                     "`stylebridge calibrate`"),
    ("qa-ratio", ["--power", "-1"], "error: calibrator 'qa-ratio' (from tests) does not take "
                                    "--power; leave it out"),
    ("qa-ratio", ["--fit", "origin"], "error: calibrator 'qa-ratio' (from tests) does not "
                                      "take --fit; leave it out"),
    ("qa-ratio", ["--power", "2", "--skip-layers", "0", "--fit", "intercept"],
     "error: calibrator 'qa-ratio' (from tests) does not take --skip-layers or --fit or "
     "--power; leave them out"),
    ("qa-table", ["--fit", "intercept"], "error: calibrator 'qa-table' (from tests) does not "
                                         "take --fit (it takes --skip-layers only); leave it "
                                         "out"),
])
def test_what_a_calibrator_cannot_take_is_refused_before_anything_loads(
        name: str, options: list[str], said: str, preset: TinyPreset, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], registered: None) -> None:
    # a generator that does not exist: the refusal comes before it (or anything) is loaded
    out = tmp_path / "c.safetensors"
    rc = _calibrate(preset, name, out, *options, generator=str(tmp_path / "missing.safetensors"))
    assert rc == 2
    assert capsys.readouterr().err.splitlines() == [said]
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_alpha_only_options_are_refused_from_python_too(preset: TinyPreset, tmp_path: Path,
                                                        registered: None) -> None:
    from stylebridge.pipelines.calibrate import CalibrateConfig, prepare_calibrate

    config = CalibrateConfig(images=[preset.images], align=False, device="cpu",
                             calibrator="qa-ratio", encoder="qa-const",
                             generator=str(preset.generator), out=tmp_path / "c.safetensors",
                             power=1.0)
    with pytest.raises(StylebridgeError, match=r"^calibrator 'qa-ratio' \(from tests\) does "
                                               r"not take --power; leave it out$"):
        prepare_calibrate(config)


@pytest.mark.parametrize(("name", "said"), [
    ("qa-broken-fit", "error: calibrator 'qa-broken-fit' (from tests): from_style_means raised "
                      "AttributeError: type object 'QaBrokenFit' has no attribute "
                      "'no_such_helper'"),
    ("qa-broken-save", "error: calibrator 'qa-broken-save' (from tests): save raised "
                       "KeyError: 'no slot for the header'"),
    # was an AttributeError with exit code 1, after the file was written
    ("qa-dict-report", "error: calibrator 'qa-dict-report' (from tests): fit_report returned "
                       "a dict, not a FitReport (or None)"),
])
def test_an_error_in_a_third_party_calibrator_is_one_line_naming_it(
        name: str, said: str, preset: TinyPreset, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], registered: None) -> None:
    out = tmp_path / "c.safetensors"
    assert _calibrate(preset, name, out) == 2
    assert capsys.readouterr().err.splitlines()[-1] == said
    assert not out.exists()


def test_alpha_declares_its_options_and_its_table_reads_as_analyze_names_them() -> None:
    """alpha keeps --skip-layers, --fit and --power, and its table's columns are those of
    ``analyze latents`` (its own copy, since a plugin cannot import the pipelines)."""
    from stylebridge.pipelines.analyze.report import QUANTITIES
    from stylebridge.plugins.calibrators.alpha import ALPHA_COLUMN, R2_COLUMN, AlphaCalibrator

    assert AlphaCalibrator.fit_options == {"skip_layers", "fit", "power"}
    assert (QUANTITIES["alpha"].header, QUANTITIES["alpha"].meaning) == ALPHA_COLUMN
    assert (QUANTITIES["r2"].header, QUANTITIES["r2"].meaning) == R2_COLUMN
    assert Calibrator.fit_options == frozenset()
    assert Calibrator.fit_report(AlphaCalibrator(), None) is None
