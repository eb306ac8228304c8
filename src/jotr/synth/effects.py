"""Image-space realism for synthetic scenes: cast shadows on the background, anti-aliased silhouettes and
camera effects (white balance, colour, vignetting, defocus / motion blur, sensor noise, JPEG re-compression).

Pure numpy / OpenCV; every function draws only from the ``rng`` it is given. Images are (H, W, 3) uint8
RGB unless stated otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _scale(image: np.ndarray) -> float:
    """Kernel sizes are given for a 512-pixel-wide image and scaled with the image."""
    return image.shape[1] / 512.0


def cast_shadows(
    rng: np.random.Generator,
    bg: np.ndarray,
    people: list[np.ndarray],
    light_dir: np.ndarray,
    cam_rot: np.ndarray,
    cam_center: np.ndarray,
    focal: tuple[float, float],
    princpt: tuple[float, float],
    strength: float,
    max_height: float | None = None,
) -> np.ndarray:
    """Darken the background where the people's shadows fall on the ground plane.

    ``people``: (V, 3) camera-frame vertices per person; ``light_dir``: (3,) camera-frame unit vector towards
    the key light; ``cam_rot`` / ``cam_center``: world-to-camera rotation and camera centre (world frame: y
    down, ground y = 0). Each vertex is projected along the light onto the ground and splatted into a mask
    that is closed and softened; ``strength`` in [0, 1] is the darkening at the shadow's core. Returns the
    darkened copy of ``bg`` (people drawn on top later hide the part of the shadow behind them).
    ``max_height`` (metres): only vertices at most this high above the ground cast a shadow -- a contact
    shadow around the feet, for backgrounds whose ground is not the scene's ground plane (a photograph: a
    whole-body shadow would land on its sky or walls as a ghost of the person). None = the whole body.
    """
    import cv2

    H, W = bg.shape[:2]
    d_world = cam_rot.T @ light_dir  # towards the light, world frame
    if strength <= 0.0 or -d_world[1] < np.sin(np.deg2rad(8.0)):  # light below ~8 deg: no usable shadow
        return bg
    mask = np.zeros((H, W), np.float32)
    radius = 1
    for verts in people:
        world = verts @ cam_rot + cam_center  # X_w = R^T X_c + C (row vectors)
        if max_height is not None:
            world = world[world[:, 1] >= -max_height]  # y down: height above the ground is -y
            if not len(world):
                continue
        s = world[:, 1] / -d_world[1]  # distance along the light direction down to y = 0 (y >= 0 is down)
        ground = world - s[:, None] * d_world[None]
        cam = (ground - cam_center) @ cam_rot.T
        ok = cam[:, 2] > 0.2
        if not ok.any():
            continue
        u = np.round(cam[ok, 0] / cam[ok, 2] * focal[0] + princpt[0]).astype(np.int64)
        v = np.round(cam[ok, 1] / cam[ok, 2] * focal[1] + princpt[1]).astype(np.int64)
        inside = (u >= 0) & (u < W) & (v >= 0) & (v < H)
        mask[v[inside], u[inside]] = 1.0
        # Gap between splatted vertices: about the person's projected size over the mesh's ~100 rows.
        height_px = float(np.ptp(verts[:, 1] / np.maximum(verts[:, 2], 0.2))) * focal[1]
        radius = max(radius, int(np.ceil(height_px / 80.0)))
    if not mask.any():
        return bg
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
    mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, radius * rng.uniform(0.6, 1.5)))
    shade = 1.0 - strength * np.clip(mask, 0.0, 1.0)
    return np.clip(bg.astype(np.float32) * shade[..., None] + 0.5, 0, 255).astype(np.uint8)


def raise_light(light_dir: np.ndarray, cam_rot: np.ndarray, min_elevation_deg: float) -> np.ndarray:
    """(3,) camera-frame direction towards a light, its elevation above the horizon raised to at least
    ``min_elevation_deg`` (same azimuth): shorter shadows. ``cam_rot`` = world-to-camera rotation."""
    d = cam_rot.T @ light_dir  # world frame, y down
    horizontal = np.array([d[0], 0.0, d[2]])
    norm = float(np.linalg.norm(horizontal))
    elevation = np.arcsin(np.clip(-d[1], -1.0, 1.0))
    low = np.deg2rad(min_elevation_deg)
    if elevation >= low:
        return light_dir
    horizontal = horizontal / norm if norm > 1e-9 else np.array([0.0, 0.0, -1.0])
    raised = horizontal * np.cos(low) + np.array([0.0, -np.sin(low), 0.0])
    return cam_rot @ raised


def defocus(rng: np.random.Generator, image: np.ndarray, max_sigma: float) -> tuple[np.ndarray, float]:
    """Gaussian defocus of a random strength up to ``max_sigma`` pixels (for a 512-px-wide image)."""
    import cv2

    sigma = float(rng.uniform(0.0, max_sigma)) * _scale(image)
    if sigma < 0.3:
        return image, 0.0
    return cv2.GaussianBlur(image, (0, 0), sigma), sigma


def antialias_edges(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Soften the one-pixel staircase along the boundary of ``mask`` ((H, W) bool: rendered surfaces), as a
    real lens and sensor would (the offscreen renderer has no multisampling)."""
    import cv2

    m = mask.astype(np.uint8)
    edge = cv2.dilate(m, np.ones((3, 3), np.uint8)) != cv2.erode(m, np.ones((3, 3), np.uint8))
    if not edge.any():
        return image
    smooth = cv2.GaussianBlur(image, (3, 3), 0.7)
    out = image.copy()
    out[edge] = smooth[edge]
    return out


def camera_effects(rng: np.random.Generator, image: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """Random camera effects, in the order a camera applies them; returns the image and what was applied.

    White balance (per-channel gains), exposure / contrast / gamma, saturation, vignetting (40%), defocus
    (25%) or motion blur (15%) else a slight lens blur, sensor noise (signal-dependent shot noise plus read
    noise, in colour or luminance only), and a JPEG re-compression (50%, quality 35-90) as when a photo has
    been saved and shared before.
    """
    import cv2

    H, W = image.shape[:2]
    scale = _scale(image)
    info: dict[str, Any] = {}
    img = image.astype(np.float32) / 255.0
    wb = np.clip(rng.normal(1.0, 0.05, 3), 0.85, 1.15)
    img = img * wb[None, None]
    info["white_balance"] = wb
    gain, contrast, gamma = rng.uniform(0.85, 1.15), rng.uniform(0.85, 1.15), rng.uniform(0.85, 1.2)
    mean = float(img.mean())
    img = np.clip((img - mean) * contrast + mean, 0.0, 1.0) * gain
    img = np.clip(img, 0.0, 1.0) ** gamma
    sat = rng.uniform(0.7, 1.25)
    grey = img @ np.array([0.299, 0.587, 0.114], np.float32)
    img = grey[..., None] + (img - grey[..., None]) * sat
    info.update(gain=gain, contrast=contrast, gamma=gamma, saturation=sat)
    if rng.random() < 0.4:
        strength = rng.uniform(0.1, 0.4)
        yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
        r2 = ((xx - W / 2) ** 2 + (yy - H / 2) ** 2) / (0.25 * (W * W + H * H))
        img = img * (1.0 - strength * r2)[..., None]
        info["vignetting"] = strength
    blur = rng.random()
    if blur < 0.25:
        sigma = rng.uniform(0.6, 1.8) * scale
        img = cv2.GaussianBlur(img, (0, 0), sigma)
        info["defocus_px"] = sigma
    elif blur < 0.4:
        length = rng.uniform(3.0, 11.0) * scale
        angle = rng.uniform(0.0, np.pi)
        size = int(np.ceil(length)) | 1
        kernel = np.zeros((size, size), np.float32)
        c = size // 2
        dx, dy = 0.5 * length * np.cos(angle), 0.5 * length * np.sin(angle)
        cv2.line(kernel, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1, cv2.LINE_AA)
        img = cv2.filter2D(img, -1, kernel / kernel.sum())
        info["motion_blur_px"] = length
    else:
        sigma = rng.uniform(0.0, 0.6) * scale
        if sigma > 0.3:
            img = cv2.GaussianBlur(img, (0, 0), sigma)
    img = np.clip(img, 0.0, 1.0)
    shot, read = rng.uniform(0.0, 0.0025), rng.uniform(0.002, 0.015)
    std = np.sqrt(shot * img + read * read)
    if rng.random() < 0.3:  # luminance noise only
        noise = rng.standard_normal((H, W, 1), dtype=np.float32)
    else:
        noise = rng.standard_normal((H, W, 3), dtype=np.float32)
    img = img + std * noise
    info["noise"] = {"shot": shot, "read": read}
    out = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        quality = int(rng.integers(35, 91))
        ok, buf = cv2.imencode(".jpg", out[..., ::-1], [int(cv2.IMWRITE_JPEG_QUALITY), quality])
        if ok:
            out = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
            info["jpeg_quality"] = quality
    return out, info
