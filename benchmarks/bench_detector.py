"""The built-in multi-person detector (:mod:`jotr.inference.detector`): people found, false people, keypoint
accuracy and seconds per image, on photos a user could have and on synthetic crowd renders with ground truth.

    python -m benchmarks.bench_detector                    # photos + 24 crowd + 24 two-person (pc) renders
    python -m benchmarks.bench_detector --threads 1 --num 8
    python -m benchmarks.bench_detector --quick            # two photos, no renders (a smoke run)

Sets:

* ``photos``: ``benchmarks/data/detector_photos.json`` -- the four photos of ``docs/real_photos`` (from the
  matplotlib, scikit-image and PyWavelets wheels; hand-labelled keypoints) and, when Debian's ``opencv-doc``
  is installed (``apt-get install opencv-doc``), its ``basketball1/2.png``, ``messi5.jpg`` and four frames of
  the pedestrian video ``vtest.avi``, with hand-drawn boxes of every person whose torso is visible.
* ``crowd`` / ``pc``: ``jotr synth`` renders at 1152x864 (1.0 MP): 3-7 people at different depths, and a
  target with 1-2 others, half of the targets cut by the frame (``--truncation 0.5``). Generated into
  ``--synth-dir`` on the first run (about a minute each), re-used afterwards.

Who must be found: a person whose torso is visible -- in the renders, at least 3 of the 4 torso joints
(shoulders, hips) visible (not hidden, inside the image), or both shoulders visible with both hips outside the
image (an upper body cut by the frame), and a visible part at least 5 % of the image height tall; in the
photos, every hand-labelled person. Other annotated people and the labelled ignore regions are optional:
finding them is neither a hit nor a false person.

Matching (greedy, best first, one to one): a detection finds a person when the boxes overlap by IoU >= 0.4
(the detector's box or the box of its keypoints; renders: the person's box clipped to the image) or, for a
person with keypoints (renders: the visible joints; photos: the labelled ones), when at least half of those
joints have a detected keypoint within 0.2 x the person's size (the larger side of its box). An optional
person needs IoU >= 0.3.
``recall`` = found / must-find; ``false`` = detections that match nobody and no ignore region, over all
detections. ``PCK@a`` over the found people: share of their visible/labelled joints with a detected keypoint
within a x size. ``s/img``: the detector's wall time per image (median), ``--threads`` torch threads.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PHOTOS_JSON = ROOT / "benchmarks" / "data" / "detector_photos.json"
HAND_KEYPOINTS = ROOT / "docs" / "real_photos" / "keypoints_coco17.json"
OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
MATCH_PCK = 0.5  # a keypoint person is found when >= half of its joints are within 0.2 x size
MATCH_IOU = 0.4  # a box person is found when the boxes overlap this much
IGNORE_IOU = 0.3
TORSO = (5, 6, 11, 12)  # COCO-17 shoulders, hips
SYNTH_SIZE = (1152, 864)


@dataclass
class GTPerson:
    box: np.ndarray  # (4,) x0, y0, x1, y1 px
    keypoints: np.ndarray | None = None  # (17, 3) x, y, 1 = labelled/visible (0 = not used)

    @property
    def size(self) -> float:
        return float(max(self.box[2] - self.box[0], self.box[3] - self.box[1], 1.0))


@dataclass
class Sample:
    name: str
    image: np.ndarray  # (H, W, 3) uint8 RGB
    people: list[GTPerson]  # must be found
    optional: list[GTPerson] = field(default_factory=list)  # may be found
    ignore: list[np.ndarray] = field(default_factory=list)  # (4,) regions


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def keypoint_hits(det_kps: np.ndarray, gt: GTPerson, alpha: float) -> tuple[int, int]:
    """(hits, joints): GT joints (used ones) with a detected keypoint (confidence > 0) within alpha x size."""
    used = gt.keypoints[:, 2] > 0
    seen = used & (det_kps[:, 2] > 0)
    d = np.linalg.norm(det_kps[:, :2] - gt.keypoints[:, :2], axis=1)
    return int((seen & (d <= alpha * gt.size)).sum()), int(used.sum())


def match_quality(det, gt: GTPerson, min_iou: float = MATCH_IOU) -> float:
    """> 0 when ``det`` finds ``gt``: PCK@0.2 >= 0.5 over the person's joints (keypoint people) or box IoU >=
    ``min_iou`` (the detector's box or the box of its keypoints, whichever overlaps more); the larger."""
    pck = 0.0
    if gt.keypoints is not None:
        hits, n = keypoint_hits(det.keypoints, gt, 0.2)
        pck = hits / max(n, 1)
        pck = pck if pck >= MATCH_PCK else 0.0
    x, y, w, h = det.box_xywh
    det_box = np.array([x, y, x + w, y + h])
    pts = det.keypoints[det.keypoints[:, 2] > 0, :2]
    iou = box_iou(det_box, gt.box)
    if len(pts) >= 2:
        iou = max(iou, box_iou(np.r_[pts.min(0), pts.max(0)], gt.box))
    return max(pck, iou if iou >= min_iou else 0.0)


def greedy_match(dets, gts: list[GTPerson], min_iou: float = MATCH_IOU) -> dict[int, int]:
    """{det index: gt index}, best quality first, one to one."""
    pairs = [(match_quality(d, g, min_iou), i, j) for i, d in enumerate(dets) for j, g in enumerate(gts)]
    out: dict[int, int] = {}
    used = set()
    for q, i, j in sorted(pairs, reverse=True):
        if q > 0 and i not in out and j not in used:
            out[i] = j
            used.add(j)
    return out


def evaluate(sample: Sample, report) -> dict:
    dets = report.people
    matched = greedy_match(dets, sample.people)
    rest = [i for i in range(len(dets)) if i not in matched]
    optional = greedy_match([dets[i] for i in rest], sample.optional, IGNORE_IOU)
    false = 0
    for k, i in enumerate(rest):
        if k in optional:
            continue
        x, y, w, h = dets[i].box_xywh
        box = np.array([x, y, x + w, y + h])
        centre = np.array([x + w / 2, y + h / 2])
        in_ignore = any(
            box_iou(box, r) >= IGNORE_IOU or (r[0] <= centre[0] <= r[2] and r[1] <= centre[1] <= r[3])
            for r in sample.ignore
        )
        false += not in_ignore
    pck = {0.1: [0, 0], 0.2: [0, 0]}
    for i, j in matched.items():
        gt = sample.people[j]
        if gt.keypoints is None:
            continue
        for a in pck:
            h, n = keypoint_hits(dets[i].keypoints, gt, a)
            pck[a][0] += h
            pck[a][1] += n
    return {
        "name": sample.name,
        "must": len(sample.people),
        "found": len(matched),
        "detections": len(dets),
        "false": false,
        "pck": pck,
        "seconds": report.seconds,
        "megapixels": sample.image.shape[0] * sample.image.shape[1] / 1e6,
    }


# ----------------------------------------------------------------------------------------------- data


def _read_rgb(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(path)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _video_frame(path: Path, index: int) -> np.ndarray:
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        for _ in range(index):
            cap.grab()
        ok, frame = cap.read()
    finally:
        cap.release()
    if not ok:
        raise FileNotFoundError(f"{path} frame {index}")
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def photo_samples(opencv_data: Path, quick: bool) -> tuple[list[Sample], list[str]]:
    spec = json.loads(PHOTOS_JSON.read_text())
    hand = {
        e["image_id"]: np.asarray(e["keypoints"], float).reshape(17, 3)
        for e in json.loads(HAND_KEYPOINTS.read_text())
    }
    samples, skipped = [], []
    entries = spec["photos"][:2] if quick else spec["photos"]
    for entry in entries:
        name = entry["file"]
        if name.startswith("opencv-doc:"):
            file, _, frame = name.removeprefix("opencv-doc:").partition("#")
            path = opencv_data / file
            if not path.is_file():
                skipped.append(name)
                continue
            image = _video_frame(path, int(frame)) if frame else _read_rgb(path)
        else:
            image = _read_rgb(ROOT / name)
        people = []
        for p in entry["people"]:
            if "keypoints_of" in p:
                kps = hand[p["keypoints_of"]].copy()
                kps[:, 2] = kps[:, 2] > 0
                pts = kps[kps[:, 2] > 0, :2]
                people.append(GTPerson(np.r_[pts.min(0), pts.max(0)], kps))
            else:
                people.append(GTPerson(np.asarray(p["box"], float)))
        ignore = [np.asarray(r, float) for r in entry.get("ignore", [])]
        samples.append(Sample(name, image, people, ignore=ignore))
    return samples, skipped


def torso_visible(kps: np.ndarray, height: int, box_visible: list[float]) -> bool:
    """COCO-17 (x, y, v) with v = 2 visible, 1 hidden, 0 outside the image."""
    v = kps[list(TORSO), 2]
    visible = int((v == 2).sum())
    upper_body = v[0] == 2 and v[1] == 2 and v[2] == 0 and v[3] == 0
    return (visible >= 3 or upper_body) and box_visible[3] >= 0.05 * height


def synth_samples(folder: Path, split: str, num: int, seed: int) -> list[Sample]:
    json_path = folder / f"{split}.json"
    if not json_path.is_file() or json.loads(json_path.read_text())["info"]["num_images"] < num:
        from jotr.synth.scene import SynthOptions
        from jotr.synth.writer import write_split

        truncation = 0.5 if split == "pc" else 0.25
        opts = SynthOptions(width=SYNTH_SIZE[0], height=SYNTH_SIZE[1], truncation=truncation)
        print(f"[bench_detector] rendering {num} '{split}' scenes into {folder} (once)", flush=True)
        write_split(folder, split, num, seed, workers=1, options=opts, progress=False)
    data = json.loads(json_path.read_text())
    by_image: dict[int, list[dict]] = {}
    for a in data["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    samples = []
    for img in data["images"][:num]:
        must, optional = [], []
        for a in by_image.get(img["id"], []):
            kps = np.asarray(a["keypoints"], float).reshape(17, 3)
            x, y, w, h = a["bbox"]
            gt_kps = kps.copy()
            gt_kps[:, 2] = kps[:, 2] == 2  # the visible joints count for matching and PCK
            person = GTPerson(np.array([x, y, x + w, y + h]), gt_kps)
            if gt_kps[:, 2].sum() >= 2 and torso_visible(kps, img["height"], a["bbox_visible"]):
                must.append(person)
            else:
                optional.append(person if gt_kps[:, 2].sum() >= 2 else GTPerson(person.box))
        image = _read_rgb(folder / "images" / img["file_name"])
        samples.append(Sample(f"{split}/{img['file_name']}", image, must, optional))
    return samples


# ----------------------------------------------------------------------------------------------- main


def summarise(rows: list[dict]) -> dict:
    must = sum(r["must"] for r in rows)
    found = sum(r["found"] for r in rows)
    dets = sum(r["detections"] for r in rows)
    false = sum(r["false"] for r in rows)
    pck = {a: [sum(r["pck"][a][0] for r in rows), sum(r["pck"][a][1] for r in rows)] for a in (0.1, 0.2)}
    secs = [r["seconds"] for r in rows]
    return {
        "images": len(rows),
        "people": must,
        "found": found,
        "recall": found / must if must else float("nan"),
        "detections": dets,
        "false": false,
        "false_rate": false / dets if dets else 0.0,
        "pck@0.1": pck[0.1][0] / pck[0.1][1] if pck[0.1][1] else float("nan"),
        "pck@0.2": pck[0.2][0] / pck[0.2][1] if pck[0.2][1] else float("nan"),
        "pck_joints": pck[0.2][1],
        "s_per_image_median": float(np.median(secs)) if secs else float("nan"),
        "s_per_image_max": float(np.max(secs)) if secs else float("nan"),
        "megapixels": float(np.median([r["megapixels"] for r in rows])) if rows else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="torch threads for the detector (default 2)")
    ap.add_argument("--num", type=int, default=24, help="renders per synthetic split (default 24)")
    ap.add_argument("--seed", type=int, default=23)
    ap.add_argument("--synth-dir", default=str(ROOT / ".cache" / "bench_detector"), help="render cache")
    ap.add_argument("--opencv-data", default=str(OPENCV_DATA), help="opencv-doc's examples/data folder")
    ap.add_argument("--no-synth", action="store_true", help="photos only")
    ap.add_argument("--per-image", action="store_true", help="print one line per image")
    ap.add_argument("--quick", action="store_true", help="two photos, no renders (smoke run)")
    ap.add_argument(
        "--sweep",
        type=float,
        nargs="+",
        default=None,
        metavar="SCORE",
        help="also report recall / false people when people scoring below each SCORE are dropped",
    )
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="whole-image pass sizes (px)")
    ap.add_argument("--no-refine", action="store_true", help="no per-person second pass")
    args = ap.parse_args(argv)

    import dataclasses

    import torch

    from jotr.inference.detector import DetectorConfig, PersonDetector

    torch.manual_seed(0)
    cfg = DetectorConfig(threads=args.threads)
    if args.sweep:
        cfg = dataclasses.replace(cfg, min_person_score=min(args.sweep))
    if args.sizes:
        cfg = dataclasses.replace(cfg, input_sizes=tuple(args.sizes))
    if args.no_refine:
        cfg = dataclasses.replace(cfg, refine=False)
    detector = PersonDetector(cfg)
    sets: dict[str, list[Sample]] = {}
    sets["photos"], skipped = photo_samples(Path(args.opencv_data), args.quick)
    if skipped:
        print(f"[bench_detector] {len(skipped)} photos need Debian's opencv-doc (not found): {skipped}")
    if not (args.quick or args.no_synth):
        for split in ("crowd", "pc"):
            sets[split] = synth_samples(Path(args.synth_dir), split, args.num, args.seed)
    detector.detect(sets["photos"][0].image, "warm-up")
    load_before = os.getloadavg()
    results = {}
    sweep: dict[str, dict[float, dict]] = {}
    t0 = time.perf_counter()
    for name, samples in sets.items():
        rows = []
        by_score: dict[float, list[dict]] = {t: [] for t in args.sweep or ()}
        for s in samples:
            report = detector.detect(s.image, s.name)
            for t in by_score:
                kept = dataclasses.replace(report, people=[p for p in report.people if p.score >= t])
                by_score[t].append(evaluate(s, kept))
            row = evaluate(s, report)
            rows.append(row)
            if args.per_image:
                print(
                    f"  {row['name']}: {row['found']}/{row['must']} found, {row['detections']} detections, "
                    f"{row['false']} false, {row['seconds']:.2f} s"
                )
        results[name] = summarise(rows)
        sweep[name] = {t: summarise(r) for t, r in by_score.items()}
    wall = time.perf_counter() - t0
    load_after = os.getloadavg()
    header = f"{'set':8s} {'images':>6s} {'people':>6s} {'recall':>7s} {'false':>9s} {'PCK@0.1':>8s} "
    header += f"{'PCK@0.2':>8s} {'MP':>5s} {'s/img':>6s} {'max s':>6s}"
    print(header)
    for name, r in results.items():
        print(
            f"{name:8s} {r['images']:6d} {r['people']:6d} {r['recall']:7.1%} "
            f"{r['false']:3d} {r['false_rate']:5.1%} {r['pck@0.1']:8.2f} {r['pck@0.2']:8.2f} "
            f"{r['megapixels']:5.2f} {r['s_per_image_median']:6.2f} {r['s_per_image_max']:6.2f}"
        )
    for name, by_t in sweep.items():
        for t, r in by_t.items():
            print(
                f"  {name} min score {t:.2f}: recall {r['recall']:.1%}, false {r['false']} "
                f"({r['false_rate']:.1%} of {r['detections']})"
            )
    print(
        f"threads {args.threads}; load average before {load_before[0]:.1f}, after {load_after[0]:.1f}; "
        f"{wall:.0f} s"
    )
    print(
        json.dumps(
            {
                "bench": "detector",
                "threads": args.threads,
                "sets": results,
                "photos_skipped": skipped,
                "config": dataclasses.asdict(cfg),
                "sweep": {n: {str(t): r for t, r in by_t.items()} for n, by_t in sweep.items()},
                "load_average": [load_before[0], load_after[0]],
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
