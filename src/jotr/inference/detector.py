"""Built-in multi-person 2D detector: person boxes and COCO-17 keypoints for everybody in an image, on CPU,
offline, in the main environment (torch only).

Model: MoveNet MultiPose Lightning (Google, Apache-2.0), converted once from its TF.js release into
``jotr/assets/detector/movenet_multipose.safetensors`` (:mod:`jotr.inference.movenet`, ``scripts/
convert_movenet.py``; docs/detector.md says why this model and what it measures). :class:`PersonDetector`
runs it in two passes:

1. **Whole image** at each of :attr:`DetectorConfig.input_sizes` (longest side, px; padded to a multiple of
   32): up to six people per pass, each with a score (centre score x mean keypoint score). MoveNet scores
   people that fill the frame best at 256 px and small people best at 512 px, so both passes run and their
   candidates are merged (the same person found twice keeps its better score). When a pass returns six people
   (MoveNet's limit), two overlapping halves of the image run as well, so that crowds are not cut at six.
2. **Per person** (``refine``): a square crop around each person found (its keypoints and box, enlarged
   :attr:`DetectorConfig.crop_scale`) runs at :attr:`DetectorConfig.crop_size`; the crop's person that agrees
   best with the first pass replaces the first-pass keypoints. Small people get keypoints at a useful
   resolution this way. People overlapping another one keep their first-pass keypoints (their crop shows
   both, and the refinement could jump to the other).

People scoring below :attr:`DetectorConfig.min_person_score` are dropped, and so is a person whose keypoints
mostly coincide with a higher-scoring one's (duplicates from the two passes). Keypoints scoring below
:attr:`DetectorConfig.min_keypoint_score` or lying outside the image get confidence 0 (jotr treats them as
missing), so a person cut by the frame keeps only its visible joints.

Every call returns a :class:`DetectionReport`: the people kept and, for each candidate dropped, why -- the
CLI, params.json and the web page repeat it (``found N people; M dropped: ...``)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from jotr.errors import InputError

logger = logging.getLogger(__name__)

KEYPOINT_FORMAT = "coco17"


@dataclass(frozen=True)
class DetectorConfig:
    input_sizes: tuple[int, ...] = (256, 512)  # whole-image passes: longest image side, px (multiples of 32)
    refine: bool = True  # second pass on a crop around each person
    crop_size: int = 256  # second pass: crop side, px (multiple of 32)
    crop_scale: float = 1.25  # crop side = this x the larger side of the person's box
    min_person_score: float = 0.15  # people scoring below are dropped (benchmarks/bench_detector.py --sweep)
    min_keypoint_score: float = 0.2  # keypoints scoring below get confidence 0
    # Two candidates are the same person when their boxes overlap by IoU >= duplicate_iou, or overlap (IoU or
    # share of the smaller box inside the other) >= duplicate_iou_keypoints and the median distance of their
    # keypoints is < duplicate_distance x the larger one's size.
    duplicate_iou: float = 0.8
    duplicate_iou_keypoints: float = 0.3
    duplicate_distance: float = 0.12
    refine_max_shift: float = 0.25  # the crop's person must lie within this x person size of the first pass
    refine_max_overlap: float = 0.3  # people whose box overlaps another's by a larger IoU are not refined
    max_people: int = 6  # MoveNet MultiPose returns at most six people per pass
    half_fraction: float = 0.6  # a pass with six people adds passes on two halves this long (overlapping)
    threads: int | None = None  # intra-op threads while detecting (None: onnxruntime's / torch's default)
    backend: str = (
        "auto"  # "onnxruntime" (3-4x faster on CPU), "torch", or "auto": onnxruntime when installed
    )


@dataclass
class Detection:
    """One person found in an image."""

    keypoints: np.ndarray  # (17, 3) COCO-17 x, y image px, confidence (0 = not seen / outside the image)
    box_xywh: np.ndarray  # (4,) x, y, w, h image px: the model's person box, clipped to the image
    score: float  # person score in [0, 1]
    keypoint_format: str = KEYPOINT_FORMAT

    @property
    def num_keypoints(self) -> int:
        return int((self.keypoints[:, 2] > 0).sum())


@dataclass
class DetectionReport:
    """What the detector did with one image."""

    people: list[Detection]  # kept, sorted by score (best first)
    skipped: list[str] = field(default_factory=list)  # one line per candidate dropped, with the reason
    seconds: float = 0.0  # wall time of the detection
    merged: int = 0  # refined people that turned out to be the same as a better-scoring one (not counted)
    image_size: tuple[int, int] = (0, 0)  # (W, H) px

    @property
    def found(self) -> int:
        return len(self.people)

    def summary(self) -> str:
        """``"3 people found"`` or ``"2 people found; 1 candidate dropped (score 0.12 < 0.2)"``."""
        text = f"{self.found} {'person' if self.found == 1 else 'people'} found"
        if self.skipped:
            text += f"; {len(self.skipped)} candidate{'s' if len(self.skipped) > 1 else ''} dropped ("
            text += "; ".join(self.skipped) + ")"
        return text

    def to_json(self) -> dict:
        return {
            "detector": "MoveNet MultiPose Lightning (built-in)",
            "people_found": self.found,
            "skipped": list(self.skipped),
            "seconds": round(self.seconds, 3),
            "scores": [round(p.score, 4) for p in self.people],
        }


def _resize_pad(image: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """(H, W, 3) uint8 -> (h, w, 3) uint8 with max(h, w) <= size, both multiples of 32 (zero padding
    bottom/right), and the scale factor image px -> input px."""
    import cv2  # noqa: PLC0415

    from jotr.inference.movenet import INPUT_MULTIPLE  # noqa: PLC0415

    H, W = image.shape[:2]
    scale = size / max(H, W)
    h, w = max(1, round(H * scale)), max(1, round(W * scale))
    resized = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    ph = -(-h // INPUT_MULTIPLE) * INPUT_MULTIPLE
    pw = -(-w // INPUT_MULTIPLE) * INPUT_MULTIPLE
    out = np.zeros((ph, pw, 3), np.uint8)
    out[:h, :w] = resized
    return out, scale


def _person_size(kps: np.ndarray, box_xyxy: np.ndarray) -> float:
    """Larger side of the person's box (the model's box, widened by the confident keypoints), px."""
    pts = kps[kps[:, 2] > 0, :2]
    lo = np.minimum(box_xyxy[:2], pts.min(0)) if len(pts) else box_xyxy[:2]
    hi = np.maximum(box_xyxy[2:], pts.max(0)) if len(pts) else box_xyxy[2:]
    return float(max(hi - lo))


class PersonDetector:
    """MoveNet MultiPose on RGB images -> :class:`DetectionReport` (people with COCO-17 keypoints).

    ``weights``: the converted model (default: the file shipped with jotr). ``device``: torch device
    (default CPU; the model is small). On the CPU the network runs in onnxruntime when it is installed (an
    ONNX graph built in memory from the same weights, :func:`jotr.inference.movenet.to_onnx`), else in
    torch. Thread-safe for one caller at a time (the web demo's worker)."""

    max_people = DetectorConfig.max_people

    def __init__(
        self,
        config: DetectorConfig | None = None,
        *,
        weights: str | Path | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        from jotr.inference.movenet import DEFAULT_WEIGHTS, INPUT_MULTIPLE, load_movenet  # noqa: PLC0415

        self.config = config or DetectorConfig()
        for value in (*self.config.input_sizes, self.config.crop_size):
            if value < INPUT_MULTIPLE or value % INPUT_MULTIPLE:
                raise InputError(f"detector input sizes must be multiples of {INPUT_MULTIPLE}, got {value}")
        if self.config.backend not in ("auto", "onnxruntime", "torch"):
            raise InputError(
                f"detector backend must be auto, onnxruntime or torch, got {self.config.backend!r}"
            )
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.model = load_movenet(weights or DEFAULT_WEIGHTS).to(self.device)
        self._onnx = None
        if self.config.backend != "torch" and self.device.type == "cpu":
            try:
                from jotr.inference.movenet import OnnxMoveNet  # noqa: PLC0415

                self._onnx = OnnxMoveNet(self.model, self.config.threads)
            except ImportError as exc:  # onnx / onnxruntime missing: the torch module does the same
                if self.config.backend == "onnxruntime":
                    raise InputError(
                        f"detector backend onnxruntime: {exc} (pip install onnxruntime onnx)"
                    ) from None
                logger.info("onnxruntime not available (%s): the detector runs in torch", exc)

    def close(self) -> None:
        """Nothing to free (kept for the detector interface of the demo and the web page)."""

    # ------------------------------------------------------------------------------------------ passes

    def _run(self, image: np.ndarray, size: int) -> list:
        """One network pass on an image (or crop) -> RawPersons in that image's pixels."""
        from jotr.inference.movenet import decode_people  # noqa: PLC0415

        x, scale = _resize_pad(image, size)
        if self._onnx is not None:
            batch = np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)
            heads = {k: v[0] for k, v in self._onnx(batch).items()}
        else:
            t = torch.from_numpy(x).to(self.device).permute(2, 0, 1)[None].float()
            with torch.inference_mode():
                heads = {k: v[0].float().cpu().numpy() for k, v in self.model(t).items()}
        people = decode_people(heads, self.config.max_people)
        for p in people:
            p.keypoints[:, :2] /= scale
            p.box_xyxy /= scale
        return people

    def _halves(self, image: np.ndarray, size: int) -> list:
        """Passes on two overlapping halves of the image (split across its longer side, each
        :attr:`DetectorConfig.half_fraction` of it) -> RawPersons in image px."""
        H, W = image.shape[:2]
        long_side = max(H, W)
        n = int(round(long_side * self.config.half_fraction))
        people = []
        for start in (0, long_side - n):
            part = image[:, start : start + n] if W >= H else image[start : start + n]
            for p in self._run(np.ascontiguousarray(part), size):
                axis = 0 if W >= H else 1
                p.keypoints[:, axis] += start
                p.box_xyxy[[axis, axis + 2]] += start
                people.append(p)
        return people

    def _refine(self, image: np.ndarray, kps: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        """Second pass on a square crop around one person -> (17, 3) keypoints in image px, or None when the
        crop shows nobody near its centre."""
        H, W = image.shape[:2]
        cfg = self.config
        pts = kps[kps[:, 2] >= cfg.min_keypoint_score, :2]
        lo = np.minimum(box[:2], pts.min(0)) if len(pts) else box[:2]
        hi = np.maximum(box[2:], pts.max(0)) if len(pts) else box[2:]
        centre = (lo + hi) / 2
        side = max(float(max(hi - lo)) * cfg.crop_scale, 32.0)
        x0, y0 = np.floor(centre - side / 2).astype(int)
        n = int(np.ceil(side))
        crop = np.zeros((n, n, 3), np.uint8)  # zero padding where the square leaves the image
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + n, W), min(y0 + n, H)
        if sx1 <= sx0 or sy1 <= sy0:
            return None
        crop[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
        people = self._run(crop, cfg.crop_size)
        first = kps.copy()
        first[:, :2] -= (x0, y0)  # first-pass keypoints in crop px
        size = max(
            _person_size(first[first[:, 2] >= cfg.min_keypoint_score], box - np.r_[x0, y0, x0, y0]), 1.0
        )
        best, best_d = None, np.inf
        for p in people:  # the crop's person that agrees best with the first pass (not just any neighbour)
            if p.score < cfg.min_person_score:
                continue
            both = (p.keypoints[:, 2] >= cfg.min_keypoint_score) & (first[:, 2] >= cfg.min_keypoint_score)
            if both.sum() < 3:
                continue
            d = float(np.median(np.linalg.norm(p.keypoints[both, :2] - first[both, :2], axis=1))) / size
            if d < best_d:
                best, best_d = p, d
        if best is None or best_d > cfg.refine_max_shift:
            return None
        out = best.keypoints.copy()
        out[:, 0] += x0
        out[:, 1] += y0
        return out

    # ------------------------------------------------------------------------------------------- public

    def detect(self, image_rgb: np.ndarray, name: str = "image") -> DetectionReport:
        """(H, W, 3) RGB (uint8, or float in [0, 1]) -> :class:`DetectionReport` (people sorted by score)."""
        img = np.asarray(image_rgb)
        if img.ndim != 3 or img.shape[2] != 3 or min(img.shape[:2]) < 1:
            raise InputError(f"{name}: expected an (H, W, 3) RGB image, got shape {img.shape}")
        if img.dtype != np.uint8:
            img = np.clip(img.astype(np.float64) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        img = np.ascontiguousarray(img)
        cfg = self.config
        t0 = time.perf_counter()
        old_threads = torch.get_num_threads()
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        try:
            report = self._detect(img)
        finally:
            if cfg.threads is not None:
                torch.set_num_threads(old_threads)
        report.seconds = time.perf_counter() - t0
        logger.info("%s: %s (%.2f s)", name, report.summary(), report.seconds)
        return report

    def _detect(self, img: np.ndarray) -> DetectionReport:
        cfg = self.config
        H, W = img.shape[:2]
        candidates = []
        saturated = False
        for size in cfg.input_sizes:
            found = self._run(img, size)
            candidates += found
            saturated |= sum(p.score >= cfg.min_person_score for p in found) >= cfg.max_people
        if saturated:  # six people in one pass: there may be more; look at two overlapping halves too
            candidates += self._halves(img, max(cfg.input_sizes))
        candidates.sort(key=lambda p: -p.score)
        skipped: list[str] = []
        unique: list = []  # candidates, the same person found in two passes once (the best-scoring)
        weak: list = []  # near misses reported in ``skipped`` (each once)
        for p in candidates:
            if p.score < cfg.min_person_score:
                # near misses are worth a line; far below are the empty slots of MoveNet's six
                if p.score >= cfg.min_person_score / 2 and not any(self._same(p, q) for q in unique + weak):
                    weak.append(p)
                    skipped.append(f"score {p.score:.2f} < {cfg.min_person_score:g}")
                continue
            if not any(self._same(p, q) for q in unique):
                unique.append(p)
        kept: list[tuple[np.ndarray, np.ndarray, float]] = []
        for p in unique:
            kps = p.keypoints
            # A crop around one of two overlapping people shows both; keep the first pass for them.
            overlapped = any(
                q is not p and box_iou(p.box_xyxy, q.box_xyxy) > cfg.refine_max_overlap for q in unique
            )
            if cfg.refine and not overlapped:
                refined = self._refine(img, kps, p.box_xyxy)
                if refined is not None:
                    kps = refined
            kept.append((kps, p.box_xyxy, p.score))
        people: list[Detection] = []
        merged = 0
        for kps, box, score in sorted(kept, key=lambda k: -k[2]):
            kps = kps.copy()
            inside = (kps[:, 0] >= 0) & (kps[:, 0] < W) & (kps[:, 1] >= 0) & (kps[:, 1] < H)
            kps[:, 2] = np.where(inside & (kps[:, 2] >= cfg.min_keypoint_score), kps[:, 2], 0.0)
            if (kps[:, 2] > 0).sum() < 2:
                skipped.append(f"score {score:.2f} but fewer than 2 keypoints in the image")
                continue
            dup = next(
                (
                    q
                    for q in people
                    if self._same_person(kps, box, q.keypoints, xywh_to_xyxy(q.box_xywh), 1e-9)
                ),
                None,
            )
            if dup is not None:  # the same person found twice (two passes): not a person skipped
                merged += 1
                continue
            x0, y0 = np.clip(box[:2], 0, [W, H])
            x1, y1 = np.clip(box[2:], 0, [W, H])
            people.append(Detection(kps, np.array([x0, y0, x1 - x0, y1 - y0]), float(score)))
        return DetectionReport(people=people, skipped=skipped, image_size=(W, H), merged=merged)

    def _same(self, a, b) -> bool:
        """Two RawPersons (first-pass candidates) are the same person."""
        return self._same_person(
            a.keypoints, a.box_xyxy, b.keypoints, b.box_xyxy, self.config.min_keypoint_score
        )

    def _same_person(
        self, a: np.ndarray, box_a: np.ndarray, b: np.ndarray, box_b: np.ndarray, min_score: float
    ) -> bool:
        """Same person (see :class:`DetectorConfig`): nearly the same box, or overlapping boxes and nearly the
        same keypoints (both scored >= ``min_score``, at least 3). Two people one behind the other have boxes
        that overlap, but keypoints apart even where MoveNet snaps some of them to the same peaks."""
        cfg = self.config
        iou = box_iou(box_a, box_b)
        if iou >= cfg.duplicate_iou or (iou >= 0.5 and box_inside(box_a, box_b) >= 0.9):
            return True  # nearly the same box, or one box well inside a similar one
        # A part of a person (a face inside a portrait) overlaps little by IoU but lies inside the other box.
        if max(iou, box_inside(box_a, box_b)) < cfg.duplicate_iou_keypoints:
            return False
        both = (a[:, 2] >= min_score) & (b[:, 2] >= min_score)
        if both.sum() < 3:
            return False
        d = np.median(np.linalg.norm(a[both, :2] - b[both, :2], axis=1))
        size = max(_person_size(a[a[:, 2] >= min_score], box_a), _person_size(b[b[:, 2] >= min_score], box_b))
        return bool(d < cfg.duplicate_distance * size)


def box_inside(a: np.ndarray, b: np.ndarray) -> float:
    """Share of the smaller of two (4,) x0, y0, x1, y1 boxes that lies inside the other."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return float(w * h / smaller) if smaller > 0 else 0.0


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two (4,) x0, y0, x1, y1 boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def xywh_to_xyxy(box: np.ndarray) -> np.ndarray:
    return np.array([box[0], box[1], box[0] + box[2], box[1] + box[3]], dtype=np.float64)


def detections_to_coco(reports: dict[str, DetectionReport]) -> list[dict]:
    """``{image_id: report}`` -> COCO results list ``[{image_id, category_id, keypoints, score, bbox}]`` (the
    format ``jotr demo --keypoints`` reads; keypoints flat x, y, confidence in COCO-17 order, image px)."""
    out = []
    for image_id, report in reports.items():
        for p in report.people:
            out.append(
                {
                    "image_id": image_id,
                    "category_id": 1,
                    "keypoints": [round(float(v), 2) for v in p.keypoints.reshape(-1)],
                    "score": round(p.score, 4),
                    "bbox": [round(float(v), 2) for v in p.box_xywh],
                }
            )
    return out
