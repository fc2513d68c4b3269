"""`stylebridge serve` after its UX review: a new photo clears the old result, the settings are
shown and downloaded, FeatureShift only where it can run, a failed run keeps the last result,
trained domains downloadable and not ticked in other tabs, a metrics table with units and
fixed precision, plain skip-layer choices, a small photo's no-face hint and a reload that
shows the last result again.  The back end and the page's handlers are called directly."""

from __future__ import annotations

import importlib.util
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from stylebridge.errors import ImageError
from stylebridge.pipelines.serve import RunRequest, ServeBackend, ServeConfig

DOMAINS = ["random domain A", "random domain B"]

pytestmark = pytest.mark.skipif(importlib.util.find_spec("gradio") is None,
                                reason="gradio is not installed (pip install -e '.[dev]')")


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeBackend]:
    root = tmp_path_factory.mktemp("serve-ux")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STYLEBRIDGE_HOME", str(root / "no-weights"))  # no official weights
        yield ServeBackend(ServeConfig(device="cpu", work_dir=root / "work"))


@pytest.fixture(scope="module")
def fns(backend: ServeBackend) -> dict[str, Any]:
    from stylebridge.pipelines.serve.app import build_app

    return {fn.name: fn.fn for fn in build_app(backend).fns.values()}


def _quiet(*args: Any, **kwargs: Any) -> None:
    """A Gradio progress that reports nothing."""


def _astronaut(path: Path, side: int | None = None) -> Path:
    from skimage import data as skdata

    image = Image.fromarray(skdata.astronaut())
    if side is not None:  # shrunk: the photo is side × side pixels, its face too small
        image = image.resize((side, side), Image.Resampling.LANCZOS)
    image.save(path)
    return path


def _run(fns: dict[str, Any], backend: ServeBackend, **options: Any) -> tuple[Any, ...]:
    args = {"enc": "e4e", "chosen": DOMAINS[:1], "skip_text": "", "use_alpha": False,
            "use_fs": False, "strength_value": 1.0, **options}
    return fns["on_run"](backend.load_photo(None), *args.values(), progress=_quiet)


def test_a_new_photo_clears_the_last_photos_result(fns: dict[str, Any], backend: ServeBackend,
                                                   tmp_path: Path) -> None:
    """The grid, table and downloads of the last photo stayed under the new photo's name."""
    out = _run(fns, backend)
    assert out[1] and out[2]["visible"] is True and out[-1]  # a result, and its id
    new = fns["on_upload"](str(_astronaut(tmp_path / "me.png")), backend.load_photo(None),
                           progress=_quiet)
    assert "me.png (face found and aligned)" in new[3]
    status, grid, metrics, notes, images, latents, last_run = new[5:]
    # "cleared", not None: the page stores no falsy BrowserState value (a reload restored it)
    assert (status, grid, notes, last_run) == ("", None, "", "cleared")
    for hidden in (metrics, images, latents):
        assert hidden["visible"] is False and hidden["value"] is None


def test_the_settings_are_shown_drawn_and_in_the_zip(fns: dict[str, Any],
                                                     backend: ServeBackend) -> None:
    """Only the strength was in the labels: two runs, alpha on and off, read alike."""
    photo = backend.load_photo(None)
    on = backend.run(photo, RunRequest("e4e", DOMAINS[:1], skip_layers="0", alpha=True))
    off = backend.run(photo, RunRequest("e4e", DOMAINS[:1]))
    assert on.settings == ("photo skimage.data.astronaut() · encoder e4e · domains "
                           "random domain A · strength 1 · skip layers 0 · alpha calibration "
                           "on (alpha fitted on 16 generator samples) · FeatureShift off")
    assert "skip layers none · alpha calibration off" in off.settings
    assert on.grid.shape[-2] > off.grid.shape[-2] - 1  # a caption strip under each grid
    with zipfile.ZipFile(on.images_zip) as zf:
        run = json.loads(zf.read("run.json"))
    assert run["settings"] == on.settings and run["alpha"] is True
    assert run["calibration"] == "alpha fitted on 16 generator samples"
    status = _run(fns, backend, use_alpha=True)[0]
    assert "alpha calibration on (alpha fitted on 16 generator samples)" in status


def test_featureshift_is_offered_only_for_an_encoder_with_a_feature_map(
        backend: ServeBackend) -> None:
    from stylebridge.pipelines.serve.app import featureshift_box

    e4e, fse = featureshift_box(backend, "e4e"), featureshift_box(backend, "fse")
    assert e4e["interactive"] is False and e4e["value"] is False
    assert "needs an encoder that returns a generator feature map" in e4e["info"]
    assert fse["interactive"] is True and fse["info"] is None
    assert featureshift_box(backend, "fse:mode=shift")["interactive"] is True


def test_a_failed_run_keeps_the_last_result_and_says_so(fns: dict[str, Any],
                                                        backend: ServeBackend) -> None:
    good = _run(fns, backend)
    failed = _run(fns, backend, skip_text="99", last_id=good[-1])
    assert failed[0].startswith('<span class="error">error: ') and "99" in failed[0]
    assert "(shown: the previous run, photo skimage.data.astronaut()" in failed[0]
    for kept in failed[1:6]:  # grid, table, notes, downloads: left as they were
        assert kept == {"__type__": "update"}
    assert failed[6] is None and failed[7] == {"__type__": "update"}  # banner, run id kept


def test_a_trained_domain_is_downloadable(fns: dict[str, Any], backend: ServeBackend,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    trained = backend.work_dir / "domains" / "sketch.safetensors"
    trained.parent.mkdir(parents=True, exist_ok=True)

    def train(prompt: str, steps: int, progress: Any) -> str:
        backend.domains[DOMAINS[0]].save(trained, extra={"random_weights": True})
        name = backend._add_domain(prompt, backend.domains[DOMAINS[0]], True, "test")
        backend.domain_files[name] = trained
        return name

    monkeypatch.setattr(backend, "train_text_domain", train)
    try:
        domains, status, download, kept = fns["on_train"]("a sketch", 2, [], progress=_quiet)
        assert kept == "a sketch"  # kept in the browser: a reload offers the download again
        assert domains["value"] == ["a sketch"] and "'a sketch'" in status
        assert download["visible"] is True and "a sketch" in download["label"]
        assert Path(download["value"]).read_bytes() == trained.read_bytes()
        # another tab following the job: offered there, not ticked
        job = backend.job
        assert job is not None
        offered, *_ = fns["on_job_tick"]([DOMAINS[1]], job.id)
        assert "a sketch" in offered["choices"] and offered["value"] == [DOMAINS[1]]
    finally:
        for table in (backend.domains, backend.domain_random, backend.domain_sources,
                      backend.domain_files):
            table.pop("a sketch", None)


def test_the_metrics_table_has_units_directions_and_fixed_decimals(
        fns: dict[str, Any], backend: ServeBackend) -> None:
    metrics = _run(fns, backend, chosen=DOMAINS)[2]["value"]
    headers = list(metrics.columns)
    assert headers[:4] == ["output", "mse (on [0,1]) ↓", "psnr (dB) ↑", "ssim ↑"]
    assert headers[4].startswith("id[") and headers[4].endswith(" ↑")
    assert headers[5] == "change from inversion (mse)"
    for column, decimals in zip(headers[1:], (4, 2, 3, 3, 4), strict=True):
        for cell in metrics[column]:
            assert cell == "—" or len(str(cell).partition(".")[2]) == decimals, (column, cell)
    assert metrics[headers[5]].iloc[0] == "—"  # the inversion has no change from itself


def test_skip_layer_choices_are_plain_words() -> None:
    from stylebridge.pipelines.serve.app import SKIP_INFO, SKIP_PRESETS, preset_value

    for label, value in SKIP_PRESETS:
        assert "`" not in label and "no_coarse" not in label and "thesis" not in label
        assert preset_value(label) == value
    assert "no_coarse" in SKIP_INFO and "`first`" in SKIP_INFO


def test_no_face_in_a_small_photo_says_its_size(backend: ServeBackend, tmp_path: Path) -> None:
    for side in (48, 120):
        with pytest.raises(ImageError, match=rf"the photo is {side}×{side} px; faces smaller "
                                             r"than ~80 px across are often missed"):
            backend.load_photo(_astronaut(tmp_path / f"small{side}.png", side))


def test_a_reload_shows_the_last_run_again(fns: dict[str, Any], backend: ServeBackend) -> None:
    out = _run(fns, backend)
    restored = fns["on_restore"](out[-1])
    assert restored[0].startswith("restored after a reload: photo skimage.data.astronaut()")
    assert Path(restored[1]).read_bytes() == Path(out[1]).read_bytes()
    assert restored[2]["visible"] is True and restored[-1] == out[-2]
    assert fns["on_restore"]("not-a-run") == ({"__type__": "update"},) * 7
    assert fns["on_restore"](None) == ({"__type__": "update"},) * 7
