"""``python -m stylebridge.cli``: the same as ``stylebridge``."""

from stylebridge.cli import run

raise SystemExit(run())
