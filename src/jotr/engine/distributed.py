"""Safe helpers around ``torch.distributed`` (PyTorch DDP; nothing home-made).

``torchrun --nproc_per_node N -m jotr train ...`` sets ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``; :func:`setup`
then initialises the process group (``nccl`` on CUDA, ``gloo`` on CPU). Without torchrun everything runs in
one process and no ``torch.distributed`` function is ever called: every helper below checks
:func:`is_initialized` first.
"""

from __future__ import annotations

import datetime
import gc
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from jotr.errors import InputError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    rank: int  # global rank (0 in a single process)
    world_size: int  # number of processes (1 in a single process)
    local_rank: int  # rank on this node; selects the CUDA device
    device: torch.device  # this process's device
    initialized_here: bool  # True when :func:`setup` created the process group (and :func:`cleanup` ends it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def launched_rank() -> int:
    """The rank torchrun gave this process (``RANK``; 0 without torchrun), valid after the group is gone."""
    return _env_int("RANK", 0)


def resolve_device(spec: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` -> ``cuda:<local_rank>`` if CUDA is available, else ``cpu``.

    ``"cuda"`` -> ``cuda:<local_rank>``; an explicit ``"cuda:1"`` is kept."""
    spec = (spec or "auto").strip()
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError) as exc:
        raise InputError(f"train.device: invalid device {spec!r}: {exc}") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"train.device is {spec!r} but CUDA is not available (use 'auto' or 'cpu')")
        if device.index is None:
            device = torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    return device


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise InputError(f"environment variable {name}={value!r} is not an integer") from exc


def setup(device_spec: str = "auto", timeout_s: float = 1800.0) -> DistInfo:
    """Initialise the process group when launched by torchrun (``WORLD_SIZE`` > 1); otherwise a no-op.

    Reuses a process group that already exists (e.g. created by the caller).
    """
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    if is_initialized():
        world, rank = dist.get_world_size(), dist.get_rank()
        device = resolve_device(device_spec, local_rank)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        return DistInfo(rank, world, local_rank, device, initialized_here=False)
    device = resolve_device(device_spec, local_rank)
    if world <= 1:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        return DistInfo(0, 1, 0, device, initialized_here=False)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(
        backend=backend,
        timeout=datetime.timedelta(seconds=timeout_s),
        **({"device_id": device} if device.type == "cuda" else {}),
    )
    rank, world = dist.get_rank(), dist.get_world_size()
    logger.info("process group ready: backend %s, rank %d of %d, device %s", backend, rank, world, device)
    return DistInfo(rank, world, local_rank, device, initialized_here=True)


def cleanup(info: DistInfo | None) -> None:
    """Destroy the process group if :func:`setup` created it.

    Objects that still hold the group (a dropped DDP wrapper whose reducer sits in a reference cycle) are
    collected first, so the group's threads end here rather than during interpreter shutdown.
    """
    if info is not None and info.initialized_here and is_initialized():
        gc.collect()
        dist.destroy_process_group()


def barrier() -> None:
    if is_initialized():
        dist.barrier()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum over ranks (a copy; identity in one process)."""
    if not is_initialized():
        return t
    out = t.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def all_reduce_max(t: torch.Tensor) -> torch.Tensor:
    if not is_initialized():
        return t
    out = t.clone()
    dist.all_reduce(out, op=dist.ReduceOp.MAX)
    return out


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` in rank order (``[obj]`` in one process)."""
    if not is_initialized():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if not is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def broadcast_buffers(module: torch.nn.Module, src: int = 0) -> None:
    """Copy ``src``'s persistent buffers (e.g. BatchNorm running statistics) to every rank, in place.

    DDP broadcasts buffers at the start of each forward, so after the last step each rank holds its own
    running statistics; call this before validating or checkpointing so that every rank holds the same model.
    """
    if not is_initialized():
        return
    for mod in module.modules():
        skip = getattr(mod, "_non_persistent_buffers_set", set())
        for name, buf in mod.named_buffers(recurse=False):
            if buf is not None and name not in skip:
                dist.broadcast(buf.data, src=src)


def shard_indices(n: int, rank: int, world_size: int) -> Sequence[int]:
    """Indices of ``n`` samples owned by ``rank``: strided, no padding; each sample on exactly one rank."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"invalid rank {rank} of world size {world_size}")
    return range(rank, n, world_size)
