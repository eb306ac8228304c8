"""Synthetic occluded-people generator: ground truth vs rendering, occlusion per family, determinism, reader.

A few small scenes per family (256x256) from one generator shared by the module.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from jotr.body.joint_sets import JOTR30
from jotr.errors import InputError

renderer_mod = pytest.importorskip("jotr.viz.renderer")
_OK, _WHY = renderer_mod.rendering_available()
pytestmark = pytest.mark.skipif(not _OK, reason=f"offscreen rendering unavailable: {_WHY}")

SIZE = 256
NUM_PER_FAMILY = {"none": 2, "oc": 4, "pc": 4, "crowd": 2}


@pytest.fixture(scope="module")
def generator(anny_cache_env):
    from jotr.synth.scene import SceneGenerator, SynthOptions

    gen = SceneGenerator(SynthOptions(width=SIZE, height=SIZE))
    yield gen
    gen.close()


@pytest.fixture(scope="module")
def scenes(generator):
    return {fam: [generator.generate(fam, 11, i) for i in range(n)] for fam, n in NUM_PER_FAMILY.items()}


@pytest.fixture(scope="module")
def train_body(anny_cache_env):
    """The training body model (reduced topology, same rig)."""
    from jotr.body.anny import AnnyBody

    return AnnyBody()


def _all(scenes):
    for fam, items in scenes.items():
        for scene in items:
            yield fam, scene


def _regress(body, bp, set_name="jotr30"):
    from jotr.geometry.rotations import aa_to_rotmat

    pose = aa_to_rotmat(torch.as_tensor(np.asarray(bp["pose_aa"]), dtype=torch.float32))
    shape = torch.as_tensor(np.asarray(bp["shape"]), dtype=torch.float32)
    with torch.no_grad():
        out = body(pose[None], shape[None])
        return body.joints(out, set_name)[0].double().numpy() + np.asarray(bp["trans"])


def test_parameters_reproduce_joints_and_keypoints(scenes, generator, train_body):
    """Stored (pose_aa, shape, trans) regenerate the 3D joints (rendered mesh: exactly; training body model of
    the same rig: within a centimetre), and the 2D joints are their projection with the stored intrinsics."""
    from jotr.geometry.camera import project_points

    for _, scene in _all(scenes):
        cam = scene.image_info["cam_param"]
        for ann in scene.persons:
            bp = ann["body_param"]
            for set_name in ("jotr30", "h36m17", "coco17"):
                np.testing.assert_allclose(
                    _regress(generator.body, bp, set_name), ann[f"joints_3d_{set_name}"], atol=2e-4
                )
            np.testing.assert_allclose(_regress(train_body, bp), ann["joints_3d_jotr30"], atol=0.01)
            for set_name in ("jotr30", "coco17"):
                uv = project_points(
                    torch.as_tensor(ann[f"joints_3d_{set_name}"]), tuple(cam["focal"]), tuple(cam["princpt"])
                ).numpy()
                assert np.abs(uv - ann[f"joints_2d_{set_name}"]).max() < 1e-3
            # jotr15 is the documented subset of jotr30; the COCO keypoints carry their visibility flags.
            from jotr.body.joint_sets import JOTR15_FROM_30

            np.testing.assert_allclose(ann["joints_3d_jotr15"], ann["joints_3d_jotr30"][list(JOTR15_FROM_30)])
            kp = np.asarray(ann["keypoints"]).reshape(17, 3)
            assert ann["num_keypoints"] == int((kp[:, 2] > 0).sum())


def test_visibility_agrees_with_depth(scenes):
    from jotr.synth.scene import VIS_OBJECT, VIS_OUTSIDE, VIS_PERSON, VIS_VISIBLE

    for _, scene in _all(scenes):
        res = scene.render
        n_persons = scene.image_info["num_persons"]
        for ann, alone in zip(scene.persons, scene.person_depths, strict=True):
            i = ann["person_index"]
            uv, z = ann["joints_2d_jotr30"], ann["joints_3d_jotr30"][:, 2]
            col, row = np.round(uv[:, 0]).astype(int), np.round(uv[:, 1]).astype(int)
            inside = (col >= 0) & (col < SIZE) & (row >= 0) & (row < SIZE)
            vis = ann["visibility_jotr30"]
            assert np.array_equal(vis == VIS_OUTSIDE, ~inside)
            for j in np.nonzero(inside)[0]:
                inst, depth, own = (
                    res.instance[row[j], col[j]],
                    res.depth[row[j], col[j]],
                    alone[row[j], col[j]],
                )
                if vis[j] == VIS_VISIBLE:
                    assert inst in (i, -1) or depth >= z[j]
                    if own > 0:
                        assert depth == pytest.approx(own, abs=1e-4)  # own surface is the front-most one
                else:
                    assert inst != i and depth < z[j]
                    assert (inst < n_persons) == (vis[j] == VIS_PERSON)
                    assert own == 0 or depth < own  # something is in front of the person's own surface
            # Visible fraction = visible pixels / pixels alone.
            assert ann["pixels_alone"] == int((alone > 0).sum())
            assert ann["pixels_visible"] == int((res.instance == i).sum())
            assert ann["visible_fraction"] == pytest.approx(ann["pixels_visible"] / ann["pixels_alone"])
            # Detector-like input: (30, 3), occluded joints missed far more often than visible ones.
            assert ann["input_keypoints"].shape == (30, 3)
            assert np.all(ann["input_keypoints"][vis == VIS_OUTSIDE, 2] == 0)
        assert VIS_OBJECT != VIS_PERSON


def test_families_really_occlude(scenes):
    from jotr.synth.scene import VIS_OBJECT, VIS_PERSON

    def targets(fam):
        return [s.persons[0] for s in scenes[fam]]

    for t in targets("none"):
        assert t["is_target"] and t["visible_fraction"] == 1.0
        assert not np.isin(t["visibility_jotr30"], (VIS_OBJECT, VIS_PERSON)).any()
    for fam, code in (("oc", VIS_OBJECT), ("pc", VIS_PERSON)):
        vf = np.array([t["visible_fraction"] for t in targets(fam)])
        assert np.mean(vf < 0.99) >= 0.75, (fam, vf)
        assert any((t["visibility_jotr30"] == code).any() for t in targets(fam))
    for s in scenes["oc"]:
        assert s.image_info["num_persons"] == 1 and len(s.image_info["occluders"]) >= 1
    for s in scenes["pc"]:
        assert 2 <= s.image_info["num_persons"] <= 3
    for s in scenes["crowd"]:
        assert s.image_info["num_persons"] >= 4
    # Variety: people differ in phenotype, pose archetype and appearance; backgrounds are not constant.
    params = [p["body_param"] for _, s in _all(scenes) for p in s.persons]
    assert np.std([p["shape"][4] for p in params]) > 0.05
    assert len({p["archetype"] for p in params}) >= 3
    means = [s.image.reshape(-1, 3).mean(0) for _, s in _all(scenes)]
    assert np.std(means, axis=0).max() > 10


def test_poses_within_limits_and_varied():
    from jotr.synth.poses import ARCHETYPES, _limits_for, sample_pose

    labels = (
        "root",
        "upperleg01.L",
        "upperleg01.R",
        "lowerleg01.L",
        "lowerleg01.R",
        "spine03",
        "upperarm01.L",
        "upperarm01.R",
        "lowerarm01.L",
        "lowerarm01.R",
        "head",
        "eye.L",
    )
    rng = np.random.default_rng(0)
    knees = {}
    for arch in ARCHETYPES:
        for _ in range(30):
            s = sample_pose(rng, labels, arch)
            assert "eye.L" not in s.angles  # not posed
            for label, ang in s.angles.items():
                lim = _limits_for(label)
                assert np.all(ang >= lim[:, 0] - 1e-9) and np.all(ang <= lim[:, 1] + 1e-9), (arch, label, ang)
            knees.setdefault(arch, []).append(s.angles["lowerleg01.L"][0] + s.angles["lowerleg01.R"][0])
    # Sitting / crouching bend the knees far more than standing (poses are not noise around the rest pose).
    assert np.mean(knees["sitting"]) > np.mean(knees["standing"]) + 80
    assert np.mean(knees["crouching"]) > np.mean(knees["standing"]) + 120


def test_split_deterministic_and_reader_round_trip(generator, tmp_path):
    from jotr.data.config import DatasetSpec
    from jotr.data.datasets.synthetic import SyntheticReader
    from jotr.synth.writer import write_split

    a = write_split(
        tmp_path / "a", "pc", 2, seed=5, generator=generator, options=generator.options, progress=False
    )
    b = write_split(
        tmp_path / "b", "pc", 2, seed=5, generator=generator, options=generator.options, progress=False
    )
    text = (tmp_path / "a" / "pc.json").read_bytes()
    assert text == (tmp_path / "b" / "pc.json").read_bytes()
    assert a.num_images == 2 and a.images_per_second > 0 and b.num_annotations == a.num_annotations
    assert (tmp_path / "a" / "pc.json").stat().st_mode & 0o777 == 0o644
    doc = json.loads(text)
    assert len(doc["images"]) == 2 and doc["info"]["family"] == "pc"
    for img in doc["images"]:
        assert (tmp_path / "a" / "images" / img["file_name"]).is_file()

    reader = SyntheticReader(DatasetSpec(name="synthetic", root=str(tmp_path / "a"), split="pc"))
    assert len(reader) == 2 and not reader.skipped
    everyone = SyntheticReader(
        DatasetSpec(name="synthetic", root=str(tmp_path / "a"), split="pc", options={"targets_only": False})
    )
    kept = [a for a in doc["annotations"] if not a["too_truncated"]]
    assert len(everyone) == len(kept) > 2
    assert everyone.skipped.get("too truncated", 0) == len(doc["annotations"]) - len(kept)
    rec, ann = reader.records[0], doc["annotations"][0]
    assert ann["is_target"] and rec.body_model == "anny" and rec.is_3d and rec.has_fit
    np.testing.assert_allclose(rec.joints_img, ann["joints_2d_jotr30"])
    np.testing.assert_allclose(rec.joints_cam, ann["joints_3d_jotr30"])
    np.testing.assert_allclose(rec.input_keypoints, ann["input_keypoints"])
    np.testing.assert_allclose(rec.pose_aa, ann["body_param"]["pose_aa"])
    assert rec.shape.shape == (6,) and rec.trans.shape == (3,)
    assert rec.focal == tuple(doc["images"][0]["cam_param"]["focal"])
    assert rec.visible_fraction == ann["visible_fraction"] and rec.joints_img.shape == (len(JOTR30), 2)
    assert rec.extra["occluded"].dtype == bool and len(rec.extra["others_img"]) >= 1

    # Malformed entries are skipped and counted.
    doc["annotations"][0]["joints_2d_jotr30"] = [[0.0, 0.0]] * 3
    doc["annotations"][1]["body_param"] = None
    (tmp_path / "a" / "broken.json").write_text(json.dumps(doc))
    (tmp_path / "a" / "images" / "broken").mkdir()
    broken = SyntheticReader(
        DatasetSpec(
            name="synthetic", root=str(tmp_path / "a"), split="broken", options={"targets_only": False}
        )
    )
    assert broken.skipped == {"malformed annotation": 2}
    assert len(broken) == len(doc["annotations"]) - 2

    with pytest.raises(InputError, match="not found"):
        SyntheticReader(DatasetSpec(name="synthetic", root=str(tmp_path / "a"), split="crowd"))
    with pytest.raises(InputError, match="image folder"):
        (tmp_path / "c").mkdir()
        (tmp_path / "c" / "pc.json").write_bytes(text)
        SyntheticReader(DatasetSpec(name="synthetic", root=str(tmp_path / "c"), split="pc"))
    with pytest.raises(InputError, match="unknown option"):
        SyntheticReader(DatasetSpec(name="synthetic", root=str(tmp_path / "a"), split="pc", options={"x": 1}))


def test_write_split_keeps_existing_json_and_checks_args(generator, tmp_path):
    from jotr.synth.writer import write_split

    with pytest.raises(InputError, match="family"):
        write_split(tmp_path, "bogus", 1, generator=generator, options=generator.options)
    with pytest.raises(InputError, match="num"):
        write_split(tmp_path, "oc", 0, generator=generator, options=generator.options)
    existing = tmp_path / "oc.json"
    existing.write_text("{}")
    with pytest.raises(InputError, match="already exists; pass --force"):  # never replaced silently
        write_split(tmp_path, "oc", 2, generator=generator, options=generator.options, progress=False)

    class Boom(RuntimeError):
        pass

    def explode(*args, **kwargs):
        raise Boom

    original = generator.generate
    generator.generate = explode  # a run that dies on its first scene
    try:
        with pytest.raises(Boom):
            write_split(
                tmp_path, "oc", 2, generator=generator, options=generator.options, progress=False, force=True
            )
    finally:
        del generator.generate
    assert generator.generate == original
    # a failed run leaves the existing split as it was, and no images or staging folders
    assert existing.read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["oc.json"]


def test_existing_split_needs_force_and_only_jotr_folders_are_replaced(generator, tmp_path):
    from jotr.synth.writer import write_split

    def write(**kw):
        return write_split(
            tmp_path, "oc", 1, generator=generator, options=generator.options, progress=False, **kw
        )

    write()
    first = (tmp_path / "oc.json").read_bytes()
    with pytest.raises(InputError, match="already exists; pass --force"):
        write(seed=3)
    assert (tmp_path / "oc.json").read_bytes() == first  # not deleted at start
    write(seed=3, force=True)
    assert (tmp_path / "oc.json").read_bytes() != first
    assert sorted(p.name for p in (tmp_path / "images" / "oc").iterdir()) == [".jotr-output", "000000.jpg"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "oc.json"]  # no staging left
    user = tmp_path / "images" / "mine"
    user.mkdir()
    (user / "photo.jpg").write_bytes(b"holiday")
    with pytest.raises(InputError, match="not created by jotr"):
        write(split="mine", force=True)
    assert (user / "photo.jpg").read_bytes() == b"holiday"


def test_cli_arguments(tmp_path, capsys):
    from jotr.cli import main

    assert main(["synth", "--split", "oc", "--num", "0", "--out", str(tmp_path)]) == 2
    assert "--num must be" in capsys.readouterr().err
    assert main(["synth", "--split", "oc", "--out", str(tmp_path), "--width", "10"]) == 2
    assert "at least 64x64" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["synth", "--split", "bogus", "--out", str(tmp_path)])
    assert not list(tmp_path.glob("*.json"))


# ---------------------------------------------------------------------------------------------- pose modes

_LABELS = (
    "root",
    "upperleg01.L",
    "upperleg01.R",
    "lowerleg01.L",
    "lowerleg01.R",
    "foot.L",
    "foot.R",
    "spine05",
    "spine04",
    "spine03",
    "spine02",
    "spine01",
    "neck01",
    "neck02",
    "head",
    "clavicle.L",
    "clavicle.R",
    "upperarm01.L",
    "upperarm01.R",
    "lowerarm01.L",
    "lowerarm01.R",
    "wrist.L",
    "wrist.R",
    "eye.L",
)


def test_pose_modes_within_limits_and_characteristic():
    """Every pose mode stays inside the joint limits; each mode looks like what it claims (raised arms,
    bent knees, asymmetric arms, a lay-down rotation only when lying); the mix is honoured."""
    from jotr.synth.poses import DEFAULT_POSE_MIX, POSE_MODES, _limits_for, _mirror, sample_pose

    rng = np.random.default_rng(1)
    by_mode = {}
    for mode in POSE_MODES:
        samples = [sample_pose(rng, _LABELS, mode=mode) for _ in range(60)]
        by_mode[mode] = samples
        for s in samples:
            assert s.mode == mode and "eye.L" not in s.angles
            for label, ang in s.angles.items():
                lim = _limits_for(label)
                assert np.all(ang >= lim[:, 0] - 1e-9) and np.all(ang <= lim[:, 1] + 1e-9), (mode, label, ang)
            if mode == "lying":
                r = s.root_pre
                assert s.archetype in ("lying_back", "lying_side", "lying_front")
                np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
                assert abs((r @ [0.0, 1.0, 0.0])[1]) < 1e-9  # the body's up axis becomes horizontal
            else:
                assert s.root_pre is None

    def raised(ang):  # upper arm lifted above the A-pose (45 deg down): sideways or forwards
        return ang[2] > 10 or ang[0] < -100

    up = [
        raised(s.angles["upperarm01.L"]) or raised(_mirror(s.angles["upperarm01.R"]))
        for s in by_mode["arms_up"]
    ]
    assert np.mean(up) > 0.9
    knee = {
        m: np.mean([s.angles["lowerleg01.L"][0] + s.angles["lowerleg01.R"][0] for s in v])
        for m, v in by_mode.items()
    }
    assert knee["kneeling"] > 120 and knee["kneeling"] > knee["arms_up"] + 90
    # Asymmetric arms: the left arm is not the mirror image of the right one.
    for mode in ("mixed", "free"):
        diff = [
            np.abs(s.angles["upperarm01.L"] - _mirror(s.angles["upperarm01.R"])).max() for s in by_mode[mode]
        ]
        assert np.mean(np.array(diff) > 25) > 0.4, mode
    # Mirroring: both sides get the kneeling knee / the side of a side-lying person.
    sides = {np.sign(s.root_pre[0, 1]) for s in by_mode["lying"] if s.archetype == "lying_side"}
    assert sides == {-1.0, 1.0}
    # The default mix draws every mode in about its share.
    drawn = [sample_pose(rng, _LABELS).mode for _ in range(600)]
    for mode, weight in DEFAULT_POSE_MIX:
        assert abs(drawn.count(mode) / 600 - weight) < 0.06, (mode, drawn.count(mode))
    only = {sample_pose(rng, _LABELS, mix=(("lying", 1.0), ("free", 0.0))).mode for _ in range(20)}
    assert only == {"lying"}
    with pytest.raises(ValueError, match="pose mode"):
        sample_pose(rng, _LABELS, mix=(("dancing", 1.0),))
    with pytest.raises(ValueError, match="archetype"):
        sample_pose(rng, _LABELS, "dancing")


def _world(scene, points_cam):
    cam = scene.image_info["cam_param"]
    return (np.asarray(points_cam) - np.asarray(cam["t"])) @ np.asarray(cam["R"])  # R^T (X - t)


def _vertices(body, bp):
    from jotr.geometry.rotations import aa_to_rotmat

    pose = aa_to_rotmat(torch.as_tensor(np.asarray(bp["pose_aa"]), dtype=torch.float32))
    shape = torch.as_tensor(np.asarray(bp["shape"]), dtype=torch.float32)
    with torch.no_grad():
        return body(pose[None], shape[None]).vertices[0].double().numpy() + np.asarray(bp["trans"])


def test_lying_people_lie_on_the_ground(generator):
    """Lying persons: the lowest vertex on the ground plane, pelvis low, torso about horizontal."""
    from jotr.body.joint_sets import JOTR30
    from jotr.synth.scene import SceneGenerator, SynthOptions

    gen = SceneGenerator(
        SynthOptions(width=128, height=128, truncation=0.0, pose_mix=(("lying", 1.0),)), body=generator.body
    )
    try:
        scenes = [gen.generate("none", 3, i) for i in range(6)]
    finally:
        gen.close()
    pelvis, neck = JOTR30.names.index("Pelvis"), JOTR30.names.index("Neck")
    kinds = set()
    for scene in scenes:
        ann = scene.persons[0]
        kinds.add(ann["body_param"]["archetype"])
        assert ann["body_param"]["pose_mode"] == "lying"
        height = -_world(scene, _vertices(generator.body, ann["body_param"]))[:, 1]  # world y points down
        assert abs(height.min()) < 2e-3  # touches the ground, not below it
        joints = _world(scene, ann["joints_3d_jotr30"])
        assert -joints[pelvis, 1] < 0.4, ann["body_param"]["archetype"]
        spine = joints[neck] - joints[pelvis]
        assert abs(spine[1]) / np.linalg.norm(spine) < np.sin(np.deg2rad(35))  # torso about horizontal
    assert len(kinds) >= 2


def test_truncated_people(generator, tmp_path):
    """Targets cut by the frame: complete GT (2D = projection of 3D for every joint), some joints outside the
    image, the detector-like input keypoints of those missing and every kept keypoint inside the image,
    enough of the body left; the reader skips persons flagged too_truncated."""
    from jotr.geometry.camera import project_points
    from jotr.synth.scene import TRUNCATION_MODES, VIS_OUTSIDE, SceneGenerator, SynthOptions

    size = 160
    gen = SceneGenerator(SynthOptions(width=size, height=size, truncation=1.0), body=generator.body)
    try:
        scenes = {fam: [gen.generate(fam, 5, i) for i in range(3)] for fam in ("none", "oc", "pc", "crowd")}
    finally:
        gen.close()
    modes = set()
    for fam, items in scenes.items():
        for scene in items:
            mode = scene.image_info["truncation"]
            if fam == "crowd":
                assert mode == "none"
                continue
            assert mode in TRUNCATION_MODES  # truncation=1: every none/oc/pc target (fallback is rare)
            modes.add(mode)
            t = scene.persons[0]
            cam = scene.image_info["cam_param"]
            uv = project_points(
                torch.as_tensor(t["joints_3d_jotr30"]), tuple(cam["focal"]), tuple(cam["princpt"])
            )
            assert np.isfinite(t["joints_3d_jotr30"]).all() and (t["joints_3d_jotr30"][:, 2] > 0).all()
            assert np.abs(uv.numpy() - t["joints_2d_jotr30"]).max() < 1e-3
            out = t["visibility_jotr30"] == VIS_OUTSIDE
            assert out.any() and not t["inside_image"]
            assert t["num_joints_in_image"] == int((~out).sum()) >= 2 * gen.options.min_joints_in_image
            assert not t["too_truncated"]
        for scene in items:
            for ann in scene.persons:
                kps = ann["input_keypoints"]
                out = ann["visibility_jotr30"] == VIS_OUTSIDE
                assert np.all(kps[out] == 0)
                found = kps[:, 2] > 0
                assert np.all((kps[found, :2] >= -0.5) & (kps[found, :2] < size - 0.5))
                assert ann["too_truncated"] == (ann["num_joints_in_image"] < gen.options.min_joints_in_image)
    assert len(modes) >= 2

    # The reader skips a person flagged too_truncated (kept as a swap donor of the others).
    from jotr.data.config import DatasetSpec
    from jotr.data.datasets.synthetic import SyntheticReader
    from jotr.synth.writer import write_split

    write_split(tmp_path, "pc", 2, seed=5, generator=generator, options=generator.options, progress=False)
    doc = json.loads((tmp_path / "pc.json").read_text())
    doc["annotations"][0]["too_truncated"] = True
    (tmp_path / "cut.json").write_text(json.dumps(doc))
    (tmp_path / "images" / "cut").mkdir()
    reader = SyntheticReader(DatasetSpec(name="synthetic", root=str(tmp_path), split="cut"))
    assert len(reader) == 1 and reader.skipped == {"too truncated": 1}
    assert reader.records[0].extra["in_image"].dtype == bool
    assert len(reader.records[0].extra["others_img"]) >= 1


def test_scene_independent_of_generation_order(generator):
    """Scene i depends only on (seed, family, i): generated alone or after other scenes it is identical --
    what makes ``--workers N`` output byte-identical."""
    a = generator.generate("pc", 21, 3)
    generator.generate("crowd", 21, 0)
    generator.generate("oc", 22, 3)
    b = generator.generate("pc", 21, 3)
    assert np.array_equal(a.image, b.image)
    from jotr.synth.writer import to_jsonable

    assert json.dumps(to_jsonable(a.persons)) == json.dumps(to_jsonable(b.persons))
    assert json.dumps(to_jsonable(a.image_info)) == json.dumps(to_jsonable(b.image_info))


@pytest.mark.slow
def test_workers_give_byte_identical_output(generator, tmp_path):
    """``write_split`` with 2 worker processes writes the same JSON and JPEGs as in-process (~30 s: each
    worker loads the body model), with photograph and procedural backgrounds."""
    from jotr.synth.scene import SceneGenerator
    from jotr.synth.writer import write_split

    folder = _photo_folder(tmp_path)
    opts = dataclasses.replace(generator.options, backgrounds=str(folder), photo_share=0.5)
    gen = SceneGenerator(opts, body=generator.body)
    try:
        write_split(tmp_path / "w1", "pc", 2, seed=13, generator=gen, options=opts, progress=False)
    finally:
        gen.close()
    write_split(tmp_path / "w2", "pc", 2, seed=13, workers=2, options=opts, progress=False)
    assert (tmp_path / "w1" / "pc.json").read_bytes() == (tmp_path / "w2" / "pc.json").read_bytes()
    backgrounds = {im["background"] for im in json.loads((tmp_path / "w1" / "pc.json").read_text())["images"]}
    assert "procedural" in backgrounds and len(backgrounds) == 2  # both kinds of background
    for i in range(2):
        name = f"images/pc/{i:06d}.jpg"
        assert (tmp_path / "w1" / name).read_bytes() == (tmp_path / "w2" / name).read_bytes()


def test_cli_pose_mix_and_truncation_arguments(tmp_path, capsys):
    from jotr.cli import main
    from jotr.commands.synth import parse_pose_mix

    assert parse_pose_mix("archetype=1") == (("archetype", 1.0),)
    assert parse_pose_mix("lying=0.5, free=2") == (("lying", 0.5), ("free", 2.0))
    for bad in ("dance=1", "lying=x", "lying=-1", "lying=0"):
        with pytest.raises(InputError, match="pose-mix"):
            parse_pose_mix(bad)
    assert main(["synth", "--split", "oc", "--out", str(tmp_path), "--truncation", "1.5"]) == 2
    assert "--truncation" in capsys.readouterr().err
    assert main(["synth", "--split", "oc", "--out", str(tmp_path), "--pose-mix", "dance=1"]) == 2
    assert "--pose-mix" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ realism: backgrounds


def _photo_folder(tmp_path):
    """Two small 'photographs' (reddish and bluish noise) in a folder tree, as a user would point to."""
    import cv2

    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, channel in (("red.png", 2), ("sub/blue.jpg", 0)):  # BGR on disk
        image = rng.integers(0, 60, (150, 200, 3), dtype=np.uint8)
        image[..., channel] = 220
        assert cv2.imwrite(str(folder / name), image)
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_photo_backgrounds_from_a_folder(generator, tmp_path):
    """``backgrounds=DIR`` puts random crops of the folder's images behind the people; the geometry and the
    ground truth are the same as with procedural backgrounds (appearance draws from its own stream)."""
    from jotr.synth.photos import find_photos
    from jotr.synth.scene import APPEARANCE_KEYS, SceneGenerator, SynthOptions
    from jotr.synth.writer import to_jsonable

    folder = _photo_folder(tmp_path)
    assert [p.name for p in find_photos(str(folder))] == ["red.png", "blue.jpg"]
    size = 128
    photo = SceneGenerator(
        SynthOptions(width=size, height=size, backgrounds=str(folder), photo_share=1.0), body=generator.body
    )
    plain = SceneGenerator(
        SynthOptions(width=size, height=size, backgrounds="procedural"), body=generator.body
    )
    try:
        names = set()
        for index in range(3):
            a, b = photo.generate("oc", 4, index), plain.generate("oc", 4, index)
            names.add(a.image_info["background"])
            assert b.image_info["background"] == "procedural"
            assert json.dumps(to_jsonable(a.persons)) == json.dumps(to_jsonable(b.persons))
            info_a = {k: v for k, v in a.image_info.items() if k not in APPEARANCE_KEYS}
            info_b = {k: v for k, v in b.image_info.items() if k not in APPEARANCE_KEYS}
            assert json.dumps(to_jsonable(info_a)) == json.dumps(to_jsonable(info_b))
            # Background pixels far from any mesh carry the photo's dominant channel.
            import cv2

            empty = cv2.erode((a.render.instance < 0).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
            assert empty.sum() > 100
            rgb = a.image[empty].astype(np.float64).mean(axis=0)
            dominant = 0 if a.image_info["background"] == "red.png" else 2  # RGB
            assert rgb[dominant] > rgb.max() - 1e-9 and rgb[dominant] > 120, (rgb, a.image_info["background"])
            again = photo.generate("oc", 4, index)
            assert np.array_equal(a.image, again.image)
        assert names <= {"red.png", "sub/blue.jpg"}
    finally:
        photo.close()
        plain.close()


def test_background_option_errors_and_info(generator, tmp_path, capsys):
    from jotr.cli import main
    from jotr.synth.photos import find_photos
    from jotr.synth.writer import write_split

    assert find_photos("procedural") == ()
    with pytest.raises(InputError, match="does not exist"):
        find_photos(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no image"):
        find_photos(str(tmp_path / "empty"))
    out = tmp_path / "out"
    assert (
        main(["synth", "--split", "none", "--out", str(out), "--backgrounds", str(tmp_path / "empty")]) == 2
    )
    assert "holds no image" in capsys.readouterr().err
    assert main(["synth", "--split", "none", "--out", str(out), "--photo-share", "2"]) == 2
    assert "--photo-share" in capsys.readouterr().err
    assert not out.exists() or not list(out.rglob("*.json"))
    # The dataset's info lists the photographs it drew from.
    from jotr.synth.scene import SceneGenerator, SynthOptions

    folder = _photo_folder(tmp_path)
    opts = SynthOptions(width=96, height=96, backgrounds=str(folder), photo_share=1.0)
    gen = SceneGenerator(opts, body=generator.body)
    try:
        write_split(tmp_path / "ds", "none", 1, seed=3, generator=gen, options=opts, progress=False)
    finally:
        gen.close()
    doc = json.loads((tmp_path / "ds" / "none.json").read_text())
    assert doc["info"]["backgrounds"] == ["red.png", "sub/blue.jpg"]
    assert doc["info"]["options"]["backgrounds"] == str(folder)
    assert doc["images"][0]["background"] in ("red.png", "sub/blue.jpg")


def test_camera_effects_lighting_and_textures(generator):
    """Camera effects are applied (and recorded) by default and switched off by ``camera_effects=False``
    without changing the ground truth; lighting varies between scenes; clothes are textured (many distinct
    colours per person); the same scene is generated twice identically."""
    from jotr.synth.scene import SceneGenerator, SynthOptions
    from jotr.synth.writer import to_jsonable

    size = 128
    base = dict(width=size, height=size, backgrounds="procedural")
    fx_on = SceneGenerator(SynthOptions(**base), body=generator.body)
    fx_off = SceneGenerator(SynthOptions(**base, camera_effects=False), body=generator.body)
    try:
        kinds, jpeg, blurred = set(), 0, 0
        for index in range(8):
            a, b = fx_on.generate("none", 6, index), fx_off.generate("none", 6, index)
            assert b.image_info["camera_effects"] == {}
            effects = a.image_info["camera_effects"]
            assert {"white_balance", "gain", "saturation", "noise"} <= set(effects)
            jpeg += "jpeg_quality" in effects
            blurred += "defocus_px" in effects or "motion_blur_px" in effects
            assert json.dumps(to_jsonable(a.persons)) == json.dumps(to_jsonable(b.persons))
            kinds.add(a.image_info["lighting"]["kind"])
            # The effects change the pixels: noise makes the effect image differ almost everywhere.
            assert (a.image != b.image).any(axis=2).mean() > 0.5
            # Clothes/skin are textured: the target's own pixels carry many distinct colours.
            own = b.render.instance == 0
            assert own.sum() > 50
            assert len(np.unique(b.image[own] // 8, axis=0)) > 20
        assert len(kinds) >= 2 and jpeg >= 1 and blurred >= 1, (kinds, jpeg, blurred)
        again = fx_on.generate("none", 6, 3)
        assert np.array_equal(again.image, fx_on.generate("none", 6, 3).image)
    finally:
        fx_on.close()
        fx_off.close()


def test_lighting_and_effects_units():
    from jotr.synth import appearance as app
    from jotr.synth import effects as fx

    warm, cold = app.kelvin_to_rgb(2500.0), app.kelvin_to_rgb(10000.0)
    assert warm[0] > warm[2] and cold[2] > cold[0]
    assert float(warm @ app.LUMA) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    light = app.sample_lighting(rng, np.eye(3), np.array([0.5, 0.5, 0.5]))
    normals = np.array([[0.0, -1.0, 0.0], [0.0, 1.0, 0.0]])  # camera frame: up (y down), down
    lit = app.shade_vertices(np.full((2, 3), 0.6), normals, light)
    assert lit.shape == (2, 3) and (lit >= 0).all() and (lit <= 1).all()
    assert lit[0].sum() > lit[1].sum()  # facing the sky is brighter than facing the ground
    # A shadow darkens the ground next to a person lit from the side and above; nothing without light.
    cam_rot, cam_center = np.eye(3), np.array([0.0, -1.5, 0.0])
    person = np.stack(np.meshgrid(np.linspace(-0.2, 0.2, 20), np.linspace(-1.7, 0, 60), [0.0]), -1).reshape(
        -1, 3
    )
    person = (person - cam_center + np.array([0.0, 0.0, 4.0])) @ cam_rot.T
    bg = np.full((120, 160, 3), 200, np.uint8)
    light_dir = np.array([-0.6, -0.7, -0.4]) / np.linalg.norm([-0.6, -0.7, -0.4])
    shaded = fx.cast_shadows(
        rng, bg, [person], light_dir, cam_rot, cam_center, (150.0, 150.0), (80.0, 60.0), 0.6
    )
    assert shaded.min() < 150 and (shaded == 200).mean() > 0.5
    # A contact shadow (photographs): only the lowest vertices cast, a small part of the whole shadow.
    contact = fx.cast_shadows(
        rng, bg, [person], light_dir, cam_rot, cam_center, (150.0, 150.0), (80.0, 60.0), 0.6, max_height=0.25
    )
    assert contact.min() < 200 and 0 < (contact < 195).sum() < 0.5 * (shaded < 195).sum()
    assert (
        fx.cast_shadows(
            rng,
            bg,
            [person],
            np.array([0.0, 1.0, 0.0]),
            cam_rot,
            cam_center,
            (150.0, 150.0),
            (80.0, 60.0),
            0.6,
        )
        is bg
    )
    out, info = fx.camera_effects(np.random.default_rng(1), bg)
    assert out.shape == bg.shape and out.dtype == np.uint8 and "noise" in info


def test_raise_light_keeps_azimuth():
    from jotr.synth import effects as fx

    cam_rot = np.eye(3)
    low = np.array([0.8, -0.1, -0.6])
    low /= np.linalg.norm(low)
    raised = fx.raise_light(low, cam_rot, 60.0)
    assert np.linalg.norm(raised) == pytest.approx(1.0)
    assert -raised[1] == pytest.approx(np.sin(np.deg2rad(60.0)))  # world y down: elevation 60 deg
    assert np.arctan2(raised[0], -raised[2]) == pytest.approx(np.arctan2(low[0], -low[2]))
    high = np.array([0.0, -1.0, 0.0])
    assert fx.raise_light(high, cam_rot, 60.0) is high


def test_unit_ambient_render_gamma_encodes_vertex_colours():
    """The contract the generator's per-vertex lighting relies on: rendered with ambient 1 and no light, a
    vertex colour ``c`` (linear radiance) comes out as ``255 * c ** (1 / 2.2)``."""
    from jotr.viz.renderer import Renderer

    quad = np.array([[-1.0, -1.0, 2.0], [1.0, -1.0, 2.0], [1.0, 1.0, 2.0], [-1.0, 1.0, 2.0]])
    faces = np.array([[0, 1, 2], [0, 2, 3], [0, 2, 1], [0, 3, 2]])  # both sides
    linear = np.array([0.05, 0.3, 0.8])
    with Renderer(16, 16) as renderer:
        res = renderer.render(
            [(quad, faces, np.tile(linear, (4, 1)))], (20.0, 20.0), (7.5, 7.5), ambient=1.0, light=0.0
        )
    np.testing.assert_allclose(res.color[8, 8], 255.0 * linear ** (1 / 2.2), atol=2.0)
