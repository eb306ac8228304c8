"""Training-time synthetic occlusion for any dataset: paste occluders on a crop and report the covered joints.

Occluders are either generated (random polygons, ellipses, rectangles and blobs with solid, striped, checkered
or noise textures and soft edges) or RGBA cut-outs (``*.png`` with an alpha channel, e.g. objects segmented
from PASCAL VOC as in 3DCrowdNet's unused ``occluder.py``) read from a user folder. Placement follows that
recipe: an occluder's long side is U(0.2, 0.5) of the crop's short side and its centre is uniform in the
central 3/4 of the crop -- or, with ``at`` (issue 22), a random one of the given points (the person's joints)
plus N(0, (0.15 x long side)^2) per axis, so that the occluders hide body parts. A joint is *covered* when
it lies inside the crop and the pasted alpha at its pixel is above 0.5.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from jotr.errors import InputError

NUM_JOINTS = 30
SHAPES = ("polygon", "ellipse", "rectangle", "blob")


def _random_color(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.0, 255.0, 3)


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(h, w, 3) float32 texture in [0, 255]."""
    import cv2

    a, b = _random_color(rng), _random_color(rng)
    kind = int(rng.integers(4))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == 0:
        mix = np.zeros((h, w), np.float32)
    elif kind == 1:  # stripes at a random angle
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(4.0, max(5.0, 0.4 * max(h, w)))
        mix = (np.floor((xx * np.cos(angle) + yy * np.sin(angle)) / period) % 2).astype(np.float32)
    elif kind == 2:  # checker
        period = rng.uniform(4.0, max(5.0, 0.3 * max(h, w)))
        mix = ((np.floor(xx / period) + np.floor(yy / period)) % 2).astype(np.float32)
    else:  # smooth noise
        cells = int(rng.integers(2, 8))
        mix = cv2.resize(rng.random((cells, cells)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
        mix = np.clip(mix, 0.0, 1.0)
    tex = a[None, None] * (1 - mix[..., None]) + b[None, None] * mix[..., None]
    tex *= rng.uniform(0.85, 1.15, (h, w, 1)).astype(np.float32) if rng.random() < 0.5 else 1.0
    return np.clip(tex, 0, 255).astype(np.float32)


def generate_occluder(rng: np.random.Generator, size: int) -> np.ndarray:
    """(h, w, 4) float32 RGBA occluder (RGB 0-255, alpha 0-1) whose long side is ``size`` pixels."""
    import cv2

    size = max(int(size), 4)
    aspect = rng.uniform(0.4, 1.0)
    h, w = (size, max(int(size * aspect), 3)) if rng.random() < 0.5 else (max(int(size * aspect), 3), size)
    mask = np.zeros((h, w), np.uint8)
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    if shape == "rectangle":
        mask[:] = 255
    elif shape == "ellipse":
        cv2.ellipse(mask, (w // 2, h // 2), (max(w // 2 - 1, 1), max(h // 2 - 1, 1)), 0, 0, 360, 255, -1)
    else:
        n = int(rng.integers(3, 9)) if shape == "polygon" else 24
        angles = (
            np.sort(rng.uniform(0, 2 * np.pi, n))
            if shape == "polygon"
            else np.linspace(0, 2 * np.pi, n, endpoint=False)
        )
        radius = (
            rng.uniform(0.5, 1.0, n)
            if shape == "polygon"
            else 0.75 + 0.25 * np.sin(angles * int(rng.integers(2, 5)) + rng.uniform(0, 6.3))
        )
        pts = np.stack(
            [w / 2 + radius * (w / 2 - 1) * np.cos(angles), h / 2 + radius * (h / 2 - 1) * np.sin(angles)],
            axis=1,
        )
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 255)
    alpha = mask.astype(np.float32) / 255.0
    if min(h, w) >= 8:
        alpha = cv2.GaussianBlur(alpha, (0, 0), rng.uniform(0.5, 1.5))
    return np.concatenate([_texture(rng, h, w), alpha[..., None]], axis=-1)


@functools.lru_cache(maxsize=4)
def _load_cutouts(folder: str) -> tuple[np.ndarray, ...]:
    """All RGBA ``*.png`` cut-outs of a folder as (h, w, 4) float32 (RGB 0-255, alpha 0-1), sorted by name."""
    import cv2

    path = Path(folder)
    if not path.is_dir():
        raise InputError(f"occluder folder not found: {path}")
    out = []
    for file in sorted(path.glob("*.png")):
        img = cv2.imread(str(file), cv2.IMREAD_UNCHANGED)
        if img is None or img.ndim != 3 or img.shape[2] != 4:
            continue  # not an RGBA image
        rgba = img[..., [2, 1, 0, 3]].astype(np.float32)
        rgba[..., 3] /= 255.0
        if rgba[..., 3].max() > 0:
            out.append(rgba)
    if not out:
        raise InputError(f"occluder folder {path} holds no RGBA *.png cut-outs (PNG with an alpha channel)")
    return tuple(out)


def _fit(rng: np.random.Generator, rgba: np.ndarray, size: int) -> np.ndarray:
    """Resize a cut-out so that its long side is ``size`` px, with a random rotation and flip."""
    import cv2

    h, w = rgba.shape[:2]
    scale = size / max(h, w)
    out = cv2.resize(
        rgba,
        (max(int(round(w * scale)), 1), max(int(round(h * scale)), 1)),
        interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
    )
    if rng.random() < 0.5:
        out = out[:, ::-1]
    k = int(rng.integers(4)) if rng.random() < 0.3 else 0
    return np.ascontiguousarray(np.rot90(out, k))


def paste_occluders(
    image: np.ndarray,
    joints: np.ndarray,
    rng: np.random.Generator,
    *,
    num: tuple[int, int] = (1, 3),
    occluder_dir: str | None = None,
    at: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Paste ``U{num[0]..num[1]}`` occluders on a crop.

    Args:
        image: (H, W, 3) uint8 crop.
        joints: (30, 2) joints of the person, crop pixels.
        rng: the only source of randomness.
        num: inclusive range of the number of occluders.
        occluder_dir: folder of RGBA ``*.png`` cut-outs; None = generated occluders.
        at: (K, 2) candidate centres (crop pixels, K >= 1), e.g. the person's valid joints; None = uniform in
            the central 3/4 of the crop.

    Returns:
        The new (H, W, 3) uint8 image (the input is not modified) and a (30,) bool array: joints now covered.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputError(f"paste_occluders: image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    joints = np.asarray(joints, dtype=np.float64)
    if joints.shape != (NUM_JOINTS, 2):
        raise InputError(f"paste_occluders: joints must be ({NUM_JOINTS}, 2), got {joints.shape}")
    lo, hi = int(num[0]), int(num[1])
    if lo < 0 or hi < lo:
        raise InputError(f"paste_occluders: num must be a range (lo, hi) with 0 <= lo <= hi, got {num}")
    if at is not None:
        at = np.asarray(at, dtype=np.float64).reshape(-1, 2)
        at = at[np.isfinite(at).all(axis=1)]
        if len(at) == 0:
            at = None  # nothing to aim at: uniform placement
    cutouts = _load_cutouts(str(occluder_dir)) if occluder_dir is not None else None
    H, W = image.shape[:2]
    out = image.astype(np.float32)
    cover = np.zeros((H, W), np.float32)  # max alpha pasted at each pixel
    for _ in range(int(rng.integers(lo, hi + 1))):
        size = max(int(rng.uniform(0.2, 0.5) * min(H, W)), 4)
        if cutouts is not None:
            rgba = _fit(rng, cutouts[int(rng.integers(len(cutouts)))], size)
        else:
            rgba = generate_occluder(rng, size)
        if at is None:
            cx, cy = rng.uniform(W / 8, 7 * W / 8), rng.uniform(H / 8, 7 * H / 8)
        else:
            cx, cy = at[int(rng.integers(len(at)))] + rng.normal(0.0, 0.15 * size, 2)
        h, w = rgba.shape[:2]
        x0, y0 = int(round(cx - w / 2)), int(round(cy - h / 2))
        ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x0 + w, W), min(y0 + h, H)
        if ix1 <= ix0 or iy1 <= iy0:
            continue
        patch = rgba[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0]
        alpha = patch[..., 3:4]
        out[iy0:iy1, ix0:ix1] = out[iy0:iy1, ix0:ix1] * (1 - alpha) + patch[..., :3] * alpha
        cover[iy0:iy1, ix0:ix1] = np.maximum(cover[iy0:iy1, ix0:ix1], alpha[..., 0])
    finite = np.isfinite(joints).all(axis=1)
    safe = np.where(finite[:, None], joints, -1.0)
    col, row = np.round(safe[:, 0]).astype(np.int64), np.round(safe[:, 1]).astype(np.int64)
    inside = (col >= 0) & (col < W) & (row >= 0) & (row < H) & finite
    covered = np.zeros(NUM_JOINTS, bool)
    covered[inside] = cover[row[inside], col[inside]] > 0.5
    return np.clip(out + 0.5, 0, 255).astype(np.uint8), covered
