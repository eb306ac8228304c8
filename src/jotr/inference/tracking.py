"""Multi-person tracking for videos: one stable id per person across frames, from per-frame detections.

Input, per frame: the people found in it, each a :class:`TrackInput` (a box ``xyxy`` and, when known, 2D
keypoints ``(K, 3)`` x, y image px, confidence; any K, the same for every frame of a video) from a keypoint
file or a detector. Output: one track id per person. Ids count up from 0 and are never reused: a track that
ended never comes back, and a person who enters gets a new id unless they match a live track.

Each frame (:meth:`PersonTracker.update`):

1. **Prediction.** A track moves at constant velocity (image px per frame): the exponential average (weight
   ``velocity_weight`` for the newest) of the mean displacement per frame of the keypoints seen in both its
   previous and its new observation (of the box centre when there are fewer than ``min_common_joints``). Its
   box and every keypoint it has seen are shifted by the velocity times the frames since they were seen.
2. **Similarity** of track t and person p:
   ``S = iou_weight * IoU(box_t, box_p) + (1 - iou_weight) * OKS(t, p)``, where OKS is COCO's object keypoint
   similarity with one constant for all joints, ``mean_j exp(-d_j^2 / (2 * area * kappa_j^2))`` over the
   joints confident in both (d_j: distance of the predicted and the detected joint, px). ``area`` is the
   track's scale: the area of the box around all its predicted joints (a partial last view does not shrink
   it). ``kappa_j = kappa * min(1 + kappa_growth * u_j, kappa_max_factor)`` grows with the frames u_j the
   track has not seen joint j (beyond one), plus ``unknown_velocity_frames`` for a track seen only once (its
   velocity is unknown): a track lost for a while is looked for farther away. With fewer than
   ``min_common_joints`` confident joints in common the OKS term is 0 (so IoU alone, scaled by
   ``iou_weight``, does not pass the gate: two views sharing no body part are not taken for one person). A
   person or track without keypoints is compared by IoU alone (``S = IoU``).
3. **Gating and assignment.** Pairs with ``S < min_similarity`` never match; the others are assigned by the
   Hungarian algorithm (``scipy.optimize.linear_sum_assignment``), which maximises the summed similarity.
4. **Births and deaths.** Each unmatched person starts a new track (a new id). A track that has not been seen
   for more than ``max_age`` frames ends; so does an unmatched track whose predicted box lies mostly outside
   the image (less than ``min_inside`` of its area inside) when the image size is given, i.e. a person who
   walked out of the frame.

Nothing here looks at the pixels: two people who cross are told apart by where they were heading and by
their keypoints (pose, size), not by appearance."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from jotr.errors import InputError
from jotr.geometry.boxes import box_from_keypoints, xywh_to_xyxy
from jotr.inference.keypoints import CONFIDENCE_THRESHOLD, as_float_array, to_jotr30


@dataclass(frozen=True)
class TrackerConfig:
    """Parameters of :class:`PersonTracker` (module doc)."""

    iou_weight: float = 0.1  # weight of the box IoU in the similarity (the rest: keypoint OKS)
    kappa: float = 0.1  # OKS falloff per joint, relative to sqrt(box area) (COCO's sigmas are 0.025..0.107)
    kappa_growth: float = 0.5  # kappa grows by this factor per frame a joint was not seen ...
    kappa_max_factor: float = 4.0  # ... up to this many times kappa
    unknown_velocity_frames: float = 2.0  # a track seen once (no velocity yet): as if unseen this long
    min_similarity: float = 0.3  # gate: pairs below it never match
    min_common_joints: int = 3  # joints confident in both needed for the OKS term
    max_age: int = 30  # frames a lost track is kept (then it ends; its id is never used again)
    min_inside: float = 0.5  # an unmatched track ends when less of its predicted box is inside the image
    velocity_weight: float = 0.5  # exponential average of the velocity: weight of the newest displacement
    confidence_threshold: float = CONFIDENCE_THRESHOLD  # a keypoint is confident above this

    def __post_init__(self) -> None:
        checks = {
            "iou_weight": 0.0 <= self.iou_weight <= 1.0,
            "kappa": self.kappa > 0,
            "kappa_growth": self.kappa_growth >= 0,
            "kappa_max_factor": self.kappa_max_factor >= 1,
            "unknown_velocity_frames": self.unknown_velocity_frames >= 0,
            "min_similarity": 0.0 <= self.min_similarity <= 1.0,
            "min_common_joints": self.min_common_joints >= 1,
            "max_age": self.max_age >= 0,
            "min_inside": 0.0 <= self.min_inside <= 1.0,
            "velocity_weight": 0.0 < self.velocity_weight <= 1.0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise InputError(
                f"invalid tracker settings: {', '.join(f'{k}={getattr(self, k)!r}' for k in bad)}"
            )


@dataclass
class TrackInput:
    """One person found in one frame, as the tracker sees it."""

    box_xyxy: np.ndarray  # (4,) x0, y0, x1, y1 image px
    keypoints: np.ndarray | None = None  # (K, 3) x, y image px, confidence (<= threshold: not seen); or None

    def __post_init__(self) -> None:
        self.box_xyxy = np.asarray(self.box_xyxy, dtype=np.float64).reshape(4)
        if self.keypoints is not None:
            self.keypoints = np.asarray(self.keypoints, dtype=np.float64)
            if self.keypoints.ndim != 2 or self.keypoints.shape[1] != 3:
                raise InputError(f"track input keypoints must be (K, 3), got {self.keypoints.shape}")
        if not np.isfinite(self.box_xyxy).all() or (self.box_xyxy[2:] < self.box_xyxy[:2]).any():
            raise InputError(
                f"track input box must be finite x0, y0, x1 >= x0, y1 >= y0, got {self.box_xyxy}"
            )


@dataclass
class Track:
    """State of one track (image px; frames are the indices passed to :meth:`PersonTracker.update`)."""

    id: int
    first_frame: int
    last_frame: int  # last frame it was matched in
    box_xyxy: np.ndarray  # (4,) box of its last observation
    keypoints: np.ndarray | None  # (K, 2) last seen position of each joint
    seen_frame: np.ndarray | None  # (K,) frame each joint was last seen in (-1: never)
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))  # (2,) px per frame
    hits: int = 1  # frames it was matched in

    def predicted_box(self, frame: int) -> np.ndarray:
        """(4,) xyxy box at ``frame`` (constant velocity since the last observation)."""
        shift = self.velocity * (frame - self.last_frame)
        return self.box_xyxy + np.concatenate([shift, shift])

    def predicted_keypoints(self, frame: int) -> tuple[np.ndarray, np.ndarray] | None:
        """((K, 2) predicted positions, (K,) frames since each joint was seen, 0 = never) at ``frame``."""
        if self.keypoints is None:
            return None
        seen = self.seen_frame >= 0
        gap = np.where(seen, frame - self.seen_frame, 0)
        return self.keypoints + self.velocity * gap[:, None], gap


def box_iou_xyxy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4), (M, 4) xyxy boxes -> (N, M) intersection over union (0 for empty boxes)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def track_extent_area(positions: np.ndarray, gap: np.ndarray) -> float:
    """Area (px^2) of the box of a track's predicted joints (those it has seen, ``gap > 0``): the person's
    scale, which a partial last view (a small box) would underestimate."""
    p = positions[gap > 0]
    return float((p.max(0) - p.min(0)).prod()) if len(p) > 1 else 0.0


def _area(box: np.ndarray) -> float:
    return float(max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0))


def _inside_fraction(box: np.ndarray, width: int, height: int) -> float:
    area = _area(box)
    if area <= 0:
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        return float(0 <= cx < width and 0 <= cy < height)
    clipped = np.array([max(box[0], 0), max(box[1], 0), min(box[2], width), min(box[3], height)])
    return _area(clipped) / area


class PersonTracker:
    """Assigns track ids to the people of consecutive video frames (module doc).

    >>> tracker = PersonTracker()
    >>> ids = tracker.update(frame, [TrackInput(box_xyxy, keypoints), ...], image_size=(W, H))  # (P,) int64
    >>> tracker.ended  # ids that ended in that update (their filters etc. can be dropped)
    """

    def __init__(self, cfg: TrackerConfig | None = None) -> None:
        self.cfg = cfg or TrackerConfig()
        self.tracks: dict[int, Track] = {}  # live tracks
        self.ended: list[int] = []  # ids ended by the last update
        self.next_id = 0  # ids given so far (= number of tracks ever started)
        self._last_frame: int | None = None

    def similarity(self, track: Track, person: TrackInput, frame: int) -> float:
        """Similarity S in [0, 1] of a track (predicted to ``frame``) and a person (module doc, step 2)."""
        cfg = self.cfg
        box_t = track.predicted_box(frame)
        iou = float(box_iou_xyxy(box_t, person.box_xyxy)[0, 0])
        pred = track.predicted_keypoints(frame)
        if pred is None or person.keypoints is None or len(person.keypoints) != len(pred[0]):
            return iou
        pos, gap = pred
        common = (gap > 0) & (person.keypoints[:, 2] > cfg.confidence_threshold)
        if common.sum() < cfg.min_common_joints:
            return cfg.iou_weight * iou
        area = max(track_extent_area(pos, gap), _area(box_t), 1.0)
        unseen = gap[common] - 1 + (cfg.unknown_velocity_frames if track.hits == 1 else 0)
        kappa = cfg.kappa * np.minimum(1.0 + cfg.kappa_growth * unseen, cfg.kappa_max_factor)
        d2 = ((pos[common] - person.keypoints[common, :2]) ** 2).sum(-1)
        oks = float(np.exp(-d2 / (2.0 * area * kappa**2)).mean())
        return cfg.iou_weight * iou + (1.0 - cfg.iou_weight) * oks

    def update(
        self, frame: int, people: list[TrackInput], image_size: tuple[int, int] | None = None
    ) -> np.ndarray:
        """Match the ``people`` of ``frame`` to the live tracks; returns their (P,) int64 track ids.

        ``frame`` must increase from call to call (gaps are allowed: frames without anybody need no call).
        ``image_size`` = (W, H) lets tracks that walked out of the image end at once."""
        if self._last_frame is not None and frame <= self._last_frame:
            raise InputError(f"tracker: frame {frame} does not follow frame {self._last_frame}")
        self._last_frame = frame
        cfg = self.cfg
        self.ended = []
        for k in [k for k, t in self.tracks.items() if frame - t.last_frame > cfg.max_age]:
            self._end(k)
        ids = np.full(len(people), -1, dtype=np.int64)
        keys = list(self.tracks)
        if keys and people:
            sim = np.array([[self.similarity(self.tracks[k], p, frame) for p in people] for k in keys])
            allowed = sim >= cfg.min_similarity
            # Each match scores log(S / min_similarity): how much better than no match (0) it is. The
            # log keeps one good match from being given up for two mediocre ones.
            gain = np.log(np.maximum(sim, 1e-12) / cfg.min_similarity)
            rows, cols = linear_sum_assignment(np.where(allowed, gain, 0.0), maximize=True)
            for r, c in zip(rows, cols):
                if allowed[r, c]:
                    ids[c] = keys[r]
                    self._observe(self.tracks[keys[r]], people[c], frame)
        for c in np.flatnonzero(ids < 0):
            ids[c] = self._start(people[c], frame)
        if image_size is not None:
            W, H = image_size
            for k in keys:
                t = self.tracks.get(k)
                if t is not None and t.last_frame != frame:
                    if _inside_fraction(t.predicted_box(frame), W, H) < cfg.min_inside:
                        self._end(k)
        return ids

    def _start(self, person: TrackInput, frame: int) -> int:
        k = self.next_id
        self.next_id += 1
        kps, seen = None, None
        if person.keypoints is not None:
            kps = person.keypoints[:, :2].copy()
            seen = np.where(person.keypoints[:, 2] > self.cfg.confidence_threshold, frame, -1)
        self.tracks[k] = Track(k, frame, frame, person.box_xyxy.copy(), kps, seen)
        return k

    def _observe(self, track: Track, person: TrackInput, frame: int) -> None:
        cfg = self.cfg
        gap = frame - track.last_frame
        displacement = None
        conf = None
        if person.keypoints is not None and track.keypoints is not None:
            if len(person.keypoints) == len(track.keypoints):
                conf = person.keypoints[:, 2] > cfg.confidence_threshold
                common = conf & (track.seen_frame >= 0)
                if common.sum() >= cfg.min_common_joints:
                    steps = (frame - track.seen_frame[common])[:, None]
                    displacement = ((person.keypoints[common, :2] - track.keypoints[common]) / steps).mean(0)
        if displacement is None:
            centre = lambda b: (b[:2] + b[2:]) / 2.0  # noqa: E731
            displacement = (centre(person.box_xyxy) - centre(track.box_xyxy)) / gap
        w = 1.0 if track.hits == 1 else cfg.velocity_weight
        track.velocity = w * displacement + (1.0 - w) * track.velocity
        track.box_xyxy = person.box_xyxy.copy()
        if conf is not None:
            track.keypoints[conf] = person.keypoints[conf, :2]
            track.seen_frame[conf] = frame
        elif person.keypoints is not None:  # a different joint count than before: start the joints afresh
            track.keypoints = person.keypoints[:, :2].copy()
            track.seen_frame = np.where(person.keypoints[:, 2] > cfg.confidence_threshold, frame, -1)
        track.last_frame = frame
        track.hits += 1

    def _end(self, k: int) -> None:
        del self.tracks[k]
        self.ended.append(k)


def track_input(
    keypoints: np.ndarray | None,
    keypoint_format: str | None = None,
    box_xywh: np.ndarray | None = None,
    *,
    name: str = "person",
) -> TrackInput | None:
    """A person as the predictor receives it (keypoints in any format and/or an xywh box, image px) -> the
    tracker's input: keypoints in jotr30 order and the box of the confident keypoints, else the given box.
    None when the person has neither (the predictor rejects such a person too); keypoints or a box that are
    not numbers raise :class:`InputError` as in the predictor."""
    kps30 = None
    box = None
    if keypoints is not None:
        kps30 = to_jotr30(keypoints, keypoint_format, name=f"{name} keypoints")
        box = box_from_keypoints(kps30[:, :2], kps30[:, 2], CONFIDENCE_THRESHOLD, extend=1.0)
    if box is None and box_xywh is not None:
        given = as_float_array(box_xywh, name, "box").reshape(-1)
        if given.shape == (4,) and np.isfinite(given).all() and given[2] > 0 and given[3] > 0:
            box = given
    if box is None:
        return None
    return TrackInput(xywh_to_xyxy(box), kps30)


def track_people(
    tracker: PersonTracker, frame: int, people: Sequence[Any], image_size: tuple[int, int] | None = None
) -> np.ndarray:
    """Track ids (P,) int64 of the ``people`` of one frame (:class:`~jotr.inference.predictor.PersonInput` s,
    or anything with ``keypoints``, ``keypoint_format`` and ``box_xywh``): -1 for a person the tracker cannot
    use (no confident keypoints and no valid box, or keypoints that are not numbers: the predictor rejects
    such a person with the reason). Call it for every frame, also with no people, so that tracks end."""
    inputs: list[TrackInput | None] = []
    for i, p in enumerate(people):
        try:
            inputs.append(track_input(p.keypoints, p.keypoint_format, p.box_xywh, name=f"person {i}"))
        except InputError:
            inputs.append(None)
    usable = [i for i, x in enumerate(inputs) if x is not None]
    ids = np.full(len(inputs), -1, dtype=np.int64)
    ids[usable] = tracker.update(frame, [inputs[i] for i in usable], image_size)
    return ids
