"""Training-time corruption of the 2D-pose input that only the image can undo (issue 22).

A detector loses whole limbs behind an occluder and sometimes reports a neighbour's limb as the person's own.
When the training input never shows this, the network learns to read the pose from the keypoints alone and
ignores the image. Both functions change the *input* keypoints only; the targets are untouched, so the loss
sees the masked joints as any other joint.

* :func:`drop_limbs`: each limb (:data:`jotr.body.joint_sets.LIMBS`: shoulder/elbow/wrist/hand or
  hip/knee/ankle/foot of one side) loses all its input keypoints with probability ``prob``;
* :func:`swap_in_neighbour_limb`: one limb of the input is replaced by the same limb of another person of the
  image (a plausible wrong keypoint set part, as a detector's association error).

Randomness comes only from the ``rng`` argument.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jotr.body.joint_sets import limb_indices

LIMBS_30 = limb_indices("jotr30")  # per limb, indices into the 30 input joints


def drop_limbs(conf: np.ndarray, rng: np.random.Generator, prob: float) -> tuple[np.ndarray, np.ndarray]:
    """(30,) keypoint confidences -> a copy with each limb's joints set to 0 with probability ``prob``, and
    the (4,) bool array of dropped limbs. Always draws 4 numbers."""
    draw = rng.random(len(LIMBS_30))
    dropped = draw < prob
    out = np.array(conf, dtype=np.float64, copy=True)
    for k, idx in enumerate(LIMBS_30):
        if dropped[k]:
            out[list(idx)] = 0.0
    return out, dropped


def swap_in_neighbour_limb(
    xy: np.ndarray,
    conf: np.ndarray,
    others: Sequence[np.ndarray],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Replace one limb of the input keypoints by that limb of another person.

    Args:
        xy: (30, 2) input keypoints (crop pixels).
        conf: (30,) their confidences.
        others: the other persons' (30, 2) joints in the same pixel frame; non-finite or far-away entries
            (outside the crop) are not usable.
        rng: the only source of randomness.

    Returns:
        Copies of ``xy`` and ``conf`` (the donor's joints with confidence 1 where the donor has them; the
        person's own keypoints of that limb are dropped where it has none) and the limb index (-1 = nothing
        swapped: no other person).
    """
    xy = np.array(xy, dtype=np.float64, copy=True)
    conf = np.array(conf, dtype=np.float64, copy=True)
    if not others:
        return xy, conf, -1
    donor = np.asarray(others[int(rng.integers(len(others)))], dtype=np.float64)
    limb = int(rng.integers(len(LIMBS_30)))
    idx = list(LIMBS_30[limb])
    usable = np.isfinite(donor[idx]).all(axis=1) & (np.abs(donor[idx]) < 1e6).all(axis=1)
    xy[idx] = np.where(usable[:, None], donor[idx], xy[idx])
    conf[idx] = np.where(usable, 1.0, 0.0)
    return xy, conf, limb
