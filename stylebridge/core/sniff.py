"""What a file is, from its first bytes: for errors that name what was given instead of a
checkpoint ("a.jpg: is a JPEG image, not a .safetensors checkpoint").

Only leading bytes are read; nothing is parsed or run.  The kinds:

* ``zip``: a zip archive (``torch.save``'s format since torch 1.6, also a damaged one);
* ``pickle``: starts with the PROTO opcode 0x80, as every ``pickle.dump`` at protocol 2 or
  later does (NVlabs pickles, legacy ``torch.save`` files);
* ``safetensors``: an 8-byte little-endian header length, then ``{``;
* ``image``: JPEG, PNG, GIF, WebP, and the ISO media files of phones: HEIC/HEIF (what iPhones
  save) and AVIF, told apart by the brands of their ``ftyp`` box;
* ``video``: an MP4 or QuickTime movie (the same box, a video brand);
* ``document``, ``archive``: common files handed over by mistake;
* ``text``: printable ASCII only;
* ``unknown``: anything else (empty files included).
"""

from __future__ import annotations

from pathlib import Path

#: (leading bytes, kind, description)
_SIGNATURES = (
    (b"PK", "zip", "a zip archive"),
    (b"\x80", "pickle", "a pickle"),
    (b"\xff\xd8\xff", "image", "a JPEG image"),
    (b"\x89PNG", "image", "a PNG image"),
    (b"GIF8", "image", "a GIF image"),
    (b"RIFF", "image", "a RIFF file (WebP image?)"),
    (b"%PDF", "document", "a PDF document"),
    (b"\x1f\x8b", "archive", "a gzip archive"),
)
_MAX_SAFETENSORS_HEADER = 100 << 20  # safetensors' own limit on the JSON header (100 MB)
_HEAD = 64  # bytes read: room for an ftyp box's major brand and a dozen compatible ones
#: ISO base media (``....ftyp``) brands: AVIF first (an AVIF file also lists mif1), then HEIF
_AVIF_BRANDS = {b"avif", b"avis"}
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}


def _media_kind(head: bytes) -> tuple[str, str] | None:
    """The kind of an ISO base media file (HEIF, AVIF, MP4, QuickTime) from its ``ftyp``
    box: the major brand at bytes 8-12, compatible brands from byte 16 to the box's end."""
    if len(head) < 12 or head[4:8] != b"ftyp":
        return None
    end = min(int.from_bytes(head[:4], "big"), len(head))
    brands = {head[8:12]} | {head[i:i + 4] for i in range(16, end - 3, 4)}
    if brands & _AVIF_BRANDS:
        return "image", "an AVIF image"
    if brands & _HEIF_BRANDS:
        return "image", "a HEIC/HEIF image"
    return "video", "an MP4/QuickTime video"


def file_kind(path: str | Path) -> tuple[str, str]:
    """``(kind, description)`` of ``path`` from its first bytes, e.g.
    ``("image", "a JPEG image")``; ``("unknown", ...)`` where nothing matches."""
    with Path(path).open("rb") as fh:
        head = fh.read(_HEAD)
    media = _media_kind(head)
    if media is not None:
        return media
    for magic, kind, what in _SIGNATURES:
        if head.startswith(magic):
            return kind, what
    if (len(head) >= 9 and head[8:9] == b"{"
            and int.from_bytes(head[:8], "little") < _MAX_SAFETENSORS_HEADER):
        return "safetensors", "a safetensors file"
    if head and all(32 <= c < 127 or c in b"\t\r\n" for c in head[:16]):
        return "text", "a text file"
    return "unknown", "a file of unknown type"


__all__ = ["file_kind"]
