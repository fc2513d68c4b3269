"""What the weights manager checks in a file before it is installed: size and sha256
(published, else the one recorded at the first install), that an archive entry is the archive
it names, and that a registered file is not a stylebridge checkpoint in disguise. The errors of
the weights manager live here too (:mod:`stylebridge.registry.weights` re-exports them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stylebridge.errors import StylebridgeError
from stylebridge.registry import sources
from stylebridge.registry.weights_files import (
    archive_format,
    expected_archive_format,
    is_torch_zip,
    sha256_file,
    upstream_problem,
)

if TYPE_CHECKING:
    from stylebridge.registry.registry import Registry
    from stylebridge.registry.weights import WeightsEntry


#: the resolution of generator entries that state it (name, upstream file) or are 1024 px by
#: definition (FFHQ config-f): conversion checks it (``expect_size``) unless convert_options do
KNOWN_SIZES = {"stylegan2-ffhq-1024": 1024, "stylegan2-ada-ffhq-1024": 1024,
               "stylegan2-ffhq-config-f": 1024,
               # ZPdesu/MindTheGap options/MTG_options.py: --size 1024 with ffhq.pt
               "mindthegap-ffhq": 1024}


def known_size_option(entry: WeightsEntry, registry: Registry | None = None) -> dict[str, int]:
    """``{"expect_size": N}`` when :data:`KNOWN_SIZES` knows the entry's resolution and its
    converter (of ``registry``, default: the installed plugins) takes that option, else ``{}``."""
    size = KNOWN_SIZES.get(entry.name)
    if size is None or not entry.converter:
        return {}
    from stylebridge.registry import get_registry

    converter = (registry or get_registry()).get("converter", entry.converter).obj
    return {"expect_size": size} if "expect_size" in converter.accepted_options else {}


class WeightsError(StylebridgeError):
    """A download, hash, registration or lookup problem."""


class LicenceError(WeightsError):
    """A non-commercial licence was not accepted."""


def refuse_own_checkpoint(entry: WeightsEntry, source: Path) -> None:
    """``register`` takes the upstream file as published; a stylebridge checkpoint (converted,
    or a random-weight preset) stored in its place would be listed as the official weights."""
    from stylebridge.core.checkpoint import read_header

    if entry.filename.endswith(".safetensors"):
        return  # the upstream file is itself a safetensors file
    try:
        header = read_header(source)
    except Exception:  # not a stylebridge checkpoint: the upstream checks decide
        return
    option = {"encoder": "--encoder", "domain_method": "--method", "generator": "--generator",
              "calibrator": "--calibrate"}.get(header.kind)
    how = f" ({option} {header.plugin}:{source})" if option else ""
    raise WeightsError(f"is a stylebridge checkpoint ({header.kind} {header.plugin!r}), not the "
                       f"upstream {entry.filename} that {entry.name} registers; use it "
                       f"directly{how}", path=source)


def check_file(entry: WeightsEntry, path: Path, *, digest: str | None = None,
               discard: bool = False, advice: str = "", recorded: str | None = None,
               taken: Sequence[Mapping[str, Any]] = (), replace_hint: str = ""
               ) -> tuple[str, list[str] | None]:
    """Check size, what the file is (not a web page, not a zip cut short:
    :func:`~.weights_files.upstream_problem`), sha256 where the manifest has it, else against
    ``recorded`` (the sha256 of the first install: trust on first use), and an archive entry's
    contents (:func:`archive_problem`; ``taken``: the catalogue's sources that read it); return
    the sha256 and, for a StyleDomain archive, the domains it holds.

    ``discard`` deletes a failing file (a corrupt download is not resumable); a user's
    file is never deleted. ``advice`` is added to the error, ``replace_hint`` only to a
    mismatch with ``recorded`` (how to replace the reference).
    """
    tail = "; the file was discarded" if discard else advice

    def fail(message: str) -> WeightsError:
        if discard:
            path.unlink()
        return WeightsError(f"{entry.name}: {message}{tail}", path=path)

    size = path.stat().st_size
    if entry.size is not None and size != entry.size:
        raise fail(f"file has {size} bytes, expected {entry.size}")
    # an entry without a converter is read as it is by other code (torchvision's LPIPS
    # trunks): only the unmistakable signs are its problem; a converter reads pickles
    problem = (upstream_problem(entry.filename, path, pickle=entry.converter is not None)
               if entry.kind != "archive" else None)
    if problem is not None and entry.sha256 is None:  # a published sha256 says it all
        raise fail(problem)
    digest = digest or sha256_file(path)
    if entry.sha256 is not None and digest != entry.sha256.lower():
        raise fail(f"sha256 {digest[:16]}… does not match the published {entry.sha256[:16]}…")
    prefix = (entry.sha256_prefix or "").lower()
    if entry.sha256 is None and prefix and not digest.startswith(prefix):
        raise fail(f"sha256 {digest[:16]}… does not start with the published {prefix} (the "
                   "hash in the file name)")
    if entry.sha256 is None and recorded and digest != recorded:
        raise fail(f"sha256 {digest[:16]}… differs from the {recorded[:16]}… recorded at its "
                   f"first install (trust on first use){replace_hint}")
    domains = None
    if entry.kind == "archive":
        problem, domains = archive_problem(entry, path, taken)
        if problem is not None:
            raise fail(problem)
    return digest, domains


def archive_problem(entry: WeightsEntry, path: Path, taken: Sequence[Mapping[str, Any]]
                    ) -> tuple[str | None, list[str] | None]:
    """An archive entry's file must be a zip or tar, as its file name says, holding what the
    catalogue takes from it (``taken``: a StyleDomain domain, a member named); returns the
    problem or None, and the StyleDomain domains it holds."""
    want = expected_archive_format(entry.filename)
    got = archive_format(path)
    expected = f"the {want or 'zip or tar'} archive {entry.filename}"
    if got is None:
        return f"is neither a zip nor a tar archive, expected {expected}", None
    if got == "zip" and is_torch_zip(path):
        return f"is a PyTorch checkpoint (torch.save), not {expected}", None
    if want is not None and got != want:
        return f"is a {got} archive, expected {expected}", None
    domains = None
    try:
        if entry.plugin == "styledomain" or any(src.get("select") for src in taken):
            domains = sources.styledomain_domains(path)
            if not domains:
                return (f"holds no StyleDomain domain (<name>_*/models/models_N.pt), expected "
                        f"{expected}"), None
        wanted = sorted({str(src["member"]) for src in taken if src.get("member")})
        if wanted:
            held = {n.rsplit("/", 1)[-1] for n in sources.archive_members(path)}
            if not held & set(wanted):
                more = ", …" if len(wanted) > 3 else ""
                return (f"holds none of the files the catalogue takes from {expected} "
                        f"({', '.join(wanted[:3])}{more})"), None
    except sources.SourceError as exc:
        return str(exc), None
    return None, domains
