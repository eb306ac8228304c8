"""Benchmark: how the cost grows with the batch size (training step) and the people per image (predictor).

    python -m benchmarks.bench_scaling [--parts train predictor] [--configs small paper]
                                       [--batches 1 2 4 8 16] [--people 1 2 4 8] [--reps 3] [--threads 2]
                                       [--contrastive] [--bf16] [--quick]

``train``: one training step -- ``JOTR.forward`` + ``Criterion`` + backward + ``AdamW.step``
(``jotr.engine.optim.build_optimizer``) -- of the ``small`` and ``paper`` configs (rot6d head, random
weights) with the procedural SMPL-format body (``jotr.body.toy.make_smpl_like_arrays``: 6890 vertices, SMPL's
joints, through the SMPL code path), at each batch size. Random crops and 2D poses; targets with a 1:1 mix of
3D and 2D samples, all with fitted-body targets; contrastive terms off unless ``--contrastive``. Each (config,
batch) runs in its own child process, so its peak memory (growth of the resident set over the set-up, warm-up
step included) is its own. GFLOP per step from ``torch.utils.flop_counter``.

``predictor``: ``JOTRPredictor.predict`` on one 640x480 image with 1, 2, 4, 8 people (COCO-17 keypoints of
standing people on a grid over the image), loaded from a random-weight checkpoint written with
``jotr.engine.checkpoint.save_checkpoint`` (body = an SMPL-format model file written to a temporary folder).
The time covers everything a user pays per image: crops, the batched network, the body model, the camera
conversion and the numpy results. The network alone (``model.predict`` on the same batch) is timed next to it.

Times are medians of ``--reps`` timed calls after warm-up. Prints tables and one JSON line
(``{"bench": "scaling", ...}``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

CONFIG_NAMES = ("small", "paper")


def _model_config(name: str):
    from jotr.models.config import ModelConfig

    return {"small": ModelConfig.small, "paper": ModelConfig.paper}[name]()


def _median_s(fn: Callable[[], object], reps: int, warmup: int = 1) -> tuple[float, list[float]]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


# ------------------------------------------------------------------------------------------ training step


def make_train_batch(batch: int, model_cfg, num_pose: int, num_shape: int, seed: int = 0):
    """Random (Inputs, Targets) of the right shapes: half the samples 3D, every sample with a fitted body."""
    from jotr.geometry.coords import unit_to_hm
    from jotr.structures import Inputs, Targets

    g = torch.Generator().manual_seed(seed)
    hm, size, nj = model_cfg.heatmap_size, model_cfg.input_size, model_cfg.num_input_joints
    inputs = Inputs(
        image=torch.rand(batch, 3, size, size, generator=g),
        keypoints_hm=torch.rand(batch, nj, 2, generator=g) * hm,
        keypoints_valid=(torch.rand(batch, nj, generator=g) > 0.1).float(),
    )
    joints_hm = unit_to_hm(0.1 + 0.8 * torch.rand(batch, nj, 3, generator=g), hm)  # (B, 30, 3) cells
    ones = torch.ones(batch, nj)
    targets = Targets(
        joints_hm=joints_hm,
        joints_trunc=ones,
        joints_cam=0.3 * torch.randn(batch, nj, 3, generator=g),
        joints_valid=ones,
        is_3d=(torch.arange(batch) % 2 == 0).float(),
        fit_joints_hm=joints_hm + torch.randn(batch, nj, 3, generator=g),
        fit_joints_trunc=ones,
        pose_aa=0.3 * torch.randn(batch, num_pose, 3, generator=g),
        shape=torch.randn(batch, num_shape, generator=g),
        has_fit=torch.ones(batch),
    )
    return inputs, targets


def train_step_case(config: str, batch: int, reps: int, contrastive: bool, count_flops: bool = True) -> dict:
    """Time one training step of ``config`` at ``batch`` in this process; returns a result row."""
    from jotr.body.smpl import SMPLBody
    from jotr.body.toy import make_smpl_like_arrays
    from jotr.config import JOTRConfig
    from jotr.engine.optim import build_optimizer
    from jotr.losses.config import LossConfig
    from jotr.losses.criterion import Criterion
    from jotr.models import build_model

    model_cfg = _model_config(config)
    cfg = JOTRConfig(model=model_cfg, loss=LossConfig(use_contrastive=contrastive))
    torch.manual_seed(0)
    body = SMPLBody.from_arrays(make_smpl_like_arrays(6890))
    model = build_model(cfg, pretrained=False, body=body).train()
    criterion = Criterion(cfg.loss, body, cfg.model)
    opt = build_optimizer(model, criterion, cfg.train)
    inputs, targets = make_train_batch(batch, model_cfg, body.num_pose_joints, body.num_shape)
    model_gen, loss_gen = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        out = model(inputs, generator=model_gen)
        loss = criterion(out, targets, generator=loss_gen)
        loss.total.backward()
        opt.step()

    base = _rss_mb()
    step()  # warm-up: allocator pools and the AdamW state
    flops = 0.0
    if count_flops:
        with FlopCounterMode(display=False) as fc:
            step()
        flops = float(fc.get_total_flops())
    seconds, times = _median_s(step, reps, warmup=0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {
        "config": config,
        "batch": batch,
        "contrastive": contrastive,
        "step_s": seconds,
        "step_s_all": times,
        "ms_per_sample": 1000.0 * seconds / batch,
        "samples_per_s": batch / seconds,
        "gflop": flops / 1e9,
        "gflops_achieved": flops / seconds / 1e9 if flops else None,
        "peak_mb": max(0.0, peak - base),
    }


def _child_train(config: str, batch: int, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.bench_scaling", "--child-train", config, str(batch)]
    cmd += ["--reps", str(args.reps), "--threads", str(args.threads)]
    cmd += ["--contrastive"] if args.contrastive else []
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"training case {config} batch {batch} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def run_train(args: argparse.Namespace) -> list[dict]:
    rows = []
    for config in args.configs:
        for batch in args.batches:
            row = _child_train(config, batch, args)
            rows.append(row)
            print(
                f"  train {config:5s} B={batch:<3d} {row['step_s']:8.3f} s/step  {row['ms_per_sample']:8.1f} "
                f"ms/sample  peak {row['peak_mb']:7.0f} MB",
                file=sys.stderr,
                flush=True,
            )
    for config in args.configs:
        mine = [r for r in rows if r["config"] == config]
        base = mine[0]
        for r in mine:
            # per-sample cost relative to the smallest batch: < 1 = batching helps
            r["per_sample_vs_smallest_batch"] = r["ms_per_sample"] / base["ms_per_sample"]
            r["step_vs_smallest_batch"] = r["step_s"] / base["step_s"]
    return rows


# --------------------------------------------------------------------------------------------- predictor

# COCO-17 keypoints of a standing, frontal person: offsets from the pelvis in pixels for a 200-px tall person.
_COCO_OFFSETS = np.array(
    [
        (0, -100),  # nose
        (8, -106),  # left eye
        (-8, -106),
        (16, -100),  # left ear
        (-16, -100),
        (28, -72),  # left shoulder
        (-28, -72),
        (44, -28),  # left elbow
        (-44, -28),
        (60, 12),  # left wrist
        (-60, 12),
        (20, 0),  # left hip
        (-20, 0),
        (24, 72),  # left knee
        (-24, 72),
        (24, 120),  # left ankle
        (-24, 120),
    ],
    dtype=np.float64,
)


def make_people(count: int, width: int, height: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` (17, 3) COCO keypoint arrays (image px + confidence) of people on a grid over the image
    (one row up to 4 people, then two), each person inside the image."""
    rng = np.random.default_rng(seed)
    rows = 1 if count <= 4 else 2
    cols = -(-count // rows)
    cell_w, cell_h = width / cols, height / rows
    extent = _COCO_OFFSETS.max(axis=0) - _COCO_OFFSETS.min(axis=0)  # (2,) person size at scale 1, px
    fit = 0.8 * min(cell_w / extent[0], cell_h / extent[1], 1.5)
    centre = (_COCO_OFFSETS.max(axis=0) + _COCO_OFFSETS.min(axis=0)) / 2
    people = []
    for i in range(count):
        r, c = divmod(i, cols)
        scale = fit * (0.85 + 0.15 * rng.random())
        cell_centre = np.array([(c + 0.5) * cell_w, (r + 0.5) * cell_h])
        xy = cell_centre + scale * (_COCO_OFFSETS - centre) + rng.normal(size=(17, 2)) * 1.5
        conf = 0.5 + 0.5 * rng.random((17, 1))
        people.append(np.concatenate([xy, conf], axis=1))
    return people


def write_random_checkpoint(folder: Path, config: str) -> Path:
    """A random-weight checkpoint of ``config`` whose body is an SMPL-format file written next to it."""
    from jotr.body.toy import make_smpl_like_arrays, write_regressor_files, write_smpl_model
    from jotr.config import JOTRConfig, merge_config
    from jotr.engine.checkpoint import save_checkpoint
    from jotr.models import build_model

    smpl_file = folder / "SMPL_NEUTRAL.npz"
    if not smpl_file.exists():
        arrays = make_smpl_like_arrays(6890)
        write_smpl_model(smpl_file, arrays)
        write_regressor_files(folder, 6890, arrays)
    body = {
        "kind": "smpl",
        "smpl_model_path": str(smpl_file),
        "smpl_j_regressor_h36m": str(folder / "J_regressor_h36m_correct.npy"),
        "smpl_j_regressor_extra": str(folder / "J_regressor_extra.npy"),
    }
    cfg = merge_config(JOTRConfig(model=_model_config(config)), {"body": body})
    torch.manual_seed(0)
    model = build_model(cfg, pretrained=False)
    return save_checkpoint(folder / f"random_{config}.pt", model=model, cfg=cfg, step=0, rng=False, commit="")


def predictor_case(predictor, image: np.ndarray, count: int, reps: int, bf16: bool) -> dict:
    """Time ``predictor.predict`` on ``image`` with ``count`` generated people, and the network alone."""
    from jotr.inference.predictor import PersonInput
    from jotr.structures import Inputs

    height, width = image.shape[:2]
    people = [PersonInput(keypoints=k, keypoint_format="coco17") for k in make_people(count, width, height)]
    failed = [r.error for r in predictor.predict(image, people) if not r.ok]
    if failed:
        raise RuntimeError(f"predictor failed on generated people: {failed}")
    seconds, _ = _median_s(lambda: predictor.predict(image, people), reps, warmup=1)

    # the network alone on the same crops (the part that batching amortises)
    prepared = [predictor.prepare(image.astype(np.float32) / 255.0, p, "bench") for p in people]
    crops = torch.from_numpy(np.stack([p.crop for p in prepared]))  # (B, S, S, 3)
    inputs = Inputs(
        image=crops.permute(0, 3, 1, 2).contiguous(),  # (B, 3, S, S) RGB [0, 1]
        keypoints_hm=torch.from_numpy(np.stack([p.keypoints_hm for p in prepared])),  # (B, 30, 2) cells
        keypoints_valid=torch.from_numpy(np.stack([p.valid for p in prepared])),  # (B, 30)
    )

    def network() -> None:
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()
        with torch.inference_mode(), ctx:
            predictor.model.predict(inputs)

    net_s, _ = _median_s(network, reps, warmup=1)
    return {
        "people": count,
        "bf16": bf16,
        "image_ms": 1000.0 * seconds,
        "ms_per_person": 1000.0 * seconds / count,
        "persons_per_s": count / seconds,
        "network_ms": 1000.0 * net_s,
        "network_share": net_s / seconds,
    }


def run_predictor(args: argparse.Namespace) -> list[dict]:
    from jotr.inference.predictor import JOTRPredictor

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)  # (H, W, 3) RGB
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for config in args.configs:
            ckpt = write_random_checkpoint(Path(tmp), config)
            predictor = JOTRPredictor.from_checkpoint(ckpt, device="cpu", bf16=args.bf16)
            mine = []
            for count in args.people:
                row = {"config": config, **predictor_case(predictor, image, count, args.reps, args.bf16)}
                mine.append(row)
                print(
                    f"  predictor {config:5s} people={count:<2d} {row['image_ms']:9.1f} ms/image",
                    file=sys.stderr,
                    flush=True,
                )
            for r in mine:
                r["per_person_vs_one"] = r["ms_per_person"] / mine[0]["ms_per_person"]
            rows += mine
    return rows


# -------------------------------------------------------------------------------------------------- main


def print_tables(train_rows: list[dict], predictor_rows: list[dict]) -> None:
    if train_rows:
        print("training step (forward + criterion + backward + AdamW), SMPL-format body, random weights")
        print(
            f"{'config':6s} {'batch':>5s} {'step s':>8s} {'ms/sample':>10s} {'samples/s':>9s} "
            f"{'vs B=min':>8s} {'GFLOP':>7s} {'GFLOP/s':>8s} {'peak MB':>8s}"
        )
        for r in train_rows:
            gfs = f"{r['gflops_achieved']:8.1f}" if r["gflops_achieved"] else f"{'-':>8s}"
            print(
                f"{r['config']:6s} {r['batch']:5d} {r['step_s']:8.3f} {r['ms_per_sample']:10.1f} "
                f"{r['samples_per_s']:9.2f} {r['per_sample_vs_smallest_batch']:8.2f} {r['gflop']:7.1f} {gfs} "
                f"{r['peak_mb']:8.0f}"
            )
    if predictor_rows:
        print("JOTRPredictor.predict, one 640x480 image (crops + network + body + camera), random weights")
        print(
            f"{'config':6s} {'people':>6s} {'ms/image':>9s} {'ms/person':>10s} {'persons/s':>9s} "
            f"{'vs 1':>6s} {'network ms':>10s} {'net share':>9s}"
        )
        for r in predictor_rows:
            print(
                f"{r['config']:6s} {r['people']:6d} {r['image_ms']:9.1f} {r['ms_per_person']:10.1f} "
                f"{r['persons_per_s']:9.2f} {r['per_person_vs_one']:6.2f} {r['network_ms']:10.1f} "
                f"{100 * r['network_share']:8.0f}%"
            )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--parts", nargs="+", default=["train", "predictor"], choices=["train", "predictor"])
    p.add_argument("--configs", nargs="+", default=list(CONFIG_NAMES), choices=CONFIG_NAMES)
    p.add_argument("--batches", nargs="+", type=int, default=[1, 2, 4, 8, 16])
    p.add_argument("--people", nargs="+", type=int, default=[1, 2, 4, 8])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--contrastive", action="store_true", help="training step with the J2J/J2N losses")
    p.add_argument("--bf16", action="store_true", help="predictor under bfloat16 autocast")
    p.add_argument("--quick", action="store_true", help="small config, batches 1 2, people 1 2, 1 rep")
    p.add_argument("--child-train", nargs=2, metavar=("CONFIG", "BATCH"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.configs, args.batches, args.people, args.reps = ["small"], [1, 2], [1, 2], 1
    for name in ("batches", "people"):
        if any(v < 1 for v in getattr(args, name)):
            p.error(f"--{name} must be positive integers")
    if args.reps < 1:
        p.error("--reps must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.child_train:
        config, batch = args.child_train[0], int(args.child_train[1])
        print(json.dumps(train_step_case(config, batch, args.reps, args.contrastive)))
        return 0

    load_before = os.getloadavg()
    train_rows = run_train(args) if "train" in args.parts else []
    predictor_rows = run_predictor(args) if "predictor" in args.parts else []
    load_after = os.getloadavg()
    print_tables(train_rows, predictor_rows)
    load = {"before": [round(v, 2) for v in load_before], "after": [round(v, 2) for v in load_after]}
    print(
        f"load average (1, 5, 15 min): {load['before']} before, {load['after']} after ({os.cpu_count()} CPUs)"
    )
    summary = {
        "bench": "scaling",
        "threads": args.threads,
        "reps": args.reps,
        "contrastive": args.contrastive,
        "load_average": load,
        "train": train_rows,
        "predictor": predictor_rows,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
