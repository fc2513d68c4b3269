"""`stylebridge serve` for a screen reader, a keyboard and low vision: only our own status lines
are live regions (not Gradio's progress timer beside them), the upload zones keep their names
and the focus after a redraw, run gives the focus back, the encoder field is marked invalid
with its note, pictures have alt text, one h1, commands as code (no literal backticks), and
every colour our CSS sets reads in light and dark mode.  The browser test drives Debian's
chromium through Playwright (skipped with the reason where it, gradio or playwright is
missing)."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from test_serve import CHROMIUM_ARGS, _chromium
from test_serve_fixes import backend, page_server  # noqa: F401 (fixtures)

from stylebridge.pipelines.serve import ServeBackend

DOMAINS = ["random domain A", "random domain B"]
#: the page's status lines: each a live region
LIVE = ("status", "result-status", "domain-status", "encoder-note", "download-status",
        "metric-notes")
TITLE = "stylebridge: StyleGAN2 encoders and domain adaptation"


def test_commands_in_backticks_are_code_and_the_job_bar_is_named(
        backend: ServeBackend) -> None:  # noqa: F811
    from stylebridge.pipelines.serve.app import _banner, error_line, job_line
    from stylebridge.pipelines.serve.jobs import TextJob

    banner = _banner(backend)
    assert "<code>stylebridge weights</code>" in banner and "`" not in banner
    line = error_line(ValueError("run `stylebridge weights fetch x`"))
    assert "<code>stylebridge weights fetch x</code>" in line and "`" not in line
    job = TextJob(prompt="a sketch", trained=True)
    job.report(lambda fraction, text: None)(0.5, "training 'a <b>': step 2/4")
    label = re.search(r"<label>(<progress [^>]*></progress>)([^<]*)</label>", job_line(backend, job))
    assert label is not None  # the bar's accessible name: the line in its label
    assert label.group(2) == " training 'a &lt;b&gt;': step 2/4 (50%)"
    from stylebridge.pipelines.serve.page import text_html

    assert text_html("run `a <b>` & go") == "run <code>a &lt;b&gt;</code> &amp; go"


# ---------------------------------------------------------------------------------------------
# In a real browser


def _ratio(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    def lum(rgb: tuple[float, ...]) -> float:
        c = [v / 255 for v in rgb[:3]]
        c = [v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in c]
        return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]

    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def _rgb(css: str) -> tuple[float, ...]:
    return tuple(float(v) for v in re.findall(r"[\d.]+", css)[:3])


#: an element's text colour and the background it is drawn on (the first opaque ancestor's)
COLOURS_JS = """sel => {
  let e = document.querySelector(sel);
  const fg = getComputedStyle(e).color, edge = getComputedStyle(e).borderTopColor;
  while (e) {
    const c = getComputedStyle(e).backgroundColor;
    if (c && c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent') return [fg, c, edge];
    e = e.parentElement;
  }
  return [fg, 'rgb(255, 255, 255)', edge];
}"""


def _contrast(page: Any, selector: str) -> float:
    fg, bg, _ = page.evaluate(COLOURS_JS, selector)
    return _ratio(_rgb(fg), _rgb(bg))


def _bar_html(backend: ServeBackend) -> str:  # noqa: F811
    """What a page loaded during a training shows in ``#domain-status``: a half-full bar."""
    from stylebridge.pipelines.serve.app import job_line
    from stylebridge.pipelines.serve.jobs import TextJob

    job = TextJob(prompt="a sketch", trained=True)
    job.report(lambda fraction, text: None)(0.5, "training 'a sketch': step 2/4")
    return job_line(backend, job)


def _check_colours(page: Any, scheme: str, bar_html: str) -> None:
    """Every colour our CSS sets, as the page shows it: text 4.5:1, a control's parts 3:1."""
    from PIL import Image

    assert page.evaluate("!!document.querySelector('.dark')") is (scheme == "dark")
    for selector in ("#random-banner .prose", "#encoder-note .error"):
        assert _contrast(page, selector) >= 4.5, (scheme, selector)
    # the text domain's progress bar (as a page loaded during a training shows it): its edge
    # on the page, the filled half on the empty half, measured on its pixels
    page.evaluate("html => { document.querySelector('#domain-status .prose').innerHTML = html; }",
                  bar_html)
    bar = page.locator("#domain-status progress")
    assert page.get_by_role("progressbar", name=re.compile("training 'a sketch'")).count() == 1
    _, page_bg, edge = page.evaluate(COLOURS_JS, "#domain-status progress")
    assert _ratio(_rgb(edge), _rgb(page_bg)) >= 3, (scheme, edge, page_bg)
    shot = Image.open(io.BytesIO(bar.screenshot())).convert("RGB")
    w, h = shot.size
    filled, empty = shot.getpixel((w // 4, h // 2)), shot.getpixel((3 * w // 4, h // 2))
    assert _ratio(filled, empty) >= 3, (scheme, filled, empty)


def _upload_label_off_the_icon(page: Any) -> None:
    for zone in ("#photo-upload", "#domain-files"):
        label = page.locator(f"{zone} [data-testid=block-label]").bounding_box()
        icon = page.locator(f"{zone} [data-testid=upload-icon]").bounding_box()
        assert label and icon and label["y"] + label["height"] <= icon["y"] + 0.5, zone


def _focus_in(page: Any, selector: str) -> bool:
    return bool(page.evaluate(f"!!document.activeElement.closest('{selector}')"))


@pytest.mark.slow  # a browser, two pages, an upload and a run (~25 s on 2 CPUs)
def test_the_page_for_screen_readers_keyboards_and_dark_mode(
        backend: ServeBackend, page_server: str, tmp_path: Path) -> None:  # noqa: F811
    from playwright.sync_api import sync_playwright

    not_image = tmp_path / "notimage.png"
    not_image.write_text("this is not an image\n")
    bar = _bar_html(backend)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            # -- light, desktop: structure, names, the encoder's error, an upload's focus --
            page = browser.new_context(viewport={"width": 1280, "height": 900},
                                       color_scheme="light").new_page()
            page.goto(page_server)
            page.wait_for_selector("#run", timeout=60_000)
            page.wait_for_function("!!document.querySelector('#status-text[aria-live]')",
                                   timeout=5_000)
            assert page.evaluate("[...document.querySelectorAll('h1')].map(h => h.innerText)"
                                 ) == [TITLE]
            assert "`" not in page.inner_text("#random-banner")
            assert page.inner_text("#random-banner code") == "stylebridge weights"
            # live: our status lines' inner element, never Gradio's progress timer
            for id_ in LIVE:
                live = page.locator(f"#{id_} .html-container")
                assert live.get_attribute("aria-live") == "polite", id_
                assert live.get_attribute("role") == "status", id_
            assert page.evaluate("""[...document.querySelectorAll('[aria-live], [role=status]')]
                .filter(e => e.querySelector('[data-testid=status-tracker]')).length""") == 0
            assert "photo" in page.get_attribute("#photo-preview img", "alt")
            assert "aligned" in page.get_attribute("#aligned-preview img", "alt")
            _upload_label_off_the_icon(page)
            # a typed encoder that cannot load: the field says so, pointing at its note
            page.fill("#encoder input", "e4e:/nonexistent.pt")
            page.keyboard.press("Enter")
            page.wait_for_selector("#encoder-note .error", timeout=10_000)
            field = page.locator("#encoder input")
            page.wait_for_function(
                "document.querySelector('#encoder input').getAttribute('aria-invalid') === "
                "'true'", timeout=5_000)
            note = page.locator(f"#{field.get_attribute('aria-describedby')}")
            assert "no such file" in note.inner_text()
            assert note.get_attribute("aria-live") == "polite"
            _check_colours(page, "light", bar)
            # an upload redraws the zone: its name and the focus stay
            page.focus("#photo-upload button[aria-dropeffect]")
            page.set_input_files("#photo-upload input[type=file]", str(not_image))
            page.wait_for_selector("#status .error", timeout=30_000)
            assert _contrast(page, "#status .error") >= 4.5
            page.wait_for_function("!!document.activeElement.closest('#photo-upload')",
                                   timeout=5_000)
            for selector in ("button[aria-dropeffect]", "input[type=file]"):
                assert page.get_attribute(f"#photo-upload {selector}", "aria-label") == \
                    "upload a face photo"
            assert page.get_attribute("#domain-files button[aria-dropeffect]",
                                      "aria-label") == "upload domain checkpoints (.safetensors)"
            page.close()

            # -- dark, phone: colours, run by keyboard: the focus and the grid's alt text --
            page = browser.new_context(viewport={"width": 360, "height": 800},
                                       color_scheme="dark").new_page()
            page.goto(page_server)
            page.wait_for_selector("#run", timeout=60_000)
            page.wait_for_function("!!document.querySelector('#status-text[aria-live]')",
                                   timeout=5_000)
            _upload_label_off_the_icon(page)
            page.fill("#encoder input", "e4e:/nonexistent.pt")
            page.keyboard.press("Enter")
            page.wait_for_selector("#encoder-note .error", timeout=10_000)
            _check_colours(page, "dark", bar)
            page.fill("#encoder input", "e4e")
            page.keyboard.press("Enter")
            page.wait_for_function("!document.querySelector('#encoder-note .error') && "
                                   "!document.querySelector('#encoder input[aria-invalid]')",
                                   timeout=10_000)
            page.focus("#run")
            page.keyboard.press("Enter")
            page.wait_for_function("document.querySelector('#result-status').innerText"
                                   ".includes('RANDOM WEIGHTS')", timeout=60_000)
            page.wait_for_function("!document.querySelector('#run').disabled")
            page.wait_for_timeout(300)
            assert _focus_in(page, "#run") or _focus_in(page, "#result-status")
            alt = page.get_attribute("#result-grid img", "alt")
            assert alt and "inversion" in alt and all(name in alt for name in DOMAINS), alt
            colours = page.evaluate("getComputedStyle(document.querySelector("
                                    "'#metrics .virtual-table-viewport')).scrollbarColor")
            thumb, track = re.findall(r"rgba?\([^)]*\)", colours)
            assert _ratio(_rgb(thumb), _rgb(track)) >= 3, colours
            page.close()
        finally:
            browser.close()
