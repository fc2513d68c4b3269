"""Error types that stylebridge raises for bad input.

Every error here carries a single-line message that names the file or value at
fault; the CLI prints it as ``error: <message>`` and exits non-zero without a
traceback.  Anything else escaping from stylebridge is a bug.
"""

from __future__ import annotations

from pathlib import Path

#: the longest error message shown (characters); longer ones keep their start and end
MAX_MESSAGE = 600


class StylebridgeError(Exception):
    """Base class: a user-facing problem with a one-line explanation."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        text = " ".join(str(message).split())  # always one line
        if len(text) > MAX_MESSAGE:  # an 8 KB line helps nobody: keep both ends
            cut = len(text) - MAX_MESSAGE
            text = f"{text[:MAX_MESSAGE * 2 // 3]} [... {cut} characters cut ...] " \
                   f"{text[-MAX_MESSAGE // 3:]}"
        #: the message without the path (to say it again with more context)
        self.message = text
        super().__init__(f"{self.path}: {text}" if self.path is not None else text)


class RegistryError(StylebridgeError):
    """Unknown plugin name, duplicate registration, broken plugin package."""


class SpecError(StylebridgeError):
    """A malformed ``name:path`` / ``name:weight`` specification."""


class CheckpointError(StylebridgeError):
    """A checkpoint that is missing, unreadable, or of the wrong kind/config/shape."""


class ConversionError(CheckpointError):
    """A third-party checkpoint that cannot be converted."""


class UnsafePickleError(ConversionError):
    """A pickle that references code outside the allow-list (it is never executed)."""


class ImageError(StylebridgeError):
    """An image file that cannot be read or used."""


class OptionError(StylebridgeError, ValueError):
    """An option value outside its allowed set, from Python (a ``ValueError`` too, as the
    call raised before)."""


class InputTypeError(StylebridgeError, TypeError):
    """A value of the wrong type from Python (a config field, a picture given as a path or a
    path as a picture): one line naming the field and the type expected (a ``TypeError``
    too, as the call raised before)."""


class InputValueError(StylebridgeError, ValueError):
    """A value of the right type but the wrong shape or content from Python (a picture of
    an unknown layout, an empty array): one line (a ``ValueError`` too, as it raised before)."""


class LossInputError(StylebridgeError, ValueError):
    """A loss that needs a batch field the trainer does not fill."""
