"""stylebridge: StyleGAN2 encoders and domain adaptation as composable plugins.

Importing this package is cheap: it compiles nothing, downloads nothing and
builds no model.  Entry points:

* :func:`stylebridge.registry.get_registry` — every plugin by kind and name;
* :mod:`stylebridge.core.checkpoint` — our safetensors checkpoint format;
* :mod:`stylebridge.core.stylegan2` — the StyleGAN2 generator and discriminator.
"""

from __future__ import annotations

__version__ = "0.1.0"

from stylebridge.errors import StylebridgeError

__all__ = ["StylebridgeError", "__version__"]
