"""The web demo's request handling (``jotr.web.handlers``) without a server: the shipped examples end to end,
bad uploads answered by messages, down-scaling of large images, the time limit, the detector path, and the
``jotr serve`` command's model choice. Tiny random-weight model on the procedural toy body."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from jotr.config import JOTRConfig, merge_config
from jotr.errors import InputError
from jotr.inference.predictor import JOTRPredictor
from jotr.models.config import ModelConfig
from jotr.web.handlers import (
    Limits,
    PageResult,
    WebDemo,
    list_examples,
    map_results_back,
    read_image,
    read_keypoints,
    scale_people,
    uploaded_file,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "src" / "jotr" / "web" / "examples"


def _rendering() -> bool:
    from jotr.viz.renderer import rendering_available

    return rendering_available()[0]


@pytest.fixture(scope="module")
def predictor():
    from jotr.models import build_model

    torch.manual_seed(0)
    cfg = merge_config(JOTRConfig(model=ModelConfig.small()), {"body": {"kind": "toy"}})
    model = build_model(cfg, pretrained=False).eval()
    with torch.no_grad():  # a camera that keeps the random-weight meshes in view
        for p in model.cam_head.parameters():
            p.zero_()
        model.cam_head.layers[0].bias[2] = 1.9
    return JOTRPredictor(model, cfg)


@pytest.fixture(scope="module")
def demo(predictor, tmp_path_factory):
    with WebDemo(predictor, tmp_path_factory.mktemp("web"), render=_rendering()) as d:
        yield d


def _assert_inside(paths, folder: Path) -> None:
    for p in paths:
        assert Path(p).resolve().is_relative_to(folder.resolve()), p


def test_examples_ship_with_keypoints():
    examples = list_examples()
    assert len(examples) >= 2
    total = 0
    for image, keypoints in examples:
        assert keypoints is not None and Path(keypoints).is_file()
        total += Path(image).stat().st_size + Path(keypoints).stat().st_size
    assert total < 300_000


def test_example_end_to_end(demo):
    image, keypoints = EXAMPLE / "two_people.jpg", EXAMPLE / "two_people.json"
    res = demo.reconstruct(image, keypoints, "auto")
    assert res.ok, res.message
    assert "2 of 2 people reconstructed" in res.message
    assert res.overlay.shape == (240, 320, 3) and res.overlay.dtype == np.uint8
    if _rendering():
        assert res.side.shape == (240, 320, 3)
        assert (res.overlay != demo_input(image)).any()  # meshes were drawn
    names = sorted(Path(f).name for f in res.files)
    assert names == sorted(
        ["person_00.obj", "person_00.ply", "person_01.obj", "person_01.ply", "params.json", "scene.glb"]
    )
    _assert_inside(res.files, demo.workdir)
    params = json.loads(Path(next(f for f in res.files if f.endswith("params.json"))).read_text())
    assert params["image_size"] == [320, 240] and len(params["people"]) == 2
    assert all(p["error"] is None for p in params["people"])

    import trimesh

    scene = trimesh.load(res.scene_glb, force="scene")
    assert len(scene.geometry) == 2
    # the world frame of every file of the request: y up, the lowest sole on y = 0; obj and glb coincide
    export = np.array(params["export_from_camera"])
    assert params["export_frame"] == "world"
    np.testing.assert_allclose(export[:3, :3], np.diag([1.0, -1.0, -1.0]))
    verts = np.concatenate([g.vertices for g in scene.geometry.values()])
    assert abs(verts[:, 1].min()) < 1e-4
    r0 = res.results[0]
    g0 = scene.geometry["person_00"].vertices
    np.testing.assert_allclose(g0, r0.vertices @ export[:3, :3].T + export[:3, 3], atol=1e-4)
    obj = trimesh.load(next(f for f in res.files if f.endswith("person_00.obj")), process=False)
    np.testing.assert_allclose(obj.vertices, g0, atol=1e-4)


def demo_input(path: Path) -> np.ndarray:
    return read_image(path, Limits())[0]


def test_bad_uploads_give_messages_and_the_service_goes_on(demo, tmp_path):
    not_image = tmp_path / "photo.png"
    not_image.write_bytes(b"this is not a png")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    bad_json = tmp_path / "kps.json"
    bad_json.write_text("{not json")
    other = tmp_path / "other.json"
    other.write_text(json.dumps([{"image_id": i, "keypoints": [1.0] * 51} for i in (5, 6)]))
    wrong_count = tmp_path / "wrong.json"
    wrong_count.write_text(json.dumps([{"image_id": 1, "keypoints": [1.0] * 30}]))
    image, keypoints = EXAMPLE / "two_people.jpg", EXAMPLE / "two_people.json"
    cases = [
        (demo.reconstruct(None), "upload an image"),
        (demo.reconstruct(not_image), "not an image"),
        (demo.reconstruct(empty), "empty"),
        (demo.reconstruct(tmp_path / "missing.png"), "no image"),
        (demo.reconstruct(image, bad_json), "not valid JSON"),
        (demo.reconstruct(image, other), "none for two_people.jpg"),
        (demo.reconstruct(image, wrong_count), "cannot infer the keypoint format"),
        (demo.reconstruct(image, keypoints, "nonsense"), "unknown keypoint format"),
    ]
    for res, expected in cases:
        assert not res.ok and res.message.startswith("**Error:**"), res.message
        assert expected in res.message, res.message
        assert res.overlay is None and res.files == []
    # a format that does not fit the keypoints: every person fails, the page says why for each
    res = demo.reconstruct(image, keypoints, "body25")
    assert res.ok and "0 of 2 people" in res.message and res.message.count("has 25 joints, got 30") == 2
    assert res.scene_glb is None and [Path(f).name for f in res.files] == ["params.json"]
    assert demo.reconstruct(image, keypoints).ok  # still serving


def test_size_and_pixel_limits(predictor, tmp_path):
    image, keypoints = EXAMPLE / "two_people.jpg", EXAMPLE / "two_people.json"
    with WebDemo(predictor, tmp_path / "a", Limits(max_upload_mb=0.01), render=False) as d:
        res = d.reconstruct(image, keypoints)
        assert not res.ok and "limit is 0.01 MB" in res.message
    with WebDemo(predictor, tmp_path / "b", Limits(max_pixels=10_000), render=False) as d:
        res = d.reconstruct(image, keypoints)
        assert not res.ok and "320x240" in res.message and "Mpx" in res.message


def test_per_person_errors_and_max_people(predictor, tmp_path):
    people = json.loads((EXAMPLE / "two_people.json").read_text())
    people.append({"image_id": "two_people", "keypoints": [float("nan")] * 90, "score": 0.1})
    kp = tmp_path / "three.json"
    kp.write_text(json.dumps(people))  # NaN is valid for Python's json
    image = EXAMPLE / "two_people.jpg"
    with WebDemo(predictor, tmp_path / "w", render=False) as d:
        res = d.reconstruct(image, kp)
        assert res.ok and "2 of 3 people reconstructed" in res.message
        assert "person 2: **failed**" in res.message and "NaN" in res.message
        assert not any("person_02" in f for f in res.files)
    with WebDemo(predictor, tmp_path / "m", Limits(max_people=1), render=False) as d:
        res = d.reconstruct(image, EXAMPLE / "two_people.json")
        assert res.ok and "1 of 1 people" in res.message and "only the first 1" in res.message


def test_openpose_upload(demo, tmp_path):
    coco = json.loads((EXAMPLE / "two_people.json").read_text())
    from jotr.body.joint_sets import BODY25, JOTR30

    people = []
    for entry in coco:
        k30 = np.asarray(entry["keypoints"]).reshape(30, 3)
        k25 = np.zeros((25, 3))
        for i, name in enumerate(BODY25.names):
            if name in JOTR30.names:
                k25[i] = k30[JOTR30.names.index(name)]
        people.append({"pose_keypoints_2d": k25.reshape(-1).tolist()})
    op = tmp_path / "frame_keypoints.json"
    op.write_text(json.dumps({"version": 1.3, "people": people}))
    res = demo.reconstruct(EXAMPLE / "two_people.jpg", op)
    assert res.ok and "2 of 2" in res.message, res.message


def test_large_image_is_scaled_and_outputs_map_back(predictor, tmp_path):
    import cv2

    image = EXAMPLE / "two_people.jpg"
    big = tmp_path / "two_people.png"  # 4x, same keypoints x4
    cv2.imwrite(str(big), cv2.resize(cv2.imread(str(image)), (1280, 960), interpolation=cv2.INTER_CUBIC))
    people = json.loads((EXAMPLE / "two_people.json").read_text())
    for p in people:
        k = np.asarray(p["keypoints"]).reshape(30, 3)
        k[:, :2] = (k[:, :2] + 0.5) * 4 - 0.5
        p["keypoints"] = k.reshape(-1).tolist()
        p.pop("bbox")
    kp = tmp_path / "big.json"
    kp.write_text(json.dumps(people))
    with WebDemo(predictor, tmp_path / "w", Limits(max_side=320), render=False) as d:
        small = d.reconstruct(image, EXAMPLE / "two_people.json")
        scaled = d.reconstruct(big, kp)
    assert scaled.ok and "image 1280x960, processed at 320x240" in scaled.message
    assert scaled.overlay.shape == (240, 320, 3)
    for a, b in zip(small.results, scaled.results):
        # the crop box comes from the keypoints only: the same box, in original pixels
        x, y, w, h = a.box_xywh
        np.testing.assert_allclose(
            b.box_xywh, [(x + 0.5) * 4 - 0.5, (y + 0.5) * 4 - 0.5, 4 * w, 4 * h], atol=0.05
        )
        np.testing.assert_allclose(b.focal, np.asarray(a.focal) * 4, rtol=1e-6)
        valid = a.keypoints_jotr30[:, 2] > 0
        np.testing.assert_allclose(
            b.keypoints_jotr30[valid, :2], (a.keypoints_jotr30[valid, :2] + 0.5) * 4 - 0.5, atol=1e-3
        )
    params = json.loads(Path(next(f for f in scaled.files if f.endswith("params.json"))).read_text())
    assert params["image_size"] == [1280, 960]


def test_focal_field(predictor, tmp_path):
    """The page's focal length (original pixels) reaches the predictor through the inference-size scaling,
    comes back in original pixels, and a bad value is answered on the page."""
    import cv2

    big = tmp_path / "two_people.png"
    cv2.imwrite(str(big), cv2.resize(cv2.imread(str(EXAMPLE / "two_people.jpg")), (640, 480)))
    people = json.loads((EXAMPLE / "two_people.json").read_text())
    for p in people:
        k = np.asarray(p["keypoints"]).reshape(30, 3)
        k[:, :2] = (k[:, :2] + 0.5) * 2 - 0.5
        p["keypoints"] = k.reshape(-1).tolist()
        p.pop("bbox")
    kp = tmp_path / "big.json"
    kp.write_text(json.dumps(people))
    with WebDemo(predictor, tmp_path / "w", Limits(max_side=320), render=False) as d:
        res = d.reconstruct(big, kp, focal=1234.0)
        default = d.reconstruct(big, kp, focal="")
        bad = d.reconstruct(big, kp, focal=-5)
    assert res.ok and all(np.allclose(r.focal, (1234.0, 1234.0)) for r in res.results if r.ok)
    assert default.ok and np.allclose(default.results[0].focal, np.hypot(640, 480))
    params = json.loads(Path(next(f for f in res.files if f.endswith("params.json"))).read_text())
    assert params["focal"] == [1234.0, 1234.0]
    assert not bad.ok and "focal length must be a positive number" in bad.message


def test_scale_round_trip():
    from jotr.inference.predictor import PersonInput, PersonResult

    to_small = np.array([[0.25, 0, -0.375], [0, 0.5, -0.25]])
    kps = np.array([[10.0, 20.0, 0.9], [30.0, 5.0, 0.0]])
    p = scale_people([PersonInput(keypoints=kps, box_xywh=np.array([4.0, 8.0, 40.0, 20.0]))], to_small)[0]
    np.testing.assert_allclose(p.keypoints[:, :2], kps[:, :2] @ to_small[:, :2].T + to_small[:, 2])
    np.testing.assert_allclose(p.box_xywh[2:], [10.0, 10.0])
    r = PersonResult(
        index=0,
        box_xywh=p.box_xywh.copy(),
        crop_to_img=np.array([[1.0, 0, 0], [0, 1.0, 0]]),
        joints_img=p.keypoints[:, :2].astype(np.float32),
        keypoints_jotr30=p.keypoints.astype(np.float32),
        focal=(50.0, 100.0),
        princpt=(1.0, 2.0),
    )
    map_results_back([r], to_small)
    np.testing.assert_allclose(r.joints_img, kps[:, :2], atol=1e-4)
    np.testing.assert_allclose(r.box_xywh, [4.0, 8.0, 40.0, 20.0], atol=1e-9)
    np.testing.assert_allclose(r.focal, (200.0, 200.0))
    # crop px -> original px = (small -> original) o (crop -> small)
    np.testing.assert_allclose(r.crop_to_img, [[4.0, 0, 1.5], [0, 2.0, 0.5]])
    assert r.keypoints_jotr30[1, 0] == 30 * 0.25 - 0.375  # missed joints (confidence 0) stay as they were


def test_time_limit(predictor, tmp_path):
    class Slow:
        def __init__(self, inner):
            self.inner, self.cfg = inner, inner.cfg

        @property
        def faces(self):
            return self.inner.faces

        def predict(self, *a, **k):
            time.sleep(1.0)
            return self.inner.predict(*a, **k)

    with WebDemo(Slow(predictor), tmp_path / "w", Limits(timeout_s=0.3), render=False) as d:
        t0 = time.perf_counter()
        res = d.reconstruct(EXAMPLE / "two_people.jpg", EXAMPLE / "two_people.json")
        assert time.perf_counter() - t0 < 0.9
        assert not res.ok and "longer than 0.3 s" in res.message
        time.sleep(1.2)  # the stopped job wrote nothing
        assert not any(d.workdir.glob("request-*/*"))


def test_detector_path(predictor, tmp_path):
    from jotr.inference.detector import Detection, DetectionReport

    kps = np.asarray(json.loads((EXAMPLE / "two_people.json").read_text())[0]["keypoints"]).reshape(30, 3)
    coco = kps[[24, 25, 26, 27, 28, 16, 17, 18, 19, 20, 21, 1, 2, 4, 5, 7, 8]]  # jotr30 -> COCO-17

    class Fake:
        def __init__(self, found):
            self.found = found

        def detect(self, image, name):
            people = [Detection(coco, np.array([0.0, 0.0, 10.0, 10.0]), 0.9)] if self.found else []
            return DetectionReport(people, skipped=["score 0.15 < 0.2"] if self.found else [])

    image = EXAMPLE / "two_people.jpg"
    with WebDemo(predictor, tmp_path / "a", render=False, detector_factory=lambda: Fake(True)) as d:
        res = d.reconstruct(image)
        assert res.ok and "1 of 1" in res.message and "built-in detector" in res.message
        assert "1 person found; 1 candidate dropped (score 0.15 < 0.2)" in res.message
        params = json.loads(Path(next(f for f in res.files if f.endswith("params.json"))).read_text())
        assert params["detection"]["people_found"] == 1 and params["detection"]["people_reconstructed"] == 1
    with WebDemo(predictor, tmp_path / "b", render=False, detector_factory=lambda: Fake(False)) as d:
        res = d.reconstruct(image)
        assert not res.ok and "found nobody" in res.message

    def missing():
        raise InputError("detector weights not found")

    with WebDemo(predictor, tmp_path / "c", render=False, detector_factory=missing) as d:
        res = d.reconstruct(image)
        assert not res.ok and "weights not found" in res.message and "Upload a keypoint JSON" in res.message


def test_internal_errors_do_not_escape(predictor, tmp_path):
    class Broken:
        cfg = predictor.cfg
        faces = predictor.faces

        def predict(self, *a, **k):
            raise RuntimeError("boom")

    with WebDemo(Broken(), tmp_path / "w", render=False) as d:
        res = d.reconstruct(EXAMPLE / "two_people.jpg", EXAMPLE / "two_people.json")
    assert (
        isinstance(res, PageResult)
        and not res.ok
        and "internal error" in res.message
        and "boom" in res.message
    )


def test_old_request_folders_are_pruned(predictor, tmp_path):
    with WebDemo(predictor, tmp_path / "w", Limits(keep_s=0.0), render=False) as d:
        first = d.reconstruct(EXAMPLE / "two_people.jpg", EXAMPLE / "two_people.json")
        time.sleep(0.05)
        d.reconstruct(EXAMPLE / "two_people.jpg", EXAMPLE / "two_people.json")
        assert not Path(first.files[0]).exists()
        assert len(list(d.workdir.glob("request-*"))) == 1


def test_read_keypoints_picks_the_image(tmp_path):
    kp = tmp_path / "k.json"
    kp.write_text(
        json.dumps(
            [
                {"image_id": 7, "keypoints": [10.0, 10.0, 1.0] * 17},
                {"image_id": 8, "keypoints": [20.0, 20.0, 1.0] * 17},
            ]
        )
    )
    (people,) = read_keypoints(kp, "auto", "000000000008.jpg", Limits())
    assert people.keypoint_format == "coco17" and people.keypoints[0, 0] == 20.0
    with pytest.raises(InputError, match="none for x.jpg"):
        read_keypoints(kp, None, "x.jpg", Limits())


def test_serve_command_model_choice(monkeypatch, tmp_path):
    from jotr.cli import main
    from jotr.commands import serve

    with pytest.raises(SystemExit) as exc:
        main(["serve", "--help"])
    assert exc.value.code == 0
    args = argparse.Namespace(checkpoint=None, device="cpu", overrides=[], bf16=False)
    monkeypatch.delattr(JOTRPredictor, "from_pretrained", raising=False)
    with pytest.raises(InputError, match="--checkpoint"):
        serve.load_predictor(args)
    args.checkpoint = str(tmp_path / "missing.pt")
    with pytest.raises(Exception, match="missing.pt"):
        serve.load_predictor(args)


def test_uploaded_file_payloads(tmp_path):
    uploads = tmp_path / "uploads"
    (uploads / "abc").mkdir(parents=True)
    f = uploads / "abc" / "photo.jpg"
    f.write_bytes(b"x")
    roots = [uploads.resolve()]
    assert uploaded_file(None, roots) == (None, None)
    assert uploaded_file({"path": str(f), "orig_name": "My Photo.jpg"}, roots) == (
        str(f.resolve()),
        "My Photo.jpg",
    )
    assert uploaded_file({"path": str(f)}, roots) == (str(f.resolve()), "photo.jpg")
    for bad in ({"path": "/etc/passwd"}, {"path": str(uploads / ".." / "x.jpg")}):
        with pytest.raises(InputError, match="only come from an upload"):
            uploaded_file(bad, roots)
    with pytest.raises(InputError, match="could not be read"):
        uploaded_file({"url": "http://x"}, roots)


def test_built_in_detector_finds_both_people(predictor, tmp_path):
    """No keypoint file: the default (real) detector finds the two people of the example and the page and its
    params.json say so."""
    with WebDemo(predictor, tmp_path / "w", render=False) as d:
        res = d.reconstruct(EXAMPLE / "two_people.jpg")
    assert res.ok and "2 of 2 people reconstructed" in res.message, res.message
    assert "built-in detector: 2 people found" in res.message
    params = json.loads(Path(next(f for f in res.files if f.endswith("params.json"))).read_text())
    assert params["detection"]["people_found"] == 2
