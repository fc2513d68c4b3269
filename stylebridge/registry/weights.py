"""The weights manager: a cache of official checkpoints, downloaded or registered, and converted.

Layout under the cache home (``$STYLEBRIDGE_HOME``, else ``$XDG_CACHE_HOME/stylebridge``, else
``~/.cache/stylebridge``)::

    downloads/<filename>            the upstream file as published (``.part`` while downloading,
                                    ``.lock`` while a process installs it: :mod:`~.weights_lock`)
    weights/<name>.safetensors      converted to our format (when the entry has a converter)
    index.json                      what is installed: paths, size, sha256 (hand edits are
                                    checked entry by entry: :mod:`~.weights_index`)
    .install-*/                     a registration or conversion in progress; its files are
                                    moved into place only once everything succeeded

The manifest (``weights_manifest.json`` beside this module, data not code) lists
the checkpoints stylebridge supports: their sources (plain URLs, Google Drive ids, Hugging
Face Hub mirrors, members of another entry's archive: :mod:`stylebridge.registry.sources`,
each with the upstream file that publishes it), size and sha256 where published, the
converter, the licence (``noncommercial`` ones must be accepted before download), and named
sets (``demo``). Without a published sha256 the hash recorded at the first install is the
reference afterwards (trust on first use): registering another file for an entry needs
``force``. A file the user already has is added with ``stylebridge weights register NAME --from
FILE``; an archive entry must be a zip or tar (as its file name says) holding what the catalogue
takes from it, a generator of a known resolution must convert to that resolution.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stylebridge.core.io import write_json
from stylebridge.errors import ConversionError
from stylebridge.registry import sources
from stylebridge.registry.weights_checks import (
    LicenceError,
    WeightsError,
    check_file,
    known_size_option,
    refuse_own_checkpoint,
)
from stylebridge.registry.weights_download import download
from stylebridge.registry.weights_entries import (
    NO_HOME,
    WeightsEntry,
    default_home,
    load_manifest,
    load_sets,
    short_path,
)
from stylebridge.registry.weights_files import copy_hashing as _copy_hashing
from stylebridge.registry.weights_files import sha256_file
from stylebridge.registry.weights_files import stamp_header as _stamp_header
from stylebridge.registry.weights_index import entry_message, record_problem
from stylebridge.registry.weights_index import verify as verify_entries
from stylebridge.registry.weights_lock import exclusive, require_writable

if TYPE_CHECKING:
    from stylebridge.registry.registry import Registry

STAGING_PREFIX = ".install-"  # folders under the cache home where an install is prepared
STALE_STAGING_S = 24 * 3600  # older staging folders are leftovers of a killed process
Progress = Callable[[int, int | None], None]  # (bytes so far, total or None)


class WeightsManager:
    """Downloads, registers, verifies and finds official checkpoints."""

    def __init__(self, home: str | Path | None = None,
                 manifest: Sequence[WeightsEntry] | None = None,
                 sets: Mapping[str, Sequence[str]] | None = None,
                 registry: Registry | None = None) -> None:
        #: the cache folder; ``None``: :func:`default_home`, looked up when first needed, so
        #: that a command that does not use the cache runs without a home folder
        self._home = Path(home) if home is not None else None
        #: where the converters come from (``None``: the installed plugins)
        self.registry = registry
        self.entries = {e.name: e for e in (manifest if manifest is not None else load_manifest())}
        self.sets = ({k: list(v) for k, v in sets.items()} if sets is not None
                     else load_sets() if manifest is None else {})
        self._domains_seen: dict[str, list[str]] = {}  # sha256 → StyleDomain domains listed
        self._add_archive_domains()

    def _add_archive_domains(self) -> None:
        """Domains found in an installed StyleDomain archive that the manifest does not list
        become entries too (listed when the archive was installed; same licence)."""
        try:
            index = self.index()
        except WeightsError:
            return  # reported by whichever command reads the index
        for archive in [e for e in self.entries.values() if e.kind == "archive"]:
            for name in (index.get(archive.name) or {}).get("domains") or []:
                if not isinstance(name, str) or not name or name in self.entries:
                    continue
                self.entries[name] = WeightsEntry(
                    name=name, kind="domain_method", plugin="stylespace",
                    converter="styledomain", filename=f"styledomain-{name}.pt",
                    source=f"a StyleSpace domain found in the installed {archive.name}",
                    licence=archive.licence, noncommercial=archive.noncommercial,
                    sources=({"type": "archive", "entry": archive.name, "select": name,
                              "found_in": f"the member list of the installed {archive.name}"},))

    # -- paths and index -----------------------------------------------------------------------
    @property
    def home(self) -> Path:
        """The cache folder (:func:`default_home` unless given); :class:`WeightsError`
        (:data:`NO_HOME`) when there is none."""
        if self._home is None:
            self._home = default_home()
        return self._home

    @home.setter
    def home(self, value: str | Path) -> None:
        self._home = Path(value)

    @property
    def has_home(self) -> bool:
        """Whether there is a cache folder (``False``: no home folder to put it in, see
        :data:`NO_HOME`); without one nothing is installed, and installing is the error."""
        try:
            self.home  # noqa: B018
        except WeightsError:
            return False
        return True

    @property
    def index_path(self) -> Path:
        return self.home / "index.json"

    def _index_data(self) -> dict[str, Any]:
        """``index.json`` as it is, unusable entries included (kept when an entry is added);
        empty without a cache folder (:attr:`has_home`)."""
        if not self.has_home:
            return {}
        try:
            if not self.index_path.is_file():
                return {}
        except OSError as exc:  # a name too long, a loop of links: one short line
            raise WeightsError(f"{short_path(self.index_path)}: weights index is unreadable "
                               f"({exc.strerror or exc}); set STYLEBRIDGE_HOME to a usable "
                               "folder") from None
        try:
            data = json.loads(self.index_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            reason = (exc.strerror if isinstance(exc, OSError) else None) or exc
            raise WeightsError(f"weights index is unreadable ({reason}); delete it to start over",
                               path=self.index_path) from None
        if not isinstance(data, dict):
            raise WeightsError(f"weights index is {json.dumps(data)[:40]}, not a JSON object; "
                               "delete it to start over", path=self.index_path)
        return data

    def index(self) -> dict[str, dict[str, Any]]:
        """The usable entries of ``index.json`` (see :meth:`index_problems` for the others)."""
        return {k: v for k, v in self._index_data().items() if record_problem(v) is None}

    def index_problems(self) -> dict[str, str]:
        """``{name: one line naming index.json, the entry and its problem}``."""
        return {k: entry_message(self.index_path, k, problem)
                for k, v in self._index_data().items()
                if (problem := record_problem(v)) is not None}

    def recorded_sha256(self, name: str) -> str | None:
        """The sha256 recorded at the first install of ``name`` (the trust-on-first-use
        reference), read even from an entry that is otherwise unusable."""
        record = self._index_data().get(name)
        value = record.get("sha256") if isinstance(record, dict) else None
        return value.lower() if isinstance(value, str) and value else None

    def _record(self, name: str, record: dict[str, Any]) -> None:
        with exclusive(self.home / "index.json.lock"):  # another process may add its entry
            index = self._index_data()
            index[name] = record
            write_json(self.index_path, index)

    def entry(self, name: str) -> WeightsEntry:
        if name in self.entries:
            return self.entries[name]
        import difflib

        close = difflib.get_close_matches(name, list(self.entries), n=2, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise WeightsError(f"unknown weights {name!r}{hint} (see `stylebridge weights list`)")

    def installed(self, name: str) -> dict[str, Any] | None:
        record = self.index().get(name)
        if record is None:
            return None
        usable = record.get("converted") or record.get("raw")
        return record if usable and Path(usable).is_file() else None

    def installed_file(self, name: str) -> Path:
        """The installed file of ``name``: converted, else the upstream file as published."""
        record = self.installed(name)
        if record is None:
            entry = self.entry(name)
            problem = self.index_problems().get(name)
            raise WeightsError(problem or self.missing_message(entry))
        return Path(record.get("converted") or record["raw"])

    def path(self, name: str) -> Path:
        """The file to load for ``name``: converted if it has a converter (one installed with
        ``--no-convert`` is a one-line error saying how to convert it)."""
        path = self.installed_file(name)
        problem = self._unconverted(name)
        if problem:
            raise WeightsError(problem)
        return path

    def _unconverted(self, name: str) -> str | None:
        """Why ``name`` cannot be loaded although installed: its entry has a converter and
        only the upstream file is there (``--no-convert``)."""
        entry = self.entries.get(name)
        record = self.installed(name)
        if entry is None or not entry.converter or record is None or record.get("converted"):
            return None
        return (f"weights {name!r} are installed as the upstream file only ({record['raw']}, "
                "registered or fetched with --no-convert), which stylebridge does not load; "
                f"convert it with `stylebridge weights register {name} --from {record['raw']}` "
                "(without --no-convert)")

    def missing_message(self, entry: WeightsEntry) -> str:
        """How to install ``entry``, listing first the entries its conversion reads that are
        not installed yet (``fse-ffhq`` needs ``psp-ffhq``), in the order to run them."""
        if not self.has_home:
            return f"weights {entry.name!r} are not installed: {NO_HOME}"
        how = self.how_to_install(entry)
        needed = [dep for dep in self.prerequisites(entry) if self.raw_file(dep.name) is None]
        if not needed:
            return f"weights {entry.name!r} are not installed: {how}"
        if entry.all_sources and all(dep.all_sources for dep in needed):  # fetch does it all
            names = ", ".join(dep.name for dep in needed)
            return f"weights {entry.name!r} are not installed: {how} (it fetches {names} first)"
        steps = [self.how_to_install(dep) for dep in needed] + [how]
        names = " and ".join(repr(dep.name) for dep in needed)
        numbered = "; ".join(f"{i}) {step}" for i, step in enumerate(steps, 1))
        return (f"weights {entry.name!r} are not installed, and converting them needs {names} "
                f"first: {numbered}")

    @staticmethod
    def how_to_install(entry: WeightsEntry) -> str:
        """The one step that installs ``entry`` itself (see :meth:`missing_message`)."""
        if entry.all_sources:
            return f"run `stylebridge weights fetch {entry.name}`"
        return (f"download {entry.filename} from {entry.source} and run "
                f"`stylebridge weights register {entry.name} --from FILE`")

    def prerequisites(self, entry: WeightsEntry) -> list[WeightsEntry]:
        """The entries whose upstream files ``entry``'s conversion reads (``"@name"`` in its
        convert_options), theirs first, each once."""
        out: list[WeightsEntry] = []

        def visit(e: WeightsEntry, path: tuple[str, ...]) -> None:
            for value in e.convert_options.values():
                if not (isinstance(value, str) and value.startswith("@")):
                    continue
                dep = self.entries.get(value[1:])
                if dep is None or dep.name in path or dep in out:
                    continue  # an unknown name is reported when converting
                visit(dep, (*path, dep.name))
                out.append(dep)

        visit(entry, (entry.name,))
        return out

    def raw_file(self, name: str) -> Path | None:
        """The installed upstream file of ``name``, when it is recorded and still there."""
        record = self.installed(name)
        raw = Path(record["raw"]) if record and record.get("raw") else None
        return raw if raw is not None and raw.is_file() else None

    def resolve(self, kind: str, plugin: str) -> Path | None:
        """The installed checkpoint for a plugin used without a path (``--encoder e4e``); an
        entry installed unconverted only is a one-line error saying how to convert it."""
        unconverted = None
        for entry in self.entries.values():
            if entry.kind == kind and entry.plugin == plugin and self.installed(entry.name):
                unconverted = unconverted or self._unconverted(entry.name)
                if not self._unconverted(entry.name):
                    return self.path(entry.name)
        if unconverted:
            raise WeightsError(unconverted)
        return None

    def candidates(self, kind: str, plugin: str) -> list[WeightsEntry]:
        return [e for e in self.entries.values() if e.kind == kind and e.plugin == plugin]

    # -- download ------------------------------------------------------------------------------
    def licence_gate(self, names: Sequence[str]) -> list[WeightsEntry]:
        """The entries a fetch of ``names`` downloads (theirs prerequisites and archives
        included) whose licence forbids commercial use: shown and accepted before download."""
        out: list[WeightsEntry] = []

        def visit(entry: WeightsEntry) -> None:
            deps = self.prerequisites(entry) + [self.entry(src["entry"]) for src in entry.all_sources
                                               if src.get("type") == "archive"]
            for dep in deps:
                if self.raw_file(dep.name) is None:
                    visit(dep)
            if entry.noncommercial and entry not in out:
                out.append(entry)

        for name in names:
            visit(self.entry(name))
        return out

    def set_members(self, set_name: str) -> list[str]:
        """The entry names of a named set (``demo``: what ``stylebridge demo`` needs)."""
        if set_name not in self.sets:
            known = ", ".join(sorted(self.sets)) or "none"
            raise WeightsError(f"unknown set {set_name!r} (known: {known})")
        return list(self.sets[set_name])

    def fetch(self, name: str, *, progress: Progress | None = None, timeout: float = 60.0,
              convert: bool = True, accept_licence: bool = False, force: bool = False,
              on_wait: Callable[[str], None] | None = None) -> Path:
        """Download from the first source that works (resuming a ``.part``), fetch what the
        conversion reads first, check size, sha256 (published, else the one recorded at the
        first install) and what the file is, rename, convert, record. A non-commercial licence
        must be accepted. ``force`` downloads again and makes the new file's sha256 the
        reference (when the file recorded first was bad). One process at a time installs an
        entry: another waits (``on_wait`` is told) and then finds it installed."""
        entry = self.entry(name)
        if not entry.all_sources:
            raise WeightsError(self.missing_message(entry))
        gated = self.licence_gate([name])
        if gated and not accept_licence:
            first = gated[0]
            raise LicenceError(f"{first.name} is under {first.licence}; accept it with "
                               "--accept-licence (or answer yes when asked) to download it")
        for dep in self.prerequisites(entry):  # fse-ffhq reads psp-ffhq's upstream file
            if self.raw_file(dep.name) is None:
                self.fetch(dep.name, progress=progress, timeout=timeout, convert=convert,
                           accept_licence=accept_licence, on_wait=on_wait)
        self._check_before_install(entry, convert=convert)  # before a long download
        raw = self.home / "downloads" / entry.filename
        require_writable(self.home, raw.parent)
        lock = raw.with_name(raw.name + ".lock")
        tell = (lambda: on_wait(f"waiting for another stylebridge process that is installing "
                                f"{name} ({lock})")) if on_wait is not None else None
        with exclusive(lock, on_wait=tell):
            return self._fetch_locked(entry, raw, progress=progress, timeout=timeout,
                                      convert=convert, accept_licence=accept_licence,
                                      force=force)

    def _fetch_locked(self, entry: WeightsEntry, raw: Path, *, progress: Progress | None,
                      timeout: float, convert: bool, accept_licence: bool, force: bool) -> Path:
        name = entry.name
        recorded = None if force else self.recorded_sha256(name)
        hint = (f"; if the file installed first was bad, run `stylebridge weights fetch {name} "
                "--force` (the new file's sha256 becomes the reference)")
        known = self.index().get(name)
        if raw.is_file() and not force and known is None:
            # left by a fetch that failed after the download (an older version kept files
            # that did not convert): checked like a download, discarded if bad, fetched again
            with suppress(WeightsError):
                self.check(entry, raw, discard=True, recorded=recorded)
        used = None
        if force or not raw.is_file():
            used = download(self, entry, raw, progress=progress, timeout=timeout,
                            accept_licence=accept_licence, recorded=recorded,
                            replace_hint=hint)
        # checked again when it was already there (an earlier download or registration)
        digest = self.check(entry, raw, advice="; delete it and run the fetch again",
                            recorded=recorded, replace_hint=hint)
        if used is None:  # already downloaded (or registered) earlier: keep what it was
            used = (known or {}).get("source")
        try:
            return self._install(entry, raw, convert=convert, digest=digest, source=used,
                                 licence_accepted=accept_licence or not entry.noncommercial)
        except ConversionError as exc:
            if known is not None and known.get("sha256") == digest:
                raise  # the installed file itself: the user's to replace (register --force)
            raw.unlink(missing_ok=True)  # a bad download: the next fetch downloads it again
            raise type(exc)(f"{exc.message}; the downloaded {raw.name} was discarded: "
                            "`stylebridge weights fetch` downloads it again", path=exc.path
                            ) from None

    def missing_from_set(self, set_name: str) -> list[str]:
        """The entries of a named set that are not installed yet, in order."""
        return [n for n in self.set_members(set_name) if self.installed(n) is None]

    def fetch_set(self, set_name: str, **kwargs: Any) -> list[Path]:
        """:meth:`fetch` every entry of a named set that is not installed yet, in order;
        returns the paths of the whole set."""
        for name in self.missing_from_set(set_name):
            self.fetch(name, **kwargs)
        return [self.installed_file(name) for name in self.set_members(set_name)]

    def check(self, entry: WeightsEntry, path: Path, *, digest: str | None = None,
               discard: bool = False, advice: str = "", recorded: str | None = None,
               replace_hint: str = "") -> str:
        """:func:`~.weights_checks.check_file` with the archive sources that take members
        from ``entry``; the StyleDomain domains it lists are kept for :meth:`_install`."""
        taken = [src for e in self.entries.values() for src in e.all_sources
                 if src.get("type") == "archive" and src.get("entry") == entry.name]
        digest, domains = check_file(entry, path, digest=digest, discard=discard, advice=advice,
                                     recorded=recorded, taken=taken,
                                     replace_hint=replace_hint)
        if domains is not None:
            self._domains_seen[digest] = domains
        return digest

    # -- registration --------------------------------------------------------------------------
    def register(self, name: str, source: str | Path, *, convert: bool = True,
                 copy: bool = True, force: bool = False) -> Path:
        """Add a file the user already has (the common case for Google-Drive-hosted weights).

        The file is checked and converted from where it is; only when that succeeded are the
        copy (``downloads/<filename>``) and the converted file moved over the installed ones.
        A file that fails leaves the previous installation as it was, and nothing in the cache.
        A file other than the one registered first (its sha256 is the reference) needs
        ``force``; its sha256 becomes the reference.
        """
        entry = self.entry(name)
        source = Path(source)
        if not source.is_file():
            raise WeightsError("no such file", path=source)
        refuse_own_checkpoint(entry, source)
        raw = self.home / "downloads" / entry.filename
        require_writable(self.home, raw.parent)
        with exclusive(raw.with_name(raw.name + ".lock")):  # not while a fetch installs it
            return self._register(entry, source, raw, convert=convert, copy=copy, force=force)

    def _register(self, entry: WeightsEntry, source: Path, raw: Path, *, convert: bool,
                  copy: bool, force: bool) -> Path:
        recorded = None if force else self.recorded_sha256(entry.name)
        hint = ("; to register this file instead, pass --force (its sha256 becomes the "
                "reference)")
        if not copy:
            source = source.resolve()
            return self._install(entry, source, convert=convert, digest=self.check(
                entry, source, recorded=recorded, replace_hint=hint))
        if raw.is_file() and source.resolve() == raw.resolve():  # the installed file itself
            return self._install(entry, raw, convert=convert, digest=self.check(
                entry, raw, recorded=recorded, replace_hint=hint))
        self._check_before_install(entry, convert=convert)
        with self._staging() as staging:
            staged = staging / entry.filename
            try:
                digest = _copy_hashing(source, staged)
            except OSError as exc:
                raise WeightsError(f"cannot copy into the cache {self.home}: "
                                   f"{exc.strerror or exc}", path=source) from None
            # errors name the user's file
            self.check(entry, source, digest=digest, recorded=recorded, replace_hint=hint)
            return self._install(entry, raw, convert=convert, digest=digest, read_from=source,
                                 staged_raw=staged, staging=staging)

    def _check_before_install(self, entry: WeightsEntry, *, convert: bool) -> None:
        """Fail before any work when the index is unreadable or a prerequisite is missing."""
        self.index()
        if convert and entry.converter:
            self._convert_options(entry)

    @contextmanager
    def _staging(self) -> Iterator[Path]:
        """A fresh folder under the cache home (same file system, so moves out of it are
        atomic renames), removed afterwards whatever happened."""
        self.home.mkdir(parents=True, exist_ok=True)
        now = time.time()
        for old in self.home.glob(f"{STAGING_PREFIX}*"):
            try:
                if old.is_dir() and now - old.stat().st_mtime > STALE_STAGING_S:
                    shutil.rmtree(old, ignore_errors=True)
            except OSError:
                pass
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.home))
        try:
            yield staging
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _install(self, entry: WeightsEntry, raw: Path, *, convert: bool,
                 digest: str | None = None, read_from: Path | None = None,
                 staged_raw: Path | None = None, staging: Path | None = None,
                 source: str | None = None, licence_accepted: bool | None = None) -> Path:
        """Convert ``read_from`` (default ``raw``) into a staging folder, then move the staged
        files into place (``staged_raw`` over ``raw`` when given) and record them. The
        converted file's header records the entry, its licence and where the file came from.
        Without ``convert`` the file is still converted as a check when its prerequisites are
        there (what it is, its resolution), and a converted file of an earlier install goes.

        Nothing installed changes until the conversion succeeded; the staging folder goes away
        whatever happens.
        """
        if staging is None:
            self._check_before_install(entry, convert=convert)
            with self._staging() as fresh:
                return self._install(entry, raw, convert=convert, digest=digest,
                                     read_from=read_from, staged_raw=staged_raw, staging=fresh,
                                     source=source, licence_accepted=licence_accepted)
        digest = digest or sha256_file(staged_raw or raw)
        size = (staged_raw or raw).stat().st_size
        staged_converted: Path | None = None
        options = self._convert_options(entry) if convert and entry.converter else None
        if not convert and entry.converter:
            try:  # --no-convert: converted all the same as a check, when it can be; not kept
                options = self._convert_options(entry)
            except WeightsError:
                options = None  # a prerequisite is missing: the cheap checks only
        if options is not None:
            from stylebridge.registry import get_registry

            registry = self.registry or get_registry()
            converter = registry.get("converter", str(entry.converter)).obj
            staged_converted = staging / f"{entry.name}.safetensors"
            try:
                converter.convert(read_from or raw, staged_converted, **options)
            except ConversionError as exc:  # say which entry the file was taken for
                raise type(exc)(f"not usable as {entry.name!r}: {exc.message}",
                                path=exc.path) from None
            if not staged_converted.is_file():
                raise WeightsError(f"converter {entry.converter!r} wrote no file",
                                   path=read_from or raw)
        if convert and staged_converted is not None:
            _stamp_header(staged_converted, {
                "name": entry.name, "licence": entry.licence, "noncommercial": entry.noncommercial,
                "licence_accepted": licence_accepted, "source": source or "registered by the user",
                "upstream_file": entry.filename, "upstream_sha256": digest,
                "sha256_published": entry.sha256 is not None})
        # everything succeeded: replace the installed files
        if staged_raw is not None:
            raw.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged_raw, raw)
        converted: Path | None = None
        if convert and staged_converted is not None:
            converted = self.home / "weights" / f"{entry.name}.safetensors"
            converted.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged_converted, converted)
        elif entry.converter:  # an earlier install's converted file is not this file's
            (self.home / "weights" / f"{entry.name}.safetensors").unlink(missing_ok=True)
        listed: dict[str, Any] = {}
        if entry.kind == "archive" and entry.plugin == "styledomain":
            listed["domains"] = self._domains_seen.pop(digest, None) or \
                sources.styledomain_domains(raw)
        self._record(entry.name, {**listed,
                                  "raw": str(raw), "converted": str(converted) if converted else None,
                                  "sha256": digest, "size": size,
                                  "kind": entry.kind, "plugin": entry.plugin,
                                  "licence": entry.licence, "source": source or "registered",
                                  "sha256_published": entry.sha256 is not None})
        return converted or raw

    def _convert_options(self, entry: WeightsEntry) -> dict[str, Any]:
        """The manifest's convert_options, over ``expect_size`` where
        :data:`~stylebridge.registry.weights_checks.KNOWN_SIZES` knows the resolution."""
        options = {k: self._option(v) for k, v in entry.convert_options.items()}
        return {**known_size_option(entry, self.registry), **options}

    def _option(self, value: Any) -> Any:
        """``"@other-entry"`` in convert_options → that entry's installed upstream file."""
        if isinstance(value, str) and value.startswith("@"):
            other = value[1:]
            raw = self.raw_file(other)
            if raw is None:
                raise WeightsError(f"converting needs {other!r} first: "
                                   f"{self.missing_message(self.entry(other))}")
            return str(raw)
        return value

    def verify(self, names: Sequence[str] | None = None, *,
               rehash: bool = True) -> dict[str, str]:
        """``{name: "ok" | every problem with its fix}``: :func:`~.weights_index.verify`."""
        return verify_entries(self, names, rehash=rehash)
