"""Where official checkpoints come from: the download back-ends of the weights manager.

A manifest entry lists one or more *sources*, tried in order until one delivers the file:

``{"type": "url", "url": ...}``
    a plain HTTP(S) URL, downloaded with ``Range`` requests so an interrupted transfer resumes.
``{"type": "gdrive", "id": ...}``
    a Google Drive file id. The request goes to ``$STYLEBRIDGE_GDRIVE_URL`` (default
    ``https://drive.google.com``) ``/uc?export=download&id=ID``; when Drive answers with its
    "cannot scan for viruses" confirm page or a quota page instead of the file, that page is
    read with ``gdown``'s parser (a lazy import: ``pip install 'stylebridge[weights]'``) and the
    confirmed URL downloaded (with cookies, resumable); a quota page becomes a one-line error.
``{"type": "hf", "repo": ..., "path": ..., "revision": "main", "repo_type": "model"}``
    a Hugging Face Hub mirror, through ``huggingface_hub.hf_hub_download`` (lazy import);
    ``$HF_ENDPOINT`` picks the Hub server.
``{"type": "archive", "entry": NAME, "select": ...}``
    a file inside another entry's archive (a ``.zip`` or ``.tar.gz`` that entry downloads).

Any url / gdrive / hf source may also carry ``"archive": FILENAME, "member": NAME``: the
download is that archive and the entry's file is its member ``NAME`` (matched by base name).
Every source records ``found_in``: the upstream repository and file that publishes it (with
the commit where one was checked). :func:`describe` names a source as the manifest has it,
:func:`served_by` as it was actually reached (``$STYLEBRIDGE_GDRIVE_URL``, ``$HF_ENDPOINT``).
"""

from __future__ import annotations

import http.client
import http.cookiejar
import os
import re
import shutil
import socket
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from stylebridge.errors import StylebridgeError

CHUNK = 1 << 20
#: the most bytes one network read waits for: each block is on disk before the next read, so
#: a transfer that stalls or is cut keeps what arrived (``read1`` returns what is there)
READ_BLOCK = 64 * 1024
Progress = Callable[[int, int | None], None]  # (bytes so far, total or None)
DRIVE_URL = "https://drive.google.com"
HF_URL = "https://huggingface.co"
SOURCE_TYPES = ("url", "gdrive", "hf", "archive")


class SourceError(StylebridgeError):
    """One source could not deliver its file (the next source is tried)."""


class UnreachableError(SourceError):
    """The source's server could not be reached at all (no network, DNS): nothing to resume."""

    def __init__(self, host: str, reason: object) -> None:
        self.host = host
        super().__init__(f"cannot reach {host} ({reason}); check the network connection")


def drive_base() -> str:
    """Where Google Drive requests go (``$STYLEBRIDGE_GDRIVE_URL``; tests point it at a local
    server)."""
    return os.environ.get("STYLEBRIDGE_GDRIVE_URL", "").strip().rstrip("/") or DRIVE_URL


def describe(source: Mapping[str, Any]) -> str:
    """One phrase naming a source, e.g. ``Google Drive id 1cUv…`` (no network)."""
    kind = source.get("type")
    if kind == "url":
        text = f"URL {source['url']}"
    elif kind == "gdrive":
        text = f"Google Drive id {source['id']}"
    elif kind == "hf":
        text = f"Hugging Face {source['repo']}/{source['path']}"
    elif kind == "archive":
        text = f"{source.get('select')!r} inside {source['entry']}"
    else:
        text = f"unknown source type {kind!r}"
    if source.get("member"):
        text += f" (member {source['member']} of {source.get('archive')})"
    return text


def served_by(source: Mapping[str, Any]) -> str:
    """:func:`describe`, naming the server actually asked where an environment variable moved
    it (``$STYLEBRIDGE_GDRIVE_URL``, ``$HF_ENDPOINT``): what ``index.json`` and the converted
    header record as the file's source."""
    kind = source.get("type")
    text = describe(source)
    if kind == "gdrive" and drive_base() != DRIVE_URL:
        query = urllib.parse.urlencode({"export": "download", "id": source["id"]})
        text = (f"URL {drive_base()}/uc?{query} ($STYLEBRIDGE_GDRIVE_URL, in place of "
                f"{text})")
    elif kind == "hf" and _hf_endpoint() != HF_URL:
        text = f"{text} from {_hf_endpoint()} ($HF_ENDPOINT)"
    return text


def _hf_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "").strip().rstrip("/") or HF_URL


def label(source: Mapping[str, Any]) -> str:
    """A short tag for tables: ``url``, ``drive``, ``hub``, ``archive``."""
    return {"url": "url", "gdrive": "drive", "hf": "hub", "archive": "archive"}.get(
        str(source.get("type")), "?")


# ---------------------------------------------------------------------------------------------
# Plain HTTP with ranges


def http_download(url: str, part: Path, *, progress: Progress | None, timeout: float,
                  expected: int | None = None, opener: urllib.request.OpenerDirector | None = None,
                  what: str = "") -> Any:
    """Append ``url`` to ``part`` (resuming with ``Range`` when ``part`` has bytes); returns the
    response headers. Raises :class:`SourceError` with a one-line reason."""
    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "stylebridge"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    open_url = opener.open if opener is not None else urllib.request.urlopen
    total: int | None = expected
    started = False  # the server answered: a failure from now on is a cut, not "unreachable"
    try:
        with open_url(request, timeout=timeout) as resp:
            started = True
            status = getattr(resp, "status", 200)
            if have and status != 206:  # server ignored the range: start over
                have = 0
            length = resp.headers.get("Content-Length")
            total = have + int(length) if length is not None else expected
            read = getattr(resp, "read1", resp.read)
            with open(part, "ab" if have else "wb") as fh:
                done = have
                while True:
                    block = read(READ_BLOCK)
                    if not block:
                        break
                    fh.write(block)
                    done += len(block)
                    if progress is not None:
                        progress(done, total)
            headers = resp.headers
    except urllib.error.HTTPError as exc:
        raise SourceError(f"HTTP {exc.code} {exc.reason} ({url})") from None
    except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        kept = part.stat().st_size if part.is_file() else 0
        if isinstance(reason, TimeoutError) and (started or kept):
            raise SourceError(f"timed out after {kept} bytes (nothing arrived for "
                              f"{timeout:g} s); run the same command again to resume") from None
        if kept == 0 and not started:  # nothing came: an unreachable server
            raise UnreachableError(str(urllib.parse.urlsplit(url).hostname), reason) from None
        raise SourceError(f"interrupted after {kept} bytes ({reason or type(exc).__name__}); "
                          "run the same command again to resume") from None
    size = part.stat().st_size
    if total is not None and size < total:
        raise SourceError(f"interrupted after {size} of {total} bytes; run the same command "
                          "again to resume")
    return headers


def _is_html(part: Path) -> bool:
    with open(part, "rb") as fh:
        head = fh.read(512).lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html"))


def gdrive_download(file_id: str, part: Path, *, progress: Progress | None,
                    timeout: float) -> None:
    """Download a Google Drive file by id into ``part`` (resumable), passing Drive's confirm
    page (large files) through ``gdown``'s parser; a quota or error page is a
    :class:`SourceError`."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    query = urllib.parse.urlencode({"export": "download", "id": file_id})
    url = f"{drive_base()}/uc?{query}"
    confirm = part.with_name(part.name + ".confirm")  # the confirmed URL of a resumed download
    if part.is_file() and part.stat().st_size and confirm.is_file():
        url = confirm.read_text().strip()
    for _ in range(3):  # the file, or a confirm page leading to it
        http_download(url, part, progress=progress, timeout=timeout, opener=opener)
        if not _is_html(part):
            confirm.unlink(missing_ok=True)
            return
        page = part.read_text(errors="replace")
        part.unlink()
        try:
            from gdown.download import get_url_from_gdrive_confirmation
            from gdown.exceptions import FileURLRetrievalError
        except ImportError:
            raise SourceError("Google Drive answered with a confirm page; reading it needs "
                              "gdown (pip install 'stylebridge[weights]')") from None
        try:
            url = get_url_from_gdrive_confirmation(page)
        except FileURLRetrievalError as exc:
            reason = " ".join(str(exc).split())
            raise SourceError(f"Google Drive refused the download: {reason}") from None
        url = urllib.parse.urljoin(drive_base() + "/", url)
        confirm.write_text(url)
    raise SourceError("Google Drive kept answering with confirm pages")


def hf_download(source: Mapping[str, Any], dest: Path, *, timeout: float) -> None:
    """Fetch one file from a Hugging Face Hub repository into ``dest`` (``$HF_ENDPOINT`` picks
    the server)."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise SourceError("Hugging Face mirror needs huggingface_hub "
                          "(pip install 'stylebridge[weights]')") from None
    host = urllib.parse.urlsplit(_hf_endpoint()).hostname or "huggingface.co"
    try:  # the hub client retries for half a minute when there is no network: ask DNS first
        socket.getaddrinfo(host, None)
    except OSError as exc:
        raise UnreachableError(host, exc) from None
    local = dest.parent / f".hf-{dest.name}"
    try:
        got = hf_hub_download(repo_id=source["repo"], filename=source["path"],
                              revision=source.get("revision", "main"),
                              repo_type=source.get("repo_type", "model"), local_dir=local,
                              endpoint=os.environ.get("HF_ENDPOINT") or None,
                              etag_timeout=timeout)
    except Exception as exc:  # the hub client raises many types; one line for each
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise SourceError(f"Hugging Face download failed: {reason}") from None
    os.replace(got, dest)
    shutil.rmtree(local, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Archives

_MODELS_RX = re.compile(r"(?:^|/)models/models_(\d+)\.pt$")


def _styledomain_member(names: list[str], domain: str) -> str | None:
    """SimilarDomains' layout (``examples/draw_util.py`` + ``core/utils/reading_weights.py``):
    ``<domain>_<suffix>/models/models_<step>.pt``; the latest step wins."""
    best: tuple[int, str] | None = None
    for name in names:
        match = _MODELS_RX.search(name)
        if not match:
            continue
        parts = name.split("/")
        run = parts[-3] if len(parts) >= 3 else ""
        if run.rsplit("_", 1)[0] != domain:
            continue
        step = int(match.group(1))
        if best is None or step > best[0]:
            best = (step, name)
    return best[1] if best else None


def archive_members(archive: Path) -> list[str]:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            return [i.filename for i in zf.infolist() if not i.is_dir()]
    try:
        with tarfile.open(archive, "r:*") as tf:
            return [m.name for m in tf.getmembers() if m.isfile()]
    except tarfile.TarError as exc:
        raise SourceError(f"{archive.name} is neither a zip nor a tar archive ({exc})") from None


def styledomain_domains(archive: Path) -> list[str]:
    """The domain names in a SimilarDomains checkpoint archive."""
    names = set()
    for name in archive_members(archive):
        parts = name.split("/")
        if _MODELS_RX.search(name) and len(parts) >= 3:
            names.add(parts[-3].rsplit("_", 1)[0])
    return sorted(names)


def extract_member(archive: Path, dest: Path, *, member: str | None = None,
                   styledomain: str | None = None) -> str:
    """Copy one file out of ``archive`` into ``dest`` (nothing is extracted to other paths);
    returns the member's name in the archive."""
    names = archive_members(archive)
    if styledomain is not None:
        chosen = _styledomain_member(names, styledomain)
        wanted = f"domain {styledomain!r} (<name>_*/models/models_N.pt)"
    else:
        assert member is not None
        chosen = next((n for n in names if n.rsplit("/", 1)[-1] == member), None)
        wanted = repr(member)
    if chosen is None:
        raise SourceError(f"{archive.name} has no {wanted}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf, zf.open(chosen) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, CHUNK)
    else:
        with tarfile.open(archive, "r:*") as tf:
            src = tf.extractfile(chosen)
            if src is None:
                raise SourceError(f"{archive.name}: {chosen} is not a regular file")
            with src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, CHUNK)
    return chosen
