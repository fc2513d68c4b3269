# ruff: noqa: F811  (the `files` fixture of test_plugin_output_checks is imported and used)
"""The encoder checks of the photo commands (:func:`~stylebridge.pipelines.adapter.attach_encoder`:
the encoder's ``check_generator`` before a photo is encoded; :func:`~stylebridge.pipelines.
adapter.check_inversion`: NaN/inf or wrong-dtype output refused in one line naming the encoder
and its package) in the other places that encode: the web app (a run with alpha calibration or
FeatureShift, and the list of encoders it offers), ``reproduce thesis-tables``' rows,
``train mindthegap``'s reference inversion and ``featureshift build-dataset``.  Before, a NaN
w+ or an infinite feature was stored as a FeatureShift target or became MindTheGap's
reference, a float64 w+ failed in the alpha fit with torch's "mat1 and mat2 must have the
same dtype", and ``build-dataset`` never asked ``check_generator``.

The test encoders and their checkpoints are :mod:`test_plugin_output_checks`' (imported)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import tiny_generator
from test_featureshift import ToyFSE, _one_thread  # noqa: F401  (_one_thread: a fixture)
from test_plugin_output_checks import (  # noqa: F401  (files: a fixture; register_encoders: the hook)
    BAD_OUTPUT,
    REFUSAL,
    SD,
    SIZE,
    OutputEncoder,
    Refuser,
    _run,
    files,
    register_encoders,
)

from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.featureshift.dataset import build_dataset
from stylebridge.pipelines.serve import RunRequest, ServeBackend, ServeConfig
from stylebridge.pipelines.serve.records import Photo
from stylebridge.plugins.domains.stylespace import StyleSpace

NAMED = "encoder 'qa-output' (from tests): "
NAN_ONE = "encode() returned NaN or infinite values in w+ for 1 of 1 image(s)"


def _domain(gen: torch.nn.Module) -> StyleSpace:
    return StyleSpace(size=SIZE, style_dim=SD,
                      channels={str(r): c for r, c in gen.cfg.channels.items()})


def _message(excinfo: pytest.ExceptionInfo[StylebridgeError]) -> str:
    text = str(excinfo.value)
    assert "\n" not in text
    return text


# ---------------------------------------------------------------------------------------------
# the web app (serve/backend.py: a run's encoder check; serve/encoders.py: the encoder list)


@pytest.fixture
def backend(files: dict[str, Path], tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> ServeBackend:
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "no-weights"))
    return ServeBackend(ServeConfig(generator=str(files["gen"]), domains=[str(files["domain"])],
                                    device="cpu", compile="off", work_dir=tmp_path / "work"))


def _photo() -> Photo:
    image = torch.rand(3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
    return Photo(image=image, aligned=image, name="p.png")


@pytest.mark.parametrize("option", ["alpha", "featureshift"])
@pytest.mark.parametrize(("mode", "said"), [("nan", NAN_ONE), ("float64", BAD_OUTPUT["float64"])],
                         ids=["nan", "float64"])
def test_serve_run_with_alpha_or_featureshift_refuses_bad_output_in_one_line(
        backend: ServeBackend, files: dict[str, Path], option: str, mode: str, said: str,
        registered: None) -> None:
    """Before: the blank-image probe checked shapes only; a float64 w+ failed in the alpha
    fit with torch's dtype error, a NaN one was fitted on (and then refused by the Adapter)."""
    spec = f"qa-output:{files[f'qa-output-{mode}']}"
    request = RunRequest(spec, list(backend.domains), **{option: True})
    OutputEncoder.encoded = 0
    with pytest.raises(StylebridgeError) as exc:
        backend.run(_photo(), request)
    assert _message(exc) == NAMED + said
    assert OutputEncoder.encoded == 1  # the probe only: no alpha fit, no FeatureShift built
    assert not list(backend.work_dir.glob("run-*"))  # nothing written from the spoilt probe


def test_serve_run_refuses_an_encoder_that_refuses_the_generator(
        backend: ServeBackend, files: dict[str, Path], registered: None) -> None:
    Refuser.encoded = 0
    spec = f"qa-refuser:{files['qa-refuser-ok']}"
    for option in ({}, {"alpha": True}):
        with pytest.raises(StylebridgeError) as exc:
            backend.run(_photo(), RunRequest(spec, list(backend.domains), **option))
        assert _message(exc) == REFUSAL
    assert Refuser.encoded == 0


def test_serve_encoder_list_says_what_the_run_says(backend: ServeBackend,
                                                   files: dict[str, Path],
                                                   registered: None) -> None:
    """The list checks on the ``meta`` device (no weights read): the refusal and a float64
    w+ are told there, in the run's words; NaN needs values, so the run tells it."""
    problem = backend.encoder_problem
    assert problem(f"qa-refuser:{files['qa-refuser-ok']}") == REFUSAL
    assert problem(f"qa-output:{files['qa-output-float64']}") == NAMED + BAD_OUTPUT["float64"]
    assert problem(f"qa-output:{files['qa-output-nan']}") is None
    assert problem(f"qa-output:{files['qa-output-ok']}") is None
    offered = {c.spec: c.problem for c in backend.encoder_options()}
    assert offered["qa-refuser"] == REFUSAL and offered["qa-output"] is None
    with pytest.raises(StylebridgeError) as exc:  # the one NaN is said by the run
        backend.run(_photo(), RunRequest(f"qa-output:{files['qa-output-nan']}",
                                         list(backend.domains)))
    assert _message(exc) == NAMED + NAN_ONE


# ---------------------------------------------------------------------------------------------
# reproduce thesis-tables (reproduce/rows.py: the rows' encoders go through the Adapter)


def test_reproduce_rows_refuse_a_refusing_encoder_and_bad_output(files: dict[str, Path],
                                                                 registered: None) -> None:
    from stylebridge.pipelines.reproduce.rows import RowBuilder, Sources

    gen = tiny_generator(size=SIZE, style_dim=SD)

    def builder(e4e: str) -> RowBuilder:
        return RowBuilder(gen, Sources(e4e=e4e), device=torch.device("cpu"),
                          methods={"d": _domain(gen)}, allow_random=False, seed=0)

    Refuser.encoded = 0
    with pytest.raises(StylebridgeError) as exc:
        builder(f"qa-refuser:{files['qa-refuser-ok']}").build("e4e")
    assert _message(exc) == REFUSAL
    assert Refuser.encoded == 0
    images = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    for mode in ("nan", "float64"):
        setup = builder(f"qa-output:{files[f'qa-output-{mode}']}").build("e4e")
        with pytest.raises(StylebridgeError) as exc:
            setup.adapter.run(images)
        assert _message(exc) == NAMED + BAD_OUTPUT[mode]


# ---------------------------------------------------------------------------------------------
# train mindthegap (train_mindthegap.py: the reference's inversion)


@pytest.mark.parametrize(("mode", "said"), [("nan", NAN_ONE), ("float64", BAD_OUTPUT["float64"]),
                                            ("refuser", REFUSAL)], ids=["nan", "float64", "refuser"])
def test_mindthegap_reference_inversion_is_checked(files: dict[str, Path], tmp_path: Path,
                                                   mode: str, said: str,
                                                   registered: None) -> None:
    """Before: a NaN w+ became the reference latent (a NaN domain trained for every step)."""
    from stylebridge.pipelines.train_mindthegap import MindTheGapConfig, invert_reference

    gen = tiny_generator(size=SIZE, style_dim=SD)
    spec = (f"qa-refuser:{files['qa-refuser-ok']}" if mode == "refuser"
            else f"qa-output:{files[f'qa-output-{mode}']}")
    cfg = MindTheGapConfig(reference=tmp_path / "ref.png", generator=str(files["gen"]),
                           out=tmp_path / "out.safetensors", encoder=spec)
    reference01 = torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    with pytest.raises(StylebridgeError) as exc:
        invert_reference(cfg, gen, reference01, torch.device("cpu"))
    assert _message(exc) == (said if mode == "refuser" else NAMED + said)


def test_mindthegap_good_encoder_still_inverts_the_reference(files: dict[str, Path],
                                                             tmp_path: Path,
                                                             registered: None) -> None:
    from stylebridge.pipelines.train_mindthegap import MindTheGapConfig, invert_reference

    gen = tiny_generator(size=SIZE, style_dim=SD)
    cfg = MindTheGapConfig(reference=tmp_path / "ref.png", generator=str(files["gen"]),
                           out=tmp_path / "out.safetensors",
                           encoder=f"qa-output:{files['qa-output-ok']}")
    reference01 = torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    w, history = invert_reference(cfg, gen, reference01, torch.device("cpu"))
    assert tuple(w.shape) == (1, gen.n_latent, SD) and history == []


# ---------------------------------------------------------------------------------------------
# featureshift build-dataset (featureshift/dataset.py: the FeatureShift targets)


def _build(files: dict[str, Path], out: Path, encoder: torch.nn.Module,
           guide: torch.nn.Module) -> None:
    gen = tiny_generator(size=SIZE, style_dim=SD)
    build_dataset([files["photos"]], out, generator=gen, encoder=encoder, guide=guide,
                  domains=[("d", _domain(gen))], image_size=16, shard_size=2, batch_size=2,
                  per_domain=False, dtype="float32")


@pytest.mark.parametrize("mode", list(BAD_OUTPUT))
@pytest.mark.parametrize("role", ["encoder", "guide"])
def test_featureshift_dataset_refuses_bad_output_of_the_encoder_or_the_guide(
        files: dict[str, Path], tmp_path: Path, mode: str, role: str, registered: None) -> None:
    """Before: an infinite feature or a float64 w+ was stored as a FeatureShift target, a
    NaN or infinite guide latent as ``w_guide``."""
    out = tmp_path / "data"
    bad = OutputEncoder(mode)
    if role == "encoder":
        encoder, guide = bad, OutputEncoder()
    else:
        encoder, guide = ToyFSE(), bad
    with pytest.raises(StylebridgeError) as exc:
        _build(files, out, encoder, guide)
    assert _message(exc) == NAMED + BAD_OUTPUT[mode]
    assert not list(out.glob("shards/*.safetensors"))  # no shard of the spoilt batch


@pytest.mark.parametrize("role", ["encoder", "guide"])
def test_featureshift_dataset_asks_check_generator_before_writing(
        files: dict[str, Path], tmp_path: Path, role: str, registered: None) -> None:
    """Before: ``build-dataset`` never asked the encoders' ``check_generator``."""
    Refuser.encoded = 0
    out = tmp_path / "data"
    encoder, guide = (Refuser(), OutputEncoder()) if role == "encoder" else (ToyFSE(), Refuser())
    with pytest.raises(StylebridgeError) as exc:
        _build(files, out, encoder, guide)
    assert _message(exc) == REFUSAL
    assert Refuser.encoded == 0 and not out.exists()


def test_featureshift_build_dataset_cli_says_it_in_one_line(
        files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        registered: None) -> None:
    out = tmp_path / "data"
    code, err = _run(["featureshift", "build-dataset",
                      "--encoder", f"qa-output:{files['qa-output-inf-feature']}",
                      "--guide", f"qa-output:{files['qa-output-ok']}",
                      "--generator", str(files["gen"]), "--images", str(files["photos"]),
                      "--domains", str(files["domain"]), "--out", str(out),
                      "--image-size", "16", "--no-per-domain", "--device", "cpu"], capsys)
    assert code == 2
    assert err[-1] == "error: " + NAMED + BAD_OUTPUT["inf-feature"]
    assert all(not line.startswith("error") for line in err[:-1])
    assert not list(out.glob("shards/*.safetensors"))


# ---------------------------------------------------------------------------------------------
# train domain --encoder (DiFa's latent loss encodes the generated images at every step) and
# the Adapter's guide (an encoder too)


def _train_argv(files: dict[str, Path], spec: str, out: Path) -> list[str]:
    return ["train", "domain", "--image", str(files["photos"] / "a.png"), "--method",
            "stylespace", "--generator", str(files["gen"]), "--loss", "difa_w:1",
            "--encoder", spec, "--steps", "2", "--batch", "2", "--device", "cpu",
            "--out", str(out)]


@pytest.mark.parametrize("mode", ["refuser", "nan", "float64"])
def test_train_domain_asks_the_encoder_and_checks_what_it_returns(
        files: dict[str, Path], tmp_path: Path, mode: str,
        capsys: pytest.CaptureFixture[str], registered: None) -> None:
    """Before: the encoder's check_generator was never asked (it trained), a NaN w+ became a
    "loss diverged" report blaming the loss, a float64 w+ a raw torch dtype error."""
    spec = (f"qa-refuser:{files['qa-refuser-ok']}" if mode == "refuser"
            else f"qa-output:{files[f'qa-output-{mode}']}")
    out = tmp_path / "trained.safetensors"
    code, err = _run(_train_argv(files, spec, out), capsys)
    said = {"refuser": REFUSAL, "nan": NAMED + NAN_ONE.replace("1 of 1", "1 of 2"),
            "float64": NAMED + BAD_OUTPUT["float64"]}[mode]
    assert code != 0 and err[-1] == f"error: {said}"
    assert not out.exists()


def test_train_domain_with_a_good_encoder_still_trains(files: dict[str, Path], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str],
                                                        registered: None) -> None:
    out = tmp_path / "trained.safetensors"
    code, err = _run(_train_argv(files, f"qa-output:{files['qa-output-ok']}", out), capsys)
    assert code == 0, err
    assert out.is_file()


def test_the_adapter_asks_the_guide_check_generator(files: dict[str, Path],
                                                    registered: None) -> None:
    from stylebridge.core.interfaces import Renderer
    from stylebridge.core.synthesis import synthesize
    from stylebridge.pipelines.adapter import Adapter

    class Guided(Renderer):  # a renderer that reads a guide's latents, as FeatureShift does
        name = "test-guided"
        needs_guide = True

        def render(self, generator, inversion, method=None, *, offset_scale=None, guide=None):
            return synthesize(generator, inversion, method=method, offset_scale=offset_scale)

    gen = tiny_generator(size=SIZE, style_dim=SD)
    with pytest.raises(StylebridgeError) as exc:
        Adapter(OutputEncoder(), gen, [_domain(gen)], renderer=Guided(), guide=Refuser())
    assert _message(exc) == REFUSAL
    Adapter(OutputEncoder(), gen, [_domain(gen)], renderer=Guided(), guide=OutputEncoder())
