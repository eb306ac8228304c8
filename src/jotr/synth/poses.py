"""Plausible random body poses: archetypes (standing, walking, sitting, reaching, bending, crouching)
written as per-bone Euler angles on the Anny rig's bone labels, varied randomly and clipped to joint limits.

Angles are in degrees about the axes of the **canonical body frame** (``jotr.body.base``: +X = the body's
left, +Y = up, +Z = facing direction); pose rotations are relative to the parent bone, whose axes coincide
with the canonical axes in the rest pose (Anny's ``local-ref`` parameterisation, SMPL-like). Sign cheat-sheet:

* rotation about +X: positive tips +Y towards +Z. A hanging limb (pointing -Y) swings *backwards*; so hip and
  shoulder flexion (limb forward) are negative, knee flexion is positive, elbow flexion negative, and a spine
  bend forward is positive.
* rotation about +Z: positive turns -Y towards +X, i.e. abducts a *left* limb; a right limb abducts with
  negative angles (mirrored automatically).
* rotation about +Y: twist / yaw (positive turns +Z towards +X).

Shared archetype entries give left-side values; right-side bones are mirrored (x kept, y and z negated). Each
archetype may also set the ``root`` rotation (a torso pitch for bending), applied before the placement yaw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ARCHETYPES = ("standing", "walking", "sitting", "reaching", "bending", "crouching")

# Joint limits (degrees; (min, max) per axis x, y, z) for left bones; right bones use the mirrored range.
# Bones not listed (twist segments, pelvis, eyes) stay at identity.
LIMITS: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "root": ((-10.0, 80.0), (-30.0, 30.0), (-15.0, 15.0)),
    "upperleg01": ((-125.0, 30.0), (-35.0, 35.0), (-20.0, 45.0)),
    "lowerleg01": ((0.0, 150.0), (-5.0, 5.0), (-5.0, 5.0)),
    "foot": ((-35.0, 35.0), (-15.0, 15.0), (-15.0, 15.0)),
    "spine05": ((-10.0, 20.0), (-6.0, 6.0), (-4.0, 4.0)),
    "spine04": ((-10.0, 20.0), (-6.0, 6.0), (-4.0, 4.0)),
    "spine03": ((-10.0, 20.0), (-6.0, 6.0), (-4.0, 4.0)),
    "spine02": ((-10.0, 20.0), (-6.0, 6.0), (-4.0, 4.0)),
    "spine01": ((-10.0, 15.0), (-6.0, 6.0), (-4.0, 4.0)),
    "neck01": ((-15.0, 20.0), (-20.0, 20.0), (-12.0, 12.0)),
    "neck02": ((-10.0, 15.0), (-15.0, 15.0), (-10.0, 10.0)),
    "head": ((-20.0, 25.0), (-30.0, 30.0), (-15.0, 15.0)),
    "clavicle": ((-10.0, 10.0), (-10.0, 15.0), (-5.0, 20.0)),
    "upperarm01": ((-160.0, 50.0), (-60.0, 60.0), (-40.0, 125.0)),
    "lowerarm01": ((-145.0, 0.0), (-5.0, 5.0), (-5.0, 5.0)),
    "wrist": ((-50.0, 50.0), (-15.0, 15.0), (-30.0, 30.0)),
}
_SIDED = {"upperleg01", "lowerleg01", "foot", "clavicle", "upperarm01", "lowerarm01", "wrist"}

# Default per-axis standard deviation of the random variation around an archetype (degrees).
_NOISE = {
    "root": 3.0,
    "upperleg01": 7.0,
    "lowerleg01": 7.0,
    "foot": 6.0,
    "spine": 1.5,
    "neck01": 5.0,
    "neck02": 4.0,
    "head": 8.0,
    "clavicle": 3.0,
    "upperarm01": 14.0,
    "lowerarm01": 14.0,
    "wrist": 12.0,
}


@dataclass(frozen=True)
class PoseSample:
    archetype: str
    angles: dict[str, np.ndarray]  # bone label -> (3,) Euler degrees (x, y, z) about canonical axes


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _archetype_means(name: str, rng: np.random.Generator) -> dict[str, tuple[float, float, float]]:
    """Mean angles of one archetype. Keys ``<bone>.L`` / ``<bone>.R`` hold that bone's actual angles; a plain
    ``<bone>`` key of a sided bone gives the left value, mirrored for the right."""
    arms_down = _u(rng, -48.0, -30.0)  # from Anny's A-pose (arms 45 deg down) towards the body
    if name == "standing":
        return {
            "upperleg01.L": (_u(rng, -8, 5), 0.0, _u(rng, 0, 10)),
            "upperleg01.R": (_u(rng, -8, 5), 0.0, -_u(rng, 0, 10)),
            "lowerleg01": (_u(rng, 0, 12), 0.0, 0.0),
            "upperarm01.L": (_u(rng, -25, 15), _u(rng, -20, 20), arms_down + _u(rng, -5, 15)),
            "upperarm01.R": (_u(rng, -25, 15), -_u(rng, -20, 20), -(arms_down + _u(rng, -5, 15))),
            "lowerarm01.L": (-_u(rng, 0, 70), 0.0, 0.0),
            "lowerarm01.R": (-_u(rng, 0, 70), 0.0, 0.0),
            "head": (_u(rng, -10, 15), _u(rng, -25, 25), 0.0),
        }
    if name == "walking":
        phase = _u(rng, 0.0, 2.0 * np.pi)
        amp = _u(rng, 15.0, 35.0)
        s = np.sin(phase)
        return {
            "root": (_u(rng, 0, 8), 0.0, 0.0),
            "upperleg01.L": (-amp * s - 5.0, 0.0, 3.0),
            "upperleg01.R": (amp * s - 5.0, 0.0, -3.0),
            "lowerleg01.L": (10.0 + 35.0 * max(0.0, -np.cos(phase)), 0.0, 0.0),
            "lowerleg01.R": (10.0 + 35.0 * max(0.0, np.cos(phase)), 0.0, 0.0),
            "upperarm01.L": (0.8 * amp * s, 0.0, arms_down),
            "upperarm01.R": (-0.8 * amp * s, 0.0, -arms_down),
            "lowerarm01": (-_u(rng, 10, 50), 0.0, 0.0),
        }
    if name == "sitting":
        return {
            "upperleg01.L": (-_u(rng, 75, 100), 0.0, _u(rng, 0, 20)),
            "upperleg01.R": (-_u(rng, 75, 100), 0.0, -_u(rng, 0, 20)),
            "lowerleg01.L": (_u(rng, 60, 110), 0.0, 0.0),
            "lowerleg01.R": (_u(rng, 60, 110), 0.0, 0.0),
            "spine03": (_u(rng, 0, 12), 0.0, 0.0),
            "upperarm01.L": (-_u(rng, 10, 45), 0.0, arms_down),
            "upperarm01.R": (-_u(rng, 10, 45), 0.0, -arms_down),
            "lowerarm01": (-_u(rng, 30, 100), 0.0, 0.0),
        }
    if name == "reaching":
        up = rng.random() < 0.5
        both = rng.random() < 0.35
        reach = (
            (-_u(rng, 60, 150), _u(rng, -30, 30), _u(rng, 10, 60))
            if up
            else (_u(rng, -60, 0), _u(rng, -30, 30), _u(rng, 40, 120))
        )
        other = reach if both else (_u(rng, -20, 10), 0.0, arms_down)
        return {
            "root": (_u(rng, -5, 15), 0.0, _u(rng, -8, 8)),
            "upperleg01.L": (_u(rng, -15, 5), 0.0, _u(rng, 0, 15)),
            "upperleg01.R": (_u(rng, -15, 5), 0.0, -_u(rng, 0, 15)),
            "lowerleg01": (_u(rng, 0, 15), 0.0, 0.0),
            "spine03": (_u(rng, -5, 10), _u(rng, -10, 10), _u(rng, -6, 6)),
            "upperarm01.L": reach,
            "upperarm01.R": (other[0], -other[1], -other[2]),
            "lowerarm01.L": (-_u(rng, 0, 40), 0.0, 0.0),
            "lowerarm01.R": (-_u(rng, 0, 90), 0.0, 0.0),
            "head": (_u(rng, -20, 5), _u(rng, -20, 20), 0.0),
        }
    if name == "bending":
        pitch = _u(rng, 25, 70)
        return {
            "root": (pitch, _u(rng, -10, 10), 0.0),
            "upperleg01": (-pitch + _u(rng, -15, 5), 0.0, 0.0),
            "lowerleg01": (_u(rng, 0, 25), 0.0, 0.0),
            "spine04": (_u(rng, 5, 15), 0.0, 0.0),
            "spine02": (_u(rng, 5, 15), 0.0, 0.0),
            "upperarm01.L": (-_u(rng, 20, 80), 0.0, arms_down + _u(rng, 0, 30)),
            "upperarm01.R": (-_u(rng, 20, 80), 0.0, -(arms_down + _u(rng, 0, 30))),
            "lowerarm01": (-_u(rng, 0, 60), 0.0, 0.0),
            "head": (-_u(rng, 0, 20), 0.0, 0.0),
        }
    if name == "crouching":
        knee = _u(rng, 90, 140)
        return {
            "root": (_u(rng, 15, 40), 0.0, 0.0),
            "upperleg01.L": (-knee * 0.8 - _u(rng, 0, 15), 0.0, _u(rng, 5, 25)),
            "upperleg01.R": (-knee * 0.8 - _u(rng, 0, 15), 0.0, -_u(rng, 5, 25)),
            "lowerleg01": (knee, 0.0, 0.0),
            "foot": (_u(rng, 0, 25), 0.0, 0.0),
            "upperarm01.L": (-_u(rng, 20, 70), 0.0, arms_down + _u(rng, 0, 20)),
            "upperarm01.R": (-_u(rng, 20, 70), 0.0, -(arms_down + _u(rng, 0, 20))),
            "lowerarm01": (-_u(rng, 20, 90), 0.0, 0.0),
            "head": (-_u(rng, 0, 20), 0.0, 0.0),
        }
    raise ValueError(f"unknown pose archetype {name!r}; known: {ARCHETYPES}")


def _mirror(angles: Sequence[float]) -> np.ndarray:
    return np.array([angles[0], -angles[1], -angles[2]], dtype=np.float64)


def _limits_for(label: str) -> np.ndarray | None:
    """(3, 2) limits of a bone label (right side mirrored), or None if the bone is not posed."""
    base, _, side = label.partition(".")
    key = base if base in LIMITS else None
    if key is None:
        return None
    lim = np.array(LIMITS[key], dtype=np.float64)
    if side == "R" and base in _SIDED:
        lim[1:] = -lim[1:, ::-1]
    return lim


def sample_pose(
    rng: np.random.Generator, bone_labels: Sequence[str], archetype: str | None = None
) -> PoseSample:
    """Random pose on the given rig: (archetype, {bone label: (3,) Euler degrees}) within joint limits.

    Only bones present in ``bone_labels`` are returned; absent keys of the archetype are ignored.
    """
    name = archetype if archetype is not None else ARCHETYPES[int(rng.integers(len(ARCHETYPES)))]
    means = _archetype_means(name, rng)
    if rng.random() < 0.5:  # mirror the whole archetype (e.g. reach with the other arm)
        mirrored: dict[str, np.ndarray] = {}
        for key, val in means.items():
            base, _, side = key.partition(".")
            if side:
                mirrored[f"{base}.{'R' if side == 'L' else 'L'}"] = _mirror(val)
            elif base in _SIDED:  # applied to both sides already, symmetric
                mirrored[key] = np.asarray(val, np.float64)
            else:  # midline bones (root, spine, neck, head)
                mirrored[key] = _mirror(val)
        means = mirrored
    angles: dict[str, np.ndarray] = {}
    spine_lean = rng.normal(0.0, 1.0, 3) * np.array([2.0, 2.0, 1.0])  # a shared, small posture variation
    for label in bone_labels:
        lim = _limits_for(label)
        if lim is None:
            continue
        base, _, side = label.partition(".")
        if label in means:  # side-specific entries hold the actual angles
            mean = np.asarray(means[label], np.float64)
        elif base in means:  # shared entries are given for the left side
            mean = np.asarray(means[base], np.float64)
            if side == "R" and base in _SIDED:
                mean = _mirror(mean)
        else:
            mean = np.zeros(3)
        sd = _NOISE.get("spine" if base.startswith("spine") else base, 4.0)
        value = mean + rng.normal(0.0, sd, 3)
        if base.startswith("spine"):
            value = value + spine_lean
        angles[label] = np.clip(value, lim[:, 0], lim[:, 1])
    return PoseSample(archetype=name, angles=angles)


def euler_to_rotmat(angles_deg: np.ndarray) -> np.ndarray:
    """(..., 3) degrees (x, y, z) -> (..., 3, 3) ``R_z @ R_x @ R_y`` (twist, then flexion, then abduction)."""
    a = np.deg2rad(np.asarray(angles_deg, np.float64))
    cx, sx = np.cos(a[..., 0]), np.sin(a[..., 0])
    cy, sy = np.cos(a[..., 1]), np.sin(a[..., 1])
    cz, sz = np.cos(a[..., 2]), np.sin(a[..., 2])
    one, zero = np.ones_like(cx), np.zeros_like(cx)
    rx = np.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).reshape(*cx.shape, 3, 3)
    ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(*cx.shape, 3, 3)
    rz = np.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1).reshape(*cx.shape, 3, 3)
    return rz @ rx @ ry


def pose_rotmats(sample: PoseSample, bone_labels: Sequence[str]) -> np.ndarray:
    """(J, 3, 3) local rotation matrices in the rig's bone order (identity for unposed bones; root
    included)."""
    out = np.tile(np.eye(3), (len(bone_labels), 1, 1))
    for j, label in enumerate(bone_labels):
        if label in sample.angles:
            out[j] = euler_to_rotmat(sample.angles[label])
    return out
