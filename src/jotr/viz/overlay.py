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

# One colour per person (RGB 0-1), cycled; the same in the overlay, the side view, the 3D files and the
# CLI / web status lines. Saturated enough to stand out on skin, clothes and grey backgrounds.
PALETTE = np.array(
    [
        [0.30, 0.55, 0.90],  # blue
        [0.96, 0.55, 0.20],  # orange
        [0.30, 0.75, 0.38],  # green
        [0.88, 0.30, 0.35],  # red
        [0.62, 0.45, 0.86],  # purple
        [0.95, 0.80, 0.20],  # yellow
        [0.20, 0.75, 0.80],  # cyan
        [0.92, 0.45, 0.72],  # pink
    ]
)
OUTLINE_RGB = (20, 20, 20)  # mesh outlines (front and side view)
GROUND_RGB = ((0.90, 0.90, 0.88), (1.0, 1.0, 0.98))  # side view: checkerboard tiles of the ground plane
CAMERA_MARKER_RGB = (0.25, 0.25, 0.28)
SIDE_ELEVATION_DEG = 15.0  # the side view looks down this much, so the ground plane shows
GROUND_TILE_M = 0.5
SHADE_AMBIENT, SHADE_LIGHT = 0.4, 3.0  # a little more contrast than the renderer default (0.45, 2.5)


def person_color(i: int) -> np.ndarray:
    """(3,) RGB in [0, 1] of the i-th person."""
    return PALETTE[i % len(PALETTE)]


def person_hex(i: int) -> str:
    """``#rrggbb`` of :func:`person_color` (web status lines)."""
    return "#" + "".join(f"{int(round(255 * c)):02x}" for c in person_color(i))


def person_swatch(i: int) -> str:
    """A coloured block in :func:`person_color` for a terminal (24-bit ANSI colour)."""
    r, g, b = (int(round(255 * c)) for c in person_color(i))
    return f"\x1b[38;2;{r};{g};{b}m\u2588\u2588\x1b[0m"


@dataclass(frozen=True, eq=False)
class SideView:
    """Where the side view's camera is, in the input camera's frame (metres; x right, y down, z forward):
    ``p_side = rotation @ (p - position)``. Reuse one for every frame of a video (fixed framing)."""

    rotation: np.ndarray  # (3, 3) rows: side image right (+z_cam), down, viewing direction
    position: np.ndarray  # (3,) side camera centre
    ground_y: float  # camera-frame y of the ground plane (the lowest mesh point of the framing frame)
    extent: tuple[float, float, float, float]  # x_min, x_max, z_min, z_max of the ground plane, metres


@dataclass
class Overlay:
    image: np.ndarray  # (H, W, 3) uint8 RGB: the meshes over the input image (opaque, shaded, outlined)
    side: np.ndarray  # (H, W, 3) uint8 RGB: the same meshes seen from the side, ground plane and camera
    mask: np.ndarray  # (H, W) bool, pixels covered by a mesh in the front view
    instance: np.ndarray  # (H, W) int32, index of the front-most person per pixel, -1 = none
    side_view: SideView | None = None  # the side framing used (pass it back for the next video frame)


def outline(instance: np.ndarray, thickness: int) -> np.ndarray:
    """(H, W) bool: pixels on the border of a person's region (towards background or another person)."""
    inst = np.asarray(instance)
    edge = np.zeros(inst.shape, bool)
    edge[:, 1:] |= inst[:, 1:] != inst[:, :-1]
    edge[:, :-1] |= inst[:, 1:] != inst[:, :-1]
    edge[1:] |= inst[1:] != inst[:-1]
    edge[:-1] |= inst[1:] != inst[:-1]
    edge &= inst >= 0
    if thickness > 1:
        edge = cv2.dilate(edge.astype(np.uint8), np.ones((thickness, thickness), np.uint8)) > 0
        edge &= inst >= 0
    return edge


def _line_px(width: int, height: int) -> int:
    return max(1, int(round(min(width, height) / 320)))


class MeshVisualizer:
    """Renders overlays and side views; keeps one offscreen renderer per image size, for the
    ``MAX_RENDERERS`` most recently used sizes (each holds an OpenGL context and framebuffers of its size, so
    a server that sees many sizes closes the least recently used one instead of keeping them all)."""

    MAX_RENDERERS = 2

    def __init__(self, alpha: float = 1.0, side_angle_deg: float = 90.0) -> None:
        """``alpha``: opacity of the meshes over the image (1 = opaque); ``side_angle_deg``: the side view's
        turn about the vertical axis (90 = seen from the people's right-hand side of the image)."""
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
        labels: Sequence[str] | None = None,
        side_view: SideView | None = None,
    ) -> Overlay:
        """``image`` (H, W, 3) uint8 RGB; ``meshes`` [(vertices (V, 3) camera metres, faces (F, 3))], one per
        person; ``boxes`` optional (4,) xywh crop boxes drawn as outlines; ``colors`` optional per-person RGB;
        ``labels`` optional per-person text drawn at the box (e.g. the person's number in the status table);
        ``side_view`` a fixed side framing (videos: the previous frame's ``Overlay.side_view``)."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputError(f"overlay: image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
        H, W = image.shape[:2]
        cols = [np.asarray(colors[i]) if colors is not None else person_color(i) for i in range(len(meshes))]
        renderer = self._renderer(W, H)
        items = [(np.asarray(v, np.float64), np.asarray(f), c) for (v, f), c in zip(meshes, cols)]
        front = renderer.render(
            [(v, f, _side_lit(v, f, c)) for v, f, c in items],
            focal,
            princpt,
            ambient=SHADE_AMBIENT,
            light=SHADE_LIGHT,
        )
        mask = front.depth > 0
        out = image.copy()
        blend = self.alpha * front.color.astype(np.float32) + (1 - self.alpha) * image.astype(np.float32)
        out[mask] = np.clip(blend[mask] + 0.5, 0, 255).astype(np.uint8)
        line = _line_px(W, H)
        out[outline(front.instance, line)] = OUTLINE_RGB
        if boxes is not None:
            for i, box in enumerate(boxes):
                x, y, w, h = (float(v) for v in box)
                colour = tuple(int(255 * c) for c in cols[i])
                cv2.rectangle(
                    out, (round(x), round(y)), (round(x + w), round(y + h)), colour, line, cv2.LINE_AA
                )
                if labels is not None:
                    _label(out, labels[i], (round(x) + 2, round(y) + 2), colour, line)
        side, used = self.render_side(items, focal, (W, H), renderer, side_view)
        return Overlay(image=out, side=side, mask=mask, instance=front.instance, side_view=used)

    def side_view_for(self, items, focal, size: tuple[int, int]) -> SideView:
        """A side framing that holds the people, the ground under them and the camera (at the origin)."""
        W, H = size
        fx, fy = (float(focal[0]), float(focal[1])) if np.ndim(focal) else (float(focal),) * 2
        allv = np.concatenate([v for v, _, _ in items])
        ground_y = float(allv[:, 1].max())  # camera y points down: the lowest point
        top_y = float(allv[:, 1].min())
        x_min, x_max = float(allv[:, 0].min()), float(allv[:, 0].max())
        z_min, z_max = min(0.0, float(allv[:, 2].min())), float(allv[:, 2].max())
        margin = 0.5
        span_h = (z_max - z_min) + 2 * margin  # side image horizontal: camera-frame z
        span_v = (ground_y - min(top_y, 0.0)) + 2 * margin  # vertical: from above head/camera to the ground
        e = np.deg2rad(SIDE_ELEVATION_DEG)
        a = self.side_angle
        # viewing direction: the input camera's turned by a about the vertical axis, then tilted down by e
        forward = np.array([-np.sin(a) * np.cos(e), np.sin(e), np.cos(a) * np.cos(e)])
        down = np.array([np.sin(a) * np.sin(e), np.cos(e), -np.cos(a) * np.sin(e)])
        right = np.cross(down, forward)
        rotation = np.stack([right, down, forward])
        centre = np.array([(x_min + x_max) / 2, (ground_y + min(top_y, 0.0)) / 2, (z_min + z_max) / 2])
        half_depth = max(x_max - x_min, 1.0) / 2 + margin
        dist = max(fx * span_h / (0.9 * W), fy * span_v / (0.9 * H)) + half_depth
        return SideView(
            rotation=rotation,
            position=centre - dist * forward,
            ground_y=ground_y,
            extent=(x_min - 1.0, x_max + 1.0, z_min - 0.5, z_max + 1.0),
        )

    def render_side(
        self, items, focal, size: tuple[int, int], renderer, side_view: SideView | None = None
    ) -> tuple[np.ndarray, SideView | None]:
        """The people seen from the side with a checkerboard ground plane and a marker where the input camera
        is; framed by ``side_view`` (default: framed on these meshes)."""
        W, H = size
        bg = np.full((H, W, 3), 255, np.uint8)
        if not items and side_view is None:
            return bg, None
        fx, fy = (float(focal[0]), float(focal[1])) if np.ndim(focal) else (float(focal),) * 2
        view = side_view if side_view is not None else self.side_view_for(items, focal, size)
        scene = [*items, _ground(view), _camera_marker(fx, fy, size)]

        def to_side(v: np.ndarray) -> np.ndarray:
            return (v - view.position) @ view.rotation.T

        shifted = [(to_side(v), f, c) for v, f, c in scene]
        res = renderer.render(
            shifted, (fx, fy), (W / 2.0, H / 2.0), bg=bg, ambient=SHADE_AMBIENT, light=SHADE_LIGHT
        )
        side = res.color
        inst = np.where(res.instance < len(items), res.instance, -1)  # outline the people only
        side[outline(inst, _line_px(W, H))] = OUTLINE_RGB
        return side, view


def _side_lit(vertices: np.ndarray, faces: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """(V, 3) per-vertex colours: ``colour`` darkened where the surface turns away from a light at the
    upper right (camera frame), so a body seen from the front still shows its shape."""
    from jotr.viz.renderer import vertex_normals

    light = np.array([0.6, -0.5, -0.6]) / np.linalg.norm([0.6, -0.5, -0.6])
    lit = np.clip(vertex_normals(vertices, faces).astype(np.float64) @ light, 0.0, 1.0)
    return np.asarray(colour, np.float64)[None] * (0.6 + 0.4 * lit)[:, None]


def _ground(view: SideView) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A checkerboard of GROUND_TILE_M tiles at ``view.ground_y`` (camera frame), per-vertex colours."""
    x0, x1, z0, z1 = view.extent
    xs = np.arange(np.floor(x0 / GROUND_TILE_M), np.ceil(x1 / GROUND_TILE_M)) * GROUND_TILE_M
    zs = np.arange(np.floor(z0 / GROUND_TILE_M), np.ceil(z1 / GROUND_TILE_M)) * GROUND_TILE_M
    verts, faces, cols = [], [], []
    for i, x in enumerate(xs):
        for j, z in enumerate(zs):
            k = len(verts)
            t = GROUND_TILE_M
            verts += [
                [x, view.ground_y, z],
                [x + t, view.ground_y, z],
                [x + t, view.ground_y, z + t],
                [x, view.ground_y, z + t],
            ]
            faces += [[k, k + 1, k + 2], [k, k + 2, k + 3]]
            cols += [GROUND_RGB[(i + j) % 2]] * 4
    return np.array(verts), np.array(faces), np.array(cols)


def _camera_marker(fx: float, fy: float, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A pyramid at the input camera (origin) opening towards +z along its field of view, 0.4 m deep."""
    W, H = size
    d = 0.4
    hx, hy = d * W / (2 * fx), d * H / (2 * fy)
    verts = np.array([[0, 0, 0], [-hx, -hy, d], [hx, -hy, d], [hx, hy, d], [-hx, hy, d]], float)
    faces = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 1], [1, 3, 2], [1, 4, 3]])
    return verts, faces, np.array(CAMERA_MARKER_RGB)


def _label(image: np.ndarray, text: str, origin: tuple[int, int], colour, line: int) -> None:
    """``text`` in a filled box of ``colour`` with dark text, top-left at ``origin`` (inside the image)."""
    scale = 0.45 * line + 0.1
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, line)
    H, W = image.shape[:2]
    x = int(np.clip(origin[0], 0, max(W - tw - 4, 0)))
    y = int(np.clip(origin[1], 0, max(H - th - base - 4, 0)))
    cv2.rectangle(image, (x, y), (x + tw + 4, y + th + base + 4), colour, -1)
    cv2.putText(
        image, text, (x + 2, y + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, OUTLINE_RGB, line, cv2.LINE_AA
    )
