"""Optimiser and learning-rate schedule of the reference recipe (jotr-reference §3).

AdamW with three parameter groups: the image backbone (``lr_backbone``), the rest of the network (``lr``),
and the criterion's learned loss weights (``lr``, weight decay 0). The schedule is a per-step multiplier
(linear warm-up, then constant / step decay at given epochs / cosine to zero), so resuming at any step
reproduces it exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from jotr.engine.checkpoint import unwrap_model
from jotr.engine.config import TrainConfig

GROUP_NAMES = ("backbone", "rest", "loss_weights")


def param_groups(model: nn.Module, criterion: nn.Module | None, cfg: TrainConfig) -> list[dict]:
    """AdamW groups; frozen parameters (``requires_grad=False``, e.g. the VPoser decoder) are left out.

    The backbone is ``model.backbone`` when the network has that sub-module, else parameters whose name starts
    with ``backbone.``.
    """
    net = unwrap_model(model)
    backbone_module = getattr(net, "backbone", None)
    backbone_ids = (
        {id(p) for p in backbone_module.parameters()} if isinstance(backbone_module, nn.Module) else set()
    )
    backbone, rest = [], []
    for name, p in net.named_parameters():
        if not p.requires_grad:
            continue
        if id(p) in backbone_ids or name.startswith("backbone."):
            backbone.append(p)
        else:
            rest.append(p)
    weights = (
        [p for p in unwrap_model(criterion).parameters() if p.requires_grad] if criterion is not None else []
    )
    groups = [
        {"name": "backbone", "params": backbone, "lr": cfg.lr_backbone, "weight_decay": cfg.weight_decay},
        {"name": "rest", "params": rest, "lr": cfg.lr, "weight_decay": cfg.weight_decay},
        {"name": "loss_weights", "params": weights, "lr": cfg.lr, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, criterion: nn.Module | None, cfg: TrainConfig) -> torch.optim.AdamW:
    groups = param_groups(model, criterion, cfg)
    if not groups:
        raise ValueError("no trainable parameters")
    params = [p for g in groups for p in g["params"]]
    # the fused kernel (CPU and CUDA) is several times faster than the per-parameter loop for AdamW's update
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused or None)


def lr_multiplier(cfg: TrainConfig, steps_per_epoch: int, total_steps: int) -> Callable[[int], float]:
    """Step -> learning-rate factor (applied to every group's base lr)."""
    warmup = max(int(cfg.warmup_steps), 0)
    decay_steps = sorted(int(e) * max(steps_per_epoch, 1) for e in cfg.lr_decay_epochs)

    def factor(step: int) -> float:
        f = 1.0
        if cfg.lr_schedule == "step":
            f = cfg.lr_decay_factor ** sum(1 for s in decay_steps if step >= s)
        elif cfg.lr_schedule == "cosine":
            span = max(total_steps - warmup, 1)
            t = min(max(step - warmup, 0) / span, 1.0)
            f = 0.5 * (1.0 + math.cos(math.pi * t))
        if warmup > 0 and step < warmup:
            f *= (step + 1) / warmup
        return f

    return factor


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-optimiser-step LambdaLR (call ``scheduler.step()`` after every ``optimizer.step()``)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_multiplier(cfg, steps_per_epoch, total_steps))
