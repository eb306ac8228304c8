"""Body-model section of the config tree (owned by ``jotr.body``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class BodyConfig:
    # Which implementation: "anny" (open, embedded default), "smpl" (user files, paper-faithful),
    # "toy" (procedural, licence-free SMPL format: tests, benchmarks; docs/toy_body.md).
    kind: Literal["anny", "smpl", "toy"] = "anny"
    # Anny: rig/topology. The reduced pair is the training default on CPU (1229 vertices, same joints);
    # the full mesh ("anny"/"anny") is used for rendering.
    anny_rig: str = "anny-notoes-nohands"
    anny_topology: str = "notoes_collapse10pc"
    # SMPL: a model file (.pkl or .npz) or a folder holding SMPL_{NEUTRAL,MALE,FEMALE}.{pkl,npz}.
    smpl_model_path: str | None = None
    gender: Literal["neutral", "male", "female"] = "neutral"
    # Optional SMPL regressor files of the official code (17x6890 H36M, extra joints incl. head top).
    smpl_j_regressor_h36m: str | None = None
    smpl_j_regressor_extra: str | None = None
