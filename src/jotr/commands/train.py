"""``jotr train --config CONFIG [--set key=value ...] [--resume PATH|auto]``.

Single process (CPU or one GPU) as is; many GPUs / nodes with
``torchrun --nproc_per_node N -m jotr train ...`` (DDP; rank 0 logs and writes checkpoints).
Library entry point: :func:`jotr.engine.trainer.train`.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        action="append",
        default=[],
        required=True,
        help="YAML file or shipped config name, e.g. synthetic_small (repeatable; later files win)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override, e.g. train.max_steps=100 (repeatable)",
    )
    p.add_argument(
        "--resume",
        default=None,
        metavar="PATH|auto",
        help="continue a run exactly from a checkpoint, or 'auto' = <train.out_dir>/last.pt if present",
    )
    p.add_argument("--out-dir", default=None, help="shortcut for --set train.out_dir=DIR")
    p.add_argument(
        "--force",
        action="store_true",
        help="start over in a train.out_dir that holds a run (deletes its checkpoints; jotr folders only)",
    )


def run(args: argparse.Namespace) -> int:
    from jotr.config import load_config
    from jotr.engine.trainer import train
    from jotr.utils.io import check_writable_dir

    overrides = list(args.overrides)
    if args.out_dir:
        overrides.append(f"train.out_dir={args.out_dir}")
    cfg = load_config(args.config, overrides)
    check_writable_dir(cfg.train.out_dir, "train.out_dir")  # before building the model and the data
    result = train(cfg, resume=args.resume, force=args.force)
    if result.last_checkpoint is not None:  # rank 0 only
        loss = "n/a" if result.final_loss is None else f"{result.final_loss:.4f}"
        print(f"trained {result.steps} steps ({result.epochs_completed} epochs); final loss {loss}")
        if result.last_checkpoint.is_file():
            print(f"last checkpoint: {result.last_checkpoint}")
        else:
            print("no checkpoint written (no training step was taken)")
        if result.best_checkpoint is not None:
            val = f"validation MPJPE {result.best_val_mpjpe:.1f} mm"
            print(f"best checkpoint: {result.best_checkpoint} ({val})")
    return 0
