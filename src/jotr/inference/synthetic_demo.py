"""The embedded-default job behind ``jotr demo-synthetic`` (``make demo``): a held-out synthetic occluded
scene with known ground truth -> JOTRPredictor -> overlay, meshes, parameters and MPJPE / PA-MPJPE / PVE.

No licensed file and no download: the body model is Anny, the scene comes from ``jotr.synth`` and the
network is, by default, the model shipped with jotr (``JOTRPredictor.from_pretrained()``, trained with the
project's own ``jotr train``; docs/model_card.md). Only with ``--train-demo-model`` (the demo before a model
shipped) :func:`ensure_demo_checkpoint` uses ``${JOTR_CACHE:-.cache/jotr}/demo_small.pt`` or creates it (see
docs/demo.md):

1. ``jotr.synth.writer.write_split`` renders a small training set (families ``oc`` and ``pc``, seeds
   :data:`TRAIN_SEED` and :data:`TRAIN_SEED` + 1); 2.
``jotr.engine.trainer.train`` trains the shipped ``synthetic_small`` config on it for ``steps`` steps; 3. the
final checkpoint is copied (atomically) to the cache.

The evaluated scene uses :data:`HELD_OUT_SEED`, a seed never used for training data, so the scene is unseen.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jotr.body.joint_sets import H36M_EVAL_14, H36M_ROOT
from jotr.errors import InputError

logger = logging.getLogger(__name__)

TRAIN_SEED = 100  # seed of the first family's training scenes (+1 per family)
HELD_OUT_SEED = 2_000_003  # seed of the demo scene: never used to generate training data
DEMO_CHECKPOINT = "demo_small.pt"
DEMO_CONFIG = "synthetic_small"


def cache_dir() -> Path:
    """``$JOTR_CACHE`` or ``.cache/jotr`` (relative to the working directory)."""
    return Path(os.environ.get("JOTR_CACHE") or ".cache/jotr")


@dataclass(frozen=True)
class DemoTraining:
    """How the demo checkpoint is made when none is cached."""

    families: tuple[str, ...] = ("oc", "pc")  # synthetic split families of the training scenes
    images_per_family: int = 80  # training scenes per family (every annotated person is a sample)
    width: int = 320  # training image size, pixels
    height: int = 240
    steps: int = 200  # optimiser steps of the synthetic_small config (its batch size, lr and schedule)
    workers: int = 2  # processes for scene generation
    device: str = "auto"
    batch_size: int | None = None  # None = the config's (8)


def ensure_demo_checkpoint(
    path: Path | None = None,
    training: DemoTraining = DemoTraining(),
    say: Callable[[str], None] = logger.info,
) -> Path:
    """The cached demo checkpoint, trained first when it does not exist yet (steps 1-3 of the module doc)."""
    root = cache_dir()
    path = Path(path) if path is not None else root / DEMO_CHECKPOINT
    if path.is_file():
        say(f"using the cached demo checkpoint {path}")
        return path
    from jotr.config import load_config, merge_config
    from jotr.engine.trainer import train
    from jotr.synth.scene import SynthOptions
    from jotr.synth.writer import write_split
    from jotr.utils.io import atomic_save

    cfg = load_config(DEMO_CONFIG)
    data_dir = root / "demo_data"
    say(f"no demo checkpoint at {path}: creating it with the project's training code (a few minutes)")
    specs = []
    for k, family in enumerate(training.families):
        split = f"demo_{family}_{training.images_per_family}_{training.width}x{training.height}"
        seed = TRAIN_SEED + k
        if not (data_dir / f"{split}.json").is_file():
            say(
                f"generating {training.images_per_family} synthetic '{family}' training scenes "
                f"({training.width}x{training.height}, seed {seed}) into {data_dir} ..."
            )
            options = SynthOptions(width=training.width, height=training.height, rig=cfg.body.anny_rig)
            summary = write_split(
                data_dir,
                family,
                training.images_per_family,
                seed,
                workers=training.workers,
                options=options,
                split=split,
            )
            say(
                f"  {summary.num_images} scenes, {summary.num_annotations} people in {summary.seconds:.0f} s "
                f"({summary.images_per_second:.2f} images/s)"
            )
        else:
            say(f"reusing the generated training scenes {data_dir / split}.json")
        specs.append(
            {"name": "synthetic", "root": str(data_dir), "split": split, "options": {"targets_only": False}}
        )
    run_dir = root / "demo_run"
    cfg = merge_config(
        cfg,
        {
            "data": {"train_3d": specs, "train_2d": [], "val": [], "test": []},
            "train": {
                "out_dir": str(run_dir),
                "max_steps": training.steps,
                "device": training.device,
                **({"batch_size": training.batch_size} if training.batch_size else {}),
            },
        },
    )
    say(
        f"training the '{DEMO_CONFIG}' config for {training.steps} steps (batch {cfg.train.batch_size}) into "
        f"{run_dir} ..."
    )
    result = train(cfg)
    if result.last_checkpoint is None or not Path(result.last_checkpoint).is_file():
        raise InputError(f"training did not produce a checkpoint in {run_dir}")
    say(f"  {result.steps} steps, final loss {result.final_loss:.4f}")
    atomic_save(path, lambda tmp: shutil.copyfile(result.last_checkpoint, tmp))
    say(f"cached the demo checkpoint at {path}")
    return path


@dataclass
class PersonMetrics:
    index: int  # person index in the scene (0 = the target)
    visible_fraction: float  # share of the person visible in the scene
    mpjpe: float  # mm, 14 H36M joints, root-relative at the H36M pelvis
    pa_mpjpe: float  # mm, after similarity Procrustes
    pve: float  # mm, every vertex, each mesh relative to its own H36M pelvis


@dataclass
class DemoResult:
    folder: Path  # outputs of the scene
    metrics: list[PersonMetrics]
    mean: dict[str, float]  # mean of each metric over the reconstructed people


def generate_scene(
    family: str = "pc",
    seed: int = HELD_OUT_SEED,
    index: int = 0,
    width: int = 512,
    height: int = 384,
    rig: str | None = None,
) -> Any:
    """One held-out synthetic scene (``jotr.synth.scene.Scene``) with ground truth."""
    from jotr.body.config import BodyConfig
    from jotr.synth.scene import SceneGenerator, SynthOptions

    gen = SceneGenerator(SynthOptions(width=width, height=height, rig=rig or BodyConfig().anny_rig))
    try:
        return gen.generate(family, seed, index)
    finally:
        gen.close()


def scene_metrics(predictor: Any, scene: Any, results: list) -> list[PersonMetrics]:
    """MPJPE / PA-MPJPE / PVE of each reconstructed person against the scene's ground truth.

    Predicted and GT meshes both come from the network's body model (the training topology), GT from the
    stored pose/shape parameters; joints are the body's H36M-17 regressor (jotr-reference §4 protocol)."""
    from jotr.evaluation.metrics import mpjpe, pa_mpjpe, pve
    from jotr.geometry.rotations import aa_to_rotmat

    body = predictor.body
    dev = predictor.device
    out = []
    for r in results:
        if not r.ok:
            continue
        ann = scene.persons[r.index]
        gt_pose = aa_to_rotmat(torch.as_tensor(np.asarray(ann["body_param"]["pose_aa"]), dtype=torch.float32))
        gt_shape = torch.as_tensor(np.asarray(ann["body_param"]["shape"]), dtype=torch.float32)
        pose = torch.as_tensor(r.pose_rotmat)[None].to(dev)
        shape = torch.as_tensor(r.shape)[None].to(dev)
        with torch.no_grad():
            bp = body(pose, shape)
            bg = body(gt_pose[None].to(dev), gt_shape[None].to(dev))
            jp, jg = body.joints(bp, "h36m17"), body.joints(bg, "h36m17")
        root_p, root_g = jp[:, H36M_ROOT], jg[:, H36M_ROOT]
        ev = list(H36M_EVAL_14)
        jp14 = (jp - root_p[:, None])[:, ev]
        jg14 = (jg - root_g[:, None])[:, ev]
        out.append(
            PersonMetrics(
                index=r.index,
                visible_fraction=float(ann.get("visible_fraction", float("nan"))),
                mpjpe=float(mpjpe(jp14, jg14)[0]),
                pa_mpjpe=float(pa_mpjpe(jp14, jg14)[0]),
                pve=float(pve(bp.vertices, bg.vertices, root_p, root_g)[0]),
            )
        )
    return out


def demo_folder_name(family: str, seed: int, index: int) -> str:
    """The result folder of one held-out scene inside the demo's output folder."""
    return f"synthetic_{family}_{seed}_{index}"


def run_synthetic_demo(
    predictor: Any,
    out_dir: str | Path,
    *,
    family: str = "pc",
    seed: int = HELD_OUT_SEED,
    index: int = 0,
    width: int = 512,
    height: int = 384,
    render: bool = True,
    frame: str = "world",
) -> DemoResult:
    """Generate the held-out scene, reconstruct every annotated person from the scene's detector-like 2D
    keypoints, write the outputs (overlay, side view, meshes, parameters, metrics) and return the metrics."""
    from jotr.inference.export import rig_body_of, save_image_outputs
    from jotr.inference.predictor import PersonInput

    scene = generate_scene(family, seed, index, width, height, rig=predictor.cfg.body.anny_rig)
    cam = scene.image_info["cam_param"]
    people = [
        PersonInput(keypoints=np.asarray(p["input_keypoints"], dtype=np.float64), keypoint_format="jotr30")
        for p in scene.persons
    ]
    results = predictor.predict(
        scene.image,
        people,
        focal=tuple(cam["focal"]),
        princpt=tuple(cam["princpt"]),
        name=f"synthetic {family} seed {seed} #{index}",
    )
    metrics = scene_metrics(predictor, scene, results)
    mean = {
        k: float(np.mean([getattr(m, k) for m in metrics])) if metrics else float("nan")
        for k in ("mpjpe", "pa_mpjpe", "pve")
    }
    visualizer = None
    if render:
        from jotr.viz.overlay import MeshVisualizer

        visualizer = MeshVisualizer()
    name = demo_folder_name(family, seed, index)
    extra = {
        "ground_truth_metrics_mm": {"mean": mean, "people": [m.__dict__ for m in metrics]},
        "scene": {"family": family, "seed": seed, "index": index},
    }
    try:
        folder = save_image_outputs(
            Path(out_dir) / name,
            scene.image,
            results,
            predictor.faces,
            image_name=name,
            body_model=predictor.cfg.body.kind,
            visualizer=visualizer,
            extra=extra,
            images={"input": scene.image},
            frame=frame,
            rig_body=rig_body_of(predictor),
            predictor=predictor,
        )
    finally:
        if visualizer is not None:
            visualizer.close()
    return DemoResult(folder=folder, metrics=metrics, mean=mean)
