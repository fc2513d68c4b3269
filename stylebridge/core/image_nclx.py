"""HEIC/AVIF colours given by code points (an ``nclx`` colour box, ITU-T H.273) rather than an
ICC profile: turned into the equivalent matrix/TRC ICC profile, which
:mod:`stylebridge.core.image_color` then converts to sRGB like an embedded one (LittleCMS at
8 bits, in float at 16 bits; the same intent).

``pillow-heif`` gives the code points of a HEIC in ``info["nclx_profile"]`` (a dict with
``color_primaries``, ``transfer_characteristics``, ``matrix_coefficients``,
``full_range_flag``); Pillow's own AVIF reader does not, so an AVIF file's ``colr`` box is
read here (:func:`avif_nclx`).  Only the primaries and the transfer matter: the matrix
coefficients and the range are the YCbCr → RGB step, which the decoder has already done.

* primaries 1 (BT.709 = sRGB's) or 2 (unspecified), with transfer 13 (sRGB) or 2
  (unspecified): sRGB, nothing to do;
* primaries 1, 9 (BT.2020) and 12 (Display P3, D65), with transfer 13 (sRGB), 1/6/14/15
  (BT.709's, decoded by its inverse OETF, as Chrome and libavif do), 4 (gamma 2.2), 5
  (gamma 2.8) or 8 (linear): converted;
* anything else (PQ and HLG HDR transfers, other primaries): not converted, said in a note.
"""

from __future__ import annotations

import functools
import struct
from pathlib import Path
from typing import Any

#: the primaries (red, green, blue, white as CIE xy) of the H.273 code points converted here
PRIMARIES = {
    1: ("BT.709", ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060), (0.3127, 0.3290))),
    9: ("BT.2020", ((0.708, 0.292), (0.170, 0.797), (0.131, 0.046), (0.3127, 0.3290))),
    12: ("Display P3", ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060), (0.3127, 0.3290))),
}
_BT709 = ("BT.709", (3, 1 / 0.45, 1 / 1.099, 0.099 / 1.099, 1 / 4.5, 0.081))
#: the transfer code points converted here → ICC ``para`` curves (type, g, a, b, c, d): encoded
#: value → linear light
TRANSFERS = {
    13: ("sRGB", (3, 2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)),
    1: _BT709, 6: _BT709, 14: _BT709, 15: _BT709,
    4: ("gamma 2.2", (0, 2.2)),
    5: ("gamma 2.8", (0, 2.8)),
    8: ("linear", (0, 1.0)),
}
_UNSPECIFIED = 2
_HDR = {16: "PQ", 18: "HLG"}
#: the ICC PCS white, D50
_D50 = (0.9642, 1.0, 0.8249)
_BRADFORD = ((0.8951, 0.2664, -0.1614), (-0.7502, 1.7135, 0.0367), (0.0389, -0.0685, 1.0296))


def nclx_of(img: Any) -> dict | None:
    """The ``nclx`` code points of a PIL image (``pillow-heif``'s ``info["nclx_profile"]``, or
    the ``colr`` box of an AVIF file Pillow read), as a dict; ``None`` without them."""
    nclx = img.info.get("nclx_profile")
    if isinstance(nclx, dict):
        return nclx
    filename = getattr(img, "filename", None)
    if getattr(img, "format", None) == "AVIF" and filename:
        return avif_nclx(Path(filename))
    return None


def nclx_icc(nclx: dict, grey: bool) -> tuple[bytes | None, str | None]:
    """``(icc, note)`` for the code points ``nclx`` of an image (``grey``: a one-channel one):
    ``(None, None)`` for sRGB, ``(profile bytes, None)`` for colours converted here, ``(None,
    note)`` for code points not converted (the photo is read as sRGB)."""
    try:
        primaries = int(nclx.get("color_primaries", _UNSPECIFIED))
        transfer = int(nclx.get("transfer_characteristics", _UNSPECIFIED))
    except (TypeError, ValueError):
        return None, None
    primaries = 1 if primaries == _UNSPECIFIED or grey else primaries
    transfer = 13 if transfer == _UNSPECIFIED else transfer
    if primaries == 1 and transfer == 13:
        return None, None
    if primaries not in PRIMARIES or transfer not in TRANSFERS:
        what = _HDR.get(transfer, "")
        return None, (f"its colours are described by code points (nclx: primaries {primaries}, "
                      f"transfer {transfer}{' = ' + what if what else ''}) that are not "
                      "converted: read as sRGB, its colours may be off")
    return _profile(primaries, transfer, grey), None


def nclx_name(primaries: int, transfer: int, grey: bool = False) -> str:
    """The description of the profile made for these code points (``nclx Display P3, sRGB
    transfer``)."""
    what = "grey" if grey else PRIMARIES.get(primaries, (f"primaries {primaries}",))[0]
    return f"nclx {what}, {TRANSFERS.get(transfer, (str(transfer),))[0]} transfer"


# ---------------------------------------------------------------------------------------------
# The equivalent ICC profile (v2, matrix/TRC, written byte by byte)


Matrix = tuple[tuple[float, float, float], ...]


def _mul(a: Matrix, b: Matrix) -> Matrix:
    return tuple(tuple(sum(a[i][k] * b[k][j] for k in range(3)) for j in range(3))
                 for i in range(3))


def _apply(a: Matrix, v: tuple) -> tuple:
    return tuple(sum(a[i][k] * v[k] for k in range(3)) for i in range(3))


def _inv(a: Matrix) -> Matrix:
    """The inverse of a 3 × 3 matrix (its adjugate over its determinant)."""
    cof = [[a[(j + 1) % 3][(i + 1) % 3] * a[(j + 2) % 3][(i + 2) % 3]
            - a[(j + 1) % 3][(i + 2) % 3] * a[(j + 2) % 3][(i + 1) % 3] for j in range(3)]
           for i in range(3)]
    det = sum(a[0][k] * cof[k][0] for k in range(3))
    return tuple(tuple(c / det for c in row) for row in cof)


def _colorants(prim: tuple) -> list[tuple]:
    """The PCS XYZ (D50) of the red, green and blue of primaries and white ``prim`` (xy),
    Bradford-adapted as LittleCMS' ``cmsCreateRGBProfile`` adapts them."""
    def xyz(x: float, y: float) -> tuple:
        return (x / y, 1.0, (1.0 - x - y) / y)

    cols = [xyz(*p) for p in prim[:3]]
    white = xyz(*prim[3])
    rows = tuple(zip(*cols, strict=True))
    scale = _apply(_inv(rows), white)  # the primaries' Y that add up to the white
    cone = [d / w for d, w in zip(_apply(_BRADFORD, _D50), _apply(_BRADFORD, white),
                                  strict=True)]
    adapt = _mul(_inv(_BRADFORD), tuple(tuple(cone[i] * _BRADFORD[i][j] for j in range(3))
                                        for i in range(3)))
    return [_apply(adapt, tuple(c * k for c in col)) for col, k in zip(cols, scale, strict=True)]


def _s15(x: float) -> bytes:
    return struct.pack(">i", round(x * 65536))


def _xyz(v: Any) -> bytes:
    return b"XYZ " + b"\0" * 4 + b"".join(_s15(float(c)) for c in v)


def _para(params: tuple) -> bytes:
    return b"para" + b"\0" * 4 + struct.pack(">HH", params[0], 0) + b"".join(
        _s15(p) for p in params[1:])


def _desc(text: str) -> bytes:
    raw = text.encode("ascii") + b"\0"
    return b"desc" + b"\0" * 4 + struct.pack(">I", len(raw)) + raw + b"\0" * 78


@functools.lru_cache(maxsize=32)
def _profile(primaries: int, transfer: int, grey: bool) -> bytes:
    """The v2 matrix/TRC (or grey TRC) ICC profile of the code points."""
    name = nclx_name(primaries, transfer, grey)
    curve = _para(TRANSFERS[transfer][1])
    tags = [(b"desc", _desc(name)), (b"wtpt", _xyz(_D50))]
    if grey:
        tags.append((b"kTRC", curve))
    else:
        cols = _colorants(PRIMARIES[primaries][1])
        tags += [(k, _xyz(c)) for k, c in zip((b"rXYZ", b"gXYZ", b"bXYZ"), cols, strict=True)]
        tags += [(k, curve) for k in (b"rTRC", b"gTRC", b"bTRC")]
    tags.append((b"cprt", b"text" + b"\0" * 4 + b"none\0"))
    table, data = b"", b""
    start = 128 + 4 + 12 * len(tags)
    for sig, body in tags:
        body += b"\0" * (-len(body) % 4)
        table += sig + struct.pack(">II", start + len(data), len(body))
        data += body
    body = struct.pack(">I", len(tags)) + table + data
    head = (struct.pack(">I", 128 + len(body)) + b"\0" * 4 + bytes([2, 0x10, 0, 0]) + b"mntr"
            + (b"GRAY" if grey else b"RGB ") + b"XYZ " + b"\0" * 12 + b"acsp" + b"\0" * 28
            + b"".join(_s15(c) for c in _D50) + b"\0" * 48)
    return head + body


# ---------------------------------------------------------------------------------------------
# AVIF (ISO-BMFF) boxes


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """``(type, body start, body end)`` of the boxes in ``data[start:end]``."""
    out = []
    while start + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, start)
        head = 8
        if size == 1 and start + 16 <= end:
            size, head = struct.unpack_from(">Q", data, start + 8)[0], 16
        elif size == 0:
            size = end - start
        if size < head or start + size > end:
            break
        out.append((kind, start + head, start + size))
        start += size
    return out


def _meta(path: Path, limit: int) -> bytes | None:
    """The body of the top-level ``meta`` box of an ISO-BMFF file (at most ``limit`` bytes)."""
    with open(path, "rb") as fh:
        for _ in range(64):
            head = fh.read(16)
            if len(head) < 8:
                return None
            size, kind = struct.unpack_from(">I4s", head)
            skip = 8
            if size == 1 and len(head) == 16:
                size, skip = struct.unpack_from(">Q", head, 8)[0], 16
            if size < skip:  # 0: to the end of the file (the last box), or a broken one
                return fh.read(limit) if kind == b"meta" and size == 0 else None
            if kind == b"meta":
                fh.seek(skip - len(head), 1)
                return fh.read(size - skip) if size - skip <= limit else None
            fh.seek(size - len(head), 1)
    return None


def avif_nclx(path: Path, limit: int = 1 << 20) -> dict | None:
    """The ``nclx`` code points of an AVIF file's primary item (its ``colr`` property, through
    ``pitm``/``ipco``/``ipma`` of the ``meta`` box, read when it is at most ``limit`` bytes),
    ``None`` when it has none or the boxes cannot be read."""
    try:
        data = _meta(path, limit)
        if data is None:
            return None
        inner = {k: (s, e) for k, s, e in _boxes(data, 4, len(data))}  # meta is a full box
        s, _ = inner[b"pitm"]
        primary = struct.unpack_from(">H" if data[s] == 0 else ">I", data, s + 4)[0]
        iprp = {k: (s, e) for k, s, e in _boxes(data, *inner[b"iprp"])}
        props = _boxes(data, *iprp[b"ipco"])
        s = iprp[b"ipma"][0]
        version, flags = data[s], int.from_bytes(data[s + 1:s + 4], "big")
        count, at = struct.unpack_from(">I", data, s + 4)[0], s + 8
        wide = flags & 1
        for _ in range(min(count, 65536)):
            item = struct.unpack_from(">H" if version < 1 else ">I", data, at)[0]
            at += 2 if version < 1 else 4
            n, at = data[at], at + 1
            indices = [(struct.unpack_from(">H", data, at + 2 * i)[0] & 0x7FFF) if wide else
                       (data[at + i] & 0x7F) for i in range(n)]
            at += n * (2 if wide else 1)
            if item != primary:
                continue
            for index in indices:
                kind, ps, pe = props[index - 1] if 0 < index <= len(props) else (b"", 0, 0)
                if kind == b"colr" and data[ps:ps + 4] == b"nclx" and pe - ps >= 11:
                    cp, tc, mc = struct.unpack_from(">3H", data, ps + 4)
                    return {"color_primaries": cp, "transfer_characteristics": tc,
                            "matrix_coefficients": mc, "full_range_flag": data[ps + 10] >> 7}
            return None
    except (OSError, KeyError, IndexError, ValueError, struct.error):
        return None
    return None


__all__ = ["PRIMARIES", "TRANSFERS", "avif_nclx", "nclx_icc", "nclx_name", "nclx_of"]
