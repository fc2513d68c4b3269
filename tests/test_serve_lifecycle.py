"""`stylebridge serve` over time: a SIGTERM during a training stops it cleanly (exit 0, the
queued request refused), the page's copies of the result files are purged on Gradio's age
and a download after the purge offers a fresh copy, old run folders and train-states go,
an open page lists other pages' domains, and the banner names the generator loaded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_serve import CHROMIUM_ARGS, _chromium, _free_port, _wait_for
from test_serve_fixes import backend, page_server  # noqa: F401 (fixtures)

from stylebridge.pipelines.serve import RunRequest, ServeBackend, ServeConfig

DOMAINS = ["random domain A", "random domain B"]


def _run(backend: ServeBackend) -> Any:  # noqa: F811
    return backend.run(backend.load_photo(None), RunRequest(encoder="e4e", domains=DOMAINS[:1]))


def test_a_stopping_server_refuses_new_work_and_stops_a_training_after_its_step(
        backend: ServeBackend) -> None:  # noqa: F811
    from stylebridge.errors import StylebridgeError

    seen: list[str] = []

    def progress(fraction: float, text: str) -> None:
        seen.append(text)
        if "step 1/" in text:
            backend.stopping.set()  # SIGTERM arrives during step 2

    try:
        with pytest.raises(StylebridgeError, match=r"server is stopping.*stopped after step 2/"):
            backend.text_domain("a stopped style", 50, progress=progress)
        assert "a stopped style" not in backend.domains
        with pytest.raises(StylebridgeError, match="server is stopping"):
            _run(backend)  # a queued run is not run
    finally:
        backend.stopping.clear()
    # neither the stopped training nor a finished one leaves a train-state behind
    name = backend.text_domain("a kept style", 2)
    assert backend.domain_files[name].is_file()
    assert not list((backend.work_dir / "domains").glob("*.train-state.safetensors"))


def test_result_copies_are_purged_and_old_run_folders_pruned(backend: ServeBackend  # noqa: F811
                                                            ) -> None:
    from stylebridge.pipelines.serve.app import served_copy
    from stylebridge.pipelines.serve.files import COPIES

    first = _run(backend)
    copy = Path(served_copy(first.grid_path))
    assert copy.is_file()
    assert COPIES.purge(3600) == [] and copy.is_file()  # younger than the age: kept
    time.sleep(0.05)
    assert str(copy) in COPIES.purge(0.01) and not copy.exists()  # the face's copy is gone
    assert first.grid_path.is_file()  # the work dir's file stays (a fresh copy can be made)
    keep = backend.history.keep
    backend.history.keep = 1
    try:
        second = _run(backend)
        assert not first.grid_path.parent.exists()  # out of the run history: deleted
        assert second.grid_path.is_file()
    finally:
        backend.history.keep = keep


def test_a_page_never_claims_another_pages_domain_and_the_banner_names_the_generator(
        backend: ServeBackend, tmp_path: Path) -> None:  # noqa: F811
    from stylebridge.pipelines.serve.app import job_line
    from stylebridge.pipelines.serve.jobs import TextJob

    job = TextJob(prompt="x", trained=True, owner="someone")
    job.finish(DOMAINS[0])
    assert job_line(backend, job, mine=False).startswith("another page: trained domain")
    assert job_line(backend, job).startswith("trained domain")
    gen = backend._generator_path()  # the 64 px preset's generator as a file
    other = ServeBackend(ServeConfig(device="cpu", generator=str(gen),
                                     work_dir=tmp_path / "work"))
    assert other.banner is not None and str(gen) in other.banner
    assert "demo's 64 px random-weight preset" not in other.banner


@pytest.mark.slow  # a browser, a run, a purge, a reload (~25 s on 2 CPUs)
def test_downloads_after_the_purge_new_domains_and_a_new_photo_in_the_page(
        backend: ServeBackend, page_server: str, tmp_path: Path) -> None:  # noqa: F811
    from PIL import Image
    from playwright.sync_api import sync_playwright
    from skimage import data as skdata

    from stylebridge.pipelines.serve.files import COPIES

    photo = tmp_path / "face.png"
    Image.fromarray(skdata.astronaut()).save(photo)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(accept_downloads=True).new_page()
            page.goto(page_server)
            page.wait_for_selector("#run", timeout=60_000)
            page.click("#run")
            page.wait_for_selector("#download-images", state="visible", timeout=60_000)
            time.sleep(0.05)
            COPIES.purge(0.01)  # an hour later
            import stylebridge.pipelines.serve.app as app_mod
            age = app_mod.DELETE_CACHE
            app_mod.DELETE_CACHE = (age[0], 0.01)
            try:
                page.click("#download-images")
                page.wait_for_function("() => document.querySelector('#download-status')"
                                       ".innerText.includes('a fresh copy is ready')",
                                       timeout=10_000)
                app_mod.DELETE_CACHE = age
                with page.expect_download(timeout=15_000) as got:
                    page.click("#download-images")
                assert Path(got.value.path()).stat().st_size > 0
            finally:
                app_mod.DELETE_CACHE = age
            # another page's domain is listed without a reload
            backend._add_domain("added elsewhere", backend.domains[DOMAINS[0]], True, "test")
            page.wait_for_selector("#domains label:has-text('added elsewhere')",
                                   timeout=10_000)
            # a new photo clears the result, and a reload does not bring it back
            page.locator("#photo-upload input[type=file]").set_input_files(str(photo))
            page.wait_for_function("() => document.querySelector('#status').innerText"
                                   ".includes('face.png')", timeout=60_000)
            page.wait_for_timeout(500)
            page.reload()
            page.wait_for_selector("#run", timeout=60_000)
            page.wait_for_timeout(2_000)
            assert "restored after a reload" not in page.inner_text("#result-status")
        finally:
            browser.close()
            for table in (backend.domains, backend.domain_random, backend.domain_sources):
                table.pop("added elsewhere", None)


@pytest.mark.slow  # the real command, a browser and a 200-step training (~30 s on 2 CPUs)
def test_sigterm_during_a_training_stops_it_refuses_the_queue_and_exits_0(tmp_path: Path
                                                                          ) -> None:
    from playwright.sync_api import sync_playwright

    if _chromium() is None:
        pytest.skip("no chromium browser found")
    port = _free_port()
    env = {**os.environ, "STYLEBRIDGE_HOME": str(tmp_path / "no-weights"),
           "GRADIO_ANALYTICS_ENABLED": "False"}
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "stylebridge", "serve", "--port",
                                 str(port), "--device", "cpu", "--work-dir",
                                 str(tmp_path / "work")],
                                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_for(url, proc, timeout=180)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
            a, b = browser.new_page(), browser.new_page()
            for page in (a, b):
                page.goto(url)
                page.wait_for_selector("#run", timeout=60_000)
            a.fill("#prompt textarea", "a long style")
            steps = a.locator("#steps input[type=number]")
            steps.fill("200")
            steps.press("Enter")
            a.click("#train")
            a.wait_for_function("() => /step \\d+\\/200/.test(document.body.innerText)",
                                timeout=60_000)
            b.click("#run")  # queued behind the training
            b.wait_for_timeout(500)
            proc.send_signal(signal.SIGTERM)
            a.wait_for_function("() => document.querySelector('#domain-status').innerText"
                                ".includes('server is stopping')", timeout=30_000)
            b.wait_for_function("() => document.querySelector('#result-status').innerText"
                                ".includes('server is stopping')", timeout=30_000)
            assert "stopped after step" in a.inner_text("#domain-status")
            browser.close()
        assert proc.wait(timeout=30) == 0, log.read_text()[-2000:]
        assert "terminate called" not in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
