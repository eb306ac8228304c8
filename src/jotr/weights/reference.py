"""The shipped model's reference prediction: a fixed input drawn in code and what a predictor makes of it.

:func:`reference_inputs` builds the input (no randomness); :func:`reference_prediction` runs a predictor on
it; :func:`write_reference` stores the result (``tests/data/shipped_model_reference.npz``, made by
``scripts/export_shipped_model.py``) and :func:`compare_to_reference` checks a predictor against that file.
This module uses :mod:`jotr.inference`; the file format (:mod:`jotr.weights.shipped_file`) does not.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from jotr.errors import CheckpointError
from jotr.weights.shipped_file import file_sha256

if TYPE_CHECKING:
    from jotr.inference.predictor import JOTRPredictor, PersonInput

REFERENCE_FIELDS = ("pose_rotmat", "shape", "cam_t_crop", "translation", "joints", "joints_img", "vertices")
REFERENCE_VERTEX_STRIDE = 16  # the reference stores every 16th output vertex (enough to catch any change)
# Tolerances of compare_to_reference: metres / rotation entries / body-shape units, and image pixels.
REFERENCE_ATOL = 1e-3
REFERENCE_ATOL_PX = 0.05


def _segment_mask(h: int, w: int, a: np.ndarray, b: np.ndarray, radius: float) -> np.ndarray:
    """(h, w) bool: pixels within ``radius`` of the segment a-b (pixel centres)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    ab = b - a
    t = ((xx - a[0]) * ab[0] + (yy - a[1]) * ab[1]) / max(float(ab @ ab), 1e-9)
    t = np.clip(t, 0.0, 1.0)
    dx, dy = xx - (a[0] + t * ab[0]), yy - (a[1] + t * ab[1])
    return dx * dx + dy * dy <= radius * radius


# COCO-17 order: nose, eyes (L, R), ears (L, R), shoulders, elbows, wrists, hips, knees, ankles (L before R).
# A person facing the camera: their left is at larger x.
_STANDING_COCO17 = np.array(
    [
        [100, 42], [105, 37], [95, 37], [111, 40], [89, 40],
        [119, 66], [81, 66], [127, 100], [71, 100], [131, 131], [66, 131],
        [112, 134], [88, 134], [115, 181], [86, 181], [116, 226], [84, 226],
    ],
    dtype=np.float64,
)  # fmt: skip
# An upper-body person cut by the bottom of the image: hips at the border, knees and ankles outside.
_UPPER_BODY_COCO17 = np.array(
    [
        [232, 70], [241, 61], [224, 61], [252, 66], [213, 66],
        [272, 122], [193, 122], [285, 180], [180, 178], [262, 226], [206, 230],
        [256, 246], [208, 246], [258, 330], [206, 330], [258, 410], [206, 410],
    ],
    dtype=np.float64,
)  # fmt: skip
_LIMBS = (
    (5, 7),
    (7, 9),
    (6, 8),
    (8, 10),
    (11, 13),
    (13, 15),
    (12, 14),
    (14, 16),
    (5, 6),
    (11, 12),
    (5, 11),
    (6, 12),
)
REFERENCE_IMAGE_SIZE = (320, 256)  # W, H


def reference_inputs() -> tuple[np.ndarray, list[PersonInput]]:
    """The fixed input of the stored reference prediction: a (256, 320, 3) uint8 RGB image and two people.

    Built in code, no randomness: a smooth colour gradient with a checker pattern, two stick figures painted
    at their COCO-17 keypoints, and the keypoints themselves -- a full standing person (left ear missing) and
    an upper-body person cut by the bottom border (knees and ankles outside the image, confidence 0)."""
    from jotr.inference.predictor import PersonInput

    W, H = REFERENCE_IMAGE_SIZE
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    img = np.stack([60 + 120 * xx / W, 80 + 100 * yy / H, 150 - 60 * xx / W], axis=-1)
    img += 25.0 * (((xx // 16) + (yy // 16)) % 2)[..., None]
    people = []
    for kps, colour in ((_STANDING_COCO17, (200, 60, 50)), (_UPPER_BODY_COCO17, (40, 70, 190))):
        conf = np.where((kps[:, 0] >= 0) & (kps[:, 0] < W) & (kps[:, 1] >= 0) & (kps[:, 1] < H), 0.9, 0.0)
        for a, b in _LIMBS:
            img[_segment_mask(H, W, kps[a], kps[b], 7.0)] = colour
        head = kps[0]
        img[_segment_mask(H, W, head, head, 13.0)] = (230, 190, 160)
        people.append(np.concatenate([kps, conf[:, None]], axis=1))
    people[0][3, 2] = 0.0  # the standing person's left ear is not detected
    image = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return image, [PersonInput(keypoints=p, keypoint_format="coco17") for p in people]


def reference_prediction(predictor: JOTRPredictor) -> dict[str, np.ndarray]:
    """The predictor's outputs on :func:`reference_inputs`, stacked per person (REFERENCE_FIELDS)."""
    image, people = reference_inputs()
    results = predictor.predict(image, people, name="reference input")
    bad = [r.error for r in results if not r.ok]
    if bad:
        raise CheckpointError(f"the reference input failed: {bad}")
    out = {}
    for name in REFERENCE_FIELDS:
        arr = np.stack([np.asarray(getattr(r, name), dtype=np.float32) for r in results])
        if name == "vertices":
            arr = arr[:, ::REFERENCE_VERTEX_STRIDE]
        out[name] = arr
    return out


def write_reference(predictor: JOTRPredictor, path: str | Path, weights: str | Path) -> dict[str, np.ndarray]:
    """Run :func:`reference_prediction` and store it (atomically) with the sha256 of the weights file."""
    from jotr.utils.io import atomic_path

    ref = reference_prediction(predictor)
    payload = dict(ref)
    payload["weights_sha256"] = np.array(file_sha256(weights))
    payload["vertex_stride"] = np.array(REFERENCE_VERTEX_STRIDE)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **payload)
    return ref


def compare_to_reference(predictor: JOTRPredictor, path: str | Path) -> dict[str, float]:
    """Max absolute difference per field between the predictor's reference prediction and the stored one.

    Raises AssertionError naming the fields beyond the tolerances (REFERENCE_ATOL, REFERENCE_ATOL_PX)."""
    stored = np.load(path)
    got = reference_prediction(predictor)
    diffs: dict[str, float] = {}
    failed = []
    for name in REFERENCE_FIELDS:
        ref = stored[name]
        if ref.shape != got[name].shape:
            failed.append(f"{name}: shape {got[name].shape} vs stored {ref.shape}")
            continue
        diffs[name] = float(np.abs(got[name] - ref).max())
        tol = REFERENCE_ATOL_PX if name == "joints_img" else REFERENCE_ATOL
        if not diffs[name] <= tol:
            failed.append(f"{name}: max |diff| {diffs[name]:.3g} > {tol:g}")
    if failed:
        raise AssertionError(f"prediction differs from the stored reference {path}: " + "; ".join(failed))
    return diffs
