"""Benchmark: J2J + J2N contrastive losses, forward + backward, vs. a per-anchor loop reference.

    python -m benchmarks.bench_contrastive [--batches 8 32] [--reps 5] [--threads 2] [--official-concat]

Each case runs in its own child process, so that its peak resident memory (``ru_maxrss``) is its own; the peak
reported is the growth of the resident set over the set-up (inputs built), warm-up passes included.
Inputs: the paper's feature volume (C=256, 8x8x8), 15 joints, every sample with 3D annotation, default sample
counts (J2J 100 / 128 / 256, J2N 100 / 1024 / 2048), tau 0.07.

``reference`` re-implements the official algorithm (jotr-reference §2): numpy sampling, a Python loop over
anchors, per-sample exclusion loop, ``repeat`` of anchors and negatives per positive. By default the J2J
paired InfoNCE of the reference is evaluated anchor by anchor ((P, N, C) tensors: same work as the official
code, but about A times less memory), because the official concatenation ((A*P, N, C) = 12800 x 256 x 256
floats, ~20 GB peak, ~24 s on this machine for one J2J pass at batch 8) does not fit next to other jobs on a
24 GB machine; ``--official-concat`` runs the full official version. Either way the time ratio is a lower
bound on the official.

Prints a table and one JSON line (``{"bench": "contrastive", ...}``).
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
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from jotr.geometry.coords import grid_to_voxel_index, unit_to_grid
from jotr.losses.config import LossConfig
from jotr.losses.contrastive import joint_contrastive_losses, sample_volume

C, SIZE, J, EXPONENT = 256, (8, 8, 8), 15, 3.0


def _inputs(batch: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    vol = torch.randn(batch, C, *SIZE, generator=g, requires_grad=True)
    pred = (0.05 + 0.9 * torch.rand(batch, J, 3, generator=g)).requires_grad_(True)
    gt = 0.05 + 0.9 * torch.rand(batch, J, 3, generator=g)
    valid = torch.rand(batch, J, generator=g) > 0.1
    is_3d = torch.ones(batch)
    return vol, pred, gt, valid, is_3d


# ---------------------------------------------------------------------------- reference (official algorithm)


def _paired_nce(q: torch.Tensor, k: torch.Tensor, negs: torch.Tensor, tau: float) -> torch.Tensor:
    """(M, C) queries, (M, C) positives, (M, N, C) paired negatives -> (M,) cross-entropy losses."""
    q, k, negs = F.normalize(q, dim=-1), F.normalize(k, dim=-1), F.normalize(negs, dim=-1)
    pos = (q * k).sum(dim=1, keepdim=True)
    neg = (q[:, None, :] @ negs.transpose(1, 2)).squeeze(1)
    logits = torch.cat([pos, neg], dim=1) / tau
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long), reduction="none")


def reference_j2j(vol, gt_grid, pred_grid, valid, cfg: LossConfig, rng, concat: bool) -> torch.Tensor:
    B = vol.shape[0]
    A, P, N = cfg.j2j_anchors, cfg.j2j_positives, cfg.j2j_negatives
    anchor_idx = rng.choice(B * J, A, replace=B * J < A)
    f_gt = sample_volume(vol, gt_grid)  # (B, J, C)
    f_pred = sample_volume(vol, pred_grid)
    valid_np = valid.numpy()
    positives, negatives, ok = [], [], []
    for label in anchor_idx % J:
        cand = np.nonzero(valid_np[:, label])[0]
        ok.append(len(cand) > 0)
        pos = rng.choice(cand, P, replace=len(cand) < P) if len(cand) else rng.choice(B, P, replace=True)
        positives.append(f_gt[pos, label])  # (P, C)
        pool = np.nonzero(np.arange(B * J) % J != label)[0]
        neg = rng.choice(pool, N, replace=len(pool) < N)
        negatives.append(f_pred[neg // J, neg % J])  # (N, C)
    anchors = f_pred[anchor_idx // J, anchor_idx % J]  # (A, C)
    ok_t = torch.tensor(ok)
    if concat:  # the official layout: (A * P, N, C)
        q = anchors.repeat_interleave(P, dim=0)
        negs = torch.stack(negatives).repeat_interleave(P, dim=0)
        loss = _paired_nce(q, torch.cat(positives), negs, cfg.temperature).view(A, P)
        return loss[ok_t].mean()
    per_anchor = []
    for a in range(A):
        q = anchors[a : a + 1].repeat(P, 1)
        negs = negatives[a][None].repeat(P, 1, 1)  # (P, N, C), as the official repeat
        per_anchor.append(_paired_nce(q, positives[a], negs, cfg.temperature).mean())
    return torch.stack(per_anchor)[ok_t].mean()


def reference_j2n(vol, pred_grid, cfg: LossConfig, rng) -> torch.Tensor:
    B = vol.shape[0]
    D, H, W = SIZE
    A, P, N = cfg.j2n_anchors, cfg.j2n_positives, cfg.j2n_negatives
    anchor_idx = rng.choice(B * J, A, replace=B * J < A)
    f_pred = sample_volume(vol, pred_grid)  # (B, J, C)
    idx = grid_to_voxel_index(pred_grid.detach(), SIZE)
    up = torch.minimum(idx.ceil().long(), torch.tensor([D - 1, H - 1, W - 1]))
    down = idx.floor().long().clamp(min=0)
    keep = torch.ones(B, D, H, W, dtype=torch.bool)
    for b in range(B):  # the official per-sample loop, one assignment per corner
        for cd in (up, down):
            for ch in (up, down):
                for cw in (up, down):
                    keep[b, cd[b, :, 0], ch[b, :, 1], cw[b, :, 2]] = False
    neg_pool = np.nonzero(keep.flatten().numpy())[0]
    positives = []
    for a in anchor_idx:
        pool = np.nonzero(np.arange(B * J) != a)[0]
        pos = rng.choice(pool, P, replace=len(pool) < P)
        positives.append(f_pred[pos // J, pos % J])
    neg = torch.from_numpy(rng.choice(neg_pool, N, replace=len(neg_pool) < N))
    flat = vol.permute(0, 2, 3, 4, 1).reshape(-1, C)  # (B * D * H * W, C)
    negf = F.normalize(flat[neg], dim=-1)
    q = F.normalize(f_pred[anchor_idx // J, anchor_idx % J].repeat_interleave(P, dim=0), dim=-1)  # (A * P, C)
    k = F.normalize(torch.cat(positives), dim=-1)
    logits = torch.cat([(q * k).sum(dim=1, keepdim=True), q @ negf.T], dim=1) / cfg.temperature
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long))


# -------------------------------------------------------------------------------- one case (child process)


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def _run_case(impl: str, batch: int, reps: int, concat: bool) -> dict:
    cfg = LossConfig(use_contrastive=True)
    vol, pred, gt, valid, is_3d = _inputs(batch)
    gen = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)

    def step():
        vol.grad = pred.grad = None
        if impl == "ours":
            out = joint_contrastive_losses(vol, pred, gt, valid, is_3d, EXPONENT, cfg, gen)
            loss = cfg.j2j_weight * out.j2j + cfg.j2n_weight * out.j2n
        else:
            pred_grid = unit_to_grid(pred, exponent=EXPONENT)
            gt_grid = unit_to_grid(gt, exponent=EXPONENT)
            j2j = reference_j2j(vol, gt_grid, pred_grid, valid, cfg, rng, concat)
            loss = cfg.j2j_weight * j2j + cfg.j2n_weight * reference_j2n(vol, pred_grid, cfg, rng)
        loss.backward()
        return loss

    base = _rss_mb()
    flops = 0
    if impl == "ours":
        step()  # warm-up
        with FlopCounterMode(display=False) as fc:
            step()
        flops = fc.get_total_flops()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {
        "impl": impl,
        "batch": batch,
        "time_s": float(np.median(times)),
        "peak_mb": max(0.0, peak - base),
        "gflop": flops / 1e9,
    }


def _child(impl: str, batch: int, reps: int, threads: int, concat: bool) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.bench_contrastive",
        "--child",
        impl,
        str(batch),
        "--reps",
        str(reps),
    ]
    cmd += ["--threads", str(threads)] + (["--official-concat"] if concat else [])
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"case {impl} batch {batch} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--ref-reps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--official-concat", action="store_true", help="reference J2J with the official ~20 GB layout"
    )
    ap.add_argument("--child", nargs=2, metavar=("IMPL", "BATCH"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.child:
        impl, batch = args.child[0], int(args.child[1])
        print(json.dumps(_run_case(impl, batch, args.reps, args.official_concat)))
        return 0

    load_before = os.getloadavg()[0]
    rows = []
    for b in args.batches:
        ours = _child("ours", b, args.reps, args.threads, False)
        ref = _child("reference", b, args.ref_reps, args.threads, args.official_concat)
        rows.append({"batch": b, "ours": ours, "reference": ref, "speedup": ref["time_s"] / ours["time_s"]})

    ref_kind = "official concat" if args.official_concat else "per-anchor loop"
    print(
        f"J2J + J2N fwd + bwd, C={C}, volume {SIZE}, {args.threads} threads; reference = {ref_kind}; "
        f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    )
    head = f"{'batch':>5} | {'ours s':>8} {'GFLOP/s':>8} {'peak MB':>8} | {'ref s':>8} {'peak MB':>8}"
    print(f"{head} | {'speedup':>8}")
    for r in rows:
        o, f = r["ours"], r["reference"]
        gfs = o["gflop"] / o["time_s"] if o["time_s"] > 0 else 0.0
        print(
            f"{r['batch']:>5} | {o['time_s']:>8.4f} {gfs:>8.1f} {o['peak_mb']:>8.1f} | "
            f"{f['time_s']:>8.3f} {f['peak_mb']:>8.1f} | {r['speedup']:>7.1f}x"
        )
    summary = {
        "bench": "contrastive",
        "threads": args.threads,
        "load_avg": load_before,
        "reference": ref_kind,
    }
    print(json.dumps({**summary, "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
