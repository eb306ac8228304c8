"""The learning experiment's configs: they load, and held-out seeds never train (issue 22's v2 data plan)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "experiments" / "learning" / "configs"


@pytest.fixture(scope="module")
def run_learning():
    spec = importlib.util.spec_from_file_location(
        "run_learning", ROOT / "experiments/learning/run_learning.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("run_learning", module)
    spec.loader.exec_module(module)
    return module


def test_v2_trains_on_new_seeds_into_its_own_folder(run_learning):
    main = run_learning.LearningConfig.load(CONFIGS / "main.yaml")
    v2 = run_learning.LearningConfig.load(CONFIGS / "v2.yaml")
    held_out = {s.seed for s in main.val + main.test + v2.val + v2.test}
    train = [s.seed for s in v2.train]
    assert len(set(train)) == len(train)  # every training split is different data
    assert not set(train) & held_out and not set(train) & {s.seed for s in main.train}
    # v2's generator differs: its splits must not be mixed with (or reused from) main.yaml's folders.
    assert v2.data_root != main.data_root and v2.runs_dir != main.runs_dir
    assert v2.results_dir != main.results_dir
    images = {f: sum(s.num for s in v2.train if s.family == f) for f in ("none", "oc", "pc", "crowd")}
    assert sum(images.values()) >= 20_000 and all(images.values())
    assert max(s.num for s in v2.train) <= 1000  # short synth processes (see the config's comment)


def test_splits_of_an_older_generator_are_not_reused(run_learning, tmp_path):
    import dataclasses
    import json

    from jotr.synth.writer import FORMAT_VERSION

    lcfg = run_learning.LearningConfig.load(CONFIGS / "v2.yaml")
    lcfg = dataclasses.replace(lcfg, data_root=str(tmp_path))
    split = lcfg.test[0]
    folder = tmp_path / "test"
    folder.mkdir()
    info = {
        "num_images": split.num,
        "seed": split.seed,
        "family": split.family,
        "options": {"width": lcfg.image_width, "height": lcfg.image_height},
    }
    for version, current in ((FORMAT_VERSION - 1, False), (FORMAT_VERSION, True)):
        (folder / f"{split.name}.json").write_text(json.dumps({"info": {**info, "format_version": version}}))
        assert run_learning._is_current(lcfg, "test", split) is current


def test_backbone_probe_uses_v2s_data_and_builds_its_models(run_learning):
    """probe_posebb.yaml (issue 22): v2's splits and data folder, its own run and result folders, the v2
    recipe with either backbone (nothing else differs), and v2's keypoint lifter."""
    import dataclasses

    v2 = run_learning.LearningConfig.load(CONFIGS / "v2.yaml")
    probe = run_learning.LearningConfig.load(CONFIGS / "probe_posebb.yaml")
    assert probe.jotr_config == v2.jotr_config == ("synthetic_small_v2",)
    assert (probe.data_root, probe.train, probe.val, probe.test) == (v2.data_root, v2.train, v2.val, v2.test)
    assert probe.runs_dir != v2.runs_dir and probe.results_dir != v2.results_dir
    specs = {m.name: m for m in probe.models}
    assert specs["keypoint_lifter"].overrides == {m.name: m for m in v2.models}["keypoint_lifter"].overrides
    effnet, movenet = (
        dataclasses.asdict(run_learning.model_config(probe, specs[name]).model)
        for name in ("jotr_v2_effnet", "jotr_v2_movenet")
    )
    assert (effnet["backbone"], effnet["backbone_weights"]) == ("efficientnet_lite0", "imagenet")
    assert (movenet["backbone"], movenet["backbone_weights"]) == ("movenet", "movenet")
    assert {k for k in effnet if effnet[k] != movenet[k]} == {"backbone", "backbone_weights"}
