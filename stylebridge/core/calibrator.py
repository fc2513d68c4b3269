"""The calibrator interface (re-exported by :mod:`stylebridge.core.interfaces`, where it
was): fitted statistics applied between encoding and a domain method, alpha-rescaling's
kind; :class:`FitReport`, what ``stylebridge calibrate`` prints of a fitted one; and the
adoption of the hook's old name ``apply(inversion)``."""

from __future__ import annotations

import functools
import sys
import warnings
from abc import ABC
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from torch import Tensor, nn

from stylebridge.core.inversion import Inversion
from stylebridge.core.plugin import Plugin

if TYPE_CHECKING:
    from pathlib import Path

    from stylebridge.core.stylegan2.generator import Generator

#: (id(calibrator), class) of the old-style ``apply(inversion)`` hooks running in this context
_OLD_HOOKS: ContextVar[tuple[tuple[int, type], ...]] = ContextVar("old_calibrator_hooks",
                                                                  default=())


def _adopted_hook(owner: type, old: Callable[[Any, Inversion], Inversion]
                  ) -> Callable[[Any, Inversion], Inversion]:
    """``owner``'s old ``apply(inversion)`` as its ``calibrate``, recording while it runs
    whose hook it is, so that a ``super().apply(inversion)`` inside reaches the parent's
    calibration (not this hook again, forever)."""

    @functools.wraps(old)
    def calibrate(self: Any, inversion: Inversion) -> Inversion:
        token = _OLD_HOOKS.set((*_OLD_HOOKS.get(), (id(self), owner)))
        try:
            return old(self, inversion)
        finally:
            _OLD_HOOKS.reset(token)

    return calibrate


def _class_statement_level() -> int:
    """The ``stacklevel`` of the ``class`` statement running ``__init_subclass__`` (the
    frames between are the interpreter's: ``abc``'s ``__new__``), from a helper it calls."""
    frame, level = sys._getframe(2), 2
    while frame is not None and (frame.f_code.co_filename.startswith("<frozen")
                                 or frame.f_code.co_name == "__init_subclass__"
                                 or frame.f_code.co_filename.endswith(("abc.py", "typing.py"))):
        frame, level = frame.f_back, level + 1
    return level


class Calibrator(nn.Module, Plugin, ABC):
    """Fitted statistics applied between encoding and a domain method.

    ``calibrate`` may change the inversion; ``offset_scale`` returns per-layer
    multipliers for a method's style offsets (``None`` = leave them alone).

    The hook was named ``apply`` before, which hid ``nn.Module.apply(fn)`` (a parent's
    ``apply(init)`` skipped the calibrator): a subclass that still defines ``apply(inversion)``
    is read as defining ``calibrate`` (with a DeprecationWarning), and ``apply`` given an
    :class:`Inversion` calibrates it as before.
    """

    def calibrate(self, inversion: Inversion) -> Inversion:
        return inversion

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        old = cls.__dict__.get("apply")
        if old is not None and "calibrate" not in cls.__dict__:
            warnings.warn(f"calibrator {cls.__qualname__}: name its hook calibrate(inversion); "
                          "apply(inversion) hides nn.Module.apply(fn)", DeprecationWarning,
                          stacklevel=_class_statement_level())
            cls.calibrate = _adopted_hook(cls, old)  # type: ignore[method-assign]
            del cls.apply  # Module.apply(fn) again, through Calibrator.apply

    def apply(self, fn: Any) -> Any:  # type: ignore[override]
        """``nn.Module.apply(fn)``; given an :class:`Inversion` (the hook's old name),
        :meth:`calibrate`: the whole object's, or, called as ``super().apply(inversion)`` from
        an old-style hook, its parent's (as it was before the rename)."""
        if isinstance(fn, Inversion):
            running = [c for key, c in _OLD_HOOKS.get() if key == id(self)]
            if running:  # super().apply(inversion) inside the old hook of class running[-1]
                return super(running[-1], self).calibrate(fn)
            return self.calibrate(fn)
        return super().apply(fn)

    def offset_scale(self, n_layers: int) -> Tensor | None:
        return None

    def unreliable_layers(self) -> list[int]:
        """Style layers whose offsets :meth:`offset_scale` switches off because its statistics
        give no usable scale there (alpha: α near 0); reported, never silent.  Default: none."""
        return []

    #: ``stylebridge calibrate`` can fit it (it implements :meth:`from_style_means`)
    fittable: ClassVar[bool] = False

    #: the options of ``stylebridge calibrate`` that :meth:`from_style_means` takes as
    #: ``config`` keywords, of ``skip_layers`` (``--skip-layers``: style-layer indices, already
    #: parsed), ``fit`` (``--fit``) and ``power`` (``--power``); alpha takes all three.  The
    #: command passes the ones declared here (given, or at its defaults) and refuses the others
    #: in one line when they are given.  Default: none.
    fit_options: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def from_style_means(cls, source_means: Sequence[Tensor], encoder_means: Sequence[Tensor],
                         **config: Any) -> Calibrator:
        """Fit from per-style-layer channel means of the mapping network (source) and of an
        encoder's inversions (what ``stylebridge calibrate`` measures); set ``fittable``, and
        :attr:`fit_options` for the command's options it takes in ``config``."""
        raise NotImplementedError(f"calibrator {cls.name!r} cannot be fitted from style means")

    def save(self, path: str | Path, *, extra: Mapping[str, Any] | None = None) -> Path:
        """Write the fitted calibrator to ``path`` (what ``stylebridge calibrate --out`` gets):
        a stylebridge checkpoint of :meth:`state_dict`, its header kind ``"calibrator"``, the
        name, :meth:`config` and ``extra`` (what the command records: the run's provenance,
        photo and sample counts), written atomically.  ``--calibrate NAME:FILE`` and
        ``Registry.load`` rebuild ``cls(**config)`` from it and load the tensors, so an
        override must keep that format (and may add to ``extra``)."""
        from stylebridge.core.checkpoint import save_checkpoint

        return save_checkpoint(path, self.state_dict(), kind="calibrator", plugin=self.name,
                               config=self.config(), extra=extra)

    def fit_report(self, generator: Generator) -> FitReport | None:
        """The per-layer table ``stylebridge calibrate`` prints after fitting on ``generator``
        (alpha: α, offset scale and R² per style layer).  Default ``None``: the command prints
        a generic summary instead (the :meth:`offset_scale` of each style layer, if any, and
        the :meth:`unreliable_layers`)."""
        return None


@dataclass(frozen=True)
class FitReport:
    """What :meth:`Calibrator.fit_report` returns: a table ``title`` (the command adds the
    counts of photos and samples), its ``header`` and ``rows`` (text cells; the first
    ``labels`` columns are labels, the others numbers), ``notes`` (dim lines under the table:
    what the columns mean) and ``warnings`` (yellow lines: the layers it switches off and why;
    none given, the command says which :meth:`Calibrator.unreliable_layers` it has)."""

    title: str
    header: Sequence[str]
    rows: Sequence[Sequence[str]]
    labels: int = 2
    notes: Sequence[str] = ()
    warnings: Sequence[str] = ()


__all__ = ["Calibrator", "FitReport"]
