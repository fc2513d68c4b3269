"""Transitional re-exports of the names that lived here before the metrics were split by
family (issue 15).  Import from the new homes instead; this module registers nothing and is
removed once nothing imports it (``plugins/losses/recon.py`` still reads the LPIPS backbone
loader from here: it belongs to :mod:`stylebridge.plugins.nets.lpips`).

Not re-exported: ``FIDInceptionConverter`` (now
:mod:`stylebridge.plugins.converters.fid_inception`) and the ``eval`` command's pieces
(``parse_metric_spec``, ``pair_files``, ``MetricRequest``: :mod:`stylebridge.pipelines.evaluate`;
``EvalCommand``: :mod:`stylebridge.cli.commands.eval`), which a plugin module may not import.
"""

from __future__ import annotations

from stylebridge.plugins.metrics.base import BaseMetric, PerImageMetric
from stylebridge.plugins.metrics.clip import ClipDiversityMetric, ClipQualityMetric
from stylebridge.plugins.metrics.fid import FIDMetric
from stylebridge.plugins.metrics.id import IDMetric
from stylebridge.plugins.metrics.image import MSEMetric, PSNRMetric, SSIMMetric, ssim
from stylebridge.plugins.metrics.lpips import LPIPSMetric
from stylebridge.plugins.nets.lpips import TORCHVISION_FILES, load_lpips_backbone
from stylebridge.plugins.nets.state import read_plain_state as _read_plain_state

METRICS: tuple[type[BaseMetric], ...] = (MSEMetric, PSNRMetric, SSIMMetric, LPIPSMetric, IDMetric,
                                         FIDMetric, ClipQualityMetric, ClipDiversityMetric)

__all__ = ["METRICS", "TORCHVISION_FILES", "BaseMetric", "ClipDiversityMetric",
           "ClipQualityMetric", "FIDMetric", "IDMetric", "LPIPSMetric", "MSEMetric",
           "PSNRMetric", "PerImageMetric", "SSIMMetric", "_read_plain_state",
           "load_lpips_backbone", "ssim"]
