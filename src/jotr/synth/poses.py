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

Pose *modes* (:data:`POSE_MODES`; the mix is ``SynthOptions.pose_mix``, default :data:`DEFAULT_POSE_MIX`):

* ``archetype`` -- one of the six :data:`ARCHETYPES` with random variation (the original generator);
* ``mixed`` -- root, spine and legs from one archetype, each arm and the head from independently drawn ones
  (asymmetric arms: one reaching, one hanging, one overhead...);
* ``free`` -- an upright archetype in which each limb is, with probability 0.6, replaced by a uniform draw
  inside comfortable joint ranges (a sub-box of :data:`LIMITS`); hip and knee are correlated (a raised thigh
  bends the knee more) and one leg always stays a supporting leg;
* ``arms_up`` -- standing or walking legs, arms overhead / in a V / T-pose / hand on the head, symmetric or
  per arm;
* ``kneeling`` -- on both knees (upright torso) or on one knee (the other foot planted);
* ``lying`` -- on the back, on a side or on the front (``PoseSample.root_pre`` lays the body down; the scene
  puts its lowest vertex on the ground like everyone else's).

Every mode is mirrored left/right with probability 0.5 and clipped to :data:`LIMITS` (the root's Euler angles
too; the lying rotation ``root_pre`` is separate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

ARCHETYPES = ("standing", "walking", "sitting", "reaching", "bending", "crouching")
POSE_MODES = ("archetype", "mixed", "free", "arms_up", "kneeling", "lying")
# Default share of each pose mode (normalised when sampling); SynthOptions.pose_mix overrides it.
DEFAULT_POSE_MIX: tuple[tuple[str, float], ...] = (
    ("archetype", 0.30),
    ("mixed", 0.20),
    ("free", 0.20),
    ("arms_up", 0.12),
    ("kneeling", 0.08),
    ("lying", 0.10),
)

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
    # Anny's rest pose bends the elbow by ~42 deg (forearm forwards): +50 straightens the arm (~11 deg left).
    "lowerarm01": ((-145.0, 50.0), (-5.0, 5.0), (-5.0, 5.0)),
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
    archetype: str  # archetype / variant name, e.g. "walking", "free", "lying_back", "kneeling_one"
    angles: dict[str, np.ndarray]  # bone label -> (3,) Euler degrees (x, y, z) about canonical axes
    mode: str = "archetype"  # one of POSE_MODES
    # (3, 3) rotation in the canonical body frame applied on top of the root's Euler rotation (lying down);
    # None = identity.
    root_pre: np.ndarray | None = field(default=None, compare=False)


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


_ARM_BONES = ("clavicle", "upperarm01", "lowerarm01", "wrist")
_LEG_BONES = ("upperleg01", "lowerleg01", "foot")
_TORSO_BONES = ("root", "spine05", "spine04", "spine03", "spine02", "spine01")
_HEAD_BONES = ("neck01", "neck02", "head")
_UPRIGHT = ("standing", "walking", "reaching")
_MX = np.diag([-1.0, 1.0, 1.0])  # reflection x -> -x (left <-> right) in the canonical frame


def _rot_x(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rot_z(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _explicit(means: dict[str, Sequence[float]]) -> dict[str, np.ndarray]:
    """Archetype means with every sided bone spelled out as ``<bone>.L`` / ``<bone>.R`` (actual angles)."""
    out: dict[str, np.ndarray] = {}
    for key, val in means.items():
        base, _, side = key.partition(".")
        arr = np.asarray(val, np.float64)
        if side:
            out[key] = arr
        elif base in _SIDED:
            out.setdefault(f"{base}.L", arr)
            out.setdefault(f"{base}.R", _mirror(arr))
        else:
            out[key] = arr
    # Side-specific entries win over shared ones whatever the order.
    for key, val in means.items():
        if "." in key:
            out[key] = np.asarray(val, np.float64)
    return out


def _mirror_explicit(means: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Swap left and right (a mirrored pose): sided bones change side, every entry is mirrored."""
    out: dict[str, np.ndarray] = {}
    for key, val in means.items():
        base, _, side = key.partition(".")
        if side:
            out[f"{base}.{'R' if side == 'L' else 'L'}"] = _mirror(val)
        else:
            out[key] = _mirror(val)
    return out


def _part(means: dict[str, np.ndarray], bones: Sequence[str], side: str | None = None) -> dict:
    keep = {}
    for key, val in means.items():
        base, _, s = key.partition(".")
        if base in bones and (side is None or s == side):
            keep[key] = val
    return keep


def _drop(means: dict[str, np.ndarray], bones: Sequence[str], side: str | None = None) -> dict:
    return {k: v for k, v in means.items() if k not in _part(means, bones, side)}


def _arm_variant(rng: np.random.Generator, kind: str) -> dict[str, tuple[float, float, float]]:
    """Left-arm angles (upper arm, forearm) of one raised-arm variant."""
    if kind == "v":  # arm raised sideways into a V / straight up
        return {
            "upperarm01": (_u(rng, -30, 10), _u(rng, -20, 20), _u(rng, 70, 125)),
            "lowerarm01": (_u(rng, -30, 50), 0.0, 0.0),
        }
    if kind == "forward_up":  # raised forwards over the head
        return {
            "upperarm01": (-_u(rng, 110, 160), _u(rng, -20, 20), _u(rng, -10, 25)),
            "lowerarm01": (_u(rng, -40, 50), 0.0, 0.0),
        }
    if kind == "t":  # horizontal, T-pose-like
        return {
            "upperarm01": (_u(rng, -30, 10), _u(rng, -30, 30), _u(rng, 30, 55)),
            "lowerarm01": (_u(rng, -40, 50), 0.0, 0.0),
        }
    if kind == "head":  # hand on / behind the head
        return {
            "upperarm01": (_u(rng, -50, -10), _u(rng, -20, 20), _u(rng, 60, 100)),
            "lowerarm01": (-_u(rng, 110, 145), 0.0, 0.0),
        }
    if kind == "forward":  # pointing / holding something in front
        return {
            "upperarm01": (-_u(rng, 60, 100), _u(rng, -30, 30), _u(rng, -30, 10)),
            "lowerarm01": (_u(rng, -70, 50), 0.0, 0.0),
        }
    # "down": hanging, relaxed
    return {
        "upperarm01": (_u(rng, -25, 15), _u(rng, -20, 20), _u(rng, -48, -25)),
        "lowerarm01": (_u(rng, -80, 45), 0.0, 0.0),
    }


_ARM_KINDS = ("v", "forward_up", "t", "head", "forward", "down")


def _arms_up(rng: np.random.Generator) -> dict[str, np.ndarray]:
    legs = _explicit(_archetype_means("standing" if rng.random() < 0.7 else "walking", rng))
    out = _drop(legs, _ARM_BONES)
    up = ("v", "forward_up", "t", "head")
    left = up[int(rng.integers(len(up)))]
    right = left if rng.random() < 0.45 else _ARM_KINDS[int(rng.integers(len(_ARM_KINDS)))]
    for side, kind in (("L", left), ("R", right)):
        out.update(_part(_explicit(_arm_variant(rng, kind)), _ARM_BONES, side))
    out["head"] = np.array([_u(rng, -25, 10), _u(rng, -25, 25), 0.0])
    return out


def _kneeling(rng: np.random.Generator) -> tuple[str, dict[str, np.ndarray]]:
    arms = _explicit(_archetype_means("standing", rng))
    if rng.random() < 0.5:  # both knees on the ground, thighs about vertical, shins flat behind
        name = "kneeling_two"
        legs = {
            "root": (_u(rng, -5, 12), 0.0, 0.0),
            "upperleg01.L": (_u(rng, -20, 5), 0.0, _u(rng, 0, 10)),
            "upperleg01.R": (_u(rng, -20, 5), 0.0, -_u(rng, 0, 10)),
            "lowerleg01": (_u(rng, 80, 100), 0.0, 0.0),
            "foot": (_u(rng, 15, 35), 0.0, 0.0),
        }
    else:  # left knee down, right foot planted in front (mirroring gives the other side)
        name = "kneeling_one"
        legs = {
            "root": (_u(rng, -5, 15), 0.0, 0.0),
            "upperleg01.L": (_u(rng, -10, 10), 0.0, _u(rng, 0, 10)),
            "lowerleg01.L": (_u(rng, 80, 100), 0.0, 0.0),
            "foot.L": (_u(rng, 15, 35), 0.0, 0.0),
            "upperleg01.R": (-_u(rng, 75, 95), 0.0, -_u(rng, 0, 15)),
            "lowerleg01.R": (_u(rng, 75, 100), 0.0, 0.0),
        }
    out = _explicit(legs)
    out.update(_part(arms, _ARM_BONES))
    for side in ("L", "R"):
        if rng.random() < 0.5:  # this arm from a raised-arm variant
            arm = _explicit(_arm_variant(rng, _ARM_KINDS[int(rng.integers(len(_ARM_KINDS)))]))
            out = _drop(out, _ARM_BONES, side)
            out.update(_part(arm, _ARM_BONES, side))
    out["head"] = np.array([_u(rng, -15, 15), _u(rng, -25, 25), 0.0])
    return name, out


def _lying(rng: np.random.Generator) -> tuple[str, dict[str, np.ndarray], np.ndarray]:
    """A lying pose and its lay-down rotation (canonical frame). Limb angles keep the body near the ground:
    arms move in the plane of the ground (a y "twist" of the A-posed upper arm swings it forwards/backwards,
    so it is kept small and away from the ground), bent knees keep the foot at the level of the back."""
    kind = ("back", "side", "front")[int(rng.integers(3))]
    means: dict[str, Sequence[float]] = {"root": (_u(rng, -5, 5), 0.0, _u(rng, -5, 5))}
    if kind == "back":  # facing up
        pre = _rot_x(-90.0)
        for side, sgn in (("L", 1.0), ("R", -1.0)):
            if rng.random() < 0.65:  # straight leg
                means[f"upperleg01.{side}"] = (_u(rng, -15, 5), 0.0, sgn * _u(rng, 0, 15))
                means[f"lowerleg01.{side}"] = (_u(rng, 0, 15), 0.0, 0.0)
            else:  # knee up, foot flat: thigh raised by t, knee bent by ~2t
                t = _u(rng, 30, 60)
                means[f"upperleg01.{side}"] = (-t, 0.0, sgn * _u(rng, 0, 10))
                means[f"lowerleg01.{side}"] = (2.0 * t + _u(rng, -10, 5), 0.0, 0.0)
            arm = int(rng.integers(4))
            if arm == 0:  # along the body
                up, low = (_u(rng, -10, 10), -_u(rng, 0, 15), _u(rng, -45, -30)), _u(rng, -30, 50)
            elif arm == 1:  # out to the side, on the ground
                up, low = (_u(rng, -10, 5), -_u(rng, 0, 15), _u(rng, 10, 55)), _u(rng, -40, 50)
            elif arm == 2:  # above the head, on the ground
                up, low = (_u(rng, -10, 5), -_u(rng, 0, 15), _u(rng, 85, 125)), _u(rng, -40, 50)
            else:  # hand on the belly / chest
                up, low = (_u(rng, -30, 0), 0.0, _u(rng, -40, -20)), -_u(rng, 70, 120)
            means[f"upperarm01.{side}"] = (up[0], sgn * up[1], sgn * up[2])
            means[f"lowerarm01.{side}"] = (low, 0.0, 0.0)
        means["head"] = (_u(rng, -5, 20), _u(rng, -30, 30), 0.0)
    elif kind == "side":  # lying on the left side (mirroring gives the right side)
        pre = _rot_z(-90.0)
        t = _u(rng, 10, 70)
        means["upperleg01.L"] = (-t, 0.0, 0.0)
        means["lowerleg01.L"] = (_u(rng, 0.3, 1.3) * t, 0.0, 0.0)
        t2 = _u(rng, 10, 80)
        means["upperleg01.R"] = (-t2, 0.0, 0.0)
        means["lowerleg01.R"] = (_u(rng, 0.3, 1.4) * t2, 0.0, 0.0)
        # lower (left) arm in the plane of the ground (the body's sagittal plane): towards the head under it,
        # or in front of the belly; the upper (right) arm resting on the body or in front
        if rng.random() < 0.5:
            means["upperarm01.L"] = (-125.0 + _u(rng, -10, 10), 45.0 + _u(rng, -8, 8), 90.0 + _u(rng, -8, 8))
        else:
            means["upperarm01.L"] = (-25.0 + _u(rng, -15, 10), -60.0 + _u(rng, 0, 8), -40.0 + _u(rng, 0, 8))
        means["lowerarm01.L"] = (_u(rng, 0, 45), 0.0, 0.0)
        means["upperarm01.R"] = (-_u(rng, 0, 70), 0.0, _u(rng, 30, 45))
        means["lowerarm01.R"] = (-_u(rng, 0, 80), 0.0, 0.0)
        means["head"] = (_u(rng, -5, 20), _u(rng, -15, 15), _u(rng, -15, 0))
        means["neck01"] = (0.0, 0.0, -_u(rng, 0, 10))
    else:  # on the front, face turned to a side
        pre = _rot_x(90.0)
        for side, sgn in (("L", 1.0), ("R", -1.0)):
            means[f"upperleg01.{side}"] = (_u(rng, -5, 10), 0.0, sgn * _u(rng, 0, 15))
            means[f"lowerleg01.{side}"] = (
                _u(rng, 0, 20) if rng.random() < 0.75 else _u(rng, 30, 100),
                0.0,
                0.0,
            )
            means[f"foot.{side}"] = (_u(rng, 15, 35), 0.0, 0.0)
            if rng.random() < 0.5:  # along the body
                up = (_u(rng, -5, 10), _u(rng, 0, 15), _u(rng, -45, -30))
            else:  # above the head, on the ground
                up = (_u(rng, -5, 10), _u(rng, 0, 15), _u(rng, 80, 125))
            means[f"upperarm01.{side}"] = (up[0], sgn * up[1], sgn * up[2])
            # straight arms: a bent elbow would push the hand into the ground
            means[f"lowerarm01.{side}"] = (_u(rng, 38, 50), 0.0, 0.0)
        turn = _u(rng, 20, 30) * (1.0 if rng.random() < 0.5 else -1.0)
        means["head"] = (-_u(rng, 5, 20), turn, 0.0)
        means["neck01"] = (-_u(rng, 0, 10), 0.6 * turn, 0.0)
        means["neck02"] = (0.0, 0.5 * turn, 0.0)
    return f"lying_{kind}", _explicit(means), pre


def _free(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """An upright archetype with limbs replaced by uniform draws inside comfortable ranges."""
    out = _explicit(_archetype_means(_UPRIGHT[int(rng.integers(len(_UPRIGHT)))], rng))
    for side, sgn in (("L", 1.0), ("R", -1.0)):
        if rng.random() < 0.6:
            out[f"upperarm01.{side}"] = np.array(
                [_u(rng, -150, 40), sgn * _u(rng, -45, 45), sgn * _u(rng, -35, 115)]
            )
            out[f"lowerarm01.{side}"] = np.array([_u(rng, -140, 50), 0.0, 0.0])
            out[f"wrist.{side}"] = np.array([_u(rng, -40, 40), 0.0, sgn * _u(rng, -25, 25)])
    if rng.random() < 0.6:  # one free leg; the other one supports the body
        free, support = ("L", "R") if rng.random() < 0.5 else ("R", "L")
        sgn = 1.0 if free == "L" else -1.0
        hip = _u(rng, -110, 25)
        knee = min(145.0, _u(rng, 0, 30) + max(0.0, -hip - 10.0) * _u(rng, 0.2, 1.2))
        out[f"upperleg01.{free}"] = np.array([hip, _u(rng, -25, 25), sgn * _u(rng, -10, 40)])
        out[f"lowerleg01.{free}"] = np.array([knee, 0.0, 0.0])
        out[f"foot.{free}"] = np.array([_u(rng, -30, 30), 0.0, 0.0])
        ssgn = -sgn
        out[f"upperleg01.{support}"] = np.array([_u(rng, -25, 10), 0.0, ssgn * _u(rng, -5, 15)])
        out[f"lowerleg01.{support}"] = np.array([_u(rng, 0, 25), 0.0, 0.0])
    if rng.random() < 0.6:  # head and neck anywhere in range
        for bone in _HEAD_BONES:
            lim = np.array(LIMITS[bone])
            out[bone] = rng.uniform(0.8 * lim[:, 0], 0.8 * lim[:, 1])
    if rng.random() < 0.5:  # a spine bend / side lean / twist shared by the spine bones
        bend = np.array([_u(rng, -8, 15), _u(rng, -5, 5), _u(rng, -3.5, 3.5)])
        for bone in _TORSO_BONES[1:]:
            out[bone] = bend
    return out


def _mixed(rng: np.random.Generator) -> tuple[str, dict[str, np.ndarray]]:
    """Root, spine and legs from one archetype; each arm and the head from other draws."""
    base_name = ARCHETYPES[int(rng.integers(len(ARCHETYPES)))]
    out = _explicit(_archetype_means(base_name, rng))
    names = [base_name]
    for side in ("L", "R"):
        if rng.random() < 0.5:
            arm = _explicit(_arm_variant(rng, _ARM_KINDS[int(rng.integers(len(_ARM_KINDS)))]))
            name = "raised"
        else:
            name = ARCHETYPES[int(rng.integers(len(ARCHETYPES)))]
            arm = _explicit(_archetype_means(name, rng))
        out = _drop(out, _ARM_BONES, side)
        out.update(_part(arm, _ARM_BONES, side))
        names.append(name)
    other = ARCHETYPES[int(rng.integers(len(ARCHETYPES)))]
    out = _drop(out, _HEAD_BONES)
    out.update(_part(_explicit(_archetype_means(other, rng)), _HEAD_BONES))
    return "mixed", out


def _pick_mode(rng: np.random.Generator, mix: Sequence[tuple[str, float]]) -> str:
    names = [m for m, _ in mix]
    weights = np.array([float(w) for _, w in mix], np.float64)
    for name in names:
        if name not in POSE_MODES:
            raise ValueError(f"unknown pose mode {name!r}; known: {POSE_MODES}")
    if len(names) == 0 or np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError(f"pose mix needs non-negative weights with a positive sum, got {tuple(mix)}")
    return names[int(np.searchsorted(np.cumsum(weights / weights.sum()), rng.random(), side="right"))]


def sample_pose(
    rng: np.random.Generator,
    bone_labels: Sequence[str],
    archetype: str | None = None,
    *,
    mode: str | None = None,
    mix: Sequence[tuple[str, float]] | None = None,
) -> PoseSample:
    """Random pose on the given rig: (archetype, {bone label: (3,) Euler degrees}) within joint limits.

    ``archetype`` forces one of the six :data:`ARCHETYPES` (mode ``archetype``); otherwise ``mode`` (one of
    :data:`POSE_MODES`) or a mode drawn from ``mix`` ((mode, weight) pairs; default
    :data:`DEFAULT_POSE_MIX`). Only bones present in ``bone_labels`` are returned; absent keys are ignored.
    """
    root_pre = None
    if archetype is not None:
        if archetype not in ARCHETYPES:
            raise ValueError(f"unknown pose archetype {archetype!r}; known: {ARCHETYPES}")
        mode = "archetype"
    elif mode is None:
        mode = _pick_mode(rng, mix if mix is not None else DEFAULT_POSE_MIX)
    if mode == "archetype":
        name = archetype if archetype is not None else ARCHETYPES[int(rng.integers(len(ARCHETYPES)))]
        means = _explicit(_archetype_means(name, rng))
    elif mode == "mixed":
        name, means = _mixed(rng)
    elif mode == "free":
        name, means = "free", _free(rng)
    elif mode == "arms_up":
        name, means = "arms_up", _arms_up(rng)
    elif mode == "kneeling":
        name, means = _kneeling(rng)
    elif mode == "lying":
        name, means, root_pre = _lying(rng)
    else:
        raise ValueError(f"unknown pose mode {mode!r}; known: {POSE_MODES}")
    if rng.random() < 0.5:  # mirror the whole pose (e.g. reach with the other arm, kneel on the other knee)
        means = _mirror_explicit(means)
        if root_pre is not None:
            root_pre = _MX @ root_pre @ _MX
    lying = root_pre is not None
    angles: dict[str, np.ndarray] = {}
    spine_lean = rng.normal(0.0, 1.0, 3) * np.array([2.0, 2.0, 1.0])  # a shared, small posture variation
    for label in bone_labels:
        lim = _limits_for(label)
        if lim is None:
            continue
        base, _, side = label.partition(".")
        mean = means.get(label, np.zeros(3))
        sd = _NOISE.get("spine" if base.startswith("spine") else base, 4.0)
        if lying and base not in ("neck01", "neck02", "head"):
            sd = min(sd, 3.0)  # stay close to the ground-hugging means
        value = mean + rng.normal(0.0, sd, 3)
        if base.startswith("spine"):
            value = value + (0.5 if lying else 1.0) * spine_lean
        angles[label] = np.clip(value, lim[:, 0], lim[:, 1])
    return PoseSample(archetype=name, angles=angles, mode=mode, root_pre=root_pre)


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
    included, with ``sample.root_pre`` applied on top)."""
    out = np.tile(np.eye(3), (len(bone_labels), 1, 1))
    for j, label in enumerate(bone_labels):
        if label in sample.angles:
            out[j] = euler_to_rotmat(sample.angles[label])
    if sample.root_pre is not None:
        out[0] = sample.root_pre @ out[0]
    return out
