"""Keypoint formats and files, smoothing, and output writers (no network)."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
import torch

from jotr.body.joint_sets import COCO17, JOTR30
from jotr.errors import InputError
from jotr.geometry.rotations import aa_to_rotmat
from jotr.inference import keypoints as kp
from jotr.inference.export import staged_dir, write_mesh
from jotr.inference.smoothing import EMAFilter, OneEuroFilter, ParameterSmoother

J = JOTR30.index


def _coco_kps(seed=0):
    rng = np.random.default_rng(seed)
    k = np.concatenate([rng.uniform(0, 100, (17, 2)), rng.uniform(0.3, 1.0, (17, 1))], axis=1)
    return k


# ------------------------------------------------------------------------------------------- formats


def test_coco17_to_jotr30_by_name_and_derived_joints():
    k = _coco_kps()
    out = kp.to_jotr30(k)  # inferred from 17 joints
    assert out.shape == (30, 3)
    for i, name in enumerate(COCO17.names):
        np.testing.assert_allclose(out[J(name)], k[i])
    lh, rh = k[COCO17.index("L_Hip")], k[COCO17.index("R_Hip")]
    np.testing.assert_allclose(out[J("Pelvis")], [(lh[0] + rh[0]) / 2, (lh[1] + rh[1]) / 2, lh[2] * rh[2]])
    ls, rs = k[COCO17.index("L_Shoulder")], k[COCO17.index("R_Shoulder")]
    np.testing.assert_allclose(out[J("Neck")][:2], (ls[:2] + rs[:2]) / 2)
    for missing in ("Spine1", "Spine2", "Spine3", "L_Collar", "Head", "Head_top", "L_Hand", "L_Foot"):
        assert out[J(missing), 2] == 0.0


def test_openpose_formats():
    rng = np.random.default_rng(1)
    op18 = np.concatenate([rng.uniform(0, 50, (18, 2)), np.ones((18, 1))], axis=1)
    out = kp.to_jotr30(op18)
    assert kp.canonical_format(None, 18) == "openpose18"
    np.testing.assert_allclose(out[J("Neck")], op18[1])  # OpenPose's own neck, not derived
    np.testing.assert_allclose(out[J("R_Shoulder")], op18[2])
    np.testing.assert_allclose(out[J("L_Ear")], op18[17])
    b25 = np.concatenate([rng.uniform(0, 50, (25, 2)), np.ones((25, 1))], axis=1)
    out = kp.to_jotr30(b25, "BODY_25")
    np.testing.assert_allclose(out[J("Pelvis")], b25[8])  # MidHip
    np.testing.assert_allclose(out[J("L_Ankle")], b25[14])
    np.testing.assert_allclose(out[J("R_Knee")], b25[10])
    j30 = np.concatenate([rng.uniform(0, 50, (30, 2)), np.ones((30, 1))], axis=1)
    np.testing.assert_allclose(kp.to_jotr30(j30, "jotr30"), j30)
    # 2-column input = confidence 1
    assert (kp.to_jotr30(b25[:, :2])[J("Nose"), 2]) == 1.0


@pytest.mark.parametrize("fmt", ["coco17", "openpose18", "body25", "jotr30"])
def test_conversion_tables_pair_same_names(fmt):
    names = kp.FORMAT_NAMES[fmt]
    for i_src, i_dst in kp.conversion_table(fmt):
        assert names[i_src] == JOTR30.names[i_dst]
    # Left stays left: every L_/R_ joint of the format lands on the same side.
    assert all(
        names[s][:2] == JOTR30.names[d][:2]
        for s, d in kp.conversion_table(fmt)
        if names[s][:2] in ("L_", "R_")
    )


def test_bad_keypoints_raise():
    with pytest.raises(InputError, match="cannot infer"):
        kp.to_jotr30(np.zeros((16, 3)))
    with pytest.raises(InputError, match="expected a \\(K, 3\\)"):
        kp.to_jotr30(np.zeros((17,)))
    with pytest.raises(InputError, match="has 17 joints"):
        kp.to_jotr30(np.zeros((18, 3)), "coco17")
    bad = _coco_kps()
    bad[3, 0] = np.nan
    with pytest.raises(InputError, match=r"person 7.*NaN"):
        kp.to_jotr30(bad, name="person 7")
    with pytest.raises(InputError, match="unknown keypoint format"):
        kp.to_jotr30(_coco_kps(), "mpii")


# ------------------------------------------------------------------------------------------- files


def test_coco_results_and_annotation_files(tmp_path):
    k1, k2 = _coco_kps(1), _coco_kps(2)
    results = [
        {"image_id": 123, "category_id": 1, "keypoints": k1.reshape(-1).tolist(), "score": 0.9},
        {
            "image_id": 123,
            "category_id": 1,
            "keypoints": k2.reshape(-1).tolist(),
            "score": 0.8,
            "bbox": [1, 2, 30, 40],
        },
        {"image_id": 7, "category_id": 1, "keypoints": k2.reshape(-1).tolist(), "score": 0.7},
    ]
    path = tmp_path / "res.json"
    path.write_text(json.dumps(results))
    src = kp.KeypointSource(path)
    people = src.for_image(tmp_path / "000000000123.jpg")
    assert people is not None and len(people) == 2
    np.testing.assert_allclose(people[0].keypoints, k1)
    assert people[0].fmt == "coco17" and people[0].score == pytest.approx(0.9)
    np.testing.assert_allclose(people[1].box_xywh, [1, 2, 30, 40])
    assert len(src.for_image(tmp_path / "clip_000000000007.png")) == 1  # video frame naming
    assert src.for_image(tmp_path / "000000000999.jpg") is None

    ann = {
        "images": [{"id": 5, "file_name": "a/b/pic.png"}],
        "annotations": [{"image_id": 5, "keypoints": k1.reshape(-1).tolist()}],
    }
    path2 = tmp_path / "ann.json"
    path2.write_text(json.dumps(ann))
    got = kp.KeypointSource(path2).for_image(tmp_path / "pic.png")
    assert got is not None and len(got) == 1


def test_openpose_file_and_folder(tmp_path):
    rng = np.random.default_rng(3)
    b25 = np.concatenate([rng.uniform(0, 50, (25, 2)), rng.uniform(0, 1, (25, 1))], axis=1)
    data = {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": b25.reshape(-1).tolist()}]}
    folder = tmp_path / "op"
    folder.mkdir()
    (folder / "img01_keypoints.json").write_text(json.dumps(data))
    people = kp.KeypointSource(folder).for_image(tmp_path / "img01.jpg")
    assert people is not None and people[0].fmt == "body25"
    np.testing.assert_allclose(people[0].keypoints, b25)
    assert kp.KeypointSource(folder).for_image(tmp_path / "other.jpg") is None
    single = kp.KeypointSource(folder / "img01_keypoints.json")
    assert len(single.for_image(tmp_path / "anything.png")) == 1


def test_malformed_keypoint_files(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        kp.KeypointSource(p)
    p.write_text(json.dumps({"people": [{"pose_keypoints_2d": [1, 2]}]}))
    with pytest.raises(InputError, match="triplets"):
        kp.KeypointSource(p)
    p.write_text(json.dumps([{"image_id": 1}]))
    with pytest.raises(InputError, match="needs 'image_id' and 'keypoints'"):
        kp.KeypointSource(p)
    with pytest.raises(InputError, match="not found"):
        kp.KeypointSource(tmp_path / "missing.json")


# ------------------------------------------------------------------------------------------- smoothing


def test_filters():
    ema = EMAFilter(0.25)
    assert ema(np.array([4.0]))[0] == 4.0
    assert ema(np.array([0.0]))[0] == pytest.approx(3.0)
    rng = np.random.default_rng(0)
    noisy = 1.0 + 0.1 * rng.standard_normal((200, 5))
    f = OneEuroFilter(min_cutoff=0.5, beta=0.0)
    smoothed = np.stack([f(x, 1 / 30) for x in noisy])
    assert smoothed[50:].std() < 0.5 * noisy[50:].std()
    f2 = OneEuroFilter()
    const = np.stack([f2(np.full(3, 2.0), 1 / 30) for _ in range(10)])
    np.testing.assert_allclose(const, 2.0)
    with pytest.raises(InputError):
        OneEuroFilter(min_cutoff=0)


def test_parameter_smoother_filters_per_track_id_and_keeps_rotations_valid():
    rng = np.random.default_rng(0)
    sm = ParameterSmoother("one-euro", fps=30)
    base = rng.normal(0, 0.5, (2, 5, 3))
    where = np.array([[-1.0, 0.0, 4.0], [1.0, 0.0, 4.0]])  # person 7 on the left, person 3 on the right
    ids = np.array([7, 3])
    for t in range(6):
        aa = torch.from_numpy(base + rng.normal(0, 0.05, base.shape))
        R = aa_to_rotmat(aa).numpy()
        order = [1, 0] if t % 2 else [0, 1]  # people listed in a different order each frame
        trans_in = where + rng.normal(0, 0.01, (2, 3))
        pose, shape, trans = sm.update(t, ids[order], R[order], rng.random((2, 6))[order], trans_in[order])
        RtR = np.einsum("pjki,pjkl->pjil", pose, pose)
        np.testing.assert_allclose(RtR, np.broadcast_to(np.eye(3), RtR.shape), atol=1e-5)
        np.testing.assert_allclose(np.linalg.det(pose), 1.0, atol=1e-5)
        # Each track's filter sees only its own person: no blending of the two.
        np.testing.assert_allclose(trans, where[order], atol=0.05)
    # A new id starts a fresh filter (no lag on its first frame), even where another person was.
    pose, shape, trans = sm.update(6, np.array([9]), R[:1], np.zeros((1, 6)), where[1:] + 0.5)
    np.testing.assert_allclose(trans, where[1:] + 0.5, atol=1e-6)
    sm.forget([7, 3])
    assert set(sm.tracks) == {9}
    with pytest.raises(InputError, match="twice"):
        sm.update(7, np.array([9, 9]), R, np.zeros((2, 6)), where)


# ------------------------------------------------------------------------------------------- writers


def test_mesh_round_trip_through_trimesh(tmp_path):
    import trimesh

    rng = np.random.default_rng(0)
    box = trimesh.creation.box()
    v = np.asarray(box.vertices) + rng.normal(0, 0.01, box.vertices.shape) + [0, 0, 3]
    f = np.asarray(box.faces)
    for suffix in ("obj", "ply"):
        path = tmp_path / f"m.{suffix}"
        write_mesh(path, v, f)
        back = trimesh.load(path, process=False, force="mesh")
        np.testing.assert_allclose(back.vertices, v, atol=1e-5)
        np.testing.assert_array_equal(back.faces, f)
    with pytest.raises(InputError):
        write_mesh(tmp_path / "m.stl", v, f)


def test_staged_dir_is_all_or_nothing(tmp_path):
    final = tmp_path / "img"
    with staged_dir(final) as tmp:
        (tmp / "a.txt").write_text("1")
    assert (final / "a.txt").read_text() == "1"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(final.stat().st_mode) == 0o777 & ~mask  # not mkdtemp's 0700
    with pytest.raises(RuntimeError):
        with staged_dir(final) as tmp:
            (tmp / "a.txt").write_text("2")
            raise RuntimeError("boom")
    assert (final / "a.txt").read_text() == "1"  # old result kept, nothing half-written
    with staged_dir(final) as tmp:
        (tmp / "b.txt").write_text("3")
    assert sorted(p.name for p in final.iterdir()) == [".jotr-output", "b.txt"]  # marker: jotr made it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img"]  # no staging leftovers
    (final / ".jotr-output").unlink()
    with pytest.raises(InputError, match="not created by jotr"):  # never replaces a folder jotr did not make
        with staged_dir(final) as tmp:
            (tmp / "c.txt").write_text("4")
    assert sorted(p.name for p in final.iterdir()) == ["b.txt"]
