"""Benchmark: one training step (forward + backward + AdamW) of the paper-config network at batch 8, with and
without the contrastive losses, and the contrastive share of the step.

    python -m benchmarks.bench_train_step [--batch 8] [--reps 3] [--threads 2] [--pose-head rot6d|vposer]

Network: ``ModelConfig.paper()`` (ResNet-50, d=256, 2+2 encoder layers, 4 decoder layers) with random weights;
body: the procedural SMPL-format body (``jotr.body.toy.make_smpl_like_arrays``, 6890 vertices, SMPL's joints)
through the SMPL code path; vposer head = random decoder weights. Batch: random crops and 2D poses, targets
with a 1:1 mix of 3D and 2D samples (as the training recipe), all with fitted-body targets. Each configuration
runs in its own child process; peak memory = growth of the resident set over the set-up (model, optimiser and
batch built), warm-up step included. GFLOP counted with torch.utils.flop_counter.

Prints a table and one JSON line (``{"bench": "train_step", ...}``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from jotr.body.smpl import SMPLBody
from jotr.body.toy import make_smpl_like_arrays
from jotr.config import JOTRConfig
from jotr.geometry.coords import unit_to_hm
from jotr.losses.config import LossConfig
from jotr.losses.contrastive import joint_contrastive_losses
from jotr.losses.criterion import Criterion
from jotr.models import build_model
from jotr.models.config import ModelConfig
from jotr.structures import Inputs, Targets


def _batch(batch: int, model_cfg: ModelConfig, num_pose: int, num_shape: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    hm, size = model_cfg.heatmap_size, model_cfg.input_size
    inputs = Inputs(
        image=torch.rand(batch, 3, size, size, generator=g),
        keypoints_hm=torch.rand(batch, 30, 2, generator=g) * hm,
        keypoints_valid=(torch.rand(batch, 30, generator=g) > 0.1).float(),
    )
    joints_hm = unit_to_hm(0.1 + 0.8 * torch.rand(batch, 30, 3, generator=g), hm)
    ones = torch.ones(batch, 30)
    targets = Targets(
        joints_hm=joints_hm,
        joints_trunc=ones,
        joints_cam=0.3 * torch.randn(batch, 30, 3, generator=g),
        joints_valid=ones,
        is_3d=(torch.arange(batch) % 2 == 0).float(),
        fit_joints_hm=joints_hm + torch.randn(batch, 30, 3, generator=g),
        fit_joints_trunc=ones,
        pose_aa=0.3 * torch.randn(batch, num_pose, 3, generator=g),
        shape=torch.randn(batch, num_shape, generator=g),
        has_fit=torch.ones(batch),
    )
    return inputs, targets


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def _run_case(contrastive: bool, batch: int, reps: int, pose_head: str) -> dict:
    model_cfg = ModelConfig(pose_head=pose_head)
    cfg = JOTRConfig(model=model_cfg, loss=LossConfig(use_contrastive=contrastive))
    body = SMPLBody.from_arrays(make_smpl_like_arrays(6890))
    model = build_model(cfg, pretrained=False, body=body).train()
    criterion = Criterion(cfg.loss, body, cfg.model)
    opt = torch.optim.AdamW(
        [
            {"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": 1e-4},
            {"params": criterion.weight_parameters(), "weight_decay": 0.0},
        ],
        lr=1e-4,
    )
    inputs, targets = _batch(batch, model_cfg, body.num_pose_joints, body.num_shape)
    model_gen, loss_gen = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)

    def step():
        opt.zero_grad(set_to_none=True)
        out = model(inputs, generator=model_gen)
        loss = criterion(out, targets, generator=loss_gen)
        loss.total.backward()
        opt.step()
        return out

    base = _rss_mb()
    out = step()  # warm-up (AdamW state allocated here)
    with FlopCounterMode(display=False) as fc:
        step()
    flops = fc.get_total_flops()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    # the contrastive losses alone (forward + backward) on tensors of the step's shapes
    contrastive_s = 0.0
    if contrastive:
        vol = out.feat_volume.detach().clone().requires_grad_(True)
        joints = out.joints_final_unit.detach().clone().requires_grad_(True)
        gt = joints.detach().clamp(0.05, 0.95)
        valid = torch.ones(joints.shape[:2], dtype=torch.bool)
        ct = []
        for _ in range(max(reps, 5)):
            t0 = time.perf_counter()
            c = joint_contrastive_losses(
                vol, joints, gt, valid, targets.is_3d, out.depth_exponent, cfg.loss, loss_gen
            )
            (c.j2j + c.j2n).backward()
            ct.append(time.perf_counter() - t0)
        contrastive_s = float(np.median(ct))
    return {
        "contrastive": contrastive,
        "batch": batch,
        "pose_head": pose_head,
        "step_s": float(np.median(times)),
        "peak_mb": max(0.0, peak - base),
        "gflop": flops / 1e9,
        "contrastive_alone_s": contrastive_s,
    }


def _child(contrastive: bool, args) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.bench_train_step", "--child", "1" if contrastive else "0"]
    cmd += ["--batch", str(args.batch), "--reps", str(args.reps), "--threads", str(args.threads)]
    cmd += ["--pose-head", args.pose_head]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"case contrastive={contrastive} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pose-head", choices=["rot6d", "vposer"], default="rot6d")
    ap.add_argument("--child", choices=["0", "1"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.child is not None:
        print(json.dumps(_run_case(args.child == "1", args.batch, args.reps, args.pose_head)))
        return 0

    load_before = os.getloadavg()[0]
    without = _child(False, args)
    with_c = _child(True, args)
    share_diff = (with_c["step_s"] - without["step_s"]) / with_c["step_s"]
    share_alone = with_c["contrastive_alone_s"] / with_c["step_s"]
    print(
        f"train step, paper config, batch {args.batch}, {args.pose_head} head, {args.threads} threads "
        f"(load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after)"
    )
    print(f"{'contrastive':>11} | {'step s':>8} {'GFLOP':>7} {'GFLOP/s':>8} {'peak MB':>8}")
    for r in (without, with_c):
        print(
            f"{str(r['contrastive']):>11} | {r['step_s']:>8.3f} {r['gflop']:>7.1f} "
            f"{r['gflop'] / r['step_s']:>8.1f} {r['peak_mb']:>8.1f}"
        )
    print(
        f"contrastive share of the step: {100 * share_alone:.1f}% (J2J+J2N fwd+bwd alone: "
        f"{with_c['contrastive_alone_s'] * 1000:.1f} ms); step-time difference: {100 * share_diff:.1f}%"
    )
    print(
        json.dumps(
            {
                "bench": "train_step",
                "threads": args.threads,
                "load_avg": load_before,
                "without": without,
                "with": with_c,
                "contrastive_share_alone": share_alone,
                "contrastive_share_step_diff": share_diff,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
