"""The ``id`` metric's backend selection (issue 16, item 4).

The thesis reports "the ID metric from pSp" (ArcFace IR-SE50 cosine).  ``id`` uses that
backend whenever the ``arcface-irse50`` weights are installed and falls back to dlib with a
notice otherwise; the key names the backend.  "Installed" is played by a tiny IR-SE network
with RANDOM weights registered in a temporary ``STYLEBRIDGE_HOME``: it only checks the
selection and the arithmetic, its numbers are not an identity metric.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylebridge.errors import StylebridgeError
from stylebridge.plugins.losses.recon import IDLoss
from stylebridge.plugins.metrics.id import IDMetric
from stylebridge.registry.weights import WeightsManager

irse = pytest.importorskip("stylebridge.plugins.nets.irse")
skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture
def random_arcface_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> torch.nn.Module:
    """A tiny RANDOM-weight IR-SE ArcFace registered as ``arcface-irse50`` (test stand-in)."""
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "home"))
    torch.manual_seed(0)
    net = irse.ArcFaceIRSE50(widths=(16, 24, 32, 48), units=(1, 1, 1, 1)).eval()
    upstream = tmp_path / "RANDOM_tiny_model_ir_se50.pth"  # upstream layout, random values
    torch.save(net.state_dict(), upstream)
    WeightsManager().register("arcface-irse50", upstream)
    return net


@pytest.fixture
def no_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "no-weights"))


def _faces() -> tuple[torch.Tensor, torch.Tensor]:
    face = skimage_data.astronaut()[:256, 128:384]
    a = torch.from_numpy(np.ascontiguousarray(face)).permute(2, 0, 1)[None].double() / 255
    b = torch.from_numpy(np.ascontiguousarray(face[:, ::-1])).permute(2, 0, 1)[None].double() / 255
    return a, b


def test_default_is_arcface_when_installed(random_arcface_installed) -> None:
    net = random_arcface_installed
    metric = IDMetric()
    assert metric.backend == "arcface" and metric.key == "id[arcface]"
    assert metric.config()["backend"] == "auto"
    assert not any("dlib" in n for n in metric.notes())
    a, b = _faces()
    metric.update(a, b)

    def emb(x: torch.Tensor) -> torch.Tensor:  # pSp's IDLoss input: [-1, 1], crop, pool to 112
        x = (x.float() * 2 - 1)[:, :, 35:223, 32:220]
        return torch.nn.functional.normalize(net(torch.nn.AdaptiveAvgPool2d(112)(x)), dim=1)

    with torch.no_grad():
        want = float((emb(a) * emb(b)).sum())
    assert list(metric.compute()) == ["id[arcface]"]
    assert metric.compute()["id[arcface]"] == pytest.approx(want, abs=1e-5)


def test_id_loss_uses_the_installed_weights(random_arcface_installed) -> None:
    net = random_arcface_installed
    loss = IDLoss()
    assert not loss.random_weights and loss.config()["weights"] is None
    a, b = _faces()
    x, y = (a.float() * 2 - 1), (b.float() * 2 - 1)  # the loss takes [-1, 1] images

    def emb(t: torch.Tensor) -> torch.Tensor:
        t = t[:, :, 35:223, 32:220]
        return torch.nn.functional.normalize(net(torch.nn.AdaptiveAvgPool2d(112)(t)), dim=1)

    from stylebridge.core.interfaces import LossBatch

    with torch.no_grad():
        want = 1 - float((emb(x) * emb(y)).sum())
        got = float(loss(LossBatch(output=x, target=y)))
    assert got == pytest.approx(want, abs=1e-5)


def test_falls_back_to_dlib_with_a_notice(no_weights) -> None:
    metric = IDMetric()
    assert metric.backend == "dlib" and metric.key == "id[dlib]"
    assert "not comparable" in metric.notes()[0]
    assert metric.notes()[0].endswith("install them with `stylebridge weights fetch "
                                      "arcface-irse50`")
    a, _ = _faces()
    metric.update(a.float(), a.float())
    assert list(metric.compute()) == ["id[dlib]"]
    assert metric.compute()["id[dlib]"] == pytest.approx(1.0)
    with pytest.raises(StylebridgeError, match="needs weights"):
        IDMetric(backend="arcface")
    from stylebridge.plugins.losses.recon import IDLoss

    with pytest.raises(StylebridgeError, match=r"run `stylebridge weights fetch arcface-irse50`"):
        IDLoss()


def test_explicit_backend_wins(random_arcface_installed) -> None:
    metric = IDMetric(backend="dlib")
    assert metric.key == "id[dlib]" and metric.notes() == []


def test_eval_json_names_the_backend(random_arcface_installed, tmp_path: Path) -> None:
    from stylebridge.cli.main import main

    a, b = _faces()
    for folder, img in (("pred", a), ("target", b)):
        (tmp_path / folder).mkdir()
        arr = (img[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(arr).save(tmp_path / folder / "x.png")
    out = tmp_path / "values.json"
    code = main(["eval", "-m", "id", "--pred", str(tmp_path / "pred"),
                 "--target", str(tmp_path / "target"), "--json", str(out)])
    assert code in (0, None)
    data = json.loads(out.read_text())
    assert list(data["metrics"]["id"]["values"]) == ["id[arcface]"]


def test_demo_and_web_app_metrics_use_the_installed_arcface(random_arcface_installed) -> None:
    """The demo's and the web app's ID is the thesis' ArcFace when it is installed (its key
    says so), dlib's only as the fallback."""
    from stylebridge.pipelines.demo import photo_metrics

    metric = photo_metrics()["id"]
    assert metric.backend == "arcface" and metric.key == "id[arcface]"
    assert not any("dlib" in note for note in metric.notes())


def test_demo_metrics_fall_back_to_dlib_and_say_so(no_weights) -> None:
    from stylebridge.pipelines.demo import photo_metrics

    metric = photo_metrics()["id"]
    assert metric.backend == "dlib" and metric.key == "id[dlib]"
    assert "weights fetch arcface-irse50" in metric.notes()[0]


def test_dlib_reads_an_image_once_and_still_counts_its_fallback(no_weights) -> None:
    """The same pixels give the same descriptor: the second time it is remembered (no
    detection runs), the no-face fallback is counted again, and two embedders share dlib's
    networks."""
    from stylebridge.plugins.nets.face_id import DlibFaceEmbedder

    first, second = DlibFaceEmbedder(), DlibFaceEmbedder()
    assert first._recognizer is second._recognizer and first._landmarks is second._landmarks
    blob = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(3))  # no face
    emb1, found1 = first.embed(blob)
    assert first.n_fallback == 1 and bool(found1[0])
    calls = []
    second._box = lambda image: calls.append(image) or None  # type: ignore[method-assign]
    emb2, found2 = second.embed(blob)
    assert calls == [] and torch.equal(emb1, emb2) and bool(found2[0])
    assert second.n_fallback == 1  # the remembered image fell back too
    other = blob.flip(-1)
    try:
        second.embed(other)  # new pixels: detection runs (here: the stub, which finds nothing)
        assert len(calls) == 1
    finally:
        from stylebridge.plugins.nets import face_id

        face_id._SEEN.clear()  # the stub's answer must not be remembered for other tests
