"""Benchmark: JOTR inference (eval mode, no autograd) on CPU -- persons/s, latency and achieved GFLOP/s.

    python -m benchmarks.bench_inference [--configs paper small] [--batches 1 8 32] [--reps 3]
        [--threads 2] [--no-compile] [--modes naive fp32 bf16 compile compile-bf16]

Network: the ``paper`` config (ResNet-50, 256 px, VPoser head with random weights, like the official model)
and the ``small`` config (ResNet-18, 128 px, rot6d head), both with an SMPL-sized procedural body (6890
vertices, ``jotr.body.toy.ToyBody``), random weights, random crops and 2D poses.

Modes, all measured in this process on the same weights:

* ``naive``  -- fp32, explicit-softmax attention (``model.attention=naive``): the plain reference;
* ``fp32``   -- fp32, ``scaled_dot_product_attention`` (the default path);
* ``bf16``   -- the same under ``torch.autocast("cpu", dtype=torch.bfloat16)`` (heads, sampling and the body
  model stay fp32);
* ``compile`` / ``compile-bf16`` -- ``torch.compile(model)`` (inductor), when it works on this machine.

FLOPs per batch come from ``torch.utils.flop_counter.FlopCounterMode`` on the fp32 path; the script also
measures the machine's 2048x2048 matmul throughput (fp32 and bf16) to print the floor (FLOPs / peak) next to
each time.
Times are medians of ``--reps`` timed calls after two warm-up calls. Prints a table and one JSON line.

``--clock cpu`` times with the process CPU clock (``time.process_time``) instead of the wall clock: on a
machine shared with other jobs it still measures the work done (use it with ``--threads 1``, where CPU time
equals the single-core latency; the matmul peak is measured with the same clock).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from contextlib import nullcontext

import torch
from torch.utils.flop_counter import FlopCounterMode

from jotr.body.toy import ToyBody
from jotr.config import merge_config
from jotr.models.config import ModelConfig
from jotr.models.jotr import JOTR
from jotr.structures import Inputs

logger = logging.getLogger("bench_inference")

CONFIGS = {
    "paper": lambda: ModelConfig(pose_head="vposer"),
    "small": ModelConfig.small,
}


def make_inputs(cfg: ModelConfig, batch: int) -> Inputs:
    g = torch.Generator().manual_seed(batch)
    s = cfg.input_size
    return Inputs(
        image=torch.rand(batch, 3, s, s, generator=g),
        keypoints_hm=torch.rand(batch, cfg.num_input_joints, 2, generator=g) * cfg.heatmap_size,
        keypoints_valid=(torch.rand(batch, cfg.num_input_joints, generator=g) > 0.1).float(),
    )


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def matmul_peak(dtype: torch.dtype, clock, n: int = 2048, reps: int = 5) -> float:
    """GFLOP/s of an n x n matmul (the machine's practical peak)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(2):
        a @ b
    times = []
    for _ in range(reps):
        t = clock()
        a @ b
        times.append(clock() - t)
    return 2 * n**3 / min(times) / 1e9


def time_call(fn, reps: int, clock) -> float:
    with torch.inference_mode():
        for _ in range(2):
            fn()
        times = []
        for _ in range(reps):
            t = clock()
            fn()
            times.append(clock() - t)
    return statistics.median(times)


def count_flops(model: JOTR, x: Inputs) -> float:
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x)
    return float(counter.get_total_flops())


def run(args: argparse.Namespace) -> list[dict]:
    torch.set_num_threads(args.threads)
    clock = CLOCKS[args.clock]
    peak = {"fp32": matmul_peak(torch.float32, clock), "bf16": matmul_peak(torch.bfloat16, clock)}
    print(
        f"threads {args.threads}, {args.clock} clock; 2048x2048 matmul: fp32 {peak['fp32']:.0f} GFLOP/s, "
        f"bf16 {peak['bf16']:.0f} GFLOP/s"
    )
    body = ToyBody(num_vertices=6890)
    rows = []
    for name in args.configs:
        cfg = CONFIGS[name]()
        torch.manual_seed(0)
        model = JOTR(cfg, body, pretrained=False).eval()
        naive = JOTR(merge_config(cfg, {"attention": "naive"}), body, pretrained=False).eval()
        naive.load_state_dict(model.state_dict())
        compiled = None
        modes = list(args.modes)
        if args.no_compile:
            modes = [m for m in modes if not m.startswith("compile")]
        for batch in args.batches:
            x = make_inputs(cfg, batch)
            flops = count_flops(model, x)
            ref_time = None
            for mode in modes:
                net = naive if mode == "naive" else model
                bf16 = mode.endswith("bf16")
                if mode.startswith("compile"):
                    if compiled is None:
                        compiled = torch.compile(model)
                    net = compiled
                ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()

                def call(net=net, ctx=ctx, x=x):
                    with ctx:
                        return net(x)

                try:
                    t0 = time.perf_counter()
                    seconds = time_call(call, args.reps, clock)
                    total = time.perf_counter() - t0
                except Exception as exc:  # noqa: BLE001 - torch.compile may not work on every machine
                    msg = f"{type(exc).__name__}: {str(exc)[:200]}"
                    print(f"{name:6s} B={batch:<3d} {mode:13s} failed: {msg}")
                    modes = [m for m in modes if m != mode]
                    continue
                if mode == "naive":
                    ref_time = seconds
                floor = flops / (peak["bf16" if bf16 else "fp32"] * 1e9)
                row = {
                    "config": name,
                    "batch": batch,
                    "mode": mode,
                    "ms_per_person": 1000 * seconds / batch,
                    "persons_per_s": batch / seconds,
                    "latency_ms": 1000 * seconds,
                    "gflop_per_person": flops / batch / 1e9,
                    "gflops_achieved": flops / seconds / 1e9,
                    "x_floor": seconds / floor,
                    "speedup_vs_naive": (ref_time / seconds) if ref_time else None,
                    "wall_s_incl_warmup": total,
                }
                rows.append(row)
                sp = f"{row['speedup_vs_naive']:.2f}x" if row["speedup_vs_naive"] else "   -  "
                print(
                    f"{name:6s} B={batch:<3d} {mode:13s} {row['latency_ms']:9.1f} ms  "
                    f"{row['ms_per_person']:7.1f} ms/person  {row['persons_per_s']:6.1f} persons/s  "
                    f"{row['gflops_achieved']:6.1f} GFLOP/s ({row['gflop_per_person']:.2f} GFLOP/person)  "
                    f"{row['x_floor']:.2f}x floor  vs naive {sp}",
                    flush=True,
                )
    summary = {"bench": "inference", "threads": args.threads, "clock": args.clock, "peak_gflops": peak}
    print(json.dumps({**summary, "rows": rows}))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", nargs="+", default=["paper", "small"], choices=sorted(CONFIGS))
    p.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32])
    p.add_argument("--modes", nargs="+", default=["naive", "fp32", "bf16", "compile", "compile-bf16"])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--clock", choices=sorted(CLOCKS), default="wall", help="wall clock or process CPU time")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile modes")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    # silence torch.compile graph-break notes (the body model breaks the graph)
    torch._logging.set_logs(dynamo=logging.ERROR, inductor=logging.ERROR)
    run(args)


if __name__ == "__main__":
    main()
