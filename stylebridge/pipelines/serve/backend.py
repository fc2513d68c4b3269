"""The back end of ``stylebridge serve``: one model cache per process, plain Python calls.

:class:`ServeBackend` holds the generator, the encoders, the domains, the calibrators and the
FeatureShift renderer built so far, and runs every request through the same API as the
command line: :func:`stylebridge.pipelines.align.align_face` for the alignment preview,
:class:`stylebridge.pipelines.adapt.Adapter` for inversion and adaptation,
:func:`stylebridge.pipelines.adapt.load_domains` for domain files,
:func:`stylebridge.pipelines.train_domain.train_domain` for a text prompt trained on the
spot, metrics created through the registry.  Without official weights it uses the demo's
64 px random-weight preset (:func:`stylebridge.pipelines.demo.load_demo_models`) and says so
(:attr:`ServeBackend.banner`).  The web page itself is :mod:`stylebridge.pipelines.serve.app`.

Progress goes to a plain callback ``progress(fraction, description)``; bad input raises a
one-line :class:`~stylebridge.errors.StylebridgeError` that the page shows.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from stylebridge.core.checkpoint import RANDOM_NOTICE, is_random_weights
from stylebridge.core.compiled import compile_synthesis, compiling_note
from stylebridge.core.device import keep_rng_state, resolve_device
from stylebridge.core.images import load_image, resize_square, save_png
from stylebridge.core.interfaces import Calibrator, DomainMethod, Encoder, Renderer
from stylebridge.core.io import write_json
from stylebridge.core.labels import caption, labelled_grid
from stylebridge.core.precision import check_precision, slow_precision_notes
from stylebridge.core.stylegan2.checkpoint import save_stylegan2
from stylebridge.errors import ImageError, StylebridgeError
from stylebridge.pipelines.adapt import Adapter, load_domains
from stylebridge.pipelines.adapter import attach_encoder, check_inversion
from stylebridge.pipelines.align import NoFaceError, align_face
from stylebridge.pipelines.demo import (
    ALPHA_IMAGES,
    DemoModels,
    demo_image,
    fit_alpha_on_samples,
    load_demo_models,
    photo_metrics,
    random_domains,
)
from stylebridge.pipelines.inversion_file import LATENTS_SUFFIX, save_inversion
from stylebridge.pipelines.photos import random_file_notice
from stylebridge.pipelines.serve.cache import ModelCache, spec_key
from stylebridge.pipelines.serve.domains import MAX_DOMAIN_NAME as MAX_DOMAIN_NAME
from stylebridge.pipelines.serve.domains import DomainShelf
from stylebridge.pipelines.serve.encoders import (
    EncoderChoice,
    build_encoder,
    fit_problem,
    measure,
    registered_choices,
)
from stylebridge.pipelines.serve.files import prune_run
from stylebridge.pipelines.serve.jobs import Progress, TextJob, clip_setup, run_text_job
from stylebridge.pipelines.serve.records import (  # also importable from here, as before
    MAX_PIXELS,
    Photo,
    RunRequest,
    RunResult,
    _safe,
    check_photo_file,
    licence_lines,
)
from stylebridge.pipelines.serve.summary import (
    CHANGE_COLUMN,
    METRIC_COLUMNS,
    STOPPING,
    RunHistory,
    ServerStopping,
    featureshift_problem,
    metric_rows,
    random_banner,
    settings_line,
    small_photo_error,
    write_images_zip,
)
from stylebridge.pipelines.training.domain_log import remove_run_records
from stylebridge.pipelines.typed import coerce_path_fields
from stylebridge.plugins.calibrators.alpha import parse_layers
from stylebridge.registry.resolve import (
    load_generator,
    load_plugin,
    provenance_of,
    spec_random,
)
from stylebridge.registry.spec import parse_plugin_spec
from stylebridge.registry.weights import WeightsManager

MAX_FILE_MB = 50            # a photo above this size is refused, in the page's status line
#: the web server's own cap on any upload (a domain file may be larger than a photo); above
#: it the browser only gets a passing toast, so it sits well above the photo limit
MAX_UPLOAD_MB = 1024
ALIGN_SIZE = 256            # the aligned photo (the encoders resize it to their input)
TRAIN_STEPS = 4             # default steps of a text domain trained on the spot
MAX_TRAIN_STEPS = 200
GRID_MIN_TILE = 128         # grid tiles smaller than this are enlarged (nearest)
#: FeatureShift's guiding encoder on the page: e4e, as the thesis trains it
DEFAULT_GUIDE = "e4e"


def _no_progress(fraction: float, description: str) -> None:
    """The default progress callback: report nothing."""


@dataclass
@coerce_path_fields
class ServeConfig:
    """How the web app's back end is set up (``stylebridge serve`` options).

    ``generator``: a generator spec; ``None``: the installed official one, else the demo's
    64 px random-weight preset.  ``domains``: domain checkpoints offered in the page (besides
    installed ones).  ``calibrate``: an alpha calibrator file for "alpha calibration on";
    ``None``: fitted on the spot on generator samples.  ``featureshift``: a trained
    FeatureShift checkpoint; ``None``: an untrained one (labelled RANDOM WEIGHTS).
    ``work_dir``: where results and trained domains go (default: a new temporary folder).
    """

    generator: str | None = None
    domains: list[str] = field(default_factory=list)
    calibrate: str | None = None
    featureshift: Path | None = None
    device: str = "auto"
    seed: int = 0
    compile: str = "auto"  # the synthesis network through torch.compile: auto/on/off
    precision: str = "fp32"  # the synthesis network's dtype: fp32 (reference), bf16, fp16
    work_dir: Path | None = None
    max_pixels: int = MAX_PIXELS


class ServeBackend(DomainShelf):
    """The model cache of one ``stylebridge serve`` process and the requests of the page."""

    def __init__(self, config: ServeConfig | None = None) -> None:
        self.config = config or ServeConfig()
        self.device = resolve_device(self.config.device)
        check_precision(self.config.precision, self.device)
        self.lock = threading.RLock()  # one request at a time touches the cache
        self.work_dir = Path(self.config.work_dir or tempfile.mkdtemp(prefix="stylebridge-serve-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.temporary_work_dir = self.config.work_dir is None  # removed by close()
        self._runs = 0
        #: encoders and alpha fits by resolved file, the latest few only (:mod:`.cache`)
        self._cache = ModelCache()
        self.preset: DemoModels | None = None
        if self.config.generator is not None:
            self.generator, prov = load_generator(self.config.generator, self.device)
            self.generator_random = prov.random
            self.generator_file: Path | None = prov.path
            self.generator_label = str(prov.path)
        else:
            models = load_demo_models(self.device, self.config.seed)
            self.preset = models
            self.generator = models.generator.to(self.device).eval()
            self.generator_random = models.random
            self.generator_file = None
            self.generator_label = models.sources.get("generator", "generator")
        self.generator.set_precision(self.config.precision)
        #: the compile fall-back's line, among every later run's notes (no print)
        self.notices: list[str] = []
        #: what the server says once where it starts (the console): what compiling costs, a
        #: precision slower than fp32 on this CPU (not repeated in every run's notes)
        self.start_notes: list[str] = []
        compile_synthesis(self.generator, self.config.compile, notice=self.notices.append)
        if compiling_note(self.device) in self.notices:  # a fall-back stays in every run's
            self.notices.remove(compiling_note(self.device))
            self.start_notes.append(compiling_note(self.device))
        self.start_notes += slow_precision_notes(self.config.precision, self.device)
        self.domains: dict[str, DomainMethod] = {}
        self.domain_random: dict[str, bool] = {}
        self.domain_sources: dict[str, str] = {}
        self.domain_keys: dict[str, str] = {}
        self.domain_used: dict[str, None] = {}  # least recently used first (domains.py)
        self.used_lock = threading.Lock()
        #: text-conditioned methods loaded without a prompt (a hyper-network): the page's
        #: prompt box turns a prompt into a domain through the last one, without training
        self.hypernets: dict[str, DomainMethod] = {}
        self.hypernet_random: dict[str, bool] = {}
        self.job: TextJob | None = None  # the latest text domain made (:mod:`.jobs`)
        #: the last runs by id, for a reloaded page; the folder of one evicted is deleted
        self.history = RunHistory(evicted=lambda result: prune_run(self.work_dir, result))
        #: set when the server stops: a request not yet begun is refused (:mod:`.lifecycle`)
        self.stopping = threading.Event()
        self.domain_files: dict[str, Path] = {}  # text domains trained here, for download
        if self.generator_random and self.preset is not None:
            for name, method in random_domains(self.generator, self.config.seed).items():
                self._add_domain(name, method, True, "random StyleSpace offsets")
        for spec in [*self._installed_domains(), *self.config.domains]:
            self.add_domain_file(spec)
        #: never dropped; the domains pages add are bounded (domains.MAX_PAGE_DOMAINS)
        self.fixed_domains = frozenset(self.domains)

    def close(self) -> None:
        """Remove the work dir when it is the temporary folder made for this back end (its
        results and trained domains); a ``work_dir`` given in the config is kept."""
        if self.temporary_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    # -- what the page offers ------------------------------------------------------------------
    @property
    def banner(self) -> str | None:
        """The RANDOM WEIGHTS line of the page, or ``None`` when the models are trained."""
        if self.generator_random:
            return random_banner(self.preset is not None, self.generator_label,
                                 self.generator.size)
        return None

    def stop_check(self) -> None:
        """Raise :class:`ServerStopping` once the server is stopping (a request not begun)."""
        if self.stopping.is_set():
            raise ServerStopping(f"{STOPPING}: this request was not run")

    def encoder_options(self) -> list[EncoderChoice]:
        """Every registered encoder with, where it cannot work with this generator, the line
        a run would fail with (:mod:`.encoders`); the page offers the others."""
        return registered_choices(self.generator, self._preset_encoders())

    def encoder_problem(self, spec: str) -> str | None:
        """Why the encoder ``spec`` (typed in the page) cannot work with this generator, or
        ``None`` when it can or that needs a run to tell."""
        return fit_problem(spec, self.generator, self._preset_encoders()) if spec.strip() \
            else None

    def _preset_encoders(self) -> dict[str, Encoder]:
        """The tiny preset's e4e / FSE that a bare name stands for (no weights installed)."""
        preset, manager = self.preset, WeightsManager()
        if preset is None or not self.generator_random:
            return {}
        return {name: enc for name, enc in (("e4e", preset.e4e), ("fse", preset.fse))
                if manager.resolve("encoder", name) is None}

    def text_domain(self, prompt: str, steps: int = TRAIN_STEPS,
                    progress: Progress = _no_progress, owner: str | None = None) -> str:
        """A domain for ``prompt``: rendered at once by the last hyper-network loaded (no
        training), else trained on the spot (:meth:`train_text_domain`); its name.  Its
        progress and end are also kept in :attr:`job`, for a page loaded meanwhile
        (``owner``: the browser that asked, so that another page does not claim it)."""
        self.stop_check()
        if not self.hypernets:
            return run_text_job(prompt, True, lambda p: self.train_text_domain(prompt, steps, p),
                                progress, self._started, owner)
        return run_text_job(prompt, False, lambda p: self._hyper_domain(prompt, p), progress,
                            self._started, owner)

    def _started(self, job: TextJob) -> None:
        self.job = job

    # -- photos --------------------------------------------------------------------------------
    def load_photo(self, path: str | Path | None = None) -> Photo:
        """A photo file (``None``: scikit-image's astronaut) → :class:`Photo` with its
        FFHQ-aligned crop; one-line errors for no image, a huge image or no face."""
        if path is None:
            image, name = demo_image(None)
        else:
            self.stop_check()
            size = Path(path).stat().st_size
            if size > MAX_FILE_MB * 1024 * 1024:  # before anything is decoded
                raise ImageError(f"is {size / 2**20:.0f} MB, above the web app's {MAX_FILE_MB} MB "
                                 "limit for a photo", path=Path(path).name)
            check_photo_file(path, self.config.max_pixels)
            try:
                image = load_image(path)
            except ImageError as exc:
                raise ImageError(str(exc).removeprefix(f"{path}: "), path=Path(path).name) from None
            name = Path(path).name
        with self.lock:
            try:
                face = align_face(image, ALIGN_SIZE, path=name)
            except NoFaceError as exc:  # a small photo: its size, and why
                raise small_photo_error(exc, image) from None
        return Photo(image=image, aligned=face.to_tensor(), name=name)

    # -- the model cache -------------------------------------------------------------------------
    def _cached(self, kind: str, key: str, build: Callable[[], Any]) -> Any:
        return self._cache.get_or_build(kind, key, build)

    def encoder(self, spec: str) -> tuple[Encoder, bool]:
        """An encoder by spec, built once: the tiny preset's e4e / FSE while the preset is in
        use and no weights are installed for them, else :func:`load_encoder` (the CLI's)."""
        spec = spec.strip()
        if not spec:
            raise StylebridgeError("choose an encoder")
        # options checked and the encoder measured on meta before it is built (encoders.py);
        # kept by its resolved file and options: `e4e:/p/./e.pt` is `e4e:/p/e.pt` (cache.py)
        return self._cached("encoder", spec_key(spec), lambda: build_encoder(
            spec, self._preset_encoders(), self.device))

    def featureshift_problem(self, spec: str) -> str | None:
        """Why the page's FeatureShift box is off for the encoder ``spec`` (``None``: on)."""
        try:
            return featureshift_problem(measure(spec, self._preset_encoders()), spec)
        except StylebridgeError:  # a bad spec: the encoder's own check says it
            return None

    def _check_fits(self, encoder: Encoder) -> None:
        """The encoder's ``check_generator``, then one encoding of a blank image checked as a
        run checks it (:func:`check_inversion`: shapes, dtype, NaN/inf): an encoder whose w+
        does not fit failed inside the alpha fit or FeatureShift as an internal error."""
        size = int(encoder.preprocessing.size or self.generator.size)
        attach_encoder(encoder, self.generator, bind=False)  # the Adapter binds it
        with torch.no_grad():
            probe = encoder.encode(torch.full((1, 3, size, size), 0.5, device=self.device))
        check_inversion(probe, self.generator, encoder, 1)

    def calibrator(self, encoder_spec: str, encoder: Encoder) -> tuple[Calibrator, bool, str]:
        """Alpha-rescaling: the ``--calibrate`` file, else fitted on generator samples."""
        if self.config.calibrate:
            spec = self.config.calibrate
            calib = self._cached("calibrator", spec,
                                 lambda: load_plugin("calibrator", spec, device=self.device))
            return calib, spec_random("calibrator", spec, calib), spec
        calib = self._cached("alpha-fit", spec_key(encoder_spec),
                             lambda: fit_alpha_on_samples(encoder, self.generator,
                                                          self.config.seed))
        return calib, False, f"alpha fitted on {ALPHA_IMAGES} generator samples"

    def featureshift(self, encoder: Encoder) -> tuple[Renderer, bool]:
        """The ``--featureshift`` model, else an untrained FeatureShift at the encoder's layer."""
        from stylebridge.plugins.renderers.featureshift import FeatureShift, load_featureshift

        if self.config.featureshift is not None:
            path = self.config.featureshift
            model, header = self._cached(
                "featureshift", str(path), lambda: load_featureshift(path, device=self.device))
            return model, is_random_weights(header.extra)
        layer = encoder.feature_layer
        if layer is None:
            raise StylebridgeError(f"FeatureShift shifts FSE's feature map: encoder "
                                   f"{encoder.name!r} has none; choose fse (features mode)")
        channels = self.generator.feature_shapes()[layer][0]

        def build() -> Renderer:  # seeded; the caller's random stream is left as it was
            with keep_rng_state():
                torch.manual_seed(self.config.seed)
                return FeatureShift(feature_channels=channels, hidden=max(8, channels * 3 // 2),
                                    layer=layer, residual=True).to(self.device).eval()

        return self._cached("featureshift", f"untrained@{layer}", build), True

    # -- text domains ----------------------------------------------------------------------------
    def _generator_path(self) -> Path:
        """The generator as a file (``train domain`` reads one): the preset is saved once."""
        if self.generator_file is None:
            path = self.work_dir / "preset-generator.safetensors"
            save_stylegan2(path, self.generator,
                           extra={"random_weights": True,
                                  "notes": ["RANDOM WEIGHTS: the demo's 64 px preset"]})
            self.generator_file = path
        return self.generator_file

    def _clip_setup(self) -> tuple[list[str], bool]:
        """CLIP models for text training (:func:`.jobs.clip_setup`)."""
        return clip_setup(self._cached, self.work_dir, self.device)

    def train_text_domain(self, prompt: str, steps: int = TRAIN_STEPS,
                          progress: Progress = _no_progress) -> str:
        """Train a StyleSpace domain for ``prompt`` with the ``train domain`` pipeline
        (``steps`` steps, batch 2) and offer it; returns its name in the page."""
        from stylebridge.pipelines.presets import quiet
        from stylebridge.pipelines.train_domain import DomainTrainConfig, train_domain
        from stylebridge.pipelines.training.progress import ProgressEvent

        prompt = " ".join(prompt.split())
        if not prompt:
            raise StylebridgeError("the text prompt is empty: describe the target domain, "
                                   "e.g. \"a 3d render in the style of Pixar\"")
        if not 1 <= int(steps) <= MAX_TRAIN_STEPS:
            raise StylebridgeError(f"steps {steps}: must be in 1..{MAX_TRAIN_STEPS}")
        steps = int(steps)
        with self.lock:
            clip, random_clip = self._clip_setup()
            safe = "".join(ch if ch.isalnum() else "-" for ch in prompt.lower())[:40].strip("-")
            out = self._new_path(self.work_dir / "domains", f"{safe or 'text'}.safetensors")

            def on_event(event: ProgressEvent) -> None:
                if event.kind == "step" and self.stopping.is_set():  # after a whole step
                    raise ServerStopping(f"{STOPPING}: training {prompt!r} stopped after "
                                         f"step {event.step}/{event.total}, not kept")
                if event.kind in ("start", "step") and event.total:
                    progress(event.step / event.total,
                             f"training {prompt!r}: step {event.step}/{event.total}")
                elif event.kind == "status" and event.text:
                    progress(0.0, event.text)

            progress(0.0, f"training {prompt!r}")
            config = DomainTrainConfig(generator=str(self._generator_path()), out=out,
                                       text=prompt, steps=steps, batch=2, clip=clip,
                                       allow_random_clip=random_clip, checkpoint_every=0,
                                       sample_every=0, seed=self.config.seed,
                                       device=str(self.device))
            try:
                quiet(lambda: train_domain(config, progress=on_event))
            finally:  # its resume state and log: nothing resumes a page's training
                remove_run_records(out)
            (_, method), = load_domains([str(out)], self.device)[0].items()
            random = random_clip or self.generator_random or spec_random(
                "domain_method", str(out), method)
            name = self._add_domain(prompt, method, random,
                                    f"trained on the spot ({steps} steps): {out}")
            self.domain_files[name] = out
            return name

    def _new_path(self, folder: Path, name: str, prefix: str = "") -> Path:
        """``folder/{prefix}NNN-{name}``, numbered past what ``folder`` holds: a --work-dir of
        an earlier server keeps its files (a domain's training state too, which a new run
        into its name refuses to replace), and a text domain is not refused as existing."""
        from stylebridge.pipelines.training.outputs import state_path_for

        folder.mkdir(parents=True, exist_ok=True)
        with self.lock:  # two threads of the Python back end never get one number
            while True:
                self._runs += 1
                path = folder / f"{prefix}{self._runs:03d}{name and '-'}{name}"
                if not path.exists() and not (name.endswith(".safetensors")
                                              and state_path_for(path).exists()):
                    return path

    # -- a run ---------------------------------------------------------------------------------
    def run(self, photo: Photo, request: RunRequest, progress: Progress = _no_progress
            ) -> RunResult:
        """Invert the aligned photo, render it through every chosen domain, compute the
        metrics and write the downloads (grid PNG, a zip of the images, the latents)."""
        self.stop_check()
        skip = parse_layers(request.skip_layers, what="skip layers",
                            n_layers=self.generator.n_style_layers)
        with self.lock:  # a domain dropped meanwhile (domains.MAX_PAGE_DOMAINS) is unknown
            unknown = [d for d in request.domains if d not in self.domains]
            if unknown:
                raise StylebridgeError(f"unknown domain {unknown[0]!r} (not offered now: "
                                       "reload the page)")
            self.touch_domains(request.domains)  # used now: not the next one dropped
            progress(0.05, "loading the encoder")
            encoder, enc_random = self.encoder(request.encoder)
            random_inputs: dict[str, bool] = {"generator": self.generator_random,
                                              "encoder": enc_random}
            calibrator = renderer = guide = calibration = None
            if request.alpha or request.featureshift:  # both build on what the encoder gives
                self._check_fits(encoder)
            if request.alpha:
                progress(0.15, "alpha calibration")
                calibrator, random_inputs["calibrator"], calibration = self.calibrator(
                    request.encoder, encoder)
            if request.featureshift:
                renderer, random_inputs["featureshift"] = self.featureshift(encoder)
                guide = self._guide(request.encoder, random_inputs)
            for name in request.domains:
                random_inputs[f"domain {name}"] = self.domain_random[name]
            methods = {name: self.domains[name] for name in request.domains}
            adapter = Adapter(encoder, self.generator, methods, calibrator=calibrator,
                              strength=request.strength,
                              skip_layers=skip, renderer=renderer, guide=guide)
            gen = self.generator
            enc_size = int(encoder.preprocessing.size or gen.size)
            x = resize_square(photo.aligned, enc_size)[None]
            progress(0.3, f"inverting and adapting to {len(methods)} domain(s)")
            inversion, rendered = adapter.invert_and_render(x)  # the photo encoded once
            outputs = {k: v[0].cpu() for k, v in rendered.items()}
            progress(0.7, "metrics")
            target = torch.nn.functional.interpolate(photo.aligned[None], size=(gen.size,) * 2,
                                                     mode="area")[0]
            columns, rows, notes = self._metrics(outputs, target)
            notes = [*self.notices, *adapter.notes, *notes]  # + a domain of another generator
            if request.featureshift and inversion.feature_mode == "shift":
                # FeatureShift's F' always replaces activation K: the mode changes nothing
                notes = [*notes, "FeatureShift replaces the feature at layer K, so the "
                                 "encoder's generator-shift mode has no effect on its domains"]
            if request.featureshift and request.strength == 0:
                # the slider says "0 = the inversion": true of the plain renderer only
                notes = [*notes, "with FeatureShift, strength 0 (Δ = 0) is FeatureShift's own "
                                 "rendering of the photo, F'(F, 0), not the encoder's inversion"
                                 + (" (an untrained FeatureShift changes it at random)"
                                    if random_inputs.get("featureshift") else "")]
        parts = [k for k, v in random_inputs.items() if v]
        notice = f"{RANDOM_NOTICE}: not a trained model ({', '.join(parts)})" if parts else None
        used = [encoder, calibrator, guide, *methods.values()]
        licences = licence_lines([self.generator_file, *(
            prov.path for prov in map(provenance_of, used) if prov is not None),
            self.config.featureshift if request.featureshift else None])
        progress(0.85, "writing the downloads")
        out = self._new_path(self.work_dir, "", prefix="run-")
        out.mkdir(parents=True)
        tag = f" [{RANDOM_NOTICE}]" if enc_random or self.generator_random else ""
        labels = ["aligned photo", f"inversion: {request.encoder}{tag}",
                  *(f"{key} [{RANDOM_NOTICE}]" if self.domain_random[name] else key
                    for key, (name, _) in adapter.outputs.items())]
        photo_tile = resize_square(photo.aligned, gen.size)
        settings = settings_line(photo.name, request.encoder, list(methods), request.strength,
                                 skip, calibration, request.featureshift)
        grid = labelled_grid([[photo_tile, *outputs.values()]], labels, notice=notice,
                             min_tile=GRID_MIN_TILE, label_lines=2)
        grid = caption(grid, settings.replace(" · ", "; "))  # the settings, under the grid
        grid_path = save_png(out / "grid.png", grid, grid=True, notice=notice)
        files = {"grid.png": grid_path}
        for key, image in {"aligned": photo.aligned, **outputs}.items():
            domain = adapter.outputs[key][0] if key in adapter.outputs else None
            png = save_png(out / f"{_safe(key)}.png", image, notice=None if key == "aligned"
                           else random_file_notice(parts, domain))
            files[png.name] = png
        # the inversion file invert/adapt --save-latents write: `stylebridge render` takes it
        latents_path = save_inversion(
            out / f"{_safe(photo.stem)}{LATENTS_SUFFIX}", inversion.detach().to("cpu"),
            encoder=encoder.name or request.encoder, encoder_spec=request.encoder,
            generator=self._generator_path(), modifiers=sorted(inversion.modifiers),
            extra={"source": photo.name, "aligned": True, "align_size": ALIGN_SIZE,
                   "random_weights": bool(parts)})
        write_json(out / "run.json", {"photo": photo.name, "encoder": request.encoder,
                                      "domains": list(methods), "skip_layers": skip,
                                      "strength": request.strength,
                                      "alpha": request.alpha, "calibration": calibration,
                                      "settings": settings,
                                      "featureshift": request.featureshift,
                                      "precision": self.generator.precision,
                                      "random_parts": parts, "notice": notice,
                                      "metrics": dict(rows), "notes": notes,
                                      "licences": licences})
        images_zip = write_images_zip(out / "stylebridge-images.zip",
                                      {**files, "run.json": out / "run.json"})
        progress(1.0, "done")
        result = RunResult(images=outputs, grid=grid, columns=columns, rows=rows, notes=notes,
                           random_parts=parts, notice=notice, grid_path=grid_path,
                           images_zip=images_zip, latents_path=latents_path,
                           licences=licences, settings=settings)
        result.run_id = self.history.add(result)
        return result

    def _guide(self, encoder_spec: str, random_inputs: dict[str, bool]) -> Encoder | None:
        """FeatureShift's guiding encoder: :data:`DEFAULT_GUIDE` (installed or the preset's),
        as the thesis trains it; without one, or when it is the encoder, the renderer takes
        the encoder's own latents."""
        if parse_plugin_spec(encoder_spec, what="encoder").name == DEFAULT_GUIDE:
            return None
        try:
            guide, random_inputs[f"guide ({DEFAULT_GUIDE})"] = self.encoder(DEFAULT_GUIDE)
        except StylebridgeError:
            return None
        return guide

    def _metrics(self, outputs: dict[str, Tensor], target: Tensor
                 ) -> tuple[list[str], list[tuple[str, dict[str, float]]], list[str]]:
        """The metrics table of a run and its notes (:func:`.summary.metric_rows`)."""
        return metric_rows(self._cached("metrics", "photo", photo_metrics), outputs, target)


__all__ = ["ALIGN_SIZE", "CHANGE_COLUMN", "MAX_FILE_MB", "MAX_PIXELS", "MAX_UPLOAD_MB",
           "METRIC_COLUMNS", "Photo", "Progress", "RunRequest", "RunResult", "ServeBackend", "ServeConfig",
           "check_photo_file"]
