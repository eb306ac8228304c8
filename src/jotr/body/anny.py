"""The Anny body model (open, embedded default) behind :class:`jotr.body.base.BodyModel`.

Anny (``pip install anny``, Apache-2.0 code, CC0 MakeHuman assets) is a phenotype-driven, rigged body model.
This adapter fixes one convention set for the whole project:

* **Rig and topology.** ``AnnyBody(rig="anny-notoes-nohands", topology="notoes_collapse10pc")`` is the
  reduced training model (38 bones, 1229 vertices); ``topology="anny"`` with the same rig is the full
  13,718-vertex mesh used for rendering. Both share bones, pose and shape parameters, and their joints agree
  to a few millimetres.
* **Frame.** Anny is Z-up, facing -Y, left at +X. Everything leaving (and every rotation entering) this
  module is in SMPL's canonical frame: Y up, facing +Z, left at +X, via ``(x, y, z)_anny -> (x, z, -y)``.
  The root is at the origin; the root rotation maps the canonical body into the camera frame exactly like a
  SMPL root pose.
* **Pose.** ``(B, J, 3, 3)`` rotations, root first, one per bone of the rig (``pose_joint_names``). Anny's
  ``local-ref`` parameterisation is used: each bone's rotation acts about its head, in axes aligned with the
  world (canonical) axes at the reference pose, and composes down the kinematic tree -- the SMPL semantics.
  Identity rotations give Anny's **reference pose**: an A-pose (arms about 45 degrees down, elbows slightly
  bent, forearms pointing forward), not SMPL's T-pose.
* **Shape.** ``(B, 6)`` phenotypes in [0, 1]: gender (0 male, 1 female), age, muscle, weight, height,
  proportions; 0.5 is the average person. Anny clamps values outside [0, 1] (zero gradient there).
* **Joint sets.** Regressors over ``[vertices; bone heads]``, built from bone heads where a bone sits at the
  joint and from surface landmarks (nose, eyes, ears, head top, toes, fingertip) otherwise. Landmarks are
  located once on the full mesh at rest and transferred to any topology as the closest surface point
  (barycentric weights on one triangle), so every topology gives the same joints. The table and rationale
  are in ``docs/anny_joints.md``.
* **Checkpoints.** Anny's own tensors are not registered with ``nn.Module`` (``state_dict()`` is empty), yet
  ``.to(device)`` / ``.to(dtype)`` move them (:meth:`AnnyBody._apply`).
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from jotr.body.base import BodyModel, BodyOutput
from jotr.body.joint_sets import JOTR15_FROM_30, get_joint_set
from jotr.errors import InputError

logger = logging.getLogger(__name__)

DEFAULT_RIG = "anny-notoes-nohands"
DEFAULT_TOPOLOGY = "notoes_collapse10pc"
FULL_TOPOLOGY = "anny"
SHAPE_NAMES = ("gender", "age", "muscle", "weight", "height", "proportions")

# (x, y, z)_anny -> (x, z, -y): rows of the rotation that takes Anny's frame to the canonical (SMPL) frame.
_CANONICAL_FROM_ANNY = ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, -1.0, 0.0))

# Interior joints without a bone in the reduced rig, placed on the segment from a bone head to a surface
# landmark.
# Calibrated on the 104-bone "anny" rig at the reference pose and default phenotype (docs/anny_joints.md):
# the middle-toe MTP joint (toe3-1 head) projects at 0.81 of ankle -> toe tips (6 mm off the segment), the
# middle-finger MCP joint (finger3-1 head) at 0.54 of wrist -> fingertip.
FOOT_FRACTION = 0.8  # SMPL "Foot" = foot head + 0.8 (mid toe tips - foot head)
HAND_FRACTION = 0.55  # SMPL "Hand" = wrist head + 0.55 (middle fingertip - wrist head)

# Bones whose rotation is not a meaningful regression target: eyeball gaze is invisible at crop resolution
# and the synthetic generator never sets it.
UNSUPERVISED_BONES = ("eye.L", "eye.R")

# Surface landmarks located on the full mesh at rest. "coco:<label>" uses Anny's COCO-WholeBody vertex
# regressor (anny/data/keypoints/coco.pth); the others are computed from the mesh (see _landmark_targets).
_LANDMARKS = {
    "nose": "coco:nose",
    "L_eye": "coco:left_eye",
    "R_eye": "coco:right_eye",
    "L_ear": "coco:left_ear",
    "R_ear": "coco:right_ear",
    "L_big_toe": "coco:left_big_toe",
    "R_big_toe": "coco:right_big_toe",
    "L_small_toe": "coco:left_small_toe",
    "R_small_toe": "coco:right_small_toe",
    "head_top": "highest vertex",
    "L_fingertip": "farthest hand vertex from wrist.L",
    "R_fingertip": "farthest hand vertex from wrist.R",
}

# Each joint of each set is a linear combination of terms: ("bone", label) for a bone head, ("mark", name)
# for a surface landmark, with weights summing to 1.
_Terms = tuple[tuple[float, str, str], ...]


def _bone(label: str) -> _Terms:
    return ((1.0, "bone", label),)


def _mark(name: str) -> _Terms:
    return ((1.0, "mark", name),)


def _mix(*parts: tuple[float, _Terms]) -> _Terms:
    return tuple((w * wt, kind, ref) for w, terms in parts for wt, kind, ref in terms)


def _foot(side: str) -> _Terms:
    toes = _mix((0.5, _mark(f"{side}_big_toe")), (0.5, _mark(f"{side}_small_toe")))
    return _mix((1.0 - FOOT_FRACTION, _bone(f"foot.{side}")), (FOOT_FRACTION, toes))


def _hand(side: str) -> _Terms:
    return _mix((1.0 - HAND_FRACTION, _bone(f"wrist.{side}")), (HAND_FRACTION, _mark(f"{side}_fingertip")))


def _collar(side: str) -> _Terms:
    return _mix((0.5, _bone(f"clavicle.{side}")), (0.5, _bone(f"shoulder01.{side}")))


_BODY_JOINTS: dict[str, _Terms] = {
    "Pelvis": _bone("root"),
    "Spine1": _bone("spine03"),
    "Spine2": _bone("spine02"),
    "Spine3": _bone("spine01"),
    "Neck": _bone("neck01"),
    "Head": _bone("head"),
    "Nose": _mark("nose"),
    "Head_top": _mark("head_top"),
    "Torso": _bone("spine02"),
}
for _s in ("L", "R"):
    _BODY_JOINTS.update(
        {
            f"{_s}_Hip": _bone(f"upperleg01.{_s}"),
            f"{_s}_Knee": _bone(f"lowerleg01.{_s}"),
            f"{_s}_Ankle": _bone(f"foot.{_s}"),
            f"{_s}_Foot": _foot(_s),
            f"{_s}_Collar": _collar(_s),
            f"{_s}_Shoulder": _bone(f"upperarm01.{_s}"),
            f"{_s}_Elbow": _bone(f"lowerarm01.{_s}"),
            f"{_s}_Wrist": _bone(f"wrist.{_s}"),
            f"{_s}_Hand": _hand(_s),
            f"{_s}_Eye": _mark(f"{_s}_eye"),
            f"{_s}_Ear": _mark(f"{_s}_ear"),
        }
    )

# Per-set overrides of the shared names: Human3.6M's "Neck" is the thorax (base of the neck, = neck01 as
# well) and its "Head" is the top of the head.
_SET_OVERRIDES: dict[str, dict[str, _Terms]] = {
    "h36m17": {"Head": _mark("head_top")},
}

JOINT_SET_NAMES = ("smpl24", "jotr30", "jotr15", "h36m17", "coco17")


def joint_definition(set_name: str, joint: str) -> _Terms:
    """The ``(weight, "bone"|"mark", label)`` terms that define ``joint`` of ``set_name`` on Anny."""
    terms = _SET_OVERRIDES.get(set_name, {}).get(joint, _BODY_JOINTS.get(joint))
    if terms is None:
        raise KeyError(f"no Anny definition for joint {joint!r} of set {set_name!r}")
    return terms


# ------------------------------------------------------------------------------------------------ warp / anny


def quiet_warp() -> None:
    """Warp at warning level (no init banner, no per-kernel lines), initialised once.

    On machines without CUDA, warp's native init prints a one-line "could not load the CUDA driver" notice to
    stderr; it is silenced there (it carries no information when torch sees no GPU either).
    """
    try:
        import warp
    except ImportError:  # anny falls back to dense torch skinning
        return
    warp.config.log_level = warp.LOG_WARNING
    if torch.cuda.is_available():
        warp.init()
    else:
        from jotr.utils.quiet import native_stderr_silenced

        with native_stderr_silenced():
            warp.init()


def load_anny(rig: str, topology: str, cache_dir: str | os.PathLike | None = None):
    """Build (or load from ``cache_dir``, default :func:`jotr.body.anny_cache_files.default_cache_dir`) an
    ``anny.Anny`` model in float64, quietly; a build announces itself (folder, size, progress bar).

    Raises :class:`InputError` naming the rig/topology when anny rejects them.
    """
    quiet_warp()
    import anny
    import anny.paths

    from jotr.body.anny_cache_files import announce_builds, default_cache_dir, share_cache_files

    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    anny.paths.set_anny_cache_path(cache_dir)
    try:
        with announce_builds(cache_dir):
            model = anny.Anny(rig=rig, topology=topology, pose_parameterization="local-ref")
    except (ValueError, KeyError, FileNotFoundError, NotImplementedError) as exc:
        raise InputError(f"Anny cannot build rig={rig!r} topology={topology!r}: {exc}") from exc
    share_cache_files(cache_dir)  # safetensors writes 0600 files (another user: unreadable)
    return model


def _anny_to_canonical(points: Tensor) -> Tensor:
    """(..., 3) Anny frame -> (..., 3) canonical frame: (x, y, z) -> (x, z, -y)."""
    x, y, z = points.unbind(-1)
    return torch.stack([x, z, -y], dim=-1)


def _bone_descendants(parents: list[int], bone: int) -> list[int]:
    keep = {bone}
    for child, parent in enumerate(parents):  # parents precede children in Anny's bone order
        if parent in keep:
            keep.add(child)
    return sorted(keep)


@functools.lru_cache(maxsize=4)
def _landmark_targets(rig: str, cache_dir: str) -> dict[str, tuple[float, float, float]]:
    """Landmark positions (Anny frame, metres) on the full mesh of ``rig``, reference pose, default shape,
    loaded from the Anny cache ``cache_dir``.
    """
    import anny

    model = load_anny(rig, FULL_TOPOLOGY, cache_dir)
    with torch.no_grad():
        out = model(None, None)
        vertices = out["vertices"][0]  # (V, 3) Anny frame
        heads = out["bone_poses"][0, :, :3, 3]  # (J, 3)
        coco = anny.KeypointsRegressor.coco(model)
        coco_points = dict(zip(coco.labels, coco(out)[0], strict=True))
    targets: dict[str, Tensor] = {}
    for name, source in _LANDMARKS.items():
        if source.startswith("coco:"):
            targets[name] = coco_points[source[5:]]
    targets["head_top"] = vertices[vertices[:, 2].argmax()]  # Anny is Z-up; arms are down in the A-pose
    dominant = model.vertex_bone_indices.gather(1, model.vertex_bone_weights.argmax(1, keepdim=True))[:, 0]
    for side in ("L", "R"):
        wrist = model.bone_labels.index(f"wrist.{side}")
        hand = torch.isin(dominant, torch.tensor(_bone_descendants(list(model.bone_parents), wrist)))
        dist = torch.where(
            hand, (vertices - heads[wrist]).norm(dim=-1), torch.full_like(vertices[:, 0], -1.0)
        )
        targets[f"{side}_fingertip"] = vertices[dist.argmax()]
    return {k: tuple(float(c) for c in v) for k, v in targets.items()}


def _closest_surface_weights(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(P, V) barycentric weights (3 non-zeros per row) of the closest surface point of a triangle mesh."""
    import trimesh.triangles

    triangles = vertices[faces]  # (F, 3, 3)
    weights = np.zeros((len(points), len(vertices)))
    for p, point in enumerate(points):
        closest = trimesh.triangles.closest_point(triangles, np.repeat(point[None], len(triangles), axis=0))
        f = int(np.argmin(np.linalg.norm(closest - point, axis=1)))
        bary = trimesh.triangles.points_to_barycentric(triangles[f : f + 1], closest[f : f + 1])[0]
        np.add.at(weights[p], faces[f], bary)
    return weights


# ------------------------------------------------------------------------------------------------ model


class AnnyBody(BodyModel):
    """Anny as a :class:`BodyModel`: ``forward((B, J, 3, 3) local rotations, (B, 6) phenotypes)``.

    See the module docstring for frames and conventions. The model runs in float32 by default;
    ``.to(dtype)`` and ``.to(device)`` work as for any module (inputs are cast to the model's dtype, and must
    be on its device).
    """

    name = "anny"

    def __init__(
        self,
        rig: str = DEFAULT_RIG,
        topology: str = DEFAULT_TOPOLOGY,
        cache_dir: str | os.PathLike | None = None,
    ) -> None:
        """``cache_dir``: the Anny cache (default :func:`jotr.body.anny_cache_files.default_cache_dir`)."""
        super().__init__()
        self.rig = rig
        self.topology = topology
        from jotr.body.anny_cache_files import default_cache_dir

        cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        model = load_anny(rig, topology, cache_dir)
        if tuple(model.phenotype_labels) != SHAPE_NAMES:
            raise InputError(
                f"Anny rig={rig!r}: expected phenotypes {SHAPE_NAMES}, got {model.phenotype_labels}"
            )
        self.bone_labels: tuple[str, ...] = tuple(model.bone_labels)
        self.pose_joint_names = self.bone_labels
        self.parents = tuple(int(p) for p in model.bone_parents)
        if self.parents[0] >= 0:
            raise InputError(
                f"Anny rig={rig!r}: the first bone must be the root, got parents {self.parents[:3]}"
            )
        self.num_pose_joints = len(self.bone_labels)
        self.num_skeleton_joints = len(self.bone_labels)
        self.num_shape = len(SHAPE_NAMES)
        self.shape_names = SHAPE_NAMES
        self.shape_bounds = (0.0, 1.0)

        faces = model.faces if model.faces.shape[-1] == 3 else model.get_triangular_faces()
        self.register_buffer("_faces", faces.long().clone(), persistent=False)
        self._num_vertices = int(model.template_vertices.shape[0])

        # Joint regressors, built in float64 from the rest mesh at the reference pose.
        with torch.no_grad():
            rest_vertices = model(None, None)["vertices"][0]  # (V, 3) Anny frame
        targets = _landmark_targets(rig, str(cache_dir))
        names = list(_LANDMARKS)
        target_points = np.array([targets[n] for n in names])
        marks = _closest_surface_weights(rest_vertices.numpy(), faces.numpy(), target_points)
        landmark_weights = {n: marks[i] for i, n in enumerate(names)}
        for set_name in JOINT_SET_NAMES:
            self.register_joint_regressor(set_name, self._build_regressor(set_name, landmark_weights))

        # Anny is kept out of the module tree (its buffers never reach state_dict); _apply moves it.
        object.__setattr__(self, "_anny", model.to(torch.float32))
        self.register_buffer("_frame", torch.tensor(_CANONICAL_FROM_ANNY), persistent=False)  # (3, 3)

    # -------------------------------------------------------------------------------------------- helpers

    @property
    def anny_model(self):
        """The wrapped ``anny.Anny`` module (Anny frame; not part of ``state_dict``)."""
        return self._anny

    @property
    def dtype(self) -> torch.dtype:
        return self._anny.dtype

    @property
    def device(self) -> torch.device:
        return self._anny.device

    def bone_index(self, label: str) -> int:
        """Index of an Anny bone (e.g. ``"lowerarm01.L"``) in the pose and skeleton axes."""
        try:
            return self.bone_labels.index(label)
        except ValueError:
            raise KeyError(
                f"Anny rig {self.rig!r} has no bone {label!r}; bones: {self.bone_labels}"
            ) from None

    def pose_supervision_mask(self) -> Tensor:
        """(J,) 1 for every bone except the eyes (gaze: unobservable, never set by the synthetic data)."""
        mask = torch.ones(self.num_pose_joints, device=self.device)
        for label in UNSUPERVISED_BONES:
            if label in self.bone_labels:
                mask[self.bone_index(label)] = 0.0
        return mask

    def _apply(self, fn, recurse: bool = True):
        super()._apply(fn, recurse)
        self._anny._apply(fn)
        return self

    def _build_regressor(self, set_name: str, landmark_weights: dict[str, np.ndarray]) -> Tensor:
        """(K, V + J) float64 regressor of a named joint set over ``[vertices; bone heads]``.

        ``landmark_weights`` maps each landmark name to its (V,) barycentric weights on this topology.
        """
        V, J = self._num_vertices, self.num_skeleton_joints
        if set_name == "jotr15":
            return self._build_regressor("jotr30", landmark_weights)[list(JOTR15_FROM_30)]
        names = get_joint_set(set_name).names
        reg = np.zeros((len(names), V + J))
        for k, joint in enumerate(names):
            for weight, kind, ref in joint_definition(set_name, joint):
                if kind == "bone":
                    if ref not in self.bone_labels:
                        raise InputError(
                            f"Anny rig {self.rig!r} lacks bone {ref!r} needed for {set_name}/{joint}"
                        )
                    reg[k, V + self.bone_labels.index(ref)] += weight
                else:
                    reg[k, :V] += weight * landmark_weights[ref]
        return torch.from_numpy(reg)

    # -------------------------------------------------------------------------------------------- forward

    def forward(self, pose_rotmat: Tensor, shape: Tensor) -> BodyOutput:
        """(B, J, 3, 3) local rotations, root first, canonical axes; (B, 6) phenotypes in [0, 1].

        Returns vertices ``(B, V, 3)`` and bone heads ``(B, J, 3)``, metres, canonical frame rotated by the
        root rotation, root at the origin.
        """
        if not isinstance(pose_rotmat, Tensor) or not isinstance(shape, Tensor):
            raise InputError("anny: pose_rotmat and shape must be tensors")
        if pose_rotmat.dim() != 4 or shape.dim() != 2:
            raise InputError(
                f"anny: pose must be (B, {self.num_pose_joints}, 3, 3) and shape (B, {self.num_shape}), "
                f"got {tuple(pose_rotmat.shape)} and {tuple(shape.shape)}"
            )
        try:
            self.check_inputs(pose_rotmat, shape)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        if not (pose_rotmat.is_floating_point() and shape.is_floating_point()):
            raise InputError(
                f"anny: pose and shape must be floating point, got {pose_rotmat.dtype}, {shape.dtype}"
            )
        if pose_rotmat.device != self.device or shape.device != self.device:
            raise InputError(
                f"anny: inputs on {pose_rotmat.device}/{shape.device} but the model is on {self.device}"
            )
        dtype = self.dtype
        frame = self._frame.to(dtype)  # C: canonical <- Anny
        # A rotation R in canonical axes is C^T R C in Anny's axes (local-ref: every delta is in world axes).
        rot_anny = frame.transpose(0, 1) @ pose_rotmat.to(dtype) @ frame  # (B, J, 3, 3)
        B, J = rot_anny.shape[:2]
        top = torch.cat([rot_anny, rot_anny.new_zeros(B, J, 3, 1)], dim=-1)  # (B, J, 3, 4)
        bottom = rot_anny.new_tensor([0.0, 0.0, 0.0, 1.0]).expand(B, J, 1, 4)
        delta = torch.cat([top, bottom], dim=-2)  # (B, J, 4, 4) homogeneous, zero translation
        out = self._anny(pose_parameters=delta, phenotype_kwargs=shape.to(dtype))
        vertices = _anny_to_canonical(out["vertices"])  # (B, V, 3) canonical, metres
        skeleton = _anny_to_canonical(out["bone_poses"][..., :3, 3])  # (B, J, 3) bone heads
        return BodyOutput(vertices=vertices, skeleton=skeleton)
