"""The base of every registered class, :class:`Plugin` (re-exported by
:mod:`stylebridge.core.interfaces`, where it was): a ``name``, a JSON config that rebuilds the
object, whether it runs on random weights, and the checks made before it is built."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

from stylebridge.core.schema import Field, validate_config

__all__ = ["Plugin"]


class Plugin:
    """Shared by every registered class: a ``name`` and a JSON config that rebuilds it.

    ``random_weights``: ``True`` when the object runs on untrained weights (its numbers and
    images are then labelled, never reported as real), ``False`` when it needs no weights or
    has real ones, ``None`` (default) when that follows from whether a checkpoint was loaded
    (:func:`stylebridge.registry.resolve.spec_random`).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: the header ``kind`` of this plugin's checkpoints when it is not its registry kind
    #: (FeatureShift, a renderer, writes ``featureshift`` checkpoints); ``None``: the same
    checkpoint_kind: ClassVar[str | None] = None
    random_weights: bool | None = None
    #: a bare ``NAME`` without installed weights is refused (resolve.create) instead of built random
    requires_weights: ClassVar[bool] = False
    #: how to make or get the weights of a ``requires_weights`` plugin when none are installed,
    #: for the one-line refusal (``None``: convert the official file with ``stylebridge convert``)
    weights_hint: ClassVar[str | None] = None
    #: key -> :class:`~stylebridge.core.schema.Field`: types and ranges of the config, checked
    #: (with finiteness of every float) before the constructor runs (``Registry.create``/``load``)
    config_schema: ClassVar[Mapping[str, Field]] = MappingProxyType({})

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> None:
        """Raise :class:`~stylebridge.core.schema.ConfigSchemaError` (one line, naming the key
        and the allowed range) unless ``config`` fits :attr:`config_schema`; a plugin may
        extend it with cross-key checks (call ``super().check_config(config)`` first)."""
        validate_config(cls.config_schema, config)

    def config(self) -> dict[str, Any]:
        """Keyword arguments such that ``type(self)(**self.config())`` rebuilds the object."""
        return {}

    @classmethod
    def unavailable_weights(cls, config: Mapping[str, Any]) -> tuple[str, ...]:
        """The official weights entries (``stylebridge weights list``) that building this
        class with ``config`` would read and cannot find (none installed, no file named in
        ``config``, random weights not allowed).  A run asks every loss and metric it names
        before building any (:func:`stylebridge.registry.needed.missing_weights`), so that
        one line names every download.  Default: none (building reports its own errors)."""
        return ()

    @classmethod
    def check_header(cls, extra: Mapping[str, Any]) -> str | None:
        """Called with a checkpoint header's ``extra`` before the object is built from it:
        the reason to refuse the file (one line), or ``None`` to accept it (default)."""
        return None

    def read_extra(self, extra: Mapping[str, Any]) -> None:
        """Called with a checkpoint header's ``extra`` once the object is built from it and
        holds its weights: keep what the file records beyond weights and config (FeatureShift:
        the guide encoder it was trained with).  Default: nothing."""
