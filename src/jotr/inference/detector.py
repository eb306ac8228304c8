"""Built-in single-person 2D detector: MediaPipe Pose (the model bundled in the ``mediapipe`` wheel).

Optional extra ``detect`` (mediapipe 0.10.21; it needs numpy < 2, an older OpenCV and protobuf, so it lives in
an environment of its own: ``make detect-env`` builds ``.venv-detect``; from a checkout, by hand,
``pip install -e '.[detect]'`` into a separate virtual environment). Only ``model_complexity=1`` is used: the
wheel bundles that model, while the lite/heavy ones would be downloaded at construction. mediapipe is imported
lazily, inside :class:`MediaPipeDetector`, so the rest of jotr works without it.

MediaPipe Pose (the "solutions" API) finds ONE person per image. :class:`MediaPipeDetector` says so in a
warning, with the way to pass keypoints for everybody (``--keypoints``, COCO results or OpenPose JSON).

Landmark filtering (:func:`filter_landmarks`): MediaPipe also returns a guess for body parts outside the image
(with a low visibility, often above jotr's 0.05 keypoint threshold); those would inflate the person's box. A
landmark is kept only when it lies inside the image and its visibility and presence are at least
:data:`MIN_VISIBILITY` / :data:`MIN_PRESENCE` (0.5, the threshold MediaPipe's own drawing utilities use);
dropped landmarks get confidence 0 before the box is made. (The Pose solution of mediapipe 0.10.21 leaves
``presence`` at 0 for every landmark, so presence is only checked when the graph fills it in.)

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
    "the built-in detector needs mediapipe (the optional extra [detect]: mediapipe==0.10.21, numpy<2), which "
    "lives in an environment of its own: in a jotr checkout run `make detect-env`, then "
    "`.venv-detect/bin/jotr demo ...` (by hand: `pip install -e '.[detect]'` from the checkout into a "
    "separate virtual environment); or pass 2D keypoints with --keypoints (COCO results or OpenPose JSON)"
)
MIN_VISIBILITY = 0.5  # landmarks below this visibility are dropped (MediaPipe drawing_utils' threshold)
MIN_PRESENCE = 0.5  # ... and below this presence
MULTI_PERSON_HINT = (
    "the built-in detector (MediaPipe Pose) finds at most ONE person per image: other people in the image "
    "get no mesh. To reconstruct everybody, pass 2D keypoints for all of them with --keypoints FILE (a COCO "
    'results JSON [{"image_id", "keypoints": [x, y, score, ...]}] or OpenPose JSON, e.g. from OpenPose, '
    "mmpose or HigherHRNet; see docs/demo.md)"
)


def filter_landmarks(
    landmarks: np.ndarray,
    width: int,
    height: int,
    min_visibility: float = MIN_VISIBILITY,
    min_presence: float = MIN_PRESENCE,
) -> np.ndarray:
    """(33, 3) or (33, 4) landmarks (x, y image px, visibility[, presence]) -> (33, 3) x, y, confidence.

    A landmark keeps its visibility as confidence when it is finite, inside the ``width`` x ``height`` image
    (0 <= x < W, 0 <= y < H) and its visibility (and presence, when given) reach the thresholds; otherwise its
    confidence is 0 (jotr then treats it as missing: it neither enters the box nor the network input)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim != 2 or lm.shape[0] != len(MEDIAPIPE_NAMES) or lm.shape[1] not in (3, 4):
        raise InputError(f"MediaPipe landmarks must be ({len(MEDIAPIPE_NAMES)}, 3 or 4), got {lm.shape}")
    x, y, vis = lm[:, 0], lm[:, 1], lm[:, 2]
    keep = np.isfinite(lm[:, :3]).all(axis=1)
    keep &= (x >= 0) & (x < width) & (y >= 0) & (y < height)
    keep &= vis >= min_visibility
    if lm.shape[1] == 4:
        keep &= np.nan_to_num(lm[:, 3], nan=0.0) >= min_presence
    out = np.zeros((len(lm), 3))
    out[:, :2] = np.where(np.isfinite(lm[:, :2]), lm[:, :2], 0.0)
    out[:, 2] = np.where(keep, vis, 0.0)
    return out


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
    keypoints: np.ndarray  # (30, 3) jotr30 x, y image px, confidence (dropped landmarks: 0)
    dropped: tuple[str, ...] = ()  # MediaPipe landmarks dropped (outside the image or not visible enough)


class MediaPipeDetector:
    """Single-person pose detection on RGB images (model_complexity=1, static images)."""

    max_people = 1  # MediaPipe Pose (solutions API) returns a single pose per image

    def __init__(
        self,
        min_detection_confidence: float = 0.5,
        min_visibility: float = MIN_VISIBILITY,
        min_presence: float = MIN_PRESENCE,
    ) -> None:
        self.min_visibility = min_visibility
        self.min_presence = min_presence
        self._warned = False
        from jotr.utils.quiet import native_stderr_silenced, quiet_native_logging

        quiet_native_logging()  # TF Lite / absl start-up lines
        try:
            import mediapipe as mp  # noqa: PLC0415 - optional dependency, imported lazily
        except ImportError as exc:
            raise InputError(f"{INSTALL_HINT} ({exc})") from exc
        with native_stderr_silenced():  # graph set-up and the XNNPACK delegate banner: one blank image
            self._pose = mp.solutions.pose.Pose(
                static_image_mode=True, model_complexity=1, min_detection_confidence=min_detection_confidence
            )
            self._pose.process(np.zeros((64, 64, 3), np.uint8))

    def close(self) -> None:
        self._pose.close()

    def detect(self, image_rgb: np.ndarray, name: str = "image") -> list[Detection]:
        """(H, W, 3) uint8 RGB -> zero or one detection (MediaPipe Pose finds a single person).

        Landmarks outside the image or below the visibility/presence thresholds are dropped
        (:func:`filter_landmarks`). The first detection of a detector warns that other people are not found
        and how to pass keypoints for them."""
        img = np.ascontiguousarray(image_rgb)
        if img.dtype != np.uint8:
            img = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
        H, W = img.shape[:2]
        res = self._pose.process(img)
        if res.pose_landmarks is None:
            return []
        raw = np.array(
            [[p.x * W, p.y * H, p.visibility, p.presence] for p in res.pose_landmarks.landmark],
            dtype=np.float64,
        )
        if not (raw[:, 3] > 0).any():  # the Pose solution graph leaves presence at 0 (measured, 0.10.21)
            raw = raw[:, :3]
        lm = filter_landmarks(raw, W, H, self.min_visibility, self.min_presence)
        dropped = tuple(n for n, c in zip(MEDIAPIPE_NAMES, lm[:, 2]) if c <= 0)
        if dropped:
            logger.debug(
                "%s: dropped %d MediaPipe landmarks outside the image or not visible: %s",
                name,
                len(dropped),
                ", ".join(dropped),
            )
        if not self._warned:
            logger.warning("%s: found 1 person; %s", name, MULTI_PERSON_HINT)
            self._warned = True
        else:
            logger.debug("%s: found 1 person (the built-in detector finds at most one)", name)
        return [Detection(mediapipe_to_jotr30(lm), dropped)]
