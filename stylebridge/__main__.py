"""``python -m stylebridge`` (also ``torchrun ... -m stylebridge train featureshift ...``)."""

from stylebridge.cli import run

raise SystemExit(run())
