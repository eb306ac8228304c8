"""Synthetic occluded-people generator: ground truth vs rendering, occlusion per family, determinism, reader.

A few small scenes per family (256x256) from one generator shared by the module.
"""

from __future__ import annotations

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
    assert len(everyone) == len(doc["annotations"]) > 2
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


def test_write_split_removes_stale_json_and_checks_args(generator, tmp_path):
    from jotr.synth.writer import write_split

    with pytest.raises(InputError, match="family"):
        write_split(tmp_path, "bogus", 1, generator=generator, options=generator.options)
    with pytest.raises(InputError, match="num"):
        write_split(tmp_path, "oc", 0, generator=generator, options=generator.options)
    stale = tmp_path / "oc.json"
    stale.write_text("{}")

    class Boom(RuntimeError):
        pass

    def explode(*args, **kwargs):
        raise Boom

    original = generator.generate
    generator.generate = explode  # a run that dies on its first scene
    try:
        with pytest.raises(Boom):
            write_split(tmp_path, "oc", 2, generator=generator, options=generator.options, progress=False)
    finally:
        del generator.generate
    assert generator.generate == original
    assert not stale.exists()  # no JSON that could point at missing/foreign images


def test_cli_arguments(tmp_path, capsys):
    from jotr.cli import main

    assert main(["synth", "--split", "oc", "--num", "0", "--out", str(tmp_path)]) == 2
    assert "--num must be positive" in capsys.readouterr().err
    assert main(["synth", "--split", "oc", "--out", str(tmp_path), "--width", "10"]) == 2
    assert "at least 64x64" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["synth", "--split", "bogus", "--out", str(tmp_path)])
    assert not list(tmp_path.glob("*.json"))
