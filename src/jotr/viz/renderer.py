"""Offscreen mesh renderer (pyrender; OSMesa on headless machines), shared by the synthetic-data generator
and the demos.

Conventions:

* Meshes are ``(vertices, faces[, colour])`` tuples or :class:`MeshItem`: vertices ``(V, 3)`` in the project's
  **camera frame** (metres; x right, y down, z forward), faces ``(F, 3)``, colour RGB ``(3,)`` or per-vertex
  ``(V, 3)`` in [0, 1] or 0-255. pyrender/OpenGL cameras look down -Z with +Y up, so the renderer converts
  once, here: ``(x, y, z) -> (x, -y, -z)``, with the pyrender camera at the identity pose.
* Intrinsics ``focal = (f_x, f_y)`` and ``princpt = (c_x, c_y)`` follow
  :func:`jotr.geometry.camera.project_points` (``u = X / Z * f_x + c_x``) with **pixel centres at integer
  coordinates** (pixel ``(col, row)`` covers ``[col - 0.5, col + 0.5)``), the convention of COCO keypoints and
  OpenCV: a projected point ``(u, v)`` falls in pixel ``(round(u), round(v))``.
* Outputs: ``color`` (H, W, 3) uint8 RGB; ``depth`` (H, W) float32 camera-frame z in metres, 0 where nothing
  was drawn; ``instance`` (H, W) int32, index of the front-most mesh in the input list, -1 for background;
  optionally ``alone_depth`` (the depth of chosen meshes rendered without the others).
* Both sides of every triangle are drawn unless ``Renderer(..., double_sided=False)`` (closed meshes only).

Resources: one OpenGL context per :class:`Renderer`, freed by :meth:`Renderer.close`. pyrender keys its
shader-program cache by the current context *object*, and PyOpenGL's OSMesa binding returns a new Python
object for the same context on every call, so without care every render compiles (and keeps) a new shader
program: about 3 MB per colour render of 256x256 and 0.5 MB per depth render (measured on pyrender 0.1.45,
PyOpenGL 3.1.7). :class:`_StableProgramCache` keys the programs by shader files and defines only (one cache
belongs to one context), which keeps memory flat; pyrender itself releases the meshes of the previous scene on
the next render, so at most one scene stays in the context.

OSMesa ignores RGBA output, so compositing over a background uses the depth buffer as the mask, and pyrender's
``bg_color`` is given as floats (integers would be read on a 0-255 scale).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jotr.errors import InputError

log = logging.getLogger(__name__)

# camera frame (x right, y down, z forward) -> OpenGL camera frame (x right, y up, z backward)
CAM_TO_GL = np.diag([1.0, -1.0, -1.0])
DEFAULT_COLOR = np.array([0.7, 0.7, 0.7])  # meshes given as (vertices, faces)


@dataclass
class RenderResult:
    color: np.ndarray  # (H, W, 3) uint8 RGB, composited over the background
    depth: np.ndarray  # (H, W) float32 camera-frame depth z, metres; 0 = empty
    instance: np.ndarray  # (H, W) int32 index of the front-most mesh in the input list; -1 = background
    alone_depth: dict[int, np.ndarray] = field(
        default_factory=dict
    )  # mesh index -> (H, W) depth rendered alone


@dataclass
class MeshItem:
    vertices: np.ndarray  # (V, 3) camera frame, metres
    faces: np.ndarray  # (F, 3) int triangle indices
    color: np.ndarray  # (3,) RGB in [0, 1] or uint8 0-255, or (V, 3) per-vertex RGB (same ranges)


def _import_pyrender() -> Any:
    """Import pyrender, selecting OSMesa when no display is available; a clear error if that fails."""
    if (
        "pyrender" not in sys.modules
        and not os.environ.get("PYOPENGL_PLATFORM")
        and not os.environ.get("DISPLAY")
    ):
        os.environ["PYOPENGL_PLATFORM"] = "osmesa"
    try:
        import pyrender
    except Exception as exc:  # ImportError, or OpenGL's errors when the platform library is missing
        raise RuntimeError(
            "rendering needs pyrender with an OpenGL platform: `pip install pyrender` then `pip install "
            "PyOpenGL==3.1.7`, and on headless machines `apt-get install libosmesa6` "
            f"(PYOPENGL_PLATFORM={os.environ.get('PYOPENGL_PLATFORM')!r}): {exc}"
        ) from exc
    return pyrender


def _stable_program_cache(offscreen: Any) -> None:
    """Give ``offscreen``'s pyrender renderer a :class:`_StableProgramCache` (see the module docstring);
    pyrender re-creates its inner renderer when the context is re-created, so this runs before every
    render."""
    inner = offscreen._renderer
    if inner is not None and not isinstance(inner._program_cache, _StableProgramCache):
        old = inner._program_cache
        inner._program_cache = _StableProgramCache(old.shader_dir)
        old.clear()


class _StableProgramCache:
    """Shader programs of one OpenGL context, keyed by shader files and defines (not by the context object,
    which PyOpenGL's OSMesa binding re-creates on every query). Same interface as pyrender's cache."""

    def __init__(self, shader_dir: str) -> None:
        from pyrender.shader_program import ShaderProgramCache

        self._inner = ShaderProgramCache(shader_dir)
        self.shader_dir = shader_dir
        self._programs: dict[tuple, Any] = {}

    def get_program(self, vertex_shader, fragment_shader, geometry_shader=None, defines=None):
        key = (vertex_shader, fragment_shader, geometry_shader, tuple(sorted((defines or {}).items())))
        program = self._programs.get(key)
        if program is None:
            program = self._inner.get_program(vertex_shader, fragment_shader, geometry_shader, defines)
            self._programs[key] = program
        return program

    def clear(self) -> None:
        self._inner.clear()
        self._programs.clear()


def rendering_available() -> tuple[bool, str]:
    """(True, "") if an offscreen context can be created, else (False, reason). Used by tests to skip."""
    try:
        r = Renderer(8, 8)
        r.close()
    except Exception as exc:  # noqa: BLE001 - report any failure reason
        return False, str(exc)
    return True, ""


def _as_item(mesh: MeshItem | Sequence[Any], index: int) -> MeshItem:
    if isinstance(mesh, MeshItem):
        item = mesh
    else:
        if len(mesh) not in (2, 3):
            raise InputError(
                f"render: mesh {index} must be (vertices, faces[, colour]), got {len(mesh)} items"
            )
        item = MeshItem(*mesh) if len(mesh) == 3 else MeshItem(mesh[0], mesh[1], DEFAULT_COLOR)
    v = np.asarray(item.vertices, dtype=np.float64)
    f = np.asarray(item.faces)
    c = np.asarray(item.color, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3 or not np.all(np.isfinite(v)):
        raise InputError(f"render: mesh {index} vertices must be a finite (V, 3) array, got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3 or (f.size and (f.min() < 0 or f.max() >= len(v))):
        raise InputError(f"render: mesh {index} faces must be (F, 3) indices into its {len(v)} vertices")
    if c.shape not in ((3,), (len(v), 3)):
        raise InputError(f"render: mesh {index} colour must be (3,) or ({len(v)}, 3), got {c.shape}")
    if c.max(initial=0.0) > 1.0:
        c = c / 255.0
    return MeshItem(v, f.astype(np.int64), np.clip(c, 0.0, 1.0))


class Renderer:
    """Offscreen renderer of a fixed image size; the OpenGL context is created once and reused between
    calls."""

    def __init__(
        self, width: int, height: int, *, znear: float = 0.05, zfar: float = 100.0, double_sided: bool = True
    ) -> None:
        """``double_sided=False`` culls back faces (faster; only for closed meshes with outward-facing
        triangles, e.g. body models and trimesh primitives); the default draws both sides of every triangle.
        """
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (width, height)):
            raise InputError(f"Renderer: image size must be integers, got {width!r}x{height!r}")
        if width <= 0 or height <= 0:
            raise InputError(f"Renderer: image size must be positive, got {width}x{height}")
        self.width, self.height = int(width), int(height)
        self.double_sided = bool(double_sided)
        self.znear, self.zfar = float(znear), float(zfar)
        self._pyrender = _import_pyrender()
        try:
            self._renderer = self._pyrender.OffscreenRenderer(self.width, self.height)
            _stable_program_cache(self._renderer)
        except Exception as exc:
            raise RuntimeError(
                "could not create an offscreen OpenGL context; on headless machines install libosmesa6 "
                "and set "
                f"PYOPENGL_PLATFORM=osmesa (now {os.environ.get('PYOPENGL_PLATFORM')!r}): {exc}"
            ) from exc

    def close(self) -> None:
        if getattr(self, "_renderer", None) is not None:
            self._renderer.delete()
            self._renderer = None

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------------------------------- scene building

    def _scene(
        self, items: list[MeshItem], focal, princpt, ambient: float, light: float, *, shaded: bool = True
    ):
        pr = self._pyrender
        scene = pr.Scene(bg_color=[0.0, 0.0, 0.0, 0.0], ambient_light=[ambient] * 3)
        fx, fy = (float(focal[0]), float(focal[1])) if np.ndim(focal) else (float(focal),) * 2
        cx, cy = float(princpt[0]), float(princpt[1])
        # +0.5: OpenGL pixel centres are at half-integers, ours at integers (see module docstring).
        cam = pr.IntrinsicsCamera(fx=fx, fy=fy, cx=cx + 0.5, cy=cy + 0.5, znear=self.znear, zfar=self.zfar)
        scene.add(cam, pose=np.eye(4))
        # A key light from the camera's upper left, plus the ambient term.
        key = np.eye(4)
        key[:3, :3] = _rot_x(np.deg2rad(-25.0)) @ _rot_y(np.deg2rad(-20.0))
        scene.add(pr.DirectionalLight(color=np.ones(3), intensity=light), pose=key)
        nodes = []
        for item in items:
            v_gl = (item.vertices @ CAM_TO_GL.T).astype(np.float32)
            faces = item.faces.astype(np.uint32)
            if self.double_sided:  # both windings; pyrender culls back faces in its depth/segmentation passes
                faces = np.concatenate([faces, faces[:, ::-1]], axis=0)
            if not shaded:
                prim = pr.Primitive(positions=v_gl, indices=faces)
            else:
                per_vertex = item.color.ndim == 2
                base = [1.0, 1.0, 1.0, 1.0] if per_vertex else [*item.color.tolist(), 1.0]
                mat = pr.MetallicRoughnessMaterial(
                    baseColorFactor=base, metallicFactor=0.0, roughnessFactor=0.8
                )
                color_0 = None
                if per_vertex:
                    color_0 = np.concatenate([item.color, np.ones((len(v_gl), 1))], axis=1).astype(np.float32)
                prim = pr.Primitive(
                    positions=v_gl,
                    normals=vertex_normals(v_gl, faces),
                    indices=faces,
                    color_0=color_0,
                    material=mat,
                )
            nodes.append(scene.add(pr.Mesh([prim])))
        return scene, nodes

    # ------------------------------------------------------------------------------------------ rendering

    def render(
        self,
        meshes: Sequence[MeshItem | Sequence[Any]],
        focal: float | Sequence[float],
        princpt: Sequence[float],
        bg: np.ndarray | None = None,
        *,
        ambient: float = 0.45,
        light: float = 2.5,
        alone: Sequence[int] = (),
    ) -> RenderResult:
        """Render camera-frame meshes; ``bg`` (H, W, 3) uint8 is the background (default black).

        ``alone`` lists mesh indices to also render on their own (depth only, same camera): the result's
        ``alone_depth[i]`` is then the (H, W) depth of mesh ``i`` without the others (e.g. for occlusion
        ratios).
        """
        items = [_as_item(m, i) for i, m in enumerate(meshes)]
        if bg is not None:
            bg = np.asarray(bg)
            if bg.shape != (self.height, self.width, 3):
                raise InputError(f"render: bg must be ({self.height}, {self.width}, 3), got {bg.shape}")
        if any(not 0 <= i < len(items) for i in alone):
            raise InputError(f"render: alone indices {list(alone)} out of range for {len(items)} meshes")
        if self._renderer is None:
            raise RuntimeError("Renderer was closed")
        H, W = self.height, self.width
        if not items:
            color = np.zeros((H, W, 3), np.uint8) if bg is None else bg.astype(np.uint8).copy()
            return RenderResult(color, np.zeros((H, W), np.float32), np.full((H, W), -1, np.int32))
        pr = self._pyrender
        scene, nodes = self._scene(items, focal, princpt, ambient, light)
        _stable_program_cache(self._renderer)
        color, depth = self._renderer.render(scene)
        color = np.ascontiguousarray(color[..., :3])
        depth = np.ascontiguousarray(depth, dtype=np.float32)
        # Instance ids: flat colours (index + 1 in the red/green bytes) in a segmentation pass.
        seg_map = {node: np.array([(i + 1) & 255, (i + 1) >> 8, 0]) for i, node in enumerate(nodes)}
        seg, _ = self._renderer.render(scene, flags=pr.RenderFlags.SEG, seg_node_map=seg_map)
        instance = seg[..., 0].astype(np.int32) + 256 * seg[..., 1].astype(np.int32) - 1
        mask = depth > 0
        instance[~mask] = -1
        if bg is not None:
            color = np.where(mask[..., None], color, bg.astype(np.uint8))
        else:
            color[~mask] = 0
        alone_depth = {}
        for i in alone:  # hide every other mesh and render depth only
            for k, node in enumerate(nodes):
                node.mesh.is_visible = k == i
            alone_depth[int(i)] = np.ascontiguousarray(
                self._renderer.render(scene, flags=pr.RenderFlags.DEPTH_ONLY), dtype=np.float32
            )
        return RenderResult(color=color, depth=depth, instance=instance, alone_depth=alone_depth)

    def render_depth(
        self,
        meshes: Sequence[MeshItem | Sequence[Any]],
        focal: float | Sequence[float],
        princpt: Sequence[float],
    ) -> np.ndarray:
        """(H, W) float32 depth only (metres, 0 = empty); cheaper than :meth:`render`."""
        items = [_as_item(m, i) for i, m in enumerate(meshes)]
        if not items:
            return np.zeros((self.height, self.width), np.float32)
        if self._renderer is None:
            raise RuntimeError("Renderer was closed")
        scene, _ = self._scene(items, focal, princpt, 0.0, 0.0, shaded=False)
        _stable_program_cache(self._renderer)
        depth = self._renderer.render(scene, flags=self._pyrender.RenderFlags.DEPTH_ONLY)
        return np.ascontiguousarray(depth, dtype=np.float32)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) float32 unit area-weighted vertex normals of a triangle mesh."""
    v = vertices.astype(np.float64)
    f = faces.astype(np.int64)
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])  # (F, 3), length = 2 * area
    vn = np.zeros_like(v)
    for k in range(3):
        for c in range(3):
            vn[:, c] += np.bincount(f[:, k], weights=fn[:, c], minlength=len(v))
    norm = np.linalg.norm(vn, axis=1, keepdims=True)
    return (vn / np.maximum(norm, 1e-12)).astype(np.float32)


def _rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
