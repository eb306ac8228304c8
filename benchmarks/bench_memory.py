"""Benchmark: resident-memory growth of the long-running paths that render meshes (issue 24).

    python -m benchmarks.bench_memory [--model shipped|tiny] [--requests 200] [--frames 200] [--synth 40]

* ``web``: ``--requests`` web-page requests (:meth:`jotr.web.handlers.WebDemo.reconstruct`, the path
  of ``jotr serve``) on the shipped example ``two_people.jpg`` with its keypoint file: inference, overlay and
  side renders, .obj/.ply/.glb/params.json downloads;
* ``video``: ``jotr demo``'s video path (:func:`jotr.commands.demo.process_video`) on a generated
  ``--frames``-frame 320x240 clip, one person per frame from a COCO keypoint file, overlay + side videos;
* ``synth``: ``--synth`` synthetic images (:func:`jotr.synth.writer.write_split`, one worker, 320x240).

``--model shipped`` is the model ``jotr serve`` / ``jotr demo`` use by default
(``JOTRPredictor.from_pretrained``); ``tiny`` is a random-weight tiny network on the procedural toy body
(seconds to build). RSS is read from ``/proc/self/statm`` after ``gc.collect()``: after 3 warm-up calls,
then every 25 calls; growth = last - first after warm-up. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "jotr" / "web" / "examples"
WARM = 3


def _rss_mb() -> float:
    gc.collect()
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _predictor(kind: str):
    from jotr.inference.predictor import JOTRPredictor

    if kind == "shipped":
        return JOTRPredictor.from_pretrained(device="cpu")
    from jotr.config import JOTRConfig, merge_config
    from jotr.models import build_model

    tiny = dict(backbone="resnet18", input_size=64, heatmap_size=16, d_model=32, nhead=2, dec_layers=2)
    torch.manual_seed(0)
    cfg = merge_config(JOTRConfig(), {"model": tiny, "body": {"kind": "toy"}})
    return JOTRPredictor(build_model(cfg, pretrained=False).eval(), cfg)


def _series(step, n: int) -> list[tuple[int, float]]:
    """[(calls done, RSS MB)] with the first point after the warm-up calls."""
    for i in range(WARM):
        step(i)
    points = [(0, _rss_mb())]
    for i in range(n):
        step(WARM + i)
        if (i + 1) % 25 == 0 or i + 1 == n:
            points.append((i + 1, _rss_mb()))
    return points


def bench_web(predictor, n: int, workdir: Path) -> list[tuple[int, float]]:
    from jotr.web.handlers import WebDemo

    with WebDemo(predictor, workdir / "web") as demo:

        def step(i: int) -> None:
            res = demo.reconstruct(EXAMPLES / "two_people.jpg", EXAMPLES / "two_people.json", "auto")
            if not res.ok:
                raise RuntimeError(res.message)

        return _series(step, n)


def _coco17(cx: float, cy: float, s: float) -> list[float]:
    """17 COCO keypoints (x, y, visibility) of a standing figure centred at (cx, cy), height ~ 2 s."""
    rel = [(0, -0.9), (-0.03, -0.93), (0.03, -0.93), (-0.07, -0.9), (0.07, -0.9), (-0.2, -0.65)]
    rel += [(0.2, -0.65), (-0.28, -0.3), (0.28, -0.3), (-0.3, 0.0), (0.3, 0.0), (-0.12, 0.0), (0.12, 0.0)]
    rel += [(-0.12, 0.45), (0.12, 0.45), (-0.12, 0.9), (0.12, 0.9)]
    return [c for x, y in rel for c in (cx + s * x, cy + s * y, 2.0)]


def bench_video(predictor, n: int, workdir: Path) -> list[tuple[int, float]]:
    import cv2

    from jotr.commands.demo import default_args, make_people_source, process_video
    from jotr.viz.overlay import MeshVisualizer

    W, H = 320, 240
    video = workdir / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (W, H))
    entries = []
    for k in range(n + WARM):
        writer.write(np.full((H, W, 3), 60 + k % 100, np.uint8))
        cx = 120 + 80 * k / (n + WARM)
        entries.append({"image_id": k, "keypoints": _coco17(cx, 120, 100), "score": 1.0})
    writer.release()
    kp = workdir / "clip.json"
    kp.write_text(json.dumps(entries))
    source = make_people_source(str(kp), None)
    args = default_args(smooth="one-euro")
    points: list[tuple[int, float]] = []

    # Measure inside the frame loop: RSS after every 25 frames (the predictor call is the hook).
    original = predictor.predict
    counter = {"n": 0}

    def predict(*a, **kw):
        out = original(*a, **kw)
        counter["n"] += 1
        done = counter["n"] - WARM
        if done == 0 or (done > 0 and (done % 25 == 0 or done == n)):
            points.append((done, _rss_mb()))
        return out

    predictor.predict = predict
    try:
        with MeshVisualizer() as vis:
            errors = process_video(video, predictor, source, workdir / "video_out", vis, args)
    finally:
        predictor.predict = original
        source.close()
    if errors:
        raise RuntimeError(f"video frames failed: {errors[:3]}")
    return points


def bench_synth(n: int, workdir: Path) -> list[tuple[int, float]]:
    from jotr.synth.scene import SceneGenerator, SynthOptions
    from jotr.synth.writer import write_split

    options = SynthOptions(width=320, height=240)
    generator = SceneGenerator(options)
    try:
        write_split(workdir / "warm", "oc", WARM, 0, options=options, progress=False, generator=generator)
        points = [(0, _rss_mb())]
        done = 0
        while done < n:
            k = min(10, n - done)
            write_split(
                workdir / f"s{done}", "oc", k, done, options=options, progress=False, generator=generator
            )
            done += k
            points.append((done, _rss_mb()))
    finally:
        generator.close()
    return points


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="RSS growth of the web request, video frame and synth paths")
    p.add_argument("--model", choices=["shipped", "tiny"], default="shipped")
    p.add_argument("--requests", type=int, default=200, help="web requests (0: skip)")
    p.add_argument("--frames", type=int, default=200, help="video frames (0: skip)")
    p.add_argument("--synth", type=int, default=40, help="synthetic images (0: skip)")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    predictor = _predictor(args.model) if args.requests or args.frames else None
    result: dict = {"bench": "memory", "model": args.model}
    with tempfile.TemporaryDirectory() as tmp:
        for name, n, run in (
            ("web", args.requests, lambda n, d: bench_web(predictor, n, d)),
            ("video", args.frames, lambda n, d: bench_video(predictor, n, d)),
            ("synth", args.synth, bench_synth),
        ):
            if n <= 0:
                continue
            folder = Path(tmp) / name
            folder.mkdir()
            t0 = time.perf_counter()
            points = run(n, folder)
            seconds = time.perf_counter() - t0
            growth = points[-1][1] - points[0][1]
            result[name] = {
                "calls": n,
                "rss_start_mb": round(points[0][1], 1),
                "rss_end_mb": round(points[-1][1], 1),
                "growth_mb": round(growth, 1),
                "growth_mb_per_call": round(growth / n, 3),
                "series": [[k, round(v, 1)] for k, v in points],
                "seconds": round(seconds, 1),
            }
    print(f"{'path':<6} {'calls':>6} {'RSS start MB':>12} {'RSS end MB':>10} {'growth MB':>9} {'MB/call':>8}")
    for name in ("web", "video", "synth"):
        if name in result:
            r = result[name]
            print(
                f"{name:<6} {r['calls']:>6} {r['rss_start_mb']:>12.1f} {r['rss_end_mb']:>10.1f} "
                f"{r['growth_mb']:>9.1f} {r['growth_mb_per_call']:>8.3f}"
            )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
