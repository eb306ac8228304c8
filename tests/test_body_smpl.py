"""SMPLBody (smplx-based) and the procedural SMPL-format body (ToyBody, generated model files)."""

from __future__ import annotations

import copy
import logging
import math
import pickle
import sys
import types

import numpy as np
import pytest
import torch

from jotr.body import build_body_model
from jotr.body.config import BodyConfig
from jotr.body.joint_sets import JOINT_SETS, JOTR15_FROM_30, get_joint_set
from jotr.body.smpl import SMPL_LANDMARK_IDS, SMPLBody
from jotr.body.toy import (
    ToyBody,
    make_smpl_like_arrays,
    procedural_landmark_ids,
    write_regressor_files,
    write_smpl_model,
)
from jotr.errors import InputError
from jotr.geometry.rotations import aa_to_rotmat, rotation_about_axis

SETS = ("smpl24", "jotr30", "jotr15", "h36m17", "coco17")


def random_pose(batch: int, scale: float = 0.4, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    aa = torch.randn(batch, 24, 3, generator=g, dtype=dtype) * scale
    return aa_to_rotmat(aa)


def random_shape(batch: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 10, generator=g)


def rest(body, batch=1):
    return body(body.rest_pose(batch), body.default_shape(batch))


# ------------------------------------------------------------------------------------------------ loading


def test_pkl_and_npz_give_identical_outputs(smpl_model_dir):
    a = SMPLBody.from_file(smpl_model_dir / "SMPL_NEUTRAL.pkl")
    b = SMPLBody.from_file(smpl_model_dir / "SMPL_NEUTRAL.npz")
    pose, shape = random_pose(3), random_shape(3)
    oa, ob = a(pose, shape), b(pose, shape)
    assert oa.vertices.shape == (3, 6890, 3) and oa.skeleton.shape == (3, 24, 3)
    assert torch.equal(oa.vertices, ob.vertices)
    assert torch.equal(oa.skeleton, ob.skeleton)
    assert torch.equal(a.faces, b.faces) and a.faces.dtype == torch.int64


def test_matches_smplx_reference_implementation(smpl_model_dir):
    smplx = pytest.importorskip("smplx")
    ref = smplx.SMPL(model_path=str(smpl_model_dir / "SMPL_NEUTRAL.pkl"))  # the generated pkl loads in smplx
    body = SMPLBody.from_file(smpl_model_dir / "SMPL_NEUTRAL.pkl")
    g = torch.Generator().manual_seed(3)
    aa = torch.randn(2, 24, 3, generator=g) * 0.5
    betas = torch.randn(2, 10, generator=g)
    with torch.no_grad():
        out_ref = ref(global_orient=aa[:, 0], body_pose=aa[:, 1:].reshape(2, 69), betas=betas)
        out = body(aa_to_rotmat(aa), betas)
    torch.testing.assert_close(out.vertices, out_ref.vertices, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.skeleton, out_ref.joints[:, :24], atol=1e-5, rtol=0)
    assert np.array_equal(body.faces.numpy(), ref.faces.astype(np.int64))


def test_genders_and_config(smpl_model_dir):
    heights = {}
    for gender in ("neutral", "male", "female"):
        cfg = BodyConfig(kind="smpl", smpl_model_path=str(smpl_model_dir), gender=gender)
        body = build_body_model(cfg)
        assert isinstance(body, SMPLBody) and body.gender == gender
        v = rest(body).vertices[0]
        heights[gender] = float(v[:, 1].max() - v[:, 1].min())
    assert heights["female"] < heights["neutral"] < heights["male"]
    # the gender argument overrides cfg.gender (gendered ground truth)
    cfg = BodyConfig(kind="smpl", smpl_model_path=str(smpl_model_dir), gender="neutral")
    male = build_body_model(cfg, gender="male")
    assert male.gender == "male"
    v = rest(male).vertices[0]
    assert float(v[:, 1].max() - v[:, 1].min()) == pytest.approx(heights["male"])


def test_official_file_names_and_smplx_layout(smpl_model_dir, tmp_path):
    official = tmp_path / "official"
    official.mkdir()
    (official / "basicModel_f_lbs_10_207_0_v1.0.0.pkl").symlink_to(smpl_model_dir / "SMPL_FEMALE.pkl")
    layout = tmp_path / "models"
    (layout / "smpl").mkdir(parents=True)
    (layout / "smpl" / "SMPL_MALE.npz").symlink_to(smpl_model_dir / "SMPL_MALE.npz")
    female = SMPLBody.from_file(official, gender="female")
    male = SMPLBody.from_file(layout, gender="male")
    ref_f = SMPLBody.from_file(smpl_model_dir / "SMPL_FEMALE.npz", gender="female")
    ref_m = SMPLBody.from_file(smpl_model_dir / "SMPL_MALE.pkl", gender="male")
    assert torch.equal(rest(female).vertices, rest(ref_f).vertices)
    assert torch.equal(rest(male).vertices, rest(ref_m).vertices)
    with pytest.raises(InputError, match="no neutral model"):
        SMPLBody.from_file(official, gender="neutral")


def _install_fake_chumpy(monkeypatch):
    """A module named chumpy.ch with a Ch class that pickles like chumpy's (state dict holding 'x')."""
    ch_mod = types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x = np.asarray(x)
            self._dirty_vars = set()

    class Derived:  # an expression object without a stored 'x'
        def __init__(self):
            self.a = 1

    for cls, name in ((Ch, "Ch"), (Derived, "Derived")):
        cls.__module__, cls.__qualname__, cls.__name__ = "chumpy.ch", name, name
        setattr(ch_mod, name, cls)
    monkeypatch.setitem(sys.modules, "chumpy", types.ModuleType("chumpy"))
    monkeypatch.setitem(sys.modules, "chumpy.ch", ch_mod)
    return Ch, Derived


def test_official_pkl_with_chumpy_objects_loads_without_chumpy(tmp_path, monkeypatch):
    arrays = make_smpl_like_arrays(600)
    with monkeypatch.context() as m:
        Ch, Derived = _install_fake_chumpy(m)
        data = {k: v for k, v in arrays.items()}
        for key in ("v_template", "shapedirs", "weights"):
            data[key] = Ch(arrays[key])
        import scipy.sparse

        data["J_regressor"] = scipy.sparse.csc_matrix(arrays["J_regressor"])
        data["J"] = Derived()  # unused keys may be anything chumpy
        good = pickle.dumps(data, protocol=2)
        data["v_template"] = Derived()
        bad = pickle.dumps(data, protocol=2)
    assert "chumpy" not in sys.modules or not hasattr(sys.modules["chumpy"], "ch")
    (tmp_path / "good.pkl").write_bytes(good)
    (tmp_path / "bad.pkl").write_bytes(bad)
    marks = procedural_landmark_ids(arrays)
    loaded = SMPLBody(_load(tmp_path / "good.pkl"), landmark_ids=marks, source="good.pkl")
    direct = SMPLBody.from_arrays(arrays, landmark_ids=marks)
    pose, shape = random_pose(2), random_shape(2)
    assert torch.equal(loaded(pose, shape).vertices, direct(pose, shape).vertices)
    with pytest.raises(InputError, match="v_template.*chumpy"):
        SMPLBody(_load(tmp_path / "bad.pkl"), landmark_ids=marks, source="bad.pkl")


def _load(path):
    from jotr.body.smpl import load_smpl_arrays

    return load_smpl_arrays(path)


def test_pickle_with_foreign_objects_is_rejected(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps({"v_template": Evil()}))
    with pytest.raises(InputError, match="builtins.print"):
        SMPLBody.from_file(path)


# ------------------------------------------------------------------------------------------------ bad input


def _write_npz(path, arrays):
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="module")
def small_arrays():
    return make_smpl_like_arrays(600)


def test_bad_files_raise_input_error(tmp_path, small_arrays):
    with pytest.raises(InputError, match="does not exist"):
        SMPLBody.from_file(tmp_path / "nope.pkl")
    (tmp_path / "model.txt").write_text("x")
    with pytest.raises(InputError, match=r"model\.txt.*\.pkl or \.npz"):
        SMPLBody.from_file(tmp_path / "model.txt")
    with pytest.raises(InputError, match="holds no neutral model"):
        SMPLBody.from_file(tmp_path)
    (tmp_path / "broken.pkl").write_bytes(b"not a pickle")
    with pytest.raises(InputError, match="broken.pkl"):
        SMPLBody.from_file(tmp_path / "broken.pkl")
    missing = {k: v for k, v in small_arrays.items() if k != "weights"}
    with pytest.raises(InputError, match=r"missing.*weights"):
        SMPLBody.from_file(_write_npz(tmp_path / "missing.npz", missing))
    wrong = dict(small_arrays, posedirs=small_arrays["posedirs"][:, :, :200])
    with pytest.raises(InputError, match=r"wrong\.npz.*posedirs.*\(600, 3, 207\)"):
        SMPLBody.from_file(_write_npz(tmp_path / "wrong.npz", wrong))
    faces = dict(small_arrays, f=small_arrays["f"].astype(np.int64) + 5)
    with pytest.raises(InputError, match="'f'"):
        SMPLBody.from_file(_write_npz(tmp_path / "faces.npz", faces))
    few_betas = dict(small_arrays, shapedirs=small_arrays["shapedirs"][:, :, :5])
    with pytest.raises(InputError, match="shapedirs"):
        SMPLBody.from_arrays(few_betas, landmark_ids=procedural_landmark_ids(small_arrays))
    with pytest.raises(InputError, match="smpl_model_path is not set"):
        SMPLBody.from_config(BodyConfig(kind="smpl"))


def test_vertex_count_needs_own_landmarks_and_matching_regressors(tmp_path, small_arrays, smpl_model_dir):
    with pytest.raises(InputError, match="600 vertices.*landmark_ids"):
        SMPLBody.from_arrays(small_arrays)
    with pytest.raises(InputError, match="outside"):
        SMPLBody.from_arrays(small_arrays, landmark_ids=SMPL_LANDMARK_IDS)
    path = write_smpl_model(tmp_path / "SMPL_NEUTRAL.npz", small_arrays)
    with pytest.raises(InputError, match=r"J_regressor_h36m_correct\.npy.*\(17, 600\)"):
        SMPLBody.from_file(path, j_regressor_h36m=smpl_model_dir / "J_regressor_h36m_correct.npy")
    with pytest.raises(InputError, match="does not exist"):
        SMPLBody.from_file(smpl_model_dir, j_regressor_extra=tmp_path / "none.npy")


def test_forward_rejects_bad_tensors(toy_body):
    pose, shape = toy_body.rest_pose(2), toy_body.default_shape(2)
    with pytest.raises(ValueError, match=r"\(B, 24, 3, 3\)"):
        toy_body(pose[:, :23], shape)
    with pytest.raises(ValueError, match=r"shape must be \(2, 10\)"):
        toy_body(pose, shape[:, :9])
    bad = shape.clone()
    bad[1, 3] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        toy_body(pose, bad)


# ------------------------------------------------------------------------------------------------ interface


@pytest.mark.parametrize("fixture", ["smpl_body", "toy_body"])
def test_interface_joint_sets_and_no_state(fixture, request):
    body = request.getfixturevalue(fixture)
    assert body.num_pose_joints == 24 and body.num_skeleton_joints == 24 and body.num_shape == 10
    assert body.shape_bounds is None
    assert body.pose_joint_names == get_joint_set("smpl24").names
    assert body.parents == (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
    assert body.state_dict() == {} and list(body.parameters()) == []
    out = body(random_pose(2), random_shape(2))
    for name in SETS:
        joints = body.joints(out, name)
        assert joints.shape == (2, len(JOINT_SETS[name]), 3), name
        reg = getattr(body, f"regressor_{name}")
        torch.testing.assert_close(reg.sum(1), torch.ones(len(reg)), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        body.joints(out, "jotr15"), body.joints(out, "jotr30")[:, list(JOTR15_FROM_30)]
    )
    torch.testing.assert_close(body.joints(out, "jotr30")[:, :24], body.joints(out, "smpl24"))
    # smpl24 = J_regressor on the posed mesh: close to, not equal to, the kinematic joints (pose correctives)
    assert (body.joints(out, "smpl24") - out.skeleton).norm(dim=-1).max() < 0.01
    mask = body.pose_supervision_mask()
    assert mask.shape == (24,)
    assert torch.nonzero(mask == 0).flatten().tolist() == [7, 8, 10, 11, 20, 21, 22, 23]
    assert body.faces.max() < body.num_vertices


def test_buffers_follow_to(toy_body):
    body = copy.deepcopy(toy_body)
    body.to(torch.float64)
    assert body.v_template.dtype == torch.float64 and body.regressor_jotr30.dtype == torch.float64
    out = body(random_pose(1, dtype=torch.float64), torch.zeros(1, 10, dtype=torch.float64))
    assert out.vertices.dtype == torch.float64
    body.to("meta")
    assert body.v_template.device.type == "meta" and body.regressor_h36m17.device.type == "meta"
    assert body._faces.device.type == "meta"


def test_gradients_flow_to_pose_and_shape(toy_body):
    aa = (torch.randn(2, 24, 3, generator=torch.Generator().manual_seed(0)) * 0.3).requires_grad_()
    shape = torch.randn(2, 10, generator=torch.Generator().manual_seed(1)).requires_grad_()
    out = toy_body(aa_to_rotmat(aa), shape)
    loss = toy_body.joints(out, "jotr30").square().sum() + out.vertices.square().sum()
    loss.backward()
    for t in (aa, shape):
        assert torch.isfinite(t.grad).all()
        assert (t.grad.abs().sum(-1) > 0).all()


def test_gradcheck_float64(toy_body):
    body = copy.deepcopy(toy_body).to(torch.float64)
    aa = torch.randn(1, 24, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 0.3
    shape = torch.randn(1, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    knee_hip = torch.stack([aa[:, 1], aa[:, 4]], dim=1)  # (1, 2, 3) the rotations being checked

    def f(rot, s):
        full = torch.cat([aa[:, :1], rot[:, :1], aa[:, 2:4], rot[:, 1:], aa[:, 5:]], dim=1)
        return body.joints(body(aa_to_rotmat(full), s), "jotr15")

    args = (knee_hip.requires_grad_(), shape.requires_grad_())
    assert torch.autograd.gradcheck(f, args, eps=1e-6, atol=1e-5, fast_mode=True)


def test_build_body_model_toy():
    body = build_body_model(BodyConfig(kind="toy"))
    assert isinstance(body, ToyBody) and body.name == "toy" and body.num_vertices == 600


def test_h36m_without_regressor_file_warns_and_approximates(smpl_model_dir, smpl_body, caplog, monkeypatch):
    import jotr.body.smpl as smpl_module

    monkeypatch.setattr(smpl_module, "_WARNED", set())  # warnings are once per process and model file
    with caplog.at_level(logging.WARNING, logger="jotr.body.smpl"):
        approx = SMPLBody.from_file(smpl_model_dir / "SMPL_NEUTRAL.npz")
    assert "NOT the paper protocol" not in caplog.text  # warned when h36m17 is used, not at load
    out = approx(random_pose(2), random_shape(2))
    with caplog.at_level(logging.WARNING, logger="jotr.body.smpl"):
        joints = approx.joints(out, "h36m17")
    assert "NOT the paper protocol" in caplog.text
    smpl = approx.joints(out, "smpl24")
    names = get_joint_set("h36m17").names
    torch.testing.assert_close(joints[:, names.index("L_Knee")], smpl[:, 4])
    torch.testing.assert_close(joints[:, names.index("Torso")], 0.5 * (smpl[:, 0] + smpl[:, 12]))
    head_top = out.vertices[:, SMPL_LANDMARK_IDS["Head_top"]]
    torch.testing.assert_close(joints[:, names.index("Head")], head_top)
    # with the files: h36m17 from J_regressor_h36m_correct, head top of jotr30 from J_regressor_extra row 3
    reg = np.load(smpl_model_dir / "J_regressor_h36m_correct.npy")
    extra = np.load(smpl_model_dir / "J_regressor_extra.npy")
    out2 = smpl_body(random_pose(2), random_shape(2))
    v = out2.vertices.double()
    torch.testing.assert_close(
        smpl_body.joints(out2, "h36m17").double(),
        torch.einsum("kv,bvc->bkc", torch.as_tensor(reg), v),
        atol=1e-5,
        rtol=0,
    )
    torch.testing.assert_close(
        smpl_body.joints(out2, "jotr30")[:, 29].double(), torch.as_tensor(extra[3]) @ v, atol=1e-5, rtol=0
    )


# ------------------------------------------------------------------------------------------------ anatomy


@pytest.mark.parametrize("fixture", ["smpl_body", "toy_body"])
def test_rest_pose_anatomy(fixture, request):
    body = request.getfixturevalue(fixture)
    out = rest(body)
    j30 = body.joints(out, "jotr30")[0]
    names = get_joint_set("jotr30").names
    J = {n: j30[i] for i, n in enumerate(names)}
    v = out.vertices[0]
    # canonical frame: pelvis near the origin, Y up, facing +Z, left at +X
    assert J["Pelvis"].norm() < 0.05
    assert J["Head_top"][1] > J["Nose"][1] > J["Neck"][1] > J["Pelvis"][1] > J["L_Knee"][1] > J["L_Ankle"][1]
    assert J["Nose"][2] > J["Head"][2] + 0.05  # the face looks along +Z
    assert J["L_Shoulder"][0] > 0.1 and J["L_Hip"][0] > 0 and J["L_Ear"][0] > J["L_Eye"][0] > 0
    assert J["L_Foot"][2] > J["L_Ankle"][2]  # toes forward
    height = float(v[:, 1].max() - v[:, 1].min())
    assert 1.55 < height < 1.85
    assert float(v[:, 1].max()) == pytest.approx(float(J["Head_top"][1]), abs=0.01)

    def dist(a, b):
        return float((J[a] - J[b]).norm())

    for side in "LR":
        assert 0.3 < dist(f"{side}_Hip", f"{side}_Knee") < 0.5
        assert 0.3 < dist(f"{side}_Knee", f"{side}_Ankle") < 0.5
        assert 0.2 < dist(f"{side}_Shoulder", f"{side}_Elbow") < 0.35
        assert 0.2 < dist(f"{side}_Elbow", f"{side}_Wrist") < 0.3
    assert 0.25 < dist("L_Shoulder", "R_Shoulder") < 0.45
    # left/right mirror symmetry of every named joint and of the mesh
    mirror = torch.tensor([-1.0, 1.0, 1.0])
    for name in SETS:
        joints = body.joints(out, name)[0]
        perm = list(JOINT_SETS[name].flip_permutation)
        torch.testing.assert_close(joints * mirror, joints[perm], atol=1e-5, rtol=0)
    mirrored = v * mirror
    nearest = torch.cdist(mirrored, v, compute_mode="donot_use_mm_for_euclid_dist").min(dim=1).values
    assert nearest.max() < 1e-5


def test_procedural_files_match_toy_and_landmarks_are_anatomical(smpl_body, toy_body):
    # both are the same procedural body at different resolutions: identical rest skeletons
    torch.testing.assert_close(rest(smpl_body).skeleton, rest(toy_body).skeleton, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        rest(smpl_body).skeleton, smpl_body.joints(rest(smpl_body), "smpl24"), atol=1e-5, rtol=0
    )
    assert smpl_body.landmark_ids == SMPL_LANDMARK_IDS
    coco_sb = smpl_body.joints(rest(smpl_body), "coco17")[0]
    coco_toy = toy_body.joints(rest(toy_body), "coco17")[0]
    # face landmarks on different meshes land within a few centimetres of each other
    assert (coco_sb[:5] - coco_toy[:5]).norm(dim=-1).max() < 0.05
    torch.testing.assert_close(coco_sb[5:], coco_toy[5:], atol=1e-5, rtol=0)


@pytest.mark.parametrize("num_vertices", [600, 6890])
def test_mesh_is_closed_and_outward(num_vertices):
    trimesh = pytest.importorskip("trimesh")
    arrays = make_smpl_like_arrays(num_vertices)
    mesh = trimesh.Trimesh(arrays["v_template"], arrays["f"].astype(np.int64), process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume > 0.03  # positive: normals point outward; a ~1.7 m body of capsules
    assert len(np.unique(arrays["f"])) == num_vertices  # every vertex belongs to a face
    assert arrays["kintree_table"][0, 0] == 0xFFFFFFFF
    np.testing.assert_allclose(arrays["weights"].sum(1), 1.0)
    np.testing.assert_allclose(arrays["J_regressor"].sum(1), 1.0)


def test_generation_is_deterministic_and_seeded():
    a, b, c = (
        make_smpl_like_arrays(700, seed=0),
        make_smpl_like_arrays(700, seed=0),
        make_smpl_like_arrays(700, seed=1),
    )
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    assert not np.array_equal(a["posedirs"], c["posedirs"])
    assert np.array_equal(a["v_template"], c["v_template"])
    odd = make_smpl_like_arrays(701, num_betas=16)
    assert odd["v_template"].shape == (701, 3) and odd["shapedirs"].shape == (701, 3, 16)
    with pytest.raises(ValueError, match="too small"):
        make_smpl_like_arrays(100)


def test_shape_directions_are_plausible(toy_body):
    def measure(betas):
        out = toy_body(toy_body.rest_pose(1), torch.tensor([betas], dtype=torch.float32))
        v, J = out.vertices[0], out.skeleton[0]
        return float(v[:, 1].max() - v[:, 1].min()), float(v[:, 0].max() - v[:, 0].min()), J

    h0, w0, J0 = measure([0.0] * 10)
    h1, w1, _ = measure([2.0] + [0.0] * 9)
    assert 0.05 < h1 - h0 < 0.2  # +2 on the first beta: taller by a plausible amount
    _, wg, Jg = measure([0.0, 2.0] + [0.0] * 8)
    torch.testing.assert_close(Jg, J0, atol=1e-5, rtol=0)  # girth moves the surface, not the joints
    hl, _, Jl = measure([0.0, 0.0, 2.0] + [0.0] * 7)
    assert hl > h0 and float(Jl[7, 1]) < float(J0[7, 1])  # longer legs: ankles lower


def test_kinematics_and_camera_frame_root(toy_body):
    pose = toy_body.rest_pose(1)
    pose[0, 18] = rotation_about_axis(torch.tensor(math.pi / 2), "y")  # bend the left elbow 90 degrees
    out = toy_body(pose, toy_body.default_shape(1))
    base = rest(toy_body)
    sk, sk0 = out.skeleton[0], base.skeleton[0]
    torch.testing.assert_close(sk[:19], sk0[:19])  # the elbow and everything above it stay put
    forearm = sk0[20] - sk0[18]
    torch.testing.assert_close((sk[20] - sk[18]).norm(), forearm.norm())
    assert abs(float((sk[20] - sk[18])[0])) < 1e-4  # now perpendicular to the upper arm (x axis)
    # an upright person facing the camera: root R_x(180 deg); camera y points down, so the head has lower y
    pose = toy_body.rest_pose(1)
    pose[0, 0] = rotation_about_axis(torch.tensor(math.pi), "x")
    cam = toy_body(pose, toy_body.default_shape(1)).skeleton[0]
    assert cam[15, 1] < cam[0, 1] < cam[7, 1]
    assert cam[16, 0] > 0  # the person's left appears on the image's right


def test_regressor_files_rows(tmp_path):
    h36m_path, extra_path = write_regressor_files(tmp_path, 600)
    arrays = make_smpl_like_arrays(600)
    h36m, extra = np.load(h36m_path), np.load(extra_path)
    assert h36m.shape == (17, 600) and extra.shape == (9, 600)
    np.testing.assert_allclose(h36m.sum(1), 1.0)
    v = arrays["v_template"]
    top = extra[3] @ v
    assert top[1] == pytest.approx(v[:, 1].max())
    names = get_joint_set("h36m17").names
    joints = h36m @ v
    assert joints[names.index("L_Hip"), 0] > 0 > joints[names.index("R_Hip"), 0]
