"""Distributed helpers of the FeatureShift trainer: torchrun → DistributedDataParallel.

A plain process trains alone (no process group).  Under ``torchrun`` (``RANK``,
``WORLD_SIZE`` and ``MASTER_ADDR`` set) the trainer joins a process group: NCCL on CUDA
(one GPU per ``LOCAL_RANK``), gloo on the CPU; the batch is per process and rank 0
writes.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from stylebridge.core.device import resolve_device


@dataclass
class DistInfo:
    world: int = 1
    rank: int = 0
    local_rank: int = 0
    created: bool = False
    backend: str | None = None   # None: a plain single process (no process group)

    @property
    def main(self) -> bool:
        return self.rank == 0


def launched_distributed() -> bool:
    """Whether a launcher (torchrun, or a test setting the same variables) asked for DDP.

    ``torchrun`` always sets ``RANK``, ``WORLD_SIZE`` and ``MASTER_ADDR``; with them a run
    uses DistributedDataParallel even with one process (``--nproc_per_node 1``), so the
    multi-GPU code path can be checked on one GPU.
    """
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR"))


def amp_name(dtype: torch.dtype | None) -> str:
    return {None: "off", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def process_device(device_name: str) -> torch.device:
    """The device this process trains on: ``--device``, or under torchrun on CUDA the GPU
    of its ``LOCAL_RANK``."""
    device = resolve_device(device_name)
    if launched_distributed() and device.type == "cuda":
        rank = int(os.environ["RANK"])
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", str(rank))))
    return device


def setup_distributed(device_name: str) -> tuple[DistInfo, torch.device]:
    """Single process, or DDP when launched by torchrun: NCCL on CUDA, gloo on the CPU and
    where torch has no NCCL (Windows builds: gloo reduces CUDA tensors too, slower)."""
    device = process_device(device_name)
    if not launched_distributed():
        return DistInfo(), device
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    created = False
    if not dist.is_initialized():
        if device.type == "cuda" and dist.is_nccl_available():
            # bound to this rank's GPU (barriers need not guess it)
            dist.init_process_group("nccl", device_id=device)
        else:
            dist.init_process_group("gloo")
        created = True
        _JOINED[0] = True
    return DistInfo(world=dist.get_world_size(), rank=dist.get_rank(), local_rank=local,
                 created=created, backend=str(dist.get_backend())), device


#: whether this process created a process group (:func:`setup_distributed`)
_JOINED = [False]


def end_process(code: int) -> int:
    """End a process that joined a process group here with exit code ``code``, without the
    interpreter's teardown; in any other process return ``code``.

    A torch process group that DDP has used outlives ``destroy_process_group`` (its gloo
    worker threads keep running: the reducer keeps it), and a worker thread that drops the
    last reference to a finished collective's tensors while the interpreter tears down
    waits for the GIL and is aborted: the process dies with SIGABRT ("terminate called
    without an active exception", pytorch/pytorch#190489) now and then, after a run that
    ended well or with a clear error.  This does what the teardown does first (waits for
    the non-daemon threads, runs the ``atexit`` functions, flushes the standard streams)
    and leaves with ``os._exit``.  ``stylebridge`` calls it when a command returns; a script
    that calls :func:`~stylebridge.pipelines.featureshift.train_featureshift` under torchrun
    ends with ``raise SystemExit(end_process(code))``.
    """
    if not _JOINED[0]:
        return code
    with contextlib.suppress(KeyboardInterrupt):  # a Ctrl-C now: leave at once
        threading._shutdown()  # type: ignore[attr-defined]  # what Py_FinalizeEx does first
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):  # closed, or None
            stream.flush()
    os._exit(code)


def all_min(value: float, dist_info: DistInfo, device: torch.device) -> float:
    if dist_info.world == 1:
        return value
    t = torch.tensor([value], device=device, dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return float(t.item())



def mean_over_ranks(record: dict[str, Any], dist_info: DistInfo, device: torch.device
                    ) -> dict[str, Any]:
    """Under DDP, the loss values of a log record (``total`` and ``SET/NAME``) averaged over
    the processes (every rank calls this: a loss of a whole global batch, not of rank 0's
    share)."""
    if dist_info.world == 1:
        return record
    keys = [k for k, v in record.items() if (k == "total" or "/" in k) and isinstance(v, float)]
    t = torch.tensor([record[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return {**record, **{k: float(v) / dist_info.world for k, v in zip(keys, t.tolist(),
                                                                        strict=True)}}
