"""``jotr detect IMAGE_OR_DIR_OR_VIDEO... --out keypoints.json [--draw DIR]``: the built-in multi-person 2D
detector (:mod:`jotr.inference.detector`) on images, folders of images or videos -> a COCO results JSON
(``[{"image_id", "category_id", "keypoints": [x, y, score] * 17, "score", "bbox"}]``, COCO-17 order, image
pixels) that ``jotr demo --keypoints`` reads. Fix a person by hand (move a point, set a confidence to 0,
delete an entry) and re-run the demo with the file.

``image_id``: the image's file name (``photo.jpg``) or, for a video frame, ``<video stem>_<frame:012d>`` --
the names ``jotr demo`` looks up. A table at the end says per image how many people were found and what was
dropped and why. Images where nobody is found have no entry (``jotr demo --keypoints`` then says so)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", help="images, folders of images, or video files")
    p.add_argument("--out", required=True, help="output COCO results JSON")
    p.add_argument("--draw", default=None, help="also write each image with its keypoints drawn into DIR")
    p.add_argument(
        "--min-score",
        type=float,
        default=None,
        help="drop people scoring below this (default: the detector's, 0.2)",
    )
    p.add_argument("--max-frames", type=int, default=None, help="videos: stop after this many frames")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace an existing --out file (and --draw folder that jotr made)",
    )


def _inputs(paths: list[str]) -> list[Path]:
    from jotr.commands.demo import IMAGE_SUFFIXES, VIDEO_SUFFIXES, _list_inputs

    out: list[Path] = []
    for p in paths:
        out += _list_inputs(Path(p))
    bad = [p for p in out if p.suffix.lower() not in IMAGE_SUFFIXES | VIDEO_SUFFIXES]
    if bad:
        from jotr.errors import InputError

        raise InputError(f"not an image or video file: {bad[0]}")
    return out


def run(args: argparse.Namespace) -> int:
    import dataclasses

    import cv2

    from jotr.commands.demo import VIDEO_SUFFIXES
    from jotr.errors import InputError
    from jotr.inference.detector import DetectorConfig, PersonDetector, detections_to_coco
    from jotr.inference.predictor import load_image
    from jotr.utils.io import (
        atomic_write_text,
        check_new_output,
        check_writable_dir,
        check_writable_file,
        mark_output,
    )

    if args.max_frames is not None and args.max_frames < 1:
        raise InputError(f"--max-frames must be >= 1, got {args.max_frames}")
    if args.min_score is not None and not 0 <= args.min_score <= 1:
        raise InputError(f"--min-score must be in [0, 1], got {args.min_score}")
    out = check_writable_file(check_new_output(args.out, "output JSON", force=args.force), "output JSON")
    draw = None
    if args.draw:
        draw = check_writable_dir(
            check_new_output(args.draw, "--draw folder", force=args.force), "--draw folder"
        )
        draw.mkdir(parents=True, exist_ok=True)
        mark_output(draw, "jotr detect drawings")
    inputs = _inputs(args.inputs)
    cfg = DetectorConfig()
    if args.min_score is not None:
        cfg = dataclasses.replace(cfg, min_person_score=args.min_score)
    detector = PersonDetector(cfg)
    reports: dict[str, object] = {}
    failures: list[str] = []
    for path in inputs:
        if path.suffix.lower() in VIDEO_SUFFIXES:
            cap = cv2.VideoCapture(str(path))
            if not cap.isOpened():
                failures.append(f"{path}: cannot open the video")
                continue
            idx = 0
            try:
                while args.max_frames is None or idx < args.max_frames:
                    ok, frame = cap.read()
                    if not ok:
                        break
                    rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                    key = f"{path.stem}_{idx:012d}"
                    reports[key] = detector.detect(rgb, f"{path}:frame {idx}")
                    if draw is not None:
                        _draw(draw / f"{key}.jpg", rgb, reports[key])
                    idx += 1
            finally:
                cap.release()
            if idx == 0:
                failures.append(f"{path}: no frame could be read")
            continue
        try:
            image = load_image(path)
        except InputError as exc:
            failures.append(str(exc))
            continue
        reports[path.name] = report = detector.detect(image, str(path))
        if draw is not None:
            _draw(draw / f"{path.stem}.jpg", image, report)
    entries = detections_to_coco(reports)
    # One person per line (keypoints as one list of x, y, score triplets): easy to read and fix by hand.
    atomic_write_text(
        out, "[\n" + ",\n".join(json.dumps(e) for e in entries) + ("\n]\n" if entries else "]\n")
    )
    total = sum(r.found for r in reports.values())
    for key, r in reports.items():
        if len(reports) <= 50 or r.skipped or not r.found:
            print(f"  {key}: {r.summary()} ({r.seconds:.2f} s)")
    print(f"jotr detect: {total} people in {len(reports)} images/frames; wrote {out}")
    for f in failures:
        print(f"  failed: {f}", file=sys.stderr)
    return 1 if failures else 0


SKELETON = (
    (5, 6), (5, 7), (7, 9), (6, 8), (8, 10), (5, 11), (6, 12), (11, 12),
    (11, 13), (13, 15), (12, 14), (14, 16), (0, 1), (0, 2), (1, 3), (2, 4),
)  # fmt: skip


def _draw(path: Path, image_rgb, report) -> None:
    """The image with each person's box, skeleton (confident keypoints only) and score."""
    import cv2

    from jotr.viz.overlay import person_color

    img = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)
    thick = max(1, round(max(img.shape[:2]) / 400))
    for i, p in enumerate(report.people):
        color = tuple(int(c * 255) for c in person_color(i)[::-1])  # BGR
        x, y, w, h = (int(round(v)) for v in p.box_xywh)
        cv2.rectangle(img, (x, y), (x + w, y + h), color, thick)
        k = p.keypoints
        for a, b in SKELETON:
            if k[a, 2] > 0 and k[b, 2] > 0:
                cv2.line(img, tuple(int(v) for v in k[a, :2]), tuple(int(v) for v in k[b, :2]), color, thick)
        for q in k:
            if q[2] > 0:
                cv2.circle(img, (int(q[0]), int(q[1])), 2 * thick, color, -1)
        cv2.putText(img, f"{i}: {p.score:.2f}", (x + 2, y + 14 * thick), 0, 0.5 * thick, color, thick)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)
