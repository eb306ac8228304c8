"""Rigged exports of the Anny body (jotr.inference.rigging) read back with independent readers: the skinned
glTF re-posed from its own nodes, skin and inverse bind matrices, and BVH through forward kinematics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jotr.geometry.coords import apply_rigid, export_from_camera


@pytest.fixture(scope="module")
def body(anny_cache_env):
    from jotr.body.anny import AnnyBody

    return AnnyBody()  # the reduced training topology (1229 vertices): same rig and skinning, fast


def _clip(body, frames: int, seed: int = 0):
    """A random pose track (frames, J, 3, 3), one shape, pelvis positions and camera-frame vertices."""
    from jotr.geometry.rotations import aa_to_rotmat

    g = torch.Generator().manual_seed(seed)
    aa = torch.randn(frames, body.num_pose_joints, 3, generator=g) * 0.25
    aa[:, 0] += torch.tensor([np.pi, 0.0, 0.0])  # upright in the camera (y down)
    pose = aa_to_rotmat(aa)
    shape = torch.rand(1, 6, generator=g)
    root = np.stack([np.linspace(-0.3, 0.3, frames), np.full(frames, 0.2), np.linspace(4.0, 4.5, frames)], 1)
    out = body(pose, shape.expand(frames, -1))
    pelvis = body.joints(out, "jotr30")[:, :1]
    verts = (out.vertices - pelvis + torch.tensor(root, dtype=torch.float32)[:, None]).numpy()
    return pose.numpy(), shape[0].numpy(), root, verts


def _node_globals(gltf, node_trs):
    """Global 4x4 of every node from per-node (translation, quaternion xyzw, scale)."""
    import roma

    parent = {c: i for i, n in enumerate(gltf.nodes) for c in (n.children or [])}
    local = []
    for t, q, s in node_trs:
        m = np.eye(4)
        q = torch.tensor(np.asarray(q, np.float64))
        m[:3, :3] = roma.unitquat_to_rotmat(q / q.norm()).numpy() * np.asarray(s)
        m[:3, 3] = t
        local.append(m)
    out: dict[int, np.ndarray] = {}

    def glob(i: int) -> np.ndarray:
        if i not in out:
            out[i] = (glob(parent[i]) if i in parent else np.eye(4)) @ local[i]
        return out[i]

    return [glob(i) for i in range(len(gltf.nodes))]


def _accessor(gltf, blob, index):
    import pygltflib as g

    acc = gltf.accessors[index]
    view = gltf.bufferViews[acc.bufferView]
    dtype = {g.FLOAT: np.float32, g.UNSIGNED_SHORT: np.uint16, g.UNSIGNED_INT: np.uint32}[acc.componentType]
    width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}[acc.type]
    start = view.byteOffset + (acc.byteOffset or 0)
    return np.frombuffer(blob, dtype, acc.count * width, start).reshape(acc.count, width)


def _skinned_vertices(path, frame: int = 0) -> list[np.ndarray]:
    """Every skinned mesh of a glb re-posed by its own nodes (animation frame ``frame``, if any)."""
    import pygltflib as g

    gltf = g.GLTF2().load(str(path))
    blob = gltf.binary_blob()
    trs = [[n.translation or [0, 0, 0], n.rotation or [0, 0, 0, 1], n.scale or [1, 1, 1]] for n in gltf.nodes]
    for anim in gltf.animations:
        for ch in anim.channels:
            values = _accessor(gltf, blob, anim.samplers[ch.sampler].output)
            slot = {"translation": 0, "rotation": 1, "scale": 2}[ch.target.path]
            trs[ch.target.node][slot] = values[frame]
    G = _node_globals(gltf, trs)
    meshes = []
    for node in gltf.nodes:
        if node.skin is None:
            continue
        skin, prim = gltf.skins[node.skin], gltf.meshes[node.mesh].primitives[0]
        ibm = _accessor(gltf, blob, skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)
        joint_mats = np.stack([G[j] for j in skin.joints]) @ ibm  # (J, 4, 4)
        pos = _accessor(gltf, blob, prim.attributes.POSITION).astype(np.float64)
        blended = np.zeros((len(pos), 4, 4))
        s = 0
        while getattr(prim.attributes, f"JOINTS_{s}", None) is not None:
            idx = _accessor(gltf, blob, getattr(prim.attributes, f"JOINTS_{s}")).astype(np.int64)
            w = _accessor(gltf, blob, getattr(prim.attributes, f"WEIGHTS_{s}")).astype(np.float64)
            blended += np.einsum("vk,vkij->vij", w, joint_mats[idx])
            s += 1
        meshes.append(np.einsum("vij,vj->vi", blended[:, :3, :3], pos) + blended[:, :3, 3])
    return meshes


@pytest.mark.parametrize("frame", ["camera", "world"])
def test_rigged_gltf_reposes_to_the_estimated_mesh(body, tmp_path, frame):
    from jotr.inference.rigging import anny_rig_track, write_rigged_gltf

    pose, shape, root, verts = _clip(body, 1)
    E = export_from_camera(frame, verts[0], root)
    track = anny_rig_track(body, pose, shape, root, E)
    path = write_rigged_gltf(
        tmp_path / "rigged.glb",
        [track],
        camera={"export_from_camera": E, "focal": (500.0, 500.0), "image_size": (640, 480)},
    )
    (mesh,) = _skinned_vertices(path)
    expected = apply_rigid(E, verts[0])
    assert np.abs(mesh - expected).max() < 1e-3  # metres: within 1 mm
    if frame == "world":
        assert abs(expected[:, 1].min()) < 1e-9 and np.median(expected[:, 1]) > 0.5  # feet on y = 0, head up
    import pygltflib as g

    gltf = g.GLTF2().load(str(path))
    assert len(gltf.skins[0].joints) == body.num_pose_joints
    assert [n.name for n in gltf.nodes if n.camera is not None] == ["camera"]


def test_rigged_gltf_animation_follows_every_frame(body, tmp_path):
    from jotr.inference.rigging import anny_rig_track, write_rigged_gltf

    pose, shape, root, verts = _clip(body, 3, seed=1)
    E = export_from_camera("world", verts, root)
    track = anny_rig_track(body, pose, shape, root, E, present=[True, False, True])
    path = write_rigged_gltf(tmp_path / "anim.glb", [track], fps=25.0)
    for t in (0, 2):
        (mesh,) = _skinned_vertices(path, t)
        assert np.abs(mesh - apply_rigid(E, verts[t])).max() < 1e-3
    (hidden,) = _skinned_vertices(path, 1)  # absent in frame 1: scaled to a point
    assert np.ptp(hidden, axis=0).max() < 1e-6


def _read_bvh(path):
    """Minimal BVH reader: (names, parents, offsets, channels per joint, frames (T, C), frame time)."""
    tokens = path.read_text().split()
    names, parents, offsets, channels, stack = [], [], [], [], []
    i = 1  # after HIERARCHY
    while tokens[i] != "MOTION":
        tok = tokens[i]
        if tok in ("ROOT", "JOINT"):
            names.append(tokens[i + 1])
            parents.append(stack[-1] if stack else -1)
            i += 2
        elif tok == "End":
            stack.append(None)
            i += 2
        elif tok == "{":
            if stack and stack[-1] is None and tokens[i - 1] == "Site":
                pass
            else:
                stack.append(len(names) - 1)
            i += 1
        elif tok == "}":
            stack.pop()
            i += 1
        elif tok == "OFFSET":
            if stack and stack[-1] is not None and len(offsets) < len(names):
                offsets.append([float(v) for v in tokens[i + 1 : i + 4]])
            i += 4
        elif tok == "CHANNELS":
            n = int(tokens[i + 1])
            channels.append(tokens[i + 2 : i + 2 + n])
            i += 2 + n
        else:
            raise AssertionError(f"unexpected BVH token {tok!r}")
    count = int(tokens[i + 2])
    frame_time = float(tokens[i + 5])
    width = sum(len(c) for c in channels)
    values = np.array(tokens[i + 6 :], float)
    assert values.size == count * width
    return names, parents, np.array(offsets), channels, values.reshape(count, width), frame_time


def test_bvh_of_a_40_frame_clip(body, tmp_path):
    import roma

    from jotr.inference.rigging import anny_rig_track, write_bvh

    pose, shape, root, verts = _clip(body, 40, seed=2)
    E = export_from_camera("world", verts.reshape(-1, 3), root)
    track = anny_rig_track(body, pose, shape, root, E)
    path = write_bvh(tmp_path / "track_00.bvh", track, fps=25.0)
    names, parents, offsets, channels, frames, frame_time = _read_bvh(path)
    assert frames.shape[0] == 40 and frame_time == pytest.approx(0.04)
    assert len(names) == body.num_pose_joints and sorted(names) == sorted(body.bone_labels)
    # forward kinematics of the file = the rig's bone heads in every frame
    for t in (0, 17, 39):
        col, world_rot, world_pos = 0, {}, {}
        for j, (name, p) in enumerate(zip(names, parents)):
            pos = frames[t, col : col + 3] if len(channels[j]) == 6 else None
            col += len(channels[j]) - 3
            angles = torch.tensor(frames[t, col : col + 3])
            rot = roma.euler_to_rotmat("ZXY", angles, degrees=True).numpy()  # intrinsic: Rz Rx Ry
            col += 3
            if p < 0:
                world_rot[j], world_pos[j] = rot, pos + offsets[j]
            else:
                world_rot[j] = world_rot[p] @ rot
                world_pos[j] = world_pos[p] + world_rot[p] @ offsets[j]
            expected = track.bone_poses[t, body.bone_labels.index(name), :3, 3]
            assert np.abs(world_pos[j] - expected).max() < 1e-3, (t, name)


def _person_results(body, count: int = 2):
    """PersonResults as the predictor makes them (vertices placed at the pelvis), from the given body."""
    from jotr.geometry.rotations import rotmat_to_aa
    from jotr.inference.predictor import PersonResult

    pose, shape, root, verts = _clip(body, count, seed=3)
    root[:, 0] = np.linspace(-0.5, 0.5, count)
    out = body(torch.from_numpy(pose), torch.from_numpy(shape)[None].expand(count, -1))
    joints = body.joints(out, "jotr30")
    verts = (out.vertices - joints[:, :1]).numpy() + root[:, None]
    joints = (joints - joints[:, :1]).numpy() + root[:, None]
    results = []
    for i in range(count):
        results.append(
            PersonResult(
                index=i,
                box_xywh=np.array([10.0 + 50 * i, 10.0, 60.0, 60.0]),
                crop_to_img=np.eye(2, 3),
                pose_rotmat=pose[i],
                pose_aa=rotmat_to_aa(torch.from_numpy(pose[i])).numpy(),
                shape=shape,
                cam_t_crop=np.array([0.0, 0.0, 5.0]),
                translation=root[i],
                vertices=verts[i],
                joints=joints[i],
                joints_img=joints[i, :, :2] * 100 + 80,
                keypoints_jotr30=np.ones((30, 3), np.float32),
                focal=(200.0, 200.0),
                princpt=(80.0, 60.0),
            )
        )
    return results


@pytest.mark.parametrize("frame", ["world", "camera"])
def test_files_of_one_result_share_one_frame(body, tmp_path, frame):
    """obj, ply, scene.glb and rigged.glb of one result coincide (within 1 mm) in the chosen frame."""
    import json

    import trimesh

    from jotr.inference.export import save_image_outputs

    results = _person_results(body)
    image = np.zeros((120, 160, 3), np.uint8)
    folder = save_image_outputs(
        tmp_path / "r",
        image,
        results,
        body.faces.numpy(),
        image_name="x.png",
        body_model="anny",
        frame=frame,
        rig_body=body,
    )
    params = json.loads((folder / "params.json").read_text())
    E = np.array(params["export_from_camera"])
    assert params["export_frame"] == frame
    scene = trimesh.load(folder / "scene.glb", force="scene")
    rigged = _skinned_vertices(folder / "rigged.glb")
    for k, r in enumerate(results):
        expected = apply_rigid(E, r.vertices)
        obj = trimesh.load(folder / f"person_{k:02d}.obj", process=False)
        ply = trimesh.load(folder / f"person_{k:02d}.ply", process=False)
        glb = scene.geometry[f"person_{k:02d}"]
        glb_vertices = trimesh.transform_points(glb.vertices, scene.graph[f"person_{k:02d}"][0])
        for got in (obj.vertices, ply.vertices, glb_vertices, rigged[k]):
            assert np.abs(got - expected).max() < 1e-3
    if frame == "world":
        allv = np.concatenate([apply_rigid(E, r.vertices) for r in results])
        assert abs(allv[:, 1].min()) < 1e-6  # the lowest sole on the ground plane
    else:
        np.testing.assert_allclose(E, np.eye(4))
