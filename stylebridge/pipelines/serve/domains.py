"""The domains ``stylebridge serve`` offers: the preset's, the installed ones, files dropped on
the page and prompts turned into domains by a hyper-network (a mix-in of
:class:`~stylebridge.pipelines.serve.backend.ServeBackend`, which holds the state)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from stylebridge.core.interfaces import DomainMethod
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.adapt import INVERSION, check_domains, load_domains
from stylebridge.pipelines.serve.jobs import Progress
from stylebridge.registry.spec import parse_plugin_spec
from stylebridge.registry.weights import WeightsManager
from stylebridge.registry.weights_files import sha256_file

MAX_DOMAIN_NAME = 60        # a longer prompt is shortened (with an ellipsis) as its domain name
DOMAIN_KINDS = ("domain", "domain_method")       # weights catalogue kinds holding domains
#: the domains added from pages (trained on the spot, uploaded, rendered by a hyper-network)
#: offered at once: one more drops the one least recently used (added, dropped on a page
#: again, ticked in an open page, run; a trained one's file too), never the one just added;
#: the server's own (the preset's, installed ones, ``--method``) are never dropped
MAX_PAGE_DOMAINS = 32
#: hyper-networks uploaded and held (the page's prompt box uses the latest)
MAX_HYPERNETS = 2


def file_key(spec: str | Path, plugin: str) -> str | None:
    """The same domain whatever folder or name it was uploaded under: the plugin that loaded
    it (``stylespace:FILE`` and a bare ``FILE`` found to be StyleSpace are the same), the
    spec's options and the file's sha256 (``None`` when the spec names no readable file)."""
    try:
        parsed = parse_plugin_spec(str(spec), what="domain method")
        if parsed.path is None or not parsed.path.is_file():
            return None
        return f"{plugin}:{sorted(parsed.options.items())}:{sha256_file(parsed.path)}"
    except (OSError, StylebridgeError):
        return None  # the loader names the problem


class DomainShelf:
    """The domains of one back end, by the name the page shows."""

    lock: threading.RLock
    device: torch.device
    generator: Any
    domains: dict[str, DomainMethod]
    domain_random: dict[str, bool]
    domain_sources: dict[str, str]
    #: :func:`file_key` → name, so that a file dropped twice is offered once
    domain_keys: dict[str, str]
    hypernets: dict[str, DomainMethod]
    hypernet_random: dict[str, bool]
    #: text domains trained here, by name: their files
    domain_files: dict[str, Path]
    #: the server's own domains (never dropped); ``None`` while they are being loaded
    fixed_domains: frozenset[str] | None = None
    #: every domain offered, least recently used first (:meth:`touch_domains`)
    domain_used: dict[str, None]
    #: guards :attr:`domain_used` alone (held briefly: the page's timer touches it while a
    #: run holds :attr:`lock`)
    used_lock: threading.Lock

    def stop_check(self) -> None:
        raise NotImplementedError

    def domain_choices(self) -> list[str]:
        return list(self.domains)

    def _installed_domains(self) -> list[str]:
        manager = WeightsManager()
        found = []
        for entry in manager.entries.values():
            if entry.kind in DOMAIN_KINDS and manager.installed(entry.name):
                found.append(f"{entry.plugin}:{manager.path(entry.name)}")
        return found

    def _add_domain(self, name: str, method: DomainMethod, random: bool, source: str) -> str:
        """Offer ``method`` under ``name`` (a prompt, a file stem), made unique and at most
        :data:`MAX_DOMAIN_NAME` characters: a 300-character prompt as a checkbox label, a
        table row and a grid label pushed the page's columns off the screen."""
        name = " ".join(name.split())
        if len(name) > MAX_DOMAIN_NAME:
            name = name[:MAX_DOMAIN_NAME - 1].rstrip() + "…"
        unique, k = name, 2
        while unique in self.domains or unique == INVERSION:
            unique, k = f"{name}-{k}", k + 1
        self.domains[unique] = method
        self.domain_random[unique] = random
        self.domain_sources[unique] = source
        self.touch_domains([unique])
        self._trim_domains()
        return unique

    def touch_domains(self, names: Iterable[str]) -> None:
        """Mark the offered domains among ``names`` as used now: the domains a page has
        ticked (and sends with each request and each tick of its timer), a run's, a file
        dropped again.  :meth:`_trim_domains` drops the least recently used first."""
        with self.used_lock:
            for name in names:
                if name in self.domains:
                    self.domain_used.pop(name, None)
                    self.domain_used[name] = None

    def _trim_domains(self) -> None:
        """Drop the least recently used domains added from pages beyond
        :data:`MAX_PAGE_DOMAINS` (the one just added is the most recently used: never)."""
        if self.fixed_domains is None:  # the server's own, while they load
            return
        fixed = self.fixed_domains
        with self.used_lock:  # (one offered but never marked: the least recently used)
            order = [*(n for n in self.domains if n not in self.domain_used), *self.domain_used]
        added = [name for name in order if name in self.domains and name not in fixed]
        for name in added[:max(0, len(added) - MAX_PAGE_DOMAINS)]:
            self.forget_domain(name)

    def forget_domain(self, name: str) -> None:
        """No longer offer the domain ``name``; a text domain trained here loses its file."""
        for table in (self.domains, self.domain_random, self.domain_sources):
            table.pop(name, None)
        with self.used_lock:
            self.domain_used.pop(name, None)
        for key in [key for key, value in self.domain_keys.items() if value == name]:
            del self.domain_keys[key]
        path = self.domain_files.pop(name, None)
        if path is not None:
            with contextlib.suppress(OSError):
                Path(path).unlink(missing_ok=True)

    def add_domain_file(self, spec: str | Path) -> str:
        """Load a domain checkpoint (``[NAME:]FILE``) as the CLI's ``--method`` does, check it
        against the generator and offer it; returns its name in the page."""
        self.stop_check()
        with self.lock:
            loaded, random = load_domains([str(spec)], self.device)
            check_domains(loaded.values(), self.generator)
            (name, method), = loaded.items()
            if method.text_conditioned and not method.text:
                self.hypernets.pop(name, None)  # the latest is last
                self.hypernets[name] = method
                self.hypernet_random[name] = random[name]
                for old in list(self.hypernets)[:-MAX_HYPERNETS]:
                    del self.hypernets[old], self.hypernet_random[old]
                return name
            # the same file dropped again (a new upload path each time): the domain offered
            # already, not a copy named NAME-2, and used now (not the next one dropped)
            key = file_key(spec, method.name)
            if key is not None and self.domain_keys.get(key) in self.domains:
                self.touch_domains([self.domain_keys[key]])
                return self.domain_keys[key]
            added = self._add_domain(name, method, random[name], str(spec))
            if key is not None:
                self.domain_keys[key] = added
            return added

    def _hyper_domain(self, prompt: str, progress: Progress) -> str:
        prompt = " ".join(prompt.split())
        if not prompt:
            raise StylebridgeError("the text prompt is empty: describe the target domain, "
                                   "e.g. \"a 3d render in the style of Pixar\"")
        with self.lock:
            name, net = list(self.hypernets.items())[-1]
            progress(0.0, f"{prompt!r} through hyper-network {name}")
            method = net.for_text(prompt).to(self.device).eval()
            return self._add_domain(prompt, method, self.hypernet_random[name],
                                    f"hyper-network {name} (no training)")


__all__ = ["DOMAIN_KINDS", "MAX_DOMAIN_NAME", "MAX_HYPERNETS", "MAX_PAGE_DOMAINS", "DomainShelf",
           "file_key"]
