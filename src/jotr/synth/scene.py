"""One synthetic scene: sample people, occluders, camera and background; render; derive the ground truth.

Frames. The *world* frame is gravity-aligned: x right, y **down**, z forward (horizontal), origin on the
ground right below the camera; the ground is the plane y = 0. The camera sits at ``C = (0, -h, 0)`` pitched
down by an angle ``p``: ``X_cam = R (X_world - C)`` with ``R = R_x(p)`` (camera frame: x right, y down, z
forward). Every ground-truth quantity is stored in the **camera frame**; R and ``t = -R C`` are stored as the
extrinsics.

People are posed in the canonical body frame (``jotr.body.base``) and oriented in the world by ``R_world =
R_yaw @ R_x(180 deg) @ R_archetype`` (an upright person facing the camera, turned by a yaw); their
camera-frame root rotation is ``R @ R_world``. Their feet rest on the ground (lowest vertex at y = 0).

Ground-truth visibility of a joint (``VIS_*``) is read from the rendered instance/depth buffers at the joint's
projected pixel: outside the image, visible (the person's own surface is the front-most one there, or nothing
is drawn there), occluded by an object, or occluded by another person. The visible fraction of a person is its
visible pixels in the scene divided by its pixels when rendered alone (truncation by the image border does not
count as occlusion).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from jotr.data.posefix import corrupt_keypoints
from jotr.errors import InputError
from jotr.synth import appearance as app
from jotr.synth import effects as fx
from jotr.synth.photos import PhotoBank, describe_photos, find_photos, photo_background
from jotr.synth.poses import DEFAULT_POSE_MIX, pose_rotmats, sample_pose

log = logging.getLogger(__name__)

FAMILIES = ("none", "oc", "pc", "crowd")
TRUNCATED_FAMILIES = ("none", "oc", "pc")  # families whose target may be cut by the frame
# How a truncated target is framed: "bottom" = upper-body portrait (legs, maybe hips out of the image),
# "top" = head (and maybe shoulders) out of the image, "side" = person at the left/right edge, partly out.
TRUNCATION_MODES = ("bottom", "top", "side")
_TRUNCATION_WEIGHTS = (0.6, 0.15, 0.25)
FAMILY_IDS = {name: i for i, name in enumerate(FAMILIES)}
VIS_OUTSIDE, VIS_VISIBLE, VIS_OBJECT, VIS_PERSON = 0, 1, 2, 3
VISIBILITY_NAMES = ("outside", "visible", "occluded_by_object", "occluded_by_person")
GT_JOINT_SETS = ("jotr30", "jotr15", "h36m17", "coco17")
_RX180 = np.diag([1.0, -1.0, -1.0])
# Entries of a scene's image info that depend on the appearance options (the rest does not).
APPEARANCE_KEYS = ("background", "lighting", "camera_effects")


@dataclass(frozen=True)
class SynthOptions:
    width: int = 512  # image size, pixels
    height: int = 384
    rig: str = "anny-notoes-nohands"  # Anny rig of the pose parameters (= the training body model's rig)
    topology: str = "anny"  # rendered mesh (full topology, same rig)
    min_person_pixels: int = 150  # persons covering fewer pixels when rendered alone are not annotated
    jpeg_quality: int = 92
    # Pose modes and their weights (jotr.synth.poses.POSE_MODES); normalised when sampling.
    pose_mix: tuple[tuple[str, float], ...] = DEFAULT_POSE_MIX
    frontal_yaw: float = 0.2  # share of people turned only a little from the camera; the rest: any yaw
    # Share of none/oc/pc scenes whose target is cut by the image frame (camera close: portrait, legs or head
    # out of the image, or the person at a side edge); see TRUNCATION_MODES.
    truncation: float = 0.25
    # Persons with fewer jotr30 joints inside the image are flagged ``too_truncated`` (readers skip them); a
    # truncated target keeps at least 2x this many.
    min_joints_in_image: int = 4
    # Backgrounds (jotr.synth.photos): "auto" = the photographs of the Debian wallpaper packages when they
    # are installed, else procedural ones; "procedural"; or a folder of images (random crops of them).
    backgrounds: str = "auto"
    photo_share: float = 0.8  # share of scenes with a photograph behind them when photographs are available
    # Camera effects (jotr.synth.effects.camera_effects: white balance, colour, vignetting, defocus / motion
    # blur, sensor noise, JPEG re-compression) and a defocused background; False: a clean render.
    camera_effects: bool = True


@dataclass
class PersonGT:
    """One posed person, camera frame."""

    pose_aa: np.ndarray  # (J, 3) axis-angle per rig bone, root first; root in the camera frame
    shape: np.ndarray  # (6,) Anny phenotypes in [0, 1]
    trans: np.ndarray  # (3,) camera frame metres: body origin (= root joint) position
    archetype: str
    vertices: np.ndarray  # (V, 3) camera frame metres
    joints: dict[str, np.ndarray]  # set name -> (K, 3) camera frame metres
    colors: np.ndarray  # (V, 3) RGB [0, 1]
    pose_mode: str = "archetype"


@dataclass
class _Posed:
    """A posed person in *world orientation*, root at the origin (before placement)."""

    rot: np.ndarray  # (J, 3, 3), world root rotation
    shape: np.ndarray  # (6,)
    archetype: str
    mode: str
    vertices: np.ndarray  # (V, 3)
    joints: dict[str, np.ndarray]  # set -> (K, 3)

    @property
    def radius(self) -> float:
        """Horizontal reach of the body around its root (m): the footprint used to keep people apart."""
        return float(np.hypot(self.vertices[:, 0], self.vertices[:, 2]).max())

    @property
    def top(self) -> float:
        """Height of the highest vertex above the lowest one (m)."""
        return float(np.ptp(self.vertices[:, 1]))


@dataclass
class Scene:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    image_info: dict[str, Any]  # COCO "images" entry without id/file_name
    persons: list[dict[str, Any]]  # COCO "annotations" entries without id/image_id, target first
    render: Any = field(repr=False, default=None)  # the RenderResult (tests/debugging)
    person_depths: list[np.ndarray] = field(repr=False, default_factory=list)  # (H, W) per annotated person


def scene_rng(seed: int, family: str, index: int, stream: int = 0) -> np.random.Generator:
    """The generator of scene ``index`` of a split: depends only on (seed, family, index, stream)."""
    return np.random.default_rng(
        np.random.SeedSequence([int(seed), FAMILY_IDS[family], int(index), int(stream)])
    )


@contextlib.contextmanager
def single_thread_torch() -> Iterator[None]:
    """Run torch (and OpenCV's image effects) on one thread inside the block, so results do not depend on the
    worker count and a busy machine does not stall a parallel region: parallelism comes from the workers."""
    import cv2

    saved, saved_cv2 = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)
        cv2.setNumThreads(saved_cv2)


def _rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rotmat_to_axis_angle(rot: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 3) axis-angle (float64, via roma)."""
    import roma

    return roma.rotmat_to_rotvec(torch.as_tensor(rot, dtype=torch.float64)).numpy()


def sample_phenotype(rng: np.random.Generator) -> np.ndarray:
    """(6,) gender, age, muscle, weight, height, proportions: mostly adults, some teenagers/children."""
    age = rng.uniform(0.47, 1.0) if rng.random() < 0.85 else rng.uniform(0.28, 0.47)
    return np.array(
        [
            rng.random(),
            age,
            rng.uniform(0.1, 0.9),
            rng.beta(2.0, 2.0) * 0.9 + 0.05,
            rng.uniform(0.15, 0.85),
            rng.random(),
        ]
    )


class SceneGenerator:
    """Renders scenes of one image size; holds the body model and the offscreen renderer (one per process)."""

    def __init__(self, options: SynthOptions | None = None, body: Any | None = None) -> None:
        from jotr.body.anny import AnnyBody
        from jotr.viz.renderer import Renderer

        options = options if options is not None else SynthOptions()
        if not 0.0 <= options.photo_share <= 1.0:
            raise InputError(f"synth: photo_share must be in [0, 1], got {options.photo_share}")
        self.options = options
        # Photographs decoded at up to 2.5x the image's short side: a crop of 30% of a photo stays sharp.
        photos = find_photos(options.backgrounds)
        self.photos = PhotoBank(photos, max_side=max(256, int(2.5 * min(options.width, options.height))))
        self.photo_names = describe_photos(photos, options.backgrounds)  # as in the dataset's info
        with single_thread_torch():
            self.body = body if body is not None else AnnyBody(rig=options.rig, topology=options.topology)
            self.body = self.body.to(torch.float32)
            self.labels = tuple(self.body.pose_joint_names)
            self.faces = self.body.faces.cpu().numpy()
            with torch.no_grad():
                rest = self.body(self.body.rest_pose(1), self.body.default_shape(1))
                joints = self.body.joints(rest, "jotr30")[0].numpy().astype(np.float64)
            self.parts = app.segment_body(rest.vertices[0].numpy().astype(np.float64), joints)
        self.renderer = Renderer(options.width, options.height, double_sided=False)  # closed meshes only

    def close(self) -> None:
        self.renderer.close()

    # ------------------------------------------------------------------------------------------ people

    def _pose_person(self, rng: np.random.Generator) -> _Posed:
        """Sample a posed person in *world orientation*, root at the origin."""
        sample = sample_pose(rng, self.labels, mix=self.options.pose_mix)
        rot = pose_rotmats(sample, self.labels)
        frontal = rng.random() < self.options.frontal_yaw
        yaw = rng.normal(0.0, 0.4) if frontal else rng.uniform(-np.pi, np.pi)
        rot[0] = _rot_y(yaw) @ _RX180 @ rot[0]
        shape = sample_phenotype(rng)
        with torch.no_grad():
            out = self.body(
                torch.as_tensor(rot[None], dtype=torch.float32),
                torch.as_tensor(shape[None], dtype=torch.float32),
            )
            joints = {s: self.body.joints(out, s)[0].numpy().astype(np.float64) for s in GT_JOINT_SETS}
        verts = out.vertices[0].numpy().astype(np.float64)
        return _Posed(rot, shape, sample.archetype, sample.mode, verts, joints)

    @staticmethod
    def _place(posed: _Posed, ground_xz, cam_rot, cam_center, colors) -> PersonGT:
        """Put a world-oriented person on the ground at (x, z) and express it in the camera frame."""
        verts_w = posed.vertices
        pos = np.array([ground_xz[0], -verts_w[:, 1].max(), ground_xz[1]])  # lowest vertex on y = 0
        trans = cam_rot @ (pos - cam_center)
        rot = posed.rot.copy()
        rot[0] = cam_rot @ rot[0]
        return PersonGT(
            pose_aa=rotmat_to_axis_angle(rot),
            shape=posed.shape,
            trans=trans,
            archetype=posed.archetype,
            vertices=verts_w @ cam_rot.T + trans,
            joints={k: v @ cam_rot.T + trans for k, v in posed.joints.items()},
            colors=colors,
            pose_mode=posed.mode,
        )

    @staticmethod
    def _frame(
        posed: _Posed,
        focal: float,
        princpt,
        cam_h: float,
        *,
        want_h: float,
        want_w: float,
        anchor: str,
        anchor_v: float,
        want_u: float,
        cut: tuple[float, float] | None = None,
        min_gz: float = 0.0,
        max_focal: float = np.inf,
        gz: float = 5.0,
    ) -> tuple[float, float, float, float]:
        """Camera distance, pitch and focal length that frame a person: its amodal projected box is
        ``want_h`` pixels high (or ``want_w`` wide, whichever binds), its top / centre / bottom
        (``anchor``) at image row ``anchor_v`` and its box centre at column ``want_u`` -- or, with ``cut =
        (edge column, fraction)``, that fraction of its box width beyond the left (0) / right edge.

        Returns (ground x, ground z, pitch, focal). A few fixed-point iterations (the projection is close to
        linear in 1 / distance and in the pitch angle); no randomness.
        """
        verts_w = posed.vertices
        low = verts_w[:, 1].max()
        size = float(np.ptp(verts_w, axis=0).max())  # largest extent (standing: the body height)
        cx, cy = princpt
        pitch, gx = np.arctan2(cam_h - 0.5 * posed.top, gz), 0.0
        for _ in range(6):
            cam_rot = _rot_x(pitch)
            pos = np.array([gx, -low, gz])
            pts = (verts_w + pos - np.array([0.0, -cam_h, 0.0])) @ cam_rot.T
            z = np.maximum(pts[:, 2], 0.05)
            u = pts[:, 0] / z * focal + cx
            v = pts[:, 1] / z * focal + cy
            h, w = max(np.ptp(v), 1e-6), max(np.ptp(u), 1e-6)
            depth = float(np.mean(z))
            # The body's own size seen face-on at its distance: a person lying along the viewing direction
            # is framed like an upright one (not moved right up to the camera until its short box fills it).
            length = focal * size / depth
            ratio = max(h / want_h, w / want_w, length / want_h)  # > 1: too big, move away
            v_now = {"top": v.min(), "bottom": v.max()}.get(anchor, 0.5 * (v.min() + v.max()))
            pitch += np.arctan((v_now - cy) / focal) - np.arctan((anchor_v - cy) / focal)
            pitch = float(np.clip(pitch, np.deg2rad(-35.0), np.deg2rad(55.0)))
            if cut is not None:  # box centre such that the fraction cut[1] of the box lies beyond the edge
                want_u = cut[0] + (1.0 if cut[0] <= 0 else -1.0) * (0.5 - cut[1]) * w
            gx -= (0.5 * (u.min() + u.max()) - want_u) * depth / focal
            gz_new = gz * ratio
            if gz_new < min_gz:  # too close for the family: zoom in instead
                focal = min(focal * min_gz / gz_new, max_focal)
                gz_new = min_gz
            gz = gz_new
        return gx, gz, pitch, focal

    def _truncated_framing(self, posed: _Posed, rng, family: str, focal: float, princpt):
        """(camera height, framing kwargs, mode) of a target cut by the image frame."""
        W, H = self.options.width, self.options.height
        mode = TRUNCATION_MODES[
            int(np.searchsorted(np.cumsum(_TRUNCATION_WEIGHTS), rng.random() * sum(_TRUNCATION_WEIGHTS)))
        ]
        # Room in front of the target for occluders (oc) / a person (pc; farther, so that a zoomed-in
        # portrait is not covered whole by the person in front).
        min_gz = {"none": 0.9, "oc": 1.6, "pc": 3.0}.get(family, 3.0)
        top = max(posed.top, 0.3)
        kw: dict[str, Any] = {"min_gz": min_gz, "max_focal": 5.0 * max(W, H), "want_w": 4.0 * W}
        if mode == "bottom":  # upper body: the head near the top edge, legs (maybe hips) below the frame
            cam_h = max(0.4, top * rng.uniform(0.6, 1.05))
            zoom = rng.uniform(1.15, 3.2 if family != "pc" else 2.4)
            kw.update(want_h=zoom * H, anchor="top", anchor_v=rng.uniform(0.0, 0.12) * H)
            kw["want_u"] = rng.uniform(0.3, 0.7) * W
        elif mode == "top":  # head cut: feet near the bottom edge
            cam_h = max(0.4, top * rng.uniform(0.3, 0.8))
            kw.update(want_h=rng.uniform(1.1, 1.8) * H, anchor="bottom", anchor_v=rng.uniform(0.85, 1.0) * H)
            kw["want_u"] = rng.uniform(0.35, 0.65) * W
        else:  # at the left / right edge, partly outside
            cam_h = rng.uniform(0.9, 2.4)
            kw.update(want_h=rng.uniform(0.5, 1.2) * H, anchor="center", anchor_v=rng.uniform(0.4, 0.6) * H)
            kw["want_w"] = 4.0 * W
            kw["want_u"] = 0.0
            kw["cut"] = (0.0 if rng.random() < 0.5 else float(W), rng.uniform(0.2, 0.6))
        return cam_h, kw, mode

    # ------------------------------------------------------------------------------------------ scene

    def generate(self, family: str, seed: int, index: int) -> Scene:
        if family not in FAMILIES:
            raise ValueError(f"unknown synthetic family {family!r}; known: {FAMILIES}")
        with single_thread_torch():
            return self._generate(family, seed, index)

    def _generate(self, family: str, seed: int, index: int) -> Scene:
        o = self.options
        W, H = o.width, o.height
        rng = scene_rng(seed, family, index)
        # Appearance (clothes, background, lighting, camera effects) draws from its own stream, so the
        # geometry and every ground-truth value do not depend on the appearance options.
        look = scene_rng(seed, family, index, stream=2)
        focal_px = rng.uniform(0.8, 1.5) * max(W, H)
        princpt = (W / 2.0 + rng.uniform(-0.02, 0.02) * W, H / 2.0 + rng.uniform(-0.02, 0.02) * H)
        cam_h = rng.uniform(0.9, 2.4)

        # Target person: its projected size and position decide the camera distance, pitch and its ground
        # position. A share of none/oc/pc targets is framed so that the image frame cuts the body.
        target = self._pose_person(rng)
        truncation = "none"
        framing = None
        if family in TRUNCATED_FAMILIES and rng.random() < o.truncation:
            for _ in range(4):  # keep enough of the body in the image
                t_cam_h, kw, t_mode = self._truncated_framing(target, rng, family, focal_px, princpt)
                gx, gz, pitch, t_focal = self._frame(target, focal_px, princpt, t_cam_h, **kw)
                uv = self._world_to_image(
                    target.joints["jotr30"], (gx, gz), target, pitch, t_cam_h, t_focal, princpt
                )
                inside = self._inside(uv)
                if np.isfinite(uv).all() and inside.sum() >= 2 * o.min_joints_in_image and not inside.all():
                    framing, truncation = (gx, gz, pitch, t_focal, t_cam_h), t_mode
                    break
        if framing is None:
            frac = rng.uniform(0.45, 0.85) if family != "crowd" else rng.uniform(0.35, 0.7)
            framing = (
                *self._frame(
                    target,
                    focal_px,
                    princpt,
                    cam_h,
                    want_h=frac * H,
                    want_w=rng.uniform(0.45, 0.9) * W,
                    anchor="center",
                    anchor_v=princpt[1] + focal_px * np.tan(np.deg2rad(rng.uniform(-4.0, 4.0))),
                    want_u=rng.uniform(0.35, 0.65) * W,
                    min_gz=2.4 if family in ("pc", "crowd") else 0.0,  # room for someone in front
                    max_focal=focal_px,  # no zoom: farther away instead
                ),
                cam_h,
            )
        gx, gz, pitch, focal_px, cam_h = framing
        focal = (focal_px, focal_px)
        cam_rot = _rot_x(pitch)
        cam_center = np.array([0.0, -cam_h, 0.0])
        persons = [self._place(target, (gx, gz), cam_rot, cam_center, app.body_colors(look, self.parts))]
        ground = [(gx, gz, target.radius)]
        target_box = self._box(persons[0].vertices, focal, princpt)
        w_t = max(target_box[2] - target_box[0], 1.0)
        u_t = 0.5 * (target_box[0] + target_box[2])

        # Other people (PC: 1-2 overlapping the target, the first one in front; crowd: 3-7 at various depths,
        # often one of them in front of the target). Positions colliding with someone (closer than their
        # footprints allow, at least 0.8 m) are re-drawn (8 tries).
        if family == "pc":
            slots = ["front"] + (["front" if rng.random() < 0.5 else "behind"] if rng.random() < 0.4 else [])
        elif family == "crowd":
            slots = (["front"] if rng.random() < 0.7 else []) + ["any"] * int(rng.integers(3, 7))
        else:
            slots = []
        for slot in slots:
            other = self._pose_person(rng)
            for _ in range(8):
                if slot == "front" and truncation != "none":  # off-centre: do not hide a close-up whole
                    side = 1.0 if rng.random() < 0.5 else -1.0
                    gz_o, u_o = gz - rng.uniform(0.5, 1.0), u_t + side * rng.uniform(0.3, 0.6) * w_t
                elif slot == "front":
                    gz_o, u_o = gz - rng.uniform(0.7, 2.0), u_t + rng.uniform(-0.4, 0.4) * w_t
                elif slot == "behind":
                    gz_o, u_o = gz + rng.uniform(0.7, 2.5), u_t + rng.uniform(-0.6, 0.6) * w_t
                else:
                    gz_o, u_o = rng.uniform(gz - 2.0, gz + 5.0), rng.uniform(-0.1, 1.1) * W
                gz_o = max(gz_o, 1.2)
                gx_o = (u_o - princpt[0]) * gz_o * np.cos(pitch) / focal_px
                if all(
                    np.hypot(gx_o - a, gz_o - b) >= max(0.8, 0.8 * (r + other.radius)) for a, b, r in ground
                ):
                    break
            else:
                continue  # no free spot: leave this person out
            persons.append(
                self._place(other, (gx_o, gz_o), cam_rot, cam_center, app.body_colors(look, self.parts))
            )
            ground.append((gx_o, gz_o, other.radius))

        # Object occluders in front of the target (OC).
        occluders: list[app.Occluder] = []
        if family == "oc":
            target_gt = persons[0]
            z_front = float(target_gt.vertices[:, 2].min())
            px_h = max(target_box[3] - target_box[1], 1.0)
            uv_t = self._project(target_gt.vertices, focal, princpt)
            in_image = np.nonzero(self._inside(uv_t))[0]  # anchor occluders on the part inside the image
            if len(in_image) == 0:
                in_image = np.arange(len(target_gt.vertices))
            for _ in range(int(rng.integers(1, 4))):
                anchor = target_gt.vertices[in_image[int(rng.integers(len(in_image)))]]
                u = anchor[0] / anchor[2] * focal_px + princpt[0] + rng.normal(0.0, 0.1) * w_t
                v = anchor[1] / anchor[2] * focal_px + princpt[1] + rng.normal(0.0, 0.1) * px_h
                d_lo = max(0.6, 0.3 * z_front)
                if z_front - 0.3 <= d_lo:
                    continue
                d = rng.uniform(d_lo, z_front - 0.3)
                size = rng.uniform(0.2, 0.6) * px_h * d / focal_px
                size = min(size, 2.0 * (z_front - 0.1 - d))
                center = np.array([(u - princpt[0]) / focal_px * d, (v - princpt[1]) / focal_px * d, d])
                occluders.append(app.occluder_mesh(rng, size, center, color_rng=look))

        res, image, appearance = self._render(look, persons, occluders, focal, princpt, cam_rot, cam_h)

        # Ground truth per person.
        kp_rng = scene_rng(seed, family, index, stream=1)
        all_2d = [self._project(p.joints["jotr30"], focal, princpt) for p in persons]
        annotations, depths = [], []
        for i, person in enumerate(persons):
            alone = res.alone_depth[i]
            pixels_alone = int((alone > 0).sum())
            if pixels_alone < o.min_person_pixels and i > 0:
                continue
            ann = self._annotate(i, person, res, alone, focal, princpt, len(persons))
            valid = ann["visibility_jotr30"] != VIS_OUTSIDE
            occluded = np.isin(ann["visibility_jotr30"], (VIS_OBJECT, VIS_PERSON))
            kps = corrupt_keypoints(
                all_2d[i],
                valid,
                kp_rng,
                occluded=occluded,
                others=[j for k, j in enumerate(all_2d) if k != i],
            )
            # A detector sees only the image: keypoints that landed outside it (jitter, a swap or an
            # inversion towards a truncated part) are missing too.
            kps[~self._inside(kps[:, :2])] = 0.0
            ann["input_keypoints"] = kps
            annotations.append(ann)
            depths.append(alone)
        image_info = {
            "width": W,
            "height": H,
            "cam_param": {
                "focal": list(focal),
                "princpt": list(princpt),
                "R": cam_rot,
                "t": -cam_rot @ cam_center,
            },
            "family": family,
            "seed": int(seed),
            "index": int(index),
            "num_persons": len(persons),
            "truncation": truncation,
            **appearance,
            "occluders": [{"shape": oc.shape, "center": oc.center, "size": oc.size} for oc in occluders],
        }
        return Scene(
            image=image, image_info=image_info, persons=annotations, render=res, person_depths=depths
        )

    def _render(self, look, persons, occluders, focal, princpt, cam_rot, cam_h):
        """Background, lighting, shadows, rendering and camera effects, all drawn from ``look``.

        Returns (RenderResult, final (H, W, 3) uint8 image, the image-info entries of APPEARANCE_KEYS).
        """
        from jotr.viz.renderer import vertex_normals

        o = self.options
        W, H = o.width, o.height
        cam_center = np.array([0.0, -cam_h, 0.0])
        if len(self.photos) and look.random() < o.photo_share:
            bg, photo_index = photo_background(look, self.photos, W, H)
            bg_name = self.photo_names[photo_index]
        else:
            bg, bg_name = app.background(look, W, H, focal, princpt, cam_rot, cam_h), "procedural"
        if o.camera_effects:  # depth of field: the camera focuses on the people
            bg, _ = fx.defocus(look, bg, 2.5)
        # Lighting is computed here per vertex (direction, intensity, colour temperature, sky / ground
        # ambient, harmonised with the background) and rendered with a unit ambient light only: the
        # renderer then outputs the gamma-encoded vertex radiance.
        light = app.sample_lighting(look, cam_rot, bg.reshape(-1, 3).mean(axis=0) / 255.0)
        key, ambient = float(light.key_rgb @ app.LUMA), float(light.sky_rgb @ app.LUMA)
        shadow = look.uniform(0.3, 0.75) * key / (key + ambient + 1e-6)
        # Shadows on the ground plane: along the key light on a procedural ground; on a photograph, whose
        # ground is not the scene's, only a fainter contact shadow cast by the body's lowest 25 cm (light
        # raised to 50-75 deg): a whole-body shadow landed on the sky or walls of the photo as a ghost.
        contact = None
        if bg_name == "procedural":
            shadow_dir = fx.raise_light(light.key_dir, cam_rot, 15.0)
        else:
            shadow_dir = fx.raise_light(light.key_dir, cam_rot, look.uniform(50.0, 75.0))
            shadow *= 0.7
            contact = 0.25
        people = [p.vertices for p in persons]
        bg = fx.cast_shadows(
            look, bg, people, shadow_dir, cam_rot, cam_center, focal, princpt, shadow, max_height=contact
        )
        meshes = [(p.vertices, self.faces, p.colors) for p in persons]
        meshes += [(oc.vertices, oc.faces, oc.colors) for oc in occluders]
        lit = [(v, f, app.shade_vertices(c, vertex_normals(v, f), light)) for v, f, c in meshes]
        res = self.renderer.render(
            lit, focal, princpt, bg=bg, ambient=1.0, light=0.0, alone=range(len(persons))
        )
        image = fx.antialias_edges(res.color, res.depth > 0)
        camera: dict[str, Any] = {}
        if o.camera_effects:
            image, camera = fx.camera_effects(look, image)
        return res, image, {"background": bg_name, "lighting": light.describe(), "camera_effects": camera}

    # ------------------------------------------------------------------------------------------ helpers

    @staticmethod
    def _project(points: np.ndarray, focal, princpt) -> np.ndarray:
        """(N, 3) camera frame -> (N, 2) pixels, as ``jotr.geometry.camera.project_points``."""
        from jotr.geometry.camera import project_points

        return project_points(
            torch.as_tensor(points, dtype=torch.float64), tuple(focal), tuple(princpt)
        ).numpy()

    def _inside(self, uv: np.ndarray, z: np.ndarray | None = None) -> np.ndarray:
        """(N,) bool: the pixel of each (N, 2) image point lies in the image (as :meth:`_visibility`)."""
        W, H = self.options.width, self.options.height
        col, row = np.round(uv[:, 0]), np.round(uv[:, 1])
        ok = (col >= 0) & (col < W) & (row >= 0) & (row < H) & np.isfinite(uv).all(axis=1)
        return ok if z is None else ok & (z > 0)

    @staticmethod
    def _world_to_image(points, ground_xz, posed: _Posed, pitch, cam_h, focal_px, princpt) -> np.ndarray:
        """(N, 3) points of a world-oriented person (root at the origin) placed at ``ground_xz`` -> (N, 2)
        pixels (points behind the camera -> NaN)."""
        pos = np.array([ground_xz[0], -posed.vertices[:, 1].max(), ground_xz[1]])
        pts = (points + pos - np.array([0.0, -cam_h, 0.0])) @ _rot_x(pitch).T
        z = np.where(pts[:, 2] > 0.2, pts[:, 2], np.nan)  # closer than 20 cm: unusable
        return np.stack([pts[:, 0] / z * focal_px + princpt[0], pts[:, 1] / z * focal_px + princpt[1]], 1)

    def _box(self, vertices: np.ndarray, focal, princpt) -> np.ndarray:
        """(4,) x0, y0, x1, y1 of the projected vertices, clipped to the image."""
        uv = self._project(vertices, focal, princpt)
        lo = np.clip(uv.min(axis=0), 0, [self.options.width - 1, self.options.height - 1])
        hi = np.clip(uv.max(axis=0), 0, [self.options.width - 1, self.options.height - 1])
        return np.concatenate([lo, hi])

    def _visibility(
        self, i: int, joints_cam: np.ndarray, uv: np.ndarray, res, num_persons: int
    ) -> np.ndarray:
        """(K,) VIS_* code of each joint of person ``i`` from the scene's instance/depth buffers."""
        W, H = self.options.width, self.options.height
        col, row = np.round(uv[:, 0]).astype(np.int64), np.round(uv[:, 1]).astype(np.int64)
        inside = (col >= 0) & (col < W) & (row >= 0) & (row < H) & (joints_cam[:, 2] > 0)
        vis = np.full(len(uv), VIS_OUTSIDE, np.int64)
        c, r = np.clip(col, 0, W - 1), np.clip(row, 0, H - 1)
        inst = res.instance[r, c]
        depth = res.depth[r, c]
        covered = (inst >= 0) & (inst != i) & (depth < joints_cam[:, 2])
        vis[inside] = VIS_VISIBLE
        vis[inside & covered & (inst < num_persons)] = VIS_PERSON
        vis[inside & covered & (inst >= num_persons)] = VIS_OBJECT
        return vis

    def _annotate(self, i, person: PersonGT, res, alone, focal, princpt, num_persons) -> dict[str, Any]:
        W, H = self.options.width, self.options.height
        uv30 = self._project(person.joints["jotr30"], focal, princpt)
        uv_coco = self._project(person.joints["coco17"], focal, princpt)
        vis30 = self._visibility(i, person.joints["jotr30"], uv30, res, num_persons)
        vis_coco = self._visibility(i, person.joints["coco17"], uv_coco, res, num_persons)
        own = res.instance == i
        pixels_alone = int((alone > 0).sum())
        pixels_visible = int(own.sum())
        box = self._box(person.vertices, focal, princpt)
        uv_all = self._project(person.vertices, focal, princpt)
        whole = bool(
            (person.vertices[:, 2] > 0).all()
            and (uv_all >= -0.5).all()
            and (uv_all[:, 0] < W - 0.5).all()
            and (uv_all[:, 1] < H - 0.5).all()
        )
        if pixels_visible > 0:
            ys, xs = np.nonzero(own)
            vbox = [
                float(xs.min()),
                float(ys.min()),
                float(xs.max() - xs.min() + 1),
                float(ys.max() - ys.min() + 1),
            ]
        else:
            vbox = [0.0, 0.0, 0.0, 0.0]
        coco_v = np.where(vis_coco == VIS_VISIBLE, 2, np.where(vis_coco == VIS_OUTSIDE, 0, 1))
        keypoints = np.concatenate([np.where(coco_v[:, None] > 0, uv_coco, 0.0), coco_v[:, None]], axis=1)
        return {
            "is_target": i == 0,
            "person_index": i,
            "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
            "bbox_visible": vbox,
            "area": pixels_visible,
            "iscrowd": 0,
            "category_id": 1,
            "num_keypoints": int((coco_v > 0).sum()),
            "keypoints": keypoints.reshape(-1),
            "visible_fraction": pixels_visible / max(pixels_alone, 1),
            "pixels_visible": pixels_visible,
            "pixels_alone": pixels_alone,
            "joints_2d_jotr30": uv30,
            "joints_2d_coco17": uv_coco,
            "joints_3d_jotr30": person.joints["jotr30"],
            "joints_3d_jotr15": person.joints["jotr15"],
            "joints_3d_h36m17": person.joints["h36m17"],
            "joints_3d_coco17": person.joints["coco17"],
            "visibility_jotr30": vis30,
            "visibility_coco17": vis_coco,
            "body_param": {
                "model": "anny",
                "rig": self.options.rig,
                "pose_aa": person.pose_aa,
                "shape": person.shape,
                "trans": person.trans,
                "archetype": person.archetype,
                "pose_mode": person.pose_mode,
            },
            "inside_image": whole,
            "num_joints_in_image": int((vis30 != VIS_OUTSIDE).sum()),
            "too_truncated": bool((vis30 != VIS_OUTSIDE).sum() < self.options.min_joints_in_image),
        }
