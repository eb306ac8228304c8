"""Differentiable all-gather along the batch axis, for losses that need every rank's samples (contrastive).

Single process (torch.distributed not initialised, or world size 1): the tensor is returned as is and no
``torch.distributed`` collective is ever called, so CPU / one-GPU runs need no process group.

Gradient convention (and why it is right under DDP)
---------------------------------------------------
Every rank computes a loss ``L_r`` on the gathered batch. DDP's objective is the *mean* of the per-rank
losses, ``L = (1 / W) * sum_r L_r``: its all-reduce averages the parameter gradients over the ``W`` ranks. The
gradient of ``L`` with respect to rank ``r``'s local samples ``x_r`` is ``(1 / W) * sum_r' dL_r' / dx_r``:
every rank's loss depends on ``x_r``. So the backward here **all-reduces (sums) the incoming gradient over
ranks and returns the local slice**; DDP's averaging then supplies the ``1 / W``. Returning only the local
slice of the local gradient (the official code) drops the cross-rank terms and scales the result by ``1 / W``.

When all ranks draw the same samples (same generator state), ``L_r`` is identical on every rank and the result
equals the gradient of one process on the concatenated batch (tested with a 2-process gloo group).

Ranks may hold different batch sizes (a last, smaller batch): the sizes are exchanged first and the chunks are
padded to the largest one for the collective, then trimmed.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def distributed_world() -> tuple[int, int]:
    """(rank, world_size); (0, 1) when torch.distributed is unavailable or not initialised."""
    if not (dist.is_available() and dist.is_initialized()):
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


class _AllGatherCat(torch.autograd.Function):
    """all_gather + cat along dim 0; backward = local slice of the rank-summed gradient."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        rank, world = distributed_world()
        n = x.shape[0]
        size = torch.full((1,), n, device=x.device, dtype=torch.int64)
        sizes_t = [torch.zeros_like(size) for _ in range(world)]
        dist.all_gather(sizes_t, size)
        # one tiny host read per gather (distributed runs only): the per-rank batch sizes
        sizes = [int(s) for s in torch.cat(sizes_t).tolist()]
        n_max = max(sizes)
        x_c = x.contiguous()
        if n < n_max:
            pad = x_c.new_zeros((n_max - n, *x_c.shape[1:]))
            x_c = torch.cat([x_c, pad], dim=0)
        chunks = [torch.empty_like(x_c) for _ in range(world)]
        dist.all_gather(chunks, x_c)
        ctx.offset = sum(sizes[:rank])
        ctx.n = n
        return torch.cat([c[:s] for c, s in zip(chunks, sizes)], dim=0)

    @staticmethod
    def backward(ctx, grad_out: Tensor) -> Tensor:  # type: ignore[override]
        grad = grad_out.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.offset : ctx.offset + ctx.n]


def all_gather_cat(x: Tensor) -> Tensor:
    """(n_r, ...) on each rank -> (sum_r n_r, ...) in rank order; identity in a single process.

    Differentiable (see the module docstring for the gradient convention). Every rank must call it, in the
    same order, with tensors that agree in every dimension but the first and in dtype.
    """
    _, world = distributed_world()
    if world == 1:
        return x
    return _AllGatherCat.apply(x)
