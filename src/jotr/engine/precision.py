"""CPU bfloat16 autocast: use it where this machine's bf16 matrix products are faster than fp32.

Whether bf16 pays off on a CPU depends on the processor (AMX/AVX-512-BF16 kernels): on one AMD EPYC here a
2048-square bf16 matmul ran at 379 GFLOP/s against 131 in fp32, on an Intel Xeon bf16 was slower.
``train.cpu_bf16: auto`` measures both once per process (:func:`bf16_matmul_speedup`, ~0.1-0.3 s) and turns
autocast on when bf16 is at least :data:`AUTO_MIN_SPEEDUP` times faster.
"""

from __future__ import annotations

import functools
import logging
import time

import torch

logger = logging.getLogger(__name__)

AUTO_MIN_SPEEDUP = 1.2  # bf16 must beat fp32 by this factor to be chosen automatically


def _matmul_seconds(dtype: torch.dtype, size: int, reps: int) -> float:
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    torch.mm(a, b)  # warm-up (kernel selection, page faults)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return best


@functools.cache
def bf16_matmul_speedup(size: int = 1024, reps: int = 3) -> float:
    """fp32 time / bf16 time of a ``size``-square CPU matmul with the current thread count (best of ``reps``;
    measured once per process and size)."""
    fp32 = _matmul_seconds(torch.float32, size, reps)
    bf16 = _matmul_seconds(torch.bfloat16, size, reps)
    speedup = fp32 / max(bf16, 1e-12)
    logger.info(
        "CPU matmul %d^2: fp32 %.1f GFLOP/s, bf16 %.1f GFLOP/s (bf16 %.2fx)",
        size,
        2 * size**3 / fp32 / 1e9,
        2 * size**3 / bf16 / 1e9,
        speedup,
    )
    return speedup


def use_cpu_bf16(setting: bool | str) -> bool:
    """``train.cpu_bf16`` (true / false / "auto") -> whether to autocast to bfloat16 on the CPU."""
    if setting == "auto":
        return bf16_matmul_speedup() >= AUTO_MIN_SPEEDUP
    return bool(setting)
