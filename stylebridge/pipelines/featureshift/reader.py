"""Reading a FeatureShift dataset (built by :mod:`stylebridge.pipelines.featureshift.dataset`).

The reader (:class:`FeatureShiftDataset`) never loads a whole shard: it memory-maps
shard files and reads the rows a batch needs.  :class:`SamplePlan` is the
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
            if not any(int(shard.get("rows") or 0) for shard in index.get("shards", [])):
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
            for j, shard in enumerate(self._shards):
                for rel in [shard["file"], *(shard["domains"] if self.per_domain else [])]:
                    if self.shard_rows[j] and not (self.root / str(rel)).is_file():
                        raise DatasetError(f"shard file {rel} is missing", path=self.root)
            self._domain_files = [str(d["file"]) for d in self.domains]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            what = f"no {exc}" if isinstance(exc, KeyError) else " ".join(str(exc).split())
            raise DatasetError(f"damaged dataset index ({what}); rebuild it with `stylebridge "
                               "featureshift build-dataset`", path=path) from None
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
                handle = safe_open(str(self.root / rel), framework="pt")
            except Exception as exc:
                raise DatasetError(f"unreadable shard ({exc})", path=self.root / rel) from None
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
