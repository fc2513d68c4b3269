"""Hook specifications: the whole plugin API is these nine hooks.

A plugin module implements any of them with ``@hookimpl`` and calls
``register(obj)`` once per thing it provides::

    from stylebridge.registry import hookimpl

    @hookimpl
    def register_encoders(register):
        register(MyEncoder)          # a subclass of stylebridge.core.interfaces.Encoder

``obj`` is a class for encoders, domain methods, losses, metrics, calibrators and
renderers (the registry builds it from a config) and an instance for converters, commands
and command targets.  The registered name is ``obj.name``; an instance may be given another
with ``register(obj, name="...")``, a class may not (its objects and checkpoints go by
``name``); a command target's is ``COMMAND.NAME`` (``train.domain``), from its
``command``.  A package declares each module that implements hooks as one entry point in the
``stylebridge`` group; stylebridge's own plugins are found the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

PROJECT = "stylebridge"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Register = Callable[..., None]


@hookspec
def register_encoders(register: Register) -> Any:
    """Register :class:`~stylebridge.core.interfaces.Encoder` subclasses."""


@hookspec
def register_domain_methods(register: Register) -> Any:
    """Register :class:`~stylebridge.core.interfaces.DomainMethod` subclasses."""


@hookspec
def register_losses(register: Register) -> Any:
    """Register :class:`~stylebridge.core.interfaces.Loss` subclasses."""


@hookspec
def register_metrics(register: Register) -> Any:
    """Register :class:`~stylebridge.core.interfaces.Metric` subclasses."""


@hookspec
def register_calibrators(register: Register) -> Any:
    """Register :class:`~stylebridge.core.interfaces.Calibrator` subclasses."""


@hookspec
def register_renderers(register: Register) -> Any:
    """Register :class:`~stylebridge.core.interfaces.Renderer` subclasses."""


@hookspec
def register_converters(register: Register) -> Any:
    """Register :class:`~stylebridge.core.interfaces.Converter` instances."""


@hookspec
def register_commands(register: Register) -> Any:
    """Register :class:`~stylebridge.cli.base.Command` instances (CLI subcommands).

    The registry sits below the CLI and does not check the type; ``stylebridge.cli.main``
    does, when it builds the parser."""


@hookspec
def register_command_targets(register: Register) -> Any:
    """Register :class:`~stylebridge.cli.base.Target` instances: the targets of grouped
    commands, ``stylebridge train NAME`` and ``stylebridge reproduce NAME`` (``target.command``
    names the command).  Registered as ``COMMAND.NAME`` (``train.domain``); a name two
    installed packages register is used by neither, as for every kind.

    The registry checks the ``command`` and ``name`` only; ``stylebridge.cli`` checks the
    type when it builds the command's sub-parsers."""
