"""Boxes and affine crop transforms shared by datasets, the synthetic generator and the predictor.

Boxes are ``xywh`` in image pixels (top-left corner, width, height) unless the name says ``xyxy``.
"""

from __future__ import annotations

import math

import numpy as np


def xyxy_to_xywh(box: np.ndarray) -> np.ndarray:
    box = np.asarray(box, dtype=np.float64)
    return np.concatenate([box[..., :2], box[..., 2:4] - box[..., :2]], axis=-1)


def xywh_to_xyxy(box: np.ndarray) -> np.ndarray:
    box = np.asarray(box, dtype=np.float64)
    return np.concatenate([box[..., :2], box[..., :2] + box[..., 2:4]], axis=-1)


def box_from_keypoints(
    kps: np.ndarray, conf: np.ndarray | None = None, threshold: float = 0.05, extend: float = 1.2
) -> np.ndarray | None:
    """Tight box of the valid keypoints (conf > threshold), enlarged by ``extend`` about its centre.

    Returns xywh, or None when fewer than two keypoints are valid or the box is empty.
    """
    kps = np.asarray(kps, dtype=np.float64)
    valid = np.ones(len(kps), dtype=bool) if conf is None else np.asarray(conf) > threshold
    valid &= np.isfinite(kps).all(axis=1)
    if valid.sum() < 2:
        return None
    pts = kps[valid, :2]
    x0, y0 = pts.min(0)
    x1, y1 = pts.max(0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    w, h = (x1 - x0) * extend, (y1 - y0) * extend
    if w <= 0 and h <= 0:
        return None
    return np.array([cx - w / 2, cy - h / 2, w, h])


def square_box(box_xywh: np.ndarray, scale: float = 1.0, aspect: float = 1.0) -> np.ndarray:
    """Expand a box to the aspect ratio (w / h) about its centre, then scale it (official process_bbox)."""
    x, y, w, h = np.asarray(box_xywh, dtype=np.float64)
    cx, cy = x + w / 2, y + h / 2
    if w > aspect * h:
        h = w / aspect
    elif w < aspect * h:
        w = h * aspect
    w, h = w * scale, h * scale
    return np.array([cx - w / 2, cy - h / 2, w, h])


def crop_transform(
    center: tuple[float, float], size: float, out_size: int, rot_deg: float = 0.0, flip: bool = False
) -> np.ndarray:
    """(2, 3) affine matrix mapping image pixels to crop pixels.

    The square of side ``size`` centred at ``center`` (rotated by ``rot_deg`` counter-clockwise about the
    centre and optionally mirrored horizontally) maps onto the ``out_size`` x ``out_size`` crop.
    """
    s = out_size / size
    a = math.radians(rot_deg)
    cos, sin = math.cos(a), math.sin(a)
    fx = -1.0 if flip else 1.0
    # crop = S * R * F * (img - center) + out/2 ; rotation positive = counter-clockwise in the image
    R = np.array([[cos, sin], [-sin, cos]]) @ np.diag([fx, 1.0])
    A = s * R
    t = np.array([out_size / 2, out_size / 2]) - A @ np.asarray(center, dtype=np.float64)
    return np.concatenate([A, t[:, None]], axis=1)


def invert_affine(M: np.ndarray) -> np.ndarray:
    A, t = M[:, :2], M[:, 2]
    Ai = np.linalg.inv(A)
    return np.concatenate([Ai, (-Ai @ t)[:, None]], axis=1)


def apply_affine(points: np.ndarray, M: np.ndarray) -> np.ndarray:
    """(..., 2) points -> (..., 2) through a (2, 3) affine matrix."""
    points = np.asarray(points, dtype=np.float64)
    return points @ M[:, :2].T + M[:, 2]
