"""Rigged exports of Anny bodies: a skinned glTF 2.0 binary (``rigged.glb``: skeleton, skin weights, the
estimated pose; for a video the pose track of every person as one animation) and BVH motion (one file per
video track).

Anny is a linear-blend-skinned model: a posed vertex is ``v = sum_k w_k G_k R_k^-1 v_rest``, with ``G_k`` the
posed and ``R_k`` the rest pose of bone k (rigid 4x4, bone -> model frame) and ``v_rest`` the person's shape
at Anny's reference pose. glTF skinning computes exactly this with joint node transforms ``G_k`` and inverse
bind matrices ``R_k^-1`` (up to float32 rounding), so the exported file re-poses to the estimated mesh.

Frames. Every matrix here maps into one *export frame* (``--frame camera|world``,
:func:`jotr.geometry.coords.export_from_camera`). The bind (rest) mesh is placed upright in it (Y up for
``world``, -y for ``camera``, facing the camera) at the first frame's root bone, so it looks like a person in
a rest pose in any viewer; that placement does not change the posed result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from jotr.errors import InputError
from jotr.geometry.coords import YUP_FROM_CAM


@dataclass
class RigTrack:
    """One person's skinned body and its pose over ``T`` frames, export frame, metres."""

    name: str  # node name, e.g. "person_00" / "track_03"
    bone_names: tuple[str, ...]  # (J,) Anny bone labels, root first
    parents: tuple[int, ...]  # (J,) parent bone index, -1 for the root; parents precede children
    faces: np.ndarray  # (F, 3) int triangles
    bind_vertices: np.ndarray  # (V, 3) the person's shape at the bind (rest) pose
    bind_bone_poses: np.ndarray  # (J, 4, 4) rigid bone -> export frame at the bind pose
    skin_indices: np.ndarray  # (V, K) int bone indices
    skin_weights: np.ndarray  # (V, K) float weights, rows sum to 1
    bone_poses: np.ndarray  # (T, J, 4, 4) rigid bone -> export frame, per frame
    present: np.ndarray  # (T,) bool: the person was reconstructed in this frame (else the pose is held)
    color: tuple[float, float, float] = (0.7, 0.7, 0.7)  # RGB in [0, 1]

    def posed_vertices(self, t: int = 0) -> np.ndarray:
        """(V, 3) vertices of frame ``t`` by linear blend skinning (what a glTF viewer shows)."""
        skin = self.bone_poses[t] @ np.linalg.inv(self.bind_bone_poses)  # (J, 4, 4)
        blended = np.einsum("vk,vkij->vij", self.skin_weights, skin[self.skin_indices])  # (V, 4, 4)
        return np.einsum("vij,vj->vi", blended[:, :3, :3], self.bind_vertices) + blended[:, :3, 3]


def _homogeneous(rot: np.ndarray, trans: np.ndarray) -> np.ndarray:
    out = np.zeros((*rot.shape[:-2], 4, 4))
    out[..., :3, :3] = rot
    out[..., :3, 3] = trans
    out[..., 3, 3] = 1.0
    return out


@torch.no_grad()
def anny_rig_track(
    body,
    pose_rotmat: np.ndarray,
    shape: np.ndarray,
    root_cam: np.ndarray,
    export_from_camera: np.ndarray,
    *,
    present: np.ndarray | None = None,
    name: str = "person_00",
    color: Sequence[float] = (0.7, 0.7, 0.7),
    chunk: int = 64,
) -> RigTrack:
    """The rig of one person from jotr's parameters: ``pose_rotmat`` (T, J, 3, 3) (as
    :class:`~jotr.inference.predictor.PersonResult`), one ``shape`` (S,), ``root_cam`` (T, 3) pelvis
    positions in the camera frame (``PersonResult.translation``) and the (4, 4) ``export_from_camera``.

    ``body`` is the :class:`jotr.body.anny.AnnyBody` that made the meshes (the predictor's ``mesh_body``):
    frame ``t`` of the rig then skins to that body's vertices, placed as the predictor places them."""
    from jotr.body.anny import _CANONICAL_FROM_ANNY

    if getattr(body, "name", "") != "anny":
        raise InputError(f"rigged exports need the Anny body model, got {getattr(body, 'name', body)!r}")
    dtype, dev = body.dtype, body.device
    pose_all = torch.as_tensor(np.asarray(pose_rotmat), dtype=dtype, device=dev).reshape(
        -1, body.num_pose_joints, 3, 3
    )
    T = pose_all.shape[0]
    root_cam = np.asarray(root_cam, np.float64).reshape(T, 3)
    C = torch.tensor(_CANONICAL_FROM_ANNY, dtype=dtype, device=dev)  # canonical <- Anny
    pelvis_parts, poses_parts = [], []
    for start in range(0, T, chunk):  # a long video in pieces: the full mesh is 13,718 vertices per frame
        pose = pose_all[start : start + chunk]
        shp = torch.as_tensor(np.asarray(shape), dtype=dtype, device=dev).reshape(1, -1).expand(len(pose), -1)
        out = body(pose, shp)
        pelvis_parts.append(
            body.joints(out, "jotr30")[:, 0].double().cpu().numpy()
        )  # canonical, root-rotated
        delta = torch.zeros(len(pose), pose.shape[1], 4, 4, dtype=dtype, device=dev)
        delta[..., :3, :3] = C.T @ pose @ C  # the delta rotations AnnyBody.forward gives Anny
        delta[..., 3, 3] = 1.0
        raw = body.anny_model(pose_parameters=delta, phenotype_kwargs=shp)
        poses_parts.append(raw["bone_poses"].double().cpu().numpy())
    pelvis = np.concatenate(pelvis_parts)  # (T, 3)
    anny = body.anny_model
    C64 = np.asarray(_CANONICAL_FROM_ANNY, np.float64)
    E = np.asarray(export_from_camera, np.float64)
    # Anny frame -> camera frame of frame t: p_cam = C p + (root_cam_t - pelvis_t) (what the predictor does).
    cam_from_anny = _homogeneous(np.broadcast_to(C64, (T, 3, 3)), root_cam - pelvis)  # (T, 4, 4)
    bone_poses = E @ cam_from_anny[:, None] @ np.concatenate(poses_parts)  # (T, J, 4, 4)
    rest_poses = raw["rest_bone_poses"][0].double().cpu().numpy()  # (J, 4, 4) Anny frame
    rest_vertices = raw["rest_vertices"][0].double().cpu().numpy()  # (V, 3) Anny frame
    # Bind placement: upright and facing the camera in the export frame, root bone at frame 0's root bone.
    bind_rot = E[:3, :3] @ np.asarray(YUP_FROM_CAM).T @ C64
    bind_shift = bone_poses[0, 0, :3, 3] - bind_rot @ rest_poses[0, :3, 3]
    bind = _homogeneous(bind_rot, bind_shift)
    faces = body.faces.detach().cpu().numpy().astype(np.int64)
    weights = anny.vertex_bone_weights.double().cpu().numpy()
    return RigTrack(
        name=name,
        bone_names=tuple(body.bone_labels),
        parents=tuple(int(p) for p in body.parents),
        faces=faces,
        bind_vertices=rest_vertices @ bind_rot.T + bind_shift,
        bind_bone_poses=bind @ rest_poses,
        skin_indices=anny.vertex_bone_indices.long().cpu().numpy(),
        skin_weights=weights / weights.sum(axis=1, keepdims=True),
        bone_poses=bone_poses,
        present=np.ones(T, bool) if present is None else np.asarray(present, bool).reshape(T),
        color=tuple(float(c) for c in color),
    )


# ------------------------------------------------------------------------------------------------- glTF


def _quat_xyzw(rot: np.ndarray) -> np.ndarray:
    import roma

    return roma.rotmat_to_unitquat(torch.from_numpy(np.asarray(rot, np.float64))).numpy()  # x, y, z, w (glTF)


def _local_trs(track: RigTrack) -> tuple[np.ndarray, np.ndarray]:
    """Per frame and bone: translation (T, J, 3) and rotation quaternion (T, J, 4) relative to the parent."""
    G = track.bone_poses
    local = G.copy()
    for j, p in enumerate(track.parents):
        if p >= 0:
            local[:, j] = np.linalg.inv(G[:, p]) @ G[:, j]
    return local[..., :3, 3], _quat_xyzw(local[..., :3, :3])


class _Buffer:
    """One glTF binary buffer with its views and accessors (pygltflib objects)."""

    def __init__(self, gltf) -> None:
        self.gltf = gltf
        self.data = bytearray()

    def add(self, array: np.ndarray, kind: str, target: int | None = None, minmax: bool = False) -> int:
        import pygltflib as g

        component = {
            np.dtype(np.float32): g.FLOAT,
            np.dtype(np.uint16): g.UNSIGNED_SHORT,
            np.dtype(np.uint32): g.UNSIGNED_INT,
        }[array.dtype]
        array = np.ascontiguousarray(array)
        while len(self.data) % 4:
            self.data.append(0)
        offset = len(self.data)
        self.data += array.tobytes()
        self.gltf.bufferViews.append(
            g.BufferView(buffer=0, byteOffset=offset, byteLength=array.nbytes, target=target)
        )
        flat = array.reshape(len(array), -1)
        accessor = g.Accessor(
            bufferView=len(self.gltf.bufferViews) - 1,
            componentType=component,
            count=len(array),
            type=kind,
            min=flat.min(axis=0).tolist() if minmax else None,
            max=flat.max(axis=0).tolist() if minmax else None,
        )
        self.gltf.accessors.append(accessor)
        return len(self.gltf.accessors) - 1


def write_rigged_gltf(
    path: str | Path,
    tracks: Sequence[RigTrack],
    *,
    fps: float | None = None,
    camera: dict | None = None,
) -> Path:
    """Write ``tracks`` as one skinned binary glTF. With ``fps`` (a video) every track's pose over its
    ``T`` frames becomes one animation ("pose"), frame t at t / fps seconds; a person absent from a frame
    is scaled to 0 there (held pose). Without it the file holds frame 0 as the node transforms.

    ``camera`` (optional): ``{"export_from_camera": (4, 4), "focal": (fx, fy), "image_size": (W, H)}`` adds
    a perspective camera node where the photo was taken (glTF cameras look along their -z)."""
    import pygltflib as g

    if not tracks:
        raise InputError(f"{path}: no person to export")
    gltf = g.GLTF2(asset=g.Asset(generator="jotr", version="2.0"), scene=0)
    buf = _Buffer(gltf)
    roots: list[int] = []
    samplers: list = []
    channels: list = []
    frames = tracks[0].bone_poses.shape[0]
    times_acc = None
    if fps is not None and frames > 1:
        times_acc = buf.add((np.arange(frames) / float(fps)).astype(np.float32), g.SCALAR, minmax=True)
    for track in tracks:
        if track.bone_poses.shape[0] != frames:
            raise InputError(
                f"{path}: every track needs {frames} frames, {track.name} has {track.bone_poses.shape[0]}"
            )
        trans, quat = _local_trs(track)  # (T, J, 3), (T, J, 4)
        first = int(np.argmax(track.present)) if track.present.any() else 0
        J = len(track.bone_names)
        base = len(gltf.nodes)
        armature = base
        gltf.nodes.append(g.Node(name=track.name, children=[]))
        bone_nodes = [base + 1 + j for j in range(J)]
        for j in range(J):
            gltf.nodes.append(
                g.Node(
                    name=track.bone_names[j],
                    translation=trans[first, j].tolist(),
                    rotation=quat[first, j].tolist(),
                    children=[],
                )
            )
        for j, p in enumerate(track.parents):
            (gltf.nodes[bone_nodes[p]].children if p >= 0 else gltf.nodes[armature].children).append(
                bone_nodes[j]
            )
        # mesh: positions, normals, 12 influences as three JOINTS_n / WEIGHTS_n sets
        import trimesh

        bind_mesh = trimesh.Trimesh(track.bind_vertices, track.faces, process=False)
        K = track.skin_indices.shape[1]
        sets = math.ceil(K / 4)
        idx = np.zeros((len(track.bind_vertices), 4 * sets), np.uint16)
        wts = np.zeros((len(track.bind_vertices), 4 * sets), np.float32)
        idx[:, :K] = track.skin_indices
        wts[:, :K] = track.skin_weights
        attrs = {
            "POSITION": buf.add(track.bind_vertices.astype(np.float32), g.VEC3, g.ARRAY_BUFFER, minmax=True),
            "NORMAL": buf.add(np.asarray(bind_mesh.vertex_normals, np.float32), g.VEC3, g.ARRAY_BUFFER),
        }
        for s in range(sets):
            attrs[f"JOINTS_{s}"] = buf.add(idx[:, 4 * s : 4 * s + 4].copy(), g.VEC4, g.ARRAY_BUFFER)
            attrs[f"WEIGHTS_{s}"] = buf.add(wts[:, 4 * s : 4 * s + 4].copy(), g.VEC4, g.ARRAY_BUFFER)
        indices = buf.add(track.faces.reshape(-1).astype(np.uint32), g.SCALAR, g.ELEMENT_ARRAY_BUFFER)
        gltf.materials.append(
            g.Material(
                name=f"{track.name}_skin",
                pbrMetallicRoughness=g.PbrMetallicRoughness(
                    baseColorFactor=[*track.color, 1.0], metallicFactor=0.0, roughnessFactor=0.7
                ),
            )
        )
        gltf.meshes.append(
            g.Mesh(
                name=track.name,
                primitives=[
                    g.Primitive(
                        attributes=g.Attributes(**attrs), indices=indices, material=len(gltf.materials) - 1
                    )
                ],
            )
        )
        ibm = np.linalg.inv(track.bind_bone_poses).transpose(0, 2, 1).astype(np.float32)  # column-major
        gltf.skins.append(
            g.Skin(
                name=track.name,
                joints=bone_nodes,
                skeleton=bone_nodes[0],
                inverseBindMatrices=buf.add(ibm, g.MAT4),
            )
        )
        gltf.nodes.append(
            g.Node(name=f"{track.name}_mesh", mesh=len(gltf.meshes) - 1, skin=len(gltf.skins) - 1)
        )
        gltf.nodes[armature].children.append(len(gltf.nodes) - 1)
        roots.append(armature)
        if times_acc is not None:
            for j in range(J):
                for path_name, values in (("translation", trans[:, j]), ("rotation", quat[:, j])):
                    out = buf.add(values.astype(np.float32), g.VEC3 if path_name == "translation" else g.VEC4)
                    samplers.append(g.AnimationSampler(input=times_acc, output=out, interpolation="LINEAR"))
                    channels.append(
                        g.AnimationChannel(
                            sampler=len(samplers) - 1,
                            target=g.AnimationChannelTarget(node=bone_nodes[j], path=path_name),
                        )
                    )
            if not track.present.all():
                scale = np.repeat(track.present.astype(np.float32)[:, None], 3, axis=1)
                out = buf.add(scale, g.VEC3)
                samplers.append(g.AnimationSampler(input=times_acc, output=out, interpolation="STEP"))
                channels.append(
                    g.AnimationChannel(
                        sampler=len(samplers) - 1,
                        target=g.AnimationChannelTarget(node=armature, path="scale"),
                    )
                )
    if camera is not None:
        E = np.asarray(camera["export_from_camera"], np.float64)
        fx, fy = camera["focal"]
        W, H = camera["image_size"]
        gltf.cameras.append(
            g.Camera(
                type="perspective",
                perspective=g.Perspective(yfov=2 * math.atan(H / (2 * fy)), aspectRatio=W / H, znear=0.01),
            )
        )
        rot = E[:3, :3] @ np.asarray(
            YUP_FROM_CAM
        )  # glTF camera axes (y up, looks along -z) in the export frame
        gltf.nodes.append(
            g.Node(name="camera", camera=0, translation=E[:3, 3].tolist(), rotation=_quat_xyzw(rot).tolist())
        )
        roots.append(len(gltf.nodes) - 1)
    if channels:
        gltf.animations.append(g.Animation(name="pose", samplers=samplers, channels=channels))
    gltf.scenes.append(g.Scene(name="jotr", nodes=roots))
    gltf.buffers.append(g.Buffer(byteLength=len(buf.data)))
    gltf.set_binary_blob(bytes(buf.data))
    path = Path(path)
    path.write_bytes(b"".join(gltf.save_to_bytes()))
    return path


# -------------------------------------------------------------------------------------------------- BVH


def write_bvh(path: str | Path, track: RigTrack, fps: float) -> Path:
    """One track as BVH motion: the Anny skeleton at its bind pose (offsets, export frame, metres), a root
    with 6 channels (position, then rotation Z X Y) and 3 rotation channels (Z X Y) per other bone, one line
    per frame (frames where the person is absent repeat the held pose). Rotations are each bone's rotation
    relative to its bind orientation, composed down the tree as BVH readers do."""
    import roma

    J = len(track.bone_names)
    heads = track.bind_bone_poses[:, :3, 3]  # (J, 3) bind bone heads
    children: list[list[int]] = [[] for _ in range(J)]
    for j, p in enumerate(track.parents):
        if p >= 0:
            children[p].append(j)
    order: list[int] = []
    lines = ["HIERARCHY"]

    def emit(j: int, depth: int) -> None:
        pad = "  " * depth
        order.append(j)
        p = track.parents[j]
        offset = heads[j] - heads[p] if p >= 0 else np.zeros(3)
        lines.append(f"{pad}{'ROOT' if p < 0 else 'JOINT'} {track.bone_names[j]}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}  OFFSET {offset[0]:.6f} {offset[1]:.6f} {offset[2]:.6f}")
        if p < 0:
            lines.append(f"{pad}  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation")
        else:
            lines.append(f"{pad}  CHANNELS 3 Zrotation Xrotation Yrotation")
        for c in children[j]:
            emit(c, depth + 1)
        if not children[j]:
            direction = heads[j] - heads[p] if p >= 0 else np.array([0.0, 1.0, 0.0])
            tip = 0.05 * direction / max(np.linalg.norm(direction), 1e-9)
            lines.append(f"{pad}  End Site")
            lines.append(f"{pad}  {{")
            lines.append(f"{pad}    OFFSET {tip[0]:.6f} {tip[1]:.6f} {tip[2]:.6f}")
            lines.append(f"{pad}  }}")
        lines.append(f"{pad}}}")

    emit(0, 0)
    # world rotation of each bone relative to its bind orientation, then relative to the parent's
    delta = track.bone_poses[..., :3, :3] @ track.bind_bone_poses[None, :, :3, :3].transpose(0, 1, 3, 2)
    local = delta.copy()
    for j, p in enumerate(track.parents):
        if p >= 0:
            local[:, j] = delta[:, p].transpose(0, 2, 1) @ delta[:, j]
    T = track.bone_poses.shape[0]
    # intrinsic Z, X, Y (R = Rz Rx Ry): the channel order written above
    euler = roma.rotmat_to_euler("ZXY", torch.from_numpy(local.reshape(-1, 3, 3)), degrees=True)
    euler = euler.numpy().reshape(T, J, 3)
    root_pos = track.bone_poses[:, 0, :3, 3]
    lines += ["MOTION", f"Frames: {T}", f"Frame Time: {1.0 / float(fps):.6f}"]
    for t in range(T):
        values = list(root_pos[t])
        for j in order:
            values += list(euler[t, j])
        lines.append(" ".join(f"{v:.6f}" for v in values))
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path
