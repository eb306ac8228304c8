"""The built-in detector without mediapipe: landmark filtering (pure numpy) and :class:`MediaPipeDetector`
driven by a fake ``mediapipe`` module (dropping before the box, the one-person warning, the install hint)."""

from __future__ import annotations

import logging
import sys
import types

import numpy as np
import pytest

from jotr.body.joint_sets import JOTR30
from jotr.errors import InputError
from jotr.geometry.boxes import box_from_keypoints
from jotr.inference.detector import (
    INSTALL_HINT,
    MEDIAPIPE_NAMES,
    MIN_VISIBILITY,
    MULTI_PERSON_HINT,
    MediaPipeDetector,
    filter_landmarks,
    mediapipe_to_jotr30,
)
from jotr.inference.keypoints import CONFIDENCE_THRESHOLD

W, H = 512, 512
IDX = {n: i for i, n in enumerate(MEDIAPIPE_NAMES)}


def _portrait_landmarks() -> np.ndarray:
    """(33, 4) an upper-body portrait as MediaPipe reports it: head and shoulders seen, arms faint, hips and
    legs guessed below the image with visibilities 0.06-0.5 (the values that inflated the box in issue 15)."""
    lm = np.zeros((33, 4))
    lm[:, 3] = 0.0  # presence: left at 0 by the Pose solution graph
    for name in MEDIAPIPE_NAMES:
        lm[IDX[name]] = [256, 150, 0.99, 0.0]  # face landmarks around the nose
    lm[IDX["left_shoulder"]] = [400, 330, 0.99, 0]
    lm[IDX["right_shoulder"]] = [110, 330, 0.99, 0]
    lm[IDX["left_elbow"]] = [450, 500, 0.62, 0]  # inside, visible enough
    lm[IDX["right_elbow"]] = [60, 505, 0.34, 0]  # inside, not visible enough
    lm[IDX["left_wrist"]] = [430, 640, 0.3, 0]  # below the image
    lm[IDX["right_wrist"]] = [80, 650, 0.06, 0]
    lm[IDX["left_hip"]] = [330, 700, 0.5, 0]  # outside, visibility at the threshold: still dropped
    lm[IDX["right_hip"]] = [180, 700, 0.45, 0]
    for side, x in (("left", 330), ("right", 180)):
        lm[IDX[f"{side}_knee"]] = [x, 900, 0.1, 0]
        for part in ("ankle", "heel", "foot_index"):
            lm[IDX[f"{side}_{part}"]] = [x, 1100, 0.06, 0]
    for side, x in (("left", 440), ("right", 70)):
        for part in ("pinky", "index", "thumb"):
            lm[IDX[f"{side}_{part}"]] = [x, 660, 0.2, 0]
    return lm


def test_filter_drops_outside_and_invisible_landmarks():
    lm = _portrait_landmarks()[:, :3]  # the Pose solution fills no presence (the detector leaves it out)
    out = filter_landmarks(lm, W, H)
    assert out.shape == (33, 3)
    assert (filter_landmarks(_portrait_landmarks(), W, H)[:, 2] == 0).all()  # presence 0 given: all dropped
    kept = {n for n, c in zip(MEDIAPIPE_NAMES, out[:, 2]) if c > 0}
    assert {"nose", "left_shoulder", "right_shoulder", "left_elbow"} <= kept
    for gone in (
        "right_elbow",
        "left_wrist",
        "right_wrist",
        "left_hip",
        "right_hip",
        "left_knee",
        "left_ankle",
    ):
        assert gone not in kept and out[IDX[gone], 2] == 0.0
    np.testing.assert_array_equal(out[:, :2], lm[:, :2])  # coordinates untouched
    assert out[IDX["left_elbow"], 2] == pytest.approx(0.62)  # kept ones keep their visibility


def test_filter_image_bounds_thresholds_and_presence():
    lm = np.tile([[10.0, 10.0, 0.9, 0.9]], (33, 1))
    lm[0, :2] = [-0.5, 10]  # left of the image
    lm[1, :2] = [W, 10]  # x == W is outside
    lm[2, :2] = [10, H + 3]
    lm[3, :2] = [W - 0.01, H - 0.01]  # inside
    lm[4, 2] = MIN_VISIBILITY - 1e-3
    lm[5, 3] = 0.2  # low presence
    lm[6, 0] = np.nan
    out = filter_landmarks(lm, W, H)
    assert out[[0, 1, 2, 4, 5, 6], 2].tolist() == [0.0] * 6
    assert out[3, 2] == pytest.approx(0.9) and np.isfinite(out).all()
    assert filter_landmarks(lm[:, :3], W, H)[5, 2] == pytest.approx(0.9)  # no presence column: not checked
    assert filter_landmarks(lm, W, H, min_visibility=0.0, min_presence=0.0)[4, 2] > 0
    with pytest.raises(InputError, match="33, 3 or 4"):
        filter_landmarks(np.zeros((17, 3)), W, H)


def test_box_from_filtered_landmarks_stays_in_the_image():
    """Issue 15: unfiltered, out-of-frame guesses (visibility > 0.05) stretch the box far below the image."""
    lm = _portrait_landmarks()[:, :3]
    raw = mediapipe_to_jotr30(lm)
    box_raw = box_from_keypoints(raw[:, :2], raw[:, 2], CONFIDENCE_THRESHOLD)
    assert box_raw[1] + box_raw[3] > 1.5 * H  # what the old code did
    kps = mediapipe_to_jotr30(filter_landmarks(lm, W, H))
    box = box_from_keypoints(kps[:, :2], kps[:, 2], CONFIDENCE_THRESHOLD)
    valid = kps[:, 2] > CONFIDENCE_THRESHOLD
    assert (kps[valid, 0] < W).all() and (kps[valid, 1] < H).all()
    assert box[1] + box[3] < 1.1 * H and box[3] < 0.6 * box_raw[3]
    # Derived joints need both sources: the pelvis (hips out of frame) is missing, the neck is there.
    assert kps[JOTR30.index("Pelvis"), 2] == 0 and kps[JOTR30.index("Neck"), 2] > 0.9


class _FakeLandmark:
    def __init__(self, x, y, visibility, presence):
        self.x, self.y, self.visibility, self.presence = x, y, visibility, presence


class _FakePose:
    landmarks: np.ndarray | None = None

    def __init__(self, **kwargs):
        assert kwargs["model_complexity"] == 1 and kwargs["static_image_mode"]

    def process(self, img):
        if self.landmarks is None:
            return types.SimpleNamespace(pose_landmarks=None)
        h, w = img.shape[:2]
        lms = [_FakeLandmark(x / w, y / h, v, p) for x, y, v, p in self.landmarks]
        return types.SimpleNamespace(pose_landmarks=types.SimpleNamespace(landmark=lms))

    def close(self):
        pass


@pytest.fixture
def fake_mediapipe(monkeypatch):
    mp = types.ModuleType("mediapipe")
    mp.solutions = types.SimpleNamespace(pose=types.SimpleNamespace(Pose=_FakePose))
    monkeypatch.setitem(sys.modules, "mediapipe", mp)
    monkeypatch.setattr(_FakePose, "landmarks", _portrait_landmarks())
    return mp


def test_detector_drops_landmarks_and_warns_once(fake_mediapipe, caplog):
    det = MediaPipeDetector()
    img = np.zeros((H, W, 3), np.uint8)
    with caplog.at_level(logging.INFO, logger="jotr.inference.detector"):
        first = det.detect(img, "a.jpg")
        second = det.detect(img, "b.jpg")
    assert len(first) == 1 and len(second) == 1
    kps = first[0].keypoints
    assert kps.shape == (30, 3)
    valid = kps[:, 2] > CONFIDENCE_THRESHOLD
    assert (kps[valid, 1] < H).all()  # nothing from below the image
    assert "left_hip" in first[0].dropped and "nose" not in first[0].dropped
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "a.jpg" in warnings[0].getMessage()  # once per detector
    message = warnings[0].getMessage()
    assert "ONE person" in message and "--keypoints" in message and "OpenPose" in message
    assert MULTI_PERSON_HINT in message
    det.close()


def test_detector_nobody(fake_mediapipe, monkeypatch):
    monkeypatch.setattr(_FakePose, "landmarks", None)
    assert MediaPipeDetector().detect(np.zeros((20, 20, 3), np.uint8)) == []


def test_install_hint_without_mediapipe(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # import fails as if not installed
    with pytest.raises(InputError) as err:
        MediaPipeDetector()
    msg = str(err.value)
    assert msg.startswith(INSTALL_HINT)
    assert "make detect-env" in msg and "pip install -e '.[detect]'" in msg and "--keypoints" in msg
    assert "jotr[detect]" not in msg  # not on an index: that line never worked


def test_readme_detect_install_line_is_the_working_one():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "jotr[detect]" not in readme and "make detect-env" in readme
