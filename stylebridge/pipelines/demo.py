"""The ``stylebridge demo`` pipeline: the whole toolkit on one real photo, in one run.

Stages: load a photo (``--image``, or scikit-image's astronaut) → FFHQ-align it with
dlib's real 68-landmark model → invert it with two encoders (e4e; FSE in features and
generator-shift modes) → adapt to two domains → the alpha-calibrated variant → FeatureShift
→ metrics (MSE, PSNR, SSIM and dlib's real face-recognition ID similarity between the
aligned photo and each inversion) → a labelled grid and a metrics table.

With the official weights installed (``stylebridge weights``: a StyleGAN2 FFHQ generator,
e4e and FSE) the demo uses them; ``DemoConfig.fetch`` (``stylebridge demo --fetch``) first
fetches the manifest's ``demo`` set (generator, e4e, pSp for FSE's latent average, FSE and two
StyleDomain domains, pixar and joker) and, when that fails (no network), says why in one
line and goes on with what is installed.  Otherwise it builds a small **random-weight** preset and
says so in the terminal, in every label of the grid and in ``demo.json``: it then shows
that every stage runs, not what trained models produce.  Domains are random StyleSpace
offsets unless ``--method`` names real ones or the demo set's domains are installed.

:func:`run_demo` takes a :class:`DemoConfig` and returns a :class:`DemoResult` (it writes
``aligned.png``, ``demo_grid.png`` and ``demo.json``); notices and stages go to an optional
plain callback (:class:`DemoProgress`).  The command line is :mod:`stylebridge.cli.commands.demo`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from stylebridge.core.checkpoint import RANDOM_NOTICE, is_random_weights, read_header
from stylebridge.core.device import resolve_device
from stylebridge.core.images import load_image, save_png
from stylebridge.core.interfaces import DomainMethod, Encoder
from stylebridge.core.io import write_json
from stylebridge.core.labels import labelled_grid
from stylebridge.core.stylegan2.checkpoint import load_stylegan2
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines import align as alignment
from stylebridge.pipelines.adapt import Adapter, check_domains, load_domains
from stylebridge.pipelines.output_metrics import grouped_notes
from stylebridge.pipelines.presets import DEMO_TINY, build_tiny_models
from stylebridge.pipelines.streams import keep_random_streams
from stylebridge.pipelines.training.outputs import check_out_writable
from stylebridge.pipelines.training.progress import check_progress
from stylebridge.pipelines.typed import coerce_path_fields
from stylebridge.plugins.calibrators.alpha import (
    AlphaCalibrator,
    encoder_style_means,
    mapping_style_means,
)
from stylebridge.plugins.domains.stylespace import StyleSpace
from stylebridge.plugins.renderers.featureshift import FeatureShift
from stylebridge.registry import Registry, get_registry
from stylebridge.registry import weights as weights_mod
from stylebridge.registry.resolve import load_domain, load_plugin
from stylebridge.registry.weights import LicenceError

RANDOM_WEIGHTS_NOTICE = f"{RANDOM_NOTICE} - demo of the code paths, not a trained model"
#: the row FeatureShift renders: FSE's inversion, its features shifted per domain with Δ
#: from e4e's latents (the thesis's "FeatureShift on E4E"; it read "FeatureShift on e4e"
#: above FSE's inversion)
FEATURESHIFT_ROW = "FeatureShift on FSE features, e4e guide"
COARSE_ROW = "FSE shift, in-domain (no coarse offsets)"  # thesis remedy: StyleDomain no_coarse
UNTRAINED_FEATURESHIFT = "untrained FeatureShift"
ALIGN_SIZE = 256
DOMAIN_TABLE_TITLE = "domain outputs, mean over the domains"
ALPHA_IMAGES = 16  # generator samples the quick alpha fit encodes
PHOTO_TABLE_TITLE = "photo vs inversion"


@dataclass
class DemoModels:
    """Everything the demo runs; ``random`` says whether the weights are untrained."""

    generator: Any
    e4e: Encoder
    fse: Encoder
    domains: dict[str, DomainMethod]
    random: bool
    sources: dict[str, str] = field(default_factory=dict)


def _tiny_preset(seed: int) -> DemoModels:
    """The 64 px random-weight preset (:data:`stylebridge.pipelines.presets.DEMO_TINY`)."""
    models = build_tiny_models(DEMO_TINY, seed)
    return DemoModels(models.generator, models.e4e, models.fse, {}, random=True,
                      sources={"generator": "random 64 px preset", "e4e": "random tiny e4e",
                               "fse": "random tiny FSE"})


def _official(device: torch.device, registry: Registry | None = None) -> DemoModels | None:
    """The installed official weights, when generator, e4e and FSE are all there (the
    encoders built by ``registry``'s plugins)."""
    manager = weights_mod.WeightsManager()
    g_path = manager.resolve("generator", "stylegan2")
    e_path = manager.resolve("encoder", "e4e")
    f_path = manager.resolve("encoder", "fse")
    if g_path is None or e_path is None or f_path is None:
        return None
    gen = load_stylegan2(g_path, device=device).generator
    e4e = load_plugin("encoder", f"e4e:{e_path}", device=device, registry=registry)
    fse = load_plugin("encoder", f"fse:{f_path}:mode=features", device=device,
                      registry=registry)
    # a file registered in place of the official one may still be marked as random weights
    random = any(is_random_weights(read_header(p).extra) for p in (g_path, e_path, f_path))
    return DemoModels(gen, e4e, fse, {}, random=random,
                      sources={"generator": str(g_path), "e4e": str(e_path), "fse": str(f_path)})


def fetch_demo_weights(accept_licence: bool, registry: Registry | None = None) -> str | None:
    """Fetch the manifest's ``demo`` set (converted by ``registry``'s converters); ``None``
    when it worked, else the one-line reason (no network, a source down, ...). A licence not
    accepted is an error, not a fallback."""
    try:
        weights_mod.WeightsManager(registry=registry).fetch_set("demo",
                                                                accept_licence=accept_licence)
    except LicenceError:
        raise
    except StylebridgeError as exc:
        return " ".join(str(exc).split())
    return None


def _installed_domains(device: torch.device, registry: Registry | None = None
                       ) -> dict[str, DomainMethod]:
    """The demo set's StyleDomain domains that are installed, by name."""
    manager = weights_mod.WeightsManager()
    names = manager.sets.get("demo", [])
    return {name: load_domain(name, device=device, registry=registry) for name in names
            if name in manager.entries and manager.entries[name].kind == "domain_method"
            and manager.installed(name) is not None}


def random_domains(gen: Any, seed: int) -> dict[str, DomainMethod]:
    """Two StyleSpace domains with random offsets on the coarse and the colour layers."""
    g = torch.Generator().manual_seed(seed + 1)
    domains: dict[str, DomainMethod] = {}
    for name, layers in (("random domain A", (0, 2, 3)), ("random domain B", (-3, -2, -1))):
        method = StyleSpace(size=gen.size, style_dim=gen.style_dim,
                            channels=gen.cfg.channels).to(gen.latent_avg.device)
        keys = list(method.offsets)
        with torch.no_grad():
            for k in (keys[i] for i in layers):
                off = method.offsets[k]
                off.copy_(torch.randn(off.shape, generator=g) * 1.5)
        method.label = name
        domains[name] = method.eval()
    return domains


def fit_alpha_on_samples(encoder: Encoder, gen: Any, seed: int, n_images: int = ALPHA_IMAGES,
                         n_samples: int = 1024) -> AlphaCalibrator:
    """Alpha-rescaling (thesis): the encoder's vs the mapping network's style means.

    The calibration images are ``n_images`` generator samples (the thesis uses 3000 FFHQ
    photos; ``stylebridge calibrate`` fits on photos): a quick stand-in for the demo and the
    web app, said so where it is used."""
    device = gen.latent_avg.device
    with torch.no_grad():
        z = torch.randn(n_images, gen.style_dim, generator=torch.Generator().manual_seed(seed))
        samples = (gen([z.to(device)], randomize_noise=False) + 1) / 2
        source_means = mapping_style_means(gen, n_samples, seed=seed)
        enc_means, _ = encoder_style_means(encoder, gen, [samples.clamp(0, 1)])
    return AlphaCalibrator.from_style_means(source_means, enc_means)


def load_demo_models(device: torch.device, seed: int = 0, *,
                     registry: Registry | None = None) -> DemoModels:
    """The installed official generator, e4e and FSE (built by ``registry``'s plugins,
    default the installed ones), else the 64 px random-weight preset (``models.random`` says
    which)."""
    models = _official(device, registry)
    return models if models is not None else _tiny_preset(seed)


def demo_image(path: Path | None = None) -> tuple[Tensor, str]:
    """A photo ``[3, H, W]`` in ``[0, 1]`` and where it came from (default: the astronaut)."""
    return _demo_image(path)


def _demo_image(path: Path | None) -> tuple[Tensor, str]:
    if path is not None:
        return load_image(path), str(path)
    from skimage import data as skdata

    arr = skdata.astronaut()
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255, "skimage.data.astronaut()"


def photo_metrics(registry: Registry | None = None) -> dict[str, Any]:
    """MSE, PSNR, SSIM and ID, built through ``registry`` (default: the installed plugins).
    ID is the thesis' (ArcFace IR-SE50) when ``arcface-irse50`` is installed, else dlib's
    descriptor, with a note saying so (its key, ``id[arcface]`` / ``id[dlib]``, names the
    backend); without either, no ID."""
    registry = registry or get_registry()
    out = {name: registry.create("metric", name) for name in ("mse", "psnr", "ssim")}
    with contextlib.suppress(StylebridgeError):  # no ArcFace weights and no dlib models
        out["id"] = registry.create("metric", "id")
    return out


def _domain_metrics(metrics: dict[str, Any], outputs: dict[str, Tensor], target: Tensor,
                    domains: dict[str, Any]) -> dict[str, float]:
    """Means over the domains: how much each domain changed the inversion (MSE) and how
    much of the photo's identity survived (ID similarity, when dlib's models exist)."""
    values: dict[str, float] = {}
    pairs = {"mse": ("inversion", "change (mse vs inversion)"),
             "id": ("photo", "identity (id vs photo)")}
    for mname, (against, column) in pairs.items():
        metric = metrics.get(mname)
        if metric is None or not domains:
            continue
        metric.reset()
        for name in domains:
            metric.update(outputs[name], target if against == "photo" else outputs["inversion"])
        result = metric.compute()
        key = mname if mname in result else metric.key  # the id metric names its backend
        values[column.replace("(id ", f"({key} ")] = float(result[key])
    return values


@dataclass
@coerce_path_fields
class DemoConfig:
    """The inputs of the demo (one field per ``stylebridge demo`` option)."""

    out: Path = Path("stylebridge-demo")
    image: Path | None = None          # None: scikit-image's astronaut
    methods: list[str] = field(default_factory=list)   # domain checkpoints; none: random
    seed: int = 0
    device: str = "auto"
    fetch: bool = False                # fetch the `demo` weights set first (falls back offline)
    accept_licence: bool = False       # accept the set's non-commercial licences


@dataclass(frozen=True)
class DemoProgress:
    """A progress event of :func:`run_demo`.

    ``kind``: ``"fetch-failed"`` (``output``: why the demo set could not be fetched),
    ``"random-preset"`` (no official weights: the random-weight preset is used),
    ``"random-installed"`` (the installed weights are marked as random weights), ``"stage"``
    (stage ``label`` is done; ``output`` says what it wrote or computed).
    """

    kind: str
    label: str = ""
    output: str = ""


MetricRows = list[tuple[str, dict[str, float]]]


@dataclass
class DemoResult:
    """What :func:`run_demo` computed and wrote.

    ``data``: the content of ``demo.json``; ``photo_rows`` / ``domain_rows``: per variant,
    the photo-vs-inversion metrics and the domain-output metrics; ``notes``: what the metrics
    have to say (no face found, which ID backend), naming the rows; ``models_random``: the
    generator and encoders are untrained; ``notice``: the RANDOM WEIGHTS line of the grid
    (``None`` when every network is trained).
    """

    data: dict[str, Any]
    photo_rows: MetricRows
    domain_rows: MetricRows
    notes: list[str]
    models_random: bool
    notice: str | None
    seconds: float
    grid_path: Path
    json_path: Path


def run_demo(config: DemoConfig, progress: Callable[[DemoProgress], None] | None = None, *,
             registry: Registry | None = None) -> DemoResult:
    """Align → alpha-calibrate → invert and adapt with six variants → metrics → grid + JSON.

    Everything is loaded and checked before the photo is aligned or a file written.  The
    run seeds torch's generator (the untrained FeatureShift); the caller's random streams
    (torch, Python, numpy) are as they were afterwards.  ``registry``: where the plugins
    come from (default: the installed plugins).
    """
    check_progress(progress, "run_demo", shape="progress= is called with one DemoProgress "
                   "(kind, label, output)")
    check_out_writable(config.out, folder=True)  # before a model loads or a banner shows
    with keep_random_streams(resolve_device(config.device)):
        return _run_demo(config, progress, registry)


def _run_demo(config: DemoConfig, progress: Callable[[DemoProgress], None] | None,
              registry: Registry | None = None) -> DemoResult:
    def emit(kind: str, label: str = "", output: str = "") -> None:
        if progress is not None:
            progress(DemoProgress(kind, label, output))

    start = time.perf_counter()
    device = resolve_device(config.device)
    stages: list[tuple[str, str]] = []

    def stage(label: str, output: str) -> None:
        stages.append((label, output))
        emit("stage", label, output)

    image, source = _demo_image(config.image)
    given, registry = registry, registry or get_registry()
    domains, domain_random = load_domains(config.methods, device, registry)
    fetch_failed = (fetch_demo_weights(config.accept_licence, registry) if config.fetch
                    else None)
    if fetch_failed is not None:
        emit("fetch-failed", output=fetch_failed)
    # no registry given: called as before (the installed plugins are its default)
    models = _official(device) if given is None else _official(device, registry)
    if models is not None and not models.random and not domains:
        domains = _installed_domains(device, registry)
        domain_random = dict.fromkeys(domains, False)
    if models is None:
        emit("random-preset")
        models = _tiny_preset(config.seed)
    elif models.random:
        emit("random-installed")
    gen = models.generator.to(device)
    e4e, fse = models.e4e.to(device), models.fse.to(device)
    if domains:
        check_domains(domains.values(), gen)
    else:
        domains = random_domains(gen, config.seed)
        domain_random = dict.fromkeys(domains, True)  # random offsets: no trained domain
    random_offsets = all(domain_random.values()) and not config.methods
    fse_shift = type(fse)(**{**fse.config(), "mode": "shift"}).to(device).eval()
    fse_shift.load_state_dict(fse.state_dict())
    tag = f" [{RANDOM_NOTICE}]" if models.random else ""

    face = alignment.align_face(image, size=ALIGN_SIZE, path=config.image)
    aligned = torch.from_numpy(np.asarray(face.image, dtype=np.uint8).copy())
    aligned = aligned.permute(2, 0, 1).float() / 255
    config.out.mkdir(parents=True, exist_ok=True)
    save_png(config.out / "aligned.png", aligned)
    stage("align (dlib 68 landmarks, FFHQ procedure)", str(config.out / "aligned.png"))

    alpha = fit_alpha_on_samples(e4e, gen, config.seed)
    a = alpha.alpha
    stage("alpha calibration (e4e)",
          f"{a.numel()} layers, alpha {float(a.min()):.2f}..{float(a.max()):.2f}")

    k = fse.feature_layer
    assert k is not None  # FSE in features mode
    c_k = gen.feature_shapes()[k][0]
    torch.manual_seed(config.seed)
    # no FeatureShift weights are installed: the demo's FeatureShift is always a fresh,
    # untrained network, so its row says so even with the official generator and encoders
    featureshift = FeatureShift(feature_channels=c_k, hidden=max(8, c_k * 3 // 2),
                                layer=k, residual=True).to(device).eval()
    fs_random = True
    fs_row = (f"{FEATURESHIFT_ROW} ({RANDOM_NOTICE}: {UNTRAINED_FEATURESHIFT})" if fs_random
              else FEATURESHIFT_ROW)
    variants: list[tuple[str, Adapter]] = [
        ("e4e", Adapter(e4e, gen, domains)),
        ("e4e + alpha", Adapter(e4e, gen, domains, calibrator=alpha)),
        ("FSE features", Adapter(fse, gen, domains)),
        ("FSE shift", Adapter(fse_shift, gen, domains)),
        (COARSE_ROW, Adapter(fse_shift, gen, domains, skip_layers="coarse")),
        (fs_row, Adapter(fse, gen, domains, renderer=featureshift, guide=e4e)),
    ]
    random_inputs: dict[str, Any] = {
        "generator": models.random, "e4e": models.random, "fse": models.random,
        "featureshift": fs_random, "domains": domain_random}
    random_rows = [label for label, _ in variants
                   if models.random or (fs_random and label == fs_row)]
    random = models.random or fs_random or any(domain_random.values())
    photo = aligned.unsqueeze(0).to(device)
    target = torch.nn.functional.interpolate(photo, size=(gen.size, gen.size), mode="area")
    metrics = photo_metrics(registry)
    rows, table_rows, domain_rows = [], [], []
    notes: dict[str, list[str]] = {}
    for label, adapter in variants:
        outputs = adapter.run(photo)
        rows.append([target[0].cpu(), *(outputs[name][0].cpu() for name in outputs)])
        values: dict[str, float] = {}
        for mname, metric in metrics.items():
            metric.reset()
            metric.update(outputs["inversion"], target)
            # a key that already names its metric (id[dlib]) is kept; others get its name
            values.update({key if key.startswith(mname) else f"{mname}:{key}": float(v)
                           for key, v in metric.compute().items()})
        table_rows.append((label, values))
        said = {mname: m.notes() for mname, m in metrics.items()}
        notes[label] = [f"{mname}: {note}" for mname, lines in said.items() for note in lines]
        domain_rows.append((label, _domain_metrics(metrics, outputs, target, domains)))
        notes[label] += [f"{mname} (domains): {note}" for mname in ("mse", "id")
                         if mname in metrics for note in metrics[mname].notes()
                         if note not in said[mname]]  # what the photo pass said already
        stage(f"invert + adapt: {label}", f"{len(outputs) - 1} domains")
    labels = ["aligned photo", "inversion", *domains]
    columns = [labels[0], f"inversion{tag}",
               *(f"{name}{tag}" if models.random or not domain_random[name]
                 else f"{name} [{RANDOM_NOTICE}]" for name in domains)]
    if models.random:
        notice: str | None = RANDOM_WEIGHTS_NOTICE
    elif random:
        parts = [f"row '{FEATURESHIFT_ROW}' uses an {UNTRAINED_FEATURESHIFT}"] * fs_random
        if random_offsets:
            parts += ["the domains are random StyleSpace offsets"]
        else:
            parts += [f"domain {name} has random weights"
                      for name, rnd in domain_random.items() if rnd]
        notice = f"{RANDOM_NOTICE}: {'; '.join(parts)} - not a trained model"
    else:
        notice = None
    grid = labelled_grid(rows, columns, notice=notice,
                         row_labels=[label for label, _ in variants], min_tile=128,
                         label_lines=2)
    save_png(config.out / "demo_grid.png", grid, grid=True, notice=notice)
    elapsed = time.perf_counter() - start
    data = {
        "random_weights": random, "notice": notice,
        "fetch": ({"requested": True, "failed": fetch_failed} if config.fetch
                  else {"requested": False}),
        "random_inputs": random_inputs, "random_rows": random_rows,
        "photo": source, "models": models.sources, "domains": list(domains),
        "rows": [label for label, _ in variants], "columns": labels,
        "metrics_photo_vs_inversion": {label: values for label, values in table_rows},
        "metrics_domains": {label: values for label, values in domain_rows},
        "metrics_domains_description": DOMAIN_TABLE_TITLE,
        "notes": grouped_notes(notes, every="every row"),
        "stages": [{"stage": s, "output": o} for s, o in stages],
        "seconds": round(elapsed, 2),
    }
    write_json(config.out / "demo.json", data)
    return DemoResult(data=data, photo_rows=table_rows, domain_rows=domain_rows,
                      notes=data["notes"],
                      models_random=models.random, notice=notice, seconds=elapsed,
                      grid_path=config.out / "demo_grid.png", json_path=config.out / "demo.json")
