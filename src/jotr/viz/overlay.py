"""Mesh overlays for demos: every person's mesh rendered over the image in ONE render (so the depth order
   between
people is right), and a side view of the same scene.

Meshes are in the original image's camera frame (metres; x right, y down, z forward), as
:class:`jotr.inference.predictor.PersonResult` gives them; rendering goes through
:class:`jotr.viz.renderer.Renderer` (pyrender, OSMesa offscreen)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from jotr.errors import InputError

# Distinct, light colours (RGB 0-1), one per person, cycled.
PALETTE = np.array(
    [
        [0.65, 0.74, 0.86],
        [0.94, 0.66, 0.50],
        [0.60, 0.85, 0.62],
        [0.90, 0.62, 0.80],
        [0.95, 0.86, 0.50],
        [0.60, 0.86, 0.88],
        [0.80, 0.70, 0.95],
        [0.85, 0.85, 0.85],
    ]
)


def person_color(i: int) -> np.ndarray:
    """(3,) RGB in [0, 1] of the i-th person."""
    return PALETTE[i % len(PALETTE)]


@dataclass
class Overlay:
    image: np.ndarray  # (H, W, 3) uint8 RGB: the meshes blended over the input image
    side: (
        np.ndarray
    )  # (H, W, 3) uint8 RGB: the same meshes seen from the side (90 deg about the vertical axis)
    mask: np.ndarray  # (H, W) bool, pixels covered by a mesh in the front view
    instance: np.ndarray  # (H, W) int32, index of the front-most person per pixel, -1 = none


class MeshVisualizer:
    """Renders overlays and side views; keeps one offscreen renderer per image size, for the
    ``MAX_RENDERERS`` most recently used sizes (each holds an OpenGL context and framebuffers of its size, so
    a server that sees many sizes closes the least recently used one instead of keeping them all)."""

    MAX_RENDERERS = 2

    def __init__(self, alpha: float = 0.85, side_angle_deg: float = 90.0) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise InputError(f"overlay alpha must be in [0, 1], got {alpha}")
        self.alpha = alpha
        self.side_angle = np.deg2rad(side_angle_deg)
        self._renderers: dict[tuple[int, int], object] = {}

    def _renderer(self, width: int, height: int):
        from jotr.viz.renderer import Renderer

        key = (width, height)
        renderer = self._renderers.pop(key, None)
        if renderer is None:
            while len(self._renderers) >= self.MAX_RENDERERS:
                oldest = next(iter(self._renderers))
                self._renderers.pop(oldest).close()
            renderer = Renderer(width, height)
        self._renderers[key] = renderer  # dicts keep insertion order: last = most recently used
        return renderer

    def close(self) -> None:
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()

    def __enter__(self) -> MeshVisualizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def render(
        self,
        image: np.ndarray,
        meshes: Sequence[tuple[np.ndarray, np.ndarray]],
        focal: tuple[float, float],
        princpt: tuple[float, float],
        boxes: Sequence[np.ndarray] | None = None,
        colors: Sequence[np.ndarray] | None = None,
    ) -> Overlay:
        """``image`` (H, W, 3) uint8 RGB; ``meshes`` [(vertices (V, 3) camera metres, faces (F, 3))], one
           per person;
        ``boxes`` optional (4,) xywh crop boxes drawn as outlines; ``colors`` optional per-person RGB."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputError(f"overlay: image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
        H, W = image.shape[:2]
        cols = [np.asarray(colors[i]) if colors is not None else person_color(i) for i in range(len(meshes))]
        renderer = self._renderer(W, H)
        items = [(np.asarray(v, np.float64), np.asarray(f), c) for (v, f), c in zip(meshes, cols)]
        front = renderer.render(items, focal, princpt)
        mask = front.depth > 0
        out = image.copy()
        blend = self.alpha * front.color.astype(np.float32) + (1 - self.alpha) * image.astype(np.float32)
        out[mask] = np.clip(blend[mask] + 0.5, 0, 255).astype(np.uint8)
        if boxes is not None:
            for i, box in enumerate(boxes):
                x, y, w, h = (float(v) for v in box)
                colour = tuple(int(255 * c) for c in cols[i])
                cv2.rectangle(out, (round(x), round(y)), (round(x + w), round(y + h)), colour, 1, cv2.LINE_AA)
        side = self.render_side(items, focal, (W, H), renderer)
        return Overlay(image=out, side=side, mask=mask, instance=front.instance)

    def render_side(self, items, focal, size: tuple[int, int], renderer) -> np.ndarray:
        """All meshes turned together about the vertical axis through their common centre, re-framed."""
        W, H = size
        bg = np.full((H, W, 3), 255, np.uint8)
        if not items:
            return bg
        fx, fy = (float(focal[0]), float(focal[1])) if np.ndim(focal) else (float(focal),) * 2
        allv = np.concatenate([v for v, _, _ in items])
        centre = allv.mean(0)
        a = self.side_angle
        R = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
        rotated = [(v - centre) @ R.T for v, _, _ in items]
        pts = np.concatenate(rotated)
        half = np.abs(pts).max(0)  # (3,) half extents after rotation
        # Distance so that the scene spans at most 80 % of the image, and never nearer than the original view.
        z_fit = max(fx * half[0] / (0.4 * W), fy * half[1] / (0.4 * H)) + half[2]
        z = max(float(centre[2]), z_fit, 0.5)
        shifted = [(r + np.array([0.0, 0.0, z]), f, c) for r, (_, f, c) in zip(rotated, items)]
        res = renderer.render(shifted, (fx, fy), (W / 2.0, H / 2.0), bg=bg)
        return res.color
