"""Built-in single-person 2D detector: MediaPipe Pose (the model bundled in the ``mediapipe`` wheel).

Optional extra ``jotr[detect]`` (mediapipe 0.10.21; it needs numpy < 2). Only ``model_complexity=1`` is used:
the wheel bundles that model, while the lite/heavy ones would be downloaded at construction. mediapipe is
imported lazily, inside :class:`MediaPipeDetector`, so the rest of jotr works without it.

MediaPipe's 33 landmarks are converted to JOTR's 30-joint input set by name (:data:`MEDIAPIPE_TO_JOTR30`); the
pelvis (hip centre), neck (shoulder centre) and hands (centre of the index and pinky knuckles) are averages of
two landmarks with the product of their visibilities as confidence. Joints MediaPipe has no counterpart for
(spine, collars, head centre, head top) get confidence 0. MediaPipe's left/right are the person's own, like
jotr's."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from jotr.body.joint_sets import JOTR30
from jotr.errors import InputError

logger = logging.getLogger(__name__)

MEDIAPIPE_NAMES = (
    "nose",
    "left_eye_inner",
    "left_eye",
    "left_eye_outer",
    "right_eye_inner",
    "right_eye",
    "right_eye_outer",
    "left_ear",
    "right_ear",
    "mouth_left",
    "mouth_right",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_pinky",
    "right_pinky",
    "left_index",
    "right_index",
    "left_thumb",
    "right_thumb",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
    "left_heel",
    "right_heel",
    "left_foot_index",
    "right_foot_index",
)

# jotr30 joint -> one MediaPipe landmark, or two averaged.
MEDIAPIPE_TO_JOTR30: dict[str, tuple[str, ...]] = {
    "Pelvis": ("left_hip", "right_hip"),
    "L_Hip": ("left_hip",),
    "R_Hip": ("right_hip",),
    "L_Knee": ("left_knee",),
    "R_Knee": ("right_knee",),
    "L_Ankle": ("left_ankle",),
    "R_Ankle": ("right_ankle",),
    "L_Foot": ("left_foot_index",),
    "R_Foot": ("right_foot_index",),
    "Neck": ("left_shoulder", "right_shoulder"),
    "L_Shoulder": ("left_shoulder",),
    "R_Shoulder": ("right_shoulder",),
    "L_Elbow": ("left_elbow",),
    "R_Elbow": ("right_elbow",),
    "L_Wrist": ("left_wrist",),
    "R_Wrist": ("right_wrist",),
    "L_Hand": ("left_index", "left_pinky"),
    "R_Hand": ("right_index", "right_pinky"),
    "Nose": ("nose",),
    "L_Eye": ("left_eye",),
    "R_Eye": ("right_eye",),
    "L_Ear": ("left_ear",),
    "R_Ear": ("right_ear",),
}

INSTALL_HINT = (
    "the built-in detector needs mediapipe (optional extra): pip install 'jotr[detect]' "
    "(mediapipe==0.10.21, numpy<2); or pass 2D keypoints with --keypoints (COCO results or OpenPose JSON)"
)


def mediapipe_to_jotr30(landmarks: np.ndarray) -> np.ndarray:
    """(33, 3) MediaPipe landmarks (x, y image px, visibility) -> (30, 3) jotr30 (x, y, confidence)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (len(MEDIAPIPE_NAMES), 3):
        raise InputError(f"MediaPipe landmarks must be ({len(MEDIAPIPE_NAMES)}, 3), got {lm.shape}")
    out = np.zeros((len(JOTR30), 3))
    for joint, sources in MEDIAPIPE_TO_JOTR30.items():
        rows = lm[[MEDIAPIPE_NAMES.index(s) for s in sources]]
        out[JOTR30.index(joint)] = [rows[:, 0].mean(), rows[:, 1].mean(), float(np.prod(rows[:, 2]))]
    return out


@dataclass
class Detection:
    keypoints: np.ndarray  # (30, 3) jotr30 x, y image px, confidence


class MediaPipeDetector:
    """Single-person pose detection on RGB images (model_complexity=1, static images)."""

    def __init__(self, min_detection_confidence: float = 0.5) -> None:
        try:
            import mediapipe as mp  # noqa: PLC0415 - optional dependency, imported lazily
        except ImportError as exc:
            raise InputError(f"{INSTALL_HINT} ({exc})") from exc
        self._pose = mp.solutions.pose.Pose(
            static_image_mode=True, model_complexity=1, min_detection_confidence=min_detection_confidence
        )

    def close(self) -> None:
        self._pose.close()

    def detect(self, image_rgb: np.ndarray, name: str = "image") -> list[Detection]:
        """(H, W, 3) uint8 RGB -> zero or one detection (MediaPipe Pose finds a single person)."""
        img = np.ascontiguousarray(image_rgb)
        if img.dtype != np.uint8:
            img = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
        H, W = img.shape[:2]
        res = self._pose.process(img)
        if res.pose_landmarks is None:
            return []
        lm = np.array([[p.x * W, p.y * H, p.visibility] for p in res.pose_landmarks.landmark])
        return [Detection(mediapipe_to_jotr30(lm))]
