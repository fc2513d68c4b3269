"""The weights manager: a cache of official checkpoints, downloaded or registered, and converted.

Layout under the cache home (``$STYLEBRIDGE_HOME``, else ``$XDG_CACHE_HOME/stylebridge``, else
``~/.cache/stylebridge``)::

    downloads/<filename>            the upstream file as published (``.part`` while downloading)
    weights/<name>.safetensors      converted to our format (when the entry has a converter)
    index.json                      what is installed: paths, size, sha256
    .install-*/                     a registration or conversion in progress; its files are
                                    moved into place only once everything succeeded

The manifest (``weights_manifest.json`` beside this module, data not code) lists
the checkpoints stylebridge supports: source, URL (``null`` for files hosted on
Google Drive, which users download themselves and add with
``stylebridge weights register NAME --from FILE``), size and sha256 where
published, the converter, and the licence.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from stylebridge.core.io import write_json
from stylebridge.errors import StylebridgeError

CHUNK = 1 << 20
STAGING_PREFIX = ".install-"  # folders under the cache home where an install is prepared
STALE_STAGING_S = 24 * 3600  # older staging folders are leftovers of a killed process
Progress = Callable[[int, int | None], None]  # (bytes so far, total or None)


class WeightsError(StylebridgeError):
    """A download, hash, registration or lookup problem."""


@dataclass(frozen=True)
class WeightsEntry:
    """One manifest entry."""

    name: str
    kind: str
    plugin: str
    filename: str
    converter: str | None = None
    url: str | None = None
    size: int | None = None
    sha256: str | None = None
    source: str = ""
    licence: str = ""
    convert_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WeightsEntry:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def default_home() -> Path:
    env = os.environ.get("STYLEBRIDGE_HOME", "").strip()
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "stylebridge"


def load_manifest() -> list[WeightsEntry]:
    text = resources.files("stylebridge.registry").joinpath("weights_manifest.json").read_text()
    return [WeightsEntry.from_dict(d) for d in json.loads(text)["weights"]]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _copy_hashing(src: Path, dst: Path) -> str:
    """Copy ``src`` to ``dst`` (flushed to disk) and return the sha256 of what was copied."""
    digest = hashlib.sha256()
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        for block in iter(lambda: fin.read(CHUNK), b""):
            digest.update(block)
            fout.write(block)
        fout.flush()
        os.fsync(fout.fileno())
    return digest.hexdigest()


class WeightsManager:
    """Downloads, registers, verifies and finds official checkpoints."""

    def __init__(self, home: str | Path | None = None,
                 manifest: Sequence[WeightsEntry] | None = None) -> None:
        self.home = Path(home) if home is not None else default_home()
        self.entries = {e.name: e for e in (manifest if manifest is not None else load_manifest())}

    # -- paths and index -----------------------------------------------------------------------
    @property
    def index_path(self) -> Path:
        return self.home / "index.json"

    def index(self) -> dict[str, dict[str, Any]]:
        if not self.index_path.is_file():
            return {}
        try:
            data = json.loads(self.index_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise WeightsError(f"weights index is unreadable ({exc}); delete it to start over",
                               path=self.index_path) from None
        return data if isinstance(data, dict) else {}

    def _record(self, name: str, record: dict[str, Any]) -> None:
        index = self.index()
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

    def path(self, name: str) -> Path:
        """The file to load for ``name`` (converted if it has a converter)."""
        record = self.installed(name)
        if record is None:
            raise WeightsError(self.missing_message(self.entry(name)))
        return Path(record.get("converted") or record["raw"])

    def missing_message(self, entry: WeightsEntry) -> str:
        """How to install ``entry``, listing first the entries its conversion reads that are
        not installed yet (``fse-ffhq`` needs ``psp-ffhq``), in the order to run them."""
        how = self.how_to_install(entry)
        needed = [dep for dep in self.prerequisites(entry) if self._raw_file(dep.name) is None]
        if not needed:
            return f"weights {entry.name!r} are not installed: {how}"
        steps = [self.how_to_install(dep) for dep in needed] + [how]
        names = " and ".join(repr(dep.name) for dep in needed)
        numbered = "; ".join(f"{i}) {step}" for i, step in enumerate(steps, 1))
        return (f"weights {entry.name!r} are not installed, and converting them needs {names} "
                f"first: {numbered}")

    @staticmethod
    def how_to_install(entry: WeightsEntry) -> str:
        """The one step that installs ``entry`` itself (see :meth:`missing_message`)."""
        if entry.url:
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

    def _raw_file(self, name: str) -> Path | None:
        """The installed upstream file of ``name``, when it is recorded and still there."""
        record = self.installed(name)
        raw = Path(record["raw"]) if record and record.get("raw") else None
        return raw if raw is not None and raw.is_file() else None

    def resolve(self, kind: str, plugin: str) -> Path | None:
        """The installed checkpoint for a plugin used without a path (``--encoder e4e``)."""
        for entry in self.entries.values():
            if entry.kind == kind and entry.plugin == plugin and self.installed(entry.name):
                return self.path(entry.name)
        return None

    def candidates(self, kind: str, plugin: str) -> list[WeightsEntry]:
        return [e for e in self.entries.values() if e.kind == kind and e.plugin == plugin]

    # -- download ------------------------------------------------------------------------------
    def fetch(self, name: str, *, progress: Progress | None = None, timeout: float = 60.0,
              convert: bool = True) -> Path:
        """Download (resuming a ``.part``), check size and sha256 where the manifest has them,
        rename, convert, record."""
        entry = self.entry(name)
        if not entry.url:
            raise WeightsError(self.missing_message(entry))
        self._check_before_install(entry, convert=convert)  # before a long download
        raw = self.home / "downloads" / entry.filename
        if not raw.is_file():
            self._download(entry, raw, progress=progress, timeout=timeout)
        # checked again when it was already there (an earlier download or registration)
        digest = self._check(entry, raw, advice="; delete it and run the fetch again")
        return self._install(entry, raw, convert=convert, digest=digest)

    def _download(self, entry: WeightsEntry, raw: Path, *, progress: Progress | None,
                  timeout: float) -> None:
        assert entry.url is not None
        raw.parent.mkdir(parents=True, exist_ok=True)
        part = raw.with_name(raw.name + ".part")
        have = part.stat().st_size if part.is_file() else 0
        request = urllib.request.Request(entry.url, headers={"User-Agent": "stylebridge"})
        if have:
            request.add_header("Range", f"bytes={have}-")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                status = getattr(resp, "status", 200)
                if have and status != 206:  # server ignored the range: start over
                    have = 0
                length = resp.headers.get("Content-Length")
                total = have + int(length) if length is not None else entry.size
                with open(part, "ab" if have else "wb") as fh:
                    done = have
                    while True:
                        block = resp.read(CHUNK)
                        if not block:
                            break
                        fh.write(block)
                        done += len(block)
                        if progress is not None:
                            progress(done, total)
        except urllib.error.HTTPError as exc:
            raise WeightsError(f"download of {entry.name} failed: HTTP {exc.code} {exc.reason} "
                               f"({entry.url})") from None
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            kept = part.stat().st_size if part.is_file() else 0
            raise WeightsError(f"download of {entry.name} interrupted after {kept} bytes ({reason}); "
                               "run the same command again to resume") from None
        size = part.stat().st_size
        if total is not None and size < total:
            raise WeightsError(f"download of {entry.name} interrupted after {size} of {total} bytes; "
                               "run the same command again to resume")
        self._check(entry, part, discard=True)
        os.replace(part, raw)

    def _check(self, entry: WeightsEntry, path: Path, *, digest: str | None = None,
               discard: bool = False, advice: str = "") -> str:
        """Check size and sha256 where the manifest has them; return the sha256.

        ``discard`` deletes a failing file (a corrupt download is not resumable); a user's
        file is never deleted. ``advice`` is added to the error.
        """
        tail = "; the file was discarded" if discard else advice
        size = path.stat().st_size
        if entry.size is not None and size != entry.size:
            if discard:
                path.unlink()
            raise WeightsError(f"{entry.name}: file has {size} bytes, expected {entry.size}{tail}",
                               path=path)
        digest = digest or sha256_file(path)
        if entry.sha256 is not None and digest != entry.sha256.lower():
            if discard:
                path.unlink()
            raise WeightsError(f"{entry.name}: sha256 {digest[:16]}… does not match the published "
                               f"{entry.sha256[:16]}…{tail}", path=path)
        return digest

    # -- registration --------------------------------------------------------------------------
    def register(self, name: str, source: str | Path, *, convert: bool = True,
                 copy: bool = True) -> Path:
        """Add a file the user already has (the common case for Google-Drive-hosted weights).

        The file is checked and converted from where it is; only when that succeeded are the
        copy (``downloads/<filename>``) and the converted file moved over the installed ones.
        A file that fails leaves the previous installation as it was, and nothing in the cache.
        """
        entry = self.entry(name)
        source = Path(source)
        if not source.is_file():
            raise WeightsError("no such file", path=source)
        raw = self.home / "downloads" / entry.filename
        if not copy:
            source = source.resolve()
            return self._install(entry, source, convert=convert,
                                 digest=self._check(entry, source))
        if raw.is_file() and source.resolve() == raw.resolve():  # the installed file itself
            return self._install(entry, raw, convert=convert, digest=self._check(entry, raw))
        self._check_before_install(entry, convert=convert)
        with self._staging() as staging:
            staged = staging / entry.filename
            try:
                digest = _copy_hashing(source, staged)
            except OSError as exc:
                raise WeightsError(f"cannot copy into the cache {self.home}: "
                                   f"{exc.strerror or exc}", path=source) from None
            self._check(entry, source, digest=digest)  # errors name the user's file
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
                 staged_raw: Path | None = None, staging: Path | None = None) -> Path:
        """Convert ``read_from`` (default ``raw``) into a staging folder, then move the staged
        files into place (``staged_raw`` over ``raw`` when given) and record them.

        Nothing installed changes until the conversion succeeded; the staging folder goes away
        whatever happens.
        """
        if staging is None:
            self._check_before_install(entry, convert=convert)
            with self._staging() as fresh:
                return self._install(entry, raw, convert=convert, digest=digest,
                                     read_from=read_from, staged_raw=staged_raw, staging=fresh)
        digest = digest or sha256_file(staged_raw or raw)
        size = (staged_raw or raw).stat().st_size
        staged_converted: Path | None = None
        if convert and entry.converter:
            from stylebridge.registry import get_registry

            converter = get_registry().get("converter", entry.converter).obj
            staged_converted = staging / f"{entry.name}.safetensors"
            converter.convert(read_from or raw, staged_converted, **self._convert_options(entry))
            if not staged_converted.is_file():
                raise WeightsError(f"converter {entry.converter!r} wrote no file",
                                   path=read_from or raw)
        # everything succeeded: replace the installed files
        if staged_raw is not None:
            raw.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged_raw, raw)
        converted: Path | None = None
        if staged_converted is not None:
            converted = self.home / "weights" / f"{entry.name}.safetensors"
            converted.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged_converted, converted)
        self._record(entry.name, {"raw": str(raw), "converted": str(converted) if converted else None,
                                  "sha256": digest, "size": size,
                                  "kind": entry.kind, "plugin": entry.plugin,
                                  "licence": entry.licence})
        return converted or raw

    def _convert_options(self, entry: WeightsEntry) -> dict[str, Any]:
        return {k: self._option(v) for k, v in entry.convert_options.items()}

    def _option(self, value: Any) -> Any:
        """``"@other-entry"`` in convert_options → that entry's installed upstream file."""
        if isinstance(value, str) and value.startswith("@"):
            other = value[1:]
            raw = self._raw_file(other)
            if raw is None:
                raise WeightsError(f"converting needs {other!r} first: "
                                   f"{self.missing_message(self.entry(other))}")
            return str(raw)
        return value

    def verify(self, names: Sequence[str] | None = None) -> dict[str, str]:
        """Re-hash installed files; ``{name: "ok" | reason}``."""
        out: dict[str, str] = {}
        index = self.index()
        for name in names or sorted(index):
            record = index.get(name)
            if record is None:
                out[name] = "not installed"
                continue
            raw = Path(record["raw"])
            if not raw.is_file():
                out[name] = f"missing file {raw}"
                continue
            digest = sha256_file(raw)
            entry = self.entries.get(name)
            expected = (entry.sha256 if entry and entry.sha256 else record.get("sha256"))
            out[name] = "ok" if digest == expected else f"sha256 mismatch ({digest[:16]}…)"
        return out
