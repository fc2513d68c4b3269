"""Built-in plugins, by kind: ``encoders/``, ``domains/``, ``losses/``, ``metrics/``,
``calibrators/``, ``renderers/``, ``converters/`` and ``nets/`` (shared networks, no hooks).

They register through the same hooks as third-party packages.
"""
