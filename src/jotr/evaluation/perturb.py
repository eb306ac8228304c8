"""Input perturbations of the evaluation: does the network use the image? (issue 22)

Three modes give the rows of every image-dependence table:

* ``normal`` -- the inputs as the dataset gives them;
* ``image_removed`` -- every crop replaced by a constant mid-grey (0.5 in every channel; the keypoints
  unchanged): a network that reads the image gets worse, a keypoint lifter stays exactly the same;
* ``limbs_withheld`` -- of the four limbs (:data:`jotr.body.joint_sets.LIMBS`: left/right arm = shoulder,
  elbow, wrist, hand; left/right leg = hip, knee, ankle, foot) ``num_limbs`` (default 2, i.e. half of the limb
  keypoints) are withheld from every person: their input keypoints get validity 0, as a detector's missed
  joints. The limbs are drawn per person from ``seed`` and the sample id alone (CRC-32 of both), so every
  model, run and batch size withholds the same joints.

The limb draw is made in every mode, so the error on those joints (``withheld_mpjpe``: mean root-relative
error over the H36M evaluation joints of the drawn limbs: shoulder/elbow/wrist, hip/knee/ankle) is reported
for the normal inputs too: "limbs withheld" vs "normal" on that column is what the image has to recover.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch

from jotr.body.joint_sets import H36M_EVAL_14, limb_indices
from jotr.structures import Inputs

Mode = Literal["normal", "image_removed", "limbs_withheld"]
MODES: tuple[str, ...] = ("normal", "image_removed", "limbs_withheld")
MODE_LABELS: dict[str, str] = {
    "normal": "normal",
    "image_removed": "image removed",
    "limbs_withheld": "limbs withheld",
}
CONSTANT_IMAGE_VALUE = 0.5  # mid-grey, RGB in [0, 1]

_LIMBS_30 = limb_indices("jotr30")  # per limb, indices into the 30 input keypoints
_LIMBS_H36M = limb_indices("h36m17")
# per limb, positions within the 14 evaluation joints
_LIMBS_EVAL14 = tuple(tuple(H36M_EVAL_14.index(j) for j in limb) for limb in _LIMBS_H36M)


@dataclass(frozen=True)
class InputPerturbation:
    """How the evaluation changes the inputs (see the module docstring)."""

    image: Literal["real", "constant"] = "real"
    withhold_limbs: bool = False  # set the drawn limbs' input keypoints invalid
    num_limbs: int = 2  # limbs drawn per person (of 4)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.image not in ("real", "constant"):
            raise ValueError(f"image must be 'real' or 'constant', got {self.image!r}")
        if not 1 <= self.num_limbs <= len(_LIMBS_30):
            raise ValueError(f"num_limbs must be in 1..{len(_LIMBS_30)}, got {self.num_limbs}")

    @property
    def mode(self) -> str:
        """Row name: normal / image_removed / limbs_withheld (or ``image_removed+limbs_withheld``)."""
        parts = (["image_removed"] if self.image == "constant" else []) + (
            ["limbs_withheld"] if self.withhold_limbs else []
        )
        return "+".join(parts) or "normal"

    @staticmethod
    def for_mode(mode: str, *, num_limbs: int = 2, seed: int = 0) -> InputPerturbation:
        if mode not in MODES:
            raise ValueError(f"unknown perturbation mode {mode!r}; known: {', '.join(MODES)}")
        return InputPerturbation(
            image="constant" if mode == "image_removed" else "real",
            withhold_limbs=mode == "limbs_withheld",
            num_limbs=num_limbs,
            seed=seed,
        )


def drawn_limbs(sample_ids: Sequence[str], num_limbs: int, seed: int) -> np.ndarray:
    """(N, 4) bool: the limbs drawn for each sample, from ``seed`` and its id only."""
    out = np.zeros((len(sample_ids), len(_LIMBS_30)), dtype=bool)
    for i, sid in enumerate(sample_ids):
        rng = np.random.default_rng(zlib.crc32(f"{seed}:{sid}".encode()))
        out[i, rng.choice(len(_LIMBS_30), size=num_limbs, replace=False)] = True
    return out


def limb_mask(limbs: np.ndarray, groups: tuple[tuple[int, ...], ...], num_joints: int) -> np.ndarray:
    """(N, 4) drawn limbs -> (N, num_joints) bool over a joint set given each limb's indices in it."""
    mask = np.zeros((limbs.shape[0], num_joints), dtype=bool)
    for k, idx in enumerate(groups):
        mask[np.ix_(limbs[:, k], list(idx))] = True
    return mask


def withheld_eval_joints(sample_ids: Sequence[str], p: InputPerturbation) -> np.ndarray:
    """(N, 14) bool: the evaluation joints of each sample's drawn limbs."""
    return limb_mask(drawn_limbs(sample_ids, p.num_limbs, p.seed), _LIMBS_EVAL14, len(H36M_EVAL_14))


def apply(inputs: Inputs, sample_ids: Sequence[str], p: InputPerturbation) -> Inputs:
    """The perturbed inputs (new tensors; ``inputs`` is not changed)."""
    image, valid = inputs.image, inputs.keypoints_valid
    if p.image == "constant":
        image = torch.full_like(image, CONSTANT_IMAGE_VALUE)
    if p.withhold_limbs:
        drop = limb_mask(drawn_limbs(sample_ids, p.num_limbs, p.seed), _LIMBS_30, valid.shape[1])
        drop_t = torch.as_tensor(drop, device=valid.device)
        valid = torch.where(drop_t, torch.zeros_like(valid), valid)
    return replace(inputs, image=image, keypoints_valid=valid)
