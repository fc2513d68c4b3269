"""stylebridge-example-encoder: a third-party plugin package, the template for your own.

One module per plugin, one entry point per module (``pyproject.toml``,
``[project.entry-points.stylebridge]``):

* :mod:`.encoder`: the ``tiny-pool`` encoder (``register_encoders``);
* :mod:`.info`: the ``stylebridge example-info CKPT`` command (``register_commands``);
* :mod:`.loss`: the ``charbonnier`` loss (``register_losses``).

This package module itself registers nothing when installed with the current entry points. It
re-exports the encoder's hook only so that an install made before the split (whose single
entry point named this module) keeps providing ``tiny-pool`` until it is reinstalled.
"""

from stylebridge_example_encoder.encoder import TinyPoolEncoder, register_encoders

__all__ = ["TinyPoolEncoder", "register_encoders"]
