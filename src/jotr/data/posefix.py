"""Detector-like corruption of ground-truth 2D keypoints (PoseFix-style error model, jotr-reference §3).

A real 2D pose detector makes a few characteristic mistakes. Following the taxonomy of PoseFix (Moon et al.,
CVPR 2019), every annotated joint independently becomes one of:

* ``GOOD``      -- a small localisation error (OKS of the joint above 0.85), high confidence;
* ``JITTER``    -- a moderate error (OKS between 0.5 and 0.85), medium confidence;
* ``MISS``      -- not detected at all: confidence 0 and coordinates (0, 0) (typical for hidden joints);
* ``INVERSION`` -- placed on the left/right counterpart of the joint (e.g. the left knee on the right knee);
* ``SWAP``      -- placed on the same joint of a nearby *other* person (crowds, person-person occlusion).

The per-joint probabilities depend on whether the joint is occluded (hidden joints are missed, inverted and
swapped far more often) and on the joint (wrists and ankles are harder than hips). Errors are measured in
units of the COCO OKS falloff ``k_j * s``, where ``s`` is the person scale in pixels and ``k_j`` the per-joint
constant (twice the COCO keypoint sigma; joints that COCO lacks get the sigma of the closest COCO joint).

All randomness comes from the ``rng`` argument, so a seeded generator reproduces the corruption exactly; the
number of random draws does not depend on the outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from jotr.body.joint_sets import JOTR30
from jotr.errors import InputError

GOOD, JITTER, MISS, INVERSION, SWAP, UNANNOTATED = 0, 1, 2, 3, 4, 5
ERROR_NAMES = ("good", "jitter", "miss", "inversion", "swap", "unannotated")

_NUM_JOINTS = len(JOTR30)

# COCO keypoint sigmas (Lin et al. 2014) per JOTR30 joint; non-COCO joints borrow the closest COCO joint's.
_SIGMA_BY_NAME = {
    "Pelvis": 0.107,
    "L_Hip": 0.107,
    "R_Hip": 0.107,
    "Spine1": 0.107,
    "L_Knee": 0.087,
    "R_Knee": 0.087,
    "Spine2": 0.107,
    "L_Ankle": 0.089,
    "R_Ankle": 0.089,
    "Spine3": 0.079,
    "L_Foot": 0.089,
    "R_Foot": 0.089,
    "Neck": 0.079,
    "L_Collar": 0.079,
    "R_Collar": 0.079,
    "Head": 0.035,
    "L_Shoulder": 0.079,
    "R_Shoulder": 0.079,
    "L_Elbow": 0.072,
    "R_Elbow": 0.072,
    "L_Wrist": 0.062,
    "R_Wrist": 0.062,
    "L_Hand": 0.062,
    "R_Hand": 0.062,
    "Nose": 0.026,
    "L_Eye": 0.025,
    "R_Eye": 0.025,
    "L_Ear": 0.035,
    "R_Ear": 0.035,
    "Head_top": 0.035,
}
OKS_K = np.array([2.0 * _SIGMA_BY_NAME[n] for n in JOTR30.names], dtype=np.float64)  # (30,)

# Relative difficulty per joint: extremities are jittered/missed more often than the torso.
_HARD = {"L_Wrist", "R_Wrist", "L_Hand", "R_Hand", "L_Ankle", "R_Ankle", "L_Foot", "R_Foot"}
_MEDIUM = {"L_Elbow", "R_Elbow", "L_Knee", "R_Knee", "L_Ear", "R_Ear", "Head_top"}
_DIFFICULTY = np.array(
    [1.5 if n in _HARD else 1.2 if n in _MEDIUM else 1.0 for n in JOTR30.names], dtype=np.float64
)
_FLIP = np.array(JOTR30.flip_permutation, dtype=np.int64)  # (30,)
_HAS_MIRROR = _FLIP != np.arange(_NUM_JOINTS)


@dataclass(frozen=True)
class ErrorRates:
    """Base probability of each error type for a joint of average difficulty (scaled per joint, capped)."""

    jitter: float
    miss: float
    inversion: float
    swap: float


VISIBLE_RATES = ErrorRates(jitter=0.10, miss=0.02, inversion=0.015, swap=0.02)
OCCLUDED_RATES = ErrorRates(jitter=0.18, miss=0.35, inversion=0.05, swap=0.12)
SWAP_RADIUS = 0.6  # a joint can be taken from another person whose same joint lies within this many scales
GOOD_OKS = 0.85  # GOOD errors stay above this OKS, JITTER errors lie in [JITTER_OKS, GOOD_OKS]
JITTER_OKS = 0.5
CONFIDENCE = {  # uniform ranges per error type
    GOOD: (0.75, 1.0),
    JITTER: (0.45, 0.85),
    INVERSION: (0.3, 0.8),
    SWAP: (0.3, 0.8),
}


def person_scale(joints: np.ndarray, valid: np.ndarray) -> float:
    """Default person scale (px): ``sqrt(w * h)`` of the valid joints' box, >= a quarter of its long side."""
    pts = joints[valid > 0]
    if len(pts) < 2:
        return 1.0
    w, h = np.ptp(pts[:, 0]), np.ptp(pts[:, 1])
    return float(max(np.sqrt(w * h), 0.25 * max(w, h), 1.0))


def _oks_radius(oks: np.ndarray | float, k: np.ndarray, scale: float) -> np.ndarray:
    """Distance (px) at which a joint's OKS ``exp(-d^2 / (2 s^2 k^2))`` equals ``oks``."""
    return np.sqrt(-2.0 * np.log(oks)) * k * scale


def _check(name: str, arr: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.shape != shape:
        raise InputError(f"corrupt_keypoints: {name} must have shape {shape}, got {arr.shape}")
    return arr


def corrupt_keypoints_with_types(
    joints: np.ndarray,
    valid: np.ndarray,
    rng: np.random.Generator,
    *,
    occluded: np.ndarray | None = None,
    others: Sequence[np.ndarray] = (),
    box_size: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`corrupt_keypoints`, also returning the (30,) int error type of each joint (``GOOD``...)."""
    joints = _check("joints", joints, (_NUM_JOINTS, 2)).astype(np.float64)
    valid_b = _check("valid", valid, (_NUM_JOINTS,)).astype(bool)
    if not np.all(np.isfinite(joints[valid_b])):
        raise InputError("corrupt_keypoints: joints marked valid contain non-finite values")
    joints = np.where(valid_b[:, None], joints, 0.0)  # unannotated joints may hold NaN
    occ = np.zeros(_NUM_JOINTS, bool)
    if occluded is not None:
        occ = _check("occluded", occluded, (_NUM_JOINTS,)).astype(bool)
    other_arr = [_check(f"others[{i}]", o, (_NUM_JOINTS, 2)).astype(np.float64) for i, o in enumerate(others)]
    scale = person_scale(joints, valid_b) if box_size is None else float(box_size)
    if not np.isfinite(scale) or scale <= 0:
        raise InputError(f"corrupt_keypoints: box_size must be a positive number, got {box_size}")

    # Candidate donors for SWAP: the nearest other person's same joint within SWAP_RADIUS scales.
    donor = np.full((_NUM_JOINTS, 2), np.nan)
    if other_arr:
        stack = np.stack(other_arr)  # (P, 30, 2)
        dist = np.linalg.norm(stack - joints[None], axis=-1)  # (P, 30)
        dist = np.where(np.isfinite(dist), dist, np.inf)  # non-finite joints of others are never donors
        nearest = np.argmin(dist, axis=0)  # (30,)
        close = dist[nearest, np.arange(_NUM_JOINTS)] <= SWAP_RADIUS * scale
        donor[close] = stack[nearest[close], np.arange(_NUM_JOINTS)[close]]
    can_swap = np.isfinite(donor[:, 0])

    # Per-joint probabilities (visible vs occluded base rates, scaled by difficulty).
    def rate(attr: str) -> np.ndarray:
        return np.where(occ, getattr(OCCLUDED_RATES, attr), getattr(VISIBLE_RATES, attr)) * _DIFFICULTY

    p_miss = rate("miss")
    p_inv = np.where(_HAS_MIRROR, rate("inversion"), 0.0)
    p_swap = np.where(can_swap, rate("swap"), 0.0)
    p_jit = rate("jitter")
    probs = np.stack([p_miss, p_inv, p_swap, p_jit], axis=1)  # (30, 4)
    total = probs.sum(axis=1, keepdims=True)
    probs = np.where(total > 0.9, probs * 0.9 / np.maximum(total, 1e-12), probs)  # keep >= 10% GOOD
    cum = np.cumsum(probs, axis=1)

    # Fixed number of draws, independent of the outcome.
    u_type = rng.random(_NUM_JOINTS)
    u_radius = rng.random(_NUM_JOINTS)
    angle = rng.uniform(0.0, 2.0 * np.pi, _NUM_JOINTS)
    u_conf = rng.random(_NUM_JOINTS)
    small = rng.normal(size=(_NUM_JOINTS, 2))

    kind = np.full(_NUM_JOINTS, GOOD, np.int64)
    kind[u_type < cum[:, 3]] = JITTER
    kind[u_type < cum[:, 2]] = SWAP
    kind[u_type < cum[:, 1]] = INVERSION
    kind[u_type < cum[:, 0]] = MISS
    kind[~valid_b] = UNANNOTATED
    # An inversion onto an unannotated counterpart would leak nothing useful: treat it as a miss.
    kind[(kind == INVERSION) & ~valid_b[_FLIP]] = MISS

    r_good = _oks_radius(GOOD_OKS, OKS_K, scale)  # (30,)
    r_jit = _oks_radius(JITTER_OKS, OKS_K, scale)
    direction = np.stack([np.cos(angle), np.sin(angle)], axis=1)  # (30, 2)
    # GOOD: Gaussian noise with 2.5 sigma at the OKS-0.85 radius (clipped to it); mirrors/donors get the same.
    noise = small * (r_good / 2.5)[:, None]
    norm = np.linalg.norm(noise, axis=1, keepdims=True)
    noise = noise * np.minimum(1.0, r_good[:, None] / np.maximum(norm, 1e-12))

    out = np.zeros((_NUM_JOINTS, 3), np.float64)
    xy = joints + noise
    jit = kind == JITTER
    xy[jit] = joints[jit] + direction[jit] * (r_good + u_radius * (r_jit - r_good))[jit, None]
    inv = kind == INVERSION
    xy[inv] = joints[_FLIP[inv]] + noise[inv]
    swp = kind == SWAP
    xy[swp] = donor[swp] + noise[swp]
    out[:, :2] = xy

    lo = np.zeros(_NUM_JOINTS)
    hi = np.zeros(_NUM_JOINTS)
    for code, (a, b) in CONFIDENCE.items():
        lo[kind == code], hi[kind == code] = a, b
    out[:, 2] = lo + u_conf * (hi - lo)
    gone = (kind == MISS) | (kind == UNANNOTATED)
    out[gone] = 0.0
    return out.astype(np.float32), kind


def corrupt_keypoints(
    joints: np.ndarray,
    valid: np.ndarray,
    rng: np.random.Generator,
    *,
    occluded: np.ndarray | None = None,
    others: Sequence[np.ndarray] = (),
    box_size: float | None = None,
) -> np.ndarray:
    """Detector-like 2D keypoints from ground truth.

    Args:
        joints: (30, 2) GT 2D joints, image pixels, JOTR30 order.
        valid: (30,) bool or 0/1, the GT joint is annotated. Unannotated joints come out missing.
        rng: the only source of randomness.
        occluded: (30,) bool, the joint is hidden (raises its miss / inversion / swap rates), if known.
        others: other persons' (30, 2) joints in the same image (image pixels), donors of SWAP errors.
        box_size: person scale in pixels; default :func:`person_scale` of the valid joints.

    Returns:
        (30, 3) float32: x, y image pixels and confidence in [0, 1]; missing joints are (0, 0, 0).
    """
    out, _ = corrupt_keypoints_with_types(
        joints, valid, rng, occluded=occluded, others=others, box_size=box_size
    )
    return out
