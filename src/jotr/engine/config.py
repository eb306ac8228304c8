"""Training and evaluation sections of the config tree (owned by ``jotr.engine``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class TrainConfig:
    out_dir: str = "runs/default"
    seed: int = 0
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:1" ...
    batch_size: int = 32  # per process
    epochs: int = 18
    max_steps: int | None = None  # stop after this many optimiser steps (overrides epochs)
    lr: float = 1e-4
    lr_backbone: float = 1e-4
    weight_decay: float = 1e-4
    lr_schedule: Literal["constant", "step", "cosine"] = "constant"
    lr_decay_epochs: tuple[int, ...] = ()
    lr_decay_factor: float = 0.1
    warmup_steps: int = 0
    grad_clip: float | None = None
    amp: bool = True  # mixed precision on CUDA only (autocast + GradScaler with dynamic scaling)
    amp_dtype: Literal["float16", "bfloat16"] = "float16"  # CUDA autocast dtype (bfloat16 needs no scaler)
    # CPU autocast to bfloat16: true / false, or "auto" = on when a measured bf16 matmul is >= 1.2x faster
    # than fp32 on this machine (jotr.engine.precision)
    cpu_bf16: Literal[False, True, "auto"] = False
    # Wall-clock budget: stop after this many minutes of training (summed over resumes; validation and
    # checkpointing included), with a final validation and checkpoint. None = no limit.
    max_minutes: float | None = None
    sync_bn: bool = False
    find_unused_parameters: bool = False  # DDP option; needed only if some parameter gets no gradient
    init_from: str | None = None  # stage 2: start from this checkpoint's weights (fresh optimiser)
    log_every: int = 20
    ckpt_every: int = 1000
    val_every: int = 1000
    progress: bool = True  # tqdm progress bar (rank 0)
    tensorboard: bool = True  # TensorBoard event files in <out_dir>/tb (rank 0)

    def __post_init__(self) -> None:
        _check(0 <= self.seed < 2**32, "seed", self.seed, "in [0, 2^32)")
        _check(bool(self.out_dir.strip()), "out_dir", self.out_dir, "a folder name (not empty)")
        _check(self.batch_size >= 1, "batch_size", self.batch_size, ">= 1")
        _check(self.epochs >= 1, "epochs", self.epochs, ">= 1")
        if self.max_steps is not None:
            _check(self.max_steps >= 1, "max_steps", self.max_steps, ">= 1 (or null: train.epochs)")
        for name in ("lr", "lr_backbone", "weight_decay", "lr_decay_factor"):
            value = getattr(self, name)
            _check(math.isfinite(value) and value >= 0, name, value, "a finite number >= 0")
        if self.grad_clip is not None:
            _check(
                math.isfinite(self.grad_clip) and self.grad_clip >= 0,
                "grad_clip",
                self.grad_clip,
                "a finite number >= 0 (or null)",
            )
        if self.max_minutes is not None:
            m = self.max_minutes
            _check(math.isfinite(m) and m > 0, "max_minutes", m, "a positive number of minutes (or null)")
        for name in ("warmup_steps", "log_every", "ckpt_every", "val_every"):
            _check(getattr(self, name) >= 0, name, getattr(self, name), ">= 0")
        _check(all(e >= 0 for e in self.lr_decay_epochs), "lr_decay_epochs", self.lr_decay_epochs, ">= 0")


@dataclass(frozen=True)
class EvalConfig:
    batch_size: int = 32
    num_workers: int = 2
    out_dir: str = "runs/eval"
    # Bin edges of the person's visible fraction for the error-vs-occlusion table and plot.
    visibility_bins: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    save_per_sample: bool = True  # also write per-sample errors (CSV)

    def __post_init__(self) -> None:
        _check(self.batch_size >= 1, "batch_size", self.batch_size, ">= 1")
        _check(self.num_workers >= 0, "num_workers", self.num_workers, ">= 0")
        _check(bool(self.out_dir.strip()), "out_dir", self.out_dir, "a folder name (not empty)")
        bins = self.visibility_bins
        _check(
            len(bins) >= 2
            and all(math.isfinite(b) for b in bins)
            and all(a < b for a, b in zip(bins, bins[1:])),
            "visibility_bins",
            bins,
            "at least two increasing finite edges",
        )


def _check(ok: bool, name: str, value: object, expected: str) -> None:
    """ValueError (a ConfigError once the config loader wraps it) naming the key, the value and the rule."""
    if not ok:
        raise ValueError(f"{name} must be {expected}, got {value!r}")
