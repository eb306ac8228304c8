"""Helpers shared by the dataset readers: joint-set tables of the annotation formats, their maps to JOTR30,
JSON loading with clear errors, SMPL-parameter parsing and COCO-style indexing.

Every source joint set is described by its joint *names* in file order; a source joint is copied to the JOTR30
joint of the name given in its table (``None`` = the joint has no JOTR30 counterpart and is dropped). JOTR30
joints that a source lacks stay at zero with validity 0.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jotr.body.joint_sets import COCO17, JOTR30, OPENPOSE18
from jotr.errors import InputError
from jotr.geometry.boxes import box_from_keypoints

logger = logging.getLogger(__name__)

NUM_JOTR30 = len(JOTR30)

# --------------------------------------------------------------------------------------------- joint tables
# Source joint name (file order) -> JOTR30 joint name (None = dropped). Names follow the official code's
# name matching (3DCrowdNet ``transform_joint_to_other_db`` into the 30-joint SMPL set).

COCO17_TO_JOTR30 = tuple((n, n) for n in COCO17.names)

# OpenPose-18 (COCO-18 body model of OpenPose, as stored in the 3DPW ``openpose_result`` arrays).
OPENPOSE18_TO_JOTR30 = tuple((n, n) for n in OPENPOSE18.names)

# CrowdPose-14.
CROWDPOSE14_TO_JOTR30 = (
    ("L_Shoulder", "L_Shoulder"),
    ("R_Shoulder", "R_Shoulder"),
    ("L_Elbow", "L_Elbow"),
    ("R_Elbow", "R_Elbow"),
    ("L_Wrist", "L_Wrist"),
    ("R_Wrist", "R_Wrist"),
    ("L_Hip", "L_Hip"),
    ("R_Hip", "R_Hip"),
    ("L_Knee", "L_Knee"),
    ("R_Knee", "R_Knee"),
    ("L_Ankle", "L_Ankle"),
    ("R_Ankle", "R_Ankle"),
    ("Head_top", "Head_top"),
    ("Neck", "Neck"),
)

# Human3.6M-17 as in the annotation files (joint 10 is the top of the head, 'Torso' = SMPL Spine1).
H36M17_TO_JOTR30 = (
    ("Pelvis", "Pelvis"),
    ("R_Hip", "R_Hip"),
    ("R_Knee", "R_Knee"),
    ("R_Ankle", "R_Ankle"),
    ("L_Hip", "L_Hip"),
    ("L_Knee", "L_Knee"),
    ("L_Ankle", "L_Ankle"),
    ("Torso", "Spine1"),
    ("Neck", "Neck"),
    ("Nose", "Nose"),
    ("Head_top", "Head_top"),
    ("L_Shoulder", "L_Shoulder"),
    ("L_Elbow", "L_Elbow"),
    ("L_Wrist", "L_Wrist"),
    ("R_Shoulder", "R_Shoulder"),
    ("R_Elbow", "R_Elbow"),
    ("R_Wrist", "R_Wrist"),
)

# MuCo-3DHP-21 (MPI-INF-3DHP order of the MuCo annotation; 'Thorax' has no SMPL counterpart).
MUCO21_TO_JOTR30 = (
    ("Head_top", "Head_top"),
    ("Thorax", None),
    ("R_Shoulder", "R_Shoulder"),
    ("R_Elbow", "R_Elbow"),
    ("R_Wrist", "R_Wrist"),
    ("L_Shoulder", "L_Shoulder"),
    ("L_Elbow", "L_Elbow"),
    ("L_Wrist", "L_Wrist"),
    ("R_Hip", "R_Hip"),
    ("R_Knee", "R_Knee"),
    ("R_Ankle", "R_Ankle"),
    ("L_Hip", "L_Hip"),
    ("L_Knee", "L_Knee"),
    ("L_Ankle", "L_Ankle"),
    ("Pelvis", "Pelvis"),
    ("Spine", "Spine2"),
    ("Head", "Head"),
    ("R_Hand", "R_Hand"),
    ("L_Hand", "L_Hand"),
    ("R_Toe", "R_Foot"),
    ("L_Toe", "L_Foot"),
)

# SPIN/ROMP "J24" order of the CMU-Panoptic evaluation annotation (ROMP ``panoptic_annot``); the first 19 are
# stored. Jaw and the LSP "Head" point have no JOTR30 counterpart.
ROMP_J24_TO_JOTR30 = (
    ("R_Ankle", "R_Ankle"),
    ("R_Knee", "R_Knee"),
    ("R_Hip", "R_Hip"),
    ("L_Hip", "L_Hip"),
    ("L_Knee", "L_Knee"),
    ("L_Ankle", "L_Ankle"),
    ("R_Wrist", "R_Wrist"),
    ("R_Elbow", "R_Elbow"),
    ("R_Shoulder", "R_Shoulder"),
    ("L_Shoulder", "L_Shoulder"),
    ("L_Elbow", "L_Elbow"),
    ("L_Wrist", "L_Wrist"),
    ("Neck", "Neck"),
    ("Head_top", "Head_top"),
    ("Pelvis", "Pelvis"),
    ("Thorax", None),
    ("Spine", "Spine2"),
    ("Jaw", None),
    ("Head", "Head"),
)


def table_index(table: Sequence[tuple[str, str | None]]) -> tuple[np.ndarray, np.ndarray]:
    """(src indices, JOTR30 indices) of the mapped joints of a table."""
    src, dst = [], []
    for i, (_, name) in enumerate(table):
        if name is not None:
            src.append(i)
            dst.append(JOTR30.index(name))
    return np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64)


def to_jotr30(values: np.ndarray, table: Sequence[tuple[str, str | None]]) -> np.ndarray:
    """(K, C) values of a source joint set -> (30, C) JOTR30 order (unmapped joints = 0)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] != len(table):
        raise ValueError(f"expected ({len(table)}, C) joints, got {values.shape}")
    out = np.zeros((NUM_JOTR30, values.shape[1]), dtype=np.float64)
    src, dst = table_index(table)
    out[dst] = values[src]
    return out


def add_midpoint(joints: np.ndarray, conf: np.ndarray, target: str, a: str, b: str) -> None:
    """In place: JOTR30 joint ``target`` = mean of joints ``a`` and ``b``, confidence = product (official
    ``add_pelvis`` / ``add_neck``); only when the target is not already annotated."""
    t, ia, ib = JOTR30.index(target), JOTR30.index(a), JOTR30.index(b)
    if conf[t] > 0:
        return
    joints[t] = 0.5 * (joints[ia] + joints[ib])
    conf[t] = conf[ia] * conf[ib]


def keypoints_to_jotr30(
    kps: Any, table: Sequence[tuple[str, str | None]], *, add_pelvis: bool = True, add_neck: bool = False
) -> np.ndarray:
    """(K, 3) detector or annotated keypoints (x, y, confidence/visibility) -> (30, 3) JOTR30 order.

    The pelvis (and the neck, for sets without one) is added as the mean of the hips (shoulders) with the
    product of their confidences. Non-finite entries become (0, 0, 0).
    """
    arr = np.asarray(kps, dtype=np.float64).reshape(len(table), -1)[:, :3]
    out = to_jotr30(arr, table)
    bad = ~np.isfinite(out).all(axis=1)
    out[bad] = 0.0
    joints, conf = out[:, :2], out[:, 2]
    if add_pelvis:
        add_midpoint(joints, conf, "Pelvis", "L_Hip", "R_Hip")
    if add_neck:
        add_midpoint(joints, conf, "Neck", "L_Shoulder", "R_Shoulder")
    return out


# --------------------------------------------------------------------------------------------- files


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise InputError(f"{what} not found: {path}")
    return path


def load_json(path: Path, what: str) -> Any:
    require_file(path, what)
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{what} {path} is not valid JSON: {exc}") from exc


def option(spec: Any, key: str, default: Any) -> Any:
    opts = getattr(spec, "options", None) or {}
    return opts.get(key, default)


def check_options(spec: Any, allowed: Sequence[str], reader: str) -> None:
    """Unknown reader options are errors (a typo must not silently change the protocol)."""
    opts = getattr(spec, "options", None) or {}
    unknown = sorted(set(opts) - set(allowed))
    if unknown:
        raise InputError(f"{reader}: unknown option(s) {unknown}; valid options: {sorted(allowed)}")


def dataset_root(spec: Any, reader: str) -> Path:
    root = Path(getattr(spec, "root", "") or "")
    if not str(root) or not root.is_dir():
        raise InputError(f"{reader}: dataset root folder not found: '{root}' (set the dataset spec's root)")
    return root.resolve()


class CocoIndex:
    """Minimal COCO-style index (images by id, annotations grouped by image) without pycocotools."""

    def __init__(self, data: Any, path: Path) -> None:
        if not isinstance(data, Mapping) or "images" not in data or "annotations" not in data:
            raise InputError(f"{path} is not a COCO-style annotation file (needs 'images' and 'annotations')")
        self.images: dict[Any, Mapping[str, Any]] = {}
        for img in data["images"]:
            if isinstance(img, Mapping) and "id" in img:
                self.images[img["id"]] = img
        self.anns_by_image: dict[Any, list[Mapping[str, Any]]] = {}
        self.orphans = 0
        for ann in data["annotations"]:
            if not isinstance(ann, Mapping) or ann.get("image_id") not in self.images:
                self.orphans += 1
                continue
            self.anns_by_image.setdefault(ann["image_id"], []).append(ann)


# --------------------------------------------------------------------------------------------- parsing


def as_array(value: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    """A finite float64 array of exactly ``shape`` (after reshape of the same size), else None."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if arr.size != math.prod(shape):
        return None
    arr = arr.reshape(shape)
    if not np.isfinite(arr).all():
        return None
    return arr


def parse_smpl(
    param: Any, *, reset_large_shape: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``{pose (72), shape (10), trans (3)}`` -> (pose (24, 3), shape (10,), trans (3,)), or None if
    malformed.

    With ``reset_large_shape`` the shape is set to the mean (zeros) when any |beta| > 3, as the official
    code does.
    """
    if not isinstance(param, Mapping):
        return None
    pose = as_array(param.get("pose"), (24, 3))
    shape = as_array(param.get("shape"), (10,))
    trans = as_array(param.get("trans"), (3,))
    if pose is None or shape is None or trans is None:
        return None
    if reset_large_shape and np.any(np.abs(shape) > 3.0):
        shape = np.zeros_like(shape)
    return pose, shape, trans


def parse_cam(cam: Any) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """``{focal (2), princpt (2)}`` -> ((fx, fy), (cx, cy)), or None."""
    if not isinstance(cam, Mapping):
        return None
    f = as_array(cam.get("focal"), (2,))
    c = as_array(cam.get("princpt"), (2,))
    if f is None or c is None or np.any(f <= 0):
        return None
    return (float(f[0]), float(f[1])), (float(c[0]), float(c[1]))


def parse_box(value: Any) -> np.ndarray | None:
    """An xywh box with positive size, else None."""
    box = as_array(value, (4,))
    if box is None or box[2] <= 1 or box[3] <= 1:
        return None
    return box


def normalise_gender(value: Any) -> str:
    text = str(value or "neutral").lower()
    if text in ("m", "male"):
        return "male"
    if text in ("f", "female"):
        return "female"
    return "neutral"


def project(points_cam: np.ndarray, focal: tuple[float, float], princpt: tuple[float, float]) -> np.ndarray:
    """(N, 3) camera-frame points -> (N, 2) image pixels."""
    z = points_cam[:, 2:3]
    return points_cam[:, :2] / z * np.asarray(focal) + np.asarray(princpt)


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two xywh boxes."""
    ax1, ay1, ax2, ay2 = a[0], a[1], a[0] + a[2], a[1] + a[3]
    bx1, by1, bx2, by2 = b[0], b[1], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    ih = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


def attach_near_persons(records: Sequence[Any], boxes: Sequence[np.ndarray], min_iou: float = 0.1) -> None:
    """For persons of one image: ``record.extra['others_img']`` = list of (30, 3) GT 2D joints (x, y,
    valid) of
    the other persons whose box overlaps with IoU >= ``min_iou`` (donors of PoseFix swap errors)."""
    for i, rec in enumerate(records):
        others = []
        for j, other in enumerate(records):
            if i == j or other.joints_img is None or box_iou(boxes[i], boxes[j]) < min_iou:
                continue
            others.append(np.concatenate([other.joints_img, other.joints_img_valid[:, None]], axis=1))
        rec.extra["others_img"] = others


def keypoint_box_ok(kps30: np.ndarray, threshold: float = 0.05) -> bool:
    """True when the keypoints give a usable test-time box (at least two confident joints)."""
    return box_from_keypoints(kps30[:, :2], kps30[:, 2], threshold=threshold) is not None
