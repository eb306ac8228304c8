"""``jotr eval --checkpoint CKPT [--config CONFIG] [--set key=value] [--dataset NAME[:SPLIT][=ROOT] ...]``.

Without ``--config`` the checkpoint's own config is used (with ``--set`` overrides, e.g. new data paths). The
network always comes from the checkpoint. Writes metrics.json / .csv, per-joint and per-visibility tables and
plots to ``--out`` (default ``eval.out_dir``) and prints the table. Works under torchrun (sharded, each sample
counted once). The output folder is checked before any work; a network that predicts NaN/inf is reported
(its metrics are NaN) and the exit status is 1. Library entry point:
:func:`jotr.evaluation.evaluator.evaluate`.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="jotr checkpoint (.pt)")
    p.add_argument(
        "--config",
        action="append",
        default=[],
        help="YAML file or shipped config name for data / body / eval settings (repeatable)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override (repeatable)",
    )
    p.add_argument(
        "--dataset",
        action="append",
        default=[],
        metavar="NAME[:SPLIT][=ROOT]",
        help="dataset to evaluate: a configured data.test/data.val entry (NAME or NAME:SPLIT) or a "
        "folder (NAME:SPLIT=ROOT); repeatable; default: all of data.test",
    )
    p.add_argument("--out", default=None, help="output folder (default: eval.out_dir)")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N | auto (default: train.device)")


def run(args: argparse.Namespace) -> int:
    from jotr.config import load_config, merge_config, parse_override
    from jotr.engine.checkpoint import checkpoint_config, load_checkpoint
    from jotr.engine.distributed import launched_rank
    from jotr.evaluation.evaluator import evaluate

    if args.config:
        cfg = load_config(args.config, args.overrides)
    else:
        cfg = checkpoint_config(load_checkpoint(args.checkpoint), args.overrides, source=args.checkpoint)
    if args.device:
        cfg = merge_config(cfg, parse_override(f"train.device={args.device}"))
    from jotr.engine.distributed import resolve_device

    resolve_device(cfg.train.device)  # InputError for a bogus device / CUDA without CUDA, before any work
    result = evaluate(cfg, args.checkpoint, args.dataset or None, out_dir=args.out)
    nonfinite = {label: m.num_nonfinite for label, m in result.datasets.items() if m.num_nonfinite}
    if launched_rank() == 0:
        print(result.table())
        if result.files:
            print(f"results: {result.files['json'].parent}")
        for label, n in nonfinite.items():
            print(
                f"jotr eval: error: {args.checkpoint} predicts NaN/inf for {n} sample(s) of {label}; "
                "its metrics are undefined",
                file=sys.stderr,
            )
    return 1 if nonfinite else 0
