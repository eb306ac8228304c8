"""Benchmark: the exported ONNX inference network in onnxruntime vs. the same network in PyTorch eager (CPU).

    python -m benchmarks.bench_onnx [--configs small paper] [--batches 1 8] [--reps 5] [--threads 2]
                                    [--opset 20] [--quick]

Network: ``jotr.inference.onnx_export.InferenceNetwork`` -- ``JOTRNetwork.predict`` (backbone, Pose2Feat,
encoders, decoder, heads; no body model: see ``jotr.inference.onnx_export``) -- of the ``paper`` config
(ResNet-50, 256 px, VPoser head with random weights, as the official model) and the ``small`` config
(ResNet-18, 128 px, rot6d head), random weights, eval mode. Each config is exported once with
``export_onnx`` (dynamic batch axis, parity-checked there at batch 3), then, in this process and on the same
inputs, timed at each batch size:

* ``torch``  -- PyTorch eager, fp32, ``torch.inference_mode``, ``--threads`` intra-op threads;
* ``onnxruntime`` -- ``CPUExecutionProvider``, all graph optimisations, ``--threads`` intra-op threads, one
  inter-op thread.

The ratio torch / onnxruntime > 1 means onnxruntime is faster. The largest |difference| over the outputs at
each batch and the achieved GFLOP/s (FLOPs of the PyTorch graph from ``torch.utils.flop_counter``) are
reported too. Times are medians of ``--reps`` calls after two warm-up calls, the two runtimes
timed in alternation (so that load changes hit both alike). Prints a table and
one JSON line (``{"bench": "onnx", ...}``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

CONFIG_NAMES = ("small", "paper")


def _model_config(name: str):
    from jotr.models.config import ModelConfig

    return {"small": ModelConfig.small, "paper": lambda: ModelConfig(pose_head="vposer")}[name]()


def interleaved_medians(fns: dict[str, Callable[[], object]], reps: int, warmup: int = 2) -> dict[str, float]:
    """Median seconds of each function, timed in alternation (A, B, A, B, ...) after ``warmup`` calls of each,
    so that a change of machine load during the run affects all of them alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def ort_session(path: str | Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def bench_config(
    config: str, batches: list[int], reps: int, threads: int, opset: int, folder: Path
) -> list[dict]:
    from jotr.body.toy import ToyBody
    from jotr.inference.onnx_export import (
        INPUT_NAMES,
        OUTPUT_NAMES,
        InferenceNetwork,
        example_inputs,
        export_onnx,
    )
    from jotr.models.jotr import JOTR

    cfg = _model_config(config)
    torch.manual_seed(0)
    model = JOTR(cfg, ToyBody(), pretrained=False).eval()  # the body model is not part of the graph
    t0 = time.perf_counter()
    report = export_onnx(model, cfg, folder / f"{config}.onnx", opset=opset, check=True)
    export_s = time.perf_counter() - t0
    session = ort_session(report.path, threads)
    wrapper = InferenceNetwork(model).eval()
    size_mb = report.path.stat().st_size / 2**20

    rows = []
    for batch in batches:
        inputs = example_inputs(cfg, batch=batch, seed=batch)
        feed = {name: t.numpy() for name, t in zip(INPUT_NAMES, inputs)}

        def run_torch(inputs=inputs):
            with torch.inference_mode():
                return wrapper(*inputs)

        def run_ort(feed=feed):
            return session.run(list(OUTPUT_NAMES), feed)

        ref = [t.numpy() for t in run_torch()]
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            wrapper(*inputs)
        flops = float(counter.get_total_flops())
        got = run_ort()
        diff = max(float(np.abs(g - r).max()) for g, r in zip(got, ref))
        medians = interleaved_medians({"torch": run_torch, "onnxruntime": run_ort}, reps)
        torch_s, ort_s = medians["torch"], medians["onnxruntime"]
        rows.append(
            {
                "config": config,
                "batch": batch,
                "torch_ms": 1000.0 * torch_s,
                "onnxruntime_ms": 1000.0 * ort_s,
                "torch_ms_per_person": 1000.0 * torch_s / batch,
                "onnxruntime_ms_per_person": 1000.0 * ort_s / batch,
                "onnxruntime_persons_per_s": batch / ort_s,
                "speedup_onnxruntime_vs_torch": torch_s / ort_s,
                "gflop_per_person": flops / batch / 1e9,
                "torch_gflops": flops / torch_s / 1e9,
                "onnxruntime_gflops": flops / ort_s / 1e9,
                "max_abs_diff": diff,
                "export_s": export_s,
                "onnx_mb": size_mb,
                "opset": report.opset,
            }
        )
        print(
            f"  onnx {config:5s} B={batch:<3d} torch {1000 * torch_s:8.1f} ms  "
            f"onnxruntime {1000 * ort_s:8.1f} ms",
            file=sys.stderr,
            flush=True,
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    from jotr.inference.onnx_export import DEFAULT_OPSET

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", nargs="+", default=list(CONFIG_NAMES), choices=CONFIG_NAMES)
    p.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    p.add_argument("--quick", action="store_true", help="small config, batch 1, 1 rep")
    args = p.parse_args(argv)
    if args.quick:
        args.configs, args.batches, args.reps = ["small"], [1], 1
    if args.reps < 1 or any(b < 1 for b in args.batches):
        p.error("--reps and --batches must be >= 1")
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)

    import onnxruntime

    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for config in args.configs:
            rows += bench_config(config, args.batches, args.reps, args.threads, args.opset, Path(tmp))
    load_after = os.getloadavg()

    print(
        f"ONNX (opset {args.opset}, onnxruntime {onnxruntime.__version__}) vs PyTorch eager, fp32, "
        f"{args.threads} threads"
    )
    print(
        f"{'config':6s} {'batch':>5s} {'torch ms':>9s} {'ort ms':>9s} {'ort ms/person':>13s} "
        f"{'ort persons/s':>13s} {'torch/ort':>9s} {'GFLOP/p':>7s} {'torch GF/s':>10s} {'ort GF/s':>8s} "
        f"{'max |diff|':>10s}"
    )
    for r in rows:
        print(
            f"{r['config']:6s} {r['batch']:5d} {r['torch_ms']:9.1f} {r['onnxruntime_ms']:9.1f} "
            f"{r['onnxruntime_ms_per_person']:13.1f} {r['onnxruntime_persons_per_s']:13.2f} "
            f"{r['speedup_onnxruntime_vs_torch']:8.2f}x {r['gflop_per_person']:7.2f} "
            f"{r['torch_gflops']:10.1f} {r['onnxruntime_gflops']:8.1f} {r['max_abs_diff']:10.2e}"
        )
    load = {"before": [round(v, 2) for v in load_before], "after": [round(v, 2) for v in load_after]}
    print(
        f"load average (1, 5, 15 min): {load['before']} before, {load['after']} after ({os.cpu_count()} CPUs)"
    )
    summary = {
        "bench": "onnx",
        "threads": args.threads,
        "reps": args.reps,
        "onnxruntime": onnxruntime.__version__,
        "torch": torch.__version__,
        "load_average": load,
        "rows": rows,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
