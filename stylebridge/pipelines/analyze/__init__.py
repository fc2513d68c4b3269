"""``stylebridge analyze latents``: encoder vs mapping-network style distributions (thesis,
"Examining latent distributions", Fig. 4.9, Eq. 5, Fig. 4.10).

What is compared.  For every modulated layer ``i`` the thesis takes the *style*
vectors ``s_i = A_i(w+[:, row_i])`` ("latents after learned style affine
transforms") and compares their per-channel means over a photo set encoded by
an encoder (FFHQ small, 3000 images; y axis) with the per-channel means of the
mapping network's styles over sampled ``z ~ N(0, I)`` (3000 samples, no
truncation; x axis).  Layers are the style-layer indices of
:mod:`stylebridge.core.stylegan2.generator` (0 = ``conv1``, 1 = ``to_rgb1``,
then per stage ``j``: ``2+3j``/``3+3j`` the convs, ``4+3j`` ToRGB; 26 at
1024 px).  ``layers="conv"`` keeps the 17 non-RGB ones (StyleDomain's
``s_delta`` order, reported as ``conv_index``).  The thesis' figures show 18
panels / rows for a 1024-px generator: W+ rows, or row 0 unshifted and the 17
convs after it, which Fig. 4.10's numbers favour (``docs/layers.md``); we report
every style layer (or the convs) with its name so the numbering is unambiguous.

Per layer (Fig. 4.9 and the calibration behind Fig. 4.11):

* ``alpha``, ``intercept``, ``r2``: the fit of ``encoder ≈ α · mapping`` over
  the layer's channel means, computed by
  :func:`stylebridge.plugins.calibrators.alpha.fit_alpha` (through the origin by
  default, exactly the statistics ``stylebridge calibrate alpha`` stores);
* ``corr_r2``: the squared Pearson correlation of the two mean vectors (the
  ``r2`` of the fit with intercept), the thesis' "covariance";
* ``pattern``: the thesis' three groups of layers, characterised numerically
  (the thesis gives no thresholds; these are ours and are options):
  ``independent`` (group 1, "low covariance ... independency", first layers):
  ``corr_r2 < r2_min`` (default 0.5); ``calibrated`` (group 2, "well-calibrated",
  middle layers): otherwise, if ``|α − 1| <= alpha_tol`` (default 0.1);
  ``scaled`` (group 3, "scaled by some constant y = α·x", upper layers):
  otherwise.  The thesis' groups are also positional: "First layers" (rows 0-4),
  "Middle layers, more precisely layers 5-11", "Upper layers" (rows 12-17) of its
  18 rows.  For a 1024-px generator (26 style layers, 18 W+ rows) each layer's
  ``thesis_group`` gives that group under both readings of the rows
  (``{"wplus": 1, "convs": 2}``: the W+ row the layer reads, or row 0 unshifted and
  conv head ``k`` = row ``k + 1``, None for a ToRGB layer; ``thesis_row`` the rows)
  and ``thesis_positions`` the layers per group, so the numeric pattern can be set
  against the position (markdown: a ``thesis group (W+ / conv)`` column and a
  "Layers by thesis group" line).  Other sizes get None: the thesis' positions are
  for 1024 px.

Domain adaptability (Eq. 5, Fig. 4.10).  For a domain method ``D``,
``Adaptability⁽ⁱ⁾ = ⟨w_enc⁽ⁱ⁾, w_enc⁽ⁱ⁾ + Δw_domain⁽ⁱ⁾⟩ − ⟨w_orig⁽ⁱ⁾, w_orig⁽ⁱ⁾ +
Δw_domain⁽ⁱ⁾⟩`` where ``w⁽ⁱ⁾`` is layer ``i``'s style vector of one encoded
photo (``enc``) or one mapped sample (``orig``) and ``w + Δw`` the same style
vector with the domain applied, i.e. ``D.styles(generator, w_plus)[i]`` — for
StyleSpace ``s + Δ``, for methods whose change is not additive (Affine+,
AffineLight+) the per-sample ``Δs = s_domain − s_source``.  Each term is the
**average over the photos / samples** of the per-vector similarity.

``⟨·,·⟩`` is the **cosine similarity**: the text introducing Eq. 5 says "we have
calculated cosine similarities between latents with or without offsets ... the
final metric takes differences between their cosine similarities", and
Fig. 4.10 lists ``stoch_sim`` / ``fse_sim`` / ``e4e_sim`` in ``[-1, 1]`` (1.000 on
a layer without offset) with ``*_diff = *_sim − stoch_sim``.  That is the
``adaptability`` column.  Because the formula's brackets could also be read as
a plain dot product, the report also gives that variant
(``orig_dot`` / ``enc_dot`` / ``adaptability_dot``, mean of ``⟨s, s'⟩``); it is
scale-dependent (an encoder whose styles are ``α`` times larger changes it by
``~α²`` even without any difference in the domain's effect), so it is for
reference only.  Conv weight offsets that some DissimilarDomains checkpoints
carry are not a change of ``s`` and are not part of Eq. 5 (flagged as
``weight_offsets_excluded``).

CLI::

    stylebridge analyze latents --encoder e4e:e4e.safetensors [--encoder fse:fse.safetensors] \\
        --generator ffhq.safetensors \\
        --images ffhq_small/ --out analysis/ [--samples 3000] [--domain pixar.safetensors ...]

writes ``latents.png`` (one panel per layer: density-coloured scatter of the
channel means, the ``y = x`` line in green and the fitted ``y = α·x`` line),
``layers/layer_XX.png`` with ``--per-layer``, ``latents.md`` and
``latents.json`` (atomic writes).  ``--encoder`` is repeatable (the thesis compares
e4e and FSE): each encoder's report then goes to ``OUT/<encoder>/`` and ``OUT/latents.*``
hold the side-by-side comparison (one colour per encoder in every panel; α and pattern
per encoder; per domain Fig. 4.10's ``stoch_sim`` / ``<encoder>_sim`` / ``<encoder>_diff``).  Unreadable photos (and, with ``--align``,
photos without a face) are skipped and reported; exit 3 when some were
skipped, 2 when none could be used.  Anything computed with random weights is
labelled as such in the plot titles, the markdown and the JSON.

The package: :mod:`.stats` (style means and similarities), :mod:`.report` (α, patterns,
Eq. 5 rows, the comparison), :mod:`.markdown`, :mod:`.plots` (matplotlib, imported lazily)
and :mod:`.latents` (:func:`run_latents`: :class:`LatentsConfig` in, :class:`LatentsResult`
out); :mod:`.shift` is ``analyze shift-norms`` (FSE's ‖F‖ versus the generator shift
‖G^K(w̃) − G^K(w)‖ per domain, which the thesis finds ~100× smaller).  The command line is :mod:`stylebridge.cli.commands.analyze`.
"""

from __future__ import annotations

from stylebridge.pipelines.analyze.latents import (
    EncoderRun,
    LatentsConfig,
    LatentsProgress,
    LatentsResult,
    run_latents,
    write_report,
)
from stylebridge.pipelines.analyze.markdown import render_comparison_markdown, render_markdown
from stylebridge.pipelines.analyze.plots import (
    plot_comparison,
    plot_distributions,
    plot_layer,
    save_figure,
)
from stylebridge.pipelines.analyze.report import (
    LAYER_SETS,
    PATTERNS,
    THESIS_GROUPS,
    LayerRef,
    build_report,
    classify,
    compare_reports,
    layer_refs,
)
from stylebridge.pipelines.analyze.stats import (
    SAMPLE_BATCH,
    SimilarityAccumulator,
    collect_encoder_stats,
    collect_mapping_stats,
)

__all__ = ["LAYER_SETS", "PATTERNS", "SAMPLE_BATCH", "THESIS_GROUPS", "EncoderRun", "LatentsConfig",
           "LatentsProgress", "LatentsResult", "LayerRef", "SimilarityAccumulator", "build_report",
           "classify", "collect_encoder_stats", "collect_mapping_stats", "compare_reports",
           "layer_refs", "plot_comparison", "plot_distributions", "plot_layer",
           "render_comparison_markdown", "render_markdown", "run_latents", "save_figure",
           "write_report"]
