"""`stylebridge serve`: a page loaded while a text domain trains shows it; only encoders that
can work with the served generator are offered; metric notes in the page's words; the
photo previews' labels off the pictures.  Browser tests drive Debian's chromium through
Playwright (skipped with the reason where it, gradio or playwright is missing)."""

from __future__ import annotations

import importlib.util
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from stylebridge.core.interfaces import Encoder, Inversion, Preprocessing
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.serve import RunRequest, ServeBackend, ServeConfig
from stylebridge.registry import hookimpl

DOMAINS = ["random domain A", "random domain B"]
PROMPT = "a pencil sketch"
ME = "this-browser"  # the random name a page keeps in its browser


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeBackend]:
    root = tmp_path_factory.mktemp("serve-fixes")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STYLEBRIDGE_HOME", str(root / "no-weights"))  # no official weights
        yield ServeBackend(ServeConfig(device="cpu", work_dir=root / "work"))


def _handlers(backend: ServeBackend) -> dict[str, Any]:
    from stylebridge.pipelines.serve.app import build_app

    app = build_app(backend)
    return {"app": app, **{fn.name: fn.fn for fn in app.fns.values()}}


# ---------------------------------------------------------------------------------------------
# 1. a page loaded while a text domain trains


class _GatedTraining:
    """Stands for train_text_domain: says step 1/4, then waits for :meth:`release`."""

    def __init__(self, backend: ServeBackend, fail: bool = False) -> None:
        self.backend, self.fail = backend, fail
        self.gate, self.waiting = threading.Event(), threading.Event()

    def __call__(self, prompt: str, steps: int = 4, progress: Any = None) -> str:
        assert progress is not None
        progress(0.25, f"training {prompt!r}: step 1/{steps}")
        self.waiting.set()
        assert self.gate.wait(60)
        if self.fail:
            raise StylebridgeError("CLIP ran out of memory")
        return self.backend._add_domain(prompt, self.backend.domains[DOMAINS[0]], True, "test")

    def release(self) -> None:
        self.gate.set()


def _forget(backend: ServeBackend, name: str) -> None:
    for table in (backend.domains, backend.domain_random, backend.domain_sources):
        table.pop(name, None)


def test_a_page_loaded_while_a_text_domain_trains_shows_its_progress_then_its_result(
        backend: ServeBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reload during training showed nothing (no progress, no domain) until a second
    reload: the load now reads the server's record of the job, and a timer follows it."""
    fake = _GatedTraining(backend)
    monkeypatch.setattr(backend, "train_text_domain", fake)
    fns = _handlers(backend)
    # the page reloaded is the one that asked (its browser's name: ME)
    worker = threading.Thread(target=backend.text_domain, args=(PROMPT, 4),
                              kwargs={"owner": ME})
    worker.start()
    try:
        assert fake.waiting.wait(30)
        domains, status, watched, listed, _, _ = fns["on_load"]([DOMAINS[0]], ME)
        assert backend.job is not None and watched == backend.job.id  # the page follows it
        assert f"training {PROMPT!r}: step 1/4 (25%)" in status
        assert '<progress max="1" value="0.250">' in status
        assert domains["value"] == [DOMAINS[0]] and PROMPT not in domains["choices"]
        _, status, following, _, _ = fns["on_job_tick"]([DOMAINS[0]], watched, listed, ME)
        assert "step 1/4 (25%)" in status and following == watched  # still training
    finally:
        fake.release()
        worker.join(30)
    try:
        domains, status, following, _, _ = fns["on_job_tick"]([DOMAINS[0]], watched, listed,
                                                              ME)
        assert domains["value"] == [DOMAINS[0]]  # offered, not ticked: not this page's
        assert domains["choices"] == [*DOMAINS, PROMPT]
        assert status == (f"trained domain {PROMPT!r} [RANDOM WEIGHTS: made with random-weight "
                          "networks, not a real domain]")
        assert following is None
        # a page loaded once it is over: nothing to follow (the list holds the domain)
        domains, status, watched, *_ = fns["on_load"]([DOMAINS[0]])
        assert watched is None
        assert PROMPT in domains["choices"]
    finally:
        _forget(backend, PROMPT)


def test_a_failed_text_domain_is_said_in_a_page_loaded_meanwhile(
        backend: ServeBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _GatedTraining(backend, fail=True)
    monkeypatch.setattr(backend, "train_text_domain", fake)
    fns = _handlers(backend)
    errors: list[BaseException] = []

    def train() -> None:
        try:
            backend.text_domain(PROMPT, 4)
        except StylebridgeError as exc:
            errors.append(exc)

    worker = threading.Thread(target=train)
    worker.start()
    assert fake.waiting.wait(30)
    _, _, watched, listed, _, _ = fns["on_load"]([])
    assert watched is not None
    fake.release()
    worker.join(30)
    assert [str(e) for e in errors] == ["CLIP ran out of memory"]
    domains, status, following, _, _ = fns["on_job_tick"]([], watched, listed)
    assert status == '<span class="error">error: CLIP ran out of memory</span>'
    assert following is None and domains == {"__type__": "update"}


# ---------------------------------------------------------------------------------------------
# 2. encoders that cannot work with the served generator


def _test_encoders(n_latent: int, style_dim: int) -> types.ModuleType:
    """A plugin module with two random-weight encoders: ``wide-test`` (18 × 512 latents by
    default: FFHQ 1024's) and ``fits-test`` (the served generator's by default)."""

    def encoder_class(name: str, rows: int, width: int) -> type[Encoder]:
        class Pooled(Encoder):
            def __init__(self, n_latent: int = rows, style_dim: int = width) -> None:
                super().__init__()
                self.preprocessing = Preprocessing(size=16)
                self.head = torch.nn.Linear(3, n_latent * style_dim)
                self.shape = (n_latent, style_dim)

            def config(self) -> dict[str, Any]:
                return {"n_latent": self.shape[0], "style_dim": self.shape[1]}

            def encode(self, images: torch.Tensor) -> Inversion:
                x = self.preprocessing(images).mean(dim=(2, 3))
                return Inversion(w_plus=self.head(x).view(-1, *self.shape))

        Pooled.name = name
        return Pooled

    wide = encoder_class("wide-test", 18, 512)
    fits = encoder_class("fits-test", n_latent, style_dim)
    plugin = types.ModuleType("serve_fix_encoders")

    @hookimpl
    def register_encoders(register: Any) -> None:
        register(wide)
        register(fits)

    plugin.register_encoders = register_encoders  # type: ignore[attr-defined]
    plugin.Wide = wide  # type: ignore[attr-defined]
    return plugin


@pytest.fixture
def test_registry(backend: ServeBackend, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    from stylebridge.registry import registry as registry_mod

    gen = backend.generator
    plugin = _test_encoders(gen.n_latent, gen.style_dim)
    monkeypatch.setattr(registry_mod, "_REGISTRY", registry_mod.Registry(
        entry_points=False, extra_plugins=[plugin]))
    return plugin


@pytest.mark.slow  # runs the encoders once to compare the reasons with the runs' errors
def test_only_encoders_that_fit_the_generator_are_offered(
        backend: ServeBackend, test_registry: types.ModuleType, tmp_path: Path) -> None:
    """The list offered encoders whose default config can never fit the 64 px preset (and
    ones needing weights that are not installed): one line only when run was pressed."""
    gen = backend.generator
    assert (gen.size, gen.n_latent, gen.style_dim) == (64, 10, 64)  # the tiny preset's
    options = {c.spec: c for c in backend.encoder_options()}
    assert set(options) == {"e4e", "fse", "fse:mode=shift", "fits-test", "wide-test", "psp",
                            "styleres"}
    usable = [spec for spec, c in options.items() if c.problem is None]
    assert usable == ["e4e", "fits-test", "fse", "fse:mode=shift"]
    assert options["wide-test"].problem == (
        "encoder 'wide-test' gives w+ with 18 rows × 512, but the 64px generator needs 10 × 64 "
        "(encoder and generator do not match)")
    assert options["psp"].problem == ("encoder 'psp' needs weights; weights 'psp-ffhq' are not "
                                      "installed: run `stylebridge weights fetch psp-ffhq`")
    # the reason is what a run ends with (which may name the plugin's package after the
    # encoder), and the usable ones do run
    photo = backend.load_photo(None)
    for spec in ("wide-test", "psp", "styleres"):
        with pytest.raises(StylebridgeError) as refused:
            backend.run(photo, RunRequest(spec, []))
        said = str(options[spec].problem)
        assert said.startswith(f"encoder {spec!r} ")
        assert said.removeprefix(f"encoder {spec!r}") in str(refused.value)
    result = backend.run(photo, RunRequest("fits-test", DOMAINS[:1]))
    assert tuple(result.images["inversion"].shape) == (3, 64, 64)
    # the page: the dropdown offers the usable ones; the others are named with the reason
    fns = _handlers(backend)
    blocks = fns["app"].blocks.values()
    dropdown = next(b for b in blocks if getattr(b, "elem_id", None) == "encoder")
    assert [value for _, value in dropdown.choices] == usable
    assert dropdown.value == "e4e"
    note = next(b for b in blocks if getattr(b, "elem_id", None) == "encoder-note").value
    assert note.startswith("<details><summary>3 encoder(s) not offered: they cannot work with "
                           "this 64 px generator (10 × 64 latents)</summary>")
    assert "<li><b>wide-test</b>: encoder 'wide-test' gives w+ with 18 rows × 512" in note
    # a spec typed in: said at once when it cannot fit, not when run is pressed
    assert fns["on_encoder"]("wide-test:n_latent=10,style_dim=64") == note
    assert fns["on_encoder"]("wide-test:n_latent=12") == (
        '<span class="error">error: encoder \'wide-test:n_latent=12\' gives w+ with 12 rows × '
        "512, but the 64px generator needs 10 × 64 (encoder and generator do not match)</span>")
    # a checkpoint: its header's config decides (no tensor is read)
    wide = test_registry.Wide(n_latent=18, style_dim=512)
    from stylebridge.core.checkpoint import save_checkpoint

    ckpt = save_checkpoint(tmp_path / "wide.safetensors", wide.state_dict(), kind="encoder",
                           plugin="wide-test", config=wide.config())
    assert backend.encoder_problem(f"wide-test:{ckpt}") == (
        f"encoder 'wide-test:{ckpt}' gives w+ with 18 rows × 512, but the 64px generator needs "
        "10 × 64 (encoder and generator do not match)")
    assert backend.encoder_problem("e4e:foo=1") == (
        "encoder 'e4e': unknown option(s) foo (accepted: input_size, n_styles, style_dim, "
        "units, widths)")
    assert backend.encoder_problem("fse:mode=shift") is None


# ---------------------------------------------------------------------------------------------
# 3. metric notes in the web app's words, the command line's unchanged

NO_FACE_CLI = ("no face was detected in 1 image(s); the whole image was taken as the face box, "
               "id:detect=hog leaves them out")
NO_FACE_WEB = ("no face was detected in 1 image(s): its identity value compares the whole "
               "pictures, not faces, so it says little about the person")


def _face() -> torch.Tensor:
    """The astronaut's face, FFHQ-aligned, ``[1, 3, 64, 64]`` (a face dlib finds)."""
    from stylebridge.pipelines.align import align_face
    from stylebridge.pipelines.demo import demo_image

    image, _ = demo_image(None)
    return align_face(image, 64).to_tensor()[None]


def _dlib_id() -> Any:
    for module in ("dlib", "face_recognition_models"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed: the dlib ID backend cannot run")
    from stylebridge.registry import get_registry

    return get_registry().create("metric", "id", backend="dlib")


def test_the_id_metrics_no_face_note_has_a_web_wording_and_keeps_the_cli_one() -> None:
    from stylebridge.core.interfaces import Note

    metric = _dlib_id()
    blank = torch.full((1, 3, 64, 64), 0.5)
    metric.update(blank, _face())
    notes = metric.notes()
    assert notes == [NO_FACE_CLI]  # what adapt / eval print, as before
    assert isinstance(notes[0], Note) and notes[0].web == NO_FACE_WEB
    assert Note("plain").web == "plain" and Note("a", web="b") == "a"


def test_the_pages_metric_notes_use_web_words(backend: ServeBackend) -> None:
    """The page said `id:detect=hog leaves them out`: an option of the command line that the
    page has no control for."""
    _dlib_id()
    blank = torch.full((3, 64, 64), 0.5)
    _, _, notes = backend._metrics({"inversion": blank, "x": blank.clone()}, _face()[0])
    assert f"id[dlib]: {NO_FACE_WEB} (each output)" in notes
    assert not any("id:detect" in n or "install them with" in n for n in notes)
    if "arcface" not in backend._cache[("metrics", "photo")]["id"].key:  # no ArcFace weights
        assert any(n.startswith("id[dlib]: identity is measured with dlib's face descriptor "
                                "because this server has no ArcFace IR-SE50 weights") for n in notes)


# ---------------------------------------------------------------------------------------------
# a --work-dir used by an earlier server


@pytest.mark.slow  # one training step with the tiny CLIPs (~5 s)
def test_a_reused_work_dir_keeps_its_files_and_trains_again(backend: ServeBackend) -> None:
    """A server started on the --work-dir of an earlier one counted its files from 1 again:
    the first text domain was refused ("already exists (use --resume ...)": the command
    line's words) and the first run wrote into the earlier run's folder."""
    backend._runs = 0
    old_domain = backend.work_dir / "domains" / "001-a-pencil-sketch.safetensors"
    old_domain.parent.mkdir(parents=True, exist_ok=True)
    old_domain.write_bytes(b"an earlier server's domain")
    # a training the earlier server was stopped in: its state, no model (a new run into that
    # name is refused, as the command line refuses it, since the state can be resumed)
    old_state = backend.work_dir / "domains" / "002-a-pencil-sketch.train-state.safetensors"
    old_state.write_bytes(b"an interrupted training's state")
    old_run = backend.work_dir / "run-004"
    old_run.mkdir(exist_ok=True)
    (old_run / "run.json").write_text("{}")
    try:
        name = backend.train_text_domain(PROMPT, steps=1)
        assert name == PROMPT
        assert old_domain.read_bytes() == b"an earlier server's domain"
        assert old_state.read_bytes() == b"an interrupted training's state"
        assert backend.domain_sources[name].endswith("domains/003-a-pencil-sketch.safetensors")
        result = backend.run(backend.load_photo(None), RunRequest("e4e", [name]))
        assert result.grid_path.parent.name == "run-005"
        assert (old_run / "run.json").read_text() == "{}"
    finally:
        _forget(backend, PROMPT)


# ---------------------------------------------------------------------------------------------
# In a real browser: a reload during training; the photo previews' labels


@pytest.fixture(scope="module")
def page_server(backend: ServeBackend) -> Iterator[str]:
    for module in ("gradio", "playwright"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install -e '.[dev]')")
    from test_serve import _chromium, _free_port

    if _chromium() is None:
        pytest.skip("no chromium browser found (Debian: apt-get install -y chromium)")
    from stylebridge.pipelines.serve.app import launch

    port = _free_port()
    app = launch(backend, "127.0.0.1", port, block=False)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        app.close()


PREVIEWS_JS = """() => {
  const box = s => document.querySelector(s).getBoundingClientRect();
  return ['#photo-preview', '#aligned-preview'].map(id => ({id,
    img: box(id + ' img'), label: box(id + ' [data-testid=block-label]'),
    icons: box(id + ' .icon-button-wrapper')}));
}"""


@pytest.mark.slow  # a browser, a page and a reload (~20 s on 2 CPUs)
def test_a_reload_during_training_shows_progress_then_the_domain_and_previews_layout(
        backend: ServeBackend, page_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from playwright.sync_api import sync_playwright
    from test_serve import CHROMIUM_ARGS, _chromium

    fake = _GatedTraining(backend)
    monkeypatch.setattr(backend, "train_text_domain", fake)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844})
            page.goto(page_server)
            page.wait_for_selector("#run", timeout=60_000)
            page.fill("#prompt textarea", PROMPT)
            page.click("#train")
            assert fake.waiting.wait(60)
            page.reload()
            page.wait_for_selector("#run", timeout=60_000)
            # at once: the job's progress, from the page load itself
            page.wait_for_function(
                "() => document.querySelector('#domain-status').innerText"
                f".includes(\"training '{PROMPT}': step 1/4 (25%)\")", timeout=5_000)
            assert page.locator("#domain-status progress").count() == 1
            fake.release()
            # then its result: the domain offered (not ticked: the reloaded page did not ask
            # for it, another tab may have), and said
            page.wait_for_selector(f"#domains label:has-text('{PROMPT}') input:not(:checked)",
                                   timeout=10_000)
            assert page.inner_text("#domain-status").startswith(f"trained domain '{PROMPT}'")
            # the photo previews: their label and buttons above the picture, not on it (the
            # label covered the aligned face's hair, on a phone and on a desktop)
            for width, height in ((390, 844), (1280, 800)):
                page.set_viewport_size({"width": width, "height": height})
                page.wait_for_timeout(300)
                for m in page.evaluate(PREVIEWS_JS):
                    assert m["img"]["top"] >= m["label"]["bottom"] - 0.5, (width, m)
                    assert m["img"]["top"] >= m["icons"]["bottom"] - 0.5, (width, m)
            # the encoder list: what cannot fit the 64 px preset is named, folded, below it
            assert "not offered: they cannot work with this 64 px generator" in page.inner_text(
                "#encoder-note")
        finally:
            fake.release()
            browser.close()
            _forget(backend, PROMPT)
