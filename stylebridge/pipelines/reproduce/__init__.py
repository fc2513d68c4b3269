"""``stylebridge reproduce thesis-tables``: the CLIP Quality / Diversity tables of the thesis
(Tables 4.1–4.3, "Quality and Diversity metrics" and "Improving the gap: Results").

What is measured.  For every *row* (a way to obtain latents / features) and every
domain, a set of images is adapted to the domain and scored with the
``clip_quality`` and ``clip_diversity`` metrics of :mod:`stylebridge.plugins.metrics.clip`
(HyperDomainNet A.3.3, thesis)::

    Quality   = 1/N Σ_i <E_T(domain text), E_I(image_i)>
    Diversity = 2/(N(N-1)) Σ_{i<j} (1 - <E_I(image_i), E_I(image_j)>)

for each CLIP model (``--clip``, the thesis uses ViT-B-16 and ViT-B-32).  The tables
average the per-domain values over the domains: over all of them (Table 4.1 layout:
Quality and Diversity per CLIP model) and separately over image and text domains
(Tables 4.2 / 4.3 layout: per CLIP model, Image | Text).  Note: Table 4.1's caption says
"all considered Similar Domains", but its printed ViT-B-32 values match Table 4.2's
Image column (Diversity equal, Quality within 0.001), so the thesis' Table 4.1 looks like an image-domain average: compare our
Image column with it (or pass only image domains).

Rows (the thesis' names; StyleSpace offsets applied through
:class:`stylebridge.pipelines.adapt.Adapter` / :func:`stylebridge.core.synthesis.synthesize`):

======================  ===============================================================
``orig``                "Orig": ``--samples`` N stochastically generated images: z ~ N(0, I)
                        (seeded by ``--seed``), w = mapping(z) (``--truncation``, default 1
                        = none, as StyleDomain's evaluation), w+ = w repeated, rendered in
                        the domain; no photos involved
``e4e``                 "E4E latents": e4e inversion of each photo (``--e4e``)
``fse_latents``         "FSE latents": FSE ``mode=latents`` (``--fse``)
``fse_features``        "FSE features": FSE ``mode=features`` (F replaces activation K)
``fse_shift``           "FSE generator shift": FSE ``mode=shift``
``featureshift_e4e``    "FeatureShift on E4E": FSE features + FeatureShift
                        (``--featureshift-e4e``), Δ from the e4e latents (``--e4e``)
``featureshift_fse``    "FeatureShift on FSE": FSE features + FeatureShift
                        (``--featureshift-fse``), Δ from the FSE latents
======================  ===============================================================

``--e4e`` / ``--fse`` default to the weights installed by ``stylebridge weights``.  The
official weights the run loads by name (the generator, e4e and FSE, the CLIP models without
``--clip-weights``) and lacks are named in one error before anything loads, or fetched with
``--fetch`` (``ThesisTablesConfig.weight_requests``).  With ``--allow-random`` the default e4e
and FSE and the CLIP models that have no weights are computed on random weights of the official
architecture (sized to the generator) and labelled instead; a FeatureShift row without its
model is skipped with a note (or, with ``--allow-random``, computed on random weights).
Photos (``--images``) must be aligned faces (``stylebridge align``), as FFHQ;
unreadable files are skipped and reported (exit 3); an empty ``--images`` or ``--domains``
folder is a one-line error.  A run that is interrupted keeps the rows it finished: ``--resume``
computes the others (:mod:`.journal`; with ``--methods`` on the tiny preset the recipes train
again and the rows are kept when they give the same domain files).

Every table says the direction of its numbers in its headers (``Quality ↑``, ``Diversity ↑``;
``common.QUANTITIES``); the markdown adds a legend, the JSON ``quantities`` (unit, range,
better).

Domains (``--domains DIR|FILE ...``): stylebridge domain checkpoints (kind
``domain_method``, e.g. SimilarDomains StyleSpace files converted with ``stylebridge
convert styledomain``, or ``stylebridge train domain`` outputs).  A domain's *target*
for Quality and its *kind* (image / text, for the split tables):

* a targets JSON (``--targets FILE``, and ``targets.json`` inside a ``--domains``
  folder) mapping the domain file (name, stem or path relative to the JSON) to
  ``"a text"`` or ``{"text": ..., "image": PATH, "kind": "image"|"text"}`` (image paths
  relative to the JSON); it takes precedence over the header;
* else the checkpoint header: ``extra.target`` written by ``train domain``
  (``{"text": ...}`` or ``{"image": PATH}``); the converter's ``extra.da_type``
  (``td`` = text, ``im2im*`` = image) gives the kind only.

Quality target per table (``--quality-target [TABLE=]text|reference-image``,
:mod:`.groups`): text domains use their text (the thesis' formula), formatted with
``--text-template`` (default ``"A {}"``, as StyleDomain's ``EvaluationManager._encode_text``).
Image domains are scored against a text in Tables 4.1 / 4.2 (their ≈ 0.25 values are an
image–text cosine range) and against the CLIP embedding of their reference image
(``clip_quality:reference=``) in Table 4.3 (≈ 0.64–0.77, an image–image range); a domain
that has only one of the two uses it everywhere.  A domain without a target is skipped and
reported.

Domain groups (:mod:`.groups`): the domains are sorted, per kind, by the Quality gap
``E4E latents − FSE features`` and cut into thirds (different / middle / similar); the
report prints the groups and Table 4.3's layout over the "different" domains, as the
thesis does.  The kind is ``image`` for domains trained from
an image, ``text`` otherwise.

Outputs (``--out DIR``, written atomically): ``thesis_tables.md`` (the tables and one
per-domain table per CLIP model) and ``thesis_tables.json`` (every value, per domain too,
the sources of each row, notes, skipped files).

Random weights.  ``--preset tiny`` builds a 32 px generator, tiny e4e / FSE / FeatureShift
networks, two StyleSpace domains with text prompts and two tiny CLIP models, all with
random weights (:func:`stylebridge.pipelines.presets.build_tiny_preset`), and runs the whole pipeline on them in
seconds: it checks the code paths, the numbers mean nothing.  Whenever any network of a
run has random weights (checkpoint header ``random_weights`` / notes, CLIP weights file
metadata, ``--allow-random``) the terminal, the table titles, the markdown and the JSON
say RANDOM WEIGHTS.

Methods side by side (``--methods stylespace,affine_plus,domain_modulation,hyperdomain,
mindthegap``, :mod:`.methods`): the domains are grouped by their method (the checkpoint
header's ``plugin``) and the report adds one table, a row per method: Quality / Diversity per
CLIP model averaged over that method's domains on one latent row (``--methods-row``, default
``e4e`` when it ran, else ``orig``; image domains' Quality target as Table 4.1), its number of
domains, the parameters one domain stores and, when known, its training time.  With
``--preset tiny`` and no ``--domains``, each method's recipe (``methods.RECIPES``, name →
function) first trains one domain per preset prompt for ``--method-steps`` steps (seconds)
and those are the run's domains; a method without a recipe keeps a row marked skipped, with a
note; an unknown name is a one-line error listing the known ones.  Without ``--methods``
nothing changes.

Modules: :mod:`.common` (file names, the rows), :mod:`.domains` (domains and their targets),
:mod:`.methods` (the ``--methods`` recipes and comparison),
:mod:`.groups` (Quality target per table, domain groups),
:mod:`.clips` (CLIP models, the scorer), :mod:`.rows` (what renders each row),
:mod:`.report` (averages, table layouts, markdown) and :mod:`.tables` (the pipeline:
:class:`ThesisTablesConfig` → :func:`run_thesis_tables` → :class:`ThesisTablesResult`).
The command and its argparse / rich code live in :mod:`stylebridge.cli.commands.reproduce`;
a package adds other targets (``reproduce NAME``) through the ``register_command_targets``
hook.
"""

from __future__ import annotations

from stylebridge.pipelines.presets import (
    TINY_CLIPS,
    TINY_FSE_LAYER,
    TINY_PROMPTS,
    TinyPreset,
    build_tiny_preset,
    fse_random_config,
    random_e4e,
    random_featureshift,
    random_fse,
)
from stylebridge.pipelines.reproduce.clips import (
    ClipChoice,
    Scorer,
    parse_clip_weights,
    register_clip_configs,
    resolve_clips,
)
from stylebridge.pipelines.reproduce.common import (
    DEFAULT_CLIPS,
    DEFAULT_TEMPLATE,
    FSE_MODES,
    JSON_FILE,
    KINDS,
    MARKDOWN_FILE,
    PRESET_DIR,
    RANDOM_SENTENCE,
    RANDOM_SOURCE,
    ROWS,
    TARGETS_FILE,
    RowSpec,
)
from stylebridge.pipelines.reproduce.domains import DomainEntry, collect_domains, read_targets
from stylebridge.pipelines.reproduce.methods import (
    DEFAULT_METHOD_STEPS,
    METHOD_ORDER,
    RECIPES,
    Recipe,
    RecipeInputs,
    TrainedDomain,
    register_recipe,
)
from stylebridge.pipelines.reproduce.report import (
    aggregate,
    per_domain_layouts,
    render_markdown,
    table_layouts,
)
from stylebridge.pipelines.reproduce.rows import (
    RowBuilder,
    RowSetup,
    RowSkipped,
    Sources,
    orig_latents,
)
from stylebridge.pipelines.reproduce.tables import (
    NoUsableInputs,
    TablesProgress,
    ThesisTablesConfig,
    ThesisTablesResult,
    run_thesis_tables,
)

__all__ = [
    "DEFAULT_CLIPS",
    "DEFAULT_METHOD_STEPS",
    "DEFAULT_TEMPLATE",
    "FSE_MODES",
    "JSON_FILE",
    "KINDS",
    "MARKDOWN_FILE",
    "METHOD_ORDER",
    "PRESET_DIR",
    "RANDOM_SENTENCE",
    "RANDOM_SOURCE",
    "RECIPES",
    "ROWS",
    "TARGETS_FILE",
    "TINY_CLIPS",
    "TINY_FSE_LAYER",
    "TINY_PROMPTS",
    "ClipChoice",
    "DomainEntry",
    "NoUsableInputs",
    "Recipe",
    "RecipeInputs",
    "RowBuilder",
    "RowSetup",
    "RowSkipped",
    "RowSpec",
    "Scorer",
    "Sources",
    "TablesProgress",
    "ThesisTablesConfig",
    "ThesisTablesResult",
    "TinyPreset",
    "TrainedDomain",
    "aggregate",
    "build_tiny_preset",
    "collect_domains",
    "fse_random_config",
    "orig_latents",
    "parse_clip_weights",
    "per_domain_layouts",
    "random_e4e",
    "random_featureshift",
    "random_fse",
    "read_targets",
    "register_clip_configs",
    "register_recipe",
    "render_markdown",
    "resolve_clips",
    "run_thesis_tables",
    "table_layouts",
]
