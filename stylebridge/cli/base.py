"""The base class of a ``stylebridge`` subcommand (built-in or from a plugin package)."""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from stylebridge.core.interfaces import Plugin

if TYPE_CHECKING:
    from rich.console import Console


class Command(Plugin, ABC):
    """A ``stylebridge`` subcommand, registered through the ``register_commands`` hook."""

    help: ClassVar[str] = ""

    @abstractmethod
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    @abstractmethod
    def run(self, args: argparse.Namespace, console: Console) -> int: ...
