"""The :class:`Adapter`: encode photos once, render them through domain methods.

Pipeline (thesis, chapter 4): encode each photo **once** with an encoder, optionally correct
the encoder/domain mismatch (a :class:`Calibrator`, e.g. alpha-rescaling: per-layer offset
scales ``1/α_i``; ``skip_layers``: no change on the listed style layers, the thesis'
"indomain" remedy for the first layers), then render the inversion through every domain
method with a :class:`~stylebridge.core.interfaces.Renderer` (default: the plain
:func:`~stylebridge.core.synthesis.synthesize`; FeatureShift is another)::

    adapter = Adapter(encoder, generator, {"pixar": pixar, "joker": joker},
                      calibrator=alpha, skip_layers="coarse")
    images = adapter.run(images01)   # {"inversion": [B,3,S,S], "pixar": ..., "joker": ...}

``strength`` scales every domain's change on top of the calibrator's and the skip layers'
per-layer scales: ``0`` makes no domain change (the plain renderer then gives the inversion
itself; FeatureShift still passes F through its network), ``1`` (the default) the domain as
trained, ``0.5`` half-way, ``1.5`` beyond; several strengths render each domain once per
strength (outputs ``pixar@0.5``, ``pixar``, ``pixar@1.5``).  Every method takes the scale the way it
takes alpha-rescaling (StyleSpace: ``s + k·Δs``; weight and modulation offsets likewise).
:mod:`stylebridge.pipelines.adapt` runs the adapter over photo files.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from stylebridge.core.checkpoint import with_article
from stylebridge.core.images import from_generator_range
from stylebridge.core.interfaces import Calibrator, DomainMethod, Encoder, Inversion, Renderer
from stylebridge.core.inversion import check_images01
from stylebridge.core.ops import autocast_enabled
from stylebridge.core.synthesis import PlainRenderer, check_compatible
from stylebridge.errors import RandomWeightsWarning, StylebridgeError, user_entry, warn_user
from stylebridge.plugins.calibrators.alpha import parse_layers, skip_scale

if TYPE_CHECKING:
    from stylebridge.core.stylegan2.generator import Generator

INVERSION = "inversion"
#: ``Adapter(guide=...)``'s default: the guide encoder the renderer's checkpoint records
RECORDED = "recorded"
MAX_STRENGTH = 10.0  # |strength| above this only blows the picture up


def _check_types(*, encoder: Any, guide: Any, calibrator: Any, renderer: Any,
                 generator: Any, methods: Any) -> None:
    """One line for an argument of the wrong kind (a spec string where a built plugin is
    expected: build it with ``stylebridge.create``)."""
    from stylebridge.core.stylegan2.generator import Generator

    if not isinstance(generator, Generator):
        raise StylebridgeError(f"Adapter generator: expected a Generator, got "
                               f"{with_article(type(generator).__name__)} (build one with "
                               "stylebridge.create('generator', spec))")
    if isinstance(methods, str) or not isinstance(methods, Iterable):
        raise StylebridgeError(f"Adapter methods: expected a dict or list of DomainMethod "
                               f"objects, got {with_article(type(methods).__name__)}")
    for name, value, kind in (("encoder", encoder, Encoder), ("guide", guide, Encoder),
                              ("calibrator", calibrator, Calibrator),
                              ("renderer", renderer, Renderer)):
        if value is not None and not isinstance(value, kind):
            raise StylebridgeError(f"Adapter {name}: expected {with_article(kind.__name__)}, "
                                   f"got {with_article(type(value).__name__)} (build one with "
                                   f"stylebridge.create({kind.__name__.lower()!r}, spec))")
    for method in methods:
        if not isinstance(method, DomainMethod):
            raise StylebridgeError(f"Adapter methods: expected DomainMethod objects, got "
                                   f"{with_article(type(method).__name__)} (build one with "
                                   "stylebridge.create('domain_method', spec))")


def recorded_guide(renderer: Renderer, encoder: Encoder | None,
                   generator: Generator) -> Encoder | None:
    """The guide encoder ``renderer``'s checkpoint records, built on ``generator``'s device;
    ``None`` when it needs none, records none or ``encoder`` was built from that spec."""
    spec = renderer.trained_guide if renderer.needs_guide else None
    if not spec:
        return None
    from stylebridge.registry.resolve import create, provenance_of

    built = provenance_of(encoder) if encoder is not None else None
    if built is not None and built.spec == spec:
        return None
    try:
        return create("encoder", spec, device=generator.input.input.device).obj
    except StylebridgeError as exc:
        raise StylebridgeError(
            f"the {renderer.name} renderer was trained with the latents of guide encoder "
            f"{spec!r}, which cannot be built here ({exc}); pass guide=stylebridge.create("
            "'encoder', SPEC), or guide=None for the encoder's own latents") from None


def check_strengths(strength: float | Sequence[float]) -> tuple[float, ...]:
    """Strengths as a tuple: finite, within ``±MAX_STRENGTH``, each once."""
    if isinstance(strength, str):  # `"0.5"` was read one character at a time
        raise StylebridgeError(f"--strength {strength!r}: give numbers, not a string")
    if isinstance(strength, Tensor):  # a 0-dim or 1-element tensor: one value; else a list
        strength = (strength.item() if strength.numel() == 1 and strength.dim() <= 1
                    else strength.flatten().tolist())
    if isinstance(strength, numbers.Real):  # incl. numpy scalars; bool is refused below
        values: tuple[Any, ...] = (strength,)
    else:
        try:
            values = tuple(strength)
        except TypeError:
            raise StylebridgeError(f"--strength {strength!r}: give a number or a list of "
                                   "numbers") from None
    if not values:
        raise StylebridgeError("--strength: give at least one value")
    values = tuple(v.item() if isinstance(v, Tensor) and v.numel() == 1 else v for v in values)
    for k in values:
        if isinstance(k, bool) or not isinstance(k, numbers.Real):
            raise StylebridgeError(f"--strength {k!r}: give a real number (not "
                                   f"{type(k).__name__})")
        if not math.isfinite(float(k)) or abs(float(k)) > MAX_STRENGTH:
            raise StylebridgeError(f"--strength {k}: must be a finite number in "
                                   f"[-{MAX_STRENGTH:g}, {MAX_STRENGTH:g}]")
    if len(set(values)) != len(values):
        raise StylebridgeError(f"--strength {','.join(f'{k:g}' for k in values)}: a value is "
                               "given twice")
    return tuple(float(k) for k in values)


def output_name(domain: str, strength: float) -> str:
    """``pixar`` at strength 1 (as trained), ``pixar@0.5`` otherwise."""
    return domain if strength == 1.0 else f"{domain}@{strength:g}"


def strength_outputs(domains: Iterable[str], strengths: Sequence[float],
                     taken: Sequence[str] = (INVERSION,)) -> dict[str, tuple[str, float]]:
    """Output name → (domain, strength), domain by domain: :func:`output_name`, made unique
    with ``-2``, ``-3``... where a domain is named like another's strength (``pixar@0.5``)."""
    out: dict[str, tuple[str, float]] = {}
    for name in domains:
        for k in strengths:
            key, n = output_name(name, k), 2
            while key in out or key in taken:
                key, n = f"{output_name(name, k)}-{n}", n + 1
            out[key] = (name, k)
    return out


def encoder_label(encoder: Encoder) -> str:
    """How one-line errors name ``encoder``: ``encoder 'NAME'``, with `` (from PKG)`` when a
    third-party package registered it (the package to report the bug to)."""
    from stylebridge.registry import get_registry

    name = str(encoder.name or type(encoder).__name__)
    try:
        where = get_registry().where("encoder", name)
    except StylebridgeError:  # a registry that cannot load says so elsewhere
        where = ""
    return f"encoder {name!r}{where}"


def attach_encoder(encoder: Encoder, generator: Generator, *, bind: bool = True) -> Encoder:
    """``encoder.check_generator(generator)`` (its one-line refusal comes before any photo is
    read), then ``encoder.bind_generator(generator)``; ``bind=False``: the check only, for a
    caller that reads ``w+`` alone (``calibrate``).  What every photo pipeline (``adapt``,
    ``invert``, ``calibrate``, ``analyze``) and the :class:`Adapter` do with an encoder and
    its generator; returns ``encoder``."""
    encoder.check_generator(generator)
    if bind:
        encoder.bind_generator(generator)
    return encoder


def check_inversion(inversion: Inversion, generator: Generator, encoder: Encoder,
                    n_images: int) -> Inversion:
    """``encoder.encode`` of ``n_images`` images, checked before anything renders it: an
    :class:`Inversion` that fits ``generator`` (:func:`check_compatible`), one per image, in
    the generator's dtype (a float64 ``w+`` failed with torch's "mat1 and mat2 must have the
    same dtype") and finite (NaN ``w+`` gave black pictures, "mse n/a" and exit code 0).
    One reduction per batch; one-line errors name the encoder and its package
    (:func:`encoder_label`).  Returns ``inversion``."""
    what = encoder_label(encoder)
    check_compatible(inversion, generator, what)
    if inversion.batch_size != n_images:
        raise StylebridgeError(f"{what} returned {inversion.batch_size} inversions for "
                               f"{n_images} images")
    tensors = {"w+": inversion.w_plus,
               **{f"the feature at activation {k}": v for k, v in inversion.features.items()}}
    want = generator.input.input.dtype
    allowed = {want}
    if autocast_enabled(generator.input.input.device):  # a caller's torch.autocast
        allowed.add(torch.get_autocast_dtype(generator.input.input.device.type))
    for name, tensor in tensors.items():
        if tensor.dtype not in allowed:
            raise StylebridgeError(f"{what}: encode() returned {name} as {tensor.dtype}, the "
                                   f"generator takes {want} (return it as .to({want}))")
    finite = torch.stack([torch.isfinite(t).all() for t in tensors.values()]).all()
    if not bool(finite):  # the one sync of the check; the count only on the way out
        name, tensor = next((n, t) for n, t in tensors.items() if not torch.isfinite(t).all())
        bad = int((~torch.isfinite(tensor)).flatten(1).any(1).sum())
        raise StylebridgeError(f"{what}: encode() returned NaN or infinite values in {name} "
                               f"for {bad} of {n_images} image(s)")
    return inversion


def _method_label(method: DomainMethod) -> str:
    """A listed method's output name: its label, else the stem of the file it was built from
    (as ``adapt`` names it: ``tiny-pixar``, not the plugin name ``stylespace``), else its name."""
    label = str(method.label or "")
    if label and label != method.name:  # set by whoever loaded it (a file name, a prompt)
        return label.removesuffix(".safetensors")
    from stylebridge.pipelines.photos import weights_path

    path = weights_path(method)
    return path.stem if path is not None else str(method.name or "domain")


class Adapter:
    """Encoder + generator + domain methods (+ calibrator, renderer): photos → adapted images.

    ``methods``: ``{name: method}`` or a sequence (named by each method's
    ``label``/``name``, made unique).  ``skip_layers``: style-layer indices whose
    domain change is switched off (scale 0), on top of the calibrator's scales.
    ``renderer``: how an inversion (and a domain) becomes an image (default
    :class:`~stylebridge.core.synthesis.PlainRenderer`).  A renderer that
    ``needs_guide`` (FeatureShift) gets the latents of the ``guide`` encoder (e4e): by
    default the one its checkpoint records (``trained_guide``, built here unless the encoder
    is that one); ``guide=None``: the encoder's own latents.  Every method and the renderer are checked
    against the generator when the adapter is built.  ``strength``: one value or several
    (module docstring); :attr:`outputs` maps each output name to its domain and strength.
    :attr:`encoded_images` counts the images passed to the encoder; :attr:`notes` names each
    domain trained on another generator file than ``generator``'s, and each domain whose every
    changed style layer ``skip_layers`` switches off (:attr:`unchanged_notes`: its output is
    the inversion).  ``encoder`` may be ``None`` for an adapter that only renders given
    inversions (``stylebridge render``).  Built from Python, an adapter on random weights
    says so once (:class:`~stylebridge.errors.RandomWeightsWarning`, :attr:`notice`), and
    each unchanged domain as a :class:`~stylebridge.errors.StylebridgeWarning`.
    """

    @user_entry
    def __init__(self, encoder: Encoder | None, generator: Generator,
                 methods: Mapping[str, DomainMethod] | Sequence[DomainMethod],
                 calibrator: Calibrator | None = None,
                 skip_layers: Sequence[int] | str = (), *,
                 renderer: Renderer | None = None,
                 guide: Encoder | str | None = RECORDED,
                 strength: float | Sequence[float] = 1.0) -> None:
        if isinstance(methods, DomainMethod):  # one domain: a list of one
            methods = [methods]
        recorded = isinstance(guide, str) and guide == RECORDED
        _check_types(encoder=encoder, guide=None if recorded else guide, calibrator=calibrator,
                     renderer=renderer, generator=generator,
                     methods=methods.values() if isinstance(methods, Mapping) else methods)
        self.renderer: Renderer = PlainRenderer() if renderer is None else renderer
        if recorded:
            guide = recorded_guide(self.renderer, encoder, generator)
        elif guide is not None and not self.renderer.needs_guide:
            raise StylebridgeError(f"Adapter guide: the {self.renderer.name} renderer reads no "
                                   "guide latents (FeatureShift does); it would be ignored")
        self.encoder, self.generator, self.calibrator = encoder, generator, calibrator
        self.guide = guide
        if encoder is not None:  # check_generator before the first photo, not at it
            attach_encoder(encoder, generator)
        self.renderer.check_generator(generator, encoder)
        if guide is not None:  # the guide is an encoder too: asked the same
            attach_encoder(guide, generator)
        if isinstance(methods, Mapping):
            items = list(methods.items())
        else:
            items = [(_method_label(m), m) for m in methods]
        self.methods: dict[str, DomainMethod] = {}
        for name, method in items:
            unique, k = str(name), 2
            while unique in self.methods or unique == INVERSION:
                unique, k = f"{name}-{k}", k + 1
            self.methods[unique] = method
        check_domains(self.methods.values(), generator)
        #: what to say before rendering: each domain trained on another generator file than
        #: the one loaded (:func:`domain_generator_notes`), one line each
        self.notes: list[str] = domain_generator_notes(self.methods.values(), generator)
        n = generator.n_style_layers
        self.skip_layers = parse_layers(skip_layers, n_layers=n)
        base = None if calibrator is None else calibrator.offset_scale(n)
        self.offset_scale: Tensor | None = skip_scale(n, self.skip_layers, base)
        #: layers the calibrator gives no offset (alpha: α near 0), reported in adapt.json
        self.calibrator_zeroed_layers = [] if calibrator is None else calibrator.unreliable_layers()
        self.strengths = check_strengths(strength)
        #: output name → (domain name, strength), in render order
        self.outputs = strength_outputs(self.methods, self.strengths)
        self.encoded_images = 0
        #: one line per domain whose every changed style layer the skip layers switch off
        #: (:func:`unchanged_notes`), also in :attr:`notes`
        self.unchanged_notes = unchanged_notes(self, base, skip_layers)
        self.notes += self.unchanged_notes
        if self.random_parts:  # from Python: said on screen (the command line prints its own)
            warn_user(str(self.notice), RandomWeightsWarning)
        for line in self.unchanged_notes:
            warn_user(line)

    def __repr__(self) -> str:
        """``Adapter(RANDOM WEIGHTS: ...; encoder 'fse', generator 32 px, domains ['pixar'],
        renderer 'plain', skip layers [0, 2], strength 1)``."""
        said = ["encoder " + ("None" if self.encoder is None else repr(self.encoder.name))]
        said.append(f"generator {self.generator.size} px")
        said.append(f"domains {list(self.methods)}")
        if self.calibrator is not None:
            said.append(f"calibrator {self.calibrator.name!r}")
        said.append(f"renderer {self.renderer.name!r}")
        if self.guide is not None:
            said.append(f"guide {self.guide.name!r}")
        said.append(f"skip layers {self.skip_layers}")
        said.append(f"strength {', '.join(f'{k:g}' for k in self.strengths)}")
        head = f"{self.notice}; " if self.notice else ""
        return f"Adapter({head}{', '.join(said)})"

    @property
    def random_parts(self) -> list[str]:
        """What this adapter runs on untrained (random) weights (``"encoder"``,
        ``"generator"``, ``"domain pixar"``, ...): its outputs are no real model's."""
        from stylebridge.pipelines.photos import is_random

        parts = [name for name, obj in (("encoder", self.encoder), ("generator", self.generator),
                                        ("calibrator", self.calibrator),
                                        ("renderer", self.renderer), ("guide", self.guide))
                 if obj is not None and is_random(obj)]
        return parts + [f"domain {name}" for name, method in self.methods.items()
                        if is_random(method)]

    @property
    def notice(self) -> str | None:
        """``RANDOM WEIGHTS: ...`` when :attr:`random_parts` is not empty, for the pictures
        (``stylebridge.save_image(image, path, notice=adapter.notice)``), else ``None``."""
        from stylebridge.core.checkpoint import RANDOM_NOTICE

        parts = self.random_parts
        if not parts:
            return None
        return f"{RANDOM_NOTICE}: made with untrained (random) weights ({', '.join(parts)})"

    def scale_at(self, strength: float) -> Tensor | None:
        """The per-layer offset scale at ``strength``: the calibrator's and skip layers'
        scale times ``strength`` (``None``, i.e. unscaled, at strength 1 without either)."""
        if strength == 1.0:
            return self.offset_scale
        base = (torch.ones(self.generator.n_style_layers) if self.offset_scale is None
                else self.offset_scale)
        return base * strength

    @property
    def device(self) -> torch.device:
        return self.generator.input.input.device

    @torch.no_grad()
    def _invert(self, images01: Tensor) -> Inversion:
        """The encoder's (uncalibrated) inversion, checked against the generator."""
        if self.encoder is None:
            raise StylebridgeError("this adapter has no encoder: it renders inversions "
                                   "(render), it does not encode images")
        images01 = check_images01(images01, "Adapter input")
        inversion = self.encoder.encode(images01.to(self.device))
        self.encoded_images += int(images01.shape[0])
        check_inversion(inversion, self.generator, self.encoder, int(images01.shape[0]))
        return inversion.detach().to(self.device)

    def _calibrated(self, inversion: Inversion) -> Inversion:
        return inversion if self.calibrator is None else self.calibrator.calibrate(inversion)

    def calibrated(self, inversion: Inversion) -> Inversion:
        """A saved (uncalibrated, as :meth:`invert_and_render` returns it) inversion made
        what :meth:`run` renders: modifiers restored (:meth:`render`'s restore), then the
        calibrator's ``calibrate(inversion)``; ``render(calibrated(inv))`` is what ``adapt``
        drew for it (``stylebridge render --calibrate``)."""
        if not inversion.modifiers and self.encoder is not None:
            inversion = self.encoder.restore(inversion, self.generator)
        return self._calibrated(inversion)

    @torch.no_grad()
    def encode(self, images01: Tensor) -> Inversion:
        """Images ``[B, 3, H, W]`` in ``[0, 1]`` → (calibrated) inversion on the generator's device."""
        return self._calibrated(self._invert(images01))

    @torch.no_grad()
    def guide_latents(self, images01: Tensor, inversion: Inversion) -> Tensor | None:
        """What a renderer that ``needs_guide`` gets: the guide encoder's ``w+`` of the
        images, or (no guide encoder) the encoder's own ``inversion.w_plus``; ``None`` when
        the renderer needs no guide."""
        if not self.renderer.needs_guide:
            return None
        if self.guide is None:
            return inversion.w_plus
        guided = self.guide.encode(images01.to(self.device))
        return check_inversion(guided, self.generator, self.guide,
                               int(images01.shape[0])).w_plus.detach()

    @torch.no_grad()
    def render(self, inversion: Inversion, guide: Tensor | None = None) -> dict[str, Tensor]:
        """The inversion without and with every domain (at every strength) → ``{output:
        [B, 3, S, S]}`` in ``[0, 1]``, keyed as :attr:`outputs`.

        ``guide``: the guiding latents (:meth:`guide_latents`) when the renderer needs them;
        omitted, they are the inversion's own latents (only valid without a guide encoder).
        An inversion read from a file gets back what the file could not hold (StyleRes's
        modifiers) from the encoder (:meth:`Encoder.restore
        <stylebridge.core.interfaces.Encoder.restore>`).
        """
        if not inversion.modifiers and self.encoder is not None:
            inversion = self.encoder.restore(inversion, self.generator)
        if self.renderer.needs_guide and guide is None:
            if self.guide is not None:
                raise StylebridgeError(f"renderer {self.renderer.name!r} needs the latents of "
                                       f"guide encoder {self.guide.name!r}: pass "
                                       "guide=adapter.guide_latents(images, inversion)")
            guide = inversion.w_plus
        render, gen = self.renderer.render, self.generator
        out = {INVERSION: from_generator_range(render(gen, inversion, guide=guide))}
        for key, (name, strength) in self.outputs.items():
            out[key] = from_generator_range(render(gen, inversion, self.methods[name],
                                                   offset_scale=self.scale_at(strength),
                                                   guide=guide))
        return out

    def run(self, images01: Tensor) -> dict[str, Tensor]:
        """Encode once, render the inversion and every domain (images in ``[0, 1]``)."""
        return self.invert_and_render(images01)[1]

    def invert_and_render(self, images01: Tensor) -> tuple[Inversion, dict[str, Tensor]]:
        """:meth:`run`, also returning the encoder's own (uncalibrated) inversion, e.g. to
        save it (:func:`~stylebridge.pipelines.inversion_file.save_inversion`)."""
        inversion = self._invert(images01)
        guide = self.guide_latents(images01, inversion)
        return inversion, self.render(self._calibrated(inversion), guide=guide)




@torch.no_grad()
def unchanged_notes(adapter: Adapter, base: Tensor | None,
                    skip_setting: Sequence[int] | str) -> list[str]:
    """One line per domain of ``adapter`` (plain renderer, no weight offsets) that changes
    some style layers unscaled and none at the adapter's scale: the skip layers and the
    calibrator's scale ``base`` (its own skip layers, its zeroed α) switch off every layer
    it changes, so its output equals the inversion (``skip_layers="coarse"`` on a 32 px
    generator covers every conv layer).  Compared on the styles of one fixed latent."""
    gen = adapter.generator
    if adapter.offset_scale is None or not isinstance(adapter.renderer, PlainRenderer):
        return []
    z = torch.randn(1, gen.style_dim, generator=torch.Generator().manual_seed(0))
    w_plus = gen.make_wplus(z.to(gen.input.input.device))
    source = gen.styles(w_plus)
    shown = repr(skip_setting) if isinstance(skip_setting, str) else list(adapter.skip_layers)
    zeroed = [] if base is None else [i for i in range(base.numel()) if float(base[i]) == 0.0]
    notes = []
    for name, method in adapter.methods.items():
        try:
            if method.has_weight_offsets():
                continue
            changed = [[i for i, (a, b) in enumerate(zip(method.styles(gen, w_plus, scale),
                                                         source, strict=True))
                        if not torch.equal(a, b)] for scale in (None, adapter.offset_scale)]
        except Exception:  # advisory: a method that cannot render here says so when it renders
            continue
        if not changed[0] or changed[1]:
            continue
        layers = ", ".join(map(str, changed[0]))
        if set(changed[0]) <= set(adapter.skip_layers):
            notes.append(f"domain {name!r}: the skip layers {shown} (style layers "
                         f"{', '.join(map(str, adapter.skip_layers))}) include every style "
                         f"layer it changes on this {gen.size} px generator ({layers}): the "
                         "output equals the inversion")
        else:
            calibrator = adapter.calibrator
            label = repr(getattr(calibrator, "name", None) or type(calibrator).__name__)
            skips = (f"the skip layers {shown} and " if adapter.skip_layers else "")
            notes.append(f"domain {name!r}: {skips}the calibrator {label} (scale 0 on style "
                         f"layers {', '.join(map(str, zeroed))}) switch off every style layer "
                         f"it changes on this {gen.size} px generator ({layers}): the output "
                         "equals the inversion")
    return notes


def check_domains(methods: Iterable[DomainMethod], generator: Generator) -> None:
    """One-line error for a domain trained for another generator (``check_generator``)."""
    for method in methods:
        method.check_generator(generator)


#: (resolved path, size, mtime_ns) → sha256 of a generator file hashed in this process
_SHA256: dict[tuple[str, int, int], str] = {}


def generator_sha256(path: str | Path) -> str:
    """The file's sha256 (as the trainers record it): of what a generator was loaded from
    in this process (:func:`~stylebridge.registry.file_hashes.loaded_sha256`), else hashed
    once per process while the file's size and modification time stay the same."""
    from stylebridge.pipelines.training.state import file_sha256
    from stylebridge.registry.file_hashes import loaded_sha256

    loaded = loaded_sha256(path)  # what the generator was loaded from, then
    if loaded is not None:
        return loaded
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA256:
        _SHA256[key] = file_sha256(path)
    return _SHA256[key]


def other_generator(extra: Mapping[str, Any], generator: Generator, *,
                    file_key: str = "generator") -> str | None:
    """``"sha256 ab12cd34… (ffhq.safetensors), not on the one loaded (other.safetensors, sha256
    9f8e7d6c…)"`` when a checkpoint's header ``extra`` records the sha256 of the generator file
    it was trained on (``generator_sha256``; the file's name under ``file_key``) and
    ``generator`` was loaded from another file; ``None`` when they are the same, or when the
    header records none (older files) or the generator was not loaded from a file.  The
    generator is hashed only then (once per process, :func:`generator_sha256`)."""
    from stylebridge.pipelines.photos import weights_path

    recorded = extra.get("generator_sha256")
    gen_file = weights_path(generator)
    if not isinstance(recorded, str) or not recorded or gen_file is None \
            or not gen_file.is_file():
        return None
    loaded = generator_sha256(gen_file)
    if loaded == recorded.lower():
        return None
    trained_on = str(extra.get(file_key) or "")
    names = (Path(trained_on).name, gen_file.name)
    if names[0] == names[1]:  # two files of one name: their folders tell them apart
        names = (trained_on, str(gen_file))
    return (f"sha256 {recorded[:8]}… ({names[0] or 'unnamed'}), not on the one loaded "
            f"({names[1]}, sha256 {loaded[:8]}…)")


def domain_generator_notes(methods: Iterable[DomainMethod], generator: Generator) -> list[str]:
    """One line per domain file whose header records the sha256 of the generator file it was
    trained on (``generator_sha256``, written by ``train domain``/``hyperdomain``/
    ``mindthegap``) when ``generator`` was loaded from another file (:func:`other_generator`):
    its edits were learnt against that generator's weights.  Domains recording none (older
    files, converted ones), built in Python, or a generator not loaded from a file: no line."""
    from stylebridge.core.checkpoint import read_header
    from stylebridge.pipelines.photos import weights_path

    notes: list[str] = []
    for method in methods:
        path = weights_path(method)
        if path is None or not path.is_file():
            continue
        try:
            header = read_header(path)
        except (StylebridgeError, OSError):
            continue  # loading it said what is wrong
        where = other_generator(header.extra, generator)
        if where is None:
            continue
        meaning = ("it is a weight difference against that generator (MindTheGap): added "
                   "to another one it does not give the trained domain"
                   if header.plugin == "mindthegap" else "its edits may not mean the same")
        notes.append(f"domain {path.name} was trained on generator {where}: {meaning}")
    return list(dict.fromkeys(notes))


__all__ = ["INVERSION", "MAX_STRENGTH", "Adapter", "attach_encoder", "check_domains",
           "check_inversion", "check_strengths", "domain_generator_notes", "encoder_label",
           "generator_sha256", "other_generator", "output_name", "strength_outputs",
           "unchanged_notes"]
