"""Every dataset reader on a small fixture written in the official format, through the sample pipeline."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from jotr.body.joint_sets import JOTR30
from jotr.config import JOTRConfig, merge_config
from jotr.data.collate import collate
from jotr.data.config import DatasetSpec
from jotr.data.dataset import build_dataset
from jotr.data.datasets import DATASETS, build_reader
from jotr.data.pipeline import SamplePipeline
from jotr.data.records import PersonRecord
from jotr.errors import InputError

W, H = 240, 180
S, HM = 64, 16
J = JOTR30.index


def make_cfg(flip: bool = False, noise: bool = False) -> JOTRConfig:
    return merge_config(
        JOTRConfig(),
        {
            "model": {"input_size": S, "heatmap_size": HM},
            "data": {
                "augment": {
                    "scale_factor": 0.0,
                    "rot_prob": 0.0,
                    "color_factor": 0.0,
                    "flip_prob": 1.0 if flip else 0.0,
                    "bbox_enlarge": [1.0, 1.0],
                    "keypoint_noise": noise,
                    "occluder_prob": 0.0,
                }
            },
        },
    )


def write_image(path: Path, dots: dict[tuple[float, float], int]) -> None:
    """Black image with 9x9 squares of full intensity in one channel (RGB index) at the given pixels."""
    img = np.zeros((H, W, 3), np.uint8)
    for (x, y), ch in dots.items():
        xi, yi = int(round(x)), int(round(y))
        img[max(yi - 4, 0) : yi + 5, max(xi - 4, 0) : xi + 5, 2 - ch] = 255  # cv2 writes BGR
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)


def crop_colour(sample: dict, xy_hm) -> np.ndarray:
    """RGB of the crop (mean over a 3x3 window) at a heatmap-space point."""
    x, y = (float(v) * S / HM for v in xy_hm[:2])
    xi, yi = int(round(x)), int(round(y))
    win = sample["image"][:, max(yi - 1, 0) : yi + 2, max(xi - 1, 0) : xi + 2]
    return win.reshape(3, -1).mean(1).numpy()


def spec(name: str, root: Path, split: str = "", **options) -> DatasetSpec:
    return DatasetSpec(name=name, root=str(root), split=split, options=options)


def person_2d(cx: float, cy: float, s: float = 1.0) -> dict[str, tuple[float, float]]:
    """A frontal stick figure (image pixels) by joint name; the person's left is on the image right."""
    pts = {
        "Head_top": (0, -62),
        "Nose": (0, -50),
        "L_Eye": (4, -53),
        "R_Eye": (-4, -53),
        "L_Ear": (8, -50),
        "R_Ear": (-8, -50),
        "Neck": (0, -38),
        "L_Shoulder": (14, -36),
        "R_Shoulder": (-14, -36),
        "L_Elbow": (22, -14),
        "R_Elbow": (-22, -14),
        "L_Wrist": (30, 6),
        "R_Wrist": (-30, 6),
        "L_Hip": (10, 10),
        "R_Hip": (-10, 10),
        "L_Knee": (12, 36),
        "R_Knee": (-12, 36),
        "L_Ankle": (12, 60),
        "R_Ankle": (-12, 60),
        "Pelvis": (0, 10),
    }
    return {k: (cx + v[0] * s, cy + v[1] * s) for k, v in pts.items()}


COCO_NAMES = (
    "Nose",
    "L_Eye",
    "R_Eye",
    "L_Ear",
    "R_Ear",
    "L_Shoulder",
    "R_Shoulder",
    "L_Elbow",
    "R_Elbow",
    "L_Wrist",
    "R_Wrist",
    "L_Hip",
    "R_Hip",
    "L_Knee",
    "R_Knee",
    "L_Ankle",
    "R_Ankle",
)
OPENPOSE_NAMES = (
    "Nose",
    "Neck",
    "R_Shoulder",
    "R_Elbow",
    "R_Wrist",
    "L_Shoulder",
    "L_Elbow",
    "L_Wrist",
    "R_Hip",
    "R_Knee",
    "R_Ankle",
    "L_Hip",
    "L_Knee",
    "L_Ankle",
    "R_Eye",
    "L_Eye",
    "R_Ear",
    "L_Ear",
)
CROWDPOSE_NAMES = (
    "L_Shoulder",
    "R_Shoulder",
    "L_Elbow",
    "R_Elbow",
    "L_Wrist",
    "R_Wrist",
    "L_Hip",
    "R_Hip",
    "L_Knee",
    "R_Knee",
    "L_Ankle",
    "R_Ankle",
    "Head_top",
    "Neck",
)


def kps(names, person, conf=1.0) -> list[float]:
    return [float(v) for n in names for v in (*person[n], conf)]


def smpl_param(rng, trans=(0.0, 0.0, 3.0)) -> dict:
    pose = rng.normal(size=72) * 0.1
    pose[:3] = [np.pi, 0.0, 0.0]
    return {"pose": pose.tolist(), "shape": (rng.normal(size=10) * 0.5).tolist(), "trans": list(trans)}


def wrist_dots(person) -> dict:
    return {person["L_Wrist"]: 0, person["R_Wrist"]: 1}  # left wrist red, right wrist green


def assert_dots(sample: dict, key: str = "keypoints_hm", flipped: bool = False) -> None:
    """The left-wrist keypoint lies on the red dot (green after a flip: it is the former right wrist)."""
    lw, rw = sample[key][J("L_Wrist")], sample[key][J("R_Wrist")]
    red, green = (1, 0) if flipped else (0, 1)
    c_l, c_r = crop_colour(sample, lw), crop_colour(sample, rw)
    assert c_l[red] > 0.6 and c_l[green] < 0.2, c_l
    assert c_r[green] > 0.6 and c_r[red] < 0.2, c_r


# ------------------------------------------------------------------------------------------------ fixtures


def write_pw3d(root: Path, crowd: bool = False) -> None:
    rng = np.random.default_rng(0)
    seqs = ["courtyard_hug_00", "downtown_walk_00"] if crowd else ["outdoors_fencing_01"]
    images, anns, hh = [], [], {}
    aid = 0
    for i, seq in enumerate(seqs):
        p1, p2 = person_2d(80, 90), person_2d(170, 95, 0.9)
        write_image(root / "imageFiles" / seq / f"image_{i:05d}.jpg", wrist_dots(p1))
        images.append(
            {
                "id": i,
                "sequence": seq,
                "file_name": f"image_{i:05d}.jpg",
                "width": W,
                "height": H,
                "cam_param": {"focal": [300.0, 300.0], "princpt": [W / 2, H / 2]},
            }
        )
        for p in (p1, p2):
            param = smpl_param(rng)
            param["gender"] = "female" if aid % 2 else "male"
            anns.append(
                {
                    "id": aid,
                    "image_id": i,
                    "bbox": [p["R_Wrist"][0], p["Head_top"][1], 60, 130],
                    "smpl_param": param,
                    "openpose_result": np.array(kps(OPENPOSE_NAMES, p)).reshape(18, 3).tolist(),
                }
            )
            aid += 1
    anns.append(
        {
            "id": 99,
            "image_id": 0,
            "bbox": [0, 0, 5, 5],
            "smpl_param": smpl_param(rng),
            "openpose_result": [[1.0, 2.0]],
        }
    )  # malformed keypoints
    name = "3DPW_latest_validation.json" if crowd else "3DPW_latest_test.json"
    (root / name).write_text(json.dumps({"images": images, "annotations": anns}))
    if crowd:
        # HigherHRNet for the first person only, shifted by 2 px so the source is visible; others fall back.
        p1 = person_2d(82, 90)
        hh["0"] = {"coco_joints": np.array(kps(COCO_NAMES, p1, 0.9)).reshape(17, 3).tolist()}
        (root / "3DPW_validation_crowd_hhrnet_result.json").write_text(json.dumps(hh))


def test_registry_lists_all_readers():
    for name in ("pw3d", "h36m", "muco", "coco", "crowdpose", "oh3d", "cmu_panoptic", "synthetic"):
        assert name in DATASETS
    with pytest.raises(InputError, match="unknown dataset"):
        build_reader(DatasetSpec(name="nope"))


def test_pw3d_test_split(tmp_path):
    write_pw3d(tmp_path)
    reader = build_reader(spec("pw3d", tmp_path, "test"))
    assert len(reader) == 2 and reader.skipped == {"bad openpose_result": 1}
    rec = reader.records[0]
    assert rec.gender == "male" and reader.records[1].gender == "female"
    assert rec.has_fit and rec.pose_aa.shape == (24, 3) and rec.focal == (300.0, 300.0)
    # OpenPose -> JOTR30, pelvis = hip mean with the product of the confidences
    np.testing.assert_allclose(rec.input_keypoints[J("Pelvis"), :2], (80, 100))
    assert rec.input_keypoints[J("Spine1"), 2] == 0
    ds = build_dataset(spec("pw3d", tmp_path, "test"), make_cfg(), train=False)
    sample = ds[0]
    assert_dots(sample)
    assert sample["has_fit"] == 1 and sample["is_3d"] == 0 and sample["gender"] == "male"
    # official test box: keypoints' box x1.2, square, x1.1 -> the 124 px tall figure spans 64 / 1.32 px
    kp = sample["keypoints_hm"][sample["keypoints_valid"] > 0] * S / HM
    assert abs(float(kp[:, 1].max() - kp[:, 1].min()) - S / 1.32) < 0.5


def test_pw3d_crowd_uses_hhrnet_per_dataset(tmp_path):
    write_pw3d(tmp_path, crowd=True)
    crowd = build_reader(spec("pw3d", tmp_path, "crowd"))
    assert {r.extra["sequence"] for r in crowd.records} == {"courtyard_hug_00"}
    assert crowd.keypoint_source == "hhrnet" and crowd.openpose_fallbacks == 1
    # the HigherHRNet person: shifted keypoints, pelvis and neck added from COCO joints
    np.testing.assert_allclose(crowd.records[0].input_keypoints[J("Neck"), :2], (82, 54))
    np.testing.assert_allclose(crowd.records[0].input_keypoints[J("Neck"), 2], 0.81)
    # the same file read as another dataset with OpenPose: the setting does not leak between readers (B5)
    val = build_reader(spec("pw3d", tmp_path, "validation"))
    assert val.keypoint_source == "openpose" and len(val) == 4
    np.testing.assert_allclose(val.records[0].input_keypoints[J("Neck"), :2], (80, 52))
    again = build_reader(spec("pw3d", tmp_path, "crowd"))
    np.testing.assert_allclose(again.records[0].input_keypoints[J("Neck"), :2], (82, 54))
    with pytest.raises(InputError, match="keypoint_source"):
        build_reader(spec("pw3d", tmp_path, "crowd", keypoint_source="gt"))
    with pytest.raises(InputError, match="unknown option"):
        build_reader(spec("pw3d", tmp_path, "crowd", keypoints_source="openpose"))


def test_missing_files_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="3DPW_latest_test.json"):
        build_reader(spec("pw3d", tmp_path, "test"))
    with pytest.raises(InputError, match="root folder not found"):
        build_reader(spec("pw3d", tmp_path / "nope", "test"))
    write_pw3d(tmp_path)
    (tmp_path / "imageFiles" / "outdoors_fencing_01" / "image_00000.jpg").unlink()
    ds = build_dataset(spec("pw3d", tmp_path, "test"), make_cfg(), train=False)
    with pytest.raises(InputError, match="image_00000.jpg"):
        ds[0]
    bad = tmp_path / "imageFiles" / "outdoors_fencing_01" / "image_00000.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(InputError, match="could not be decoded"):
        ds[0]


# ------------------------------------------------------------------------------------------------ H36M


def write_h36m(root: Path, subject: int = 1) -> np.ndarray:
    ann_dir = root / "annotations"
    ann_dir.mkdir(parents=True, exist_ok=True)
    names17 = (
        "Pelvis",
        "R_Hip",
        "R_Knee",
        "R_Ankle",
        "L_Hip",
        "L_Knee",
        "L_Ankle",
        "Torso",
        "Neck",
        "Nose",
        "Head_top",
        "L_Shoulder",
        "L_Elbow",
        "L_Wrist",
        "R_Shoulder",
        "R_Elbow",
        "R_Wrist",
    )
    # a person 5 m in front of camera 1 (R = identity, t = 0), 1 px = 5000 / f mm at that depth
    f, c = np.array([250.0, 250.0]), np.array([W / 2, H / 2])
    p2 = person_2d(110, 90)
    p2["Torso"] = (110, 70)
    depth = {n: 5000.0 + 30.0 * k for k, n in enumerate(names17)}
    world = np.array(
        [
            [(p2[n][0] - c[0]) / f[0] * depth[n], (p2[n][1] - c[1]) / f[1] * depth[n], depth[n]]
            for n in names17
        ]
    )
    images, anns, joints = [], [], {"2": {"1": {}}}
    for frame in range(3):  # frames 0, 1, 2; frame_step 2 keeps 0 and 2
        images.append(
            {
                "id": frame,
                "file_name": f"s_01/img_{frame}.jpg",
                "width": W,
                "height": H,
                "subject": subject,
                "action_idx": 2,
                "subaction_idx": 1,
                "frame_idx": frame,
                "cam_idx": 1,
            }
        )
        anns.append(
            {"id": frame, "image_id": frame, "bbox": [70, 20, 80, 140] if frame != 2 else [0, 0, 0, 0]}
        )
        joints["2"]["1"][str(frame)] = world.tolist()
        write_image(root / "images" / f"s_01/img_{frame}.jpg", wrist_dots(p2))
    base = ann_dir / f"Human36M_subject{subject}"
    Path(f"{base}_data.json").write_text(json.dumps({"images": images, "annotations": anns}))
    Path(f"{base}_camera.json").write_text(
        json.dumps({"1": {"R": np.eye(3).tolist(), "t": [0.0, 0.0, 0.0], "f": f.tolist(), "c": c.tolist()}})
    )
    Path(f"{base}_joint_3d.json").write_text(json.dumps(joints))
    fit = {"2": {"1": {"0": {"pose": [0.0] * 72, "shape": [5.0] + [0.0] * 9, "trans": [0.0, 0.0, 5.0]}}}}
    Path(f"{base}_smpl_param.json").write_text(json.dumps(fit))
    return world


def test_h36m_reader_and_3d_targets(tmp_path):
    world = write_h36m(tmp_path)
    reader = build_reader(spec("h36m", tmp_path, "train", subjects=[1], frame_step=2))
    assert len(reader) == 1 and reader.skipped == {"bad bbox": 1}  # frame 1 filtered by the step
    rec = reader.records[0]
    assert rec.is_3d and rec.has_fit and np.all(rec.shape == 0)  # |beta| > 3 -> mean shape
    cfg = make_cfg()
    sample = SamplePipeline(cfg, train=True)(rec, np.random.default_rng(0))
    assert_dots(sample, "joints_hm")
    assert_dots(sample, "keypoints_hm")  # no detector keypoints and no noise: the GT joints are the input
    rel = (world - world[0]) / 1000.0  # root-relative metres
    jc = sample["joints_cam"].numpy()
    np.testing.assert_allclose(jc[J("L_Wrist")], rel[13], atol=1e-5)
    np.testing.assert_allclose(jc[J("Head_top")], rel[10], atol=1e-5)
    np.testing.assert_allclose(jc[J("Spine1")], rel[7], atol=1e-5)  # H36M torso
    assert sample["joints_valid"][J("L_Eye")] == 0 and sample["joints_valid"][J("Nose")] == 1
    # z target: root-relative depth over the 2 m cube -> heatmap cells
    z_hm = (rel[13, 2] / 1.0 + 1.0) / 2.0 * HM
    assert abs(float(sample["joints_hm"][J("L_Wrist"), 2]) - z_hm) < 1e-4
    assert sample["is_3d"] == 1 and sample["joints_trunc"][J("L_Wrist")] == 1


def test_h36m_flip_moves_joints_and_3d(tmp_path):
    world = write_h36m(tmp_path)
    rec = build_reader(spec("h36m", tmp_path, "train", subjects=[1], frame_step=2)).records[0]
    plain = SamplePipeline(make_cfg(), train=True)(rec, np.random.default_rng(0))
    flipped = SamplePipeline(make_cfg(flip=True), train=True)(rec, np.random.default_rng(0))
    assert_dots(flipped, "joints_hm", flipped=True)
    rel = (world - world[0]) / 1000.0
    np.testing.assert_allclose(flipped["joints_cam"][J("L_Wrist")], rel[16] * [-1, 1, 1], atol=1e-5)
    # mirrored x about the crop centre, same y and z
    a, b = plain["joints_hm"][J("R_Wrist")], flipped["joints_hm"][J("L_Wrist")]
    assert (
        abs(float(a[0] + b[0]) - HM) < 1e-3
        and abs(float(a[1] - b[1])) < 1e-4
        and abs(float(a[2] - b[2])) < 1e-4
    )


def test_h36m_missing_fit_file_named(tmp_path):
    write_h36m(tmp_path)
    (tmp_path / "annotations" / "Human36M_subject1_smpl_param.json").unlink()
    with pytest.raises(InputError, match="Human36M_subject1_smpl_param.json"):
        build_reader(spec("h36m", tmp_path, "train", subjects=[1]))
    assert len(build_reader(spec("h36m", tmp_path, "train", subjects=[1], use_fits=False, frame_step=1))) == 2


# ------------------------------------------------------------------------------------------------ MuCo


def write_muco(root: Path) -> None:
    names = (
        "Head_top",
        "Thorax",
        "R_Shoulder",
        "R_Elbow",
        "R_Wrist",
        "L_Shoulder",
        "L_Elbow",
        "L_Wrist",
        "R_Hip",
        "R_Knee",
        "R_Ankle",
        "L_Hip",
        "L_Knee",
        "L_Ankle",
        "Pelvis",
        "Spine",
        "Head",
        "R_Hand",
        "L_Hand",
        "R_Toe",
        "L_Toe",
    )
    f, c = 200.0, np.array([W / 2, H / 2])
    anns = []
    for aid, (cx, depth) in enumerate(((100, 4000.0), (130, 3000.0), (200, 6000.0))):
        p = person_2d(cx, 90)
        p.update(
            {
                "Thorax": p["Neck"],
                "Spine": (cx, 70),
                "Head": (cx, 80),
                "R_Hand": p["R_Wrist"],
                "L_Hand": p["L_Wrist"],
                "R_Toe": p["R_Ankle"],
                "L_Toe": p["L_Ankle"],
            }
        )
        img = np.array([p[n] for n in names])
        cam = np.concatenate([(img - c) / f * depth, np.full((21, 1), depth)], 1)
        anns.append(
            {
                "id": aid,
                "image_id": 7,
                "keypoints_img": img.tolist(),
                "keypoints_cam": cam.tolist(),
                "bbox": [cx - 35, 20, 70, 140],
            }
        )
        if aid == 1:
            write_image(root / "augmented_set" / "a.jpg", wrist_dots(p))
    anns.append(
        {"id": 9, "image_id": 7, "keypoints_img": [[0, 0]], "keypoints_cam": [], "bbox": [0, 0, 9, 9]}
    )
    (root / "MuCo-3DHP.json").write_text(
        json.dumps(
            {
                "images": [
                    {
                        "id": 7,
                        "file_name": "augmented_set/a.jpg",
                        "width": W,
                        "height": H,
                        "f": [f, f],
                        "c": c.tolist(),
                    }
                ],
                "annotations": anns,
            }
        )
    )
    (root / "smpl_param.json").write_text(
        json.dumps({"1": {"pose": [0.0] * 72, "shape": [0.0] * 10, "trans": [0.0, 0.0, 3.0]}})
    )


def test_muco_closest_person_and_near_persons(tmp_path):
    write_muco(tmp_path)
    reader = build_reader(spec("muco", tmp_path, "train"))
    assert len(reader) == 1 and reader.skipped == {"bad keypoints": 1}
    rec = reader.records[0]
    assert rec.sample_id == "7_1" and rec.has_fit and rec.is_3d
    assert len(rec.extra["others_img"]) == 1  # the overlapping person at x=100; the one at x=200 is apart
    sample = SamplePipeline(make_cfg(), train=True)(rec, np.random.default_rng(0))
    assert_dots(sample, "joints_hm")
    assert sample["joints_valid"][J("Spine3")] == 0 and sample["joints_valid"][J("L_Foot")] == 1
    assert float(sample["joints_cam"][J("Pelvis")].abs().max()) == 0.0
    noisy = SamplePipeline(make_cfg(noise=True), train=True)(rec, np.random.default_rng(1))
    assert noisy["keypoints_valid"].sum() > 5


# ------------------------------------------------------------ COCO / CrowdPose


def write_coco(root: Path) -> None:
    p1, p2 = person_2d(90, 90), person_2d(115, 95)
    write_image(root / "images" / "train2017" / "000000000001.jpg", wrist_dots(p1))
    k1 = kps(COCO_NAMES, p1, 2)
    k1[3 * COCO_NAMES.index("L_Ear") + 2] = 0  # an unlabelled joint
    anns = [
        {
            "id": 11,
            "image_id": 1,
            "bbox": [55, 25, 70, 130],
            "keypoints": k1,
            "num_keypoints": 16,
            "iscrowd": 0,
        },
        {
            "id": 12,
            "image_id": 1,
            "bbox": [80, 30, 70, 130],
            "keypoints": kps(COCO_NAMES, p2, 2),
            "num_keypoints": 17,
            "iscrowd": 0,
        },
        {
            "id": 13,
            "image_id": 1,
            "bbox": [0, 0, 50, 50],
            "keypoints": [0] * 51,
            "num_keypoints": 0,
            "iscrowd": 0,
        },
        {
            "id": 14,
            "image_id": 1,
            "bbox": [0, 0, 50, 50],
            "keypoints": [0] * 51,
            "num_keypoints": 0,
            "iscrowd": 1,
        },
        {"id": 15, "image_id": 5, "bbox": [0, 0, 50, 50], "keypoints": [0] * 51, "iscrowd": 0},
    ]
    ann_dir = root / "annotations"
    ann_dir.mkdir(parents=True, exist_ok=True)
    (ann_dir / "person_keypoints_train2017.json").write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "000000000001.jpg", "width": W, "height": H}],
                "annotations": anns,
            }
        )
    )
    fit = {
        "smpl_param": {"pose": [0.0] * 72, "shape": [0.0] * 10, "trans": [0.0, 0.0, 3.0]},
        "cam_param": {"focal": [500.0, 500.0], "princpt": [W / 2, H / 2]},
    }
    (ann_dir / "MSCOCO_train_SMPL_NeuralAnnot.json").write_text(
        json.dumps({"11": fit, "12": {"smpl_param": 3}})
    )


def test_coco_reader(tmp_path):
    write_coco(tmp_path)
    reader = build_reader(spec("coco", tmp_path, "train"))
    assert [r.sample_id for r in reader.records] == ["1_11", "1_12"]
    assert reader.skipped == {
        "annotation without image": 1,
        "iscrowd": 1,
        "no keypoints": 1,
        "bad smpl fit (sample kept without fit)": 1,
    }
    r1 = reader.records[0]
    assert r1.has_fit and not reader.records[1].has_fit and r1.focal == (500.0, 500.0)
    assert r1.joints_img_valid[J("L_Ear")] == 0 and r1.joints_img_valid[J("Neck")] == 1
    np.testing.assert_allclose(r1.joints_img[J("Pelvis")], (90, 100))
    assert len(r1.extra["others_img"]) == 1
    cfg = make_cfg()
    sample = SamplePipeline(cfg, train=True)(r1, np.random.default_rng(0))
    assert_dots(sample, "joints_hm")
    assert sample["is_3d"] == 0 and float(sample["joints_cam"].abs().sum()) == 0
    assert sample["joints_hm"][J("L_Ear")].abs().sum() == 0 and sample["joints_trunc"][J("L_Ear")] == 0
    # training box: tight box 70x130 -> square 130 px -> the crop's scale is 64/130
    a, b = sample["joints_hm"][J("Nose")], sample["joints_hm"][J("L_Ankle")]
    assert abs(float(b[1] - a[1]) * S / HM - 110 * S / 130) < 1e-3


def write_crowdpose(root: Path) -> None:
    p = person_2d(120, 90)
    write_image(root / "images" / "100000.jpg", wrist_dots(p))
    ann_dir = root / "annotations"
    ann_dir.mkdir(parents=True, exist_ok=True)
    anns = [
        {
            "id": i,
            "image_id": 100000,
            "bbox": [85, 25, 70, 130],
            "keypoints": kps(CROWDPOSE_NAMES, p, 1),
            "iscrowd": 0,
        }
        for i in (1, 2)
    ]
    anns.append({"id": 3, "image_id": 100000, "bbox": [85, 25, 70, 130], "keypoints": [0] * 42, "iscrowd": 0})
    # the train split swaps width and height on purpose (it is not used)
    (ann_dir / "crowdpose_train.json").write_text(
        json.dumps(
            {
                "images": [{"id": 100000, "file_name": "100000.jpg", "width": H, "height": W}],
                "annotations": anns,
            }
        )
    )
    fit = {
        "smpl_param": {"pose": [0.0] * 72, "shape": [0.0] * 10, "trans": [0.0, 0.0, 3.0]},
        "cam_param": {"focal": [500.0, 500.0], "princpt": [W / 2, H / 2]},
    }
    (ann_dir / "CrowdPose_train_SMPL_NeuralAnnot.json").write_text(
        json.dumps({"1": dict(fit, fit_err=2.0), "2": dict(fit, fit_err=9.0)})
    )


def test_crowdpose_fit_filter_and_correct_flip(tmp_path):
    write_crowdpose(tmp_path)
    reader = build_reader(spec("crowdpose", tmp_path, "train"))
    assert len(reader) == 2 and reader.skipped == {
        "no keypoints": 1,
        "fit error above max_fit_err (sample kept without fit)": 1,
    }
    assert reader.records[0].has_fit and not reader.records[1].has_fit  # fit_err 2 kept, 9 rejected (B6)
    rec = reader.records[0]
    assert rec.joints_img_valid[J("Head_top")] == 1 and rec.joints_img_valid[J("Nose")] == 0
    plain = SamplePipeline(make_cfg(), train=True)(rec, np.random.default_rng(0))
    flipped = SamplePipeline(make_cfg(flip=True), train=True)(rec, np.random.default_rng(0))
    assert_dots(flipped, "joints_hm", flipped=True)
    for name in ("Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle"):  # official pairs scramble these (B6)
        a, b = plain["joints_hm"][J("L_" + name)], flipped["joints_hm"][J("R_" + name)]
        assert abs(float(a[0] + b[0]) - HM) < 1e-3 and abs(float(a[1] - b[1])) < 1e-4
    for name in ("Head_top", "Neck", "Pelvis"):
        a, b = plain["joints_hm"][J(name)], flipped["joints_hm"][J(name)]
        assert abs(float(a[0] + b[0]) - HM) < 1e-3
    # flipping twice is the identity: the flipped crop, saved as an image and flipped again, gives back the
    # unflipped crop's joints (a crop of the whole S x S image is the identity map up to the mirror)
    crop = (flipped["image"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    cv2.imwrite(str(tmp_path / "flipped.png"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    rec2 = PersonRecord(
        dataset="crowdpose",
        sample_id="x",
        image_path=str(tmp_path / "flipped.png"),
        image_size=(S, S),
        bbox_xywh=np.array([0.0, 0.0, S, S]),
        joints_img=flipped["joints_hm"][:, :2].double().numpy() * S / HM,
        joints_img_valid=flipped["joints_trunc"].double().numpy(),
    )
    twice = SamplePipeline(make_cfg(flip=True), train=True)(rec2, np.random.default_rng(0))
    valid = plain["joints_trunc"] > 0
    assert torch.equal(twice["joints_trunc"], plain["joints_trunc"])
    torch.testing.assert_close(
        twice["joints_hm"][valid, :2], plain["joints_hm"][valid, :2], atol=1e-4, rtol=0
    )
    assert_dots(twice, "joints_hm")


# ------------------------------------------------------------------------------------------------ 3DOH


def test_oh3d_xyxy_box_and_hrnet_keypoints(tmp_path):
    p = person_2d(120, 90)
    write_image(tmp_path / "images" / "0013" / "00001.jpg", wrist_dots(p))
    entry = {
        "pose": [0.0] * 72,
        "shape": [0.0] * 10,
        "trans": [0.0, 0.0, 3.0],
        "scale": 1.0,
        "hrnet_results": np.array(kps(COCO_NAMES, p, 0.8)).reshape(17, 3).tolist(),
        "bbox": [85.0, 25.0, 155.0, 155.0],
    }
    data = {"0013/00001.jpg": entry, "0013/00002.jpg": {**entry, "hrnet_results": [[0, 0, 0]] * 17}}
    (tmp_path / "3doh_test_annots_scale_1.json").write_text(json.dumps(data))
    reader = build_reader(spec("oh3d", tmp_path, "test"))
    assert len(reader) == 1 and reader.skipped == {"fewer than 2 confident keypoints": 1}
    rec = reader.records[0]
    np.testing.assert_allclose(rec.bbox_xywh, (85, 25, 70, 130))  # xyxy -> xywh (B10)
    np.testing.assert_allclose(rec.input_keypoints[J("Pelvis")], (120, 100, 0.64), rtol=1e-6)
    sample = SamplePipeline(make_cfg(), train=False)(rec, np.random.default_rng(0))
    assert_dots(sample)
    assert sample["has_fit"] == 1 and sample["gender"] == "neutral"


# ------------------------------------------------------------ CMU-Panoptic


def write_cmu(root: Path, with_detections: bool = True) -> None:
    j24 = (
        "R_Ankle",
        "R_Knee",
        "R_Hip",
        "L_Hip",
        "L_Knee",
        "L_Ankle",
        "R_Wrist",
        "R_Elbow",
        "R_Shoulder",
        "L_Shoulder",
        "L_Elbow",
        "L_Wrist",
        "Neck",
        "Head_top",
        "Pelvis",
        "Thorax",
        "Spine",
        "Jaw",
        "Head",
    )
    scale = 1920.0 / 832.0
    p = person_2d(120, 90)
    p.update({"Thorax": (120, 54), "Spine": (120, 70), "Jaw": (120, 44), "Head": (120, 48)})
    k2 = np.array([[p[n][0] / scale, p[n][1] / scale, 1.0] for n in j24] + [[0, 0, 0]] * 5)
    f, c = 400.0, np.array([W / 2, H / 2])
    k3 = np.array(
        [[(p[n][0] - c[0]) / f * 3.0, (p[n][1] - c[1]) / f * 3.0, 3.0, 1.0] for n in j24] + [[0, 0, 0, 0]] * 5
    )
    far = k2.copy()
    far[:, :2] = -50.0  # outside the image: not visible
    frames = [
        {
            "filename": "hd/160422_haggling1/hdImgs/00_16/00_16_00002000.png",
            "width": W,
            "height": H,
            "kpts2d": np.stack([k2, far]),
            "kpts3d": np.stack([k3, k3]),
        },
        {
            "filename": "hd/171204_pose1/hdImgs/00_16/00_16_00000001.png",
            "width": W,
            "height": H,
            "kpts2d": np.stack([k2]),
            "kpts3d": np.stack([k3]),
        },
    ]
    (root / "panoptic_annot").mkdir(parents=True)
    with open(root / "panoptic_annot" / "haggling.pkl", "wb") as fh:
        pickle.dump(frames, fh)
    write_image(root / "images" / "160422_haggling1-00_16_00002000.jpg", wrist_dots(p))
    if with_detections:
        det = {
            "160422_haggling1-00_16_00002000.jpg": [
                np.array(kps(COCO_NAMES, person_2d(20, 60), 0.9)).reshape(17, 3).tolist(),
                np.array(kps(COCO_NAMES, p, 0.9)).reshape(17, 3).tolist(),
            ]
        }
        (root / "hhrnet.json").write_text(json.dumps(det))


def test_cmu_panoptic_reader(tmp_path):
    write_cmu(tmp_path)
    reader = build_reader(spec("cmu_panoptic", tmp_path, "test", keypoint_file=str(tmp_path / "hhrnet.json")))
    assert len(reader) == 1 and reader.skipped == {"person not visible": 1}
    rec = reader.records[0]
    np.testing.assert_allclose(rec.input_keypoints[J("L_Wrist"), :2], person_2d(120, 90)["L_Wrist"])
    assert rec.joints_img_valid[J("Head_top")] == 0 and rec.joints_cam_valid[J("Head_top")] == 1
    sample = SamplePipeline(make_cfg(), train=False)(rec, np.random.default_rng(0))
    assert_dots(sample)
    assert_dots(sample, "joints_hm")
    jc = sample["joints_cam"].numpy()
    np.testing.assert_allclose(
        jc[J("L_Wrist"), :2], (np.array([150.0, 96.0]) - (120.0, 100.0)) / 400.0 * 3.0, atol=1e-6
    )
    assert sample["is_3d"] == 1


def test_cmu_panoptic_refuses_unsafe_pickles(tmp_path):
    (tmp_path / "panoptic_annot").mkdir()

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(tmp_path / "panoptic_annot" / "x.pkl", "wb") as fh:
        pickle.dump([Evil()], fh)
    with pytest.raises(InputError, match="could not be read"):
        build_reader(spec("cmu_panoptic", tmp_path, "test"))


def test_batch_from_reader_samples(tmp_path):
    write_coco(tmp_path)
    ds = build_dataset(spec("coco", tmp_path, "train"), make_cfg(noise=True), train=True, seed=3)
    batch = collate([ds[0], ds[1]])
    assert batch.inputs.image.shape == (2, 3, S, S)
    assert batch.targets.pose_aa.shape == (2, 24, 3) and batch.targets.shape.shape == (2, 10)
    assert batch.targets.has_fit.tolist() == [1.0, 0.0]
    assert batch.meta.sample_id == ["1_11", "1_12"] and batch.meta.extra["body_model"] == "smpl"
    torch.testing.assert_close(ds[0]["keypoints_hm"], ds[0]["keypoints_hm"])
