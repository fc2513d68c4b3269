"""The files a batch run wrote for each photo it finished, as its journal
(:class:`stylebridge.pipelines.resume.Journal`) records them, and the check a ``--resume``
makes before keeping them: a kept file must still be the one the interrupted run wrote.

Each finished photo's line in the journal's log holds, beside its record, ``written``: per
output file (by its name in the output folder) its size, modification time and sha256 when
the batch was saved.  A resume keeps a file whose size and modification time are unchanged
at once, reads one whose time changed (a copy of the folder without its times) and keeps it
when the content is the same, and refuses one that is gone or whose content changed (a
picture of the same name written over it by another program or run): the report and grid
of the resumed run would describe pictures that are not the ones in the folder.  Journals
written before ``written`` was recorded are checked for gone files only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stylebridge.errors import StylebridgeError

#: how a refusal ends
START_OVER = "run without --resume to start over"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def record_files(record: Mapping[str, Any]) -> list[str]:
    """The output files (names in the output folder) of one finished photo's record."""
    return [str(name) for name in dict(record.get("files") or {}).values()]


def written(folder: Path, record: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """What the journal keeps of each file of ``record`` in ``folder``, as it is now (just
    written): size, modification time (ns) and sha256; a file that cannot be read is left
    out (it is checked for being there on resume, as before)."""
    out: dict[str, dict[str, Any]] = {}
    for name in record_files(record):
        path = Path(folder) / name
        try:
            st = path.stat()
            out[name] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": _sha256(path)}
        except OSError:
            continue
    return out


def check_kept(folder: Path, records: Mapping[str, Mapping[str, Any]],
               written_of: Mapping[str, Mapping[str, Any]]) -> None:
    """Refuse (one line) a resume whose kept files in ``folder`` are gone or changed since
    the interrupted run wrote them; ``written_of``: per input, what :func:`written` recorded
    (missing for journals of earlier versions: only gone files are found)."""
    for done, record in records.items():
        saved = written_of.get(done) or {}
        if not isinstance(saved, Mapping):
            raise StylebridgeError(f"--resume: the journal in {folder} cannot be read (the "
                                   f"files written for {done} are not recorded as a mapping); "
                                   f"{START_OVER}")
        for name in record_files(record):
            path = Path(folder) / name
            if not path.is_file():
                raise StylebridgeError(f"--resume: {path}, written by the interrupted run, is "
                                       f"gone; {START_OVER}")
            then = saved.get(name)
            if not isinstance(then, Mapping):
                continue
            try:
                st = path.stat()
                if (st.st_size, st.st_mtime_ns) == (then.get("size"), then.get("mtime_ns")):
                    continue
                same = st.st_size == then.get("size") and _sha256(path) == then.get("sha256")
            except OSError as exc:
                raise StylebridgeError(f"--resume: {path}, written by the interrupted run, "
                                       f"cannot be read ({exc.strerror}); {START_OVER}") from None
            if not same:
                raise StylebridgeError(
                    f"--resume: {path} was changed since the interrupted run wrote it (another "
                    f"picture of that name was written over it); {START_OVER}, or another --out")


__all__ = ["check_kept", "record_files", "written"]
