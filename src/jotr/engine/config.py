"""Training and evaluation sections of the config tree (owned by ``jotr.engine``)."""

from __future__ import annotations

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
    cpu_bf16: bool = False  # CPU autocast to bfloat16 (on CPUs with BF16 support)
    sync_bn: bool = False
    find_unused_parameters: bool = False  # DDP option; needed only if some parameter gets no gradient
    init_from: str | None = None  # stage 2: start from this checkpoint's weights (fresh optimiser)
    log_every: int = 20
    ckpt_every: int = 1000
    val_every: int = 1000
    progress: bool = True  # tqdm progress bar (rank 0)
    tensorboard: bool = True  # TensorBoard event files in <out_dir>/tb (rank 0)


@dataclass(frozen=True)
class EvalConfig:
    batch_size: int = 32
    num_workers: int = 2
    out_dir: str = "runs/eval"
    # Bin edges of the person's visible fraction for the error-vs-occlusion table and plot.
    visibility_bins: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    save_per_sample: bool = True  # also write per-sample errors (CSV)
