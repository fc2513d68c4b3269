"""Reading a FeatureShift dataset (built by :mod:`stylebridge.pipelines.featureshift.dataset`).

The reader (:class:`FeatureShiftDataset`) never loads a whole shard: it memory-maps
shard files and reads the rows a batch needs.  It checks every shard file's header when it
opens the dataset (:func:`shard_problem`, which a resumed build uses to find damaged files),
so a truncated file is refused before training starts, not after a step.  :class:`SamplePlan` is the
deterministic epoch order (shards shuffled, rows shuffled within a shard, a random
domain per sample) that makes a resumed run see exactly the batches it would have seen.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import Tensor

from stylebridge.core.io import open_safetensors, utf8_path
from stylebridge.pipelines.featureshift.dataset import (
    BASE_KEYS,
    DOMAIN_KEYS,
    INDEX,
    VERSION,
    DatasetError,
    _read_index,
    _read_names,
)
from stylebridge.pipelines.photos import random_parts

#: the longest safetensors header a shard may have (the names of ``MAX_SHARD_SIZE`` rows)
MAX_SHARD_HEADER = 64 * 1024 * 1024

REBUILD = "rerun the same `stylebridge featureshift build-dataset` command to build it again"


def _tails(index: dict[str, Any]) -> dict[str, list[int]]:
    """The per-row shape of every stored tensor, as far as ``index`` knows it."""
    size = index.get("settings", {}).get("image_size")
    feature, latent = index.get("feature_shape"), index.get("latent_shape")
    tails: dict[str, list[int]] = {}
    if isinstance(size, int):
        tails.update(image=[3, size, size], target=[3, size, size])
    if isinstance(feature, list):
        tails.update(f_inv=feature, f_real=feature, delta=feature)
    if isinstance(latent, list):
        tails.update(w_guide=latent, w_inv=latent, w_real=latent)
    return tails


def shard_problem(path: Path, keys: Sequence[str], rows: int,
                  tails: dict[str, list[int]] | None = None, *, names: bool = False
                  ) -> str | None:
    """Why the shard file ``path`` is not what the index says (``rows`` rows of each of
    ``keys``, per-row shapes ``tails``; with ``names`` a source name per row), or ``None``.
    Reads only the safetensors header (and lets safetensors validate it)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if n < 2 or n > MAX_SHARD_HEADER or 8 + n > size:
                return f"damaged shard ({size:,} bytes: no complete safetensors header)"
            header = json.loads(fh.read(n).decode("utf-8"))
    except FileNotFoundError:
        return "shard file is missing"
    except OSError as exc:
        return f"unreadable shard ({exc.strerror or exc})"
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return "damaged shard (its safetensors header is not JSON)"
    if not isinstance(header, dict):
        return "damaged shard (its safetensors header is not an object)"
    meta = header.pop("__metadata__", None) or {}
    try:
        end = max([int(info["data_offsets"][1]) for info in header.values()], default=0)
        shapes = {key: [int(v) for v in info["shape"]] for key, info in header.items()}
        listed = json.loads(meta.get("names", "[]")) if names else []
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RecursionError):
        return "damaged shard (a malformed safetensors header)"
    if 8 + n + end != size:
        return (f"damaged shard ({'truncated: ' if size < 8 + n + end else ''}{size:,} bytes, "
                f"its header describes {8 + n + end:,})")
    if rows:
        for key in keys:
            shape = shapes.get(key)
            if shape is None:
                return f"damaged shard (no {key!r} tensor)"
            if not shape or shape[0] != rows:
                return (f"damaged shard ({key!r} holds {shape[0] if shape else 0} rows, the "
                        f"index says {rows})")
            if tails and key in tails and shape[1:] != list(tails[key]):
                return (f"damaged shard ({key!r} rows have shape {shape[1:]}, the index says "
                        f"{list(tails[key])})")
        if names and (not isinstance(listed, list) or len(listed) != rows):
            return f"damaged shard (its row names do not match the index's {rows} rows)"
    try:  # what safetensors itself checks when the file is opened
        with open_safetensors(path) as fh:
            fh.metadata()
    except Exception as exc:
        return f"unreadable shard ({' '.join(str(exc).split())})"
    return None


class FeatureShiftDataset:
    """A finished dataset directory, read row by row (memory-mapped shards).

    ``shard_rows[j]`` is the number of rows of shard ``j``; :meth:`read` takes
    ``entries`` ``[N, 3]`` = ``(shard, row, domain)`` and returns a dict of batched
    tensors (see :data:`BASE_KEYS`; ``delta``/``target`` only when stored, ``domain``
    always), on the CPU, features as float32 and images as uint8.
    """

    def __init__(self, root: str | Path, *, max_open: int = 16) -> None:
        self.root = Path(root)
        path = self.root / INDEX
        if not self.root.exists():
            raise DatasetError("no such folder (build a dataset with `stylebridge featureshift "
                               "build-dataset`)", path=self.root)
        if not path.is_file():
            raise DatasetError("is not a FeatureShift dataset (no index.json; build it with "
                               "`stylebridge featureshift build-dataset`)", path=self.root)
        index = _read_index(path)
        if not isinstance(index.get("version"), int):
            raise DatasetError("is not a FeatureShift dataset index", path=path)
        if index["version"] > VERSION:
            raise DatasetError(f"dataset format version {index['version']} is newer than this "
                               f"stylebridge reads ({VERSION})", path=path)
        if not index.get("complete"):
            raise DatasetError("the dataset build did not finish; rerun the same "
                               "`stylebridge featureshift build-dataset` command to complete it",
                               path=path)
        try:  # a hand-edited or damaged index: one line, not a KeyError
            if not isinstance(index["shards"], list):
                raise TypeError("'shards' is not a list")
            if not any(int(shard.get("rows") or 0) for shard in index["shards"]):
                raise DatasetError("the dataset has no rows (no input image could be encoded)",
                                   path=path)
            self.index = index
            self.settings: dict[str, Any] = index["settings"]
            self.layer = int(self.settings["layer"])
            self.image_size = int(self.settings["image_size"])
            self.feature_shape = tuple(int(n) for n in index["feature_shape"])
            self.latent_shape = tuple(int(n) for n in index["latent_shape"])
            self.domains: list[dict[str, Any]] = index["domains"]
            self.per_domain = bool(self.settings["per_domain"])
            self.shard_rows = [int(s["rows"] or 0) for s in index["shards"]]
            self._shards = index["shards"]
            files = [(str(shard["file"]), BASE_KEYS, rows) for shard, rows
                     in zip(self._shards, self.shard_rows, strict=True)]
            if self.per_domain:
                files += [(str(rel), DOMAIN_KEYS, rows) for shard, rows
                          in zip(self._shards, self.shard_rows, strict=True)
                          for rel in shard["domains"]]
            self._domain_files = [str(d["file"]) for d in self.domains]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            what = f"no {exc}" if isinstance(exc, KeyError) else " ".join(str(exc).split())
            raise DatasetError(f"damaged dataset index ({what}); rebuild it with `stylebridge "
                               "featureshift build-dataset`", path=path) from None
        tails = _tails(index)
        for rel, keys, rows in files:  # headers only: a damaged file now, not mid-training
            if rows and (problem := shard_problem(self.root / rel, keys, rows, tails,
                                                  names=keys is BASE_KEYS)) is not None:
                raise DatasetError(f"{problem}; {REBUILD}", path=self.root / rel)
        self._open: OrderedDict[str, Any] = OrderedDict()
        self._max_open = max_open

    def identity(self) -> str:
        """A digest of what the dataset holds (settings, domains, rows per shard), not of
        where it lies: a training run resumes only on the same dataset."""
        what = {"settings": self.settings, "domains": [d.get("name") for d in self.domains],
                "shard_rows": self.shard_rows}
        return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def __len__(self) -> int:
        return sum(self.shard_rows)

    @property
    def n_domains(self) -> int:
        return len(self.domains)

    @property
    def random_parts(self) -> list[str]:
        """The networks the dataset was built from that hold random weights (``[]`` also for
        a dataset written before builds recorded them)."""
        return random_parts(self.index.get("random_inputs", {}))

    def domain_path(self, d: int) -> Path:
        return self.root / self._domain_files[d]

    def _handle(self, rel: str) -> Any:
        handle = self._open.get(rel)
        if handle is None:
            try:
                with utf8_path(self.root / rel) as name:  # the handle outlives the name
                    handle = safe_open(name, framework="pt")
            except Exception as exc:
                raise DatasetError(f"unreadable shard ({' '.join(str(exc).split())}); {REBUILD}",
                                   path=self.root / rel) from None
            self._open[rel] = handle
            if len(self._open) > self._max_open:
                self._open.popitem(last=False)
        else:
            self._open.move_to_end(rel)
        return handle

    def names(self, shard: int) -> list[str]:
        return _read_names(self.root / self._shards[shard]["file"])

    def read(self, entries: Tensor) -> dict[str, Tensor]:
        entries = torch.as_tensor(entries, dtype=torch.long).reshape(-1, 3)
        keys = list(BASE_KEYS) + (list(DOMAIN_KEYS) if self.per_domain else [])
        rows: dict[str, list[Tensor]] = {k: [] for k in keys}
        for shard, row, domain in entries.tolist():
            base = self._handle(self._shards[shard]["file"])
            for key in BASE_KEYS:
                rows[key].append(base.get_slice(key)[row:row + 1])
            if self.per_domain:
                dom = self._handle(self._shards[shard]["domains"][domain])
                for key in DOMAIN_KEYS:
                    rows[key].append(dom.get_slice(key)[row:row + 1])
        out = {k: torch.cat(v) for k, v in rows.items()}
        for key in ("w_guide", "w_inv", "w_real", "f_inv", "f_real", "delta"):
            if key in out:
                out[key] = out[key].float()
        out["domain"] = entries[:, 2].clone()
        return out


class SamplePlan:
    """The deterministic order of samples ``(shard, row, domain)`` in each epoch.

    Epoch ``e`` uses a generator seeded from ``(seed, e)``: shards in a random order,
    the rows of each shard in a random order (consecutive samples come from the same
    shard, which keeps the reader's file accesses local), and a uniformly random
    domain per sample.  The same ``(seed, e)`` always gives the same order.
    """

    def __init__(self, shard_rows: Sequence[int], n_domains: int, seed: int = 0) -> None:
        self.shard_rows = [int(n) for n in shard_rows]
        self.n_domains = int(n_domains)
        self.seed = int(seed)
        self.size = sum(self.shard_rows)
        self._cache: tuple[int, Tensor] | None = None

    def epoch(self, e: int) -> Tensor:
        if self._cache is not None and self._cache[0] == e:
            return self._cache[1]
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + int(e))
        parts = []
        for j in torch.randperm(len(self.shard_rows), generator=g).tolist():
            n = self.shard_rows[j]
            if n == 0:
                continue
            rows = torch.randperm(n, generator=g)
            parts.append(torch.stack([torch.full((n,), j), rows], 1))
        order = torch.cat(parts) if parts else torch.zeros(0, 2, dtype=torch.long)
        domains = torch.randint(0, max(self.n_domains, 1), (len(order), 1), generator=g)
        plan = torch.cat([order, domains], 1)
        self._cache = (e, plan)
        return plan

    def batch(self, epoch: int, offset: int, size: int) -> tuple[Tensor, int, int]:
        """The ``size`` samples at ``(epoch, offset)`` and the position after them.

        An epoch's last incomplete batch is dropped (every batch has ``size`` samples).
        """
        if size > self.size:
            raise DatasetError(f"the dataset has {self.size} samples, fewer than one batch "
                               f"({size}); lower --batch")
        if offset + size > self.size:
            epoch, offset = epoch + 1, 0
        plan = self.epoch(epoch)
        return plan[offset:offset + size], epoch, offset + size
