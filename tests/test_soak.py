"""Bounded memory as a tested property: the renderer, the web request path and the video frame path run N
times and the process's resident memory may grow by only a few MB (issue 24: the renderer compiled a new
shader program per render, +3 MB per colour render). ``benchmarks/bench_memory.py`` measures the same at
N = 200 with the shipped model."""

from __future__ import annotations

import gc
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

EXAMPLE = Path(__file__).resolve().parents[1] / "src" / "jotr" / "web" / "examples"


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _rendering() -> bool:
    from jotr.viz.renderer import rendering_available

    return rendering_available()[0]


pytestmark = [
    pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc (Linux)"),
    pytest.mark.skipif(not _rendering(), reason="offscreen rendering not available"),
]


def _growth(step, n: int, warm: int = 3) -> float:
    """RSS growth (MB) over ``n`` calls of ``step(i)`` after ``warm`` warm-up calls."""
    for i in range(warm):
        step(i)
    gc.collect()
    before = _rss_mb()
    for i in range(n):
        step(warm + i)
    gc.collect()
    return _rss_mb() - before


def _sphere(z: float = 3.0):
    import trimesh

    m = trimesh.creation.icosphere(3)
    return np.asarray(m.vertices) * 0.5 + [0.0, 0.0, z], np.asarray(m.faces)


def test_renderer_memory_is_flat():
    from jotr.viz.renderer import Renderer

    v, f = _sphere()
    with Renderer(128, 128) as r:

        def step(i: int) -> None:
            r.render([(v + [0.01 * i, 0, 0], f)], 150.0, (64, 64), alone=[0])
            r.render_depth([(v, f)], 150.0, (64, 64))

        grown = _growth(step, 40)
    assert grown < 15.0, f"RSS grew {grown:.1f} MB over 40 renders"  # unfixed: ~190 MB


def test_visualizer_keeps_few_renderers_for_many_sizes():
    from jotr.viz.overlay import MeshVisualizer

    v, f = _sphere()
    with MeshVisualizer() as vis:
        for w in range(60, 65):
            vis.render(np.zeros((50, w, 3), np.uint8), [(v, f)], (60.0, 60.0), (w / 2, 25.0))
            assert len(vis._renderers) <= MeshVisualizer.MAX_RENDERERS


@pytest.fixture(scope="module")
def predictor():
    from conftest import TINY_MODEL

    from jotr.config import JOTRConfig, merge_config
    from jotr.inference.predictor import JOTRPredictor
    from jotr.models import build_model

    torch.manual_seed(0)
    cfg = merge_config(JOTRConfig(), {"model": TINY_MODEL, "body": {"kind": "toy"}})
    model = build_model(cfg, pretrained=False).eval()
    with torch.no_grad():  # a camera that keeps the random-weight meshes in view
        for p in model.cam_head.parameters():
            p.zero_()
        model.cam_head.layers[0].bias[2] = 1.9
    return JOTRPredictor(model, cfg)


def test_web_requests_memory_is_flat(predictor, tmp_path):
    from jotr.web.handlers import WebDemo

    with WebDemo(predictor, tmp_path) as demo:

        def step(i: int) -> None:
            res = demo.reconstruct(EXAMPLE / "two_people.jpg", EXAMPLE / "two_people.json", "auto")
            assert res.ok, res.message

        grown = _growth(step, 15)
    assert grown < 25.0, f"RSS grew {grown:.1f} MB over 15 web requests"  # unfixed: ~230 MB


def test_video_frames_memory_is_flat(predictor, tmp_path):

    import cv2

    from jotr.commands.demo import default_args, make_people_source, process_video

    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (160, 120))
    for k in range(25):
        frame = np.full((120, 160, 3), 40 + 4 * k, np.uint8)
        writer.write(frame)
    writer.release()
    kp = tmp_path / "kp.json"  # the same person on every frame; COCO results, image id = frame index
    kp.write_text(json.dumps([{"image_id": k, "keypoints": _coco17(), "score": 1.0} for k in range(25)]))
    from jotr.viz.overlay import MeshVisualizer

    args = default_args(smooth="one-euro")
    source = make_people_source(str(kp), None)
    with MeshVisualizer() as vis:
        process_video(video, predictor, source, tmp_path / "warm", vis, args)
        gc.collect()
        before = _rss_mb()
        errors = process_video(video, predictor, source, tmp_path / "out", vis, args)
        gc.collect()
        grown = _rss_mb() - before
    source.close()
    assert errors == [] and (tmp_path / "out" / "params.json").is_file(), errors
    assert grown < 25.0, f"RSS grew {grown:.1f} MB over 25 video frames"  # unfixed: ~180 MB


def _coco17() -> list[int]:
    """17 COCO keypoints (x, y, visibility) of a standing figure around x = 80 in a 160x120 frame."""
    pts = [(80, 20), (78, 18), (82, 18), (75, 20), (85, 20), (70, 35), (90, 35), (66, 55), (94, 55)]
    pts += [(64, 72), (96, 72), (74, 72), (86, 72), (74, 92), (86, 92), (74, 110), (86, 110)]
    return [c for x, y in pts for c in (x, y, 2)]
