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
    amp: bool = True  # mixed precision on CUDA only
    sync_bn: bool = False
    init_from: str | None = None  # stage 2: start from this checkpoint's weights (fresh optimiser)
    log_every: int = 20
    ckpt_every: int = 1000
    val_every: int = 1000


@dataclass(frozen=True)
class EvalConfig:
    batch_size: int = 32
    num_workers: int = 2
    out_dir: str = "runs/eval"
