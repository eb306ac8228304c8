"""Synthetic multi-person video clips in 2D, with known identities: the ground truth of the tracker's tests
and benchmark (:mod:`jotr.inference.tracking`). Pure numpy; no rendering is needed to get detections, and
:func:`draw_frame` draws a frame (stick figures) when a real video is wanted.

A clip is a list of :class:`Walker` s -- people walking along straight lines (or back and forth) at their own
speed, each with a height, a body build and a depth order -- plus optional rectangular occluders (pillars).
Each frame's *detections* are made as a 2D detector would report them (:func:`make_clip`):

* COCO-17 keypoints of a walking stick figure (legs and arms swing with the distance walked), plus Gaussian
  noise of ``noise * height`` px;
* a joint is not seen (confidence 0) when it lies outside the image, inside an occluder, or inside the box of
  a nearer person (the farther of two people who cross is hidden where they overlap);
* a person with fewer than ``min_visible`` seen joints is not detected, and a detectable person is missed at
  random with probability ``miss_rate``;
* the box is the tight box of the seen joints enlarged x1.2 and clipped to the image; detections are listed
  in random order.

:func:`identity_errors` scores track ids against the ground truth."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Standing pose, COCO-17 order: (x, y) relative to the point between the feet, in units of the person's
# height (x to the image right, y down). The person faces the camera: their left is on the image right.
_TEMPLATE = np.array(
    [
        (0.0, -0.93),  # Nose
        (0.02, -0.95),  # L_Eye
        (-0.02, -0.95),  # R_Eye
        (0.045, -0.94),  # L_Ear
        (-0.045, -0.94),  # R_Ear
        (0.11, -0.82),  # L_Shoulder
        (-0.11, -0.82),  # R_Shoulder
        (0.14, -0.64),  # L_Elbow
        (-0.14, -0.64),  # R_Elbow
        (0.15, -0.48),  # L_Wrist
        (-0.15, -0.48),  # R_Wrist
        (0.07, -0.52),  # L_Hip
        (-0.07, -0.52),  # R_Hip
        (0.07, -0.28),  # L_Knee
        (-0.07, -0.28),  # R_Knee
        (0.07, -0.03),  # L_Ankle
        (-0.07, -0.03),  # R_Ankle
    ]
)
# Swing amplitude along x (units of height) per joint, sign = which side swings forward at phase pi/2.
_SWING = np.array([0, 0, 0, 0, 0, 0, 0, -0.04, 0.04, -0.09, 0.09, 0, 0, 0.06, -0.06, 0.13, -0.13])
STRIDE = 0.8  # height units walked per swing cycle
BONES = (
    (5, 6), (5, 7), (7, 9), (6, 8), (8, 10), (5, 11), (6, 12), (11, 12),
    (11, 13), (13, 15), (12, 14), (14, 16), (0, 5), (0, 6),
)  # fmt: skip


@dataclass(frozen=True)
class Walker:
    """One person: walks from ``start`` to ``end`` (feet position, image px) during frames
    ``[first, last]``; with ``bounce`` it walks back and forth between them at ``speed`` px per frame
    instead (``last`` is then only when it stops existing)."""

    start: tuple[float, float]
    end: tuple[float, float]
    first: int
    last: int
    height: float  # px
    depth: float  # distance order: a smaller depth is nearer the camera and hides the farther people
    build: float = 1.0  # width factor of the figure
    arms_up: bool = False  # a different pose: hands above the head
    bounce: bool = False
    speed: float = 0.0  # px per frame, with ``bounce``

    def feet(self, t: int) -> np.ndarray:
        """(2,) feet position at frame ``t`` (image px)."""
        a, b = np.asarray(self.start, float), np.asarray(self.end, float)
        if not self.bounce:
            s = 0.0 if self.last == self.first else (t - self.first) / (self.last - self.first)
            return a + s * (b - a)
        length = float(np.linalg.norm(b - a))
        travelled = self.speed * (t - self.first)
        u = travelled % (2 * length) if length > 0 else 0.0
        s = u / length if u <= length else 2.0 - u / length
        return a + s * (b - a)

    def keypoints(self, t: int) -> np.ndarray:
        """(17, 2) noise-free COCO-17 keypoints at frame ``t`` (image px)."""
        distance = self.speed * (t - self.first) if self.bounce else self._path_length(t)
        phase = 2 * math.pi * distance / (STRIDE * self.height)
        rel = _TEMPLATE.copy()
        rel[:, 0] *= self.build
        rel[:, 0] += _SWING * math.sin(phase)
        if self.arms_up:
            rel[[7, 8], 1] = -1.0
            rel[[9, 10], 1] = -1.15
        return self.feet(t) + rel * self.height

    def _path_length(self, t: int) -> float:
        return float(np.linalg.norm(self.feet(t) - np.asarray(self.start, float)))


@dataclass(frozen=True)
class Occluder:
    box_xyxy: tuple[float, float, float, float]  # image px; hides the joints inside it


@dataclass
class ClipFrame:
    """The detections of one frame and who they are."""

    index: int
    boxes_xyxy: np.ndarray  # (P, 4) image px
    keypoints: np.ndarray  # (P, 17, 3) COCO-17 x, y image px, confidence (0: not seen)
    person: np.ndarray  # (P,) int64 ground-truth walker index of each detection
    present: np.ndarray  # (N,) bool: walker n exists and is at least partly in the image this frame


def _inside(points: np.ndarray, box: Sequence[float]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return (points[:, 0] >= x0) & (points[:, 0] <= x1) & (points[:, 1] >= y0) & (points[:, 1] <= y1)


def make_clip(
    walkers: Sequence[Walker],
    num_frames: int,
    size: tuple[int, int],
    *,
    occluders: Sequence[Occluder] = (),
    noise: float = 0.01,
    miss_rate: float = 0.0,
    min_visible: int = 4,
    seed: int = 0,
) -> list[ClipFrame]:
    """Per-frame detections of ``walkers`` in a ``size`` = (W, H) image (module doc)."""
    W, H = size
    rng = np.random.default_rng(seed)
    frames = []
    for t in range(num_frames):
        alive = [n for n, w in enumerate(walkers) if w.first <= t <= w.last]
        clean = {n: walkers[n].keypoints(t) for n in alive}
        body_box = {}
        for n in alive:  # the body's own extent (shrunk: limbs do not fill their box)
            k = clean[n]
            (x0, y0), (x1, y1) = k.min(0), k.max(0)
            dx = 0.15 * (x1 - x0)
            body_box[n] = (x0 + dx, y0, x1 - dx, y1)
        present = np.zeros(len(walkers), bool)
        boxes, kps, who = [], [], []
        for n in alive:
            w = walkers[n]
            k = clean[n] + rng.normal(0.0, noise * w.height, (17, 2))
            seen = (k[:, 0] >= 0) & (k[:, 0] < W) & (k[:, 1] >= 0) & (k[:, 1] < H)
            present[n] = bool(seen.any())
            for occ in occluders:
                seen &= ~_inside(k, occ.box_xyxy)
            for m in alive:
                if m != n and walkers[m].depth < w.depth:
                    seen &= ~_inside(k, body_box[m])
            missed = rng.random() < miss_rate
            if seen.sum() < min_visible or missed:
                continue
            conf = np.where(seen, rng.uniform(0.6, 1.0, 17), 0.0)
            pts = k[seen]
            (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
            cx, cy, bw, bh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * 1.2, (y1 - y0) * 1.2
            box = np.clip([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 0, [W, H, W, H])
            boxes.append(box)
            kps.append(np.concatenate([np.where(seen[:, None], k, 0.0), conf[:, None]], axis=1))
            who.append(n)
        order = rng.permutation(len(who))
        frames.append(
            ClipFrame(
                t,
                np.asarray(boxes, float).reshape(-1, 4)[order],
                np.asarray(kps, float).reshape(-1, 17, 3)[order],
                np.asarray(who, np.int64)[order],
                present,
            )
        )
    return frames


def crossing_scene(size: tuple[int, int] = (640, 360)) -> tuple[list[Walker], list[Occluder], int]:
    """The test clip (60 frames): A and B cross each other (B behind A, hidden while they overlap); C walks
    out of the right edge (gone after frame ~33) and D walks in at that same edge (from frame 38); E walks
    behind a pillar (not seen for several frames); F stands with its arms up. Returns walkers, occluders,
    number of frames."""
    W, H = size
    s = H / 360.0
    walkers = [
        Walker((0.15 * W, 0.80 * H), (0.85 * W, 0.80 * H), 0, 59, 190 * s, depth=1.0),  # A
        Walker((0.85 * W, 0.78 * H), (0.15 * W, 0.78 * H), 0, 59, 180 * s, depth=2.0, build=1.1),  # B
        Walker((0.70 * W, 0.95 * H), (1.15 * W, 0.95 * H), 0, 40, 200 * s, depth=0.5, build=0.9),  # C
        Walker((1.05 * W, 0.92 * H), (0.70 * W, 0.92 * H), 38, 59, 195 * s, depth=0.6),  # D
        Walker((0.05 * W, 0.55 * H), (0.45 * W, 0.55 * H), 0, 59, 120 * s, depth=3.0),  # E
        Walker((0.55 * W, 0.50 * H), (0.60 * W, 0.50 * H), 0, 59, 110 * s, depth=4.0, arms_up=True),  # F
    ]
    pillar = Occluder((0.2 * W, 0.0, 0.3 * W, 0.62 * H))  # E is behind it for several frames
    return walkers, [pillar], 60


def crowd_scene(
    num_people: int = 4, num_frames: int = 200, size: tuple[int, int] = (960, 540), seed: int = 0
) -> tuple[list[Walker], list[Occluder]]:
    """``num_people`` people walking back and forth across the image at their own speed and distance from
    the camera (so they cross each other again and again, the nearer hiding the farther), and one pillar they
    pass behind. Perspective: a person at distance d (1 to 2.5) is 0.55 H / d tall and stands with their feet
    at ``horizon + (0.95 H - horizon) / d`` (horizon at 0.35 H), as seen by a level camera."""
    W, H = size
    rng = np.random.default_rng(seed)
    horizon = 0.35 * H
    walkers = []
    for n in range(num_people):
        d = float(rng.uniform(1.0, 2.5))
        y = horizon + (0.95 * H - horizon) / d
        left, right = W * rng.uniform(0.05, 0.2), W * rng.uniform(0.8, 0.95)
        a, b = ((left, y), (right, y)) if n % 2 == 0 else ((right, y), (left, y))
        walkers.append(
            Walker(
                a,
                b,
                0,
                num_frames - 1,
                0.55 * H / d * rng.uniform(0.9, 1.1),
                depth=d,
                build=float(rng.uniform(0.85, 1.15)),
                arms_up=bool(rng.random() < 0.25),
                bounce=True,
                speed=W * rng.uniform(0.004, 0.012) / d,
            )
        )
    pillar = Occluder((0.47 * W, 0.0, 0.53 * W, 0.75 * H))
    return walkers, [pillar]


def draw_frame(walkers: Sequence[Walker], t: int, size: tuple[int, int], occluders=()) -> np.ndarray:
    """(H, W, 3) uint8 RGB frame: the walkers as coloured stick figures (farthest first), grey occluders."""
    import cv2

    W, H = size
    img = np.full((H, W, 3), 235, np.uint8)
    alive = sorted(
        (n for n, w in enumerate(walkers) if w.first <= t <= w.last), key=lambda n: -walkers[n].depth
    )
    for n in alive:
        k = walkers[n].keypoints(t)
        colour = tuple(int(c) for c in np.asarray(_colour(n)) * 255)
        thick = max(1, int(walkers[n].height / 40))
        for i, j in BONES:
            p, q = tuple(int(v) for v in k[i]), tuple(int(v) for v in k[j])
            cv2.line(img, p, q, colour, thick, cv2.LINE_AA)
        cv2.circle(img, tuple(int(v) for v in k[0]), 2 * thick, colour, -1, cv2.LINE_AA)
    for occ in occluders:
        x0, y0, x1, y1 = (int(v) for v in occ.box_xyxy)
        cv2.rectangle(img, (x0, y0), (x1, y1), (120, 120, 120), -1)
    return img


def _colour(n: int) -> tuple[float, float, float]:
    import colorsys

    return colorsys.hsv_to_rgb((n * 0.618034) % 1.0, 0.8, 0.8)


@dataclass
class IdentityErrors:
    """How track ids compare with the ground-truth people of a clip."""

    swaps: int  # sum over track ids of (distinct people given it - 1): an id that jumped to another person
    switches: int  # times a person's id changed from one detection of it to the next (MOT "IDSW")
    fragments: int  # sum over people of (distinct ids it got - 1); includes swaps seen from the other side
    detections: int  # detections scored
    tracks: int  # distinct track ids
    people: int  # distinct people detected


def identity_errors(frames: Sequence[ClipFrame], ids: Sequence[np.ndarray]) -> IdentityErrors:
    """Score per-frame track ids (``ids[f][p]`` for detection p of ``frames[f]``) against the ground truth."""
    people_of_id: dict[int, set[int]] = {}
    ids_of_person: dict[int, set[int]] = {}
    last_id: dict[int, int] = {}
    switches = detections = 0
    for frame, frame_ids in zip(frames, ids):
        for person, k in zip(frame.person.tolist(), np.asarray(frame_ids).tolist()):
            detections += 1
            people_of_id.setdefault(k, set()).add(person)
            ids_of_person.setdefault(person, set()).add(k)
            if person in last_id and last_id[person] != k:
                switches += 1
            last_id[person] = k
    return IdentityErrors(
        swaps=sum(len(p) - 1 for p in people_of_id.values()),
        switches=switches,
        fragments=sum(len(k) - 1 for k in ids_of_person.values()),
        detections=detections,
        tracks=len(people_of_id),
        people=len(ids_of_person),
    )
