"""What a run record (``adapt.json``, ``invert.json``, ``generate.json``, ``render.json``, a
fitted calibrator's header) holds besides the run's own options: enough to reproduce the run.

* ``software``: the versions that computed it, ``{"stylebridge": "0.1.0", "torch": "2.5.1",
  "python": "3.12.3"}`` (:func:`software`);
* ``generator``: the absolute path of the generator's checkpoint file, ``generator_spec``
  the ``--generator`` option as given and ``generator_sha256`` the file's sha256
  (:func:`~stylebridge.pipelines.adapter.generator_sha256`: hashed once per process);
* per other model (encoder, domains, calibrator, FeatureShift, guide) its option as given
  (the record's own key, unchanged) and, under ``<key>_file`` (``domain_files``: by domain
  name), the checkpoint file it was loaded from, as the resume journal recognises it: its
  absolute path, size, modification time and ``sha256`` (hashed once per version of the
  file, :mod:`~stylebridge.registry.file_hashes`; ``None`` for weights built without a
  file);
* ``cwd``: the working directory, against which the photo paths (as given) are read.

The record holds nothing of *how* the run computed (``--batch``, ``--device``,
``--compile``): those change pixels by floating-point rounding only, and a resumed run may use
other values and still writes the uninterrupted run's record.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from stylebridge import __version__
from stylebridge.pipelines.adapter import generator_sha256
from stylebridge.pipelines.photos import weights_path


def software() -> dict[str, str]:
    """The versions a record's numbers were computed with."""
    return {"stylebridge": __version__, "torch": str(torch.__version__),
            "python": platform.python_version()}


def absolute(path: str | Path | None) -> str | None:
    """``path`` as an absolute path (symbolic links resolved); ``None`` stays ``None``."""
    return None if path is None else str(Path(os.path.expanduser(path)).resolve())


def file_record(path: str | Path | None) -> dict[str, Any] | None:
    """A checkpoint file as a record names it: absolute path, size, modification time and
    the content's ``sha256`` (:func:`~stylebridge.registry.file_hashes.content_sha256`)."""
    from stylebridge.pipelines.run_settings import file_setting

    identity = file_setting(path)
    if identity is None:
        return None
    return {**identity, "path": absolute(path)}


def model_file(obj: Any) -> dict[str, Any] | None:
    """The checkpoint ``obj`` was loaded from, as it was then (its provenance: size, time and
    sha256 taken at load, so a file copied over it during the run is not named), else
    :func:`file_record` of its file now, or of ``obj`` itself when it is a path."""
    from stylebridge.registry.resolve import provenance_of

    if isinstance(obj, str | Path):
        return file_record(obj)
    prov = provenance_of(obj)
    if prov is not None and prov.path is not None and prov.sha256 is not None:
        return {**dict(prov.identity or {}), "sha256": prov.sha256, "path": absolute(prov.path)}
    return file_record(weights_path(obj))


def generator_record(spec: str | None, path: str | Path | None,
                     generator: Any = None) -> dict[str, Any]:
    """``generator`` (absolute path), ``generator_spec`` (as given; ``None``: not given,
    ``render`` took the one its files name), ``generator_sha256``: of what ``generator``
    was loaded from (its provenance), else of the file at ``path``."""
    from stylebridge.registry.resolve import provenance_of

    digest = None
    prov = provenance_of(generator) if generator is not None else None
    if prov is not None and prov.sha256 is not None:
        digest = prov.sha256
    elif path is not None and Path(path).is_file():
        digest = generator_sha256(path)
    return {"generator": absolute(path), "generator_spec": None if spec is None else str(spec),
            "generator_sha256": digest}


def run_record(generator_spec: str | None, generator_path: str | Path | None, *,
               generator: Any = None, **models: Any) -> dict[str, Any]:
    """The shared part of every run record (module docstring): the generator's fields (of
    what ``generator``, the loaded one, was loaded from), then ``<key>_file`` for each model
    of ``models`` (``None`` values stay ``None``; a mapping, ``domains={"pixar": method}``,
    gives ``domain_files`` by name), ``cwd`` and ``software``."""
    out = generator_record(generator_spec, generator_path, generator)
    for key, obj in models.items():
        if isinstance(obj, Mapping):
            out[f"{key.removesuffix('s')}_files"] = {str(name): model_file(value)
                                                     for name, value in obj.items()}
        else:
            out[f"{key}_file"] = None if obj is None else model_file(obj)
    out["cwd"] = os.getcwd()
    out["software"] = software()
    return out


__all__ = ["absolute", "file_record", "generator_record", "model_file", "run_record",
           "software"]
