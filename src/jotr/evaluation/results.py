"""Evaluation results as plain dataclasses: per-sample errors, per-dataset metrics, the whole result.

The evaluator (:mod:`jotr.evaluation.evaluator`) fills them; the report (:mod:`jotr.evaluation.report`) and
the text table (:mod:`jotr.evaluation.table`) read them. Units: mm.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jotr.body.joint_sets import H36M17, H36M_EVAL_14
from jotr.evaluation.table import format_table

EVAL_JOINT_NAMES: tuple[str, ...] = tuple(H36M17.names[i] for i in H36M_EVAL_14)


@dataclass
class SampleErrors:
    """Per-sample results of one dataset (N = evaluated samples)."""

    index: np.ndarray  # (N,) int, position in the dataset
    sample_id: list[str]  # (N,)
    mpjpe: np.ndarray  # (N,) mm
    pa_mpjpe: np.ndarray  # (N,) mm
    pve: np.ndarray  # (N,) mm
    joint_err: np.ndarray  # (N, 14) mm, per evaluation joint, root-relative, no alignment
    joint_err_pa: np.ndarray  # (N, 14) mm, after Procrustes
    visible_fraction: np.ndarray  # (N,) in [0, 1], NaN = unknown
    # (N, 14) bool, the evaluation joints of the limbs drawn for each sample (jotr.evaluation.perturb); their
    # input keypoints are withheld in the "limbs withheld" mode. None: not drawn.
    withheld: np.ndarray | None = None

    @staticmethod
    def concat(parts: Sequence[SampleErrors]) -> SampleErrors:
        parts = [p for p in parts if len(p.index)]
        if not parts:
            return SampleErrors.empty()
        out = SampleErrors(
            index=np.concatenate([p.index for p in parts]),
            sample_id=[s for p in parts for s in p.sample_id],
            mpjpe=np.concatenate([p.mpjpe for p in parts]),
            pa_mpjpe=np.concatenate([p.pa_mpjpe for p in parts]),
            pve=np.concatenate([p.pve for p in parts]),
            joint_err=np.concatenate([p.joint_err for p in parts]),
            joint_err_pa=np.concatenate([p.joint_err_pa for p in parts]),
            visible_fraction=np.concatenate([p.visible_fraction for p in parts]),
            withheld=None
            if any(p.withheld is None for p in parts)
            else np.concatenate([p.withheld for p in parts]),
        )
        order = np.argsort(out.index, kind="stable")
        return out.select(order)

    @staticmethod
    def empty() -> SampleErrors:
        z = np.zeros((0,))
        return SampleErrors(
            np.zeros((0,), dtype=np.int64), [], z, z, z, np.zeros((0, 14)), np.zeros((0, 14)), z
        )

    def select(self, idx: np.ndarray) -> SampleErrors:
        return SampleErrors(
            index=self.index[idx],
            sample_id=[self.sample_id[i] for i in idx],
            mpjpe=self.mpjpe[idx],
            pa_mpjpe=self.pa_mpjpe[idx],
            pve=self.pve[idx],
            joint_err=self.joint_err[idx],
            joint_err_pa=self.joint_err_pa[idx],
            visible_fraction=self.visible_fraction[idx],
            withheld=None if self.withheld is None else self.withheld[idx],
        )

    def __len__(self) -> int:
        return len(self.index)


@dataclass
class VisibilityBin:
    low: float  # visible fraction, inclusive
    high: float  # exclusive (inclusive for the last bin)
    count: int
    mpjpe: float  # mm (NaN when empty)
    pa_mpjpe: float
    pve: float


@dataclass
class DatasetMetrics:
    label: str  # "name/split"
    num_samples: int  # samples evaluated (each exactly once)
    num_skipped: int  # samples without GT body parameters
    mpjpe: float  # mm
    pa_mpjpe: float  # mm
    pve: float  # mm
    per_joint_mpjpe: dict[str, float]  # 14 evaluation joints, mm
    per_joint_pa_mpjpe: dict[str, float]
    by_visibility: list[VisibilityBin]
    samples: SampleErrors | None = None
    num_nonfinite: int = 0  # samples whose prediction was NaN/inf (their errors, and so the means, are NaN)
    mode: str = "normal"  # input perturbation (jotr.evaluation.perturb): normal | image_removed | ...
    withheld_mpjpe: float = math.nan  # mm, mean error over the drawn limbs' evaluation joints (NaN: none)

    def summary(self) -> dict[str, Any]:
        """JSON-friendly dict (no per-sample arrays)."""
        return {
            "dataset": self.label,
            "num_samples": self.num_samples,
            "num_skipped": self.num_skipped,
            "num_nonfinite": self.num_nonfinite,
            "mpjpe": self.mpjpe,
            "pa_mpjpe": self.pa_mpjpe,
            "pve": self.pve,
            "per_joint_mpjpe": self.per_joint_mpjpe,
            "per_joint_pa_mpjpe": self.per_joint_pa_mpjpe,
            "by_visibility": [vars(b) for b in self.by_visibility],
            "mode": self.mode,
            "withheld_mpjpe": self.withheld_mpjpe,
        }


@dataclass
class EvalResult:
    datasets: dict[str, DatasetMetrics]  # label -> metrics
    checkpoint: str | None = None
    step: int | None = None  # training step of the checkpoint
    files: dict[str, Path] = field(default_factory=dict)  # what was written (JSON, CSV, PNG)
    # dataset label -> mode (normal / image_removed / limbs_withheld) -> metrics; empty unless requested
    image_dependence: dict[str, dict[str, DatasetMetrics]] = field(default_factory=dict)

    def table(self) -> str:
        return format_table(self)
