"""Benchmark: throughput of the embedded-default training loop (`synthetic_small` CPU recipe), samples/s.

    python -m benchmarks.bench_train_loop [--data DIR] [--split oc] [--batch 16] [--steps 12] [--threads 2]

Three measurements in one process, on generated synthetic data (``--data`` folder with ``<split>.json``, or a
few scenes rendered into a temporary folder):

* ``loader``: the training sample pipeline alone (reader, keypoint crop, augmentation, collate) through the
  DataLoader with 0, 1 and 2 workers -- samples/s;
* ``fp32``: full training steps (forward, criterion, backward, AdamW) of the recipe's network on batches from
  that loader, float32 -- the reference;
* ``bf16``: the same steps under CPU bfloat16 autocast; the recipe's ``train.cpu_bf16: auto`` picks bf16 only
  when a measured bf16 matmul is >= 1.2x faster (the measured matmul speed-up is printed too).

Ratios: bf16 / fp32 step throughput, and loader / fp32 throughput (> 1: data loading is not the bottleneck).
Prints a table and one JSON line (``{"bench": "train_loop", ...}``).

``--grid`` (issue 22) instead times the training step for every combination of ``--backbones`` (``resnet18``,
``efficientnet_lite0``, ``movenet`` (the pose-pretrained MoveNet backbone), ``/16`` appended = feature stride
16, e.g. ``efficientnet_lite0/16``), ``--sizes`` (input pixels),
``--dtypes`` (fp32, bf16) and ``--channels-last`` (on, off), on batches of the recipe's pipeline at that input
size (loader excluded), and prints samples/s per setting plus a JSON line (``{"bench": "train_loop_grid"}``).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch


def _data(folder: str | None, split: str, tmp: Path, batch: int) -> tuple[str, str]:
    """``--data``/``--split``, else ``pc`` scenes rendered into ``tmp``: enough for 4 batches (about 1.8
    annotated persons per scene, every one a training sample), at least 6."""
    if folder:
        return folder, split
    from jotr.synth.scene import SynthOptions
    from jotr.synth.writer import write_split

    scenes = max(6, -(-8 * batch // 3))  # ceil(4 batch / 1.5)
    write_split(tmp, "pc", scenes, seed=7, options=SynthOptions(width=256, height=192), progress=False)
    return str(tmp), "pc"


def _batches(loader, n: int) -> list:
    batches = [b for _, b in zip(range(n), loader)]
    if not batches:
        raise SystemExit("the data gives no full batch: pass a larger --data split or a smaller --batch")
    return batches


class _Stepper:
    """One setting's network, criterion and optimiser; :meth:`run` times full training steps (forward,
    criterion, backward, AdamW) and returns the seconds of each."""

    def __init__(self, cfg, body, batches, bf16: bool) -> None:
        from jotr.engine.trainer import TrainStep
        from jotr.losses.criterion import Criterion
        from jotr.models import build_model

        torch.manual_seed(0)
        net = build_model(cfg, body=body, pretrained=False).train()
        crit = Criterion(cfg.loss, body, cfg.model)
        self.opt = torch.optim.AdamW(list(net.parameters()) + crit.weight_parameters(), lr=1e-4)
        self.step = TrainStep(net, crit, lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16))
        self.batches, self.gen, self.i = batches, torch.Generator().manual_seed(0), 0

    def run(self, steps: int) -> list[float]:
        times = []
        for _ in range(steps):
            batch = self.batches[self.i % len(self.batches)]
            self.i += 1
            t0 = time.perf_counter()
            loss, _ = self.step(batch.inputs, batch.targets, self.gen, self.gen)
            self.opt.zero_grad(set_to_none=True)
            loss.total.backward()
            self.opt.step()
            times.append(time.perf_counter() - t0)
        return times


def grid(args) -> int:
    """samples/s of the training step per (backbone, input size, dtype, channels-last).

    The settings are timed round-robin, ``--passes`` times ``--steps`` steps each after 2 warm-up steps, so
    that a change in the machine's load hits every setting alike; reported: the median step and the fastest
    step of each setting (the fastest is the better estimate of the uncontended speed on a shared machine)."""
    from jotr.body import build_body_model
    from jotr.config import load_config, merge_config
    from jotr.data.dataset import build_dataset, make_loader
    from jotr.engine.precision import bf16_matmul_speedup, use_cpu_bf16

    load_start = os.getloadavg()[0]
    settings: list[tuple[dict, _Stepper]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root, split = _data(args.data, args.split, Path(tmp), args.batch)
        base = load_config(args.config)
        spec = [{"name": "synthetic", "root": root, "split": split, "options": {"targets_only": False}}]
        base = merge_config(base, {"data": {"train_3d": spec}, "train": {"batch_size": args.batch}})
        body = build_body_model(base.body)
        for size in [int(x) for x in args.sizes.split(",")]:
            hm = size // 4
            sized = merge_config(
                base, {"model": {"input_size": size, "heatmap_size": hm, "heatmap_sigma": 1.25 * hm / 32}}
            )
            ds = build_dataset(sized.data.train_3d[0], sized, train=True, body_models={body.name: body})
            loader = make_loader(ds, batch_size=args.batch, train=True, num_workers=0, drop_last=True)
            batches = _batches(loader, 3)
            for backbone in args.backbones.split(","):
                name, _, stride = backbone.partition("/")
                for cl in args.channels_last.split(","):
                    model = {
                        "backbone": name,
                        "feature_stride": int(stride or 32),
                        "channels_last": cl == "on",
                    }
                    cfg = merge_config(sized, {"model": model})
                    for dtype in args.dtypes.split(","):
                        row = {"backbone": backbone, "size": size, "dtype": dtype, "channels_last": cl}
                        stepper = _Stepper(cfg, body, batches, dtype == "bf16")
                        stepper.run(2)  # warm-up (oneDNN kernel selection, allocator)
                        settings.append((row, stepper))
    times: list[list[float]] = [[] for _ in settings]
    for _ in range(args.passes):
        for k, (_, stepper) in enumerate(settings):
            times[k] += stepper.run(args.steps)
    rows = []
    for (row, _), t in zip(settings, times):
        t = sorted(t)
        rate, best = args.batch / t[len(t) // 2], args.batch / t[0]
        rows.append(row | {"samples_per_s": round(rate, 2), "best_samples_per_s": round(best, 2)})
        print(
            f"{row['backbone']:22s} {row['size']:4d} px  {row['dtype']:5s} channels-last "
            f"{row['channels_last']:3s} {rate:8.2f} samples/s (median step), {best:8.2f} (fastest step)"
        )
    speedup = bf16_matmul_speedup()
    result = {
        "bench": "train_loop_grid",
        "batch": args.batch,
        "threads": args.threads,
        "passes": args.passes,
        "steps_per_pass": args.steps,
        "load_avg_1min": [round(load_start, 2), round(os.getloadavg()[0], 2)],
        "bf16_matmul_speedup": round(speedup, 3),
        "auto_picks_bf16": use_cpu_bf16("auto"),
        "rows": rows,
    }
    print(json.dumps(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", help="synthetic dataset folder (default: 6 scenes rendered into a temp folder)")
    ap.add_argument("--split", default="oc")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=12, help="timed steps per mode (after 2 warm-up steps)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--config", default="synthetic_small", help="shipped config name or YAML (the recipe)")
    ap.add_argument("--grid", action="store_true", help="time the step per backbone / size / dtype / layout")
    ap.add_argument(
        "--backbones",
        default="resnet18,efficientnet_lite0,efficientnet_lite0/16",
        help="--grid: comma-separated model.backbone values (resnet18, efficientnet_lite0, movenet, ...), "
        "each with an optional /16 for feature stride 16",
    )
    ap.add_argument("--sizes", default="64,96,128")
    ap.add_argument("--dtypes", default="fp32,bf16")
    ap.add_argument("--channels-last", default="on,off")
    ap.add_argument("--passes", type=int, default=3, help="--grid: round-robin passes over the settings")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.grid:
        return grid(args)

    from jotr.body import build_body_model
    from jotr.config import load_config, merge_config
    from jotr.data.dataset import build_dataset, make_loader
    from jotr.engine.precision import bf16_matmul_speedup
    from jotr.engine.trainer import TrainStep
    from jotr.losses.criterion import Criterion
    from jotr.models import build_model

    with tempfile.TemporaryDirectory() as tmp:
        root, split = _data(args.data, args.split, Path(tmp), args.batch)
        cfg = load_config(args.config)
        spec = [{"name": "synthetic", "root": root, "split": split, "options": {"targets_only": False}}]
        cfg = merge_config(cfg, {"data": {"train_3d": spec}, "train": {"batch_size": args.batch}})
        body = build_body_model(cfg.body)
        ds = build_dataset(cfg.data.train_3d[0], cfg, train=True, body_models={body.name: body})

        loader_rate = {}
        for workers in (0, 1, 2):
            loader = make_loader(ds, batch_size=args.batch, train=True, num_workers=workers, drop_last=True)
            it = iter(loader)
            next(it)  # worker start-up
            n, t0 = 0, time.perf_counter()
            for _ in range(min(args.steps, max(len(ds) // args.batch - 1, 1))):
                try:
                    next(it)
                except StopIteration:
                    break
                n += args.batch
            loader_rate[workers] = n / max(time.perf_counter() - t0, 1e-9)
        loader = make_loader(ds, batch_size=args.batch, train=True, drop_last=True)
        batches = _batches(loader, 4)

        step_rate = {}
        for mode in ("fp32", "bf16"):
            torch.manual_seed(0)
            net = build_model(cfg, body=body).train()
            crit = Criterion(cfg.loss, body, cfg.model)
            opt = torch.optim.AdamW(list(net.parameters()) + crit.weight_parameters(), lr=1e-4)
            dtype = torch.bfloat16 if mode == "bf16" else None

            def autocast(dtype=dtype):
                return torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is not None)

            step = TrainStep(net, crit, autocast)
            gen = torch.Generator().manual_seed(0)
            times = []
            for i in range(args.steps + 2):
                batch = batches[i % len(batches)]
                t0 = time.perf_counter()
                loss, _ = step(batch.inputs, batch.targets, gen, gen)
                opt.zero_grad(set_to_none=True)
                loss.total.backward()
                opt.step()
                if i >= 2:
                    times.append(time.perf_counter() - t0)
            times.sort()
            step_rate[mode] = args.batch / times[len(times) // 2]

    speedup = bf16_matmul_speedup()
    result = {
        "bench": "train_loop",
        "batch": args.batch,
        "threads": args.threads,
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "loader_samples_per_s": {str(k): round(v, 1) for k, v in loader_rate.items()},
        "step_samples_per_s": {k: round(v, 2) for k, v in step_rate.items()},
        "bf16_vs_fp32": round(step_rate["bf16"] / step_rate["fp32"], 3),
        "bf16_matmul_speedup": round(speedup, 3),
        "auto_picks_bf16": speedup >= 1.2,
        "loader2_vs_fp32_step": round(loader_rate[2] / step_rate["fp32"], 2),
    }
    print(f"{'what':34s} samples/s")
    for k, v in loader_rate.items():
        print(f"{'loader, ' + str(k) + ' workers':34s} {v:9.1f}")
    for k, v in step_rate.items():
        print(f"{'training step, ' + k:34s} {v:9.2f}")
    print(f"bf16 / fp32 step: {result['bf16_vs_fp32']:.2f}x; bf16 matmul speed-up {speedup:.2f}x "
          f"(auto picks {'bf16' if result['auto_picks_bf16'] else 'fp32'}); "
          f"loader (2 workers) / fp32 step: {result['loader2_vs_fp32_step']:.1f}x")  # fmt: skip
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
