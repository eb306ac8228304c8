"""Criterion section of the config tree (owned by ``jotr.losses``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class LossConfig:
    # Learned uncertainty weighting: one weight per term (official code), the paper's three groups, or none.
    weighting: Literal["per_term", "grouped", "none"] = "per_term"
    joint_cam_scale: float = 5.0  # fixed factor on the root-relative 3D joint term (official code)
    use_contrastive: bool = False  # stage 2 (fine-tuning) turns this on
    j2j_weight: float = 0.1  # official code 0.1; paper text 0.01
    j2n_weight: float = 0.1
    temperature: float = 0.07
    j2j_anchors: int = 100
    j2j_positives: int = 128
    j2j_negatives: int = 256
    j2j_positive_source: Literal["gt", "pred"] = "gt"
    j2n_anchors: int = 100
    j2n_positives: int = 1024
    j2n_negatives: int = 2048

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"loss.temperature must be > 0, got {self.temperature}")
        for name in (
            "j2j_anchors",
            "j2j_positives",
            "j2j_negatives",
            "j2n_anchors",
            "j2n_positives",
            "j2n_negatives",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"loss.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("joint_cam_scale", "j2j_weight", "j2n_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"loss.{name} must be >= 0, got {getattr(self, name)}")
