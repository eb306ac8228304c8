"""Sample pipeline, augmentation maths, collate, per-sample seeding and the training mix."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler

from jotr.body.joint_sets import JOTR30, SMPL24
from jotr.config import JOTRConfig, merge_config
from jotr.data import augment as A
from jotr.data.collate import collate
from jotr.data.dataset import RecordDataset, make_loader, sample_rng, set_loader_epoch
from jotr.data.mixing import DistributedMixSampler, MixedDataset
from jotr.data.pipeline import SamplePipeline
from jotr.data.records import DatasetReader, PersonRecord
from jotr.errors import InputError
from jotr.geometry.rotations import aa_to_rotmat

S, HM = 64, 16
J = JOTR30.index
F, C = (400.0, 400.0), (100.0, 80.0)


@pytest.fixture()
def body(toy_body):
    return toy_body


def make_cfg(**augment) -> JOTRConfig:
    base = {
        "scale_factor": 0.0,
        "rot_prob": 0.0,
        "color_factor": 0.0,
        "flip_prob": 0.0,
        "bbox_enlarge": [1.0, 1.0],
        "keypoint_noise": False,
    }
    base.update(augment)
    return merge_config(
        JOTRConfig(), {"model": {"input_size": S, "heatmap_size": HM}, "data": {"augment": base}}
    )


def body_joints(body, pose: np.ndarray, shape: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(30, 3) JOTR30 and (17, 3) H36M joints of the body (model origin, no translation)."""
    with torch.no_grad():
        out = body(
            aa_to_rotmat(torch.tensor(pose, dtype=torch.float32))[None],
            torch.tensor(shape, dtype=torch.float32)[None],
        )
        return (
            body.joints(out, "jotr30")[0].double().numpy(),
            body.joints(out, "h36m17")[0].double().numpy(),
        )


def random_pose(rng) -> np.ndarray:
    pose = rng.normal(size=(24, 3)) * 0.25
    pose[0] = [np.pi * 0.9, 0.2, 0.1]
    return pose


def body_record(tmp_path, body, rng, *, name="a") -> PersonRecord:
    """A 3D record whose GT joints are the body's own joints at 4 m, projected with (F, C)."""
    pose, shape, trans = random_pose(rng), rng.normal(size=10) * 0.3, np.array([0.05, -0.1, 4.0])
    j30, _ = body_joints(body, pose, shape)
    cam = j30 + trans
    img = cam[:, :2] / cam[:, 2:] * F + C
    path = tmp_path / f"{name}.png"
    if not path.exists():
        cv2.imwrite(str(path), rng.integers(0, 255, size=(160, 200, 3), dtype=np.uint8))
    return PersonRecord(
        dataset="toyset",
        sample_id=name,
        image_path=str(path),
        image_size=(200, 160),
        joints_img=img,
        joints_img_valid=np.ones(30),
        joints_cam=cam,
        joints_cam_valid=np.ones(30),
        pose_aa=pose,
        shape=shape,
        trans=trans,
        focal=F,
        princpt=C,
        is_3d=True,
        has_fit=True,
    )


class ListReader(DatasetReader):
    name = "toyset"

    def __init__(self, records):
        super().__init__(None)
        self.records = list(records)


# ------------------------------------------------------------------------------------------------ maths


def test_flip_permutations_from_names():
    perm = A.flip_permutation(SMPL24.names)
    assert perm[SMPL24.index("L_Wrist")] == SMPL24.index("R_Wrist") and perm[0] == 0
    np.testing.assert_array_equal(perm, SMPL24.flip_permutation)
    anny = ("root", "upperarm01.L", "upperarm01.R", "spine01", "foot.R", "foot.L")
    np.testing.assert_array_equal(A.flip_permutation(anny), [0, 2, 1, 3, 5, 4])
    with pytest.raises(ValueError, match="counterpart"):
        A.flip_permutation(("root", "hand.L"))


def test_rotation_and_flip_of_pose_match_the_joints(body):
    rng = np.random.default_rng(0)
    pose, shape = random_pose(rng), np.zeros(10)
    j, _ = body_joints(body, pose, shape)
    rel = j - j[0]
    T = A.camera_transform(30.0, False)
    jr, _ = body_joints(body, A.augment_pose(pose, 30.0, False, None), shape)
    np.testing.assert_allclose(jr - jr[0], rel @ T.T, atol=1e-5)  # rotating the root = rotating the joints
    perm = A.flip_permutation(SMPL24.names)
    jf, _ = body_joints(body, A.augment_pose(pose, 0.0, True, perm), shape)
    expect = (rel * [-1.0, 1.0, 1.0])[list(JOTR30.flip_permutation)]
    np.testing.assert_allclose(jf - jf[0], expect, atol=0.01)  # the mirrored pose gives the mirrored body
    assert np.abs(rel - expect).max() > 0.1  # ... which is not the unflipped body
    both, _ = body_joints(body, A.augment_pose(pose, -20.0, True, perm), shape)
    np.testing.assert_allclose(both - both[0], expect @ A.camera_transform(-20.0, False).T, atol=0.01)
    np.testing.assert_allclose(
        A.augment_pose(A.augment_pose(pose, 0, True, perm), 0, True, perm), pose, atol=1e-12
    )


def test_aug_params_follow_config_and_rng():
    cfg = make_cfg(scale_factor=0.25, rot_prob=1.0, color_factor=0.2, flip_prob=0.5, bbox_enlarge=[1.0, 1.2])
    draws = [A.sample_aug_params(cfg.data.augment, np.random.default_rng(i)) for i in range(200)]
    assert all(0.75 <= d.scale <= 1.25 and abs(d.rot_deg) <= 60 and 1.0 <= d.enlarge <= 1.2 for d in draws)
    assert all(0.8 <= c <= 1.2 for d in draws for c in d.color)
    assert 60 < sum(d.flip for d in draws) < 140
    assert A.sample_aug_params(cfg.data.augment, np.random.default_rng(5)) == draws[5]


# ------------------------------------------------------------------------------------------------ pipeline


def test_fit_joints_match_gt_under_augmentation(tmp_path, smpl_body):
    body = smpl_body  # the SMPL-format model (smplx code path)
    rec = body_record(tmp_path, body, np.random.default_rng(1))
    cfg = make_cfg(scale_factor=0.25, rot_prob=1.0, flip_prob=0.5)
    pipe = SamplePipeline(cfg, train=True, body_models={"smpl": body})
    flips = set()
    for seed in range(6):
        params = A.sample_aug_params(cfg.data.augment, np.random.default_rng(seed))
        flips.add(params.flip)
        s = pipe(rec, np.random.default_rng(seed))
        assert s["has_fit"] == 1 and s["is_3d"] == 1
        # the fitted body's joints are the GT joints (the record was made from the same body)
        torch.testing.assert_close(s["fit_joints_hm"], s["joints_hm"], atol=2e-3, rtol=0)
        assert torch.equal(s["fit_joints_trunc"], s["joints_trunc"])
        # the augmented pose reproduces the augmented root-relative 3D joints
        j, _ = body_joints(body, s["pose_aa"].double().numpy(), rec.shape)
        tol = 0.01 if params.flip else 1e-4
        np.testing.assert_allclose(j - j[0], s["joints_cam"].numpy(), atol=tol)
    assert flips == {True, False}


def test_h36m_style_world_fit_and_fit_error_filter(tmp_path, smpl_body):
    body = smpl_body
    rng = np.random.default_rng(2)
    pose_w, shape, trans_w = random_pose(rng), np.zeros(10), np.array([0.3, 0.2, 0.9])
    Rc = cv2.Rodrigues(np.array([[0.3], [-0.5], [0.2]]))[0]
    t = np.array([0.1, 0.0, 4.0])
    j30_w, h36_w = body_joints(body, pose_w, shape)
    cam30 = (j30_w + trans_w) @ Rc.T + t
    cam_h36 = (h36_w + trans_w) @ Rc.T + t
    pose_c = pose_w.copy()
    pose_c[0] = cv2.Rodrigues(Rc @ cv2.Rodrigues(pose_w[0].reshape(3, 1))[0])[0].ravel()
    rec = body_record(tmp_path, body, rng)
    rec.joints_cam, rec.joints_img = cam30, cam30[:, :2] / cam30[:, 2:] * F + C
    rec.pose_aa, rec.shape, rec.trans = pose_c, shape, Rc @ trans_w + t
    rec.extra = {"root_offset_rotation": Rc, "fit_check": (cam_h36, np.arange(17)), "fit_threshold": 0.025}
    pipe = SamplePipeline(make_cfg(), train=True, body_models={"smpl": body})
    s = pipe(rec, np.random.default_rng(0))
    assert s["has_fit"] == 1
    torch.testing.assert_close(s["fit_joints_hm"], s["joints_hm"], atol=1e-3, rtol=0)
    # an SMPL-protocol model under another name (the trainer keys models by body.name) serves SMPL records
    s2 = SamplePipeline(make_cfg(), train=True, body_models={"toy": body})(rec, np.random.default_rng(0))
    torch.testing.assert_close(s2["fit_joints_hm"], s["fit_joints_hm"])
    rec.extra["fit_check"] = (cam_h36 + rng.normal(size=(17, 3)) * 0.05, np.arange(17))
    assert pipe(rec, np.random.default_rng(0))["has_fit"] == 0


def test_keypoint_validity_and_test_mode_warning(tmp_path, body, caplog):
    rec = body_record(tmp_path, body, np.random.default_rng(3))
    kps = np.concatenate([rec.joints_img, np.full((30, 1), 0.9)], 1)
    kps[J("L_Knee"), 2] = 0.05  # not above the threshold
    rec.input_keypoints = kps
    s = SamplePipeline(make_cfg(), train=False)(rec, np.random.default_rng(0))
    assert s["keypoints_valid"][J("L_Knee")] == 0 and s["keypoints_valid"].sum() == 29
    # training crops come from the GT box: a keypoint outside the crop is not valid
    kps[J("Nose"), :2] = (-500.0, -500.0)
    s = SamplePipeline(make_cfg(), train=True)(rec, np.random.default_rng(0))
    assert s["keypoints_valid"][J("Nose")] == 0 and s["keypoints_hm"][J("Nose")].abs().sum() == 0
    expect = s["joints_trunc"].clone()  # the GT joints inside the crop, minus the two bad keypoints
    expect[[J("L_Knee"), J("Nose")]] = 0
    assert torch.equal(s["keypoints_valid"], expect) and expect.sum() >= 24
    rec.input_keypoints = None
    pipe = SamplePipeline(make_cfg(), train=False)
    with caplog.at_level(logging.WARNING, logger="jotr.data.pipeline"):
        a = pipe(rec, np.random.default_rng(0))
        pipe(rec, np.random.default_rng(0))
    assert sum("GT 2D joints are used" in r.message for r in caplog.records) == 1
    torch.testing.assert_close(a["keypoints_hm"], a["joints_hm"][:, :2])


def test_keypoint_noise_and_colour_use_the_rng(tmp_path, body):
    rec = body_record(tmp_path, body, np.random.default_rng(4))
    pipe = SamplePipeline(make_cfg(keypoint_noise=True, color_factor=0.2), train=True)
    a, b, c = (pipe(rec, np.random.default_rng(k)) for k in (7, 7, 8))
    for key in ("keypoints_hm", "keypoints_valid", "image"):
        assert torch.equal(a[key], b[key])
    assert not torch.equal(a["keypoints_hm"], c["keypoints_hm"]) and not torch.equal(a["image"], c["image"])
    assert float((a["keypoints_hm"] - a["joints_hm"][:, :2]).abs().max()) > 0


def test_collate_rejects_mixed_body_models(tmp_path, body):
    rec = body_record(tmp_path, body, np.random.default_rng(5))
    pipe = SamplePipeline(make_cfg(), train=True, body_models={"smpl": body})
    s1 = pipe(rec, np.random.default_rng(0))
    batch = collate([s1, s1])
    assert batch.targets.fit_joints_hm.shape == (2, 30, 3) and batch.meta.crop_to_img.shape == (2, 2, 3)
    assert batch.meta.extra["box_xywh"].shape == (2, 4) and len(batch) == 2
    s2 = dict(s1, body_model="anny")
    with pytest.raises(InputError, match="mixes body models"):
        collate([s1, s2])


# ------------------------------------------------------------ seeding, mixing


def test_samples_do_not_depend_on_worker_count(tmp_path, body):
    rng = np.random.default_rng(6)
    recs = [body_record(tmp_path, body, rng, name=f"p{i}") for i in range(4)]
    cfg = make_cfg(keypoint_noise=True, rot_prob=0.6, flip_prob=0.5, scale_factor=0.25, color_factor=0.2)
    ds = RecordDataset(ListReader(recs), SamplePipeline(cfg, train=True), seed=11)
    runs = []
    for workers in (0, 2):
        loader = make_loader(ds, batch_size=2, train=True, num_workers=workers, seed=5)
        epochs = []
        for epoch in (2, 3):  # persistent workers must see the new epoch
            set_loader_epoch(loader, epoch)
            epochs.append(list(loader))
        runs.append(epochs)
    for e in range(2):
        assert len(runs[0][e]) == 2
        for b0, b2 in zip(runs[0][e], runs[1][e]):
            assert b0.meta.sample_id == b2.meta.sample_id
            assert torch.equal(b0.inputs.image, b2.inputs.image)
            assert torch.equal(b0.inputs.keypoints_hm, b2.inputs.keypoints_hm)
    assert [b.meta.sample_id for b in runs[0][0]] != [b.meta.sample_id for b in runs[0][1]]  # reshuffled
    torch.testing.assert_close(ds[(2, 1)]["image"], ds[(2, 1)]["image"])
    assert not torch.equal(ds[(3, 1)]["image"], ds[(2, 1)]["image"])  # a new epoch, new augmentation
    by_id = {sid: img for b in runs[1][1] for sid, img in zip(b.meta.sample_id, b.inputs.image)}
    torch.testing.assert_close(by_id["p1"], ds[(3, 1)]["image"])  # the loader's sample = the dataset's


def test_mixed_dataset_lengths_and_determinism(tmp_path, body):
    rng = np.random.default_rng(7)
    pipe = SamplePipeline(make_cfg(), train=True)
    d3 = RecordDataset(ListReader([body_record(tmp_path, body, rng, name=f"a{i}") for i in range(3)]), pipe)
    d2a = RecordDataset(ListReader([body_record(tmp_path, body, rng, name=f"b{i}") for i in range(4)]), pipe)
    d2b = RecordDataset(ListReader([body_record(tmp_path, body, rng, name=f"c{i}") for i in range(3)]), pipe)
    mix = MixedDataset([d3], [d2a, d2b], ratio_3d=0.5, seed=1)
    assert len(mix) == 14 and mix.n3 == 7  # official make_same_len: 2 x max(3, 7)
    located = [mix.locate(i) for i in range(len(mix))]
    first = [(d.reader.records[k].sample_id) for d, k in located]
    assert first[7:] == ["b0", "b1", "b2", "b3", "c0", "c1", "c2"]  # the larger group once, in order
    assert sorted(first[:3]) == ["a0", "a1", "a2"] and set(first[3:7]) <= {"a0", "a1", "a2"}
    assert [mix.locate(i)[1] for i in range(14)] == [k for _, k in located]  # deterministic
    mix.set_epoch(1)
    assert d3.epoch == 1
    quarter = MixedDataset([d3], [d2a, d2b], ratio_3d=0.25)
    assert len(quarter) == 12 and quarter.n3 == 3  # ceil(max(3 / .25, 7 / .75)), a quarter from the 3D group
    assert len(MixedDataset([d3], [], ratio_3d=0.5)) == 3
    with pytest.raises(InputError, match="ratio_3d"):
        MixedDataset([d3], [d2a], ratio_3d=1.5)
    s1 = mix[5]
    assert torch.equal(mix[5]["image"], s1["image"])


def test_distributed_samplers_partition_the_epoch(tmp_path, body):
    rng = np.random.default_rng(8)
    pipe = SamplePipeline(make_cfg(), train=True)
    d = RecordDataset(ListReader([body_record(tmp_path, body, rng, name=f"a{i}") for i in range(5)]), pipe)
    mix = MixedDataset([d], [], seed=0)
    parts = [list(DistributedMixSampler(mix, num_replicas=2, rank=r, seed=3)) for r in (0, 1)]
    assert len(parts[0]) == len(parts[1]) == 3 and set(parts[0]) | set(parts[1]) == set(range(5))
    ref = [list(DistributedSampler(mix, num_replicas=2, rank=r, shuffle=True, seed=3)) for r in (0, 1)]
    assert set(ref[0]) | set(ref[1]) == set(range(5))  # torch's sampler works on the map-style mix too
    s = DistributedMixSampler(mix, num_replicas=2, rank=0, seed=3)
    s.set_epoch(1)
    assert len(list(s)) == 3


def test_sample_rng_is_a_pure_function():
    a = sample_rng(1, 2, 3).random(4)
    np.testing.assert_array_equal(a, sample_rng(1, 2, 3).random(4))
    assert not np.array_equal(a, sample_rng(1, 2, 4).random(4))
    assert not np.array_equal(a, sample_rng(1, 3, 3).random(4))


def test_occluders_are_pasted_and_mark_joints_occluded(tmp_path, body, monkeypatch):
    """The pipeline calls ``paste_occluders`` on the crop with the GT joints in crop pixels, and passes the
    covered joints to the keypoint corruption as occluded (a stand-in module records the calls)."""
    import sys
    import types

    from jotr.data import posefix

    calls: dict = {}
    original = posefix.corrupt_keypoints

    def paste_occluders(image, joints, rng, *, num=(1, 3), occluder_dir=None):
        calls["joints"], calls["dir"] = np.array(joints), occluder_dir
        out = image.copy()
        out[:8] = 255  # a white band over the top of the crop
        covered = np.zeros(30, bool)
        covered[J("Head_top")] = True
        return out, covered

    def corrupt(joints, valid, rng, *, occluded=None, others=(), box_size=None):
        calls["occluded"] = np.array(occluded)
        return original(joints, valid, rng, occluded=occluded, others=others, box_size=box_size)

    monkeypatch.setitem(
        sys.modules, "jotr.data.occlusion", types.SimpleNamespace(paste_occluders=paste_occluders)
    )
    monkeypatch.setattr(posefix, "corrupt_keypoints", corrupt)
    rec = body_record(tmp_path, body, np.random.default_rng(9))
    s = SamplePipeline(make_cfg(occluder_prob=1.0, occluder_dir="occ", keypoint_noise=True), train=True)(
        rec, np.random.default_rng(0)
    )
    np.testing.assert_allclose(calls["joints"] * HM / S, s["joints_hm"][:, :2].numpy(), atol=1e-4)
    assert calls["dir"] == "occ" and calls["occluded"][J("Head_top")] and calls["occluded"].sum() == 1
    assert float(s["image"][:, :8].min()) == 1.0
    calls.clear()
    SamplePipeline(make_cfg(occluder_prob=0.0), train=True)(rec, np.random.default_rng(0))
    assert "joints" not in calls


def test_real_occluders_change_the_crop_only(tmp_path, body):
    rec = body_record(tmp_path, body, np.random.default_rng(10))
    plain = SamplePipeline(make_cfg(), train=True)(rec, np.random.default_rng(0))
    occl = SamplePipeline(make_cfg(occluder_prob=1.0), train=True)(rec, np.random.default_rng(0))
    changed = (occl["image"] - plain["image"]).abs().amax(0) > 1e-3  # (S, S)
    assert 0.01 < float(changed.float().mean()) < 0.9
    for key in ("joints_hm", "joints_trunc", "joints_cam", "crop_to_img"):
        assert torch.equal(occl[key], plain[key])


# ------------------------------------------------------------------------- input corruption (issue 22)


def test_limb_drop_and_neighbour_limb_change_the_input_only(tmp_path, body):
    from jotr.body.joint_sets import limb_indices

    rec = body_record(tmp_path, body, np.random.default_rng(11))
    rec.input_keypoints = np.concatenate([rec.joints_img, np.full((30, 1), 0.9)], 1)
    other = rec.joints_img + np.array([6.0, 3.0])  # a neighbour standing next to the person
    rec.extra["others_img"] = [np.concatenate([other, np.ones((30, 1))], 1)]
    # a box with a margin: with the tight keypoint box, the outermost joint lies on the crop's edge and is
    # inside or outside depending on the CPU's last-bit rounding
    margin = {"bbox_enlarge": [1.25, 1.25]}
    plain = SamplePipeline(make_cfg(**margin), train=True)(rec, np.random.default_rng(0))
    dropped = SamplePipeline(make_cfg(limb_drop_prob=1.0, **margin), train=True)(
        rec, np.random.default_rng(0)
    )
    limbs = sorted(j for limb in limb_indices("jotr30") for j in limb)
    assert dropped["keypoints_valid"][limbs].sum() == 0 and plain["keypoints_valid"][limbs].sum() == 16
    torso = [j for j in range(30) if j not in limbs]
    assert torch.equal(dropped["keypoints_valid"][torso], plain["keypoints_valid"][torso])
    swapped = SamplePipeline(make_cfg(neighbour_limb_prob=1.0, **margin), train=True)(
        rec, np.random.default_rng(0)
    )
    moved = (swapped["keypoints_hm"] - plain["keypoints_hm"]).abs().sum(-1) > 1e-4  # (30,)
    assert any(set(torch.nonzero(moved).flatten().tolist()) == set(limb) for limb in limb_indices("jotr30"))
    inside = moved & (swapped["keypoints_valid"] > 0)  # (a donor joint outside the crop is not an input)
    shift = (swapped["keypoints_hm"] - plain["keypoints_hm"])[inside].numpy()  # the neighbour's offset
    assert len(shift) >= 2
    np.testing.assert_allclose(shift, np.broadcast_to(shift[:1], shift.shape), atol=1e-4)
    np.testing.assert_allclose(shift[0, 0], 2 * shift[0, 1], rtol=1e-3)
    for s in (dropped, swapped):
        for key in ("image", "joints_hm", "joints_cam", "pose_aa", "shape", "joints_valid"):
            assert torch.equal(s[key], plain[key]), key


def test_occluders_at_joints_hide_their_keypoints(tmp_path, body):
    rec = body_record(tmp_path, body, np.random.default_rng(12))
    rec.input_keypoints = np.concatenate([rec.joints_img, np.full((30, 1), 0.9)], 1)
    cfg = make_cfg(occluder_prob=1.0, occluder_placement="joints")
    hidden = 0
    for seed in range(6):
        s = SamplePipeline(cfg, train=True)(rec, np.random.default_rng(seed))
        hidden += int(30 - s["keypoints_valid"].sum())
    assert hidden >= 6, "occluders centred on joints should hide some keypoints"
    with pytest.raises(ValueError, match="limb_drop_prob"):
        make_cfg(limb_drop_prob=1.5)
