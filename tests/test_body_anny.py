"""AnnyBody: interface, frame conversion, pose semantics, anatomy and joint sets on both topologies.

Uses the pre-built Anny cache ($ANNY_CACHE_DIR, built by ``python -m jotr.body.anny_cache``).
"""

from __future__ import annotations

import math

import pytest
import torch

from jotr.body.anny import AnnyBody
from jotr.body.base import BodyOutput
from jotr.body.joint_sets import JOTR15_FROM_30, get_joint_set
from jotr.errors import InputError
from jotr.geometry.rotations import aa_to_rotmat, rotation_about_axis

SETS = ("smpl24", "jotr30", "jotr15", "h36m17", "coco17")


@pytest.fixture(scope="module")
def reduced() -> AnnyBody:
    return AnnyBody(rig="anny-notoes-nohands", topology="notoes_collapse10pc")


@pytest.fixture(scope="module")
def full() -> AnnyBody:
    return AnnyBody(rig="anny-notoes-nohands", topology="anny")


@pytest.fixture(scope="module")
def rest_reduced(reduced) -> BodyOutput:
    with torch.no_grad():
        return reduced(reduced.rest_pose(1), reduced.default_shape(1))


def _joint(body: AnnyBody, out: BodyOutput, set_name: str, joint: str) -> torch.Tensor:
    return body.joints(out, set_name)[:, get_joint_set(set_name).index(joint)]  # (B, 3)


def _random_pose(body: AnnyBody, batch: int, scale: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return aa_to_rotmat(scale * torch.randn(batch, body.num_pose_joints, 3, generator=g))


def _moving_vertices(body: AnnyBody, bone: str) -> torch.Tensor:
    """(V,) bool: vertices with a skinning weight on ``bone`` or one of its descendants."""
    subtree = {body.bone_index(bone)}
    for child, parent in enumerate(body.parents):
        if parent in subtree:
            subtree.add(child)
    anny = body.anny_model
    weighted = (anny.vertex_bone_weights > 0) & torch.isin(
        anny.vertex_bone_indices, torch.tensor(sorted(subtree))
    )
    return weighted.any(dim=1)


# ------------------------------------------------------------------------------------------ interface


def test_attributes(reduced, full):
    for body, num_vertices in ((reduced, 1229), (full, 13718)):
        assert body.name == "anny"
        assert body.num_pose_joints == body.num_skeleton_joints == 38
        assert len(body.pose_joint_names) == len(body.parents) == 38
        assert body.pose_joint_names[0] == "root" and body.parents[0] == -1
        assert all(0 <= p < i for i, p in enumerate(body.parents[1:], start=1))
        assert body.num_shape == 6 and body.shape_bounds == (0.0, 1.0)
        assert body.num_vertices == num_vertices
        assert body.faces.dtype == torch.int64 and body.faces.shape[1] == 3
        assert int(body.faces.min()) == 0 and int(body.faces.max()) == num_vertices - 1
        assert torch.equal(body.default_shape(2), torch.full((2, 6), 0.5))
    assert full.pose_joint_names == reduced.pose_joint_names and full.parents == reduced.parents
    assert reduced.pose_joint_names[reduced.bone_index("lowerarm01.L")] == "lowerarm01.L"
    with pytest.raises(KeyError, match="finger3-1.L"):
        reduced.bone_index("finger3-1.L")


def test_state_dict_is_empty_and_dtype_moves(reduced):
    assert len(reduced.state_dict()) == 0
    reduced.load_state_dict({}, strict=True)
    try:
        reduced.to(torch.float64)
        assert reduced.anny_model.template_vertices.dtype == torch.float64
        out = reduced(
            reduced.rest_pose(1, dtype=torch.float64), reduced.default_shape(1, dtype=torch.float64)
        )
        assert out.vertices.dtype == torch.float64
        assert reduced.joints(out, "jotr30").dtype == torch.float64
    finally:
        reduced.to(torch.float32)
    assert reduced.anny_model.template_vertices.dtype == torch.float32
    assert len(reduced.state_dict()) == 0


def test_forward_shapes_and_dtype(reduced, full):
    for body in (reduced, full):
        out = body(_random_pose(body, 3, 0.2, seed=0), torch.rand(3, 6))
        assert out.vertices.shape == (3, body.num_vertices, 3) and out.vertices.dtype == torch.float32
        assert out.skeleton.shape == (3, 38, 3) and out.skeleton.dtype == torch.float32
        for name in SETS:
            assert body.joints(out, name).shape == (3, len(get_joint_set(name)), 3)
        assert torch.isfinite(out.vertices).all()


def test_gradients_reach_pose_and_shape(reduced):
    pose = _random_pose(reduced, 2, 0.3, seed=1).requires_grad_(True)
    shape = torch.full((2, 6), 0.4).requires_grad_(True)
    out = reduced(pose, shape)
    loss = out.vertices.square().sum() + reduced.joints(out, "jotr30").square().sum()
    loss.backward()
    for grad in (pose.grad, shape.grad):
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert (shape.grad.abs() > 0).all()  # every phenotype changes the body


def test_gradcheck_float64(reduced):
    """Analytic gradients (warp skinning backward included) match finite differences."""
    elbow = reduced.bone_index("lowerarm01.L")
    try:
        reduced.to(torch.float64)

        def fn(aa, shape):
            pose = reduced.rest_pose(1, dtype=torch.float64)
            pose[:, 0] = aa_to_rotmat(aa[0])
            pose[:, elbow] = aa_to_rotmat(aa[1])
            out = reduced(pose, shape)
            return reduced.joints(out, "jotr15")

        aa = torch.tensor([[0.3, -0.2, 0.5], [0.1, 0.4, -0.6]], dtype=torch.float64, requires_grad=True)
        shape = torch.tensor([[0.3, 0.7, 0.4, 0.6, 0.45, 0.55]], dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(fn, (aa, shape), eps=1e-6, atol=1e-5, fast_mode=True)
    finally:
        reduced.to(torch.float32)


def test_bad_inputs_raise_input_error(reduced):
    pose, shape = reduced.rest_pose(2), reduced.default_shape(2)
    with pytest.raises(InputError, match="pose"):
        reduced(pose[:, :24], shape)
    with pytest.raises(InputError, match="shape"):
        reduced(pose, shape[:, :5])
    with pytest.raises(InputError, match="shape"):
        reduced(pose, shape[:1])
    with pytest.raises(InputError, match="pose"):
        reduced(pose.reshape(2, 38, 9), shape)
    with pytest.raises(InputError, match="floating"):
        reduced(pose, torch.ones(2, 6, dtype=torch.int64))
    with pytest.raises(InputError, match="topology"):
        AnnyBody(topology="no_such_topology")


def test_pose_supervision_mask(reduced):
    mask = reduced.pose_supervision_mask()
    assert mask.shape == (38,)
    off = {reduced.pose_joint_names[i] for i in torch.nonzero(mask == 0).flatten().tolist()}
    assert off == {"eye.L", "eye.R"}


# ------------------------------------------------------------------------------------------ frame


def test_canonical_frame_upright_facing_plus_z(reduced, rest_reduced):
    def j(name):
        return _joint(reduced, rest_reduced, "jotr30", name)[0]

    assert torch.allclose(j("Pelvis"), torch.zeros(3), atol=1e-5)  # root at the origin
    assert j("Head")[1] > j("Neck")[1] > j("Pelvis")[1] > j("L_Knee")[1] > j("L_Ankle")[1]  # +Y up
    assert j("Head_top")[1] > j("Head")[1]
    assert j("Nose")[2] > j("Head")[2] + 0.05 and j("Nose")[2] > j("Pelvis")[2]  # faces +Z
    assert j("L_Foot")[2] > j("L_Ankle")[2] + 0.05  # toes point forward
    assert j("L_Shoulder")[0] > 0.1 and j("R_Shoulder")[0] < -0.1  # left at +X
    stature = rest_reduced.vertices[0, :, 1].max() - rest_reduced.vertices[0, :, 1].min()
    assert 1.5 < stature < 1.8


def test_root_rotation_rotates_everything_about_the_root(reduced, rest_reduced):
    R = aa_to_rotmat(torch.tensor([0.3, -1.2, 0.7]))
    pose = reduced.rest_pose(1)
    pose[:, 0] = R
    out = reduced(pose, reduced.default_shape(1))
    assert torch.allclose(out.vertices, rest_reduced.vertices @ R.T, atol=1e-5)
    assert torch.allclose(out.skeleton, rest_reduced.skeleton @ R.T, atol=1e-5)


def test_camera_root_gives_upright_person_facing_camera(reduced):
    pose = reduced.rest_pose(1)
    pose[:, 0] = rotation_about_axis(torch.tensor(math.pi), "x")  # the datasets' upright root pose
    out = reduced(pose, reduced.default_shape(1))
    j = reduced.joints(out, "jotr30")[0]
    names = get_joint_set("jotr30").names
    head, pelvis, ankle, nose = (j[names.index(n)] for n in ("Head", "Pelvis", "L_Ankle", "Nose"))
    assert head[1] < pelvis[1] < ankle[1]  # camera y points down
    assert nose[2] < head[2] - 0.05  # facing the camera (towards -z)
    assert j[names.index("L_Shoulder")][0] > 0  # the person's left on the image right, like SMPL


# ------------------------------------------------------------------------------------------ pose semantics


def test_left_elbow_moves_only_forearm_and_hand(reduced, rest_reduced):
    elbow = reduced.bone_index("lowerarm01.L")
    R = aa_to_rotmat(torch.tensor([0.0, 0.0, 1.0]))  # 1 rad about the canonical z axis
    pose = reduced.rest_pose(1)
    pose[:, elbow] = R
    out = reduced(pose, reduced.default_shape(1))
    moved = (out.vertices - rest_reduced.vertices)[0].norm(dim=-1) > 1e-5
    skinned = _moving_vertices(reduced, "lowerarm01.L")
    assert moved.sum() > 20 and not (moved & ~skinned).any()
    # forearm/hand vertices are on the left (+X) side, beyond the shoulder
    assert (rest_reduced.vertices[0, moved, 0] > 0.15).all()
    # bones outside the subtree stay; the wrist turns about the elbow head, in canonical axes
    wrist = reduced.bone_index("wrist.L")
    subtree = {elbow, reduced.bone_index("lowerarm02.L"), wrist}
    others = [i for i in range(38) if i not in subtree]
    assert torch.allclose(out.skeleton[0, others], rest_reduced.skeleton[0, others], atol=1e-6)
    e = rest_reduced.skeleton[0, elbow]
    expected = e + R @ (rest_reduced.skeleton[0, wrist] - e)
    assert torch.allclose(out.skeleton[0, wrist], expected, atol=1e-5)


def test_child_rotations_compose_in_the_parent_frame(reduced):
    """Rotating the root by Q and the elbow by E equals rotating the elbow-only body by Q (SMPL semantics)."""
    shape = torch.rand(1, 6, generator=torch.Generator().manual_seed(3))
    pose = _random_pose(reduced, 1, 0.3, seed=4)
    pose[:, 0] = torch.eye(3)
    Q = aa_to_rotmat(torch.tensor([0.5, 0.4, -0.9]))
    base = reduced(pose, shape)
    rotated_pose = pose.clone()
    rotated_pose[:, 0] = Q
    rotated = reduced(rotated_pose, shape)
    assert torch.allclose(rotated.vertices, base.vertices @ Q.T, atol=1e-5)


# ------------------------------------------------------------------------------------------ anatomy


def test_rest_pose_is_left_right_symmetric(reduced, rest_reduced):
    for name in ("smpl24", "jotr30", "coco17", "h36m17"):
        joints = reduced.joints(rest_reduced, name)[0]
        mirrored = joints * torch.tensor([-1.0, 1.0, 1.0])
        perm = list(get_joint_set(name).flip_permutation)
        assert torch.allclose(mirrored[perm], joints, atol=5e-3), name


def test_limb_lengths_in_human_range(reduced, rest_reduced):
    def length(a, b):
        return float(
            (_joint(reduced, rest_reduced, "smpl24", a) - _joint(reduced, rest_reduced, "smpl24", b)).norm()
        )

    for side in ("L", "R"):
        assert 0.22 < length(f"{side}_Shoulder", f"{side}_Elbow") < 0.38
        assert 0.18 < length(f"{side}_Elbow", f"{side}_Wrist") < 0.32
        assert 0.32 < length(f"{side}_Hip", f"{side}_Knee") < 0.50
        assert 0.30 < length(f"{side}_Knee", f"{side}_Ankle") < 0.48
        assert 0.06 < length(f"{side}_Ankle", f"{side}_Foot") < 0.20
        assert 0.05 < length(f"{side}_Wrist", f"{side}_Hand") < 0.15
    assert 0.15 < length("L_Hip", "R_Hip") < 0.30
    assert 0.25 < length("L_Shoulder", "R_Shoulder") < 0.45


def test_height_phenotype_changes_stature(reduced):
    shape = torch.full((3, 6), 0.5)
    shape[:, reduced.shape_names.index("height")] = torch.tensor([0.0, 0.5, 1.0])
    with torch.no_grad():
        out = reduced(reduced.rest_pose(3), shape)
    stature = out.vertices[..., 1].amax(dim=1) - out.vertices[..., 1].amin(dim=1)
    assert stature[0] + 0.2 < stature[1] < stature[2] - 0.2
    top = _joint(reduced, out, "jotr30", "Head_top")[:, 1] - _joint(reduced, out, "jotr30", "L_Ankle")[:, 1]
    assert top[0] < top[1] < top[2]


# ------------------------------------------------------------------------------------------ joint sets


def test_regressors_are_affine_and_jotr15_is_a_subset(reduced, full):
    for body in (reduced, full):
        for name in SETS:
            reg = getattr(body, f"regressor_{name}")
            assert torch.allclose(reg.sum(dim=1), torch.ones(reg.shape[0]), atol=1e-5), name
        assert torch.equal(body.regressor_jotr15, body.regressor_jotr30[list(JOTR15_FROM_30)])


@pytest.mark.parametrize("seed", [0, 1])
def test_joint_sets_agree_across_topologies(reduced, full, seed):
    g = torch.Generator().manual_seed(100 + seed)
    pose = _random_pose(reduced, 2, 0.3, seed=seed)
    shape = torch.rand(2, 6, generator=g)
    with torch.no_grad():
        a, b = reduced(pose, shape), full(pose, shape)
    assert torch.allclose(a.skeleton, b.skeleton, atol=1e-4)
    for name in SETS:
        err = (reduced.joints(a, name) - full.joints(b, name)).norm(dim=-1)
        assert err.max() < 0.015, (name, float(err.max()))
