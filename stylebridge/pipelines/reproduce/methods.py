"""``reproduce thesis-tables --methods``: the domain-adaptation methods side by side.

With ``--methods stylespace,affine_plus,domain_modulation,...`` the domains are grouped by
their method (the checkpoint header's ``plugin``) and the report adds one comparison table:
one row per method, CLIP Quality / Diversity per CLIP model averaged over that method's
domains for one latent row (``--methods-row``, default ``e4e`` when it ran, else ``orig``),
the parameters a domain stores and, when known, its training time.

Where the domains come from:

* ``--preset tiny`` without ``--domains``: every method's *recipe* (:data:`RECIPES`) trains
  one domain per prompt of :data:`~stylebridge.pipelines.presets.TINY_PROMPTS` for
  ``--method-steps`` steps (default 3) on the preset's generator and tiny CLIP models
  (seconds; RANDOM WEIGHTS, the numbers test the code paths), and those domains are the
  domains of the run (instead of the preset's two random StyleSpace domains);
* otherwise ``--domains``: the given checkpoints; those whose method is not among
  ``--methods`` are left out with a note.

A method without a recipe here (or without domains) keeps its row, marked skipped, with a
note.  A name that is neither a method of :data:`METHOD_ORDER`, a recipe nor a registered
domain method is a one-line error listing the known ones.

**Adding a recipe** (the extension point): write a function ``(RecipeInputs) ->
list[TrainedDomain]`` that trains and saves its domains under ``inputs.out_dir`` and returns
one :class:`TrainedDomain` per domain (``spec`` is what ``load_domain`` reads, e.g.
``"hyperdomain:NET.safetensors:text=a sketch"``; ``params`` when the method's
``parameters()`` do not count what one domain costs; ``seconds`` its training time, a
training shared by several domains divided among them), then
register it: ``register_recipe("my_method", train_my_method)``.  The five built-in recipes:
``stylespace``, ``affine_plus`` and ``domain_modulation`` train one domain per prompt with
``train domain``; ``hyperdomain`` trains one network over all the prompts and reads one domain
per prompt from it; ``mindthegap`` trains one domain from the preset's reference photo
(inverted by the preset's e4e), an image domain whose Quality is measured against that
photo (the table's "Quality vs" column says so: an image-image cosine, on another scale).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.adapt import INVERSION
from stylebridge.pipelines.reproduce.domains import DomainEntry, load_checked_domain

#: the thesis' methods in the comparison table's order (issue 17); recipes may add others
METHOD_ORDER = ("stylespace", "affine_plus", "domain_modulation", "hyperdomain", "mindthegap")
#: the recipes' domains: ``OUT/tiny-preset/methods/METHOD/``
METHODS_DIR = "methods"
#: the latent row the comparison uses by default, and its fallback
DEFAULT_METHODS_ROW, FALLBACK_METHODS_ROW = "e4e", "orig"
#: training steps per domain of a recipe on the tiny preset (and the most ``--method-steps``)
DEFAULT_METHOD_STEPS, MAX_METHOD_STEPS = 3, 10_000


@dataclass(frozen=True)
class RecipeInputs:
    """What a recipe trains with (the tiny preset's files, written by the caller)."""

    generator: Path                             # the StyleGAN2 checkpoint
    out_dir: Path                               # write this method's domains here
    prompts: tuple[tuple[str, str], ...]        # (domain name, text prompt)
    reference_image: Path                       # one photo (one-shot image methods)
    clip: tuple[str, ...]                       # CLIP model names for the losses
    clip_weights: Mapping[str, Path]            # their weights files
    encoder: str | None = None                  # inverts the reference (``e4e:PATH``)
    steps: int = DEFAULT_METHOD_STEPS
    seed: int = 0
    device: str = "cpu"


@dataclass
class TrainedDomain:
    """One domain a recipe trained, and how to load and score it."""

    name: str                   # unique in the run, e.g. "stylespace-tiny-pixar"
    spec: str                   # ``PATH`` or ``NAME:PATH[:k=v]`` for ``load_domain``
    path: Path                  # the file the recipe wrote (for the report)
    kind: str = "text"          # "text" | "image"
    text: str | None = None     # Quality target: the prompt ...
    image: Path | None = None   # ... or the reference image
    seconds: float | None = None   # wall-clock training time of this domain
    params: int | None = None   # parameters per domain, if not the method's parameters()
    notes: list[str] = field(default_factory=list)
    method: str = ""            # the comparison row; :func:`run_recipes` fills in the recipe's


#: a method's training recipe: trains its domains from :class:`RecipeInputs`
Recipe = Callable[[RecipeInputs], list[TrainedDomain]]


def train_with_train_domain(method: str) -> Recipe:
    """A recipe that trains ``method`` (``NAME[:k=v]``) once per prompt through
    :func:`stylebridge.pipelines.train_domain.train_domain` (text target, its default
    losses ``clip_direction:1.0`` + ``indomain:0.25``; no frozen layers, as the tiny
    generator has only 7 convs; batch 2)."""

    def recipe(inputs: RecipeInputs) -> list[TrainedDomain]:
        from stylebridge.pipelines.train_domain import DomainTrainConfig, train_domain
        from stylebridge.pipelines.training.domain_log import remove_run_records

        name = method.partition(":")[0]
        out: list[TrainedDomain] = []
        for domain, prompt in inputs.prompts:
            path = inputs.out_dir / f"{name}-{domain}.safetensors"
            start = time.perf_counter()
            train_domain(DomainTrainConfig(
                generator=str(inputs.generator), out=path, text=prompt, method=method,
                steps=inputs.steps, batch=2, freeze_layers="none", clip=list(inputs.clip),
                clip_weights=[f"{n}={p}" for n, p in inputs.clip_weights.items()],
                sample_every=0, checkpoint_every=0, force=True, seed=inputs.seed,
                device=inputs.device))
            seconds = time.perf_counter() - start
            # the folder then holds only domains (usable later as --domains FOLDER)
            remove_run_records(path)
            out.append(TrainedDomain(name=f"{name}-{domain}", spec=str(path), path=path,
                                     kind="text", text=prompt,
                                     seconds=seconds))
        return out

    return recipe


def train_with_hyperdomain(inputs: RecipeInputs) -> list[TrainedDomain]:
    """One hyper-network trained once over all the prompts (``train hyperdomain``, its
    default losses; width 64 on the tiny preset, no prompt templates, batch 2), then one
    domain per prompt read from it (``hyperdomain:NET:text=PROMPT``).  Its training time
    is divided among the domains; ``params`` is the whole network (what one stores for
    any number of domains; the vector it predicts per domain has ``domain_modulation``'s
    size)."""
    from stylebridge.pipelines.train_hyperdomain import HyperDomainTrainConfig, train_hyperdomain
    from stylebridge.pipelines.training.domain_log import remove_run_records

    path = inputs.out_dir / "hyperdomain.safetensors"
    clip = list(inputs.clip)
    start = time.perf_counter()
    outcome = train_hyperdomain(HyperDomainTrainConfig(
        generator=str(inputs.generator), out=path,
        prompt_list=[prompt for _, prompt in inputs.prompts], templates="none",
        steps=inputs.steps, batch=2, clip=clip, mapper_clip=clip[:1],
        clip_weights=[f"{n}={p}" for n, p in inputs.clip_weights.items()], width=64, inner=64,
        sample_every=0, checkpoint_every=0, force=True, seed=inputs.seed, device=inputs.device))
    seconds = (time.perf_counter() - start) / max(1, len(inputs.prompts))
    remove_run_records(outcome.out)
    # params: the method's parameters() = the network (the cached prompt embeddings are buffers)
    return [TrainedDomain(name=f"hyperdomain-{domain}", spec=f'hyperdomain:{path}:text="{prompt}"',
                          path=path, kind="text", text=prompt, seconds=seconds,
                          notes=[f"one network for all {len(inputs.prompts)} prompts"] if i == 0
                          else [])
            for i, (domain, prompt) in enumerate(inputs.prompts)]


def train_with_mindthegap(inputs: RecipeInputs) -> list[TrainedDomain]:
    """One MindTheGap run from the reference image (``train mindthegap``, its default
    losses, batch 2; the reference inverted by ``inputs.encoder``): one image domain whose
    Quality target is that reference."""
    from stylebridge.pipelines.train_mindthegap import train_tiny_mindthegap
    from stylebridge.pipelines.training.domain_log import remove_run_records

    path = inputs.out_dir / f"mindthegap-{inputs.reference_image.stem}.safetensors"
    start = time.perf_counter()
    out = train_tiny_mindthegap(inputs.generator, inputs.reference_image, path,
                                encoder=inputs.encoder, clip_weights=dict(inputs.clip_weights),
                                steps=inputs.steps, batch=2, seed=inputs.seed,
                                device=inputs.device)
    seconds = time.perf_counter() - start
    remove_run_records(out)
    return [TrainedDomain(name=f"mindthegap-{inputs.reference_image.stem}", spec=str(out),
                          path=out, kind="image", image=inputs.reference_image,
                          seconds=seconds)]


#: method name → recipe (see the module docstring)
RECIPES: dict[str, Recipe] = {
    "stylespace": train_with_train_domain("stylespace"),
    "affine_plus": train_with_train_domain("affine_plus"),
    "domain_modulation": train_with_train_domain("domain_modulation"),
    "hyperdomain": train_with_hyperdomain,
    "mindthegap": train_with_mindthegap,
}


def register_recipe(name: str, recipe: Recipe) -> None:
    """Add (or replace) the recipe of method ``name``."""
    RECIPES[name] = recipe


def known_methods(registered: Sequence[str] = ()) -> list[str]:
    """:data:`METHOD_ORDER`, then other recipes, then other registered domain methods."""
    return list(dict.fromkeys([*METHOD_ORDER, *RECIPES, *sorted(registered)]))


def parse_methods(items: Sequence[str], registered: Sequence[str] = ()) -> list[str]:
    """``--methods a,b c`` → ``["a", "b", "c"]`` (order kept, duplicates dropped); an unknown
    name is a one-line error listing the known ones."""
    names = [n.strip() for item in items for n in str(item).split(",") if n.strip()]
    if not names:
        raise StylebridgeError("--methods: give at least one method, e.g. "
                               "--methods stylespace,affine_plus,domain_modulation")
    known = known_methods(registered)
    for name in names:
        if name not in known:
            raise StylebridgeError(f"--methods {name!r}: unknown method (known: "
                                   f"{', '.join(known)})")
    return list(dict.fromkeys(names))


def run_recipes(methods: Sequence[str], inputs: RecipeInputs, notes: list[str],
                on_start: Callable[[str], None] | None = None
                ) -> tuple[list[TrainedDomain], dict[str, str]]:
    """Train every method that has a recipe; (domains, {method: why it was skipped})."""
    trained: list[TrainedDomain] = []
    skipped: dict[str, str] = {}
    for method in methods:
        recipe = RECIPES.get(method)
        if recipe is None:
            skipped[method] = "no training recipe in this build"
            notes.append(f"method {method!r} skipped: no training recipe in this build "
                         "(stylebridge.pipelines.reproduce.methods.RECIPES)")
            continue
        if on_start is not None:
            on_start(method)
        folder = inputs.out_dir / method
        folder.mkdir(parents=True, exist_ok=True)
        domains = recipe(replace(inputs, out_dir=folder))
        for d in domains:
            d.method = d.method or method
            notes.extend(f"method {method!r}, domain {d.name!r}: {n}" for n in d.notes)
        trained.extend(domains)
    return trained, skipped


def trained_domains(methods: Sequence[str], inputs: RecipeInputs, generator: Any,
                    device: Any, notes: list[str],
                    on_start: Callable[[str], None] | None = None
                    ) -> tuple[list[DomainEntry], dict[str, str]]:
    """Run the recipes (:func:`run_recipes`) and load their domains as the run's domains;
    (domains, {method: why it was skipped})."""
    trained, skipped = run_recipes(methods, inputs, notes, on_start)
    out: list[DomainEntry] = []
    for d in trained:
        _, method = load_checked_domain(d.path, generator=generator, device=device,
                                        spec=d.spec)
        if any(e.name == d.name for e in out) or d.name == INVERSION:
            raise StylebridgeError(f"recipe domain name {d.name!r} is not unique")
        method.label = d.name
        out.append(DomainEntry(name=d.name, path=d.path, method=method.eval(), kind=d.kind,
                               text=d.text, image=d.image, target_source="recipe",
                               # trained on the tiny preset's random generator and CLIPs
                               random=True, plugin=d.method,
                               train_seconds=d.seconds, params=d.params))
    return out, skipped


def methods_domains(domains: Sequence[DomainEntry], methods: Sequence[str],
                    notes: list[str]) -> list[DomainEntry]:
    """The given domains whose method is among ``methods`` (the others: a note)."""
    left_out = [f"{d.name} ({d.plugin})" for d in domains if d.plugin not in methods]
    if left_out:
        notes.append(f"--methods: left out domains of other methods: {', '.join(left_out)}")
    return [d for d in domains if d.plugin in methods]


def pick_methods_row(requested: str | None, done: Sequence[str]) -> str | None:
    """The latent row of the comparison: ``requested``, else ``e4e`` if it ran, else
    ``orig``; ``None`` when that row did not run."""
    if requested is not None:
        return requested if requested in done else None
    for key in (DEFAULT_METHODS_ROW, FALLBACK_METHODS_ROW):
        if key in done:
            return key
    return None


def compare_methods(methods: Sequence[str], domains: Sequence[DomainEntry],
                    row: Mapping[str, Any] | None, *, target: str,
                    skipped: Mapping[str, str]) -> list[dict[str, Any]]:
    """One entry per method: its domains, Quality / Diversity per CLIP model averaged over
    them on ``row`` (Quality under ``target``, as Table 4.1), parameters and training
    seconds per domain (means over its domains; ``None`` when unknown)."""
    from stylebridge.pipelines.reproduce.groups import average

    kinds = {d.name: d.kind for d in domains}
    out: list[dict[str, Any]] = []
    for method in methods:
        mine = [d for d in domains if d.plugin == method]
        entry: dict[str, Any] = {"method": method, "domains": [d.name for d in mine]}
        if not mine:
            entry.update(status="skipped",
                         reason=skipped.get(method, "no domain of this method"))
            out.append(entry)
            continue
        # what Quality compared each domain with (domain_quality's rule): a domain with only
        # a reference image is scored against it, an image-image cosine on another scale
        entry["quality_vs"] = sorted({
            "reference image" if d.text is None or (d.kind == "image"
                                                    and target == "reference-image")
            else "text" for d in mine})
        params = [d.n_parameters() for d in mine]
        seconds = [d.train_seconds for d in mine if d.train_seconds is not None]
        entry.update(
            status="done" if row is not None else "skipped",
            params_per_domain=params[0] if len(set(params)) == 1 else sum(params) / len(params),
            train_seconds=sum(seconds) / len(seconds) if len(seconds) == len(mine) else None,
            mean=None if row is None else average(row["per_domain"], kinds,
                                                  [d.name for d in mine], target))
        if row is None:
            entry["reason"] = "the latent row of the comparison did not run"
        out.append(entry)
    return out
