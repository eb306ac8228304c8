"""Named joint sets used by the project, with left/right flip pairs and index maps between sets.

* ``jotr30``: JOTR's 30-joint input set = 24 SMPL joints + nose, eyes, ears, head top (jotr-reference §1.10).
* ``jotr15``: the 15 query joints (indices into ``jotr30``).
* ``h36m17``: Human3.6M's 17 joints; evaluation uses the 14 in ``H36M_EVAL_14``.
* ``coco17``: MS-COCO keypoints.

Every body model provides a regressor for each set (``BodyModel.joints(out, name)``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JointSet:
    name: str
    names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.names)

    def index(self, joint: str) -> int:
        return self.names.index(joint)

    @property
    def flip_pairs(self) -> tuple[tuple[int, int], ...]:
        """Pairs (i, j) of left/right joints, derived from the names (``L_x`` <-> ``R_x``)."""
        pairs = []
        for i, n in enumerate(self.names):
            if n.startswith("L_"):
                j = self.names.index("R_" + n[2:])
                pairs.append((i, j))
        return tuple(pairs)

    @property
    def flip_permutation(self) -> tuple[int, ...]:
        """perm such that ``flipped[k] = joints[perm[k]]`` swaps left and right."""
        perm = list(range(len(self.names)))
        for i, j in self.flip_pairs:
            perm[i], perm[j] = j, i
        return tuple(perm)


# The name tables read better packed.
# fmt: off
SMPL24 = JointSet("smpl24", (
    "Pelvis", "L_Hip", "R_Hip", "Spine1", "L_Knee", "R_Knee", "Spine2", "L_Ankle", "R_Ankle", "Spine3",
    "L_Foot", "R_Foot", "Neck", "L_Collar", "R_Collar", "Head", "L_Shoulder", "R_Shoulder", "L_Elbow",
    "R_Elbow", "L_Wrist", "R_Wrist", "L_Hand", "R_Hand",
))

JOTR30 = JointSet("jotr30", SMPL24.names + ("Nose", "L_Eye", "R_Eye", "L_Ear", "R_Ear", "Head_top"))

# The 15 query joints as indices into JOTR30 (jotr-reference §1.10, supplementary Fig. A).
JOTR15_FROM_30 = (0, 1, 2, 4, 5, 7, 8, 12, 29, 16, 17, 18, 19, 20, 21)
JOTR15 = JointSet("jotr15", tuple(JOTR30.names[i] for i in JOTR15_FROM_30))

H36M17 = JointSet("h36m17", (
    "Pelvis", "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "Torso", "Neck", "Nose", "Head",
    "L_Shoulder", "L_Elbow", "L_Wrist", "R_Shoulder", "R_Elbow", "R_Wrist",
))
H36M_ROOT = 0
H36M_EVAL_14 = (1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 13, 14, 15, 16)

COCO17 = JointSet("coco17", (
    "Nose", "L_Eye", "R_Eye", "L_Ear", "R_Ear", "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow",
    "L_Wrist", "R_Wrist", "L_Hip", "R_Hip", "L_Knee", "R_Knee", "L_Ankle", "R_Ankle",
))

# Detector formats (names only; body models do not regress them). OpenPose-18 is OpenPose's COCO-18 body model
# (3DPW's ``openpose_result``); BODY_25's "MidHip" is the hip centre, i.e. the SMPL pelvis.
OPENPOSE18 = JointSet("openpose18", (
    "Nose", "Neck", "R_Shoulder", "R_Elbow", "R_Wrist", "L_Shoulder", "L_Elbow", "L_Wrist", "R_Hip", "R_Knee",
    "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "R_Eye", "L_Eye", "R_Ear", "L_Ear",
))
BODY25 = JointSet("body25", (
    "Nose", "Neck", "R_Shoulder", "R_Elbow", "R_Wrist", "L_Shoulder", "L_Elbow", "L_Wrist", "Pelvis", "R_Hip",
    "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "R_Eye", "L_Eye", "R_Ear", "L_Ear", "L_BigToe",
    "L_SmallToe", "L_Heel", "R_BigToe", "R_SmallToe", "R_Heel",
))
# fmt: on

# Limbs as a detector loses them behind an occluder: a whole side of the arm (shoulder, elbow, wrist, hand)
# or of the leg (hip, knee, ankle, foot). Used by the evaluation's "limbs withheld" mode and the training-time
# limb masking; :func:`limb_indices` gives the members present in a joint set.
LIMBS: dict[str, tuple[str, ...]] = {
    "left_arm": ("L_Shoulder", "L_Elbow", "L_Wrist", "L_Hand"),
    "right_arm": ("R_Shoulder", "R_Elbow", "R_Wrist", "R_Hand"),
    "left_leg": ("L_Hip", "L_Knee", "L_Ankle", "L_Foot"),
    "right_leg": ("R_Hip", "R_Knee", "R_Ankle", "R_Foot"),
}
LIMB_NAMES: tuple[str, ...] = tuple(LIMBS)


JOINT_SETS: dict[str, JointSet] = {
    s.name: s for s in (SMPL24, JOTR30, JOTR15, H36M17, COCO17, OPENPOSE18, BODY25)
}


def get_joint_set(name: str) -> JointSet:
    try:
        return JOINT_SETS[name]
    except KeyError:
        raise KeyError(f"unknown joint set {name!r}; known: {sorted(JOINT_SETS)}") from None


def mapping(src: str, dst: str) -> tuple[tuple[int, int], ...]:
    """Pairs (i_src, i_dst) of joints with the same name in two sets."""
    a, b = get_joint_set(src), get_joint_set(dst)
    return tuple((i, b.names.index(n)) for i, n in enumerate(a.names) if n in b.names)


def limb_indices(joint_set: str) -> tuple[tuple[int, ...], ...]:
    """For each limb of :data:`LIMBS` (in order), the indices of its joints present in ``joint_set``."""
    names = get_joint_set(joint_set).names
    return tuple(tuple(names.index(n) for n in LIMBS[limb] if n in names) for limb in LIMB_NAMES)
