"""Tracking for videos (jotr.inference.tracking) on synthetic clips with known identities
(jotr.synth.walkers): people crossing, one walking out and another walking in at the same edge, one hidden
behind a pillar for several frames; detections with noise, missed frames and hidden joints."""

from __future__ import annotations

import numpy as np
import pytest

from jotr.errors import InputError
from jotr.inference.smoothing import OneEuroFilter
from jotr.inference.tracking import (
    PersonTracker,
    TrackerConfig,
    TrackInput,
    box_iou_xyxy,
    track_input,
    track_people,
)
from jotr.synth.walkers import Walker, crossing_scene, identity_errors, make_clip

SIZE = (640, 360)


def _track(frames, cfg=None):
    tracker = PersonTracker(cfg)
    ids = [
        tracker.update(f.index, [TrackInput(b, k) for b, k in zip(f.boxes_xyxy, f.keypoints)], SIZE)
        for f in frames
    ]
    return ids, tracker


def _runs(mask: np.ndarray) -> int:
    """Longest run of True."""
    best = cur = 0
    for m in mask:
        cur = cur + 1 if m else 0
        best = max(best, cur)
    return best


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_crossing_clip_keeps_every_identity(seed):
    walkers, occluders, n = crossing_scene(SIZE)
    frames = make_clip(walkers, n, SIZE, occluders=occluders, noise=0.01, miss_rate=0.05, seed=seed)
    # The clip has the events it claims: A and B swap sides, C leaves before D enters at the same edge,
    # E is hidden for several frames in a row, detections are missed at random.
    ax = np.array([walkers[0].feet(t)[0] for t in range(n)])
    bx = np.array([walkers[1].feet(t)[0] for t in range(n)])
    assert ax[0] < bx[0] and ax[-1] > bx[-1]
    seen = np.array([[p in f.person for p in range(len(walkers))] for f in frames])  # (T, N)
    present = np.array([f.present for f in frames])
    assert seen[:, 2].any() and seen[:, 3].any() and not (present[:, 2] & present[:, 3]).any()
    assert _runs(present[:, 4] & ~seen[:, 4]) >= 5
    assert (present & ~seen).sum() > 10

    ids, tracker = _track(frames)
    err = identity_errors(frames, ids)
    assert err.people == len(walkers)
    assert err.swaps == 0  # no id ever given to two people (C and D included)
    assert err.switches == 0 and err.tracks == len(walkers)  # and no person changed id (E included)
    assert tracker.next_id == len(walkers)


def test_ids_are_never_reused_and_tracks_end():
    w = Walker((500, 300), (760, 300), 0, 9, 150, depth=1.0)  # walks out of the right edge
    frames = make_clip([w], 10, SIZE, noise=0.0)
    assert len(frames[0].person) == 1 and len(frames[-1].person) == 0
    ids, tracker = _track(frames)
    assert {int(i) for f in ids for i in f} == {0}
    assert tracker.tracks == {} and tracker.next_id == 1  # out of the image: ended at once
    # Without the image size a lost track lives max_age frames; an ended id is never given again.
    t2 = PersonTracker(TrackerConfig(max_age=2))
    box = np.array([10.0, 10, 50, 100])
    assert t2.update(0, [TrackInput(box)]).tolist() == [0]
    assert t2.update(2, [TrackInput(box)]).tolist() == [0]  # a gap of 2 frames <= max_age
    assert t2.update(6, [TrackInput(box)]).tolist() == [1] and t2.ended == [0]
    assert t2.update(7, [TrackInput(box), TrackInput(box + 200)]).tolist() == [1, 2]


def test_two_people_swapping_list_order_keep_ids():
    rng = np.random.default_rng(0)
    tracker = PersonTracker()
    kps = rng.uniform(0, 80, (2, 17, 3))
    kps[..., 2] = 0.9
    kps[1, :, 0] += 300
    for t in range(5):
        order = [1, 0] if t % 2 else [0, 1]
        people = [
            TrackInput([k[:, 0].min(), k[:, 1].min(), k[:, 0].max(), k[:, 1].max()], k) for k in kps + t
        ]
        ids = tracker.update(t, [people[i] for i in order])
        assert ids[order.index(0)] == 0 and ids[order.index(1)] == 1


def test_tracker_input_errors_and_box_iou():
    with pytest.raises(InputError, match="does not follow"):
        t = PersonTracker()
        t.update(3, [])
        t.update(3, [])
    with pytest.raises(InputError, match="max_age"):
        TrackerConfig(max_age=-1)
    with pytest.raises(InputError, match="box"):
        TrackInput([0, 0, np.nan, 1])
    with pytest.raises(InputError, match=r"\(K, 3\)"):
        TrackInput([0, 0, 1, 1], np.zeros((17, 2)))
    iou = box_iou_xyxy(np.array([[0, 0, 10, 10.0]]), np.array([[5, 0, 15, 10.0], [20, 20, 20, 20.0]]))
    np.testing.assert_allclose(iou, [[1 / 3, 0.0]])


def test_track_input_from_predictor_people():
    coco = np.zeros((17, 3))
    coco[:, 0] = np.linspace(10, 50, 17)
    coco[:, 1] = np.linspace(20, 120, 17)
    coco[:, 2] = 0.9
    ti = track_input(coco, "coco17")
    assert ti.keypoints.shape == (30, 3)  # jotr30, whatever the file's format
    np.testing.assert_allclose(ti.box_xyxy, [10, 20, 50, 120])
    box_only = track_input(None, None, np.array([5.0, 6, 10, 20]))
    np.testing.assert_allclose(box_only.box_xyxy, [5, 6, 15, 26])
    assert box_only.keypoints is None
    assert track_input(None, None, None) is None
    assert track_input(np.zeros((17, 3)), "coco17", None) is None  # no confident joint, no box
    with pytest.raises(InputError, match="NaN"):
        track_input(np.full((17, 3), np.nan), "coco17")


# ------------------------------------------------------------------------------- through `jotr demo`


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from conftest import TINY_MODEL, toy_demo_checkpoint

    return toy_demo_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", TINY_MODEL)


def test_demo_video_tracks_people_with_or_without_smoothing(tiny_checkpoint, tmp_path, capsys):
    import json

    import cv2

    from jotr.cli import main
    from jotr.synth.walkers import draw_frame

    size = (320, 180)
    walkers, occluders, _ = crossing_scene(size)
    n = 48  # C has left (frame ~31) and D has come in (frame ~39)
    frames = make_clip(walkers, n, size, occluders=occluders, noise=0.01, miss_rate=0.05, seed=0)
    video = tmp_path / "walk.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, size)
    for t in range(n):
        writer.write(cv2.cvtColor(draw_frame(walkers, t, size, occluders), cv2.COLOR_RGB2BGR))
    writer.release()
    entries, truth = [], {}
    for f in frames:  # COCO results, as a detector writes them; ground truth per (frame, index in frame)
        for i, (box, kps, who) in enumerate(zip(f.boxes_xyxy, f.keypoints, f.person)):
            x0, y0, x1, y1 = box.tolist()
            entries.append(
                {"image_id": f.index, "category_id": 1, "score": 0.9, "bbox": [x0, y0, x1 - x0, y1 - y0]}
                | {"keypoints": kps.reshape(-1).tolist()}
            )
            truth[f.index, i] = int(who)
    kp_file = tmp_path / "keypoints.json"
    kp_file.write_text(json.dumps(entries))

    runs = {}
    for smooth in ("none", "one-euro"):
        out = tmp_path / smooth
        args = ["demo", str(video), "--checkpoint", str(tiny_checkpoint), "--out", str(out)]
        args += ["--keypoints", str(kp_file), "--smooth", smooth, "--no-render", "--no-meshes"]
        assert main(args) == 0
        runs[smooth] = (
            np.load(out / "walk" / "params.npz"),
            json.loads((out / "walk" / "params.json").read_text()),
        )

    raw, meta = runs["none"]
    smoothed, meta_s = runs["one-euro"]
    np.testing.assert_array_equal(raw["frame"], smoothed["frame"])
    np.testing.assert_array_equal(raw["track_id"], smoothed["track_id"])  # ids do not depend on smoothing
    # Every detected person is tracked and reconstructed; the counts say so, per frame and in total.
    assert meta["summary"] == {
        "frames": n,
        "detected": len(entries),
        "tracked": len(entries),
        "reconstructed": len(entries),
        "track_ids": len(walkers),
    }
    assert [fr["detected"] for fr in meta["frames"]] == [len(f.person) for f in frames]
    assert f"people detected {len(entries)}, tracked {len(entries)} ({len(walkers)} track ids)" in (
        capsys.readouterr().out
    )
    # No identity swap: each track id is one walker and each walker one track id (C leaves, D enters).
    who = [truth[f, i] for f, i in zip(raw["frame"].tolist(), raw["person_index"].tolist())]
    pairs = set(zip(who, raw["track_id"].tolist()))
    assert len(pairs) == len(walkers) == len({w for w, _ in pairs}) == len({k for _, k in pairs})
    # No blending: each track's smoothed translation is exactly a One-Euro filter run over that person's own
    # unsmoothed translations (a fresh filter per track, dt = frames since its last row / fps).
    expected = np.zeros_like(raw["translation"])
    for k in np.unique(raw["track_id"]):
        rows = np.flatnonzero(raw["track_id"] == k)
        filt, last = OneEuroFilter(), None
        for r in rows:
            dt = (raw["frame"][r] - last) / 30.0 if last is not None else 1 / 30.0
            expected[r] = filt(raw["translation"][r].astype(np.float64), dt)
            last = raw["frame"][r]
    np.testing.assert_allclose(smoothed["translation"], expected, atol=1e-4)
    assert np.abs(smoothed["translation"] - raw["translation"]).max() > 1e-3  # it did smooth


def test_tracking_benchmark_quick(capsys):
    import json
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:  # ``benchmarks`` is a folder of the repository, not an installed package
        sys.path.insert(0, root)
    from benchmarks import bench_tracking

    bench_tracking.main(["--quick"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = {(r["scene"], r["tracker"]): r for r in result["rows"]}
    assert set(rows) == {(s, t) for s in ("crowd", "crossing") for t in ("PersonTracker", "greedy IoU")}
    assert (
        rows["crowd", "PersonTracker"]["frames"] == 40 and rows["crossing", "PersonTracker"]["frames"] == 60
    )
    assert rows["crossing", "PersonTracker"]["swaps"] == 0
    for scene in ("crowd", "crossing"):  # both trackers scored on the same detections
        assert rows[scene, "PersonTracker"]["detections"] == rows[scene, "greedy IoU"]["detections"] > 0


def test_track_people_marks_unusable_people():
    from jotr.inference.predictor import PersonInput

    good = np.zeros((17, 3))
    good[:, 0], good[:, 1], good[:, 2] = np.linspace(10, 50, 17), np.linspace(20, 120, 17), 0.9
    people = [
        PersonInput(keypoints=good),
        PersonInput(keypoints=np.zeros((17, 3))),  # no confident joint and no box
        PersonInput(keypoints=np.full((17, 3), np.nan)),  # the predictor rejects it with the reason
        PersonInput(box_xywh=np.array([200.0, 20, 40, 100])),
    ]
    tracker = PersonTracker()
    assert track_people(tracker, 0, people).tolist() == [0, -1, -1, 1]
    assert track_people(tracker, 1, people[::-1]).tolist() == [1, -1, -1, 0]
    assert track_people(tracker, 2, []).tolist() == []


def test_demo_video_reports_skipped_people_and_empty_frames(tiny_checkpoint, tmp_path, capsys):
    import json

    import cv2

    from jotr.cli import main

    W, H = 160, 120
    video = tmp_path / "few.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (W, H))
    for _ in range(3):
        writer.write(np.full((H, W, 3), 200, np.uint8))
    writer.release()
    person = np.zeros((17, 3))
    person[:, 0], person[:, 1], person[:, 2] = np.linspace(20, 60, 17), np.linspace(10, 110, 17), 0.9
    entries = [  # frame 1: a second person without any confident joint; frame 2: no entry at all
        {
            "image_id": t,
            "category_id": 1,
            "score": 0.9,
            "keypoints": (person + [2 * t, 0, 0]).reshape(-1).tolist(),
        }
        for t in range(2)
    ] + [{"image_id": 1, "category_id": 1, "score": 0.9, "keypoints": np.zeros(51).tolist()}]
    kp_file = tmp_path / "kp.json"
    kp_file.write_text(json.dumps(entries))
    out = tmp_path / "out"
    args = ["demo", str(video), "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--keypoints"]
    assert main([*args, str(kp_file), "--smooth", "none", "--no-render", "--no-meshes"]) == 1
    meta = json.loads((out / "few" / "params.json").read_text())
    f0, f1, f2 = meta["frames"]
    assert (f0["detected"], f0["tracked"], f0["reconstructed"], f0["track_ids"]) == (1, 1, 1, [0])
    assert (f1["detected"], f1["tracked"], f1["reconstructed"], f1["track_ids"]) == (2, 1, 1, [0])
    assert [(s["person_index"], s["track_id"]) for s in f1["skipped"]] == [(1, -1)]
    assert "box" in f1["skipped"][0]["error"]
    assert (f2["detected"], f2["reconstructed"]) == (0, 0) and "no keypoints" in f2["error"]
    assert meta["summary"] == {"frames": 3, "detected": 3, "tracked": 2, "reconstructed": 2, "track_ids": 1}
    captured = capsys.readouterr()
    assert "people detected 3, tracked 2 (1 track ids), reconstructed 2" in captured.out
