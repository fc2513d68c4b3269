"""The Gradio page of ``stylebridge serve`` on a :class:`~.backend.ServeBackend`.

gradio is imported inside :func:`build_app` / :func:`launch` only (an optional dependency:
``pip install 'stylebridge[serve]'``).  Every handler calls the back end; a bad input (a
StylebridgeError: not an image, no face, a huge image, a bad option) is shown as one line in
the page and the server keeps serving.  Long work (alignment, training, a run) goes through
Gradio's queue, one request at a time, with a progress bar; a page loaded while a text domain
is made (a reload) shows its progress from the server's record (:mod:`.jobs`), then its result.
The encoder list offers only encoders that can work with the served generator (:mod:`.encoders`).

:func:`launch` serves the page behind :class:`~.guard.RequestGuard` (the Host and Origin
checks), from an upload folder of the server's own that holds the uploads and a copy of each
run's result files (nothing else of the work dir is served), removed when the server stops.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from stylebridge.core.checkpoint import RANDOM_NOTICE
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.adapt import INVERSION
from stylebridge.pipelines.serve import domains as shelf
from stylebridge.pipelines.serve.backend import (
    MAX_TRAIN_STEPS,
    MAX_UPLOAD_MB,
    TRAIN_STEPS,
    Photo,
    RunRequest,
    ServeBackend,
)
from stylebridge.pipelines.serve.encoders import EncoderChoice
from stylebridge.pipelines.serve.files import COPIES, Cleanup, served_copy, upload_folder_parent
from stylebridge.pipelines.serve.guard import RequestGuard, host_policy
from stylebridge.pipelines.serve.jobs import TextJob
from stylebridge.pipelines.serve.lifecycle import serve_until_stopped
from stylebridge.pipelines.serve.messages import public_text
from stylebridge.pipelines.serve.page import (
    ACCESSIBILITY_JS,
    ALIGNED_ALT,
    CSS,
    GRID_ALT,
    LIVE_REGIONS,
    PHOTO_ALT,
    alt_marker,
    escape,
    grid_alt,
    text_html,
)
from stylebridge.pipelines.serve.records import RunResult
from stylebridge.pipelines.serve.summary import METRIC_LEGEND, STOPPING, display_table
from stylebridge.pipelines.serve.uploads import check_upload, guard_temp_files

TITLE = "stylebridge: StyleGAN2 encoders and domain adaptation"
SKIP_PRESETS = [("none: the domain changes every layer", ""),
                ("keep the first layer as the photo (0)", "0"),
                ("keep the coarse layers: pose and face shape (0,2,3,5,6,8)", "0,2,3,5,6,8")]
#: the skip presets in the thesis' terms, and what else the field takes
SKIP_INFO = ("or type layer numbers, e.g. 0,2-5. In the thesis' terms: 0 is `first` (one "
             "reading of its first layer), 0,2,3,5,6,8 is StyleDomain's no_coarse")
#: the image buttons: no "share" (it works on Hugging Face Spaces only, else an error toast)
IMAGE_BUTTONS = ["download", "fullscreen"]
#: the queue shared by upload, domain files, train and run (one at a time, in click order)
WORK_QUEUE = "work"
#: how often a page reads the server's news (seconds): the domains another page added, the
#: progress of a text domain made while it loaded, the server stopping
JOB_POLL_S = 1.0
#: a run's download files, as the page names them
WHAT = {"images_zip": "the images (.zip)", "latents_path": "the latents (.safetensors)"}
#: an internal error's message is cut to this many characters in the page
MAX_INTERNAL_CHARS = 300
#: Gradio's cache (uploads, the pictures and downloads shown) and the page's own copies of the
#: result files (files.py): every 10 minutes those made more than an hour ago are deleted;
#: all of them when the server stops
DELETE_CACHE = (600, 3600)
#: requests waiting in Gradio's queue at most (one runs at a time): one more is refused with
#: Gradio's "queue is full" message
MAX_QUEUE = 16


def preset_value(text: str) -> str:
    """A skip-layers field: a preset's label (what the dropdown shows once picked, perhaps
    with ``,9`` typed after it) stands for the preset's layers."""
    for label, value in SKIP_PRESETS:
        if label and text.startswith(label):
            rest = text[len(label):].strip().lstrip(",").strip()
            return ",".join(part for part in (value, rest) if part)
    return text


def error_line(exc: BaseException, strip: str = "") -> str:
    """The one line a failed request shows in the page: no absolute path of the server's
    folders; an internal error, no absolute path at all (its full text and traceback go to
    the server's log: :mod:`.messages`).  ``strip``: a folder removed from the text first
    (an upload's: ``bad.safetensors: ...``, not ``…/bad.safetensors: ...``)."""
    text, internal = public_text(exc, strip=strip)
    if internal:  # e.g. PyTorch's list of every missing key
        if len(text) > MAX_INTERNAL_CHARS:
            text = text[:MAX_INTERNAL_CHARS - 1].rstrip() + "…"
        text = f"internal error ({type(exc).__name__}): {text}"
    return f'<span class="error">error: {text_html(text)}</span>'


def _html(text: str) -> str:
    return escape(text)


def split_offered(chosen: Iterable[str] | None, offered: list[str]) -> tuple[list[str],
                                                                          list[str]]:
    """The ticked domains ``chosen`` (once each) that are ``offered`` now, and those no
    longer offered: a value naming one of those made Gradio refuse every later event of
    the page ("Value ... is not in the list of choices")."""
    names = list(dict.fromkeys(chosen or []))
    return [n for n in names if n in offered], [n for n in names if n not in offered]


def gone_line(gone: list[str]) -> str:
    """What a page says of its ticked domains the server no longer offers ("" for none)."""
    if not gone:
        return ""
    names = ", ".join(repr(name) for name in gone)
    return (f'<span class="error">{_html(names)} {"is" if len(gone) == 1 else "are"} no '
            f"longer offered (unticked): the server keeps the {shelf.MAX_PAGE_DOMAINS} most "
            "recently used domains added from pages</span>")


def _joined(*parts: Any, sep: str = "<br>") -> str:
    return sep.join(part for part in parts if isinstance(part, str) and part)


def _banner(backend: ServeBackend, parts: list[str] | None = None) -> str:
    lines = [backend.banner] if backend.banner else []
    if parts and not backend.banner:
        lines.append(f"{RANDOM_NOTICE}: the last result used untrained parts "
                     f"({', '.join(parts)}) - not a trained model")
    return "<br>".join(text_html(line) for line in lines)


def unusable_html(backend: ServeBackend, options: list[EncoderChoice]) -> str:
    """The registered encoders that cannot work with the served generator, each with why
    (folded: a line on a phone), or ``""`` when every one can."""
    unusable = [c for c in options if c.problem is not None]
    if not unusable:
        return ""
    gen = backend.generator
    items = "".join(f"<li><b>{_html(c.spec)}</b>: {text_html(str(c.problem))}</li>"
                    for c in unusable)
    return (f"<details><summary>{len(unusable)} encoder(s) not offered: they cannot work with "
            f"this {gen.size} px generator ({gen.n_latent} × {gen.style_dim} latents)"
            f"</summary><ul>{items}</ul></details>")


def job_line(backend: ServeBackend, job: TextJob | None, mine: bool = True) -> str:
    """What the page says of a text domain: its progress while it is made (a progress bar:
    a page loaded meanwhile has no Gradio progress of it), else how it ended; ``mine``:
    this browser asked for it (else it is said to be another page's)."""
    if job is None:
        return ""
    other = "" if mine else "another page: "
    state, fraction, description = job.snapshot()
    if state == "running":
        what = description or f"{'training' if job.trained else 'adding'} {job.prompt!r}"
        # the bar in a label: its line is its accessible name
        return (f'<div class="job-progress"><label><progress max="1" value="{fraction:.3f}">'
                f"</progress> {_html(other + what)} ({fraction:.0%})</label></div>")
    if job.error is not None or job.name is None:
        return error_line(job.error or StylebridgeError("the text domain was not made")) \
            if mine else ""
    note = f" [{RANDOM_NOTICE}: made with random-weight networks, not a real domain]" \
        if backend.domain_random.get(job.name) else ""
    how = "trained domain" if job.trained else "added domain"
    offered = "" if mine else " (now offered in the list)"
    return f"{_html(other)}{how} {_html(job.name)!r}{_html(note)}{offered}"


def fresh_download(source: Path | None, what: str) -> tuple[Any, str]:
    """A download button clicked: when its copy has outlived the purge age (the browser got
    a refusal), a fresh copy of ``source`` and the line saying so; else nothing changes."""
    import gradio as gr

    age = DELETE_CACHE[1]
    if source is None or time.monotonic() - COPIES.made(source) <= age:
        return gr.update(), ""
    after = f"{age / 3600:g} h" if age >= 3600 else f"{age / 60:g} min" if age >= 60 \
        else f"{age:.0f} s"
    expired = f"the download copy of {what} expired (copies are deleted {after} after they " \
              "are made)"
    if not source.is_file():
        return gr.update(), f'<span class="error">{_html(expired)}: run again</span>'
    return gr.update(value=served_copy(source, fresh=True)), \
        f'<span class="error">{_html(expired)}: a fresh copy is ready, click again</span>'



def featureshift_box(backend: ServeBackend, spec: str | None) -> dict[str, Any]:
    """The FeatureShift checkbox for the encoder ``spec``: off, and saying why, unless the
    encoder returns the generator feature map FeatureShift shifts."""
    problem = backend.featureshift_problem(spec or "") if spec else None
    if problem is None:
        return {"label": "FeatureShift (FSE)", "interactive": True, "info": None}
    return {"label": "FeatureShift (needs fse)", "interactive": False, "value": False,
            "info": problem}


def build_app(backend: ServeBackend) -> Any:
    """The ``gr.Blocks`` page (not launched)."""
    import gradio as gr

    astronaut = backend.load_photo(None)
    domain_names = backend.domain_choices()
    options = backend.encoder_options()
    encoders = [(c.label, c.spec) for c in options if c.problem is None]
    encoder_info = unusable_html(backend, options)
    first_encoder = encoders[0][1] if encoders else None

    with gr.Blocks(title=TITLE, delete_cache=DELETE_CACHE) as app:
        # the page's title as its level-1 heading
        gr.Markdown(f"# {TITLE}\nDrop a face photo → FFHQ alignment → an encoder inverts it → "
                    "the chosen domains restyle it.  Generator: "
                    f"`{_html(backend.generator_label)}`.", elem_id="title")
        banner = gr.HTML(_banner(backend), elem_id="random-banner",
                         visible=bool(backend.banner))
        photo = gr.State(astronaut)
        run_parts = gr.State(None)  # the last run's random parts, for the banner
        # the last run's id, kept in the browser: a reload shows that result again
        last_run = gr.BrowserState(None, storage_key="stylebridge-last-run")
        # the text domain this browser trained last (its download again after a reload), and
        # a random name of this browser (another page's training is not said to be its own)
        last_domain = gr.BrowserState("", storage_key="stylebridge-last-domain")
        client = gr.BrowserState("", storage_key="stylebridge-client")
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="face photo upload: drop or click (the astronaut is "
                                       "preloaded)",
                                 file_count="single", type="filepath", elem_id="photo-upload",
                                 height=170)
                status = gr.HTML(f"photo: {astronaut.name}", elem_id="status")
            with gr.Column(scale=1):
                original = gr.Image(astronaut.image.permute(1, 2, 0).numpy(), label="photo",
                                    interactive=False, height=220, elem_id="photo-preview",
                                    alt_text=PHOTO_ALT,
                                    buttons=IMAGE_BUTTONS)
            with gr.Column(scale=1):
                aligned = gr.Image(astronaut.aligned_pil(), label="aligned (FFHQ, dlib landmarks)",
                                   interactive=False, height=220, elem_id="aligned-preview",
                                   alt_text=ALIGNED_ALT,
                                   buttons=IMAGE_BUTTONS)
        with gr.Row():
            with gr.Column(scale=1):
                encoder = gr.Dropdown(encoders, value=first_encoder,
                                      label="encoder (or a spec: NAME:CHECKPOINT)",
                                      allow_custom_value=True, elem_id="encoder")
                # the registered encoders that cannot work with this generator, and why
                encoder_note = gr.HTML(encoder_info, elem_id="encoder-note")
                domains = gr.CheckboxGroup(domain_names, value=domain_names[:2],
                                           label="domains", elem_id="domains")
                domain_files = gr.File(label="domain checkpoints upload: add .safetensors "
                                             "files",
                                       file_count="multiple", type="filepath", height=140,
                                       elem_id="domain-files")
                # what the domain drop and the text training say (the photo keeps its line)
                domain_status = gr.HTML("", elem_id="domain-status")
            with gr.Column(scale=1):
                prompt = gr.Textbox(label="text domain: a prompt (a loaded hyper-network "
                                          "renders it at once, else it is trained on the spot)",
                                    placeholder="a 3d render in the style of Pixar",
                                    elem_id="prompt")
                steps = gr.Slider(1, MAX_TRAIN_STEPS, value=TRAIN_STEPS, step=1,
                                  label="training steps", elem_id="steps")
                train = gr.Button("add text domain", elem_id="train")
                download_domain = gr.DownloadButton("download the trained domain "
                                                    "(.safetensors)", visible=False,
                                                    elem_id="download-domain")
                skip = gr.Dropdown(SKIP_PRESETS, value="", allow_custom_value=True,
                                   label="skip layers (no domain change on these style layers)",
                                   info=SKIP_INFO, elem_id="skip-layers")
                strength = gr.Slider(0.0, 2.0, value=1.0, step=0.05, elem_id="strength",
                                     label="domain strength (1 = as trained, 0 = the inversion)")
                with gr.Row():
                    alpha = gr.Checkbox(label="alpha calibration", elem_id="alpha")
                    featureshift = gr.Checkbox(**featureshift_box(backend, first_encoder),
                                               elem_id="featureshift")
        run = gr.Button("run", variant="primary", elem_id="run")
        result_status = gr.HTML("", elem_id="result-status")
        grid = gr.Image(label="result", format="png", interactive=False, elem_id="result-grid",
                        buttons=IMAGE_BUTTONS, alt_text=GRID_ALT)
        # hidden until a run fills it: empty, Gradio's table showed the headers "1 2 3"
        metrics = gr.Dataframe(label="metrics (against the aligned photo)", interactive=False,
                               elem_id="metrics", visible=False)
        metric_notes = gr.HTML("", elem_id="metric-notes")
        with gr.Row():
            download_images = gr.DownloadButton("download images (.zip)", visible=False,
                                                elem_id="download-images")
            download_latents = gr.DownloadButton("download latents (.safetensors)",
                                                 visible=False, elem_id="download-latents")
        download_status = gr.HTML("", elem_id="download-status")
        result_outputs = [result_status, grid, metrics, metric_notes, download_images,
                          download_latents]

        def on_upload(path: str | None, current: Photo, progress: Any = gr.Progress()) -> Any:  # noqa: B008
            # the drop zone is emptied each time, ready for the next photo
            kept = (gr.update(),) * len(result_outputs)
            if not path:
                return current, gr.update(), gr.update(), gr.update(), None, *kept, gr.update()
            progress(0.2, desc="aligning")
            try:  # a folder named as the upload: refused before anything reads it
                new = backend.load_photo(check_upload(path))
            except Exception as exc:  # the page shows it; the server keeps serving
                still = f" (the photo is still {_html(current.name)})"
                return (current, gr.update(), gr.update(), error_line(exc) + still, None,
                        *kept, gr.update())
            # the last photo's result goes: it is not this photo's
            return (new, new.image.permute(1, 2, 0).numpy(), new.aligned_pil(),
                    f"photo: {_html(new.name)} (face found and aligned)", None, *cleared(),
                    "cleared")  # Gradio's page does not store a falsy BrowserState value

        def cleared() -> tuple[Any, ...]:
            return ("", None, gr.update(value=None, visible=False), "",
                    gr.update(value=None, visible=False), gr.update(value=None, visible=False))

        def on_domain_files(paths: list[str] | None, chosen: list[str]) -> Any:
            backend.touch_domains(chosen or [])  # ticked: not dropped for the new ones
            added: list[str] = []
            errors: list[str] = []
            nets: list[str] = []
            offered: list[str] = []  # the same domain dropped again: ticked, not copied
            for path in paths or []:
                try:
                    before = set(backend.domains)
                    name = backend.add_domain_file(check_upload(path))
                    (nets if name not in backend.domains else offered if name in before
                     else added).append(name)
                except Exception as exc:  # name the file as uploaded, not its server path
                    errors.append(error_line(exc, strip=str(Path(path).parent)))
            # what was added is said even when another file of the same drop failed
            status_text = "; ".join(
                [f"added domain(s): {_html(', '.join(added))}"] * bool(
                    added or not (nets or errors or offered))
                + [f"already offered: {_html(', '.join(dict.fromkeys(offered)))}"] * bool(offered)
                + [f"hyper-network {_html(n)}: type a prompt for a domain" for n in nets]
                + errors)
            now = backend.domain_choices()
            value, gone = split_offered([*(chosen or []), *added, *offered], now)
            return (gr.update(choices=now, value=value),
                    _joined(status_text, gone_line(gone), sep="; "), None)

        def domain_download(name: str | None) -> Any:
            trained = backend.domain_files.get(name or "")  # a hyper-network's has no file
            return gr.update(value=served_copy(trained), visible=True,
                             label=f"download {name!r} (.safetensors)") if trained \
                else gr.update(visible=False)

        def on_train(text: str, n_steps: float, chosen: list[str], me: str | None = None,
                     progress: Any = gr.Progress()) -> Any:  # noqa: B008
            backend.touch_domains(chosen or [])  # ticked: not dropped for the new one
            try:
                name = backend.text_domain(
                    text, int(n_steps), progress=lambda f, d: progress(f, desc=d), owner=me)
            except Exception as exc:
                return gr.update(), error_line(exc), gr.update(), gr.update()
            assert backend.job is not None
            now = backend.domain_choices()
            value, gone = split_offered([*(chosen or []), name], now)
            return (gr.update(choices=now, value=value),
                    _joined(job_line(backend, backend.job), gone_line(gone)),
                    domain_download(name), name)

        def on_fetch(what: str) -> Callable[..., Any]:
            def fetch(last_id: str | None) -> Any:  # a run's file: zip or latents
                result = backend.history.get(last_id)
                return fresh_download(getattr(result, what, None), WHAT[what])
            return fetch

        def on_fetch_domain(name: str | None) -> Any:
            return fresh_download(backend.domain_files.get(name or ""), f"domain {name!r}")

        def on_encoder(spec: str | None) -> Any:
            try:  # a plugin failing on its options: one line, not a bare exception
                problem = backend.encoder_problem(spec or "")
            except Exception as exc:
                return error_line(exc)
            return encoder_info if problem is None else error_line(StylebridgeError(problem))

        def on_encoder_featureshift(spec: str | None) -> Any:
            try:  # the box is on only for an encoder that returns a feature map
                return gr.update(**featureshift_box(backend, spec))
            except Exception:  # the encoder's note says what is wrong with it
                return gr.update()

        def on_run(current: Photo, enc: str, chosen: list[str], skip_text: str, use_alpha: bool,
                   use_fs: bool, strength_value: float, last_id: str | None = None,
                   progress: Any = gr.Progress()) -> Any:  # noqa: B008
            previous = backend.history.get(last_id)
            shown = previous.settings if previous is not None else ""
            request = RunRequest(encoder=enc or "", domains=list(chosen or []),
                                 skip_layers=preset_value(skip_text or ""), alpha=bool(use_alpha),
                                 featureshift=bool(use_fs), strength=float(strength_value))
            try:
                result = backend.run(current, request,
                                     progress=lambda f, d: progress(f, desc=d))
            except Exception as exc:  # the previous result stays, said to be the previous
                return (error_line(exc) + (f" (shown: the previous run, {_html(shown)})"
                                           if shown else ""),
                        *(gr.update(),) * (len(result_outputs) - 1), None, gr.update())
            return (*shown_result(result), list(result.random_parts), result.run_id)

        def shown_result(result: RunResult, restored: bool = False) -> tuple[Any, ...]:
            import pandas as pd

            headers, rows = display_table(result.columns, result.rows)
            text = "<br>".join([_html(f"{'restored after a reload: ' if restored else ''}"
                                      f"{result.settings}"),
                                _html(result.notice or "all inputs are trained models")])
            # the grid's alt text, for the page's script (page.py)
            text += alt_marker(grid_alt([k for k in result.images if k != INVERSION],
                                        result.settings))
            notes = "<br>".join([text_html(METRIC_LEGEND),
                                 *(text_html(f"note: {line}") for line in result.notes),
                                 *(text_html(line) for line in result.licences)])
            return (text, served_copy(result.grid_path),
                    gr.update(value=pd.DataFrame(rows, columns=headers), visible=True),
                    notes, gr.update(value=served_copy(result.images_zip), visible=True),
                    gr.update(value=served_copy(result.latents_path), visible=True))

        def on_banner(parts: list[str] | None) -> Any:
            if parts is None:  # a failed run: the banner stays as it was
                return gr.update()
            return gr.update(value=_banner(backend, parts),
                             visible=bool(backend.banner or parts))

        # one queue for every event that reads or changes the photo, the domains or the
        # models: a run clicked while a new photo is still aligning waits for it (it used the
        # old photo, while the page named the new one)
        work = {"concurrency_id": WORK_QUEUE, "concurrency_limit": 1}
        upload.upload(on_upload, [upload, photo],
                      [photo, original, aligned, status, upload, *result_outputs, last_run],
                      **work)
        domain_files.upload(on_domain_files, [domain_files, domains],
                            [domains, domain_status, domain_files], **work)
        # (a training stops only when the server stops: after its step, lifecycle.py)
        train.click(on_train, [prompt, steps, domains, client],
                    [domains, domain_status, download_domain, last_domain], **work)
        # a download whose copy was purged (the browser was refused): a fresh copy, said
        quiet = {"queue": False, "show_progress": "hidden"}
        download_images.click(on_fetch("images_zip"), [last_run],
                              [download_images, download_status], **quiet)
        download_latents.click(on_fetch("latents_path"), [last_run],
                               [download_latents, download_status], **quiet)
        download_domain.click(on_fetch_domain, [last_domain], [download_domain, domain_status],
                              **quiet)
        # the button is off while its run waits and runs: ten quick clicks were ten full runs
        # the banner is set after the run, not as one of its outputs: an output is dimmed
        # under the progress overlay while the run waits and runs, and the RANDOM WEIGHTS
        # banner must stay readable
        run.click(lambda: gr.update(interactive=False), None, run, queue=False).then(
            on_run, [photo, encoder, domains, skip, alpha, featureshift, strength, last_run],
            [*result_outputs, run_parts, last_run], **work).then(
            on_banner, [run_parts], [banner], queue=False, show_progress="hidden").then(
            lambda: gr.update(interactive=True), None, run, queue=False)
        # an encoder typed in (NAME:CHECKPOINT, options) that cannot work with this
        # generator is said at once, not when run is pressed
        encoder.change(on_encoder, [encoder], [encoder_note], queue=False,
                       show_progress="hidden")
        encoder.change(on_encoder_featureshift, [encoder], [featureshift], queue=False,
                       show_progress="hidden")

        # a text domain still being made when the page loads (a reload, another tab): its
        # progress at once, then its result, from the server's record of it (jobs.py); the
        # domains another page added, and the server stopping, while the page is open
        job_timer = gr.Timer(JOB_POLL_S)
        watched = gr.State(None)  # the id of the job this page shows
        listed = gr.State(None)  # the domain names this page lists

        def on_load(chosen: list[str] | None, me: str | None = None,
                    domain: str | None = None) -> Any:
            job, me = backend.job, me or secrets.token_urlsafe(12)
            running = job is not None and job.running
            names = backend.domain_choices()
            return (gr.update(choices=names, value=split_offered(chosen, names)[0]),
                    job_line(backend, job, job.owner in (None, "", me)) if running and job else gr.update(),
                    job.id if running and job else None, names, me,
                    domain_download(domain) if domain in backend.domain_files else gr.update())

        def on_restore(last_id: str | None) -> Any:
            # a reload: the last run of this browser again (still held by the server)
            result = backend.history.get(last_id)
            if result is None:
                return (gr.update(),) * (len(result_outputs) + 1)
            return (*shown_result(result, restored=True), list(result.random_parts))

        def on_job_tick(chosen: list[str] | None, job_id: int | None,
                        names: list[str] | None = None, me: str | None = None) -> Any:
            backend.touch_domains(chosen or [])  # ticked in an open page: in use
            now, job = backend.domain_choices(), backend.job
            # this page's own training, not followed after a reload (that page offers it)
            mine = job is not None and bool(me) and job.owner == me and job.id != job_id
            if mine and job.running:  # its domain may be offered already: on_train ticks it
                now = names or now    # (a tick answered after on_train's untick it)
            # offered, not ticked: this page did not ask for them; ticked and dropped since
            # (another page added more): unticked, and said
            kept, gone = split_offered(chosen, now)
            if mine and job.name in now and job.name not in (names or []) + kept:
                kept.append(job.name)  # this page's new domain, before on_train's answer
            offer = gr.update() if now == names and not gone else gr.update(
                choices=now, value=kept)
            stop = gr.update(value=_banner(backend) + "<br>" * bool(backend.banner)
                             + _html(f"{STOPPING}: nothing new is run"),
                             visible=True) if backend.stopping.is_set() else gr.update()
            line = gr.update()
            if job is not None and job.id == job_id:
                line = job_line(backend, job, job.owner in (None, "", me))
                job_id = job_id if job.running else None
            if gone:
                line = _joined(gone_line(gone), line)
            return offer, line, job_id, now, stop

        # every page load lists the domains the server holds now (trained or uploaded in
        # another tab), not those it held when the page was built.  Both load events run
        # outside the queue (quick, nothing to wait for): Gradio's max_size counts every
        # queued event, and with MAX_QUEUE requests waiting a page opened or reloaded was
        # refused its restore ("queue is full")
        app.load(on_load, [domains, client, last_domain],
                 [domains, domain_status, watched, listed, client, download_domain],
                 queue=False)
        app.load(on_restore, [last_run], [*result_outputs, run_parts], queue=False).then(
            on_banner, [run_parts], [banner], queue=False, show_progress="hidden")
        app.load(None, None, None, js=ACCESSIBILITY_JS)
        job_timer.tick(on_job_tick, [domains, watched, listed, client],
                       [domains, domain_status, watched, listed, banner], **quiet)
    guard_temp_files(app)  # no folder is ever registered for Gradio's purge (uploads.py)
    return app


def _close_then(app: Any, cleanup: Callable[[], None]) -> None:
    """``app.close()`` (``block=False``) also cleans up, once the server has stopped."""
    close = app.close

    def close_and_clean(verbose: bool = True) -> None:
        try:
            close(verbose)
        finally:
            cleanup()

    app.close = close_and_clean


def launch(backend: ServeBackend, host: str = "127.0.0.1", port: int = 7860, *,
           block: bool = True, allow_hosts: Iterable[str] = ()) -> Any:
    """Build the page and serve it (``block=False``: return at once, for tests; the returned
    app's ``close()`` stops it).  Requests whose ``Host`` is not this machine's, the bound
    address or one of ``allow_hosts``, and cross-site uploads and runs, are refused
    (:mod:`.guard`).  Uploads and results are served from an upload folder of the server's own,
    removed with the back end's temporary work dir when it stops."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # nothing leaves the machine
    import gradio as gr
    from starlette.middleware import Middleware

    cleanup = Cleanup(backend)  # before the page is built: its components read the folder
    try:
        system = ["ui-sans-serif", "system-ui", "sans-serif"]  # no web fonts: works offline
        theme = gr.themes.Default(font=system, font_mono=["ui-monospace", "monospace"])
        app = build_app(backend)
        app.queue(default_concurrency_limit=1, max_size=MAX_QUEUE)
        guard = Middleware(RequestGuard, policy=host_policy(host, allow_hosts))
        # num_workers=0: no static-file worker beside the guarded app; run_history=False:
        # no record of the runs (their photos) in the browser or elsewhere; show_error=False:
        # an exception out of a handler is not sent to the page (its text names server
        # paths); the handlers' own one-line errors are (error_line)
        app.launch(server_name=host, server_port=port, show_error=False, quiet=True,
                   max_file_size=f"{MAX_UPLOAD_MB}mb", app_kwargs={"middleware": [guard]},
                   prevent_thread_lock=True, theme=theme, css=CSS, ssr_mode=False,
                   share=False, footer_links=[], num_workers=0, run_history=False)
        # the page's own copies and broken-off uploads: purged on Gradio's age
        COPIES.start(*DELETE_CACHE, folder=cleanup.folder)
    except BaseException:
        cleanup()
        raise
    if block:  # until Ctrl+C (or SIGTERM through the CLI): the running request ends first
        serve_until_stopped(app, backend, cleanup)
    else:
        _close_then(app, cleanup)
    return app


__all__ = ["ACCESSIBILITY_JS", "CSS", "DELETE_CACHE", "LIVE_REGIONS", "build_app", "error_line", "launch", "served_copy",
           "upload_folder_parent"]
